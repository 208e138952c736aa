// misp-sim over real HTTP on 127.0.0.1: authentication, the access table, the sync user's add path,
// edit semantics, the event index with its ETag, filterEventIdsForPush, gzip bodies and MISP's
// error statuses, each as the real MISP 2.5.1 captures show them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <set>

#include <sqlite3.h>

#include <boost/algorithm/string/replace.hpp>

#include "common/encoding.h"
#include "misp-sim/sim.h"
#include "misp/event.h"
#include "misp/json.h"
#include "tests/support/files.h"
#include "tests/support/http_client.h"
#include "tests/support/policy_fixtures.h"

namespace sgsync::sim {
namespace {

namespace json = boost::json;
using sgsync::testing::kOrg1;
using sgsync::testing::kOrg2;
using sgsync::testing::kOrg3;

const std::string kAdminKey(40, 'a');
const std::string kControl = "control-token";

class MispSimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The Portal-like instance: host org ORG2. ORG1's sync account pulls from it and pushes to it.
    auto sim = MispSim::Create(SimConfig{":memory:", "", "ORG2", kOrg2, kAdminKey, "", kControl});
    ASSERT_TRUE(sim.ok()) << sim.error().ToString();
    sim_ = std::move(*sim);
    ASSERT_TRUE(sim_->AddOrg("ORG1", kOrg1, false).ok());
    ASSERT_TRUE(sim_->AddOrg("ORG3", kOrg3, false).ok());
    sync_key_ = *sim_->AddUser("sync@org1.test", kOrg1, Role::kSyncUser);
    user_key_ = *sim_->AddUser("user@org2.test", kOrg2, Role::kUser);
    MispSim* raw = sim_.get();
    auto server = HttpServer::Start("127.0.0.1", 0, [raw](const HttpRequest& r) { return raw->Handle(r); });
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = std::move(*server);
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    sim_->set_base_url(base_);
  }

  sgsync::testing::HttpResult Call(const std::string& key, const std::string& method,
                                   const std::string& target, const std::string& body = "",
                                   std::map<std::string, std::string> headers = {}) {
    headers["Authorization"] = key;
    return sgsync::testing::Request(server_->port(), method, target, body, headers);
  }

  static json::value Body(const sgsync::testing::HttpResult& r) { return json::parse(r.body); }

  // An event created by ORG2's admin with one attribute per distribution in `attrs`.
  std::string CreateEvent(int distribution, const std::vector<int>& attrs, const std::string& extra = "",
                          bool published = true) {
    std::string a;
    for (std::size_t i = 0; i < attrs.size(); ++i) {
      a += (i ? "," : "") +
           std::string(R"({"type":"ip-dst","category":"Network activity","value":"198.51.100.)") +
           std::to_string(i + 1) + R"(","distribution":")" + std::to_string(attrs[i]) +
           R"(","timestamp":"100"})";
    }
    std::string body = R"({"Event":{"info":"t","distribution":")" + std::to_string(distribution) +
                       R"(","published":)" + (published ? "true" : "false") +
                       R"(,"timestamp":"100","Attribute":[)" + a + "]" + extra + "}}";
    auto r = Call(kAdminKey, "POST", "/events/add", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return std::string(Body(r).at("Event").at("uuid").as_string());
  }

  // The uuid of the first attribute of a stored event, as its owner's view shows it.
  std::string FirstAttributeUuid(const std::string& event_uuid) {
    json::value view = Body(Call(kAdminKey, "GET", "/events/view/" + event_uuid));
    return std::string(view.at("Event").at("Attribute").at(0).at("uuid").as_string());
  }

  std::unique_ptr<MispSim> sim_;
  std::unique_ptr<HttpServer> server_;
  std::string base_, sync_key_, user_key_;
};

TEST_F(MispSimTest, SpecCase56_AnObjectNotNewerHidesItsNewerAttributes) {
  std::string uuid = CreateEvent(
      3, {5},
      R"(,"Object":[{"name":"domain-ip","template_uuid":"43b3b146-77eb-4931-b4cc-b66c60f28734","timestamp":"100","distribution":"5","Attribute":[{"type":"domain","category":"Network activity","value":"a.example","timestamp":"100"}]}])");
  json::object e = Body(Call(kAdminKey, "GET", "/events/view/" + uuid)).at("Event").as_object();
  e["timestamp"] = "200";
  json::object& attr = e["Object"].as_array()[0].as_object()["Attribute"].as_array()[0].as_object();
  attr["value"] = "b.example";
  attr["timestamp"] = "200";  // newer, but the object's timestamp (100) is not
  ASSERT_EQ(
      Call(kAdminKey, "POST", "/events/edit/" + uuid, json::serialize(json::object{{"Event", e}})).status,
      200);
  json::value after = Body(Call(kAdminKey, "GET", "/events/view/" + uuid));
  EXPECT_EQ(after.at("Event").at("Object").as_array()[0].at("Attribute").as_array()[0].at("value"),
            json::value("a.example"));
}

TEST_F(MispSimTest, SpecCase58_AnEditWithoutATagLeavesTheTagInPlace) {
  std::string uuid = CreateEvent(3, {5}, R"(,"Tag":[{"name":"keep-me"}])");
  json::object e = Body(Call(kAdminKey, "GET", "/events/view/" + uuid)).at("Event").as_object();
  e["timestamp"] = "200";
  e.erase("Tag");
  ASSERT_EQ(
      Call(kAdminKey, "POST", "/events/edit/" + uuid, json::serialize(json::object{{"Event", e}})).status,
      200);
  json::value after = Body(Call(kAdminKey, "GET", "/events/view/" + uuid));
  ASSERT_EQ(after.at("Event").at("Tag").as_array().size(), 1u);
  EXPECT_EQ(after.at("Event").at("Tag").as_array()[0].at("name"), json::value("keep-me"));
}

TEST_F(MispSimTest, SpecCase53_AnUnknownCreatorOrgWhoseNameIsTakenGetsASuffix) {
  ASSERT_TRUE(sim_->AddOrg("ORG-X", "55555555-5555-4555-8555-555555555555", false).ok());
  std::string body =
      R"({"Event":{"info":"x","distribution":"3","Orgc":{"uuid":"66666666-6666-4666-8666-666666666666","name":"ORG-X"},"Attribute":[{"type":"ip-dst","category":"Network activity","value":"192.0.2.1"}]}})";
  auto r = Call(sync_key_, "POST", "/events/add", body);
  ASSERT_EQ(r.status, 200) << r.body;
  auto orgc = Body(r).at("Event").at("Orgc");
  EXPECT_EQ(orgc.at("uuid"), json::value("66666666-6666-4666-8666-666666666666"));
  std::string name(orgc.at("name").as_string());
  EXPECT_EQ(name.rfind("ORG-X_", 0), 0u) << name;
  EXPECT_EQ(name.size(), 10u) << "ORG-X_NNNN";
}

TEST_F(MispSimTest, SpecCase54_RepeatedAttributesAreSavedOnceOnAdd) {
  std::string body = R"({"Event":{"info":"x","distribution":"3","Attribute":[
    {"type":"ip-dst","category":"Network activity","value":"192.0.2.1"},
    {"type":"ip-dst","category":"Network activity","value":"192.0.2.1"},
    {"type":"ip-dst","category":"Network activity","value":"192.0.2.1","deleted":true},
    {"type":"ip-src","category":"Network activity","value":"192.0.2.1"}]}})";
  auto r = Call(sync_key_, "POST", "/events/add", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r).at("Event").at("Attribute").as_array().size(), 3u) << "deleted ones are all kept";
}

TEST_F(MispSimTest, SpecCase57_AnAttributeUuidOfAnotherEventIsSkippedOnEdit) {
  std::string first = CreateEvent(3, {5});
  json::value a =
      Body(Call(kAdminKey, "GET", "/events/view/" + first)).at("Event").at("Attribute").as_array()[0];
  std::string second = CreateEvent(3, {5});
  json::object e = Body(Call(kAdminKey, "GET", "/events/view/" + second)).at("Event").as_object();
  e["timestamp"] = "200";
  json::object stolen = a.as_object();
  stolen["timestamp"] = "200";
  stolen["value"] = "stolen.example";
  e["Attribute"].as_array().push_back(stolen);
  ASSERT_EQ(
      Call(kAdminKey, "POST", "/events/edit/" + second, json::serialize(json::object{{"Event", e}})).status,
      200);
  auto after = Body(Call(kAdminKey, "GET", "/events/view/" + second));
  EXPECT_EQ(after.at("Event").at("Attribute").as_array().size(), 1u)
      << "the rest applied, the duplicate uuid skipped";
}

