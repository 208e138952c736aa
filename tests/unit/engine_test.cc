// The sync engine in process: a LinkEngine over two misp-sim (the member's MISP and the Portal) on
// loopback HTTP (TLS is the connector's, tested there), the real MISP client and a real SQLite state
// store in a temporary directory.
// Each test drives one path of the engine (conflict policies, the abort after repeated peer
// failures, the bulk-fetch fallback, the cursor held by a failing event, echo suppression,
// tombstones) in well under a second, where tests/e2e reaches them only through processes.
#include "sync/engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <ctime>
#include <functional>
#include <thread>

#include "common/metric_families.h"
#include "misp-sim/sim.h"
#include "portal-connector/misp_client.h"
#include "state/store.h"
#include "tests/support/files.h"
#include "tests/support/policy_fixtures.h"
#include "tests/support/sim_instance.h"

namespace sgsync::engine {
namespace {

namespace json = boost::json;
using sgsync::testing::Instance;
using sgsync::testing::kOrg1;
using sgsync::testing::kOrg2;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    member_ = std::make_unique<Instance>("ORG1", kOrg1);
    portal_ = std::make_unique<Instance>("ORG2", kOrg2);
    ASSERT_TRUE(member_->sim().AddOrg("ORG2", kOrg2, false).ok());
    ASSERT_TRUE(portal_->sim().AddOrg("ORG1", kOrg1, false).ok());
    portal_sync_key_ = *portal_->sim().AddUser("sync@org1.test", kOrg1, sim::Role::kSyncUser);
    local_ = Client(member_->url(), member_->admin_key());
    remote_ = Client(portal_->url(), portal_sync_key_);
    auto store = state::StateStore::Open((dir_.path() / "state.db").string());
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    store_ = std::move(*store);
    link_id_ = store_->RegisterLink("portal", "identity")->id;
  }

  static std::unique_ptr<connector::MispClient> Client(const std::string& url, const std::string& key) {
    connector::TransportOptions o;
    o.base_url = url;
    o.allow_insecure_http = true;
    o.user_agent = connector::SgsyncUserAgent();
    o.retry.max_attempts = 1;  // the engine's own retries and aborts are under test, not the transport's
    return std::make_unique<connector::MispClient>(std::move(*connector::HttpsTransport::Create(o, key)));
  }

  // Options with the fields a test sets; the rest as sgsyncd's defaults.
  static EngineOptions With(const std::function<void(EngineOptions&)>& set) {
    EngineOptions o;
    set(o);
    return o;
  }
  static sim::Fault Failing(const std::string& route, int status) {
    sim::Fault f;
    f.route = route;
    f.error_rate = 1.0;
    f.error_status = status;
    return f;
  }

  // `link`: JSON members added to the test link (sgsync::testing::MakeLink).
  LinkEngine& Engine(EngineOptions options = {}, const std::string& link = "") {
    options.overlap_seconds = 0;
    engine_ = std::make_unique<LinkEngine>("portal", link_id_, sgsync::testing::MakeLink(link), options,
                                           *local_, *remote_, *store_, &metrics_);
    return *engine_;
  }

  // sgsync's key on the member's MISP becomes a sync user's: its restSearch leaves local tags out
  // unless told otherwise, where a site admin's keeps them.
  void ReadTheMemberAsASyncUser() {
    local_ = Client(member_->url(), *member_->sim().AddUser("sgsync@org1.test", kOrg1, sim::Role::kSyncUser));
  }

  // A published event of one attribute added by `where`'s site admin, carrying `tags` (name, local).
  static std::string AddTagged(Instance& where, const std::string& info,
                               const std::vector<std::pair<std::string, bool>>& tags,
                               const std::vector<std::string>& attribute_tags = {}) {
    json::array tag_list;
    for (const auto& [name, local] : tags) tag_list.push_back(json::object{{"name", name}, {"local", local}});
    json::array attribute_tag_list;
    for (const auto& name : attribute_tags) attribute_tag_list.push_back(json::object{{"name", name}});
    auto [status, body] = where.Call(
        "POST", "/events/add",
        json::object{{"Event", json::object{{"info", info},
                                            {"distribution", "3"},
                                            {"published", true},
                                            {"Tag", std::move(tag_list)},
                                            {"Attribute", json::array{json::object{
                                                              {"type", "domain"},
                                                              {"category", "Network activity"},
                                                              {"value", info + ".example"},
                                                              {"distribution", "5"},
                                                              {"Tag", std::move(attribute_tag_list)}}}}}}});
    EXPECT_EQ(status, 200) << json::serialize(body);
    return status == 200 ? std::string(body.at("Event").at("uuid").as_string()) : std::string();
  }

  static std::vector<std::string> TagNamesOf(const json::value& event) {
    std::vector<std::string> names;
    if (const json::value* tags = event.as_object().if_contains("Tag"))
      for (const auto& t : tags->as_array()) names.emplace_back(t.at("name").as_string());
    return names;
  }

  std::vector<std::string> Seed(Instance& where, int events, std::uint64_t seed) {
    auto uuids = where.sim().Seed(events, 2, 0, 3, seed, 5);
    EXPECT_TRUE(uuids.ok());
    return *uuids;
  }

  RunStats Run(Direction d, bool full = false) {
    RunOptions o;
    o.full = full;
    auto stats = engine_->Run(d, o);
    EXPECT_TRUE(stats.ok()) << stats.error().ToString();
    return stats.ok() ? *stats : RunStats{};
  }

  // An engine writing one event at a time to a Portal whose adds each take `latency_ms`: runs long
  // enough for a time slice to end in the middle.
  void PushOneAtATimeWithSlowAdds(int latency_ms) {
    sim::Fault slow;
    slow.route = "/events/add";
    slow.latency_ms = latency_ms;
    portal_->sim().AddFault(slow);
    Engine(With([](EngineOptions& o) { o.max_in_flight = 1; }));
  }

