#include "config/config.h"

#include <sys/stat.h>
#include <toml++/toml.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

#include "common/encoding.h"
#include "config/engine_settings.h"
#include "config/toml_reader.h"

namespace sgsync::config {

namespace {

Status CheckUrl(TableReader& r, std::string_view key, const std::string& url, bool insecure_ok) {
  bool https = url.rfind("https://", 0) == 0;
  bool http = url.rfind("http://", 0) == 0;
  if (!https && !http) return r.ErrorAt(r.Node(key), key, "expected an https:// URL, found \"" + url + "\"");
  if (http && !insecure_ok) {
    return r.ErrorAt(r.Node(key), key,
                     "plain http:// sends the API key unencrypted; use https:// (or set insecure_http = true "
                     "for a test installation)");
  }
  return {};
}

// The key from a file readable by its owner only, or from an environment variable.
Status ReadApiKey(TableReader& r, MispEndpointConfig* e) {
  std::string file, env;
  SGSYNC_TRY_STATUS(r.String("api_key_file", &file));
  SGSYNC_TRY_STATUS(r.String("api_key_env", &env));
  if (file.empty() == env.empty()) {
    return r.ErrorAt(nullptr, "api_key_file",
                     "set exactly one of api_key_file (a file readable by sgsyncd only) or api_key_env "
                     "(an environment variable)");
  }
  std::string key;
  if (!env.empty()) {
    const char* v = std::getenv(env.c_str());
    if (v == nullptr || *v == '\0') {
      return r.ErrorAt(r.Node("api_key_env"), "api_key_env",
                       "the environment variable " + env + " is not set or empty");
    }
    key = v;
    e->api_key = Secret(key);
    e->api_key.source = "environment " + env;
  } else {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
      return r.ErrorAt(r.Node("api_key_file"), "api_key_file",
                       "cannot read " + file + ": " + std::strerror(errno));
    }
    if ((st.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return Error{
          ErrorCode::kPermissionDenied,
          r.ErrorAt(r.Node("api_key_file"), "api_key_file",
                    file + " has mode " + mode +
                        ": an API key file must be readable by the service only (chmod 600 " + file + ")")
              .message,
          ""};
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) return r.ErrorAt(r.Node("api_key_file"), "api_key_file", "cannot open " + file);
    std::stringstream text;
    text << in.rdbuf();
    key = text.str();
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ')) key.pop_back();
    e->api_key = Secret(key);
    e->api_key.source = "file " + file;
  }
  e->api_key.loaded_at = static_cast<std::int64_t>(std::time(nullptr));
  // MISP's keys are 40 characters of [A-Za-z0-9] (AuthKey); anything else is a wrong file.
  bool plausible = e->api_key.reveal().size() == 40;
  for (char c : e->api_key.reveal()) plausible = plausible && std::isalnum(static_cast<unsigned char>(c));
  if (!plausible) {
    return r.ErrorAt(r.Node(env.empty() ? "api_key_file" : "api_key_env"),
                     env.empty() ? "api_key_file" : "api_key_env",
                     "the key from " + e->api_key.source + " is not a MISP API key (40 letters and digits)");
  }
  return {};
}

Status ReadEndpoint(const toml::table& t, const std::string& file, const std::string& prefix, bool remote,
                    MispEndpointConfig* e) {
  TableReader r(t, file, prefix);
  SGSYNC_TRY_STATUS(r.String("url", &e->url, true));
  while (!e->url.empty() && e->url.back() == '/') e->url.pop_back();
  SGSYNC_TRY_STATUS(r.String("baseurl", &e->baseurl));
  while (!e->baseurl.empty() && e->baseurl.back() == '/') e->baseurl.pop_back();
  SGSYNC_TRY_STATUS(r.Bool("insecure_http", &e->insecure_http));
  SGSYNC_TRY_STATUS(CheckUrl(r, "url", e->url, e->insecure_http));
  SGSYNC_TRY_STATUS(ReadApiKey(r, e));
  SGSYNC_TRY_STATUS(r.String("ca_file", &e->ca_file));
  SGSYNC_TRY_STATUS(r.String("pin_sha256", &e->pin_sha256));
  SGSYNC_TRY_STATUS(r.String("client_cert", &e->client_cert));
  SGSYNC_TRY_STATUS(r.String("client_key", &e->client_key));
  if (e->client_cert.empty() != e->client_key.empty())
    return r.ErrorAt(nullptr, "client_cert", "client_cert and client_key go together");
  SGSYNC_TRY_STATUS(r.String("proxy", &e->proxy));
  SGSYNC_TRY_STATUS(r.String("org_uuid", &e->org_uuid, remote));
  if (!e->org_uuid.empty() && !misp::IsUuid(e->org_uuid))
    return r.ErrorAt(r.Node("org_uuid"), "org_uuid", "expected a uuid, found \"" + e->org_uuid + "\"");
  SGSYNC_TRY_STATUS(r.String("org_name", &e->org_name));
  SGSYNC_TRY_STATUS(r.Integer("max_in_flight", &e->max_in_flight, 1, 64));
  SGSYNC_TRY_STATUS(r.Integer("timeout_seconds", &e->timeout_seconds, 1, 86400));
  SGSYNC_TRY_STATUS(r.Integer("max_retry_after_seconds", &e->max_retry_after_seconds, 0, 3600));
  SGSYNC_TRY_STATUS(r.Integer("max_document_memory_mb", &e->max_document_memory_mb, 1, 65536));
  if (remote) SGSYNC_TRY_STATUS(r.Bool("allow_site_admin", &e->allow_site_admin));
  return r.NoUnknownKeys();
}

// A rules value: MISP's JSON as text (what users paste) or the same as a TOML table.
Result<json::value> ReadRules(TableReader& r, std::string_view key) {
  const toml::node* n = r.Node(key);
  if (n == nullptr) return json::value(nullptr);
  if (n->is_string()) {
    auto parsed = misp::ParseJson(n->as_string()->get());
    if (!parsed.ok()) return r.ErrorAt(n, key, "not valid JSON: " + parsed.error().ToString());
    return std::move(*parsed);
  }
  return r.ErrorAt(n, key, "expected MISP's rules as a JSON string ('''{\"tags\": ...}''')");
}

Result<LinkConfig> ReadLink(const toml::table& t, const std::string& file, std::size_t index) {
  LinkConfig link;
  link.line = static_cast<int>(t.source().begin.line);
  TableReader r(t, file, "link[" + std::to_string(index) + "]");
  SGSYNC_TRY_STATUS(r.String("name", &link.name, true));
  if (link.name.empty()) return r.ErrorAt(r.Node("name"), "name", "must not be empty");
  TableReader named(t, file, "link \"" + link.name + "\"");
  std::vector<std::string> directions{"push", "pull"};
  SGSYNC_TRY_STATUS(r.StringList("directions", &directions));
  link.push = link.pull = false;
  for (const auto& d : directions) {
    if (d == "push") {
      link.push = true;
    } else if (d == "pull") {
      link.pull = true;
    } else {
      return named.ErrorAt(r.Node("directions"), "directions",
                           "expected \"push\" and/or \"pull\", found \"" + d + "\"");
    }
  }
  SGSYNC_TRY_STATUS(r.Integer("interval_seconds", &link.interval_seconds, 1, 7 * 86400));
  SGSYNC_TRY_STATUS(
      r.Integer("full_reconciliation_seconds", &link.full_reconciliation_seconds, 0, 365 * 86400));
  for (const EngineSetting& setting : EngineSettings())
    SGSYNC_TRY_STATUS(setting.read(r, setting.key, link.engine));

  SGSYNC_TRY(const toml::table* local, r.Table("local", true));
  SGSYNC_TRY_STATUS(ReadEndpoint(*local, file, "link \"" + link.name + "\".local", false, &link.local));
  SGSYNC_TRY(const toml::table* remote, r.Table("remote", true));
  SGSYNC_TRY_STATUS(ReadEndpoint(*remote, file, "link \"" + link.name + "\".remote", true, &link.remote));

  // The sharing-relevant settings, in the policy's JSON link form.
  bool internal = false, unpublish = false, filter_on_type = false, host_org_id_set = false;
  SGSYNC_TRY_STATUS(r.Bool("internal", &internal));
  SGSYNC_TRY_STATUS(r.Bool("unpublish_event", &unpublish));
  SGSYNC_TRY_STATUS(r.Bool("filter_on_type", &filter_on_type));
  SGSYNC_TRY_STATUS(r.Bool("host_org_id_set", &host_org_id_set));
  std::vector<std::string> blocked_push{"tlp:red"}, blocked_pull, known_urls;
  SGSYNC_TRY_STATUS(r.StringList("blocked_tags_push", &blocked_push));
  SGSYNC_TRY_STATUS(r.StringList("blocked_tags_pull", &blocked_pull));
  SGSYNC_TRY_STATUS(r.StringList("remote_known_server_urls", &known_urls));
  std::vector<std::string> blocked_events, blocked_orgs;
  SGSYNC_TRY_STATUS(r.StringList("pull_blocked_events", &blocked_events));
  SGSYNC_TRY_STATUS(r.StringList("pull_blocked_orgs", &blocked_orgs));
  for (const auto* l : {&blocked_events, &blocked_orgs}) {
    for (const auto& u : *l) {
      if (!misp::IsUuid(u)) {
        const char* key = l == &blocked_events ? "pull_blocked_events" : "pull_blocked_orgs";
        return named.ErrorAt(r.Node(key), key, "expected uuids, found \"" + u + "\"");
      }
    }
  }
  std::string announced;
  SGSYNC_TRY_STATUS(r.String("announced_url", &announced));
  SGSYNC_TRY(json::value push_rules, ReadRules(r, "push_rules"));
  SGSYNC_TRY(json::value pull_rules, ReadRules(r, "pull_rules"));
  SGSYNC_TRY_STATUS(r.NoUnknownKeys());

  auto endpoint = [](const MispEndpointConfig& e) {
    json::object o{{"url", e.baseurl.empty() ? e.url : e.baseurl}};
    if (!e.org_uuid.empty()) o["org"] = json::object{{"uuid", e.org_uuid}, {"name", e.org_name}};
    return o;
  };
  auto list = [](const std::vector<std::string>& v) {
    json::array a;
    for (const auto& s : v) a.emplace_back(s);
    return a;
  };
  json::object& p = link.policy;
  p["name"] = link.name;
  p["local"] = endpoint(link.local);
  p["remote"] = endpoint(link.remote);
  p["internal"] = internal;
  p["host_org_id_set"] = host_org_id_set;
  p["unpublish_event"] = unpublish;
  if (!push_rules.is_null()) p["push_rules"] = push_rules;
  if (!pull_rules.is_null()) p["pull_rules"] = pull_rules;
  p["blocked_tags"] = json::object{{"push", list(blocked_push)}, {"pull", list(blocked_pull)}};
  if (!known_urls.empty()) p["remote_known_server_urls"] = list(known_urls);
  if (!blocked_events.empty()) p["pull_blocked_event_uuids"] = list(blocked_events);
  if (!blocked_orgs.empty()) p["pull_blocked_org_uuids"] = list(blocked_orgs);
  if (!announced.empty()) p["announced_url"] = announced;
  p["settings"] = json::object{{"MISP.enable_synchronisation_filtering_on_type", filter_on_type}};

  // Parsed now with the policy's own reader, so a bad rule fails at --check, not at 3 am.
  // The placeholders stand for what discovery learns: the Portal account's organisation, and the
  // member's own when the file does not name it (MakePolicyLink puts them in).
  json::object parsed = link.policy;
  const json::object placeholder{{"uuid", "00000000-0000-4000-8000-000000000000"}, {"name", "placeholder"}};
  parsed["remote_user_org"] = placeholder;
  if (!parsed["local"].as_object().contains("org")) parsed["local"].as_object()["org"] = placeholder;
  auto checked = policy::ParseLink(parsed);
  if (!checked.ok()) {
    return named.ErrorAt(nullptr, checked.error().where.empty() ? "link" : checked.error().where,
                         checked.error().message);
  }
  link.policy_link = std::move(*checked);
  return link;
}

}  // namespace

Result<DaemonConfig> ParseConfig(const std::string& text, const std::string& name) {
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    return Fail(ErrorCode::kInvalidArgument, name + ":" + std::to_string(e.source().begin.line) + ":" +
                                                 std::to_string(e.source().begin.column) + ": " +
                                                 std::string(e.description()));
  }
  DaemonConfig c;
  c.path = name;
  TableReader r(root, name, "");
  SGSYNC_TRY(const toml::table* state, r.Table("state", false));
  if (state != nullptr) {
    TableReader s(*state, name, "state");
    SGSYNC_TRY_STATUS(s.String("database", &c.state_db));
    SGSYNC_TRY_STATUS(s.Integer("max_attempts", &c.max_attempts, 1, 1000));
    SGSYNC_TRY_STATUS(s.Integer("retention_done_work_days", &c.retention_done_work_days, 0, 36500));
    SGSYNC_TRY_STATUS(s.Integer("retention_audit_days", &c.retention_audit_days, 0, 36500));
    SGSYNC_TRY_STATUS(
        s.Integer("retention_resolved_conflicts_days", &c.retention_resolved_conflicts_days, 0, 36500));
    SGSYNC_TRY_STATUS(s.NoUnknownKeys());
  }
  SGSYNC_TRY(const toml::table* admin, r.Table("admin", false));
  if (admin != nullptr) {
    TableReader a(*admin, name, "admin");
    SGSYNC_TRY_STATUS(a.String("socket", &c.admin_socket));
    std::string mode = "0600";
    SGSYNC_TRY_STATUS(a.String("socket_mode", &mode));
    if (mode != "0600" && mode != "0660")
      return a.ErrorAt(a.Node("socket_mode"), "socket_mode",
                       "expected \"0600\" or \"0660\", found \"" + mode + "\"");
    c.admin_socket_mode = mode == "0600" ? 0600 : 0660;
    SGSYNC_TRY_STATUS(a.String("socket_group", &c.admin_socket_group));
    if (c.admin_socket_mode == 0660 && c.admin_socket_group.empty())
      return a.ErrorAt(a.Node("socket_mode"), "socket_mode",
                       "0660 needs socket_group (the group operators are in)");
    SGSYNC_TRY_STATUS(a.String("tcp_listen", &c.admin_tcp_listen));
    SGSYNC_TRY_STATUS(a.String("tls_cert", &c.admin_tls_cert));
    SGSYNC_TRY_STATUS(a.String("tls_key", &c.admin_tls_key));
    SGSYNC_TRY_STATUS(a.String("tls_client_ca", &c.admin_tls_client_ca));
    if (!c.admin_tcp_listen.empty() &&
        (c.admin_tls_cert.empty() || c.admin_tls_key.empty() || c.admin_tls_client_ca.empty())) {
      return a.ErrorAt(
          a.Node("tcp_listen"), "tcp_listen",
          "a TCP admin listener needs tls_cert, tls_key and tls_client_ca (clients must present a "
          "certificate); sgsyncd does not serve the admin API over TCP without them");
    }
    SGSYNC_TRY_STATUS(a.NoUnknownKeys());
  }
  SGSYNC_TRY(const toml::table* log, r.Table("log", false));
  if (log != nullptr) {
    TableReader l(*log, name, "log");
    SGSYNC_TRY_STATUS(l.String("format", &c.log_format));
    if (c.log_format != "text" && c.log_format != "json")
      return l.ErrorAt(l.Node("format"), "format",
                       "expected \"text\" or \"json\", found \"" + c.log_format + "\"");
    SGSYNC_TRY_STATUS(l.String("level", &c.log_level));
    static const std::set<std::string> kLevels{"trace", "debug", "info", "warn", "error"};
    if (!kLevels.count(c.log_level))
      return l.ErrorAt(l.Node("level"), "level",
                       "expected trace, debug, info, warn or error, found \"" + c.log_level + "\"");
    SGSYNC_TRY_STATUS(l.NoUnknownKeys());
  }
  SGSYNC_TRY(const toml::table* metrics, r.Table("metrics", false));
  if (metrics != nullptr) {
    TableReader m(*metrics, name, "metrics");
    SGSYNC_TRY_STATUS(m.String("listen", &c.metrics_listen));
    SGSYNC_TRY_STATUS(m.Integer("ready_failing_seconds", &c.ready_failing_seconds, 1, 7 * 86400));
    if (!c.metrics_listen.empty()) {
      if (auto hp = ParseHostPort(c.metrics_listen); !hp.ok())
        return m.ErrorAt(m.Node("listen"), "listen", hp.error().message + " (or \"\" for off)");
    }
    SGSYNC_TRY_STATUS(m.NoUnknownKeys());
  }
  SGSYNC_TRY_STATUS(r.Integer("shutdown_grace_seconds", &c.shutdown_grace_seconds, 0, 3600));
  SGSYNC_TRY_STATUS(r.Integer("max_documents_memory_mb", &c.max_documents_memory_mb, 1, 1 << 20));
  SGSYNC_TRY_STATUS(r.Integer("workers", &c.workers, 1, 256));
  SGSYNC_TRY_STATUS(r.Integer("max_requests_in_flight", &c.max_requests_in_flight, 1, 4096));
  SGSYNC_TRY_STATUS(r.Integer("run_time_slice_seconds", &c.run_time_slice_seconds, 1, 86400));
  const toml::node* links = r.Node("link");
  if (links == nullptr || !links->is_array_of_tables()) {
    return r.ErrorAt(links, "link", "expected at least one [[link]] table");
  }
  std::set<std::string> names;
  std::size_t i = 0;
  for (const auto& t : *links->as_array()) {
    SGSYNC_TRY(LinkConfig link, ReadLink(*t.as_table(), name, i++));
    if (!names.insert(link.name).second) {
      return Fail(ErrorCode::kInvalidArgument,
                  name + ":" + std::to_string(link.line) + ": link \"" + link.name + "\": name used twice");
    }
    c.links.push_back(std::move(link));
  }
  SGSYNC_TRY_STATUS(r.NoUnknownKeys());
  return c;
}

