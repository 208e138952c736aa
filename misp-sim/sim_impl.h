// misp-sim/sim_impl.h: MispSim::Impl, the simulator's state and request handlers. Its members are
// defined by area: storage.cc (schema, stored shapes, access), events.cc (the events API),
// sightings.cc, sharing_groups.cc, other_data.cc (proposals, galaxy clusters, analyst data) and
// sim.cc (dispatch, control routes, the public MispSim). Private to misp-sim/.
#pragma once

#include <chrono>

#include "misp-sim/sim_internal.h"

namespace sgsync::sim {

struct MispSim::Impl {
  SimConfig config;
  std::unique_ptr<Database> db;
  std::mutex mu;
  std::vector<Fault> faults;
  std::vector<LoggedRequest> log;
  std::mt19937_64 rng{12345};
  // The MISP settings servers/getSetting answers (set with POST /_sim/settings); the others as
  // MISP 2.5.1's defaults.
  std::map<std::string, json::value> settings;
  // When the request being dispatched arrived (before any injected latency), and when each tag was
  // created: an add that arrived before the add creating one of its tags finished fails as MISP's
  // racing inserts do (TagRace, events.cc).
  std::chrono::steady_clock::time_point arrived;
  std::map<std::string, std::chrono::steady_clock::time_point> tag_born;

  // ---------------------------------------------------------------- storage

  Status CreateSchema();

  std::int64_t NextId(const char* counter);

  std::optional<User> UserByKey(const std::string& key);

  std::optional<std::pair<std::int64_t, std::string>> OrgByUuid(const std::string& uuid);

  // Organisation::captureOrg (spec 7.10): by uuid, created as an external org when unknown.
  // A name already taken by another organisation gets a "_NNNN" suffix (spec 12 case 53).
  std::int64_t CaptureOrg(const std::string& uuid, const std::string& name);

  std::vector<std::string> ServerUrls();

  // A loaded document may come without instance-local ids (the conformance cases are normalised
  // that way): a sharing group's server row then gets the id MISP stores for it, 0 for this
  // instance's own row (SharingGroupServer.server_id, spec 4.1), else its server record's id.
  void CompleteServerIds(json::object& holder);

  struct StoredEvent {
    std::int64_t id = 0;
    std::int64_t org_id = 0;
    json::object event;
  };

  std::optional<StoredEvent> LoadEvent(const std::string& uuid_or_id);

  // Sightings live in their own table (they are added without touching the event, spec 8.1);
  // SaveEvent moves any embedded `Attribute.Sighting[]` there and RenderFor puts them back.
  Status SaveEvent(StoredEvent&& e) { return SaveEvent(e); }
  Status SaveEvent(StoredEvent& e);

  // Attribute and object uuids belong to one event (spec 7.5, "Attribute uuid in another event").
  void RegisterElements(const StoredEvent& e);

  bool BelongsToAnotherEvent(std::string_view uuid, std::int64_t event_id);

  // Stores one sighting unless its uuid is known; `org_id` overrides the row's organisation.
  // Returns whether it was new.
  // `embedded`: captured with an event (Sighting::captureSightings: the Organisation by uuid decides
  // alone) rather than received through bulkSaveSightings.
  bool StoreSighting(const json::object& row, std::int64_t event_id, const json::object& attribute,
                     std::optional<std::int64_t> org_id, bool embedded = false);

  // What moves an event's sighting_timestamp (spec 8.1, trace-push-pull.jsonl seq 12-18): publishing
  // its sightings and saving received ones set it to the time of the save; sightings/add does not.
  void TouchSightingTimestamp(std::int64_t event_id, std::int64_t when);

  // The sightings of an event that `u` may see (policy 0, spec 8.1), keyed by attribute uuid, in the
  // shape events/view embeds them (events-view-uuid-admin.json).
  std::map<std::string, json::array> SightingsFor(std::int64_t event_id, bool owner, const User& u);

  // ---------------------------------------------------------------- MISP's stored shapes

  json::object OrgRef(std::int64_t id, bool with_local);

