// MispSim::Impl: proposals (spec 8.2), custom galaxy clusters (8.3) and analyst data (8.5).

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "misp-sim/sim_impl.h"

namespace sgsync::sim {

auto MispSim::Impl::ProposalIndex(const Route& r, const User& u) -> HttpResponse {
  std::int64_t since = 0;
  if (auto it = r.named.find("timestamp"); it != r.named.end() && IsDigits(it->second))
    since = std::stoll(it->second);
  bool deleted = r.Has("deleted[]", "1");
  json::array out;
  auto q = db->Prepare("SELECT id, event_id, json FROM proposals WHERE timestamp >= ? ORDER BY id");
  (*q)->Bind(1, since);
  while (*(*q)->Step()) {
    auto e = LoadEvent(std::to_string((*q)->Int(1)));
    if (!e || !EventVisible(*e, u)) continue;
    json::object p = json::parse((*q)->Text(2)).as_object();
    if (!deleted && misp::BoolOr(p, "deleted", false)) continue;
    // The columns ShadowAttributesController::index selects (not event_org_id, not email), then
    // what it adds: org_uuid, old_uuid, event_uuid and Org {name, uuid}.
    json::object row;
    for (const char* k : {"old_id", "type", "category", "uuid", "to_ids", "value", "comment", "org_id", "timestamp",
                          "first_seen", "last_seen", "deleted", "proposal_to_delete", "disable_correlation"})
      if (const json::value* v = p.if_contains(k)) row[k] = *v;
    row["id"] = std::to_string((*q)->Int(0));
    row["event_id"] = std::to_string(e->id);
    // Org: the fields the index asks for, and the id CakePHP adds as the association's key
    // (shadow-attributes-index-pull-form.json).
    json::object org;
    if (const json::value* o = p.if_contains("Org"); o != nullptr && o->is_object()) {
      org = json::object{{"name", StringOr(o->as_object(), "name")}, {"uuid", StringOr(o->as_object(), "uuid")}};
    } else {
      json::object ref = OrgRef(IntOr(p, "org_id", 0), false);
      org = json::object{{"name", StringOr(ref, "name")}, {"uuid", StringOr(ref, "uuid")}};
    }
    org["id"] = std::to_string(IntOr(p, "org_id", 0));
    row["org_uuid"] = org.at("uuid");
    if (IntOr(p, "old_id", 0) != 0 && p.contains("old_uuid")) row["old_uuid"] = p.at("old_uuid");
    row["event_uuid"] = StringOr(e->event, "uuid");
    row["Org"] = std::move(org);
    out.push_back(json::object{{"ShadowAttribute", std::move(row)}});
  }
  return JsonResponse(200, out);
}

auto MispSim::Impl::PushProposals(const HttpRequest& req, const Route& r, const User& u) -> HttpResponse {
  const std::string url = r.path;
  if (!u.perm_sync()) return ErrorResponse(403, "You do not have permission to use this functionality.", url);
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
    // MISP saves the row as sent (EventsController::pushProposals), and these columns of
    // shadow_attributes are NOT NULL without a default (db_schema.json; event_id the controller
    // sets): a row without one fails the INSERT, and MISP answers 500 with the rows before it saved
    // (real MISP 2.5.1: "Field 'org_id' doesn't have a default value";
    // tests/data/real-misp/differences.json, push_proposals_required_columns).
    for (const char* column : {"type", "category", "uuid", "org_id", "event_org_id", "comment", "event_uuid"}) {
      const json::value* v = row.if_contains(column);
      if (v == nullptr || v->is_null()) return ErrorResponse(500, "An Internal Error Has Occurred.", url);
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

auto MispSim::Impl::Clusters() -> std::vector<json::object> {
  std::vector<json::object> out;
  auto q = db->Prepare("SELECT json FROM clusters ORDER BY id");
  while (*(*q)->Step()) out.push_back(json::parse((*q)->Text(0)).as_object());
  return out;
}

auto MispSim::Impl::ClusterByUuid(std::string_view uuid) -> std::optional<json::object> {
  auto q = db->Prepare("SELECT json FROM clusters WHERE uuid = ?");
  (*q)->Bind(1, std::string(uuid));
  if (!*(*q)->Step()) return std::nullopt;
  return json::parse((*q)->Text(0)).as_object();
}

auto MispSim::Impl::SaveCluster(const json::object& c) -> void {
  auto up = db->Prepare(
      "INSERT INTO clusters (uuid, json) VALUES (?, ?) ON CONFLICT (uuid) DO UPDATE SET json = "
      "excluded.json");
  (void)(*up)->Bind(1, StringOr(c, "uuid")).Bind(2, json::serialize(c)).Run();
}

auto MispSim::Impl::ClusterVisible(const json::object& c, const User& u) -> bool {
  if (u.site_admin() || policy::SameText(StringOr(c, "org_uuid"), u.org_uuid)) return true;
  int d = static_cast<int>(IntOr(c, "distribution", 0));
  if (d == 4) return GroupAuthorises(c, u);
  return d > 0 && d < 4;
}

auto MispSim::Impl::ClusterSearch(const HttpRequest& req, const Route& r, const User& u) -> HttpResponse {
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

auto MispSim::Impl::ClusterView(const Route& r, const User& u) -> HttpResponse {
  auto c = r.segments.size() > 2 ? ClusterByUuid(r.segments[2]) : std::nullopt;
  if (!c || !ClusterVisible(*c, u)) return ErrorResponse(404, "Invalid galaxy cluster", r.path);
  json::object out = std::move(*c);
  if (std::int64_t orgc = OrgIdOf(StringOr(out, "orgc_uuid")); orgc != 0) out["Orgc"] = OrgRef(orgc, true);
  return JsonResponse(200, json::object{{"GalaxyCluster", std::move(out)}});
}

auto MispSim::Impl::PushCluster(const HttpRequest& req, const Route& r, const User& u) -> HttpResponse {
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
      auto q = db->Prepare("SELECT 1 FROM clusters WHERE json_extract(json, '$.type') = ?");
      (*q)->Bind(1, type);
      galaxy_known = *(*q)->Step();
    }
    if (!galaxy_known) {
      ++failed;
      errors.emplace_back("Galaxy not found");
      continue;
    }
    auto held = ClusterByUuid(StringOr(c, "uuid"));
    std::optional<policy::HeldCopy> copy;
    if (held)
      copy = policy::HeldCopy{misp::BoolOr(*held, "locked", false), std::string(StringOr(*held, "version"))};
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

auto MispSim::Impl::IsAnalystType(std::string_view t) -> bool {
  return std::any_of(std::begin(kAnalystTypes), std::end(kAnalystTypes),
                     [&](const char* x) { return t == x; });
}

auto MispSim::Impl::AnalystVisible(const json::object& e, const User& u) -> bool {
  if (u.site_admin() || policy::SameText(StringOr(e, "org_uuid"), u.org_uuid) ||
      policy::SameText(StringOr(e, "orgc_uuid"), u.org_uuid))
    return true;
  int d = static_cast<int>(IntOr(e, "distribution", 0));
  if (d == 4) return GroupAuthorises(e, u);
  return d > 0;
}

auto MispSim::Impl::AnalystRows() -> std::vector<std::pair<std::string, json::object>> {
  std::vector<std::pair<std::string, json::object>> out;
  auto q = db->Prepare("SELECT type, json FROM analyst_data ORDER BY id");
  while (*(*q)->Step()) out.emplace_back((*q)->Text(0), json::parse((*q)->Text(1)).as_object());
  return out;
}

auto MispSim::Impl::AnalystIndexMinimal(const HttpRequest& req, const User& u) -> HttpResponse {
  auto parsed = misp::ParseJson(req.body.empty() ? "{}" : req.body);
  if (!parsed.ok()) return InvalidJson("/analyst_data/indexMinimal");
  std::vector<std::string> only, never;
  if (parsed->is_object()) {
    if (const json::value* names = parsed->as_object().if_contains("orgc_name"); names && names->is_array()) {
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
      return std::any_of(l.begin(), l.end(), [&](const std::string& x) { return policy::SameText(x, orgc); });
    };
    if ((!only.empty() && !in(only)) || in(never)) continue;
    if (!out.contains(type)) out[type] = json::object();
    out[type].as_object()[StringOr(e, "uuid")] = StringOr(e, "modified");
  }
  if (out.empty()) return JsonResponse(200, json::array());
  return JsonResponse(200, out);
}

auto MispSim::Impl::AnalystIndex(const Route& r, const User& u) -> HttpResponse {
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

auto MispSim::Impl::AnalystFilterForPush(const HttpRequest& req, const Route& r) -> HttpResponse {
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

auto MispSim::Impl::AnalystEntry(std::string_view uuid)
    -> std::optional<std::pair<std::string, json::object>> {
  auto q = db->Prepare("SELECT type, json FROM analyst_data WHERE uuid = ?");
  (*q)->Bind(1, std::string(uuid));
  if (!*(*q)->Step()) return std::nullopt;
  return std::make_pair((*q)->Text(0), json::parse((*q)->Text(1)).as_object());
}

auto MispSim::Impl::CaptureAnalyst(const std::string& type, json::object e, const User& u, CaptureCount& c)
    -> void {
  if (!e.contains("uuid")) e["uuid"] = RandomUuid();
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

auto MispSim::Impl::AnalystPush(const HttpRequest& req, const Route& r, const User& u) -> HttpResponse {
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
        200,
        json::object{{"saved", true}, {"success", true}, {"name", text}, {"message", text}, {"url", r.path}});
  }
  return SaveFail("Could not pushAnalystData AnalystData", r.path,
                  json::value(json::string("Could not import analyst data. " + info)));
}

auto MispSim::Impl::OrgUuidNamed(const std::string& name) -> std::string {
  auto q = db->Prepare("SELECT uuid FROM orgs WHERE name = ?1 COLLATE NOCASE OR uuid = ?1 COLLATE NOCASE");
  (*q)->Bind(1, name);
  return *(*q)->Step() ? (*q)->Text(0) : std::string();
}

}  // namespace sgsync::sim
