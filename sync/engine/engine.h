// sync/engine/engine.h: one link's sync, push (member -> Portal) and pull (Portal -> member).
//
// A run in one direction (docs/architecture.md, "The sync engine"):
//  1. list: the source's minimal event index since the cursor minus the overlap window, sent with
//     If-None-Match (a cycle with nothing new costs this one request: MISP answers 304);
//  2. select: drop what the ledger already saw at that timestamp, what sgsync itself wrote there
//     (no echo) and tombstoned events; enqueue the rest in the state store's work queue;
//  3. work: lease items in batches; fetch each full event (with soft-deleted elements), decide with
//     the policy (sync/policy, the only place that decides), ask the destination which of the
//     sendable events it needs (filterEventIdsForPush, as MISP's own push does), add or edit them,
//     and complete each item together with its ledger entry in one transaction. A batch goes in
//     waves that fit batch_memory_mb, each prepared while the one before is written (waves.cc);
//     the run's first lease is two events per writer, so that writing starts early;
//  4. advance the cursor to the newest listed timestamp, but never past the oldest work item not
//     done (failed, dead or not yet tried): nothing is skipped silently.
// Every write is idempotent by (uuid, timestamp): MISP refuses a not-newer edit and answers an add
// of a known uuid with its Location, so replaying after a crash never duplicates.
//
// Requests to each MISP run `max_in_flight` at a time. A failing event is retried with the store's
// backoff and dead-lettered after its attempts, without holding up the others; when the peer
// itself fails (unavailable, rate limited, timing out) the run stops early and hands the untried
// items back, and the caller backs off (sgsyncd: docs/operations.md).
//
// Thread-safe: one run per direction at a time (a second is refused, MISP #8365); push and pull
// may run concurrently.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "common/metrics.h"
#include "common/result.h"
#include "misp/elements.h"
#include "portal-connector/misp_api.h"
#include "state/store.h"
#include "sync/engine/new_tags.h"
#include "sync/engine/options.h"
#include "sync/engine/route.h"
#include "sync/policy/policy.h"
#include "sync/policy/sightings.h"

