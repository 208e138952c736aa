#include "daemon/service.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

#include "common/encoding.h"
#include "config/client.h"

namespace sgsync::daemon {

namespace {

namespace json = boost::json;

// One link's settings as text (secrets redacted), to compare two configuration files.
std::string LinkText(const config::LinkConfig& link) {
  config::DaemonConfig one;
  one.links.push_back(link);
  return json::serialize(config::Redacted(one));
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t NowS() { return NowMs() / 1000; }

constexpr std::int64_t kFirstBackoffMs = 5000;

}  // namespace

struct Service::LinkRuntime {
  config::LinkConfig config;
  std::unique_ptr<connector::MispClient> local, remote;
  std::unique_ptr<engine::LinkEngine> engine;  // set once the MISPs told what the config does not
  std::int64_t link_id = 0;
  std::string local_version, remote_version;  // MISP versions at both ends (servers/getVersion)
  std::vector<std::string> rule_notes;        // numeric rule ids and what they stand for
  std::mutex mu;                              // guards engine creation and status
  DirectionStatus status[2];
};

Service::Service(config::DaemonConfig config)
    : config_(std::move(config)),
      documents_budget_(std::make_shared<misp::MemoryBudget>(
          static_cast<std::size_t>(config_.max_documents_memory_mb) << 20)) {
  engine::DeclareMetrics(metrics_);
}

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

// One limit per MISP (by URL, case and a trailing slash ignored), shared by every link and run that
// talks to it; its size is the smallest max_in_flight configured for that URL. Kept across reloads
// (a run in flight still holds its slot), resized only by a restart.
namespace {
std::string EndpointKey(const std::string& url) {
  std::string key = AsciiLower(url);
  while (!key.empty() && key.back() == '/') key.pop_back();
  return key;
}
}  // namespace

std::shared_ptr<connector::EndpointLimit> Service::LimitFor(const config::MispEndpointConfig& e) {
  const std::string key = EndpointKey(e.url);
  int want = e.max_in_flight;
  for (const auto& l : config_.links) {
    for (const auto* other : {&l.local, &l.remote})
      if (EndpointKey(other->url) == key) want = std::min(want, other->max_in_flight);
  }
  auto& slot = endpoint_limits_[key];
  if (!slot) slot = std::make_shared<connector::EndpointLimit>(want);
  return slot;
}

Status Service::BuildLinks() {
  links_.clear();
  for (const auto& lc : config_.links) {
    auto rt = std::make_unique<LinkRuntime>();
    rt->config = lc;
    SGSYNC_TRY(rt->local,
               config::MakeClient(lc.local, &metrics_, lc.name + "/local", documents_budget_, LimitFor(lc.local)));
    SGSYNC_TRY(rt->remote,
               config::MakeClient(lc.remote, &metrics_, lc.name + "/remote", documents_budget_, LimitFor(lc.remote)));
    rt->status[0].enabled = lc.push;
    rt->status[1].enabled = lc.pull;
    links_.push_back(std::move(rt));
  }
  SGSYNC_TRY(auto pauses, store_->ListPauses());
  for (const auto& p : pauses) {
    LinkRuntime* l = Find(p.link);
    if (l == nullptr) continue;  // a link no longer configured: its pause waits, should it come back
    DirectionStatus& st = l->status[p.direction == Direction::kPush ? 0 : 1];
    st.paused = true;
    st.paused_by = p.paused_by;
    st.paused_at = p.paused_at;
  }
  return {};
}

// Whose key sgsync holds for the Portal, checked before anything moves (docs/security.md): a key of
// another organisation's user would pull that organisation's own events (distribution 0 included)
// into the member's MISP and push the member's events as that organisation's. MISP's own sync has
// the same hole; sgsync closes it.
Status CheckPortalAccount(const config::LinkConfig& lc, const misp::UserInfo& me,
                          const misp::ServerVersion& version, const policy::OrgRef& member,
                          connector::MispClient& portal) {
  auto who = [&] {
    return (me.email.empty() ? std::string("a user") : me.email) + " of " +
           (me.org_name.empty() ? me.org_uuid : me.org_name + " (" + me.org_uuid + ")");
  };
  const std::string member_name = member.name.empty() ? member.uuid : member.name + " (" + member.uuid + ")";
  if (!policy::SameText(me.org_uuid, member.uuid)) {
    return Fail(ErrorCode::kPermissionDenied,
                "the Portal key belongs to " + who() + ", not to a user of the member's organisation " +
                    member_name +
                    ": refused (it would bring that organisation's own events in and send the member's as "
                    "its own). Use the key of the sync user the secretariat made for the member's organisation",
                "link " + lc.name + " remote.api_key");
  }
  if (!version.perm_sync) {
    return Fail(ErrorCode::kPermissionDenied,
                "the Portal account " + who() + " has no perm_sync (role " +
                    (me.role_name.empty() ? std::string("unknown") : me.role_name) +
                    "): sgsync runs only with a sync user's key; ask the Portal's administrators for one",
                "link " + lc.name + " remote.api_key");
  }
  if (me.Has("perm_site_admin") && !lc.remote.allow_site_admin) {
    return Fail(ErrorCode::kPermissionDenied,
                "the Portal account " + who() +
                    " is a site admin of the Portal: refused, a sync user's key is what sgsync needs (set "
                    "remote.allow_site_admin = true to accept it anyway, docs/configuration.md)",
                "link " + lc.name + " remote.api_key");
  }
  auto org = portal.ViewOrganisation(lc.remote.org_uuid);
  if (!org.ok()) {
    if (org.error().code == ErrorCode::kUnavailable || org.error().code == ErrorCode::kTimeout)
      return org.error();
    spdlog::warn("link {}: remote.org_uuid {} could not be checked with the Portal: {}", lc.name,
                 lc.remote.org_uuid, org.error().ToString());
    return {};
  }
  const std::string where = "link " + lc.name + " remote.org_uuid";
  if (!*org)
    return Fail(ErrorCode::kInvalidArgument,
                lc.remote.org_uuid + " is not an organisation the Portal knows: it must be the Portal's own",
                where);
  if (policy::SameText((*org)->uuid, member.uuid))
    return Fail(ErrorCode::kInvalidArgument,
                lc.remote.org_uuid + " is the member's own organisation, not the Portal's", where);
  if (!(*org)->local)
    return Fail(ErrorCode::kInvalidArgument,
                lc.remote.org_uuid + " (" + (*org)->name +
                    ") is known to the Portal but is not one of its own organisations (local: false)",
                where);
  return {};
}

// What the configuration leaves to the MISPs: who sgsync is on the Portal, and the member's host
// organisation when not configured (users/view/me on each side).
Status Service::Discover(LinkRuntime& link) {
  std::lock_guard lock(link.mu);
  if (link.engine) return {};
  const auto& lc = link.config;
  SGSYNC_TRY(misp::UserInfo remote_me, link.remote->WhoAmI());
  SGSYNC_TRY(misp::ServerVersion remote_version, link.remote->GetVersion());
  SGSYNC_TRY(misp::ServerVersion local_version, link.local->GetVersion());
  // MISP's own push logs a version gap and goes on (spec 12 case 37); so does sgsync.
  if (auto gap = misp::CompareVersions(local_version, remote_version)) {
    if (gap->error) {
      spdlog::error("link {}: {} (docs/operations.md)", lc.name, gap->message);
    } else {
      spdlog::warn("link {}: {}", lc.name, gap->message);
    }
  }
  link.local_version = local_version.version;
  link.remote_version = remote_version.version;
  policy::OrgRef local_org{lc.local.org_uuid, lc.local.org_name};
  if (local_org.uuid.empty()) {
    SGSYNC_TRY(misp::UserInfo local_me, link.local->WhoAmI());
    local_org = {local_me.org_uuid, local_me.org_name};
  }
  SGSYNC_TRY_STATUS(CheckPortalAccount(lc, remote_me, remote_version, local_org, *link.remote));
  SGSYNC_TRY(policy::Link plink,
             config::MakePolicyLink(lc, policy::OrgRef{remote_me.org_uuid, remote_me.org_name}, local_org));
  plink.remote_version = remote_version.version;
  // Rules pasted from MISP's server settings name tags and organisations by id (issue 16 item 1).
  std::vector<std::string> notes;
  for (bool push : {true, false}) {
    policy::FilterRules& rules = push ? plink.push_rules : plink.pull_rules;
    if (!policy::HasRuleIds(rules)) continue;
    connector::MispClient& owner = push ? *link.local : *link.remote;
    const std::string misp = push ? "the member's MISP (" + lc.local.url + ")" : "the Portal (" + lc.remote.url + ")";
    policy::RuleIdNames names;
    SGSYNC_TRY(auto tags, owner.Tags());
    for (const auto& t : tags) names.tags[t.id] = t.name;
    SGSYNC_TRY(auto orgs, owner.Organisations());
    for (const auto& o : orgs) {
      names.orgs[o.id] = o.uuid;
      names.org_names[o.id] = o.name;
    }
    auto resolved = policy::ResolveRuleIds(rules, names, push ? "push_rules" : "pull_rules", misp);
    if (!resolved.ok()) return resolved.error().Within("link " + lc.name);
    for (auto& n : *resolved) {
      spdlog::info("link {}: {} ({})", lc.name, n, misp);
      notes.push_back(n + " (" + misp + ")");
    }
  }
  link.rule_notes = std::move(notes);
  SGSYNC_TRY(state::LinkRegistration reg, store_->RegisterLink(lc.name, config::SharingIdentity(lc)));
  if (reg.identity_changed && !reg.is_new) {
    // Decisions taken under the old configuration are taken again: withheld events that are now
    // eligible are sent; sent ones that no longer are are reported (MISP cannot retract them).
    SGSYNC_TRY_STATUS(store_->ForgetSeen(reg.id));
    spdlog::warn(
        "link {}: its sharing configuration changed since the last run: every event is decided again "
        "(docs/operations.md)",
        lc.name);
  }
  link.link_id = reg.id;
  engine::EngineOptions eo;
  eo.overlap_seconds = lc.overlap_seconds;
  eo.max_in_flight = std::min(lc.local.max_in_flight, lc.remote.max_in_flight);
  eo.remote_perm_sync = remote_version.perm_sync;
  eo.tombstones = lc.tombstones;
  eo.on_partial_write = lc.on_partial_write == "retry"         ? engine::PartialWrite::kRetry
                        : lc.on_partial_write == "dead_letter" ? engine::PartialWrite::kDeadLetter
                                                               : engine::PartialWrite::kAccept;
  switch (lc.conflict_policy) {
    case config::ConflictPolicy::kPreferNewer:
      eo.conflict_policy = engine::ConflictPolicy::kPreferNewer;
      break;
    case config::ConflictPolicy::kPreferPortal:
      eo.conflict_policy = engine::ConflictPolicy::kPreferPortal;
      break;
    case config::ConflictPolicy::kPreferLocal:
      eo.conflict_policy = engine::ConflictPolicy::kPreferLocal;
      break;
    case config::ConflictPolicy::kManual:
      eo.conflict_policy = engine::ConflictPolicy::kManual;
      break;
  }
  eo.sightings = lc.sightings;
  eo.proposals = lc.proposals;
  eo.analyst_data = lc.analyst_data;
  eo.remote_perm_analyst_data = remote_version.perm_analyst_data;
  eo.galaxy_clusters = lc.galaxy_clusters;
  eo.remote_perm_galaxy_editor = remote_version.perm_galaxy_editor;
  eo.sightings_policy.policy = lc.sightings_policy;
  eo.sightings_policy.anonymise = lc.sightings_anonymise;
  eo.sightings_policy.anonymise_as = policy::OrgRef{lc.sightings_anonymise_as, ""};
  eo.sightings_policy.host_org_uuid = local_org.uuid;
  if (!remote_version.perm_sync && lc.push) {
    spdlog::error("link {}: the Portal account has no perm_sync: push runs are refused until it has one",
                  lc.name);
  }
  link.engine = std::make_unique<engine::LinkEngine>(lc.name, reg.id, std::move(plink), eo, *link.local,
                                                     *link.remote, *store_, &metrics_);
  spdlog::info("link {}: ready (sgsync is {} of {} on the Portal; local organisation {})", lc.name,
               remote_me.email.empty() ? "a user" : remote_me.email, remote_me.org_name,
               local_org.name.empty() ? local_org.uuid : local_org.name);
  return {};
}

// Runs `run(engine, direction, options)` once for every link (`sightings_only`: those with sightings
// on) and enabled direction, naming each result "<link> <direction><suffix>". One direction failing
// does not keep the others from running; a link whose MISPs cannot be reached fails the whole call.
template <typename Stats, typename RunFn>
Result<std::vector<std::pair<std::string, Result<Stats>>>> Service::RunEachOnce(
    std::optional<Direction> only, bool full, bool sightings_only, const std::string& suffix,
    RunFn run) {
  std::vector<std::pair<std::string, Result<Stats>>> out;
  for (auto& link : links_) {
    if (sightings_only && !link->config.sightings) continue;
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

Result<std::vector<std::pair<std::string, Result<engine::SightingsStats>>>> Service::RunSightingsOnce(
    std::optional<Direction> only, bool full) {
  return RunEachOnce<engine::SightingsStats>(
      only, full, true, " sightings",
      [](engine::LinkEngine& e, Direction d, const engine::RunOptions& ro) {
        return e.RunSightings(d, ro);
      });
}

// Sightings run on their own thread per link, so a backlog of them never holds up events
// (MISP #5943, #10881): push, then pull, every interval, backing off while they fail.
void Service::SightingsLoop(LinkRuntime& link) {
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
        auto stats = link.engine->RunSightings(d, ro);
        if (!stats.ok() || stats->failed_events > 0 || stats->proposals_failed > 0 ||
            stats->analyst_data_failed > 0 || stats->clusters_failed > 0) {
          failed = true;
          if (!stats.ok()) {
            spdlog::warn("link {} {} sightings: {}", lc.name, DirectionName(d),
                         stats.error().ToString());
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
  const auto& lc = link.config;
  const std::string dir(DirectionName(d));
  const int slot = d == Direction::kPush ? 0 : 1;
  std::mt19937_64 rng(std::random_device{}());
  std::int64_t backoff_ms = 0;
  auto fail_wait = [&](const std::string& what) {
    backoff_ms = backoff_ms == 0 ? kFirstBackoffMs : std::min(backoff_ms * 2, lc.interval_seconds * 1000);
    // Full jitter keeps several links from retrying a recovering Portal in step.
    std::int64_t wait =
        backoff_ms / 2 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(backoff_ms / 2 + 1));
    spdlog::warn("link {} {}: {}; next try in {:.1f} s", lc.name, dir, what, wait / 1000.0);
    {
      std::lock_guard lock(link.mu);
      link.status[slot].last_outcome = "error: " + what;
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
      fail_wait("cannot start: " + s.error().ToString());
      continue;
    }
    auto cursor = store_->GetCursor(
        link.link_id, d == Direction::kPush ? Direction::kPush : Direction::kPull,
        state::CursorKind::kEvents);
    if (!cursor.ok()) {
      // Without the cursor sgsyncd cannot tell whether a full reconciliation is due: it does not
      // guess (a skipped reconciliation would be silent); it reports and tries again.
      fail_wait("cannot read the cursor: " + cursor.error().ToString());
      continue;
    }
    bool full = lc.full_reconciliation_seconds > 0 &&
                NowS() - cursor->last_full_reconciliation >= lc.full_reconciliation_seconds;
    {
      std::lock_guard lock(link.mu);
      link.status[slot].running = true;
      link.status[slot].last_run_started = NowS();
    }
    engine::RunOptions ro;
    ro.full = full;
    ro.stop = &stopping_;
    auto stats = link.engine->Run(d, ro);
    std::string outcome;
    if (!stats.ok()) {
      outcome = "error: " + stats.error().ToString();
    } else if (stats->aborted) {
      outcome = "aborted: " + stats->abort_reason;
    } else {
      outcome = stats->not_modified ? "not_modified" : "ok";
      if (full && cursor.ok()) {
        auto m = store_->MarkFullReconciliation(
            link.link_id, d == Direction::kPush ? Direction::kPush : Direction::kPull,
            state::CursorKind::kEvents, NowS());
        if (!m.ok()) spdlog::error("link {} {}: {}", lc.name, dir, m.error().ToString());
      }
    }
    {
      std::lock_guard lock(link.mu);
      auto& st = link.status[slot];
      st.running = false;
      st.last_run_ended = NowS();
      st.last_outcome = outcome;
      if (stats.ok()) st.last_stats = *stats;
    }
    if (stats.ok() && !stats->not_modified) {
      spdlog::info("link {} {}{}: listed {}, sent {}, already there {}, skipped {}, echo {}, failed {}",
                   lc.name, dir, full ? " (full)" : "", stats->listed, stats->sent, stats->already,
                   stats->skipped, stats->echo, stats->failed);
    }
    if (stopping_) break;
    if (!stats.ok() || stats->aborted) {
      fail_wait(outcome);
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

Status Service::Start() {
  stopping_ = false;
  if (!config_.metrics_listen.empty() && !metrics_server_) {
    SGSYNC_TRY(config::HostPort listen, config::ParseHostPort(config_.metrics_listen));
    SGSYNC_TRY(metrics_server_,
               httpd::HttpServer::Start(
                   listen.host, listen.port, [this](const httpd::HttpRequest& r) {
                     httpd::HttpResponse resp;
                     if (r.target != "/metrics" || (r.method != "GET" && r.method != "HEAD")) {
                       resp.status = 404;
                       resp.body = "sgsyncd serves /metrics only\n";
                       return resp;
                     }
                     resp.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
                     resp.body = metrics_.Render();
                     return resp;
                   }));
    spdlog::info("metrics on http://{}:{}/metrics", listen.host,
                 metrics_server_->port());
  }
  for (auto& link : links_) {
    for (Direction d : {Direction::kPush, Direction::kPull}) {
      if (!(d == Direction::kPush ? link->config.push : link->config.pull)) continue;
      ++running_loops_;
      threads_.emplace_back([this, l = link.get(), d] {
        Loop(*l, d);
        --running_loops_;
      });
    }
    if (link->config.sightings && (link->config.push || link->config.pull)) {
      ++running_loops_;
      threads_.emplace_back([this, l = link.get()] {
        SightingsLoop(*l);
        --running_loops_;
      });
    }
  }
  return {};
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

Service::Readiness Service::LinkReadiness() {
  Readiness r;
  for (const auto& l : Snapshot()) {
    bool failed = l.push.last_outcome.rfind("error", 0) == 0 || l.pull.last_outcome.rfind("error", 0) == 0;
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
  wake_.notify_all();
  spdlog::info("link {} {}: {} by {}", link, d ? std::string(DirectionName(*d)) : "push and pull",
               paused ? "paused" : "resumed", actor);
  return {};
}

Result<engine::RunStats> Service::Trigger(const std::string& link, Direction d, bool full,
                                          const std::function<void(const engine::RunStats&)>& progress) {
  std::shared_lock lock(links_mu_);
  LinkRuntime* l = Find(link);
  if (l == nullptr) return Fail(ErrorCode::kNotFound, "no link named \"" + link + "\"");
  bool enabled = d == Direction::kPush ? l->config.push : l->config.pull;
  if (!enabled) {
    return Fail(ErrorCode::kInvalidArgument, "link " + link + " does not run " +
                                                 std::string(DirectionName(d)) +
                                                 " (its directions setting)");
  }
  SGSYNC_TRY_STATUS(Discover(*l));
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
    st.last_outcome = !stats.ok()      ? "error: " + stats.error().ToString()
                      : stats->aborted ? "aborted: " + stats->abort_reason
                                       : (stats->not_modified ? "not_modified" : "ok");
    if (stats.ok()) st.last_stats = *stats;
  }
  return stats;
}

Result<policy::Decision> Service::DryRun(const std::string& link, Direction d,
                                         const std::string& uuid) {
  std::shared_lock lock(links_mu_);
  LinkRuntime* l = Find(link);
  if (l == nullptr) return Fail(ErrorCode::kNotFound, "no link named \"" + link + "\"");
  SGSYNC_TRY_STATUS(Discover(*l));
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

Result<std::vector<std::string>> Service::ReloadFromFile() {
  std::string path = config().path;
  SGSYNC_TRY(config::DaemonConfig fresh, config::LoadConfig(path));
  std::vector<std::string> changes;
  config::DaemonConfig old = config();
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
  if (a == b) changes.push_back("nothing changed");
  SGSYNC_TRY_STATUS(Reload(std::move(fresh)));
  return changes;
}

std::uint16_t Service::metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }

}  // namespace sgsync::daemon
