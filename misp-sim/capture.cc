// MispSim::Impl: what MISP does with the sharing groups of an event a user writes (events/add and
// events/edit). Written from MISP 2.5.1's source (app/Model/Event.php: __captureObjects,
// captureSGForElement, _edit; app/Model/SharingGroup.php: captureSG, captureSGExisting,
// captureSGNew, checkIfAuthorisedToSave, __retrieveOrgIdFromCapturedSG, captureSGOrgs,
// captureSGServers, captureCreatorOrg, checkIfAuthorised; app/Model/Server.php: captureServer;
// app/Model/MispAttribute.php editAttribute, MispObject.php editObject, EventReport.php
// captureReport) and deliberately not from sgsync's receiver model (sync/policy/receiver.cc): the
// simulator is the other side of the tests, so a mistake in sgsync's model must not be repeated
// here. docs/misp-sim.md lists each rule with its source.

#include <algorithm>
#include <functional>

#include "misp-sim/sim_impl.h"

namespace sgsync::sim {
namespace {

std::string PhpString(const json::value* v) {
  if (v == nullptr || v->is_null()) return "";
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_bool()) return v->as_bool() ? "1" : "";
  return json::serialize(*v);
}

// `$x[0]` unwrapping: MISP accepts a record or a one-element list of it.
const json::object* Record(const json::value* v) {
  if (v == nullptr) return nullptr;
  if (v->is_array() && !v->as_array().empty()) v = &v->as_array()[0];
  return v->is_object() ? &v->as_object() : nullptr;
}

// A list MISP iterates with foreach, after its "a single row came as an object" fix
// (`isset($sg['SharingGroupOrg']['id'])`).
std::vector<const json::object*> Rows(const json::object& sg, const char* key) {
  std::vector<const json::object*> out;
  const json::value* v = sg.if_contains(key);
  if (v == nullptr) return out;
  if (v->is_object()) {
    if (v->as_object().contains("id")) out.push_back(&v->as_object());
    return out;
  }
  if (!v->is_array()) return out;
  for (const auto& row : v->as_array())
    if (row.is_object()) out.push_back(&row.as_object());
  return out;
}

// The row's organisation as captureSGOrgs reads it: `Organisation` when not empty, else the row.
const json::object& OrgOfRow(const json::object& row) {
  const json::object* org = PhpEmpty(row.if_contains("Organisation")) ? nullptr : Record(row.if_contains("Organisation"));
  return org != nullptr ? *org : row;
}

// The row's server as captureSGServers reads it: `Server` when set, else the row.
const json::object& ServerOfRow(const json::object& row) {
  const json::object* server = PhpIsset(row, "Server") ? Record(row.if_contains("Server")) : nullptr;
  return server != nullptr ? *server : row;
}

}  // namespace

auto MispSim::Impl::CaptureServerId(const json::object& server) -> std::optional<std::int64_t> {
  // Server::captureServer: the instance's own baseurl (PHP ==, exact) is 0; a known server
  // record's url (MySQL's default collation: case-insensitive) its id; any other url is refused.
  std::string url = PhpString(server.if_contains("url"));
  if (url == config.base_url) return 0;
  auto q = db->Prepare("SELECT id FROM servers WHERE url = ? COLLATE NOCASE ORDER BY id LIMIT 1");
  (*q)->Bind(1, url);
  if (*(*q)->Step()) return (*q)->Int(0);
  return std::nullopt;
}

auto MispSim::Impl::GroupOwnerId(const json::object& group) -> std::int64_t {
  if (PhpIsset(group, "org_id")) return misp::IntOr(group, "org_id", 0);
  return OrgIdOf(misp::StringOr(group, "organisation_uuid"));
}

