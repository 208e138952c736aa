// common/direction.h: which way a link moves data. One type for the policy, the state store, the
// engine and the daemon; the admin API's proto enum is converted to it once, where a message is
// read (daemon/admin_server.cc).
#pragma once

#include <optional>
#include <string_view>

namespace sgsync {

// Push: from the member's MISP to the Portal. Pull: from the Portal to the member's MISP.
enum class Direction { kPush, kPull };

// "push" or "pull": the stable text of logs, metrics labels, --once output and the state database.
std::string_view DirectionName(Direction d);
// The inverse of DirectionName; nullopt for any other text.
std::optional<Direction> ParseDirection(std::string_view text);

}  // namespace sgsync
