// daemon/link_runtime.h: one configured link inside the Service, and the clock the scheduler uses
// (private to daemon/: service.cc, discovery.cc, scheduler.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/service.h"

namespace sgsync::daemon {

struct Service::LinkRuntime {
  config::LinkConfig config;
  std::unique_ptr<connector::MispClient> local, remote;
  // The two MISPs' new-tag gates, shared with the other links writing there (Service::GateFor).
  engine::NewTagGates new_tags;
  std::unique_ptr<engine::LinkEngine> engine;  // set once the MISPs told what the config does not
  std::int64_t link_id = 0;
  std::string local_version, remote_version;  // MISP versions at both ends (servers/getVersion)
  std::vector<std::string> rule_notes;        // numeric rule ids and what they stand for
  std::mutex mu;                              // guards engine creation and status
  DirectionStatus status[2];
  // The current wait after failures of push, pull and the side channels (daemon/scheduler.cc);
  // each touched only by its own task's turn.
  std::int64_t backoff_ms[3] = {0, 0, 0};
  // Push and pull: the last turn ended its time slice with work queued, so the next continues a
  // backlog (TaskScheduler's lower class, the full run_time_slice_seconds).
  bool continuing[2] = {false, false};
};

inline std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::int64_t NowS() { return NowMs() / 1000; }

// The first wait after a failed run; it doubles up to the link's interval.
inline constexpr std::int64_t kFirstBackoffMs = 5000;

// How old the events channel's index may be for the sightings channel to use it instead of asking
// again (engine::RunOptions::shared_index_max_age_seconds): two of the link's cycles. Older, the
// events loop is busy with a backlog, and sightings ask for themselves rather than wait for it.
inline std::int64_t SharedIndexMaxAge(const config::LinkConfig& link) { return 2 * link.interval_seconds + 10; }

}  // namespace sgsync::daemon
