#include "state/store.h"

#include <algorithm>
#include <ctime>
#include <random>
#include <unordered_map>

#include "sqlite/sqlite.h"
#include "state/rows.h"
#include "state/schema.h"

namespace sgsync::state {

using namespace rows;  // NOLINT: the row helpers of this library

std::string_view LedgerDecisionName(LedgerDecision d) {
  switch (d) {
    case LedgerDecision::kQueued:
      return "queued";
    case LedgerDecision::kSend:
      return "send";
    case LedgerDecision::kSkip:
      return "skip";
    case LedgerDecision::kHeldConflict:
      return "held_conflict";
    case LedgerDecision::kDeletedAtPortal:
      return "deleted_at_portal";
    case LedgerDecision::kTombstoned:
      return "tombstoned";
  }
  return "?";
}

std::optional<LedgerDecision> ParseLedgerDecision(std::string_view text) {
  for (LedgerDecision d :
       {LedgerDecision::kQueued, LedgerDecision::kSend, LedgerDecision::kSkip, LedgerDecision::kHeldConflict,
        LedgerDecision::kDeletedAtPortal, LedgerDecision::kTombstoned}) {
    if (LedgerDecisionName(d) == text) return d;
  }
  return std::nullopt;
}

std::string_view WorkStateName(WorkState s) {
  switch (s) {
    case WorkState::kPending:
      return "pending";
    case WorkState::kLeased:
      return "leased";
    case WorkState::kDone:
      return "done";
    case WorkState::kFailed:
      return "failed";
    case WorkState::kDead:
      return "dead";
  }
  return "pending";
}

StateStore::StateStore(std::unique_ptr<Database> db, StoreOptions options)
    : db_(std::move(db)), options_(std::move(options)) {}
StateStore::~StateStore() = default;

const std::string& StateStore::path() const { return db_->path(); }

std::int64_t StateStore::Now() const {
  return options_.clock ? options_.clock() : static_cast<std::int64_t>(std::time(nullptr));
}

namespace {

// A damaged database is named with the way out: the operator cannot repair it in place, and both
// remedies are safe because sgsync finds by uuid what already crossed.
Error DamagedDatabase(const Error& e, const std::string& path) {
  return Fail(ErrorCode::kCorruption,
              "the state database is damaged (" + e.message +
                  "): stop sgsyncd, then restore the last backup over it (sgsyncctl backup writes one; "
                  "docs/operations.md) or move it aside to start afresh; either way what already crossed is "
                  "found again by uuid and nothing is sent twice",
              path);
}

// PRAGMA quick_check reads every page: damage anywhere is found before a run trusts the ledger.
Status CheckIntact(Database& db) {
  SGSYNC_TRY(auto q, db.Prepare("PRAGMA quick_check(5)"));
  std::vector<std::string> problems;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    std::string line = q->Text(0);
    if (line != "ok") problems.push_back(std::move(line));
  }
  if (problems.empty()) return {};
  std::string joined;
  for (const auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
  return Fail(ErrorCode::kCorruption, "quick_check: " + joined, db.path());
}

}  // namespace

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& path, StoreOptions options) {
  OpenOptions open;
  open.synchronous_full = options.synchronous_full;
  open.busy_timeout_ms = options.busy_timeout_ms;
  open.max_pages = options.max_database_pages;
  auto opened = Database::Open(path, open);
  if (!opened.ok()) {
    if (opened.error().code == ErrorCode::kCorruption) return DamagedDatabase(opened.error(), path);
    return opened.error();
  }
  std::unique_ptr<Database> db = std::move(*opened);
  if (Status intact = CheckIntact(*db); !intact.ok()) {
    return intact.error().code == ErrorCode::kCorruption ? DamagedDatabase(intact.error(), path)
                                                         : intact.error();
  }
  SGSYNC_TRY_STATUS(Migrate(*db));
  std::unique_ptr<StateStore> store(new StateStore(std::move(db), std::move(options)));
  SGSYNC_TRY_STATUS(store->StartNewGenerationsIfRestored());
  return store;
}

