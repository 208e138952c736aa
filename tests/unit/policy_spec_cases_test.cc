// The test cases of the MISP sync-rules specification's section 12 (docs/sharing-rules.md lists them) that
// the sharing policy decides, one named test each (Case01 ... Case76). Cases about the wire protocol, merging
// on the receiver, sightings, clusters and analyst data are tested with the components that do them
// (docs/sharing-rules.md, "Where each spec case is tested").
#include <gtest/gtest.h>

#include "misp/api.h"
#include "misp/event.h"
#include "sync/policy/other_data.h"
#include "sync/policy/policy.h"
#include "sync/policy/receiver.h"
#include "sync/policy/sightings.h"
#include "tests/support/policy_fixtures.h"

namespace sgsync::policy {
namespace {

using namespace sgsync::testing;
namespace json = boost::json;

std::string U(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", n);
  return buf;
}

// An attribute; `extra` is spliced into its JSON.
std::string A(int n, int dist, const std::string& extra = "") {
  return R"({"id": ")" + std::to_string(n) + R"(", "uuid": ")" + U(n) +
         R"(", "type": "ip-dst", "category": "Network activity", "value": "192.0.2.)" +
         std::to_string(n % 250) + R"(", "value1": "x", "value2": "", "distribution": ")" +
         std::to_string(dist) + R"(", "timestamp": "100", "deleted": false, "sharing_group_id": "0")" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

std::string Obj(int n, int dist, const std::string& attrs, const std::string& extra = "") {
  return R"({"uuid": ")" + U(n) +
         R"(", "name": "domain-ip", "template_uuid": "43b3b146-77eb-4931-b4cc-b66c60f28734", "distribution": ")" +
         std::to_string(dist) + R"(", "timestamp": "100", "deleted": false, "Attribute": [)" + attrs + "]" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

std::string Rep(int n, int dist, const std::string& extra = "") {
  return R"({"uuid": ")" + U(n) + R"(", "name": "report", "content": "text", "distribution": ")" +
         std::to_string(dist) + R"(", "timestamp": "100", "deleted": false)" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

std::string Tag(const std::string& name, bool local = false, bool exportable = true) {
  return R"({"name": ")" + name + R"(", "local": )" + (local ? "true" : "false") + R"(, "exportable": )" +
         (exportable ? "true" : "false") + "}";
}

json::object Ev(int dist, const std::string& attrs, const std::string& extra = "") {
  std::string text = R"({"uuid": ")" + U(1) + R"(", "info": "case", "published": true, "distribution": ")" +
                     std::to_string(dist) + R"(", "timestamp": "100", "Orgc": {"uuid": ")" + kOrg1 +
                     R"(", "name": "ORG1"}, "Org": {"uuid": ")" + kOrg1 +
                     R"(", "name": "ORG1"}, "org_id": "1", "orgc_id": "1", "Attribute": [)" + attrs + "]" +
                     (extra.empty() ? "" : ", " + extra) + "}";
  auto doc = misp::EventDocument::Parse(text);
  if (!doc.ok()) throw std::runtime_error(doc.error().ToString() + " in " + text);
  return doc->event_json();
}

const std::string kInternal = R"("internal": true, "host_org_id_set": true)";
// INT-PUSH-DIST needs the remote to be this instance's host organisation (spec 2.3).
const std::string kIntServer =
    std::string(R"("internal": true, "host_org_id_set": true, "remote": {"url": ")") + kRemoteUrl +
    R"(", "org": {"uuid": ")" + kOrg1 + R"(", "name": "ORG1"}})";

Decision Push(const json::object& e, const Link& l) { return Evaluate(Direction::kPush, &e, l); }
Decision Pull(const json::object& e, const Link& l) { return Evaluate(Direction::kPull, &e, l); }

std::string Dist(const json::object& o) { return std::string(misp::StringOr(o, "distribution")); }
const json::array& Attrs(const Decision& d) { return d.event->at("Attribute").as_array(); }
const json::object* AttrByUuid(const json::object& e, const std::string& uuid) {
  for (const auto& a : e.at("Attribute").as_array()) {
    if (misp::StringOr(a.as_object(), "uuid") == uuid) return &a.as_object();
  }
  return nullptr;
}
std::vector<std::string> TagNames(const json::object& o) {
  std::vector<std::string> out;
  if (auto* t = o.if_contains("Tag")) {
    for (auto& x : t->as_array()) out.emplace_back(misp::StringOr(x.as_object(), "name"));
  }
  return out;
}
std::string Refusal(const Decision& d) { return d.refusal() ? d.refusal()->rule : ""; }

// ---- Push: selection and event level

TEST(SpecCase, Case01_Dist0EventIsNotPushedToANonInternalServer) {
  auto d = Push(Ev(0, A(2, 5)), MakeLink());
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "push.event.distribution");
  EXPECT_FALSE(d.event.has_value());
}

TEST(SpecCase, Case02_Dist0EventIsSentWithItsDist0AttributesToAnIntServer) {
  auto d = Push(Ev(0, A(2, 0)), MakeLink(kIntServer));
  ASSERT_TRUE(d.send) << Refusal(d);
  EXPECT_EQ(Dist(*d.event), "0");
  EXPECT_EQ(Dist(Attrs(d)[0].as_object()), "0");
}

TEST(SpecCase, Case03_Dist0EventToAnIntServerFollowsThePublishPath) {
  // MISP's manual `full` push never selects level-0 events while its publish path sends them (11.3).
  // sgsync has one path, the publish path: documented in docs/sharing-rules.md (difference D3).
  auto d = Push(Ev(0, A(2, 5)), MakeLink(kIntServer));
  EXPECT_TRUE(d.send);
}

