// Service's turns on the task scheduler: each link's direction on its interval with backoff and a
// time slice, each link's side channels, the maintenance; start and stop.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "common/encoding.h"
#include "common/log_context.h"
#include "common/metric_families.h"
#include "config/client.h"
#include "daemon/health.h"
#include "daemon/link_runtime.h"

namespace sgsync::daemon {

namespace {

using Clock = TaskScheduler::Clock;

using Next = TaskScheduler::Next;

Next InMs(std::int64_t ms) { return Next{Clock::now() + std::chrono::milliseconds(ms), false}; }

// The next wait after a failure: 5 s doubling up to the interval, with full jitter so that several
// links do not retry a recovering Portal in step.
std::int64_t NextBackoff(std::int64_t& backoff_ms, std::int64_t interval_seconds) {
  backoff_ms = backoff_ms == 0 ? kFirstBackoffMs : std::min(backoff_ms * 2, interval_seconds * 1000);
  thread_local std::mt19937_64 rng(std::random_device{}());
  return backoff_ms / 2 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(backoff_ms / 2 + 1));
}

// How often a paused direction looks whether it was resumed (SetPaused also wakes it at once).
constexpr std::int64_t kPausedPollMs = 1000;

// A regular turn's slice: a run that meets a backlog hands its worker on after this long and goes
// on as a continuation (run_time_slice_seconds each), behind the links looking for small changes.
constexpr std::chrono::milliseconds kRegularSlice{1000};

}  // namespace

// Sightings, proposals, clusters and analyst data are a task of their own per link, so a backlog of
// them never holds up events (MISP #5943, #10881): push, then pull, every interval, backing off
// while they fail.
Next Service::SideChannelsTurn(LinkRuntime& link) {
  ScopedLogContext context({link.config.name, "", "", ""});
  const auto& lc = link.config;
  bool active = false;  // a paused link asks its MISPs nothing, not even who it is
  {
    std::lock_guard lock(link.mu);
    active = (lc.push && !link.status[0].paused) || (lc.pull && !link.status[1].paused);
  }
  if (!active) return InMs(kPausedPollMs);
  bool failed = false;
  if (auto s = Discover(link); !s.ok()) {
    failed = true;
  } else {
    for (Direction d : {Direction::kPush, Direction::kPull}) {
      bool enabled = d == Direction::kPush ? lc.push : lc.pull;
      bool paused = false;
      {
        std::lock_guard lock(link.mu);
        paused = link.status[d == Direction::kPush ? 0 : 1].paused;
      }
      if (!enabled || paused || stopping_) continue;
      engine::RunOptions ro;
      ro.stop = &stopping_;
      ro.shared_index_max_age_seconds = SharedIndexMaxAge(lc);
      auto stats = link.engine->RunSideChannels(d, ro);
      if (!stats.ok() || stats->any_failed()) {
        failed = true;
        if (!stats.ok()) {
          spdlog::warn("link {} {} sightings: {}", lc.name, DirectionName(d), stats.error().ToString());
        }
      }
    }
  }
  if (failed) return InMs(NextBackoff(link.backoff_ms[2], lc.interval_seconds));
  link.backoff_ms[2] = 0;
  return InMs(lc.interval_seconds * 1000);
}

