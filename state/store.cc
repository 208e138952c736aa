#include "state/store.h"

#include <algorithm>
#include <ctime>
#include <random>
#include <unordered_map>

#include "state/schema.h"
#include "sqlite/sqlite.h"

namespace sgsync::state {
namespace {

const char* KindName(CursorKind k) { return k == CursorKind::kEvents ? "events" : "sightings"; }
const char* SideName(Side s) { return s == Side::kLocal ? "local" : "remote"; }
Side SideFrom(const std::string& s) { return s == "remote" ? Side::kRemote : Side::kLocal; }

WorkState StateFrom(const std::string& s) {
  if (s == "leased") return WorkState::kLeased;
  if (s == "done") return WorkState::kDone;
  if (s == "failed") return WorkState::kFailed;
  if (s == "dead") return WorkState::kDead;
  return WorkState::kPending;
}

std::string NewGenerationId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

constexpr const char* kLedgerUpsert = R"sql(
INSERT INTO ledger (link_id, uuid, origin, local_timestamp, local_hash, remote_timestamp, remote_hash,
                    written_side, written_timestamp, written_hash, decision, decision_json, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
ON CONFLICT (link_id, uuid) DO UPDATE SET
  origin = excluded.origin, local_timestamp = excluded.local_timestamp, local_hash = excluded.local_hash,
  remote_timestamp = excluded.remote_timestamp, remote_hash = excluded.remote_hash,
  written_side = excluded.written_side, written_timestamp = excluded.written_timestamp,
  written_hash = excluded.written_hash, decision = excluded.decision, decision_json = excluded.decision_json,
  updated_at = excluded.updated_at)sql";

Status WriteLedger(Database& db, std::int64_t link_id, const LedgerEntry& e, std::int64_t now) {
  SGSYNC_TRY(auto s, db.Prepare(kLedgerUpsert));
  s->Bind(1, link_id)
      .Bind(2, e.uuid)
      .Bind(3, SideName(e.origin))
      .Bind(4, e.local_timestamp)
      .Bind(5, e.local_hash);
  s->Bind(6, e.remote_timestamp).Bind(7, e.remote_hash);
  if (e.written_side) {
    s->Bind(8, SideName(*e.written_side));
  } else {
    s->BindNull(8);
  }
  s->Bind(9, e.written_timestamp)
      .Bind(10, e.written_hash)
      .Bind(11, e.decision)
      .Bind(12, e.decision_json)
      .Bind(13, now);
  return s->Run();
}

std::optional<std::int64_t> OptInt(Statement& s, int col) {
  if (s.IsNull(col)) return std::nullopt;
  return s.Int(col);
}
std::optional<std::string> OptText(Statement& s, int col) {
  if (s.IsNull(col)) return std::nullopt;
  return s.Text(col);
}

constexpr const char* kWorkColumns =
    "id, link_id, direction, uuid, version, state, attempts, lease_expires_at, next_attempt_at, last_error";

WorkItem ReadWork(Statement& s) {
  WorkItem w;
  w.id = s.Int(0);
  w.link_id = s.Int(1);
  w.direction = s.Text(2) == "push" ? Direction::kPush : Direction::kPull;
  w.uuid = s.Text(3);
  w.version = s.Int(4);
  w.state = StateFrom(s.Text(5));
  w.attempts = static_cast<int>(s.Int(6));
  w.lease_expires_at = OptInt(s, 7);
  w.next_attempt_at = s.Int(8);
  w.last_error = s.Text(9);
  return w;
}

Status EnsureCursor(Database& db, std::int64_t link_id, Direction d, CursorKind k, std::int64_t now) {
  SGSYNC_TRY(auto s, db.Prepare("INSERT OR IGNORE INTO cursors (link_id, direction, kind, generation, "
                                "updated_at) VALUES (?, ?, ?, ?, ?)"));
  return s->Bind(1, link_id)
      .Bind(2, DirectionName(d))
      .Bind(3, KindName(k))
      .Bind(4, NewGenerationId())
      .Bind(5, now)
      .Run();
}

Status ExpectOneRow(Database& db, std::string_view what, std::int64_t id) {
  if (db.Changes() == 1) return {};
  return Fail(ErrorCode::kNotFound, std::string(what) + " " + std::to_string(id) + " does not exist",
              db.path());
}

}  // namespace

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

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& path, StoreOptions options) {
  OpenOptions open;
  open.synchronous_full = options.synchronous_full;
  open.busy_timeout_ms = options.busy_timeout_ms;
  open.max_pages = options.max_database_pages;
  SGSYNC_TRY(std::unique_ptr<Database> db, Database::Open(path, open));
  SGSYNC_TRY_STATUS(Migrate(*db));
  std::unique_ptr<StateStore> store(new StateStore(std::move(db), std::move(options)));
  SGSYNC_TRY_STATUS(store->StartNewGenerationsIfRestored());
  return store;
}

