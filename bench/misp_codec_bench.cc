// Codec throughput: parse, parse+serialize and content hash in MB/s, each beside raw
// boost::json::parse of the same bytes. Results go into docs/performance.md.
#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "misp/content_hash.h"
#include "misp/event.h"
#include "misp-sim/generator.h"
#include "tests/support/files.h"

namespace {

using namespace sgsync::misp;

const std::string& BigEvent() {
  static const std::string doc = [] {
    sgsync::sim::GeneratedEventShape shape;
    shape.attributes = 150000;
    return sgsync::sim::GenerateEventJson(shape);
  }();
  return doc;
}

// The real MISP 2.5.1 event responses and the fixture events, one document each.
const std::vector<std::string>& FixtureEvents() {
  static const std::vector<std::string> docs = [] {
    std::vector<std::string> out;
    auto dir = sgsync::testing::DataDir() / "fixtures/misp/events";
    for (const auto& f : sgsync::testing::FilesBelow(dir, ".json")) {
      std::string text = sgsync::testing::ReadFile(f);
      DecodeOptions o;
      o.require_uuid = false;
      if (EventDocument::Parse(text, o).ok()) out.push_back(std::move(text));
    }
    return out;
  }();
  return docs;
}

template <typename Fn>
void RunOver(benchmark::State& state, const std::vector<const std::string*>& docs, Fn fn) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    for (const auto* d : docs) {
      fn(*d);
      bytes += d->size();
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

std::vector<const std::string*> Docs(int which) {
  std::vector<const std::string*> out;
  if (which == 0) {
    for (const auto& d : FixtureEvents()) out.push_back(&d);
  } else {
    out.push_back(&BigEvent());
  }
  return out;
}

DecodeOptions Options() {
  DecodeOptions o;
  o.require_uuid = false;
  return o;
}

void BM_RawBoostParse(benchmark::State& state) {
  RunOver(state, Docs(static_cast<int>(state.range(0))),
          [](const std::string& d) { benchmark::DoNotOptimize(boost::json::parse(d)); });
}
void BM_Parse(benchmark::State& state) {
  RunOver(state, Docs(static_cast<int>(state.range(0))), [](const std::string& d) {
    auto doc = EventDocument::Parse(d, Options());
    if (!doc.ok()) std::abort();
    benchmark::DoNotOptimize(doc);
  });
}
void BM_ParseSerialize(benchmark::State& state) {
  RunOver(state, Docs(static_cast<int>(state.range(0))), [](const std::string& d) {
    auto doc = EventDocument::Parse(d, Options());
    if (!doc.ok()) std::abort();
    std::string out = doc->Serialize();
    benchmark::DoNotOptimize(out);
  });
}
void BM_ContentHash(benchmark::State& state) {
  std::vector<EventDocument> parsed;
  auto docs = Docs(static_cast<int>(state.range(0)));
  for (const auto* d : docs) parsed.push_back(std::move(*EventDocument::Parse(*d, Options())));
  std::size_t bytes = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < parsed.size(); ++i) {
      benchmark::DoNotOptimize(ContentHash(parsed[i].event_json()));
      bytes += docs[i]->size();
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

// Argument 0: the fixture events; 1: the generated 150k-attribute event.
BENCHMARK(BM_RawBoostParse)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Parse)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParseSerialize)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ContentHash)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
