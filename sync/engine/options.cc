#include "sync/engine/options.h"

namespace sgsync::engine {

std::string_view ConflictPolicyName(ConflictPolicy p) {
  switch (p) {
    case ConflictPolicy::kPreferNewer:
      return "prefer-newer";
    case ConflictPolicy::kPreferPortal:
      return "prefer-portal";
    case ConflictPolicy::kPreferLocal:
      return "prefer-local";
    case ConflictPolicy::kManual:
      return "manual";
  }
  return "?";
}

std::optional<ConflictPolicy> ParseConflictPolicy(std::string_view text) {
  for (ConflictPolicy p : {ConflictPolicy::kPreferNewer, ConflictPolicy::kPreferPortal,
                           ConflictPolicy::kPreferLocal, ConflictPolicy::kManual}) {
    if (ConflictPolicyName(p) == text) return p;
  }
  return std::nullopt;
}

std::string_view PartialWriteName(PartialWrite p) {
  switch (p) {
    case PartialWrite::kAccept:
      return "accept";
    case PartialWrite::kRetry:
      return "retry";
    case PartialWrite::kDeadLetter:
      return "dead_letter";
  }
  return "?";
}

std::optional<PartialWrite> ParsePartialWrite(std::string_view text) {
  for (PartialWrite p : {PartialWrite::kAccept, PartialWrite::kRetry, PartialWrite::kDeadLetter}) {
    if (PartialWriteName(p) == text) return p;
  }
  return std::nullopt;
}

}  // namespace sgsync::engine