auto MispSim::Impl::SharingGroupAccessible(std::int64_t id, const User& u) -> bool {
  // SharingGroup::checkIfAuthorised: site admin, the group's owner organisation, a row for this
  // instance with all_orgs, or the user's organisation among the group's.
  auto group = LoadGroup(std::to_string(id));
  if (!group) return false;
  if (u.site_admin() || GroupOwnerId(group->second) == u.org_id) return true;
  for (const json::object* row : Rows(group->second, "SharingGroupServer")) {
    if (misp::IntOr(*row, "server_id", -1) == 0 && misp::BoolOr(*row, "all_orgs", false)) return true;
  }
  for (const json::object* row : Rows(group->second, "SharingGroupOrg")) {
    if (policy::SameText(misp::StringOr(OrgOfRow(*row), "uuid"), u.org_uuid)) return true;
  }
  return false;
}

auto MispSim::Impl::AuthorisedToSaveNewGroup(const json::object& sg, const User& u) -> bool {
  // SharingGroup::checkIfAuthorisedToSave for a group this instance does not hold.
  if (u.site_admin()) return true;
  if (!u.perm_sharing_group()) return false;
  bool org_check = false, server_check = false;
  for (const json::object* row : Rows(sg, "SharingGroupOrg")) {
    const json::object* org = Record(row->if_contains("Organisation"));
    if (org != nullptr && PhpString(org->if_contains("uuid")) == u.org_uuid &&
        (u.perm_sync() || PhpString(row->if_contains("extend")) == "1")) {  // `== 1`: true, 1 or "1"
      org_check = true;
      break;
    }
  }
  if (!PhpEmpty(sg.if_contains("SharingGroupServer"))) {
    for (const json::object* row : Rows(sg, "SharingGroupServer")) {
      const json::object* server = Record(row->if_contains("Server"));
      if (server != nullptr && PhpString(server->if_contains("url")) == config.base_url) {
        server_check = true;
        if (u.perm_sync() && !PhpEmpty(row->if_contains("all_orgs"))) org_check = true;
      }
    }
  } else {
    server_check = true;
  }
  return server_check && org_check;
}

auto MispSim::Impl::OwnerOfNewGroup(const json::object& sg, const User& u) -> std::int64_t {
  // SharingGroup::__retrieveOrgIdFromCapturedSG (sync users only; others own what they create).
  if (!u.perm_sync()) return u.org_id;
  if (const json::object* org = Record(sg.if_contains("Organisation")); org != nullptr && PhpIsset(sg, "Organisation")) {
    std::string uuid = PhpString(org->if_contains("uuid"));
    return uuid.empty() ? 0 : CaptureOrg(uuid, PhpString(org->if_contains("name")));
  }
  if (!PhpIsset(sg, "SharingGroupOrg")) return u.org_id;
  for (const json::object* row : Rows(sg, "SharingGroupOrg")) {
    const json::object* wrapped = Record(row->if_contains("Organisation"));
    const json::object& org = wrapped != nullptr ? *wrapped : *row;
    if (!PhpIsset(sg, "organisation_uuid")) return u.org_id;
    if (PhpString(org.if_contains("uuid")) == PhpString(sg.if_contains("organisation_uuid")))
      return CaptureOrg(PhpString(org.if_contains("uuid")), PhpString(org.if_contains("name")));
  }
  return 0;  // no row named the owner: MISP's `false`, the group is not saved
}

