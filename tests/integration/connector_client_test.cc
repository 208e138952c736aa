// The MISP client against misp-sim over HTTPS: every call works, sends what MISP's own sync sends
// (checked in misp-sim's request log against the real captures), and maps MISP's answers to typed
// errors.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "common/encoding.h"
#include "misp-sim/sim.h"
#include "portal-connector/misp_client.h"
#include "tests/support/files.h"
#include "tests/support/policy_fixtures.h"
#include "tests/support/test_pki.h"

namespace sgsync::connector {
namespace {

using sgsync::testing::kOrg1;
using sgsync::testing::kOrg2;
const std::string kAdmin(40, 'a');

class MispClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new sgsync::testing::TestPki(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    auto sim = sim::MispSim::Create(sim::SimConfig{":memory:", "", "ORG2", kOrg2, kAdmin, "", ""});
    ASSERT_TRUE(sim.ok());
    sim_ = std::move(*sim);
    ASSERT_TRUE(sim_->AddOrg("ORG1", kOrg1, false).ok());
    sync_key_ = *sim_->AddUser("sync@org1.test", kOrg1, sim::Role::kSyncUser);
    sim::MispSim* raw = sim_.get();
    auto server = sim::HttpServer::Start(
        "127.0.0.1", 0, [raw](const sim::HttpRequest& r) { return raw->Handle(r); },
        sim::TlsFiles{pki_->server_cert(), pki_->server_key(), ""});
    ASSERT_TRUE(server.ok());
    server_ = std::move(*server);
    sim_->set_base_url(Url());
    client_ = Client(sync_key_);
  }

  std::string Url() const { return "https://127.0.0.1:" + std::to_string(server_->port()); }

  std::unique_ptr<MispClient> Client(const std::string& key) {
    TransportOptions o;
    o.base_url = Url();
    o.tls.ca_file = pki_->ca();
    o.user_agent = SgsyncUserAgent();
    o.retry.base = std::chrono::milliseconds(5);
    return std::make_unique<MispClient>(std::move(*HttpsTransport::Create(o, key)));
  }

  static json::object Event(const std::string& uuid, const std::string& ts) {
    return json::
        parse(R"({"uuid":")" + uuid +
              R"(","info":"client test","distribution":"3","published":true,"timestamp":")" + ts +
              R"(","Attribute":[{"type":"ip-dst","category":"Network activity","value":"192.0.2.1","distribution":"5","timestamp":")" +
              ts + R"("}]})")
            .as_object();
  }

  static sgsync::testing::TestPki* pki_;
  std::unique_ptr<sim::MispSim> sim_;
  std::unique_ptr<sim::HttpServer> server_;
  std::string sync_key_;
  std::unique_ptr<MispClient> client_;
};
sgsync::testing::TestPki* MispClientTest::pki_ = nullptr;

const std::string kUuid = "cd07b242-d9e7-4ff6-a8d9-dbc3d4ec8c9d";

TEST_F(MispClientTest, VersionAndAccountAreRead) {
  auto v = client_->GetVersion();
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  EXPECT_EQ(v->version, "2.5.1");
  auto me = client_->WhoAmI();
  ASSERT_TRUE(me.ok()) << me.error().ToString();
  EXPECT_TRUE(me->Has("perm_sync"));
  EXPECT_EQ(me->org_uuid, kOrg1);
  auto log = sim_->RequestLog();
  EXPECT_EQ(log[1].target, "/users/view/me.json")
      << "the form MISP's sync uses (users-view-me-sync-user.json)";
  for (const auto& r : log) {
    EXPECT_EQ(r.headers.at("accept"), "application/json");
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    EXPECT_EQ(r.headers.at("user-agent").rfind("MISP", 0), 0u)
        << "spec 9.1: signatures need a MISP user agent";
  }
}

TEST_F(MispClientTest, AWrongKeyIsUnauthenticatedAndTheKeyIsInNoMessage) {
  auto bad = Client("0000000000000000000000000000000000000000");
  auto v = bad->GetVersion();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(v.error().message.find("Authentication failed"), std::string::npos);
  EXPECT_EQ(v.error().ToString().find("0000000000000000000000000000000000000000"), std::string::npos);
}