Next Service::DirectionTurn(LinkRuntime& link, Direction d) {
  ScopedLogContext context({link.config.name, std::string(DirectionName(d)), "", ""});
  const auto& lc = link.config;
  const std::string dir(DirectionName(d));
  const int slot = d == Direction::kPush ? 0 : 1;
  auto fail_wait = [&](const RunOutcome& failed) {
    const std::int64_t wait = NextBackoff(link.backoff_ms[slot], lc.interval_seconds);
    spdlog::warn("link {} {}: {}; next try in {:.1f} s", lc.name, dir, failed.Text(), wait / 1000.0);
    std::lock_guard lock(link.mu);
    RecordOutcome(link.status[slot], failed, NowS());
    link.status[slot].next_run_at = NowS() + wait / 1000;
    return InMs(wait);
  };
  {
    std::lock_guard lock(link.mu);
    if (link.status[slot].paused) return InMs(kPausedPollMs);
  }
  if (auto s = Discover(link); !s.ok()) return fail_wait(RunOutcome::Failed("cannot start: " + s.error().ToString()));
  auto due = link.engine->FullReconciliationDue(d, lc.full_reconciliation_seconds);
  if (!due.ok()) {
    // Without the cursor sgsyncd cannot tell whether a full reconciliation is due: it does not
    // guess (a skipped reconciliation would be silent); it reports and tries again.
    return fail_wait(RunOutcome::Failed("cannot read the cursor: " + due.error().ToString()));
  }
  const bool full = *due;
  {
    std::lock_guard lock(link.mu);
    link.status[slot].running = true;
    link.status[slot].last_run_started = NowS();
  }
  engine::RunOptions ro;
  ro.full = full;
  ro.stop = &stopping_;
  const std::chrono::milliseconds slice = std::chrono::seconds(config_.run_time_slice_seconds);
  ro.yield_at = Clock::now() + (link.continuing[slot] ? slice : std::min(slice, kRegularSlice));
  ro.others_waiting = [this] {
    std::lock_guard lock(scheduler_mu_);
    return scheduler_ != nullptr && scheduler_->AnyWaiting();
  };
  auto stats = link.engine->Run(d, ro);
  const RunOutcome outcome = RunOutcome::Of(stats);
  {
    std::lock_guard lock(link.mu);
    auto& st = link.status[slot];
    st.running = false;
    st.last_run_ended = NowS();
    RecordOutcome(st, outcome, NowS());
    if (stats.ok()) st.last_stats = *stats;
  }
  if (stats.ok() && !stats->not_modified) {
    spdlog::info("link {} {}{}: listed {}, sent {}, already there {}, skipped {}, echo {}, failed {}{}", lc.name,
                 dir, full ? " (full)" : "", stats->listed, stats->sent, stats->already, stats->skipped,
                 stats->echo, stats->failed, stats->yielded ? "; its time slice is up, more queued" : "");
  }
  link.continuing[slot] = stats.ok() && stats->yielded;
  if (!stats.ok() || stats->aborted) {
    if (stopping_) return Next{Clock::now(), false};
    // An aborted run counts as a failure (readiness, backoff); an error is recorded as it came.
    return fail_wait(outcome.kind == RunOutcome::Kind::kError ? outcome : RunOutcome::Failed(outcome.Text()));
  }
  link.backoff_ms[slot] = 0;
  // Work left after its time slice: again as soon as the links already waiting had their turn.
  const std::int64_t wait_ms = stats->yielded ? 0 : lc.interval_seconds * 1000;
  {
    std::lock_guard lock(link.mu);
    link.status[slot].next_run_at = (NowMs() + wait_ms) / 1000;
  }
  return Next{Clock::now() + std::chrono::milliseconds(wait_ms), stats->yielded};
}

httpd::HttpResponse Service::AnswerProbe(const httpd::HttpRequest& r) {
  httpd::HttpResponse resp;
  resp.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  // The path alone decides (a query string such as ?verbose is ignored).
  const std::string path = r.target.substr(0, r.target.find('?'));
  if (r.method != "GET" && r.method != "HEAD") {
    resp.status = 405;
    resp.body = "GET only\n";
  } else if (path == "/metrics") {
    resp.headers.back().second = "text/plain; version=0.0.4; charset=utf-8";
    resp.body = metrics_.Render();
  } else if (path == "/healthz" || path == "/readyz") {
    ProbeAnswer a = path == "/healthz" ? LivenessProbe()
                                       : ReadinessProbe(Snapshot(), NowS(), config_.ready_failing_seconds);
    resp.status = a.status;
    resp.body = std::move(a.body);
  } else {
    resp.status = 404;
    resp.body = "sgsyncd serves /metrics, /healthz and /readyz\n";
  }
  return resp;
}

