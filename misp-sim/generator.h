// misp-sim/generator.h: deterministic MISP events of any size, for misp-sim's seed route, tests and
// benchmarks. The same shape and seed give the same bytes on every run.
#pragma once

#include <cstdint>
#include <string>

namespace sgsync::sim {

struct GeneratedEventShape {
  int attributes = 100;
  int objects = 0;  // each with `object_attributes` attributes
  int object_attributes = 3;
  int event_distribution = 3;
  int attribute_distribution = -1;  // -1: mixed (0-3, some 5); else every attribute at this level
  std::uint64_t seed = 1;
};

// A {"Event": {...}} document in MISP 2.5.1's own form (strings for numbers, as events/view serves).
std::string GenerateEventJson(const GeneratedEventShape& shape);

// A uuid made from a seed and a counter (version 4 layout), stable across runs.
std::string SeededUuid(std::uint64_t seed, std::uint64_t n);

}  // namespace sgsync::sim
