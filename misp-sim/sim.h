// misp-sim/sim.h: a small MISP, for sgsync's integration tests, the demo and the benchmarks.
//
// MispSim answers MISP 2.5.1's REST API as the real captures in tests/data/fixtures/misp/real-2.5.1/
// show it, keeps its data in SQLite, and applies MISP's access rules (spec 3.1, 4.2) and the
// receiving side's rules (spec 3.4, 4.5, 7.5; its sharing-group capture is written from MISP's
// source in capture.cc, not taken from sgsync's receiver model, so the two can disagree). Every
// behaviour and its source is listed in docs/misp-sim.md; what MISP does that misp-sim does not is
// listed there too.
//
// Thread-safe: requests are served concurrently, the data is guarded by one mutex.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "httpd/http_server.h"

namespace sgsync::sim {

using httpd::HttpRequest;
using httpd::HttpResponse;
using httpd::HttpServer;
using httpd::TlsFiles;

// The built-in roles of MISP (INSTALL/MYSQL.sql role ids 1, 2, 3 and 5) as far as misp-sim acts on
// them; docs/misp-sim.md lists their flags and where each comes from.
enum class Role { kSiteAdmin, kUser, kSyncUser, kOrgAdmin };

struct SimConfig {
  std::string db_path = ":memory:";
  std::string base_url;           // MISP.baseurl: its own sharing-group rows, Location headers
  std::string org_name = "ORG1";  // the host organisation
  std::string org_uuid;
  std::string admin_key;      // the site admin's API key (40 characters)
  std::string instance_uuid;  // servers/getVersion `uuid`
  std::string control_token;  // guards /_sim/ (header X-Sim-Token); empty disables the routes
};

// Fault injection for one route prefix (docs/misp-sim.md, "Control routes").
struct Fault {
  std::string route;                             // path prefix, e.g. "/events/index"; empty: every route
  int latency_ms = 0;                            // added before answering
  int jitter_ms = 0;                             // plus up to this much, uniformly
  double error_rate = 0;                         // share of requests answered with `error_status`
  int error_status = 503;                        // 500, 502, 503, or 429 (with Retry-After)
  int retry_after_s = 0;                         // Retry-After on 429
  std::optional<std::size_t> reset_after_bytes;  // close the connection after this many body bytes
  bool truncate_body = false;                    // announce the full length, send half
  int stall_ms = 0;                              // wait this long before answering at all
  int remaining = 0;                             // requests it applies to; 0: until cleared
  // Share of the matching requests the fault takes at all; the others go on to the next fault of
  // the list (so one list mixes 5% resets, 5% truncations, 20% errors ...).
  double rate = 1.0;
};

// One request as the request log keeps it (the Authorization value is never kept).
struct LoggedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names; authorization redacted
  std::string body;                            // decoded, cut at 1 MiB
  int status = 0;
};

// A 40-character random API key, as MISP makes them.
std::string RandomKey();

class MispSim {
 public:
  static Result<std::unique_ptr<MispSim>> Create(const SimConfig& config);
  ~MispSim();

  // The REST API and the control routes (under /_sim/, with the admin key).
  HttpResponse Handle(const HttpRequest& request);

  // Set-up, used by the CLI, the control routes and tests.
  Result<std::int64_t> AddOrg(const std::string& name, const std::string& uuid, bool local);
  // Returns the API key (generated when `key` is empty).
  Result<std::string> AddUser(const std::string& email, const std::string& org_uuid, Role role,
                              const std::string& key = "");
  // A server record (another instance this one knows, spec 2.2); sharing-group rows naming its URL
  // are kept on capture, others dropped (4.5).
  Result<std::int64_t> AddServer(const std::string& url, const std::string& name);
  // Stores a sharing group as given ({"SharingGroup": ..., "SharingGroupOrg": [...], ...} or the
  // embedded form); returns its local id.
  Result<std::int64_t> AddSharingGroup(const std::string& json);
  void set_base_url(const std::string& url);
  // Stores an event document as given ({"Event": ...} as events/view serves it to its owner),
  // keeping its ids; the owner is its `Org`. For replaying real captures and loading fixtures.
  Result<std::int64_t> LoadEvent(const std::string& json);
  // Stores a proposal as shadow_attributes/index serves it ({"ShadowAttribute": {..., event_uuid}}).
  Status LoadProposal(const std::string& json);

  // Control (also reachable over HTTP under /_sim/ with the control token).
  void AddFault(const Fault& fault);
  void ClearFaults();
  std::vector<LoggedRequest> RequestLog();
  void ClearRequestLog();
  // Generated events (misp-sim/generator.h) owned by the host org, published; returns their uuids.
  // `attribute_distribution` -1 mixes the levels (some events then have nothing shareable).
  Result<std::vector<std::string>> Seed(int events, int attributes, int objects, int distribution,
                                        std::uint64_t seed, int attribute_distribution = -1);
  // Removes every event, sharing group and blocklist entry; organisations and users stay.
  Status Reset();

 private:
  struct Impl;
  explicit MispSim(std::unique_ptr<Impl> impl);
  HttpResponse HandleControl(const HttpRequest& request, const std::string& what);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgsync::sim
