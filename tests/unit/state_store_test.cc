#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "sqlite/sqlite.h"
#include "state/store.h"
#include "tests/support/files.h"

namespace sgsync::state {
namespace {

using sgsync::testing::TempDir;

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions o;
    o.clock = [this] { return now_; };
    o.max_attempts = 3;
    o.backoff_base_seconds = 10;
    o.backoff_cap_seconds = 25;
    auto s = StateStore::Open((dir_.path() / "state.db").string(), o);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    store_ = std::move(*s);
    auto link = store_->RegisterLink("portal", "hash-1");
    ASSERT_TRUE(link.ok());
    link_ = link->id;
  }

  LedgerEntry Entry(const std::string& uuid, std::int64_t local_ts) {
    LedgerEntry e;
    e.uuid = uuid;
    e.origin = Side::kLocal;
    e.local_timestamp = local_ts;
    e.local_hash = "h" + std::to_string(local_ts);
    e.decision = LedgerDecision::kSend;
    e.decision_json = R"({"reasons":[]})";
    return e;
  }

  // A second connection to the store's file, with a trigger refusing ledger rows whose local_hash
  // is "poison" on `statement` ("INSERT" or "UPDATE"): a write that fails inside a transaction.
  std::unique_ptr<sqlite::Database> RefusePoisonedLedgerRows(const std::string& statement) {
    auto other = sqlite::Database::Open((dir_.path() / "state.db").string(), sqlite::OpenOptions{});
    if (!other.ok()) {
      ADD_FAILURE() << other.error().ToString();
      return nullptr;
    }
    const Status created = (*other)->Exec("CREATE TRIGGER refuse BEFORE " + statement +
                                          " ON ledger WHEN NEW.local_hash = 'poison' "
                                          "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    EXPECT_TRUE(created.ok());
    return std::move(*other);
  }

  TempDir dir_;
  std::int64_t now_ = 1000;
  std::unique_ptr<StateStore> store_;
  std::int64_t link_ = 0;
};

TEST_F(StateStoreTest, ANewDatabaseHasTheCurrentSchemaAndPassesIntegrityCheck) {
  EXPECT_EQ(*store_->SchemaVersion(), 4);
  EXPECT_EQ(*store_->IntegrityCheck(), "ok");
}

// Each enqueue is a transaction of its own. Its commit must leave the log free to be checkpointed:
// an enqueue committed with its SELECT still open kept the -wal file growing by about 24 KB an item
// (2.4 GB for the 100 000 events of a first push), where a checkpoint every 10 000 pages holds it
// near 40 MB.
TEST(StateStoreWalTest, EnqueueingManyItemsOneByOneKeepsTheWriteAheadLogBounded) {
  TempDir dir;
  const std::string file = (dir.path() / "state.db").string();
  StoreOptions o;
  o.synchronous_full = false;  // no fsync a commit: the same log, written faster
  auto store = StateStore::Open(file, o);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto link = (*store)->RegisterLink("portal", "hash-1");
  ASSERT_TRUE(link.ok());
  std::uintmax_t largest = 0;
  for (int i = 0; i < 12000; ++i) {
    LedgerEntry e;
    e.uuid = "0b0c5b1e-0000-4000-8000-" + std::to_string(100000000000 + i);
    e.origin = Side::kLocal;
    e.local_timestamp = 1000 + i;
    e.decision = LedgerDecision::kQueued;
    ASSERT_TRUE((*store)->RecordAndEnqueue(link->id, e, Direction::kPush, 1000 + i).ok());
    if (i % 1000 == 999) largest = std::max(largest, std::filesystem::file_size(file + "-wal"));
  }
  EXPECT_LT(largest, std::uintmax_t{64} << 20) << "the -wal file reached " << (largest >> 20) << " MiB";
}

// Issue 16 item 6: a pause lives in the database, by link name and direction, with who and when.
TEST_F(StateStoreTest, APauseIsKeptWithWhoAndWhenUntilCleared) {
  ASSERT_TRUE(store_->SetPause(Pause{"portal", Direction::kPull, "unix socket, operator yamada", 0}).ok());
  ASSERT_TRUE(store_->SetPause(Pause{"not-started-yet", Direction::kPush, "certificate CN=ops", 77}).ok());
  auto pauses = store_->ListPauses();
  ASSERT_TRUE(pauses.ok()) << pauses.error().ToString();
  ASSERT_EQ(pauses->size(), 2u);
  EXPECT_EQ((*pauses)[1].link, "portal");
  EXPECT_EQ((*pauses)[1].direction, Direction::kPull);
  EXPECT_EQ((*pauses)[1].paused_by, "unix socket, operator yamada");
  EXPECT_EQ((*pauses)[1].paused_at, now_) << "the store's clock when not given";
  EXPECT_EQ((*pauses)[0].paused_at, 77);
  ASSERT_TRUE(store_->ClearPause("portal", Direction::kPull).ok());
  EXPECT_EQ(store_->ListPauses()->size(), 1u);
}

TEST_F(StateStoreTest, RegisteringALinkAgainKeepsItsIdAndSeesIdentityChanges) {
  auto same = store_->RegisterLink("portal", "hash-1");
  EXPECT_EQ(same->id, link_);
  EXPECT_FALSE(same->is_new);
  EXPECT_FALSE(same->identity_changed);
  ASSERT_TRUE(store_->AdvanceCursor(link_, Direction::kPush, CursorKind::kEvents, 500).ok());
  std::string gen = store_->GetCursor(link_, Direction::kPush, CursorKind::kEvents)->generation;
  auto changed = store_->RegisterLink("portal", "hash-2");
  EXPECT_TRUE(changed->identity_changed);
  auto c = store_->GetCursor(link_, Direction::kPush, CursorKind::kEvents);
  EXPECT_EQ(c->last_timestamp, 0) << "a changed filter forces a rescan";
  EXPECT_NE(c->generation, gen);
  EXPECT_TRUE(store_->RegisterLink("member-2", "x")->is_new);
}

TEST_F(StateStoreTest, FindingALinkChangesNothingSoARegistrationStillSeesTheIdentityChange) {
  EXPECT_EQ(*store_->FindLink("portal"), std::optional<std::int64_t>(link_));
  EXPECT_EQ(*store_->FindLink("nowhere"), std::nullopt);
  auto changed = store_->RegisterLink("portal", "hash-2");
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(changed->identity_changed);
}

TEST_F(StateStoreTest, CursorsMoveOnlyForwardUntilTheLinkIdentityChanges) {
  auto c = store_->GetCursor(link_, Direction::kPull, CursorKind::kEvents);
  EXPECT_EQ(c->last_timestamp, 0);
  EXPECT_EQ(c->generation.size(), 32u);
  ASSERT_TRUE(store_->AdvanceCursor(link_, Direction::kPull, CursorKind::kEvents, 200).ok());
  auto back = store_->AdvanceCursor(link_, Direction::kPull, CursorKind::kEvents, 100);
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.error().message.find("only move forward"), std::string::npos);
  ASSERT_TRUE(store_->MarkFullReconciliation(link_, Direction::kPull, CursorKind::kEvents, 999).ok());
  c = store_->GetCursor(link_, Direction::kPull, CursorKind::kEvents);
  EXPECT_EQ(c->last_timestamp, 200);
  EXPECT_EQ(c->last_full_reconciliation, 999);
  EXPECT_EQ(store_->GetCursor(link_, Direction::kPull, CursorKind::kSightings)->last_timestamp, 0)
      << "kinds are separate";
  std::string old_generation = c->generation;
  ASSERT_TRUE(store_->RegisterLink("portal", "hash-2")->identity_changed);
  c = store_->GetCursor(link_, Direction::kPull, CursorKind::kEvents);
  EXPECT_EQ(c->last_timestamp, 0);
  EXPECT_NE(c->generation, old_generation);
}