TEST_F(MispSimTest, SpecCase61And62_ExistingGroupsAreReusedOrUpdatedByNewerCaptures) {
  // A group created here through the web UI (local) is reused unchanged.
  std::string local =
      R"({"uuid":"77777777-7777-4777-8777-777777777777","name":"local group","local":true,"modified":"2026-01-01 00:00:00","SharingGroupOrg":[{"Organisation":{"uuid":")" +
      std::string(kOrg1) + R"(","name":"ORG1"}}],"SharingGroupServer":[]})";
  ASSERT_TRUE(sim_->AddSharingGroup(local).ok());
  // A captured group (local false) is updated by a newer copy: new org added, all_orgs reset.
  std::string captured =
      R"({"uuid":"88888888-8888-4888-8888-888888888888","name":"captured","local":false,"modified":"2026-01-01 00:00:00","SharingGroupOrg":[{"Organisation":{"uuid":")" +
      std::string(kOrg1) +
      R"(","name":"ORG1"}}],"SharingGroupServer":[{"server_id":"0","all_orgs":true,"Server":{"url":")" +
      base_ + R"("}}]})";
  ASSERT_TRUE(sim_->AddSharingGroup(captured).ok());
  auto push = [&](const std::string& uuid, const std::string& name, const std::string& extra_org) {
    std::string sg =
        R"({"uuid":")" + uuid + R"(","name":")" + name +
        R"(","modified":"2026-06-01 00:00:00","SharingGroupOrg":[{"Organisation":{"uuid":")" +
        std::string(kOrg1) + R"(","name":"ORG1"}},{"Organisation":{"uuid":")" + extra_org +
        R"(","name":"C"}}],"SharingGroupServer":[{"server_id":"0","all_orgs":false,"Server":{"url":")" +
        base_ + R"("}}]})";
    std::string body =
        R"({"Event":{"info":"sg","distribution":"4","sharing_group_id":"9","SharingGroup":)" + sg +
        R"(,"Attribute":[{"type":"ip-dst","category":"Network activity","value":"192.0.2.1"}]}})";
    return Call(sync_key_, "POST", "/events/add", body);
  };
  ASSERT_EQ(push("77777777-7777-4777-8777-777777777777", "renamed", kOrg3).status, 200);
  auto l = Body(Call(kAdminKey, "GET", "/sharing_groups/view/77777777-7777-4777-8777-777777777777"));
  EXPECT_EQ(l.at("SharingGroup").at("name"), json::value("local group"))
      << "case 61: a local group is not changed by sync";
  ASSERT_EQ(push("88888888-8888-4888-8888-888888888888", "captured v2", kOrg3).status, 200);
  auto c = Body(Call(kAdminKey, "GET", "/sharing_groups/view/88888888-8888-4888-8888-888888888888"));
  EXPECT_EQ(c.at("SharingGroup").at("name"), json::value("captured v2"));
  EXPECT_EQ(c.at("SharingGroupOrg").as_array().size(), 2u) << "case 62: org C added, none removed";
  for (const auto& row : c.at("SharingGroupServer").as_array())
    EXPECT_EQ(row.at("all_orgs"), json::value(false));
}

// The receiving side's capture, as MISP 2.5.1's source has it (misp-sim/capture.cc). Each of these
// is a place where sgsync's own receiver model (sync/policy/receiver.cc) predicts otherwise, so a
// test written against the model alone would not notice.
class MispSimCaptureTest : public MispSimTest {
 protected:
  // ORG1's sync account pushes an event at distribution 4 with one attribute, its group `sg`.
  sgsync::testing::HttpResult PushWithGroup(const std::string& sg, const std::string& uuid) {
    std::string body = R"({"Event":{"uuid":")" + uuid +
                       R"(","info":"captured","distribution":"4","published":true,"timestamp":"100","SharingGroup":)" +
                       sg + R"(,"Attribute":[{"type":"ip-dst","category":"Network activity","value":"192.0.2.7","timestamp":"100"}]}})";
    return Call(sync_key_, "POST", "/events/add", body);
  }

  std::string GroupJson(const std::string& name, const std::vector<std::string>& org_uuids,
                        const std::string& server_url, bool row_all_orgs) {
    json::array orgs;
    for (const auto& o : org_uuids) orgs.push_back(json::object{{"extend", false}, {"Organisation", json::object{{"uuid", o}, {"name", o.substr(0, 4)}}}});
    json::array servers;
    if (!server_url.empty())
      servers.push_back(json::object{{"all_orgs", row_all_orgs}, {"Server", json::object{{"url", server_url}, {"name", "p"}}}});
    return json::serialize(json::object{{"uuid", "99999999-9999-4999-8999-999999999999"},
                                        {"name", name},
                                        {"modified", "2026-06-01 00:00:00"},
                                        {"organisation_uuid", kOrg3},
                                        {"Organisation", json::object{{"uuid", kOrg3}, {"name", "ORG3"}}},
                                        {"SharingGroupOrg", std::move(orgs)},
                                        {"SharingGroupServer", std::move(servers)}});
  }

  json::object Stored(const std::string& uuid) {
    return Body(Call(kAdminKey, "GET", "/events/view/" + uuid)).at("Event").as_object();
  }
};

TEST_F(MispSimCaptureTest, AGroupAcceptedThroughThisInstancesAllOrgsRowGainsTheWriterAndLosesAllOrgs) {
  // checkIfAuthorisedToSave accepts a sync user through this instance's row with all_orgs; then
  // captureSGServers reads all_orgs from the row's Server record (absent), so it is stored false,
  // and captureCreatorOrg adds the writer's organisation (ORG1), which the group did not list.
  const std::string uuid = "aaaaaaaa-0001-4000-8000-000000000001";
  ASSERT_EQ(PushWithGroup(GroupJson("all orgs here", {kOrg3}, base_, true), uuid).status, 200);
  json::object e = Stored(uuid);
  EXPECT_EQ(e.at("distribution"), json::value("4"));
  std::set<std::string> members;
  for (auto org : misp::SharingGroupView(e.at("SharingGroup").as_object()).org_uuids()) members.emplace(org);
  EXPECT_EQ(members, (std::set<std::string>{kOrg1, kOrg3}));
  for (const auto& row : misp::SharingGroupView(e.at("SharingGroup").as_object()).servers()) {
    EXPECT_EQ(row.server_id, 0);
    EXPECT_FALSE(row.all_orgs);
  }
}

TEST_F(MispSimCaptureTest, AGroupThisInstanceAlreadyHoldsIsAttachedForASyncAccountThatIsNotAMember) {
  // captureSGExisting lets a sync user attach a held group without being a member, and an older
  // (or equal) copy changes nothing; sgsync's model, which cannot see the held groups, predicts
  // distribution 0 here.
  ASSERT_TRUE(sim_->AddSharingGroup(GroupJson("held", {kOrg2, kOrg3}, "", false)).ok());
  const std::string uuid = "aaaaaaaa-0002-4000-8000-000000000002";
  ASSERT_EQ(PushWithGroup(GroupJson("held", {kOrg2, kOrg3}, base_ + "/elsewhere", false), uuid).status, 200);
  json::object e = Stored(uuid);
  EXPECT_EQ(e.at("distribution"), json::value("4"));
  EXPECT_EQ(e.at("SharingGroup").at("name"), json::value("held"));
  EXPECT_EQ(misp::SharingGroupView(e.at("SharingGroup").as_object()).org_uuids().size(), 2u)
      << "not updated: the copy is not newer";
}

