// MispSim::Impl: the SQLite schema, stored documents in MISP's shapes, and who sees what (spec 3.1, 4.2).

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "misp-sim/sim_impl.h"

namespace sgsync::sim {

auto MispSim::Impl::CreateSchema() -> Status {
  SGSYNC_TRY_STATUS(db->Exec(R"sql(
CREATE TABLE IF NOT EXISTS orgs (id INTEGER PRIMARY KEY, uuid TEXT UNIQUE NOT NULL, name TEXT NOT NULL, local INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, org_id INTEGER NOT NULL, role TEXT NOT NULL, api_key TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS servers (id INTEGER PRIMARY KEY, url TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sharing_groups (id INTEGER PRIMARY KEY, uuid TEXT UNIQUE NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, uuid TEXT UNIQUE NOT NULL, org_id INTEGER NOT NULL,
timestamp INTEGER NOT NULL, published INTEGER NOT NULL, sighting_timestamp INTEGER NOT NULL DEFAULT 0, json TEXT NOT NULL,
meta TEXT);
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
-- Events are found by uuid whatever its case (FindEvent: uuid = ? COLLATE NOCASE), which the UNIQUE
-- index (binary) cannot serve: without this one every view, edit and add scanned the table.
CREATE INDEX IF NOT EXISTS events_uuid_nocase ON events(uuid COLLATE NOCASE);
)sql"));
  // A file made before the meta column: its rows keep NULL there, and the index reads their json.
  auto columns = db->Prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'meta'");
  if (!columns.ok()) return columns.error();
  SGSYNC_TRY(bool has_meta, (*columns)->Step());
  if (!has_meta) SGSYNC_TRY_STATUS(db->Exec("ALTER TABLE events ADD COLUMN meta TEXT"));
  return Status();
}

auto MispSim::Impl::NextId(const char* counter) -> std::int64_t {
  auto up = db->Prepare(
      "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + "
      "1");
  (void)(*up)->Bind(1, counter).Run();
  auto q = db->Prepare("SELECT value FROM counters WHERE name = ?");
  (*q)->Bind(1, counter);
  (void)(*q)->Step();
  return (*q)->Int(0);
}

auto MispSim::Impl::UserByKey(const std::string& key) -> std::optional<User> {
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

auto MispSim::Impl::OrgByUuid(const std::string& uuid)
    -> std::optional<std::pair<std::int64_t, std::string>> {
  auto q = db->Prepare("SELECT id, name FROM orgs WHERE uuid = ? COLLATE NOCASE");
  (*q)->Bind(1, uuid);
  if (!*(*q)->Step()) return std::nullopt;
  return std::make_pair((*q)->Int(0), (*q)->Text(1));
}

auto MispSim::Impl::CaptureOrg(const std::string& uuid, const std::string& name) -> std::int64_t {
  if (auto o = OrgByUuid(uuid)) return o->first;
  std::string wanted = name.empty() ? uuid : name;
  auto taken = db->Prepare("SELECT 1 FROM orgs WHERE name = ? COLLATE NOCASE");
  (*taken)->Bind(1, wanted);
  if (*(*taken)->Step()) wanted += "_" + std::to_string(1000 + rng() % 9000);
  auto ins = db->Prepare("INSERT INTO orgs (uuid, name, local) VALUES (?, ?, 0)");
  (void)(*ins)->Bind(1, uuid).Bind(2, wanted).Run();
  return db->LastInsertId();
}

auto MispSim::Impl::ServerUrls() -> std::vector<std::string> {
  std::vector<std::string> out;
  auto q = db->Prepare("SELECT url FROM servers");
  while (*(*q)->Step()) out.push_back((*q)->Text(0));
  return out;
}

auto MispSim::Impl::CompleteServerIds(json::object& holder) -> void {
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

auto MispSim::Impl::LoadEvent(const std::string& uuid_or_id) -> std::optional<StoredEvent> {
  auto q =
      db->Prepare(IsDigits(uuid_or_id) ? "SELECT id, org_id, json FROM events WHERE id = ?"
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

auto MispSim::Impl::SaveEvent(StoredEvent& e) -> Status {
  auto take_sightings = [&](json::object& attribute) {
    json::value* list = attribute.if_contains("Sighting");
    if (list == nullptr) return;
    if (list->is_array()) {
      for (const auto& row : list->as_array()) {
        if (row.is_object()) (void)StoreSighting(row.as_object(), e.id, attribute, std::nullopt, true);
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
  // meta: the event without its element lists, all that the index reads (EventIndex): a store of
  // 20 000 events of 100 attributes took seconds an index when each row's whole event was parsed.
  json::object meta;
  for (const auto& kv : e.event) {
    if (kv.key() != "Attribute" && kv.key() != "Object" && kv.key() != "ShadowAttribute")
      meta.emplace(kv.key(), kv.value());
  }
  auto s = db->Prepare(
      "INSERT INTO events (id, uuid, org_id, timestamp, published, json, meta) VALUES (?, ?, ?, ?, ?, ?, ?) "
      "ON CONFLICT (id) DO UPDATE SET timestamp = excluded.timestamp, published = excluded.published, json "
      "= excluded.json, meta = excluded.meta");
  if (!s.ok()) return s.error();
  SGSYNC_TRY_STATUS((*s)->Bind(1, e.id)
                        .Bind(2, StringOr(e.event, "uuid"))
                        .Bind(3, e.org_id)
                        .Bind(4, IntOr(e.event, "timestamp", 0))
                        .Bind(5, static_cast<std::int64_t>(misp::BoolOr(e.event, "published", false)))
                        .Bind(6, json::serialize(e.event))
                        .Bind(7, json::serialize(meta))
                        .Run());
  // Sightings captured with an event leave its sighting_timestamp alone, as MISP 2.5.1's
  // Sighting::captureSightings does (only events/publishSightings and a bulkSaveSightings receipt
  // move it; docs/misp-sim.md "Sightings").
  return Status();
}

auto MispSim::Impl::RegisterElements(const StoredEvent& e) -> void {
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

auto MispSim::Impl::BelongsToAnotherEvent(std::string_view uuid, std::int64_t event_id) -> bool {
  auto q = db->Prepare("SELECT event_id FROM element_uuids WHERE uuid = ?");
  (*q)->Bind(1, uuid);
  return *(*q)->Step() && (*q)->Int(0) != event_id;
}

auto MispSim::Impl::OrgRef(std::int64_t id, bool with_local) -> json::object {
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

auto MispSim::Impl::FullOrg(std::int64_t id) -> json::object {
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

auto MispSim::Impl::TagRace(const json::object& e) -> bool {
  auto named_late = [&](const json::object& holder) {
    const json::value* tags = holder.if_contains("Tag");
    if (tags == nullptr || !tags->is_array()) return false;
    for (const auto& t : tags->as_array()) {
      if (!t.is_object()) continue;
      auto born = tag_born.find(std::string(StringOr(t.as_object(), "name")));
      if (born != tag_born.end() && born->second > arrived) return true;
    }
    return false;
  };
  if (named_late(e)) return true;
  for (const char* key : {"Attribute", "Object"}) {
    const json::value* list = e.if_contains(key);
    if (list == nullptr || !list->is_array()) continue;
    for (const auto& el : list->as_array()) {
      if (!el.is_object()) continue;
      if (named_late(el.as_object())) return true;
      if (std::string_view(key) == "Object" && TagRace(el.as_object())) return true;
    }
  }
  return false;
}

auto MispSim::Impl::CaptureTag(const json::object& in) -> json::object {
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
    tag_born[name] = std::chrono::steady_clock::now();
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

auto MispSim::Impl::CanonicalTags(json::object& el) -> void {
  json::value* tags = el.if_contains("Tag");
  if (tags == nullptr || !tags->is_array()) return;
  json::array out;
  for (const auto& t : tags->as_array()) {
    if (t.is_object() && !misp::BoolOr(t.as_object(), "deleted", false))
      out.push_back(CaptureTag(t.as_object()));
  }
  *tags = std::move(out);
}

auto MispSim::Impl::CanonicalAttribute(json::object& a) -> void {
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

auto MispSim::Impl::CanonicalEvent(json::object& e, const User& creator) -> void {
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

auto MispSim::Impl::GroupAuthorises(const json::object& element, const User& u) -> bool {
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

auto MispSim::Impl::EventVisible(const StoredEvent& e, const User& u) -> bool {
  if (u.site_admin() || e.org_id == u.org_id) return true;
  int d = static_cast<int>(IntOr(e.event, "distribution", 0));
  if (d >= 1 && d <= 3) return true;
  return d == 4 && GroupAuthorises(e.event, u);
}

auto MispSim::Impl::RenderFor(StoredEvent stored, const User& u, const ViewOptions& o) -> json::object {
  json::object e = std::move(stored.event);
  // Real MISP shows the owner's local id on every event (events-view-uuid.json); an event loaded
  // from a document without it takes it from the stored owner.
  if (stored.org_id > 0 && StringOr(e, "org_id").empty()) e["org_id"] = std::to_string(stored.org_id);
  bool owner = u.site_admin() || stored.org_id == u.org_id;
  auto element_visible = [&](const json::object& el) {
    if (misp::BoolOr(el, "deleted", false) && !(o.include_deleted && (u.perm_sync() || owner))) return false;
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

}  // namespace sgsync::sim
