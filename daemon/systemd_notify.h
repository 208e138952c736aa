// daemon/systemd_notify.h: telling systemd how sgsyncd is doing (sd_notify, Type=notify).
//
// READY=1 once the admin socket listens and every link has started or been reported failed;
// STATUS= lines with what the daemon is doing; WATCHDOG=1 keep-alives while the scheduler answers
// (WatchdogSec= in the unit). Outside systemd (no NOTIFY_SOCKET) every call does nothing.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace sgsync::daemon {

// Sends `state` ("READY=1\nSTATUS=...") to systemd; false when not run by systemd or refused.
bool Notify(const std::string& state);

// The watchdog interval systemd asks for (WatchdogSec=), when it asks for one.
std::optional<std::chrono::microseconds> WatchdogInterval();

}  // namespace sgsync::daemon
