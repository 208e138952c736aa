// sync/engine/route.h: which way one run moves data, computed once per run (Route::For) so that no
// code below asks "push or pull?" again: where the data comes from and goes to, which side of the
// ledger each end is, and how logs and refusals name them.
//
// The two ends of a link are the member's MISP (state::Side::kLocal) and the Portal
// (state::Side::kRemote). A push goes from the member's MISP to the Portal, a pull the other way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/direction.h"
#include "portal-connector/misp_api.h"
#include "state/store.h"

namespace sgsync::engine {

struct Route {
  Direction direction;
  connector::MispApi* source;
  connector::MispApi* destination;
  state::Side source_side;
  state::Side destination_side;

  static Route For(Direction d, connector::MispApi& local, connector::MispApi& remote);

  bool push() const { return direction == Direction::kPush; }
  std::string_view name() const { return DirectionName(direction); }  // "push" / "pull"
  // "the Portal" / "the member's MISP", as logs and refusals name them.
  std::string_view source_name() const { return SideName(source_side); }
  std::string_view destination_name() const { return SideName(destination_side); }

  static std::string_view SideName(state::Side side);
};

// The ledger's record of one side's copy of an event: the timestamp and content hash it was last
// seen with there.
std::optional<std::int64_t>& SeenTimestamp(state::LedgerEntry& entry, state::Side side);
std::optional<std::string>& SeenHash(state::LedgerEntry& entry, state::Side side);
const std::optional<std::int64_t>& SeenTimestamp(const state::LedgerEntry& entry, state::Side side);
const std::optional<std::string>& SeenHash(const state::LedgerEntry& entry, state::Side side);

}  // namespace sgsync::engine
