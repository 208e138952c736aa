#include "daemon/systemd_notify.h"

#include <systemd/sd-daemon.h>

namespace sgsync::daemon {

bool Notify(const std::string& state) { return sd_notify(0, state.c_str()) > 0; }

std::optional<std::chrono::microseconds> WatchdogInterval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec);
}

}  // namespace sgsync::daemon
