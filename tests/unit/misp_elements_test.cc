// Issue 16 item 11: which elements a receiver's saved copy lacks (misp::ElementsMissingFrom).
#include <gtest/gtest.h>

#include "misp/elements.h"

namespace sgsync::misp {
namespace {

json::object Parse(const char* text) { return json::parse(text).as_object(); }

TEST(MispElementsTest, ADroppedObjectIsNamedOnceAndSoftDeletedElementsAreNotMissing) {
  json::object sent = Parse(R"({"uuid": "e", "Attribute": [
      {"uuid": "A1", "type": "domain", "value": "kept.example"},
      {"uuid": "a2", "type": "domain", "value": "gone.example", "deleted": true}],
    "Object": [{"uuid": "o1", "name": "domain-ip", "description": "", "Attribute": [
      {"uuid": "oa1", "type": "ip-dst", "value": "192.0.2.1"}, {"uuid": "oa2", "type": "domain", "value": "x"}]},
      {"uuid": "o2", "name": "file", "Attribute": [{"uuid": "oa3", "type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e"}]}],
    "EventReport": [{"uuid": "r1", "name": "report one"}]})");
  json::object saved = Parse(R"({"uuid": "e", "Attribute": [{"uuid": "a1"}],
    "Object": [{"uuid": "o2", "Attribute": []}], "EventReport": [{"uuid": "r1"}]})");
  auto missing = ElementsMissingFrom(sent, saved);
  ASSERT_EQ(missing.size(), 2u);
  EXPECT_EQ(missing[0].kind, "Object");
  EXPECT_EQ(missing[0].uuid, "o1");
  EXPECT_EQ(missing[0].path, "Event.Object[0]");
  EXPECT_EQ(missing[0].what, "object domain-ip");
  EXPECT_EQ(missing[1].kind, "Attribute") << "an attribute of an object that was saved";
  EXPECT_EQ(missing[1].uuid, "oa3");
  EXPECT_EQ(missing[1].path, "Event.Object[1].Attribute[0]");
}

TEST(MispElementsTest, NothingIsMissingFromACompleteCopyWhereverItsElementsSit) {
  json::object sent =
      Parse(R"({"Attribute": [{"uuid": "a1"}], "Object": [{"uuid": "o1", "Attribute": [{"uuid": "oa1"}]}]})");
  json::object saved =
      Parse(R"({"Object": [{"uuid": "O1", "Attribute": [{"uuid": "a1"}, {"uuid": "oa1"}]}]})");
  EXPECT_TRUE(ElementsMissingFrom(sent, saved).empty());
}

// SentElements reads the event before the write; the answer is compared with it afterwards.
TEST(MispElementsTest, ASoftDeletedObjectIsNotMissingButItsLiveAttributesAreCheckedReadBeforeTheWrite) {
  json::object sent = Parse(R"({"Object": [
      {"uuid": "o1", "name": "file", "deleted": "1", "Attribute": [
        {"uuid": "oa1", "type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e"},
        {"uuid": "oa2", "type": "sha1", "value": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "deleted": true}]},
      {"uuid": "o2", "name": "domain-ip", "Attribute": [{"uuid": "oa3", "type": "domain", "value": "x.example"}]}],
    "EventReport": [{"uuid": "r1", "name": "report one"}]})");
  const SentElements before(sent);
  UuidSet held;
  held.Insert("OA3");
  auto missing = before.MissingFrom(held);
  ASSERT_EQ(missing.size(), 3u);
  EXPECT_EQ(missing[0].path, "Event.Object[0].Attribute[0]");
  EXPECT_EQ(missing[0].what, "md5 d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(missing[1].path, "Event.Object[1]") << "o2 is missing; oa3, held elsewhere, is not named again";
  EXPECT_EQ(missing[2].kind, "EventReport");
  EXPECT_EQ(missing[2].path, "Event.EventReport[0]");
  EXPECT_EQ(missing[2].what, "report report one");
}

// The names that decide whether a write goes alone (a receiver creates a tag the first time a write
// names it): on the event, its attributes, its objects and their attributes, each once.
TEST(MispElementsTest, TheSentTagNamesAreEveryElementsSortedAndEachOnce) {
  json::object sent = Parse(R"({"Tag": [{"name": "tlp:green"}, {"name": "campaign:x"}],
    "Attribute": [{"uuid": "a1", "Tag": [{"name": "tlp:green"}, {"name": "kill-chain:delivery"}]},
                  {"uuid": "a2"}, {"uuid": "a3", "Tag": [{"name": "on-a-third-attribute"}]}],
    "Object": [{"uuid": "o1", "Tag": [{"name": "on-an-object"}],
                "Attribute": [{"uuid": "oa1", "Tag": [{"name": "on-an-object-attribute"}]}]}]})");
  const SentElements elements(sent);
  EXPECT_EQ(elements.tag_names(),
            (std::vector<std::string_view>{"campaign:x", "kill-chain:delivery", "on-a-third-attribute",
                                           "on-an-object", "on-an-object-attribute", "tlp:green"}));
  EXPECT_TRUE(SentElements(Parse(R"({"Attribute": [{"uuid": "a1"}]})")).tag_names().empty());
}

}  // namespace
}  // namespace sgsync::misp