TEST(SpecCase, Case04_Dist1EventIsRefusedByANonInternalServer) {
  auto d = Push(Ev(1, A(2, 5)), MakeLink());
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "push.event.distribution");
  EXPECT_NE(d.refusal()->detail.find("blocks the event from being pushed"), std::string::npos);
}

TEST(SpecCase, Case05_Dist1EventIsSentAs1ToAnIntServer) {
  auto d = Push(Ev(1, A(2, 5)), MakeLink(kIntServer));
  ASSERT_TRUE(d.send);
  EXPECT_EQ(Dist(*d.event), "1");
}

TEST(SpecCase, Case06_Dist2EventAndAttributeBecome1OnANonInternalServer) {
  auto d = Push(Ev(2, A(2, 2)), MakeLink());
  ASSERT_TRUE(d.send);
  EXPECT_EQ(Dist(*d.event), "1");
  EXPECT_EQ(Dist(Attrs(d)[0].as_object()), "1");
}

TEST(SpecCase, Case07_Dist2StaysOnAnIntServer) {
  auto d = Push(Ev(2, A(2, 2)), MakeLink(kIntServer));
  ASSERT_TRUE(d.send);
  EXPECT_EQ(Dist(*d.event), "2");
  EXPECT_EQ(Dist(Attrs(d)[0].as_object()), "2");
}

TEST(SpecCase, Case08_AttributesAt0And1AreRemoved2Becomes1ThreeAndFiveStay) {
  auto d =
      Push(Ev(3, A(10, 0) + "," + A(11, 1) + "," + A(12, 2) + "," + A(13, 3) + "," + A(15, 5)), MakeLink());
  ASSERT_TRUE(d.send);
  EXPECT_EQ(AttrByUuid(*d.event, U(10)), nullptr);
  EXPECT_EQ(AttrByUuid(*d.event, U(11)), nullptr);
  EXPECT_EQ(Dist(*AttrByUuid(*d.event, U(12))), "1");
  EXPECT_EQ(Dist(*AttrByUuid(*d.event, U(13))), "3");
  EXPECT_EQ(Dist(*AttrByUuid(*d.event, U(15))), "5");
  int removed = 0;
  for (const auto& r : d.reasons) removed += r.action == "remove" && r.rule == "push.attribute.distribution";
  EXPECT_EQ(removed, 2);
}

TEST(SpecCase, Case09_UnpublishedEventIsNotSelected) {
  auto e = Ev(3, A(2, 5));
  e["published"] = false;
  auto d = Push(e, MakeLink());
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "push.select.published");
}

TEST(SpecCase, Case10_UnpublishEventServerSendsPublished0AndLocked1) {
  auto d = Push(Ev(3, A(2, 5)), MakeLink(R"("unpublish_event": true)"));
  ASSERT_TRUE(d.send);
  EXPECT_EQ(d.event->at("published"), json::value(false));
  EXPECT_EQ(d.event->at("locked"), json::value(true));
}