TEST_F(MispClientTest, DebugLogsOfFailingAndSucceedingExchangesNeverContainTheKey) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  spdlog::set_level(spdlog::level::debug);
  const std::string bad_key = "feedfacefeedfacefeedfacefeedfacefeedface";
  (void)Client(bad_key)->GetVersion();                                                  // 403
  (void)client_->GetVersion();                                                          // 200
  (void)client_->EditEvent("00000000-0000-4000-8000-000000000001", Event(kUuid, "1"));  // 404
  TransportOptions dead;
  dead.base_url = "https://127.0.0.1:1";
  dead.tls.ca_file = pki_->ca();
  dead.retry.max_attempts = 1;
  (void)MispClient(std::move(*HttpsTransport::Create(dead, sync_key_))).GetVersion();  // connection refused
  spdlog::set_default_logger(previous);
  std::string out = captured.str();
  EXPECT_NE(out.find("/servers/getVersion -> 200"), std::string::npos) << out;
  EXPECT_NE(out.find("failed"), std::string::npos) << out;
  EXPECT_EQ(out.find(sync_key_), std::string::npos);
  EXPECT_EQ(out.find(bad_key), std::string::npos);
}

TEST_F(MispClientTest, SpecCase33_AddTwiceGivesTheExistingIdAndAnOlderEditIsNotNewer) {
  auto add = client_->AddEvent(Event(kUuid, "100"));
  ASSERT_TRUE(add.ok()) << add.error().ToString();
  EXPECT_TRUE(add->written);
  auto again = client_->AddEvent(Event(kUuid, "100"));
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_FALSE(again->written);
  EXPECT_FALSE(again->existing_id.empty());
  // The whole saved event is asked for, not metadata:1 (issue 16 item 11: what was saved is compared
  // with what was sent).
  EXPECT_EQ(sim_->RequestLog().back().target, "/events/add");
  auto older = client_->EditEvent(kUuid, Event(kUuid, "100"));
  ASSERT_FALSE(older.ok());
  EXPECT_EQ(older.error().code, ErrorCode::kNotNewer) << older.error().ToString();
  auto newer = client_->EditEvent(again->existing_id, Event(kUuid, "200"));
  ASSERT_TRUE(newer.ok()) << newer.error().ToString();
  EXPECT_EQ(sim_->RequestLog().back().target, "/events/edit/" + again->existing_id);
}

// An event larger than the client holds as one string (1 MiB) is streamed out from its tree with
// its Content-Length counted first: the receiver gets the same bytes, and the answer's elements are
// read as it arrives (issue 19: a 150k-attribute event is never held as text beside its tree).
TEST_F(MispClientTest, ALargeEventIsStreamedOutWhole_AndItsSavedElementsAreReadFromTheAnswer) {
  json::object event = Event(kUuid, "100");
  json::array& attributes = event["Attribute"].as_array();
  const json::object first = attributes[0].as_object();
  attributes.clear();
  for (int i = 0; i < 4000; ++i) {
    json::object a = first;
    char uuid[37];
    std::snprintf(uuid, sizeof uuid, "0b5f7c1e-0000-4000-8000-%012d", i);
    a["uuid"] = uuid;
    a["value"] = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);  // MISP refuses duplicates
    a["comment"] = std::string(240, 'c');
    attributes.push_back(std::move(a));
  }
  const std::string body = json::serialize(json::object{{"Event", event}});
  ASSERT_GT(body.size(), std::size_t{1} << 20) << "the test must cross the streaming threshold";

  auto add = client_->AddEvent(event);
  ASSERT_TRUE(add.ok()) << add.error().ToString();
  EXPECT_TRUE(add->written);
  EXPECT_EQ(AsciiLower(add->saved.uuid), kUuid);
  EXPECT_FALSE(add->saved.id.empty());
  EXPECT_EQ(add->saved.element_uuids.size(), 4000u);
  const sim::LoggedRequest sent = sim_->RequestLog().back();  // RequestLog() is a copy
  EXPECT_EQ(sent.headers.at("content-length"), std::to_string(body.size()));
  EXPECT_EQ(sent.body, body.substr(0, sent.body.size())) << "misp-sim logs the first MiB of what it got";

  event["timestamp"] = "200";
  auto edit = client_->EditEvent(kUuid, event);
  ASSERT_TRUE(edit.ok()) << edit.error().ToString();
  EXPECT_EQ(edit->saved.element_uuids.size(), 4000u);
  auto back = client_->ViewEvent(kUuid, ViewForm{});
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((**back).event_json().at("Attribute").as_array().size(), 4000u);
  EXPECT_EQ((**back).event_json().at("timestamp"), "200");
}

