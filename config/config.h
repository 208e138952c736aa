// config/config.h: sgsyncd's configuration, read from one TOML file (docs/configuration.md has every
// key; deploy/sgsync.example.toml is a commented example).
//
// LoadConfig reads and checks everything that can be checked without the network: unknown keys
// (a typo is an error, not a silently ignored setting), types, ranges, URLs, the push and pull
// rules (MISP's JSON, parsed by the policy's own reader), and the API keys: a key file must exist
// and be readable by its owner only (0600 or 0400); a key may instead come from an environment
// variable. Every error names the file, the line and the key.
//
// The API keys are held in `Secret`, which never prints its value; RedactedToml() renders the
// configuration as the admin API's GetConfig shows it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "misp/json.h"
#include "sync/engine/options.h"
#include "sync/policy/link.h"

namespace sgsync::config {

namespace json = boost::json;

// An API key. Its value is read only where a request is built; ToString-like access is explicit.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  // "sha256:" and the first 16 hex digits of the key's SHA-256: tells two keys apart in logs and
  // status without saying anything usable about either.
  std::string fingerprint() const;
  std::string source;  // "file /etc/sgsync/portal.key" or "environment SGSYNC_PORTAL_KEY": for messages
  std::int64_t loaded_at = 0;  // when it was read (Unix seconds)

 private:
  std::string value_;
};

// One MISP a link talks to.
struct MispEndpointConfig {
  std::string url;      // where sgsync connects: https://misp.example.org
  std::string baseurl;  // MISP.baseurl when it differs from `url` (a proxy in front); default `url`
  Secret api_key;
  std::string ca_file;
  std::string pin_sha256;
  std::string client_cert, client_key;
  std::string proxy;
  bool insecure_http = false;  // allow plain http:// (tests and demos only)
  std::string org_uuid;        // the instance's host organisation; local: asked from MISP when empty
  std::string org_name;
  int max_in_flight = 4;  // concurrent requests to this MISP
  int timeout_seconds = 300;
  int max_retry_after_seconds = 120;  // a peer's Retry-After is honoured up to this
  int max_document_memory_mb = 1024;  // what one parsed answer may cost in memory
  // remote only: accept a Portal key of a site admin (refused by default: docs/security.md).
  bool allow_site_admin = false;
};

// One [[link]] table, read once into the three descriptions its users take: the scheduler's
// (directions, intervals), the engine's options and the sharing policy's link. Discovery at start
// only adds what it learns from the two MISPs (the Portal account's permissions and organisation,
// the member's organisation when not configured): no setting is re-expressed on the way.
struct LinkConfig {
  std::string name;
  MispEndpointConfig local;   // the member's MISP
  MispEndpointConfig remote;  // the Portal
  bool push = true;
  bool pull = true;
  std::int64_t interval_seconds = 300;
  std::int64_t full_reconciliation_seconds = 86400;
  // Every engine setting of the table (sync/engine/options.h; the keys are listed once, with how
  // each is read and shown, in config.cc's kEngineSettings).
  engine::EngineOptions engine;
  // The sharing-relevant part, in the policy's JSON link form (policy::ParseLink) without the
  // facts learnt from the MISPs at start: what SharingIdentity digests and GetConfig shows...
  json::object policy;
  // ... and the same parsed once by the policy's reader (MakePolicyLink completes it).
  policy::Link policy_link;
  int line = 0;  // where the [[link]] table starts, for messages
};

struct DaemonConfig {
  std::string path;  // the file it was read from
  std::string state_db = "/var/lib/sgsync/state.db";
  int max_attempts = 8;  // tries of one event before it goes to the dead letters
  // How long finished rows are kept, in days (0: for ever); docs/state.md, "Retention".
  std::int64_t retention_done_work_days = 7;
  std::int64_t retention_audit_days = 365;
  std::int64_t retention_resolved_conflicts_days = 90;
  std::string admin_socket = "/run/sgsync/admin.sock";
  int admin_socket_mode = 0600;
  std::string admin_socket_group;
  std::string admin_tcp_listen;  // "" (off) or HOST:PORT, which needs the three TLS files below
  std::string admin_tls_cert, admin_tls_key, admin_tls_client_ca;
  std::string log_format = "text";                // text | json
  std::string log_level = "info";                 // trace debug info warn error
  std::string metrics_listen = "127.0.0.1:9464";  // "" disables /metrics, /healthz and /readyz
  // /readyz answers 503 once a link's direction has been failing this long (docs/operations.md).
  std::int64_t ready_failing_seconds = 900;
  std::int64_t shutdown_grace_seconds = 30;
  // What all answers being parsed at once (every link, every request in flight) may cost together.
  std::int64_t max_documents_memory_mb = 2048;
  // The scheduler (docs/operations.md, "Many links"): threads that take turns at every link's runs,
  // requests in flight to all MISPs together, and how long a run works before it lets the others
  // have a turn when it still has work queued.
  int workers = 8;
  int max_requests_in_flight = 64;
  std::int64_t run_time_slice_seconds = 10;
  std::vector<LinkConfig> links;
};

// "HOST:PORT" split, the port a number in 0-65535 (0: any free port); an error naming the text
// otherwise. Never throws.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};
Result<HostPort> ParseHostPort(std::string_view text);

// Reads and checks `path`. Errors: "<file>:<line>: <key>: <what>" (kInvalidArgument), or kIo when
// the file cannot be read.
Result<DaemonConfig> LoadConfig(const std::string& path);
// The same from text (tests); `name` stands for the file in messages; key files are still read.
Result<DaemonConfig> ParseConfig(const std::string& text, const std::string& name);

// The settings that make a link's sync window, as the configuration spells them
// ("initial_sync_since = 2026-09-01T00:00:00Z, initial_sync_days = 90"); empty without a window.
std::string DescribeSyncWindow(const engine::EngineOptions& o);

// The policy's link for `link` (parsed when the file was read), completed with what was learnt
// from the two MISPs: the organisation of sgsync's account on the remote, and the local host
// organisation when not configured.
Result<policy::Link> MakePolicyLink(const LinkConfig& link, const policy::OrgRef& remote_user_org,
                                    const policy::OrgRef& local_org);

// The link keys that set the engine's behaviour: each is read into LinkConfig::engine and shown by
// Redacted under the same name.
std::vector<std::string_view> EngineSettingKeys();

// A digest of everything in `link` that changes what is shared (policy JSON, directions): the state
// store starts new cursor generations when it changes.
std::string SharingIdentity(const LinkConfig& link);

// The configuration with every secret replaced by "<redacted: source>"; as JSON, and as TOML text
// (what the admin API's GetConfig returns).
json::object Redacted(const DaemonConfig& c);
std::string RedactedToml(const DaemonConfig& c);

}  // namespace sgsync::config