Result<DaemonConfig> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kIo, "cannot read the configuration " + path + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

Result<policy::Link> MakePolicyLink(const LinkConfig& link, const policy::OrgRef& remote_user_org,
                                    const policy::OrgRef& local_org) {
  policy::Link out = link.policy_link;
  out.remote_user_org = remote_user_org;
  const json::value* local = link.policy.if_contains("local");
  if (local != nullptr && local->is_object() && !local->as_object().contains("org")) {
    // Read with a placeholder; the policy's reader takes the local organisation as the owner of
    // the link too unless the link names one (policy::ParseLink).
    out.local.org = local_org;
    if (!link.policy.contains("owner_org")) out.owner_org = local_org;
  }
  return out;
}

Result<HostPort> ParseHostPort(std::string_view text) {
  auto colon = text.rfind(':');
  std::string_view port = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (colon == std::string_view::npos || colon == 0 || port.empty() || ec != std::errc() ||
      ptr != port.data() + port.size() || value > 65535) {
    return Fail(ErrorCode::kInvalidArgument,
                "expected HOST:PORT with a port from 0 to 65535, found \"" + std::string(text) + "\"");
  }
  return HostPort{std::string(text.substr(0, colon)), static_cast<std::uint16_t>(value)};
}

std::string Secret::fingerprint() const {
  if (value_.empty()) return "";
  return "sha256:" + Sha256Hex(value_).substr(0, 16);
}

std::vector<std::string_view> EngineSettingKeys() {
  std::vector<std::string_view> keys;
  for (const EngineSetting& setting : EngineSettings()) keys.push_back(setting.key);
  return keys;
}

std::string SharingIdentity(const LinkConfig& link) {
  json::object o = link.policy;
  o["directions"] = json::array{json::value(link.push), json::value(link.pull)};
  return Sha256Hex(json::serialize(o));
}

}  // namespace sgsync::config