auto MispSim::Impl::CaptureSharingGroup(const json::object& sg, const User& u, bool with_server)
    -> std::optional<std::int64_t> {
  std::string uuid = PhpString(sg.if_contains("uuid"));
  auto existing = uuid.empty() ? std::nullopt : LoadGroup(uuid);
  std::int64_t id = 0;
  json::object group;
  if (existing) {
    // captureSGExisting: a sync user may always attach a held group; it is updated only from a
    // newer (or undated) copy, and only when captured from elsewhere (`local` false) by a sync
    // user, by its owner organisation, or by a site admin. Otherwise the held group is used as is.
    id = existing->first;
    group = std::move(existing->second);
    if (!SharingGroupAccessible(id, u) && !u.perm_sync()) return std::nullopt;
    std::string modified = PhpString(sg.if_contains("modified"));
    if (!(modified.empty() || modified > PhpString(group.if_contains("modified")))) return id;
    bool by_sync = u.perm_sync() && !misp::BoolOr(group, "local", false);
    bool by_owner = !u.perm_sync() && GroupOwnerId(group) == u.org_id;
    if (!(by_sync || by_owner || u.site_admin())) return id;
    for (const char* k : {"name", "releasability", "description", "created", "modified", "roaming"}) {
      if (PhpIsset(sg, k)) group[k] = sg.at(k);
    }
  } else {
    // captureSGNew.
    if (!u.perm_sharing_group()) return std::nullopt;
    if (!u.site_admin() && !AuthorisedToSaveNewGroup(sg, u)) return std::nullopt;
    if (PhpEmpty(sg.if_contains("name"))) return std::nullopt;
    std::int64_t owner = OwnerOfNewGroup(sg, u);
    if (owner == 0) return std::nullopt;
    for (const char* k : {"name", "releasability", "description", "uuid", "organisation_uuid", "created",
                          "modified", "active", "roaming"}) {
      if (PhpIsset(sg, k)) group[k] = sg.at(k);
    }
    if (uuid.empty()) group["uuid"] = uuid = RandomUuid();
    if (!group.contains("organisation_uuid")) group["organisation_uuid"] = u.org_uuid;
    group["local"] = false;
    group["org_id"] = std::to_string(owner);
    group["sync_user_id"] = std::to_string(u.id);
    group["SharingGroupOrg"] = json::array();
    group["SharingGroupServer"] = json::array();
    auto ins = db->Prepare("INSERT INTO sharing_groups (uuid, json) VALUES (?, ?)");
    (void)(*ins)->Bind(1, uuid).Bind(2, json::serialize(group)).Run();
    id = db->LastInsertId();
  }
  bool creator_found = CaptureGroupOrgs(group, sg, u);
  creator_found = CaptureGroupServers(group, sg) || creator_found;
  // captureCreatorOrg: an event written through the API (`$server` set) adds the writer's
  // organisation to a group that named neither it nor this instance with all_orgs.
  if (!creator_found && with_server) AddGroupOrg(group, u.org_id, u.org_uuid, u.org_name, false);
  (void)SaveGroup(id, group);
  return id;
}

auto MispSim::Impl::AddGroupOrg(json::object& group, std::int64_t org_id, const std::string& uuid,
                                const std::string& name, bool extend) -> void {
  if (!group.contains("SharingGroupOrg") || !group["SharingGroupOrg"].is_array())
    group["SharingGroupOrg"] = json::array();
  for (auto& row : group["SharingGroupOrg"].as_array()) {
    if (!row.is_object()) continue;
    const json::object& have = OrgOfRow(row.as_object());
    if (misp::IntOr(row.as_object(), "org_id", -1) == org_id ||
        policy::SameText(misp::StringOr(have, "uuid"), uuid)) {
      row.as_object()["org_id"] = std::to_string(org_id);
      row.as_object()["extend"] = extend;
      return;
    }
  }
  group["SharingGroupOrg"].as_array().push_back(json::object{{"org_id", std::to_string(org_id)},
                                                             {"extend", extend},
                                                             {"Organisation", json::object{{"uuid", uuid}, {"name", name}}}});
}

auto MispSim::Impl::CaptureGroupOrgs(json::object& group, const json::object& sg, const User& u) -> bool {
  // captureSGOrgs: every listed organisation captured (created when unknown) and added, its
  // `extend` taken from the row; true when the writer's organisation is among them.
  bool creator_found = false;
  for (const json::object* row : Rows(sg, "SharingGroupOrg")) {
    const json::object& org = OrgOfRow(*row);
    std::string uuid = PhpString(org.if_contains("uuid"));
    if (uuid.empty()) continue;
    std::int64_t org_id = CaptureOrg(uuid, PhpString(org.if_contains("name")));
    if (org_id == u.org_id) creator_found = true;
    auto known = OrgByUuid(uuid);
    AddGroupOrg(group, org_id, uuid, known ? known->second : PhpString(org.if_contains("name")),
                !PhpEmpty(row->if_contains("extend")));
  }
  return creator_found;
}

