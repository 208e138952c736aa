// config/client.h: the MISP client for one end of a link, as the configuration describes it.
//
// TLS (CA, pin, client certificate), deadlines, the Retry-After clamp, the memory limits of an
// answer, the proxy, sgsync's User-Agent. `metrics` (request counters and durations, labelled
// `peer`), `budget` (memory shared by all answers in flight), `limit` (requests in flight per
// MISP) and `process_limit` (requests in flight to all MISPs together) may be null. Used by sgsyncd and by the onboarding checks.
#pragma once

#include <memory>
#include <string>

#include "common/metrics.h"
#include "config/config.h"
#include "portal-connector/misp_client.h"

namespace sgsync::config {

Result<std::unique_ptr<connector::MispClient>> MakeClient(const MispEndpointConfig& e, Metrics* metrics,
                                                          const std::string& peer,
                                                          std::shared_ptr<misp::MemoryBudget> budget,
                                                          std::shared_ptr<connector::EndpointLimit> limit,
                                                          std::shared_ptr<connector::EndpointLimit> process_limit = nullptr);

}  // namespace sgsync::config
