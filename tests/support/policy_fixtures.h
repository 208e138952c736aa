// tests/support/policy_fixtures.h: small builders for events and links in policy tests.
#pragma once

#include <string>

#include "sync/policy/link.h"

namespace sgsync::testing {

inline constexpr const char* kOrg1 = "ce867008-0536-4358-9f2e-20df12768cd3";  // the member (local)
inline constexpr const char* kOrg2 = "1315aee3-d0b4-4569-a8f2-b99ad776f149";  // the peer (remote)
inline constexpr const char* kOrg3 = "9f3c7e20-3b1a-4d6e-8a51-2f6c0d9e7a33";  // a third org
inline constexpr const char* kLocalUrl = "https://misp.member.example";
inline constexpr const char* kRemoteUrl = "https://portal.securegrid.example";

// A link from kOrg1 at kLocalUrl to kOrg2 at kRemoteUrl; `extra` is spliced into the JSON object
// (e.g. R"("internal": true, "host_org_id_set": true)").
policy::Link MakeLink(const std::string& extra = "");

// Sharing group JSON as events/view embeds it. `orgs` are org uuids; `servers` are (url, all_orgs)
// given as a JSON fragment of SharingGroupServer rows; the sender's own row is added unless roaming.
std::string SharingGroupJson(const std::string& uuid, const std::vector<std::string>& orgs,
                             const std::vector<std::pair<std::string, bool>>& servers, bool roaming);

}  // namespace sgsync::testing
