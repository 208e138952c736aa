#include "common/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

namespace sgsync {
namespace {

Result<int> ParsePositive(int x) {
  if (x <= 0) return Fail(ErrorCode::kInvalidArgument, "expected a positive number", "x");
  return x;
}

Result<int> DoubleIt(int x) {
  SGSYNC_TRY(int v, ParsePositive(x));
  return v * 2;
}

Status CheckEven(int x) {
  if (x % 2 != 0) return Fail(ErrorCode::kInvalidArgument, "odd");
  return {};
}

Status CheckBoth(int x) {
  SGSYNC_TRY_STATUS(CheckEven(x));
  SGSYNC_TRY_STATUS(ParsePositive(x));
  return {};
}

TEST(ResultTest, HoldsTheValueOnSuccess) {
  Result<std::string> r = std::string("abc");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "abc");
  EXPECT_EQ(r->size(), 3u);
}

TEST(ResultTest, HoldsCodeMessageAndWhereOnFailure) {
  Result<int> r = ParsePositive(-1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().where, "x");
  EXPECT_EQ(r.error().ToString(), "x: expected a positive number [invalid_argument]");
}

TEST(ResultTest, TryPropagatesTheFirstFailureUnchanged) {
  EXPECT_EQ(*DoubleIt(4), 8);
  Result<int> r = DoubleIt(0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "expected a positive number");
}

TEST(ResultTest, TryStatusStopsAtTheFirstFailingStep) {
  EXPECT_TRUE(CheckBoth(2).ok());
  EXPECT_EQ(CheckBoth(3).error().message, "odd");
  EXPECT_EQ(CheckBoth(-2).error().where, "x");
}

TEST(ResultTest, MoveOnlyValuesCanBeTakenOut) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ResultTest, ValueOrGivesTheFallbackOnlyOnFailure) {
  EXPECT_EQ(ParsePositive(5).value_or(9), 5);
  EXPECT_EQ(ParsePositive(-5).value_or(9), 9);
}

TEST(ResultTest, WithinJoinsPathsAndFileNames) {
  Error e = Fail(ErrorCode::kParse, "bad", "[3].distribution");
  EXPECT_EQ(e.Within("Event.Attribute").where, "Event.Attribute[3].distribution");
  Error f = Fail(ErrorCode::kParse, "bad", "link.url");
  EXPECT_EQ(f.Within("sgsync.toml:12").where, "sgsync.toml:12: link.url");
  EXPECT_EQ(Fail(ErrorCode::kParse, "bad").Within("a.json").where, "a.json");
}

TEST(ResultTest, EveryCodeHasADistinctName) {
  std::set<std::string_view> names;
  for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
    names.insert(ErrorCodeName(static_cast<ErrorCode>(c)));
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(ErrorCode::kInternal) + 1);
  EXPECT_EQ(names.count("unknown"), 0u);
}

TEST(ResultDeathTest, ReadingTheValueOfAFailureAborts) {
  Result<int> r = ParsePositive(-1);
  EXPECT_DEATH({ (void)r.value(); }, "value\\(\\) of a failed Result: x: expected a positive number");
}

TEST(ResultDeathTest, ReadingTheErrorOfASuccessAborts) {
  Status s;
  EXPECT_DEATH({ (void)s.error(); }, "error\\(\\) of a successful Result");
}

}  // namespace
}  // namespace sgsync
