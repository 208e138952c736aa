// MispSim::Impl: sightings (spec 8.1): storage, sightings/add, bulkSaveSightings, restSearch,

// publishSightings.
#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "misp-sim/sim_impl.h"

namespace sgsync::sim {

auto MispSim::Impl::StoreSighting(const json::object& row, std::int64_t event_id,
                                  const json::object& attribute, std::optional<std::int64_t> org_id,
                                  bool embedded) -> bool {
  std::string uuid(StringOr(row, "uuid"));
  if (uuid.empty()) uuid = RandomUuid();
  std::int64_t org = org_id.value_or(0);
  if (!org_id) {
    // A perm_sync writer's row keeps its organisation when it names one (org_id non-zero and an
    // Organisation); else the sighting is anonymous, org 0 (spec 8.1, bulkSaveSightings).
    std::string org_uuid(misp::SightingView(const_cast<json::object&>(row)).org_uuid());
    const json::value* o = row.if_contains("Organisation");
    org =
        org_uuid.empty() || (!embedded && IntOr(row, "org_id", 0) == 0)
            ? 0
            : CaptureOrg(org_uuid,
                         o != nullptr && o->is_object() ? std::string(StringOr(o->as_object(), "name")) : "");
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

auto MispSim::Impl::TouchSightingTimestamp(std::int64_t event_id, std::int64_t when) -> void {
  auto up = db->Prepare("UPDATE events SET sighting_timestamp = max(sighting_timestamp, ?) WHERE id = ?");
  (void)(*up)->Bind(1, when).Bind(2, event_id).Run();
}

auto MispSim::Impl::SightingsFor(std::int64_t event_id, bool owner, const User& u)
    -> std::map<std::string, json::array> {
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

auto MispSim::Impl::SightingTimestamp(std::int64_t id) -> std::int64_t {
  auto q = db->Prepare("SELECT sighting_timestamp FROM events WHERE id = ?");
  (*q)->Bind(1, id);
  return *(*q)->Step() ? (*q)->Int(0) : 0;
}

auto MispSim::Impl::FindAttribute(const std::string& key, const User& u)
    -> std::optional<std::pair<StoredEvent, json::object>> {
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

auto MispSim::Impl::SightingAdd(const HttpRequest& req, const Route& r, const User& u) -> HttpResponse {
  const std::string url = r.path;
  if (req.method != "POST")
    return ErrorResponse(405, "This method is only accessible via POST requests.", url);
  auto parsed = misp::ParseJson(req.body.empty() ? "{}" : req.body);
  if (!parsed.ok() || !parsed->is_object()) return InvalidJson(url);
  auto found = r.segments.size() > 2 ? FindAttribute(r.segments[2], u) : std::nullopt;
  if (!found) return ErrorResponse(404, "Invalid attribute.", url);
  json::object row = parsed->as_object();
  row["uuid"] = RandomUuid();
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

auto MispSim::Impl::BulkSaveSightings(const HttpRequest& req, const Route& r, const User& u) -> HttpResponse {
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

auto MispSim::Impl::WriterOrg(const json::object& row, const User& u) -> std::optional<std::int64_t> {
  if (u.perm_sync() && row.contains("org_id")) return std::nullopt;
  return u.org_id;
}

auto MispSim::Impl::ReplaceExpiration(const json::object& row, const std::string& attribute_uuid,
                                      const User& u) -> void {
  const json::value* type = row.if_contains("type");
  if (type == nullptr || !type->is_string() || type->as_string() != "2") return;
  auto known = db->Prepare("SELECT 1 FROM sightings WHERE uuid = ?");
  (*known)->Bind(1, StringOr(row, "uuid"));
  if (*(*known)->Step()) return;
  auto del = db->Prepare("DELETE FROM sightings WHERE attribute_uuid = ? AND org_id = ? AND type = '2'");
  (void)(*del)->Bind(1, attribute_uuid).Bind(2, u.org_id).Run();
}

auto MispSim::Impl::FilterSightingsForPush(const HttpRequest& req, const Route& r, const User& u)
    -> HttpResponse {
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

auto MispSim::Impl::SightingsRestSearch(const HttpRequest& req, const Route& r, const User& u)
    -> HttpResponse {
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
      // No site-admin exemption here, unlike a view: restSearch filters with
      // Sighting::filterSightingsByAttributeACL, which compares the event's owner org with the
      // caller's only (MISP 2.5.1 app/Model/Sighting.php; seen on the real pair: the Portal's site
      // admin was answered [] for ORG1's sighting on an ORG1-owned event under policy 0).
      bool owner = e->org_id == u.org_id;
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

auto MispSim::Impl::PublishSightings(const HttpRequest& req, const Route& r, const User& u) -> HttpResponse {
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

}  // namespace sgsync::sim