  // The organisation record users/view/me and sharing_groups/view show (users-view-me-*.json).
  json::object FullOrg(std::int64_t id);

  // Tag::captureTag (spec 5): by name, case-insensitive; a new tag takes the payload's colour and
  // exportable flag, an existing tag keeps its own (events-add-metadata-new.json).
  json::object CaptureTag(const json::object& in);
  // Real MISP 2.5.1 creates a tag inside the add that first names it; two adds naming the same new
  // tag at once both insert it and the second fails on the unique name ("SQLSTATE[23000]: Integrity
  // constraint violation: 1062 Duplicate entry '<tag>' for key 'name'", answered 500; seen in
  // MISP's error.log by bench/real_misp.py with four concurrent adds). True when the event written
  // names a tag that was created after this request arrived.
  bool TagRace(const json::object& e);

  void CanonicalTags(json::object& el);

  void CanonicalAttribute(json::object& a);

  // Completes an event to the shape MISP stores and serves (events-add-full-response.json,
  // events-view-sg-event.json): every column, the element arrays, full tag records.
  void CanonicalEvent(json::object& e, const User& creator);

  // ---------------------------------------------------------------- access (spec 3.1, 4.2)

  static bool GroupAuthorises(const json::object& element, const User& u);

  static bool EventVisible(const StoredEvent& e, const User& u);

  struct ViewOptions {
    bool include_deleted = false;
    bool exclude_local_tags = false;
    bool include_correlations = true;  // false with includeEventCorrelations:0 (MISP's pull form)
  };

  // The event as `u` sees it (spec 3.1, 5; JSONConverterTool::__cleanObjects drops objects left
  // without visible attributes).
  // Takes the event (a fresh parse per request) so rendering moves instead of copying it.
  json::object RenderFor(StoredEvent stored, const User& u, const ViewOptions& o);

  // ---------------------------------------------------------------- handlers

  HttpResponse GetVersion(const User& u);

  // users/view/me: the captures' field set (users-view-me-*.json); password and totp masked.
  HttpResponse UserMe(const User& u);

  // organisations/view/<id|uuid|name> (OrganisationsController::view in MISP 2.5.1): {"Organisation":
  // {... "local" ...}}, 404 "Invalid organisation" when unknown; HEAD answers 200 or 404 only.
  // Every organisation is visible (Organisation::canSee with MISP.showorg on).
  HttpResponse OrganisationView(const HttpRequest& req, const Route& r);
  // organisations/index[/scope:local|external|all] (OrganisationsController::index): a list of
  // {"Organisation": {...}}; the scope defaults to local.
  HttpResponse OrganisationIndex(const Route& r);
  // tags/index (TagsController::index, REST): {"Tag": [{id, name, colour, exportable, ...}]}.
  HttpResponse TagIndex();
  // servers/getSetting/<name> (ServersController::getSetting, site admins): {"name", "value", ...};
  // 404 "Setting <name> is invalid." for a name it does not know.
  HttpResponse GetSetting(const Route& r, const User& u);
  // event_blocklists/index and org_blocklists/index (REST): a list of rows with event_uuid /
  // org_uuid, as real MISP 2.5.1 answers them.
  HttpResponse BlocklistIndex(bool orgs);

  // events/index, minimal form (spec 7.1): visible, non-empty events; published and timestamp
  // filters; page/limit; X-Result-Count = total; ETag only when If-None-Match was sent.
  HttpResponse EventIndex(const HttpRequest& req, const User& u, const std::string& url);

  // A row of the plain events/index (events-index-plain.json): the event's columns, Org and Orgc
  // without `local`, the group's id/name/uuid, and EventTag rows with a short Tag.
  json::object IndexRow(const StoredEvent& e);

  // Objects MISP 2.5.1 would refuse to create (an empty `description`) are left out of an added
  // event, which is saved without them and answered with success (MispObject::$validate).
  void DropUncreatableObjects(json::object& e);

  std::int64_t SightingTimestamp(std::int64_t id);

