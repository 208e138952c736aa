// state/store.h: everything sgsync remembers about its links, in one SQLite database (WAL mode).
//
// What it keeps (docs/state.md has every table):
//  - links, each with an identity hash of its sharing-relevant configuration: when the hash changes,
//    the link's cursors start a new generation from zero, so a changed filter forces a rescan;
//  - cursors per link, direction and kind (events, sightings): the last remote timestamp fully
//    handled, the last full reconciliation, and a generation id that changes
//    whenever continuity cannot be proven (identity change, restore from a backup);
//  - the ledger per (link, event uuid): where the event came from, the last seen timestamps and
//    content hashes on both sides, what sgsync last wrote where, and the last decision with its
//    reasons (JSON);
//  - the work queue (a transactional outbox): an item is enqueued in the same transaction as the
//    ledger change that causes it, and completed in the same transaction as the ledger change that
//    records the remote's acknowledgement;
//  - conflicts, the sightings ledger, tombstones and the audit log.
//
// Losing power at any moment loses no committed transaction (synchronous=FULL by default) and
// leaves no half-written one. Every failure names the database file.
//
// Thread-safety: a StateStore is one connection guarded by a mutex, so one writer at a time; other
// processes may read the same file concurrently (WAL: readers do not block on the writer).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/direction.h"
#include "common/result.h"

namespace sgsync::sqlite {
class Database;
}  // namespace sgsync::sqlite

namespace sgsync::state {

using ::sgsync::Direction;
enum class CursorKind { kEvents, kSightings };
// Which side of a link: the member's MISP (local) or the peer (remote, the Portal).
enum class Side { kLocal, kRemote };

struct StoreOptions {
  bool synchronous_full = true;
  int busy_timeout_ms = 5000;
  int max_attempts = 8;  // a work item failing this often goes dead
  std::int64_t backoff_base_seconds = 30;
  std::int64_t backoff_cap_seconds = 3600;
  std::function<std::int64_t()> clock;  // seconds since 1970; default: the system clock
  std::int64_t max_database_pages = 0;  // a cap on the file's size in pages (0: none)
};

struct LinkRegistration {
  std::int64_t id = 0;
  bool is_new = false;
  bool identity_changed = false;  // cursors were reset to a new generation
};

struct Cursor {
  std::int64_t last_timestamp = 0;
  std::int64_t last_full_reconciliation = 0;
  std::string generation;
};

// The ledger's last word on an event. Stored as its stable name (LedgerDecisionName), the only
// place the text appears; a row with any other text is reported as corruption.
enum class LedgerDecision {
  kQueued,           // listed, not decided yet
  kSend,             // sent, or the destination had it already
  kSkip,             // refused by the policy (the reasons are in decision_json)
  kHeldConflict,     // held back by the conflict policy or an operator's resolution
  kDeletedAtPortal,  // a pulled event found deleted at the Portal while tombstones were off
  kTombstoned,       // deleted at the Portal, the member's copy deleted, never pulled again
};
std::string_view LedgerDecisionName(LedgerDecision d);  // "queued", "send", "skip", ...
std::optional<LedgerDecision> ParseLedgerDecision(std::string_view text);

struct LedgerEntry {
  std::string uuid;
  Side origin = Side::kLocal;
  std::optional<std::int64_t> local_timestamp;
  std::optional<std::string> local_hash;
  std::optional<std::int64_t> remote_timestamp;
  std::optional<std::string> remote_hash;
  std::optional<Side> written_side;  // where sgsync last wrote this event
  std::optional<std::int64_t> written_timestamp;
  std::optional<std::string> written_hash;
  LedgerDecision decision = LedgerDecision::kQueued;
  std::string decision_json;    // the policy's reasons, as JSON
  std::int64_t updated_at = 0;  // set by the store
};

// One (uuid, timestamp) row of an event index.
struct IndexPair {
  std::string uuid;
  std::int64_t timestamp = 0;
};

enum class WorkState { kPending, kLeased, kDone, kFailed, kDead };
std::string_view WorkStateName(WorkState s);

struct WorkItem {
  std::int64_t id = 0;
  std::int64_t link_id = 0;
  Direction direction = Direction::kPush;
  std::string uuid;
  std::int64_t version = 0;  // the event timestamp the work is for
  WorkState state = WorkState::kPending;
  int attempts = 0;
  std::optional<std::int64_t> lease_expires_at;
  std::int64_t next_attempt_at = 0;
  std::string last_error;
};

// The work not finished, by state. Done items are not counted: they stay until retention prunes
// them (100 000 after a first push), and a count would read every one on every run.
struct QueueCounts {
  std::int64_t pending = 0, leased = 0, failed = 0, dead = 0;
};

struct Conflict {
  std::int64_t id = 0;
  std::string uuid;
  std::int64_t local_timestamp = 0;
  std::string local_hash;
  std::int64_t remote_timestamp = 0;
  std::string remote_hash;
  std::string differences;  // JSON: which elements differ
  std::int64_t detected_at = 0;
  std::optional<std::string> resolution;
  std::optional<std::string> resolved_by;
};

struct AuditRecord {
  std::int64_t id = 0;
  std::int64_t at = 0;
  std::string actor;   // who: "sgsyncd", a peer credential, a certificate subject
  std::string action;  // what: "events/add", "ResolveConflict" ...
  std::string target;  // where: a URL, a link, a uuid
  std::string result;  // "ok", an error
  std::string details;
};

// A direction of a link an operator paused (sgsyncctl pause): kept until resumed.
struct Pause {
  std::string link;
  Direction direction = Direction::kPush;
  std::string paused_by;  // the admin API's actor
  std::int64_t paused_at = 0;
};

class StateStore {
 public:
  // Index pages up to this many rows are checked against the ledger row by row (Changed).
  static constexpr std::size_t kChangedPointQueryLimit = 512;

