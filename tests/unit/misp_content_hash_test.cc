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

// Objects at one depth that share their keys and order are written with the order sorted for the
// first; one whose keys differ, or differ only in order or in an instance-local key, is sorted anew.
TEST(MispContentHashTest, EachObjectIsWrittenInItsOwnKeyOrderWhateverItsNeighboursShape) {
  // Next to each other: keys of the same lengths with a kept key where the one before had an
  // instance-local one (1, 2), the same keys in another order (3, 4), then other shapes.
  const char* doc =
      R"({"A":[{"uuid":"1","b":"x","id":"9"},{"uuid":"2","b":"y","xy":"9"},{"uuid":"3","b":"z","c":"w"},)"
      R"({"uuid":"4","c":"v","b":"q"},{"uuid":"5","id":"7","b":"u"},{"uuid":"6","b":"t","org_id":"8"}]})";
  EXPECT_EQ(CanonicalForm(json::parse(doc).get_object()),
            "{1:A=[{1:b=1:x,4:uuid=1:1,},{1:b=1:y,4:uuid=1:2,2:xy=1:9,},{1:b=1:z,1:c=1:w,4:uuid=1:3,},"
            "{1:b=1:q,1:c=1:v,4:uuid=1:4,},{1:b=1:u,4:uuid=1:5,},{1:b=1:t,4:uuid=1:6,},],}");
}

// Elements are ordered by their keys as whole strings, also where the first 8 bytes tie or a key
// is a prefix of another (one even ending in a zero byte).
TEST(MispContentHashTest, ElementsAreOrderedByTheirWholeKeys) {
  const char* doc =
      R"({"T":[{"name":"abcdefgh2"},{"name":"ab\u0000"},{"name":"abcdefgh1"},{"name":"ab"},{"name":"abcdefgh"}]})";
  const std::string expected(
      "{1:T=[{4:name=2:ab,},{4:name=3:ab\0,},{4:name=8:abcdefgh,},{4:name=9:abcdefgh1,},"
      "{4:name=9:abcdefgh2,},],}",
      105);
  EXPECT_EQ(CanonicalForm(json::parse(doc).get_object()), expected);
}

// The uuid that orders an element is looked for where the element before had it; an element with
// its uuid elsewhere, a uuid that is not a string (ordered first, as without a key), or none
// (ordered by its name), is ordered as if each were looked up afresh.
TEST(MispContentHashTest, ElementsAreOrderedByTheirUuidWhereverItSitsInTheElement) {
  const char* doc =
      R"({"A":[{"uuid":"c","v":"1"},{"v":"2","uuid":"a"},{"v":"3","w":"x","uuid":"b"},{"uuid":7,"v":"4"},)"
      R"({"name":"0","v":"5"},{"uuid":"ab","v":"6"}]})";
  EXPECT_EQ(CanonicalForm(json::parse(doc).get_object()),
            "{1:A=[{4:uuid=1:7,1:v=1:4,},{4:name=1:0,1:v=1:5,},{4:uuid=1:a,1:v=1:2,},{4:uuid=2:ab,1:v=1:6,},"
            "{4:uuid=1:b,1:v=1:3,1:w=1:x,},{4:uuid=1:c,1:v=1:1,},],}");
}

// The ledgers of every installation hold these hashes: a faster canonical form must give the same
// bytes, or every tracked event would look changed after an upgrade. Pinned on 2026-12-02 from the
// form the ledgers hold, on real events of several shapes (objects, galaxies, event reports,
// Japanese text, a restSearch answer's event with 127 objects).
TEST(MispContentHashTest, RealEventsHashAsTheLedgersRecordedThem) {
  const std::pair<const char*, const char*> pinned[] = {
      {"eset/kamino.json", "24da903269d3641f54f3f257ca65d416f6ca2c0780edc904ff0777245b99f313"},
      {"pymisp/japanese_test.json", "bbeb448bc1c3710ff88db066d448b7d8fc9e4b3862eac73b7750b3933e27f136"},
      {"pymisp/mainly_objects_1.json", "9ad9a192526fde2e02cdd5d79ec461a7faddaeaaf039ee60b8c743cdca7a6985"},
      {"pymisp/galaxy_1.json", "46e07bcd15aa64c6182966ffc4691165cd8fef6319e4d1fb87559d3b5809c27c"},
      {"misp-training-lea/misp.event.2362.json",
       "875dcbd15a8876cd692503b9d2598a2c07e1634ddfacb3c417ca1dfe40e714a5"},
      {"eset/ebury.misp.json", "32f1f5c2aa4f3cb84a0677d579c26921d60c9670e895c1df2e76ffc360a316e6"},
  };
  for (const auto& [file, hash] : pinned) {
    json::value doc =
        json::parse(sgsync::testing::ReadFile(sgsync::testing::DataDir() / "fixtures/misp/events" / file));
    const json::object* root = &doc.get_object();
    if (root->contains("response")) root = &root->at("response").get_array().at(0).get_object();
    const json::object& event = root->contains("Event") ? root->at("Event").get_object() : *root;
    EXPECT_EQ(ContentHash(event), hash) << file;
  }
}

}  // namespace
}  // namespace sgsync::misp
