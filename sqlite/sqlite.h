// sqlite/sqlite.h: a thin RAII layer over the SQLite C API. sgsync's own SQL stays in state/; misp-sim
// (a separate program with its own database) uses this layer too.
//
// Database owns a connection and a cache of prepared statements; Statement binds parameters (never
// concatenated SQL) and steps; Transaction is BEGIN IMMEDIATE .. COMMIT, rolled back when dropped
// uncommitted. Every failure becomes an Error naming the database file and the SQL that failed.
// Not thread-safe: one Database per thread.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sgsync::sqlite {

class Database;

class Statement {
 public:
  Statement(Database* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  // Binds by 1-based position. Text is copied by SQLite (SQLITE_TRANSIENT).
  Statement& Bind(int index, std::int64_t v);
  Statement& Bind(int index, std::string_view v);
  Statement& Bind(int index, const char* v) { return Bind(index, std::string_view(v)); }
  Statement& BindNull(int index);
  template <typename T>
  Statement& Bind(int index, const std::optional<T>& v) {
    return v ? Bind(index, *v) : BindNull(index);
  }

  // One step: true when a row is available, false when done.
  Result<bool> Step();
  // Steps to the end (for statements that return no rows).
  Status Run();

  std::int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const;
  // Valid until the next Step or Reset.
  std::string_view TextView(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

  // Returns the statement to the cache state (reset, bindings cleared).
  void Reset();

 private:
  Database* db_;
  sqlite3_stmt* stmt_;
};

// A statement borrowed from the cache, reset when it goes out of scope.
class ScopedStatement {
 public:
  explicit ScopedStatement(Statement* s) : s_(s) {}
  ~ScopedStatement() {
    if (s_ != nullptr) s_->Reset();
  }
  ScopedStatement(ScopedStatement&& other) noexcept : s_(other.s_) { other.s_ = nullptr; }
  ScopedStatement(const ScopedStatement&) = delete;
  ScopedStatement& operator=(const ScopedStatement&) = delete;
  Statement* operator->() { return s_; }
  Statement& operator*() { return *s_; }

 private:
  Statement* s_;
};

struct OpenOptions {
  bool synchronous_full = true;  // PRAGMA synchronous=FULL (NORMAL when false)
  int busy_timeout_ms = 5000;
  bool create = true;  // create the file when missing
  bool read_only = false;
  std::int64_t max_pages = 0;  // PRAGMA max_page_count when non-zero: a cap on the file's size
  // Page cache: SQLite's default 2 MiB makes a 100k-event ledger re-read its pages from the kernel
  // on every batch (docs/performance.md); 64 MiB holds the working set of a large federation.
  std::int64_t cache_kib = 65536;
};

class Database {
 public:
  static Result<std::unique_ptr<Database>> Open(const std::string& path, const OpenOptions& options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs SQL without parameters (schema, pragmas).
  Status Exec(std::string_view sql);
  // A cached prepared statement for `sql`.
  Result<ScopedStatement> Prepare(std::string_view sql);

  Status Begin();  // BEGIN IMMEDIATE: the writer lock is taken up front, so commits do not deadlock
  Status Commit();
  void Rollback() noexcept;
  // What this connection did since it was opened, for tests and benchmarks that pin a cost:
  // transactions committed, and SQLite's virtual-machine steps (a row visited costs a few; counted
  // as each statement is reset).
  std::int64_t commits() const { return commits_; }
  std::int64_t vm_steps() const { return vm_steps_; }

  // The Error for the connection's last failure: the file, the SQL, SQLite's message.
  Error LastError(std::string_view what) const;
  const std::string& path() const { return path_; }
  sqlite3* handle() { return db_; }
  std::int64_t LastInsertId() const { return sqlite3_last_insert_rowid(db_); }
  int Changes() const { return sqlite3_changes(db_); }

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  std::string path_;
  std::map<std::string, std::unique_ptr<Statement>, std::less<>> cache_;
  std::int64_t commits_ = 0;
  std::int64_t vm_steps_ = 0;
  friend class Statement;  // adds its steps as it is reset
};

// RAII transaction: rolls back unless Commit() succeeded.
class Transaction {
 public:
  static Result<Transaction> Begin(Database& db);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  Status Commit();
  Database& db() { return *db_; }

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;
};

}  // namespace sgsync::sqlite
