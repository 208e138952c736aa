// A child process writing ledger + queue transactions is killed with SIGKILL at random moments,
// 200 times. After each kill the database opens, passes PRAGMA integrity_check, holds every
// transaction the child reported committed, and holds no half-written one (a ledger row without its
// queue item or the reverse).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <set>
#include <thread>

#include "sqlite/sqlite.h"
#include "state/store.h"
#include "tests/support/files.h"

namespace sgsync::state {
namespace {

using sqlite::Database;
using sqlite::OpenOptions;

struct ChildRun {
  long last_acknowledged = -1;
  bool killed = false;
};

// Starts the writer; unless `during_startup`, waits for its first committed transaction (so every
// round kills a writer that is busy committing, however slow the build), then kills it after
// `kill_after_ms`.
ChildRun RunAndKill(const std::string& db, long start, int kill_after_ms, bool during_startup) {
  int out[2];
  if (::pipe(out) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    std::string from = std::to_string(start);
    ::execl(SGSYNC_CRASH_WRITER, SGSYNC_CRASH_WRITER, db.c_str(), from.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while (!during_startup && text.find('\n') == std::string::npos &&
         (n = ::read(out[0], buf, sizeof buf)) > 0) {
    text.append(buf, static_cast<std::size_t>(n));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(kill_after_ms));
  ChildRun run;
  run.killed = ::kill(pid, SIGKILL) == 0;
  int status = 0;
  ::waitpid(pid, &status, 0);
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  // Only complete lines count: a number is printed after its commit.
  std::size_t end = text.rfind('\n');
  if (end != std::string::npos) {
    std::size_t begin = text.rfind('\n', end - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    run.last_acknowledged = std::stol(text.substr(begin, end - begin));
  }
  return run;
}

std::set<long> Numbers(Database& db, const char* sql) {
  std::set<long> out;
  auto q = db.Prepare(sql);
  EXPECT_TRUE(q.ok()) << q.error().ToString();
  if (!q.ok()) return out;
  while (*(*q)->Step()) out.insert(std::stol((*q)->Text(0).substr(6)));  // "event-N"
  return out;
}

TEST(StateCrashTest, KilledWritersLoseNothingCommittedAndLeaveNothingHalfWritten) {
  sgsync::testing::TempDir dir;
  std::string path = (dir.path() / "state.db").string();
  std::uint64_t seed = 4242;
  std::mt19937 rng(seed);
  long next = 0;
  long acknowledged_total = 0;
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // One round in ten kills the writer while it may still be opening or migrating the database.
    bool during_startup = round % 10 == 0;
    ChildRun run =
        RunAndKill(path, next, static_cast<int>(rng() % (during_startup ? 30 : 15)), during_startup);
    ASSERT_TRUE(run.killed);
    // Open as sgsync does (the schema is created or completed here if the kill came first).
    ASSERT_TRUE(StateStore::Open(path).ok());
    auto db = Database::Open(path, {});
    ASSERT_TRUE(db.ok()) << db.error().ToString();
    auto check = (*db)->Prepare("PRAGMA integrity_check");
    ASSERT_TRUE(*(*check)->Step());
    ASSERT_EQ((*check)->Text(0), "ok");
    std::set<long> ledger = Numbers(**db, "SELECT uuid FROM ledger");
    std::set<long> queue = Numbers(**db, "SELECT uuid FROM work_queue");
    ASSERT_EQ(ledger, queue) << "a ledger change and its queue item commit together";
    for (long i = 0; i <= run.last_acknowledged; ++i) {
      ASSERT_TRUE(ledger.count(i)) << "committed event " << i << " lost";
    }
    long max = ledger.empty() ? -1 : *ledger.rbegin();
    // The child starts at `next`; at most its transaction in flight may have committed unreported.
    ASSERT_LE(max, std::max(run.last_acknowledged, next - 1) + 1)
        << "events appeared that were never written";
    ASSERT_EQ(static_cast<long>(ledger.size()), max + 1) << "no gaps";
    acknowledged_total = max + 1;
    next = max + 1;
  }
  std::printf("200 kills, %ld transactions committed and verified\n", acknowledged_total);
  EXPECT_GT(acknowledged_total, 200)
      << "the writer must get work done between kills for the test to mean anything";
}

}  // namespace
}  // namespace sgsync::state
