#include "sync/policy/link.h"

#include <algorithm>
#include <cctype>

namespace sgsync::policy {

using misp::Child;
using misp::Describe;

bool FilterRules::empty() const {
  return tags_or.empty() && tags_not.empty() && orgs_or.empty() && orgs_not.empty() &&
         type_attributes_not.empty() && type_objects_not.empty() && url_params.empty();
}

bool SameText(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool SameUrl(std::string_view a, std::string_view b) {
  auto trim = [](std::string_view s) {
    return !s.empty() && s.back() == '/' ? s.substr(0, s.size() - 1) : s;
  };
  return SameText(trim(a), trim(b));
}

namespace {

bool IsNumericId(std::string_view s) {
  return !s.empty() && s.size() <= 20 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

bool HasRuleIds(const FilterRules& rules) {
  for (const auto* list : {&rules.tags_or, &rules.tags_not, &rules.orgs_or, &rules.orgs_not}) {
    if (std::any_of(list->begin(), list->end(), [](const std::string& s) { return IsNumericId(s); }))
      return true;
  }
  return false;
}

Result<std::vector<std::string>> ResolveRuleIds(FilterRules& rules, const RuleIdNames& names,
                                                std::string_view which, std::string_view misp) {
  std::vector<std::string> notes;
  struct Part {
    std::vector<std::string>* list;
    const char* key;
    bool tag;
  };
  for (Part part : {Part{&rules.tags_or, "tags.OR", true}, Part{&rules.tags_not, "tags.NOT", true},
                    Part{&rules.orgs_or, "orgs.OR", false}, Part{&rules.orgs_not, "orgs.NOT", false}}) {
    for (std::string& entry : *part.list) {
      if (!IsNumericId(entry)) continue;
      const auto& table = part.tag ? names.tags : names.orgs;
      auto it = table.find(entry);
      const std::string where = std::string(which) + "." + part.key;
      if (it == table.end()) {
        return Fail(ErrorCode::kInvalidArgument,
                    std::string(part.tag ? "tag" : "organisation") + " id " + entry + " is not a " +
                        (part.tag ? "tag" : "organisation") + " of " + std::string(misp) +
                        ": the rule would match nothing (paste the rules from that MISP, or use names)",
                    where);
      }
      std::string label = it->second;
      if (!part.tag) {
        auto n = names.org_names.find(entry);
        if (n != names.org_names.end() && !n->second.empty()) label = n->second + " (" + it->second + ")";
      }
      notes.push_back(where + ": " + entry + " = " + label);
      entry = it->second;
    }
  }
  return notes;
}

bool PullBlocklisted(const Link& link, std::string_view event_uuid, std::string_view orgc_uuid) {
  auto listed = [](const std::vector<std::string>& list, std::string_view uuid) {
    return !uuid.empty() &&
           std::any_of(list.begin(), list.end(), [&](const std::string& x) { return SameText(x, uuid); });
  };
  return listed(link.pull_blocked_event_uuids, event_uuid) || listed(link.pull_blocked_org_uuids, orgc_uuid);
}

bool VersionOlderThan(std::string_view version, int major, int minor, int patch) {
  int parts[3] = {0, 0, 0};
  std::size_t i = 0;
  for (std::size_t k = 0; k < 3; ++k) {
    std::size_t start = i;
    while (i < version.size() && std::isdigit(static_cast<unsigned char>(version[i]))) {
      parts[k] = parts[k] * 10 + (version[i] - '0');
      if (parts[k] > 100000) return false;
      ++i;
    }
    if (i == start) return false;
    if (k < 2) {
      if (i >= version.size() || version[i] != '.') return false;
      ++i;
    }
  }
  int want[3] = {major, minor, patch};
  return std::lexicographical_compare(parts, parts + 3, want, want + 3);
}

bool Link::IntPushDist() const {
  return host_org_id_set && internal && SameText(local.org.uuid, remote.org.uuid);
}

bool Link::IntPull() const {
  return host_org_id_set && internal && SameText(local.org.uuid, owner_org.uuid) &&
         (!pull_internal_needs_perm_sync_internal || remote_user_perm_sync_internal);
}

namespace {

Result<const json::object*> ObjectAt(const json::value* v, const std::string& path, bool required) {
  if (v == nullptr || v->is_null()) {
    if (required) return Fail(ErrorCode::kInvalidArgument, "expected an object, found nothing", path);
    return static_cast<const json::object*>(nullptr);
  }
  if (!v->is_object())
    return Fail(ErrorCode::kInvalidArgument, "expected an object, found " + Describe(*v), path);
  return &v->get_object();
}

Result<std::string> StringField(const json::object& o, std::string_view key, const std::string& path,
                                bool required) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) {
    if (required)
      return Fail(ErrorCode::kInvalidArgument, "expected a string, found nothing", Child(path, key));
    return std::string();
  }
  if (!v->is_string()) {
    return Fail(ErrorCode::kInvalidArgument, "expected a string, found " + Describe(*v), Child(path, key));
  }
  return std::string(v->get_string());
}

Result<bool> BoolField(const json::object& o, std::string_view key, const std::string& path) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return false;
  auto b = misp::ReadBool(*v, Child(path, key));
  if (!b.ok()) return Fail(ErrorCode::kInvalidArgument, b.error().message, b.error().where);
  return *b;
}

Result<std::vector<std::string>> StringList(const json::object& o, std::string_view key,
                                            const std::string& path) {
  std::vector<std::string> out;
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return out;
  std::string lpath = Child(path, key);
  if (!v->is_array())
    return Fail(ErrorCode::kInvalidArgument, "expected a list, found " + Describe(*v), lpath);
  for (std::size_t i = 0; i < v->get_array().size(); ++i) {
    const json::value& e = v->get_array()[i];
    // MISP stores ids as numbers or strings; both name the same thing.
    if (e.is_string()) {
      out.emplace_back(e.get_string());
    } else if (e.is_int64() || e.is_uint64()) {
      out.push_back(json::serialize(e));
    } else {
      return Fail(ErrorCode::kInvalidArgument, "expected a string, found " + Describe(e),
                  misp::Index(lpath, i));
    }
  }
  return out;
}

Result<OrgRef> ParseOrg(const json::object& o, std::string_view key, const std::string& path, bool required) {
  SGSYNC_TRY(const json::object* org, ObjectAt(o.if_contains(key), Child(path, key), required));
  OrgRef ref;
  if (org == nullptr) return ref;
  SGSYNC_TRY(ref.uuid, StringField(*org, "uuid", Child(path, key), true));
  SGSYNC_TRY(ref.name, StringField(*org, "name", Child(path, key), false));
  if (!misp::IsUuid(ref.uuid)) {
    return Fail(ErrorCode::kInvalidArgument, "expected a uuid, found \"" + ref.uuid + "\"",
                Child(Child(path, key), "uuid"));
  }
  return ref;
}

Result<Endpoint> ParseEndpoint(const json::object& o, std::string_view key) {
  SGSYNC_TRY(const json::object* e, ObjectAt(o.if_contains(key), std::string(key), true));
  Endpoint out;
  SGSYNC_TRY(out.url, StringField(*e, "url", std::string(key), true));
  while (!out.url.empty() && out.url.back() == '/') out.url.pop_back();
  SGSYNC_TRY(out.org, ParseOrg(*e, "org", std::string(key), true));
  return out;
}

Result<FilterRules> ParseRules(const json::object& o, std::string_view key) {
  FilterRules r;
  std::string path(key);
  SGSYNC_TRY(const json::object* rules, ObjectAt(o.if_contains(key), path, false));
  if (rules == nullptr) return r;
  struct Pair {
    const char* group;
    const char* op;
    std::vector<std::string>* into;
  };
  for (Pair p :
       {Pair{"tags", "OR", &r.tags_or}, Pair{"tags", "NOT", &r.tags_not}, Pair{"orgs", "OR", &r.orgs_or},
        Pair{"orgs", "NOT", &r.orgs_not}, Pair{"type_attributes", "NOT", &r.type_attributes_not},
        Pair{"type_objects", "NOT", &r.type_objects_not}}) {
    std::string gpath = Child(path, p.group);
    SGSYNC_TRY(const json::object* group, ObjectAt(rules->if_contains(p.group), gpath, false));
    if (group == nullptr) continue;
    SGSYNC_TRY(*p.into, StringList(*group, p.op, gpath));
  }
  if (const json::value* up = rules->if_contains("url_params"); up != nullptr && !up->is_null()) {
    if (up->is_string()) {
      r.url_params = std::string(up->get_string());
    } else if (up->is_object()) {
      r.url_params = json::serialize(*up);
    } else {
      return Fail(ErrorCode::kInvalidArgument, "expected a JSON object as text, found " + Describe(*up),
                  Child(path, "url_params"));
    }
    if (!r.url_params.empty()) {
      auto parsed = misp::ParseJson(r.url_params);
      if (!parsed.ok() || !parsed->is_object()) {
        return Fail(ErrorCode::kInvalidArgument,
                    "expected a JSON object as text, found \"" + r.url_params + "\"",
                    Child(path, "url_params"));
      }
    }
  }
  return r;
}

Result<std::vector<std::string>> ParseBlockedTags(const json::object& o, Direction d) {
  const json::value* v = o.if_contains("blocked_tags");
  if (v == nullptr || v->is_null()) return std::vector<std::string>();
  if (v->is_array()) return StringList(o, "blocked_tags", "");
  if (v->is_object()) return StringList(v->get_object(), DirectionName(d), "blocked_tags");
  return Fail(ErrorCode::kInvalidArgument,
              "expected a list of tag names or {\"push\": [...], \"pull\": [...]}, found " + Describe(*v),
              "blocked_tags");
}

}  // namespace

Result<Link> ParseLink(const json::value& v) {
  if (!v.is_object())
    return Fail(ErrorCode::kInvalidArgument, "expected a link object, found " + Describe(v), "$");
  const json::object& o = v.get_object();
  Link link;
  SGSYNC_TRY(link.name, StringField(o, "name", "", false));
  SGSYNC_TRY(link.local, ParseEndpoint(o, "local"));
  SGSYNC_TRY(link.remote, ParseEndpoint(o, "remote"));
  SGSYNC_TRY(link.remote_user_org, ParseOrg(o, "remote_user_org", "", true));
  SGSYNC_TRY(link.owner_org, ParseOrg(o, "owner_org", "", false));
  if (link.owner_org.uuid.empty()) link.owner_org = link.local.org;
  SGSYNC_TRY(link.internal, BoolField(o, "internal", ""));
  SGSYNC_TRY(link.host_org_id_set, BoolField(o, "host_org_id_set", ""));
  SGSYNC_TRY(link.push_rules, ParseRules(o, "push_rules"));
  SGSYNC_TRY(link.pull_rules, ParseRules(o, "pull_rules"));
  SGSYNC_TRY(link.unpublish_event, BoolField(o, "unpublish_event", ""));
  SGSYNC_TRY(link.remove_missing_tags, BoolField(o, "remove_missing_tags", ""));
  SGSYNC_TRY(link.blocked_tags_push, ParseBlockedTags(o, Direction::kPush));
  SGSYNC_TRY(link.blocked_tags_pull, ParseBlockedTags(o, Direction::kPull));
  if (o.contains("remote_supports_reports")) {
    SGSYNC_TRY(link.remote_supports_reports, BoolField(o, "remote_supports_reports", ""));
  }
  SGSYNC_TRY(link.remote_known_server_urls, StringList(o, "remote_known_server_urls", ""));
  if (link.remote_known_server_urls.empty()) link.remote_known_server_urls.push_back(link.local.url);
  if (o.contains("local_writer_is_site_admin")) {
    SGSYNC_TRY(link.local_writer_is_site_admin, BoolField(o, "local_writer_is_site_admin", ""));
  }
  SGSYNC_TRY(link.announced_url, StringField(o, "announced_url", "", false));
  SGSYNC_TRY(link.remote_version, StringField(o, "remote_version", "", false));
  SGSYNC_TRY(link.pull_blocked_event_uuids, StringList(o, "pull_blocked_event_uuids", ""));
  SGSYNC_TRY(link.pull_blocked_org_uuids, StringList(o, "pull_blocked_org_uuids", ""));
  SGSYNC_TRY(link.pull_internal_needs_perm_sync_internal,
             BoolField(o, "pull_internal_needs_perm_sync_internal", ""));
  SGSYNC_TRY(link.remote_user_perm_sync_internal, BoolField(o, "remote_user_perm_sync_internal", ""));
  SGSYNC_TRY(const json::object* settings, ObjectAt(o.if_contains("settings"), "settings", false));
  if (settings != nullptr) {
    if (settings->contains("MISP.host_org_id")) link.host_org_id_set = true;
    SGSYNC_TRY(link.filter_on_type,
               BoolField(*settings, "MISP.enable_synchronisation_filtering_on_type", "settings"));
    SGSYNC_TRY(std::string external, StringField(*settings, "MISP.external_baseurl", "settings", false));
    if (!external.empty() && link.announced_url.empty()) link.announced_url = external;
  }
  if (link.announced_url.empty()) link.announced_url = link.local.url;
  return link;
}

}  // namespace sgsync::policy
