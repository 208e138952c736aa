// MispClient's calls for the side channels: sightings, proposals, analyst data and custom galaxy
// clusters (misp_api.h).
#include "portal-connector/misp_client.h"

#include <set>

#include "common/encoding.h"

namespace sgsync::connector {

Result<json::array> MispClient::SightingsForEvents(const std::vector<std::string>& event_uuids) {
  json::array uuids;
  for (const auto& u : event_uuids) uuids.push_back(json::value(u));
  json::object body{{"returnFormat", "json"}, {"last", 0}, {"includeUuid", true}, {"uuid", std::move(uuids)}};
  SGSYNC_TRY(auto r, Call("POST", "/sightings/restSearch/event", json::serialize(body), true));
  SGSYNC_TRY(json::value v, Json(r, "/sightings/restSearch/event"));
  if (!v.is_object() || !v.as_object().contains("response") || !v.as_object()["response"].is_array()) {
    return Fail(ErrorCode::kParse, "expected {\"response\": [...]}, found " + misp::Describe(v), "$");
  }
  return v.as_object()["response"].as_array();
}

Result<std::vector<std::string>> MispClient::KnownSightings(const std::string& event_uuid,
                                                            const std::vector<std::string>& sighting_uuids) {
  json::array body;
  for (const auto& u : sighting_uuids) body.push_back(json::value(u));
  const std::string target = "/sightings/filterSightingUuidsForPush/" + event_uuid;
  SGSYNC_TRY(auto r, Call("POST", target, json::serialize(body), true));
  SGSYNC_TRY(json::value v, Json(r, target));
  std::vector<std::string> out;
  if (v.is_array()) {
    for (const auto& u : v.as_array()) {
      if (u.is_string()) out.emplace_back(u.as_string());
    }
  }
  return out;
}

Result<json::value> MispClient::SaveSightings(const std::string& event_uuid, const json::array& sightings) {
  const std::string target = "/sightings/bulkSaveSightings/" + event_uuid;
  SGSYNC_TRY(auto r, Call("POST", target, json::serialize(sightings), false));
  return Json(r, target);
}

Result<json::array> MispClient::Proposals(std::int64_t since) {
  // MISP's pull of proposals (shadow-attributes-index-pull-form.json), a page of 1000 at a time.
  constexpr std::size_t kPage = 1000;
  constexpr int kMaxPages = 1000;  // a peer that never ends its list is an error, not a loop
  json::array out;
  for (int page = 1;; ++page) {
    if (page > kMaxPages)
      return Fail(ErrorCode::kParse, "the proposal index did not end after " + std::to_string(kMaxPages) +
                                         " pages of " + std::to_string(kPage));
    const std::string target = "/shadow_attributes/index/all:1/timestamp:" + std::to_string(since) +
                               "/limit:" + std::to_string(kPage) + "/page:" + std::to_string(page) +
                               "/deleted[]:0/deleted[]:1.json";
    SGSYNC_TRY(auto r, Call("GET", target, "", true));
    SGSYNC_TRY(json::value v, Json(r, target));
    if (!v.is_array())
      return Fail(ErrorCode::kParse, "expected a list of proposals, found " + misp::Describe(v),
                  target + " $");
    std::size_t n = v.as_array().size();
    for (std::size_t i = 0; i < n; ++i) {
      json::value& row = v.as_array()[i];
      if (row.is_object() && row.as_object().contains("ShadowAttribute"))
        row = row.as_object()["ShadowAttribute"];
      if (!row.is_object())
        return Fail(ErrorCode::kParse, "expected a proposal object, found " + misp::Describe(row),
                    target + " $[" + std::to_string(i) + "]");
      out.push_back(std::move(row));
    }
    if (n < kPage) return out;
  }
}

Result<std::int64_t> MispClient::PushProposals(const std::string& event_uuid, const json::array& proposals) {
  const std::string target = "/events/pushProposals/" + event_uuid;
  SGSYNC_TRY(auto r, Call("POST", target, json::serialize(proposals), false));
  SGSYNC_TRY(json::value v, Json(r, target));
  if (!v.is_object())
    return Fail(ErrorCode::kParse, "expected an object, found " + misp::Describe(v), target + " $");
  const json::object& o = v.as_object();
  if (!misp::BoolOr(o, "success", false)) {
    std::string message(misp::StringOr(o, "message"));
    return Fail(message == "Event not found." ? ErrorCode::kNotFound : ErrorCode::kRefused,
                "the MISP refused the proposals: " + message, target);
  }
  return misp::IntOr(o, "counter", 0);
}

namespace {

// {type: {uuid: modified}}; MISP answers an empty PHP array, `[]`, when there is nothing.
Result<std::map<std::string, std::map<std::string, std::string>>> DecodeAnalystIndex(
    const json::value& v, const std::string& where) {
  std::map<std::string, std::map<std::string, std::string>> out;
  if (v.is_array() && v.as_array().empty()) return out;
  if (!v.is_object())
    return Fail(ErrorCode::kParse, "expected {type: {uuid: modified}}, found " + misp::Describe(v), where);
  for (const auto& [type, entries] : v.as_object()) {
    if (entries.is_array() && entries.as_array().empty()) continue;
    if (!entries.is_object())
      return Fail(ErrorCode::kParse, "expected {uuid: modified}, found " + misp::Describe(entries),
                  where + " $." + std::string(type));
    for (const auto& [uuid, modified] : entries.as_object()) {
      if (!modified.is_string())
        return Fail(ErrorCode::kParse, "expected a modified date, found " + misp::Describe(modified),
                    where + " $." + std::string(type) + "." + std::string(uuid));
      out[std::string(type)][std::string(uuid)] = std::string(modified.as_string());
    }
  }
  return out;
}

}  // namespace

Result<std::map<std::string, std::map<std::string, std::string>>> MispClient::AnalystDataIndex(
    const std::vector<std::string>& orgc_names) {
  const std::string target = "/analyst_data/indexMinimal";
  json::array names;
  for (const auto& n : orgc_names) names.emplace_back(n);
  SGSYNC_TRY(auto r,
             Call("POST", target, json::serialize(json::object{{"orgc_name", std::move(names)}}), true));
  SGSYNC_TRY(json::value v, Json(r, target));
  return DecodeAnalystIndex(v, target);
}

Result<json::array> MispClient::AnalystData(const std::string& type, const std::vector<std::string>& uuids) {
  json::array out;
  for (std::size_t from = 0; from < uuids.size(); from += 100) {
    std::string target = "/analyst_data/index/" + type;
    for (std::size_t i = from; i < std::min(uuids.size(), from + 100); ++i) target += "/uuid[]:" + uuids[i];
    target += ".json";
    SGSYNC_TRY(auto r, Call("GET", target, "", true));
    SGSYNC_TRY(json::value v, Json(r, target));
    if (!v.is_array())
      return Fail(ErrorCode::kParse, "expected a list of entries, found " + misp::Describe(v), target);
    for (auto& row : v.as_array()) {
      const json::value* inner = row.is_object() ? row.as_object().if_contains(type) : nullptr;
      if (inner == nullptr || !inner->is_object())
        return Fail(ErrorCode::kParse, "expected {\"" + type + "\": {...}}, found " + misp::Describe(row),
                    target);
      out.push_back(*inner);
    }
  }
  return out;
}

Result<std::map<std::string, std::map<std::string, std::string>>> MispClient::FilterAnalystDataForPush(
    const std::map<std::string, std::map<std::string, std::string>>& offer) {
  const std::string target = "/analyst_data/filterAnalystDataForPush";
  json::object body;
  for (const auto& [type, entries] : offer) {
    json::object e;
    for (const auto& [uuid, modified] : entries) e[uuid] = modified;
    body[type] = std::move(e);
  }
  SGSYNC_TRY(auto r, Call("POST", target, json::serialize(body), true));
  SGSYNC_TRY(json::value v, Json(r, target));
  return DecodeAnalystIndex(v, target);
}

Status MispClient::PushAnalystData(const std::string& type, const json::object& entry) {
  const std::string target = "/analyst_data/pushAnalystData";
  SGSYNC_TRY(auto r, Call("POST", target, json::serialize(json::object{{type, entry}}), false));
  SGSYNC_TRY(json::value v, Json(r, target));
  if (!v.is_object() || !misp::BoolOr(v.as_object(), "saved", false)) {
    std::string message =
        v.is_object() ? std::string(misp::StringOr(v.as_object(), "message")) : misp::Describe(v);
    return Fail(ErrorCode::kRefused, "the MISP did not import the analyst data: " + message, target);
  }
  return Status();
}

Result<std::map<std::string, std::int64_t>> MispClient::ClusterVersions(
    bool published_only, const std::optional<std::vector<std::string>>& uuids) {
  const std::string target = "/galaxy_clusters/restSearch";
  json::object filter{{"minimal", 1}, {"custom", 1}};
  if (published_only) filter["published"] = 1;
  if (uuids) {
    json::array list;
    for (const auto& u : *uuids) list.emplace_back(u);
    filter["uuid"] = std::move(list);
  }
  SGSYNC_TRY(auto r, Call("POST", target, json::serialize(filter), true));
  SGSYNC_TRY(json::value v, Json(r, target));
  // A list, or the list under "response" (GalaxyCluster::fetchCustomClusterIdsFromServer).
  if (v.is_object() && v.as_object().contains("response")) v = v.as_object()["response"];
  if (!v.is_array())
    return Fail(ErrorCode::kParse, "expected a list of clusters, found " + misp::Describe(v), target);
  std::map<std::string, std::int64_t> out;
  for (std::size_t i = 0; i < v.as_array().size(); ++i) {
    const json::value& row = v.as_array()[i];
    const json::value* c = row.is_object() ? row.as_object().if_contains("GalaxyCluster") : nullptr;
    if (c == nullptr || !c->is_object() || misp::StringOr(c->as_object(), "uuid").empty())
      return Fail(ErrorCode::kParse,
                  "expected {\"GalaxyCluster\": {\"uuid\", \"version\"}}, found " + misp::Describe(row),
                  target + " $[" + std::to_string(i) + "]");
    out[AsciiLower(std::string(misp::StringOr(c->as_object(), "uuid")))] =
        misp::IntOr(c->as_object(), "version", 0);
  }
  return out;
}

Result<json::object> MispClient::ViewCluster(const std::string& uuid) {
  const std::string target = "/galaxy_clusters/view/" + uuid;
  SGSYNC_TRY(auto r, Call("GET", target, "", true));
  SGSYNC_TRY(json::value v, Json(r, target));
  const json::value* c = v.is_object() ? v.as_object().if_contains("GalaxyCluster") : nullptr;
  if (c == nullptr || !c->is_object())
    return Fail(ErrorCode::kParse, "expected {\"GalaxyCluster\": {...}}, found " + misp::Describe(v), target);
  return c->as_object();
}

namespace {

// GalaxyCluster::captureCluster's refusals that keep the receiver's copy whatever is sent: its own
// cluster, a version that is not newer, a default cluster. MISP says which only in its message.
bool ReceiverKeepsItsCluster(const Error& e) {
  return (e.code == ErrorCode::kRefused || e.code == ErrorCode::kPermissionDenied) &&
         (e.message.find("created locally") != std::string::npos ||
          e.message.find("not newer") != std::string::npos ||
          e.message.find("non-default") != std::string::npos);
}

}  // namespace

Result<ClusterPush> MispClient::PushCluster(const json::object& cluster) {
  const std::string target = "/galaxies/pushCluster";
  auto answer = [&]() -> Result<json::value> {
    SGSYNC_TRY(auto r, Call("POST", target,
                            json::serialize(json::array{json::object{{"GalaxyCluster", cluster}}}), false));
    return Json(r, target);
  }();
  if (!answer.ok()) {
    if (ReceiverKeepsItsCluster(answer.error())) return ClusterPush::kKeptByReceiver;
    return answer.error();
  }
  const json::value& v = *answer;
  if (!v.is_object() || !misp::BoolOr(v.as_object(), "saved", false)) {
    std::string message =
        v.is_object() ? std::string(misp::StringOr(v.as_object(), "message")) : misp::Describe(v);
    Error refused = Fail(ErrorCode::kRefused, "the MISP did not import the cluster: " + message, target);
    if (ReceiverKeepsItsCluster(refused)) return ClusterPush::kKeptByReceiver;
    return refused;
  }
  return ClusterPush::kSaved;
}

}  // namespace sgsync::connector
