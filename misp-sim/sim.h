// misp-sim/sim.h: a small MISP, for sgsync's integration tests, the demo and the benchmarks.
//
// MispSim answers MISP 2.5.1's REST API as the real captures in shared/fixtures/misp/real-2.5.1/
// show it, keeps its data in SQLite, and applies MISP's access rules (spec 3.1, 4.2) and the
// receiving side's rules (spec 3.4, 4.5, 7.5: the sgsync policy's receiver model is reused for
// sharing-group capture). Every behaviour and its source is listed in docs/misp-sim.md; what MISP
// does that misp-sim does not is listed there too.
//
// Thread-safe: requests are served concurrently, the data is guarded by one mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "misp-sim/http_server.h"

namespace sgsync::sim {

// The built-in roles of MISP (INSTALL/MYSQL.sql role ids 1, 3 and 5) as far as misp-sim acts on
// them; docs/misp-sim.md lists their flags and where each comes from.
enum class Role { kSiteAdmin, kUser, kSyncUser };

struct SimConfig {
  std::string db_path = ":memory:";
  std::string base_url;           // MISP.baseurl: its own sharing-group rows, Location headers
  std::string org_name = "ORG1";  // the host organisation
  std::string org_uuid;
  std::string admin_key;      // the site admin's API key (40 characters)
  std::string instance_uuid;  // servers/getVersion `uuid`
};

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

 private:
  struct Impl;
  explicit MispSim(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgsync::sim
