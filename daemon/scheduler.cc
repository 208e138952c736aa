// Service's schedulers: each link's direction on its interval with backoff, the side channels on
// their own thread, start and stop.
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

// Sightings, proposals, clusters and analyst data run on their own thread per link, so a backlog of
// them never holds up events (MISP #5943, #10881): push, then pull, every interval, backing off
// while they fail.
void Service::SideChannelsLoop(LinkRuntime& link) {
  ScopedLogContext context({link.config.name, "", "", ""});
  const auto& lc = link.config;
  std::int64_t backoff_ms = 0;
  while (!stopping_) {
    bool failed = false;
    bool active = false;  // a paused link asks its MISPs nothing, not even who it is
    {
      std::lock_guard lock(link.mu);
      active = (lc.push && !link.status[0].paused) || (lc.pull && !link.status[1].paused);
    }
    if (!active) {
      SleepUntil(NowMs() + 1000);
      continue;
    }
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
    if (stopping_) break;
    if (failed) {
      backoff_ms = backoff_ms == 0 ? kFirstBackoffMs : std::min(backoff_ms * 2, lc.interval_seconds * 1000);
      SleepUntil(NowMs() + backoff_ms);
    } else {
      backoff_ms = 0;
      SleepUntil(NowMs() + lc.interval_seconds * 1000);
    }
  }
}

void Service::SleepUntil(std::int64_t deadline_ms) {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    std::int64_t left = deadline_ms - NowMs();
    if (left <= 0) return;
    wake_.wait_for(lock, std::chrono::milliseconds(left));
  }
}

void Service::Loop(LinkRuntime& link, Direction d) {
  ScopedLogContext context({link.config.name, std::string(DirectionName(d)), "", ""});
  const auto& lc = link.config;
  const std::string dir(DirectionName(d));
  const int slot = d == Direction::kPush ? 0 : 1;
  std::mt19937_64 rng(std::random_device{}());
  std::int64_t backoff_ms = 0;
  auto fail_wait = [&](const RunOutcome& failed) {
    const std::string what = failed.Text();
    backoff_ms = backoff_ms == 0 ? kFirstBackoffMs : std::min(backoff_ms * 2, lc.interval_seconds * 1000);
    // Full jitter keeps several links from retrying a recovering Portal in step.
    std::int64_t wait =
        backoff_ms / 2 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(backoff_ms / 2 + 1));
    spdlog::warn("link {} {}: {}; next try in {:.1f} s", lc.name, dir, what, wait / 1000.0);
    {
      std::lock_guard lock(link.mu);
      RecordOutcome(link.status[slot], failed, NowS());
      link.status[slot].next_run_at = NowS() + wait / 1000;
    }
    SleepUntil(NowMs() + wait);
  };
  while (!stopping_) {
    bool paused = false;
    {
      std::lock_guard lock(link.mu);
      paused = link.status[slot].paused;
    }
    if (paused) {
      SleepUntil(NowMs() + 1000);
      continue;
    }
    if (auto s = Discover(link); !s.ok()) {
      fail_wait(RunOutcome::Failed("cannot start: " + s.error().ToString()));
      continue;
    }
    auto due = link.engine->FullReconciliationDue(d, lc.full_reconciliation_seconds);
    if (!due.ok()) {
      // Without the cursor sgsyncd cannot tell whether a full reconciliation is due: it does not
      // guess (a skipped reconciliation would be silent); it reports and tries again.
      fail_wait(RunOutcome::Failed("cannot read the cursor: " + due.error().ToString()));
      continue;
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
      spdlog::info("link {} {}{}: listed {}, sent {}, already there {}, skipped {}, echo {}, failed {}",
                   lc.name, dir, full ? " (full)" : "", stats->listed, stats->sent, stats->already,
                   stats->skipped, stats->echo, stats->failed);
    }
    if (stopping_) break;
    if (!stats.ok() || stats->aborted) {
      // An aborted run counts as a failure (readiness, backoff); an error is recorded as it came.
      fail_wait(outcome.kind == RunOutcome::Kind::kError ? outcome : RunOutcome::Failed(outcome.Text()));
      continue;
    }
    backoff_ms = 0;
    std::int64_t next = NowMs() + lc.interval_seconds * 1000;
    {
      std::lock_guard lock(link.mu);
      link.status[slot].next_run_at = next / 1000;
    }
    SleepUntil(next);
  }
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
  for (auto& link : links_) {
    for (Direction d : {Direction::kPush, Direction::kPull}) {
      if (!(d == Direction::kPush ? link->config.push : link->config.pull)) continue;
      // What the alert rules compare the time since the last success with (deploy/prometheus/).
      metrics_.Set(metric::kInterval,
                   {{"link", link->config.name}, {"direction", std::string(DirectionName(d))}},
                   static_cast<double>(link->config.interval_seconds));
      ++running_loops_;
      threads_.emplace_back([this, l = link.get(), d] {
        Loop(*l, d);
        --running_loops_;
      });
    }
    if (link->config.engine.side_channels_on() && (link->config.push || link->config.pull)) {
      ++running_loops_;
      threads_.emplace_back([this, l = link.get()] {
        SideChannelsLoop(*l);
        --running_loops_;
      });
    }
  }
  ++running_loops_;
  threads_.emplace_back([this] {
    MaintenanceLoop();
    --running_loops_;
  });
  return {};
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

// Retention a minute after start, then every hour; in small transactions (StateStore::Prune).
void Service::MaintenanceLoop() {
  std::int64_t next = NowMs() + 60 * 1000;
  while (!stopping_) {
    SleepUntil(std::min(next, NowMs() + 1000));
    if (stopping_ || NowMs() < next) continue;
    if (auto pruned = Prune(); !pruned.ok()) spdlog::error("retention: {}", pruned.error().ToString());
    next = NowMs() + 3600 * 1000;
  }
}

bool Service::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  // Join within the grace period; a run still in a request past it is left to the process exit.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(config_.shutdown_grace_seconds);
  while (running_loops_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  bool all = running_loops_.load() == 0;
  for (auto& t : threads_) {
    if (!t.joinable()) continue;
    if (all) {
      t.join();
    } else {
      t.detach();
    }
  }
  threads_.clear();
  if (!all) {
    spdlog::error(
        "some runs did not finish within {} s; exiting anyway (their work is retried at the next start)",
        config_.shutdown_grace_seconds);
  }
  return all;
}

}  // namespace sgsync::daemon
