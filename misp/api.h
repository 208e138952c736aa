// misp/api.h: the small MISP documents besides events: the minimal event index, the sharing
// group index, servers/getVersion, users/view/me and MISP's error bodies.
//
// Each Decode* function takes the parsed response body and returns a typed value or an error with
// the JSON path of the offending field. Field sets follow the real MISP 2.5.1 captures in
// tests/data/fixtures/misp/real-2.5.1/api/.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "misp/json.h"

namespace sgsync::misp {

// One row of `POST /events/index {"minimal": 1, ...}`.
struct EventIndexEntry {
  std::int64_t id = 0;  // the remote's local id; never trusted as identity
  std::string uuid;
  std::int64_t timestamp = 0;
  std::int64_t sighting_timestamp = 0;
  bool published = false;
  std::string orgc_uuid;
};
// A list of rows; very old servers answer a single object (spec 7.1), which becomes a list of one.
// Without `rejected` the first bad row fails the whole index; with it, a bad row (no uuid, a
// timestamp that is not a number ...) is left out and its error, with the row's path, appended
// there, so one bad row cannot hold up the others. A body that is not a list still fails.
Result<std::vector<EventIndexEntry>> DecodeEventIndex(const json::value& body,
                                                      std::vector<Error>* rejected = nullptr);

// One sharing group as `sharing_groups/index` lists it ({"response": [{"SharingGroup": ...,
// "SharingGroupOrg": [...], "SharingGroupServer": [...]}]}) or `sharing_groups/view` shows it.
struct SharingGroupServerEntry {
  std::int64_t server_id = 0;
  std::string url;
  bool all_orgs = false;
};
struct SharingGroupInfo {
  std::string uuid;
  std::string name;
  std::string releasability;
  std::string organisation_uuid;  // the group's owner
  bool roaming = false;
  bool active = true;
  std::vector<std::string> org_uuids;
  std::vector<SharingGroupServerEntry> servers;
};
Result<std::vector<SharingGroupInfo>> DecodeSharingGroupIndex(const json::value& body);
Result<SharingGroupInfo> DecodeSharingGroup(const json::value& body);

// `GET /servers/getVersion`.
struct ServerVersion {
  std::string version;  // "2.5.1"
  int major = 0, minor = 0, hotfix = 0;
  std::string uuid;  // the instance's uuid
  bool perm_sync = false;
  bool perm_sighting = false;
  bool perm_galaxy_editor = false;
  bool perm_analyst_data = false;
  bool filter_sightings = false;
  std::vector<std::string> request_encoding;  // "gzip" when the server accepts compressed bodies
  // True when this version is at least major.minor.hotfix.
  bool AtLeast(int mj, int mn, int hf) const;
};
Result<ServerVersion> DecodeServerVersion(const json::value& body);

// MISP's checkVersionCompatibility (spec 9.4, 12 case 37): another major or minor version is an
// error to report and another hotfix a warning, but neither stops the sync. Returns what to log
// (`error` says which), or nothing when both sides run the same version.
struct VersionGap {
  bool error = false;  // major or minor differ
  std::string message;
};
std::optional<VersionGap> CompareVersions(const ServerVersion& local, const ServerVersion& remote);

// `GET /users/view/me.json`: who the API key belongs to and what it may do.
struct UserInfo {
  std::int64_t id = 0;
  std::string email;
  std::string org_uuid;
  std::string org_name;
  std::string role_name;
  std::map<std::string, bool, std::less<>> permissions;  // Role.perm_* flags
  bool disabled = false;
  bool Has(std::string_view perm) const;
};
Result<UserInfo> DecodeUserInfo(const json::value& body);

// MISP's error bodies: {"name", "message", "url", "errors"?, "saved"?, "id"?}. `errors` may be a
// string or a nested object of field -> messages; it is flattened to one readable line.
struct MispError {
  std::string name;
  std::string message;
  std::string url;
  std::string errors;

  // "message: errors" (the name when there is no message); empty when MISP said nothing.
  std::string Text() const;
};
// Never fails: a body that is not MISP's error shape gives a MispError with its text as message.
MispError DecodeMispError(const json::value& body);

}  // namespace sgsync::misp
