#include "misp-sim/sim.h"

#include <openssl/rand.h>

#include <thread>

#include "misp-sim/generator.h"
#include "misp-sim/sim_impl.h"

namespace sgsync::sim {

auto MispSim::Impl::GetVersion(const User& u) -> HttpResponse {
  json::object o;
  o["version"] = "2.5.1";
  o["pymisp_recommended_version"] = "2.5.1";
  o["perm_sync"] = u.perm_sync();
  o["perm_sighting"] = true;
  o["perm_galaxy_editor"] = u.perm("perm_galaxy_editor");
  o["perm_analyst_data"] = u.perm("perm_analyst_data");
  o["uuid"] = config.instance_uuid;
  o["request_encoding"] = json::array{"gzip"};
  o["filter_sightings"] = true;
  return JsonResponse(200, o);
}

auto MispSim::Impl::UserMe(const User& u) -> HttpResponse {
  json::object user{{"id", std::to_string(u.id)},
                    {"password", "*****"},
                    {"org_id", std::to_string(u.org_id)},
                    {"email", u.email},
                    {"autoalert", false},
                    {"invited_by", "1"},
                    {"gpgkey", ""},
                    {"certif_public", ""},
                    {"nids_sid", "0"},
                    {"termsaccepted", false},
                    {"newsread", "0"},
                    {"role_id", RecordOf(u.role).id},
                    {"change_pw", false},
                    {"contactalert", false},
                    {"disabled", false},
                    {"expiration", nullptr},
                    {"current_login", "0"},
                    {"last_login", "0"},
                    {"force_logout", false},
                    {"date_created", "0"},
                    {"date_modified", "0"},
                    {"sub", nullptr},
                    {"external_auth_required", false},
                    {"external_auth_key", ""},
                    {"last_api_access", "0"},
                    {"notification_daily", false},
                    {"notification_weekly", false},
                    {"notification_monthly", false},
                    {"totp", "*****"},
                    {"hotp_counter", nullptr},
                    {"last_pw_change", "0"},
                    {"totp_is_set", "0"}};
  return JsonResponse(200, json::object{{"User", user},
                                        {"Role", RoleJson(u.role)},
                                        {"UserSetting", json::array()},
                                        {"Organisation", FullOrg(u.org_id)}});
}

auto MispSim::Impl::OrganisationView(const HttpRequest& req, const Route& r) -> HttpResponse {
  const std::string url = r.path;
  std::string key = r.segments.size() > 2 ? r.segments[2] : "";
  auto q = db->Prepare(
      "SELECT id FROM orgs WHERE CAST(id AS TEXT) = ?1 OR uuid = ?1 COLLATE NOCASE OR name = ?1 COLLATE "
      "NOCASE");
  (*q)->Bind(1, key);
  bool found = *(*q)->Step();
  if (req.method == "HEAD") {
    HttpResponse h;
    h.status = found ? 200 : 404;
    return h;
  }
  if (!found) return ErrorResponse(404, "Invalid organisation", url);
  json::object org = FullOrg((*q)->Int(0));
  org.erase("landingpage");
  org["user_count"] = 0;
  return JsonResponse(200, json::object{{"Organisation", std::move(org)}});
}

auto MispSim::Impl::OrganisationIndex(const Route& r) -> HttpResponse {
  std::string scope = r.Has("scope", "all") ? "all" : r.Has("scope", "external") ? "external" : "local";
  auto q = db->Prepare("SELECT id, local FROM orgs ORDER BY id");
  json::array out;
  while (*(*q)->Step()) {
    bool local = (*q)->Int(1) != 0;
    if ((scope == "local" && !local) || (scope == "external" && local)) continue;
    json::object org = FullOrg((*q)->Int(0));
    org.erase("landingpage");
    out.push_back(json::object{{"Organisation", std::move(org)}});
  }
  return JsonResponse(200, out);
}

auto MispSim::Impl::TagIndex() -> HttpResponse {
  auto q = db->Prepare("SELECT id, name, colour, exportable FROM tags ORDER BY id");
  json::array tags;
  while (*(*q)->Step()) {
    tags.push_back(json::object{{"id", std::to_string((*q)->Int(0))},
                                {"name", (*q)->Text(1)},
                                {"colour", (*q)->Text(2)},
                                {"exportable", (*q)->Int(3) != 0},
                                {"org_id", "0"},
                                {"user_id", "0"},
                                {"hide_tag", false},
                                {"numerical_value", nullptr},
                                {"is_galaxy", false},
                                {"is_custom_galaxy", false},
                                {"local_only", false},
                                {"favourite", false},
                                {"count", 0},
                                {"attribute_count", 0}});
  }
  return JsonResponse(200, json::object{{"Tag", std::move(tags)}});
}

auto MispSim::Impl::GetSetting(const Route& r, const User& u) -> HttpResponse {
  const std::string url = r.path;
  if (!u.site_admin()) return ErrorResponse(403, "You do not have permission to do that.", url);
  std::string name = r.segments.size() > 2 ? r.segments[2] : "";
  static const std::map<std::string, std::pair<std::string, json::value>> kKnown = {
      {"MISP.host_org_id", {"numeric", json::value(1)}},
      {"MISP.enable_synchronisation_filtering_on_type", {"boolean", json::value(false)}},
      {"Plugin.Sightings_policy", {"numeric", json::value(0)}},
      {"Plugin.Sightings_anonymise", {"boolean", json::value(false)}},
      {"Plugin.Sightings_anonymise_as", {"numeric", json::value(0)}},
      {"MISP.external_baseurl", {"string", json::value("")}},
  };
  auto known = kKnown.find(name);
  if (known == kKnown.end()) return ErrorResponse(404, "Setting " + name + " is invalid.", url);
  json::value value = known->second.second;
  if (name == "MISP.external_baseurl") value = config.base_url;
  if (auto set = settings.find(name); set != settings.end()) value = set->second;
  return JsonResponse(200, json::object{{"level", 0},
                                        {"description", ""},
                                        {"value", value},
                                        {"type", known->second.first},
                                        {"name", name}});
}

auto MispSim::Impl::BlocklistIndex(bool orgs) -> HttpResponse {
  json::array out;
  if (!orgs) {
    auto q = db->Prepare("SELECT rowid, uuid FROM event_blocklist ORDER BY rowid");
    while (*(*q)->Step()) {
      out.push_back(json::object{{"id", std::to_string((*q)->Int(0))},
                                 {"event_uuid", (*q)->Text(1)},
                                 {"created", "2026-11-27 18:44:53"},
                                 {"event_info", ""},
                                 {"comment", ""},
                                 {"event_orgc", ""}});
    }
  } else if (auto set = settings.find("_org_blocklist"); set != settings.end() && set->second.is_array()) {
    std::int64_t id = 0;
    for (const auto& uuid : set->second.get_array()) {
      out.push_back(json::object{{"id", std::to_string(++id)},
                                 {"org_uuid", uuid},
                                 {"created", "2026-11-27 18:44:53"},
                                 {"org_name", ""},
                                 {"comment", ""}});
    }
  }
  return JsonResponse(200, out);
}

auto MispSim::Impl::ApiDescription(const std::string& url, const std::string& name,
                                   const std::string& description) -> HttpResponse {
  return JsonResponse(200, json::object{{"name", name},
                                        {"description", description},
                                        {"mandatory_fields", json::array{"info"}},
                                        {"optional_fields", json::array()},
                                        {"url", url}});
}

auto MispSim::Impl::Dispatch(const HttpRequest& req) -> HttpResponse {
  Route r = ParseRoute(req.target);
  const std::string url = r.path;
  std::string key = req.Header("authorization");
  std::optional<User> user = key.empty() ? std::nullopt : UserByKey(key);
  if (!user) {
    return ErrorResponse(
        403,
        "Authentication failed. Please make sure you pass the API key of an API enabled user along in the "
        "Authorization header.",
        url);
  }
  const User& u = *user;
  std::string controller = r.segments.size() > 0 ? r.segments[0] : "";
  std::string action = r.segments.size() > 1 ? r.segments[1] : "";
  if (controller == "servers" && action == "getVersion") return GetVersion(u);
  if (controller == "users" && action == "view" && r.segments.size() > 2 && r.segments[2] == "me")
    return UserMe(u);
  if (controller == "organisations" && action == "view") return OrganisationView(req, r);
  if (controller == "organisations" && action == "index") return OrganisationIndex(r);
  if (controller == "tags" && action == "index") return TagIndex();
  if (controller == "servers" && action == "getSetting") return GetSetting(r, u);
  if (controller == "event_blocklists" && action == "index") return BlocklistIndex(false);
  if (controller == "org_blocklists" && action == "index") return BlocklistIndex(true);
  if (controller == "events") {
    if (action == "index") return EventIndex(req, u, url);
    if (action == "restSearch") return RestSearch(req, u, url);
    if (action == "view") return View(req, r, u);
    if (action == "add") {
      if (req.method == "GET") {
        return ApiDescription(
            "/events/add", "/events/add API description",
            "POST a MISP Event JSON to this API to create an Event. Contained objects can also be "
            "included (such as attributes, objects, tags, etc).");
      }
      return Add(req, r, u);
    }
    if (action == "edit") return Edit(req, r, u);
    if (action == "filterEventIdsForPush") return FilterForPush(req, u, url);
    if (action == "publish") return Publish(req, r, u);
    if (action == "delete") return Delete(req, r, u);
  }
  if (controller == "eventReports" && action == "add" && req.method == "GET") {
    return JsonResponse(
        200, json::object{
                 {"name", "/event_reports/add API description"},
                 {"description", "POST a report in JSON format to create a report for the provided event"},
                 {"mandatory_fields", json::array{"name"}},
                 {"optional_fields", json::array{"distribution", "content"}},
                 {"url", "/event_reports/add"}});
  }
  if (controller == "sharing_groups") return SharingGroups(req, r, u);
  if (controller == "sightings") {
    if (action == "add") return SightingAdd(req, r, u);
    if (action == "bulkSaveSightings") return BulkSaveSightings(req, r, u);
    if (action == "filterSightingUuidsForPush") return FilterSightingsForPush(req, r, u);
    if (action == "restSearch") return SightingsRestSearch(req, r, u);
  }
  if (controller == "events" && action == "publishSightings") return PublishSightings(req, r, u);
  if (controller == "shadow_attributes" && action == "index") return ProposalIndex(r, u);
  if (controller == "events" && action == "pushProposals") return PushProposals(req, r, u);
  if (controller == "galaxy_clusters" && action == "restSearch") return ClusterSearch(req, r, u);
  if (controller == "galaxy_clusters" && action == "view") return ClusterView(r, u);
  if (controller == "galaxies" && action == "pushCluster") return PushCluster(req, r, u);
  if (controller == "analyst_data") {
    if (action == "indexMinimal" && req.method == "POST") return AnalystIndexMinimal(req, u);
    if (action == "index") return AnalystIndex(r, u);
    if (action == "filterAnalystDataForPush") return AnalystFilterForPush(req, r);
    if (action == "pushAnalystData") return AnalystPush(req, r, u);
  }
  return ErrorResponse(403, "You do not have permission to use this functionality.", url);
}

auto MispSim::Impl::OrgIdOf(std::string_view uuid) -> std::int64_t {
  auto o = OrgByUuid(std::string(uuid));
  return o ? o->first : 0;
}

std::string RandomKey() { return RandomHex(20); }

MispSim::MispSim(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MispSim::~MispSim() = default;

Result<std::unique_ptr<MispSim>> MispSim::Create(const SimConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  if (impl->config.instance_uuid.empty()) impl->config.instance_uuid = RandomUuid();
  if (impl->config.org_uuid.empty()) impl->config.org_uuid = RandomUuid();
  sqlite::OpenOptions open;
  open.synchronous_full = false;  // a test server: speed over power-loss safety
  SGSYNC_TRY(impl->db, Database::Open(config.db_path, open));
  SGSYNC_TRY_STATUS(impl->CreateSchema());
  std::unique_ptr<MispSim> sim(new MispSim(std::move(impl)));
  SGSYNC_TRY(auto org, sim->AddOrg(config.org_name, sim->impl_->config.org_uuid, true));
  (void)org;
  if (!config.admin_key.empty()) {
    SGSYNC_TRY(auto key, sim->AddUser("admin@" + config.org_name, sim->impl_->config.org_uuid,
                                      Role::kSiteAdmin, config.admin_key));
    (void)key;
  }
  return sim;
}

Result<std::int64_t> MispSim::AddOrg(const std::string& name, const std::string& uuid, bool local) {
  std::lock_guard lock(impl_->mu);
  if (auto o = impl_->OrgByUuid(uuid)) return o->first;
  SGSYNC_TRY(auto s, impl_->db->Prepare("INSERT INTO orgs (uuid, name, local) VALUES (?, ?, ?)"));
  SGSYNC_TRY_STATUS(s->Bind(1, uuid).Bind(2, name).Bind(3, static_cast<std::int64_t>(local)).Run());
  return impl_->db->LastInsertId();
}

Result<std::string> MispSim::AddUser(const std::string& email, const std::string& org_uuid, Role role,
                                     const std::string& key) {
  std::lock_guard lock(impl_->mu);
  auto org = impl_->OrgByUuid(org_uuid);
  if (!org) return Fail(ErrorCode::kNotFound, "no organisation " + org_uuid);
  std::string api_key = key.empty() ? RandomHex(20) : key;
  SGSYNC_TRY(auto s,
             impl_->db->Prepare("INSERT INTO users (email, org_id, role, api_key) VALUES (?, ?, ?, ?)"));
  const char* role_name = RecordOf(role).db_name;
  SGSYNC_TRY_STATUS(s->Bind(1, email).Bind(2, org->first).Bind(3, role_name).Bind(4, api_key).Run());
  return api_key;
}

Result<std::int64_t> MispSim::AddServer(const std::string& url, const std::string& name) {
  std::lock_guard lock(impl_->mu);
  SGSYNC_TRY(auto s, impl_->db->Prepare("INSERT INTO servers (url, name) VALUES (?, ?)"));
  SGSYNC_TRY_STATUS(s->Bind(1, url).Bind(2, name).Run());
  return impl_->db->LastInsertId();
}

Result<std::int64_t> MispSim::AddSharingGroup(const std::string& text) {
  std::lock_guard lock(impl_->mu);
  SGSYNC_TRY(json::value v, misp::ParseJson(text));
  if (!v.is_object()) return Fail(ErrorCode::kInvalidArgument, "expected a sharing group object");
  json::object sg = v.as_object();
  // The index form nests the group and keeps the member lists beside it.
  if (sg.contains("SharingGroup") && sg["SharingGroup"].is_object()) {
    json::object inner = sg["SharingGroup"].as_object();
    for (const char* k : {"SharingGroupOrg", "SharingGroupServer", "Organisation"}) {
      if (sg.contains(k)) inner[k] = sg[k];
    }
    sg = std::move(inner);
  }
  std::string uuid(StringOr(sg, "uuid"));
  if (!misp::IsUuid(uuid)) return Fail(ErrorCode::kInvalidArgument, "the sharing group needs a uuid", "uuid");
  std::string id_text(StringOr(sg, "id"));
  SGSYNC_TRY(auto s, impl_->db->Prepare("INSERT INTO sharing_groups (id, uuid, json) VALUES (?, ?, ?) "
                                        "ON CONFLICT (uuid) DO UPDATE SET json = excluded.json"));
  if (IsDigits(id_text)) {
    s->Bind(1, static_cast<std::int64_t>(std::stoll(id_text)));
  } else {
    s->BindNull(1);
  }
  SGSYNC_TRY_STATUS(s->Bind(2, uuid).Bind(3, json::serialize(sg)).Run());
  return impl_->db->LastInsertId();
}

Result<std::int64_t> MispSim::LoadEvent(const std::string& text) {
  std::lock_guard lock(impl_->mu);
  SGSYNC_TRY(json::value v, misp::ParseJson(text));
  if (v.is_object() && v.as_object().contains("Event")) v = v.as_object()["Event"];
  if (!v.is_object()) return Fail(ErrorCode::kInvalidArgument, "expected an event object");
  json::object e = std::move(v.as_object());
  misp::EventView ev(e);
  std::string owner(ev.org_uuid());
  if (owner.empty()) owner = impl_->config.org_uuid;
  const json::value* org = e.if_contains("Org");
  std::string org_name =
      org != nullptr && org->is_object() ? std::string(StringOr(org->as_object(), "name")) : owner;
  std::int64_t org_id = impl_->CaptureOrg(owner, org_name);
  std::string id_text(StringOr(e, "id"));
  std::int64_t id = IsDigits(id_text) ? std::stoll(id_text) : impl_->NextId("Event");
  // Keep the id counters ahead of loaded ids so later adds do not collide.
  SGSYNC_TRY(auto up, impl_->db->Prepare("INSERT INTO counters (name, value) VALUES ('Event', ?) ON CONFLICT "
                                         "(name) DO UPDATE SET value = max(value, excluded.value)"));
  SGSYNC_TRY_STATUS(up->Bind(1, id).Run());
  impl_->AssignIds(e, id);
  impl_->CompleteServerIds(e);
  SGSYNC_TRY_STATUS(impl_->SaveEvent(Impl::StoredEvent{id, org_id, std::move(e)}));
  return id;
}

Status MispSim::LoadProposal(const std::string& text) {
  std::lock_guard lock(impl_->mu);
  SGSYNC_TRY(json::value v, misp::ParseJson(text));
  if (v.is_object() && v.as_object().contains("ShadowAttribute")) v = v.as_object()["ShadowAttribute"];
  if (!v.is_object()) return Fail(ErrorCode::kInvalidArgument, "expected a proposal object");
  json::object& row = v.as_object();
  auto e = impl_->LoadEvent(std::string(StringOr(row, "event_uuid")));
  if (!e) return Fail(ErrorCode::kNotFound, "the proposal's event is not stored", "event_uuid");
  // A proposal made on a MISP is stored with its proposer's organisation and the event's owner by
  // their local ids (shadow_attributes.org_id and event_org_id are NOT NULL, db_schema.json), and
  // its index serves them; a row given without them is completed so.
  if (!row.contains("org_id")) {
    const json::value* org = row.if_contains("Org");
    std::string uuid(org != nullptr && org->is_object() ? StringOr(org->as_object(), "uuid") : StringOr(row, "org_uuid"));
    std::string name(org != nullptr && org->is_object() ? StringOr(org->as_object(), "name") : "");
    if (uuid.empty()) uuid = impl_->config.org_uuid, name = impl_->config.org_name;  // made here
    row["org_id"] = std::to_string(impl_->CaptureOrg(uuid, name));
  }
  if (!row.contains("event_org_id")) row["event_org_id"] = std::string(StringOr(e->event, "orgc_id"));
  SGSYNC_TRY(auto s,
             impl_->db->Prepare("INSERT INTO proposals (event_id, timestamp, json) VALUES (?, ?, ?)"));
  return s->Bind(1, e->id).Bind(2, IntOr(row, "timestamp", 0)).Bind(3, json::serialize(v)).Run();
}

void MispSim::set_base_url(const std::string& url) {
  std::lock_guard lock(impl_->mu);
  impl_->config.base_url = url;
}

void MispSim::AddFault(const Fault& fault) {
  std::lock_guard lock(impl_->mu);
  impl_->faults.push_back(fault);
}

void MispSim::ClearFaults() {
  std::lock_guard lock(impl_->mu);
  impl_->faults.clear();
}

std::vector<LoggedRequest> MispSim::RequestLog() {
  std::lock_guard lock(impl_->mu);
  return impl_->log;
}

void MispSim::ClearRequestLog() {
  std::lock_guard lock(impl_->mu);
  impl_->log.clear();
}

Status MispSim::Reset() {
  std::lock_guard lock(impl_->mu);
  return impl_->db->Exec(
      "DELETE FROM events; DELETE FROM sharing_groups; DELETE FROM event_blocklist; DELETE FROM sightings; "
      "DELETE FROM proposals; DELETE FROM analyst_data; DELETE FROM clusters;");
}

Result<std::vector<std::string>> MispSim::Seed(int events, int attributes, int objects, int distribution,
                                               std::uint64_t seed, int attribute_distribution) {
  std::lock_guard lock(impl_->mu);
  auto org = impl_->OrgByUuid(impl_->config.org_uuid);
  std::vector<std::string> uuids;
  for (int i = 0; i < events; ++i) {
    GeneratedEventShape shape;
    shape.attributes = attributes;
    shape.objects = objects;
    shape.event_distribution = distribution;
    shape.attribute_distribution = attribute_distribution;
    shape.seed = seed * 1000003 + static_cast<std::uint64_t>(i);
    json::object e = json::parse(GenerateEventJson(shape)).as_object()["Event"].as_object();
    std::int64_t id = impl_->NextId("Event");
    e["Org"] = json::object{
        {"id", std::to_string(org->first)}, {"name", org->second}, {"uuid", impl_->config.org_uuid}};
    e["Orgc"] = e["Org"];
    impl_->AssignIds(e, id);
    misp::WriteInt(e, "attribute_count", Impl::CountAttributes(e));
    uuids.emplace_back(StringOr(e, "uuid"));
    SGSYNC_TRY_STATUS(impl_->SaveEvent(Impl::StoredEvent{id, org->first, std::move(e)}));
  }
  return uuids;
}

namespace {

// An answer that announces its whole body and sends only `keep` bytes of it, then closes: what a
// peer dying mid-answer or a proxy cutting it short looks like (Fault.reset_after_bytes, truncate).
HttpResponse BrokenAnswer(const HttpResponse& full, std::size_t keep) {
  std::string raw = "HTTP/1.1 " + std::to_string(full.status) + " \r\n";
  for (const auto& [k, v] : full.headers) raw += k + ": " + v + "\r\n";
  raw += "Content-Length: " + std::to_string(full.body.size()) + "\r\nConnection: close\r\n\r\n";
  raw.append(full.body, 0, keep);
  HttpResponse out;
  out.status = full.status;
  out.raw = std::move(raw);
  return out;
}

HttpResponse ControlError(int status, const std::string& what) {
  return JsonResponse(status, json::object{{"error", what}});
}

Result<Fault> FaultFromJson(const json::value& v) {
  if (!v.is_object()) return Fail(ErrorCode::kInvalidArgument, "expected a fault object");
  const json::object& o = v.as_object();
  Fault f;
  f.route = std::string(StringOr(o, "route"));
  f.latency_ms = static_cast<int>(IntOr(o, "latency_ms", 0));
  f.jitter_ms = static_cast<int>(IntOr(o, "jitter_ms", 0));
  if (const json::value* r = o.if_contains("error_rate"))
    f.error_rate = r->is_double() ? r->as_double() : static_cast<double>(IntOr(r, 0));
  f.error_status = static_cast<int>(IntOr(o, "error_status", 503));
  f.retry_after_s = static_cast<int>(IntOr(o, "retry_after", 0));
  if (o.contains("reset_after_bytes"))
    f.reset_after_bytes = static_cast<std::size_t>(IntOr(o, "reset_after_bytes", 0));
  f.truncate_body = misp::BoolOr(o, "truncate", false);
  f.stall_ms = static_cast<int>(IntOr(o, "stall_ms", 0));
  f.remaining = static_cast<int>(IntOr(o, "count", 0));
  if (const json::value* r = o.if_contains("rate"))
    f.rate = r->is_double() ? r->as_double() : static_cast<double>(IntOr(r, 1));
  return f;
}

}  // namespace

HttpResponse MispSim::Handle(const HttpRequest& request) {
  const auto arrived = std::chrono::steady_clock::now();
  Route route = ParseRoute(request.target);
  if (route.path.rfind("/_sim/", 0) == 0) return HandleControl(request, route.path.substr(6));
  // Pick the fault (if any) under the lock, wait outside it, answer under it again.
  std::optional<Fault> fault;
  double draw = 0;
  int jitter = 0;
  {
    std::lock_guard lock(impl_->mu);
    for (auto it = impl_->faults.begin(); it != impl_->faults.end(); ++it) {
      if (route.path.rfind(it->route, 0) != 0) continue;
      if (it->rate < 1.0 && std::uniform_real_distribution<double>(0, 1)(impl_->rng) >= it->rate) continue;
      fault = *it;
      if (it->remaining > 0 && --it->remaining == 0) impl_->faults.erase(it);
      break;
    }
    draw = std::uniform_real_distribution<double>(0, 1)(impl_->rng);
    if (fault && fault->jitter_ms > 0)
      jitter = std::uniform_int_distribution<int>(0, fault->jitter_ms)(impl_->rng);
  }
  if (fault) {
    int wait = fault->stall_ms + fault->latency_ms + jitter;
    if (wait > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait));
  }
  HttpResponse response;
  if (fault && fault->error_rate > 0 && draw < fault->error_rate) {
    if (fault->error_status == 429) {
      response = ErrorResponse(429, "Too Many Requests", route.path);
      response.headers.emplace_back("Retry-After", std::to_string(fault->retry_after_s));
    } else {
      response = ErrorResponse(fault->error_status, "An Internal Error Has Occurred.", route.path);
    }
  } else {
    std::lock_guard lock(impl_->mu);
    impl_->arrived = arrived;
    response = impl_->Dispatch(request);
  }
  if (fault && (fault->reset_after_bytes || fault->truncate_body)) {
    std::size_t keep = fault->truncate_body ? response.body.size() / 2
                                            : std::min(*fault->reset_after_bytes, response.body.size());
    response = BrokenAnswer(response, keep);
  }
  std::lock_guard lock(impl_->mu);
  LoggedRequest entry{request.method, request.target, request.headers, request.body.substr(0, 1u << 20),
                      response.status};
  if (entry.headers.count("authorization")) entry.headers["authorization"] = "REDACTED";
  impl_->log.push_back(std::move(entry));
  return response;
}

HttpResponse MispSim::HandleControl(const HttpRequest& request, const std::string& what) {
  if (impl_->config.control_token.empty() || request.Header("x-sim-token") != impl_->config.control_token) {
    return ControlError(403, "the control routes need the X-Sim-Token header");
  }
  json::value body;
  if (!request.body.empty()) {
    auto parsed = misp::ParseJson(request.body);
    if (!parsed.ok()) return ControlError(400, parsed.error().ToString());
    body = std::move(*parsed);
  }
  if (what == "reset" && request.method == "POST") {
    impl_->settings.clear();
    auto s = Reset();
    return s.ok() ? JsonResponse(200, json::object{{"reset", true}})
                  : ControlError(500, s.error().ToString());
  }
  if (what == "seed" && request.method == "POST" && body.is_object()) {
    const json::object& o = body.as_object();
    auto uuids = Seed(static_cast<int>(IntOr(o, "events", 1)), static_cast<int>(IntOr(o, "attributes", 10)),
                      static_cast<int>(IntOr(o, "objects", 0)), static_cast<int>(IntOr(o, "distribution", 3)),
                      static_cast<std::uint64_t>(IntOr(o, "seed", 1)),
                      static_cast<int>(IntOr(o, "attribute_distribution", -1)));
    if (!uuids.ok()) return ControlError(500, uuids.error().ToString());
    json::array a;
    for (auto& u : *uuids) a.push_back(json::value(u));
    return JsonResponse(200, json::object{{"uuids", std::move(a)}});
  }
  // Organisations, users and server records, as an installation's admin would create them:
  // {"orgs": [{"name", "uuid", "local"}], "users": [{"email", "org_uuid", "role", "key"}],
  //  "servers": [{"url", "name"}]}; role is "site_admin", "org_admin", "user" or "sync_user".
  // MISP settings for servers/getSetting ({"Plugin.Sightings_policy": 2, ...}) and the organisation
  // blocklist ({"_org_blocklist": [uuid, ...]}).
  if (what == "settings" && request.method == "POST" && body.is_object()) {
    for (const auto& kv : body.as_object()) impl_->settings[std::string(kv.key())] = kv.value();
    return JsonResponse(200, json::object{{"settings", true}});
  }
  if (what == "setup" && request.method == "POST" && body.is_object()) {
    const json::object& o = body.as_object();
    json::object out;
    if (const json::value* orgs = o.if_contains("orgs"); orgs && orgs->is_array()) {
      for (const auto& v : orgs->as_array()) {
        if (!v.is_object()) return ControlError(400, "orgs: expected objects");
        auto id =
            AddOrg(std::string(StringOr(v.as_object(), "name")), std::string(StringOr(v.as_object(), "uuid")),
                   misp::BoolOr(v.as_object(), "local", false));
        if (!id.ok()) return ControlError(400, id.error().ToString());
      }
    }
    json::object keys;
    if (const json::value* users = o.if_contains("users"); users && users->is_array()) {
      for (const auto& v : users->as_array()) {
        if (!v.is_object()) return ControlError(400, "users: expected objects");
        const json::object& u = v.as_object();
        std::string role(StringOr(u, "role", "user"));
        std::optional<Role> r = RoleNamed(role);
        if (!r)
          return ControlError(400,
                              "users: role must be site_admin, org_admin, user or sync_user, found " + role);
        auto key = AddUser(std::string(StringOr(u, "email")), std::string(StringOr(u, "org_uuid")), *r,
                           std::string(StringOr(u, "key")));
        if (!key.ok()) return ControlError(400, key.error().ToString());
        keys[StringOr(u, "email")] = *key;
      }
    }
    if (const json::value* servers = o.if_contains("servers"); servers && servers->is_array()) {
      for (const auto& v : servers->as_array()) {
        if (!v.is_object()) return ControlError(400, "servers: expected objects");
        auto id = AddServer(std::string(StringOr(v.as_object(), "url")),
                            std::string(StringOr(v.as_object(), "name")));
        if (!id.ok()) return ControlError(400, id.error().ToString());
      }
    }
    out["keys"] = std::move(keys);
    return JsonResponse(200, out);
  }
  // Fixture documents: an event ({"Event": ...}), a list of them, or {"response": [...]}.
  if (what == "load" && request.method == "POST") {
    json::value docs = body;
    if (docs.is_object() && docs.as_object().contains("response")) docs = docs.as_object()["response"];
    if (!docs.is_array()) docs = json::array{docs};
    json::array ids;
    for (const auto& d : docs.as_array()) {
      auto id = LoadEvent(json::serialize(d));
      if (!id.ok()) return ControlError(400, id.error().ToString());
      ids.push_back(json::value(std::to_string(*id)));
    }
    return JsonResponse(200, json::object{{"loaded", std::move(ids)}});
  }
  // Proposals made on this instance ({"ShadowAttribute": ...} rows, or the bare rows), each on a
  // stored event named by its `event_uuid`.
  // Custom clusters made on this instance: {"GalaxyCluster": {...}} documents (or a list), owned by
  // the instance's organisation unless they name `org_uuid`.
  if (what == "clusters" && request.method == "POST") {
    json::value docs = body;
    if (!docs.is_array()) docs = json::array{docs};
    std::lock_guard lock(impl_->mu);
    int n = 0;
    for (const auto& d : docs.as_array()) {
      const json::value* c = d.is_object() ? d.as_object().if_contains("GalaxyCluster") : nullptr;
      if (c == nullptr || !c->is_object() || !c->as_object().contains("uuid"))
        return ControlError(400, "clusters: expected {\"GalaxyCluster\": {...}} with a uuid");
      json::object cluster = c->as_object();
      if (!cluster.contains("org_uuid")) cluster["org_uuid"] = impl_->config.org_uuid;
      if (!cluster.contains("orgc_uuid")) cluster["orgc_uuid"] = cluster["org_uuid"];
      impl_->SaveCluster(cluster);
      ++n;
    }
    return JsonResponse(200, json::object{{"loaded", n}});
  }
  // Analyst data made on this instance: {"<Type>": {...}} documents (or a list of them), stored as
  // given (unlocked unless they say otherwise: made here).
  if (what == "analyst_data" && request.method == "POST") {
    json::value docs = body;
    if (!docs.is_array()) docs = json::array{docs};
    std::lock_guard lock(impl_->mu);
    int n = 0;
    for (const auto& d : docs.as_array()) {
      if (!d.is_object())
        return ControlError(400, "analyst_data: expected {\"Note\"|\"Opinion\"|\"Relationship\": {...}}");
      for (const auto& [type, entry] : d.as_object()) {
        if (!Impl::IsAnalystType(type) || !entry.is_object() || !entry.as_object().contains("uuid"))
          return ControlError(
              400, "analyst_data: " + std::string(type) + " is not an analyst data entry with a uuid");
        auto up = impl_->db->Prepare(
            "INSERT INTO analyst_data (type, uuid, json) VALUES (?, ?, ?) ON CONFLICT (uuid) DO UPDATE SET "
            "type = excluded.type, json = excluded.json");
        (void)(*up)
            ->Bind(1, std::string(type))
            .Bind(2, StringOr(entry.as_object(), "uuid"))
            .Bind(3, json::serialize(entry))
            .Run();
        ++n;
      }
    }
    return JsonResponse(200, json::object{{"loaded", n}});
  }
  if (what == "proposals" && request.method == "POST") {
    json::value docs = body;
    if (!docs.is_array()) docs = json::array{docs};
    for (const auto& d : docs.as_array()) {
      if (auto st = LoadProposal(json::serialize(d)); !st.ok())
        return ControlError(400, st.error().ToString());
    }
    return JsonResponse(200, json::object{{"loaded", docs.as_array().size()}});
  }
  if (what == "faults" && request.method == "POST") {
    auto f = FaultFromJson(body);
    if (!f.ok()) return ControlError(400, f.error().ToString());
    AddFault(*f);
    return JsonResponse(200, json::object{{"faults", true}});
  }
  if (what == "faults" && request.method == "DELETE") {
    ClearFaults();
    return JsonResponse(200, json::object{{"faults", false}});
  }
  if (what == "requests" && request.method == "GET") {
    json::array a;
    for (const auto& r : RequestLog()) {
      json::object h;
      for (const auto& [k, v] : r.headers) h[k] = v;
      a.push_back(json::object{{"method", r.method},
                               {"target", r.target},
                               {"headers", std::move(h)},
                               {"body", r.body},
                               {"status", r.status}});
    }
    return JsonResponse(200, a);
  }
  if (what == "requests" && request.method == "DELETE") {
    ClearRequestLog();
    return JsonResponse(200, json::object{{"cleared", true}});
  }
  return ControlError(404, "no control route " + request.method + " /_sim/" + what);
}

}  // namespace sgsync::sim
