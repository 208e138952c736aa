#include "misp/api.h"

#include <cstdio>

namespace sgsync::misp {
namespace {

Result<std::string> RequiredString(const json::object& o, std::string_view key, std::string_view path) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return Fail(ErrorCode::kParse, "expected a string, found nothing", Child(path, key));
  SGSYNC_TRY(std::string_view s, ReadString(*v, Child(path, key)));
  return std::string(s);
}

Result<std::string> RequiredUuid(const json::object& o, std::string_view key, std::string_view path) {
  SGSYNC_TRY(std::string s, RequiredString(o, key, path));
  if (!IsUuid(s))
    return Fail(ErrorCode::kParse, "expected a uuid, found \"" + s.substr(0, 40) + "\"", Child(path, key));
  return s;
}

Result<const json::object*> ObjectAt(const json::value& v, std::string_view path) {
  if (!v.is_object())
    return Fail(ErrorCode::kParse, "expected an object, found " + Describe(v),
                std::string(path.empty() ? "$" : path));
  return &v.get_object();
}

Result<EventIndexEntry> DecodeIndexRow(const json::value& v, std::string_view path) {
  SGSYNC_TRY(const json::object* o, ObjectAt(v, path));
  EventIndexEntry e;
  SGSYNC_TRY(e.uuid, RequiredUuid(*o, "uuid", path));
  SGSYNC_TRY(auto id, OptInt(*o, "id", path));
  SGSYNC_TRY(auto ts, OptInt(*o, "timestamp", path));
  SGSYNC_TRY(auto sts, OptInt(*o, "sighting_timestamp", path));
  SGSYNC_TRY(auto pub, OptBool(*o, "published", path));
  SGSYNC_TRY(auto orgc, OptString(*o, "orgc_uuid", path));
  if (!ts) return Fail(ErrorCode::kParse, "expected an integer, found nothing", Child(path, "timestamp"));
  e.id = id.value_or(0);
  e.timestamp = *ts;
  e.sighting_timestamp = sts.value_or(0);
  e.published = pub.value_or(false);
  e.orgc_uuid = std::string(orgc.value_or(""));
  return e;
}

Result<SharingGroupInfo> DecodeGroupRow(const json::object& row, std::string_view path) {
  // The index nests the group under "SharingGroup" with the member lists beside it; view and the
  // embedded form have the lists inside.
  const json::object* group = &row;
  std::string gpath(path);
  if (const json::value* sg = row.if_contains("SharingGroup"); sg != nullptr) {
    gpath = Child(path, "SharingGroup");
    SGSYNC_TRY(group, ObjectAt(*sg, gpath));
  }
  SharingGroupInfo info;
  SGSYNC_TRY(info.uuid, RequiredUuid(*group, "uuid", gpath));
  SGSYNC_TRY(auto name, OptString(*group, "name", gpath));
  SGSYNC_TRY(auto rel, OptString(*group, "releasability", gpath));
  SGSYNC_TRY(auto owner, OptString(*group, "organisation_uuid", gpath));
  SGSYNC_TRY(auto roaming, OptBool(*group, "roaming", gpath));
  SGSYNC_TRY(auto active, OptBool(*group, "active", gpath));
  info.name = std::string(name.value_or(""));
  info.releasability = std::string(rel.value_or(""));
  info.organisation_uuid = std::string(owner.value_or(""));
  info.roaming = roaming.value_or(false);
  info.active = active.value_or(true);
  const json::object* holder =
      group->contains("SharingGroupOrg") || group->contains("SharingGroupServer") ? group : &row;
  std::string hpath = holder == group ? gpath : std::string(path);
  if (const json::value* orgs = holder->if_contains("SharingGroupOrg"); orgs != nullptr && orgs->is_array()) {
    for (std::size_t i = 0; i < orgs->get_array().size(); ++i) {
      std::string rpath = Index(Child(hpath, "SharingGroupOrg"), i);
      SGSYNC_TRY(const json::object* r, ObjectAt(orgs->get_array()[i], rpath));
      const json::value* org = r->if_contains("Organisation");
      if (org == nullptr) continue;
      SGSYNC_TRY(const json::object* oo, ObjectAt(*org, Child(rpath, "Organisation")));
      SGSYNC_TRY(std::string uuid, RequiredUuid(*oo, "uuid", Child(rpath, "Organisation")));
      info.org_uuids.push_back(std::move(uuid));
    }
  }
  if (const json::value* srv = holder->if_contains("SharingGroupServer"); srv != nullptr && srv->is_array()) {
    for (std::size_t i = 0; i < srv->get_array().size(); ++i) {
      std::string rpath = Index(Child(hpath, "SharingGroupServer"), i);
      SGSYNC_TRY(const json::object* r, ObjectAt(srv->get_array()[i], rpath));
      SharingGroupServerEntry s;
      SGSYNC_TRY(auto sid, OptInt(*r, "server_id", rpath));
      SGSYNC_TRY(auto all, OptBool(*r, "all_orgs", rpath));
      s.server_id = sid.value_or(0);
      s.all_orgs = all.value_or(false);
      if (const json::value* server = r->if_contains("Server"); server != nullptr && server->is_object()) {
        SGSYNC_TRY(auto url, OptString(server->get_object(), "url", Child(rpath, "Server")));
        s.url = std::string(url.value_or(""));
      }
      info.servers.push_back(std::move(s));
    }
  }
  return info;
}

}  // namespace