Status StateStore::StartNewGenerationsIfRestored() {
  SGSYNC_TRY(auto q, db_->Prepare("SELECT value FROM meta WHERE key = 'restored_from_backup'"));
  SGSYNC_TRY(bool restored, q->Step());
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
  SGSYNC_TRY(auto q,
             db_->Prepare(
                 "SELECT last_timestamp, last_full_reconciliation, generation FROM cursors "
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
LedgerEntry ReadLedger(Statement& q) {
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
  e.decision = q.Text(9);
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
  return std::optional<LedgerEntry>(ReadLedger(*q));
}

Result<std::vector<StateStore::LedgerRow>> StateStore::ListLedger(std::int64_t link_id,
                                                                  const std::string& decision,
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
          "l.updated_at >= ? AND (? = '' OR l.decision = ?) AND (? = '' OR ws = ?) ORDER BY l.uuid LIMIT ?"));
  q->Bind(1, link_id)
      .Bind(2, after_uuid)
      .Bind(3, updated_since)
      .Bind(4, decision)
      .Bind(5, decision)
      .Bind(6, work_state)
      .Bind(7, work_state)
      .Bind(8, static_cast<std::int64_t>(limit));
  std::vector<LedgerRow> out;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    LedgerRow r;
    r.entry = ReadLedger(*q);
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
  // The index is hashed (string_views into the caller's memory) and the link's ledger scanned once
  // in table order: no allocation per row, no point query per uuid (docs/performance.md).
  std::unordered_map<std::string_view, std::size_t> position;
  position.reserve(index.size());
  for (std::size_t i = 0; i < index.size(); ++i) position.emplace(index[i].uuid, i);
  std::vector<char> up_to_date(index.size(), 0);
  SGSYNC_TRY(auto q,
             db_->Prepare(side == Side::kLocal
                              ? "SELECT uuid, local_timestamp FROM ledger NOT INDEXED WHERE link_id = ?"
                              : "SELECT uuid, remote_timestamp FROM ledger NOT INDEXED WHERE link_id = ?"));
  q->Bind(1, link_id);
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    if (q->IsNull(1)) continue;
    auto it = position.find(q->TextView(0));
    if (it != position.end() && q->Int(1) >= index[it->second].timestamp) up_to_date[it->second] = 1;
  }
  std::vector<std::string> changed;
  for (std::size_t i = 0; i < index.size(); ++i) {
    if (!up_to_date[i]) changed.push_back(index[i].uuid);
  }
  return changed;
}

Result<std::int64_t> StateStore::RecordAndEnqueue(std::int64_t link_id, const LedgerEntry& entry, Direction d,
                                                  std::int64_t version) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  std::int64_t now = Now();
  SGSYNC_TRY_STATUS(WriteLedger(*db_, link_id, entry, now));
  SGSYNC_TRY(auto ins,
             db_->Prepare("INSERT INTO work_queue (link_id, direction, uuid, version, state, "
                          "next_attempt_at, created_at, updated_at) "
                          "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (link_id, "
                          "direction, uuid, version) DO UPDATE SET state = 'pending', attempts = 0, "
                          "next_attempt_at = excluded.next_attempt_at, last_error = NULL, "
                          "updated_at = excluded.updated_at WHERE state = 'done'"));
  SGSYNC_TRY_STATUS(ins->Bind(1, link_id)
                        .Bind(2, DirectionName(d))
                        .Bind(3, entry.uuid)
                        .Bind(4, version)
                        .Bind(5, now)
                        .Bind(6, now)
                        .Bind(7, now)
                        .Run());
  SGSYNC_TRY(
      auto id,
      db_->Prepare(
          "SELECT id FROM work_queue WHERE link_id = ? AND direction = ? AND uuid = ? AND version = ?"));
  id->Bind(1, link_id).Bind(2, DirectionName(d)).Bind(3, entry.uuid).Bind(4, version);
  SGSYNC_TRY(bool row, id->Step());
  if (!row) return Fail(ErrorCode::kInternal, "enqueued item vanished", db_->path());
  std::int64_t item = id->Int(0);
  SGSYNC_TRY_STATUS(tx.Commit());
  return item;
}