auto MispSim::Impl::CaptureGroupServers(json::object& group, const json::object& sg) -> bool {
  // captureSGServers. `all_orgs` is read from the row's `Server` record, which MISP's own events
  // never carry, so a captured row keeps all_orgs only when the sender put it there (spec 11.26).
  bool creator_found = false;
  if (!group.contains("SharingGroupServer") || !group["SharingGroupServer"].is_array())
    group["SharingGroupServer"] = json::array();
  json::array& stored = group["SharingGroupServer"].as_array();
  for (const json::object* row : Rows(sg, "SharingGroupServer")) {
    const json::object& server = ServerOfRow(*row);
    bool row_all_orgs = PhpIsset(server, "all_orgs") ? !PhpEmpty(row->if_contains("all_orgs")) : false;
    auto server_id = CaptureServerId(server);
    // `$row['server_id'] == 0` is also true for captureServer's `false` in PHP.
    if ((!server_id || *server_id == 0) && row_all_orgs) creator_found = true;
    if (!server_id) continue;
    bool saved_all_orgs = !PhpEmpty(server.if_contains("all_orgs"));
    json::object* have = nullptr;
    for (auto& s : stored) {
      if (!s.is_object()) continue;
      const json::object& held = ServerOfRow(s.as_object());
      bool same = PhpIsset(s.as_object(), "server_id")
                      ? misp::IntOr(s.as_object(), "server_id", -1) == *server_id
                      : CaptureServerId(held) == server_id;
      if (same) have = &s.as_object();
    }
    if (have != nullptr) {
      (*have)["all_orgs"] = row_all_orgs;
      continue;
    }
    std::string url = config.base_url, name = config.base_url;
    if (*server_id != 0) {
      auto q = db->Prepare("SELECT url, name FROM servers WHERE id = ?");
      (*q)->Bind(1, *server_id);
      if (*(*q)->Step()) {
        url = (*q)->Text(0);
        name = (*q)->Text(1);
      }
    }
    stored.push_back(json::object{
        {"server_id", std::to_string(*server_id)},
        {"all_orgs", saved_all_orgs},
        {"Server", json::object{{"id", std::to_string(*server_id)}, {"url", url}, {"name", name}}}});
  }
  return creator_found;
}

auto MispSim::Impl::AttachGroup(json::object& el, std::int64_t id) -> void {
  auto group = LoadGroup(std::to_string(id));
  el["sharing_group_id"] = std::to_string(id);
  if (!group) return;
  group->second["id"] = std::to_string(id);
  el["SharingGroup"] = std::move(group->second);
}

auto MispSim::Impl::CaptureForElement(json::object& el, const User& u, bool with_server) -> bool {
  // Event::captureSGForElement: the sent group captured, else a held group named by id that the
  // user may see; failing both, the element is kept at distribution 0.
  std::optional<std::int64_t> id;
  if (PhpIsset(el, "SharingGroup")) {
    const json::object* sg = Record(el.if_contains("SharingGroup"));
    if (sg != nullptr) id = CaptureSharingGroup(*sg, u, with_server);
    el.erase("SharingGroup");
  } else if (PhpIsset(el, "sharing_group_id")) {
    std::int64_t held = misp::IntOr(el, "sharing_group_id", 0);
    if (SharingGroupAccessible(held, u)) id = held;
  }
  if (!id || *id == 0) {
    el["distribution"] = "0";
    el["sharing_group_id"] = "0";
    return false;
  }
  AttachGroup(el, *id);
  return true;
}

namespace {

bool DistributionIsGroup(const json::object& el) { return PhpString(el.if_contains("distribution")) == "4"; }

}  // namespace