Result<std::vector<EventIndexEntry>> DecodeEventIndex(const json::value& body, std::vector<Error>* rejected) {
  std::vector<EventIndexEntry> out;
  if (body.is_object()) {
    SGSYNC_TRY(auto e, DecodeIndexRow(body, ""));
    out.push_back(std::move(e));
    return out;
  }
  if (!body.is_array())
    return Fail(ErrorCode::kParse, "expected a list of index rows, found " + Describe(body), "$");
  out.reserve(body.get_array().size());
  for (std::size_t i = 0; i < body.get_array().size(); ++i) {
    auto e = DecodeIndexRow(body.get_array()[i], Index("", i));
    if (e.ok()) {
      out.push_back(std::move(*e));
    } else if (rejected != nullptr) {
      rejected->push_back(e.error());
    } else {
      return e.error();
    }
  }
  return out;
}

Result<std::vector<SharingGroupInfo>> DecodeSharingGroupIndex(const json::value& body) {
  const json::value* list = &body;
  std::string path;
  if (body.is_object() && body.get_object().contains("response")) {
    list = body.get_object().if_contains("response");
    path = "response";
  }
  if (!list->is_array())
    return Fail(ErrorCode::kParse, "expected a list of sharing groups, found " + Describe(*list),
                path.empty() ? "$" : path);
  std::vector<SharingGroupInfo> out;
  for (std::size_t i = 0; i < list->get_array().size(); ++i) {
    std::string rpath = Index(path, i);
    SGSYNC_TRY(const json::object* row, ObjectAt(list->get_array()[i], rpath));
    SGSYNC_TRY(auto info, DecodeGroupRow(*row, rpath));
    out.push_back(std::move(info));
  }
  return out;
}

Result<SharingGroupInfo> DecodeSharingGroup(const json::value& body) {
  SGSYNC_TRY(const json::object* o, ObjectAt(body, ""));
  return DecodeGroupRow(*o, "");
}

std::optional<VersionGap> CompareVersions(const ServerVersion& local, const ServerVersion& remote) {
  auto describe = [&](const char* what) {
    bool behind = !remote.AtLeast(local.major, local.minor, local.hotfix);
    return "the remote MISP (" + remote.version + ") is " + (behind ? "behind" : "ahead") + " by a " + what +
           " version (this side runs " + local.version +
           "): sync goes on, but features differ between versions";
  };
  if (local.major != remote.major) return VersionGap{true, describe("major")};
  if (local.minor != remote.minor) return VersionGap{true, describe("minor")};
  if (local.hotfix != remote.hotfix) return VersionGap{false, describe("hotfix")};
  return std::nullopt;
}

bool ServerVersion::AtLeast(int mj, int mn, int hf) const {
  if (major != mj) return major > mj;
  if (minor != mn) return minor > mn;
  return hotfix >= hf;
}

