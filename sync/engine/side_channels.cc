// LinkEngine::RunSideChannels: the channels beside the events (engine.h).
#include <spdlog/spdlog.h>

#include <ctime>
#include <future>

#include "common/log_context.h"
#include "sync/engine/engine.h"

namespace sgsync::engine {

Result<SideChannelStats> LinkEngine::RunSideChannels(Direction d, const RunOptions& options) {
  std::unique_lock running(side_channels_run_, std::defer_lock);
  if (options.wait_if_running) {
    running.lock();
  } else if (!running.try_lock()) {
    return Fail(ErrorCode::kUnavailable,
                "a sightings and side-channel run of link " + name_ + " is already in progress");
  }
  const Route route = RouteFor(d);
  ScopedLogContext context({name_, std::string(route.name()), NewRunId(), ""});
  const LogContext parent = CurrentLogContext();
  SideChannelStats stats;
  // Proposals, clusters and analyst data are independent of one another: each is asked for at
  // the same time, so a cycle with nothing new waits for one round trip, not three. Each writes
  // only its own stats; a channel that fails does not hold up the others or the sightings.
  struct Channel {
    bool enabled;
    Status (LinkEngine::*run)(const Route&, ChannelStats&);
    const char* what;
    ChannelStats* stats;
    std::future<Status> done;
  };
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  std::int64_t& done = other_channels_done_[d == Direction::kPush ? 0 : 1];
  const bool due = options.full || options_.other_channels_interval_seconds == 0 || done == 0 ||
                   now - done >= options_.other_channels_interval_seconds;
  stats.other_channels_not_due = !due;
  Channel channels[] = {
      {due && options_.proposals, &LinkEngine::SyncProposals, "proposals", &stats.proposals, {}},
      {due && options_.galaxy_clusters, &LinkEngine::SyncClusters, "clusters", &stats.clusters, {}},
      {due && options_.analyst_data, &LinkEngine::SyncAnalystData, "analyst data", &stats.analyst_data, {}}};
  for (Channel& c : channels) {
    if (c.enabled)
      c.done = std::async(std::launch::async, [this, &c, &route, &parent] {
        ScopedLogContext inherited(parent);
        return (this->*c.run)(route, *c.stats);
      });
  }
  for (Channel& c : channels) {
    if (!c.enabled) continue;
    if (Status st = c.done.get(); !st.ok()) {
      ++c.stats->failed;
      spdlog::warn("link {}: {} {}: {}", name_, route.name(), c.what, st.error().ToString());
    }
  }
  // A failed channel is asked again at the next cycle, not after the interval.
  if (due && stats.proposals.failed == 0 && stats.clusters.failed == 0 && stats.analyst_data.failed == 0)
    done = now;
  if (options_.sightings) SGSYNC_TRY_STATUS(SyncSightings(route, options, stats.sightings));
  return stats;
}

}  // namespace sgsync::engine
