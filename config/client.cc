#include "config/client.h"

#include "common/metric_families.h"

namespace sgsync::config {

Result<std::unique_ptr<connector::MispClient>> MakeClient(const MispEndpointConfig& e, Metrics* metrics,
                                                          const std::string& peer,
                                                          std::shared_ptr<misp::MemoryBudget> budget,
                                                          std::shared_ptr<connector::EndpointLimit> limit,
                                                          std::shared_ptr<connector::EndpointLimit> process_limit) {
  connector::TransportOptions o;
  o.base_url = e.url;
  o.allow_insecure_http = e.insecure_http;
  o.tls = connector::TlsOptions{e.ca_file, e.pin_sha256, e.client_cert, e.client_key};
  o.timeouts.total = std::chrono::seconds(e.timeout_seconds);
  o.retry.max_retry_after = std::chrono::seconds(e.max_retry_after_seconds);
  o.max_connections = static_cast<std::size_t>(e.max_in_flight);
  o.user_agent = connector::SgsyncUserAgent();
  o.proxy = e.proxy;
  o.endpoint_limit = std::move(limit);
  o.process_limit = std::move(process_limit);
  if (metrics != nullptr) {
    o.observer = [metrics, peer](std::string_view method, std::string_view route, int status,
                                 double seconds) {
      metrics->Add(metric::kRequests, {{"peer", peer},
                                       {"method", std::string(method)},
                                       {"route", std::string(route)},
                                       {"status", std::to_string(status)}});
      metrics->Observe(metric::kRequestDuration, {{"peer", peer}, {"route", std::string(route)}}, seconds);
    };
    o.handshake_observer = [metrics, peer](bool resumed) {
      metrics->Add(metric::kTlsHandshakes, {{"peer", peer}, {"resumed", resumed ? "true" : "false"}});
    };
  }
  auto t = connector::HttpsTransport::Create(std::move(o), e.api_key.reveal());
  if (!t.ok()) return t.error().Within(peer);
  misp::JsonLimits limits;
  limits.max_memory_bytes = static_cast<std::size_t>(e.max_document_memory_mb) << 20;
  limits.budget = std::move(budget);
  return std::make_unique<connector::MispClient>(std::move(*t), std::move(limits));
}

}  // namespace sgsync::config
