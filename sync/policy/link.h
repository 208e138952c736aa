// sync/policy/link.h: what the sharing policy knows about one sync link.
//
// A link joins this instance's MISP ("local", the member's) with a peer MISP ("remote", the
// Portal). The fields mirror MISP's own server record (spec 2.2) and the settings that change sync
// behaviour (spec 2.5), plus sgsync's own additions (blocked tags). ParseLink reads the JSON form
// that tests/data/conformance/case2link.py writes; the daemon's TOML configuration maps onto the same
// struct (docs/sharing-rules.md, "The link").
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/direction.h"
#include "common/result.h"
#include "misp/json.h"

namespace sgsync::policy {

namespace json = boost::json;

using ::sgsync::Direction;
using ::sgsync::DirectionName;

struct OrgRef {
  std::string uuid;
  std::string name;
};

struct Endpoint {
  std::string url;  // base URL, no trailing slash (MISP strips it, spec 2.2)
  OrgRef org;       // the instance's host organisation (MISP.host_org_id)
};

// push_rules / pull_rules in MISP's JSON form (spec 6), with tags by name and organisations by uuid
// or name, as users paste them from their MISP server settings.
struct FilterRules {
  std::vector<std::string> tags_or, tags_not;
  std::vector<std::string> orgs_or, orgs_not;
  std::vector<std::string> type_attributes_not;
  std::vector<std::string> type_objects_not;  // object template uuids
  std::string url_params;                     // a JSON object as text, merged into pull index filters
  bool empty() const;
};

struct Link {
  std::string name;
  Endpoint local;
  Endpoint remote;
  // The organisation of the account sgsync uses on the remote (the sync user's org there).
  OrgRef remote_user_org;
  // MISP's Server.org_id: the local organisation that owns the link; used by the pull-internal test.
  OrgRef owner_org;
  bool internal = false;
  // MISP.host_org_id is set on the local MISP (to local.org); the internal tests need it (spec 2.3).
  bool host_org_id_set = false;
  FilterRules push_rules;
  FilterRules pull_rules;
  bool unpublish_event = false;
  bool remove_missing_tags = false;  // read, and (like MISP 2.5.1, spec 11.10) without effect
  // MISP.enable_synchronisation_filtering_on_type: gates the type_attributes/type_objects rules.
  bool filter_on_type = false;
  // sgsync's TLP/PAP policy: tags that must never cross this link, per direction. An event carrying
  // one is refused; an element carrying one is removed. Compared without regard to case.
  std::vector<std::string> blocked_tags_push;
  std::vector<std::string> blocked_tags_pull;
  // The remote answers GET /eventReports/add with a description (spec 3.2.3); else reports are cut.
  bool remote_supports_reports = true;
  // Server URLs the remote has server records for; its sharing-group capture keeps rows naming
  // them and drops the others (spec 4.5). Defaults to the local URL.
  std::vector<std::string> remote_known_server_urls;
  // The account sgsync writes pulled events with on the local MISP is a site admin (as MISP's own
  // pull runs as the admin who starts it): sharing groups are then captured without checks (4.5).
  bool local_writer_is_site_admin = true;
  // MISP.external_baseurl of the local MISP: the URL its own sharing-group row announces.
  std::string announced_url;
  // MISP 2.4.206 / 2.5.8 added the role flag perm_sync_internal: an internal pull skips the
  // downgrade only when the remote account has it (spec 11, "Changes after the snapshot"). Set
  // `pull_internal_needs_perm_sync_internal` when the local MISP is 2.5.8 or later, and
  // `remote_user_perm_sync_internal` to what the remote account's role says.
  bool pull_internal_needs_perm_sync_internal = false;
  bool remote_user_perm_sync_internal = false;

  // The remote MISP's version as servers/getVersion reports it ("2.5.1"); empty when unknown.
  // Protected events need 2.4.156 (spec 7.7).
  std::string remote_version;
  // The local MISP's event and organisation blocklists (spec 7.8): MISP's pull does not fetch a
  // listed event uuid nor an event whose creator organisation (Orgc uuid) is listed.
  std::vector<std::string> pull_blocked_event_uuids;
  std::vector<std::string> pull_blocked_org_uuids;

  // The three internal tests of spec 2.3.
  bool IntPushDist() const;
  bool IntPushXform() const { return internal; }
  bool IntPull() const;
};

// Push and pull rules as MISP stores them name tags and organisations by their ids on a MISP
// (`{"tags": {"NOT": ["3"]}}`, spec 6.1). Those ids, resolved through the MISP they belong to (tags
// and organisations of the member's MISP for push rules, of the Portal for pull rules), become the
// tag's name and the organisation's uuid, which the policy compares and which a MISP index accepts
// as well as the id (spec 6.2).
struct RuleIdNames {
  std::map<std::string, std::string> tags;       // tag id -> name
  std::map<std::string, std::string> orgs;       // organisation id -> uuid
  std::map<std::string, std::string> org_names;  // organisation id -> name, for the notes
};
// Whether `rules` name any tag or organisation by a numeric id.
bool HasRuleIds(const FilterRules& rules);
// Replaces every numeric id of `rules` by what it stands for; `which` ("push_rules") and `misp`
// ("the member's MISP (https://...)") name them in the error for an id that does not resolve.
// Returns one note per resolved id ("push_rules.tags.NOT: 3 = tlp:red").
Result<std::vector<std::string>> ResolveRuleIds(FilterRules& rules, const RuleIdNames& names,
                                                std::string_view which, std::string_view misp);

// Whether the pull blocklists (spec 7.8) exclude an event, by its uuid and its creator org uuid;
// the engine asks before fetching, as MISP does on its index.
bool PullBlocklisted(const Link& link, std::string_view event_uuid, std::string_view orgc_uuid);

// Whether version text a.b.c is older than major.minor.patch; false when it does not parse.
bool VersionOlderThan(std::string_view version, int major, int minor, int patch);

// Reads the case2link.py JSON format. Errors name the JSON path of the offending field.
Result<Link> ParseLink(const json::value& v);

// Case-insensitive comparison for tag names, organisation names and uuids.
bool SameText(std::string_view a, std::string_view b);
// URLs compared as MISP's sharing-group capture does, ignoring one trailing slash and case.
bool SameUrl(std::string_view a, std::string_view b);

}  // namespace sgsync::policy