Result<std::vector<WorkItem>> StateStore::Lease(std::int64_t link_id, Direction d, int max,
                                                std::int64_t lease_seconds) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  std::int64_t now = Now();
  SGSYNC_TRY(
      auto q,
      db_->Prepare(std::string("SELECT ") + kWorkColumns +
                   " FROM work_queue WHERE link_id = ? AND direction = ? AND ("
                   "(state IN ('pending', 'failed') AND next_attempt_at <= ?) OR "
                   "(state = 'leased' AND lease_expires_at <= ?)) ORDER BY next_attempt_at, id LIMIT ?"));
  q->Bind(1, link_id).Bind(2, DirectionName(d)).Bind(3, now).Bind(4, now).Bind(5, static_cast<std::int64_t>(max));
  std::vector<WorkItem> items;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    items.push_back(ReadWork(*q));
  }
  for (auto& w : items) {
    SGSYNC_TRY(
        auto u,
        db_->Prepare(
            "UPDATE work_queue SET state = 'leased', lease_expires_at = ?, updated_at = ? WHERE id = ?"));
    SGSYNC_TRY_STATUS(u->Bind(1, now + lease_seconds).Bind(2, now).Bind(3, w.id).Run());
    w.state = WorkState::kLeased;
    w.lease_expires_at = now + lease_seconds;
  }
  SGSYNC_TRY_STATUS(tx.Commit());
  return items;
}

Status StateStore::Release(std::int64_t item_id) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto u, db_->Prepare("UPDATE work_queue SET state = CASE WHEN attempts > 0 THEN 'failed' ELSE "
                                  "'pending' END, lease_expires_at = NULL, updated_at = ? WHERE id = ? AND "
                                  "state = 'leased'"));
  return u->Bind(1, Now()).Bind(2, item_id).Run();
}

Result<int> StateStore::ReleaseAllLeases() {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto u,
             db_->Prepare("UPDATE work_queue SET state = CASE WHEN attempts > 0 THEN 'failed' ELSE "
                          "'pending' END, lease_expires_at = NULL, updated_at = ? WHERE state = 'leased'"));
  SGSYNC_TRY_STATUS(u->Bind(1, Now()).Run());
  return db_->Changes();
}

Status StateStore::Complete(std::int64_t item_id, std::int64_t link_id, const LedgerEntry& entry) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  std::int64_t now = Now();
  SGSYNC_TRY(
      auto u,
      db_->Prepare(
          "UPDATE work_queue SET state = 'done', lease_expires_at = NULL, last_error = NULL, updated_at = ? "
          "WHERE id = ? AND link_id = ?"));
  SGSYNC_TRY_STATUS(u->Bind(1, now).Bind(2, item_id).Bind(3, link_id).Run());
  SGSYNC_TRY_STATUS(ExpectOneRow(*db_, "work item", item_id));
  SGSYNC_TRY_STATUS(WriteLedger(*db_, link_id, entry, now));
  return tx.Commit();
}

Result<WorkState> StateStore::DeadLetter(std::int64_t item_id, const std::string& error) {
  return FailAttempt(item_id, error, std::nullopt, true);
}

