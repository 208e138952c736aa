#include "sync/engine/new_tags.h"

#include <algorithm>

namespace sgsync::engine {

bool NewTagGate::AllKnown(const std::vector<std::string_view>& tags) {
  std::lock_guard lock(known_mu_);
  return std::all_of(tags.begin(), tags.end(), [&](std::string_view t) { return known_.count(t) > 0; });
}

std::unique_lock<std::mutex> NewTagGate::Enter(const std::vector<std::string_view>& tags) {
  std::unique_lock<std::mutex> alone(alone_, std::defer_lock);
  if (AllKnown(tags)) return alone;
  alone.lock();
  if (AllKnown(tags)) alone.unlock();  // the write that held it made them known
  return alone;
}

void NewTagGate::Written(const std::vector<std::string_view>& tags) {
  std::lock_guard lock(known_mu_);
  for (std::string_view t : tags) known_.emplace(t);
}

}  // namespace sgsync::engine
