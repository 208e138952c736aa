#include "daemon/service.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <tuple>

#include "common/encoding.h"
#include "common/metric_families.h"
#include "config/client.h"
#include "daemon/link_runtime.h"

namespace sgsync::daemon {

namespace {

namespace json = boost::json;

// One link's settings as text (secrets redacted), to compare two configuration files.
std::string LinkText(const config::LinkConfig& link) {
  config::DaemonConfig one;
  one.links.push_back(link);
  return json::serialize(config::Redacted(one));
}

}  // namespace

RunOutcome RunOutcome::Of(const Result<engine::RunStats>& stats) {
  if (!stats.ok()) return {Kind::kError, stats.error().ToString()};
  if (stats->aborted) return {Kind::kAborted, stats->abort_reason};
  return {stats->not_modified ? Kind::kNotModified : Kind::kOk, ""};
}

std::string RunOutcome::Text() const {
  switch (kind) {
    case Kind::kNone:
      return "";
    case Kind::kOk:
      return "ok";
    case Kind::kNotModified:
      return "not_modified";
    case Kind::kAborted:
      return "aborted: " + detail;
    case Kind::kError:
      return "error: " + detail;
  }
  return "";
}

Service::Service(config::DaemonConfig config)
    : config_(std::move(config)),
      documents_budget_(std::make_shared<misp::MemoryBudget>(
          static_cast<std::size_t>(config_.max_documents_memory_mb) << 20)),
      // The end-to-end tests run sgsyncd with SGSYNC_STRICT_METRICS=1: a sample outside the metrics
      // table then stops the daemon there instead of going unnoticed (common/metrics.h).
      metrics_(metric::kFamilies, std::getenv("SGSYNC_STRICT_METRICS") != nullptr &&
                                      std::string_view(std::getenv("SGSYNC_STRICT_METRICS")) == "1") {}

Service::~Service() {
  Stop();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

// One sgsyncd per state database: two would lease each other's work. The lock is the kernel's
// (flock), so it goes away with the process however it ends.
Status Service::LockStateDatabase() {
  std::string path = config_.state_db + ".lock";
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return Fail(ErrorCode::kIo, "cannot open " + path + ": " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {0};
    ssize_t n = ::pread(lock_fd_, pid, sizeof pid - 1, 0);
    std::string holder = n > 0 ? std::string(pid, static_cast<std::size_t>(n)) : "?";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return Fail(ErrorCode::kUnavailable, "another sgsyncd (pid " + holder + ") is using " + config_.state_db);
  }
  std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, me.data(), me.size(), 0) < 0) {
    return Fail(ErrorCode::kIo, "cannot write " + path + ": " + std::strerror(errno));
  }
  return {};
}

Result<std::unique_ptr<Service>> Service::Create(config::DaemonConfig config) {
  std::unique_ptr<Service> s(new Service(std::move(config)));
  SGSYNC_TRY_STATUS(s->LockStateDatabase());
  state::StoreOptions so;
  so.max_attempts = s->config_.max_attempts;
  SGSYNC_TRY(s->store_, state::StateStore::Open(s->config_.state_db, so));
  // Leases left by a previous process (killed, or the machine lost power) are stale: this process
  // holds the lock now, so nobody else is working on them.
  SGSYNC_TRY(int stale, s->store_->ReleaseAllLeases());
  if (stale > 0)
    spdlog::warn("{} event(s) were in hand when sgsyncd last stopped; they are retried now", stale);
  SGSYNC_TRY_STATUS(s->BuildLinks());
  return s;
}

