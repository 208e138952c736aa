#include "misp-sim/sim.h"

#include <openssl/rand.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/encoding.h"
#include "misp-sim/generator.h"
#include "state/sqlite.h"
#include "sync/misp/event.h"
#include "sync/misp/json.h"
#include "sync/policy/other_data.h"
#include "sync/policy/policy.h"

namespace sgsync::sim {
namespace {

namespace json = boost::json;
using misp::IntOr;
using misp::StringOr;
using state::Database;

constexpr const char* kJsonType = "application/json; charset=UTF-8";

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

const RoleRecord& RecordOf(Role r) {
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

std::optional<Role> RoleNamed(std::string_view db_name) {
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
json::object RoleJson(Role r) {
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

HttpResponse JsonResponse(int status, const json::value& body,
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = json::serialize(body);
  r.headers = std::move(headers);
  r.headers.emplace_back("Content-Type", kJsonType);
  return r;
}

// MISP's error body: {"name", "message", "url"} with the same text twice (real-2.5.1 captures).
HttpResponse ErrorResponse(int status, const std::string& text, const std::string& url) {
  return JsonResponse(status, json::object{{"name", text}, {"message", text}, {"url", url}});
}

std::string RandomHex(int bytes) {
  std::string buf(static_cast<std::size_t>(bytes), '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(buf.data()), bytes);
  return HexEncode(buf);
}

std::string NewUuid() {
  std::string h = RandomHex(16);
  h[12] = '4';
  h[16] = "89ab"[h[16] % 4];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
         h.substr(20, 12);
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

Route ParseRoute(const std::string& target) {
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
json::object ParseStored(std::string_view text) {
  return json::parse(text, json::make_shared_resource<json::monotonic_resource>()).as_object();
}

// {"Event": e} in e's own storage: building it in the default heap would copy the whole event.
json::value WrapEvent(json::object e) {
  json::object wrapper(e.storage());
  wrapper.emplace("Event", std::move(e));
  return wrapper;
}

// Rebuilds `o` with `fields` first, in MISP's order (absent ones get their default, or are left out
// when the default is empty), then every other key as it was.
using FieldDefaults = std::initializer_list<std::pair<std::string_view, std::optional<json::value>>>;
void Reorder(json::object& o, FieldDefaults fields) {
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

const std::optional<json::value> kOmit;
json::value Null() { return json::value(nullptr); }

bool IsDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

struct MispSim::Impl {
  SimConfig config;
  std::unique_ptr<Database> db;
  std::mutex mu;
  std::vector<Fault> faults;
  std::vector<LoggedRequest> log;
  std::mt19937_64 rng{12345};

  // ---------------------------------------------------------------- storage

  Status CreateSchema() {
    return db->Exec(R"sql(
CREATE TABLE IF NOT EXISTS orgs (id INTEGER PRIMARY KEY, uuid TEXT UNIQUE NOT NULL, name TEXT NOT NULL, local INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, org_id INTEGER NOT NULL, role TEXT NOT NULL, api_key TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS servers (id INTEGER PRIMARY KEY, url TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sharing_groups (id INTEGER PRIMARY KEY, uuid TEXT UNIQUE NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, uuid TEXT UNIQUE NOT NULL, org_id INTEGER NOT NULL,
  timestamp INTEGER NOT NULL, published INTEGER NOT NULL, sighting_timestamp INTEGER NOT NULL DEFAULT 0, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sightings (id INTEGER PRIMARY KEY, uuid TEXT UNIQUE NOT NULL COLLATE NOCASE, event_id INTEGER NOT NULL,
  attribute_id TEXT NOT NULL, attribute_uuid TEXT NOT NULL, org_id INTEGER NOT NULL, date_sighting INTEGER NOT NULL,
  source TEXT NOT NULL, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS proposals (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, timestamp INTEGER NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clusters (id INTEGER PRIMARY KEY, uuid TEXT UNIQUE NOT NULL COLLATE NOCASE, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS analyst_data (id INTEGER PRIMARY KEY, type TEXT NOT NULL, uuid TEXT UNIQUE NOT NULL COLLATE NOCASE,
  json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL COLLATE NOCASE, colour TEXT NOT NULL,
  exportable INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS event_blocklist (uuid TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS element_uuids (uuid TEXT PRIMARY KEY COLLATE NOCASE, event_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
)sql");
  }

  std::int64_t NextId(const char* counter) {
    auto up = db->Prepare(
        "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + "
        "1");
    (void)(*up)->Bind(1, counter).Run();
    auto q = db->Prepare("SELECT value FROM counters WHERE name = ?");
    (*q)->Bind(1, counter);
    (void)(*q)->Step();
    return (*q)->Int(0);
  }

  std::optional<User> UserByKey(const std::string& key) {
    auto q = db->Prepare(
        "SELECT u.id, u.email, u.org_id, o.uuid, o.name, u.role FROM users u JOIN orgs o ON o.id = u.org_id "
        "WHERE u.api_key = ?");
    (*q)->Bind(1, key);
    if (!*(*q)->Step()) return std::nullopt;
    User u{(*q)->Int(0), (*q)->Text(1), (*q)->Int(2), (*q)->Text(3), (*q)->Text(4), Role::kUser};
    std::string role = (*q)->Text(5);
    u.role = RoleNamed(role).value_or(Role::kUser);
    return u;
  }

  std::optional<std::pair<std::int64_t, std::string>> OrgByUuid(const std::string& uuid) {
    auto q = db->Prepare("SELECT id, name FROM orgs WHERE uuid = ? COLLATE NOCASE");
    (*q)->Bind(1, uuid);
    if (!*(*q)->Step()) return std::nullopt;
    return std::make_pair((*q)->Int(0), (*q)->Text(1));
  }

  // Organisation::captureOrg (spec 7.10): by uuid, created as an external org when unknown.
  // A name already taken by another organisation gets a "_NNNN" suffix (spec 12 case 53).
  std::int64_t CaptureOrg(const std::string& uuid, const std::string& name) {
    if (auto o = OrgByUuid(uuid)) return o->first;
    std::string wanted = name.empty() ? uuid : name;
    auto taken = db->Prepare("SELECT 1 FROM orgs WHERE name = ? COLLATE NOCASE");
    (*taken)->Bind(1, wanted);
    if (*(*taken)->Step()) wanted += "_" + std::to_string(1000 + rng() % 9000);
    auto ins = db->Prepare("INSERT INTO orgs (uuid, name, local) VALUES (?, ?, 0)");
    (void)(*ins)->Bind(1, uuid).Bind(2, wanted).Run();
    return db->LastInsertId();
  }

  std::vector<std::string> ServerUrls() {
    std::vector<std::string> out;
    auto q = db->Prepare("SELECT url FROM servers");
    while (*(*q)->Step()) out.push_back((*q)->Text(0));
    return out;
  }

  // A loaded document may come without instance-local ids (the conformance cases are normalised
  // that way): a sharing group's server row then gets the id MISP stores for it, 0 for this
  // instance's own row (SharingGroupServer.server_id, spec 4.1), else its server record's id.
  void CompleteServerIds(json::object& holder) {
    json::value* sg = holder.if_contains("SharingGroup");
    json::value* rows =
        sg != nullptr && sg->is_object() ? sg->as_object().if_contains("SharingGroupServer") : nullptr;
    if (rows != nullptr && rows->is_array()) {
      for (auto& row : rows->as_array()) {
        if (!row.is_object() || row.as_object().contains("server_id")) continue;
        const json::value* server = row.as_object().if_contains("Server");
        std::string url(server != nullptr && server->is_object() ? StringOr(server->as_object(), "url") : "");
        std::int64_t id = -1;
        if (policy::SameUrl(url, config.base_url)) {
          id = 0;
        } else {
          auto q = db->Prepare("SELECT id, url FROM servers");
          while (*(*q)->Step()) {
            if (policy::SameUrl((*q)->Text(1), url)) id = (*q)->Int(0);
          }
        }
        if (id >= 0) row.as_object()["server_id"] = std::to_string(id);
      }
    }
    for (const char* key : {"Attribute", "Object", "EventReport"}) {
      json::value* list = holder.if_contains(key);
      if (list == nullptr || !list->is_array()) continue;
      for (auto& el : list->as_array()) {
        if (el.is_object()) CompleteServerIds(el.as_object());
      }
    }
  }

  struct StoredEvent {
    std::int64_t id = 0;
    std::int64_t org_id = 0;
    json::object event;
  };

  std::optional<StoredEvent> LoadEvent(const std::string& uuid_or_id) {
    auto q = db->Prepare(IsDigits(uuid_or_id)
                             ? "SELECT id, org_id, json FROM events WHERE id = ?"
                             : "SELECT id, org_id, json FROM events WHERE uuid = ? COLLATE NOCASE");
    if (IsDigits(uuid_or_id)) {
      (*q)->Bind(1, static_cast<std::int64_t>(std::stoll(uuid_or_id)));
    } else {
      (*q)->Bind(1, uuid_or_id);
    }
    if (!*(*q)->Step()) return std::nullopt;
    StoredEvent e{(*q)->Int(0), (*q)->Int(1), ParseStored((*q)->TextView(2))};
    return e;
  }

  // Sightings live in their own table (they are added without touching the event, spec 8.1);
  // SaveEvent moves any embedded `Attribute.Sighting[]` there and RenderFor puts them back.
  Status SaveEvent(StoredEvent&& e) { return SaveEvent(e); }
  Status SaveEvent(StoredEvent& e) {
    std::int64_t embedded_latest = 0;
    auto take_sightings = [&](json::object& attribute) {
      json::value* list = attribute.if_contains("Sighting");
      if (list == nullptr) return;
      if (list->is_array()) {
        for (const auto& row : list->as_array()) {
          if (row.is_object() && StoreSighting(row.as_object(), e.id, attribute, std::nullopt, true))
            embedded_latest = std::max(embedded_latest, IntOr(row.as_object(), "date_sighting", 0));
        }
      }
      attribute.erase("Sighting");
    };
    for (const char* key : {"Attribute", "Object"}) {
      json::value* list = e.event.if_contains(key);
      if (list == nullptr || !list->is_array()) continue;
      for (auto& item : list->as_array()) {
        if (!item.is_object()) continue;
        if (std::string_view(key) == "Attribute") {
          take_sightings(item.as_object());
        } else if (json::value* attrs = item.as_object().if_contains("Attribute");
                   attrs != nullptr && attrs->is_array()) {
          for (auto& a : attrs->as_array()) {
            if (a.is_object()) take_sightings(a.as_object());
          }
        }
      }
    }
    RegisterElements(e);
    auto s = db->Prepare(
        "INSERT INTO events (id, uuid, org_id, timestamp, published, json) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET timestamp = excluded.timestamp, published = excluded.published, json "
        "= excluded.json");
    if (!s.ok()) return s.error();
    SGSYNC_TRY_STATUS((*s)->Bind(1, e.id)
                          .Bind(2, StringOr(e.event, "uuid"))
                          .Bind(3, e.org_id)
                          .Bind(4, IntOr(e.event, "timestamp", 0))
                          .Bind(5, static_cast<std::int64_t>(misp::BoolOr(e.event, "published", false)))
                          .Bind(6, json::serialize(e.event))
                          .Run());
    // Sightings captured with an event (a pulled events/view, a loaded document) date the event's
    // sighting_timestamp by the newest of them: misp-sim's rule, docs/misp-sim.md "Sightings".
    if (embedded_latest > 0) TouchSightingTimestamp(e.id, embedded_latest);
    return Status();
  }

  // Attribute and object uuids belong to one event (spec 7.5, "Attribute uuid in another event").
  void RegisterElements(const StoredEvent& e) {
    auto reg = [&](const json::object& el) {
      auto ins = db->Prepare("INSERT OR IGNORE INTO element_uuids (uuid, event_id) VALUES (?, ?)");
      (void)(*ins)->Bind(1, StringOr(el, "uuid")).Bind(2, e.id).Run();
    };
    for (auto& a : misp::EventView(const_cast<json::object&>(e.event)).attribute_views()) reg(a.json());
    for (auto& o : misp::EventView(const_cast<json::object&>(e.event)).object_views()) {
      reg(o.json());
      for (auto& a : o.attribute_views()) reg(a.json());
    }
  }

  bool BelongsToAnotherEvent(std::string_view uuid, std::int64_t event_id) {
    auto q = db->Prepare("SELECT event_id FROM element_uuids WHERE uuid = ?");
    (*q)->Bind(1, uuid);
    return *(*q)->Step() && (*q)->Int(0) != event_id;
  }

  // Stores one sighting unless its uuid is known; `org_id` overrides the row's organisation.
  // Returns whether it was new.
  // `embedded`: captured with an event (Sighting::captureSightings: the Organisation by uuid decides
  // alone) rather than received through bulkSaveSightings.
  bool StoreSighting(const json::object& row, std::int64_t event_id, const json::object& attribute,
                     std::optional<std::int64_t> org_id, bool embedded = false) {
    std::string uuid(StringOr(row, "uuid"));
    if (uuid.empty()) uuid = NewUuid();
    std::int64_t org = org_id.value_or(0);
    if (!org_id) {
      // A perm_sync writer's row keeps its organisation when it names one (org_id non-zero and an
      // Organisation); else the sighting is anonymous, org 0 (spec 8.1, bulkSaveSightings).
      std::string org_uuid(misp::SightingView(const_cast<json::object&>(row)).org_uuid());
      const json::value* o = row.if_contains("Organisation");
      org = org_uuid.empty() || (!embedded && IntOr(row, "org_id", 0) == 0)
                ? 0
                : CaptureOrg(org_uuid, o != nullptr && o->is_object()
                                           ? std::string(StringOr(o->as_object(), "name"))
                                           : "");
    }
    std::int64_t date = IntOr(row, "date_sighting", static_cast<std::int64_t>(std::time(nullptr)));
    auto ins = db->Prepare(
        "INSERT OR IGNORE INTO sightings (uuid, event_id, attribute_id, attribute_uuid, org_id, "
        "date_sighting, source, type) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    (void)(*ins)
        ->Bind(1, uuid)
        .Bind(2, event_id)
        .Bind(3, StringOr(attribute, "id"))
        .Bind(4, StringOr(attribute, "uuid"))
        .Bind(5, org)
        .Bind(6, date)
        .Bind(7, StringOr(row, "source"))
        .Bind(8, std::to_string(IntOr(row, "type", 0)))
        .Run();
    return db->Changes() == 1;
  }

  // What moves an event's sighting_timestamp (spec 8.1, trace-push-pull.jsonl seq 12-18): publishing
  // its sightings and saving received ones set it to the time of the save; sightings/add does not.
  void TouchSightingTimestamp(std::int64_t event_id, std::int64_t when) {
    auto up = db->Prepare("UPDATE events SET sighting_timestamp = max(sighting_timestamp, ?) WHERE id = ?");
    (void)(*up)->Bind(1, when).Bind(2, event_id).Run();
  }

  // The sightings of an event that `u` may see (policy 0, spec 8.1), keyed by attribute uuid, in the
  // shape events/view embeds them (events-view-uuid-admin.json).
  std::map<std::string, json::array> SightingsFor(std::int64_t event_id, bool owner, const User& u) {
    std::map<std::string, json::array> out;
    auto q = db->Prepare(
        "SELECT s.id, s.attribute_id, s.org_id, s.date_sighting, s.uuid, s.source, s.type, s.attribute_uuid, "
        "o.uuid, o.name "
        "FROM sightings s LEFT JOIN orgs o ON o.id = s.org_id WHERE s.event_id = ? ORDER BY s.id");
    (*q)->Bind(1, event_id);
    while (*(*q)->Step()) {
      if (!owner && (*q)->Int(2) != u.org_id) continue;
      // An anonymous sighting (org 0) has no organisation to show.
      json::value organisation =
          (*q)->Int(2) == 0
              ? json::value(nullptr)
              : json::value(json::object{
                    {"id", std::to_string((*q)->Int(2))}, {"uuid", (*q)->Text(8)}, {"name", (*q)->Text(9)}});
      out[(*q)->Text(7)].push_back(json::object{{"id", std::to_string((*q)->Int(0))},
                                                {"attribute_id", (*q)->Text(1)},
                                                {"event_id", std::to_string(event_id)},
                                                {"org_id", std::to_string((*q)->Int(2))},
                                                {"date_sighting", std::to_string((*q)->Int(3))},
                                                {"uuid", (*q)->Text(4)},
                                                {"source", (*q)->Text(5)},
                                                {"type", (*q)->Text(6)},
                                                {"attribute_uuid", (*q)->Text(7)},
                                                {"Organisation", std::move(organisation)}});
      if (out[(*q)->Text(7)].back().as_object()["Organisation"].is_null())
        out[(*q)->Text(7)].back().as_object().erase("Organisation");
    }
    return out;
  }

  // ---------------------------------------------------------------- MISP's stored shapes

  json::object OrgRef(std::int64_t id, bool with_local) {
    auto q = db->Prepare("SELECT name, uuid, local FROM orgs WHERE id = ?");
    (*q)->Bind(1, id);
    json::object o;
    if (!*(*q)->Step()) return o;
    o["id"] = std::to_string(id);
    o["name"] = (*q)->Text(0);
    o["uuid"] = (*q)->Text(1);
    if (with_local) o["local"] = (*q)->Int(2) != 0;
    return o;
  }

  // The organisation record users/view/me and sharing_groups/view show (users-view-me-*.json).
  json::object FullOrg(std::int64_t id) {
    json::object ref = OrgRef(id, true);
    return json::object{{"id", ref["id"]},
                        {"name", ref["name"]},
                        {"date_created", "2026-11-27 18:44:53"},
                        {"date_modified", "2026-11-27 18:44:53"},
                        {"description", ""},
                        {"type", ""},
                        {"nationality", ""},
                        {"sector", ""},
                        {"created_by", "0"},
                        {"uuid", ref["uuid"]},
                        {"contacts", nullptr},
                        {"local", ref["local"]},
                        {"restricted_to_domain", nullptr},
                        {"landingpage", nullptr}};
  }

  // Tag::captureTag (spec 5): by name, case-insensitive; a new tag takes the payload's colour and
  // exportable flag, an existing tag keeps its own (events-add-metadata-new.json).
  json::object CaptureTag(const json::object& in) {
    std::string name(StringOr(in, "name"));
    auto q = db->Prepare("SELECT id, name, colour, exportable FROM tags WHERE name = ?");
    (*q)->Bind(1, name);
    std::int64_t id;
    std::string stored_name = name, colour;
    bool exportable;
    if (*(*q)->Step()) {
      id = (*q)->Int(0);
      stored_name = (*q)->Text(1);
      colour = (*q)->Text(2);
      exportable = (*q)->Int(3) != 0;
    } else {
      colour = std::string(StringOr(in, "colour"));
      // MISP derives a colour from the name when none is given; the exact function is not in the
      // shared material, so misp-sim derives one from the name's SHA-1 (values are not compared).
      if (colour.empty()) colour = "#" + Sha1Hex(name).substr(0, 6);
      exportable = misp::BoolOr(in, "exportable", true);
      auto ins = db->Prepare("INSERT INTO tags (name, colour, exportable) VALUES (?, ?, ?)");
      (void)(*ins)->Bind(1, name).Bind(2, colour).Bind(3, static_cast<std::int64_t>(exportable)).Run();
      id = db->LastInsertId();
    }
    const json::value* rel = in.if_contains("relationship_type");
    return json::object{{"id", std::to_string(id)},
                        {"name", stored_name},
                        {"colour", colour},
                        {"exportable", exportable},
                        {"user_id", "0"},
                        {"hide_tag", false},
                        {"numerical_value", nullptr},
                        {"is_galaxy", stored_name.rfind("misp-galaxy:", 0) == 0},
                        {"is_custom_galaxy", false},
                        {"local_only", false},
                        {"local", misp::BoolOr(in, "local", false)},
                        {"relationship_type", rel != nullptr && rel->is_string() ? *rel : Null()}};
  }

  void CanonicalTags(json::object& el) {
    json::value* tags = el.if_contains("Tag");
    if (tags == nullptr || !tags->is_array()) return;
    json::array out;
    for (const auto& t : tags->as_array()) {
      if (t.is_object() && !misp::BoolOr(t.as_object(), "deleted", false))
        out.push_back(CaptureTag(t.as_object()));
    }
    *tags = std::move(out);
  }

  void CanonicalAttribute(json::object& a) {
    CanonicalTags(a);
    Reorder(a, {{"id", kOmit},
                {"type", kOmit},
                {"category", kOmit},
                {"to_ids", json::value(false)},
                {"uuid", kOmit},
                {"event_id", kOmit},
                {"distribution", json::value("5")},
                {"timestamp", kOmit},
                {"comment", json::value("")},
                {"sharing_group_id", json::value("0")},
                {"deleted", json::value(false)},
                {"disable_correlation", json::value(false)},
                {"object_id", json::value("0")},
                {"object_relation", Null()},
                {"first_seen", Null()},
                {"last_seen", Null()},
                {"value", kOmit},
                {"Galaxy", json::array()},
                {"ShadowAttribute", json::array()}});
  }

  // Completes an event to the shape MISP stores and serves (events-add-full-response.json,
  // events-view-sg-event.json): every column, the element arrays, full tag records.
  void CanonicalEvent(json::object& e, const User& creator) {
    std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    CanonicalTags(e);
    for (const char* key : {"Attribute", "EventReport", "Object"}) {
      json::value* list = e.if_contains(key);
      if (list == nullptr || !list->is_array()) continue;
      for (auto& item : list->as_array()) {
        if (!item.is_object()) continue;
        json::object& el = item.as_object();
        if (std::string_view(key) == "Attribute") {
          CanonicalAttribute(el);
        } else if (std::string_view(key) == "EventReport") {
          Reorder(el, {{"id", kOmit},
                       {"uuid", kOmit},
                       {"event_id", kOmit},
                       {"name", kOmit},
                       {"content", json::value("")},
                       {"distribution", json::value("5")},
                       {"sharing_group_id", json::value("0")},
                       {"timestamp", kOmit},
                       {"deleted", json::value(false)}});
        } else {
          if (json::value* attrs = el.if_contains("Attribute"); attrs != nullptr && attrs->is_array()) {
            for (auto& a : attrs->as_array()) {
              if (a.is_object()) CanonicalAttribute(a.as_object());
            }
          }
          Reorder(el, {{"id", kOmit},
                       {"name", kOmit},
                       {"meta-category", kOmit},
                       {"description", Null()},
                       {"template_uuid", kOmit},
                       {"template_version", kOmit},
                       {"event_id", kOmit},
                       {"uuid", kOmit},
                       {"timestamp", kOmit},
                       {"distribution", json::value("5")},
                       {"sharing_group_id", json::value("0")},
                       {"comment", json::value("")},
                       {"deleted", json::value(false)},
                       {"first_seen", Null()},
                       {"last_seen", Null()},
                       {"ObjectReference", json::array()},
                       {"Attribute", json::array()}});
        }
      }
    }
    char date[16];
    std::time_t t = static_cast<std::time_t>(now);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&t));
    bool has_tags = e.contains("Tag");
    Reorder(e, {{"id", kOmit},
                {"orgc_id", kOmit},
                {"org_id", kOmit},
                {"date", json::value(date)},
                {"threat_level_id", json::value("4")},
                {"info", json::value("")},
                {"published", json::value(false)},
                {"uuid", kOmit},
                {"attribute_count", json::value("0")},
                {"analysis", json::value("0")},
                {"timestamp", kOmit},
                {"distribution", json::value("1")},
                {"proposal_email_lock", json::value(false)},
                {"locked", json::value(false)},
                {"publish_timestamp", json::value("0")},
                {"sharing_group_id", json::value("0")},
                {"disable_correlation", json::value(false)},
                {"extends_uuid", json::value("")},
                {"protected", Null()},
                {"event_creator_email", json::value(creator.email)},
                {"Org", kOmit},
                {"Orgc", kOmit},
                {"SharingGroup", kOmit},
                {"Attribute", json::array()},
                {"ShadowAttribute", json::array()},
                {"RelatedEvent", json::array()},
                {"Galaxy", json::array()},
                {"Object", json::array()},
                {"EventReport", json::array()},
                {"CryptographicKey", json::array()},
                {"Tag", kOmit}});
    if (!has_tags) e.erase("Tag");
  }

  // ---------------------------------------------------------------- access (spec 3.1, 4.2)

  static bool GroupAuthorises(const json::object& element, const User& u) {
    const json::value* sg = element.if_contains("SharingGroup");
    if (sg == nullptr || !sg->is_object()) return false;
    misp::SharingGroupView view(sg->as_object());
    for (auto org : view.org_uuids()) {
      if (policy::SameText(org, u.org_uuid)) return true;
    }
    for (const auto& row : view.servers()) {
      if (row.server_id == 0 && row.all_orgs) return true;
    }
    return false;
  }

  static bool EventVisible(const StoredEvent& e, const User& u) {
    if (u.site_admin() || e.org_id == u.org_id) return true;
    int d = static_cast<int>(IntOr(e.event, "distribution", 0));
    if (d >= 1 && d <= 3) return true;
    return d == 4 && GroupAuthorises(e.event, u);
  }

  struct ViewOptions {
    bool include_deleted = false;
    bool exclude_local_tags = false;
    bool include_correlations = true;  // false with includeEventCorrelations:0 (MISP's pull form)
  };

  // The event as `u` sees it (spec 3.1, 5; JSONConverterTool::__cleanObjects drops objects left
  // without visible attributes).
  // Takes the event (a fresh parse per request) so rendering moves instead of copying it.
  json::object RenderFor(StoredEvent stored, const User& u, const ViewOptions& o) {
    json::object e = std::move(stored.event);
    bool owner = u.site_admin() || stored.org_id == u.org_id;
    auto element_visible = [&](const json::object& el) {
      if (misp::BoolOr(el, "deleted", false) && !(o.include_deleted && (u.perm_sync() || owner)))
        return false;
      if (owner) return true;
      int d = static_cast<int>(IntOr(el, "distribution", 5));
      if (d == 4) return GroupAuthorises(el, u);
      return d > 0;
    };
    auto clean_tags = [&](json::object& el) {
      misp::RemoveTagsIf(
          el, [&](const misp::TagView& t) { return !t.exportable() || (o.exclude_local_tags && t.local()); });
    };
    auto filter = [&](json::object& holder, const char* key) {
      json::value* list = holder.if_contains(key);
      if (list == nullptr || !list->is_array()) return;
      json::array kept(list->storage());
      for (auto& item : list->as_array()) {
        if (!item.is_object() || !element_visible(item.as_object())) continue;
        clean_tags(item.as_object());
        kept.push_back(std::move(item));
      }
      list->as_array() = std::move(kept);
    };
    // Sightings, policy 0 (spec 8.1): a viewer of another org sees only its own org's.
    std::map<std::string, json::array> sightings = SightingsFor(stored.id, owner, u);
    auto own_sightings = [&](json::object& attribute) {
      auto it = sightings.find(std::string(StringOr(attribute, "uuid")));
      if (it != sightings.end()) attribute["Sighting"] = it->second;
    };
    clean_tags(e);
    filter(e, "Attribute");
    filter(e, "EventReport");
    if (json::value* attrs = e.if_contains("Attribute"); attrs != nullptr && attrs->is_array()) {
      for (auto& a : attrs->as_array()) own_sightings(a.as_object());
    }
    // event_creator_email: only for the creator org and site admins (spec 10.1).
    if (!u.site_admin() && !policy::SameText(misp::EventView(e).orgc_uuid(), u.org_uuid))
      e.erase("event_creator_email");
    if (!o.include_correlations) e.erase("RelatedEvent");
    if (json::value* objects = e.if_contains("Object"); objects != nullptr && objects->is_array()) {
      json::array kept(objects->storage());
      for (auto& item : objects->as_array()) {
        if (!item.is_object() || !element_visible(item.as_object())) continue;
        filter(item.as_object(), "Attribute");
        if (json::value* oattrs = item.as_object().if_contains("Attribute");
            oattrs != nullptr && oattrs->is_array()) {
          for (auto& a : oattrs->as_array()) own_sightings(a.as_object());
        }
        const json::value* attrs = item.as_object().if_contains("Attribute");
        if (attrs == nullptr || !attrs->is_array() || attrs->as_array().empty()) continue;
        kept.push_back(std::move(item));
      }
      objects->as_array() = std::move(kept);
    }
    return e;
  }

  // ---------------------------------------------------------------- handlers

  HttpResponse GetVersion(const User& u) {
    json::object o;
    o["version"] = "2.5.1";
    o["pymisp_recommended_version"] = "2.5.1";
    o["perm_sync"] = u.perm_sync();
    o["perm_sighting"] = true;
    o["perm_galaxy_editor"] = u.perm("perm_galaxy_editor");
    o["perm_analyst_data"] = u.perm("perm_analyst_data");
    o["uuid"] = config.instance_uuid;
    o["request_encoding"] = json::array{"gzip"};
    o["filter_sightings"] = true;
    return JsonResponse(200, o);
  }

  // users/view/me: the captures' field set (users-view-me-*.json); password and totp masked.
  HttpResponse UserMe(const User& u) {
    json::object user{{"id", std::to_string(u.id)},
                      {"password", "*****"},
                      {"org_id", std::to_string(u.org_id)},
                      {"email", u.email},
                      {"autoalert", false},
                      {"invited_by", "1"},
                      {"gpgkey", ""},
                      {"certif_public", ""},
                      {"nids_sid", "0"},
                      {"termsaccepted", false},
                      {"newsread", "0"},
                      {"role_id", RecordOf(u.role).id},
                      {"change_pw", false},
                      {"contactalert", false},
                      {"disabled", false},
                      {"expiration", nullptr},
                      {"current_login", "0"},
                      {"last_login", "0"},
                      {"force_logout", false},
                      {"date_created", "0"},
                      {"date_modified", "0"},
                      {"sub", nullptr},
                      {"external_auth_required", false},
                      {"external_auth_key", ""},
                      {"last_api_access", "0"},
                      {"notification_daily", false},
                      {"notification_weekly", false},
                      {"notification_monthly", false},
                      {"totp", "*****"},
                      {"hotp_counter", nullptr},
                      {"last_pw_change", "0"},
                      {"totp_is_set", "0"}};
    return JsonResponse(200, json::object{{"User", user},
                                          {"Role", RoleJson(u.role)},
                                          {"UserSetting", json::array()},
                                          {"Organisation", FullOrg(u.org_id)}});
  }

  // events/index, minimal form (spec 7.1): visible, non-empty events; published and timestamp
  // filters; page/limit; X-Result-Count = total; ETag only when If-None-Match was sent.
  HttpResponse EventIndex(const HttpRequest& req, const User& u, const std::string& url) {
    json::object filters;
    if (!req.body.empty()) {
      auto parsed = misp::ParseJson(req.body);
      if (!parsed.ok() || !parsed->is_object()) return InvalidJson(url);
      filters = parsed->as_object();
    }
    bool minimal = misp::BoolOr(filters, "minimal", false);
    std::optional<bool> published;
    if (filters.contains("published")) published = misp::BoolOr(filters, "published", false);
    std::int64_t ts_from = 0, ts_to = INT64_MAX;
    if (const json::value* ts = filters.if_contains("timestamp")) {
      if (ts->is_array() && ts->as_array().size() == 2) {
        ts_from = IntOr(&ts->as_array()[0], 0);
        ts_to = IntOr(&ts->as_array()[1], INT64_MAX);
      } else {
        ts_from = IntOr(ts, 0);
      }
    }
    std::int64_t limit = IntOr(filters, "limit", 0), page = IntOr(filters, "page", 1);
    std::vector<StoredEvent> matches;
    auto q = db->Prepare("SELECT id, org_id, json FROM events ORDER BY id");
    while (*(*q)->Step()) {
      StoredEvent e{(*q)->Int(0), (*q)->Int(1), ParseStored((*q)->TextView(2))};
      if (!EventVisible(e, u)) continue;
      misp::EventView ev(e.event);
      if (published && ev.published() != *published) continue;
      if (ev.timestamp() < ts_from || ev.timestamp() > ts_to) continue;
      if (minimal && !HasContent(e.event)) continue;
      if (!MatchesTagFilter(filters, ev) || !MatchesOrgFilter(filters, ev)) continue;
      matches.push_back(std::move(e));
    }
    // sort / direction (spec 6.2): by a column, ascending unless "desc".
    std::string sort(StringOr(filters, "sort"));
    if (!sort.empty()) {
      bool desc = StringOr(filters, "direction") == "desc";
      std::stable_sort(matches.begin(), matches.end(), [&](const StoredEvent& a, const StoredEvent& b) {
        const json::value* x = a.event.if_contains(sort);
        const json::value* y = b.event.if_contains(sort);
        std::string xs = x ? (x->is_string() ? std::string(x->as_string()) : json::serialize(*x)) : "";
        std::string ys = y ? (y->is_string() ? std::string(y->as_string()) : json::serialize(*y)) : "";
        bool numeric = IsDigits(xs) && IsDigits(ys);
        bool less = numeric ? std::stoll(xs) < std::stoll(ys) : xs < ys;
        bool greater = numeric ? std::stoll(xs) > std::stoll(ys) : xs > ys;
        return desc ? greater : less;
      });
    }
    std::int64_t total = static_cast<std::int64_t>(matches.size());
    json::array rows;
    for (std::int64_t i = 0; i < total; ++i) {
      if (limit > 0 && (i < (page - 1) * limit || i >= page * limit)) continue;
      StoredEvent& e = matches[static_cast<std::size_t>(i)];
      misp::EventView ev(e.event);
      if (minimal) {
        rows.push_back(json::object{{"id", std::to_string(e.id)},
                                    {"timestamp", std::to_string(ev.timestamp())},
                                    {"sighting_timestamp", std::to_string(SightingTimestamp(e.id))},
                                    {"published", ev.published()},
                                    {"uuid", ev.uuid()},
                                    {"orgc_uuid", ev.orgc_uuid()}});
      } else {
        rows.push_back(IndexRow(e));
      }
    }
    std::string body = json::serialize(rows);
    HttpResponse r;
    r.headers.emplace_back("Content-Type", kJsonType);
    r.headers.emplace_back("X-Result-Count", std::to_string(total));
    auto inm = req.headers.find("if-none-match");
    if (inm != req.headers.end()) {
      std::string etag = "\"" + Sha1Hex(body) + "\"";
      if (inm->second ==
          etag) {  // 304 with no headers and no body (events-index-minimal-published-etag-304.json)
        r.status = 304;
        r.headers.clear();
        return r;
      }
      r.headers.emplace_back("ETag", etag);
    }
    r.body = std::move(body);
    return r;
  }

  // A row of the plain events/index (events-index-plain.json): the event's columns, Org and Orgc
  // without `local`, the group's id/name/uuid, and EventTag rows with a short Tag.
  json::object IndexRow(const StoredEvent& e) {
    const json::object& ev = e.event;
    json::object row;
    for (const char* k : {"id", "org_id", "date", "info", "uuid", "published", "analysis", "attribute_count",
                          "orgc_id", "timestamp", "distribution", "sharing_group_id", "proposal_email_lock",
                          "locked", "threat_level_id", "publish_timestamp"}) {
      if (const json::value* v = ev.if_contains(k)) row[k] = *v;
    }
    row["sighting_timestamp"] = std::to_string(SightingTimestamp(e.id));
    for (const char* k : {"disable_correlation", "extends_uuid", "protected"}) {
      if (const json::value* v = ev.if_contains(k)) row[k] = *v;
    }
    for (const char* k : {"Org", "Orgc"}) {
      if (const json::value* v = ev.if_contains(k); v != nullptr && v->is_object()) {
        json::object org = v->as_object();
        org.erase("local");
        row[k] = std::move(org);
      }
    }
    if (const json::value* sg = ev.if_contains("SharingGroup"); sg != nullptr && sg->is_object()) {
      row["SharingGroup"] = json::object{{"id", StringOr(ev, "sharing_group_id")},
                                         {"name", StringOr(sg->as_object(), "name")},
                                         {"uuid", StringOr(sg->as_object(), "uuid")}};
    }
    json::array tags;
    std::int64_t n = 0;
    for (const auto& t : misp::TagsOf(const_cast<json::object&>(ev))) {
      json::object tag = t.json();
      tags.push_back(
          json::object{{"id", std::to_string(e.id * 1000 + ++n)},
                       {"event_id", std::to_string(e.id)},
                       {"tag_id", StringOr(tag, "id")},
                       {"local", t.local()},
                       {"relationship_type", ""},
                       {"Tag", json::object{{"id", StringOr(tag, "id")},
                                            {"name", t.name()},
                                            {"colour", StringOr(tag, "colour")},
                                            {"is_galaxy", misp::BoolOr(tag, "is_galaxy", false)}}}});
    }
    row["EventTag"] = std::move(tags);
    return row;
  }

  std::int64_t SightingTimestamp(std::int64_t id) {
    auto q = db->Prepare("SELECT sighting_timestamp FROM events WHERE id = ?");
    (*q)->Bind(1, id);
    return *(*q)->Step() ? (*q)->Int(0) : 0;
  }

  // Index filter values: a string or a list; `!` negates (spec 6.2).
  static std::pair<std::vector<std::string>, std::vector<std::string>> SplitFilter(const json::value* v) {
    std::vector<std::string> yes, no;
    auto add = [&](std::string x) {
      if (x.empty()) return;
      if (x[0] == '!') {
        no.push_back(x.substr(1));
      } else {
        yes.push_back(std::move(x));
      }
    };
    if (v == nullptr) return {yes, no};
    if (v->is_string()) {
      // The pre-2.4.124 org rule form joins values with '|' (spec 6.2).
      std::string all(v->as_string());
      std::size_t i = 0;
      while (i <= all.size()) {
        std::size_t j = all.find('|', i);
        if (j == std::string::npos) j = all.size();
        add(all.substr(i, j - i));
        i = j + 1;
      }
    } else if (v->is_array()) {
      for (const auto& x : v->as_array()) {
        if (x.is_string()) add(std::string(x.as_string()));
      }
    }
    return {yes, no};
  }

  // `tag`/`tags`: event tags only, OR by default; no OR tag matching leaves nothing (spec 6.2).
  static bool MatchesTagFilter(const json::object& f, misp::EventView ev) {
    const json::value* v = f.if_contains("tag");
    if (v == nullptr) v = f.if_contains("tags");
    auto [yes, no] = SplitFilter(v);
    if (yes.empty() && no.empty()) return true;
    auto has = [&](const std::string& name) {
      for (const auto& t : ev.tags()) {
        if (policy::SameText(t.name(), name)) return true;
      }
      return false;
    };
    for (const auto& n : no) {
      if (has(n)) return false;
    }
    if (yes.empty()) return true;
    return std::any_of(yes.begin(), yes.end(), has);
  }

  // `org`: the creator organisation by id, uuid or name, case-insensitive (spec 6.2).
  bool MatchesOrgFilter(const json::object& f, misp::EventView ev) {
    auto [yes, no] = SplitFilter(f.if_contains("org"));
    if (yes.empty() && no.empty()) return true;
    std::string orgc_id(StringOr(ev.json(), "orgc_id"));
    auto is = [&](const std::string& x) {
      return policy::SameText(x, ev.orgc_uuid()) || policy::SameText(x, ev.orgc_name()) || x == orgc_id;
    };
    if (std::any_of(no.begin(), no.end(), is)) return false;
    return yes.empty() || std::any_of(yes.begin(), yes.end(), is);
  }

  // MISP's index lists events with attributes or a live report (spec 7.1).
  static bool HasContent(const json::object& e) {
    if (IntOr(e, "attribute_count", 0) > 0) return true;
    const json::value* reports = e.if_contains("EventReport");
    if (reports != nullptr && reports->is_array()) {
      for (const auto& r : reports->as_array()) {
        if (r.is_object() && !misp::BoolOr(r.as_object(), "deleted", false)) return true;
      }
    }
    return false;
  }

  HttpResponse RestSearch(const HttpRequest& req, const User& u, const std::string& url) {
    auto parsed = misp::ParseJson(req.body.empty() ? "{}" : req.body);
    if (!parsed.ok() || !parsed->is_object()) return InvalidJson(url);
    const json::object& f = parsed->as_object();
    std::set<std::string> uuids;
    if (const json::value* v = f.if_contains("uuid")) {
      if (v->is_string()) uuids.insert(std::string(v->as_string()));
      if (v->is_array()) {
        for (const auto& x : v->as_array()) {
          if (x.is_string()) uuids.insert(std::string(x.as_string()));
        }
      }
    }
    ViewOptions o;
    if (const json::value* d = f.if_contains("deleted"); d != nullptr && d->is_array())
      o.include_deleted = true;
    o.exclude_local_tags =
        true;  // restSearch did not return the owner's local tag (events-restSearch-json-deleted-uuid.json)
    std::optional<bool> published;
    if (f.contains("published")) published = misp::BoolOr(f, "published", false);
    bool metadata = misp::BoolOr(f, "metadata", false);
    std::int64_t ts_from = f.contains("timestamp") ? IntOr(f.if_contains("timestamp"), 0) : 0;
    std::int64_t limit = IntOr(f, "limit", 0), page = IntOr(f, "page", 1);
    json::array out;
    std::int64_t total = 0;
    auto q = db->Prepare("SELECT id, org_id, json FROM events ORDER BY id");
    while (*(*q)->Step()) {
      StoredEvent e{(*q)->Int(0), (*q)->Int(1), ParseStored((*q)->TextView(2))};
      if (!EventVisible(e, u)) continue;
      if (!uuids.empty() && !uuids.count(std::string(StringOr(e.event, "uuid")))) continue;
      if (published && misp::BoolOr(e.event, "published", false) != *published) continue;
      if (IntOr(e.event, "timestamp", 0) < ts_from) continue;
      ++total;
      if (limit > 0 && (total <= (page - 1) * limit || total > page * limit)) continue;
      json::object view = RenderFor(std::move(e), u, o);
      if (metadata) {
        for (const char* k : {"Attribute", "ShadowAttribute", "Object", "EventReport"}) view.erase(k);
      }
      out.push_back(WrapEvent(std::move(view)));
    }
    return JsonResponse(200, json::object{{"response", std::move(out)}},
                        {{"X-Result-Count", std::to_string(total)},
                         {"Content-Disposition", "attachment; filename=\"misp.event.list.json\""}});
  }

  HttpResponse View(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    if (r.segments.size() < 3) return ErrorResponse(404, "Invalid event", url);
    auto e = LoadEvent(r.segments[2]);
    bool visible = e && EventVisible(*e, u);
    if (req.method == "HEAD") {
      HttpResponse h;
      h.status = visible ? 200 : 404;
      h.headers.emplace_back("Content-Type", "text/html; charset=UTF-8");
      return h;
    }
    if (!visible) return ErrorResponse(404, "Invalid event", url);
    ViewOptions o;
    o.include_deleted = r.Has("deleted[]", "1");
    o.exclude_local_tags = r.Has("excludeLocalTags", "1");
    o.include_correlations = !r.Has("includeEventCorrelations", "0");
    return JsonResponse(200, WrapEvent(RenderFor(std::move(*e), u, o)));
  }

  HttpResponse InvalidJson(const std::string& url) {
    return ErrorResponse(405,
                         "Invalid JSON input. Make sure that the JSON input is a correctly formatted JSON "
                         "string. This request "
                         "has been blocked to avoid an unfiltered request.",
                         url);
  }

  // The body's event object, or an error response (malformed 405, empty 405).
  std::variant<json::object, HttpResponse> ReadEventBody(const HttpRequest& req, const std::string& url) {
    auto parsed = misp::ParseJson(req.body);
    if (!parsed.ok()) return InvalidJson(url);
    json::value v = std::move(*parsed);
    if (v.is_object() && v.as_object().contains("response")) v = v.as_object()["response"];
    if (v.is_object() && v.as_object().contains("Event")) v = v.as_object()["Event"];
    if (!v.is_object() || v.as_object().empty())
      return ErrorResponse(405, "No valid event data received.", url);
    return std::move(v.as_object());
  }

  HttpResponse SaveFail(const std::string& name, const std::string& url, json::value errors,
                        std::optional<std::int64_t> id = {}) {
    json::object o{
        {"saved", false}, {"name", name}, {"message", name}, {"url", url}, {"errors", std::move(errors)}};
    if (id) o["id"] = std::to_string(*id);
    return JsonResponse(403, o);
  }

  void AssignIds(json::object& e, std::int64_t event_id) {
    e["id"] = std::to_string(event_id);
    auto number = [&](json::object& el, const char* counter) {
      if (!el.contains("id") || !IsDigits(std::string(StringOr(el, "id"))))
        el["id"] = std::to_string(NextId(counter));
      el["event_id"] = std::to_string(event_id);
      if (!el.contains("uuid")) el["uuid"] = NewUuid();
    };
    for (const char* key : {"Attribute", "EventReport"}) {
      if (json::value* list = e.if_contains(key); list && list->is_array()) {
        for (auto& a : list->as_array()) {
          if (a.is_object()) number(a.as_object(), key);
        }
      }
    }
    if (json::value* objects = e.if_contains("Object"); objects && objects->is_array()) {
      for (auto& o : objects->as_array()) {
        if (!o.is_object()) continue;
        number(o.as_object(), "Object");
        if (json::value* attrs = o.as_object().if_contains("Attribute"); attrs && attrs->is_array()) {
          for (auto& a : attrs->as_array()) {
            if (a.is_object()) {
              number(a.as_object(), "Attribute");
              a.as_object()["object_id"] = StringOr(o.as_object(), "id");
            }
          }
        }
      }
    }
  }

  static std::int64_t CountAttributes(const json::object& e) {
    std::int64_t n = 0;
    auto count = [&](const json::object& holder) {
      if (const json::value* list = holder.if_contains("Attribute"); list && list->is_array()) {
        for (const auto& a : list->as_array())
          n += a.is_object() && !misp::BoolOr(a.as_object(), "deleted", false);
      }
    };
    count(e);
    if (const json::value* objects = e.if_contains("Object"); objects && objects->is_array()) {
      for (const auto& o : objects->as_array()) {
        if (o.is_object()) count(o.as_object());
      }
    }
    return n;
  }

  // Event::_add for a REST caller (spec 3.4, 7.5).
  HttpResponse Add(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    auto body = ReadEventBody(req, url);
    if (auto* err = std::get_if<HttpResponse>(&body)) return *err;
    json::object e = std::move(std::get<json::object>(body));
    if (auto d = misp::ElementView(e).distribution(); d && (*d < 0 || *d > 4)) {
      return SaveFail(
          "Could not add Event", "/events/add",
          json::object{
              {"Event",
               json::object{{"distribution", json::array{"Options : Your organisation only, This community "
                                                         "only, Connected communities, All communities"}}}}});
    }
    std::string uuid(StringOr(e, "uuid"));
    if (uuid.empty()) {
      uuid = NewUuid();
      e["uuid"] = uuid;
    }
    if (auto existing = LoadEvent(uuid)) {
      HttpResponse resp = ErrorResponse(
          404, "Event already exists, if you would like to edit it, use the url in the location header.",
          url);
      resp.headers.emplace_back("Location", config.base_url + "/events/" + std::to_string(existing->id));
      return resp;
    }
    {
      auto q = db->Prepare("SELECT 1 FROM event_blocklist WHERE uuid = ? COLLATE NOCASE");
      (*q)->Bind(1, uuid);
      if (*(*q)->Step()) return ErrorResponse(403, "Event blocked by event blocklist.", url);
    }
    policy::Receiver receiver{"misp-sim",     config.base_url, {u.org_uuid, u.org_name},
                              u.site_admin(), u.perm_sync(),   u.perm_publish(),
                              ServerUrls()};
    std::vector<policy::Reason> reasons;
    std::vector<std::string> warnings;
    if (!policy::AssessArrival(e, receiver, &reasons, &warnings)) {
      return SaveFail("Could not add Event", "/events/add", "Received a published event that was empty");
    }
    e = policy::MaterializeArrival(std::move(e), receiver);
    CaptureGroups(e, u);
    DedupeAttributes(e);
    // Orgc: a sync user or site admin may create for another org; others become the creator.
    misp::EventView ev(e);
    std::string orgc_uuid(ev.orgc_uuid()), orgc_name(ev.orgc_name());
    if (orgc_uuid.empty() || !(u.perm_sync() || u.site_admin())) {
      orgc_uuid = u.org_uuid;
      orgc_name = u.org_name;
    }
    std::int64_t orgc_id = CaptureOrg(orgc_uuid, orgc_name);
    e["Orgc"] = OrgRef(orgc_id, true);
    e["Org"] = OrgRef(u.org_id, true);
    e["orgc_id"] = std::to_string(orgc_id);
    e["org_id"] = std::to_string(u.org_id);
    if (!e.contains("timestamp"))
      misp::WriteInt(e, "timestamp", static_cast<std::int64_t>(std::time(nullptr)));
    if (!e.contains("distribution")) e["distribution"] = "1";
    if (ev.published()) misp::WriteInt(e, "publish_timestamp", static_cast<std::int64_t>(std::time(nullptr)));
    if (!e.contains("locked")) e["locked"] = false;
    misp::WriteInt(e, "attribute_count", CountAttributes(e));
    std::int64_t id = NextId("Event");
    AssignIds(e, id);
    CanonicalEvent(e, u);
    StoredEvent stored{id, u.org_id, std::move(e)};
    if (auto s = SaveEvent(stored); !s.ok())
      return ErrorResponse(500, "An Internal Error Has Occurred.", url);
    json::object out = RenderFor(std::move(stored), u, ViewOptions{true, false});
    if (r.Has("metadata", "1")) {
      for (const char* k : {"Attribute", "ShadowAttribute", "Object", "EventReport"}) out.erase(k);
    }
    return JsonResponse(200, WrapEvent(std::move(out)));
  }

  // On add, non-deleted standalone attributes repeating a (value, type, category) are saved once
  // (spec 7.5, case 54).
  static void DedupeAttributes(json::object& e) {
    json::value* list = e.if_contains("Attribute");
    if (list == nullptr || !list->is_array()) return;
    std::set<std::string> seen;
    json::array kept(list->storage());
    for (auto& a : list->as_array()) {
      if (a.is_object() && !misp::BoolOr(a.as_object(), "deleted", false)) {
        const json::object& o = a.as_object();
        std::string key = std::string(StringOr(o, "value")) + '\x1f' + std::string(StringOr(o, "type")) +
                          '\x1f' + std::string(StringOr(o, "category"));
        if (!seen.insert(key).second) continue;
      }
      kept.push_back(std::move(a));
    }
    *list = std::move(kept);
  }

  // On edit, an element whose sharing group will not be captured is dropped (spec 3.4).
  static void DropUncapturable(json::object& in, const std::vector<policy::Reason>& reasons) {
    std::set<std::string> drop;
    for (const auto& r : reasons) {
      if (r.rule == "receiver.sharing_group.capture" && r.path != "Event") drop.insert(r.path);
    }
    if (drop.empty()) return;
    auto prune = [&](json::object& holder, const char* key, const std::string& base) {
      json::value* list = holder.if_contains(key);
      if (list == nullptr || !list->is_array()) return;
      json::array kept(list->storage());
      for (std::size_t i = 0; i < list->as_array().size(); ++i) {
        if (!drop.count(misp::Index(misp::Child(base, key), i)))
          kept.push_back(std::move(list->as_array()[i]));
      }
      *list = std::move(kept);
    };
    if (json::value* objects = in.if_contains("Object"); objects != nullptr && objects->is_array()) {
      for (std::size_t i = 0; i < objects->as_array().size(); ++i) {
        if (objects->as_array()[i].is_object())
          prune(objects->as_array()[i].as_object(), "Attribute", misp::Index("Event.Object", i));
      }
    }
    prune(in, "Attribute", "Event");
    prune(in, "Object", "Event");
    prune(in, "EventReport", "Event");
  }

  // SharingGroup::captureSG against the groups this instance holds (spec 4.5): a new group is
  // stored (local false); an existing local group is reused unchanged (case 61); an existing
  // captured group is updated by a sync user or site admin when the payload's `modified` is empty
  // or later: fields overwritten, organisations and servers added, never removed, `all_orgs`
  // reset (case 62, 11.26). The element then carries the stored group and its local id.
  void CaptureGroups(json::object& e, const User& u) {
    auto capture = [&](json::object& el) {
      json::value* sgv = el.if_contains("SharingGroup");
      if (sgv == nullptr || !sgv->is_object() || misp::IntOr(el, "distribution", 0) != 4) return;
      json::object& incoming = sgv->as_object();
      std::string uuid(StringOr(incoming, "uuid"));
      if (!misp::IsUuid(uuid)) return;
      std::int64_t id;
      json::object group;
      if (auto existing = LoadGroup(uuid)) {
        id = existing->first;
        group = std::move(existing->second);
        std::string have_mod(StringOr(group, "modified")), new_mod(StringOr(incoming, "modified"));
        bool may = u.site_admin() || (u.perm_sync() && !misp::BoolOr(group, "local", false));
        if (may && (new_mod.empty() || new_mod > have_mod)) {
          for (const char* k : {"name", "releasability", "description", "created", "modified", "roaming"}) {
            if (const json::value* v = incoming.if_contains(k)) group[k] = *v;
          }
          MergeMembers(group, incoming);
          (void)SaveGroup(id, group);
        }
      } else {
        group = incoming;
        group["local"] = false;
        group.erase("id");
        auto ins = db->Prepare("INSERT INTO sharing_groups (uuid, json) VALUES (?, ?)");
        (void)(*ins)->Bind(1, uuid).Bind(2, json::serialize(group)).Run();
        id = db->LastInsertId();
      }
      group["id"] = std::to_string(id);
      el["SharingGroup"] = std::move(group);
      el["sharing_group_id"] = std::to_string(id);
    };
    capture(e);
    for (const char* key : {"Attribute", "EventReport", "Object"}) {
      json::value* list = e.if_contains(key);
      if (list == nullptr || !list->is_array()) continue;
      for (auto& item : list->as_array()) {
        if (!item.is_object()) continue;
        capture(item.as_object());
        if (std::string_view(key) != "Object") continue;
        if (json::value* attrs = item.as_object().if_contains("Attribute");
            attrs != nullptr && attrs->is_array()) {
          for (auto& a : attrs->as_array()) {
            if (a.is_object()) capture(a.as_object());
          }
        }
      }
    }
  }

  static void MergeMembers(json::object& group, const json::object& incoming) {
    auto list = [](json::object& o, const char* key) -> json::array& {
      if (!o.contains(key) || !o[key].is_array()) o[key] = json::array();
      return o[key].as_array();
    };
    json::array& orgs = list(group, "SharingGroupOrg");
    for (auto uuid : misp::SharingGroupView(incoming).org_uuids()) {
      bool present = false;
      for (auto have : misp::SharingGroupView(group).org_uuids()) present |= policy::SameText(have, uuid);
      if (!present)
        orgs.push_back(json::object{{"extend", false}, {"Organisation", json::object{{"uuid", uuid}}}});
    }
    json::array& servers = list(group, "SharingGroupServer");
    for (auto& row : servers) {
      if (row.is_object()) row.as_object()["all_orgs"] = false;
    }
    for (const auto& row : misp::SharingGroupView(incoming).servers()) {
      bool present = false;
      for (const auto& have : misp::SharingGroupView(group).servers())
        present |= policy::SameUrl(have.url, row.url);
      if (!present) {
        servers.push_back(json::object{{"server_id", std::to_string(row.server_id)},
                                       {"all_orgs", false},
                                       {"Server", json::object{{"url", row.url}, {"name", row.name}}}});
      }
    }
  }

  // Merges `incoming` elements into `stored` by uuid: strictly newer timestamps win, new ones are
  // added, absent ones stay (spec 7.5).
  void MergeList(json::object& stored, json::object& incoming, const char* key, bool objects,
                 std::int64_t event_id) {
    json::value* in = incoming.if_contains(key);
    if (in == nullptr || !in->is_array()) return;
    json::value* have = stored.if_contains(key);
    if (have == nullptr || !have->is_array()) have = &(stored[key] = json::array());
    for (auto& item : in->as_array()) {
      if (!item.is_object()) continue;
      json::object& n = item.as_object();
      std::string uuid(StringOr(n, "uuid"));
      json::object* match = nullptr;
      for (auto& h : have->as_array()) {
        if (h.is_object() && policy::SameText(StringOr(h.as_object(), "uuid"), uuid)) match = &h.as_object();
      }
      if (match == nullptr) {
        // A uuid that belongs to another event is skipped ("Duplicate UUID", spec 7.5, case 57).
        if (std::string_view(key) != "EventReport" && BelongsToAnotherEvent(uuid, event_id)) continue;
        have->as_array().push_back(std::move(item));
        continue;
      }
      if (IntOr(n, "timestamp", 0) <= IntOr(*match, "timestamp", 0))
        continue;  // the object gate hides its attributes too
      for (auto& kv : n) {
        if (kv.key() == "Attribute" && objects) continue;
        if (kv.key() == "id" || kv.key() == "event_id" || kv.key() == "object_id") continue;
        if (kv.key() == "Tag") continue;
        (*match)[kv.key()] = kv.value();
      }
      MergeTags(*match, n);
      if (objects) MergeList(*match, n, "Attribute", false, event_id);
    }
  }

  // Tags are only added; a tag sent with deleted: true is detached (spec 5).
  static void MergeTags(json::object& stored, json::object& incoming) {
    json::value* in = incoming.if_contains("Tag");
    if (in == nullptr || !in->is_array()) return;
    json::value* have = stored.if_contains("Tag");
    if (have == nullptr || !have->is_array()) have = &(stored["Tag"] = json::array());
    for (auto& t : in->as_array()) {
      if (!t.is_object()) continue;
      std::string name(StringOr(t.as_object(), "name"));
      auto& list = have->as_array();
      auto it = std::find_if(list.begin(), list.end(), [&](const json::value& x) {
        return x.is_object() && policy::SameText(StringOr(x.as_object(), "name"), name);
      });
      if (misp::BoolOr(t.as_object(), "deleted", false)) {
        if (it != list.end()) list.erase(it);
      } else if (it == list.end()) {
        list.push_back(t);
      }
    }
  }

  HttpResponse Edit(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    if (r.segments.size() < 3) return ErrorResponse(404, "Invalid event", url);
    auto stored = LoadEvent(r.segments[2]);
    if (!stored || !EventVisible(*stored, u)) return ErrorResponse(404, "Invalid event", url);
    auto body = ReadEventBody(req, url);
    if (auto* err = std::get_if<HttpResponse>(&body)) return *err;
    json::object in = std::move(std::get<json::object>(body));
    std::string edit_url = "/events/edit/" + std::to_string(stored->id);
    // The timestamp is tested before the right to edit (Event::_edit): the sender of an event
    // answers its own cascade coming back "not newer" (spec case 66), even though the copy is not
    // locked.
    if (in.contains("timestamp") && IntOr(in, "timestamp", 0) <= IntOr(stored->event, "timestamp", 0)) {
      return SaveFail("Could not edit Event", edit_url,
                      "Event could not be saved: Event in the request not newer than the local copy.",
                      stored->id);
    }
    bool may = u.site_admin() || policy::SameText(misp::EventView(stored->event).orgc_uuid(), u.org_uuid) ||
               (u.perm_sync() && misp::BoolOr(stored->event, "locked", false));
    if (!may)
      return SaveFail("Could not edit Event", edit_url, "You are not authorised to do that.", stored->id);
    // Sharing groups of new elements are captured as on add; on edit an uncapturable event group
    // is an error (spec 3.4).
    policy::Receiver receiver{"misp-sim",     config.base_url, {u.org_uuid, u.org_name},
                              u.site_admin(), u.perm_sync(),   u.perm_publish(),
                              ServerUrls()};
    std::vector<policy::Reason> reasons;
    std::vector<std::string> warnings;
    (void)policy::AssessArrival(in, receiver, &reasons, &warnings);
    for (const auto& reason : reasons) {
      if (reason.rule == "receiver.sharing_group.capture" && reason.path == "Event") {
        return SaveFail("Could not edit Event", edit_url,
                        "User not authorised to create the associated sharing group", stored->id);
      }
    }
    DropUncapturable(in, reasons);
    CaptureGroups(in, u);
    json::object& e = stored->event;
    for (const char* field :
         {"date", "threat_level_id", "analysis", "info", "published", "distribution", "timestamp",
          "sharing_group_id", "disable_correlation", "extends_uuid", "SharingGroup"}) {
      if (const json::value* v = in.if_contains(field)) e[field] = *v;
    }
    if (!in.contains("published")) e["published"] = false;
    MergeTags(e, in);
    MergeList(e, in, "Attribute", false, stored->id);
    MergeList(e, in, "Object", true, stored->id);
    MergeList(e, in, "EventReport", false, stored->id);
    misp::WriteInt(e, "attribute_count", CountAttributes(e));
    AssignIds(e, stored->id);
    CanonicalEvent(e, u);
    if (auto s = SaveEvent(*stored); !s.ok())
      return ErrorResponse(500, "An Internal Error Has Occurred.", url);
    json::object out = RenderFor(std::move(*stored), u, ViewOptions{true, false});
    if (r.Has("metadata", "1")) {
      for (const char* k : {"Attribute", "ShadowAttribute", "Object", "EventReport"}) out.erase(k);
    }
    return JsonResponse(200, WrapEvent(std::move(out)));
  }

  HttpResponse FilterForPush(const HttpRequest& req, const User& u, const std::string& url) {
    if (req.method != "POST") return ErrorResponse(405, "This endpoint requires a POST request.", url);
    if (!u.perm_sync())
      return ErrorResponse(403, "You do not have permission to use this functionality.", url);
    auto parsed = misp::ParseJson(req.body);
    if (!parsed.ok() || !parsed->is_array()) return InvalidJson(url);
    json::array out;
    std::set<std::string> seen;
    for (const auto& item : parsed->as_array()) {
      const json::value* ev = item.is_object() ? item.as_object().if_contains("Event") : nullptr;
      if (ev == nullptr || !ev->is_object()) continue;
      std::string uuid(StringOr(ev->as_object(), "uuid"));
      std::int64_t ts = IntOr(ev->as_object(), "timestamp", 0);
      auto local = LoadEvent(uuid);
      bool wanted =
          !local || (misp::BoolOr(local->event, "locked", false) && IntOr(local->event, "timestamp", 0) < ts);
      if (wanted && seen.insert(uuid).second) out.push_back(json::value(uuid));
    }
    return JsonResponse(200, out);
  }

  HttpResponse Publish(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    if (req.method != "POST") return ErrorResponse(405, "You do not have the permission to do that.", url);
    if (r.segments.size() < 3) return ErrorResponse(404, "Invalid event", url);
    auto e = LoadEvent(r.segments[2]);
    if (!e || !EventVisible(*e, u)) return ErrorResponse(404, "Invalid event", url);
    if (!u.perm_publish()) return ErrorResponse(403, "You do not have the permission to do that.", url);
    e->event["published"] = true;
    misp::WriteInt(e->event, "publish_timestamp", static_cast<std::int64_t>(std::time(nullptr)));
    if (auto s = SaveEvent(*e); !s.ok()) return ErrorResponse(500, "An Internal Error Has Occurred.", url);
    return JsonResponse(200, json::object{{"saved", true},
                                          {"success", true},
                                          {"name", "Event published without alerts"},
                                          {"message", "Event published without alerts"},
                                          {"url", url},
                                          {"id", std::to_string(e->id)}});
  }

  HttpResponse Delete(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    if (req.method != "POST")
      return ErrorResponse(500, "An Internal Error Has Occurred.",
                           url);  // error-method-not-allowed-delete-get.json
    if (r.segments.size() < 3) return ErrorResponse(404, "Invalid event", url);
    auto e = LoadEvent(r.segments[2]);
    if (!e || !EventVisible(*e, u)) return ErrorResponse(404, "Invalid event", url);
    if (!(u.site_admin() || e->org_id == u.org_id))
      return ErrorResponse(403, "You do not have permission to use this functionality.", url);
    auto del = db->Prepare("DELETE FROM events WHERE id = ?");
    (void)(*del)->Bind(1, e->id).Run();
    // Event::beforeDelete blocklists the uuid (spec 7.6; events-add-blocklisted-uuid.json).
    auto bl = db->Prepare("INSERT OR IGNORE INTO event_blocklist (uuid) VALUES (?)");
    (void)(*bl)->Bind(1, StringOr(e->event, "uuid")).Run();
    return JsonResponse(200, json::object{{"saved", true},
                                          {"success", true},
                                          {"name", "Event deleted."},
                                          {"message", "Event deleted."},
                                          {"url", url},
                                          {"id", std::to_string(e->id)}});
  }

  // ---------------------------------------------------------------- sightings (spec 8.1)

  // The attribute with `uuid_or_id` in any event the user may see, with its event.
  std::optional<std::pair<StoredEvent, json::object>> FindAttribute(const std::string& key, const User& u) {
    auto q = db->Prepare("SELECT id, org_id, json FROM events ORDER BY id");
    while (*(*q)->Step()) {
      StoredEvent e{(*q)->Int(0), (*q)->Int(1), ParseStored((*q)->TextView(2))};
      if (!EventVisible(e, u)) continue;
      std::optional<json::object> found;
      auto match = [&](json::object& a) {
        if (policy::SameText(StringOr(a, "uuid"), key) || StringOr(a, "id") == key) found = a;
      };
      for (auto& a : misp::EventView(e.event).attribute_views()) match(a.json());
      for (auto& o : misp::EventView(e.event).object_views()) {
        for (auto& a : o.attribute_views()) match(a.json());
      }
      if (found) return std::make_pair(std::move(e), std::move(*found));
    }
    return std::nullopt;
  }

  HttpResponse SightingAdd(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    if (req.method != "POST")
      return ErrorResponse(405, "This method is only accessible via POST requests.", url);
    auto parsed = misp::ParseJson(req.body.empty() ? "{}" : req.body);
    if (!parsed.ok() || !parsed->is_object()) return InvalidJson(url);
    auto found = r.segments.size() > 2 ? FindAttribute(r.segments[2], u) : std::nullopt;
    if (!found) return ErrorResponse(404, "Invalid attribute.", url);
    json::object row = parsed->as_object();
    row["uuid"] = NewUuid();
    if (!row.contains("date_sighting"))
      misp::WriteInt(row, "date_sighting", static_cast<std::int64_t>(std::time(nullptr)));
    StoreSighting(row, found->first.id, found->second, u.org_id);
    auto q = db->Prepare("SELECT id FROM sightings WHERE uuid = ?");
    (*q)->Bind(1, StringOr(row, "uuid"));
    (void)(*q)->Step();
    return JsonResponse(
        200, json::object{{"Sighting", json::object{{"id", std::to_string((*q)->Int(0))},
                                                    {"attribute_id", StringOr(found->second, "id")},
                                                    {"event_id", std::to_string(found->first.id)},
                                                    {"org_id", std::to_string(u.org_id)},
                                                    {"date_sighting", StringOr(row, "date_sighting")},
                                                    {"uuid", StringOr(row, "uuid")},
                                                    {"source", StringOr(row, "source")},
                                                    {"type", std::to_string(IntOr(row, "type", 0))}}}});
  }

  // sightings/bulkSaveSightings/<event uuid> (sightings-bulkSaveSightings*.json): new uuids stored,
  // attributed to their Organisation for a sync user, else to the caller's org (spec 11.14).
  HttpResponse BulkSaveSightings(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    if (req.method != "POST")
      return ErrorResponse(405, "This method is only accessible via POST requests.", url);
    auto parsed = misp::ParseJson(req.body);
    if (!parsed.ok()) return InvalidJson(url);
    auto e = r.segments.size() > 2 ? LoadEvent(r.segments[2]) : std::nullopt;
    if (!e || !EventVisible(*e, u)) return ErrorResponse(404, "Invalid event", url);
    json::value list = *parsed;
    if (list.is_object() && list.as_object().contains("Sighting")) list = list.as_object()["Sighting"];
    int added = 0;
    if (list.is_array()) {
      for (const auto& row : list.as_array()) {
        if (!row.is_object()) continue;
        std::string attr_uuid(StringOr(row.as_object(), "attribute_uuid"));
        ReplaceExpiration(row.as_object(), attr_uuid, u);
        for (auto& a : misp::EventView(e->event).attribute_views()) {
          if (policy::SameText(a.uuid(), attr_uuid)) {
            added += StoreSighting(row.as_object(), e->id, a.json(), WriterOrg(row.as_object(), u));
          }
        }
        for (auto& o : misp::EventView(e->event).object_views()) {
          for (auto& a : o.attribute_views()) {
            if (policy::SameText(a.uuid(), attr_uuid)) {
              added += StoreSighting(row.as_object(), e->id, a.json(), WriterOrg(row.as_object(), u));
            }
          }
        }
      }
    }
    if (added == 0)
      return JsonResponse(200, json::object{{"saved", false}, {"success", "No sightings added."}});
    TouchSightingTimestamp(e->id, static_cast<std::int64_t>(std::time(nullptr)));
    return JsonResponse(
        200, json::object{{"saved", true}, {"success", std::to_string(added) + " sightings added."}});
  }

  // The organisation a received sighting is saved under when the row does not name one to keep:
  // the writer's, unless a perm_sync writer sent an `org_id` (spec 8.1, `bulkSaveSightings`).
  static std::optional<std::int64_t> WriterOrg(const json::object& row, const User& u) {
    if (u.perm_sync() && row.contains("org_id")) return std::nullopt;
    return u.org_id;
  }

  // A new expiration sighting (`type` the string "2", compared as MISP does) replaces the writer's
  // organisation's earlier expirations on that attribute (spec 8.1, `Sighting::bulkSaveSightings`;
  // spec case 71). A known uuid is skipped before this, as in MISP.
  void ReplaceExpiration(const json::object& row, const std::string& attribute_uuid, const User& u) {
    const json::value* type = row.if_contains("type");
    if (type == nullptr || !type->is_string() || type->as_string() != "2") return;
    auto known = db->Prepare("SELECT 1 FROM sightings WHERE uuid = ?");
    (*known)->Bind(1, StringOr(row, "uuid"));
    if (*(*known)->Step()) return;
    auto del = db->Prepare("DELETE FROM sightings WHERE attribute_uuid = ? AND org_id = ? AND type = '2'");
    (void)(*del)->Bind(1, attribute_uuid).Bind(2, u.org_id).Run();
  }

  // sightings/filterSightingUuidsForPush/<event uuid>: the offered uuids already stored.
  HttpResponse FilterSightingsForPush(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    if (req.method != "POST")
      return ErrorResponse(405, "This method is only accessible via POST requests.", url);
    auto parsed = misp::ParseJson(req.body);
    if (!parsed.ok() || !parsed->is_array()) return InvalidJson(url);
    auto e = r.segments.size() > 2 ? LoadEvent(r.segments[2]) : std::nullopt;
    if (!e || !EventVisible(*e, u)) return ErrorResponse(404, "Invalid event", url);
    json::array out;
    for (const auto& v : parsed->as_array()) {
      if (!v.is_string()) continue;
      auto q = db->Prepare("SELECT 1 FROM sightings WHERE uuid = ? AND event_id = ?");
      (*q)->Bind(1, std::string_view(v.as_string())).Bind(2, e->id);
      if (*(*q)->Step()) out.push_back(v);
    }
    return JsonResponse(200, out);
  }

  // sightings/restSearch/event (MISP's pull form, sightings-restSearch-event*.json): the visible
  // sightings of the listed events; X-Result-Count is "0" whatever is returned, as in the captures.
  HttpResponse SightingsRestSearch(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    auto parsed = misp::ParseJson(req.body.empty() ? "{}" : req.body);
    if (!parsed.ok() || !parsed->is_object()) return InvalidJson(url);
    const json::object& f = parsed->as_object();
    const json::value* uuids = f.if_contains("uuid");
    // A bare string uuid makes MISP fail with an SQL error (sightings-restSearch-json.json).
    if (uuids != nullptr && uuids->is_string())
      return ErrorResponse(500, "An Internal Error Has Occurred.", url);
    json::array out;
    if (uuids != nullptr && uuids->is_array()) {
      for (const auto& id : uuids->as_array()) {
        if (!id.is_string()) continue;
        auto e = LoadEvent(std::string(id.as_string()));
        if (!e || !EventVisible(*e, u)) continue;
        bool owner = u.site_admin() || e->org_id == u.org_id;
        std::map<std::string, std::string> values;
        for (auto& a : misp::EventView(e->event).attribute_views())
          values[std::string(a.uuid())] = std::string(a.value());
        for (auto& [attr, rows] : SightingsFor(e->id, owner, u)) {
          for (auto& row : rows) {
            json::object& s = row.as_object();
            json::object out_row{
                {"id", s["id"]},
                {"attribute_id", s["attribute_id"]},
                {"event_id", s["event_id"]},
                {"org_id", s["org_id"]},
                {"date_sighting", s["date_sighting"]},
                {"uuid", s["uuid"]},
                {"source", s["source"]},
                {"type", s["type"]},
                {"value", values[attr]},
                {"attribute_uuid", attr},
                {"event_uuid", StringOr(e->event, "uuid")},
            };
            if (s.contains("Organisation")) out_row["Organisation"] = s["Organisation"];
            out.push_back(json::object{{"Sighting", std::move(out_row)}});
          }
        }
      }
    }
    return JsonResponse(200, json::object{{"response", std::move(out)}},
                        {{"X-Result-Count", "0"},
                         {"X-Export-Module-Used", "json"},
                         {"X-Response-Format", "json"},
                         {"X-Skipped-Elements-Count", "0"}});
  }

  HttpResponse PublishSightings(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    if (req.method != "POST") return ErrorResponse(405, "You do not have the permission to do that.", url);
    auto e = r.segments.size() > 2 ? LoadEvent(r.segments[2]) : std::nullopt;
    if (!e || !EventVisible(*e, u)) return ErrorResponse(404, "Invalid event", url);
    TouchSightingTimestamp(e->id, static_cast<std::int64_t>(std::time(nullptr)));
    // The url is absolute here (events-publishSightings.json).
    return JsonResponse(200, json::object{{"name", "Publish Sightings"},
                                          {"message", "Sightings published"},
                                          {"url", config.base_url + url},
                                          {"id", std::to_string(e->id)}});
  }

  // shadow_attributes/index (MISP's pull of proposals, shadow-attributes-index-pull-form.json):
  // proposals on visible events, newer than `timestamp:`, deleted ones only with deleted[]:1.
  HttpResponse ProposalIndex(const Route& r, const User& u) {
    std::int64_t since = 0;
    if (auto it = r.named.find("timestamp"); it != r.named.end() && IsDigits(it->second))
      since = std::stoll(it->second);
    bool deleted = r.Has("deleted[]", "1");
    json::array out;
    auto q = db->Prepare("SELECT event_id, json FROM proposals WHERE timestamp >= ? ORDER BY id");
    (*q)->Bind(1, since);
    while (*(*q)->Step()) {
      auto e = LoadEvent(std::to_string((*q)->Int(0)));
      if (!e || !EventVisible(*e, u)) continue;
      json::object p = json::parse((*q)->Text(1)).as_object();
      if (!deleted && misp::BoolOr(p, "deleted", false)) continue;
      out.push_back(json::object{{"ShadowAttribute", std::move(p)}});
    }
    return JsonResponse(200, out);
  }

  // events/pushProposals/<event uuid> (spec 8.2; EventsController::pushProposals, MISP/MISP
  // app/Controller/EventsController.php): a proposal equal to a stored one on (event_uuid, value,
  // type, category, to_ids) replaces it only when newer, else it is skipped; `id` is dropped and
  // `old_id` re-mapped by attribute uuid. Answers {"success", "message", "counter"}.
  HttpResponse PushProposals(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    if (!u.perm_sync())
      return ErrorResponse(403, "You do not have permission to use this functionality.", url);
    if (req.method != "POST") return ErrorResponse(405, "You do not have the permission to do that.", url);
    auto parsed = misp::ParseJson(req.body);
    if (!parsed.ok() || !parsed->is_array()) return InvalidJson(url);
    auto e = r.segments.size() > 2 ? LoadEvent(r.segments[2]) : std::nullopt;
    if (!e || !EventVisible(*e, u))
      return JsonResponse(200,
                          json::object{{"success", false}, {"message", "Event not found."}, {"counter", 0}});
    auto same = [](const json::object& a, const json::object& b) {
      for (const char* k : {"event_uuid", "value", "type", "category"})
        if (StringOr(a, k) != StringOr(b, k)) return false;
      return misp::BoolOr(a, "to_ids", false) == misp::BoolOr(b, "to_ids", false);
    };
    int counter = 0;
    for (const auto& item : parsed->as_array()) {
      if (!item.is_object()) continue;
      json::object row = item.as_object();
      if (auto* inner = row.if_contains("ShadowAttribute"); inner != nullptr && inner->is_object())
        row = inner->as_object();
      bool skip = false;
      auto q = db->Prepare("SELECT id, json FROM proposals WHERE event_id = ?");
      (*q)->Bind(1, e->id);
      std::vector<std::int64_t> older;
      while (*(*q)->Step()) {
        json::object have = json::parse((*q)->Text(1)).as_object();
        if (!same(have, row)) continue;
        if (IntOr(have, "timestamp", 0) < IntOr(row, "timestamp", 0)) {
          older.push_back((*q)->Int(0));
        } else {
          skip = true;
        }
      }
      if (skip) continue;
      for (std::int64_t id : older) {
        auto del = db->Prepare("DELETE FROM proposals WHERE id = ?");
        (void)(*del)->Bind(1, id).Run();
      }
      row.erase("id");
      row["event_id"] = std::to_string(e->id);
      if (IntOr(row, "old_id", 0) != 0) {
        for (auto& a : misp::EventView(e->event).attribute_views())
          if (policy::SameText(a.uuid(), StringOr(row, "uuid"))) row["old_id"] = StringOr(a.json(), "id");
      }
      auto ins = db->Prepare("INSERT INTO proposals (event_id, timestamp, json) VALUES (?, ?, ?)");
      (void)(*ins)->Bind(1, e->id).Bind(2, IntOr(row, "timestamp", 0)).Bind(3, json::serialize(row)).Run();
      ++counter;
    }
    return JsonResponse(200,
                        json::object{{"success", true},
                                     {"message", counter > 0 ? std::to_string(counter) + " Proposal(s) added."
                                                             : std::string("Nothing to update.")},
                                     {"counter", counter}});
  }

  // ---------------------------------------------------------------- galaxy clusters (spec 8.3)
  // Custom clusters as MISP's GalaxyCluster model and GalaxiesController::pushCluster handle them
  // (MISP/MISP app/Model/GalaxyCluster.php, app/Model/Galaxy.php). Stored whole, with `org_uuid`
  // for the owner organisation.

  std::vector<json::object> Clusters() {
    std::vector<json::object> out;
    auto q = db->Prepare("SELECT json FROM clusters ORDER BY id");
    while (*(*q)->Step()) out.push_back(json::parse((*q)->Text(0)).as_object());
    return out;
  }

  std::optional<json::object> ClusterByUuid(std::string_view uuid) {
    auto q = db->Prepare("SELECT json FROM clusters WHERE uuid = ?");
    (*q)->Bind(1, std::string(uuid));
    if (!*(*q)->Step()) return std::nullopt;
    return json::parse((*q)->Text(0)).as_object();
  }

  void SaveCluster(const json::object& c) {
    auto up = db->Prepare(
        "INSERT INTO clusters (uuid, json) VALUES (?, ?) ON CONFLICT (uuid) DO UPDATE SET json = "
        "excluded.json");
    (void)(*up)->Bind(1, StringOr(c, "uuid")).Bind(2, json::serialize(c)).Run();
  }

  // GalaxyCluster::buildConditions: site admins see all; others their organisation's, 1-3, and 4
  // by group membership.
  static bool ClusterVisible(const json::object& c, const User& u) {
    if (u.site_admin() || policy::SameText(StringOr(c, "org_uuid"), u.org_uuid)) return true;
    int d = static_cast<int>(IntOr(c, "distribution", 0));
    if (d == 4) return GroupAuthorises(c, u);
    return d > 0 && d < 4;
  }

  // galaxy_clusters/restSearch, the form MISP's sync sends ({"published", "minimal", "custom",
  // "uuid"}): {"response": [{"GalaxyCluster": {"uuid", "version"}}]}, the json export's envelope
  // (GalaxyCluster::fetchCustomClusterIdsFromServer reads that and the bare list alike).
  HttpResponse ClusterSearch(const HttpRequest& req, const Route& r, const User& u) {
    if (req.method != "POST")
      return ErrorResponse(405, "This method is only accessible via POST requests.", r.path);
    auto parsed = misp::ParseJson(req.body.empty() ? "{}" : req.body);
    if (!parsed.ok() || !parsed->is_object()) return InvalidJson(r.path);
    const json::object& f = parsed->as_object();
    std::optional<bool> published;
    if (const json::value* p = f.if_contains("published"); p != nullptr && !p->is_null())
      published = misp::IntOr(p, 0) != 0;
    bool custom_only = misp::IntOr(f.if_contains("custom"), 0) != 0;
    std::vector<std::string> uuids;
    if (const json::value* list = f.if_contains("uuid"); list != nullptr && list->is_array()) {
      for (const auto& x : list->as_array())
        if (x.is_string()) uuids.emplace_back(x.as_string());
    }
    bool minimal = misp::IntOr(f.if_contains("minimal"), 0) != 0;
    json::array out;
    for (auto& c : Clusters()) {
      if (!ClusterVisible(c, u)) continue;
      if (published && misp::BoolOr(c, "published", false) != *published) continue;
      if (custom_only && misp::BoolOr(c, "default", false)) continue;
      std::string uuid(StringOr(c, "uuid"));
      if (f.contains("uuid") && std::none_of(uuids.begin(), uuids.end(),
                                             [&](const std::string& x) { return policy::SameText(x, uuid); }))
        continue;
      json::object row = minimal ? json::object{{"uuid", uuid}, {"version", StringOr(c, "version")}} : c;
      out.push_back(json::object{{"GalaxyCluster", std::move(row)}});
    }
    return JsonResponse(200, json::object{{"response", std::move(out)}});
  }

  // galaxy_clusters/view/<uuid>: {"GalaxyCluster": {...}} with its creator organisation.
  HttpResponse ClusterView(const Route& r, const User& u) {
    auto c = r.segments.size() > 2 ? ClusterByUuid(r.segments[2]) : std::nullopt;
    if (!c || !ClusterVisible(*c, u)) return ErrorResponse(404, "Invalid galaxy cluster", r.path);
    json::object out = std::move(*c);
    if (std::int64_t orgc = OrgIdOf(StringOr(out, "orgc_uuid")); orgc != 0) out["Orgc"] = OrgRef(orgc, true);
    return JsonResponse(200, json::object{{"GalaxyCluster", std::move(out)}});
  }

  // galaxies/pushCluster [{"GalaxyCluster": {...}}]: GalaxyCluster::captureCluster for each, the
  // receiving rules being the policy's (policy::AcceptCluster, sync/policy/other_data.h).
  HttpResponse PushCluster(const HttpRequest& req, const Route& r, const User& u) {
    if (!u.perm_sync() || !u.perm("perm_galaxy_editor"))
      return ErrorResponse(405, "You do not have the permission to do that.", r.path);
    auto parsed = misp::ParseJson(req.body);
    if (!parsed.ok() || !parsed->is_array()) return InvalidJson(r.path);
    int imported = 0, ignored = 0, failed = 0;
    std::vector<std::string> errors;
    for (const auto& item : parsed->as_array()) {
      const json::value* inner = item.is_object() ? item.as_object().if_contains("GalaxyCluster") : nullptr;
      if (inner == nullptr || !inner->is_object()) {
        ++failed;
        errors.emplace_back("Galaxy not found");
        continue;
      }
      json::object c = inner->as_object();
      // The galaxy: shipped with the cluster, or known by type (Galaxy::importGalaxyAndClusters).
      std::string type(StringOr(c, "type"));
      bool galaxy_known = c.contains("Galaxy") && c["Galaxy"].is_object();
      if (!galaxy_known && !type.empty()) {
        for (const auto& held : Clusters())
          if (StringOr(held, "type") == type) galaxy_known = true;
      }
      if (!galaxy_known) {
        ++failed;
        errors.emplace_back("Galaxy not found");
        continue;
      }
      auto held = ClusterByUuid(StringOr(c, "uuid"));
      std::optional<policy::HeldCopy> copy;
      if (held)
        copy =
            policy::HeldCopy{misp::BoolOr(*held, "locked", false), std::string(StringOr(*held, "version"))};
      policy::ElementDecision verdict = policy::AcceptCluster(c, copy, false);
      if (!verdict.send) {
        const std::string& rule = verdict.refusal()->rule;
        if (rule == "receiver.cluster.not_newer") {
          ++ignored;
          errors.push_back("Remote version is not newer than local one for cluster (" +
                           std::string(StringOr(c, "uuid")) + ")");
        } else if (rule == "receiver.cluster.default") {
          ++failed;
          errors.emplace_back("Only non-default clusters can be saved");
        } else {
          ++failed;
          errors.emplace_back(
              "Blocked an edit to an cluster that was created locally. This can happen if a synchronised "
              "cluster that "
              "was created on this instance was modified by an administrator on the remote side.");
        }
        continue;
      }
      c["org_uuid"] = u.org_uuid;
      if (const json::value* orgc = c.if_contains("Orgc"); orgc != nullptr && orgc->is_object()) {
        std::string uuid(StringOr(orgc->as_object(), "uuid"));
        CaptureOrg(uuid, std::string(StringOr(orgc->as_object(), "name")));
        c["orgc_uuid"] = uuid;
        c.erase("Orgc");
      } else {
        c["orgc_uuid"] = u.org_uuid;
      }
      c["tag_name"] = "misp-galaxy:" + type + "=\"" + std::string(StringOr(c, "uuid")) + "\"";
      if (!c.contains("published")) c["published"] = false;
      SaveCluster(c);
      ++imported;
    }
    std::string info = std::to_string(imported) + " imported, " + std::to_string(ignored) + " ignored, " +
                       std::to_string(failed) + " failed. ";
    for (std::size_t i = 0; i < errors.size(); ++i) info += (i ? ", " : "") + errors[i];
    if (failed > 0 && imported == 0) {
      return SaveFail("Could not pushCluster Galaxy", r.path,
                      json::value(json::string("Could not import galaxy clusters. " + info)));
    }
    std::string text = "Galaxy clusters imported. " + info;
    return JsonResponse(
        200,
        json::object{{"saved", true}, {"success", true}, {"name", text}, {"message", text}, {"url", r.path}});
  }

  // ---------------------------------------------------------------- analyst data (spec 8.5)
  // Notes, opinions and relationships, as MISP's AnalystData model and AnalystDataController
  // (MISP/MISP app/Model/AnalystData.php, app/Controller/AnalystDataController.php) handle them.

  static constexpr const char* kAnalystTypes[] = {"Note", "Opinion", "Relationship"};

  static bool IsAnalystType(std::string_view t) {
    return std::any_of(std::begin(kAnalystTypes), std::end(kAnalystTypes),
                       [&](const char* x) { return t == x; });
  }

  // Who sees an entry (AnalystData::buildConditions): site admins and the owner organisation see
  // all; others as for event elements (1-3 and 5 visible, 4 by group membership).
  static bool AnalystVisible(const json::object& e, const User& u) {
    if (u.site_admin() || policy::SameText(StringOr(e, "org_uuid"), u.org_uuid) ||
        policy::SameText(StringOr(e, "orgc_uuid"), u.org_uuid))
      return true;
    int d = static_cast<int>(IntOr(e, "distribution", 0));
    if (d == 4) return GroupAuthorises(e, u);
    return d > 0;
  }

  std::vector<std::pair<std::string, json::object>> AnalystRows() {
    std::vector<std::pair<std::string, json::object>> out;
    auto q = db->Prepare("SELECT type, json FROM analyst_data ORDER BY id");
    while (*(*q)->Step()) out.emplace_back((*q)->Text(0), json::parse((*q)->Text(1)).as_object());
    return out;
  }

  // analyst_data/indexMinimal: {type: {uuid: modified}} of the visible entries, filtered by
  // `orgc_name` (names, "!name" to exclude); an empty PHP array, `[]`, when there are none
  // (analyst-data-indexMinimal.json).
  HttpResponse AnalystIndexMinimal(const HttpRequest& req, const User& u) {
    auto parsed = misp::ParseJson(req.body.empty() ? "{}" : req.body);
    if (!parsed.ok()) return InvalidJson("/analyst_data/indexMinimal");
    std::vector<std::string> only, never;
    if (parsed->is_object()) {
      if (const json::value* names = parsed->as_object().if_contains("orgc_name");
          names && names->is_array()) {
        for (const auto& n : names->as_array()) {
          if (!n.is_string() || n.as_string().empty()) continue;
          std::string name(n.as_string());
          std::string uuid = name[0] == '!' ? OrgUuidNamed(name.substr(1)) : OrgUuidNamed(name);
          if (uuid.empty()) continue;  // an unknown organisation is skipped, as fetchOrg fails
          (name[0] == '!' ? never : only).push_back(uuid);
        }
      }
    }
    json::object out;
    for (auto& [type, e] : AnalystRows()) {
      if (!AnalystVisible(e, u)) continue;
      std::string orgc(StringOr(e, "orgc_uuid"));
      auto in = [&](const std::vector<std::string>& l) {
        return std::any_of(l.begin(), l.end(),
                           [&](const std::string& x) { return policy::SameText(x, orgc); });
      };
      if ((!only.empty() && !in(only)) || in(never)) continue;
      if (!out.contains(type)) out[type] = json::object();
      out[type].as_object()[StringOr(e, "uuid")] = StringOr(e, "modified");
    }
    if (out.empty()) return JsonResponse(200, json::array());
    return JsonResponse(200, out);
  }

  // analyst_data/index/<Type>/uuid[]:<u>...: [{"<Type>": {...}}] of the visible entries asked for.
  HttpResponse AnalystIndex(const Route& r, const User& u) {
    std::string type = r.segments.size() > 2 ? r.segments[2] : "Note";
    if (type.size() > 5 && type.substr(type.size() - 5) == ".json") type.resize(type.size() - 5);
    if (!IsAnalystType(type)) return ErrorResponse(405, "Invalid type.", r.path);
    std::vector<std::string> uuids;
    for (const auto& [k, v] : r.named)
      if (k == "uuid[]" || k == "uuid") uuids.push_back(v);
    json::array out;
    for (auto& [t, e] : AnalystRows()) {
      if (t != type || !AnalystVisible(e, u)) continue;
      std::string uuid(StringOr(e, "uuid"));
      if (!uuids.empty() && std::none_of(uuids.begin(), uuids.end(),
                                         [&](const std::string& x) { return policy::SameText(x, uuid); }))
        continue;
      out.push_back(json::object{{type, std::move(e)}});
    }
    return JsonResponse(200, out);
  }

  // analyst_data/filterAnalystDataForPush: of the offered {type: {uuid: modified}}, those this
  // instance lacks or holds locked with an older `modified` (isCandidateValidForPush).
  HttpResponse AnalystFilterForPush(const HttpRequest& req, const Route& r) {
    if (req.method != "POST")
      return ErrorResponse(405, "This function is only accessible via POST requests.", r.path);
    auto parsed = misp::ParseJson(req.body);
    if (!parsed.ok() || !parsed->is_object()) return InvalidJson(r.path);
    json::object out{{"Note", json::array()}, {"Opinion", json::array()}, {"Relationship", json::array()}};
    for (const auto& [type, entries] : parsed->as_object()) {
      if (!IsAnalystType(type) || !entries.is_object()) continue;
      json::object kept;
      for (const auto& [uuid, modified] : entries.as_object()) {
        auto held = AnalystEntry(uuid);
        bool wanted = !held || (misp::BoolOr(held->second, "locked", false) &&
                                std::string(StringOr(held->second, "modified")) <
                                    std::string(modified.is_string() ? modified.as_string() : ""));
        if (wanted) kept[uuid] = modified;
      }
      out[type] = kept.empty() ? json::value(json::array()) : json::value(std::move(kept));
    }
    return JsonResponse(200, out);
  }

  std::optional<std::pair<std::string, json::object>> AnalystEntry(std::string_view uuid) {
    auto q = db->Prepare("SELECT type, json FROM analyst_data WHERE uuid = ?");
    (*q)->Bind(1, std::string(uuid));
    if (!*(*q)->Step()) return std::nullopt;
    return std::make_pair((*q)->Text(0), json::parse((*q)->Text(1)).as_object());
  }

  struct CaptureCount {
    int imported = 0, ignored = 0, failed = 0;
    std::vector<std::string> errors;
  };

  // AnalystData::captureAnalystData for a REST writer: children first; the owner org is the
  // writer's; the creator org from `Orgc` (captured by uuid) or, for a writer without perm_sync,
  // the writer's own; an existing entry is replaced only when locked and strictly newer.
  void CaptureAnalyst(const std::string& type, json::object e, const User& u, CaptureCount& c) {
    if (!e.contains("uuid")) e["uuid"] = NewUuid();
    e["org_uuid"] = u.org_uuid;
    if (const json::value* orgc = e.if_contains("Orgc"); orgc != nullptr && orgc->is_object()) {
      std::string uuid(StringOr(orgc->as_object(), "uuid"));
      if (!uuid.empty()) {
        CaptureOrg(uuid, std::string(StringOr(orgc->as_object(), "name")));
        e["orgc_uuid"] = uuid;
      }
      e.erase("Orgc");
    }
    if (!e.contains("orgc_uuid") || (!u.perm_sync() && !u.site_admin())) e["orgc_uuid"] = u.org_uuid;
    for (const char* child : kAnalystTypes) {
      json::value* list = e.if_contains(child);
      if (list == nullptr || !list->is_array()) continue;
      for (auto& item : list->as_array())
        if (item.is_object()) CaptureAnalyst(child, item.as_object(), u, c);
      e.erase(child);
    }
    auto held = AnalystEntry(StringOr(e, "uuid"));
    if (held) {
      if (!misp::BoolOr(held->second, "locked", false)) {
        c.errors.push_back(
            "Blocked an edit to an analyst data that was created locally. This can happen if a synchronised "
            "analyst data that was created on this instance was modified by an administrator on the remote "
            "side.");
        ++c.failed;
        return;
      }
      if (!(std::string(StringOr(e, "modified")) > std::string(StringOr(held->second, "modified")))) {
        c.errors.push_back("Remote version is not newer than local one for analyst data (" +
                           std::string(StringOr(e, "uuid")) + ")");
        ++c.ignored;
        return;
      }
    }
    e.erase("id");
    auto up = db->Prepare(
        "INSERT INTO analyst_data (type, uuid, json) VALUES (?, ?, ?) ON CONFLICT (uuid) DO UPDATE SET "
        "type = excluded.type, json = excluded.json");
    (void)(*up)->Bind(1, type).Bind(2, StringOr(e, "uuid")).Bind(3, json::serialize(e)).Run();
    ++c.imported;
  }

  // analyst_data/pushAnalystData {"<Type>": {...}}: needs perm_sync and perm_analyst_data.
  HttpResponse AnalystPush(const HttpRequest& req, const Route& r, const User& u) {
    if (!u.perm_sync() || !u.perm("perm_analyst_data"))
      return ErrorResponse(405, "You do not have the permission to do that.", r.path);
    auto parsed = misp::ParseJson(req.body);
    if (!parsed.ok() || !parsed->is_object()) return InvalidJson(r.path);
    CaptureCount c;
    for (const auto& [type, entry] : parsed->as_object()) {
      if (IsAnalystType(type) && entry.is_object()) CaptureAnalyst(type, entry.as_object(), u, c);
    }
    std::string errors;
    for (const auto& e : c.errors) errors += (errors.empty() ? "" : ", ") + e;
    std::string info = std::to_string(c.imported) + " imported, " + std::to_string(c.ignored) + " ignored, " +
                       std::to_string(c.failed) + " failed. " + errors;
    if (c.imported > 0) {
      std::string text = "Analyst Data imported. " + info;
      return JsonResponse(
          200, json::object{
                   {"saved", true}, {"success", true}, {"name", text}, {"message", text}, {"url", r.path}});
    }
    return SaveFail("Could not pushAnalystData AnalystData", r.path,
                    json::value(json::string("Could not import analyst data. " + info)));
  }

  // An organisation by name or uuid (Organisation::fetchOrg), "" when unknown.
  std::string OrgUuidNamed(const std::string& name) {
    auto q = db->Prepare("SELECT uuid FROM orgs WHERE name = ?1 COLLATE NOCASE OR uuid = ?1 COLLATE NOCASE");
    (*q)->Bind(1, name);
    return *(*q)->Step() ? (*q)->Text(0) : std::string();
  }

  HttpResponse ApiDescription(const std::string& url, const std::string& name,
                              const std::string& description) {
    return JsonResponse(200, json::object{{"name", name},
                                          {"description", description},
                                          {"mandatory_fields", json::array{"info"}},
                                          {"optional_fields", json::array()},
                                          {"url", url}});
  }

  HttpResponse Dispatch(const HttpRequest& req) {
    Route r = ParseRoute(req.target);
    const std::string url = r.path;
    std::string key = req.Header("authorization");
    std::optional<User> user = key.empty() ? std::nullopt : UserByKey(key);
    if (!user) {
      return ErrorResponse(
          403,
          "Authentication failed. Please make sure you pass the API key of an API enabled user along in the "
          "Authorization header.",
          url);
    }
    const User& u = *user;
    std::string controller = r.segments.size() > 0 ? r.segments[0] : "";
    std::string action = r.segments.size() > 1 ? r.segments[1] : "";
    if (controller == "servers" && action == "getVersion") return GetVersion(u);
    if (controller == "users" && action == "view" && r.segments.size() > 2 && r.segments[2] == "me")
      return UserMe(u);
    if (controller == "events") {
      if (action == "index") return EventIndex(req, u, url);
      if (action == "restSearch") return RestSearch(req, u, url);
      if (action == "view") return View(req, r, u);
      if (action == "add") {
        if (req.method == "GET") {
          return ApiDescription(
              "/events/add", "/events/add API description",
              "POST a MISP Event JSON to this API to create an Event. Contained objects can also be "
              "included (such as attributes, objects, tags, etc).");
        }
        return Add(req, r, u);
      }
      if (action == "edit") return Edit(req, r, u);
      if (action == "filterEventIdsForPush") return FilterForPush(req, u, url);
      if (action == "publish") return Publish(req, r, u);
      if (action == "delete") return Delete(req, r, u);
    }
    if (controller == "eventReports" && action == "add" && req.method == "GET") {
      return JsonResponse(
          200, json::object{
                   {"name", "/event_reports/add API description"},
                   {"description", "POST a report in JSON format to create a report for the provided event"},
                   {"mandatory_fields", json::array{"name"}},
                   {"optional_fields", json::array{"distribution", "content"}},
                   {"url", "/event_reports/add"}});
    }
    if (controller == "sharing_groups") return SharingGroups(req, r, u);
    if (controller == "sightings") {
      if (action == "add") return SightingAdd(req, r, u);
      if (action == "bulkSaveSightings") return BulkSaveSightings(req, r, u);
      if (action == "filterSightingUuidsForPush") return FilterSightingsForPush(req, r, u);
      if (action == "restSearch") return SightingsRestSearch(req, r, u);
    }
    if (controller == "events" && action == "publishSightings") return PublishSightings(req, r, u);
    if (controller == "shadow_attributes" && action == "index") return ProposalIndex(r, u);
    if (controller == "events" && action == "pushProposals") return PushProposals(req, r, u);
    if (controller == "galaxy_clusters" && action == "restSearch") return ClusterSearch(req, r, u);
    if (controller == "galaxy_clusters" && action == "view") return ClusterView(r, u);
    if (controller == "galaxies" && action == "pushCluster") return PushCluster(req, r, u);
    if (controller == "analyst_data") {
      if (action == "indexMinimal" && req.method == "POST") return AnalystIndexMinimal(req, u);
      if (action == "index") return AnalystIndex(r, u);
      if (action == "filterAnalystDataForPush") return AnalystFilterForPush(req, r);
      if (action == "pushAnalystData") return AnalystPush(req, r, u);
    }
    return ErrorResponse(403, "You do not have permission to use this functionality.", url);
  }

  std::int64_t OrgIdOf(std::string_view uuid) {
    auto o = OrgByUuid(std::string(uuid));
    return o ? o->first : 0;
  }

  // sharing_groups/index row (sharing-groups-index.json).
  json::object GroupIndexRow(std::int64_t id, const json::object& sg, const User& u) {
    std::string sid = std::to_string(id);
    json::object group{{"id", sid},
                       {"uuid", StringOr(sg, "uuid")},
                       {"name", StringOr(sg, "name")},
                       {"description", StringOr(sg, "description")},
                       {"releasability", StringOr(sg, "releasability")},
                       {"local", misp::BoolOr(sg, "local", false)},
                       {"active", misp::BoolOr(sg, "active", true)},
                       {"roaming", misp::BoolOr(sg, "roaming", false)}};
    json::array orgs, servers;
    std::int64_t n = 0;
    misp::SharingGroupView view(sg);
    for (auto uuid : view.org_uuids()) {
      std::int64_t oid = OrgIdOf(uuid);
      json::object ref = OrgRef(oid, false);
      orgs.push_back(json::object{
          {"id", std::to_string(id * 100 + ++n)},
          {"sharing_group_id", sid},
          {"org_id", std::to_string(oid)},
          {"extend", false},
          {"Organisation", json::object{{"name", ref["name"]}, {"id", ref["id"]}, {"uuid", ref["uuid"]}}}});
    }
    group["org_count"] = std::to_string(orgs.size());
    for (const auto& row : view.servers()) {
      json::value server =
          row.server_id == 0
              ? json::value(json::array())
              : json::value(json::object{{"name", row.name}, {"id", std::to_string(row.server_id)}});
      servers.push_back(json::object{{"all_orgs", row.all_orgs},
                                     {"server_id", std::to_string(row.server_id)},
                                     {"sharing_group_id", sid},
                                     {"Server", std::move(server)}});
    }
    json::object owner = OrgRef(OrgIdOf(view.organisation_uuid()), false);
    return json::object{{"SharingGroup", std::move(group)},   {"Organisation", std::move(owner)},
                        {"SharingGroupOrg", std::move(orgs)}, {"SharingGroupServer", std::move(servers)},
                        {"editable", u.site_admin()},         {"deletable", u.site_admin()}};
  }

  // sharing_groups/view (sharing-groups-view-uuid.json).
  json::object GroupView(std::int64_t id, const json::object& sg) {
    std::string sid = std::to_string(id);
    misp::SharingGroupView view(sg);
    std::int64_t owner_id = OrgIdOf(view.organisation_uuid());
    json::object owner = OrgRef(owner_id, false);
    json::object group{{"id", sid},
                       {"name", StringOr(sg, "name")},
                       {"releasability", StringOr(sg, "releasability")},
                       {"description", StringOr(sg, "description")},
                       {"uuid", StringOr(sg, "uuid")},
                       {"organisation_uuid", view.organisation_uuid()},
                       {"org_id", std::to_string(owner_id)},
                       {"sync_user_id", "0"},
                       {"active", misp::BoolOr(sg, "active", true)},
                       {"created", StringOr(sg, "created", "2026-11-27 00:00:00")},
                       {"modified", StringOr(sg, "modified", "2026-11-27 00:00:00")},
                       {"local", misp::BoolOr(sg, "local", false)},
                       {"roaming", misp::BoolOr(sg, "roaming", false)},
                       {"sync_org_name", owner["name"]},
                       {"sync_org", owner}};
    json::array orgs, servers;
    std::int64_t n = 0;
    for (auto uuid : view.org_uuids()) {
      std::int64_t oid = OrgIdOf(uuid);
      orgs.push_back(json::object{{"id", std::to_string(id * 100 + ++n)},
                                  {"sharing_group_id", sid},
                                  {"org_id", std::to_string(oid)},
                                  {"extend", false},
                                  {"Organisation", OrgRef(oid, true)}});
    }
    for (const auto& row : view.servers()) {
      json::object server{
          {"id", std::to_string(row.server_id)},
          {"name", row.server_id == 0 ? std::string("Local instance") : std::string(row.name)},
          {"url", row.server_id == 0 ? config.base_url : std::string(row.url)}};
      servers.push_back(json::object{{"id", std::to_string(id * 100 + ++n)},
                                     {"sharing_group_id", sid},
                                     {"server_id", std::to_string(row.server_id)},
                                     {"all_orgs", row.all_orgs},
                                     {"Server", std::move(server)}});
    }
    return json::object{{"SharingGroup", std::move(group)},
                        {"Organisation", FullOrg(owner_id)},
                        {"SharingGroupOrg", std::move(orgs)},
                        {"SharingGroupServer", std::move(servers)}};
  }

  std::optional<std::pair<std::int64_t, json::object>> LoadGroup(const std::string& key) {
    auto q = db->Prepare(IsDigits(key) ? "SELECT id, json FROM sharing_groups WHERE id = ?"
                                       : "SELECT id, json FROM sharing_groups WHERE uuid = ? COLLATE NOCASE");
    if (IsDigits(key)) {
      (*q)->Bind(1, static_cast<std::int64_t>(std::stoll(key)));
    } else {
      (*q)->Bind(1, key);
    }
    if (!*(*q)->Step()) return std::nullopt;
    return std::make_pair((*q)->Int(0), json::parse((*q)->Text(1)).as_object());
  }

  Status SaveGroup(std::int64_t id, const json::object& sg) {
    auto s = db->Prepare("UPDATE sharing_groups SET json = ? WHERE id = ?");
    if (!s.ok()) return s.error();
    return (*s)->Bind(1, json::serialize(sg)).Bind(2, id).Run();
  }

  // sharing_groups/add over REST goes through captureSG: local false, the creator org not made a
  // member, one row for this instance when the group is not roaming (spec 4.1, 11.27;
  // sharing-groups-add-rest.json).
  HttpResponse GroupAdd(const HttpRequest& req, const User& u, const std::string& url) {
    if (!u.perm_sharing_group())
      return ErrorResponse(403, "You do not have permission to use this functionality.", url);
    auto parsed = misp::ParseJson(req.body);
    if (!parsed.ok() || !parsed->is_object()) return InvalidJson(url);
    json::object in = parsed->as_object();
    if (in.contains("SharingGroup") && in["SharingGroup"].is_object()) in = in["SharingGroup"].as_object();
    std::string name(StringOr(in, "name"));
    if (name.empty()) return SaveFail("Could not add Sharing Group", url, "The sharing group needs a name.");
    std::string uuid(StringOr(in, "uuid"));
    if (uuid.empty()) uuid = NewUuid();
    bool roaming = misp::BoolOr(in, "roaming", false);
    char now[32];
    std::time_t t = std::time(nullptr);
    std::strftime(now, sizeof now, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
    json::object sg{{"name", name},
                    {"releasability", StringOr(in, "releasability")},
                    {"description", StringOr(in, "description")},
                    {"uuid", uuid},
                    {"organisation_uuid", u.org_uuid},
                    {"active", misp::BoolOr(in, "active", true)},
                    {"created", now},
                    {"modified", now},
                    {"local", false},
                    {"roaming", roaming},
                    {"SharingGroupOrg", json::array()},
                    {"SharingGroupServer", json::array()}};
    if (!roaming) {
      sg["SharingGroupServer"].as_array().push_back(json::object{
          {"server_id", "0"},
          {"all_orgs", false},
          {"Server", json::object{{"id", "0"}, {"url", config.base_url}, {"name", config.base_url}}}});
    }
    auto ins = db->Prepare("INSERT INTO sharing_groups (uuid, json) VALUES (?, ?)");
    if (!(*ins)->Bind(1, uuid).Bind(2, json::serialize(sg)).Run().ok()) {
      return SaveFail("Could not add Sharing Group", url, "A sharing group with this uuid exists.");
    }
    std::int64_t id = db->LastInsertId();
    std::string sid = std::to_string(id);
    json::array servers;
    if (!roaming) {
      servers.push_back(json::object{{"id", std::to_string(id * 100 + 1)},
                                     {"sharing_group_id", sid},
                                     {"server_id", "0"},
                                     {"all_orgs", false}});
    }
    json::object group{{"id", sid},
                       {"name", name},
                       {"releasability", sg["releasability"]},
                       {"description", sg["description"]},
                       {"uuid", uuid},
                       {"organisation_uuid", u.org_uuid},
                       {"org_id", std::to_string(u.org_id)},
                       {"sync_user_id", std::to_string(u.id)},
                       {"active", sg["active"]},
                       {"created", now},
                       {"modified", now},
                       {"local", false},
                       {"roaming", roaming}};
    json::object owner = OrgRef(u.org_id, false);
    return JsonResponse(200, json::object{{"SharingGroup", std::move(group)},
                                          {"SharingGroupOrg", json::array()},
                                          {"SharingGroupServer", std::move(servers)},
                                          {"Organisation", std::move(owner)}});
  }

  // sharing_groups/addOrg/<group>/<org> and addServer/<group>/<server> (openapi.yaml,
  // AddOrganisationToSharingGroupResponse / AddServerToSharingGroupResponse).
  HttpResponse GroupAddMember(const Route& r, const User& u, bool server) {
    std::string url = server ? "/sharing_groups/addServer" : "/sharing_groups/addOrg";
    if (!u.perm_sharing_group())
      return ErrorResponse(403, "You do not have permission to use this functionality.", r.path);
    auto group = r.segments.size() > 3 ? LoadGroup(r.segments[2]) : std::nullopt;
    if (!group) return ErrorResponse(404, "Invalid sharing group.", r.path);
    json::object& sg = group->second;
    const std::string& member = r.segments[3];
    if (server) {
      json::object row{{"server_id", member}, {"all_orgs", false}};
      if (member == "0") {
        row["Server"] = json::object{{"id", "0"}, {"url", config.base_url}, {"name", config.base_url}};
      } else {
        auto q = db->Prepare("SELECT url, name FROM servers WHERE id = ?");
        (*q)->Bind(1, static_cast<std::int64_t>(IsDigits(member) ? std::stoll(member) : -1));
        if (!*(*q)->Step()) return ErrorResponse(404, "Invalid server.", r.path);
        row["Server"] = json::object{{"id", member}, {"url", (*q)->Text(0)}, {"name", (*q)->Text(1)}};
      }
      if (!sg.contains("SharingGroupServer") || !sg["SharingGroupServer"].is_array())
        sg["SharingGroupServer"] = json::array();
      sg["SharingGroupServer"].as_array().push_back(std::move(row));
    } else {
      std::int64_t org_id = IsDigits(member) ? std::stoll(member) : OrgIdOf(member);
      json::object ref = OrgRef(org_id, false);
      if (ref.empty()) return ErrorResponse(404, "Invalid organisation.", r.path);
      if (!sg.contains("SharingGroupOrg") || !sg["SharingGroupOrg"].is_array())
        sg["SharingGroupOrg"] = json::array();
      sg["SharingGroupOrg"].as_array().push_back(
          json::object{{"extend", false}, {"Organisation", std::move(ref)}});
    }
    if (!SaveGroup(group->first, sg).ok())
      return ErrorResponse(500, "An Internal Error Has Occurred.", r.path);
    std::string text =
        server ? "Server added to the sharing group." : "Organisation added to the sharing group.";
    return JsonResponse(
        200,
        json::object{{"saved", true}, {"success", true}, {"name", text}, {"message", text}, {"url", url}});
  }

  HttpResponse SharingGroups(const HttpRequest& req, const Route& r, const User& u) {
    const std::string url = r.path;
    std::string action = r.segments.size() > 1 ? r.segments[1] : "";
    if (action == "add" && r.segments.size() == 2) return GroupAdd(req, u, url);
    if (action == "addOrg") return GroupAddMember(r, u, false);
    if (action == "addServer") return GroupAddMember(r, u, true);
    auto authorised = [&](const json::object& sg) {
      return u.site_admin() || GroupAuthorises(json::object{{"SharingGroup", sg}}, u);
    };
    if (action == "index") {
      json::array out;
      auto q = db->Prepare("SELECT id, json FROM sharing_groups ORDER BY id");
      while (*(*q)->Step()) {
        json::object sg = json::parse((*q)->Text(1)).as_object();
        if (authorised(sg)) out.push_back(GroupIndexRow((*q)->Int(0), sg, u));
      }
      return JsonResponse(200, json::object{{"response", std::move(out)}});
    }
    if (action == "view" && r.segments.size() > 2) {
      auto q = db->Prepare(IsDigits(r.segments[2])
                               ? "SELECT id, json FROM sharing_groups WHERE id = ?"
                               : "SELECT id, json FROM sharing_groups WHERE uuid = ? COLLATE NOCASE");
      if (IsDigits(r.segments[2])) {
        (*q)->Bind(1, static_cast<std::int64_t>(std::stoll(r.segments[2])));
      } else {
        (*q)->Bind(1, r.segments[2]);
      }
      if (*(*q)->Step()) {
        json::object sg = json::parse((*q)->Text(1)).as_object();
        if (authorised(sg)) return JsonResponse(200, GroupView((*q)->Int(0), sg));
      }
      return ErrorResponse(
          405, "Sharing group doesn&#039;t exist or you do not have permission to access it.", url);
    }
    return ErrorResponse(403, "You do not have permission to use this functionality.", url);
  }
};

std::string RandomKey() { return RandomHex(20); }

MispSim::MispSim(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MispSim::~MispSim() = default;

Result<std::unique_ptr<MispSim>> MispSim::Create(const SimConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  if (impl->config.instance_uuid.empty()) impl->config.instance_uuid = NewUuid();
  if (impl->config.org_uuid.empty()) impl->config.org_uuid = NewUuid();
  state::OpenOptions open;
  open.synchronous_full = false;  // a test server: speed over power-loss safety
  SGSYNC_TRY(impl->db, Database::Open(config.db_path, open));
  SGSYNC_TRY_STATUS(impl->CreateSchema());
  std::unique_ptr<MispSim> sim(new MispSim(std::move(impl)));
  SGSYNC_TRY(auto org, sim->AddOrg(config.org_name, sim->impl_->config.org_uuid, true));
  (void)org;
  if (!config.admin_key.empty()) {
    SGSYNC_TRY(auto key, sim->AddUser("admin@" + config.org_name, sim->impl_->config.org_uuid,
                                      Role::kSiteAdmin, config.admin_key));
    (void)key;
  }
  return sim;
}

Result<std::int64_t> MispSim::AddOrg(const std::string& name, const std::string& uuid, bool local) {
  std::lock_guard lock(impl_->mu);
  if (auto o = impl_->OrgByUuid(uuid)) return o->first;
  SGSYNC_TRY(auto s, impl_->db->Prepare("INSERT INTO orgs (uuid, name, local) VALUES (?, ?, ?)"));
  SGSYNC_TRY_STATUS(s->Bind(1, uuid).Bind(2, name).Bind(3, static_cast<std::int64_t>(local)).Run());
  return impl_->db->LastInsertId();
}

Result<std::string> MispSim::AddUser(const std::string& email, const std::string& org_uuid, Role role,
                                     const std::string& key) {
  std::lock_guard lock(impl_->mu);
  auto org = impl_->OrgByUuid(org_uuid);
  if (!org) return Fail(ErrorCode::kNotFound, "no organisation " + org_uuid);
  std::string api_key = key.empty() ? RandomHex(20) : key;
  SGSYNC_TRY(auto s,
             impl_->db->Prepare("INSERT INTO users (email, org_id, role, api_key) VALUES (?, ?, ?, ?)"));
  const char* role_name = RecordOf(role).db_name;
  SGSYNC_TRY_STATUS(s->Bind(1, email).Bind(2, org->first).Bind(3, role_name).Bind(4, api_key).Run());
  return api_key;
}

Result<std::int64_t> MispSim::AddServer(const std::string& url, const std::string& name) {
  std::lock_guard lock(impl_->mu);
  SGSYNC_TRY(auto s, impl_->db->Prepare("INSERT INTO servers (url, name) VALUES (?, ?)"));
  SGSYNC_TRY_STATUS(s->Bind(1, url).Bind(2, name).Run());
  return impl_->db->LastInsertId();
}

Result<std::int64_t> MispSim::AddSharingGroup(const std::string& text) {
  std::lock_guard lock(impl_->mu);
  SGSYNC_TRY(json::value v, misp::ParseJson(text));
  if (!v.is_object()) return Fail(ErrorCode::kInvalidArgument, "expected a sharing group object");
  json::object sg = v.as_object();
  // The index form nests the group and keeps the member lists beside it.
  if (sg.contains("SharingGroup") && sg["SharingGroup"].is_object()) {
    json::object inner = sg["SharingGroup"].as_object();
    for (const char* k : {"SharingGroupOrg", "SharingGroupServer", "Organisation"}) {
      if (sg.contains(k)) inner[k] = sg[k];
    }
    sg = std::move(inner);
  }
  std::string uuid(StringOr(sg, "uuid"));
  if (!misp::IsUuid(uuid)) return Fail(ErrorCode::kInvalidArgument, "the sharing group needs a uuid", "uuid");
  std::string id_text(StringOr(sg, "id"));
  SGSYNC_TRY(auto s, impl_->db->Prepare("INSERT INTO sharing_groups (id, uuid, json) VALUES (?, ?, ?) "
                                        "ON CONFLICT (uuid) DO UPDATE SET json = excluded.json"));
  if (IsDigits(id_text)) {
    s->Bind(1, static_cast<std::int64_t>(std::stoll(id_text)));
  } else {
    s->BindNull(1);
  }
  SGSYNC_TRY_STATUS(s->Bind(2, uuid).Bind(3, json::serialize(sg)).Run());
  return impl_->db->LastInsertId();
}

Result<std::int64_t> MispSim::LoadEvent(const std::string& text) {
  std::lock_guard lock(impl_->mu);
  SGSYNC_TRY(json::value v, misp::ParseJson(text));
  if (v.is_object() && v.as_object().contains("Event")) v = v.as_object()["Event"];
  if (!v.is_object()) return Fail(ErrorCode::kInvalidArgument, "expected an event object");
  json::object e = std::move(v.as_object());
  misp::EventView ev(e);
  std::string owner(ev.org_uuid());
  if (owner.empty()) owner = impl_->config.org_uuid;
  const json::value* org = e.if_contains("Org");
  std::string org_name =
      org != nullptr && org->is_object() ? std::string(StringOr(org->as_object(), "name")) : owner;
  std::int64_t org_id = impl_->CaptureOrg(owner, org_name);
  std::string id_text(StringOr(e, "id"));
  std::int64_t id = IsDigits(id_text) ? std::stoll(id_text) : impl_->NextId("Event");
  // Keep the id counters ahead of loaded ids so later adds do not collide.
  SGSYNC_TRY(auto up, impl_->db->Prepare("INSERT INTO counters (name, value) VALUES ('Event', ?) ON CONFLICT "
                                         "(name) DO UPDATE SET value = max(value, excluded.value)"));
  SGSYNC_TRY_STATUS(up->Bind(1, id).Run());
  impl_->AssignIds(e, id);
  impl_->CompleteServerIds(e);
  SGSYNC_TRY_STATUS(impl_->SaveEvent(Impl::StoredEvent{id, org_id, std::move(e)}));
  return id;
}

Status MispSim::LoadProposal(const std::string& text) {
  std::lock_guard lock(impl_->mu);
  SGSYNC_TRY(json::value v, misp::ParseJson(text));
  if (v.is_object() && v.as_object().contains("ShadowAttribute")) v = v.as_object()["ShadowAttribute"];
  if (!v.is_object()) return Fail(ErrorCode::kInvalidArgument, "expected a proposal object");
  auto e = impl_->LoadEvent(std::string(StringOr(v.as_object(), "event_uuid")));
  if (!e) return Fail(ErrorCode::kNotFound, "the proposal's event is not stored", "event_uuid");
  SGSYNC_TRY(auto s,
             impl_->db->Prepare("INSERT INTO proposals (event_id, timestamp, json) VALUES (?, ?, ?)"));
  return s->Bind(1, e->id).Bind(2, IntOr(v.as_object(), "timestamp", 0)).Bind(3, json::serialize(v)).Run();
}

void MispSim::set_base_url(const std::string& url) {
  std::lock_guard lock(impl_->mu);
  impl_->config.base_url = url;
}

void MispSim::AddFault(const Fault& fault) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.push_back(fault);
}

void MispSim::ClearFaults() {
  std::lock_guard lock(impl_->mu);
  impl_->faults.clear();
}

std::vector<LoggedRequest> MispSim::RequestLog() {
  std::lock_guard lock(impl_->mu);
  return impl_->log;
}

void MispSim::ClearRequestLog() {
  std::lock_guard lock(impl_->mu);
  impl_->log.clear();
}

Status MispSim::Reset() {
  std::lock_guard lock(impl_->mu);
  return impl_->db->Exec(
      "DELETE FROM events; DELETE FROM sharing_groups; DELETE FROM event_blocklist; DELETE FROM sightings; "
      "DELETE FROM proposals; DELETE FROM analyst_data; DELETE FROM clusters;");
}

Result<std::vector<std::string>> MispSim::Seed(int events, int attributes, int objects, int distribution,
                                               std::uint64_t seed, int attribute_distribution) {
  std::lock_guard lock(impl_->mu);
  auto org = impl_->OrgByUuid(impl_->config.org_uuid);
  std::vector<std::string> uuids;
  for (int i = 0; i < events; ++i) {
    GeneratedEventShape shape;
    shape.attributes = attributes;
    shape.objects = objects;
    shape.event_distribution = distribution;
    shape.attribute_distribution = attribute_distribution;
    shape.seed = seed * 1000003 + static_cast<std::uint64_t>(i);
    json::object e = json::parse(GenerateEventJson(shape)).as_object()["Event"].as_object();
    std::int64_t id = impl_->NextId("Event");
    e["Org"] = json::object{
        {"id", std::to_string(org->first)}, {"name", org->second}, {"uuid", impl_->config.org_uuid}};
    e["Orgc"] = e["Org"];
    impl_->AssignIds(e, id);
    misp::WriteInt(e, "attribute_count", Impl::CountAttributes(e));
    uuids.emplace_back(StringOr(e, "uuid"));
    SGSYNC_TRY_STATUS(impl_->SaveEvent(Impl::StoredEvent{id, org->first, std::move(e)}));
  }
  return uuids;
}

namespace {

HttpResponse ControlError(int status, const std::string& what) {
  return JsonResponse(status, json::object{{"error", what}});
}

Result<Fault> FaultFromJson(const json::value& v) {
  if (!v.is_object()) return Fail(ErrorCode::kInvalidArgument, "expected a fault object");
  const json::object& o = v.as_object();
  Fault f;
  f.route = std::string(StringOr(o, "route"));
  f.latency_ms = static_cast<int>(IntOr(o, "latency_ms", 0));
  f.jitter_ms = static_cast<int>(IntOr(o, "jitter_ms", 0));
  if (const json::value* r = o.if_contains("error_rate"))
    f.error_rate = r->is_double() ? r->as_double() : static_cast<double>(IntOr(r, 0));
  f.error_status = static_cast<int>(IntOr(o, "error_status", 503));
  f.retry_after_s = static_cast<int>(IntOr(o, "retry_after", 0));
  if (o.contains("reset_after_bytes"))
    f.reset_after_bytes = static_cast<std::size_t>(IntOr(o, "reset_after_bytes", 0));
  f.truncate_body = misp::BoolOr(o, "truncate", false);
  f.stall_ms = static_cast<int>(IntOr(o, "stall_ms", 0));
  f.remaining = static_cast<int>(IntOr(o, "count", 0));
  return f;
}

}  // namespace

HttpResponse MispSim::Handle(const HttpRequest& request) {
  Route route = ParseRoute(request.target);
  if (route.path.rfind("/_sim/", 0) == 0) return HandleControl(request, route.path.substr(6));
  // Pick the fault (if any) under the lock, wait outside it, answer under it again.
  std::optional<Fault> fault;
  double draw = 0;
  int jitter = 0;
  {
    std::lock_guard lock(impl_->mu);
    for (auto it = impl_->faults.begin(); it != impl_->faults.end(); ++it) {
      if (route.path.rfind(it->route, 0) != 0) continue;
      fault = *it;
      if (it->remaining > 0 && --it->remaining == 0) impl_->faults.erase(it);
      break;
    }
    draw = std::uniform_real_distribution<double>(0, 1)(impl_->rng);
    if (fault && fault->jitter_ms > 0)
      jitter = std::uniform_int_distribution<int>(0, fault->jitter_ms)(impl_->rng);
  }
  if (fault) {
    int wait = fault->stall_ms + fault->latency_ms + jitter;
    if (wait > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait));
  }
  HttpResponse response;
  if (fault && fault->error_rate > 0 && draw < fault->error_rate) {
    if (fault->error_status == 429) {
      response = ErrorResponse(429, "Too Many Requests", route.path);
      response.headers.emplace_back("Retry-After", std::to_string(fault->retry_after_s));
    } else {
      response = ErrorResponse(fault->error_status, "An Internal Error Has Occurred.", route.path);
    }
  } else {
    std::lock_guard lock(impl_->mu);
    response = impl_->Dispatch(request);
  }
  if (fault) {
    response.reset_after_bytes = fault->reset_after_bytes;
    response.truncate_body = fault->truncate_body;
  }
  std::lock_guard lock(impl_->mu);
  LoggedRequest entry{request.method, request.target, request.headers, request.body.substr(0, 1u << 20),
                      response.status};
  if (entry.headers.count("authorization")) entry.headers["authorization"] = "REDACTED";
  impl_->log.push_back(std::move(entry));
  return response;
}

HttpResponse MispSim::HandleControl(const HttpRequest& request, const std::string& what) {
  if (impl_->config.control_token.empty() || request.Header("x-sim-token") != impl_->config.control_token) {
    return ControlError(403, "the control routes need the X-Sim-Token header");
  }
  json::value body;
  if (!request.body.empty()) {
    auto parsed = misp::ParseJson(request.body);
    if (!parsed.ok()) return ControlError(400, parsed.error().ToString());
    body = std::move(*parsed);
  }
  if (what == "reset" && request.method == "POST") {
    auto s = Reset();
    return s.ok() ? JsonResponse(200, json::object{{"reset", true}})
                  : ControlError(500, s.error().ToString());
  }
  if (what == "seed" && request.method == "POST" && body.is_object()) {
    const json::object& o = body.as_object();
    auto uuids = Seed(static_cast<int>(IntOr(o, "events", 1)), static_cast<int>(IntOr(o, "attributes", 10)),
                      static_cast<int>(IntOr(o, "objects", 0)), static_cast<int>(IntOr(o, "distribution", 3)),
                      static_cast<std::uint64_t>(IntOr(o, "seed", 1)),
                      static_cast<int>(IntOr(o, "attribute_distribution", -1)));
    if (!uuids.ok()) return ControlError(500, uuids.error().ToString());
    json::array a;
    for (auto& u : *uuids) a.push_back(json::value(u));
    return JsonResponse(200, json::object{{"uuids", std::move(a)}});
  }
  // Organisations, users and server records, as an installation's admin would create them:
  // {"orgs": [{"name", "uuid", "local"}], "users": [{"email", "org_uuid", "role", "key"}],
  //  "servers": [{"url", "name"}]}; role is "site_admin", "org_admin", "user" or "sync_user".
  if (what == "setup" && request.method == "POST" && body.is_object()) {
    const json::object& o = body.as_object();
    json::object out;
    if (const json::value* orgs = o.if_contains("orgs"); orgs && orgs->is_array()) {
      for (const auto& v : orgs->as_array()) {
        if (!v.is_object()) return ControlError(400, "orgs: expected objects");
        auto id =
            AddOrg(std::string(StringOr(v.as_object(), "name")), std::string(StringOr(v.as_object(), "uuid")),
                   misp::BoolOr(v.as_object(), "local", false));
        if (!id.ok()) return ControlError(400, id.error().ToString());
      }
    }
    json::object keys;
    if (const json::value* users = o.if_contains("users"); users && users->is_array()) {
      for (const auto& v : users->as_array()) {
        if (!v.is_object()) return ControlError(400, "users: expected objects");
        const json::object& u = v.as_object();
        std::string role(StringOr(u, "role", "user"));
        std::optional<Role> r = RoleNamed(role);
        if (!r)
          return ControlError(400,
                              "users: role must be site_admin, org_admin, user or sync_user, found " + role);
        auto key = AddUser(std::string(StringOr(u, "email")), std::string(StringOr(u, "org_uuid")), *r,
                           std::string(StringOr(u, "key")));
        if (!key.ok()) return ControlError(400, key.error().ToString());
        keys[StringOr(u, "email")] = *key;
      }
    }
    if (const json::value* servers = o.if_contains("servers"); servers && servers->is_array()) {
      for (const auto& v : servers->as_array()) {
        if (!v.is_object()) return ControlError(400, "servers: expected objects");
        auto id = AddServer(std::string(StringOr(v.as_object(), "url")),
                            std::string(StringOr(v.as_object(), "name")));
        if (!id.ok()) return ControlError(400, id.error().ToString());
      }
    }
    out["keys"] = std::move(keys);
    return JsonResponse(200, out);
  }
  // Fixture documents: an event ({"Event": ...}), a list of them, or {"response": [...]}.
  if (what == "load" && request.method == "POST") {
    json::value docs = body;
    if (docs.is_object() && docs.as_object().contains("response")) docs = docs.as_object()["response"];
    if (!docs.is_array()) docs = json::array{docs};
    json::array ids;
    for (const auto& d : docs.as_array()) {
      auto id = LoadEvent(json::serialize(d));
      if (!id.ok()) return ControlError(400, id.error().ToString());
      ids.push_back(json::value(std::to_string(*id)));
    }
    return JsonResponse(200, json::object{{"loaded", std::move(ids)}});
  }
  // Proposals made on this instance ({"ShadowAttribute": ...} rows, or the bare rows), each on a
  // stored event named by its `event_uuid`.
  // Custom clusters made on this instance: {"GalaxyCluster": {...}} documents (or a list), owned by
  // the instance's organisation unless they name `org_uuid`.
  if (what == "clusters" && request.method == "POST") {
    json::value docs = body;
    if (!docs.is_array()) docs = json::array{docs};
    std::lock_guard lock(impl_->mu);
    int n = 0;
    for (const auto& d : docs.as_array()) {
      const json::value* c = d.is_object() ? d.as_object().if_contains("GalaxyCluster") : nullptr;
      if (c == nullptr || !c->is_object() || !c->as_object().contains("uuid"))
        return ControlError(400, "clusters: expected {\"GalaxyCluster\": {...}} with a uuid");
      json::object cluster = c->as_object();
      if (!cluster.contains("org_uuid")) cluster["org_uuid"] = impl_->config.org_uuid;
      if (!cluster.contains("orgc_uuid")) cluster["orgc_uuid"] = cluster["org_uuid"];
      impl_->SaveCluster(cluster);
      ++n;
    }
    return JsonResponse(200, json::object{{"loaded", n}});
  }
  // Analyst data made on this instance: {"<Type>": {...}} documents (or a list of them), stored as
  // given (unlocked unless they say otherwise: made here).
  if (what == "analyst_data" && request.method == "POST") {
    json::value docs = body;
    if (!docs.is_array()) docs = json::array{docs};
    std::lock_guard lock(impl_->mu);
    int n = 0;
    for (const auto& d : docs.as_array()) {
      if (!d.is_object())
        return ControlError(400, "analyst_data: expected {\"Note\"|\"Opinion\"|\"Relationship\": {...}}");
      for (const auto& [type, entry] : d.as_object()) {
        if (!Impl::IsAnalystType(type) || !entry.is_object() || !entry.as_object().contains("uuid"))
          return ControlError(
              400, "analyst_data: " + std::string(type) + " is not an analyst data entry with a uuid");
        auto up = impl_->db->Prepare(
            "INSERT INTO analyst_data (type, uuid, json) VALUES (?, ?, ?) ON CONFLICT (uuid) DO UPDATE SET "
            "type = excluded.type, json = excluded.json");
        (void)(*up)
            ->Bind(1, std::string(type))
            .Bind(2, StringOr(entry.as_object(), "uuid"))
            .Bind(3, json::serialize(entry))
            .Run();
        ++n;
      }
    }
    return JsonResponse(200, json::object{{"loaded", n}});
  }
  if (what == "proposals" && request.method == "POST") {
    json::value docs = body;
    if (!docs.is_array()) docs = json::array{docs};
    for (const auto& d : docs.as_array()) {
      if (auto st = LoadProposal(json::serialize(d)); !st.ok())
        return ControlError(400, st.error().ToString());
    }
    return JsonResponse(200, json::object{{"loaded", docs.as_array().size()}});
  }
  if (what == "faults" && request.method == "POST") {
    auto f = FaultFromJson(body);
    if (!f.ok()) return ControlError(400, f.error().ToString());
    AddFault(*f);
    return JsonResponse(200, json::object{{"faults", true}});
  }
  if (what == "faults" && request.method == "DELETE") {
    ClearFaults();
    return JsonResponse(200, json::object{{"faults", false}});
  }
  if (what == "requests" && request.method == "GET") {
    json::array a;
    for (const auto& r : RequestLog()) {
      json::object h;
      for (const auto& [k, v] : r.headers) h[k] = v;
      a.push_back(json::object{{"method", r.method},
                               {"target", r.target},
                               {"headers", std::move(h)},
                               {"body", r.body},
                               {"status", r.status}});
    }
    return JsonResponse(200, a);
  }
  if (what == "requests" && request.method == "DELETE") {
    ClearRequestLog();
    return JsonResponse(200, json::object{{"cleared", true}});
  }
  return ControlError(404, "no control route " + request.method + " /_sim/" + what);
}

}  // namespace sgsync::sim