TEST_F(MispClientTest, SpecCase51_TheIndexIsConditionalAndTheViewUsesThePullForm) {
  ASSERT_TRUE(client_->AddEvent(Event(kUuid, "100")).ok());
  json::object filter{{"minimal", 1}, {"published", 1}};
  auto first = client_->EventIndex(filter, "");
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  ASSERT_EQ(first->rows.size(), 1u);
  EXPECT_EQ(first->total, 1);
  EXPECT_EQ(sim_->RequestLog().back().headers.at("if-none-match"), "\"\"")
      << "MISP's pull asks for an ETag with \"\"";
  auto second = client_->EventIndex(filter, first->etag);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->not_modified);
  auto view = client_->ViewEvent(kUuid, ViewForm{});
  ASSERT_TRUE(view.ok()) << view.error().ToString();
  ASSERT_TRUE(view->has_value());
  // The exact path of events-view-pull-form.json.
  json::value capture = json::parse(sgsync::testing::ReadFile(
      sgsync::testing::DataDir() / "fixtures/misp/real-2.5.1/api/events-view-pull-form.json"));
  std::string real_path(capture.at("request").at("path").as_string());
  std::string expected = real_path.substr(0, std::string("/events/view/").size()) + kUuid +
                         real_path.substr(std::string("/events/view/").size() + 36);
  EXPECT_EQ(sim_->RequestLog().back().target, expected);
  EXPECT_FALSE(client_->ViewEvent("00000000-0000-4000-8000-000000000001", ViewForm{})->has_value());
  std::int64_t total = 0;
  auto found = client_->RestSearch(json::object{{"uuid", json::array{kUuid}}}, &total);
  ASSERT_TRUE(found.ok()) << found.error().ToString();
  EXPECT_EQ(found->size(), 1u);
  EXPECT_EQ(total, 1);
  // Freed whole with the answer's arena, which every document keeps (misp::ArenaOwner::kCaller).
  ASSERT_NE(found->front().arena(), nullptr);
  EXPECT_TRUE(found->front().event_json().storage().is_not_shared_and_deallocate_is_trivial());
}

TEST_F(MispClientTest, FilterEventIdsForPushSendsMispsBody) {
  auto wanted = client_->FilterEventIdsForPush({{kUuid, 100}});
  ASSERT_TRUE(wanted.ok()) << wanted.error().ToString();
  EXPECT_EQ(*wanted, std::vector<std::string>{kUuid});
  EXPECT_EQ(json::parse(sim_->RequestLog().back().body),
            json::parse(R"([{"Event":{"uuid":")" + kUuid + R"(","timestamp":"100"}}])"));
}

// The bulk fetch asks restSearch for what the view form asks with named parameters.
TEST_F(MispClientTest, TheBulkFetchFilterSaysWhatTheViewFormSays) {
  ViewForm push{.include_deleted = true, .exclude_local_tags = false};
  ViewForm pull{.include_deleted = true, .exclude_local_tags = true};
  EXPECT_EQ(json::value(RestSearchFilter(push)),
            json::parse(R"({"deleted": [0, 1], "excludeLocalTags": 0, "excludeGalaxy": 1})"));
  EXPECT_EQ(json::value(RestSearchFilter(pull)),
            json::parse(R"({"deleted": [0, 1], "excludeLocalTags": 1, "excludeGalaxy": 1})"));
  for (const ViewForm& form : {push, pull}) {
    ASSERT_TRUE(client_->ViewEvent(kUuid, form).ok());
    const std::string path = sim_->RequestLog().back().target;
    EXPECT_NE(path.find("/deleted[]:0/deleted[]:1/excludeGalaxy:1"), std::string::npos) << path;
    EXPECT_EQ(path.find("excludeLocalTags:1") != std::string::npos, form.exclude_local_tags) << path;
  }
}

// The request bodies and paths of the calls MISP's sync makes, against the real captures.
json::value CaptureRequestBody(const std::string& name) {
  return json::parse(
             sgsync::testing::ReadFile(sgsync::testing::DataDir() / "fixtures/misp/real-2.5.1/api" / name))
      .at("request")
      .at("body");
}

