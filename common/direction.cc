#include "common/direction.h"

namespace sgsync {

std::string_view DirectionName(Direction d) { return d == Direction::kPush ? "push" : "pull"; }

std::optional<Direction> ParseDirection(std::string_view text) {
  if (text == "push") return Direction::kPush;
  if (text == "pull") return Direction::kPull;
  return std::nullopt;
}

}  // namespace sgsync