TEST_F(MispSimCaptureTest, ANewGroupWithoutANameIsNotCapturedAndTheEventStaysHome) {
  const std::string uuid = "aaaaaaaa-0003-4000-8000-000000000003";
  ASSERT_EQ(PushWithGroup(GroupJson("", {kOrg1, kOrg3}, "", false), uuid).status, 200);
  json::object e = Stored(uuid);
  EXPECT_EQ(e.at("distribution"), json::value("0"));
  EXPECT_EQ(e.at("sharing_group_id"), json::value("0"));
}

TEST_F(MispSimCaptureTest, ThisInstancesUrlIsComparedExactlySoATrailingSlashIsAnotherServer) {
  // checkIfAuthorisedToSave compares a row's url with MISP.baseurl by PHP ==.
  const std::string uuid = "aaaaaaaa-0004-4000-8000-000000000004";
  ASSERT_EQ(PushWithGroup(GroupJson("slash", {kOrg1, kOrg3}, base_ + "/", false), uuid).status, 200);
  EXPECT_EQ(Stored(uuid).at("distribution"), json::value("0"));
  const std::string exact = "aaaaaaaa-0005-4000-8000-000000000005";
  std::string sg = GroupJson("exact", {kOrg1, kOrg3}, base_, false);
  boost::replace_all(sg, "99999999-9999-4999-8999-999999999999", "99999999-9999-4999-8999-000000000005");
  ASSERT_EQ(PushWithGroup(sg, exact).status, 200);
  EXPECT_EQ(Stored(exact).at("distribution"), json::value("4"));
}

TEST_F(MispSimCaptureTest, OnEditARefusedEventGroupIsAnErrorAndARefusedAttributeIsDropped) {
  const std::string uuid = "aaaaaaaa-0006-4000-8000-000000000006";
  std::string body = R"({"Event":{"uuid":")" + uuid +
                     R"(","info":"locked","distribution":"3","locked":true,"timestamp":"100","Attribute":[{"uuid":"bbbbbbbb-0006-4000-8000-000000000001","type":"ip-dst","category":"Network activity","value":"192.0.2.8","timestamp":"100"}]}})";
  ASSERT_EQ(Call(sync_key_, "POST", "/events/add", body).status, 200);
  json::object edit = Stored(uuid);
  edit["timestamp"] = "200";
  std::string outside = GroupJson("outside", {kOrg3}, "", false);
  edit["Attribute"].as_array().push_back(json::object{{"uuid", "bbbbbbbb-0006-4000-8000-000000000002"},
                                                      {"type", "ip-dst"},
                                                      {"category", "Network activity"},
                                                      {"value", "192.0.2.9"},
                                                      {"timestamp", "200"},
                                                      {"distribution", "4"},
                                                      {"SharingGroup", json::parse(outside)}});
  auto r = Call(sync_key_, "POST", "/events/edit/" + uuid, json::serialize(json::object{{"Event", edit}}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Stored(uuid).at("Attribute").as_array().size(), 1u) << "editAttribute drops it";
  edit["timestamp"] = "300";
  edit["Attribute"].as_array().pop_back();
  edit["distribution"] = "4";
  edit["SharingGroup"] = json::parse(outside);
  r = Call(sync_key_, "POST", "/events/edit/" + uuid, json::serialize(json::object{{"Event", edit}}));
  EXPECT_NE(r.body.find("User not authorised to create the associated sharing group"), std::string::npos)
      << r.body;
  EXPECT_EQ(Stored(uuid).at("distribution"), json::value("3"));
}

TEST_F(MispSimTest, SpecCase77_AWrongOrMissingKeyGetsMisps403) {
  for (const std::string& key : {std::string("nope"), std::string()}) {
    auto r = key.empty() ? sgsync::testing::Request(server_->port(), "GET", "/events/index")
                         : Call(key, "GET", "/events/index");
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(Body(r).at("url"), json::value("/events/index"));
    EXPECT_NE(r.body.find("Authentication failed"), std::string::npos);
  }
}

TEST_F(MispSimTest, GetVersionAndUsersViewMeDescribeTheSyncAccount) {
  auto v = Call(sync_key_, "GET", "/servers/getVersion");
  ASSERT_EQ(v.status, 200);
  EXPECT_EQ(Body(v).at("version"), json::value("2.5.1"));
  EXPECT_EQ(Body(v).at("perm_sync"), json::value(true));
  EXPECT_EQ(Body(v).at("request_encoding"), json::parse(R"(["gzip"])"));
  auto me = Call(sync_key_, "GET", "/users/view/me.json");
  ASSERT_EQ(me.status, 200);
  EXPECT_EQ(Body(me).at("Role").at("name"), json::value("Sync user"));
  EXPECT_EQ(Body(me).at("Organisation").at("uuid"), json::value(kOrg1));
  EXPECT_EQ(Body(Call(user_key_, "GET", "/servers/getVersion")).at("perm_sync"), json::value(false));
}

// Org Admin (role 2): MISP's INSTALL/MYSQL.sql flags. It administers and publishes for its org but
// has no perm_sync, so the sync endpoints refuse it as they refuse a normal user.
TEST_F(MispSimTest, AnOrgAdminPublishesForItsOrgButIsRefusedTheSyncEndpoints) {
  std::string org_admin = *sim_->AddUser("orgadmin@org2.test", kOrg2, Role::kOrgAdmin);
  json::value me = Body(Call(org_admin, "GET", "/users/view/me"));
  EXPECT_EQ(me.at("Role").at("id"), json::value("2"));
  EXPECT_EQ(me.at("Role").at("name"), json::value("Org Admin"));
  EXPECT_EQ(me.at("Role").at("perm_admin"), json::value(true));
  EXPECT_EQ(me.at("Role").at("perm_site_admin"), json::value(false));
  EXPECT_EQ(me.at("Role").at("perm_sync"), json::value(false));
  EXPECT_EQ(me.at("Role").at("perm_publish"), json::value(true));
  EXPECT_EQ(me.at("User").at("role_id"), json::value("2"));
  json::value version = Body(Call(org_admin, "GET", "/servers/getVersion"));
  EXPECT_EQ(version.at("perm_sync"), json::value(false));
  EXPECT_EQ(version.at("perm_galaxy_editor"), json::value(false));
  auto filter = Call(org_admin, "POST", "/events/filterEventIdsForPush", "[]");
  EXPECT_EQ(filter.status, 403);
  EXPECT_EQ(Body(filter).at("message"), json::value("You do not have permission to use this functionality."));
  // perm_publish: its published add stays published; a normal user's does not (spec case 65).
  const std::string body =
      R"({"Event":{"info":"by role","distribution":"1","published":true,"Attribute":[{"type":"ip-dst","category":"Network activity","value":"198.51.100.9"}]}})";
  auto by_admin = Call(org_admin, "POST", "/events/add", body);
  ASSERT_EQ(by_admin.status, 200) << by_admin.body;
  EXPECT_EQ(Body(by_admin).at("Event").at("published"), json::value(true));
  auto by_user = Call(user_key_, "POST", "/events/add", body);
  ASSERT_EQ(by_user.status, 200) << by_user.body;
  EXPECT_EQ(Body(by_user).at("Event").at("published"), json::value(false));
  // Not a site admin: ORG1's distribution-0 event stays hidden from ORG2's org admin.
  auto hidden = Call(
      sync_key_, "POST", "/events/add",
      R"({"Event":{"info":"org1 only","distribution":"0","published":true,"Orgc":{"uuid":")" +
          std::string(kOrg1) +
          R"(","name":"ORG1"},"Attribute":[{"type":"ip-dst","category":"Network activity","value":"198.51.100.10"}]}})");
  ASSERT_EQ(hidden.status, 200) << hidden.body;
  std::string hidden_uuid(Body(hidden).at("Event").at("uuid").as_string());
  EXPECT_EQ(Call(org_admin, "GET", "/events/view/" + hidden_uuid).status, 404);
  EXPECT_EQ(Call(kAdminKey, "GET", "/events/view/" + hidden_uuid).status, 200);
}

