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
#include "portal-connector/transport.h"
#include "misp/api.h"
#include "misp/event.h"

namespace sgsync::connector {

namespace json = boost::json;

// What the User-Agent says (docs/connector.md): MISP signs protected events only for user agents
// that start with "MISP" (spec 9.1).
std::string SgsyncUserAgent();

struct IndexPage {
  bool not_modified = false;  // 304: nothing changed since `etag`
  std::vector<misp::EventIndexEntry> rows;
  std::string etag;        // send it back next time
  std::int64_t total = 0;  // X-Result-Count
  // Rows left out because they could not be read (each error names the row's path): the rest of
  // the index is used (docs/security.md).
  std::vector<Error> rejected;
};

struct ViewForm {
  bool include_deleted = true;     // deleted[]:0/deleted[]:1 (only the path form works, spec 3.3)
  bool exclude_local_tags = true;  // excludeLocalTags:1 unless the link is internal
};

// What an add or edit did.
struct WriteResult {
  bool written = false;
  std::string existing_id;  // an add of a known uuid: the remote's id from Location (spec 7.2)
  json::value body;         // MISP's answer
};

// What a MISP holds about an event without its content (restSearch metadata:1).
struct EventMetadata {
  std::string uuid;
  std::int64_t timestamp = 0;
  bool locked = false;     // received through sync (spec 7.7); false: created on that MISP
  std::string orgc_uuid;   // the creator organisation
};

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

class MispClient {
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
  // POST /events/index with If-None-Match (`etag`, or "" to ask for one); `filter` as
  // policy::PullIndexFilter builds it.
  Result<IndexPage> EventIndex(const json::object& filter, const std::string& etag);
  Result<std::vector<misp::EventDocument>> RestSearch(const json::object& filter,
                                                      std::int64_t* total = nullptr);
  // nullopt when the remote does not serve it (404: missing or hidden alike).
  Result<std::optional<misp::EventDocument>> ViewEvent(const std::string& uuid, const ViewForm& form);
  // POST events/add and events/edit/<uuid or id>, answered with the whole saved event (WriteResult
  // body), which the engine compares with what it sent (misp::ElementsMissingFrom).
  // An add or edit is counted as written only when the answer is the saved event itself: a 200
  // whose body is an error, or another event than the one sent, is kRefused / kCorruption
  // (docs/security.md).
  Result<WriteResult> AddEvent(const json::object& event);
  // `not_newer` when the remote's copy is as new or newer (spec 7.5).
  Result<WriteResult> EditEvent(const std::string& uuid_or_id, const json::object& event);
  // The events among `uuids` that the MISP holds, by lower-case uuid, with what decides whether
  // sync may overwrite them; one restSearch with metadata:1. Rows for other uuids are ignored.
  Result<std::map<std::string, EventMetadata>> EventsMetadata(const std::vector<std::string>& uuids);
  // POST events/delete/<id> (events-delete.json): the event is deleted and its uuid blocklisted by
  // the MISP (spec 7.6). Takes the uuid: the local id is looked up with events/view first.
  // NotFound when the MISP does not serve the event.
  Status DeleteEvent(const std::string& uuid);
  Result<std::vector<std::string>> FilterEventIdsForPush(
      const std::vector<std::pair<std::string, std::int64_t>>& offer);
  Result<std::vector<misp::SharingGroupInfo>> SharingGroups();
  Result<misp::SharingGroupInfo> SharingGroup(const std::string& uuid_or_id);  // sharing_groups/view
  Result<json::array> SightingsForEvents(const std::vector<std::string>& event_uuids);
  Result<std::vector<std::string>> KnownSightings(const std::string& event_uuid,
                                                  const std::vector<std::string>& sighting_uuids);
  Result<json::value> SaveSightings(const std::string& event_uuid, const json::array& sightings);
  // Proposals (ShadowAttribute rows, unwrapped) on events the account sees, newer than `since`,
  // deleted ones included: MISP's pull form, paged by 1000 until a short page (spec 8.2).
  Result<json::array> Proposals(std::int64_t since);
  // POST events/pushProposals/<event uuid> (spec 8.2): the receiver keeps a proposal unless it
  // holds an equal one at least as new. Returns how many it added; NotFound when it does not hold
  // the event.
  Result<std::int64_t> PushProposals(const std::string& event_uuid, const json::array& proposals);

  // Analyst data (spec 8.5). `type` is "Note", "Opinion" or "Relationship".
  // POST analyst_data/indexMinimal: {type: {uuid: modified}} of what the account sees, optionally
  // limited by creator organisation names ("!name" excludes).
  Result<std::map<std::string, std::map<std::string, std::string>>> AnalystDataIndex(
      const std::vector<std::string>& orgc_names = {});
  // GET analyst_data/index/<type>/uuid[]:...: the entries, 100 uuids a request, as MISP's pull asks.
  Result<json::array> AnalystData(const std::string& type, const std::vector<std::string>& uuids);
  // POST analyst_data/filterAnalystDataForPush: which of the offered entries the receiver wants.
  Result<std::map<std::string, std::map<std::string, std::string>>> FilterAnalystDataForPush(
      const std::map<std::string, std::map<std::string, std::string>>& offer);
  // POST analyst_data/pushAnalystData {"<type>": entry}: Refused (with MISP's message) when the
  // receiver imported nothing.
  Status PushAnalystData(const std::string& type, const json::object& entry);

  // Custom galaxy clusters (spec 8.3).
  // POST galaxy_clusters/restSearch {"minimal": 1, "custom": 1, ...}: uuid -> version of the
  // clusters the account sees; `published_only` adds "published": 1; `uuids` limits the search.
  Result<std::map<std::string, std::int64_t>> ClusterVersions(
      bool published_only, const std::optional<std::vector<std::string>>& uuids);
  // GET galaxy_clusters/view/<uuid>: the cluster object (inside {"GalaxyCluster": ...}).
  Result<json::object> ViewCluster(const std::string& uuid);
  // POST galaxies/pushCluster [{"GalaxyCluster": cluster}]: Refused with MISP's message when the
  // receiver imported nothing and failed.
  Status PushCluster(const json::object& cluster);

  HttpsTransport& transport() { return *transport_; }

 private:
  Result<HttpResponse> Call(const std::string& method, const std::string& target, const std::string& body,
                            bool idempotent, std::map<std::string, std::string> headers = {});
  Result<json::value> Json(const HttpResponse& r, const std::string& target);
  // A JSON answer streamed into the codec's reader as it arrives (large events, restSearch).
  Result<json::value> StreamJson(const std::string& method, const std::string& target,
                                 const std::string& body, HttpResponse* meta);
  Error ErrorFor(const HttpResponse& r, const std::string& target);
  // The answer of an add or edit of `sent`: the saved event with the same uuid, or an error.
  Result<WriteResult> CheckWriteAnswer(json::value body, const json::object& sent, const std::string& target);

  std::unique_ptr<HttpsTransport> transport_;
  misp::JsonLimits limits_;
};

}  // namespace sgsync::connector