// Runs `run(engine, direction, options)` once for every link (`side_channels_only`: those with a side channel
// on) and enabled direction, naming each result "<link> <direction><suffix>". One direction failing
// does not keep the others from running; a link whose MISPs cannot be reached fails the whole call.
template <typename Stats, typename RunFn>
Result<std::vector<std::pair<std::string, Result<Stats>>>> Service::RunEachOnce(
    std::optional<Direction> only, bool full, bool side_channels_only, const std::string& suffix, RunFn run) {
  std::vector<std::pair<std::string, Result<Stats>>> out;
  for (auto& link : links_) {
    if (side_channels_only && !link->config.engine.side_channels_on()) continue;
    // A link that cannot start fails its own runs; the other links still run.
    Status discovered = Discover(*link);
    for (Direction d : {Direction::kPush, Direction::kPull}) {
      bool enabled = d == Direction::kPush ? link->config.push : link->config.pull;
      if (!enabled || (only && *only != d)) continue;
      if (!discovered.ok()) {
        out.emplace_back(link->config.name + " " + std::string(DirectionName(d)) + suffix,
                         discovered.error().Within("link " + link->config.name));
        continue;
      }
      engine::RunOptions ro;
      ro.full = full;
      ro.stop = &stopping_;
      ro.shared_index_max_age_seconds = SharedIndexMaxAge(link->config);
      out.emplace_back(link->config.name + " " + std::string(DirectionName(d)) + suffix,
                       run(*link->engine, d, ro));
    }
  }
  return out;
}

Result<std::vector<std::pair<std::string, Result<engine::RunStats>>>> Service::RunOnce(
    std::optional<Direction> only, bool full) {
  return RunEachOnce<engine::RunStats>(
      only, full, false, "",
      [](engine::LinkEngine& e, Direction d, const engine::RunOptions& ro) { return e.Run(d, ro); });
}

Result<std::vector<std::pair<std::string, Result<engine::SideChannelStats>>>> Service::RunSideChannelsOnce(
    std::optional<Direction> only, bool full) {
  return RunEachOnce<engine::SideChannelStats>(
      only, full, true, " sightings", [](engine::LinkEngine& e, Direction d, const engine::RunOptions& ro) {
        return e.RunSideChannels(d, ro);
      });
}

Status Service::Reload(config::DaemonConfig config) {
  if (config.state_db != config_.state_db) {
    return Fail(ErrorCode::kInvalidArgument, "state.database cannot change while sgsyncd runs (" +
                                                 config_.state_db + " -> " + config.state_db +
                                                 "); restart sgsyncd");
  }
  if (!Stop())
    return Fail(ErrorCode::kTimeout, "runs did not stop within the grace period; reload abandoned");
  std::unique_lock lock(links_mu_);
  config::DaemonConfig old = std::move(config_);
  config_ = std::move(config);
  if (auto s = BuildLinks(); !s.ok()) {
    config_ = std::move(old);
    SGSYNC_TRY_STATUS(BuildLinks());
    SGSYNC_TRY_STATUS(Start());
    return s;
  }
  return Start();
}

config::DaemonConfig Service::config() const {
  std::shared_lock lock(links_mu_);
  return config_;
}

Service::LinkRuntime* Service::Find(const std::string& name) {
  for (auto& l : links_) {
    if (l->config.name == name) return l.get();
  }
  return nullptr;
}

void Service::RecordOutcome(DirectionStatus& st, RunOutcome outcome, std::int64_t now) {
  if (outcome.succeeded()) {
    st.failing_since = 0;
  } else if (st.failing_since == 0) {
    st.failing_since = now;
  }
  st.last_outcome = std::move(outcome);
}

Service::Readiness Service::LinkReadiness() {
  Readiness r;
  for (const auto& l : Snapshot()) {
    bool failed = l.push.last_outcome.kind == RunOutcome::Kind::kError ||
                  l.pull.last_outcome.kind == RunOutcome::Kind::kError;
    if (l.link_id != 0) {
      ++r.started;
    } else if (failed) {
      ++r.failed;
    } else {
      ++r.pending;
    }
  }
  return r;
}

std::vector<Service::LinkSnapshot> Service::Snapshot() {
  std::shared_lock lock(links_mu_);
  std::vector<LinkSnapshot> out;
  for (auto& l : links_) {
    std::lock_guard g(l->mu);
    LinkSnapshot s;
    s.name = l->config.name;
    s.link_id = l->engine ? l->link_id : 0;
    s.local_version = l->local_version;
    s.remote_version = l->remote_version;
    s.push = l->status[0];
    s.pull = l->status[1];
    s.rule_notes = l->rule_notes;
    s.local_key_fingerprint = l->config.local.api_key.fingerprint();
    s.remote_key_fingerprint = l->config.remote.api_key.fingerprint();
    s.keys_loaded_at = std::max(l->config.local.api_key.loaded_at, l->config.remote.api_key.loaded_at);
    const engine::EngineOptions& eo = l->config.engine;
    s.sync_window_start = eo.WindowStart(static_cast<std::int64_t>(std::time(nullptr)));
    s.sync_window = config::DescribeSyncWindow(eo);
    out.push_back(std::move(s));
  }
  return out;
}