namespace sgsync::engine {

namespace json = boost::json;

// What one run of a side channel did: proposals, custom galaxy clusters, analyst data.
struct ChannelStats {
  std::int64_t sent = 0;      // written to the destination
  std::int64_t withheld = 0;  // the policy keeps them home, or the receiver keeps its own
  std::int64_t failed = 0;    // the destination refused or failed (tried again next run)
};

// What one run of the sightings channel did (spec 8.1).
struct SightingsStats {
  bool not_modified = false;
  std::int64_t events = 0;    // events whose sightings were looked at
  std::int64_t sent = 0;      // sightings written to the destination
  std::int64_t already = 0;   // the destination had them (filterSightingUuidsForPush)
  std::int64_t withheld = 0;  // the sighting policy keeps them home (push)
  std::int64_t failed_events = 0;
  std::int64_t cursor = 0;
};

// One run of the channels beside the events (RunSideChannels): each with its own counters.
struct SideChannelStats {
  SightingsStats sightings;
  ChannelStats proposals;     // spec 8.2; withheld: what they change does not leave
  ChannelStats clusters;      // spec 8.3
  ChannelStats analyst_data;  // notes, opinions, relationships (spec 8.5)
  // Proposals, clusters and analyst data were not asked for: their interval had not passed.
  bool other_channels_not_due = false;
  // Whether anything failed on any channel (sgsyncd backs off, --once exits 1).
  bool any_failed() const {
    return sightings.failed_events > 0 || proposals.failed > 0 || clusters.failed > 0 ||
           analyst_data.failed > 0;
  }
};

// What became of one event in a run (the `outcome` label of sgsync_events_total).
enum class Outcome { kSent, kAlready, kSkipped, kHeld, kEcho, kFailed };
std::string_view OutcomeName(Outcome o);  // "sent", "already", "skipped", "held", "echo", "failed"

struct RunOptions {
  bool full = false;  // list from timestamp 0 (the ledger still skips what is in sync)
  // Called after every handled event and at the end (TriggerSync streams it).
  std::function<void(const struct RunStats&)> progress;
  const std::atomic<bool>* stop = nullptr;  // set: finish the events in hand, take no more
  bool wait_if_running = false;             // wait for a run in progress in this direction instead of failing
  // Sightings: take the events index that the events channel of this direction read (or saw
  // answered 304) at most this many seconds ago, instead of asking the source again, so that an
  // idle cycle costs one conditional request per direction (0: always ask; a full run always asks).
  std::int64_t shared_index_max_age_seconds = 0;
  // Set: once this time has passed (and `others_waiting`, when set, says so), the run hands out no
  // further event, finishes those in hand and returns with `yielded` (the work left stays queued,
  // the cursor behind it) so that other links get their turn; the daemon's scheduler runs it again
  // after them (run_time_slice_seconds). A run always finishes at least one item before it yields,
  // however long its listing took: every turn moves the link on.
  std::optional<std::chrono::steady_clock::time_point> yield_at;
  // Set: past `yield_at`, the run yields only while this answers true (other work waits for the
  // worker); alone, it goes on.
  std::function<bool()> others_waiting;
};

struct RunStats {
  bool not_modified = false;  // the index answered 304
  std::int64_t listed = 0;    // index rows
  std::int64_t queued = 0;    // enqueued by this run
  std::int64_t fetched = 0;
  std::int64_t sent = 0;       // written to the destination
  std::int64_t already = 0;    // the destination had it (filterEventIdsForPush, not-newer edit)
  std::int64_t skipped = 0;    // refused by the policy, or not served by the source
  std::int64_t echo = 0;       // written by sgsync itself: not sent back
  std::int64_t failed = 0;     // attempts that failed (retried later or dead-lettered)
  std::int64_t conflicts = 0;  // changed on both sides since the last sync (recorded)
  // Found by a full run with a timestamp older than the incremental window: an incremental run
  // would have missed them (MISP #3666).
  std::int64_t late_arrivals = 0;
  // Sent under an earlier configuration and refused under the current one: MISP cannot retract,
  // the destination keeps its copy (reported, logged).
  std::int64_t no_longer_eligible = 0;
  std::int64_t held = 0;     // held back by the conflict policy or an operator's resolution
  std::int64_t partial = 0;  // saved by the receiver without some of their elements
  // Pulled events that a full pull run found deleted at the Portal, and of those the member's
  // copies deleted (tombstones on).
  std::int64_t deleted_at_source = 0;
  std::int64_t tombstoned = 0;
  std::int64_t total = 0;                                 // work items this run set out to handle
  std::map<std::string, std::int64_t> skipped_by_reason;  // policy rule id -> count
  bool aborted = false;                                   // stopped early: peer failing, or asked to stop
  bool yielded = false;  // its time slice ended with work still queued (RunOptions::yield_at); not a failure
  std::string abort_reason;
  std::int64_t cursor = 0;  // after the run
};

// One event as a preview sees it: would the next run send it, and if not, by which rule.
struct PreviewEvent {
  std::string uuid;
  std::int64_t timestamp = 0;
  bool send = false;
  std::string rule;  // the refusal's rule id ("push.event.distribution"), "" when sent
  std::string detail;
};

struct RunPreview {
  std::int64_t listed = 0;      // index rows since the cursor
  std::int64_t changed = 0;     // of those, what the next run would take up
  std::int64_t would_send = 0;  // of the examined ones
  std::map<std::string, std::int64_t> withheld_by_rule;
  std::vector<PreviewEvent> events;  // the examined ones, up to the limit
};

// The new-tag gates of a link's two MISPs (new_tags.h), shared with every other link writing to the
// same MISP (sgsyncd keeps one per MISP); a gate not given is the engine's own.
struct NewTagGates {
  std::shared_ptr<NewTagGate> local;   // the member's MISP, written by pulls
  std::shared_ptr<NewTagGate> remote;  // the Portal, written by pushes
};

class LinkEngine {
 public:
  // `local` is the member's MISP, `remote` the Portal. The MISPs, the store and the metrics must
  // outlive the engine.
  LinkEngine(std::string name, std::int64_t link_id, policy::Link link, EngineOptions options,
             connector::MispApi& local, connector::MispApi& remote, state::StateStore& store,
             Metrics* metrics, NewTagGates gates = {});

