// Every JSON document in tests/data/fixtures/misp must survive parse -> serialize -> parse unchanged,
// keys in their original order, and every event among them must decode.
#include <gtest/gtest.h>

#include "misp/event.h"
#include "tests/support/files.h"

namespace sgsync::misp {
namespace {

namespace fs = std::filesystem;
using sgsync::testing::DataDir;
using sgsync::testing::FilesBelow;
using sgsync::testing::ReadFile;

// Same values, and the same keys in the same order at every level.
::testing::AssertionResult SameInOrder(const json::value& a, const json::value& b, const std::string& path) {
  if (a.kind() != b.kind()) return ::testing::AssertionFailure() << path << ": kind differs";
  if (a.is_object()) {
    const auto& oa = a.get_object();
    const auto& ob = b.get_object();
    if (oa.size() != ob.size()) return ::testing::AssertionFailure() << path << ": size differs";
    auto ib = ob.begin();
    for (const auto& kv : oa) {
      if (kv.key() != ib->key())
        return ::testing::AssertionFailure() << path << ": key order differs at " << kv.key();
      auto r = SameInOrder(kv.value(), ib->value(), Child(path, kv.key()));
      if (!r) return r;
      ++ib;
    }
    return ::testing::AssertionSuccess();
  }
  if (a.is_array()) {
    if (a.get_array().size() != b.get_array().size())
      return ::testing::AssertionFailure() << path << ": length differs";
    for (std::size_t i = 0; i < a.get_array().size(); ++i) {
      auto r = SameInOrder(a.get_array()[i], b.get_array()[i], Index(path, i));
      if (!r) return r;
    }
    return ::testing::AssertionSuccess();
  }
  if (a == b) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << path << ": " << Describe(a) << " != " << Describe(b);
}

// Keys in the order the text has them, read with a second, independent parser (Boost's DOM parser
// without our reader) so a bug in JsonReader cannot hide itself.
TEST(MispFixturesTest, EveryFixtureRoundTripsLosslessly) {
  auto files = FilesBelow(DataDir() / "fixtures/misp", ".json");
  ASSERT_GT(files.size(), 150u) << "fixtures not found under " << DataDir();
  for (const auto& file : files) {
    std::string text = ReadFile(file);
    auto parsed = ParseJson(text, {}, file.string());
    ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
    json::value reference = json::parse(text);
    EXPECT_TRUE(SameInOrder(reference, *parsed, "$")) << file;
    auto again = ParseJson(ToJson(*parsed));
    ASSERT_TRUE(again.ok()) << file;
    EXPECT_TRUE(SameInOrder(*parsed, *again, "$")) << file;
  }
}

TEST(MispFixturesTest, EveryFixtureEventDecodesAndSerialisesToTheSameDocument) {
  DecodeOptions options;
  options.require_uuid = false;  // feed-format and request documents
  int events = 0;
  for (const auto& file : FilesBelow(DataDir() / "fixtures/misp/events", ".json")) {
    std::string text = ReadFile(file);
    json::value root = json::parse(text);
    Result<std::vector<EventDocument>> docs = std::vector<EventDocument>();
    if (root.is_object() && root.get_object().contains("response") &&
        root.get_object()["response"].get_array().size() != 1) {
      docs = DecodeEventList(root, options);
    } else {
      auto one = EventDocument::FromJson(root, options);
      if (!one.ok()) {
        ADD_FAILURE() << file << ": " << one.error().ToString();
        continue;
      }
      EXPECT_TRUE(SameInOrder(root, json::parse(one->Serialize()), "$")) << file;
      std::vector<EventDocument> v;
      v.push_back(std::move(*one));
      docs = std::move(v);
    }
    ASSERT_TRUE(docs.ok()) << file << ": " << docs.error().ToString();
    events += static_cast<int>(docs->size());
  }
  EXPECT_GE(events, 60);
}

TEST(MispFixturesTest, EveryRealEventResponseDecodesWithUuids) {
  int seen = 0;
  for (const auto& file : FilesBelow(DataDir() / "fixtures/misp/real-2.5.1/api", ".json")) {
    json::value capture = json::parse(ReadFile(file));
    const json::value& body = capture.at("response").at("body");
    if (!body.is_object() || !body.get_object().contains("Event")) continue;
    auto doc = EventDocument::FromJson(body);
    ASSERT_TRUE(doc.ok()) << file << ": " << doc.error().ToString();
    EXPECT_TRUE(SameInOrder(body, json::parse(doc->Serialize()), "$")) << file;
    ++seen;
  }
  EXPECT_GE(seen, 8);
}

struct Expectation {
  const char* file;
  const char* uuid;
  int attributes;
  int objects;
  std::optional<int> distribution;
};

TEST(MispFixturesTest, TypedAccessorsReadHandPickedValues) {
  DecodeOptions options;
  options.require_uuid = false;
  const Expectation cases[] = {
      {"events/pymisp/japanese_test.json", nullptr, -1, -1, 1},
      {"events/misp/event.json", nullptr, -1, -1, std::nullopt},
      {"events/eset/kamino.json", nullptr, -1, -1, std::nullopt},
  };
  for (const auto& c : cases) {
    std::string text = ReadFile(DataDir() / "fixtures/misp" / c.file);
    auto doc = EventDocument::Parse(text, options);
    ASSERT_TRUE(doc.ok()) << c.file;
    json::value ref = json::parse(text);
    const json::object& e = ref.at("Event").get_object();
    EventView v = doc->event();
    EXPECT_EQ(v.uuid(), StringOr(e, "uuid")) << c.file;
    EXPECT_EQ(v.info(), StringOr(e, "info")) << c.file;
    auto count = [](const json::object& o, const char* key) {
      auto* a = o.if_contains(key);
      return a ? a->get_array().size() : 0u;
    };
    EXPECT_EQ(v.attribute_views().size(), count(e, "Attribute")) << c.file;
    EXPECT_EQ(v.object_views().size(), count(e, "Object")) << c.file;
    if (c.distribution) {
      EXPECT_EQ(v.distribution(), c.distribution) << c.file;
    }
  }

  // The real pull form: a soft-deleted attribute travels with deleted=true, and no local tag.
  json::value capture =
      json::parse(ReadFile(DataDir() / "fixtures/misp/real-2.5.1/api/events-view-pull-form.json"));
  auto doc = EventDocument::FromJson(capture.at("response").at("body"));
  ASSERT_TRUE(doc.ok());
  int deleted = 0;
  for (auto& a : doc->event().attribute_views()) deleted += a.deleted() ? 1 : 0;
  EXPECT_EQ(deleted, 1);
  for (auto& t : doc->event().tags()) {
    EXPECT_FALSE(t.local()) << t.name();
  }
}

}  // namespace
}  // namespace sgsync::misp