TEST_F(StateStoreTest, TheLedgerListsEveryDecisionOrOnlyTheOneAskedFor) {
  LedgerEntry skipped = Entry("u2", 20);
  skipped.decision = LedgerDecision::kSkip;
  ASSERT_TRUE(store_->UpsertLedger(link_, Entry("u1", 10)).ok());
  ASSERT_TRUE(store_->UpsertLedger(link_, skipped).ok());
  auto all = store_->ListLedger(link_, std::nullopt, "", 0, "", 10);
  ASSERT_TRUE(all.ok()) << all.error().ToString();
  EXPECT_EQ(all->size(), 2u);
  auto only = store_->ListLedger(link_, LedgerDecision::kSkip, "", 0, "", 10);
  ASSERT_TRUE(only.ok());
  ASSERT_EQ(only->size(), 1u);
  EXPECT_EQ((*only)[0].entry.uuid, "u2");
}

TEST_F(StateStoreTest, ALedgerRowWithAnUnknownDecisionIsReportedAsCorruption) {
  ASSERT_TRUE(store_->UpsertLedger(link_, Entry("u1", 10)).ok());
  auto db = sqlite::Database::Open((dir_.path() / "state.db").string(), sqlite::OpenOptions{});
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Exec("UPDATE ledger SET decision = 'maybe'").ok());
  auto read = store_->GetLedger(link_, "u1");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code, ErrorCode::kCorruption);
  EXPECT_NE(read.error().message.find("unknown decision 'maybe'"), std::string::npos) << read.error().message;
}