TEST(SpecCase, Case11_SharingGroupEventIsSentWithTheGroupAndTheAnnouncedOwnRow) {
  std::string sg = SharingGroupJson(U(900), {kOrg1, kOrg2}, {{kRemoteUrl, false}}, false);
  auto e = Ev(4, A(2, 5), R"("sharing_group_id": "5", "SharingGroup": )" + sg);
  auto d = Push(e, MakeLink(R"("settings": {"MISP.external_baseurl": "https://announced.member.example"})"));
  ASSERT_TRUE(d.send) << Refusal(d);
  EXPECT_EQ(Dist(*d.event), "4");
  const auto& rows = d.event->at("SharingGroup").at("SharingGroupServer").as_array();
  EXPECT_EQ(rows[0].at("Server").at("url"), json::value("https://announced.member.example"));
}

TEST(SpecCase, Case12_SharingGroupEventWhoseServerListLacksTheServerIsNotSelected) {
  std::string sg = SharingGroupJson(U(900), {kOrg1, kOrg2}, {}, false);
  auto d = Push(Ev(4, A(2, 5), R"("sharing_group_id": "5", "SharingGroup": )" + sg), MakeLink());
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "push.event.sharing_group");
}

TEST(SpecCase, Case13_RoamingGroupWithTheRemoteOrgIsSent) {
  std::string sg = SharingGroupJson(U(900), {kOrg1, kOrg2}, {}, true);
  auto d = Push(Ev(4, A(2, 5), R"("sharing_group_id": "5", "SharingGroup": )" + sg), MakeLink());
  EXPECT_TRUE(d.send) << Refusal(d);
}

TEST(SpecCase, Case14_RoamingGroupWithoutTheRemoteOrgIsNotSent) {
  std::string sg = SharingGroupJson(U(900), {kOrg1, kOrg3}, {}, true);
  auto d = Push(Ev(4, A(2, 5), R"("sharing_group_id": "5", "SharingGroup": )" + sg), MakeLink());
  EXPECT_FALSE(d.send);
}

TEST(SpecCase, Case15_AllOrgsRowWithoutTheRemoteOrgIsRefusedCleanlyNotWithAServerError) {
  std::string sg = SharingGroupJson(U(900), {kOrg1}, {{kRemoteUrl, true}}, false);
  auto d = Push(Ev(4, A(2, 5), R"("sharing_group_id": "5", "SharingGroup": )" + sg), MakeLink());
  EXPECT_FALSE(d.send);
  ASSERT_NE(d.refusal(), nullptr);
  EXPECT_EQ(d.refusal()->spec, "3.2.3, 11.25");
}

TEST(SpecCase, Case16_AttributeInAGroupWithAnAllOrgsRowForTheServerIsKept) {
  std::string sg = SharingGroupJson(U(900), {kOrg1}, {{kRemoteUrl, true}}, false);
  auto d = Push(Ev(3, A(2, 4, R"("sharing_group_id": "5", "SharingGroup": )" + sg)), MakeLink());
  ASSERT_TRUE(d.send);
  EXPECT_NE(AttrByUuid(*d.event, U(2)), nullptr);
}

TEST(SpecCase, Case17_AttributeInAGroupWithoutTheServerIsRemovedUnlessInternal) {
  std::string sg = SharingGroupJson(U(900), {kOrg1, kOrg2}, {}, false);
  auto e = Ev(3, A(2, 4, R"("sharing_group_id": "5", "SharingGroup": )" + sg) + "," + A(3, 5));
  auto d = Push(e, MakeLink());
  ASSERT_TRUE(d.send);
  EXPECT_EQ(AttrByUuid(*d.event, U(2)), nullptr);
  auto internal = Push(e, MakeLink(kIntServer));
  ASSERT_TRUE(internal.send);
  EXPECT_NE(AttrByUuid(*internal.event, U(2)), nullptr);
  // The receiver then stores it at distribution 0: its URL is not in the group's server list.
  EXPECT_EQ(Dist(*AttrByUuid(*internal.Arrival(), U(2))), "0");
  ASSERT_FALSE(internal.warnings.empty());
}

TEST(SpecCase, Case18_Dist1ObjectIsRemovedWithItsAttributes) {
  auto d = Push(Ev(3, A(2, 5), R"("Object": [)" + Obj(20, 1, A(21, 5) + "," + A(22, 5)) + "]"), MakeLink());
  ASSERT_TRUE(d.send);
  EXPECT_TRUE(d.event->at("Object").as_array().empty());
}

TEST(SpecCase, Case19_Dist2ObjectIsSentAs1WithItsDist3AttributeUnchanged) {
  auto d = Push(Ev(3, A(2, 5), R"("Object": [)" + Obj(20, 2, A(21, 3)) + "]"), MakeLink());
  ASSERT_TRUE(d.send);
  const auto& o = d.event->at("Object").as_array()[0].as_object();
  EXPECT_EQ(Dist(o), "1");
  EXPECT_EQ(Dist(o.at("Attribute").as_array()[0].as_object()), "3");
}

TEST(SpecCase, Case20_OnlyTheDist2ReportIsSentAs1) {
  auto d = Push(Ev(3, A(2, 5), R"("EventReport": [)" + Rep(30, 1) + "," + Rep(31, 2) + "]"), MakeLink());
  ASSERT_TRUE(d.send);
  const auto& reports = d.event->at("EventReport").as_array();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(misp::StringOr(reports[0].as_object(), "uuid"), U(31));
  EXPECT_EQ(Dist(reports[0].as_object()), "1");
}

TEST(SpecCase, Case21_ARemoteWithoutReportSupportGetsNoReports) {
  auto d = Push(Ev(3, A(2, 5), R"("EventReport": [)" + Rep(31, 3) + "]"),
                MakeLink(R"("remote_supports_reports": false)"));
  ASSERT_TRUE(d.send);
  EXPECT_TRUE(d.event->at("EventReport").as_array().empty());
}

TEST(SpecCase, Case22_AttributesLeaveWithoutIdValue1Value2AndKeepTheirData) {
  auto d = Push(Ev(3, A(2, 5, R"("type": "malware-sample", "data": "UEsDBA==")")), MakeLink());
  ASSERT_TRUE(d.send);
  const auto& a = Attrs(d)[0].as_object();
  EXPECT_FALSE(a.contains("id"));
  EXPECT_FALSE(a.contains("value1"));
  EXPECT_FALSE(a.contains("value2"));
  EXPECT_EQ(a.at("data"), json::value("UEsDBA=="));
}

// ---- Push: tags and rules

TEST(SpecCase, Case23_LocalEventTagIsRemovedForANonInternalServer) {
  auto d =
      Push(Ev(3, A(2, 5), R"("Tag": [)" + Tag("tlp:amber", true) + "," + Tag("tlp:green") + "]"), MakeLink());
  ASSERT_TRUE(d.send);
  EXPECT_EQ(TagNames(*d.event), std::vector<std::string>{"tlp:green"});
}

TEST(SpecCase, Case24_LocalEventTagTravelsWithLocalTrueToAnIntServer) {
  auto d = Push(Ev(3, A(2, 5), R"("Tag": [)" + Tag("tlp:amber", true) + "]"), MakeLink(kIntServer));
  ASSERT_TRUE(d.send);
  ASSERT_EQ(TagNames(*d.event), std::vector<std::string>{"tlp:amber"});
  EXPECT_EQ(d.event->at("Tag").as_array()[0].at("local"), json::value(true));
}

TEST(SpecCase, Case25_NonExportableAttributeTagIsRemovedForAnyServer) {
  for (const auto& link : {MakeLink(), MakeLink(kIntServer)}) {
    auto d = Push(Ev(3, A(2, 5, R"("Tag": [)" + Tag("secret", false, false) + "]")), link);
    ASSERT_TRUE(d.send);
    EXPECT_TRUE(TagNames(Attrs(d)[0].as_object()).empty());
  }
}

TEST(SpecCase, Case26_TagsNotOnAnEventTagRefusesTheEvent) {
  auto d = Push(Ev(3, A(2, 5), R"("Tag": [)" + Tag("tlp:red") + "]"),
                MakeLink(R"("push_rules": {"tags": {"NOT": ["tlp:red"]}})"));
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "push.rules.tags_not");
}