  // Index filter values: a string or a list; `!` negates (spec 6.2).
  static std::pair<std::vector<std::string>, std::vector<std::string>> SplitFilter(const json::value* v);

  // `tag`/`tags`: event tags only, OR by default; no OR tag matching leaves nothing (spec 6.2).
  static bool MatchesTagFilter(const json::object& f, misp::EventView ev);

  // `org`: the creator organisation by id, uuid or name, case-insensitive (spec 6.2).
  bool MatchesOrgFilter(const json::object& f, misp::EventView ev);

  // MISP's index lists events with attributes or a live report (spec 7.1).
  static bool HasContent(const json::object& e);

  HttpResponse RestSearch(const HttpRequest& req, const User& u, const std::string& url);

  HttpResponse View(const HttpRequest& req, const Route& r, const User& u);

  HttpResponse InvalidJson(const std::string& url);

  // The body's event object, or an error response (malformed 405, empty 405).
  std::variant<json::object, HttpResponse> ReadEventBody(const HttpRequest& req, const std::string& url);

  HttpResponse SaveFail(const std::string& name, const std::string& url, json::value errors,
                        std::optional<std::int64_t> id = {});

  void AssignIds(json::object& e, std::int64_t event_id);

  static std::int64_t CountAttributes(const json::object& e);

  // Event::_add for a REST caller (spec 3.4, 7.5).
  HttpResponse Add(const HttpRequest& req, const Route& r, const User& u);

  // On add, non-deleted standalone attributes repeating a (value, type, category) are saved once
  // (spec 7.5, case 54).
  static void DedupeAttributes(json::object& e);

  // ------------------------------------------- sharing groups of a written event (capture.cc)
  // MISP 2.5.1's capture of the sharing groups an event arrives with, written from MISP's source
  // and independent of sgsync's receiver model (docs/misp-sim.md, "Receiving a sharing group").

  // events/add (Event::__captureObjects): every distribution-4 element's group captured; an
  // element whose group is not becomes distribution 0.
  void CaptureGroupsOnAdd(json::object& e, const User& u);
  // events/edit (Event::_edit, editAttribute, editObject): the error MISP answers when the event's
  // own group is refused; attributes and objects whose group is refused are dropped.
  std::optional<std::string> CaptureGroupsOnEdit(json::object& in, const User& u);
  // Event::captureSGForElement: false (and distribution 0) when the group is not captured.
  bool CaptureForElement(json::object& el, const User& u, bool with_server);
  // SharingGroup::captureSG: the local id of the group, or nothing when MISP returns false.
  // `with_server` is captureSG's `$server` argument, set when the event itself is being written.
  std::optional<std::int64_t> CaptureSharingGroup(const json::object& sg, const User& u, bool with_server);
  // SharingGroup::checkIfAuthorised.
  bool SharingGroupAccessible(std::int64_t id, const User& u);
  bool AuthorisedToSaveNewGroup(const json::object& sg, const User& u);
  std::int64_t OwnerOfNewGroup(const json::object& sg, const User& u);
  std::int64_t GroupOwnerId(const json::object& group);
  std::optional<std::int64_t> CaptureServerId(const json::object& server);
  bool CaptureGroupOrgs(json::object& group, const json::object& sg, const User& u);
  bool CaptureGroupServers(json::object& group, const json::object& sg);
  static void AddGroupOrg(json::object& group, std::int64_t org_id, const std::string& uuid,
                          const std::string& name, bool extend);
  void AttachGroup(json::object& el, std::int64_t id);

  // Merges `incoming` elements into `stored` by uuid: strictly newer timestamps win, new ones are
  // added, absent ones stay (spec 7.5).
  void MergeList(json::object& stored, json::object& incoming, const char* key, bool objects,
                 std::int64_t event_id);

  // Tags are only added; a tag sent with deleted: true is detached (spec 5).
  static void MergeTags(json::object& stored, json::object& incoming);

  HttpResponse Edit(const HttpRequest& req, const Route& r, const User& u);

  HttpResponse FilterForPush(const HttpRequest& req, const User& u, const std::string& url);

