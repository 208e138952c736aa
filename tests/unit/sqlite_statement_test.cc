// The SQLite layer's binding: what goes in is what comes out.
#include <gtest/gtest.h>

#include <string_view>

#include "sqlite/sqlite.h"

namespace sgsync::sqlite {
namespace {

TEST(SqliteStatementTest, AnEmptyViewThatPointsNowhereIsBoundAsEmptyTextNotNull) {
  // A missing JSON field reads as std::string_view{} (a null data pointer), which SQLite would
  // otherwise bind as NULL: a NOT NULL column then refuses the row (INSERT OR IGNORE drops it).
  auto db = Database::Open(":memory:", OpenOptions{});
  ASSERT_TRUE(db.ok()) << db.error().ToString();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (v TEXT NOT NULL)").ok());
  auto ins = (*db)->Prepare("INSERT OR IGNORE INTO t (v) VALUES (?)");
  ASSERT_TRUE(ins.ok());
  ASSERT_TRUE((*ins)->Bind(1, std::string_view{}).Run().ok());
  auto q = (*db)->Prepare("SELECT v IS NULL, length(v) FROM t");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*(*q)->Step()) << "the row was stored";
  EXPECT_EQ((*q)->Int(0), 0);
  EXPECT_EQ((*q)->Int(1), 0);
}

}  // namespace
}  // namespace sgsync::sqlite