Result<WorkState> StateStore::FailAttempt(std::int64_t item_id, const std::string& error,
                                          std::optional<std::int64_t> retry_at, bool dead_now) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  SGSYNC_TRY(auto q, db_->Prepare("SELECT attempts FROM work_queue WHERE id = ?"));
  q->Bind(1, item_id);
  SGSYNC_TRY(bool row, q->Step());
  if (!row)
    return Fail(ErrorCode::kNotFound, "work item " + std::to_string(item_id) + " does not exist",
                db_->path());
  int attempts = static_cast<int>(q->Int(0)) + 1;
  std::int64_t now = Now();
  WorkState next = dead_now || attempts >= options_.max_attempts ? WorkState::kDead : WorkState::kFailed;
  std::int64_t delay = options_.backoff_base_seconds;
  for (int i = 1; i < attempts && delay < options_.backoff_cap_seconds; ++i) delay *= 2;
  delay = std::min(delay, options_.backoff_cap_seconds);
  SGSYNC_TRY(
      auto u,
      db_->Prepare(
          "UPDATE work_queue SET state = ?, attempts = ?, lease_expires_at = NULL, next_attempt_at = ?, "
          "last_error = ?, updated_at = ? WHERE id = ?"));
  SGSYNC_TRY_STATUS(u->Bind(1, WorkStateName(next))
                        .Bind(2, static_cast<std::int64_t>(attempts))
                        .Bind(3, retry_at.value_or(now + delay))
                        .Bind(4, error)
                        .Bind(5, now)
                        .Bind(6, item_id)
                        .Run());
  SGSYNC_TRY_STATUS(tx.Commit());
  return next;
}

Status StateStore::RetryDead(std::int64_t item_id) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto u, db_->Prepare("UPDATE work_queue SET state = 'pending', next_attempt_at = ?, updated_at "
                                  "= ? WHERE id = ? AND state = 'dead'"));
  SGSYNC_TRY_STATUS(u->Bind(1, Now()).Bind(2, Now()).Bind(3, item_id).Run());
  return ExpectOneRow(*db_, "dead work item", item_id);
}

Status StateStore::DropDead(std::int64_t item_id) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto u, db_->Prepare("DELETE FROM work_queue WHERE id = ? AND state = 'dead'"));
  SGSYNC_TRY_STATUS(u->Bind(1, item_id).Run());
  return ExpectOneRow(*db_, "dead work item", item_id);
}

Result<QueueCounts> StateStore::CountQueue(std::int64_t link_id, Direction d) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(
      auto q,
      db_->Prepare(
          "SELECT state, count(*) FROM work_queue WHERE link_id = ? AND direction = ? GROUP BY state"));
  q->Bind(1, link_id).Bind(2, DirectionName(d));
  QueueCounts c;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    std::int64_t n = q->Int(1);
    switch (StateFrom(q->Text(0))) {
      case WorkState::kPending:
        c.pending = n;
        break;
      case WorkState::kLeased:
        c.leased = n;
        break;
      case WorkState::kDone:
        c.done = n;
        break;
      case WorkState::kFailed:
        c.failed = n;
        break;
      case WorkState::kDead:
        c.dead = n;
        break;
    }
  }
  return c;
}

Result<std::optional<std::int64_t>> StateStore::OldestUnfinished(std::int64_t link_id, Direction d) {
  std::lock_guard lock(mu_);
  // Dead letters do not hold the cursor: an event a peer never serves would hold it for ever. They
  // stay visible (failures, retry) and a retry re-queues them.
  SGSYNC_TRY(auto q, db_->Prepare("SELECT MIN(version) FROM work_queue WHERE link_id = ? AND direction = ? "
                                  "AND state NOT IN ('done', 'dead')"));
  q->Bind(1, link_id).Bind(2, DirectionName(d));
  SGSYNC_TRY(bool row, q->Step());
  if (!row || q->IsNull(0)) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(q->Int(0));
}

Result<std::optional<WorkItem>> StateStore::GetWork(std::int64_t item_id) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto q, db_->Prepare(std::string("SELECT ") + kWorkColumns + " FROM work_queue WHERE id = ?"));
  q->Bind(1, item_id);
  SGSYNC_TRY(bool row, q->Step());
  if (!row) return std::optional<WorkItem>();
  return std::optional<WorkItem>(ReadWork(*q));
}