  HttpResponse Publish(const HttpRequest& req, const Route& r, const User& u);

  HttpResponse Delete(const HttpRequest& req, const Route& r, const User& u);

  // ---------------------------------------------------------------- sightings (spec 8.1)

  // The attribute with `uuid_or_id` in any event the user may see, with its event.
  std::optional<std::pair<StoredEvent, json::object>> FindAttribute(const std::string& key, const User& u);

  HttpResponse SightingAdd(const HttpRequest& req, const Route& r, const User& u);

  // sightings/bulkSaveSightings/<event uuid> (sightings-bulkSaveSightings*.json): new uuids stored,
  // attributed to their Organisation for a sync user, else to the caller's org (spec 11.14).
  HttpResponse BulkSaveSightings(const HttpRequest& req, const Route& r, const User& u);

  // The organisation a received sighting is saved under when the row does not name one to keep:
  // the writer's, unless a perm_sync writer sent an `org_id` (spec 8.1, `bulkSaveSightings`).
  static std::optional<std::int64_t> WriterOrg(const json::object& row, const User& u);

  // A new expiration sighting (`type` the string "2", compared as MISP does) replaces the writer's
  // organisation's earlier expirations on that attribute (spec 8.1, `Sighting::bulkSaveSightings`;
  // spec case 71). A known uuid is skipped before this, as in MISP.
  void ReplaceExpiration(const json::object& row, const std::string& attribute_uuid, const User& u);

  // sightings/filterSightingUuidsForPush/<event uuid>: the offered uuids already stored.
  HttpResponse FilterSightingsForPush(const HttpRequest& req, const Route& r, const User& u);

  // sightings/restSearch/event (MISP's pull form, sightings-restSearch-event*.json): the visible
  // sightings of the listed events; X-Result-Count is "0" whatever is returned, as in the captures.
  HttpResponse SightingsRestSearch(const HttpRequest& req, const Route& r, const User& u);

  HttpResponse PublishSightings(const HttpRequest& req, const Route& r, const User& u);

  // shadow_attributes/index (MISP's pull of proposals, shadow-attributes-index-pull-form.json):
  // proposals on visible events, newer than `timestamp:`, deleted ones only with deleted[]:1.
  HttpResponse ProposalIndex(const Route& r, const User& u);

  // events/pushProposals/<event uuid> (spec 8.2; EventsController::pushProposals, MISP/MISP
  // app/Controller/EventsController.php): a proposal equal to a stored one on (event_uuid, value,
  // type, category, to_ids) replaces it only when newer, else it is skipped; `id` is dropped and
  // `old_id` re-mapped by attribute uuid. Answers {"success", "message", "counter"}.
  HttpResponse PushProposals(const HttpRequest& req, const Route& r, const User& u);

  // ---------------------------------------------------------------- galaxy clusters (spec 8.3)
  // Custom clusters as MISP's GalaxyCluster model and GalaxiesController::pushCluster handle them
  // (MISP/MISP app/Model/GalaxyCluster.php, app/Model/Galaxy.php). Stored whole, with `org_uuid`
  // for the owner organisation.

  std::vector<json::object> Clusters();

  std::optional<json::object> ClusterByUuid(std::string_view uuid);

  void SaveCluster(const json::object& c);

  // GalaxyCluster::buildConditions: site admins see all; others their organisation's, 1-3, and 4
  // by group membership.
  static bool ClusterVisible(const json::object& c, const User& u);

  // galaxy_clusters/restSearch, the form MISP's sync sends ({"published", "minimal", "custom",
  // "uuid"}): {"response": [{"GalaxyCluster": {"uuid", "version"}}]}, the json export's envelope
  // (GalaxyCluster::fetchCustomClusterIdsFromServer reads that and the bare list alike).
  HttpResponse ClusterSearch(const HttpRequest& req, const Route& r, const User& u);

  // galaxy_clusters/view/<uuid>: {"GalaxyCluster": {...}} with its creator organisation.
  HttpResponse ClusterView(const Route& r, const User& u);

