#include <gtest/gtest.h>

#include "misp/content_hash.h"
#include "misp/event.h"
#include "tests/support/files.h"

namespace sgsync::misp {
namespace {

std::string H(std::string_view text) { return ContentHash(json::parse(text).get_object()); }

TEST(MispContentHashTest, IgnoresKeyOrderAndLooseEncodings) {
  EXPECT_EQ(H(R"({"a":"1","b":true,"c":[1,2]})"), H(R"({"c":["1","2"],"b":"1","a":1})"));
  EXPECT_EQ(H(R"({"to_ids":false})"), H(R"({"to_ids":"0"})"));
}

TEST(MispContentHashTest, IgnoresTheOrderOfElementsWithUuids) {
  EXPECT_EQ(H(R"({"Attribute":[{"uuid":"a","value":"1"},{"uuid":"b","value":"2"}]})"),
            H(R"({"Attribute":[{"uuid":"b","value":"2"},{"uuid":"a","value":"1"}]})"));
}

TEST(MispContentHashTest, IgnoresInstanceLocalFields) {
  EXPECT_EQ(
      H(R"({"uuid":"u","id":"12","org_id":"3","locked":true,"Org":{"name":"A"},"Tag":[{"name":"t","colour":"#fff","id":"4"}]})"),
      H(R"({"uuid":"u","id":"99","org_id":"1","locked":false,"Org":{"name":"B"},"Tag":[{"name":"t","colour":"#000","id":"8"}]})"));
}

TEST(MispContentHashTest, SeesEveryContentChange) {
  const std::string base =
      R"({"uuid":"u","info":"x","Attribute":[{"uuid":"a","value":"1","deleted":false,"Tag":[{"name":"t"}]}]})";
  for (
      const char* changed : {
          R"({"uuid":"u","info":"y","Attribute":[{"uuid":"a","value":"1","deleted":false,"Tag":[{"name":"t"}]}]})",
          R"({"uuid":"u","info":"x","Attribute":[{"uuid":"a","value":"2","deleted":false,"Tag":[{"name":"t"}]}]})",
          R"({"uuid":"u","info":"x","Attribute":[{"uuid":"a","value":"1","deleted":true,"Tag":[{"name":"t"}]}]})",
          R"({"uuid":"u","info":"x","Attribute":[{"uuid":"a","value":"1","deleted":false,"Tag":[]}]})",
          R"({"uuid":"u","info":"x","Attribute":[{"uuid":"a","value":"1","deleted":false,"Tag":[{"name":"t","local":true}]}]})",
          R"({"uuid":"u","info":"x","Attribute":[]})",
          R"({"uuid":"u","info":"x","Attribute":[{"uuid":"a","value":"1","deleted":false,"Tag":[{"name":"t"}]}],"distribution":"1"})",
      }) {
    EXPECT_NE(H(base), H(changed)) << changed;
  }
}

TEST(MispContentHashTest, StringsCannotCollideAcrossFieldBoundaries) {
  EXPECT_NE(H(R"({"a":"b,c=d"})"), H(R"({"a":"b","c":"d"})"));
  EXPECT_NE(H(R"({"a":["x","y"]})"), H(R"({"a":["xy"]})"));
}

TEST(MispContentHashTest, IsAStableSha256Hex) {
  std::string h = H(R"({"uuid":"u"})");
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h, H(R"({"uuid":"u"})"));
  EXPECT_EQ(CanonicalForm(json::parse(R"({"b":1,"a":"x"})").get_object()), "{1:a=1:x,1:b=1:1,}");
}

TEST(MispContentHashTest, TheOwnersViewAndTheSyncUsersViewDifferOnlyWhereContentDiffers) {
  // Same event fetched by two users: the admin sees a distribution-0 attribute the sync user does not.
  auto load = [](const char* f) {
    auto body = json::parse(sgsync::testing::ReadFile(sgsync::testing::DataDir() /
                                                      "fixtures/misp/real-2.5.1/api" / f))
                    .at("response")
                    .at("body");
    return ContentHash(body.at("Event").get_object());
  };
  EXPECT_NE(load("events-view-uuid.json"), load("events-view-uuid-admin.json"));
  EXPECT_EQ(load("events-view-uuid.json"), load("events-view-uuid.json"));
}

}  // namespace
}  // namespace sgsync::misp