// spec 8.1 (trace-push-pull.jsonl seq 12-18): sightings/add alone leaves the event's
// sighting_timestamp; publishSightings and a received bulkSaveSightings set it to the time of the save.
TEST_F(MispSimTest, OnlyPublishingOrReceivingSightingsMovesTheEventsSightingTimestamp) {
  std::string uuid = CreateEvent(3, {5});
  auto sighting_timestamp = [&] {
    json::value index = Body(Call(kAdminKey, "POST", "/events/index", R"({"minimal":1})"));
    for (const auto& row : index.as_array())
      if (row.at("uuid") == json::value(uuid))
        return static_cast<std::int64_t>(std::stoll(std::string(row.at("sighting_timestamp").as_string())));
    return std::int64_t{-1};
  };
  std::string attribute(FirstAttributeUuid(uuid));
  auto add =
      Call(kAdminKey, "POST", "/sightings/add/" + attribute, R"({"source":"sensor","date_sighting":"1000"})");
  ASSERT_EQ(add.status, 200) << add.body;
  EXPECT_EQ(sighting_timestamp(), 0) << "an added sighting is not published yet";
  const auto before = static_cast<std::int64_t>(std::time(nullptr));
  auto id = Body(Call(kAdminKey, "GET", "/events/view/" + uuid)).at("Event").at("id");
  ASSERT_EQ(Call(kAdminKey, "POST", "/events/publishSightings/" + std::string(id.as_string())).status, 200);
  EXPECT_GE(sighting_timestamp(), before) << "publishing dates it to now, not to the sighting's date";
  // Received through bulkSaveSightings (the sync account's push): moves to the time of the save.
  std::string other = CreateEvent(3, {5});
  std::string other_attribute(FirstAttributeUuid(other));
  uuid = other;
  auto bulk = Call(sync_key_, "POST", "/sightings/bulkSaveSightings/" + other,
                   R"([{"uuid":"5f0a7b2e-0c1d-4e2f-8a9b-0c1d2e3f4a5b","attribute_uuid":")" + other_attribute +
                       R"(","date_sighting":"1000","type":"0","source":"s","org_id":"0"}])");
  ASSERT_EQ(bulk.status, 200) << bulk.body;
  EXPECT_GE(sighting_timestamp(), before);
}

// events/restSearch narrows its rows with SQL on the stored uuid, published and timestamp columns
// (a bulk fetch once parsed every stored event): the answer is still the named events in id order,
// whatever the order of the list, with the other filters applied.
TEST_F(MispSimTest, EventsRestSearchAnswersTheNamedUuidsInIdOrderWithItsOtherFilters) {
  const std::string a = CreateEvent(1, {5});
  const std::string b = CreateEvent(1, {5}, "", /*published=*/false);
  const std::string c = CreateEvent(1, {5});
  (void)CreateEvent(1, {5});
  auto search = [&](const std::string& filter) {
    auto r = Call(kAdminKey, "POST", "/events/restSearch", filter);
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::string> found;
    const json::value body = Body(r);
    for (const auto& e : body.at("response").as_array())
      found.emplace_back(e.at("Event").at("uuid").as_string());
    return found;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(search(R"({"uuid":[")" + c + R"(",")" + a + R"(","00000000-0000-4000-8000-000000000000"]})"), (V{a, c}));
  EXPECT_EQ(search(R"({"uuid":")" + b + R"("})"), (V{b}));
  EXPECT_EQ(search(R"({"uuid":[")" + a + R"(",")" + b + R"(",")" + c + R"("],"published":true})"), (V{a, c}));
  EXPECT_EQ(search(R"({"uuid":[")" + a + R"(",")" + b + R"("],"published":false})"), (V{b}));
  EXPECT_EQ(search(R"({"uuid":[")" + a + R"(",")" + b + R"("],"timestamp":100})"), (V{a, b}));
  EXPECT_EQ(search(R"({"uuid":[")" + a + R"(",")" + b + R"("],"timestamp":101})"), V{});
  EXPECT_EQ(search(R"({"published":false})"), (V{b}));
  EXPECT_EQ(search(R"({"uuid":[]})").size(), 4u) << "an empty list names no filter, as before";
}

// Sighting policy 0 in sightings/restSearch has no site-admin exemption (MISP 2.5.1
// Sighting::filterSightingsByAttributeACL): on the Portal, an event pushed by ORG1's sync account is
// owned by ORG1, so ORG1's sighting on it is answered to ORG1 and not to the Portal's site admin of
// ORG2, who still sees it in the event's view (Sighting::createConditions exempts site admins).
TEST_F(MispSimTest, SightingsRestSearchHidesAnotherOrgsSightingFromASiteAdminOfAnotherOrgButTheViewShowsIt) {
  auto added = Call(sync_key_, "POST", "/events/add",
                    R"({"Event":{"uuid":"7c1e2d3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f","info":"pushed by ORG1",)"
                    R"("distribution":"1","published":true,"timestamp":"100","Orgc":{"uuid":")" +
                        std::string(kOrg1) + R"(","name":"ORG1"},"Attribute":[{"type":"ip-dst","category":"Network activity",)"
                    R"("value":"198.51.100.7","distribution":"5","timestamp":"100",)"
                    R"("uuid":"7c1e2d3f-4a5b-4c6d-8e7f-0a1b2c3d4e60"}]}})");
  ASSERT_EQ(added.status, 200) << added.body;
  const std::string event = "7c1e2d3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f";
  auto saved = Call(sync_key_, "POST", "/sightings/bulkSaveSightings/" + event,
                    R"([{"uuid":"7c1e2d3f-4a5b-4c6d-8e7f-0a1b2c3d4e61","attribute_uuid":)"
                    R"("7c1e2d3f-4a5b-4c6d-8e7f-0a1b2c3d4e60","date_sighting":"1000","type":"0","source":"s",)"
                    R"("Organisation":{"uuid":")" + std::string(kOrg1) + R"(","name":"ORG1"}}])");
  ASSERT_EQ(saved.status, 200) << saved.body;
  auto found = [&](const std::string& key) {
    json::value r = Body(Call(key, "POST", "/sightings/restSearch/event",
                              R"({"returnFormat":"json","last":0,"uuid":[")" + event + R"("]})"));
    return r.at("response").as_array().size();
  };
  EXPECT_EQ(found(sync_key_), 1u) << "ORG1 owns the event";
  EXPECT_EQ(found(kAdminKey), 0u) << "the site admin of ORG2 gets no exemption in restSearch";
  json::value view = Body(Call(kAdminKey, "GET", "/events/view/" + event));
  const json::value& attribute = view.at("Event").at("Attribute").at(0);
  ASSERT_TRUE(attribute.as_object().contains("Sighting")) << view;
  EXPECT_EQ(attribute.at("Sighting").as_array().size(), 1u) << "a view exempts site admins";
}

TEST_F(MispSimTest, SpecCase71_AKnownSightingIsSkippedAndANewExpirationReplacesTheOrgsEarlierOne) {
  std::string uuid = CreateEvent(3, {5});
  std::string attribute(FirstAttributeUuid(uuid));
  auto row = [&](const std::string& sighting, const std::string& type) {
    return R"({"uuid":")" + sighting + R"(","attribute_uuid":")" + attribute +
           R"(","date_sighting":"1000","type":)" + type + R"(,"source":"s"})";
  };
  const std::string first = "00000000-0000-4000-8000-000000000071",
                    second = "00000000-0000-4000-8000-000000000072",
                    seen = "00000000-0000-4000-8000-000000000073";
  auto save = [&](const std::string& rows) {
    auto r = Call(sync_key_, "POST", "/sightings/bulkSaveSightings/" + uuid, "[" + rows + "]");
    EXPECT_EQ(r.status, 200) << r.body;
    return std::string(Body(r).at("success").as_string());
  };
  EXPECT_EQ(save(row(first, R"("2")") + "," + row(seen, R"("0")")), "2 sightings added.");
  EXPECT_EQ(save(row(seen, R"("0")")), "No sightings added.") << "a uuid already stored is skipped";
  EXPECT_EQ(save(row(second, R"("2")")), "1 sightings added.");
  auto uuids = [&] {
    json::value r =
        Body(Call(kAdminKey, "POST", "/sightings/restSearch/event",
                  R"({"returnFormat":"json","last":0,"includeUuid":true,"uuid":[")" + uuid + R"("]})"));
    std::set<std::string> out;
    for (const auto& s : r.at("response").as_array()) out.emplace(s.at("Sighting").at("uuid").as_string());
    return out;
  };
  EXPECT_EQ(uuids(), (std::set<std::string>{second, seen})) << "the earlier expiration of ORG1 is gone";
  // MISP compares the type with the string "2": a number 2 adds without replacing.
  const std::string third = "00000000-0000-4000-8000-000000000074";
  EXPECT_EQ(save(row(third, "2")), "1 sightings added.");
  EXPECT_EQ(uuids(), (std::set<std::string>{second, seen, third}));
}