TEST(SpecCase, Case27_TagsNotOnAnObjectAttributeRemovesOnlyThatAttribute) {
  auto e = Ev(
      3, A(2, 5),
      R"("Object": [)" + Obj(20, 5, A(21, 5, R"("Tag": [)" + Tag("tlp:red") + "]") + "," + A(22, 5)) + "]");
  auto d = Push(e, MakeLink(R"("push_rules": {"tags": {"NOT": ["tlp:red"]}})"));
  ASSERT_TRUE(d.send);
  const auto& attrs = d.event->at("Object").as_array()[0].at("Attribute").as_array();
  ASSERT_EQ(attrs.size(), 1u);
  EXPECT_EQ(misp::StringOr(attrs[0].as_object(), "uuid"), U(22));
}

TEST(SpecCase, Case28_TagsOrMatchingOnlyAnAttributeTagRefusesTheEvent) {
  auto d = Push(Ev(3, A(2, 5, R"("Tag": [)" + Tag("x") + "]")),
                MakeLink(R"("push_rules": {"tags": {"OR": ["x"]}})"));
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "push.rules.tags_or");
}

TEST(SpecCase, Case29_OrgRulesLookAtTheCreatorOrg) {
  auto e = Ev(3, A(2, 5));
  e["Orgc"] = json::object{{"uuid", kOrg3}, {"name", "ORG3"}};
  auto or_rule = Push(e, MakeLink(std::string(R"("push_rules": {"orgs": {"OR": [")") + kOrg1 + R"("]}})"));
  EXPECT_EQ(Refusal(or_rule), "push.rules.orgs_or");
  auto not_rule = Push(e, MakeLink(std::string(R"("push_rules": {"orgs": {"NOT": [")") + kOrg3 + R"("]}})"));
  EXPECT_EQ(Refusal(not_rule), "push.rules.orgs_not");
  auto by_name = Push(e, MakeLink(R"("push_rules": {"orgs": {"NOT": ["org3"]}})"));
  EXPECT_EQ(Refusal(by_name), "push.rules.orgs_not");
}

TEST(SpecCase, Case30_TypeAttributesNotNeedsFilteringOnType) {
  auto e = Ev(3, A(2, 5, R"("type": "ip-src")") + "," + A(3, 5),
              R"("Object": [)" + Obj(20, 5, A(21, 5, R"("type": "ip-src")")) + "]");
  const std::string rules = R"("push_rules": {"type_attributes": {"NOT": ["ip-src"]}})";
  auto on =
      Push(e, MakeLink(rules + R"(, "settings": {"MISP.enable_synchronisation_filtering_on_type": true})"));
  ASSERT_TRUE(on.send);
  EXPECT_EQ(AttrByUuid(*on.event, U(2)), nullptr);
  EXPECT_TRUE(on.event->at("Object").as_array()[0].at("Attribute").as_array().empty());
  auto off = Push(e, MakeLink(rules));
  EXPECT_NE(AttrByUuid(*off.event, U(2)), nullptr);
}

TEST(SpecCase, Case31_TypeObjectsNotRemovesObjectsOfThatTemplate) {
  auto e = Ev(3, A(2, 5), R"("Object": [)" + Obj(20, 5, A(21, 5)) + "]");
  auto d = Push(
      e,
      MakeLink(
          R"("push_rules": {"type_objects": {"NOT": ["43b3b146-77eb-4931-b4cc-b66c60f28734"]}}, "settings": {"MISP.enable_synchronisation_filtering_on_type": true})"));
  ASSERT_TRUE(d.send);
  EXPECT_TRUE(d.event->at("Object").as_array().empty());
}

// ---- Pull

TEST(SpecCase, Case37_AMinorVersionGapIsReportedAsAnErrorAndTheSyncGoesOn) {
  auto version = [](const char* text) {
    return *misp::DecodeServerVersion(
        json::parse(std::string(R"({"version": ")") + text + R"(", "perm_sync": true})"));
  };
  auto gap = misp::CompareVersions(version("2.5.1"), version("2.4.199"));
  ASSERT_TRUE(gap);
  EXPECT_TRUE(gap->error);
  EXPECT_NE(gap->message.find("behind by a minor version"), std::string::npos) << gap->message;
  EXPECT_NE(gap->message.find("sync goes on"), std::string::npos);
  auto hotfix = misp::CompareVersions(version("2.5.1"), version("2.5.8"));
  ASSERT_TRUE(hotfix);
  EXPECT_FALSE(hotfix->error) << "another hotfix is only a warning";
  EXPECT_NE(hotfix->message.find("ahead by a hotfix version"), std::string::npos) << hotfix->message;
  EXPECT_FALSE(misp::CompareVersions(version("2.5.1"), version("2.5.1")));
}

TEST(SpecCase, Case38_ProtectedEventIsNotPushedToARemoteOlderThan2_4_156) {
  auto e = Ev(3, A(2, 5), R"("protected": true, "CryptographicKey": [])");
  auto old = Push(e, MakeLink(R"("remote_version": "2.4.150")"));
  EXPECT_FALSE(old.send);
  EXPECT_EQ(Refusal(old), "push.event.protected");
  EXPECT_NE(old.refusal()->detail.find("2.4.150"), std::string::npos) << old.refusal()->detail;
  EXPECT_FALSE(old.event) << "nothing is sent";
  // sgsync difference (docs/sharing-rules.md): with no instance key to sign with, a protected
  // event is never pushed, whatever the remote's version; an unprotected one is.
  auto current = Push(e, MakeLink(R"("remote_version": "2.5.1")"));
  EXPECT_EQ(Refusal(current), "push.event.protected");
  EXPECT_NE(current.refusal()->detail.find("signed"), std::string::npos);
  e["protected"] = nullptr;
  EXPECT_TRUE(Push(e, MakeLink(R"("remote_version": "2.4.150")")).send);
}

TEST(SpecCase, Case40_PullRulesBecomeIndexFilters) {
  auto link = MakeLink(
      R"("pull_rules": {"tags": {"OR": ["tlp:green"], "NOT": ["tlp:red"]}, "orgs": {"OR": ["CIRCL"], "NOT": []}, "url_params": "{\"timestamp\":\"30d\",\"published\":0}"})");
  json::object f = PullIndexFilter(link.pull_rules);
  EXPECT_EQ(
      json::serialize(f),
      R"({"tag":["tlp:green","!tlp:red"],"org":["CIRCL"],"timestamp":"30d","published":1,"minimal":1})");
}

TEST(SpecCase, Case41_OldRemotesGetTheOrgRuleAsAPipeJoinedString) {
  auto link = MakeLink(R"("pull_rules": {"orgs": {"OR": ["CIRCL", "ORG2"], "NOT": ["ORG3"]}})");
  EXPECT_EQ(PullIndexFilter(link.pull_rules, true).at("org"), json::value("CIRCL|ORG2|!ORG3"));
}

TEST(SpecCase, Case42_UnpublishedEventIsNotPulled) {
  auto e = Ev(3, A(2, 5));
  e["published"] = false;
  EXPECT_EQ(Refusal(Pull(e, MakeLink())), "pull.select.published");
}

TEST(SpecCase, Case44_PulledEventIsDowngradedAndLocked) {
  auto e =
      Ev(1, A(2, 1), R"("Object": [)" + Obj(20, 2, A(21, 5)) + R"(], "EventReport": [)" + Rep(30, 2) + "]");
  auto d = Pull(e, MakeLink());
  ASSERT_TRUE(d.send) << Refusal(d);
  EXPECT_EQ(Dist(*d.event), "0");
  EXPECT_EQ(Dist(Attrs(d)[0].as_object()), "0");
  EXPECT_EQ(Dist(d.event->at("Object").as_array()[0].as_object()), "1");
  EXPECT_EQ(Dist(d.event->at("EventReport").as_array()[0].as_object()), "1");
  EXPECT_EQ(d.event->at("locked"), json::value(true));
  EXPECT_EQ(misp::StringOr(d.Arrival()->at("Org").as_object(), "uuid"), kOrg1);
}

TEST(SpecCase, Case45_IntPullKeepsDistributionsAndLocalTags) {
  auto e = Ev(1, A(2, 1, R"("Tag": [)" + Tag("mine", true) + "]"));
  auto d = Pull(e, MakeLink(kInternal));
  ASSERT_TRUE(d.send);
  EXPECT_EQ(Dist(*d.event), "1");
  EXPECT_EQ(Dist(Attrs(d)[0].as_object()), "1");
  EXPECT_EQ(TagNames(Attrs(d)[0].as_object()), std::vector<std::string>{"mine"});
}

TEST(SpecCase, Case45b_WithMisp258RulesAnInternalPullNeedsTheRemotePermSyncInternal) {
  auto e = Ev(1, A(2, 1));
  auto without = Pull(e, MakeLink(kInternal + R"(, "pull_internal_needs_perm_sync_internal": true)"));
  EXPECT_EQ(Dist(*without.event), "0");
  auto with = Pull(
      e, MakeLink(
             kInternal +
             R"(, "pull_internal_needs_perm_sync_internal": true, "remote_user_perm_sync_internal": true)"));
  EXPECT_EQ(Dist(*with.event), "1");
}

TEST(SpecCase, Case46_InternalWithoutHostOrgEqualToTheOwnerOrgIsDowngraded) {
  auto e = Ev(1, A(2, 1));
  auto d = Pull(
      e, MakeLink(std::string(kInternal) + R"(, "owner_org": {"uuid": ")" + kOrg3 + R"(", "name": "ORG3"})"));
  ASSERT_TRUE(d.send);
  EXPECT_EQ(Dist(*d.event), "0");
  auto unset = Pull(e, MakeLink(R"("internal": true)"));
  EXPECT_EQ(Dist(*unset.event), "0");
}

TEST(SpecCase, Case47_EventWithOnlySoftDeletedAttributesIsNotStored) {
  auto d = Pull(Ev(3, A(2, 5, R"("deleted": true)")), MakeLink());
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "pull.empty");
}

TEST(SpecCase, Case48_EventEmptiedByATypeRuleIsSkippedNotFailed) {
  auto d = Pull(
      Ev(3, A(2, 5, R"("type": "comment")")),
      MakeLink(
          R"("pull_rules": {"type_attributes": {"NOT": ["comment"]}}, "settings": {"MISP.enable_synchronisation_filtering_on_type": true})"));
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "pull.rules.emptied");
}

// ---- Receiver (push receipt)

TEST(SpecCase, Case49_BlocklistedEventsAndCreatorOrgsAreNotPulled) {
  auto e = Ev(3, A(2, 5));
  auto by_event = MakeLink(R"("pull_blocked_event_uuids": [")" + U(1) + R"("])");
  EXPECT_TRUE(PullBlocklisted(by_event, U(1), kOrg3)) << "checked on the index row, before fetching";
  EXPECT_EQ(Refusal(Pull(e, by_event)), "pull.blocklist.event");
  auto by_org = MakeLink(R"("pull_blocked_org_uuids": [")" + std::string(kOrg1) + R"("])");
  EXPECT_TRUE(PullBlocklisted(by_org, U(9), kOrg1));
  EXPECT_EQ(Refusal(Pull(e, by_org)), "pull.blocklist.org");
  EXPECT_FALSE(PullBlocklisted(MakeLink(), U(1), kOrg1));
  EXPECT_TRUE(Pull(e, MakeLink()).send);
  // Pushes are not filtered by the member's own pull blocklists.
  EXPECT_TRUE(Push(e, by_event).send);
}

// MISP's `update` technique re-fetches an event it holds while ignoring pull rules. sgsync has no
// such technique: its pull rules apply to every event, held or new (docs/sharing-rules.md,
// "Differences from MISP 2.5.1").
TEST(SpecCase, Case50_PullRulesApplyAlsoToEventsAlreadyHeld) {
  auto e = Ev(3, A(2, 5), R"("Tag": [)" + Tag("tlp:amber") + "]");
  auto rules = MakeLink(R"("pull_rules": {"tags": {"OR": ["tlp:green"], "NOT": []}})");
  auto d = Pull(e, rules);
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "pull.rules.tags_or");
}

