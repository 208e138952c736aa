#include "misp-sim/generator.h"

#include <cstdio>
#include <random>
#include <string>

namespace sgsync::sim {

std::string SeededUuid(std::uint64_t seed, std::uint64_t n) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + n);
  std::uint64_t a = rng(), b = rng();
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffull));
  return buf;
}

namespace {
void AppendAttribute(std::string& out, std::mt19937_64& rng, std::uint64_t seed, std::uint64_t n,
                     const char* object_id, const char* relation, int distribution) {
  // Values shaped like the type says, so sizes resemble real events (a sha256 is 64 hex digits).
  static const char* kTypes[] = {"ip-dst", "domain", "md5", "sha256", "url", "email-src"};
  const unsigned pick = static_cast<unsigned>(rng() % 6);
  const char* type = kTypes[pick];
  auto hex = [&rng](int digits) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string h;
    for (int i = 0; i < digits; ++i) h.push_back(kHex[rng() % 16]);
    return h;
  };
  std::string value;
  switch (pick) {
    case 0:
      value = std::to_string(rng() % 223 + 1) + "." + std::to_string(rng() % 256) + "." +
              std::to_string(rng() % 256) + "." + std::to_string(n % 256);
      break;
    case 1:
      value = "host" + std::to_string(n) + ".example-" + hex(4) + ".net";
      break;
    case 2:
      value = hex(32);
      break;
    case 3:
      value = hex(64);
      break;
    case 4:
      value = "https://cdn" + std::to_string(n % 97) + ".example.org/" + hex(12) + "/payload.bin";
      break;
    default:
      value = "sender" + std::to_string(n) + "@mail.example.com";
      break;
  }
  out +=
      R"({"id":")" + std::to_string(1000 + n) + R"(","type":")" + type +
      R"(","category":"Network activity","to_ids":true,"uuid":")" + SeededUuid(seed, n) +
      R"(","event_id":"42","distribution":")" +
      std::to_string(distribution >= 0 ? distribution
                     : rng() % 6 == 4  ? 5
                                       : static_cast<int>(rng() % 4)) +
      R"(","timestamp":"17958076)" + std::to_string(10 + n % 89) +
      R"(","comment":"","sharing_group_id":"0","deleted":false,"disable_correlation":false,"object_id":")" +
      object_id + R"(","object_relation":)" + relation + R"(,"first_seen":null,"last_seen":null,"value":")" +
      value + R"(","Galaxy":[],"ShadowAttribute":[])";
  if (n % 7 == 0) {
    out +=
        R"(,"Tag":[{"id":"3","name":"tlp:green","colour":"#33FF00","exportable":true,"user_id":"0","hide_tag":false,"numerical_value":null,"is_galaxy":false,"is_custom_galaxy":false,"local_only":false,"local":false,"relationship_type":null}])";
  }
  out += "}";
}
}  // namespace

std::string GenerateEventJson(const GeneratedEventShape& shape) {
  std::mt19937_64 rng(shape.seed);
  std::string out;
  out.reserve(static_cast<std::size_t>(shape.attributes + shape.objects * shape.object_attributes) * 420 +
              4096);
  out +=
      R"({"Event":{"id":"42","orgc_id":"1","org_id":"1","date":"2026-11-27","threat_level_id":"2","info":"generated event","published":true,"uuid":")" +
      SeededUuid(shape.seed, 0) + R"(","attribute_count":")" + std::to_string(shape.attributes) +
      R"(","analysis":"1","timestamp":"1795807699","distribution":")" +
      std::to_string(shape.event_distribution) +
      R"(","proposal_email_lock":false,"locked":false,"publish_timestamp":"1795807699","sharing_group_id":"0","disable_correlation":false,"extends_uuid":"","protected":null,"Org":{"id":"1","name":"ORG1","uuid":"ce867008-0536-4358-9f2e-20df12768cd3","local":true},"Orgc":{"id":"1","name":"ORG1","uuid":"ce867008-0536-4358-9f2e-20df12768cd3","local":true},"Attribute":[)";
  std::uint64_t n = 1;
  for (int i = 0; i < shape.attributes; ++i, ++n) {
    if (i) out += ',';
    AppendAttribute(out, rng, shape.seed, n, "0", "null", shape.attribute_distribution);
  }
  out += R"(],"ShadowAttribute":[],"RelatedEvent":[],"Galaxy":[],"Object":[)";
  for (int o = 0; o < shape.objects; ++o) {
    if (o) out += ',';
    std::string oid = std::to_string(500 + o);
    out +=
        R"({"id":")" + oid +
        R"(","name":"domain-ip","meta-category":"network","description":null,"template_uuid":"43b3b146-77eb-4931-b4cc-b66c60f28734","template_version":"9","event_id":"42","uuid":")" +
        SeededUuid(shape.seed ^ 0xabcdef, static_cast<std::uint64_t>(o)) +
        R"(","timestamp":"1795807694","distribution":"5","sharing_group_id":"0","comment":"","deleted":false,"first_seen":null,"last_seen":null,"ObjectReference":[],"Attribute":[)";
    for (int a = 0; a < shape.object_attributes; ++a, ++n) {
      if (a) out += ',';
      AppendAttribute(out, rng, shape.seed, n, oid.c_str(), "\"domain\"", shape.attribute_distribution);
    }
    out += "]}";
  }
  out +=
      R"(],"EventReport":[],"CryptographicKey":[],"Tag":[{"id":"1","name":"tlp:green","colour":"#fa4c22","exportable":true,"user_id":"0","hide_tag":false,"numerical_value":null,"is_galaxy":false,"is_custom_galaxy":false,"local_only":false,"local":false,"relationship_type":null}]}})";
  return out;
}

}  // namespace sgsync::sim