// What sgsync sees of a receiver's publish cascade (spec case 66): the Portal pushing the event back
// to the sender, whose copy has the same timestamp, is answered "not newer" and changes nothing.
TEST_F(MispSimTest, SpecCase66_TheCascadeBackToTheSenderIsAnsweredNotNewer) {
  std::string uuid = CreateEvent(3, {5});
  json::object e = Body(Call(kAdminKey, "GET", "/events/view/" + uuid)).at("Event").as_object();
  auto echo = Call(sync_key_, "POST", "/events/edit/" + uuid, json::serialize(json::object{{"Event", e}}));
  EXPECT_EQ(echo.status, 403) << echo.body;
  EXPECT_NE(echo.body.find("not newer than the local copy"), std::string::npos) << echo.body;
  EXPECT_EQ(Body(Call(kAdminKey, "GET", "/events/view/" + uuid)).at("Event").at("timestamp"),
            e.at("timestamp"));
}

TEST_F(MispSimTest, TheSyncUserSeesWhatItsOrgMaySee) {
  std::string e0 = CreateEvent(0, {5});
  std::string e1 = CreateEvent(1, {0, 1, 2, 3, 5});
  for (const auto& [uuid, visible] : {std::pair{e0, false}, std::pair{e1, true}}) {
    auto r = Call(sync_key_, "GET", "/events/view/" + uuid);
    EXPECT_EQ(r.status, visible ? 200 : 404) << uuid;
    auto head = Call(sync_key_, "HEAD", "/events/view/" + uuid);
    EXPECT_EQ(head.status, visible ? 200 : 404);
  }
  auto view = Body(Call(sync_key_, "GET", "/events/view/" + e1));
  std::vector<std::string> dists;
  for (const auto& a : view.at("Event").at("Attribute").as_array())
    dists.emplace_back(a.at("distribution").as_string());
  EXPECT_EQ(dists, (std::vector<std::string>{"1", "2", "3", "5"}))
      << "the distribution-0 attribute is hidden";
  // The owner org (ORG2's admin) sees everything.
  EXPECT_EQ(Body(Call(kAdminKey, "GET", "/events/view/" + e1)).at("Event").at("Attribute").as_array().size(),
            5u);
  EXPECT_EQ(Body(Call(sync_key_, "GET", "/events/view/" + e0)).at("message"), json::value("Invalid event"));
}

TEST_F(MispSimTest, SharingGroupEventsAreVisibleToMemberOrgsOnly) {
  std::string in_sg =
      sgsync::testing::SharingGroupJson("11111111-1111-4111-8111-111111111111", {kOrg1, kOrg2}, {}, true);
  std::string out_sg =
      sgsync::testing::SharingGroupJson("22222222-2222-4222-8222-222222222222", {kOrg2, kOrg3}, {}, true);
  std::string member = CreateEvent(4, {5}, R"(,"sharing_group_id":"1","SharingGroup":)" + in_sg);
  std::string outsider = CreateEvent(4, {5}, R"(,"sharing_group_id":"2","SharingGroup":)" + out_sg);
  EXPECT_EQ(Call(sync_key_, "GET", "/events/view/" + member).status, 200);
  EXPECT_EQ(Call(sync_key_, "GET", "/events/view/" + outsider).status, 404);
}

TEST_F(MispSimTest, DeletedElementsNeedTheNamedParameterFormAndLocalTagsHideOnRequest) {
  std::string uuid = CreateEvent(
      3, {5, 5},
      R"(,"Tag":[{"name":"own","local":true},{"name":"tlp:green"},{"name":"secret","exportable":false}])");
  auto e = Body(Call(kAdminKey, "GET", "/events/view/" + uuid)).at("Event").as_object();
  // Soft-delete the second attribute by a newer edit.
  json::object edit = e;
  edit["timestamp"] = "200";
  edit["Attribute"].as_array()[1].as_object()["deleted"] = true;
  edit["Attribute"].as_array()[1].as_object()["timestamp"] = "200";
  ASSERT_EQ(
      Call(kAdminKey, "POST", "/events/edit/" + uuid, json::serialize(json::object{{"Event", edit}})).status,
      200);
  auto plain = Body(Call(sync_key_, "GET", "/events/view/" + uuid)).at("Event");
  EXPECT_EQ(plain.at("Attribute").as_array().size(), 1u);
  auto query = Body(Call(sync_key_, "GET", "/events/view/" + uuid + "?deleted[]=0&deleted[]=1")).at("Event");
  EXPECT_EQ(query.at("Attribute").as_array().size(), 1u) << "the query-string form is ignored";
  auto pull =
      Body(Call(sync_key_, "GET",
                "/events/view/" + uuid + "/deleted[]:0/deleted[]:1/excludeGalaxy:1/excludeLocalTags:1"))
          .at("Event");
  EXPECT_EQ(pull.at("Attribute").as_array().size(), 2u);
  std::vector<std::string> tags;
  for (const auto& t : pull.at("Tag").as_array()) tags.emplace_back(t.at("name").as_string());
  EXPECT_EQ(tags, std::vector<std::string>{"tlp:green"}) << "no local tag, never a non-exportable one";
  std::vector<std::string> plain_tags;
  for (const auto& t : plain.at("Tag").as_array()) plain_tags.emplace_back(t.at("name").as_string());
  EXPECT_EQ(plain_tags, (std::vector<std::string>{"own", "tlp:green"}))
      << "a plain view shows the owner's local tag";
}

// Real MISP 2.5.1 answered the same four ways on this machine (docs/misp-sim.md, "Events").
TEST_F(MispSimTest, RestSearchLeavesLocalTagsOutForASyncUserUnlessExcludeLocalTagsSaysOtherwise) {
  std::string uuid = CreateEvent(3, {5}, R"(,"Tag":[{"name":"own","local":true},{"name":"tlp:green"}])");
  auto tags_for = [&](const std::string& key, const std::string& extra) {
    auto r = Call(key, "POST", "/events/restSearch",
                  R"({"returnFormat":"json","uuid":")" + uuid + R"(","deleted":[0,1])" + extra + "}");
    const json::value body = Body(r);
    std::vector<std::string> names;
    for (const auto& t : body.at("response").at(0).at("Event").at("Tag").as_array())
      names.emplace_back(t.at("name").as_string());
    return names;
  };
  const std::vector<std::string> with_local{"own", "tlp:green"}, without{"tlp:green"};
  EXPECT_EQ(tags_for(sync_key_, ""), without) << "a sync user's default";
  EXPECT_EQ(tags_for(sync_key_, R"(,"excludeLocalTags":0)"), with_local);
  EXPECT_EQ(tags_for(sync_key_, R"(,"excludeLocalTags":false)"), with_local);
  EXPECT_EQ(tags_for(kAdminKey, ""), with_local) << "a site admin's default";
  EXPECT_EQ(tags_for(kAdminKey, R"(,"excludeLocalTags":1)"), without);
}