Status Service::Start() {
  stopping_ = false;
  if (!config_.metrics_listen.empty() && !metrics_server_) {
    SGSYNC_TRY(config::HostPort listen, config::ParseHostPort(config_.metrics_listen));
    SGSYNC_TRY(metrics_server_,
               httpd::HttpServer::Start(listen.host, listen.port,
                                        [this](const httpd::HttpRequest& r) { return AnswerProbe(r); }));
    spdlog::info("metrics on http://{}:{}/metrics (and /healthz, /readyz)", listen.host,
                 metrics_server_->port());
  }
  auto scheduler = std::make_unique<TaskScheduler>(config_.workers);
  const auto now = Clock::now();
  for (auto& link : links_) {
    for (Direction d : {Direction::kPush, Direction::kPull}) {
      if (!(d == Direction::kPush ? link->config.push : link->config.pull)) continue;
      // What the alert rules compare the time since the last success with (deploy/prometheus/).
      metrics_.Set(metric::kInterval,
                   {{"link", link->config.name}, {"direction", std::string(DirectionName(d))}},
                   static_cast<double>(link->config.interval_seconds));
      scheduler->Add(TaskName(link->config.name, d), [this, l = link.get(), d] { return DirectionTurn(*l, d); },
                      now);
    }
    if (link->config.engine.side_channels_on() && (link->config.push || link->config.pull)) {
      scheduler->Add(link->config.name + " side channels", [this, l = link.get()] { return SideChannelsTurn(*l); },
                      now);
    }
  }
  // Retention a minute after start, then every hour; in small transactions (StateStore::Prune).
  scheduler->Add(
      "maintenance",
      [this] {
        if (auto pruned = Prune(); !pruned.ok()) spdlog::error("retention: {}", pruned.error().ToString());
        return Next{Clock::now() + std::chrono::hours(1), false};
      },
      now + std::chrono::minutes(1));
  scheduler->Start();
  spdlog::debug("{} worker thread(s) take turns at {} link(s)", scheduler->workers(), links_.size());
  std::lock_guard lock(scheduler_mu_);
  scheduler_ = std::move(scheduler);
  return {};
}

std::string Service::TaskName(const std::string& link, Direction d) {
  return link + " " + std::string(DirectionName(d));
}

Result<state::StateStore::PruneCounts> Service::Prune() {
  const std::int64_t now = NowS(), day = 86400;
  state::StateStore::Retention r;
  if (config_.retention_done_work_days > 0) r.done_work_before = now - config_.retention_done_work_days * day;
  if (config_.retention_audit_days > 0) r.audit_before = now - config_.retention_audit_days * day;
  if (config_.retention_resolved_conflicts_days > 0)
    r.resolved_conflicts_before = now - config_.retention_resolved_conflicts_days * day;
  SGSYNC_TRY(auto counts, store_->Prune(r));
  if (counts.work_items + counts.audit + counts.conflicts + counts.sightings > 0) {
    spdlog::info(
        "retention: {} finished work item(s), {} audit entries, {} resolved conflict(s) and {} sightings "
        "ledger row(s) of untracked events removed",
        counts.work_items, counts.audit, counts.conflicts, counts.sightings);
  }
  return counts;
}

bool Service::Stop() {
  stopping_ = true;
  std::unique_ptr<TaskScheduler> scheduler;
  {
    std::lock_guard lock(scheduler_mu_);
    scheduler = std::move(scheduler_);
  }
  if (!scheduler) return true;
  // Runs finish the events in hand within the grace period; one still in a request past it is left
  // to the process exit (its worker keeps the scheduler's state alive).
  const bool all = scheduler->Stop(Clock::now() + std::chrono::seconds(config_.shutdown_grace_seconds));
  if (!all) {
    spdlog::error(
        "some runs did not finish within {} s; exiting anyway (their work is retried at the next start)",
        config_.shutdown_grace_seconds);
  }
  return all;
}

}  // namespace sgsync::daemon