  // Opens (creating when missing) and migrates the database at `path`. Fails, naming the file, when
  // its directory is missing, it is not writable, it is not a SQLite database, or it was written by
  // a newer sgsync (both schema versions named).
  static Result<std::unique_ptr<StateStore>> Open(const std::string& path, StoreOptions options = {});
  ~StateStore();

  // ---- links and cursors
  Result<LinkRegistration> RegisterLink(const std::string& name, const std::string& identity_hash);
  // The link's id when the store knows it, changing nothing (RegisterLink registers).
  Result<std::optional<std::int64_t>> FindLink(const std::string& name);
  // Creates the cursor (generation fresh, timestamp 0) when missing.
  Result<Cursor> GetCursor(std::int64_t link_id, Direction d, CursorKind k);
  // Moves the cursor; refuses to move it backwards (a changed link identity starts a new generation,
  // RegisterLink).
  Status AdvanceCursor(std::int64_t link_id, Direction d, CursorKind k, std::int64_t last_timestamp);
  Status MarkFullReconciliation(std::int64_t link_id, Direction d, CursorKind k, std::int64_t at);

  // ---- ledger
  Result<std::optional<LedgerEntry>> GetLedger(std::int64_t link_id, const std::string& uuid);
  Status UpsertLedger(std::int64_t link_id, const LedgerEntry& entry);
  // A page of the ledger, by uuid after `after_uuid`, with the state of the event's newest work
  // item ("" when none: never queued, or its finished items pruned, which `work_state` "done"
  // matches too): what the admin API's ListEvents shows. Empty filters match everything.
  struct LedgerRow {
    LedgerEntry entry;
    std::string work_state;  // pending | leased | done | failed | dead | ""
  };
  Result<std::vector<LedgerRow>> ListLedger(std::int64_t link_id, std::optional<LedgerDecision> decision,
                                            const std::string& work_state, std::int64_t updated_since,
                                            const std::string& after_uuid, int limit);
  // The events sgsync last wrote on `side`, with the timestamp it wrote (decision "send", or
  // "deleted_at_portal": seen deleted while tombstones were off, so a later full run can apply it).
  Result<std::vector<IndexPair>> ListWritten(std::int64_t link_id, Side side);
  // Forgets the timestamps the ledger saw on both sides (not what sgsync wrote where): every event
  // of the link is listed as changed again and re-decided. For a changed sharing configuration.
  Status ForgetSeen(std::int64_t link_id);
  // Many entries in one transaction.
  Status UpsertLedgerBatch(std::int64_t link_id, const std::vector<LedgerEntry>& entries);
  // The uuids of `index` that the ledger has not seen on `side`, or saw with an older timestamp.
  // Its cost follows this link's index and ledger only: a page of a few rows (an incremental run)
  // is looked up row by row, a large one against one scan of this link's ledger rows.
  Result<std::vector<std::string>> Changed(std::int64_t link_id, Side side,
                                           const std::vector<IndexPair>& index);