TEST(SpecCase, Case52_ProtectedEventIsNotPulledWithoutAVerifiedSignature) {
  auto d = Pull(Ev(3, A(2, 5), R"("protected": true)"), MakeLink());
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "pull.event.protected");
  EXPECT_FALSE(d.Arrival()) << "nothing is stored";
}

TEST(SpecCase, Case59_CapturableGroupKeepsDistribution4AndLosesAllOrgs) {
  std::string sg = SharingGroupJson(U(900), {kOrg1, kOrg2}, {{kRemoteUrl, true}}, false);
  auto d = Push(Ev(4, A(2, 5), R"("sharing_group_id": "5", "SharingGroup": )" + sg), MakeLink());
  ASSERT_TRUE(d.send) << Refusal(d);
  ASSERT_TRUE(d.Arrival());
  EXPECT_EQ(Dist(*d.Arrival()), "4");
  for (const auto& row : d.Arrival()->at("SharingGroup").at("SharingGroupServer").as_array()) {
    EXPECT_EQ(row.at("all_orgs"), json::value(false));
  }
}

TEST(SpecCase, Case60_UncapturableGroupIsStoredAtDistribution0OnAdd) {
  // The sync account's org (ORG1) is not a member and the receiver's row has no all_orgs.
  std::string sg = SharingGroupJson(U(900), {kOrg2}, {{kRemoteUrl, false}}, false);
  auto e = Ev(3, A(2, 4, R"("sharing_group_id": "5", "SharingGroup": )" + sg));
  auto d = Push(e, MakeLink());
  ASSERT_TRUE(d.send);
  const json::object* arrived = AttrByUuid(*d.Arrival(), U(2));
  ASSERT_NE(arrived, nullptr);
  EXPECT_EQ(Dist(*arrived), "0");
  EXPECT_FALSE(arrived->contains("SharingGroup"));
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_NE(d.warnings[0].find("Event.Attribute[0] at distribution 0"), std::string::npos) << d.warnings[0];
}

