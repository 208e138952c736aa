// Fuzzes the rules JSON (push_rules / pull_rules, as MISP's server record and sgsync.toml hold
// them): any JSON as both rule sets of an otherwise valid link, then, when the link parses, the
// policy's decision for a fixed event in both directions. The parser names what is wrong or the
// rules apply; nothing crashes and nothing throws.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "misp/json.h"
#include "sync/policy/link.h"
#include "sync/policy/policy.h"

namespace {

namespace json = boost::json;

const json::object& Event() {
  static const json::object* e = new json::object(
      json::parse(R"({"uuid": "5b7d1c2e-0c3c-4b5e-9f5a-0d6a3c1e2f00", "distribution": "1", "published": true,
        "timestamp": "1700000000", "publish_timestamp": "1700000000", "info": "fuzz",
        "Orgc": {"uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f", "name": "ORG1"},
        "Org": {"uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f", "name": "ORG1"},
        "Tag": [{"name": "tlp:green"}, {"name": "1"}],
        "Attribute": [{"uuid": "6b7d1c2e-0c3c-4b5e-9f5a-0d6a3c1e2f01", "type": "ip-dst", "category": "Network activity",
                       "value": "192.0.2.1", "distribution": "5", "to_ids": true, "timestamp": "1700000000"}]})")
          .as_object());
  return *e;
}

json::object Link(const json::value& rules) {
  json::object org1{{"uuid", "55f6ea5e-2c60-40e5-964f-47a8950d210f"}, {"name", "ORG1"}};
  json::object org2{{"uuid", "65f6ea5e-2c60-40e5-964f-47a8950d210f"}, {"name", "ORG2"}};
  return json::object{{"name", "fuzz"},
                      {"local", json::object{{"url", "https://member.test"}, {"org", org1}}},
                      {"remote", json::object{{"url", "https://portal.test"}, {"org", org2}}},
                      {"remote_user_org", org1},
                      {"push_rules", rules},
                      {"pull_rules", rules}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sgsync::misp::JsonLimits limits;
  limits.max_document_bytes = 1 << 16;
  auto rules = sgsync::misp::ParseJson(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!rules.ok()) return 0;
  auto link = sgsync::policy::ParseLink(Link(*rules));
  if (!link.ok()) return 0;
  (void)sgsync::policy::Evaluate(sgsync::Direction::kPush, &Event(), *link);
  (void)sgsync::policy::Evaluate(sgsync::Direction::kPull, &Event(), *link);
  (void)sgsync::policy::PullIndexFilter(link->pull_rules);
  return 0;
}