Status StateStore::StartNewGenerationsIfRestored() {
  SGSYNC_TRY(auto q, db_->Prepare("SELECT value FROM meta WHERE key = 'restored_from_backup'"));
  SGSYNC_TRY(bool restored, q->Step());
  q->Reset();  // before the commit below (Database::Commit says why)
  if (!restored) return {};
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  // Keep the timestamps (the ledger still knows what was sent) but mark the break, so the engine
  // runs a full reconciliation before trusting the cursor again.
  SGSYNC_TRY(auto rows, db_->Prepare("SELECT link_id, direction, kind FROM cursors"));
  std::vector<std::tuple<std::int64_t, std::string, std::string>> keys;
  while (true) {
    SGSYNC_TRY(bool row, rows->Step());
    if (!row) break;
    keys.emplace_back(rows->Int(0), rows->Text(1), rows->Text(2));
  }
  for (const auto& [link, dir, kind] : keys) {
    SGSYNC_TRY(auto u,
               db_->Prepare("UPDATE cursors SET generation = ?, last_full_reconciliation = 0, updated_at = ? "
                            "WHERE link_id = ? AND direction = ? AND kind = ?"));
    SGSYNC_TRY_STATUS(
        u->Bind(1, NewGenerationId()).Bind(2, Now()).Bind(3, link).Bind(4, dir).Bind(5, kind).Run());
  }
  SGSYNC_TRY_STATUS(db_->Exec("DELETE FROM meta WHERE key = 'restored_from_backup'"));
  return tx.Commit();
}

Result<std::optional<std::int64_t>> StateStore::FindLink(const std::string& name) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto q, db_->Prepare("SELECT id FROM links WHERE name = ?"));
  q->Bind(1, name);
  SGSYNC_TRY(bool found, q->Step());
  if (!found) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(q->Int(0));
}

Result<LinkRegistration> StateStore::RegisterLink(const std::string& name, const std::string& identity_hash) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  LinkRegistration reg;
  SGSYNC_TRY(auto q, db_->Prepare("SELECT id, identity_hash FROM links WHERE name = ?"));
  q->Bind(1, name);
  SGSYNC_TRY(bool found, q->Step());
  std::int64_t now = Now();
  if (!found) {
    SGSYNC_TRY(
        auto ins,
        db_->Prepare("INSERT INTO links (name, identity_hash, created_at, updated_at) VALUES (?, ?, ?, ?)"));
    SGSYNC_TRY_STATUS(ins->Bind(1, name).Bind(2, identity_hash).Bind(3, now).Bind(4, now).Run());
    reg.id = db_->LastInsertId();
    reg.is_new = true;
  } else {
    reg.id = q->Int(0);
    reg.identity_changed = q->Text(1) != identity_hash;
  }
  q->Reset();  // before the commit (Database::Commit says why)
  if (reg.identity_changed) {
    SGSYNC_TRY(auto upd, db_->Prepare("UPDATE links SET identity_hash = ?, updated_at = ? WHERE id = ?"));
    SGSYNC_TRY_STATUS(upd->Bind(1, identity_hash).Bind(2, now).Bind(3, reg.id).Run());
    SGSYNC_TRY(auto ids, db_->Prepare("SELECT direction, kind FROM cursors WHERE link_id = ?"));
    ids->Bind(1, reg.id);
    std::vector<std::pair<std::string, std::string>> keys;
    while (true) {
      SGSYNC_TRY(bool row, ids->Step());
      if (!row) break;
      keys.emplace_back(ids->Text(0), ids->Text(1));
    }
    for (const auto& [dir, kind] : keys) {
      SGSYNC_TRY(
          auto r,
          db_->Prepare("UPDATE cursors SET last_timestamp = 0, last_full_reconciliation = 0, generation = ?, "
                       "updated_at = ? WHERE link_id = ? AND direction = ? AND kind = ?"));
      SGSYNC_TRY_STATUS(
          r->Bind(1, NewGenerationId()).Bind(2, now).Bind(3, reg.id).Bind(4, dir).Bind(5, kind).Run());
    }
  }
  SGSYNC_TRY_STATUS(tx.Commit());
  return reg;
}

Result<Cursor> StateStore::GetCursor(std::int64_t link_id, Direction d, CursorKind k) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY_STATUS(EnsureCursor(*db_, link_id, d, k, Now()));
  SGSYNC_TRY(auto q, db_->Prepare("SELECT last_timestamp, last_full_reconciliation, generation FROM cursors "
                                  "WHERE link_id = ? AND direction = ? AND kind = ?"));
  q->Bind(1, link_id).Bind(2, DirectionName(d)).Bind(3, KindName(k));
  SGSYNC_TRY(bool row, q->Step());
  if (!row) return Fail(ErrorCode::kNotFound, "no link " + std::to_string(link_id), db_->path());
  return Cursor{q->Int(0), q->Int(1), q->Text(2)};
}