TEST_F(StateStoreTest, RetentionRemovesOnlyWhatIsOldAndFinishedInSmallBatches) {
  // At t=1000: two finished items, an audit entry, a resolved conflict, a sighting of e1.
  for (const char* uuid : {"e1", "e2"}) {
    auto id = *store_->RecordAndEnqueue(link_, Entry(uuid, 50), Direction::kPush, 50);
    ASSERT_TRUE(store_->Complete(id, link_, Entry(uuid, 50)).ok());
  }
  ASSERT_TRUE(store_->Audit(AuditRecord{0, 0, "op", "Pause", "portal push", "ok", ""}).ok());
  Conflict c;
  c.uuid = "e1";
  auto conflict = store_->RecordConflict(link_, c);
  ASSERT_TRUE(conflict.ok());
  ASSERT_TRUE(store_->ResolveConflict(*conflict, "prefer-newer", "op").ok());
  ASSERT_TRUE(store_->MarkSightingsSynced(link_, Direction::kPush, "e1", {"s1"}).ok());
  ASSERT_TRUE(store_->MarkSightingsSynced(link_, Direction::kPush, "gone", {"s2", "s3"}).ok());
  // At t=5000: one more of each, recent.
  now_ = 5000;
  auto fresh = *store_->RecordAndEnqueue(link_, Entry("e3", 60), Direction::kPush, 60);
  ASSERT_TRUE(store_->Complete(fresh, link_, Entry("e3", 60)).ok());
  ASSERT_TRUE(store_->Audit(AuditRecord{0, 0, "op", "Resume", "portal push", "ok", ""}).ok());
  auto pending = *store_->RecordAndEnqueue(link_, Entry("e4", 70), Direction::kPush, 70);

  StateStore::Retention r;
  r.done_work_before = r.audit_before = r.resolved_conflicts_before = 4000;
  auto pruned = store_->Prune(r, /*batch=*/1);
  ASSERT_TRUE(pruned.ok()) << pruned.error().ToString();
  EXPECT_EQ(pruned->work_items, 2);
  EXPECT_EQ(pruned->audit, 1);
  EXPECT_EQ(pruned->conflicts, 1);
  EXPECT_EQ(pruned->sightings, 2) << "the rows of an event the ledger does not track";
  EXPECT_TRUE(store_->GetWork(pending)->has_value()) << "unfinished work is never pruned";
  EXPECT_TRUE(store_->GetWork(fresh)->has_value());
  EXPECT_EQ(store_->ListAudit(0)->size(), 1u);
  EXPECT_EQ(*store_->UnsyncedSightings(link_, Direction::kPush, {"s1"}), std::vector<std::string>{})
      << "the sightings of a tracked event stay synced";
  // A pruned event still lists as in sync (its work item is gone, its ledger stays).
  auto in_sync = store_->ListLedger(link_, std::nullopt, "done", 0, "", 10);
  ASSERT_TRUE(in_sync.ok());
  EXPECT_EQ(in_sync->size(), 3u) << "e1, e2 (pruned) and e3 (done)";
  EXPECT_EQ(store_->Prune(StateStore::Retention{})->work_items, 0) << "0 keeps everything";
  EXPECT_GT(*store_->SizeBytes(), 0);
  EXPECT_TRUE(store_->Vacuum().ok());
}

TEST_F(StateStoreTest, LedgerEntriesRoundTripEveryField) {
  LedgerEntry e = Entry("u1", 10);
  e.remote_timestamp = 11;
  e.remote_hash = "rh";
  e.written_side = Side::kRemote;
  e.written_timestamp = 10;
  e.written_hash = "h10";
  ASSERT_TRUE(store_->UpsertLedger(link_, e).ok());
  auto got = store_->GetLedger(link_, "u1");
  ASSERT_TRUE(got.ok() && got->has_value());
  const LedgerEntry& g = **got;
  EXPECT_EQ(g.origin, Side::kLocal);
  EXPECT_EQ(g.local_timestamp, 10);
  EXPECT_EQ(g.local_hash, "h10");
  EXPECT_EQ(g.remote_timestamp, 11);
  EXPECT_EQ(g.written_side, Side::kRemote);
  EXPECT_EQ(g.written_hash, "h10");
  EXPECT_EQ(g.decision_json, R"({"reasons":[]})");
  EXPECT_EQ(g.updated_at, 1000);
  EXPECT_FALSE(store_->GetLedger(link_, "nope")->has_value());
  e.decision = LedgerDecision::kSkip;
  ASSERT_TRUE(store_->UpsertLedger(link_, e).ok());
  EXPECT_EQ((*store_->GetLedger(link_, "u1"))->decision, LedgerDecision::kSkip);
}

