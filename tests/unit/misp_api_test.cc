#include <gtest/gtest.h>

#include "misp/api.h"
#include "tests/support/files.h"

namespace sgsync::misp {
namespace {

using sgsync::testing::DataDir;
using sgsync::testing::ReadFile;

json::value Body(const std::string& capture) {
  return json::parse(ReadFile(DataDir() / "fixtures/misp/real-2.5.1/api" / capture))
      .at("response")
      .at("body");
}

TEST(MispApiTest, DecodesTheMinimalIndexOfMispsPull) {
  auto rows = DecodeEventIndex(Body("events-index-minimal-published.json"));
  ASSERT_TRUE(rows.ok()) << rows.error().ToString();
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].uuid, "3db1fc7c-5b9f-4f46-823f-296321d7f5db");
  EXPECT_EQ((*rows)[0].timestamp, 1795807691);
  EXPECT_EQ((*rows)[0].id, 389);
  EXPECT_TRUE((*rows)[0].published);
  EXPECT_EQ((*rows)[2].orgc_uuid, "1315aee3-d0b4-4569-a8f2-b99ad776f149");
}

TEST(MispApiTest, AnOldServersSingleIndexObjectBecomesAListOfOne) {
  auto rows =
      DecodeEventIndex(json::parse(R"({"uuid":"326aa0b6-efbc-4b2a-9da5-ffa0b18015e3","timestamp":"5"})"));
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 1u);
}

TEST(MispApiTest, IndexRowsWithoutTimestampOrWithBadUuidAreRefused) {
  auto r = DecodeEventIndex(json::parse(R"([{"uuid":"326aa0b6-efbc-4b2a-9da5-ffa0b18015e3"}])"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().where, "[0].timestamp");
  auto s = DecodeEventIndex(json::parse(
      R"([{"uuid":"326aa0b6-efbc-4b2a-9da5-ffa0b18015e3","timestamp":1},{"uuid":"x","timestamp":1}])"));
  EXPECT_EQ(s.error().where, "[1].uuid");
}

// Issue 23 item 5: one unreadable row of a peer's index is left out and reported; the others are
// used.
TEST(MispApiTest, WithARejectListOneBadIndexRowIsLeftOutAndTheOthersKept) {
  std::vector<Error> rejected;
  auto r = DecodeEventIndex(json::parse(R"([{"uuid":"326aa0b6-efbc-4b2a-9da5-ffa0b18015e3","timestamp":1},
      {"uuid":"3db1fc7c-5b9f-4f46-823f-296321d7f5db","timestamp":"soon"}, {"uuid":"x","timestamp":2},
      {"uuid":"1315aee3-d0b4-4569-a8f2-b99ad776f149","timestamp":"3"}])"),
                            &rejected);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].timestamp, 3);
  ASSERT_EQ(rejected.size(), 2u);
  EXPECT_EQ(rejected[0].where, "[1].timestamp");
  EXPECT_EQ(rejected[1].where, "[2].uuid");
  EXPECT_FALSE(DecodeEventIndex(json::parse(R"({"a":1})"), &rejected).ok())
      << "a body that is no index fails";
}

TEST(MispApiTest, DecodesTheRealSharingGroupIndexAndView) {
  auto list = DecodeSharingGroupIndex(Body("sharing-groups-index.json"));
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  ASSERT_FALSE(list->empty());
  for (const auto& g : *list) {
    EXPECT_EQ(g.uuid.size(), 36u);
    EXPECT_FALSE(g.org_uuids.empty()) << g.name;
  }
  auto one = DecodeSharingGroup(Body("sharing-groups-view-uuid.json"));
  ASSERT_TRUE(one.ok()) << one.error().ToString();
  EXPECT_FALSE(one->servers.empty());
}

TEST(MispApiTest, DecodesGetVersion) {
  auto v = DecodeServerVersion(Body("servers-getVersion.json"));
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  EXPECT_EQ(v->version, "2.5.1");
  EXPECT_TRUE(v->perm_sync);
  EXPECT_TRUE(v->filter_sightings);
  EXPECT_EQ(v->request_encoding, std::vector<std::string>{"gzip"});
  EXPECT_TRUE(v->AtLeast(2, 4, 199));
  EXPECT_TRUE(v->AtLeast(2, 5, 1));
  EXPECT_FALSE(v->AtLeast(2, 5, 8));
}

TEST(MispApiTest, DecodesTheSyncUser) {
  auto u = DecodeUserInfo(Body("users-view-me-sync-user.json"));
  ASSERT_TRUE(u.ok()) << u.error().ToString();
  EXPECT_EQ(u->email, "sync@org1.test");
  EXPECT_EQ(u->role_name, "Sync user");
  EXPECT_TRUE(u->Has("perm_sync"));
  EXPECT_TRUE(u->Has("perm_sharing_group"));
  EXPECT_FALSE(u->Has("perm_site_admin"));
  EXPECT_FALSE(u->Has("perm_no_such_thing"));
  EXPECT_EQ(u->org_uuid, "ce867008-0536-4358-9f2e-20df12768cd3");
}

TEST(MispApiTest, FlattensMispErrorBodies) {
  auto notnewer = DecodeMispError(Body("events-edit-same-timestamp.json"));
  EXPECT_EQ(notnewer.errors, "Event could not be saved: Event in the request not newer than the local copy.");
  auto invalid = DecodeMispError(Body("error-events-add-invalid-distribution.json"));
  EXPECT_EQ(invalid.name, "Could not add Event");
  EXPECT_EQ(invalid.errors,
            "Event: distribution: Options : Your organisation only, This community only, Connected "
            "communities, All communities");
  auto auth = DecodeMispError(Body("error-bad-api-key.json"));
  EXPECT_NE(auth.message.find("Authentication failed"), std::string::npos);
  EXPECT_EQ(auth.url, "/events/index");
  EXPECT_EQ(DecodeMispError(json::value("plain text")).message, "plain text");
}

}  // namespace
}  // namespace sgsync::misp