TEST_F(MispSimTest, TheSyncUsersAddKeepsOrgcLocksAndAnswers404WithLocationTheSecondTime) {
  std::string body =
      std::string(
          R"({"Event":{"uuid":"cd07b242-d9e7-4ff6-a8d9-dbc3d4ec8c9d","info":"pushed","distribution":"1","published":true,"timestamp":"1795807637","locked":true,"Orgc":{"uuid":")") +
      kOrg3 +
      R"(","name":"ORG3"},"Attribute":[{"type":"ip-dst","category":"Network activity","value":"192.0.2.1","distribution":"5","timestamp":"1795807637"}]}})";
  auto r = Call(sync_key_, "POST", "/events/add/metadata:1", body);
  ASSERT_EQ(r.status, 200) << r.body;
  auto e = Body(r).at("Event");
  EXPECT_EQ(e.at("Orgc").at("uuid"), json::value(kOrg3));
  EXPECT_EQ(e.at("Org").at("uuid"), json::value(kOrg1));
  EXPECT_EQ(e.at("locked"), json::value(true));
  EXPECT_EQ(e.at("timestamp"), json::value("1795807637"));
  EXPECT_FALSE(e.as_object().contains("Attribute")) << "metadata:1 answers without attributes";
  auto again = Call(sync_key_, "POST", "/events/add/metadata:1", body);
  EXPECT_EQ(again.status, 404);
  EXPECT_EQ(again.headers["location"], base_ + "/events/" + std::string(e.at("id").as_string()));
  EXPECT_NE(again.body.find("Event already exists"), std::string::npos);
}

TEST_F(MispSimTest, ANormalUsersOrgcIsSilentlyReplacedByItsOwnOrg) {
  std::string body =
      std::string(R"({"Event":{"info":"x","distribution":"1","Orgc":{"uuid":")") + kOrg3 +
      R"(","name":"ORG3"},"Attribute":[{"type":"ip-dst","category":"Network activity","value":"192.0.2.1"}]}})";
  auto r = Call(user_key_, "POST", "/events/add", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r).at("Event").at("Orgc").at("uuid"), json::value(kOrg2));
}

TEST_F(MispSimTest, SpecCase34And55_EditsWinOnlyWhenStrictlyNewerAndMergeElementByElement) {
  std::string uuid = CreateEvent(3, {5, 5});
  auto stored = Body(Call(kAdminKey, "GET", "/events/view/" + uuid)).at("Event").as_object();
  for (const char* ts : {"100", "50"}) {
    json::object same = stored;
    same["timestamp"] = ts;
    auto r = Call(kAdminKey, "POST", "/events/edit/" + uuid + "/metadata:1",
                  json::serialize(json::object{{"Event", same}}));
    EXPECT_EQ(r.status, 403) << ts;
    EXPECT_EQ(Body(r).at("errors"),
              json::value("Event could not be saved: Event in the request not newer than the local copy."));
  }
  json::object edit = stored;
  edit["timestamp"] = "300";
  edit["info"] = "edited";
  auto& attrs = edit["Attribute"].as_array();
  attrs[0].as_object()["value"] = "203.0.113.9";  // same timestamp: ignored
  attrs[1].as_object()["value"] = "203.0.113.10";
  attrs[1].as_object()["timestamp"] = "300";  // newer: applied
  attrs.push_back(json::object{{"uuid", "33333333-3333-4333-8333-333333333333"},
                               {"type", "domain"},
                               {"category", "Network activity"},
                               {"value", "new.example"},
                               {"timestamp", "300"},
                               {"distribution", "5"}});
  attrs.erase(attrs.begin());  // absent from the payload: stays
  auto r = Call(kAdminKey, "POST", "/events/edit/" + uuid, json::serialize(json::object{{"Event", edit}}));
  ASSERT_EQ(r.status, 200) << r.body;
  auto after = Body(Call(kAdminKey, "GET", "/events/view/" + uuid)).at("Event");
  EXPECT_EQ(after.at("info"), json::value("edited"));
  std::vector<std::string> values;
  for (const auto& a : after.at("Attribute").as_array()) values.emplace_back(a.at("value").as_string());
  EXPECT_EQ(values, (std::vector<std::string>{"198.51.100.1", "203.0.113.10", "new.example"}));
  EXPECT_EQ(Call(kAdminKey, "POST", "/events/edit/00000000-0000-4000-8000-0000000000ff",
                 "{\"Event\":{\"info\":\"x\"}}")
                .status,
            404);
}

TEST_F(MispSimTest, SpecCase78_TheMinimalIndexCarriesAnETagAndAnswers304WhenNothingChanged) {
  CreateEvent(3, {5});
  CreateEvent(3, {5}, "", false);
  std::string filter = R"({"minimal":1,"published":1})";
  auto first = Call(sync_key_, "POST", "/events/index", filter, {{"If-None-Match", "\"\""}});
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(Body(first).as_array().size(), 1u) << "only published events";
  EXPECT_EQ(first.headers["x-result-count"], "1");
  std::string etag = first.headers["etag"];
  ASSERT_FALSE(etag.empty());
  auto again = Call(sync_key_, "POST", "/events/index", filter, {{"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(Call(sync_key_, "POST", "/events/index", filter).headers.count("etag"), 0u)
      << "no If-None-Match, no ETag";
  CreateEvent(3, {5});
  EXPECT_EQ(Call(sync_key_, "POST", "/events/index", filter, {{"If-None-Match", etag}}).status, 200);
  auto row = Body(Call(sync_key_, "POST", "/events/index", filter)).as_array()[0].as_object();
  std::vector<std::string> keys;
  for (const auto& kv : row) keys.emplace_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"id", "timestamp", "sighting_timestamp", "published", "uuid",
                                            "orgc_uuid"}));
}

// The index reads each event's meta (its fields without the element lists), written with every save:
// an edit's new info, timestamp and tags are what the next index shows.
TEST_F(MispSimTest, TheIndexShowsAnEditedEventAsItNowIs) {
  const std::string uuid = CreateEvent(3, {5}, R"(,"Tag":[{"name":"tlp:green"}])");
  auto row = [&] {
    const json::value rows = Body(Call(kAdminKey, "POST", "/events/index", "{}"));
    EXPECT_EQ(rows.as_array().size(), 1u);
    return rows.as_array()[0].as_object();
  };
  EXPECT_EQ(row().at("info"), json::value("t"));
  auto edit = Call(kAdminKey, "POST", "/events/edit/" + uuid,
                   R"({"Event":{"info":"edited","timestamp":"200","Tag":[{"name":"tlp:amber"}]}})");
  ASSERT_EQ(edit.status, 200) << edit.body;
  const json::object now = row();
  EXPECT_EQ(now.at("info"), json::value("edited"));
  EXPECT_EQ(now.at("timestamp"), json::value("200"));
  std::vector<std::string> tags;
  for (const auto& t : now.at("EventTag").as_array()) tags.emplace_back(t.at("Tag").at("name").as_string());
  EXPECT_NE(std::find(tags.begin(), tags.end(), "tlp:amber"), tags.end()) << json::serialize(now);
  EXPECT_EQ(now.at("attribute_count"), row().at("attribute_count"));
}

// A request handled in process, as the HTTP server would pass it on.
HttpResponse Send(MispSim& sim, const std::string& method, const std::string& key, const std::string& target,
                  std::string body = "") {
  HttpRequest req;
  req.method = method;
  req.target = target;
  req.headers["authorization"] = key;
  req.body = std::move(body);
  return sim.Handle(req);
}

HttpResponse Post(MispSim& sim, const std::string& key, const std::string& target, std::string body) {
  return Send(sim, "POST", key, target, std::move(body));
}

// A file-backed misp-sim (admin key kAdminKey) at `file`.
std::unique_ptr<MispSim> SimOnFile(const std::string& file) {
  auto sim = MispSim::Create(SimConfig{file, "", "ORG2", kOrg2, kAdminKey, "", ""});
  EXPECT_TRUE(sim.ok()) << sim.error().ToString();
  return sim.ok() ? std::move(*sim) : nullptr;
}

// Adds a published event of one attribute as the admin; its uuid, or "" when the add failed.
std::string AddOneEvent(MispSim& sim, const std::string& info) {
  auto r =
      Post(sim, kAdminKey, "/events/add",
           R"({"Event":{"info":")" + info +
               R"(","distribution":"3","published":true,"timestamp":"100",)"
               R"("Attribute":[{"type":"ip-dst","category":"Network activity","value":"198.51.100.1"}]}})");
  EXPECT_EQ(r.status, 200) << r.body;
  if (r.status != 200) return "";
  return std::string(json::parse(r.body).at("Event").at("uuid").as_string());
}