Status StateStore::AdvanceCursor(std::int64_t link_id, Direction d, CursorKind k,
                                 std::int64_t last_timestamp) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY_STATUS(EnsureCursor(*db_, link_id, d, k, Now()));
  SGSYNC_TRY(
      auto q,
      db_->Prepare("SELECT last_timestamp FROM cursors WHERE link_id = ? AND direction = ? AND kind = ?"));
  q->Bind(1, link_id).Bind(2, DirectionName(d)).Bind(3, KindName(k));
  SGSYNC_TRY(bool row, q->Step());
  if (row && q->Int(0) > last_timestamp) {
    return Fail(ErrorCode::kInvalidArgument,
                "the cursor may only move forward (at " + std::to_string(q->Int(0)) + ", asked " +
                    std::to_string(last_timestamp) + ")",
                db_->path());
  }
  SGSYNC_TRY(auto u, db_->Prepare("UPDATE cursors SET last_timestamp = ?, updated_at = ? WHERE link_id = ? "
                                  "AND direction = ? AND kind = ?"));
  return u->Bind(1, last_timestamp)
      .Bind(2, Now())
      .Bind(3, link_id)
      .Bind(4, DirectionName(d))
      .Bind(5, KindName(k))
      .Run();
}

Status StateStore::MarkFullReconciliation(std::int64_t link_id, Direction d, CursorKind k, std::int64_t at) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY_STATUS(EnsureCursor(*db_, link_id, d, k, Now()));
  SGSYNC_TRY(auto u, db_->Prepare("UPDATE cursors SET last_full_reconciliation = ?, updated_at = ? WHERE "
                                  "link_id = ? AND direction = ? AND kind = ?"));
  return u->Bind(1, at).Bind(2, Now()).Bind(3, link_id).Bind(4, DirectionName(d)).Bind(5, KindName(k)).Run();
}

namespace {

// A ledger row from a statement selecting uuid, origin, local_timestamp ... updated_at first (GetLedger).
Result<LedgerEntry> ReadLedger(Statement& q, const std::string& db_path) {
  LedgerEntry e;
  e.uuid = q.Text(0);
  e.origin = SideFrom(q.Text(1));
  e.local_timestamp = OptInt(q, 2);
  e.local_hash = OptText(q, 3);
  e.remote_timestamp = OptInt(q, 4);
  e.remote_hash = OptText(q, 5);
  if (!q.IsNull(6)) e.written_side = SideFrom(q.Text(6));
  e.written_timestamp = OptInt(q, 7);
  e.written_hash = OptText(q, 8);
  std::optional<LedgerDecision> decision = ParseLedgerDecision(q.TextView(9));
  if (!decision) {
    return Fail(ErrorCode::kCorruption,
                "ledger row of " + e.uuid + " has an unknown decision '" + q.Text(9) + "'", db_path);
  }
  e.decision = *decision;
  e.decision_json = q.Text(10);
  e.updated_at = q.Int(11);
  return e;
}

}  // namespace

Result<std::optional<LedgerEntry>> StateStore::GetLedger(std::int64_t link_id, const std::string& uuid) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(
      auto q,
      db_->Prepare(
          "SELECT uuid, origin, local_timestamp, local_hash, remote_timestamp, remote_hash, written_side, "
          "written_timestamp, written_hash, decision, decision_json, updated_at FROM ledger "
          "WHERE link_id = ? AND uuid = ?"));
  q->Bind(1, link_id).Bind(2, uuid);
  SGSYNC_TRY(bool row, q->Step());
  if (!row) return std::optional<LedgerEntry>();
  SGSYNC_TRY(LedgerEntry e, ReadLedger(*q, db_->path()));
  return std::optional<LedgerEntry>(std::move(e));
}

Result<std::vector<StateStore::LedgerRow>> StateStore::ListLedger(std::int64_t link_id,
                                                                  std::optional<LedgerDecision> decision,
                                                                  const std::string& work_state,
                                                                  std::int64_t updated_since,
                                                                  const std::string& after_uuid, int limit) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(
      auto q,
      db_->Prepare(
          "SELECT l.uuid, l.origin, l.local_timestamp, l.local_hash, l.remote_timestamp, l.remote_hash, "
          "l.written_side, l.written_timestamp, l.written_hash, l.decision, l.decision_json, l.updated_at, "
          "COALESCE((SELECT w.state FROM work_queue w WHERE w.link_id = l.link_id AND w.uuid = l.uuid "
          "ORDER BY w.id DESC LIMIT 1), '') AS ws FROM ledger l WHERE l.link_id = ? AND l.uuid > ? AND "
          "l.updated_at >= ? AND (? = '' OR l.decision = ?) AND (?6 = '' OR ws = ?6 OR (?6 = 'done' AND ws = "
          "'')) "
          "ORDER BY l.uuid LIMIT ?8"));
  q->Bind(1, link_id)
      .Bind(2, after_uuid)
      .Bind(3, updated_since)
      // "" (not NULL) when no decision is asked for: the SQL reads it as "any decision".
      .Bind(4, decision ? LedgerDecisionName(*decision) : std::string_view(""))
      .Bind(5, decision ? LedgerDecisionName(*decision) : std::string_view(""))
      .Bind(6, work_state)
      .Bind(7, work_state)
      .Bind(8, static_cast<std::int64_t>(limit));
  std::vector<LedgerRow> out;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    LedgerRow r;
    SGSYNC_TRY(r.entry, ReadLedger(*q, db_->path()));
    r.work_state = q->Text(12);
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<IndexPair>> StateStore::ListWritten(std::int64_t link_id, Side side) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto q,
             db_->Prepare("SELECT uuid, written_timestamp FROM ledger WHERE link_id = ? AND written_side = ? "
                          "AND decision IN ('send', 'deleted_at_portal') ORDER BY uuid"));
  q->Bind(1, link_id).Bind(2, side == Side::kLocal ? "local" : "remote");
  std::vector<IndexPair> out;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    out.push_back({q->Text(0), q->Int(1)});
  }
  return out;
}

