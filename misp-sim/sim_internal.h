// misp-sim/sim_internal.h: what the parts of misp-sim share below MispSim::Impl: users and
// their roles, MISP's response shapes, request routes, stored-document helpers. Private to misp-sim/.
#pragma once

#include <openssl/rand.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/encoding.h"
#include "misp-sim/generator.h"
#include "misp-sim/sim.h"
#include "sqlite/sqlite.h"
#include "misp/event.h"
#include "misp/json.h"
#include "sync/policy/other_data.h"
#include "sync/policy/policy.h"

namespace sgsync::sim {

namespace json = boost::json;
using misp::IntOr;
using misp::StringOr;
using sqlite::Database;

inline constexpr const char* kJsonType = "application/json; charset=UTF-8";

// A built-in role's flags, in the order and with the values MISP reports them in users/view/me.
// Site admin and Sync user: the real 2.5.1 captures (users-view-me-admin.json,
// users-view-me-sync-user.json). Org Admin and User: MISP's INSTALL/MYSQL.sql (role ids 2 and 3),
// docs/misp-sim.md "Users, organisations, roles".
struct RoleRecord {
  const char* id;
  const char* name;
  const char* db_name;  // how misp-sim stores it and /_sim/setup names it
  std::vector<std::pair<const char*, bool>> flags;
  bool default_role;
  bool flag(std::string_view f) const {
    for (const auto& [k, v] : flags)
      if (f == k) return v;
    return false;
  }
};

inline const RoleRecord& RecordOf(Role r) {
  // Flag columns: add modify modify_org publish delegate sync admin audit auth site_admin
  // regexp_access tagger template sharing_group tag_editor sighting object_template publish_zmq
  // publish_kafka decaying galaxy_editor warninglist view_feed_correlations analyst_data.
  static const auto make = [](std::initializer_list<bool> v) {
    static const char* names[] = {"perm_add",
                                  "perm_modify",
                                  "perm_modify_org",
                                  "perm_publish",
                                  "perm_delegate",
                                  "perm_sync",
                                  "perm_admin",
                                  "perm_audit",
                                  "perm_auth",
                                  "perm_site_admin",
                                  "perm_regexp_access",
                                  "perm_tagger",
                                  "perm_template",
                                  "perm_sharing_group",
                                  "perm_tag_editor",
                                  "perm_sighting",
                                  "perm_object_template",
                                  "perm_publish_zmq",
                                  "perm_publish_kafka",
                                  "perm_decaying",
                                  "perm_galaxy_editor",
                                  "perm_warninglist",
                                  "perm_view_feed_correlations",
                                  "perm_analyst_data"};
    std::vector<std::pair<const char*, bool>> out;
    std::size_t i = 0;
    for (bool b : v) out.emplace_back(names[i++], b);
    return out;
  };
  static const RoleRecord admin{
      "1", "admin", "site_admin",
      make({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}), false};
  static const RoleRecord org_admin{
      "2", "Org Admin", "org_admin",
      make({1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1}), false};
  static const RoleRecord user{"3", "User", "user",
                               make({1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}),
                               true};
  static const RoleRecord sync{"5", "Sync user", "sync_user",
                               make({1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1}),
                               false};
  switch (r) {
    case Role::kSiteAdmin:
      return admin;
    case Role::kOrgAdmin:
      return org_admin;
    case Role::kSyncUser:
      return sync;
    case Role::kUser:
      break;
  }
  return user;
}

inline std::optional<Role> RoleNamed(std::string_view db_name) {
  for (Role r : {Role::kSiteAdmin, Role::kOrgAdmin, Role::kUser, Role::kSyncUser})
    if (db_name == RecordOf(r).db_name) return r;
  return std::nullopt;
}

struct User {
  std::int64_t id = 0;
  std::string email;
  std::int64_t org_id = 0;
  std::string org_uuid;
  std::string org_name;
  Role role = Role::kUser;
  bool site_admin() const { return role == Role::kSiteAdmin; }
  bool perm_sync() const { return RecordOf(role).flag("perm_sync"); }
  bool perm_publish() const { return RecordOf(role).flag("perm_publish"); }
  bool perm_sharing_group() const { return RecordOf(role).flag("perm_sharing_group"); }
  bool perm(std::string_view flag) const { return RecordOf(role).flag(flag); }
};

// The Role record of users/view/me. MISP derives `permission` from the add/modify flags:
// "3" publish when perm_publish, else "2" manage_org (app/Model/Role.php).
inline json::object RoleJson(Role r) {
  const RoleRecord& rec = RecordOf(r);
  json::object o{{"id", rec.id},
                 {"name", rec.name},
                 {"created", "2026-11-27 18:43:58"},
                 {"modified", "2026-11-27 18:43:58"}};
  auto put = [&](const char* k) { o[k] = rec.flag(k); };
  for (const char* k :
       {"perm_add", "perm_modify", "perm_modify_org", "perm_publish", "perm_delegate", "perm_sync",
        "perm_admin", "perm_audit", "perm_auth", "perm_site_admin", "perm_regexp_access", "perm_tagger",
        "perm_template", "perm_sharing_group", "perm_tag_editor", "perm_sighting", "perm_object_template"})
    put(k);
  o["default_role"] = rec.default_role;
  o["memory_limit"] = nullptr;
  o["max_execution_time"] = nullptr;
  o["restricted_to_site_admin"] = false;
  for (const char* k : {"perm_publish_zmq", "perm_publish_kafka", "perm_decaying"}) put(k);
  o["enforce_rate_limit"] = false;
  o["rate_limit_count"] = "0";
  for (const char* k :
       {"perm_galaxy_editor", "perm_warninglist", "perm_view_feed_correlations", "perm_analyst_data"})
    put(k);
  o["perm_skip_otp"] = false;
  bool publish = rec.flag("perm_publish");
  o["permission"] = publish ? "3" : "2";
  o["permission_description"] = publish ? "publish" : "manage_org";
  return o;
}

inline HttpResponse JsonResponse(int status, const json::value& body,
                                 std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = json::serialize(body);
  r.headers = std::move(headers);
  r.headers.emplace_back("Content-Type", kJsonType);
  return r;
}

// MISP's error body: {"name", "message", "url"} with the same text twice (real-2.5.1 captures).
inline HttpResponse ErrorResponse(int status, const std::string& text, const std::string& url) {
  return JsonResponse(status, json::object{{"name", text}, {"message", text}, {"url", url}});
}

inline std::string RandomHex(int bytes) {
  std::string buf(static_cast<std::size_t>(bytes), '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(buf.data()), bytes);
  return HexEncode(buf);
}

// The path split into segments, named parameters (`key:value`, repeatable) set aside. A query
// string is dropped: MISP ignores `?deleted[]=...` on events/view (events-view-query-deleted.json).
struct Route {
  std::vector<std::string> segments;
  std::multimap<std::string, std::string> named;
  std::string path;  // without the query
  bool Has(const std::string& key, const std::string& value) const {
    auto [a, b] = named.equal_range(key);
    for (auto it = a; it != b; ++it) {
      if (it->second == value) return true;
    }
    return false;
  }
};

inline Route ParseRoute(const std::string& target) {
  Route r;
  r.path = target.substr(0, target.find('?'));
  std::string path = r.path;
  if (path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0) path.resize(path.size() - 5);
  std::size_t i = 0;
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string seg = path.substr(i, j - i);
    if (!seg.empty()) {
      std::size_t colon = seg.find(':');
      if (colon != std::string::npos) {
        r.named.emplace(seg.substr(0, colon), seg.substr(colon + 1));
      } else {
        r.segments.push_back(seg);
      }
    }
    i = j + 1;
  }
  return r;
}

// Stored documents are parsed into an arena freed with the request: a 100-attribute event is a
// few thousand values, and one heap allocation each dominated the cost of a view.
inline json::object ParseStored(std::string_view text) {
  return json::parse(text, json::make_shared_resource<json::monotonic_resource>()).as_object();
}

// {"Event": e} in e's own storage: building it in the default heap would copy the whole event.
inline json::value WrapEvent(json::object e) {
  json::object wrapper(e.storage());
  wrapper.emplace("Event", std::move(e));
  return wrapper;
}

// Rebuilds `o` with `fields` first, in MISP's order (absent ones get their default, or are left out
// when the default is empty), then every other key as it was.
using FieldDefaults = std::initializer_list<std::pair<std::string_view, std::optional<json::value>>>;
inline void Reorder(json::object& o, FieldDefaults fields) {
  json::object out(o.storage());
  out.reserve(o.size() + fields.size());
  for (const auto& [key, fallback] : fields) {
    if (json::value* v = o.if_contains(key)) {
      out.emplace(key, std::move(*v));
    } else if (fallback) {
      out.emplace(key, *fallback);
    }
  }
  for (auto& kv : o) {
    if (!out.contains(kv.key())) out.emplace(kv.key(), std::move(kv.value()));
  }
  o = std::move(out);
}

inline const std::optional<json::value> kOmit;
inline json::value Null() { return json::value(nullptr); }

// PHP's empty(): null, false, 0, "0", "" and an empty array or object.
inline bool PhpEmpty(const json::value* v) {
  if (v == nullptr || v->is_null()) return true;
  if (v->is_bool()) return !v->as_bool();
  if (v->is_int64()) return v->as_int64() == 0;
  if (v->is_uint64()) return v->as_uint64() == 0;
  if (v->is_double()) return v->as_double() == 0;
  if (v->is_string()) return v->as_string().empty() || v->as_string() == "0";
  if (v->is_array()) return v->as_array().empty();
  return v->as_object().empty();
}

inline bool PhpIsset(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && !v->is_null();
}

inline bool IsDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace sgsync::sim