  // A member event pushed, changed at the Portal (pulled back: the member's copy is locked now),
  // then changed on the member, newer there: the push that follows meets a conflict.
  std::string PushConflict(ConflictPolicy policy) {
    Engine(With([&](EngineOptions& o) { o.conflict_policy = policy; }));
    std::string uuid = Seed(*member_, 1, 202)[0];
    EXPECT_EQ(Run(Direction::kPush).sent, 1);
    portal_->EditInfo(uuid, "changed at the Portal", 200);
    Run(Direction::kPull);
    member_->EditInfo(uuid, "changed on the member", 300);
    return uuid;
  }

  sgsync::testing::TempDir dir_;
  std::unique_ptr<Instance> member_, portal_;
  std::string portal_sync_key_;
  std::unique_ptr<connector::MispClient> local_, remote_;
  std::unique_ptr<state::StateStore> store_;
  std::int64_t link_id_ = 0;
  Metrics metrics_{metric::kFamilies, /*strict=*/true};  // a sample outside the table fails the test
  std::unique_ptr<LinkEngine> engine_;
};

TEST_F(EngineTest, APushSendsEveryEligibleEventAndASecondRunSendsNothing) {
  auto uuids = Seed(*member_, 3, 11);
  Engine();
  RunStats first = Run(Direction::kPush);
  EXPECT_EQ(first.sent, 3);
  for (const auto& u : uuids) EXPECT_FALSE(portal_->View(u).is_null()) << u;
  RunStats second = Run(Direction::kPush);
  EXPECT_EQ(second.sent, 0);
  EXPECT_EQ(second.queued, 0);
  // The cursor moved, so the second run asked with a new filter; the third asks the same again.
  RunStats third = Run(Direction::kPush);
  EXPECT_TRUE(third.not_modified) << "the index answered 304 to the ETag of the second run";
}

TEST_F(EngineTest, WhatSgsyncWroteIsNotSentBackTheOtherWay) {
  Seed(*member_, 2, 12);
  Engine();
  ASSERT_EQ(Run(Direction::kPush).sent, 2);
  portal_->sim().ClearRequestLog();
  member_->sim().ClearRequestLog();
  RunStats pull = Run(Direction::kPull);
  EXPECT_EQ(pull.listed, 2);
  EXPECT_EQ(pull.queued, 0) << "the ledger knows the two events at the timestamps sgsync wrote";
  EXPECT_EQ(pull.sent, 0);
  EXPECT_EQ(member_->Count("/events/add") + member_->Count("/events/edit"), 0u);
  EXPECT_EQ(portal_->Count("/events/view") + portal_->Count("/events/restSearch"), 0u)
      << "an echo is known from the ledger, without fetching it";
}

TEST_F(EngineTest, UnderPreferNewerTheMembersNewerChangeWinsAConflict) {
  std::string uuid = PushConflict(ConflictPolicy::kPreferNewer);
  RunStats push = Run(Direction::kPush);
  EXPECT_EQ(push.conflicts, 1);
  EXPECT_EQ(push.sent, 1);
  EXPECT_EQ(portal_->Info(uuid), "changed on the member");
}

TEST_F(EngineTest, UnderPreferPortalTheMembersConflictingChangeIsHeld) {
  std::string uuid = PushConflict(ConflictPolicy::kPreferPortal);
  RunStats push = Run(Direction::kPush);
  EXPECT_EQ(push.conflicts, 1);
  EXPECT_EQ(push.held, 1);
  EXPECT_EQ(push.sent, 0);
  EXPECT_EQ(portal_->Info(uuid), "changed at the Portal");
  auto conflicts = store_->ListConflicts(link_id_, true);
  ASSERT_TRUE(conflicts.ok());
  ASSERT_EQ(conflicts->size(), 1u);
  EXPECT_EQ((*conflicts)[0].uuid, uuid);
}

TEST_F(EngineTest, UnderManualNeitherSideIsWrittenUntilAnOperatorResolves) {
  std::string uuid = PushConflict(ConflictPolicy::kManual);
  RunStats push = Run(Direction::kPush);
  EXPECT_EQ(push.conflicts, 1);
  EXPECT_EQ(push.held, 1);
  EXPECT_EQ(portal_->Info(uuid), "changed at the Portal");
  EXPECT_EQ(Run(Direction::kPush).sent, 0) << "still held on the next run";
}

TEST_F(EngineTest, UnderPreferLocalThePortalsConflictingChangeIsNotPulled) {
  Engine(With([](EngineOptions& o) { o.conflict_policy = ConflictPolicy::kPreferLocal; }));
  std::string uuid = Seed(*portal_, 1, 201)[0];
  ASSERT_EQ(Run(Direction::kPull).sent, 1);
  member_->EditInfo(uuid, "changed on the member", 100);
  Run(Direction::kPush);
  portal_->EditInfo(uuid, "changed at the Portal", 200);
  RunStats pull = Run(Direction::kPull);
  EXPECT_EQ(pull.conflicts, 1);
  EXPECT_EQ(pull.held, 1);
  EXPECT_EQ(member_->Info(uuid), "changed on the member");
}

