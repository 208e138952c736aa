// State store: ledger upserts of 100k events in batches (target >= 100k rows/s) and deciding which of
// 100k (uuid, timestamp) pairs changed (target <= 100 ms). Figures go into docs/performance.md.
#include <benchmark/benchmark.h>

#include <filesystem>

#include "state/store.h"
#include "misp-sim/generator.h"
#include "tests/support/files.h"

namespace {

using namespace sgsync;
constexpr int kEvents = 100000;

std::vector<state::LedgerEntry> Entries(std::int64_t ts) {
  std::vector<state::LedgerEntry> out;
  out.reserve(kEvents);
  for (int i = 0; i < kEvents; ++i) {
    state::LedgerEntry e;
    e.uuid = sim::SeededUuid(9, static_cast<std::uint64_t>(i));
    e.origin = state::Side::kLocal;
    e.local_timestamp = ts + i;
    e.local_hash = std::string(64, 'f');
    e.decision = state::LedgerDecision::kSend;
    e.decision_json =
        R"({"reasons":[{"rule":"push.event.downgrade","path":"Event.distribution","from":"2","to":"1"}]})";
    out.push_back(std::move(e));
  }
  return out;
}

void BM_LedgerUpsert100kInBatches(benchmark::State& state) {
  const std::size_t batch = static_cast<std::size_t>(state.range(0));
  auto entries = Entries(1000);
  std::int64_t rows = 0;
  for (auto _ : state) {
    state.PauseTiming();
    testing::TempDir dir;
    auto store = std::move(*state::StateStore::Open((dir.path() / "bench.db").string()));
    auto link = store->RegisterLink("portal", "h")->id;
    state.ResumeTiming();
    for (std::size_t i = 0; i < entries.size(); i += batch) {
      std::vector<state::LedgerEntry> part(
          entries.begin() + static_cast<std::ptrdiff_t>(i),
          entries.begin() + static_cast<std::ptrdiff_t>(std::min(i + batch, entries.size())));
      if (!store->UpsertLedgerBatch(link, part).ok()) std::abort();
    }
    rows += kEvents;
    state.PauseTiming();
    store.reset();
    state.ResumeTiming();
  }
  state.counters["rows_per_second"] =
      benchmark::Counter(static_cast<double>(rows), benchmark::Counter::kIsRate);
}

void BM_Changed100k(benchmark::State& state) {
  testing::TempDir dir;
  auto store = std::move(*state::StateStore::Open((dir.path() / "bench.db").string()));
  auto link = store->RegisterLink("portal", "h")->id;
  auto entries = Entries(1000);
  if (!store->UpsertLedgerBatch(link, entries).ok()) std::abort();
  // An index where one event in ten changed.
  std::vector<state::IndexPair> index;
  for (int i = 0; i < kEvents; ++i)
    index.push_back({entries[static_cast<std::size_t>(i)].uuid, 1000 + i + (i % 10 == 0 ? 5 : 0)});
  for (auto _ : state) {
    auto changed = store->Changed(link, state::Side::kLocal, index);
    if (!changed.ok() || changed->size() != kEvents / 10) std::abort();
    benchmark::DoNotOptimize(changed);
  }
}

// Per-link change detection (issue 19): 100k tracked events over ten links of 10k each; one link's
// run costs its own rows only. A 20-row page (an incremental run) is looked up row by row; a page
// of the link's 10k rows scans that link's rows, not the 100k.
void ChangedAmongTenLinks(benchmark::State& state, std::size_t page) {
  testing::TempDir dir;
  auto store = std::move(*state::StateStore::Open((dir.path() / "bench.db").string()));
  auto entries = Entries(1000);
  const std::ptrdiff_t per_link = kEvents / 10;
  std::int64_t target = 0;
  for (std::ptrdiff_t l = 0; l < 10; ++l) {
    auto link = store->RegisterLink("link" + std::to_string(l), "h")->id;
    std::vector<state::LedgerEntry> part(entries.begin() + l * per_link, entries.begin() + (l + 1) * per_link);
    if (!store->UpsertLedgerBatch(link, part).ok()) std::abort();
    if (l == 3) target = link;
  }
  std::vector<state::IndexPair> index;
  for (std::size_t i = 0; i < page; ++i) {
    const auto& e = entries[static_cast<std::size_t>(3 * per_link) + i];
    index.push_back({e.uuid, *e.local_timestamp + (i % 10 == 0 ? 5 : 0)});
  }
  for (auto _ : state) {
    auto changed = store->Changed(target, state::Side::kLocal, index);
    if (!changed.ok() || changed->size() != (page + 9) / 10) std::abort();
    benchmark::DoNotOptimize(changed);
  }
}
void BM_ChangedSmallPageAmongTenLinks(benchmark::State& state) { ChangedAmongTenLinks(state, 20); }
void BM_ChangedFullPageAmongTenLinks(benchmark::State& state) { ChangedAmongTenLinks(state, kEvents / 10); }

BENCHMARK(BM_ChangedSmallPageAmongTenLinks)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ChangedFullPageAmongTenLinks)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LedgerUpsert100kInBatches)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_Changed100k)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
