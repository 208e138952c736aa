#include "state/rows.h"

#include <random>

#include "sqlite/sqlite.h"

namespace sgsync::state::rows {

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
      .Bind(11, LedgerDecisionName(e.decision))
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

const char* const kWorkColumns =
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

}  // namespace sgsync::state::rows
