// LinkEngine's events channel: a run from the index to the cursor (engine.h describes the steps).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <set>

#include "common/encoding.h"
#include "common/metric_families.h"
#include "misp/content_hash.h"
#include "misp/elements.h"
#include "misp/event.h"
#include "sync/engine/run.h"

namespace sgsync::engine {

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kSent:
      return "sent";
    case Outcome::kAlready:
      return "already";
    case Outcome::kSkipped:
      return "skipped";
    case Outcome::kHeld:
      return "held";
    case Outcome::kEcho:
      return "echo";
    case Outcome::kFailed:
      return "failed";
  }
  return "?";
}

bool PlausibleTimestamp(std::int64_t ts) {
  return ts > 0 && ts <= static_cast<std::int64_t>(std::time(nullptr)) + kFutureSkewSeconds;
}

LinkEngine::LinkEngine(std::string name, std::int64_t link_id, policy::Link link, EngineOptions options,
                       connector::MispApi& local, connector::MispApi& remote, state::StateStore& store,
                       Metrics* metrics, NewTagGates gates)
    : name_(std::move(name)),
      link_id_(link_id),
      link_(std::move(link)),
      options_(options),
      local_(local),
      remote_(remote),
      store_(store),
      metrics_(metrics),
      new_tags_{gates.remote ? std::move(gates.remote) : std::make_shared<NewTagGate>(),
                gates.local ? std::move(gates.local) : std::make_shared<NewTagGate>()} {}

Result<RunStats> LinkEngine::Run(Direction d, const RunOptions& options) {
  const Route route = RouteFor(d);
  std::unique_lock running(route.push() ? push_run_ : pull_run_, std::defer_lock);
  if (options.wait_if_running) {
    running.lock();
  } else if (!running.try_lock()) {
    return Fail(ErrorCode::kUnavailable, std::string("a ") + std::string(DirectionName(d)) + " run of link " +
                                             name_ + " is already in progress");
  }
  if (route.push() && !options_.remote_perm_sync) {
    return Fail(ErrorCode::kPermissionDenied,
                "the Portal account of link " + name_ +
                    " has no perm_sync (its role is not a sync role): MISP accepts no pushed events from it "
                    "(spec 12 case 36); ask the Portal's administrators for a sync user");
  }
  RunContext run(route, options);
  ScopedLogContext context({name_, std::string(route.name()), NewRunId(), ""});

  SGSYNC_TRY(state::Cursor cursor, store_.GetCursor(link_id_, d, state::CursorKind::kEvents));
  std::int64_t newest = cursor.last_timestamp;
  SGSYNC_TRY_STATUS(ListAndEnqueue(run, cursor, newest));
  SGSYNC_TRY(state::QueueCounts counts, store_.CountQueue(link_id_, d));
  run.stats.total = counts.pending + counts.failed + counts.leased;
  run.Report();

  // Work through the queue: this run's items and any earlier ones now due.
  SGSYNC_TRY_STATUS(ProcessQueue(run, {}, true));
  if (run.peer_down) {
    run.stats.aborted = true;
    run.stats.abort_reason = std::string(route.destination_name()) + " kept failing";
  } else if (options.stop != nullptr && options.stop->load()) {
    run.stats.aborted = true;
    run.stats.abort_reason = "stopping";
  } else if (options.yield_at && std::chrono::steady_clock::now() >= *options.yield_at) {
    // Past the slice with events still queued: they were left for the next turn (had no one
    // waited, the run would have gone on until the queue was empty).
    SGSYNC_TRY(state::QueueCounts left, store_.CountQueue(link_id_, d));
    run.stats.yielded = left.pending > 0;
  }

  // The cursor: past everything listed, but never past work not done.
  SGSYNC_TRY(auto oldest, store_.OldestUnfinished(link_id_, d));
  std::int64_t target = newest;
  if (oldest) target = std::min(target, *oldest - 1);
  if (target > cursor.last_timestamp) {
    SGSYNC_TRY_STATUS(store_.AdvanceCursor(link_id_, d, state::CursorKind::kEvents, target));
    cursor.last_timestamp = target;
  }
  run.stats.cursor = cursor.last_timestamp;
  if (options.full && !run.stats.aborted) {
    SGSYNC_TRY_STATUS(store_.MarkFullReconciliation(link_id_, d, state::CursorKind::kEvents,
                                                    static_cast<std::int64_t>(std::time(nullptr))));
  }

  if (metrics_ != nullptr) {
    SGSYNC_TRY(counts, store_.CountQueue(link_id_, d));
    Labels base{{"link", name_}, {"direction", std::string(route.name())}};
    auto with = [&](const char* k, const char* v) {
      Labels l = base;
      l.emplace_back(k, v);
      return l;
    };
    metrics_->Set(metric::kQueueDepth, with("state", "pending"),
                  static_cast<double>(counts.pending + counts.leased));
    metrics_->Set(metric::kQueueDepth, with("state", "failed"), static_cast<double>(counts.failed));
    metrics_->Set(metric::kQueueDepth, with("state", "dead"), static_cast<double>(counts.dead));
    metrics_->Set(metric::kCursor, base, static_cast<double>(cursor.last_timestamp));
    metrics_->Add(metric::kRuns, with("outcome", run.stats.aborted        ? "aborted"
                                                 : run.stats.not_modified ? "not_modified"
                                                                          : "ok"));
    if (!run.stats.aborted) {
      metrics_->Set(metric::kLastSuccess, base, static_cast<double>(std::time(nullptr)));
    }
  }
  run.Report();
  std::lock_guard lock(run.mu);
  return run.stats;
}

