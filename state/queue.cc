// StateStore's transactional work queue (state/store.h, "work queue").
#include <algorithm>
#include <ctime>
#include <unordered_map>

#include "sqlite/sqlite.h"
#include "state/rows.h"
#include "state/store.h"

namespace sgsync::state {

using namespace rows;  // NOLINT: the row helpers of this library

Result<std::int64_t> StateStore::RecordAndEnqueue(std::int64_t link_id, const LedgerEntry& entry, Direction d,
                                                  std::int64_t version) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  SGSYNC_TRY(std::int64_t item, EnqueueInTransaction(link_id, entry, d, version, Now()));
  SGSYNC_TRY_STATUS(tx.Commit());
  return item;
}

Status StateStore::RecordAndEnqueueMany(std::int64_t link_id, Direction d,
                                        const std::vector<Enqueue>& items) {
  if (items.empty()) return {};
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  const std::int64_t now = Now();
  for (const auto& item : items)
    SGSYNC_TRY_STATUS(EnqueueInTransaction(link_id, item.entry, d, item.version, now));
  return tx.Commit();
}

// The ledger entry written and the item enqueued, inside the caller's transaction (mu_ held).
Result<std::int64_t> StateStore::EnqueueInTransaction(std::int64_t link_id, const LedgerEntry& entry,
                                                      Direction d, std::int64_t version, std::int64_t now) {
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
  SGSYNC_TRY(auto id,
             db_->Prepare("SELECT id FROM work_queue WHERE link_id = ? AND direction = ? AND uuid = ? "
                          "AND version = ?"));
  id->Bind(1, link_id).Bind(2, DirectionName(d)).Bind(3, entry.uuid).Bind(4, version);
  SGSYNC_TRY(bool row, id->Step());
  if (!row) return Fail(ErrorCode::kInternal, "enqueued item vanished", db_->path());
  // `id` is reset as it goes out of scope, before the caller commits (Database::Commit says why).
  return id->Int(0);
}

Result<WorkItem> StateStore::LeaseItem(std::int64_t item_id, std::int64_t lease_seconds) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  std::int64_t now = Now();
  SGSYNC_TRY(auto q, db_->Prepare(std::string("SELECT ") + kWorkColumns + " FROM work_queue WHERE id = ?"));
  q->Bind(1, item_id);
  SGSYNC_TRY(bool row, q->Step());
  if (!row) return Fail(ErrorCode::kNotFound, "no work item " + std::to_string(item_id), db_->path());
  WorkItem w = ReadWork(*q);
  q->Reset();  // before the commit (Database::Commit says why)
  if (w.state == WorkState::kLeased && w.lease_expires_at.value_or(0) > now) {
    return Fail(ErrorCode::kFailedPrecondition,
                "work item " + std::to_string(item_id) + " is in the hands of a run", db_->path());
  }
  SGSYNC_TRY(auto u,
             db_->Prepare("UPDATE work_queue SET state = 'leased', lease_expires_at = ?, updated_at = ? "
                          "WHERE id = ?"));
  SGSYNC_TRY_STATUS(u->Bind(1, now + lease_seconds).Bind(2, now).Bind(3, item_id).Run());
  SGSYNC_TRY_STATUS(tx.Commit());
  w.state = WorkState::kLeased;
  w.lease_expires_at = now + lease_seconds;
  return w;
}

