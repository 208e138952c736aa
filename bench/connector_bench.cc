// The transport and client over HTTPS keep-alive on loopback against misp-sim in the same process:
// small GETs per second, and MB/s of a large events/view with the client's CPU time per request.
// Both ends share the machine's two cores; figures go into docs/performance.md.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include "misp-sim/sim.h"
#include "portal-connector/misp_client.h"
#include "tests/support/test_pki.h"

namespace {

using namespace sgsync;
const std::string kKey(40, 'b');

struct Rig {
  testing::TestPki pki;
  std::unique_ptr<sim::MispSim> sim;
  std::unique_ptr<sim::HttpServer> server;
  std::unique_ptr<connector::MispClient> client;
  std::string big_uuid;
  Rig() {
    sim = std::move(*sim::MispSim::Create(sim::SimConfig{":memory:", "", "ORG1", "", kKey, "", ""}));
    big_uuid = (*sim->Seed(1, 100000, 0, 3, 5))[0];
    sim::MispSim* raw = sim.get();
    server = std::move(*sim::HttpServer::Start(
        "127.0.0.1", 0, [raw](const sim::HttpRequest& r) { return raw->Handle(r); },
        sim::TlsFiles{pki.server_cert(), pki.server_key(), ""}, std::size_t{1} << 30));
    connector::TransportOptions o;
    o.base_url = "https://127.0.0.1:" + std::to_string(server->port());
    o.tls.ca_file = pki.ca();
    client = std::make_unique<connector::MispClient>(std::move(*connector::HttpsTransport::Create(o, kKey)));
  }
};

Rig& TheRig() {
  static Rig rig;
  return rig;
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void BM_SmallGetKeepAlive(benchmark::State& state) {
  auto& rig = TheRig();
  double cpu0 = CpuSeconds();
  for (auto _ : state) {
    auto v = rig.client->GetVersion();
    if (!v.ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["client_cpu_us_per_request"] =
      (CpuSeconds() - cpu0) * 1e6 / static_cast<double>(state.iterations());
}

void BM_LargeEventView(benchmark::State& state) {
  auto& rig = TheRig();
  auto probe = rig.client->ViewEvent(rig.big_uuid, connector::ViewForm{});
  const std::size_t size = (*probe)->Serialize().size();  // the document's size, measured once
  std::size_t bytes = 0;
  double cpu0 = CpuSeconds();
  for (auto _ : state) {
    auto e = rig.client->ViewEvent(rig.big_uuid, connector::ViewForm{});
    if (!e.ok() || !e->has_value()) std::abort();
    bytes += size;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["document_mb"] = static_cast<double>(size) / 1e6;
  state.counters["client_cpu_ms_per_request"] =
      (CpuSeconds() - cpu0) * 1e3 / static_cast<double>(state.iterations());
}

BENCHMARK(BM_SmallGetKeepAlive)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_LargeEventView)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

}  // namespace

BENCHMARK_MAIN();