std::int64_t LinkEngine::IndexSince(std::int64_t cursor) const {
  std::int64_t since = cursor > 0 ? std::max<std::int64_t>(0, cursor - options_.overlap_seconds) : 0;
  // The window holds for full runs too: a reconciliation must not send the history it leaves out.
  return std::max(since, options_.WindowStart(static_cast<std::int64_t>(std::time(nullptr))));
}

json::object LinkEngine::BaseIndexFilter(const Route& route) const {
  // Push: what MISP's own push selects (published events). Pull: the pull rules as index filters.
  json::object filter = route.push() ? json::object{} : policy::PullIndexFilter(link_.pull_rules);
  filter["minimal"] = 1;
  filter["published"] = 1;
  return filter;
}

json::object LinkEngine::IndexFilter(const Route& route, std::int64_t cursor) const {
  json::object filter = BaseIndexFilter(route);
  if (std::int64_t since = IndexSince(cursor); since > 0) filter["timestamp"] = std::to_string(since);
  return filter;
}

Result<RunPreview> LinkEngine::Preview(Direction d, int limit) {
  const Route route = RouteFor(d);
  SGSYNC_TRY(state::Cursor cursor, store_.GetCursor(link_id_, d, state::CursorKind::kEvents));
  SGSYNC_TRY(connector::IndexPage page,
             route.source->EventIndex(IndexFilter(route, cursor.last_timestamp), ""));
  RunPreview out;
  out.listed = static_cast<std::int64_t>(page.rows.size());
  // The run's own selection, quietly (nothing counted or logged for the rows it leaves out).
  SGSYNC_TRY(std::vector<Candidate> candidates, Select(route, page, /*report=*/false, nullptr));
  connector::ViewForm form;
  form.include_deleted = true;
  form.exclude_local_tags = !route.push() && !link_.internal;
  for (const auto& c : candidates) {
    if (c.echo) continue;  // sgsync's own echo is not sent back
    ++out.changed;
    if (static_cast<int>(out.events.size()) >= limit) continue;
    SGSYNC_TRY(auto doc, route.source->ViewEvent(c.uuid, form));
    policy::Decision decision =
        doc ? policy::Evaluate(d, std::optional<json::object>(std::move(*doc).TakeEvent()), link_)
            : policy::Evaluate(d, nullptr, link_);
    PreviewEvent e{c.uuid, c.timestamp, decision.send, "", ""};
    if (const policy::Reason* why = decision.refusal()) {
      e.rule = why->rule;
      e.detail = why->detail;
      ++out.withheld_by_rule[e.rule];
    } else {
      ++out.would_send;
    }
    out.events.push_back(std::move(e));
  }
  return out;
}