TEST_F(StateStoreTest, ChangedFindsNewAndNewerEventsOnTheAskedSide) {
  std::vector<LedgerEntry> batch = {Entry("a", 10), Entry("b", 20)};
  batch[1].remote_timestamp = 25;
  ASSERT_TRUE(store_->UpsertLedgerBatch(link_, batch).ok());
  std::vector<IndexPair> index = {{"a", 10}, {"b", 21}, {"c", 1}};
  EXPECT_EQ(*store_->Changed(link_, Side::kLocal, index), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(*store_->Changed(link_, Side::kRemote, index), (std::vector<std::string>{"a", "c"}))
      << "a has no remote timestamp; b's remote 25 is newer than 21";
}

TEST_F(StateStoreTest, ChangedAnswersTheSameForALargePageAndIgnoresOtherLinksRows) {
  // A page larger than kChangedPointQueryLimit takes the scan path; both paths must agree, and
  // another link's row for the same uuid (newer there) must not make this link's event "seen".
  auto other = store_->RegisterLink("other", "h2")->id;
  const std::size_t n = StateStore::kChangedPointQueryLimit * 2 + 7;
  std::vector<LedgerEntry> mine, theirs;
  std::vector<IndexPair> index;
  std::set<std::string> expected;
  for (std::size_t i = 0; i < n; ++i) {
    std::string uuid = "e" + std::to_string(i);
    if (i % 3 != 0) mine.push_back(Entry(uuid, 100));    // seen here at 100
    theirs.push_back(Entry(uuid, 1000));                  // seen by the other link, newer
    std::int64_t ts = i % 5 == 0 ? 101 : 100;
    index.push_back({uuid, ts});
    if (i % 3 == 0 || ts > 100) expected.insert(uuid);
  }
  ASSERT_TRUE(store_->UpsertLedgerBatch(link_, mine).ok());
  ASSERT_TRUE(store_->UpsertLedgerBatch(other, theirs).ok());
  auto large = *store_->Changed(link_, Side::kLocal, index);
  EXPECT_EQ(std::set<std::string>(large.begin(), large.end()), expected);
  std::vector<IndexPair> small(index.begin(), index.begin() + 40);
  std::set<std::string> small_expected;
  for (const auto& p : small)
    if (expected.count(p.uuid)) small_expected.insert(p.uuid);
  auto few = *store_->Changed(link_, Side::kLocal, small);
  EXPECT_EQ(std::set<std::string>(few.begin(), few.end()), small_expected);
  EXPECT_TRUE(store_->Changed(other, Side::kLocal, index)->empty()) << "the other link saw every one at 1000";
}

TEST_F(StateStoreTest, EnqueueIsIdempotentAndRecordsTheLedgerInTheSameTransaction) {
  auto id = store_->RecordAndEnqueue(link_, Entry("e1", 50), Direction::kPush, 50);
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  EXPECT_EQ(*store_->RecordAndEnqueue(link_, Entry("e1", 50), Direction::kPush, 50), *id);
  EXPECT_NE(*store_->RecordAndEnqueue(link_, Entry("e1", 60), Direction::kPush, 60), *id);
  EXPECT_EQ((*store_->GetLedger(link_, "e1"))->local_timestamp, 60);
  EXPECT_EQ(store_->CountQueue(link_, Direction::kPush)->pending, 2);
}

// A first run's listing: thousands of events queued with one commit, all or none.
TEST_F(StateStoreTest, ManyEventsAreRecordedAndQueuedInOneTransactionAllOrNone) {
  std::vector<StateStore::Enqueue> items;
  for (int i = 0; i < 500; ++i) items.push_back({Entry("m" + std::to_string(i), 50 + i), 50 + i});
  const std::int64_t before = store_->work().commits;
  ASSERT_TRUE(store_->RecordAndEnqueueMany(link_, Direction::kPush, items).ok());
  EXPECT_EQ(store_->work().commits - before, 1);
  EXPECT_EQ(store_->CountQueue(link_, Direction::kPush)->pending, 500);
  EXPECT_EQ((*store_->GetLedger(link_, "m499"))->local_timestamp, 549);
  // The same items again change nothing, as RecordAndEnqueue would not.
  ASSERT_TRUE(store_->RecordAndEnqueueMany(link_, Direction::kPush, items).ok());
  EXPECT_EQ(store_->CountQueue(link_, Direction::kPush)->pending, 500);

  auto other = RefusePoisonedLedgerRows("INSERT");
  ASSERT_NE(other, nullptr);
  std::vector<StateStore::Enqueue> more;
  for (int i = 0; i < 10; ++i) more.push_back({Entry("n" + std::to_string(i), 700 + i), 700 + i});
  more[7].entry.local_hash = "poison";
  const Status refused = store_->RecordAndEnqueueMany(link_, Direction::kPush, more);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().ToString().find("refused by the test"), std::string::npos)
      << refused.error().ToString();
  EXPECT_EQ(store_->CountQueue(link_, Direction::kPush)->pending, 500) << "none of the ten was queued";
  EXPECT_FALSE(store_->GetLedger(link_, "n0")->has_value());
}