  // ---- work queue (transactional outbox)
  // Records the ledger entry and enqueues (direction, uuid, version) in one transaction. Enqueuing
  // the same (link, direction, uuid, version) again returns the existing item's id; it changes
  // nothing while the item is waiting, in hand, failing or dead, and makes a done item pending
  // again (the caller wants the event looked at again: a changed sharing configuration).
  Result<std::int64_t> RecordAndEnqueue(std::int64_t link_id, const LedgerEntry& entry, Direction d,
                                        std::int64_t version);
  // RecordAndEnqueue for many events in one transaction, all or none: a first run's listing of
  // thousands of events costs one commit (one fsync), not one an event.
  struct Enqueue {
    LedgerEntry entry;
    std::int64_t version = 0;
  };
  Status RecordAndEnqueueMany(std::int64_t link_id, Direction d, const std::vector<Enqueue>& items);
  // Leases one item whatever its backoff (an operator's resend): NotFound when it does not exist,
  // FailedPrecondition while another run holds it.
  Result<WorkItem> LeaseItem(std::int64_t item_id, std::int64_t lease_seconds);
  // Up to `max` items ready to run (pending, failed and due, or leased with an expired lease),
  // oldest first, leased for `lease_seconds`.
  Result<std::vector<WorkItem>> Lease(std::int64_t link_id, Direction d, int max, std::int64_t lease_seconds);
  // The remote acknowledged: marks the item done and records the ledger entry, in one transaction,
  // durable when this returns. Completions from several threads at once share a transaction (a group
  // commit: the first writes those that queued behind it while it waited for the database), so a
  // batch's parallel writes cost one fsync, not one each; each caller still gets its own status, and
  // one item's failure leaves the others of its group written.
  Status Complete(std::int64_t item_id, std::int64_t link_id, const LedgerEntry& entry);
  // Complete for many items at once, as the engine completes what a wave of work finished: one
  // transaction for up to 64 items, a savepoint each, so one item's failure leaves the others
  // written. Each item gets its own status, in order; durable when this returns.
  struct Completion {
    std::int64_t item_id = 0;
    LedgerEntry entry;
  };
  std::vector<Status> CompleteMany(std::int64_t link_id, const std::vector<Completion>& items);
  // How many completions and how many transactions wrote them, since the store was opened.
  struct CompletionCounts {
    std::int64_t completions = 0;
    std::int64_t commits = 0;
  };
  CompletionCounts completion_counts() const;
  // What the store's connection did since it was opened (sqlite::Database::commits, vm_steps):
  // what tests and benchmarks count to pin a call's cost.
  struct Work {
    std::int64_t commits = 0;
    std::int64_t vm_steps = 0;
  };
  Work work() const;
  // The attempt failed: retried with exponential backoff (or at `retry_at`), dead after
  // max_attempts. Returns the item's new state.
  Result<WorkState> FailAttempt(std::int64_t item_id, const std::string& error,
                                std::optional<std::int64_t> retry_at = std::nullopt, bool dead_now = false);
  // The attempt failed in a way retrying cannot mend: dead at once (an operator may still retry).
  Result<WorkState> DeadLetter(std::int64_t item_id, const std::string& error);
  // The lease is given back without an attempt being counted (the run stopped before trying it:
  // shutdown, or its peer went down): ready again at once.
  Status Release(std::int64_t item_id);
  // Every lease given back: for a process that owns the database (sgsyncd holds a lock file) and
  // starts after one that was killed. Returns how many there were.
  Result<int> ReleaseAllLeases();
  Status RetryDead(std::int64_t item_id);  // dead -> pending, attempts kept
  Status DropDead(std::int64_t item_id);   // dead -> removed
  // The smallest version (event timestamp) of the link's work in direction `d` not done yet
  // (pending, leased or failed): the cursor must not pass it. Dead letters do not count: one event
  // a peer never serves must not hold the cursor for ever (they stay listed for retry).
  Result<std::optional<std::int64_t>> OldestUnfinished(std::int64_t link_id, Direction d);
  Result<QueueCounts> CountQueue(std::int64_t link_id, Direction d);
  Result<std::optional<WorkItem>> GetWork(std::int64_t item_id);
  Result<std::vector<WorkItem>> ListWork(std::int64_t link_id, WorkState s, int limit = 100);

