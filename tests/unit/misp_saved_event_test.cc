// What a receiving MISP says it saved, read from its add/edit answer as it arrives
// (misp::SavedEventReader): the event's uuid and id and its elements' uuids, nothing else kept.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "common/encoding.h"
#include "misp/elements.h"
#include "misp/saved_event.h"
#include "tests/support/files.h"

namespace sgsync::misp {
namespace {

using sgsync::testing::DataDir;
using sgsync::testing::ReadFile;

// Every way of cutting the answer into chunks must read the same.
Result<SavedEvent> ReadInChunks(std::string_view answer, std::size_t chunk) {
  SavedEventReader reader;
  for (std::size_t at = 0; at < answer.size(); at += chunk) {
    SGSYNC_TRY_STATUS(reader.Write(answer.substr(at, chunk)));
  }
  return reader.Finish();
}

constexpr const char* kAnswer = R"({"Event": {"id": "394", "uuid": "E-UUID",
  "Org": {"uuid": "org-uuid"}, "Orgc": {"uuid": "orgc-uuid"},
  "SharingGroup": {"uuid": "sg-uuid", "SharingGroupOrg": [{"Organisation": {"uuid": "sg-org"}}]},
  "Tag": [{"name": "tlp:green", "uuid": "tag-uuid"}],
  "Attribute": [{"uuid": "A1", "Tag": [{"uuid": "attr-tag"}], "Sighting": [{"uuid": "sighting"}]},
                {"value": "no uuid"}, {"uuid": 7}],
  "Object": [{"uuid": "o1", "ObjectReference": [{"uuid": "ref"}],
              "Attribute": [{"uuid": "oa1"}, {"uuid": "oa2", "ShadowAttribute": [{"uuid": "proposal"}]}]}],
  "EventReport": [{"uuid": "r1"}],
  "ShadowAttribute": [{"uuid": "event-proposal"}],
  "RelatedEvent": [{"Event": {"uuid": "related"}}]}})";

TEST(MispSavedEventTest, KeepsTheEventsUuidAndIdAndOnlyItsElementsUuidsLowerCased) {
  auto saved = ReadSavedEvent(kAnswer);
  ASSERT_TRUE(saved.ok()) << saved.error().ToString();
  EXPECT_TRUE(saved->has_event);
  EXPECT_EQ(saved->uuid, "E-UUID");
  EXPECT_EQ(saved->id, "394");
  EXPECT_EQ(saved->element_uuids.ToStrings(), (std::set<std::string>{"a1", "o1", "oa1", "oa2", "r1"}))
      << "tags, sightings, proposals, references, organisations, groups and related events are not elements";
}

TEST(MispSavedEventTest, ReadsTheSameWhateverTheChunksTheAnswerArrivesIn) {
  auto whole = ReadSavedEvent(kAnswer);
  ASSERT_TRUE(whole.ok());
  for (std::size_t chunk : {1u, 2u, 3u, 7u, 64u}) {
    auto cut = ReadInChunks(kAnswer, chunk);
    ASSERT_TRUE(cut.ok()) << chunk << ": " << cut.error().ToString();
    EXPECT_EQ(cut->uuid, whole->uuid) << chunk;
    EXPECT_EQ(cut->id, whole->id) << chunk;
    EXPECT_EQ(cut->element_uuids.ToStrings(), whole->element_uuids.ToStrings()) << chunk;
  }
}

TEST(MispSavedEventTest, ReadsRealMispsAddAnswerAsTheTreeOfItWould) {
  const std::string capture =
      ReadFile(DataDir() / "fixtures/misp/real-2.5.1/api/events-add-full-response.json");
  const json::object event = json::parse(capture).at("response").at("body").at("Event").as_object();
  const std::string answer = json::serialize(json::parse(capture).at("response").at("body"));
  auto saved = ReadInChunks(answer, 100);
  ASSERT_TRUE(saved.ok()) << saved.error().ToString();
  EXPECT_EQ(saved->uuid, "d1524953-10f0-435b-b501-81922cfb2316");
  EXPECT_EQ(saved->id, "394");
  EXPECT_EQ(saved->element_uuids.ToStrings(), std::set<std::string>{"55172a7e-dbba-41aa-8759-814e1983d0cb"});
  EXPECT_TRUE(ElementsMissingFrom(event, saved->element_uuids).empty());
  EXPECT_EQ(ElementsMissingFrom(event, saved->element_uuids).size(),
            ElementsMissingFrom(event, event).size());
}