Result<ServerVersion> DecodeServerVersion(const json::value& body) {
  SGSYNC_TRY(const json::object* o, ObjectAt(body, ""));
  ServerVersion v;
  SGSYNC_TRY(v.version, RequiredString(*o, "version", ""));
  if (std::sscanf(v.version.c_str(), "%d.%d.%d", &v.major, &v.minor, &v.hotfix) != 3) {
    return Fail(ErrorCode::kParse, "expected a version major.minor.hotfix, found \"" + v.version + "\"",
                "version");
  }
  SGSYNC_TRY(auto uuid, OptString(*o, "uuid", ""));
  v.uuid = std::string(uuid.value_or(""));
  for (auto [key, field] :
       {std::pair{"perm_sync", &v.perm_sync}, std::pair{"perm_sighting", &v.perm_sighting},
        std::pair{"perm_galaxy_editor", &v.perm_galaxy_editor},
        std::pair{"perm_analyst_data", &v.perm_analyst_data},
        std::pair{"filter_sightings", &v.filter_sightings}}) {
    SGSYNC_TRY(auto b, OptBool(*o, key, ""));
    *field = b.value_or(false);
  }
  if (const json::value* enc = o->if_contains("request_encoding"); enc != nullptr && enc->is_array()) {
    for (std::size_t i = 0; i < enc->get_array().size(); ++i) {
      SGSYNC_TRY(std::string_view s, ReadString(enc->get_array()[i], Index("request_encoding", i)));
      v.request_encoding.emplace_back(s);
    }
  }
  return v;
}

bool UserInfo::Has(std::string_view perm) const {
  auto it = permissions.find(perm);
  return it != permissions.end() && it->second;
}

Result<UserInfo> DecodeUserInfo(const json::value& body) {
  SGSYNC_TRY(const json::object* o, ObjectAt(body, ""));
  UserInfo u;
  const json::value* user = o->if_contains("User");
  if (user == nullptr) return Fail(ErrorCode::kParse, "expected a User object, found nothing", "User");
  SGSYNC_TRY(const json::object* uo, ObjectAt(*user, "User"));
  SGSYNC_TRY(auto id, OptInt(*uo, "id", "User"));
  SGSYNC_TRY(auto email, OptString(*uo, "email", "User"));
  SGSYNC_TRY(auto disabled, OptBool(*uo, "disabled", "User"));
  u.id = id.value_or(0);
  u.email = std::string(email.value_or(""));
  u.disabled = disabled.value_or(false);
  if (const json::value* org = o->if_contains("Organisation")) {
    SGSYNC_TRY(const json::object* oo, ObjectAt(*org, "Organisation"));
    SGSYNC_TRY(u.org_uuid, RequiredUuid(*oo, "uuid", "Organisation"));
    u.org_name = std::string(StringOr(*oo, "name"));
  }
  if (const json::value* role = o->if_contains("Role")) {
    SGSYNC_TRY(const json::object* ro, ObjectAt(*role, "Role"));
    u.role_name = std::string(StringOr(*ro, "name"));
    for (const auto& kv : *ro) {
      if (kv.key().rfind("perm_", 0) != 0) continue;
      SGSYNC_TRY(bool b, ReadBool(kv.value(), Child("Role", kv.key())));
      u.permissions.emplace(std::string(kv.key()), b);
    }
  }
  return u;
}

namespace {
void Flatten(const json::value& v, std::string& out) {
  if (v.is_string()) {
    if (!out.empty()) out += "; ";
    out += v.get_string();
  } else if (v.is_array()) {
    for (const auto& e : v.get_array()) Flatten(e, out);
  } else if (v.is_object()) {
    for (const auto& kv : v.get_object()) {
      std::string inner;
      Flatten(kv.value(), inner);
      if (!out.empty()) out += "; ";
      out += kv.key();
      out += ": ";
      out += inner;
    }
  } else if (!v.is_null()) {
    if (!out.empty()) out += "; ";
    out += json::serialize(v);
  }
}
}  // namespace

MispError DecodeMispError(const json::value& body) {
  MispError e;
  if (!body.is_object()) {
    Flatten(body, e.message);
    return e;
  }
  const json::object& o = body.get_object();
  e.name = std::string(StringOr(o, "name"));
  e.message = std::string(StringOr(o, "message"));
  e.url = std::string(StringOr(o, "url"));
  if (const json::value* errors = o.if_contains("errors")) Flatten(*errors, e.errors);
  return e;
}

std::string MispError::Text() const {
  std::string text = message.empty() ? name : message;
  if (!errors.empty()) text += (text.empty() ? "" : ": ") + errors;
  return text;
}

}  // namespace sgsync::misp
