#include "tests/support/policy_fixtures.h"

#include <stdexcept>

#include "misp/json.h"

namespace sgsync::testing {

policy::Link MakeLink(const std::string& extra) {
  std::string text = std::string(R"({"local": {"url": ")") + kLocalUrl + R"(", "org": {"uuid": ")" + kOrg1 +
                     R"(", "name": "ORG1"}}, "remote": {"url": ")" + kRemoteUrl + R"(", "org": {"uuid": ")" +
                     kOrg2 + R"(", "name": "ORG2"}}, "remote_user_org": {"uuid": ")" + kOrg1 +
                     R"(", "name": "ORG1"})" + (extra.empty() ? "" : ", " + extra) + "}";
  auto v = misp::ParseJson(text);
  if (!v.ok()) throw std::runtime_error("bad link JSON in test: " + v.error().ToString());
  auto link = policy::ParseLink(*v);
  if (!link.ok()) throw std::runtime_error("bad link in test: " + link.error().ToString());
  return *link;
}

std::string SharingGroupJson(const std::string& uuid, const std::vector<std::string>& orgs,
                             const std::vector<std::pair<std::string, bool>>& servers, bool roaming) {
  std::string out = R"({"uuid": ")" + uuid + R"(", "name": "sg )" + uuid.substr(0, 8) +
                    R"(", "releasability": "", "roaming": )" + (roaming ? "true" : "false") +
                    R"(, "SharingGroupOrg": [)";
  for (std::size_t i = 0; i < orgs.size(); ++i) {
    out += (i ? "," : "") + std::string(R"({"extend": false, "Organisation": {"uuid": ")") + orgs[i] +
           R"(", "name": "org"}})";
  }
  out += R"(], "SharingGroupServer": [)";
  bool first = true;
  if (!roaming) {
    out += std::string(R"({"server_id": "0", "all_orgs": false, "Server": {"id": "0", "url": ")") +
           kLocalUrl + R"(", "name": "self"}})";
    first = false;
  }
  for (const auto& [url, all_orgs] : servers) {
    out += (first ? "" : ",") + std::string(R"({"server_id": "7", "all_orgs": )") +
           (all_orgs ? "true" : "false") + R"(, "Server": {"id": "7", "url": ")" + url +
           R"(", "name": "peer"}})";
    first = false;
  }
  return out + "]}";
}

}  // namespace sgsync::testing
