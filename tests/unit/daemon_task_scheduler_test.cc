// The scheduler that every link's runs take turns on (daemon/task_scheduler.h): a fixed number of
// workers, a task never in two turns at once, and a task due again at once queued behind the others.
#include "daemon/task_scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sgsync::daemon {
namespace {

using Clock = TaskScheduler::Clock;
using std::chrono::milliseconds;

TEST(DaemonTaskSchedulerTest, ManyTasksRunOnNoMoreWorkersThanConfigured) {
  TaskScheduler s(3);
  std::atomic<int> turns{0};
  std::atomic<int> concurrent{0}, most{0};
  for (int i = 0; i < 50; ++i) {
    s.Add("t" + std::to_string(i),
          [&] {
            int now = ++concurrent;
            for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {
            }
            std::this_thread::sleep_for(milliseconds(2));
            --concurrent;
            ++turns;
            return TaskScheduler::Next{Clock::now() + milliseconds(5)};
          },
          Clock::now());
  }
  s.Start();
  EXPECT_EQ(s.workers(), 3);
  while (turns.load() < 200) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_TRUE(s.Stop(Clock::now() + std::chrono::seconds(5)));
  EXPECT_LE(most.load(), 3);
  EXPECT_EQ(most.load(), s.most_busy());
  EXPECT_GE(most.load(), 2);  // it does run tasks side by side
}

TEST(DaemonTaskSchedulerTest, ATaskIsNeverInTwoTurnsAtOnce) {
  TaskScheduler s(4);
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  std::atomic<int> turns{0};
  s.Add(
      "only",
      [&] {
        if (++inside > 1) overlapped = true;
        std::this_thread::sleep_for(milliseconds(3));
        --inside;
        ++turns;
        // Due again at once: the other workers are free to take it, and must not.
        return TaskScheduler::Next{Clock::now()};
      },
      Clock::now());
  s.Add("other", [] { return TaskScheduler::Next{Clock::now() + milliseconds(1)}; }, Clock::now());
  s.Start();
  while (turns.load() < 30) std::this_thread::sleep_for(milliseconds(2));
  s.Stop(Clock::now() + std::chrono::seconds(5));
  EXPECT_FALSE(overlapped.load());
}

// One worker, one task that always has more to do (a link with a large backlog yielding at the end
// of each time slice) and tasks that become due while it works: each of them has its turn before
// the busy one's next, instead of waiting for the busy one to run out of work.
TEST(DaemonTaskSchedulerTest, ATaskDueAgainAtOnceWaitsBehindTheTasksAlreadyDue) {
  TaskScheduler s(1);
  std::mutex mu;
  std::vector<std::string> order;
  auto record = [&](const std::string& name) {
    std::lock_guard lock(mu);
    order.push_back(name);
  };
  const auto start = Clock::now();
  s.Add(
      "busy",
      [&] {
        record("busy");
        std::this_thread::sleep_for(milliseconds(20));
        return TaskScheduler::Next{Clock::now()};
      },
      start);
  std::atomic<int> small_turns{0};
  for (const char* name : {"a", "b", "c"}) {
    s.Add(
        name,
        [&, name] {
          record(name);
          ++small_turns;
          return TaskScheduler::Next{Clock::now() + std::chrono::hours(1)};
        },
        start + milliseconds(10));  // due while "busy" is in its first turn
  }
  s.Start();
  while (small_turns.load() < 3) std::this_thread::sleep_for(milliseconds(2));
  s.Stop(Clock::now() + std::chrono::seconds(5));
  ASSERT_GE(order.size(), 4u);
  EXPECT_EQ(order[0], "busy");
  EXPECT_EQ((std::vector<std::string>{order[1], order[2], order[3]}), (std::vector<std::string>{"a", "b", "c"}));
}

// Four workers, six links continuing backlogs (each turn a continuation again): continuations never
// take more than three workers, so a link looking for changes always finds one.
TEST(DaemonTaskSchedulerTest, ContinuationsNeverTakeTheLastWorker) {
  TaskScheduler s(4);
  std::atomic<int> regular_turns{0};
  std::atomic<bool> stop{false};
  for (int i = 0; i < 6; ++i) {
    s.Add(
        "backlog " + std::to_string(i),
        [&] {
          std::this_thread::sleep_for(milliseconds(30));
          return TaskScheduler::Next{Clock::now(), !stop.load()};
        },
        Clock::now());
  }
  s.Add(
      "small changes",
      [&] {
        ++regular_turns;
        return TaskScheduler::Next{Clock::now() + milliseconds(5)};
      },
      Clock::now() + milliseconds(40));
  s.Start();
  while (regular_turns.load() < 20) std::this_thread::sleep_for(milliseconds(2));
  stop = true;
  s.Stop(Clock::now() + std::chrono::seconds(5));
  EXPECT_EQ(s.most_continuations(), 3) << "all workers but one";
}

// One worker, two links continuing backlogs in 50 ms turns, and a link's regular turn due at 75 ms,
// after backlog 1 has been waiting since 50 ms: the regular turn goes first (by due time alone,
// backlog 1 would).
TEST(DaemonTaskSchedulerTest, ARegularTurnGoesBeforeAContinuationThatWaitedLonger) {
  TaskScheduler s(1);
  std::mutex mu;
  std::vector<std::string> order;
  std::atomic<bool> regular_done{false};
  const auto start = Clock::now();
  for (const char* name : {"backlog 1", "backlog 2"}) {
    s.Add(
        name,
        [&, name] {
          {
            std::lock_guard lock(mu);
            order.push_back(name);
          }
          std::this_thread::sleep_for(milliseconds(50));
          return TaskScheduler::Next{Clock::now(), true};
        },
        start);
  }
  s.Add(
      "small change",
      [&] {
        {
          std::lock_guard lock(mu);
          order.push_back("small change");
        }
        regular_done = true;
        return TaskScheduler::Next{Clock::now() + std::chrono::hours(1)};
      },
      start + milliseconds(75));
  s.Start();
  while (!regular_done.load()) std::this_thread::sleep_for(milliseconds(2));
  s.Stop(Clock::now() + std::chrono::seconds(5));
  std::lock_guard lock(mu);
  ASSERT_GE(order.size(), 3u);
  EXPECT_EQ((std::vector<std::string>{order[0], order[1], order[2]}),
            (std::vector<std::string>{"backlog 1", "backlog 2", "small change"}));
}

TEST(DaemonTaskSchedulerTest, WakeMakesAWaitingTaskDueNow) {
  TaskScheduler s(2);
  std::atomic<int> turns{0};
  s.Add(
      "sleepy",
      [&] {
        ++turns;
        return TaskScheduler::Next{Clock::now() + std::chrono::hours(1)};
      },
      Clock::now());
  s.Start();
  while (turns.load() < 1) std::this_thread::sleep_for(milliseconds(2));
  EXPECT_TRUE(s.Wake("sleepy"));
  EXPECT_FALSE(s.Wake("nobody"));
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (turns.load() < 2 && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(2));
  EXPECT_EQ(turns.load(), 2);
  s.Stop(Clock::now() + std::chrono::seconds(5));
}

TEST(DaemonTaskSchedulerTest, StopWaitsForTheTurnInHandUpToItsDeadline) {
  TaskScheduler s(1);
  // Shared with the turn: the worker left running outlives this test's frame.
  struct Flags {
    std::atomic<bool> release{false}, started{false}, returned{false};
  };
  auto flags = std::make_shared<Flags>();
  s.Add(
      "slow",
      [flags] {
        flags->started = true;
        while (!flags->release.load()) std::this_thread::sleep_for(milliseconds(2));
        flags->returned = true;
        return TaskScheduler::Next{Clock::now()};
      },
      Clock::now());
  s.Start();
  while (!flags->started.load()) std::this_thread::sleep_for(milliseconds(2));
  EXPECT_FALSE(s.Stop(Clock::now() + milliseconds(50)));  // the turn is still in hand: left running
  EXPECT_FALSE(flags->returned.load());
  flags->release = true;
  while (!flags->returned.load()) std::this_thread::sleep_for(milliseconds(2));
}

TEST(DaemonTaskSchedulerTest, StopReturnsAtOnceWhenNoTurnIsInHand) {
  TaskScheduler s(4);
  s.Add(
      "later", [] { return TaskScheduler::Next{Clock::now() + std::chrono::hours(1)}; },
      Clock::now() + std::chrono::hours(1));
  s.Start();
  EXPECT_TRUE(s.Stop(Clock::now() + std::chrono::seconds(5)));
}

}  // namespace
}  // namespace sgsync::daemon
