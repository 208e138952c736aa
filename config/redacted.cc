// The configuration as the admin API's GetConfig shows it: every secret replaced by where it comes
// from (config.h, Redacted).
#include <toml++/toml.h>

#include <sstream>

#include "config/config.h"
#include "config/engine_settings.h"

namespace sgsync::config {

json::object Redacted(const DaemonConfig& c) {
  auto endpoint = [](const MispEndpointConfig& e) {
    return json::object{{"url", e.url},
                        {"baseurl", e.baseurl},
                        {"api_key", "<redacted: " + e.api_key.source + ">"},
                        {"api_key_fingerprint", e.api_key.fingerprint()},
                        {"ca_file", e.ca_file},
                        {"pin_sha256", e.pin_sha256},
                        {"client_cert", e.client_cert},
                        {"client_key", e.client_key.empty() ? "" : "<redacted: file>"},
                        {"proxy", e.proxy},
                        {"insecure_http", e.insecure_http},
                        {"org_uuid", e.org_uuid},
                        {"org_name", e.org_name},
                        {"max_in_flight", e.max_in_flight},
                        {"timeout_seconds", e.timeout_seconds},
                        {"max_retry_after_seconds", e.max_retry_after_seconds},
                        {"max_document_memory_mb", e.max_document_memory_mb},
                        {"allow_site_admin", e.allow_site_admin}};
  };
  json::array links;
  for (const auto& l : c.links) {
    json::object link{{"name", l.name},
                      {"push", l.push},
                      {"pull", l.pull},
                      {"interval_seconds", l.interval_seconds},
                      {"full_reconciliation_seconds", l.full_reconciliation_seconds}};
    for (const EngineSetting& setting : EngineSettings()) link[setting.key] = setting.show(l.engine);
    link["local"] = endpoint(l.local);
    link["remote"] = endpoint(l.remote);
    link["policy"] = l.policy;
    links.push_back(std::move(link));
  }
  return json::object{{"path", c.path},
                      {"state_db", c.state_db},
                      {"max_attempts", c.max_attempts},
                      {"admin_socket", c.admin_socket},
                      {"admin_tcp_listen", c.admin_tcp_listen},
                      {"log_format", c.log_format},
                      {"log_level", c.log_level},
                      {"metrics_listen", c.metrics_listen},
                      {"shutdown_grace_seconds", c.shutdown_grace_seconds},
                      {"max_documents_memory_mb", c.max_documents_memory_mb},
                      {"workers", c.workers},
                      {"max_requests_in_flight", c.max_requests_in_flight},
                      {"run_time_slice_seconds", c.run_time_slice_seconds},
                      {"links", std::move(links)}};
}

namespace {

toml::table TomlTable(const json::object& o);

void TomlInsert(toml::table& t, std::string_view key, const json::value& v);

toml::array TomlArray(const json::array& a) {
  toml::array out;
  for (const auto& v : a) {
    if (v.is_object()) {
      out.push_back(TomlTable(v.as_object()));
    } else if (v.is_array()) {
      out.push_back(TomlArray(v.as_array()));
    } else if (v.is_bool()) {
      out.push_back(v.as_bool());
    } else if (v.is_int64()) {
      out.push_back(v.as_int64());
    } else if (v.is_string()) {
      out.push_back(std::string(v.as_string()));
    } else {
      out.push_back(json::serialize(v));
    }
  }
  return out;
}

void TomlInsert(toml::table& t, std::string_view key, const json::value& v) {
  if (v.is_object()) {
    t.insert(key, TomlTable(v.as_object()));
  } else if (v.is_array()) {
    t.insert(key, TomlArray(v.as_array()));
  } else if (v.is_bool()) {
    t.insert(key, v.as_bool());
  } else if (v.is_int64()) {
    t.insert(key, v.as_int64());
  } else if (v.is_uint64()) {
    t.insert(key, static_cast<std::int64_t>(v.as_uint64()));
  } else if (v.is_string()) {
    t.insert(key, std::string(v.as_string()));
  } else if (!v.is_null()) {
    t.insert(key, json::serialize(v));
  }
}

toml::table TomlTable(const json::object& o) {
  toml::table t;
  for (const auto& kv : o) TomlInsert(t, kv.key(), kv.value());
  return t;
}

}  // namespace

std::string RedactedToml(const DaemonConfig& c) {
  std::stringstream out;
  out << TomlTable(Redacted(c)) << "\n";
  return out.str();
}

}  // namespace sgsync::config
