// Policy time per attribute on a 150k-attribute event (target <= 1 us per attribute), push and pull.
// Figures go into docs/performance.md.
#include <benchmark/benchmark.h>

#include <chrono>

#include "misp/event.h"
#include "sync/policy/policy.h"
#include "misp-sim/generator.h"
#include "tests/support/policy_fixtures.h"

namespace {

using namespace sgsync;

// Two 150k-attribute events: "mixed" spreads attributes over distributions 0-3 and 5, so most of them
// are removed or downgraded with a reason each (the policy's worst case); "inherit" has every
// attribute at distribution 5, as in real MISP events (every attribute of the real 2.5.1 captures).
const misp::EventDocument& BigEvent(bool inherit) {
  static const misp::EventDocument mixed = [] {
    sim::GeneratedEventShape shape;
    shape.attributes = 150000;
    return std::move(*misp::EventDocument::Parse(sim::GenerateEventJson(shape)));
  }();
  static const misp::EventDocument inheriting = [] {
    sim::GeneratedEventShape shape;
    shape.attributes = 150000;
    shape.attribute_distribution = 5;
    return std::move(*misp::EventDocument::Parse(sim::GenerateEventJson(shape)));
  }();
  return inherit ? inheriting : mixed;
}

void Run(benchmark::State& state, Direction direction) {
  const auto& doc = BigEvent(state.range(0) == 1);
  policy::Link link = testing::MakeLink(R"("blocked_tags": ["tlp:red"])");
  std::size_t attributes = 150000;
  double policy_ns = 0;
  for (auto _ : state) {
    // The engine hands the policy an event it has just parsed and no longer needs: moved in, as here.
    state.PauseTiming();
    boost::json::object event(doc.event_json(),
                              boost::json::make_shared_resource<boost::json::monotonic_resource>());
    state.ResumeTiming();
    auto start = std::chrono::steady_clock::now();
    policy::Decision d = policy::Evaluate(direction, std::move(event), link);
    policy_ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    if (!d.send) std::abort();
    benchmark::DoNotOptimize(d);
    state.PauseTiming();
    d = policy::Decision();  // freeing the document is the caller's cost, not the policy's
    state.ResumeTiming();
  }
  state.counters["ns_per_attribute"] =
      policy_ns / static_cast<double>(state.iterations()) / static_cast<double>(attributes);
}

void BM_PolicyPush150k(benchmark::State& state) { Run(state, Direction::kPush); }
void BM_PolicyPull150k(benchmark::State& state) { Run(state, Direction::kPull); }
// Argument 0: mixed distributions; 1: every attribute inherits.
BENCHMARK(BM_PolicyPush150k)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PolicyPull150k)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

namespace {
void BM_CopyEvent150k(benchmark::State& state) {
  const auto& doc = BigEvent(false);
  for (auto _ : state) {
    boost::json::object copy(doc.event_json(),
                             boost::json::make_shared_resource<boost::json::monotonic_resource>());
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_CopyEvent150k)->Unit(benchmark::kMillisecond);
}  // namespace