TEST(MispSavedEventTest, ANumericIdIsReadAsItsDigits) {
  auto saved = ReadSavedEvent(R"({"Event": {"id": 12, "uuid": "u"}})");
  ASSERT_TRUE(saved.ok());
  EXPECT_EQ(saved->id, "12");
}

TEST(MispSavedEventTest, AnAnswerWithoutAnEventKeepsItsHeadForTheErrorText) {
  const std::string error = R"({"name": "Could not add Event", "message": "Could not add Event", "errors": {}})";
  auto saved = ReadSavedEvent(error);
  ASSERT_TRUE(saved.ok());
  EXPECT_FALSE(saved->has_event);
  EXPECT_EQ(saved->head, error);
  auto list = ReadSavedEvent(R"([{"Event": {"uuid": "u"}}])");
  ASSERT_TRUE(list.ok());
  EXPECT_FALSE(list->has_event) << "only {\"Event\": {...}} at the root is a saved event";
  auto scalar = ReadSavedEvent(R"({"Event": "u"})");
  ASSERT_TRUE(scalar.ok());
  EXPECT_FALSE(scalar->has_event);
}

TEST(MispSavedEventTest, TheHeadIsCutAtItsLimitWhateverTheAnswersSize) {
  std::string big = R"({"name": "Could not add Event", "message": ")" + std::string(200000, 'x') + R"("})";
  auto saved = ReadInChunks(big, 4096);
  ASSERT_TRUE(saved.ok());
  EXPECT_FALSE(saved->has_event);
  EXPECT_EQ(saved->head.size(), SavedEvent::kHeadBytes);
}

// The head serves only an answer without the event; an add's answer is the whole event, which was
// copied into it (up to 64 KiB) on every write.
TEST(MispSavedEventTest, OnceTheEventHasBegunTheRestOfTheAnswerIsNotCopiedIntoTheHead) {
  std::string big = R"({"Event": {"uuid": "u", "info": ")" + std::string(200000, 'x') + R"("}})";
  auto saved = ReadInChunks(big, 4096);
  ASSERT_TRUE(saved.ok());
  EXPECT_TRUE(saved->has_event);
  EXPECT_EQ(saved->uuid, "u");
  EXPECT_EQ(saved->head.size(), 4096u);  // the chunk in which the event began, and nothing after
}

TEST(MispSavedEventTest, RefusesMalformedTruncatedTooDeepAndOverlongAnswersNamingTheByte) {
  auto truncated = ReadSavedEvent(R"({"Event": {"uuid": "u", "Attribute": [)");
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.error().code, ErrorCode::kParse);
  EXPECT_NE(truncated.error().where.find("byte"), std::string::npos) << truncated.error().ToString();

  auto garbage = ReadSavedEvent(R"({"Event": {"uuid": "u"}} trailing)");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.error().code, ErrorCode::kParse);

  JsonLimits shallow;
  shallow.max_depth = 4;
  auto deep = ReadSavedEvent(R"({"Event": {"Object": [{"Attribute": [{"uuid": "x"}]}]}})", shallow);
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.error().code, ErrorCode::kLimitExceeded);

  JsonLimits small;
  small.max_string_bytes = 16;
  auto longer = ReadSavedEvent(R"({"Event": {"info": "a string of more than sixteen bytes"}})", small);
  ASSERT_FALSE(longer.ok());
  EXPECT_EQ(longer.error().code, ErrorCode::kLimitExceeded);

  JsonLimits tiny;
  tiny.max_document_bytes = 10;
  auto large = ReadSavedEvent(kAnswer, tiny);
  ASSERT_FALSE(large.ok());
  EXPECT_EQ(large.error().code, ErrorCode::kLimitExceeded);
}