Status Service::SetPaused(const std::string& link, std::optional<Direction> d, bool paused,
                          const std::string& actor) {
  std::shared_lock lock(links_mu_);
  LinkRuntime* l = Find(link);
  if (l == nullptr) return Fail(ErrorCode::kNotFound, "no link named \"" + link + "\"");
  for (Direction dir : {Direction::kPush, Direction::kPull}) {
    if (d && *d != dir) continue;
    const Direction sd = dir == Direction::kPush ? Direction::kPush : Direction::kPull;
    // The store first: a pause that was not recorded is not reported as done.
    if (paused) {
      SGSYNC_TRY_STATUS(store_->SetPause(state::Pause{link, sd, actor, NowS()}));
    } else {
      SGSYNC_TRY_STATUS(store_->ClearPause(link, sd));
    }
    std::lock_guard g(l->mu);
    DirectionStatus& st = l->status[dir == Direction::kPush ? 0 : 1];
    st.paused = paused;
    st.paused_by = paused ? actor : "";
    st.paused_at = paused ? NowS() : 0;
  }
  if (!paused) {
    // A resumed direction runs at once rather than at its next look.
    std::lock_guard g(scheduler_mu_);
    for (Direction dir : {Direction::kPush, Direction::kPull}) {
      if (scheduler_ && (!d || *d == dir)) scheduler_->Wake(TaskName(link, dir));
    }
  }
  spdlog::info("link {} {}: {} by {}", link, d ? std::string(DirectionName(*d)) : "push and pull",
               paused ? "paused" : "resumed", actor);
  return {};
}

Result<engine::RunStats> Service::Trigger(const std::string& link, Direction d, bool full,
                                          const std::function<void(const engine::RunStats&)>& progress) {
  std::shared_lock lock(links_mu_);
  SGSYNC_TRY(LinkRuntime * l, Started(link, d));
  const int slot = d == Direction::kPush ? 0 : 1;
  engine::RunOptions ro;
  ro.full = full;
  ro.stop = &stopping_;
  ro.wait_if_running = true;
  ro.progress = progress;
  {
    std::lock_guard g(l->mu);
    l->status[slot].running = true;
    l->status[slot].last_run_started = NowS();
  }
  auto stats = l->engine->Run(d, ro);
  {
    std::lock_guard g(l->mu);
    auto& st = l->status[slot];
    st.running = false;
    st.last_run_ended = NowS();
    RecordOutcome(st, RunOutcome::Of(stats), NowS());
    if (stats.ok()) st.last_stats = *stats;
  }
  return stats;
}

Result<Service::LinkRuntime*> Service::Started(const std::string& link, std::optional<Direction> runs) {
  LinkRuntime* l = Find(link);
  if (l == nullptr) return Fail(ErrorCode::kNotFound, "no link named \"" + link + "\"");
  if (runs && !(*runs == Direction::kPush ? l->config.push : l->config.pull)) {
    return Fail(
        ErrorCode::kInvalidArgument,
        "link " + link + " does not run " + std::string(DirectionName(*runs)) + " (its directions setting)");
  }
  SGSYNC_TRY_STATUS(Discover(*l));
  return l;
}

Result<engine::RunPreview> Service::Preview(const std::string& link, Direction d, int limit) {
  std::shared_lock lock(links_mu_);
  SGSYNC_TRY(LinkRuntime * l, Started(link, std::nullopt));
  return l->engine->Preview(d, limit > 0 ? std::min(limit, 1000) : 100);
}

Result<engine::RunStats> Service::Resend(const std::string& link, Direction d, const std::string& uuid) {
  std::shared_lock lock(links_mu_);
  SGSYNC_TRY(LinkRuntime * l, Started(link, d));
  return l->engine->Resend(d, uuid);
}

