// daemon/service.h: what sgsyncd runs: every configured link, on its schedule, in both directions.
//
// For each link the service builds the two MISP clients, learns from the MISPs what the
// configuration does not say (the organisation of sgsync's account on the Portal, the member's
// host organisation when not configured), registers the link in the state store and runs the
// engine: each link and direction every `interval_seconds`, with a full reconciliation run every
// `full_reconciliation_seconds`, as turns on a fixed pool of `workers` threads (TaskScheduler): a
// run with work left after its time slice hands its worker on and continues behind the links
// looking for changes, so a large backlog does not delay the others. Requests in flight are
// capped per MISP and for the whole process (`max_requests_in_flight`). A run that fails or is cut
// short because a MISP is failing backs off exponentially (5 s doubling to the interval, with
// jitter) instead of hammering it. The Prometheus /metrics endpoint is served on `metrics.listen`.
//
// Stop() asks every run to finish the events in hand and take no more, and waits up to the
// shutdown grace period; everything sgsync remembers is transactional, so an abandoned run leaves
// consistent state (its leased items become ready again after their lease). Reload() swaps in a
// new configuration between runs. Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "config/config.h"
#include "daemon/task_scheduler.h"
#include "httpd/http_server.h"
#include "portal-connector/misp_client.h"
#include "state/store.h"
#include "sync/engine/engine.h"

namespace sgsync::daemon {

// How the last run of a link and direction ended.
struct RunOutcome {
  enum class Kind { kNone, kOk, kNotModified, kAborted, kError };
  Kind kind = Kind::kNone;  // kNone: no run yet
  std::string detail;       // why it was aborted or failed

  static RunOutcome Of(const Result<engine::RunStats>& stats);
  static RunOutcome Failed(std::string what) { return {Kind::kError, std::move(what)}; }
  bool succeeded() const { return kind == Kind::kOk || kind == Kind::kNotModified; }
  // "ok", "not_modified", "aborted: <detail>", "error: <detail>", "" before the first run: the
  // admin API's last_run_outcome and the logs.
  std::string Text() const;
};

// How a link and direction is doing (the admin API's GetStatus reads it).
struct DirectionStatus {
  bool enabled = false;
  bool running = false;
  bool paused = false;  // from the state database: survives reloads and restarts
  std::string paused_by;
  std::int64_t paused_at = 0;
  std::int64_t last_run_started = 0;
  std::int64_t last_run_ended = 0;
  RunOutcome last_outcome;
  std::int64_t failing_since = 0;  // when the current run of failures began; 0 while runs succeed
  engine::RunStats last_stats;
  std::int64_t next_run_at = 0;
};

class Service {
 public:
  static Result<std::unique_ptr<Service>> Create(config::DaemonConfig config);
  ~Service();

  // Starts the metrics endpoint and the scheduler: `workers` threads taking turns at every link's
  // enabled directions and side channels.
  Status Start();
  // Runs every link's enabled directions once (push, then pull) and returns; `only` restricts
  // the direction. For `sgsyncd --once`, tests and the demo.
  Result<std::vector<std::pair<std::string, Result<engine::RunStats>>>> RunOnce(
      std::optional<Direction> only = std::nullopt, bool full = false);
  // One sightings run per link and enabled direction (after RunOnce).
  Result<std::vector<std::pair<std::string, Result<engine::SideChannelStats>>>> RunSideChannelsOnce(
      std::optional<Direction> only = std::nullopt, bool full = false);
  // Stops the schedulers: runs finish the events in hand; waits up to the grace period. Returns
  // false when some run did not stop in time (its state is still consistent).
  bool Stop();
  // Replaces the configuration: the schedulers stop (as Stop), then start with `config`. The state
  // database path cannot change while running.
  Status Reload(config::DaemonConfig config);

  Metrics& metrics() { return metrics_; }
  std::uint16_t metrics_port() const;
  config::DaemonConfig config() const;
  state::StateStore& store() { return *store_; }