TEST_F(EngineTest, APeerThatKeepsFailingEndsTheRunEarlyAndTheUntriedItemsWait) {
  auto uuids = Seed(*member_, 10, 13);
  std::int64_t oldest =
      static_cast<std::int64_t>(std::stoll(std::string(member_->View(uuids[0]).at("timestamp").as_string())));
  for (const auto& u : uuids)
    oldest = std::min(oldest, static_cast<std::int64_t>(
                                  std::stoll(std::string(member_->View(u).at("timestamp").as_string()))));
  portal_->sim().AddFault(Failing("/events/filterEventIdsForPush", 503));
  portal_->sim().AddFault(Failing("/events/add", 503));
  Engine(With([](EngineOptions& o) {
    o.max_in_flight = 1;
    o.batch = 2;
    o.peer_failures_to_abort = 3;
  }));
  RunStats run = Run(Direction::kPush);
  EXPECT_TRUE(run.aborted);
  EXPECT_EQ(run.abort_reason, "the Portal kept failing");
  EXPECT_EQ(run.sent, 0);
  EXPECT_LT(run.failed, 10) << "the run stopped before trying every event";
  EXPECT_LT(run.cursor, oldest) << "nothing was sent: the cursor stays below every event";
  portal_->sim().ClearFaults();
  // The failed items wait out their backoff; the untried ones are ready at once.
  RunStats after = Run(Direction::kPush);
  EXPECT_FALSE(after.aborted);
  EXPECT_EQ(after.sent, 10 - run.failed);
}

// Each enqueue was a transaction of its own: a first push of 100 000 events committed (and
// fsynced) 100 000 times before its first write. A listing is now queued a thousand to a commit.
TEST_F(EngineTest, AFirstRunQueuesItsWholeListingInAFewCommitsNotOneAnEvent) {
  Seed(*member_, 300, 17);
  portal_->sim().AddFault(Failing("/events/filterEventIdsForPush", 503));
  portal_->sim().AddFault(Failing("/events/add", 503));
  Engine(With([](EngineOptions& o) {
    o.max_in_flight = 1;
    o.peer_failures_to_abort = 1;  // the run ends at its first write: what it committed is the listing's
  }));
  const std::int64_t before = store_->work().commits;
  RunStats run = Run(Direction::kPush);
  EXPECT_TRUE(run.aborted);
  EXPECT_EQ(run.queued, 300);
  const auto queue = store_->CountQueue(link_id_, Direction::kPush);
  EXPECT_EQ(queue->pending + queue->failed + queue->leased, 300);
  // The rest are the first batch's: its lease, and its untried items given back one by one (66 in all).
  EXPECT_LT(store_->work().commits - before, 100) << "300 events queued, one commit each";
}

// One durable transaction an event was a third of sgsyncd's CPU for a small event: completions are
// written as many at a time as the run has writes in flight (4 by default).
TEST_F(EngineTest, CompletionsAreWrittenAsManyToATransactionAsTheRunHasWritesInFlight) {
  auto uuids = Seed(*member_, 40, 19);
  Engine();
  const auto before = store_->completion_counts();
  EXPECT_EQ(Run(Direction::kPush).sent, 40);
  const auto after = store_->completion_counts();
  EXPECT_EQ(after.completions - before.completions, 40);
  EXPECT_LE(after.commits - before.commits, 40 / 4 + 1) << "40 events of one wave, 4 in flight";
  for (const auto& u : uuids)
    EXPECT_EQ((*store_->GetLedger(link_id_, u))->decision, state::LedgerDecision::kSend);
  EXPECT_EQ(Run(Direction::kPush).sent, 0) << "each completion was recorded";
}

TEST_F(EngineTest, WhenTheBulkFetchFailsEachEventIsFetchedAlone) {
  auto uuids = Seed(*member_, 3, 14);
  member_->sim().AddFault(Failing("/events/restSearch", 500));
  Engine();
  RunStats run = Run(Direction::kPush);
  EXPECT_EQ(run.sent, 3);
  EXPECT_EQ(member_->Count("/events/restSearch"), 2u) << "the batch's sizes (failed too), then the bulk fetch";
  EXPECT_EQ(member_->Count("/events/view/"), 3u);
  for (const auto& u : uuids) EXPECT_FALSE(portal_->View(u).is_null()) << u;
}

// MISP's push rules match local tags (spec 6.1), and restSearch leaves them out for a sync user
// unless asked (real MISP 2.5.1, docs/misp-sim.md). The bulk fetch asks, so a push under tag rules
// reads its events in bulk and still holds back the one whose local tag the rules refuse.
TEST_F(EngineTest, APushUnderTagRulesMatchesLocalTagsReadInBulkNotOneViewAnEvent) {
  ReadTheMemberAsASyncUser();
  std::string held = AddTagged(*member_, "held", {{"tlp:green", false}, {"workflow:hold", true}});
  std::string shared = AddTagged(*member_, "shared", {{"tlp:green", false}});
  Engine({}, R"("push_rules": {"tags": {"NOT": ["workflow:hold"]}})");
  RunStats run = Run(Direction::kPush);
  EXPECT_EQ(run.sent, 1);
  EXPECT_EQ(run.skipped, 1);
  EXPECT_TRUE(portal_->View(held).is_null()) << "its local tag is one the push rules refuse";
  EXPECT_EQ(TagNamesOf(portal_->View(shared)), std::vector<std::string>{"tlp:green"});
  EXPECT_EQ(member_->Count("/events/view/"), 0u);
}

// sgsync's TLP policy sees a member's local tags too: read in bulk by a sync user without
// `excludeLocalTags: 0`, a local tlp:red was not in the event the policy judged, and the event left.
TEST_F(EngineTest, ALocallyTaggedTlpRedEventIsHeldByTheBlockedTagsWhenReadInBulk) {
  ReadTheMemberAsASyncUser();
  std::string red = AddTagged(*member_, "red", {{"tlp:green", false}, {"tlp:red", true}});
  Engine({}, R"("blocked_tags": {"push": ["tlp:red"]})");
  RunStats run = Run(Direction::kPush);
  EXPECT_EQ(run.sent, 0);
  EXPECT_EQ(run.skipped_by_reason["sgsync.blocked_tag"], 1);
  EXPECT_TRUE(portal_->View(red).is_null());
  EXPECT_EQ(member_->Count("/events/view/"), 0u) << "read in bulk";
}