TEST(SpecCase, Case63_ServerRowWithAnUnknownUrlIsDropped) {
  std::string sg = SharingGroupJson(U(900), {kOrg1, kOrg2},
                                    {{kRemoteUrl, false}, {"https://elsewhere.example", false}}, false);
  auto d = Push(Ev(4, A(2, 5), R"("sharing_group_id": "5", "SharingGroup": )" + sg), MakeLink());
  ASSERT_TRUE(d.Arrival());
  std::vector<std::string> urls;
  for (const auto& row : d.Arrival()->at("SharingGroup").at("SharingGroupServer").as_array()) {
    urls.emplace_back(row.at("Server").at("url").as_string());
  }
  EXPECT_EQ(urls, (std::vector<std::string>{kLocalUrl, kRemoteUrl}));
}

TEST(SpecCase, Case64_EventWithNothingLeftIsNotSentBecauseTheReceiverRefusesIt) {
  auto d = Push(Ev(3, A(2, 0) + "," + A(3, 1)), MakeLink());
  EXPECT_FALSE(d.send);
  EXPECT_EQ(Refusal(d), "receiver.empty");
  auto no_attributes = Push(Ev(3, ""), MakeLink());
  EXPECT_EQ(Refusal(no_attributes), "receiver.empty");
}

TEST(SpecCase, Case65_WriterWithoutPermPublishStoresTheEventUnpublished) {
  Receiver r{"the Portal", kRemoteUrl, {kOrg1, "ORG1"}, false, true, /*perm_publish=*/false, {}};
  std::vector<Reason> reasons;
  std::vector<std::string> warnings;
  auto arrival = PredictArrival(Ev(3, A(2, 5)), r, &reasons, &warnings);
  ASSERT_TRUE(arrival);
  EXPECT_EQ(arrival->at("published"), json::value(false));
}

// ---- Encoding

json::object Cluster(int version, int dist, const std::string& extra = "") {
  return json::
      parse(R"({"id": "7", "uuid": ")" + U(73) +
            R"(", "type": "threat-actor", "value": "Custom actor", "tag_name": "misp-galaxy:threat-actor=\")" +
            U(73) + R"(\"", "default": false, "published": true, "version": ")" + std::to_string(version) +
            R"(", "distribution": ")" + std::to_string(dist) +
            R"(", "org_id": "1", "orgc_id": "1", "galaxy_id": "3", "GalaxyElement": [{"id": "1", "galaxy_cluster_id": "7", "key": "synonyms", "value": "CA"}])" +
            (extra.empty() ? "" : ", " + extra) + "}")
          .as_object();
}

