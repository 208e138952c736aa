#include "daemon/health.h"

namespace sgsync::daemon {

ProbeAnswer LivenessProbe() { return {200, "ok\n"}; }

ProbeAnswer ReadinessProbe(const std::vector<Service::LinkSnapshot>& links, std::int64_t now,
                           std::int64_t ready_failing_seconds) {
  std::string reasons;
  for (const auto& l : links) {
    if (l.link_id == 0) {
      reasons += "link " + l.name + ": not started (its MISPs have not answered yet)\n";
      continue;
    }
    for (const auto* st : {&l.push, &l.pull}) {
      if (!st->enabled || st->paused || st->failing_since == 0) continue;
      const std::int64_t failing = now - st->failing_since;
      if (failing <= ready_failing_seconds) continue;
      reasons += "link " + l.name + " " + (st == &l.push ? "push" : "pull") + ": failing for " +
                 std::to_string(failing) + " s: " + st->last_outcome.Text() + "\n";
    }
  }
  if (reasons.empty()) return {200, "ready\n"};
  return {503, reasons};
}

}  // namespace sgsync::daemon