// A misp-sim file made before the meta column: opened again, the column is added, and its rows
// (meta NULL) are listed from their whole event.
TEST(MispSimFileTest, AFileMadeBeforeTheMetaColumnIsStillListed) {
  sgsync::testing::TempDir dir;
  const std::string file = (dir.path() / "sim.db").string();
  std::string uuid;
  {
    auto sim = SimOnFile(file);
    ASSERT_NE(sim, nullptr);
    uuid = AddOneEvent(*sim, "old");
    ASSERT_FALSE(uuid.empty());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE events DROP COLUMN meta", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  // Another admin key: misp-sim adds its admin user each time it opens a file.
  const std::string second_admin(40, 'c');
  auto sim = MispSim::Create(SimConfig{file, "", "ORG2", kOrg2, second_admin, "", ""});
  ASSERT_TRUE(sim.ok()) << sim.error().ToString();
  auto r = Post(**sim, second_admin, "/events/index", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value rows = json::parse(r.body);
  ASSERT_EQ(rows.as_array().size(), 1u) << r.body;
  EXPECT_EQ(rows.as_array()[0].at("uuid"), json::value(uuid));
  EXPECT_EQ(rows.as_array()[0].at("info"), json::value("old"));
}

// misp-sim finds an event by uuid whatever its case (FindEvent: `uuid = ? COLLATE NOCASE`). The
// UNIQUE index on the column is binary and cannot serve that: each view, edit and add scanned the
// table, and a push of 100 000 events slowed to a crawl. SQLite must plan the lookup on an index.
TEST(MispSimFileTest, AnEventIsFoundByItsUuidInAnyCaseThroughAnIndex) {
  sgsync::testing::TempDir dir;
  const std::string file = (dir.path() / "sim.db").string();
  {
    auto sim = SimOnFile(file);
    ASSERT_NE(sim, nullptr);
    std::string upper = AddOneEvent(*sim, "e");
    ASSERT_FALSE(upper.empty());
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(Send(*sim, "GET", kAdminKey, "/events/view/" + upper).status, 200) << "found in upper case";
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* plan = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(
                db, "EXPLAIN QUERY PLAN SELECT id, org_id, json FROM events WHERE uuid = ? COLLATE NOCASE",
                -1, &plan, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  std::string detail;
  while (sqlite3_step(plan) == SQLITE_ROW)
    detail += reinterpret_cast<const char*>(sqlite3_column_text(plan, 3));
  sqlite3_finalize(plan);
  sqlite3_close(db);
  EXPECT_NE(detail.find("USING INDEX"), std::string::npos) << detail;
}

TEST_F(MispSimTest, TheIndexFiltersOnEventTagsAndCreatorOrgsAndSorts) {
  std::string green = CreateEvent(3, {5}, R"(,"Tag":[{"name":"tlp:green"}])");
  std::string red = CreateEvent(3, {5}, R"(,"Tag":[{"name":"tlp:red"}])");
  std::string attr_only = CreateEvent(3, {5});
  auto uuids = [&](const std::string& filter) {
    std::vector<std::string> out;
    json::value rows = Body(Call(sync_key_, "POST", "/events/index", filter));
    for (const auto& row : rows.as_array()) {
      out.emplace_back(row.at("uuid").as_string());
    }
    return out;
  };
  EXPECT_EQ(uuids(R"({"minimal":1,"tag":["tlp:green","!tlp:red"]})"), std::vector<std::string>{green});
  EXPECT_EQ(uuids(R"({"minimal":1,"tag":["!tlp:red"]})"), (std::vector<std::string>{green, attr_only}));
  EXPECT_TRUE(uuids(R"({"minimal":1,"tag":["no-such-tag"]})").empty());
  EXPECT_EQ(uuids(R"({"minimal":1,"org":["ORG2"]})").size(), 3u) << "by creator org name";
  EXPECT_TRUE(uuids(std::string(R"({"minimal":1,"org":["!)") + kOrg2 + R"("]})").empty())
      << "by uuid, negated";
  EXPECT_EQ(uuids(R"({"minimal":1,"org":"ORG3|ORG2"})").size(), 3u) << "the old pipe-joined form";
  auto sorted = uuids(R"({"minimal":1,"sort":"id","direction":"desc"})");
  EXPECT_EQ(sorted, (std::vector<std::string>{attr_only, red, green}));
}

// Case 43 is the same test seen from a pulling MISP (an index row against the local copy's timestamp
// and lock); sgsync's pull asks the member MISP's filterEventIdsForPush, so this pins both.
TEST_F(MispSimTest, SpecCase32And43_FilterEventIdsForPushReturnsUnknownAndNewerLockedEventsOnce) {
  std::string pushed =
      R"({"Event":{"uuid":"cd07b242-d9e7-4ff6-a8d9-dbc3d4ec8c9d","info":"p","distribution":"1","published":true,"timestamp":"100","locked":true,"Attribute":[{"type":"ip-dst","category":"Network activity","value":"192.0.2.1"}]}})";
  ASSERT_EQ(Call(sync_key_, "POST", "/events/add/metadata:1", pushed).status, 200);
  std::string local = CreateEvent(3, {5});  // not locked: never offered for overwrite
  std::string offer =
      std::string(R"([{"Event":{"uuid":"cd07b242-d9e7-4ff6-a8d9-dbc3d4ec8c9d","timestamp":"100"}},)") +
      R"({"Event":{"uuid":"cd07b242-d9e7-4ff6-a8d9-dbc3d4ec8c9d","timestamp":"101"}},{"Event":{"uuid":")" +
      local +
      R"(","timestamp":"999"}},{"Event":{"uuid":"00000000-0000-4000-8000-000000000001","timestamp":"1"}}])";
  auto r = Call(sync_key_, "POST", "/events/filterEventIdsForPush", offer);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(
      Body(r),
      json::parse(R"(["cd07b242-d9e7-4ff6-a8d9-dbc3d4ec8c9d","00000000-0000-4000-8000-000000000001"])"));
  EXPECT_EQ(Call(user_key_, "POST", "/events/filterEventIdsForPush", offer).status, 403);
  EXPECT_EQ(Call(sync_key_, "GET", "/events/filterEventIdsForPush").status, 405);
}

TEST_F(MispSimTest, GzipBodiesAreAcceptedAndMalformedJsonIs405) {
  std::string body =
      R"({"Event":{"info":"gz","distribution":"3","Attribute":[{"type":"ip-dst","category":"Network activity","value":"192.0.2.7"}]}})";
  auto r = Call(sync_key_, "POST", "/events/add", sgsync::GzipCompress(body), {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(r.status, 200) << r.body;
  auto bad = Call(sync_key_, "POST", "/events/add/metadata:1", R"({"Event": {"info": "broken", )");
  EXPECT_EQ(bad.status, 405);
  EXPECT_NE(bad.body.find("Invalid JSON input"), std::string::npos);
  EXPECT_EQ(Call(sync_key_, "POST", "/events/add/metadata:1", "{}").status, 405);
  EXPECT_EQ(Call(sync_key_, "GET", "/events/doesNotExist").status, 403);
}

TEST_F(MispSimTest, DeletingAnEventBlocklistsItsUuid) {
  std::string uuid = CreateEvent(3, {5});
  auto view = Body(Call(kAdminKey, "GET", "/events/view/" + uuid));
  std::string id(view.at("Event").at("id").as_string());
  ASSERT_EQ(Call(kAdminKey, "POST", "/events/delete/" + id).status, 200);
  std::string again =
      R"({"Event":{"uuid":")" + uuid +
      R"(","info":"back","distribution":"3","Attribute":[{"type":"ip-dst","category":"Network activity","value":"192.0.2.1"}]}})";
  auto r = Call(sync_key_, "POST", "/events/add/metadata:1", again);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Body(r).at("message"), json::value("Event blocked by event blocklist."));
}

TEST_F(MispSimTest, APublishedEventWithNothingInItIsRefused) {
  auto r = Call(sync_key_, "POST", "/events/add/metadata:1",
                R"({"Event":{"info":"empty","distribution":"3","published":true}})");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Body(r).at("errors"), json::value("Received a published event that was empty"));
}