// Lists the source's index since the cursor (conditionally: a 304 ends here), leaves out what
// cannot be believed, what the ledger saw already, tombstones and sgsync's own echo, and enqueues the
// rest; `newest` becomes the newest believable timestamp listed.
Status LinkEngine::ListAndEnqueue(RunContext& run, state::Cursor& cursor, std::int64_t& newest) {
  const RunOptions& options = run.options;
  const bool push = run.route.push();
  const std::string dir(run.route.name());

  // With sightings on, the index is asked for without a timestamp, the same request the sightings
  // channel would make: its rows are kept for that channel (SightingsSnapshot) and the rows older
  // than the cursor are left out here, as MISP's `timestamp` filter would (Event.timestamp >=).
  const bool shared = options_.sightings;
  const std::int64_t since = IndexSince(options.full ? 0 : cursor.last_timestamp);
  const json::object filter = shared ? BaseIndexFilter(run.route) : IndexFilter(run.route, options.full ? 0 : cursor.last_timestamp);
  const std::string channel = "events " + dir, filter_text = json::serialize(filter);
  std::string etag = options.full ? "" : CachedEtag(channel, filter_text);
  SGSYNC_TRY(connector::IndexPage page, run.route.source->EventIndex(filter, etag));
  const int slot = push ? 0 : 1;
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  if (page.not_modified) {
    run.stats.not_modified = true;
    if (shared) {
      std::lock_guard lock(snapshot_mu_);
      if (snapshot_[slot].filter == filter_text) snapshot_[slot].confirmed_at = now;
    }
    return {};
  }
  std::vector<std::pair<std::string, std::int64_t>> sighted;
  if (shared) {
    SGSYNC_TRY(state::Cursor sightings_cursor,
               store_.GetCursor(link_id_, run.route.direction, state::CursorKind::kSightings));
    for (const auto& row : page.rows) {
      if (row.sighting_timestamp > sightings_cursor.last_timestamp)
        sighted.emplace_back(row.uuid, row.sighting_timestamp);
    }
    if (since > 0) {
      std::erase_if(page.rows, [since](const misp::EventIndexEntry& row) { return row.timestamp < since; });
    }
  }
  run.stats.listed = static_cast<std::int64_t>(page.rows.size());
  SGSYNC_TRY(std::vector<Candidate> candidates, Select(run.route, page, /*report=*/true, &newest));
  if (!push && options.full && page.rejected.empty()) SGSYNC_TRY_STATUS(FindDeletions(run, page.rows));
  if (!push && options.full && !page.rejected.empty())
    spdlog::warn("link {}: deletions at the Portal not looked for: its index had rows that could not be read",
                 name_);
  // Written a chunk to a transaction: one commit (one fsync) for a thousand events where a first
  // run's listing used to commit each, yet short enough that other links' writes do not wait long
  // for the store.
  constexpr std::size_t kChunk = 1000;
  std::vector<state::LedgerEntry> echoes;
  std::vector<state::StateStore::Enqueue> queue;
  auto flush = [&](std::size_t at_least) -> Status {
    if (echoes.size() >= at_least) {
      SGSYNC_TRY_STATUS(store_.UpsertLedgerBatch(link_id_, echoes));
      echoes.clear();
    }
    if (queue.size() >= at_least) {
      SGSYNC_TRY_STATUS(store_.RecordAndEnqueueMany(link_id_, run.route.direction, queue));
      queue.clear();
    }
    return {};
  };
  for (auto& c : candidates) {
    SGSYNC_TRY_STATUS(flush(kChunk));
    if (c.echo) {
      // No echo: sgsync wrote this version here itself. The ledger learns the source saw it.
      SeenTimestamp(*c.ledger, run.route.source_side) = c.timestamp;
      echoes.push_back(std::move(*c.ledger));
      ++run.stats.echo;
      if (metrics_ != nullptr)
        metrics_->Add(
            metric::kEvents,
            {{"link", name_}, {"direction", dir}, {"outcome", std::string(OutcomeName(Outcome::kEcho))}});
      continue;
    }
    state::LedgerEntry entry = c.ledger.value_or(state::LedgerEntry{});
    if (!c.ledger) {
      entry.uuid = c.uuid;
      entry.origin = run.route.source_side;
      entry.decision = state::LedgerDecision::kQueued;
    }
    queue.push_back({std::move(entry), c.timestamp});
    ++run.stats.queued;
    if (options.full && c.timestamp < cursor.last_timestamp - options_.overlap_seconds) {
      ++run.stats.late_arrivals;
      spdlog::info("link {}: {} {} found by reconciliation (timestamp {} is behind the cursor {})", name_,
                   dir, c.uuid, c.timestamp, cursor.last_timestamp);
      if (metrics_ != nullptr)
        metrics_->Add(metric::kReconciliationFound, {{"link", name_}, {"direction", dir}});
    }
  }
  SGSYNC_TRY_STATUS(flush(1));
  // Only now is every listed change durably queued: a 304 next time must not hide one that a failed
  // write of the state (a full disk, a read-only file) left unqueued.
  RememberEtag(channel, filter_text, page.etag);
  if (shared) {
    std::lock_guard lock(snapshot_mu_);
    SightingsSnapshot& snap = snapshot_[slot];
    snap.filter = filter_text;
    ++snap.generation;
    snap.confirmed_at = now;
    snap.rows = std::move(sighted);
  }
  return {};
}

