// StateStore's records beside the ledger: conflicts, the sightings ledger, tombstones, pauses, the
// audit log, backups and checks (state/store.h).
#include <algorithm>
#include <ctime>
#include <unordered_map>

#include "sqlite/sqlite.h"
#include "state/rows.h"
#include "state/store.h"

namespace sgsync::state {

using namespace rows;  // NOLINT: the row helpers of this library

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
  SGSYNC_TRY(
      auto q,
      db_->Prepare("SELECT link, direction, paused_by, paused_at FROM pauses ORDER BY link, direction"));
  std::vector<Pause> out;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    out.push_back(
        Pause{q->Text(0), q->Text(1) == "push" ? Direction::kPush : Direction::kPull, q->Text(2), q->Int(3)});
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

Result<std::vector<AuditRecord>> StateStore::ListAudit(std::int64_t since, int limit, std::int64_t after_id,
                                                       const std::string& target_prefix) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(
      auto q,
      db_->Prepare("SELECT id, at, actor, action, target, result, details FROM audit WHERE at >= ? "
                   "AND id > ? AND (?3 = '' OR substr(target, 1, length(?3)) = ?3) ORDER BY id LIMIT ?4"));
  q->Bind(1, since).Bind(2, after_id).Bind(3, target_prefix).Bind(4, static_cast<std::int64_t>(limit));
  std::vector<AuditRecord> out;
  while (true) {
    SGSYNC_TRY(bool row, q->Step());
    if (!row) break;
    out.push_back(
        AuditRecord{q->Int(0), q->Int(1), q->Text(2), q->Text(3), q->Text(4), q->Text(5), q->Text(6)});
  }
  return out;
}

Result<StateStore::PruneCounts> StateStore::Prune(const Retention& retention, int batch) {
  PruneCounts counts;
  // Each statement deletes at most `batch` rows in its own transaction; the lock is let go between
  // them, so runs go on while a large backlog is pruned.
  auto drain = [&](const char* sql, std::int64_t before, std::int64_t* counter) -> Status {
    while (true) {
      std::lock_guard lock(mu_);
      SGSYNC_TRY(auto q, db_->Prepare(sql));
      if (before > 0) {
        q->Bind(1, before).Bind(2, static_cast<std::int64_t>(batch));
      } else {
        q->Bind(1, static_cast<std::int64_t>(batch));
      }
      SGSYNC_TRY_STATUS(q->Run());
      const std::int64_t n = db_->Changes();
      *counter += n;
      if (n < batch) return {};
    }
  };
  if (retention.done_work_before > 0) {
    SGSYNC_TRY_STATUS(
        drain("DELETE FROM work_queue WHERE id IN (SELECT id FROM work_queue WHERE state = 'done' AND "
              "updated_at < ?1 LIMIT ?2)",
              retention.done_work_before, &counts.work_items));
  }
  if (retention.audit_before > 0) {
    SGSYNC_TRY_STATUS(drain("DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ?1 LIMIT ?2)",
                            retention.audit_before, &counts.audit));
  }
  if (retention.resolved_conflicts_before > 0) {
    SGSYNC_TRY_STATUS(
        drain("DELETE FROM conflicts WHERE id IN (SELECT id FROM conflicts WHERE resolved_at IS NOT "
              "NULL AND resolved_at < ?1 LIMIT ?2)",
              retention.resolved_conflicts_before, &counts.conflicts));
  }
  SGSYNC_TRY_STATUS(
      drain("DELETE FROM sighting_ledger WHERE (link_id, direction, sighting_uuid) IN (SELECT s.link_id, "
            "s.direction, s.sighting_uuid FROM sighting_ledger s WHERE NOT EXISTS (SELECT 1 FROM ledger l "
            "WHERE l.link_id = s.link_id AND l.uuid = s.event_uuid) LIMIT ?1)",
            0, &counts.sightings));
  return counts;
}

Result<std::int64_t> StateStore::SizeBytes() {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(auto q,
             db_->Prepare("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"));
  SGSYNC_TRY(bool row, q->Step());
  if (!row) return Fail(ErrorCode::kInternal, "no page count", db_->path());
  return q->Int(0);
}

Status StateStore::Vacuum() {
  std::lock_guard lock(mu_);
  return db_->Exec("VACUUM");
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