auto MispSim::Impl::CaptureGroupsOnAdd(json::object& e, const User& u) -> void {
  // Event::__captureObjects: the event, its attributes, its objects and their attributes, each
  // with `$server` set; EventReport::captureReport calls captureSGForElement without it.
  std::function<void(json::object&, const char*, bool)> each = [&](json::object& holder, const char* key,
                                                                  bool with_server) {
    json::value* list = holder.if_contains(key);
    if (list == nullptr || !list->is_array()) return;
    for (auto& item : list->as_array()) {
      if (!item.is_object()) continue;
      if (DistributionIsGroup(item.as_object())) CaptureForElement(item.as_object(), u, with_server);
      if (std::string_view(key) == "Object") each(item.as_object(), "Attribute", true);
    }
  };
  if (DistributionIsGroup(e)) CaptureForElement(e, u, true);
  each(e, "Attribute", true);
  each(e, "Object", true);
  each(e, "EventReport", false);
}

auto MispSim::Impl::CaptureGroupsOnEdit(json::object& in, const User& u) -> std::optional<std::string> {
  // Event::_edit for the event; editAttribute / editObject drop an element whose group is not
  // captured (captureSG without `$server`); a new report is kept at distribution 0.
  if (DistributionIsGroup(in)) {
    std::optional<std::int64_t> id;
    if (!PhpIsset(in, "SharingGroup")) {
      if (!PhpIsset(in, "sharing_group_id"))
        return "Event could not be saved: Sharing group chosen as the distribution level, but no sharing group "
               "specified. Make sure that the event includes a valid sharing_group_id or change to a different "
               "distribution level.";
      if (!SharingGroupAccessible(misp::IntOr(in, "sharing_group_id", 0), u))
        return "Event could not be saved: Invalid sharing group or you don't have access to that sharing group.";
      id = misp::IntOr(in, "sharing_group_id", 0);
    } else {
      const json::object* sg = Record(in.if_contains("SharingGroup"));
      if (sg != nullptr) id = CaptureSharingGroup(*sg, u, true);
      in.erase("SharingGroup");
      if (!id) return "Event could not be saved: User not authorised to create the associated sharing group.";
    }
    if (u.perm_sync() && !SharingGroupAccessible(*id, u))
      return "Event could not be saved: The sync user has to have access to the sharing group in order to be "
             "able to edit it.";
    AttachGroup(in, *id);
  }
  auto keep_if_captured = [&](json::object& el) {
    if (!DistributionIsGroup(el)) return true;
    std::optional<std::int64_t> id;
    if (!PhpEmpty(el.if_contains("SharingGroup"))) {
      if (const json::object* sg = Record(el.if_contains("SharingGroup"))) id = CaptureSharingGroup(*sg, u, false);
    } else if (!PhpEmpty(el.if_contains("sharing_group_id"))) {
      std::int64_t held = misp::IntOr(el, "sharing_group_id", 0);
      if (SharingGroupAccessible(held, u)) id = held;
    }
    if (!id || *id == 0) return false;
    AttachGroup(el, *id);
    return true;
  };
  std::function<void(json::object&, const char*)> prune = [&](json::object& holder, const char* key) {
    json::value* list = holder.if_contains(key);
    if (list == nullptr || !list->is_array()) return;
    json::array kept(list->storage());
    for (auto& item : list->as_array()) {
      if (!item.is_object() || !keep_if_captured(item.as_object())) continue;
      if (std::string_view(key) == "Object") prune(item.as_object(), "Attribute");
      kept.push_back(std::move(item));
    }
    *list = std::move(kept);
  };
  prune(in, "Attribute");
  prune(in, "Object");
  // EventReport::editReport does not capture a group for a report it already holds (it saves the
  // sender's sharing_group_id as sent); misp-sim treats every sent report as captureReport does.
  if (json::value* reports = in.if_contains("EventReport"); reports != nullptr && reports->is_array()) {
    for (auto& r : reports->as_array()) {
      if (r.is_object() && DistributionIsGroup(r.as_object())) CaptureForElement(r.as_object(), u, false);
    }
  }
  return std::nullopt;
}

}  // namespace sgsync::sim
