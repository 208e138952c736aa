#include <gtest/gtest.h>
#include <sqlite3.h>

#include "sqlite/sqlite.h"
#include "state/schema.h"
#include "state/store.h"
#include "tests/support/files.h"

namespace sgsync::state {
namespace {

using sgsync::testing::TempDir;

TEST(StateMigrationTest, EveryOlderSchemaVersionOpensAndMigratesKeepingItsData) {
  for (int version = 1; version < CurrentSchemaVersion(); ++version) {
    TempDir dir;
    std::string path = (dir.path() / "old.db").string();
    {
      auto db = Database::Open(path, {});
      ASSERT_TRUE(db.ok());
      ASSERT_TRUE(Migrate(**db, version).ok());
      ASSERT_EQ(*ReadSchemaVersion(**db), version);
      // Data written by that version.
      ASSERT_TRUE((*db)
                      ->Exec("INSERT INTO links (name, identity_hash, created_at, updated_at) VALUES "
                             "('portal', 'h', 1, 1)")
                      .ok());
      ASSERT_TRUE((*db)
                      ->Exec("INSERT INTO ledger (link_id, uuid, origin, local_timestamp, decision, "
                             "decision_json, updated_at) "
                             "VALUES (1, 'e1', 'local', 10, 'send', '{}', 1)")
                      .ok());
    }
    auto store = StateStore::Open(path);
    ASSERT_TRUE(store.ok()) << "version " << version << ": " << store.error().ToString();
    EXPECT_EQ(*(*store)->SchemaVersion(), CurrentSchemaVersion());
    EXPECT_EQ((*(*store)->GetLedger(1, "e1"))->local_timestamp, 10);
    EXPECT_TRUE((*store)->Audit({0, 0, "test", "migrated", "", "ok", ""}).ok()) << "the newer tables exist";
  }
}

TEST(StateMigrationTest, ADatabaseFromANewerSgsyncIsRefusedNamingBothVersions) {
  TempDir dir;
  std::string path = (dir.path() / "new.db").string();
  {
    auto store = StateStore::Open(path);
    ASSERT_TRUE(store.ok());
  }
  {
    auto db = Database::Open(path, {});
    ASSERT_TRUE(
        (*db)
            ->Exec("INSERT INTO schema_version (version, applied_at, what) VALUES (99, 0, 'from the future')")
            .ok());
  }
  auto store = StateStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kVersionMismatch);
  EXPECT_EQ(store.error().where, path);
  EXPECT_NE(store.error().message.find("version 99"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("version " + std::to_string(CurrentSchemaVersion())),
            std::string::npos);
}

TEST(StateMigrationTest, OpeningTwiceAppliesNothingTwice) {
  TempDir dir;
  std::string path = (dir.path() / "s.db").string();
  ASSERT_TRUE(StateStore::Open(path).ok());
  ASSERT_TRUE(StateStore::Open(path).ok());
  auto db = Database::Open(path, {});
  auto q = (*db)->Prepare("SELECT count(*) FROM schema_version");
  ASSERT_TRUE(*(*q)->Step());
  EXPECT_EQ((*q)->Int(0), CurrentSchemaVersion());
}

}  // namespace
}  // namespace sgsync::state