// An internal link carries local tags (spec 3.3, INT-PULL): the Portal's, read in bulk by its sync
// user, arrive on the member.
TEST_F(EngineTest, AnInternalPullBringsThePortalsLocalTagsReadInBulk) {
  std::string uuid = AddTagged(*portal_, "portal", {{"tlp:green", false}, {"portal:triage", true}});
  Engine({}, R"("internal": true, "host_org_id_set": true)");
  EXPECT_EQ(Run(Direction::kPull).sent, 1);
  EXPECT_EQ(TagNamesOf(member_->View(uuid)), (std::vector<std::string>{"tlp:green", "portal:triage"}));
  EXPECT_EQ(portal_->Count("/events/view/"), 0u);
}

// Issue 19: a batch is sized by what its events cost once parsed, not by their number. The source's
// attribute counts (restSearch metadata:1) cut it into waves that fit batch_memory_mb; an event
// larger than the bound is fetched and written alone.
TEST_F(EngineTest, ABatchIsFetchedInWavesThatFitItsMemoryBoundLargeEventsAlone) {
  auto big = member_->sim().Seed(4, 1000, 0, 3, 15, 5);  // 1000 attributes: about 1.4 MB each parsed
  ASSERT_TRUE(big.ok());
  auto bulk_sizes = [&] {
    std::vector<std::size_t> sizes;  // uuids asked for by each bulk fetch, in order
    for (const auto& r : member_->sim().RequestLog()) {
      if (r.target != "/events/restSearch") continue;
      json::object body = json::parse(r.body).as_object();
      if (!body.contains("metadata")) sizes.push_back(body.at("uuid").as_array().size());
    }
    return sizes;
  };
  Engine(With([](EngineOptions& o) { o.batch_memory_mb = 2; }));
  RunStats run = Run(Direction::kPush);
  EXPECT_EQ(run.sent, 4);
  EXPECT_EQ(bulk_sizes(), (std::vector<std::size_t>{1, 1, 1, 1})) << "each event alone: two do not fit 2 MiB";
  EXPECT_EQ(portal_->Count("/events/filterEventIdsForPush"), 4u);
  for (const auto& u : *big) EXPECT_EQ(portal_->View(u).at("Attribute").as_array().size(), 1000u) << u;

  // The same batch under the default bound: one wave, one bulk fetch.
  auto more = member_->sim().Seed(4, 1000, 0, 3, 16, 5);
  ASSERT_TRUE(more.ok());
  member_->sim().ClearRequestLog();
  Engine();
  EXPECT_EQ(Run(Direction::kPush).sent, 4);
  EXPECT_EQ(bulk_sizes(), (std::vector<std::size_t>{4}));
  EXPECT_EQ(member_->Count("/events/restSearch"), 2u) << "the sizes, then the events";
}

