// portal-connector/misp_client.h: the typed MISP REST client both ends of a link are spoken to with.
//
// Every call sends what MISP 2.5.1's own sync sends (URLs, methods, headers and body shapes of the
// captures in tests/data/fixtures/misp/real-2.5.1/: api/ and sync-trace/) and decodes the answer with
// misp. MISP's statuses and error bodies become typed errors (ErrorCode):
//   unauthenticated  403 "Authentication failed ..."      permission_denied  other 403
//   not_found        404                                   not_newer         403 on a not-newer edit
//   already_exists   404 + Location on an add              invalid_argument  405, other 4xx
//   rate_limited     429 (after the transport's retries)   unavailable       5xx and transport failures
//   parse            a malformed or unexpected body, with the byte offset or JSON path
// The message carries MISP's own text (name, message, errors); never the API key. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "misp/api.h"
#include "misp/event.h"
#include "portal-connector/misp_api.h"
#include "portal-connector/transport.h"

namespace sgsync::connector {

namespace json = boost::json;

// What the User-Agent says (docs/connector.md): MISP signs protected events only for user agents
// that start with "MISP" (spec 9.1).
std::string SgsyncUserAgent();

// An organisation as organisations/view and organisations/index show it.
struct OrganisationInfo {
  std::string id;  // that MISP's own id (push rules name organisations by it, spec 6.1)
  std::string uuid;
  std::string name;
  bool local = false;  // one of that MISP's own organisations (it has users there)
};

// A tag as tags/index shows it.
struct TagInfo {
  std::string id;  // that MISP's own id (push rules name tags by it, spec 6.1)
  std::string name;
};

// The MISP REST client: MispApi (what the engine needs of a MISP, portal-connector/misp_api.h) and
// the calls the daemon, discovery and onboarding use besides.
class MispClient : public MispApi {
 public:
  // `limits` bound every answer's parsed tree (misp/json.h); max_document_bytes follows the
  // transport's max_response_bytes.
  explicit MispClient(std::unique_ptr<HttpsTransport> transport, misp::JsonLimits limits = {});

  Result<misp::ServerVersion> GetVersion();
  Result<misp::UserInfo> WhoAmI();  // users/view/me.json
  // organisations/view/<uuid>: nullopt when the MISP does not know it (404).
  Result<std::optional<OrganisationInfo>> ViewOrganisation(const std::string& uuid);
  // organisations/index/scope:all and tags/index: what numeric ids in rules stand for.
  Result<std::vector<OrganisationInfo>> Organisations();
  Result<std::vector<TagInfo>> Tags();
  // servers/getSetting/<name> (a site admin's key): the setting's value.
  Result<json::value> Setting(const std::string& name);
  // event_blocklists/index and org_blocklists/index: the blocked event uuids / organisation uuids.
  Result<std::vector<std::string>> Blocklist(bool organisations);
  Result<IndexPage> EventIndex(const json::object& filter, const std::string& etag) override;
  Result<std::vector<misp::EventDocument>> RestSearch(const json::object& filter,
                                                      std::int64_t* total = nullptr) override;
  Result<std::optional<misp::EventDocument>> ViewEvent(const std::string& uuid,
                                                       const ViewForm& form) override;
  Result<WriteResult> AddEvent(const json::object& event) override;
  Result<WriteResult> EditEvent(const std::string& uuid_or_id, const json::object& event) override;
  Result<std::map<std::string, EventMetadata>> EventsMetadata(const std::vector<std::string>& uuids) override;
  Status DeleteEvent(const std::string& uuid) override;
  Result<std::vector<std::string>> FilterEventIdsForPush(
      const std::vector<std::pair<std::string, std::int64_t>>& offer) override;
  Result<std::vector<misp::SharingGroupInfo>> SharingGroups();
  Result<misp::SharingGroupInfo> SharingGroup(const std::string& uuid_or_id);  // sharing_groups/view
  Result<json::array> SightingsForEvents(const std::vector<std::string>& event_uuids) override;
  Result<std::vector<std::string>> KnownSightings(const std::string& event_uuid,
                                                  const std::vector<std::string>& sighting_uuids) override;
  Result<json::value> SaveSightings(const std::string& event_uuid, const json::array& sightings) override;
  Result<json::array> Proposals(std::int64_t since) override;
  Result<std::int64_t> PushProposals(const std::string& event_uuid, const json::array& proposals) override;

  Result<std::map<std::string, std::map<std::string, std::string>>> AnalystDataIndex(
      const std::vector<std::string>& orgc_names = {}) override;
  Result<json::array> AnalystData(const std::string& type, const std::vector<std::string>& uuids) override;
  Result<std::map<std::string, std::map<std::string, std::string>>> FilterAnalystDataForPush(
      const std::map<std::string, std::map<std::string, std::string>>& offer) override;
  Status PushAnalystData(const std::string& type, const json::object& entry) override;

  Result<std::map<std::string, std::int64_t>> ClusterVersions(
      bool published_only, const std::optional<std::vector<std::string>>& uuids) override;
  Result<json::object> ViewCluster(const std::string& uuid) override;
  Result<ClusterPush> PushCluster(const json::object& cluster) override;

  HttpsTransport& transport() { return *transport_; }

 private:
  Result<HttpResponse> Call(const std::string& method, const std::string& target, const std::string& body,
                            bool idempotent, std::map<std::string, std::string> headers = {});
  Result<json::value> Json(const HttpResponse& r, const std::string& target);
  // Sends a request whose 200 answer goes to its body_sink; the sink's own failures (a malformed or
  // oversized answer) are named with the URL.
  Result<HttpResponse> SendStreaming(const HttpRequest& req, const std::string& target);
  // A JSON answer streamed into the codec's reader as it arrives (large events, restSearch). With
  // `arena`, the tree is in an arena the caller keeps there (misp::ArenaOwner::kCaller).
  Result<json::value> StreamJson(const std::string& method, const std::string& target,
                                 const std::string& body, HttpResponse* meta,
                                 std::shared_ptr<const void>* arena = nullptr);
  Error ErrorFor(const HttpResponse& r, const std::string& target);
  // POSTs {"Event": event} to events/add or events/edit: the body held whole when small, streamed
  // when large; the answer read as it arrives (misp::SavedEventReader). `add`: a 404 with Location
  // is "already there" (its id), not an error.
  Result<WriteResult> WriteEvent(const std::string& target, const json::object& event, bool add);
  // The answer of an add or edit of `sent`: the saved event with the same uuid, or an error.
  Result<WriteResult> CheckWriteAnswer(misp::SavedEvent saved, const json::object& sent, const std::string& target);

  std::unique_ptr<HttpsTransport> transport_;
  misp::JsonLimits limits_;
};

}  // namespace sgsync::connector
