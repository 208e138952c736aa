// sgsyncd: the SecureGRID federation sync daemon.
//
//   sgsyncd --config /etc/sgsync/sgsync.toml            run every link until SIGTERM
//   sgsyncd --config F --check                          validate the configuration and exit
//   sgsyncd --config F --once [--direction D] [--full]  one run per link and direction, then exit
//
// Signals: SIGTERM and SIGINT stop (runs finish the events in hand within the grace period);
// SIGHUP reloads the configuration (a bad new file is reported and the old one kept).
// Exit codes: 0 ok, 1 a run or the start failed, 2 a bad command line or configuration.
#include <pthread.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/core_dumps.h"
#include "common/log_context.h"
#include "daemon/admin_server.h"
#include "daemon/service.h"
#include "daemon/systemd_notify.h"

namespace {

// journald reads a "<N>" prefix on a line as its syslog priority (sd-daemon(3)), when it is the
// one reading standard error (it sets JOURNAL_STREAM then).
int SyslogPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;
    case spdlog::level::info:
      return 6;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::err:
      return 3;
    default:
      return 2;
  }
}

bool UnderJournald() { return std::getenv("JOURNAL_STREAM") != nullptr; }

// The line's context (common/log_context.h) as " link=... direction=... run_id=... event_uuid=...".
class ContextFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    const sgsync::LogContext& c = sgsync::CurrentLogContext();
    std::string text;
    for (const auto& [key, value] : sgsync::Fields(c)) {
      if (!value->empty()) text += std::string(" ") + key + "=" + *value;
    }
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::custom_flag_formatter> clone() const override {
    return std::make_unique<ContextFlag>();
  }
};

class PriorityFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string text = "<" + std::to_string(SyslogPriority(msg.level)) + ">";
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::custom_flag_formatter> clone() const override {
    return std::make_unique<PriorityFlag>();
  }
};

// One JSON object per line: {"time", "level", "message"}, and the context's non-empty fields
// ("link", "direction", "run_id", "event_uuid"); under journald, "<N>" first for the priority.
class JsonLinesSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    auto t = std::chrono::system_clock::to_time_t(msg.time);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    boost::json::object line{{"time", when},
                             {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                                                   spdlog::level::to_string_view(msg.level).size())},
                             {"message", std::string(msg.payload.data(), msg.payload.size())}};
    const sgsync::LogContext& c = sgsync::CurrentLogContext();
    for (const auto& [key, value] : sgsync::Fields(c)) {
      if (!value->empty()) line[key] = *value;
    }
    std::string text = (journald_ ? "<" + std::to_string(SyslogPriority(msg.level)) + ">" : std::string()) +
                       boost::json::serialize(line) + "\n";
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  const bool journald_ = UnderJournald();
};

