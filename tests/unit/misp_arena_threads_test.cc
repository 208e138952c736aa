// The arena of one parsed answer, released by events on different threads: what the engine does
// with the events of one bulk restSearch. Its point is the tsan preset (label tsan): Boost.JSON
// counts the arena's holders inside a library built without ThreadSanitizer, so without the
// arena's annotations (misp/json.cc) TSan reports the last holder's destruction of the arena as a
// race with the other threads' last uses (docs/reliability.md, "Sanitizers").
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "misp/event.h"
#include "tests/support/misp_answers.h"

namespace sgsync::misp {
namespace {

TEST(MispArenaThreadsTest, TheLastEventOfAnAnswerToBeFreedFreesItsArenaAfterTheOthersOnOtherThreads) {
  constexpr int kEvents = 4;
  const std::string answer = sgsync::testing::RestSearchAnswerOf(kEvents);
  // Every value moved from keeps the arena: the answer, its list and the events taken out of it
  // are all gone when this ends, and only `events` holds the arena.
  std::vector<json::object> events = [&answer] {
    std::vector<json::object> taken;
    auto parsed = ParseJson(answer);
    EXPECT_TRUE(parsed.ok()) << parsed.error().ToString();
    if (!parsed.ok()) return taken;
    auto list = DecodeEventList(std::move(*parsed));
    EXPECT_TRUE(list.ok()) << list.error().ToString();
    if (!list.ok()) return taken;
    for (auto& doc : *list) taken.push_back(std::move(doc).TakeEvent());
    return taken;
  }();
  ASSERT_EQ(events.size(), static_cast<std::size_t>(kEvents));

  // Each thread changes its event (the arena allocates under its lock) and frees it. Whichever
  // thread is last frees the arena too; nothing of the test's own orders that after the others.
  std::vector<std::thread> threads;
  for (int i = 0; i < kEvents; ++i) {
    threads.emplace_back([i, e = std::optional<json::object>(std::move(events[i]))]() mutable {
      (*e)["changed_by"] = "thread " + std::to_string(i);
      EXPECT_EQ(e->at("info").as_string(), "e" + std::to_string(i));
      e.reset();
    });
  }
  events.clear();
  for (auto& t : threads) t.join();
}

}  // namespace
}  // namespace sgsync::misp
