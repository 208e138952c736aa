// MispSim::Impl: the sharing-groups API (spec 4; index, view, add, addOrg, addServer).

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "misp-sim/sim_impl.h"

namespace sgsync::sim {

auto MispSim::Impl::GroupIndexRow(std::int64_t id, const json::object& sg, const User& u) -> json::object {
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

auto MispSim::Impl::GroupView(std::int64_t id, const json::object& sg) -> json::object {
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
    json::object server{{"id", std::to_string(row.server_id)},
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

auto MispSim::Impl::LoadGroup(const std::string& key)
    -> std::optional<std::pair<std::int64_t, json::object>> {
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

auto MispSim::Impl::SaveGroup(std::int64_t id, const json::object& sg) -> Status {
  auto s = db->Prepare("UPDATE sharing_groups SET json = ? WHERE id = ?");
  if (!s.ok()) return s.error();
  return (*s)->Bind(1, json::serialize(sg)).Bind(2, id).Run();
}

auto MispSim::Impl::GroupAdd(const HttpRequest& req, const User& u, const std::string& url) -> HttpResponse {
  if (!u.perm_sharing_group())
    return ErrorResponse(403, "You do not have permission to use this functionality.", url);
  auto parsed = misp::ParseJson(req.body);
  if (!parsed.ok() || !parsed->is_object()) return InvalidJson(url);
  json::object in = parsed->as_object();
  if (in.contains("SharingGroup") && in["SharingGroup"].is_object()) in = in["SharingGroup"].as_object();
  std::string name(StringOr(in, "name"));
  if (name.empty()) return SaveFail("Could not add Sharing Group", url, "The sharing group needs a name.");
  std::string uuid(StringOr(in, "uuid"));
  if (uuid.empty()) uuid = RandomUuid();
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

auto MispSim::Impl::GroupAddMember(const Route& r, const User& u, bool server) -> HttpResponse {
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
  if (!SaveGroup(group->first, sg).ok()) return ErrorResponse(500, "An Internal Error Has Occurred.", r.path);
  std::string text =
      server ? "Server added to the sharing group." : "Organisation added to the sharing group.";
  return JsonResponse(
      200, json::object{{"saved", true}, {"success", true}, {"name", text}, {"message", text}, {"url", url}});
}

auto MispSim::Impl::SharingGroups(const HttpRequest& req, const Route& r, const User& u) -> HttpResponse {
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
    return ErrorResponse(405, "Sharing group doesn&#039;t exist or you do not have permission to access it.",
                         url);
  }
  return ErrorResponse(403, "You do not have permission to use this functionality.", url);
}

}  // namespace sgsync::sim