// Issue 19: the next wave is fetched and decided while the wave before it is still being written,
// so the destination does not wait for the source between waves (on real MISP it sat idle about
// 0.35 s at each). Under a memory bound that two waves do not fit together, it waits instead.
class EngineWaveTest : public EngineTest {
 protected:
  // Pushes what the member holds through a Portal whose adds each take `add_latency_ms`; returns,
  // for each bulk fetch the member answered, how many adds the Portal had answered at that moment.
  std::vector<std::size_t> AddsAnsweredAtEachBulkFetch(int add_latency_ms, int expect_sent) {
    sim::Fault slow;
    slow.route = "/events/add";
    slow.latency_ms = add_latency_ms;
    portal_->sim().AddFault(slow);
    member_->sim().ClearRequestLog();
    auto count = [](Instance& where, const char* target, bool bulk_only) {
      std::size_t n = 0;
      for (const auto& r : where.sim().RequestLog()) {
        if (r.target != target) continue;
        if (bulk_only && json::parse(r.body).as_object().contains("metadata")) continue;
        ++n;
      }
      return n;
    };
    std::atomic<bool> done{false};
    RunStats stats;
    std::thread run([&] {
      stats = Run(Direction::kPush);
      done = true;
    });
    std::vector<std::size_t> adds_at;
    while (!done) {
      std::size_t fetches = count(*member_, "/events/restSearch", true);
      std::size_t adds = count(*portal_, "/events/add", false);
      while (adds_at.size() < fetches) adds_at.push_back(adds);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    run.join();
    EXPECT_EQ(stats.sent, expect_sent);
    return adds_at;
  }
};

TEST_F(EngineWaveTest, TheNextWaveIsFetchedWhileTheWaveBeforeItIsStillBeingWritten) {
  Seed(*member_, 12, 44);
  Engine(With([](EngineOptions& o) {
    o.batch = 4;  // three batches of one wave each
    o.max_in_flight = 2;
  }));
  std::vector<std::size_t> adds_at = AddsAnsweredAtEachBulkFetch(300, 12);
  ASSERT_EQ(adds_at.size(), 3u);
  EXPECT_EQ(adds_at[0], 0u);
  // Each wave's four adds take two rounds of 300 ms: the next wave was in hand before they were all
  // answered (before, it was asked for only once all four were).
  EXPECT_LT(adds_at[1], 4u) << "the second wave waited for the first to be written";
  EXPECT_LT(adds_at[2], 8u) << "the third wave waited for the second to be written";
  EXPECT_EQ(portal_->Count("/events/add"), 12u) << "each event added once";
}

TEST_F(EngineWaveTest, UnderAMemoryBoundTwoWavesThatDoNotFitItTogetherAreNotHeldAtOnce) {
  ASSERT_TRUE(member_->sim().Seed(3, 1000, 0, 3, 45, 5).ok());  // about 1.4 MB each once parsed
  Engine(With([](EngineOptions& o) {
    o.batch_memory_mb = 2;  // one such event at a time
    o.max_in_flight = 2;
  }));
  std::vector<std::size_t> adds_at = AddsAnsweredAtEachBulkFetch(300, 3);
  EXPECT_EQ(adds_at, (std::vector<std::size_t>{0, 1, 2}))
      << "each event fetched once the one before was written";
}

// The daemon's time slice (RunOptions::yield_at): a run past it hands out no further event,
// finishes those in hand and returns `yielded` with the rest queued, not failed; the next run
// continues with them, and nothing is sent twice or lost.
TEST_F(EngineTest, ARunPastItsTimeSliceReturnsWithTheRestQueuedAndTheNextRunContinues) {
  auto uuids = Seed(*member_, 12, 41);
  PushOneAtATimeWithSlowAdds(100);
  RunOptions o;
  o.yield_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
  auto first = engine_->Run(Direction::kPush, o);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_TRUE(first->yielded);
  EXPECT_FALSE(first->aborted) << "a slice that ends is not a failure";
  EXPECT_GE(first->sent, 1);
  EXPECT_LT(first->sent, 12);
  auto queued = store_->CountQueue(link_id_, Direction::kPush);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(queued->pending, 12 - first->sent) << "the rest wait in the queue, none leased";
  EXPECT_EQ(queued->leased, 0);

  portal_->sim().ClearFaults();
  RunStats rest = Run(Direction::kPush);
  EXPECT_FALSE(rest.yielded);
  EXPECT_EQ(first->sent + rest.sent, 12);
  EXPECT_EQ(portal_->Count("/events/add"), 12u) << "each event added once";
  for (const auto& u : uuids) EXPECT_FALSE(portal_->View(u).is_null()) << u;
}

// A listing that outlasts the slice (a large index, a slow MISP) does not make the turn empty: the
// cursor stays behind queued work, so every turn would list again and the link would never move
// while other links wait.
TEST_F(EngineTest, ARunWhoseListingOutlastsItsSliceStillFinishesAnEventBeforeItYields) {
  Seed(*member_, 6, 43);
  PushOneAtATimeWithSlowAdds(20);
  sim::Fault slow_index;
  slow_index.route = "/events/index";
  slow_index.latency_ms = 300;
  member_->sim().AddFault(slow_index);
  RunOptions o;
  o.yield_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  o.others_waiting = [] { return true; };
  auto first = engine_->Run(Direction::kPush, o);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_GE(first->sent, 1) << "the turn moved the link on";
  EXPECT_TRUE(first->yielded) << "and then gave the worker up";
  EXPECT_LT(first->sent, 6);
}

// Past its slice, a run with nobody waiting for its worker goes on until its queue is empty.
TEST_F(EngineTest, ARunPastItsTimeSliceGoesOnWhenNoOtherWorkWaits) {
  Seed(*member_, 8, 42);
  PushOneAtATimeWithSlowAdds(50);
  RunOptions o;
  o.yield_at = std::chrono::steady_clock::now();
  int asked = 0;
  o.others_waiting = [&asked] {
    ++asked;
    return false;
  };
  auto run = engine_->Run(Direction::kPush, o);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_FALSE(run->yielded);
  EXPECT_EQ(run->sent, 8);
  EXPECT_GT(asked, 0) << "it did look whether others waited";
}

TEST_F(EngineTest, AnEventThatFailsHoldsTheCursorBelowItsTimestampUntilItIsSent) {
  auto uuids = Seed(*member_, 3, 15);
  std::int64_t bad_ts =
      static_cast<std::int64_t>(std::stoll(std::string(member_->View(uuids[0]).at("timestamp").as_string())));
  member_->sim().AddFault(Failing("/events/restSearch", 500));
  member_->sim().AddFault(Failing("/events/view/" + uuids[0], 500));
  Engine(With([](EngineOptions& o) { o.bulk_fetch = 0; }));
  RunStats run = Run(Direction::kPush);
  EXPECT_EQ(run.sent, 2);
  EXPECT_EQ(run.failed, 1);
  EXPECT_LT(run.cursor, bad_ts) << "the failed event is not skipped by the next incremental run";
  member_->sim().ClearFaults();
  // Its backoff has not passed: the item waits, the cursor with it.
  EXPECT_LT(Run(Direction::kPush).cursor, bad_ts);
  auto item = store_->Lease(link_id_, Direction::kPush, 10, 600);
  ASSERT_TRUE(item.ok());
  EXPECT_TRUE(item->empty()) << "not due yet";
}

TEST_F(EngineTest, ATombstoneDeletesTheMembersCopyOfAnEventDeletedAtThePortalAndItNeverReturns) {
  auto uuids = Seed(*portal_, 2, 16);
  Engine(With([](EngineOptions& o) { o.tombstones = true; }));
  ASSERT_EQ(Run(Direction::kPull).sent, 2);
  json::value gone = portal_->View(uuids[0]);
  portal_->Delete(uuids[0]);
  RunStats full = Run(Direction::kPull, true);
  EXPECT_EQ(full.deleted_at_source, 1);
  EXPECT_EQ(full.tombstoned, 1);
  EXPECT_TRUE(member_->View(uuids[0]).is_null());
  EXPECT_FALSE(member_->View(uuids[1]).is_null());
  ASSERT_TRUE(portal_->sim().LoadEvent(json::serialize(json::object{{"Event", gone}})).ok());
  EXPECT_EQ(Run(Direction::kPull, true).sent, 0) << "a tombstoned uuid is never pulled again";
  EXPECT_TRUE(member_->View(uuids[0]).is_null());
}

TEST_F(EngineTest, WithTombstonesOffAnEventDeletedAtThePortalIsOnlyReported) {
  auto uuids = Seed(*portal_, 1, 17);
  Engine();
  ASSERT_EQ(Run(Direction::kPull).sent, 1);
  portal_->Delete(uuids[0]);
  RunStats full = Run(Direction::kPull, true);
  EXPECT_EQ(full.deleted_at_source, 1);
  EXPECT_EQ(full.tombstoned, 0);
  EXPECT_FALSE(member_->View(uuids[0]).is_null());
}

TEST_F(EngineTest, AFullRunRecordsItselfSoTheNextIsDueOnlyAfterTheInterval) {
  Engine();
  EXPECT_TRUE(*engine_->FullReconciliationDue(Direction::kPush, 3600)) << "never done yet";
  EXPECT_FALSE(*engine_->FullReconciliationDue(Direction::kPush, 0)) << "0 turns reconciliation off";
  Run(Direction::kPush, /*full=*/false);
  EXPECT_TRUE(*engine_->FullReconciliationDue(Direction::kPush, 3600)) << "an incremental run is not one";
  Run(Direction::kPush, /*full=*/true);
  EXPECT_FALSE(*engine_->FullReconciliationDue(Direction::kPush, 3600));
  EXPECT_TRUE(*engine_->FullReconciliationDue(Direction::kPull, 3600)) << "each direction on its own";
}

TEST_F(EngineTest, AResentEventThePortalLostIsAddedAgainAndAWithheldOneStaysHome) {
  std::string shared = Seed(*member_, 1, 18)[0];
  std::string private_one = (*member_->sim().Seed(1, 2, 0, 0, 19, 5))[0];
  Engine();
  ASSERT_EQ(Run(Direction::kPush).sent, 1);
  ASSERT_TRUE(portal_->sim().Reset().ok());  // the Portal restored from a backup without it
  ASSERT_TRUE(portal_->View(shared).is_null());
  EXPECT_EQ(Run(Direction::kPush).sent, 0) << "nothing changed on the member: a run does not notice";
  auto resent = engine_->Resend(Direction::kPush, shared);
  ASSERT_TRUE(resent.ok()) << resent.error().ToString();
  EXPECT_EQ(resent->sent, 1);
  EXPECT_FALSE(portal_->View(shared).is_null());
  auto again = engine_->Resend(Direction::kPush, shared);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->already, 1) << "the Portal has this version now";
  auto withheld = engine_->Resend(Direction::kPush, private_one);
  ASSERT_TRUE(withheld.ok());
  EXPECT_EQ(withheld->skipped, 1);
  EXPECT_EQ(withheld->skipped_by_reason.begin()->first, "push.event.distribution");
  EXPECT_TRUE(portal_->View(private_one).is_null());
}