  // galaxies/pushCluster [{"GalaxyCluster": {...}}]: GalaxyCluster::captureCluster for each, the
  // receiving rules being the policy's (policy::AcceptCluster, sync/policy/other_data.h).
  HttpResponse PushCluster(const HttpRequest& req, const Route& r, const User& u);

  // ---------------------------------------------------------------- analyst data (spec 8.5)
  // Notes, opinions and relationships, as MISP's AnalystData model and AnalystDataController
  // (MISP/MISP app/Model/AnalystData.php, app/Controller/AnalystDataController.php) handle them.

  static constexpr const char* kAnalystTypes[] = {"Note", "Opinion", "Relationship"};

  static bool IsAnalystType(std::string_view t);

  // Who sees an entry (AnalystData::buildConditions): site admins and the owner organisation see
  // all; others as for event elements (1-3 and 5 visible, 4 by group membership).
  static bool AnalystVisible(const json::object& e, const User& u);

  std::vector<std::pair<std::string, json::object>> AnalystRows();

  // analyst_data/indexMinimal: {type: {uuid: modified}} of the visible entries, filtered by
  // `orgc_name` (names, "!name" to exclude); an empty PHP array, `[]`, when there are none
  // (analyst-data-indexMinimal.json).
  HttpResponse AnalystIndexMinimal(const HttpRequest& req, const User& u);

  // analyst_data/index/<Type>/uuid[]:<u>...: [{"<Type>": {...}}] of the visible entries asked for.
  HttpResponse AnalystIndex(const Route& r, const User& u);

  // analyst_data/filterAnalystDataForPush: of the offered {type: {uuid: modified}}, those this
  // instance lacks or holds locked with an older `modified` (isCandidateValidForPush).
  HttpResponse AnalystFilterForPush(const HttpRequest& req, const Route& r);

  std::optional<std::pair<std::string, json::object>> AnalystEntry(std::string_view uuid);

  struct CaptureCount {
    int imported = 0, ignored = 0, failed = 0;
    std::vector<std::string> errors;
  };

  // AnalystData::captureAnalystData for a REST writer: children first; the owner org is the
  // writer's; the creator org from `Orgc` (captured by uuid) or, for a writer without perm_sync,
  // the writer's own; an existing entry is replaced only when locked and strictly newer.
  void CaptureAnalyst(const std::string& type, json::object e, const User& u, CaptureCount& c);

  // analyst_data/pushAnalystData {"<Type>": {...}}: needs perm_sync and perm_analyst_data.
  HttpResponse AnalystPush(const HttpRequest& req, const Route& r, const User& u);

  // An organisation by name or uuid (Organisation::fetchOrg), "" when unknown.
  std::string OrgUuidNamed(const std::string& name);

  HttpResponse ApiDescription(const std::string& url, const std::string& name,
                              const std::string& description);

  HttpResponse Dispatch(const HttpRequest& req);

  std::int64_t OrgIdOf(std::string_view uuid);

  // sharing_groups/index row (sharing-groups-index.json).
  json::object GroupIndexRow(std::int64_t id, const json::object& sg, const User& u);

  // sharing_groups/view (sharing-groups-view-uuid.json).
  json::object GroupView(std::int64_t id, const json::object& sg);

  std::optional<std::pair<std::int64_t, json::object>> LoadGroup(const std::string& key);

  Status SaveGroup(std::int64_t id, const json::object& sg);

  // sharing_groups/add over REST goes through captureSG: local false, the creator org not made a
  // member, one row for this instance when the group is not roaming (spec 4.1, 11.27;
  // sharing-groups-add-rest.json).
  HttpResponse GroupAdd(const HttpRequest& req, const User& u, const std::string& url);

  // sharing_groups/addOrg/<group>/<org> and addServer/<group>/<server> (openapi.yaml,
  // AddOrganisationToSharingGroupResponse / AddServerToSharingGroupResponse).
  HttpResponse GroupAddMember(const Route& r, const User& u, bool server);

  HttpResponse SharingGroups(const HttpRequest& req, const Route& r, const User& u);
};

}  // namespace sgsync::sim