void SetUpLogging(const sgsync::config::DaemonConfig& c) {
  std::shared_ptr<spdlog::logger> logger;
  if (c.log_format == "json") {
    logger = std::make_shared<spdlog::logger>("sgsyncd", std::make_shared<JsonLinesSink>());
  } else {
    logger = std::make_shared<spdlog::logger>("sgsyncd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<PriorityFlag>('P').add_flag<ContextFlag>('K');
    // The journal stamps each line itself: there, the priority prefix instead of the time.
    formatter->set_pattern(UnderJournald() ? "%P%l %v%K" : "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v%K");
    logger->set_formatter(std::move(formatter));
  }
  logger->set_level(spdlog::level::from_str(c.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

// A run that could not be made: logged, and one JSON line {"run", "error"} on standard output.
int PrintFailedRun(const std::string& what, const sgsync::Error& e) {
  spdlog::error("{}: {}", what, e.ToString());
  std::printf("%s\n",
              boost::json::serialize(boost::json::object{{"run", what}, {"error", e.ToString()}}).c_str());
  return 1;
}

std::string StatsLine(const std::string& what, const sgsync::engine::RunStats& s) {
  boost::json::object reasons;
  for (const auto& [k, v] : s.skipped_by_reason) reasons[k] = v;
  boost::json::object o{{"run", what},
                        {"not_modified", s.not_modified},
                        {"listed", s.listed},
                        {"queued", s.queued},
                        {"fetched", s.fetched},
                        {"sent", s.sent},
                        {"already", s.already},
                        {"skipped", s.skipped},
                        {"echo", s.echo},
                        {"failed", s.failed},
                        {"conflicts", s.conflicts},
                        {"aborted", s.aborted},
                        {"cursor", s.cursor},
                        {"late_arrivals", s.late_arrivals},
                        {"held", s.held},
                        {"partial", s.partial},
                        {"deleted_at_source", s.deleted_at_source},
                        {"tombstoned", s.tombstoned},
                        {"no_longer_eligible", s.no_longer_eligible},
                        {"skipped_by_reason", std::move(reasons)}};
  return boost::json::serialize(o);
}

}  // namespace

int main(int argc, char** argv) {
  // Before any key is read: a core file must never carry one (common/core_dumps.h).
  if (!sgsync::ForbidCoreDumps())
    std::fprintf(stderr, "sgsyncd: cannot forbid core dumps: %s\n", std::strerror(errno));
  CLI::App app{"sgsyncd: exchanges MISP events between a member's MISP and the SecureGRID Portal"};
  std::string config_path, direction;
  bool check = false, once = false, full = false;
  app.add_option("--config,-c", config_path, "the TOML configuration (deploy/sgsync.example.toml)")
      ->required();
  app.add_flag("--check", check, "validate the configuration (files, keys, rules) and exit");
  app.add_flag("--once", once,
               "run every link once (push, then pull), print the results as JSON lines, exit");
  app.add_option("--direction", direction, "with --once: only push or only pull")
      ->check(CLI::IsMember({"push", "pull"}));
  app.add_flag("--full", full, "with --once: list from the beginning instead of the cursor");
  app.set_version_flag("--version", std::string("sgsyncd ") + SGSYNC_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  auto config = sgsync::config::LoadConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "sgsyncd: %s\n", config.error().message.c_str());
    return 2;
  }
  if (check) {
    std::printf("%s: configuration OK (%zu link%s)\n", config_path.c_str(), config->links.size(),
                config->links.size() == 1 ? "" : "s");
    return 0;
  }
  SetUpLogging(*config);

  // Signals are taken by one thread with sigwait, so the scheduler threads never see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto service = sgsync::daemon::Service::Create(*config);
  if (!service.ok()) {
    spdlog::error("cannot start: {}", service.error().ToString());
    return 1;
  }
  if (once) {
    std::optional<sgsync::Direction> only;
    if (direction == "push") only = sgsync::Direction::kPush;
    if (direction == "pull") only = sgsync::Direction::kPull;
    auto results = (*service)->RunOnce(only, full);
    if (!results.ok()) {
      spdlog::error("{}", results.error().ToString());
      return 1;
    }
    int rc = 0;
    for (const auto& [what, stats] : *results) {
      if (!stats.ok()) {
        rc = PrintFailedRun(what, stats.error());
        continue;
      }
      std::printf("%s\n", StatsLine(what, *stats).c_str());
      if (stats->failed > 0 || stats->aborted) rc = 1;
    }
    auto sightings = (*service)->RunSideChannelsOnce(only, full);
    if (!sightings.ok()) {
      spdlog::error("{}", sightings.error().ToString());
      return 1;
    }
    for (const auto& [what, stats] : *sightings) {
      if (!stats.ok()) {
        rc = PrintFailedRun(what, stats.error());
        continue;
      }
      // One line per link and direction: the sightings' counters, then each other channel's under
      // its prefix (docs/operations.md, "--once").
      const sgsync::engine::SightingsStats& s = stats->sightings;
      boost::json::object o{{"run", what},
                            {"not_modified", s.not_modified},
                            {"events", s.events},
                            {"sent", s.sent},
                            {"already", s.already},
                            {"withheld", s.withheld},
                            {"failed_events", s.failed_events},
                            {"cursor", s.cursor}};
      for (const auto& [prefix, channel] :
           {std::pair{"proposals", &stats->proposals}, std::pair{"analyst_data", &stats->analyst_data},
            std::pair{"clusters", &stats->clusters}}) {
        o[std::string(prefix) + "_sent"] = channel->sent;
        o[std::string(prefix) + "_withheld"] = channel->withheld;
        o[std::string(prefix) + "_failed"] = channel->failed;
      }
      std::printf("%s\n", boost::json::serialize(o).c_str());
      if (stats->any_failed()) rc = 1;
    }
    return rc;
  }
  if (auto s = (*service)->Start(); !s.ok()) {
    spdlog::error("cannot start: {}", s.error().ToString());
    return 1;
  }
  auto admin = sgsync::daemon::AdminServer::Start(**service, *config);
  if (!admin.ok()) {
    spdlog::error("cannot start the admin API: {}", admin.error().ToString());
    (*service)->Stop();
    return 1;
  }
  spdlog::info("sgsyncd {} running {} link(s) from {}", SGSYNC_VERSION, config->links.size(), config_path);
  // systemd (Type=notify): ready once the admin socket listens and every link has started or been
  // reported failed (or a minute has passed); then keep-alives while the scheduler answers.
  auto readiness = [&] {
    auto r = (*service)->LinkReadiness();
    return std::to_string(r.started) + " link(s) running, " + std::to_string(r.failed) +
           " failed to start, " + std::to_string(r.pending) + " starting";
  };
  sgsync::daemon::Notify("STATUS=starting " + std::to_string(config->links.size()) + " link(s)");
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       (*service)->LinkReadiness().pending > 0 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  sgsync::daemon::Notify("READY=1\nSTATUS=" + readiness());
  std::atomic<bool> stopping{false};
  std::jthread watchdog;
  if (auto interval = sgsync::daemon::WatchdogInterval()) {
    watchdog = std::jthread([&, every = *interval / 2] {
      auto next = std::chrono::steady_clock::now() + every;
      while (!stopping) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        if (std::chrono::steady_clock::now() < next) continue;
        next = std::chrono::steady_clock::now() + every;
        // Answered only while the scheduler's locks can be taken: a wedged daemon is restarted.
        sgsync::daemon::Notify("WATCHDOG=1\nSTATUS=" + readiness());
      }
    });
  }
  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      sgsync::daemon::Notify("RELOADING=1\nSTATUS=reloading " + config_path);
      auto fresh = sgsync::config::LoadConfig(config_path);
      if (!fresh.ok()) {
        spdlog::error("reload refused, the running configuration stays: {}", fresh.error().message);
        continue;
      }
      if (auto s = (*service)->Reload(std::move(*fresh)); !s.ok()) {
        spdlog::error("reload failed: {}", s.error().ToString());
      } else {
        spdlog::info("configuration reloaded from {}", config_path);
      }
      sgsync::daemon::Notify("READY=1\nSTATUS=" + readiness());
      continue;
    }
    spdlog::info("{} received: finishing the events in hand (up to {} s)",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT", config->shutdown_grace_seconds);
    sgsync::daemon::Notify("STOPPING=1\nSTATUS=finishing the events in hand");
    stopping = true;
    // The runs stop first: a TriggerSync in progress then ends quickly, so the admin server's
    // shutdown (which waits for its calls) does not wait for a whole run.
    bool clean = (*service)->Stop();
    (*admin)->Stop();
    spdlog::info("stopped{}", clean ? "" : " (some runs abandoned; their work is retried at the next start)");
    if (!clean) std::_Exit(0);  // detached runs must not outlive the objects they use
    return 0;
  }
}