  // One run of the events channel. Fails (without changing the cursor) when listing fails or the
  // store fails; failures of single events are counted in the stats and retried by later runs.
  Result<RunStats> Run(Direction d, const RunOptions& options = {});

  // One run of the channels beside the events, independent of the event runs (their own cursor
  // and lock): proposals, custom galaxy clusters and analyst data (each asked at the same time),
  // then sightings (spec 8.1): the sightings of events both sides hold whose sighting timestamp
  // moved past the sightings cursor, selected by the sighting policy, offered to the
  // destination's filterSightingUuidsForPush and sent with bulkSaveSightings, per event; the
  // sightings ledger remembers what went.
  Result<SideChannelStats> RunSideChannels(Direction d, const RunOptions& options = {});

  // What the next run in direction `d` would do, read-only on both MISPs: the events changed since
  // the cursor (less what the ledger saw and sgsync's own echo), the first `limit` of them fetched
  // and decided by the policy. Nothing is queued or written.
  Result<RunPreview> Preview(Direction d, int limit);

  // One event sent again at an operator's request: queued in direction `d` at the source's
  // timestamp the ledger knows, then fetched, decided afresh and offered to the destination as in a
  // run (it is written where the destination needs it and the policy lets it out). Waits for a run
  // in progress in that direction. The stats count this event only.
  Result<RunStats> Resend(Direction d, const std::string& uuid);

  // Whether the last full reconciliation in direction `d` is `every_seconds` or more ago (never
  // when `every_seconds` is 0). A full run that ends without being aborted records itself.
  Result<bool> FullReconciliationDue(Direction d, std::int64_t every_seconds);

  // The policy's decision for `uuid` as the source serves it now; nothing is written.
  Result<policy::Decision> DryRun(Direction d, const std::string& uuid);

  const policy::Link& link() const { return link_; }
  const std::string& name() const { return name_; }
  std::int64_t link_id() const { return link_id_; }

 private:
  struct Prepared;
  class RunContext;

