// misp-sim throughput: events/view and events/add of 100-attribute events, handled in process
// (the simulator's own cost) and over HTTP keep-alive on loopback (with Beast's cost on both ends),
// and events/edit of events of 1 000 to 8 000 attributes, whose cost must grow linearly (an edit
// once compared every sent attribute with every stored one), and a bulk restSearch of 16 uuids from
// stores of 1 000 to 8 000 events, whose cost must not grow with the store (it once parsed every
// stored event). Targets: 2 000 views/s and 500 adds/s on one core. Figures go into
// docs/performance.md.
#include <benchmark/benchmark.h>

#include <algorithm>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "misp-sim/generator.h"
#include "misp-sim/sim.h"
#include "misp/json.h"

namespace {

using namespace sgsync;
const std::string kKey(40, 'b');

std::unique_ptr<sim::MispSim> MakeSim() {
  auto s = sim::MispSim::Create(sim::SimConfig{":memory:", "http://127.0.0.1", "ORG1", "ce867008-0536-4358-9f2e-20df12768cd3", kKey, "", ""});
  return std::move(*s);
}

std::string EventBody(std::uint64_t seed) {
  sim::GeneratedEventShape shape;
  shape.attributes = 100;
  shape.seed = seed;
  return sim::GenerateEventJson(shape);
}

sim::HttpRequest Req(const std::string& method, const std::string& target, std::string body = "") {
  sim::HttpRequest r;
  r.method = method;
  r.target = target;
  r.headers["authorization"] = kKey;
  r.body = std::move(body);
  return r;
}

void BM_SimViewInProcess(benchmark::State& state) {
  auto s = MakeSim();
  auto uuids = s->Seed(1, 100, 0, 3, 1);
  auto req = Req("GET", "/events/view/" + (*uuids)[0]);
  for (auto _ : state) {
    auto r = s->Handle(req);
    if (r.status != 200) std::abort();
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_SimAddInProcess(benchmark::State& state) {
  auto s = MakeSim();
  std::vector<std::string> bodies;
  for (int i = 0; i < 2000; ++i) bodies.push_back(EventBody(static_cast<std::uint64_t>(i) + 100));
  std::size_t i = 0;
  for (auto _ : state) {
    auto r = s->Handle(Req("POST", "/events/add/metadata:1", bodies[i++ % bodies.size()]));
    if (r.status != 200 && r.status != 404) std::abort();
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

// Each iteration sends the whole event again, one second newer, as a push of a changed event does.
void BM_SimEditInProcess(benchmark::State& state) {
  auto s = MakeSim();
  sim::GeneratedEventShape shape;
  shape.attributes = static_cast<int>(state.range(0));
  shape.seed = 7;
  const std::string first = sim::GenerateEventJson(shape);
  if (s->Handle(Req("POST", "/events/add/metadata:1", first)).status != 200) std::abort();
  boost::json::object doc = boost::json::parse(first).as_object();
  boost::json::object& event = doc["Event"].as_object();
  const std::string uuid(event.at("uuid").as_string());
  std::int64_t timestamp = std::stoll(std::string(event.at("timestamp").as_string()));
  for (auto _ : state) {
    state.PauseTiming();
    event["timestamp"] = std::to_string(++timestamp);
    auto req = Req("POST", "/events/edit/" + uuid + "/metadata:1", boost::json::serialize(doc));
    state.ResumeTiming();
    auto r = s->Handle(req);
    if (r.status != 200) std::abort();
    benchmark::DoNotOptimize(r);
  }
  state.SetComplexityN(state.range(0));
}

// The engine's bulk fetch: 16 named events of 20 attributes, from a store of N such events.
void BM_SimRestSearchOf16FromAStoreOf(benchmark::State& state) {
  auto s = MakeSim();
  auto uuids = s->Seed(static_cast<int>(state.range(0)), 20, 0, 3, 5);
  if (!uuids.ok()) std::abort();
  boost::json::array wanted;
  for (std::size_t i = 0; i < 16; ++i) wanted.emplace_back((*uuids)[i * uuids->size() / 16]);
  const std::string body = boost::json::serialize(boost::json::object{{"uuid", wanted}});
  for (auto _ : state) {
    auto r = s->Handle(Req("POST", "/events/restSearch", body));
    const bool sixteen = std::any_of(r.headers.begin(), r.headers.end(), [](const auto& h) {
      return h.first == "X-Result-Count" && h.second == "16";
    });
    if (r.status != 200 || !sixteen) std::abort();
    benchmark::DoNotOptimize(r);
  }
  state.SetComplexityN(state.range(0));
}

// events/view by uuid from a store of N events of 5 attributes: an index lookup, not a scan.
void BM_SimViewByUuidFromAStoreOf(benchmark::State& state) {
  auto s = MakeSim();
  auto uuids = s->Seed(static_cast<int>(state.range(0)), 5, 0, 3, 5);
  if (!uuids.ok()) std::abort();
  const std::string target = "/events/view/" + uuids->back();
  for (auto _ : state) {
    auto r = s->Handle(Req("GET", target, ""));
    if (r.status != 200) std::abort();
    benchmark::DoNotOptimize(r);
  }
  state.SetComplexityN(state.range(0));
}

void BM_SimViewOverHttpKeepAlive(benchmark::State& state) {
  auto s = MakeSim();
  auto uuids = s->Seed(1, 100, 0, 3, 1);
  sim::MispSim* raw = s.get();
  auto server = std::move(*sim::HttpServer::Start("127.0.0.1", 0, [raw](const sim::HttpRequest& r) { return raw->Handle(r); }));
  namespace http = boost::beast::http;
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), server->port()});
  // Reserved as sgsync's transport reserves its own (portal-connector/transport.cc): Beast reads as
  // much as the buffer's free room and at least 512 bytes, so an empty buffer would read a view in
  // 512-byte pieces and count that against the client.
  boost::beast::flat_buffer buffer;
  buffer.reserve(64 * 1024);
  http::request<http::empty_body> req{http::verb::get, "/events/view/" + (*uuids)[0], 11};
  req.set(http::field::authorization, kKey);
  req.keep_alive(true);
  for (auto _ : state) {
    http::write(socket, req);
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    if (res.result_int() != 200) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_SimViewInProcess)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SimAddInProcess)->Unit(benchmark::kMicrosecond)->Iterations(1000);
BENCHMARK(BM_SimEditInProcess)->Unit(benchmark::kMillisecond)->Arg(1000)->Arg(2000)->Arg(4000)->Arg(8000)->Complexity(benchmark::oN);
BENCHMARK(BM_SimRestSearchOf16FromAStoreOf)->Unit(benchmark::kMillisecond)->Arg(1000)->Arg(2000)->Arg(4000)->Arg(8000)->Complexity();
BENCHMARK(BM_SimViewByUuidFromAStoreOf)->Unit(benchmark::kMicrosecond)->Arg(1000)->Arg(4000)->Arg(16000)->Complexity();
BENCHMARK(BM_SimViewOverHttpKeepAlive)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