// Every run counts its queue, leases from it and asks for the oldest unfinished version. Done
// items stay until retention prunes them (100 000 after a first push), and each of those calls
// read every one of them: 0.4 us an event tracked on each no-change run of sgsyncd.
TEST_F(StateStoreTest, CountingLeasingAndTheCursorsFloorReadNoneOfTheDoneItems) {
  auto cost = [&](const std::function<void()>& call) {
    const std::int64_t before = store_->work().vm_steps;
    call();
    return store_->work().vm_steps - before;
  };
  auto calls = [&] {
    ASSERT_TRUE(store_->CountQueue(link_, Direction::kPush).ok());
    ASSERT_TRUE(store_->OldestUnfinished(link_, Direction::kPush).ok());
    ASSERT_TRUE(store_->Lease(link_, Direction::kPush, 64, 60).ok());
  };
  std::vector<StateStore::Enqueue> items;
  for (int i = 0; i < 50; ++i) items.push_back({Entry("d" + std::to_string(i), 50 + i), 50 + i});
  ASSERT_TRUE(store_->RecordAndEnqueueMany(link_, Direction::kPush, items).ok());
  auto leased = *store_->Lease(link_, Direction::kPush, 64, 60);
  for (const auto& w : leased) ASSERT_TRUE(store_->Complete(w.id, link_, Entry(w.uuid, w.version)).ok());
  const std::int64_t with_few_done = cost(calls);

  items.clear();
  for (int i = 0; i < 3000; ++i) items.push_back({Entry("f" + std::to_string(i), 50 + i), 50 + i});
  ASSERT_TRUE(store_->RecordAndEnqueueMany(link_, Direction::kPush, items).ok());
  for (;;) {
    leased = *store_->Lease(link_, Direction::kPush, 500, 60);
    if (leased.empty()) break;
    for (const auto& w : leased) ASSERT_TRUE(store_->Complete(w.id, link_, Entry(w.uuid, w.version)).ok());
  }
  ASSERT_EQ(store_->ListWork(link_, WorkState::kDone, 5000)->size(), 3050u);
  const std::int64_t with_many_done = cost(calls);
  EXPECT_LT(with_many_done, with_few_done + 200)
      << "3 000 more done items cost " << with_many_done - with_few_done << " more SQLite steps";
}

TEST_F(StateStoreTest, EnqueuingADoneItemAgainMakesItPendingButLeavesDeadOnesDead) {
  auto done = *store_->RecordAndEnqueue(link_, Entry("e1", 50), Direction::kPush, 50);
  auto dead = *store_->RecordAndEnqueue(link_, Entry("e2", 50), Direction::kPush, 50);
  auto leased = *store_->Lease(link_, Direction::kPush, 10, 60);
  ASSERT_EQ(leased.size(), 2u);
  ASSERT_TRUE(store_->Complete(done, link_, Entry("e1", 50)).ok());
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(store_->FailAttempt(dead, "boom", 0).ok());
  ASSERT_EQ(store_->CountQueue(link_, Direction::kPush)->dead, 1);
  EXPECT_EQ(*store_->RecordAndEnqueue(link_, Entry("e1", 50), Direction::kPush, 50), done);
  EXPECT_EQ(*store_->RecordAndEnqueue(link_, Entry("e2", 50), Direction::kPush, 50), dead);
  auto counts = *store_->CountQueue(link_, Direction::kPush);
  EXPECT_EQ(counts.pending, 1);
  EXPECT_EQ(counts.dead, 1);
  EXPECT_TRUE(store_->ListWork(link_, WorkState::kDone)->empty());
}

TEST_F(StateStoreTest, ForgetSeenListsEveryEventAsChangedButKeepsWhatWasWritten) {
  LedgerEntry e = Entry("e1", 50);
  e.written_side = Side::kRemote;
  e.written_timestamp = 50;
  ASSERT_TRUE(store_->UpsertLedger(link_, e).ok());
  EXPECT_TRUE(store_->Changed(link_, Side::kLocal, {{"e1", 50}})->empty());
  ASSERT_TRUE(store_->ForgetSeen(link_).ok());
  EXPECT_EQ(*store_->Changed(link_, Side::kLocal, {{"e1", 50}}), std::vector<std::string>{"e1"});
  EXPECT_EQ((*store_->GetLedger(link_, "e1"))->written_timestamp, 50);
}

TEST_F(StateStoreTest, LeasedItemsAreHiddenUntilTheLeaseExpires) {
  ASSERT_TRUE(store_->RecordAndEnqueue(link_, Entry("e1", 50), Direction::kPush, 50).ok());
  ASSERT_TRUE(store_->RecordAndEnqueue(link_, Entry("e2", 51), Direction::kPush, 51).ok());
  auto first = store_->Lease(link_, Direction::kPush, 1, 60);
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].uuid, "e1");
  EXPECT_EQ((*first)[0].state, WorkState::kLeased);
  auto second = store_->Lease(link_, Direction::kPush, 10, 60);
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].uuid, "e2");
  EXPECT_TRUE(store_->Lease(link_, Direction::kPush, 10, 60)->empty());
  EXPECT_TRUE(store_->Lease(link_, Direction::kPull, 10, 60)->empty()) << "directions are separate";
  now_ += 61;  // a crashed worker's lease runs out: the item comes back
  EXPECT_EQ(store_->Lease(link_, Direction::kPush, 10, 60)->size(), 2u);
}