  // ---- the events channel: list and select (events.cc)
  Route RouteFor(Direction d) { return Route::For(d, local_, remote_); }
  // The index filter of a run whose cursor is at `cursor` (0: from the beginning).
  json::object IndexFilter(const Route& route, std::int64_t cursor) const;
  // The same without a timestamp: what the sightings channel lists, and what the events channel
  // lists when sightings are on (it then leaves out older rows itself, IndexSince).
  json::object BaseIndexFilter(const Route& route) const;
  std::int64_t IndexSince(std::int64_t cursor) const;
  Status ListAndEnqueue(RunContext& run, state::Cursor& cursor, std::int64_t& newest);
  // One row of the source's index a run takes up: changed since the ledger saw it, not tombstoned,
  // not blocklisted; `echo` when sgsync itself wrote this version there (not sent back).
  struct Candidate {
    std::string uuid;
    std::int64_t timestamp = 0;
    std::optional<state::LedgerEntry> ledger;
    bool echo = false;
  };
  // The run's selection from an index page, shared by runs and previews. `report`: log and count
  // the rows left out (a run does, a preview does not); `newest` (when given) becomes the newest
  // believable timestamp listed.
  Result<std::vector<Candidate>> Select(const Route& route, const connector::IndexPage& page, bool report,
                                        std::int64_t* newest);
  Status FindDeletions(RunContext& run, const std::vector<misp::EventIndexEntry>& listed);  // tombstones.cc
  // ---- the queue worked through in waves (waves.cc): each wave is prepared (fetched, decided,
  // offered: batch.cc) while the one before it is written (write.cc) by the run's writers
  // (WritePool), so the destination never waits for the source between two waves.
  struct Wave;
  struct PendingWave {
    std::vector<state::WorkItem> items;  // leased
    std::int64_t cost = 0;               // what its events are estimated to cost parsed (bytes)
  };
  class WritePool;
  // Works through `pending`, then (when `lease_more`) through what the queue still holds, batch by
  // batch, until it is empty or the run stops. What is not reached goes back to the queue.
  Status ProcessQueue(RunContext& run, std::deque<PendingWave> pending, bool lease_more);
  // The batch cut into waves whose events fit options_.batch_memory_mb together, by the attribute
  // counts the source gives (one restSearch with metadata:1); one wave when they cannot be known,
  // whose cost is then the whole bound (it is never prepared beside another).
  std::vector<PendingWave> Waves(RunContext& run, std::vector<state::WorkItem> items);
  // Fetches and decides the wave's events, completes those refused, held or already there, and
  // leaves in wave.to_write those the destination needs.
  Status PrepareWave(RunContext& run, std::vector<state::WorkItem> items, Wave& wave);
  // How the source's events are read, in bulk or one by one alike. Push reads the member's event
  // whole: local tags included, because MISP's push rules match them (spec 6.1) and an internal link
  // carries them; the policy strips them otherwise. Pull asks the Portal for what MISP's own pull
  // asks (spec 3.3): no local tags unless the link is internal.
  connector::ViewForm SourceForm(const RunContext& run) const;
  void BulkFetch(RunContext& run, std::vector<Prepared>& batch);
  void Fetch(RunContext& run, Prepared& p);
  void Decide(RunContext& run, Prepared& p, json::object event);
  // Write goes alone when the event names a tag not yet written to the destination (new_tags_),
  // then WriteEvent: an add or an edit, the receiver's answer checked.
  void Write(RunContext& run, Prepared& p);
  void WriteEvent(RunContext& run, Prepared& p, const misp::SentElements& sent);
  Error PartialError(const std::vector<misp::MissingElement>& missing, const Route& route) const;
  void RecheckPartial(RunContext& run, Prepared& p);
  void SendSightingsAfterPush(RunContext& run, Prepared& p);
  // p has reached its end: its completion (the item done, `entry` in the ledger) is written with
  // others (CompleteFinished): once max_in_flight have gathered, and before its wave is freed.
  void Finish(RunContext& run, Prepared& p, state::LedgerEntry entry, Outcome outcome);
  // Writes the completions gathered, when there are at least `at_least` (all of them, by default).
  void CompleteFinished(RunContext& run, std::size_t at_least = 1);
  std::size_t FullCompletion() const { return static_cast<std::size_t>(std::max(1, options_.max_in_flight)); }
  void FailItem(RunContext& run, const state::WorkItem& item, const Error& e);
  static state::LedgerEntry SeenEntry(const Prepared& p, const Route& route, state::LedgerDecision decision);
  static state::LedgerEntry WrittenEntry(const Prepared& p, const Route& route, const json::object& written);
  // ---- conflicts (conflicts.cc)
  // Asks the destination for the timestamps of the batch's events sgsync wrote there before, so
  // HandleConflict sees a change made there whichever direction runs first.
  Status LearnDestinationTimestamps(RunContext& run, std::vector<Prepared>& batch);
  // Records (or finds, when already recorded or resolved) the conflict for `p`; returns whether its
  // write is held back by the conflict policy or the conflict's resolution. Fails when the store
  // cannot be read or written (the event is then retried, never sent unrecorded).
  Result<bool> HandleConflict(RunContext& run, Prepared& p);
  // ---- the member's own events (write.cc)
  // Pull: whether the member's MISP holds p's uuid as an event sync must not overwrite; when so,
  // p's decision becomes a refusal saying why (docs/security.md).
  Result<bool> RefuseMemberEvent(Prepared& p);
  // Completes p as refused by that check (counted under sgsync_protected_total{what}).
  void Protected(RunContext& run, Prepared& p, const char* what);
  // Why the member's event `m` is the member's own (not locked, or of the host organisation), or
  // "" when sync may update or delete it.
  std::string MemberOwns(const connector::EventMetadata& m) const;