Result<std::vector<LinkEngine::Candidate>> LinkEngine::Select(const Route& route,
                                                              const connector::IndexPage& page, bool report,
                                                              std::int64_t* newest) {
  const std::string dir(route.name());
  if (report) {
    for (const auto& bad : page.rejected) {
      spdlog::warn("link {}: {} index row left out: {}", name_, dir, bad.ToString());
      if (metrics_ != nullptr)
        metrics_->Add(metric::kIndexRowsRejected,
                      {{"link", name_}, {"direction", dir}, {"reason", "unreadable"}});
    }
  }
  std::vector<state::IndexPair> pairs;
  std::map<std::string, std::int64_t> stamp;
  pairs.reserve(page.rows.size());
  for (const auto& row : page.rows) {
    if (!PlausibleTimestamp(row.timestamp)) {
      if (report) {
        spdlog::warn(
            "link {}: {} index row {} left out: its timestamp {} is not plausible (not positive, or "
            "more than {} s ahead of this clock)",
            name_, dir, row.uuid, row.timestamp, kFutureSkewSeconds);
        if (metrics_ != nullptr)
          metrics_->Add(metric::kIndexRowsRejected,
                        {{"link", name_}, {"direction", dir}, {"reason", "implausible_timestamp"}});
      }
      continue;
    }
    if (newest != nullptr) *newest = std::max(*newest, row.timestamp);
    // MISP's pull leaves the local MISP's blocklisted events out of the index (spec 7.8).
    if (!route.push() && policy::PullBlocklisted(link_, row.uuid, row.orgc_uuid)) {
      if (report) spdlog::debug("link {}: {} is on the member's blocklists: not fetched", name_, row.uuid);
      continue;
    }
    pairs.push_back({row.uuid, row.timestamp});
    stamp[row.uuid] = row.timestamp;
  }
  SGSYNC_TRY(std::vector<std::string> changed, store_.Changed(link_id_, route.source_side, pairs));
  std::vector<Candidate> out;
  out.reserve(changed.size());
  for (auto& uuid : changed) {
    const std::int64_t ts = stamp[uuid];
    if (!route.push()) {
      SGSYNC_TRY(bool tomb, store_.HasTombstone(link_id_, uuid));
      if (tomb) continue;
    }
    SGSYNC_TRY(auto ledger, store_.GetLedger(link_id_, uuid));
    const bool echo = ledger && ledger->written_side == route.source_side && ledger->written_timestamp &&
                      *ledger->written_timestamp >= ts;
    out.push_back(Candidate{std::move(uuid), ts, std::move(ledger), echo});
  }
  return out;
}

std::string LinkEngine::CachedEtag(const std::string& channel, const std::string& filter) {
  std::lock_guard lock(etag_mu_);
  auto it = etags_.find(channel);
  return it != etags_.end() && it->second.first == filter ? it->second.second : "";
}

void LinkEngine::RememberEtag(const std::string& channel, const std::string& filter,
                              const std::string& etag) {
  std::lock_guard lock(etag_mu_);
  etags_[channel] = {filter, etag};
}

Result<RunStats> LinkEngine::Resend(Direction d, const std::string& uuid) {
  const Route route = RouteFor(d);
  std::unique_lock running(route.push() ? push_run_ : pull_run_);
  if (route.push() && !options_.remote_perm_sync) {
    return Fail(ErrorCode::kPermissionDenied, "the Portal account of link " + name_ +
                                                  " has no perm_sync: MISP accepts no pushed events from it");
  }
  SGSYNC_TRY(auto ledger, store_.GetLedger(link_id_, uuid));
  state::LedgerEntry entry = ledger.value_or(state::LedgerEntry{});
  if (!ledger) {
    entry.uuid = uuid;
    entry.origin = route.source_side;
  }
  const std::int64_t version = SeenTimestamp(entry, route.source_side).value_or(0);
  SGSYNC_TRY(std::int64_t id, store_.RecordAndEnqueue(link_id_, entry, d, version));
  SGSYNC_TRY(state::WorkItem item, store_.LeaseItem(id, options_.lease_seconds));
  RunOptions options;
  RunContext run(route, options);
  ScopedLogContext context({name_, std::string(route.name()), NewRunId(), uuid});
  run.stats.total = 1;
  std::deque<PendingWave> one;
  one.push_back({{std::move(item)}, 0});
  SGSYNC_TRY_STATUS(ProcessQueue(run, std::move(one), false));
  std::lock_guard lock(run.mu);
  return run.stats;
}

Result<bool> LinkEngine::FullReconciliationDue(Direction d, std::int64_t every_seconds) {
  if (every_seconds <= 0) return false;
  SGSYNC_TRY(state::Cursor cursor, store_.GetCursor(link_id_, d, state::CursorKind::kEvents));
  return static_cast<std::int64_t>(std::time(nullptr)) - cursor.last_full_reconciliation >= every_seconds;
}

Result<policy::Decision> LinkEngine::DryRun(Direction d, const std::string& uuid) {
  const Route route = RouteFor(d);
  connector::ViewForm form;
  form.include_deleted = true;
  form.exclude_local_tags = !route.push() && !link_.internal;
  SGSYNC_TRY(auto doc, route.source->ViewEvent(uuid, form));
  if (!doc) return policy::Evaluate(d, nullptr, link_);
  return policy::Evaluate(d, std::optional<json::object>(std::move(*doc).TakeEvent()), link_);
}

}  // namespace sgsync::engine