TEST_F(StateStoreTest, CompleteMarksDoneAndRecordsTheAcknowledgement) {
  auto id = *store_->RecordAndEnqueue(link_, Entry("e1", 50), Direction::kPush, 50);
  ASSERT_EQ(store_->Lease(link_, Direction::kPush, 1, 60)->size(), 1u);
  LedgerEntry ack = Entry("e1", 50);
  ack.written_side = Side::kRemote;
  ack.written_timestamp = 50;
  ASSERT_TRUE(store_->Complete(id, link_, ack).ok());
  EXPECT_EQ(store_->ListWork(link_, WorkState::kDone)->size(), 1u);
  EXPECT_EQ((*store_->GetLedger(link_, "e1"))->written_side, Side::kRemote);
  now_ += 1000;
  EXPECT_TRUE(store_->Lease(link_, Direction::kPush, 10, 60)->empty()) << "done items never run again";
  EXPECT_EQ(store_->Complete(9999, link_, ack).error().code, ErrorCode::kNotFound);
}

TEST_F(StateStoreTest, CompletionsQueuedTogetherShareATransactionAndABadOneIsUndoneAlone) {
  constexpr int kGood = 15;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < kGood; ++i)
    ids.push_back(*store_->RecordAndEnqueue(link_, Entry("g" + std::to_string(i), 50), Direction::kPush, 50));
  const std::int64_t poison = *store_->RecordAndEnqueue(link_, Entry("poison", 50), Direction::kPush, 50);
  // Another writer holds the database, as a second process may: the first completion waits for it
  // and the others queue behind that one. It also makes the poison item's ledger write fail after
  // its queue row was already marked done within the group's transaction.
  auto other = RefusePoisonedLedgerRows("UPDATE");
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(other->Exec("BEGIN IMMEDIATE").ok());
  std::vector<Status> results(kGood + 1);
  std::vector<std::thread> threads;
  for (int i = 0; i < kGood; ++i)
    threads.emplace_back([&, i] { results[i] = store_->Complete(ids[i], link_, Entry("g" + std::to_string(i), 50)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Queued behind the first completion, so written in the group of the others.
  LedgerEntry bad = Entry("poison", 50);
  bad.local_hash = "poison";
  threads.emplace_back([&] { results[kGood] = store_->Complete(poison, link_, bad); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(other->Exec("COMMIT").ok());
  for (auto& t : threads) t.join();

  for (int i = 0; i < kGood; ++i) EXPECT_TRUE(results[i].ok()) << i << ": " << results[i].error().ToString();
  ASSERT_FALSE(results[kGood].ok());
  EXPECT_NE(results[kGood].error().ToString().find("refused by the test"), std::string::npos)
      << results[kGood].error().ToString();
  const auto queue = store_->CountQueue(link_, Direction::kPush);
  EXPECT_EQ(store_->ListWork(link_, WorkState::kDone)->size(), static_cast<std::size_t>(kGood));
  EXPECT_EQ(queue->pending, 1) << "the poison item's queue row was undone with its ledger write";
  for (int i = 0; i < kGood; ++i)
    EXPECT_EQ((*store_->GetLedger(link_, "g" + std::to_string(i)))->decision, LedgerDecision::kSend);
  EXPECT_EQ((*store_->GetLedger(link_, "poison"))->local_hash, "h50");
  const auto counts = store_->completion_counts();
  EXPECT_EQ(counts.completions, kGood + 1);
  EXPECT_LE(counts.commits, 3) << "completions that queued together are written in one transaction";
}

TEST_F(StateStoreTest, CompletingManyWritesThemInOneTransactionAndAFailureOnlyItsOwn) {
  std::vector<StateStore::Completion> completions;
  for (int i = 0; i < 3; ++i) {
    const std::string uuid = "c" + std::to_string(i);
    const std::int64_t id = *store_->RecordAndEnqueue(link_, Entry(uuid, 50), Direction::kPush, 50);
    completions.push_back({id, Entry(uuid, 50)});
  }
  ASSERT_EQ(store_->Lease(link_, Direction::kPush, 10, 60)->size(), 3u);
  auto other = RefusePoisonedLedgerRows("UPDATE");
  ASSERT_NE(other, nullptr);
  completions[1].entry.local_hash = "poison";
  const std::vector<Status> written = store_->CompleteMany(link_, completions);
  ASSERT_EQ(written.size(), 3u);
  EXPECT_TRUE(written[0].ok());
  ASSERT_FALSE(written[1].ok());
  EXPECT_NE(written[1].error().ToString().find("refused by the test"), std::string::npos);
  EXPECT_TRUE(written[2].ok());
  EXPECT_EQ(store_->completion_counts().commits, 1);
  EXPECT_EQ(store_->ListWork(link_, WorkState::kDone)->size(), 2u);
  EXPECT_EQ(store_->CountQueue(link_, Direction::kPush)->leased, 1) << "the refused one is still in hand";
}

// Alone, a completion is written without a savepoint: its failure rolls the whole transaction
// back, so its queue row, already marked done within it, is pending again.
TEST_F(StateStoreTest, ALoneCompletionRefusedAtItsLedgerWriteLeavesItsItemPending) {
  const std::int64_t id = *store_->RecordAndEnqueue(link_, Entry("alone", 50), Direction::kPush, 50);
  auto other = RefusePoisonedLedgerRows("UPDATE");
  ASSERT_NE(other, nullptr);
  LedgerEntry bad = Entry("alone", 50);
  bad.local_hash = "poison";
  const Status refused = store_->Complete(id, link_, bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().ToString().find("refused by the test"), std::string::npos) << refused.error().ToString();
  EXPECT_EQ(store_->CountQueue(link_, Direction::kPush)->pending, 1);
  EXPECT_TRUE(store_->ListWork(link_, WorkState::kDone)->empty());
  EXPECT_EQ((*store_->GetLedger(link_, "alone"))->local_hash, "h50");
  EXPECT_EQ(store_->completion_counts().commits, 1);
}

TEST_F(StateStoreTest, FailuresBackOffExponentiallyThenGoDead) {
  auto id = *store_->RecordAndEnqueue(link_, Entry("e1", 50), Direction::kPush, 50);
  ASSERT_EQ(*store_->FailAttempt(id, "portal down"), WorkState::kFailed);
  auto failed = store_->ListWork(link_, WorkState::kFailed);
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].next_attempt_at, 1010);
  EXPECT_EQ((*failed)[0].last_error, "portal down");
  EXPECT_TRUE(store_->Lease(link_, Direction::kPush, 1, 60)->empty()) << "not before its retry time";
  ASSERT_EQ(*store_->FailAttempt(id, "again"), WorkState::kFailed);
  EXPECT_EQ((*store_->ListWork(link_, WorkState::kFailed))[0].next_attempt_at, 1020);
  ASSERT_EQ(*store_->FailAttempt(id, "and again"), WorkState::kDead);
  EXPECT_EQ(store_->CountQueue(link_, Direction::kPush)->dead, 1);
  now_ += 100000;
  EXPECT_TRUE(store_->Lease(link_, Direction::kPush, 1, 60)->empty()) << "dead items wait for an operator";
  ASSERT_TRUE(store_->RetryDead(id).ok());
  EXPECT_EQ(store_->Lease(link_, Direction::kPush, 1, 60)->size(), 1u);
  ASSERT_EQ(*store_->FailAttempt(id, "still", now_ + 5), WorkState::kDead);
  ASSERT_TRUE(store_->DropDead(id).ok());
  EXPECT_EQ(store_->CountQueue(link_, Direction::kPush)->dead, 0);
  EXPECT_EQ(store_->DropDead(id).error().code, ErrorCode::kNotFound);
}

// Spec case 39: events 5, 8 and 9 pushed, 8 fails: MISP's `lastpushedid` stops at 8. sgsync's
// analogue: the oldest unfinished event holds the cursor (the engine moves it to just before it),
// while 9 is done and never sent again.
TEST_F(StateStoreTest, SpecCase39_AFailedEventHoldsTheCursorWhileTheOthersAreDone) {
  std::map<std::int64_t, std::int64_t> ids;
  for (std::int64_t ts : {5, 8, 9}) {
    ids[ts] = *store_->RecordAndEnqueue(link_, Entry("e" + std::to_string(ts), ts), Direction::kPush, ts);
  }
  ASSERT_EQ(store_->Lease(link_, Direction::kPush, 10, 60)->size(), 3u);
  for (std::int64_t ts : {5, 9}) {
    LedgerEntry ack = Entry("e" + std::to_string(ts), ts);
    ack.written_side = Side::kRemote;
    ack.written_timestamp = ts;
    ASSERT_TRUE(store_->Complete(ids[ts], link_, ack).ok());
  }
  ASSERT_EQ(*store_->FailAttempt(ids[8], "refused"), WorkState::kFailed);
  EXPECT_EQ(*store_->OldestUnfinished(link_, Direction::kPush), std::optional<std::int64_t>(8));
  ASSERT_EQ(*store_->FailAttempt(ids[8], "refused"), WorkState::kFailed);
  ASSERT_EQ(*store_->FailAttempt(ids[8], "refused"), WorkState::kDead);
  EXPECT_EQ(*store_->OldestUnfinished(link_, Direction::kPush), std::nullopt)
      << "a dead letter no longer holds the cursor (an event a peer never serves would hold it for ever)";
  ASSERT_EQ(store_->ListWork(link_, WorkState::kDead, 10)->size(), 1u) << "it stays visible for retry";
  ASSERT_TRUE(store_->RetryDead(ids[8]).ok());
  EXPECT_EQ(*store_->OldestUnfinished(link_, Direction::kPush), std::optional<std::int64_t>(8))
      << "retried, it holds the cursor again";
}

TEST_F(StateStoreTest, FailAttemptHonoursAnExplicitRetryTime) {
  auto id = *store_->RecordAndEnqueue(link_, Entry("e1", 50), Direction::kPush, 50);
  ASSERT_TRUE(store_->FailAttempt(id, "429", 1500).ok());  // Retry-After
  EXPECT_EQ((*store_->ListWork(link_, WorkState::kFailed))[0].next_attempt_at, 1500);
}

TEST_F(StateStoreTest, ConflictsAreListedUntilResolved) {
  Conflict c{0, "e1", 10, "lh", 11, "rh", R"(["Event.info"])", 0, std::nullopt, std::nullopt};
  auto id = store_->RecordConflict(link_, c);
  ASSERT_TRUE(id.ok());
  auto open = store_->ListConflicts(link_, true);
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].differences, R"(["Event.info"])");
  EXPECT_EQ((*open)[0].detected_at, 1000);
  ASSERT_TRUE(store_->ResolveConflict(*id, "prefer-portal", "operator@example").ok());
  EXPECT_TRUE(store_->ListConflicts(link_, true)->empty());
  auto all = store_->ListConflicts(link_, false);
  EXPECT_EQ((*all)[0].resolution, "prefer-portal");
  EXPECT_EQ((*all)[0].resolved_by, "operator@example");
  EXPECT_FALSE(store_->ResolveConflict(*id, "again", "x").ok()) << "a resolved conflict stays resolved";
}