TEST(SpecCase, Case73_ACustomClusterIsPushedOnlyWhenTheRemoteVersionIsOlderOrAbsent) {
  EXPECT_FALSE(ClusterNewerThanRemote(5, 5)) << "remote reports version 5: not pushed";
  EXPECT_TRUE(ClusterNewerThanRemote(5, 4));
  EXPECT_TRUE(ClusterNewerThanRemote(5, std::nullopt)) << "the remote has none";
  auto d = PrepareClusterForPush(Cluster(5, 3), MakeLink());
  ASSERT_TRUE(d.send) << (d.refusal() ? d.refusal()->detail : "");
  for (const char* k : {"id", "org_id", "orgc_id", "galaxy_id"}) EXPECT_FALSE(d.element.contains(k)) << k;
  EXPECT_FALSE(d.element.at("GalaxyElement").as_array()[0].as_object().contains("id"));
  auto community = PrepareClusterForPush(Cluster(5, 2), MakeLink());
  EXPECT_EQ(Dist(community.element), "1") << "2 -> 1 on a non-internal push";
  EXPECT_EQ(PrepareClusterForPush(Cluster(5, 1), MakeLink()).refusal()->rule, "push.cluster.distribution");
  EXPECT_EQ(PrepareClusterForPush(Cluster(5, 3, R"("default": true)"), MakeLink()).refusal()->rule,
            "push.cluster.default");
  EXPECT_EQ(PrepareClusterForPush(Cluster(5, 3, R"("published": false)"), MakeLink()).refusal()->rule,
            "push.cluster.published");
  auto relations = PrepareClusterForPush(
      Cluster(
          5, 3,
          R"("GalaxyClusterRelation": [{"id": "1", "distribution": "0", "referenced_galaxy_cluster_uuid": "a"}, {"id": "2", "distribution": "2", "referenced_galaxy_cluster_uuid": "b", "Tag": [{"name": "secret", "exportable": false}, {"name": "tlp:green"}]}])"),
      MakeLink());
  ASSERT_TRUE(relations.send);
  const auto& rels = relations.element.at("GalaxyClusterRelation").as_array();
  ASSERT_EQ(rels.size(), 1u) << "the distribution-0 relation is removed";
  EXPECT_EQ(Dist(rels[0].as_object()), "1");
  EXPECT_EQ(TagNames(rels[0].as_object()), std::vector<std::string>{"tlp:green"});
}

TEST(SpecCase, Case74_APulledClusterIsDowngradedAndLockedAndNeverOverwritesAnUnlockedOne) {
  auto d = PreparePulledCluster(Cluster(3, 2), MakeLink());
  ASSERT_TRUE(d.send);
  EXPECT_EQ(Dist(d.element), "1");
  EXPECT_EQ(d.element.at("locked"), json::value(true));
  EXPECT_EQ(Dist(PreparePulledCluster(Cluster(3, 1), MakeLink()).element), "0");
  EXPECT_EQ(Dist(PreparePulledCluster(Cluster(3, 2), MakeLink(kInternal)).element), "2")
      << "INT-PULL keeps it";
  EXPECT_EQ(AcceptCluster(d.element, HeldCopy{false, "2"}, false).refusal()->rule,
            "receiver.cluster.not_locked");
  EXPECT_TRUE(AcceptCluster(d.element, HeldCopy{true, "2"}, false).send);
  EXPECT_EQ(AcceptCluster(d.element, HeldCopy{true, "3"}, false).refusal()->rule,
            "receiver.cluster.not_newer");
  EXPECT_TRUE(AcceptCluster(d.element, std::nullopt, false).send);
}

TEST(SpecCase, Case75_ANewerNoteIsAcceptedOnlyOverALockedCopyAndGoesOutLocked) {
  EXPECT_TRUE(AnalystDataWanted("2024-10-01 10:00:00", HeldCopy{true, "2024-09-01 10:00:00"}, false));
  EXPECT_FALSE(AnalystDataWanted("2024-10-01 10:00:00", HeldCopy{false, "2024-09-01 10:00:00"}, false))
      << "the remote's own note is never overwritten";
  EXPECT_FALSE(AnalystDataWanted("2024-10-01 10:00:00", HeldCopy{true, "2024-10-01 10:00:00"}, false));
  EXPECT_TRUE(AnalystDataWanted("2024-10-01 10:00:00", std::nullopt, false));
  auto note =
      json::parse(
          R"({"id": "4", "uuid": ")" + U(75) +
          R"(", "note": "seen in the wild", "modified": "2024-10-01 10:00:00", "distribution": "2", "orgc_uuid": ")" +
          kOrg1 + R"(", "Opinion": [{"id": "5", "uuid": ")" + U(76) +
          R"(", "opinion": "80", "distribution": "0"}]})")
          .as_object();
  auto d = PrepareAnalystDataForPush("Note", note, MakeLink());
  ASSERT_TRUE(d.send) << (d.refusal() ? d.refusal()->detail : "");
  EXPECT_EQ(d.element.at("locked"), json::value(true));
  EXPECT_EQ(Dist(d.element), "1");
  EXPECT_FALSE(d.element.contains("id"));
  EXPECT_TRUE(d.element.at("Opinion").as_array().empty()) << "a distribution-0 opinion stays home";
  auto blocked = PrepareAnalystDataForPush(
      "Note", note,
      MakeLink(R"("push_rules": {"orgs": {"OR": [], "NOT": [")" + std::string(kOrg1) + R"("]}})"));
  EXPECT_EQ(blocked.refusal()->rule, "push.rules.orgs");
  auto pulled = PreparePulledAnalystData("Note", note, MakeLink());
  EXPECT_EQ(Dist(pulled.element), "1");
  EXPECT_EQ(pulled.element.at("locked"), json::value(true));
}