Result<policy::Decision> Service::DryRun(const std::string& link, Direction d, const std::string& uuid) {
  std::shared_lock lock(links_mu_);
  SGSYNC_TRY(LinkRuntime * l, Started(link, std::nullopt));
  return l->engine->DryRun(d, uuid);
}

Result<std::int64_t> Service::LinkId(const std::string& link) {
  std::shared_lock lock(links_mu_);
  LinkRuntime* l = Find(link);
  if (l == nullptr) return Fail(ErrorCode::kNotFound, "no link named \"" + link + "\"");
  std::lock_guard g(l->mu);
  if (l->engine) return l->link_id;
  // Not started yet (its MISPs did not answer): the store may know it from earlier runs. It is only
  // looked up: registering here would take the news of a changed configuration from Discover, which
  // must see it to decide every event again.
  SGSYNC_TRY(auto id, store_->FindLink(l->config.name));
  if (!id) {
    return Fail(ErrorCode::kNotFound, "link " + link + " has not started yet (its MISPs have not answered)");
  }
  return *id;
}

void Service::CheckNewKeys(const config::LinkConfig& old, config::LinkConfig& fresh,
                           std::vector<std::string>& changes) {
  for (auto [before, after, which] : {std::tuple{&old.local, &fresh.local, "the member's MISP key"},
                                      std::tuple{&old.remote, &fresh.remote, "the Portal key"}}) {
    const std::string was = before->api_key.fingerprint(), now = after->api_key.fingerprint();
    if (was == now) {
      after->api_key = before->api_key;  // the same key: keep when it was loaded
      continue;
    }
    auto client = config::MakeClient(*after, nullptr, fresh.name + "/key-check", nullptr, nullptr);
    auto me = client.ok() ? (*client)->WhoAmI() : Result<misp::UserInfo>(client.error());
    std::string change = "link " + fresh.name + ": " + which + " changed (" + was + " -> " + now + ")";
    if (!me.ok() &&
        (me.error().code == ErrorCode::kUnauthenticated || me.error().code == ErrorCode::kPermissionDenied)) {
      change += " but " + after->url + " refuses the new key (" + me.error().message +
                "): the old key stays in use";
      after->api_key = before->api_key;
      spdlog::error("{}", change);
    } else if (!me.ok()) {
      change += "; it could not be tried now (" + me.error().ToString() + "): it is used from now on";
      spdlog::warn("{}", change);
    } else {
      change += "; " + after->url + " accepts it (" + me->email + "): reconnecting with it";
      spdlog::info("{}", change);
    }
    changes.push_back(change);
  }
}

Result<std::vector<std::string>> Service::ReloadFromFile() {
  std::string path = config().path;
  SGSYNC_TRY(config::DaemonConfig fresh, config::LoadConfig(path));
  std::vector<std::string> changes;
  config::DaemonConfig old = config();
  for (auto& l : fresh.links) {
    for (const auto& o : old.links) {
      if (o.name == l.name) CheckNewKeys(o, l, changes);
    }
  }
  std::string a = json::serialize(config::Redacted(old)), b = json::serialize(config::Redacted(fresh));
  for (const auto& l : fresh.links) {
    bool found = false;
    for (const auto& o : old.links) {
      if (o.name != l.name) continue;
      found = true;
      if (config::SharingIdentity(o) != config::SharingIdentity(l))
        changes.push_back("link " + l.name + ": sharing configuration changed (cursors restart)");
      else if (LinkText(o) != LinkText(l))
        changes.push_back("link " + l.name + ": settings changed");
    }
    if (!found) changes.push_back("link " + l.name + ": added");
  }
  for (const auto& o : old.links) {
    bool kept = false;
    for (const auto& l : fresh.links) kept = kept || l.name == o.name;
    if (!kept) changes.push_back("link " + o.name + ": removed");
  }
  if (a == b && changes.empty()) changes.push_back("nothing changed");
  SGSYNC_TRY_STATUS(Reload(std::move(fresh)));
  return changes;
}

std::uint16_t Service::metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }

}  // namespace sgsync::daemon
