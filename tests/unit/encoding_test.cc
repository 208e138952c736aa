#include "common/encoding.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

namespace sgsync {
namespace {

// misp-sim's new elements and the onboarding canary take their uuids from here: the canonical
// version 4 form, and two canaries must never share one.
TEST(RandomUuidTest, IsAVersion4UuidInCanonicalFormAndNeverRepeats) {
  const std::regex v4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string u = RandomUuid();
    EXPECT_TRUE(std::regex_match(u, v4)) << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace sgsync