TEST_F(StateStoreTest, SightingsAreSyncedOncePerDirection) {
  ASSERT_TRUE(store_->MarkSightingsSynced(link_, Direction::kPush, "e1", {"s1", "s2"}).ok());
  EXPECT_EQ(*store_->UnsyncedSightings(link_, Direction::kPush, {"s1", "s2", "s3"}),
            std::vector<std::string>{"s3"});
  EXPECT_EQ(store_->UnsyncedSightings(link_, Direction::kPull, {"s1"})->size(), 1u);
}

TEST_F(StateStoreTest, TombstonesAreRemembered) {
  EXPECT_FALSE(*store_->HasTombstone(link_, "e1"));
  ASSERT_TRUE(store_->AddTombstone(link_, "e1", "portal", "delete").ok());
  EXPECT_TRUE(*store_->HasTombstone(link_, "e1"));
}

TEST_F(StateStoreTest, AuditRecordsWhoDidWhatWhereAndTheResult) {
  ASSERT_TRUE(
      store_->Audit({0, 0, "sgsyncd", "events/add", "https://portal/events/add", "ok", "uuid e1"}).ok());
  now_ = 2000;
  ASSERT_TRUE(store_->Audit({0, 0, "uid:0", "ResolveConflict", "portal/1", "ok", ""}).ok());
  auto all = store_->ListAudit(0);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].action, "events/add");
  EXPECT_EQ((*all)[0].at, 1000);
  EXPECT_EQ(store_->ListAudit(1500)->size(), 1u);
}