TEST_F(EngineTest, APreviewSaysWhatTheNextRunWouldSendAndWithholdAndWritesNothing) {
  auto shared = Seed(*member_, 2, 28);
  std::string private_one = (*member_->sim().Seed(1, 2, 0, 0, 29, 5))[0];
  Engine();
  portal_->sim().ClearRequestLog();
  auto preview = engine_->Preview(Direction::kPush, 100);
  ASSERT_TRUE(preview.ok()) << preview.error().ToString();
  EXPECT_EQ(preview->listed, 3);
  EXPECT_EQ(preview->changed, 3);
  EXPECT_EQ(preview->would_send, 2);
  EXPECT_EQ(preview->withheld_by_rule, (std::map<std::string, std::int64_t>{{"push.event.distribution", 1}}));
  EXPECT_TRUE(portal_->sim().RequestLog().empty()) << "the Portal is not even asked";
  EXPECT_EQ(store_->CountQueue(link_id_, Direction::kPush)->pending, 0) << "nothing queued";
  auto limited = engine_->Preview(Direction::kPush, 1);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->events.size(), 1u);
  EXPECT_EQ(limited->changed, 3) << "counted, though not all examined";
  EXPECT_EQ(Run(Direction::kPush).sent, 2);
  EXPECT_EQ(engine_->Preview(Direction::kPush, 100)->changed, 0) << "after the run, nothing is left to do";
}

}  // namespace
}  // namespace sgsync::engine

