#include "state/schema.h"

#include <string>
#include <vector>

namespace sgsync::state {
namespace {

struct Migration {
  int version;
  const char* what;
  const char* sql;
};

// Never edit a migration that has shipped: add a new one.
const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "links, cursors, ledger, work queue", R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE links (
  id            INTEGER PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  identity_hash TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);
CREATE TABLE cursors (
  link_id                  INTEGER NOT NULL REFERENCES links(id) ON DELETE CASCADE,
  direction                TEXT NOT NULL CHECK (direction IN ('push', 'pull')),
  kind                     TEXT NOT NULL CHECK (kind IN ('events', 'sightings')),
  last_timestamp           INTEGER NOT NULL DEFAULT 0,
  overlap_seconds          INTEGER NOT NULL DEFAULT 0,
  last_full_reconciliation INTEGER NOT NULL DEFAULT 0,
  generation               TEXT NOT NULL,
  updated_at               INTEGER NOT NULL,
  PRIMARY KEY (link_id, direction, kind)
) WITHOUT ROWID;
CREATE TABLE ledger (
  link_id             INTEGER NOT NULL REFERENCES links(id) ON DELETE CASCADE,
  uuid                TEXT NOT NULL,
  origin              TEXT NOT NULL CHECK (origin IN ('local', 'remote')),
  local_timestamp     INTEGER,
  local_hash          TEXT,
  remote_timestamp    INTEGER,
  remote_hash         TEXT,
  written_side        TEXT CHECK (written_side IN ('local', 'remote')),
  written_timestamp   INTEGER,
  written_hash        TEXT,
  decision            TEXT,
  decision_json       TEXT,
  updated_at          INTEGER NOT NULL,
  UNIQUE (link_id, uuid)
);
CREATE TABLE work_queue (
  id               INTEGER PRIMARY KEY,
  link_id          INTEGER NOT NULL REFERENCES links(id) ON DELETE CASCADE,
  direction        TEXT NOT NULL CHECK (direction IN ('push', 'pull')),
  uuid             TEXT NOT NULL,
  version          INTEGER NOT NULL,
  state            TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'failed', 'dead')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  lease_expires_at INTEGER,
  next_attempt_at  INTEGER NOT NULL,
  last_error       TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  UNIQUE (link_id, direction, uuid, version)
);
CREATE INDEX work_queue_ready ON work_queue (link_id, direction, state, next_attempt_at);
)sql"},
      {2, "conflicts, sightings ledger, tombstones, audit log", R"sql(
CREATE TABLE conflicts (
  id               INTEGER PRIMARY KEY,
  link_id          INTEGER NOT NULL REFERENCES links(id) ON DELETE CASCADE,
  uuid             TEXT NOT NULL,
  local_timestamp  INTEGER NOT NULL,
  local_hash       TEXT NOT NULL,
  remote_timestamp INTEGER NOT NULL,
  remote_hash      TEXT NOT NULL,
  differences      TEXT NOT NULL,
  detected_at      INTEGER NOT NULL,
  resolution       TEXT,
  resolved_by      TEXT,
  resolved_at      INTEGER
);
CREATE INDEX conflicts_open ON conflicts (link_id, resolution);
CREATE TABLE sighting_ledger (
  link_id       INTEGER NOT NULL REFERENCES links(id) ON DELETE CASCADE,
  direction     TEXT NOT NULL CHECK (direction IN ('push', 'pull')),
  sighting_uuid TEXT NOT NULL,
  event_uuid    TEXT NOT NULL,
  synced_at     INTEGER NOT NULL,
  PRIMARY KEY (link_id, direction, sighting_uuid)
) WITHOUT ROWID;
CREATE TABLE tombstones (
  link_id    INTEGER NOT NULL REFERENCES links(id) ON DELETE CASCADE,
  uuid       TEXT NOT NULL,
  deleted_at INTEGER NOT NULL,
  source     TEXT NOT NULL,
  action     TEXT NOT NULL,
  PRIMARY KEY (link_id, uuid)
) WITHOUT ROWID;
CREATE TABLE audit (
  id      INTEGER PRIMARY KEY,
  at      INTEGER NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  target  TEXT NOT NULL,
  result  TEXT NOT NULL,
  details TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
)sql"},
      // By link name, not id: an operator may pause a link before it has ever started.
      {3, "pauses that survive a reload and a restart", R"sql(
CREATE TABLE pauses (
  link       TEXT NOT NULL,
  direction  TEXT NOT NULL CHECK (direction IN ('push', 'pull')),
  paused_by  TEXT NOT NULL,
  paused_at  INTEGER NOT NULL,
  PRIMARY KEY (link, direction)
) WITHOUT ROWID;
)sql"},
      // The cursor's overlap window was never read: the engine takes it from the configuration.
      {4, "drop the cursors' unused overlap_seconds", R"sql(
ALTER TABLE cursors DROP COLUMN overlap_seconds;
)sql"},
  };
  return kMigrations;
}

}  // namespace

int CurrentSchemaVersion() { return Migrations().back().version; }

Result<int> ReadSchemaVersion(Database& db) {
  SGSYNC_TRY(
      auto exists,
      db.Prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"));
  SGSYNC_TRY(bool row, exists->Step());
  if (!row || exists->Int(0) == 0) return 0;
  SGSYNC_TRY(auto q, db.Prepare("SELECT coalesce(max(version), 0) FROM schema_version"));
  SGSYNC_TRY(bool has, q->Step());
  return has ? static_cast<int>(q->Int(0)) : 0;
}

Status Migrate(Database& db, int target) {
  if (target < 0) target = CurrentSchemaVersion();
  SGSYNC_TRY_STATUS(
      db.Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER "
              "NOT NULL, what TEXT NOT NULL)"));
  SGSYNC_TRY(int have, ReadSchemaVersion(db));
  if (have > target) {
    return Fail(ErrorCode::kVersionMismatch,
                "the state database has schema version " + std::to_string(have) + ", newer than version " +
                    std::to_string(target) +
                    " that this sgsync knows: it was written by a newer sgsync; upgrade "
                    "sgsync or restore a backup made by this version",
                db.path());
  }
  for (const Migration& m : Migrations()) {
    if (m.version <= have || m.version > target) continue;
    SGSYNC_TRY(Transaction tx, Transaction::Begin(db));
    SGSYNC_TRY_STATUS(db.Exec(m.sql));
    SGSYNC_TRY(
        auto rec,
        db.Prepare(
            "INSERT INTO schema_version (version, applied_at, what) VALUES (?, strftime('%s','now'), ?)"));
    SGSYNC_TRY_STATUS(rec->Bind(1, static_cast<std::int64_t>(m.version)).Bind(2, m.what).Run());
    SGSYNC_TRY_STATUS(tx.Commit());
  }
  return {};
}

}  // namespace sgsync::state