TEST_F(MispSimTest, AGroupNotListingThisInstanceIsStoredAtDistribution0OnAdd) {
  // The sync user's org is a member but the group names another server only (spec 4.5).
  std::string sg = sgsync::testing::SharingGroupJson("44444444-4444-4444-8444-444444444444", {kOrg1, kOrg2},
                                                     {{"https://elsewhere.example", false}}, false);
  std::string body =
      R"({"Event":{"info":"sg","distribution":"3","published":true,"Attribute":[{"type":"ip-dst","category":"Network activity","value":"192.0.2.1","distribution":"4","sharing_group_id":"9","SharingGroup":)" +
      sg + "}]}}";
  auto r = Call(sync_key_, "POST", "/events/add", body);
  ASSERT_EQ(r.status, 200) << r.body;
  auto a = Body(r).at("Event").at("Attribute").as_array()[0];
  EXPECT_EQ(a.at("distribution"), json::value("0"));
}

TEST_F(MispSimTest, SharingGroupsAddedOverRestDoNotIncludeTheirCreatorUntilAddOrg) {
  auto add = Call(kAdminKey, "POST", "/sharing_groups/add",
                  R"({"name":"new group","releasability":"r","active":true})");
  ASSERT_EQ(add.status, 200) << add.body;
  auto group = Body(add);
  EXPECT_TRUE(group.at("SharingGroupOrg").as_array().empty()) << "spec 4.1: the creator org is not added";
  ASSERT_EQ(group.at("SharingGroupServer").as_array().size(), 1u);
  std::string id(group.at("SharingGroup").at("id").as_string());
  EXPECT_EQ(Call(sync_key_, "GET", "/sharing_groups/view/" + id).status, 405) << "ORG1 is not a member yet";
  auto org = Call(kAdminKey, "POST", "/sharing_groups/addOrg/" + id + "/" + kOrg1);
  ASSERT_EQ(org.status, 200) << org.body;
  EXPECT_EQ(Body(org).at("message"), json::value("Organisation added to the sharing group."));
  EXPECT_EQ(Call(sync_key_, "GET", "/sharing_groups/view/" + id).status, 200);
  auto srv_id = sim_->AddServer("https://portal.example", "portal");
  auto srv = Call(kAdminKey, "POST", "/sharing_groups/addServer/" + id + "/" + std::to_string(*srv_id));
  ASSERT_EQ(srv.status, 200) << srv.body;
  auto view = Body(Call(kAdminKey, "GET", "/sharing_groups/view/" + id));
  EXPECT_EQ(view.at("SharingGroupServer").as_array().size(), 2u);
  EXPECT_EQ(Call(user_key_, "POST", "/sharing_groups/add", R"({"name":"x"})").status, 403)
      << "needs perm_sharing_group";
}

// ---- control routes and fault injection

TEST_F(MispSimTest, ControlRoutesNeedTheirOwnToken) {
  EXPECT_EQ(sgsync::testing::Request(server_->port(), "POST", "/_sim/reset").status, 403);
  EXPECT_EQ(Call(kAdminKey, "POST", "/_sim/reset").status, 403) << "the admin key is not the control token";
  EXPECT_EQ(sgsync::testing::Request(server_->port(), "POST", "/_sim/reset", "", {{"X-Sim-Token", kControl}})
                .status,
            200);
}

TEST_F(MispSimTest, SeedingIsDeterministicAndResetEmptiesTheInstance) {
  auto seed = [&] {
    return Body(sgsync::testing::Request(server_->port(), "POST", "/_sim/seed",
                                         R"({"events": 3, "attributes": 20, "objects": 2, "seed": 7})",
                                         {{"X-Sim-Token", kControl}}));
  };
  json::value first = seed();
  ASSERT_EQ(first.at("uuids").as_array().size(), 3u);
  auto view = Body(
      Call(sync_key_, "GET", "/events/view/" + std::string(first.at("uuids").as_array()[0].as_string())));
  EXPECT_EQ(view.at("Event").at("Object").as_array().size(), 2u);
  ASSERT_EQ(sgsync::testing::Request(server_->port(), "POST", "/_sim/reset", "", {{"X-Sim-Token", kControl}})
                .status,
            200);
  EXPECT_TRUE(Body(Call(sync_key_, "POST", "/events/index", R"({"minimal":1})")).as_array().empty());
  EXPECT_EQ(seed().at("uuids"), first.at("uuids")) << "the same seed gives the same events";
}

TEST_F(MispSimTest, FixtureDocumentsLoadThroughTheControlRoute) {
  std::string doc =
      sgsync::testing::ReadFile(sgsync::testing::DataDir() / "fixtures/misp/events/pymisp/sighting_2.json");
  auto r = sgsync::testing::Request(server_->port(), "POST", "/_sim/load", doc, {{"X-Sim-Token", kControl}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::string uuid(json::parse(doc).at("Event").at("uuid").as_string());
  EXPECT_EQ(Call(kAdminKey, "GET", "/events/view/" + uuid).status, 200);
}

TEST_F(MispSimTest, TheRequestLogKeepsRequestsButNeverTheKey) {
  Call(sync_key_, "POST", "/events/index", R"({"minimal":1})", {{"If-None-Match", "\"\""}});
  auto log = sim_->RequestLog();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].target, "/events/index");
  EXPECT_EQ(log[0].headers.at("authorization"), "REDACTED");
  EXPECT_EQ(log[0].headers.at("if-none-match"), "\"\"");
  EXPECT_EQ(log[0].body, R"({"minimal":1})");
  auto http_log =
      sgsync::testing::Request(server_->port(), "GET", "/_sim/requests", "", {{"X-Sim-Token", kControl}});
  EXPECT_EQ(http_log.body.find(sync_key_), std::string::npos);
}

TEST_F(MispSimTest, ErrorRateFaultsAnswerWithTheConfiguredStatusForTheirRouteOnly) {
  Fault f;
  f.route = "/servers/getVersion";
  f.error_rate = 1.0;
  f.error_status = 502;
  f.remaining = 2;
  sim_->AddFault(f);
  EXPECT_EQ(Call(sync_key_, "GET", "/servers/getVersion").status, 502);
  EXPECT_EQ(Call(sync_key_, "GET", "/users/view/me").status, 200) << "other routes are untouched";
  EXPECT_EQ(Call(sync_key_, "GET", "/servers/getVersion").status, 502);
  EXPECT_EQ(Call(sync_key_, "GET", "/servers/getVersion").status, 200) << "the fault was for two requests";
}

TEST_F(MispSimTest, A429FaultCarriesRetryAfter) {
  ASSERT_EQ(
      sgsync::testing::Request(
          server_->port(), "POST", "/_sim/faults",
          R"({"route": "/events/index", "error_rate": 1, "error_status": 429, "retry_after": 3, "count": 1})",
          {{"X-Sim-Token", kControl}})
          .status,
      200);
  auto r = Call(sync_key_, "POST", "/events/index", "{}");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers["retry-after"], "3");
}

TEST_F(MispSimTest, LatencyFaultsDelayTheAnswer) {
  Fault f;
  f.route = "/servers/getVersion";
  f.latency_ms = 150;
  f.remaining = 1;
  sim_->AddFault(f);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Call(sync_key_, "GET", "/servers/getVersion").status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(150));
}

TEST_F(MispSimTest, ResetAndTruncationFaultsBreakTheBodyOnTheWire) {
  for (int mode = 0; mode < 2; ++mode) {
    Fault f;
    f.route = "/servers/getVersion";
    f.remaining = 1;
    if (mode == 0) {
      f.reset_after_bytes = 10;
    } else {
      f.truncate_body = true;
    }
    sim_->AddFault(f);
    EXPECT_ANY_THROW(Call(sync_key_, "GET", "/servers/getVersion"))
        << "mode " << mode << ": a short body is a read error";
  }
  EXPECT_EQ(Call(sync_key_, "GET", "/servers/getVersion").status, 200);
}

TEST_F(MispSimTest, AStallFaultHoldsTheAnswer) {
  Fault f;
  f.route = "/events/index";
  f.stall_ms = 300;
  f.remaining = 1;
  sim_->AddFault(f);
  auto start = std::chrono::steady_clock::now();
  Call(sync_key_, "POST", "/events/index", "{}");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
}

}  // namespace
}  // namespace sgsync::sim