TEST(SpecCase, Case76_NumberAndStringDistributionsAreTreatedAlikeAndWrittenAsStrings) {
  auto as_string = Ev(2, A(2, 2));
  auto as_number = as_string;
  as_number["distribution"] = 2;
  as_number["Attribute"].as_array()[0].as_object()["distribution"] = 2;
  auto a = Push(as_string, MakeLink());
  auto b = Push(as_number, MakeLink());
  EXPECT_EQ(json::serialize(a.event->at("distribution")), "\"1\"");
  EXPECT_EQ(json::serialize(b.event->at("distribution")), "\"1\"");
  EXPECT_EQ(json::serialize(Attrs(b)[0].at("distribution")), "\"1\"");
}

}  // namespace
}  // namespace sgsync::policy

// ---- sightings (spec 8.1): which may leave, and as whom
namespace sgsync::policy {
namespace {

const char* kOrgB = "1315aee3-d0b4-4569-a8f2-b99ad776f149";   // the remote org (receives)
const char* kOrgC = "9f3c7e20-3b1a-4d6e-8a51-2f6c0d9e7a33";   // a third org that reported a sighting
const char* kOwner = "ce867008-0536-4358-9f2e-20df12768cd3";  // the event's owner (org_id)

json::array SightingRows(std::initializer_list<std::pair<const char*, const char*>> uuid_and_org) {
  json::array rows;
  for (const auto& [uuid, org] : uuid_and_org) {
    rows.push_back(json::object{
        {"Sighting",
         json::object{{"id", "7"},
                      {"uuid", uuid},
                      {"attribute_uuid", "2ce3d98f-f4c5-4ef2-ac92-5f634f63da5c"},
                      {"event_uuid", "3db1fc7c-5b9f-4f46-823f-296321d7f5db"},
                      {"date_sighting", "1795807670"},
                      {"source", "sensor"},
                      {"type", "0"},
                      {"org_id", "3"},
                      {"Organisation", json::object{{"id", "3"}, {"uuid", org}, {"name", "ORG"}}}}}});
  }
  return rows;
}

TEST(SpecCase, Case68_AnonymisedSightingOfAnotherOrgLeavesWithOrgId0AndNoOrganisation) {
  SightingsPolicy p;
  p.policy = 2;
  p.anonymise = true;
  auto sel =
      SelectSightings(SightingRows({{"003b2fb5-2036-4502-b412-613f2562f45e", kOrgC}}), kOwner, kOrgB, p);
  ASSERT_EQ(sel.send.size(), 1u);
  const json::object& row = sel.send[0].as_object();
  EXPECT_EQ(row.at("org_id"), "0");
  EXPECT_FALSE(row.contains("Organisation"));
  EXPECT_FALSE(row.contains("id")) << "the sending instance's row id stays home";
  EXPECT_EQ(sel.anonymised, 1u);
}

TEST(SpecCase, Case69_AnonymisedAsAnOrganisationLeavesAsThatOrganisation) {
  SightingsPolicy p;
  p.policy = 2;
  p.anonymise = true;
  p.anonymise_as = OrgRef{"5b7d1c2e-0000-4000-8000-00000000000a", "ORG-H"};
  auto sel =
      SelectSightings(SightingRows({{"003b2fb5-2036-4502-b412-613f2562f45e", kOrgC}}), kOwner, kOrgB, p);
  ASSERT_EQ(sel.send.size(), 1u);
  const json::object& org = sel.send[0].as_object().at("Organisation").as_object();
  EXPECT_EQ(org.at("uuid"), "5b7d1c2e-0000-4000-8000-00000000000a");
  EXPECT_EQ(org.at("name"), "ORG-H");
}

TEST(SpecCase, Case70_Policy0PushesOnlyTheRemoteOrgsOwnSightings) {
  SightingsPolicy p;  // policy 0, MISP's default
  auto sel = SelectSightings(SightingRows({{"003b2fb5-2036-4502-b412-613f2562f45e", kOrgB},
                                           {"d9eef9dd-d9ef-40ef-a02f-797869c541ed", kOrgC}}),
                             kOwner, kOrgB, p);
  ASSERT_EQ(sel.send.size(), 1u);
  EXPECT_EQ(sel.send[0].as_object().at("uuid"), "003b2fb5-2036-4502-b412-613f2562f45e");
  EXPECT_EQ(sel.withheld, 1u);
  ASSERT_EQ(sel.reasons.size(), 1u);
  EXPECT_EQ(sel.reasons[0].rule, "push.sighting.policy");
}

TEST(SightingsPolicyTest, Policy1ShowsEverythingOnceTheViewerReportedAndPolicy3AddsTheHostOrg) {
  json::array rows = SightingRows(
      {{"003b2fb5-2036-4502-b412-613f2562f45e", kOrgC}, {"d9eef9dd-d9ef-40ef-a02f-797869c541ed", kOwner}});
  SightingsPolicy reporters;
  reporters.policy = 1;
  EXPECT_EQ(SelectSightings(rows, kOwner, kOrgB, reporters).send.size(), 0u) << "B reported none";
  json::array with_b = rows;
  with_b.push_back(SightingRows({{"0d0d0d0d-0000-4000-8000-000000000001", kOrgB}})[0]);
  EXPECT_EQ(SelectSightings(with_b, kOwner, kOrgB, reporters).send.size(), 3u);
  SightingsPolicy host;
  host.policy = 3;
  host.host_org_uuid = kOwner;
  auto sel = SelectSightings(rows, kOwner, kOrgB, host);
  ASSERT_EQ(sel.send.size(), 1u);
  EXPECT_EQ(sel.send[0].as_object().at("uuid"), "d9eef9dd-d9ef-40ef-a02f-797869c541ed");
  EXPECT_EQ(SelectSightings(rows, kOwner, kOwner, SightingsPolicy{}).send.size(), 2u) << "the owner sees all";
}

}  // namespace
}  // namespace sgsync::policy
