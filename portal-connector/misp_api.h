// portal-connector/misp_api.h: what the sync engine needs of a MISP (its port to either end of a
// link), and the documents those calls answer with.
//
// MispClient (portal-connector/misp_client.h) implements it over HTTPS with MISP 2.5.1's own sync
// requests; every call's statuses and errors are described there. The engine (sync/engine) holds a
// MispApi for the member's MISP and one for the Portal and knows nothing of HTTP.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "misp/api.h"
#include "misp/event.h"
#include "misp/saved_event.h"

namespace sgsync::connector {

namespace json = boost::json;

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

// The events/restSearch filter under which events come back as ViewEvent(form) shows them:
// `deleted: [0, 1]`, `excludeGalaxy: 1`, and `excludeLocalTags` always said. Unsaid, MISP 2.5.1
// leaves local tags out for a sync user who is not a site admin, and keeps them for anyone else
// (`Event::fetchEvent`; docs/connector.md).
json::object RestSearchFilter(const ViewForm& form);

// What an add or edit did.
struct WriteResult {
  bool written = false;
  std::string existing_id;  // an add of a known uuid: the remote's id from Location (spec 7.2)
  // What MISP answered it saved: the event's uuid and id and its elements' uuids, read as the answer
  // arrived (misp/saved_event.h), never the answer's tree.
  misp::SavedEvent saved;
};

// What a MISP holds about an event without its content (restSearch metadata:1).
// What galaxies/pushCluster did with a custom galaxy cluster (spec 8.3).
enum class ClusterPush {
  kSaved,
  // The receiver keeps what it has, and would keep it whatever is sent again: its own copy (created
  // there, not received by sync), a version that is not newer, or a default cluster
  // (GalaxyCluster::captureCluster's refusals). Not a failure: nothing changes by retrying.
  kKeptByReceiver,
};

struct EventMetadata {
  std::string uuid;
  std::int64_t timestamp = 0;
  bool locked = false;    // received through sync (spec 7.7); false: created on that MISP
  std::string orgc_uuid;  // the creator organisation
  std::string org_id;     // that MISP's own id of the owner organisation (a proposal row needs it)
  std::int64_t attribute_count = 0;  // as that MISP counts them (what sizes the engine's batches)
};

// Every call is one or more requests to the MISP; an expected failure (the MISP down, refusing, or
// answering what it should not) is an Error value, never an exception. Implementations are
// thread-safe: a run calls them from up to max_in_flight threads.
class MispApi {
 public:
  virtual ~MispApi() = default;

  // POST /events/index with If-None-Match (`etag`, or "" to ask for one); `filter` as
  // policy::PullIndexFilter builds it.
  virtual Result<IndexPage> EventIndex(const json::object& filter, const std::string& etag) = 0;
  // The documents share the answer's arena (EventDocument::arena()): an event taken out of one
  // (TakeEvent) is kept with it.
  virtual Result<std::vector<misp::EventDocument>> RestSearch(const json::object& filter,
                                                              std::int64_t* total = nullptr) = 0;
  // nullopt when the remote does not serve it (404: missing or hidden alike).
  virtual Result<std::optional<misp::EventDocument>> ViewEvent(const std::string& uuid,
                                                               const ViewForm& form) = 0;
  // POST events/add and events/edit/<uuid or id>, answered with the whole saved event, of which
  // WriteResult keeps the element uuids the engine compares with what it sent
  // (misp::ElementsMissingFrom). A large event's body is streamed out, not held as text.
  // An add or edit is counted as written only when the answer is the saved event itself: a 200
  // whose body is an error, or another event than the one sent, is kRefused / kCorruption
  // (docs/security.md).
  virtual Result<WriteResult> AddEvent(const json::object& event) = 0;
  // `not_newer` when the remote's copy is as new or newer (spec 7.5).
  virtual Result<WriteResult> EditEvent(const std::string& uuid_or_id, const json::object& event) = 0;
  // The events among `uuids` that the MISP holds, by lower-case uuid, with what decides whether
  // sync may overwrite them; one restSearch with metadata:1. Rows for other uuids are ignored.
  virtual Result<std::map<std::string, EventMetadata>> EventsMetadata(
      const std::vector<std::string>& uuids) = 0;
  // POST events/delete/<id> (events-delete.json): the event is deleted and its uuid blocklisted by
  // the MISP (spec 7.6). Takes the uuid: the local id is looked up with events/view first.
  // NotFound when the MISP does not serve the event.
  virtual Status DeleteEvent(const std::string& uuid) = 0;
  virtual Result<std::vector<std::string>> FilterEventIdsForPush(
      const std::vector<std::pair<std::string, std::int64_t>>& offer) = 0;
  virtual Result<json::array> SightingsForEvents(const std::vector<std::string>& event_uuids) = 0;
  virtual Result<std::vector<std::string>> KnownSightings(const std::string& event_uuid,
                                                          const std::vector<std::string>& sighting_uuids) = 0;
  virtual Result<json::value> SaveSightings(const std::string& event_uuid, const json::array& sightings) = 0;
  // Proposals (ShadowAttribute rows, unwrapped) on events the account sees, newer than `since`,
  // deleted ones included: MISP's pull form, paged by 1000 until a short page (spec 8.2).
  virtual Result<json::array> Proposals(std::int64_t since) = 0;
  // POST events/pushProposals/<event uuid> (spec 8.2): the receiver keeps a proposal unless it
  // holds an equal one at least as new. Returns how many it added; NotFound when it does not hold
  // the event.
  virtual Result<std::int64_t> PushProposals(const std::string& event_uuid, const json::array& proposals) = 0;
  // Analyst data (spec 8.5). `type` is "Note", "Opinion" or "Relationship".
  // POST analyst_data/indexMinimal: {type: {uuid: modified}} of what the account sees, optionally
  // limited by creator organisation names ("!name" excludes).
  virtual Result<std::map<std::string, std::map<std::string, std::string>>> AnalystDataIndex(
      const std::vector<std::string>& orgc_names = {}) = 0;
  // GET analyst_data/index/<type>/uuid[]:...: the entries, 100 uuids a request, as MISP's pull asks.
  virtual Result<json::array> AnalystData(const std::string& type, const std::vector<std::string>& uuids) = 0;
  // POST analyst_data/filterAnalystDataForPush: which of the offered entries the receiver wants.
  virtual Result<std::map<std::string, std::map<std::string, std::string>>> FilterAnalystDataForPush(
      const std::map<std::string, std::map<std::string, std::string>>& offer) = 0;
  // POST analyst_data/pushAnalystData {"<type>": entry}: Refused (with MISP's message) when the
  // receiver imported nothing.
  virtual Status PushAnalystData(const std::string& type, const json::object& entry) = 0;
  // Custom galaxy clusters (spec 8.3).
  // POST galaxy_clusters/restSearch {"minimal": 1, "custom": 1, ...}: uuid -> version of the
  // clusters the account sees; `published_only` adds "published": 1; `uuids` limits the search.
  virtual Result<std::map<std::string, std::int64_t>> ClusterVersions(
      bool published_only, const std::optional<std::vector<std::string>>& uuids) = 0;
  // GET galaxy_clusters/view/<uuid>: the cluster object (inside {"GalaxyCluster": ...}).
  virtual Result<json::object> ViewCluster(const std::string& uuid) = 0;
  // POST galaxies/pushCluster [{"GalaxyCluster": cluster}]: Refused with MISP's message when the
  // receiver imported nothing and failed for another reason than keeping its own copy.
  virtual Result<ClusterPush> PushCluster(const json::object& cluster) = 0;
};

}  // namespace sgsync::connector