  // ---- what the admin API reads and does (daemon/admin_server.h)
  struct LinkSnapshot {
    std::string name;
    std::int64_t link_id = 0;  // 0 until the link could start (its MISPs answered)
    std::string local_version, remote_version;
    DirectionStatus push, pull;
    std::vector<std::string> rule_notes;  // "push_rules.tags.NOT: 3 = tlp:red (the member's MISP ...)"
    std::string local_key_fingerprint, remote_key_fingerprint;  // config::Secret::fingerprint
    std::int64_t keys_loaded_at = 0;
    // The sync window (engine::EngineOptions): its start now, 0 when there is none, and the
    // configuration that sets it ("initial_sync_days = 90").
    std::int64_t sync_window_start = 0;
    std::string sync_window;
  };
  std::vector<LinkSnapshot> Snapshot();
  // How many links have started (their MISPs answered), failed to (reported), or not tried yet.
  struct Readiness {
    int started = 0, failed = 0, pending = 0;
  };
  Readiness LinkReadiness();
  // Records how a run ended (the status, and since when the direction has been failing).
  static void RecordOutcome(DirectionStatus& st, RunOutcome outcome, std::int64_t now);
  // NotFound for an unknown link name; `d` absent means both directions. Written to the state
  // database first (a pause survives a reload and a restart), with who asked.
  Status SetPaused(const std::string& link, std::optional<Direction> d, bool paused,
                   const std::string& actor);
  // Runs now (waiting for a scheduled run of the same link and direction to end first), reporting
  // progress; fails when the link cannot start.
  Result<engine::RunStats> Trigger(const std::string& link, Direction d, bool full,
                                   const std::function<void(const engine::RunStats&)>& progress);
  // What the next run would do (LinkEngine::Preview); read-only on both MISPs.
  Result<engine::RunPreview> Preview(const std::string& link, Direction d, int limit);
  // `uuid` queued again in direction `d` and taken through the engine at once (LinkEngine::Resend).
  Result<engine::RunStats> Resend(const std::string& link, Direction d, const std::string& uuid);
  // What the policy decides for `uuid` now: the event fetched from its source, no write.
  Result<policy::Decision> DryRun(const std::string& link, Direction d, const std::string& uuid);
  // The link's id in the state store (NotFound when it never started). Changes nothing.
  Result<std::int64_t> LinkId(const std::string& link);
  // Applies the configured retention now (the daemon does so hourly); docs/state.md, "Retention".
  Result<state::StateStore::PruneCounts> Prune();
  // Reads the configuration file again and reloads; returns what changed, in words. A changed API
  // key is tried on its MISP first: one the MISP refuses is not taken (the old key stays in use, and
  // the answer says so); the fingerprints of the keys are named, never the keys.
  Result<std::vector<std::string>> ReloadFromFile();

 private:
  struct LinkRuntime;
  explicit Service(config::DaemonConfig config);
  Status LockStateDatabase();
  Status BuildLinks();
  Status Discover(LinkRuntime& link);
  // The link named, discovered (its engine ready); `runs`: it must run that direction. The caller
  // holds links_mu_. NotFound for an unknown name, InvalidArgument for a direction it does not run.
  Result<LinkRuntime*> Started(const std::string& link, std::optional<Direction> runs);
  // Tries each API key of `fresh` that differs from `old`'s on its MISP; keeps the old one where the
  // MISP refuses the new (ReloadFromFile).
  static void CheckNewKeys(const config::LinkConfig& old, config::LinkConfig& fresh,
                           std::vector<std::string>& changes);
  template <typename Stats, typename RunFn>
  Result<std::vector<std::pair<std::string, Result<Stats>>>> RunEachOnce(std::optional<Direction> only,
                                                                         bool full, bool side_channels_only,
                                                                         const std::string& suffix,
                                                                         RunFn run);
  // The scheduler's turns (daemon/scheduler.cc): each returns when its next turn is due.
  TaskScheduler::Next DirectionTurn(LinkRuntime& link, Direction d);
  TaskScheduler::Next SideChannelsTurn(LinkRuntime& link);
  static std::string TaskName(const std::string& link, Direction d);
  // /metrics, /healthz and /readyz on the metrics listener (daemon/health.h).
  httpd::HttpResponse AnswerProbe(const httpd::HttpRequest& r);

  config::DaemonConfig config_;
  // Shared by every client: what all answers being parsed at once may cost (docs/security.md).
  std::shared_ptr<misp::MemoryBudget> documents_budget_;
  Metrics metrics_;
  // Requests in flight per MISP across all links and runs, by URL (docs/operations.md).
  std::map<std::string, std::shared_ptr<connector::EndpointLimit>> endpoint_limits_;
  // Requests in flight to all MISPs together (max_requests_in_flight); resized only by a restart.
  std::shared_ptr<connector::EndpointLimit> process_limit_;
  std::shared_ptr<connector::EndpointLimit> LimitFor(const config::MispEndpointConfig& e);
  // One new-tag gate per MISP, by URL as the limits are, shared by every link writing there: two
  // links' first adds naming one new tag would race to create it (sync/engine/new_tags.h).
  std::map<std::string, std::shared_ptr<engine::NewTagGate>> new_tag_gates_;
  std::shared_ptr<engine::NewTagGate> GateFor(const config::MispEndpointConfig& e);
  std::unique_ptr<state::StateStore> store_;
  std::unique_ptr<httpd::HttpServer> metrics_server_;
  LinkRuntime* Find(const std::string& name);
  std::vector<std::unique_ptr<LinkRuntime>> links_;
  // Guards links_ and config_ against a reload while the admin API reads them.
  mutable std::shared_mutex links_mu_;
  // Every link's runs take turns on its workers (config workers); null while stopped.
  std::unique_ptr<TaskScheduler> scheduler_;
  std::mutex scheduler_mu_;  // guards scheduler_ (Stop and Start against SetPaused's wake)
  std::atomic<bool> stopping_{false};
  int lock_fd_ = -1;
};

// A transport for one MISP endpoint of the configuration, reporting to `metrics` as `peer`.
Result<std::unique_ptr<connector::MispClient>> MakeClient(const config::MispEndpointConfig& e,
                                                          Metrics* metrics, const std::string& peer);

}  // namespace sgsync::daemon
