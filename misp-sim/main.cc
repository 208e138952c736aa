// misp-sim: run the MISP-compatible test server from the command line.
//
//   misp-sim --listen 127.0.0.1:PORT --db FILE|:memory: [--tls-cert F --tls-key F] --org NAME
//            --org-uuid U --admin-key K [--base-url URL] [--keep-alive-timeout SECONDS]
//
// Prints the base URL and the keys it created, then serves until SIGINT or SIGTERM.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "misp-sim/sim.h"
#include "misp/json.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"misp-sim: a MISP-compatible server for sgsync's tests, demo and benchmarks"};
  std::string listen = "127.0.0.1:0", db = ":memory:", cert, key, base_url, org = "ORG1", org_uuid, admin_key,
              control_token;
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0 picks a free one)");
  app.add_option("--db", db, "SQLite file, or :memory:");
  app.add_option("--tls-cert", cert, "PEM certificate chain (with --tls-key: serve HTTPS)");
  app.add_option("--tls-key", key, "PEM private key");
  app.add_option("--org", org, "name of the host organisation");
  app.add_option("--org-uuid", org_uuid, "uuid of the host organisation (generated when absent)");
  app.add_option("--admin-key", admin_key, "API key of the site admin (generated when absent)");
  app.add_option("--base-url", base_url, "MISP.baseurl (default: the listening URL)");
  std::vector<std::string> load;
  app.add_option("--load", load,
                 "event documents to serve (events/view or restSearch JSON files; repeatable)")
      ->check(CLI::ExistingFile);
  // Apache's KeepAliveTimeout, 5 s by default: the web server in front of a MISP closes a kept-alive
  // connection that stays idle this long (docs/misp-sim.md).
  double keep_alive_timeout = 5;
  app.add_option("--keep-alive-timeout", keep_alive_timeout,
                 "seconds a kept-alive connection may stay idle before it is closed (0: never)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--control-token", control_token,
                 "token for the /_sim/ control routes (X-Sim-Token; generated when absent)");
  CLI11_PARSE(app, argc, argv);

  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "misp-sim: --listen: expected HOST:PORT, found \"%s\"\n", listen.c_str());
    return 2;
  }
  if (admin_key.empty()) admin_key = sgsync::sim::RandomKey();
  if (control_token.empty()) control_token = sgsync::sim::RandomKey();
  sgsync::sim::SimConfig config{db, base_url, org, org_uuid, admin_key, "", control_token};
  auto sim = sgsync::sim::MispSim::Create(config);
  if (!sim.ok()) {
    std::fprintf(stderr, "misp-sim: %s\n", sim.error().ToString().c_str());
    return 1;
  }
  for (const auto& file : load) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = sgsync::misp::ParseJson(text.str(), {}, file);
    if (!parsed.ok()) {
      std::fprintf(stderr, "misp-sim: %s\n", parsed.error().ToString().c_str());
      return 2;
    }
    boost::json::value docs = *parsed;
    if (docs.is_object() && docs.as_object().contains("response")) docs = docs.as_object()["response"];
    if (!docs.is_array()) docs = boost::json::array{docs};
    for (const auto& d : docs.as_array()) {
      auto id = (*sim)->LoadEvent(boost::json::serialize(d));
      if (!id.ok()) {
        std::fprintf(stderr, "misp-sim: %s: %s\n", file.c_str(), id.error().ToString().c_str());
        return 2;
      }
    }
  }
  std::optional<sgsync::sim::TlsFiles> tls;
  if (!cert.empty() || !key.empty()) tls = sgsync::sim::TlsFiles{cert, key, ""};
  auto* handler_sim = sim->get();
  auto server = sgsync::sim::HttpServer::Start(
      listen.substr(0, colon), static_cast<std::uint16_t>(std::stoi(listen.substr(colon + 1))),
      [handler_sim](const sgsync::sim::HttpRequest& r) { return handler_sim->Handle(r); }, tls,
      std::size_t{64} << 20, std::chrono::milliseconds(static_cast<std::int64_t>(keep_alive_timeout * 1000)));
  if (!server.ok()) {
    std::fprintf(stderr, "misp-sim: %s\n", server.error().ToString().c_str());
    return 1;
  }
  std::string url = std::string(tls ? "https://" : "http://") + listen.substr(0, colon) + ":" +
                    std::to_string((*server)->port());
  if (base_url.empty()) (*sim)->set_base_url(url);
  // Before the line that tells a caller it is up: a SIGTERM sent as soon as it has read that line
  // (MispSimCliTest, under load) killed the process before the handler was there.
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::printf("misp-sim listening on %s\nadmin key: %s\ncontrol token: %s\n", url.c_str(), admin_key.c_str(),
              control_token.c_str());
  std::fflush(stdout);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*server)->Stop();
  return 0;
}