Result<std::vector<WorkItem>> StateStore::ListWork(std::int64_t link_id, WorkState s, int limit) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto q, db_->Prepare(std::string("SELECT ") + kWorkColumns +
                                  " FROM work_queue WHERE link_id = ? AND state = ? ORDER BY id LIMIT ?"));
  q->Bind(1, link_id).Bind(2, WorkStateName(s)).Bind(3, static_cast<std::int64_t>(limit));
  std::vector<WorkItem> out;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    out.push_back(ReadWork(*q));
  }
  return out;
}

Result<std::int64_t> StateStore::RecordConflict(std::int64_t link_id, const Conflict& c) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(
      auto s,
      db_->Prepare(
          "INSERT INTO conflicts (link_id, uuid, local_timestamp, local_hash, remote_timestamp, remote_hash, "
          "differences, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  SGSYNC_TRY_STATUS(s->Bind(1, link_id)
                        .Bind(2, c.uuid)
                        .Bind(3, c.local_timestamp)
                        .Bind(4, c.local_hash)
                        .Bind(5, c.remote_timestamp)
                        .Bind(6, c.remote_hash)
                        .Bind(7, c.differences)
                        .Bind(8, Now())
                        .Run());
  return db_->LastInsertId();
}

Result<std::vector<Conflict>> StateStore::ListConflicts(std::int64_t link_id, bool open_only) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto q, db_->Prepare("SELECT id, uuid, local_timestamp, local_hash, remote_timestamp, "
                                  "remote_hash, differences, detected_at, "
                                  "resolution, resolved_by FROM conflicts WHERE link_id = ? AND (? = 0 OR "
                                  "resolution IS NULL) ORDER BY id"));
  q->Bind(1, link_id).Bind(2, static_cast<std::int64_t>(open_only ? 1 : 0));
  std::vector<Conflict> out;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    Conflict c;
    c.id = q->Int(0);
    c.uuid = q->Text(1);
    c.local_timestamp = q->Int(2);
    c.local_hash = q->Text(3);
    c.remote_timestamp = q->Int(4);
    c.remote_hash = q->Text(5);
    c.differences = q->Text(6);
    c.detected_at = q->Int(7);
    c.resolution = OptText(*q, 8);
    c.resolved_by = OptText(*q, 9);
    out.push_back(std::move(c));
  }
  return out;
}

Status StateStore::ResolveConflict(std::int64_t conflict_id, const std::string& resolution,
                                   const std::string& by) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto u, db_->Prepare("UPDATE conflicts SET resolution = ?, resolved_by = ?, resolved_at = ? "
                                  "WHERE id = ? AND resolution IS NULL"));
  SGSYNC_TRY_STATUS(u->Bind(1, resolution).Bind(2, by).Bind(3, Now()).Bind(4, conflict_id).Run());
  return ExpectOneRow(*db_, "open conflict", conflict_id);
}

Status StateStore::MarkSightingsSynced(std::int64_t link_id, Direction d, const std::string& event_uuid,
                                       const std::vector<std::string>& sighting_uuids) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  std::int64_t now = Now();
  for (const auto& s : sighting_uuids) {
    SGSYNC_TRY(auto ins, db_->Prepare("INSERT OR IGNORE INTO sighting_ledger (link_id, direction, "
                                      "sighting_uuid, event_uuid, synced_at) "
                                      "VALUES (?, ?, ?, ?, ?)"));
    SGSYNC_TRY_STATUS(
        ins->Bind(1, link_id).Bind(2, DirectionName(d)).Bind(3, s).Bind(4, event_uuid).Bind(5, now).Run());
  }
  return tx.Commit();
}

Result<std::vector<std::string>> StateStore::UnsyncedSightings(std::int64_t link_id, Direction d,
                                                               const std::vector<std::string>& candidates) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& s : candidates) {
    SGSYNC_TRY(
        auto q,
        db_->Prepare(
            "SELECT 1 FROM sighting_ledger WHERE link_id = ? AND direction = ? AND sighting_uuid = ?"));
    q->Bind(1, link_id).Bind(2, DirectionName(d)).Bind(3, s);
    SGSYNC_TRY(bool row, q->Step());
    if (!row) out.push_back(s);
  }
  return out;
}