TEST_F(MispClientTest, RequestsHaveTheShapesOfMispsOwnSync) {
  ASSERT_TRUE(client_->EventIndex(json::object{{"minimal", 1}, {"published", 1}}, "").ok());
  EXPECT_EQ(json::parse(sim_->RequestLog().back().body),
            CaptureRequestBody("events-index-minimal-published.json"));
  ASSERT_TRUE(client_->SightingsForEvents({"3db1fc7c-5b9f-4f46-823f-296321d7f5db"}).ok());
  EXPECT_EQ(json::parse(sim_->RequestLog().back().body),
            CaptureRequestBody("sightings-restSearch-event-after-bulk.json"));
  EXPECT_EQ(sim_->RequestLog().back().target, "/sightings/restSearch/event");
  ASSERT_TRUE(client_->Proposals(1788031700).ok());
  json::value proposals = json::parse(sgsync::testing::ReadFile(
      sgsync::testing::DataDir() / "fixtures/misp/real-2.5.1/api/shadow-attributes-index-pull-form.json"));
  EXPECT_EQ(sim_->RequestLog().back().target, proposals.at("request").at("path").as_string());
}

TEST_F(MispClientTest, SharingGroupsReportsSightingsAndProposals) {
  EXPECT_TRUE(client_->SharingGroups().ok());
  ASSERT_TRUE(
      sim_->AddSharingGroup(
              R"({"uuid":"11111111-1111-4111-8111-111111111111","name":"g","SharingGroupOrg":[{"Organisation":{"uuid":")" +
              std::string(kOrg1) + R"(","name":"ORG1"}}],"SharingGroupServer":[]})")
          .ok());
  auto sg = client_->SharingGroup("11111111-1111-4111-8111-111111111111");
  ASSERT_TRUE(sg.ok()) << sg.error().ToString();
  EXPECT_EQ(sg->org_uuids, std::vector<std::string>{kOrg1});
  ASSERT_TRUE(client_->AddEvent(Event(kUuid, "100")).ok());
  json::object e = (*client_->ViewEvent(kUuid, ViewForm{}))->event_json();
  std::string attribute(misp::StringOr(e.at("Attribute").as_array()[0].as_object(), "uuid"));
  json::array sightings{json::object{{"uuid", "99999999-9999-4999-8999-999999999999"},
                                     {"attribute_uuid", attribute},
                                     {"event_uuid", kUuid},
                                     {"date_sighting", "150"},
                                     {"type", "0"},
                                     {"source", "t"},
                                     {"Organisation", json::object{{"uuid", kOrg1}, {"name", "ORG1"}}}}};
  ASSERT_TRUE(client_->SaveSightings(kUuid, sightings).ok());
  auto known = client_->KnownSightings(
      kUuid, {"99999999-9999-4999-8999-999999999999", "88888888-8888-4888-8888-888888888888"});
  ASSERT_TRUE(known.ok());
  EXPECT_EQ(*known, std::vector<std::string>{"99999999-9999-4999-8999-999999999999"});
  auto back = client_->SightingsForEvents({kUuid});
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->size(), 1u);
  EXPECT_TRUE(client_->Proposals(0).ok());
}

// Issue 23: a view is the event asked for, or an error naming both uuids; every caller (fetch,
// explain, conflicts, proposals, the partial-write recheck, the onboarding canary) relies on it.
TEST_F(MispClientTest, AViewAnsweredWithAnotherEventIsRefusedNamingBoth) {
  const std::string other = "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f";
  auto liar = sim::HttpServer::Start(
      "127.0.0.1", 0,
      [&](const sim::HttpRequest&) {
        sim::HttpResponse r;
        r.headers.emplace_back("Content-Type", "application/json");
        r.body = json::serialize(json::object{{"Event", Event(other, "100")}});
        return r;
      },
      sim::TlsFiles{pki_->server_cert(), pki_->server_key(), ""});
  ASSERT_TRUE(liar.ok());
  std::swap(server_, *liar);  // Client() speaks to server_
  auto client = Client(sync_key_);
  std::swap(server_, *liar);
  auto viewed = client->ViewEvent(kUuid, ViewForm{});
  ASSERT_FALSE(viewed.ok());
  EXPECT_EQ(viewed.error().code, ErrorCode::kCorruption);
  EXPECT_NE(viewed.error().ToString().find("asked for event " + kUuid + ", the answer is event " + other),
            std::string::npos)
      << viewed.error().ToString();
  ASSERT_TRUE(client_->AddEvent(Event(kUuid, "100")).ok());
  auto same = client_->ViewEvent(kUuid, ViewForm{});
  ASSERT_TRUE(same.ok() && same->has_value()) << "the honest peer's answer still passes";
}

}  // namespace
}  // namespace sgsync::connector
