#include "sqlite/sqlite.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace sgsync::sqlite {
namespace {

ErrorCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
      return ErrorCode::kIo;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return ErrorCode::kCorruption;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return ErrorCode::kUnavailable;
    case SQLITE_CONSTRAINT:
      return ErrorCode::kAlreadyExists;
    default:
      return ErrorCode::kInternal;
  }
}

}  // namespace

Statement& Statement::Bind(int index, std::int64_t v) {
  sqlite3_bind_int64(stmt_, index, v);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view v) {
  // SQLite binds a null pointer as NULL: an empty view that points nowhere (std::string_view{}, what
  // a JSON field reader returns for a missing field) must still be the empty text.
  sqlite3_bind_text(stmt_, index, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->LastError(sqlite3_sql(stmt_));
}

Status Statement::Run() {
  while (true) {
    SGSYNC_TRY(bool row, Step());
    if (!row) return {};
  }
}

std::string Statement::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::string_view Statement::TextView(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return {};
  return std::string_view(reinterpret_cast<const char*>(p),
                          static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
}

void Statement::Reset() {
  db_->vm_steps_ += sqlite3_stmt_status(stmt_, SQLITE_STMTSTATUS_VM_STEP, /*resetFlg=*/1);
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Result<std::unique_ptr<Database>> Database::Open(const std::string& path, const OpenOptions& options) {
  if (path != ":memory:") {
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
      return Fail(ErrorCode::kIo, "the directory " + dir.string() + " does not exist", path);
    }
  }
  int flags = options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (options.create && !options.read_only) flags |= SQLITE_OPEN_CREATE;
  flags |= SQLITE_OPEN_NOMUTEX;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  std::unique_ptr<Database> db(new Database(raw, path));
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    if (errno != 0 && (rc & 0xff) == SQLITE_CANTOPEN) msg += " (" + std::string(std::strerror(errno)) + ")";
    return Fail(CodeFor(rc), "cannot open the state database: " + msg, path);
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  // The first read finds out whether the file is a database at all (a garbage file fails here).
  SGSYNC_TRY_STATUS(db->Exec("PRAGMA schema_version"));
  if (!options.read_only && sqlite3_db_readonly(raw, "main") == 1) {
    return Fail(
        ErrorCode::kIo,
        "the state database can only be opened read-only: check the permissions and owner of the file and "
        "its directory (sgsync writes the file, its -wal and its -shm beside it)",
        path);
  }
  if (!options.read_only) {
    SGSYNC_TRY_STATUS(db->Exec("PRAGMA journal_mode=WAL"));
    SGSYNC_TRY_STATUS(
        db->Exec(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));
  }
  SGSYNC_TRY_STATUS(db->Exec("PRAGMA foreign_keys=ON"));
  SGSYNC_TRY_STATUS(db->Exec("PRAGMA cache_size=-" + std::to_string(options.cache_kib)));
  SGSYNC_TRY_STATUS(db->Exec("PRAGMA wal_autocheckpoint=10000"));
  // A large transaction grows the -wal file past the checkpoint's 40 MB, and SQLite keeps the file
  // at its largest for reuse: each time the log starts over, cut it back to 64 MiB.
  SGSYNC_TRY_STATUS(db->Exec("PRAGMA journal_size_limit=67108864"));
  if (options.max_pages > 0) {
    SGSYNC_TRY_STATUS(db->Exec("PRAGMA max_page_count=" + std::to_string(options.max_pages)));
  }
  return db;
}

Database::~Database() {
  cache_.clear();
  // Finalize every statement before closing; close_v2 defers if any remain.
  sqlite3_stmt* s = nullptr;
  while ((s = sqlite3_next_stmt(db_, nullptr)) != nullptr) sqlite3_finalize(s);
  sqlite3_close_v2(db_);
}

Status Database::Exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (err != nullptr) sqlite3_free(err);
  if (rc != SQLITE_OK) return LastError(sql);
  return {};
}

Result<ScopedStatement> Database::Prepare(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                &stmt, nullptr);
    if (rc != SQLITE_OK) return LastError(sql);
    it = cache_.emplace(std::string(sql), std::make_unique<Statement>(this, stmt)).first;
  }
  return ScopedStatement(it->second.get());
}

Status Database::Begin() { return Exec("BEGIN IMMEDIATE"); }
Status Database::Commit() {
#ifndef NDEBUG
  // A statement still stepping (a row read, not reset) keeps the connection's read snapshot past the
  // COMMIT, so the checkpoint that follows it cannot run, and the -wal file grows with every such
  // commit (2.4 GB for 100 000 events enqueued one by one). Reset statements before committing.
  for (sqlite3_stmt* s = sqlite3_next_stmt(db_, nullptr); s != nullptr; s = sqlite3_next_stmt(db_, s)) {
    if (sqlite3_stmt_busy(s))
      throw std::logic_error("COMMIT with a statement still open: " + std::string(sqlite3_sql(s)));
  }
#endif
  SGSYNC_TRY_STATUS(Exec("COMMIT"));
  ++commits_;
  return {};
}
void Database::Rollback() noexcept {
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Error Database::LastError(std::string_view what) const {
  int rc = sqlite3_extended_errcode(db_);
  std::string msg = sqlite3_errmsg(db_);
  if ((rc & 0xff) == SQLITE_FULL) msg += " (the disk or the database's size limit is full)";
  std::string sql(what.substr(0, 80));
  return Fail(CodeFor(rc), msg + " while running: " + sql, path_);
}

Result<Transaction> Transaction::Begin(Database& db) {
  SGSYNC_TRY_STATUS(db.Begin());
  return Transaction(&db);
}

Transaction::~Transaction() {
  if (db_ != nullptr) db_->Rollback();
}

Status Transaction::Commit() {
  if (db_ == nullptr) return Fail(ErrorCode::kInternal, "commit of a finished transaction");
  Status s = db_->Commit();
  if (!s.ok()) {
    db_->Rollback();
    db_ = nullptr;
    return s;
  }
  db_ = nullptr;
  return {};
}

}  // namespace sgsync::sqlite