TEST(MispUuidSetTest, FindsAUuidInEitherCaseAndKeepsTextThatIsNotAUuid) {
  UuidSet set;
  set.Insert("55172A7E-DBBA-41AA-8759-814E1983D0CB");
  set.Insert("not-a-uuid");
  set.Insert("55172a7e-dbba-41aa-8759-814e1983d0cb");  // the same uuid again
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(set.Contains("55172a7e-dbba-41aa-8759-814e1983d0cb"));
  EXPECT_TRUE(set.Contains("55172a7e-DBBA-41aa-8759-814e1983d0cb"));
  EXPECT_FALSE(set.Contains("55172a7e-dbba-41aa-8759-814e1983d0cc"));
  EXPECT_TRUE(set.Contains("NOT-A-UUID"));
  EXPECT_FALSE(set.Contains(""));
  EXPECT_EQ(set.ToStrings(), (std::set<std::string>{"55172a7e-dbba-41aa-8759-814e1983d0cb", "not-a-uuid"}));
}

// misp::SentElements decodes each sent uuid once, before the write, and looks the bytes up after it.
TEST(MispUuidSetTest, AUuidDecodedOnceIsFoundAsItsTextIs) {
  UuidSet set;
  set.Insert("55172A7E-DBBA-41AA-8759-814E1983D0CB");
  auto packed = UuidSet::Pack("55172a7e-dbba-41aa-8759-814e1983d0cb");
  ASSERT_TRUE(packed.has_value());
  EXPECT_TRUE(set.Contains(*packed));
  auto other = UuidSet::Pack("55172a7e-dbba-41aa-8759-814e1983d0cc");
  ASSERT_TRUE(other.has_value());
  EXPECT_FALSE(set.Contains(*other));
  EXPECT_FALSE(UuidSet::Pack("not-a-uuid").has_value());
  EXPECT_FALSE(UuidSet::Pack("55172a7e-dbba-41aa-8759-814e1983d0c").has_value());
}

// A uuid is packed into 16 bytes only when IsUuid accepts it: one byte off anywhere (a non-hex
// digit, a dash out of place, a missing dash) and the text is kept as text, not as a near-miss uuid.
TEST(MispUuidSetTest, TextOneByteOffAUuidIsKeptAsTextWhereverTheByteIs) {
  const std::string uuid = "55172a7e-dbba-41aa-8759-814e1983d0cb";
  for (std::size_t at = 0; at < uuid.size(); ++at) {
    for (char bad : {'g', 'G', '-', '/', ':', '@', '`', '\x80', 'a'}) {
      std::string off = uuid;
      off[at] = bad;
      if (IsUuid(off)) continue;  // a hex digit for another
      UuidSet set;
      set.Insert(off);
      EXPECT_FALSE(set.Contains(uuid)) << off;
      EXPECT_TRUE(set.Contains(off)) << off;
      EXPECT_EQ(set.ToStrings(), (std::set<std::string>{AsciiLower(off)})) << off;
    }
  }
  UuidSet set;
  set.Insert(uuid.substr(0, 35));
  set.Insert(uuid + "0");
  EXPECT_FALSE(set.Contains(uuid));
  EXPECT_EQ(set.size(), 2u);
}

TEST(MispSavedEventTest, AnOverlongUuidIsNotKeptSoItsElementCountsAsMissing) {
  const std::string overlong(100, 'a');
  auto saved = ReadSavedEvent(R"({"Event": {"Attribute": [{"uuid": ")" + overlong + R"("}]}})");
  ASSERT_TRUE(saved.ok());
  EXPECT_TRUE(saved->element_uuids.empty());
}

}  // namespace
}  // namespace sgsync::misp