TEST_F(StateStoreTest, ABackupOpensWithEverythingAndStartsNewGenerations) {
  ASSERT_TRUE(store_->UpsertLedger(link_, Entry("e1", 10)).ok());
  ASSERT_TRUE(store_->AdvanceCursor(link_, Direction::kPush, CursorKind::kEvents, 77).ok());
  std::string gen = store_->GetCursor(link_, Direction::kPush, CursorKind::kEvents)->generation;
  std::string copy = (dir_.path() / "backup.db").string();
  ASSERT_TRUE(store_->Backup(copy).ok());
  auto restored = StateStore::Open(copy);
  ASSERT_TRUE(restored.ok()) << restored.error().ToString();
  EXPECT_TRUE((*restored)->GetLedger(link_, "e1")->has_value());
  auto c = (*restored)->GetCursor(link_, Direction::kPush, CursorKind::kEvents);
  EXPECT_EQ(c->last_timestamp, 77);
  EXPECT_NE(c->generation, gen) << "continuity after a restore cannot be proven";
  EXPECT_EQ(*(*restored)->IntegrityCheck(), "ok");
  // The original keeps its generation.
  EXPECT_EQ(store_->GetCursor(link_, Direction::kPush, CursorKind::kEvents)->generation, gen);
}

}  // namespace
}  // namespace sgsync::state
