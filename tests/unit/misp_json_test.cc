#include <gtest/gtest.h>

#include "misp/json.h"

namespace sgsync::misp {
namespace {

json::value J(std::string_view s) { return json::parse(s); }

TEST(MispLooseTypingTest, IntegersAcceptNumbersAndDecimalStrings) {
  EXPECT_EQ(*ReadInt(J("7"), "x"), 7);
  EXPECT_EQ(*ReadInt(J("\"1617875568\""), "x"), 1617875568);
  EXPECT_EQ(*ReadInt(J("\"-3\""), "x"), -3);
  EXPECT_EQ(*ReadInt(J("18446744073709551615").is_uint64() ? J("9223372036854775807") : J("0"), "x"),
            INT64_MAX);
}

TEST(MispLooseTypingTest, IntegersRefuseEverythingElseWithThePath) {
  for (const char* bad : {"\"1.5\"", "\"\"", "\" 1\"", "\"1a\"", "true", "null", "[]", "{}", "1.5",
                          "18446744073709551615", "\"99999999999999999999\""}) {
    auto r = ReadInt(J(bad), "Event.timestamp");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().where, "Event.timestamp") << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kParse);
  }
}

TEST(MispLooseTypingTest, BooleansAcceptEveryFormMispSends) {
  for (const char* yes : {"true", "1", "\"1\"", "\"true\""}) {
    EXPECT_TRUE(*ReadBool(J(yes), "x")) << yes;
  }
  for (const char* no : {"false", "0", "\"0\"", "\"false\""}) {
    EXPECT_FALSE(*ReadBool(J(no), "x")) << no;
  }
  for (const char* bad : {"2", "\"yes\"", "null", "[]"}) {
    EXPECT_FALSE(ReadBool(J(bad), "x").ok()) << bad;
  }
}

TEST(MispLooseTypingTest, WritesUseMisp25Forms) {
  json::object o;
  WriteInt(o, "distribution", 4);
  WriteBool(o, "published", true);
  EXPECT_EQ(json::serialize(o), R"({"distribution":"4","published":true})");
}

TEST(MispLooseTypingTest, OptionalReadersTreatNullAndAbsenceAlike) {
  json::object o = J(R"({"a": null, "b": "5"})").get_object();
  EXPECT_FALSE(OptInt(o, "a", "E")->has_value());
  EXPECT_FALSE(OptInt(o, "missing", "E")->has_value());
  EXPECT_EQ(**OptInt(o, "b", "E"), 5);
  EXPECT_EQ(OptBool(o, "b", "E").error().where, "E.b");
}

TEST(MispJsonReaderTest, ChunkedInputGivesTheSameValueAsOneBuffer) {
  std::string doc =
      R"({"Event":{"info":"日本語","Attribute":[{"value":"a\"b","to_ids":"0"}],"n":12345678901}})";
  for (std::size_t chunk = 1; chunk <= doc.size(); ++chunk) {
    JsonReader reader;
    for (std::size_t i = 0; i < doc.size(); i += chunk) {
      ASSERT_TRUE(reader.Write(std::string_view(doc).substr(i, chunk)).ok());
    }
    auto v = reader.Finish();
    ASSERT_TRUE(v.ok()) << chunk;
    EXPECT_EQ(*v, json::parse(doc));
  }
}

TEST(MispJsonReaderTest, SizeLimitStopsReadingAtTheLimit) {
  JsonLimits limits;
  limits.max_document_bytes = 10;
  JsonReader reader(limits);
  ASSERT_TRUE(reader.Write("[1,2,3,").ok());
  auto s = reader.Write("4,5,6]");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(reader.bytes_seen(), 7u);
  EXPECT_FALSE(reader.Finish().ok()) << "a failed reader stays failed";
}

TEST(MispJsonReaderTest, SyntaxErrorsNameTheByteOffset) {
  auto r = ParseJson(R"({"a": [1, 2,, 3]})", {}, "events/view");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().where, "events/view: byte 12");
}

TEST(MispJsonReaderTest, UuidSyntax) {
  EXPECT_TRUE(IsUuid("326aa0b6-efbc-4b2a-9da5-ffa0b18015e3"));
  EXPECT_TRUE(IsUuid("326AA0B6-EFBC-4B2A-9DA5-FFA0B18015E3"));
  EXPECT_FALSE(IsUuid("326aa0b6efbc4b2a9da5ffa0b18015e3"));
  EXPECT_FALSE(IsUuid("326aa0b6-efbc-4b2a-9da5-ffa0b18015e"));
  EXPECT_FALSE(IsUuid("326aa0b6-efbc-4b2a-9da5-ffa0b18015eg"));
  EXPECT_FALSE(IsUuid("326aa0b6-efbc-4b2a+9da5-ffa0b18015e3"));
}

}  // namespace
}  // namespace sgsync::misp
