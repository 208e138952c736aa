// daemon/health.h: the HTTP probes sgsyncd answers on its metrics listener, for load balancers,
// uptime checks, systemd and container platforms (docs/operations.md, "Health").
//
//   GET /healthz  200 "ok": the process answers (liveness).
//   GET /readyz   200 "ready": every link has started (its two MISPs answered) and no enabled,
//                 unpaused direction has been failing for longer than `ready_failing_seconds`;
//                 503 otherwise, one line per reason (readiness).
// Pure functions of the links' status, so the rules are tested without a daemon.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "daemon/service.h"

namespace sgsync::daemon {

struct ProbeAnswer {
  int status = 200;
  std::string body;
};

ProbeAnswer LivenessProbe();
ProbeAnswer ReadinessProbe(const std::vector<Service::LinkSnapshot>& links, std::int64_t now,
                           std::int64_t ready_failing_seconds);

}  // namespace sgsync::daemon
