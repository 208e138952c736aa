#include "sync/engine/route.h"

namespace sgsync::engine {

Route Route::For(Direction d, connector::MispApi& local, connector::MispApi& remote) {
  if (d == Direction::kPush) return Route{d, &local, &remote, state::Side::kLocal, state::Side::kRemote};
  return Route{d, &remote, &local, state::Side::kRemote, state::Side::kLocal};
}

std::string_view Route::SideName(state::Side side) {
  return side == state::Side::kRemote ? "the Portal" : "the member's MISP";
}

std::optional<std::int64_t>& SeenTimestamp(state::LedgerEntry& entry, state::Side side) {
  return side == state::Side::kLocal ? entry.local_timestamp : entry.remote_timestamp;
}

std::optional<std::string>& SeenHash(state::LedgerEntry& entry, state::Side side) {
  return side == state::Side::kLocal ? entry.local_hash : entry.remote_hash;
}

const std::optional<std::int64_t>& SeenTimestamp(const state::LedgerEntry& entry, state::Side side) {
  return side == state::Side::kLocal ? entry.local_timestamp : entry.remote_timestamp;
}

const std::optional<std::string>& SeenHash(const state::LedgerEntry& entry, state::Side side) {
  return side == state::Side::kLocal ? entry.local_hash : entry.remote_hash;
}

}  // namespace sgsync::engine