Status StateStore::AddTombstone(std::int64_t link_id, const std::string& uuid, const std::string& source,
                                const std::string& action) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto s, db_->Prepare("INSERT OR REPLACE INTO tombstones (link_id, uuid, deleted_at, source, "
                                  "action) VALUES (?, ?, ?, ?, ?)"));
  return s->Bind(1, link_id).Bind(2, uuid).Bind(3, Now()).Bind(4, source).Bind(5, action).Run();
}

Result<bool> StateStore::HasTombstone(std::int64_t link_id, const std::string& uuid) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto q, db_->Prepare("SELECT 1 FROM tombstones WHERE link_id = ? AND uuid = ?"));
  q->Bind(1, link_id).Bind(2, uuid);
  return q->Step();
}

Status StateStore::SetPause(const Pause& pause) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto s, db_->Prepare("INSERT OR REPLACE INTO pauses (link, direction, paused_by, paused_at) "
                                  "VALUES (?, ?, ?, ?)"));
  return s->Bind(1, pause.link)
      .Bind(2, DirectionName(pause.direction))
      .Bind(3, pause.paused_by)
      .Bind(4, pause.paused_at != 0 ? pause.paused_at : Now())
      .Run();
}

Status StateStore::ClearPause(const std::string& link, Direction d) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto s, db_->Prepare("DELETE FROM pauses WHERE link = ? AND direction = ?"));
  return s->Bind(1, link).Bind(2, DirectionName(d)).Run();
}

Result<std::vector<Pause>> StateStore::ListPauses() {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto q, db_->Prepare("SELECT link, direction, paused_by, paused_at FROM pauses ORDER BY link, direction"));
  std::vector<Pause> out;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    out.push_back(Pause{q->Text(0), q->Text(1) == "push" ? Direction::kPush : Direction::kPull, q->Text(2),
                        q->Int(3)});
  }
  return out;
}

Status StateStore::Audit(const AuditRecord& r) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto s,
             db_->Prepare(
                 "INSERT INTO audit (at, actor, action, target, result, details) VALUES (?, ?, ?, ?, ?, ?)"));
  return s->Bind(1, Now())
      .Bind(2, r.actor)
      .Bind(3, r.action)
      .Bind(4, r.target)
      .Bind(5, r.result)
      .Bind(6, r.details)
      .Run();
}

Result<std::vector<AuditRecord>> StateStore::ListAudit(std::int64_t since, int limit) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto q, db_->Prepare("SELECT id, at, actor, action, target, result, details FROM audit WHERE at "
                                  ">= ? ORDER BY id LIMIT ?"));
  q->Bind(1, since).Bind(2, static_cast<std::int64_t>(limit));
  std::vector<AuditRecord> out;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    out.push_back(
        AuditRecord{q->Int(0), q->Int(1), q->Text(2), q->Text(3), q->Text(4), q->Text(5), q->Text(6)});
  }
  return out;
}

Status StateStore::Backup(const std::string& dest) {
  std::lock_guard lock(mu_);
  OpenOptions open;
  SGSYNC_TRY(std::unique_ptr<Database> target, Database::Open(dest, open));
  sqlite3_backup* b = sqlite3_backup_init(target->handle(), "main", db_->handle(), "main");
  if (b == nullptr) return target->LastError("backup from " + db_->path());
  int rc = sqlite3_backup_step(b, -1);
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) return target->LastError("backup from " + db_->path());
  // A store opened on this copy starts new cursor generations (continuity cannot be proven).
  return target->Exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('restored_from_backup', '1')");
}

Result<int> StateStore::SchemaVersion() {
  std::lock_guard lock(mu_);
  return ReadSchemaVersion(*db_);
}

Result<std::string> StateStore::IntegrityCheck() {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto q, db_->Prepare("PRAGMA integrity_check"));
  std::string out;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    if (!out.empty()) out += "; ";
    out += q->Text(0);
  }
  return out;
}

}  // namespace sgsync::state