  // ---- conflicts, sightings, tombstones
  Result<std::int64_t> RecordConflict(std::int64_t link_id, const Conflict& c);
  Result<std::vector<Conflict>> ListConflicts(std::int64_t link_id, bool open_only);
  Status ResolveConflict(std::int64_t conflict_id, const std::string& resolution, const std::string& by);
  Status MarkSightingsSynced(std::int64_t link_id, Direction d, const std::string& event_uuid,
                             const std::vector<std::string>& sighting_uuids);
  // The sighting uuids of `candidates` not yet synced in direction `d`.
  Result<std::vector<std::string>> UnsyncedSightings(std::int64_t link_id, Direction d,
                                                     const std::vector<std::string>& candidates);
  Status AddTombstone(std::int64_t link_id, const std::string& uuid, const std::string& source,
                      const std::string& action);
  Result<bool> HasTombstone(std::int64_t link_id, const std::string& uuid);

  // ---- pauses (by link name)
  Status SetPause(const Pause& pause);  // paused_at is set by the store when 0
  Status ClearPause(const std::string& link, Direction d);
  Result<std::vector<Pause>> ListPauses();

  // ---- audit log
  Status Audit(const AuditRecord& record);  // `at` and `id` are set by the store
  // Entries at or after `since` with an id above `after_id`, oldest first; `target_prefix` (a
  // link's name and a space) keeps those whose target starts with it.
  Result<std::vector<AuditRecord>> ListAudit(std::int64_t since, int limit = 100, std::int64_t after_id = 0,
                                             const std::string& target_prefix = "");

  // ---- maintenance
  // Online backup to `dest` (sqlite3_backup); the copy is marked so that a store opened on it starts
  // new cursor generations (continuity with the peers cannot be proven after a restore).
  Status Backup(const std::string& dest);

  // ---- retention (docs/state.md, "Retention")
  // Rows older than these (Unix seconds) go; 0 keeps them.
  struct Retention {
    std::int64_t done_work_before = 0;           // finished work items
    std::int64_t audit_before = 0;               // audit entries
    std::int64_t resolved_conflicts_before = 0;  // conflicts resolved before then
  };
  struct PruneCounts {
    std::int64_t work_items = 0, audit = 0, conflicts = 0, sightings = 0;
  };
  // Deletes what `retention` lets go, and the sightings ledger's rows of events the ledger no longer
  // tracks, in transactions of at most `batch` rows: a run waits for one short transaction at most.
  Result<PruneCounts> Prune(const Retention& retention, int batch = 500);
  // The database file's size in bytes (pages in use and free).
  Result<std::int64_t> SizeBytes();
  // Compacts the file (VACUUM). Runs wait for it (one store, one lock): seconds for a large file.
  Status Vacuum();
  Result<int> SchemaVersion();
  // PRAGMA integrity_check: "ok" or SQLite's findings.
  Result<std::string> IntegrityCheck();
  const std::string& path() const;

 private:
  explicit StateStore(std::unique_ptr<sqlite::Database> db, StoreOptions options);
  std::int64_t Now() const;
  Status StartNewGenerationsIfRestored();
  struct PendingCompletion;
  void CommitCompletions(const std::vector<PendingCompletion*>& group);
  Result<std::int64_t> EnqueueInTransaction(std::int64_t link_id, const LedgerEntry& entry, Direction d,
                                            std::int64_t version, std::int64_t now);

  std::unique_ptr<sqlite::Database> db_;
  StoreOptions options_;
  mutable std::mutex mu_;
  // The group commit of Complete: callers queue here; the one at the front writes the group.
  mutable std::mutex group_mu_;
  std::condition_variable group_cv_;
  std::deque<PendingCompletion*> group_;
  CompletionCounts completion_counts_;  // guarded by group_mu_
};

}  // namespace sgsync::state
