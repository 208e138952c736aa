// Malformed and hostile documents: each is refused with the exact place and kind of the fault,
// without crashing and without unbounded allocation.
#include <gtest/gtest.h>

#include "misp/event.h"

namespace sgsync::misp {
namespace {

constexpr const char* kU = "326aa0b6-efbc-4b2a-9da5-ffa0b18015e3";

std::string Ev(const std::string& fields) {
  return std::string(R"({"Event":{"uuid":")") + kU + "\"" + (fields.empty() ? "" : "," + fields) + "}}";
}

struct Case {
  std::string name;
  std::string input;
  ErrorCode code;
  std::string where;
  std::string message_part;
};

std::vector<Case> Cases() {
  std::string deep(200, '[');
  std::string big =
      "{\"Event\":{\"uuid\":\"" + std::string(kU) + "\",\"info\":\"" + std::string(5000, 'x') + "\"}}";
  return {
      {"empty", "", ErrorCode::kParse, "byte 0", "empty document"},
      {"truncated", R"({"Event":{"uuid":)", ErrorCode::kParse, "byte 17", "malformed JSON"},
      {"trailing_garbage", Ev("") + "xyz", ErrorCode::kParse, "byte 57", "malformed JSON"},
      {"two_documents", Ev("") + Ev(""), ErrorCode::kParse, "byte 57", "malformed JSON"},
      {"bad_token", R"({"Event":{"uuid":tru}})", ErrorCode::kParse, "byte 17", "malformed JSON"},
      {"nan", R"({"Event":{"distribution":NaN}})", ErrorCode::kParse, "byte 25", "malformed JSON"},
      {"invalid_utf8", std::string("{\"Event\":{\"info\":\"\xff\xfe\"}}"), ErrorCode::kParse, "byte 18",
       "malformed JSON"},
      {"too_deep", deep, ErrorCode::kLimitExceeded, "byte 64", "nesting deeper than the limit of 64"},
      {"too_big", big, ErrorCode::kLimitExceeded, "byte 4096", "document exceeds"},
      {"string_too_long", Ev("\"comment\":\"" + std::string(300, 'y') + "\""), ErrorCode::kLimitExceeded,
       "Event.comment", "string longer than the limit of 256"},
      {"not_an_object", "[1,2]", ErrorCode::kParse, "$", "expected an event object, found array"},
      {"event_is_string", R"({"Event":"x"})", ErrorCode::kParse, "Event",
       "expected an event object, found string"},
      {"response_not_list", R"({"response":{"Event":{}}})", ErrorCode::kParse, "response",
       "expected a list of exactly one event"},
      {"response_two_events", R"({"response":[{},{}]})", ErrorCode::kParse, "response", "of 2"},
      {"missing_uuid", R"({"Event":{"info":"x"}})", ErrorCode::kParse, "Event.uuid",
       "expected a uuid, found nothing"},
      {"bad_uuid", R"({"Event":{"uuid":"not-a-uuid"}})", ErrorCode::kParse, "Event.uuid",
       "expected a uuid, found string \"not-a-uuid\""},
      {"uuid_number", R"({"Event":{"uuid":7}})", ErrorCode::kParse, "Event.uuid", "found number 7"},
      {"event_distribution_5", Ev(R"("distribution":"5")"), ErrorCode::kParse, "Event.distribution",
       "0..4, found 5"},
      {"event_distribution_negative", Ev(R"("distribution":-1)"), ErrorCode::kParse, "Event.distribution",
       "0..4, found -1"},
      {"distribution_word", Ev(R"("distribution":"all")"), ErrorCode::kParse, "Event.distribution",
       "expected an integer, found string \"all\""},
      {"distribution_float", Ev(R"("distribution":1.5)"), ErrorCode::kParse, "Event.distribution",
       "expected an integer"},
      {"sg_without_group", Ev(R"("distribution":"4","sharing_group_id":"0")"), ErrorCode::kParse,
       "Event.distribution", "needs a sharing_group_id"},
      {"timestamp_negative", Ev(R"("timestamp":"-5")"), ErrorCode::kParse, "Event.timestamp", "found -5"},
      {"timestamp_words", Ev(R"("timestamp":"yesterday")"), ErrorCode::kParse, "Event.timestamp",
       "expected an integer"},
      {"timestamp_overflow", Ev(R"("timestamp":"99999999999999999999999")"), ErrorCode::kParse,
       "Event.timestamp", "expected an integer"},
      {"published_word", Ev(R"("published":"yes")"), ErrorCode::kParse, "Event.published",
       "expected a boolean"},
      {"info_number", Ev(R"("info":3)"), ErrorCode::kParse, "Event.info",
       "expected a string, found number 3"},
      {"orgc_string", Ev(R"("Orgc":"ORG1")"), ErrorCode::kParse, "Event.Orgc",
       "expected an organisation object"},
      {"orgc_bad_uuid", Ev(R"("Orgc":{"uuid":"x"})"), ErrorCode::kParse, "Event.Orgc.uuid",
       "expected a uuid"},
      {"attributes_object", Ev(R"("Attribute":{"a":1})"), ErrorCode::kParse, "Event.Attribute",
       "expected an array, found object"},
      {"attribute_not_object", Ev(R"("Attribute":[{},7])"), ErrorCode::kParse, "Event.Attribute[1]",
       "expected an object, found number 7"},
      {"attribute_distribution_6", Ev(R"("Attribute":[{"distribution":"3"},{"distribution":"6"}])"),
       ErrorCode::kParse, "Event.Attribute[1].distribution", "0..5, found 6"},
      {"attribute_bad_uuid", Ev(R"("Attribute":[{"uuid":"zz"}])"), ErrorCode::kParse,
       "Event.Attribute[0].uuid", "expected a uuid"},
      // Items are checked without their paths and named only once one fails: the first to fail is
      // the one named, with its own fault, not a later one's.
      {"first_of_two_bad_attributes",
       Ev(R"("Attribute":[{"uuid":"c3e8b3a2-5f4b-4d1e-9a0f-0c2a1b3c4d5e"},{"to_ids":"maybe"},{"uuid":"zz"}])"),
       ErrorCode::kParse, "Event.Attribute[1].to_ids", "expected a boolean"},
      {"attribute_to_ids", Ev(R"("Attribute":[{"to_ids":"maybe"}])"), ErrorCode::kParse,
       "Event.Attribute[0].to_ids", "expected a boolean"},
      {"attribute_deleted", Ev(R"("Attribute":[{"deleted":2}])"), ErrorCode::kParse,
       "Event.Attribute[0].deleted", "expected a boolean"},
      {"attribute_timestamp_text", Ev(R"("Attribute":[{},{"timestamp":"soon"}])"), ErrorCode::kParse,
       "Event.Attribute[1].timestamp", "expected an integer"},
      {"attribute_type", Ev(R"("Attribute":[{"type":["ip-dst"]}])"), ErrorCode::kParse,
       "Event.Attribute[0].type", "expected an attribute type"},
      {"attribute_sg_missing", Ev(R"("Attribute":[{"distribution":4}])"), ErrorCode::kParse,
       "Event.Attribute[0].distribution", "needs a sharing_group_id"},
      {"object_attribute_distribution", Ev(R"("Object":[{"Attribute":[{},{},{"distribution":"9"}]}])"),
       ErrorCode::kParse, "Event.Object[0].Attribute[2].distribution", "0..5, found 9"},
      {"object_template_uuid", Ev(R"("Object":[{"template_uuid":"abc"}])"), ErrorCode::kParse,
       "Event.Object[0].template_uuid", "expected a uuid"},
      {"reference_uuid", Ev(R"("Object":[{"ObjectReference":[{"referenced_uuid":"q"}]}])"), ErrorCode::kParse,
       "Event.Object[0].ObjectReference[0].referenced_uuid", "expected a uuid"},
      {"report_distribution", Ev(R"("EventReport":[{"distribution":"7"}])"), ErrorCode::kParse,
       "Event.EventReport[0].distribution", "found 7"},
      {"tag_list_string", Ev(R"("Tag":"tlp:red")"), ErrorCode::kParse, "Event.Tag",
       "expected an array of tags"},
      {"tag_without_name", Ev(R"("Tag":[{"name":"a"},{"colour":"#fff"}])"), ErrorCode::kParse,
       "Event.Tag[1].name", "expected a tag name"},
      {"tag_name_number", Ev(R"("Tag":[{"name":1}])"), ErrorCode::kParse, "Event.Tag[0].name",
       "expected a string"},
      {"tag_local_word", Ev(R"("Tag":[{"name":"a","local":"sometimes"}])"), ErrorCode::kParse,
       "Event.Tag[0].local", "expected a boolean"},
      {"attribute_tag_local", Ev(R"("Attribute":[{"Tag":[{"name":"a","local":5}]}])"), ErrorCode::kParse,
       "Event.Attribute[0].Tag[0].local", "expected a boolean"},
      {"eventtag_nested", Ev(R"("EventTag":[{"Tag":"x"}])"), ErrorCode::kParse, "Event.EventTag[0].Tag",
       "expected a tag object"},
      {"sharing_group_string", Ev(R"("SharingGroup":"sg")"), ErrorCode::kParse, "Event.SharingGroup",
       "expected a sharing group object"},
      {"sg_roaming_word", Ev(R"("SharingGroup":{"roaming":"often"})"), ErrorCode::kParse,
       "Event.SharingGroup.roaming", "expected a boolean"},
      {"sg_server_all_orgs", Ev(R"("SharingGroup":{"SharingGroupServer":[{"all_orgs":"x"}]})"),
       ErrorCode::kParse, "Event.SharingGroup.SharingGroupServer[0].all_orgs", "expected a boolean"},
      {"sg_org_uuid", Ev(R"("SharingGroup":{"SharingGroupOrg":[{"Organisation":{"uuid":"bad"}}]})"),
       ErrorCode::kParse, "Event.SharingGroup.SharingGroupOrg[0].Organisation.uuid", "expected a uuid"},
      {"sighting_date", Ev(R"("Attribute":[{"Sighting":[{"date_sighting":"then"}]}])"), ErrorCode::kParse,
       "Event.Attribute[0].Sighting[0].date_sighting", "expected an integer"},
      {"response_bare_bad", R"({"response":[{"uuid":"x"}]})", ErrorCode::kParse, "response[0].uuid",
       "expected a uuid"},
  };
}

TEST(MispHostileInputTest, EachIsRefusedWithItsExactPlace) {
  DecodeOptions options;
  options.limits.max_document_bytes = 4096;
  options.limits.max_string_bytes = 256;
  auto cases = Cases();
  ASSERT_GE(cases.size(), 30u);
  for (const auto& c : cases) {
    auto r = EventDocument::Parse(c.input, options);
    ASSERT_FALSE(r.ok()) << c.name << " was accepted";
    EXPECT_EQ(r.error().code, c.code) << c.name << ": " << r.error().ToString();
    EXPECT_EQ(r.error().where, c.where) << c.name << ": " << r.error().ToString();
    EXPECT_NE(r.error().message.find(c.message_part), std::string::npos)
        << c.name << ": message was: " << r.error().message;
  }
}

TEST(MispHostileInputTest, DuplicateKeysKeepOneValueAsPhpDoes) {
  // PHP's json_decode keeps the last of duplicate keys; whatever Boost keeps, the document must not
  // hold both (a policy reading the first and MISP the second would disagree).
  auto r = EventDocument::Parse(Ev(R"("distribution":"0","distribution":"3")"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->event().json().size(), 2u);
}

TEST(MispHostileInputTest, AMillionTinyElementsStayWithinTheSizeLimit) {
  std::string doc = "[";
  for (int i = 0; i < 200000; ++i) doc += "[],";
  doc += "[]]";
  JsonLimits limits;
  limits.max_document_bytes = 100000;
  auto r = ParseJson(doc, limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
}

// Issue 23 item 4: a document's cost in memory is bounded, not only its bytes. Tiny elements cost
// far more in memory than on the wire.
std::string TinyElements(int n) {
  std::string doc = "[";
  for (int i = 0; i < n; ++i) doc += R"({"a":[1,2]},)";
  doc += "{}]";
  return doc;
}

TEST(MispHostileInputTest, ManyTinyElementsAreRefusedAtTheMemoryLimitNotAfter) {
  std::string doc = TinyElements(200000);  // 2.4 MB on the wire
  JsonLimits limits;
  limits.max_memory_bytes = 4 << 20;
  JsonReader reader(limits);
  Status s = reader.Write(doc);
  if (s.ok()) s = reader.Finish().ok() ? Status() : reader.Finish().error();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kLimitExceeded);
  EXPECT_NE(s.error().message.find("more than the limit of 4194304 bytes of memory"), std::string::npos)
      << s.error().ToString();
  EXPECT_LE(reader.memory_used(), std::size_t{4} << 20) << "the arena is given back on refusal";
  limits.max_memory_bytes = 256 << 20;
  auto fits = ParseJson(doc, limits);
  EXPECT_TRUE(fits.ok()) << "the same document within a larger limit";
}

TEST(MispHostileInputTest, DocumentsInFlightShareOneBudgetAndGiveItBackWhenFreed) {
  std::string doc = TinyElements(150000);
  JsonReader probe;
  ASSERT_TRUE(probe.Write(doc).ok());
  const std::size_t one = probe.memory_used();  // what one such tree costs
  auto budget = std::make_shared<MemoryBudget>(one + one / 2);
  JsonLimits limits;
  limits.budget = budget;
  {
    auto first = ParseJson(doc, limits);
    ASSERT_TRUE(first.ok()) << first.error().ToString();
    EXPECT_GT(budget->in_use(), std::size_t{1} << 20) << "the held tree is charged";
    auto second = ParseJson(doc, limits);
    ASSERT_FALSE(second.ok()) << "two such trees do not fit the shared budget";
    EXPECT_NE(second.error().message.find("shared budget"), std::string::npos) << second.error().ToString();
  }  // the first tree freed: its memory returns to the budget
  EXPECT_EQ(budget->in_use(), 0u);
  EXPECT_TRUE(ParseJson(doc, limits).ok());
  EXPECT_EQ(budget->in_use(), 0u);
}

// ArenaOwner::kCaller (MispClient::RestSearch): the values hold no count of their arena and free
// nothing themselves; the memory goes back when the caller's handle goes. With kTree, the last
// value gives it back.
TEST(MispHostileInputTest, ACallerOwnedArenaGoesWithItsHandleNotWithItsValues) {
  std::string doc = TinyElements(1000);
  auto budget = std::make_shared<MemoryBudget>(std::size_t{64} << 20);
  JsonLimits limits;
  limits.budget = budget;
  {
    JsonReader reader(limits, ArenaOwner::kCaller);
    ASSERT_TRUE(reader.Write(doc).ok());
    auto tree = reader.Finish();
    ASSERT_TRUE(tree.ok()) << tree.error().ToString();
    std::shared_ptr<const void> arena = reader.TakeArena();
    ASSERT_NE(arena, nullptr);
    EXPECT_FALSE(tree->storage().is_shared()) << "no count taken for each value";
    EXPECT_TRUE(tree->storage().is_not_shared_and_deallocate_is_trivial())
        << "freed whole, not value by value";
    { json::value moved = std::move(*tree); }
    tree = json::value();
    EXPECT_GT(budget->in_use(), 0u) << "the values are gone, the arena is not";
    arena.reset();
    EXPECT_EQ(budget->in_use(), 0u) << "the arena went with its handle";
  }
  {
    JsonReader reader(limits);
    ASSERT_TRUE(reader.Write(doc).ok());
    auto tree = reader.Finish();
    ASSERT_TRUE(tree.ok());
    EXPECT_EQ(reader.TakeArena(), nullptr) << "the tree keeps its own arena";
    EXPECT_TRUE(tree->storage().is_shared());
    EXPECT_GT(budget->in_use(), 0u);
  }
  EXPECT_EQ(budget->in_use(), 0u);
}

}  // namespace
}  // namespace sgsync::misp