namespace sgsync::engine {
namespace {

TEST_F(EngineTest, TheSyncWindowLeavesOlderEventsHomeOnTheFirstRunAndOnAFullRun) {
  auto uuids = Seed(*member_, 3, 31);
  std::int64_t seeded = 0;
  for (const auto& u : uuids)
    seeded =
        std::max<std::int64_t>(seeded, std::stoll(std::string(member_->View(u).at("timestamp").as_string())));
  member_->EditInfo(uuids[0], "changed inside the window", 600);
  Engine(With([&](EngineOptions& o) { o.initial_sync_since = seeded + 300; }));
  RunStats first = Run(Direction::kPush);
  EXPECT_EQ(first.listed, 1) << "only the event changed inside the window is listed";
  EXPECT_EQ(first.sent, 1);
  EXPECT_FALSE(portal_->View(uuids[0]).is_null());
  EXPECT_EQ(Run(Direction::kPush, /*full=*/true).sent, 0) << "a full run keeps to the window";
  EXPECT_TRUE(portal_->View(uuids[1]).is_null());
  EXPECT_TRUE(portal_->View(uuids[2]).is_null());
  // An old event that changes enters the window with its new timestamp.
  member_->EditInfo(uuids[1], "changed later", 900);
  EXPECT_EQ(Run(Direction::kPush).sent, 1);
  EXPECT_FALSE(portal_->View(uuids[1]).is_null());
}

TEST_F(EngineTest, ProposalsClustersAndAnalystDataAreAskedForOnlyOnceTheirIntervalHasPassed) {
  Seed(*member_, 1, 41);
  Engine();  // the default: every 3600 s
  auto asked = [&](Instance& where) {
    int n = 0;
    for (const auto& r : where.sim().RequestLog()) {
      if (r.target.rfind("/shadow_attributes/index", 0) == 0 || r.target.rfind("/analyst_data/", 0) == 0 ||
          r.target.rfind("/galaxy_clusters/", 0) == 0)
        ++n;
    }
    return n;
  };
  auto first = engine_->RunSideChannels(Direction::kPull);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_FALSE(first->other_channels_not_due) << "the first cycle after a start asks";
  const int after_first = asked(*portal_);
  EXPECT_GT(after_first, 0);
  auto second = engine_->RunSideChannels(Direction::kPull);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->other_channels_not_due);
  EXPECT_EQ(asked(*portal_), after_first) << "an idle cycle within the interval asks nothing more";
  RunOptions full;
  full.full = true;
  auto forced = engine_->RunSideChannels(Direction::kPull, full);
  ASSERT_TRUE(forced.ok());
  EXPECT_FALSE(forced->other_channels_not_due);
  EXPECT_GT(asked(*portal_), after_first) << "a full run asks at once";
  Engine(With([](EngineOptions& o) { o.other_channels_interval_seconds = 0; }));
  ASSERT_TRUE(engine_->RunSideChannels(Direction::kPull).ok());
  auto again = engine_->RunSideChannels(Direction::kPull);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->other_channels_not_due) << "0: every cycle";
}

TEST_F(EngineTest, SightingsTakeTheEventsChannelsIndexSoAnIdleCycleAsksOnceADirection) {
  std::string uuid = Seed(*member_, 1, 43)[0];
  Engine(With([](EngineOptions& o) {
    o.proposals = o.galaxy_clusters = o.analyst_data = false;  // sightings only beside the events
    o.sightings_policy.policy = 2;                               // everyone sees every sighting
  }));
  RunOptions shared;
  shared.shared_index_max_age_seconds = 60;
  ASSERT_EQ(Run(Direction::kPush).sent, 1);
  ASSERT_TRUE(engine_->RunSideChannels(Direction::kPush, shared).ok());
  auto index_requests = [&] {
    int n = 0;
    for (const auto& r : member_->sim().RequestLog()) n += r.target == "/events/index";
    return n;
  };
  // Idle: the events run's conditional request is the only one; sightings ask nothing.
  member_->sim().ClearRequestLog();
  EXPECT_TRUE(Run(Direction::kPush).not_modified);
  auto idle = engine_->RunSideChannels(Direction::kPush, shared);
  ASSERT_TRUE(idle.ok()) << idle.error().ToString();
  EXPECT_TRUE(idle->sightings.not_modified);
  EXPECT_EQ(index_requests(), 1);
  // A sighting on the member moves the event's sighting timestamp, not its timestamp: the events
  // run reads the index in full (nothing to send), the sightings run sends from those rows.
  std::string attribute(member_->View(uuid).at("Attribute").at(0).at("uuid").as_string());
  auto [status, body] = member_->Call(
      "POST", "/sightings/bulkSaveSightings/" + uuid,
      json::array{json::object{{"uuid", "5b7d1c2e-0c3c-4b5e-9f5a-0d6a3c1e2f01"},
                               {"attribute_uuid", attribute},
                               {"event_uuid", uuid},
                               {"date_sighting", std::to_string(std::time(nullptr))},
                               {"type", "0"},
                               {"org_id", "1"},
                               {"Organisation", json::object{{"uuid", kOrg1}, {"name", "ORG1"}}}}});
  ASSERT_EQ(status, 200) << json::serialize(body);
  member_->sim().ClearRequestLog();
  RunStats events = Run(Direction::kPush);
  EXPECT_FALSE(events.not_modified);
  EXPECT_EQ(events.queued, 0) << "the event itself did not change";
  auto sent = engine_->RunSideChannels(Direction::kPush, shared);
  ASSERT_TRUE(sent.ok()) << sent.error().ToString();
  EXPECT_EQ(sent->sightings.sent, 1) << sent->sightings.withheld << " withheld, " << sent->sightings.events
                                     << " events";
  EXPECT_EQ(index_requests(), 1) << "the sightings came from the events run's index";
  // Without a recent index of the events channel, sightings ask for themselves.
  RunOptions own;
  member_->sim().ClearRequestLog();
  ASSERT_TRUE(engine_->RunSideChannels(Direction::kPush, own).ok());
  EXPECT_EQ(index_requests(), 1);
}

TEST_F(EngineTest, EventsNamingANewTagAreNotWrittenAtOnceSoTheReceiverCreatesItOnce) {
  // Real MISP creates a tag in the add that first names it, and adds racing to create the same tag
  // fail (500); misp-sim answers so too (TagRace). Eight events with one new tag, four in flight,
  // each add slowed to 150 ms so that the race has room: every one is sent in the first run. Four
  // more carry their new tag on their attribute only: it counts as much.
  for (int i = 0; i < 8; ++i)
    ASSERT_FALSE(
        AddTagged(*member_, "tagged-" + std::to_string(i), {{"campaign:new-at-the-portal", false}}).empty());
  for (int i = 0; i < 4; ++i)
    ASSERT_FALSE(
        AddTagged(*member_, "attribute-tagged-" + std::to_string(i), {}, {"campaign:new-on-an-attribute"})
            .empty());
  sim::Fault slow;
  slow.route = "/events/add";
  slow.latency_ms = 150;
  portal_->sim().AddFault(slow);
  Engine();
  RunStats stats = Run(Direction::kPush);
  EXPECT_EQ(stats.sent, 12);
  EXPECT_EQ(stats.failed, 0);
  int refused = 0;
  for (const auto& r : portal_->sim().RequestLog()) refused += r.target == "/events/add" && r.status == 500;
  EXPECT_EQ(refused, 0) << "no add met another creating the same tag";
}

