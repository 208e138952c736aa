// The state database under bad conditions: each gives a clear error naming the file, no crash,
// and nothing half-written.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "state/store.h"
#include "tests/support/files.h"

namespace sgsync::state {
namespace {

using sgsync::testing::TempDir;
using sgsync::testing::WriteFile;

LedgerEntry Entry(const std::string& uuid) {
  LedgerEntry e;
  e.uuid = uuid;
  e.local_timestamp = 1;
  e.decision = LedgerDecision::kSend;
  e.decision_json = std::string(2000, 'r');  // reasons are large; fills pages quickly
  return e;
}

TEST(StateBadConditionsTest, AMissingDirectoryIsNamed) {
  TempDir dir;
  std::string path = (dir.path() / "no" / "such" / "state.db").string();
  auto s = StateStore::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kIo);
  EXPECT_EQ(s.error().where, path);
  EXPECT_NE(s.error().message.find("does not exist"), std::string::npos) << s.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "no")) << "nothing was created";
}

TEST(StateBadConditionsTest, AFileOfGarbageIsNotADatabaseAndStaysUntouched) {
  TempDir dir;
  std::string path = (dir.path() / "state.db").string();
  std::string garbage(8192, '\0');
  std::mt19937 rng(7);
  for (auto& c : garbage) c = static_cast<char>(rng());
  WriteFile(path, garbage);
  auto s = StateStore::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kCorruption) << s.error().ToString();
  EXPECT_EQ(s.error().where, path);
  EXPECT_NE(s.error().message.find("not a database"), std::string::npos) << s.error().message;
  EXPECT_EQ(sgsync::testing::ReadFile(path), garbage);
}

TEST(StateBadConditionsTest, ADiskThatFillsUpFailsTheTransactionWholeAndKeepsWhatWasCommitted) {
  TempDir dir;
  std::string path = (dir.path() / "state.db").string();
  StoreOptions small;
  small.max_database_pages = 40;  // about 160 KiB: the schema and a few entries
  auto store = StateStore::Open(path, small);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto link = (*store)->RegisterLink("portal", "h");
  ASSERT_TRUE((*store)->UpsertLedger(link->id, Entry("committed")).ok());
  std::vector<LedgerEntry> batch;
  for (int i = 0; i < 200; ++i) batch.push_back(Entry("batch-" + std::to_string(i)));
  auto full = (*store)->UpsertLedgerBatch(link->id, batch);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, ErrorCode::kIo);
  EXPECT_EQ(full.error().where, path);
  EXPECT_NE(full.error().message.find("full"), std::string::npos) << full.error().message;
  EXPECT_TRUE((*(*store)->GetLedger(link->id, "committed")).has_value());
  EXPECT_FALSE((*(*store)->GetLedger(link->id, "batch-0")).has_value()) << "no part of the failed batch";
  EXPECT_EQ(*(*store)->IntegrityCheck(), "ok");
  // The store keeps working for what fits.
  EXPECT_TRUE((*store)->UpsertLedger(link->id, Entry("after")).ok());
}

TEST(StateBadConditionsTest, AReadOnlyFileIsRefusedWithWhatToCheck) {
  TempDir dir;
  std::string path = (dir.path() / "state.db").string();
  ASSERT_TRUE(StateStore::Open(path).ok());
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::string f = path + suffix;
    if (std::filesystem::exists(f)) {
      ASSERT_EQ(::chmod(f.c_str(), 0444), 0);
    }
  }
  // Root ignores file modes, so the check runs as an unprivileged user in a child process.
  EXPECT_EXIT(
      {
        if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) std::exit(3);
        auto s = StateStore::Open(path);
        if (s.ok()) std::exit(4);
        bool named = s.error().where == path && s.error().code == ErrorCode::kIo;
        std::fprintf(stderr, "%s\n", s.error().ToString().c_str());
        std::exit(named ? 0 : 5);
      },
      ::testing::ExitedWithCode(0), "read-only|readonly|unable to open");
}

}  // namespace
}  // namespace sgsync::state