Result<std::vector<WorkItem>> StateStore::Lease(std::int64_t link_id, Direction d, int max,
                                                std::int64_t lease_seconds) {
  std::lock_guard lock(mu_);
  SGSYNC_TRY(Transaction tx, Transaction::Begin(*db_));
  std::int64_t now = Now();
  SGSYNC_TRY(
      auto q,
      // Through the index by state (work_queue_ready): the link's done items are never read.
      db_->Prepare(std::string("SELECT ") + kWorkColumns +
                   " FROM work_queue INDEXED BY work_queue_ready WHERE link_id = ? AND direction = ? AND "
                   "state IN ('pending', 'failed', 'leased') AND ("
                   "(state != 'leased' AND next_attempt_at <= ?) OR "
                   "(state = 'leased' AND lease_expires_at <= ?)) ORDER BY next_attempt_at, id LIMIT ?"));
  q->Bind(1, link_id)
      .Bind(2, DirectionName(d))
      .Bind(3, now)
      .Bind(4, now)
      .Bind(5, static_cast<std::int64_t>(max));
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

struct StateStore::PendingCompletion {
  std::int64_t item_id;
  std::int64_t link_id;
  const LedgerEntry* entry;
  Status status;
  bool done = false;
};

namespace {
// A group's size is bounded so that its transaction stays short for the readers and writers behind it.
constexpr std::size_t kMaxCompletionGroup = 64;
}  // namespace

Status StateStore::Complete(std::int64_t item_id, std::int64_t link_id, const LedgerEntry& entry) {
  PendingCompletion me{item_id, link_id, &entry, {}};
  std::unique_lock group(group_mu_);
  group_.push_back(&me);
  group_cv_.wait(group, [&] { return me.done || group_.front() == &me; });
  if (me.done) return me.status;
  // At the front: this thread writes itself and every completion queued behind it so far.
  std::vector<PendingCompletion*> batch(group_.begin(),
                                        group_.begin() + static_cast<std::ptrdiff_t>(
                                                             std::min(group_.size(), kMaxCompletionGroup)));
  group.unlock();
  CommitCompletions(batch);
  group.lock();
  completion_counts_.completions += static_cast<std::int64_t>(batch.size());
  ++completion_counts_.commits;
  for (PendingCompletion* p : batch) {
    p->done = true;
    group_.pop_front();  // the batch is the front of the queue: nobody else takes from it
  }
  group_cv_.notify_all();
  return me.status;
}

std::vector<Status> StateStore::CompleteMany(std::int64_t link_id, const std::vector<Completion>& items) {
  std::vector<PendingCompletion> pending;
  pending.reserve(items.size());
  for (const auto& c : items) pending.push_back({c.item_id, link_id, &c.entry, {}});
  for (std::size_t from = 0; from < pending.size(); from += kMaxCompletionGroup) {
    std::vector<PendingCompletion*> group;
    for (std::size_t i = from; i < std::min(pending.size(), from + kMaxCompletionGroup); ++i)
      group.push_back(&pending[i]);
    CommitCompletions(group);
    std::lock_guard lock(group_mu_);
    completion_counts_.completions += static_cast<std::int64_t>(group.size());
    ++completion_counts_.commits;
  }
  std::vector<Status> out;
  out.reserve(pending.size());
  for (auto& p : pending) out.push_back(std::move(p.status));
  return out;
}

void StateStore::CommitCompletions(const std::vector<PendingCompletion*>& group) {
  std::lock_guard lock(mu_);
  auto tx = Transaction::Begin(*db_);
  if (!tx.ok()) {
    for (PendingCompletion* p : group) p->status = tx.error();
    return;
  }
  const std::int64_t now = Now();
  auto one = [&](const PendingCompletion& p) -> Status {
    SGSYNC_TRY(auto u, db_->Prepare("UPDATE work_queue SET state = 'done', lease_expires_at = NULL, "
                                    "last_error = NULL, updated_at = ? WHERE id = ? AND link_id = ?"));
    SGSYNC_TRY_STATUS(u->Bind(1, now).Bind(2, p.item_id).Bind(3, p.link_id).Run());
    SGSYNC_TRY_STATUS(ExpectOneRow(*db_, "work item", p.item_id));
    return WriteLedger(*db_, p.link_id, *p.entry, now);
  };
  bool any_written = false;
  if (group.size() == 1) {  // alone, the transaction is its savepoint: on failure it all rolls back
    group[0]->status = one(*group[0]);
    any_written = group[0]->status.ok();
  } else {
    for (PendingCompletion* p : group) {
      // A savepoint each: one item's failure is undone alone, and the rest of the group commits.
      Status mark = db_->Exec("SAVEPOINT completion");
      p->status = mark.ok() ? one(*p) : mark;
      if (!mark.ok()) continue;
      if (!p->status.ok()) {
        Status undone = db_->Exec("ROLLBACK TO completion");
        if (!undone.ok()) {  // its half-written rows could commit with the others: none is written
          for (PendingCompletion* q : group) q->status = undone.error();
          return;
        }
      }
      Status released = db_->Exec("RELEASE completion");
      if (!released.ok() && p->status.ok()) p->status = released;
      any_written = any_written || p->status.ok();
    }
  }
  if (!any_written) return;  // nothing to keep: the transaction rolls back as it goes out of scope
  Status committed = tx->Commit();
  if (committed.ok()) return;
  for (PendingCompletion* p : group) {
    if (p->status.ok()) p->status = committed.error();
  }
}

StateStore::Work StateStore::work() const {
  std::lock_guard lock(mu_);
  return {db_->commits(), db_->vm_steps()};
}

StateStore::CompletionCounts StateStore::completion_counts() const {
  std::lock_guard lock(group_mu_);
  return completion_counts_;
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
  q->Reset();  // before the commit (Database::Commit says why)
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
      db_->Prepare("SELECT state, count(*) FROM work_queue INDEXED BY work_queue_ready WHERE link_id = ? AND "
                   "direction = ? AND state IN ('pending', 'leased', 'failed', 'dead') GROUP BY state"));
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
      case WorkState::kDone:  // not asked for
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
  SGSYNC_TRY(auto q, db_->Prepare(
                         "SELECT MIN(version) FROM work_queue INDEXED BY work_queue_ready "
                         "WHERE link_id = ? AND direction = ? AND state IN ('pending', 'leased', 'failed')"));
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

}  // namespace sgsync::state