Status StateStore::ForgetSeen(std::int64_t link_id) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(
      auto u,
      db_->Prepare("UPDATE ledger SET local_timestamp = NULL, remote_timestamp = NULL WHERE link_id = ?"));
  return u->Bind(1, link_id).Run();
}

Status StateStore::UpsertLedger(std::int64_t link_id, const LedgerEntry& entry) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  SGSYNC_TRY_STATUS(WriteLedger(*db_, link_id, entry, Now()));
  return tx.Commit();
}

Status StateStore::UpsertLedgerBatch(std::int64_t link_id, const std::vector<LedgerEntry>& entries) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  std::int64_t now = Now();
  for (const auto& e : entries) SGSYNC_TRY_STATUS(WriteLedger(*db_, link_id, e, now));
  return tx.Commit();
}

Result<std::vector<std::string>> StateStore::Changed(std::int64_t link_id, Side side,
                                                     const std::vector<IndexPair>& index) {
  std::lock_guard lock(mu_);
  const char* column = side == Side::kLocal ? "local_timestamp" : "remote_timestamp";
  std::vector<char> up_to_date(index.size(), 0);
  if (index.size() <= kChangedPointQueryLimit) {
    // A few rows: one indexed lookup each on (link_id, uuid), whatever the ledger holds.
    SGSYNC_TRY(auto q, db_->Prepare(std::string("SELECT ") + column +
                                    " FROM ledger WHERE link_id = ? AND uuid = ?"));
    for (std::size_t i = 0; i < index.size(); ++i) {
      q->Reset();
      q->Bind(1, link_id).Bind(2, index[i].uuid);
      SGSYNC_TRY(bool row, q->Step());
      if (row && !q->IsNull(0) && q->Int(0) >= index[i].timestamp) up_to_date[i] = 1;
    }
  } else {
    // Many rows: the index hashed (string_views into the caller's memory) and this link's ledger
    // rows read once. Through the (link_id, uuid) index each row costs a random table lookup (about
    // 2.7 us), a sequential scan of the whole table about 0.9 us per row of every link: the scan
    // is taken when this link holds at least a third of the table (docs/performance.md).
    std::unordered_map<std::string_view, std::size_t> position;
    position.reserve(index.size());
    for (std::size_t i = 0; i < index.size(); ++i) position.emplace(index[i].uuid, i);
    SGSYNC_TRY(auto count, db_->Prepare("SELECT COUNT(*) FROM ledger WHERE link_id = ?"));
    count->Bind(1, link_id);
    SGSYNC_TRY(bool counted, count->Step());
    const std::int64_t mine = counted ? count->Int(0) : 0;
    count->Reset();
    SGSYNC_TRY(auto last, db_->Prepare("SELECT COALESCE(MAX(rowid), 0) FROM ledger"));
    SGSYNC_TRY(bool has_last, last->Step());
    const std::int64_t all = has_last ? last->Int(0) : 0;  // rowids are not reused below the max
    last->Reset();
    const bool scan_table = mine * 3 >= all;
    SGSYNC_TRY(auto q, db_->Prepare(std::string("SELECT uuid, ") + column +
                                    (scan_table ? " FROM ledger NOT INDEXED WHERE link_id = ?"
                                                : " FROM ledger WHERE link_id = ?")));
    q->Bind(1, link_id);
    while (true) {
      SGSYNC_TRY(bool row, q->Step());
      if (!row) break;
      if (q->IsNull(1)) continue;
      auto it = position.find(q->TextView(0));
      if (it != position.end() && q->Int(1) >= index[it->second].timestamp) up_to_date[it->second] = 1;
    }
  }
  std::vector<std::string> changed;
  for (std::size_t i = 0; i < index.size(); ++i) {
    if (!up_to_date[i]) changed.push_back(index[i].uuid);
  }
  return changed;
}

}  // namespace sgsync::state