  // ---- the side channels (side_channels.cc, sightings.cc, proposals.cc, clusters.cc, analyst_data.cc)
  Status SyncSightings(const Route& route, const RunOptions& options, SightingsStats& stats);
  // The sightings of one event the destination holds: selected by the sighting policy (push), less
  // those already synced or already there, sent in batches; false when the destination refused.
  Result<bool> SendEventSightings(const Route& route, const std::string& event, const json::array& rows,
                                  SightingsStats& stats);
  // Proposals of the last 90 days on events both sides hold, as MISP's pull asks for them, that
  // the destination does not hold as new: sent with events/pushProposals per event (spec 8.2).
  // Pushing needs the Portal account's perm_sync (spec 12 case 36).
  Status SyncProposals(const Route& route, ChannelStats& stats);
  // Analyst data (spec 8.5). Push: the member's entries the policy lets out
  // (policy::PrepareAnalystDataForPush), offered to the Portal's filterAnalystDataForPush, the
  // wanted ones sent with pushAnalystData. Pull: the Portal's index (its org pull rules as
  // filters) against the member's, new or newer entries fetched, downgraded and written locked.
  Status SyncAnalystData(const Route& route, ChannelStats& stats);
  // Custom galaxy clusters (spec 8.3): the source's published custom clusters whose version is
  // greater than the destination's (or that it lacks), decided by the policy
  // (PrepareClusterForPush / PreparePulledCluster) and written with galaxies/pushCluster.
  Status SyncClusters(const Route& route, ChannelStats& stats);
  // Whether the destination side holds the event, as far as the ledger knows: it came from there,
  // or the policy's last word was "send" (sgsync wrote it there, or the destination had it already:
  // a member that synced with MISP's own sync before sgsync). Sightings and proposals go only there.
  static bool DestinationHolds(const state::LedgerEntry& ledger, state::Side dest_side) {
    return ledger.origin == dest_side || ledger.decision == state::LedgerDecision::kSend;
  }

  // The index's last ETag per channel ("events push", "sightings pull" ...), with the filter it
  // answered: one entry per channel, so a moving cursor does not pile up entries.
  std::string CachedEtag(const std::string& channel, const std::string& filter);
  void RememberEtag(const std::string& channel, const std::string& filter, const std::string& etag);

  std::string name_;
  std::int64_t link_id_;
  policy::Link link_;
  EngineOptions options_;
  connector::MispApi& local_;
  connector::MispApi& remote_;
  state::StateStore& store_;
  Metrics* metrics_;
  std::mutex push_run_, pull_run_, side_channels_run_;
  // Analyst data pushed or withheld, by uuid, at the `modified` decided: a cycle fetches only what
  // changed since (guarded by side_channels_run_; lost on restart, which costs one full pass).
  std::map<std::string, std::string> analyst_decided_;
  // Clusters decided, by "<direction> <uuid>", at the version decided (same guard and lifetime).
  std::map<std::string, std::int64_t> cluster_decided_;
  // When proposals, clusters and analyst data last ran without a failure, per direction (push,
  // pull; same guard; 0 after a restart: the first cycle asks).
  std::int64_t other_channels_done_[2] = {0, 0};
  std::mutex etag_mu_;
  std::map<std::string, std::pair<std::string, std::string>> etags_;

  // What the sightings channel needs from the last events index each direction (push, pull) read
  // in full: the rows whose sighting timestamp was past the sightings cursor then (issue 19: one
  // request per direction in an idle cycle, not one per channel). `generation` grows with every
  // page read in full; `confirmed_at` is also set by a 304 (the page is still the source's).
  struct SightingsSnapshot {
    std::string filter;
    std::uint64_t generation = 0;
    std::int64_t confirmed_at = 0;
    std::vector<std::pair<std::string, std::int64_t>> rows;  // (event uuid, sighting timestamp)
  };
  std::mutex snapshot_mu_;
  SightingsSnapshot snapshot_[2];

  // The destination's new-tag gate (new_tags.h), by side: [0] the Portal (push), [1] the member (pull).
  std::shared_ptr<NewTagGate> new_tags_[2];
  std::uint64_t sightings_done_generation_[2] = {0, 0};  // guarded by side_channels_run_
};

// Index timestamps (event and sighting) further ahead of this clock than this are not believed: one
// row dated 9999 would otherwise become the cursor, and every later incremental run would see
// nothing. Such rows are left out with a warning and sgsync_index_rows_rejected_total.
inline constexpr std::int64_t kFutureSkewSeconds = 86400;
bool PlausibleTimestamp(std::int64_t ts);

}  // namespace sgsync::engine