// Two links writing to one Portal meet the same race across links: each link's first event names
// one new tag, both runs go at once. sgsyncd gives both links the Portal's one gate (NewTagGates); a
// gate per link let the second add fail with 500, and its event waited the queue's backoff (30 s:
// bench/run's 200 links took 31.1 s for their first sync, 2026-12-05).
TEST_F(EngineTest, TwoLinksWritingANewTagToOnePortalDoNotRaceToCreateIt) {
  ASSERT_FALSE(
      AddTagged(*member_, "first-link", {{"campaign:shared-new", false}, {"pick:a", false}}).empty());
  ASSERT_FALSE(
      AddTagged(*member_, "second-link", {{"campaign:shared-new", false}, {"pick:b", false}}).empty());
  sim::Fault slow;
  slow.route = "/events/add";
  slow.latency_ms = 400;
  portal_->sim().AddFault(slow);
  NewTagGates shared{nullptr, std::make_shared<NewTagGate>()};
  EngineOptions options;
  options.overlap_seconds = 0;
  auto second_id = store_->RegisterLink("second", "identity-2");
  ASSERT_TRUE(second_id.ok());
  LinkEngine first("portal", link_id_,
                   sgsync::testing::MakeLink(R"("push_rules": {"tags": {"OR": ["pick:a"]}})"), options,
                   *local_, *remote_, *store_, &metrics_, shared);
  LinkEngine second("second", second_id->id,
                    sgsync::testing::MakeLink(R"("push_rules": {"tags": {"OR": ["pick:b"]}})"), options,
                    *local_, *remote_, *store_, &metrics_, shared);
  Result<RunStats> a = RunStats{}, b = RunStats{};
  std::thread other([&] { b = second.Run(Direction::kPush); });
  a = first.Run(Direction::kPush);
  other.join();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->sent + b->sent, 2);
  EXPECT_EQ(a->failed + b->failed, 0);
  int refused = 0;
  for (const auto& r : portal_->sim().RequestLog()) refused += r.target == "/events/add" && r.status == 500;
  EXPECT_EQ(refused, 0) << "the second link's add met the first's creating the tag";
}

TEST_F(EngineTest, TheLedgerKeepsTheDecisionAndItsReasonsNotTheEvent) {
  // 84 KB a row for 100 attributes when the event as sent and its arrival were kept (bench/run):
  // a 150k-attribute event would have put two copies of itself in one row.
  std::string uuid = Seed(*member_, 1, 47)[0];
  Engine();
  ASSERT_EQ(Run(Direction::kPush).sent, 1);
  auto ledger = store_->GetLedger(link_id_, uuid);
  ASSERT_TRUE(ledger.ok() && ledger->has_value());
  json::object decision = json::parse((*ledger)->decision_json).as_object();
  EXPECT_EQ(decision.at("decision"), json::value("send"));
  EXPECT_TRUE(decision.contains("reasons"));
  EXPECT_FALSE(decision.contains("event"));
  EXPECT_FALSE(decision.contains("arrival"));
  EXPECT_EQ((*ledger)->decision_json.find(uuid), std::string::npos) << "no copy of the event";
}

// One content hash an event where the policy changed nothing (Decision::Unchanged): the source's is
// recorded as the one written. Where the policy changed the event, what was written is hashed itself.
TEST_F(EngineTest, TheLedgerRecordsTheHashOfWhatWasWrittenChangedByThePolicyOrNot) {
  const std::string as_is = Seed(*member_, 1, 49)[0];
  auto mixed = member_->sim().Seed(1, 20, 0, 3, 50, /*attribute_distribution=*/-1);
  ASSERT_TRUE(mixed.ok());
  Engine();
  ASSERT_EQ(Run(Direction::kPush).sent, 2);
  auto same = store_->GetLedger(link_id_, as_is);
  ASSERT_TRUE(same.ok() && same->has_value());
  ASSERT_TRUE((*same)->local_hash.has_value());
  EXPECT_EQ((*same)->written_hash, (*same)->local_hash);
  auto changed = store_->GetLedger(link_id_, (*mixed)[0]);
  ASSERT_TRUE(changed.ok() && changed->has_value());
  bool any_change = false;
  const json::value decision = json::parse((*changed)->decision_json);
  for (const auto& r : decision.at("reasons").as_array()) any_change |= r.at("action") != json::value("keep");
  ASSERT_TRUE(any_change) << "the seed gives the policy something to remove or downgrade";
  ASSERT_TRUE((*changed)->written_hash.has_value());
  EXPECT_EQ((*changed)->written_hash->size(), 64u);
  EXPECT_NE((*changed)->written_hash, (*changed)->local_hash);
}

TEST(EngineOptionsTest, TheLaterOfTheFixedAndTheRollingWindowStartsApplies) {
  EngineOptions o;
  const std::int64_t now = 1'800'000'000;
  EXPECT_EQ(o.WindowStart(now), 0) << "no window by default";
  o.initial_sync_days = 10;
  EXPECT_EQ(o.WindowStart(now), now - 10 * 86400);
  o.initial_sync_since = now - 86400;
  EXPECT_EQ(o.WindowStart(now), now - 86400);
  o.initial_sync_since = now - 30 * 86400;
  EXPECT_EQ(o.WindowStart(now), now - 10 * 86400);
}

}  // namespace
}  // namespace sgsync::engine
