#include "portal-connector/misp_client.h"

#include <set>

#include "common/encoding.h"

#ifndef SGSYNC_VERSION
#define SGSYNC_VERSION "0.1.0"
#endif

namespace sgsync::connector {

std::string SgsyncUserAgent() {
  return std::string("MISP-compatible sgsync/") + SGSYNC_VERSION + " (SecureGRID federation sync)";
}

MispClient::MispClient(std::unique_ptr<HttpsTransport> transport, misp::JsonLimits limits)
    : transport_(std::move(transport)), limits_(std::move(limits)) {
  limits_.max_document_bytes = transport_->options().max_response_bytes;
}

Result<HttpResponse> MispClient::Call(const std::string& method, const std::string& target,
                                      const std::string& body, bool idempotent,
                                      std::map<std::string, std::string> headers) {
  return transport_->Send(HttpRequest{method, target, std::move(headers), body, idempotent});
}

Error MispClient::ErrorFor(const HttpResponse& r, const std::string& target) {
  std::string where = transport_->options().base_url + target;
  misp::MispError e;
  if (auto parsed = misp::ParseJson(r.body, limits_); parsed.ok()) e = misp::DecodeMispError(*parsed);
  std::string text = e.Text();
  if (text.empty()) text = "HTTP " + std::to_string(r.status);
  ErrorCode code = ErrorCode::kInvalidArgument;
  if (r.status == 403) {
    code = text.find("Authentication failed") != std::string::npos ? ErrorCode::kUnauthenticated
           : e.errors.find("not newer than the local copy") != std::string::npos
               ? ErrorCode::kNotNewer
               : ErrorCode::kPermissionDenied;
  } else if (r.status == 404) {
    code = r.headers.count("location") ? ErrorCode::kAlreadyExists : ErrorCode::kNotFound;
  } else if (r.status == 429) {
    code = ErrorCode::kRateLimited;
    if (auto it = r.headers.find("retry-after"); it != r.headers.end()) {
      if (auto asked = ParseRetryAfter(it->second, transport_->options().retry.max_retry_after)) {
        Error e429 = Fail(code, "MISP answered 429: " + text, where);
        e429.retry_after_seconds = asked->count();
        return e429;
      }
    }
  } else if (r.status >= 500) {
    code = ErrorCode::kUnavailable;
  }
  return Fail(code, "MISP answered " + std::to_string(r.status) + ": " + text, where);
}

Result<json::value> MispClient::Json(const HttpResponse& r, const std::string& target) {
  if (r.status != 200) return ErrorFor(r, target);
  auto v = misp::ParseJson(r.body, limits_, transport_->options().base_url + target);
  if (!v.ok()) return v.error();
  return std::move(*v);
}

Result<HttpResponse> MispClient::SendStreaming(const HttpRequest& req, const std::string& target) {
  auto r = transport_->Send(req);
  if (!r.ok())
    return r.error().code == ErrorCode::kParse || r.error().code == ErrorCode::kLimitExceeded
               ? r.error().Within(transport_->options().base_url + target)
               : r.error();
  return r;
}

Result<json::value> MispClient::StreamJson(const std::string& method, const std::string& target,
                                           const std::string& body, HttpResponse* meta,
                                           std::shared_ptr<const void>* arena) {
  std::unique_ptr<misp::JsonReader> reader;
  const misp::JsonLimits& limits = limits_;
  const misp::ArenaOwner owner = arena != nullptr ? misp::ArenaOwner::kCaller : misp::ArenaOwner::kTree;
  HttpRequest req{method, target, {}, body, true};
  req.body_reset = [&] { reader = std::make_unique<misp::JsonReader>(limits, owner); };
  req.body_sink = [&](std::string_view piece) { return reader->Write(piece); };
  SGSYNC_TRY(HttpResponse r, SendStreaming(req, target));
  if (meta != nullptr) *meta = r;
  if (r.status != 200) return ErrorFor(r, target);
  auto v = reader->Finish();
  if (!v.ok()) return v.error().Within(transport_->options().base_url + target);
  if (arena != nullptr) *arena = reader->TakeArena();
  return std::move(*v);
}

Result<misp::ServerVersion> MispClient::GetVersion() {
  SGSYNC_TRY(auto r, Call("GET", "/servers/getVersion", "", true));
  SGSYNC_TRY(json::value v, Json(r, "/servers/getVersion"));
  auto out = misp::DecodeServerVersion(v);
  if (!out.ok()) return out.error().Within(transport_->options().base_url + "/servers/getVersion");
  return out;
}

Result<misp::UserInfo> MispClient::WhoAmI() {
  SGSYNC_TRY(auto r, Call("GET", "/users/view/me.json", "", true));
  SGSYNC_TRY(json::value v, Json(r, "/users/view/me.json"));
  auto out = misp::DecodeUserInfo(v);
  if (!out.ok()) return out.error().Within(transport_->options().base_url + "/users/view/me.json");
  return out;
}

namespace {

OrganisationInfo ReadOrganisation(const json::object& o) {
  OrganisationInfo info;
  info.id = misp::StringOr(o, "id");
  if (info.id.empty()) info.id = std::to_string(misp::IntOr(o, "id", 0));
  info.uuid = misp::StringOr(o, "uuid");
  info.name = misp::StringOr(o, "name");
  info.local = misp::BoolOr(o, "local", false);
  return info;
}

}  // namespace

Result<std::optional<OrganisationInfo>> MispClient::ViewOrganisation(const std::string& uuid) {
  const std::string target = "/organisations/view/" + uuid;
  SGSYNC_TRY(auto r, Call("GET", target, "", true));
  if (r.status == 404) return std::optional<OrganisationInfo>();
  SGSYNC_TRY(json::value v, Json(r, target));
  const json::value* org = v.is_object() ? v.get_object().if_contains("Organisation") : nullptr;
  if (org == nullptr || !org->is_object())
    return Fail(ErrorCode::kParse, "expected {\"Organisation\": {...}}, found " + misp::Describe(v),
                transport_->options().base_url + target);
  OrganisationInfo info = ReadOrganisation(org->get_object());
  if (AsciiLower(info.uuid) != AsciiLower(uuid))
    return Fail(ErrorCode::kCorruption, "asked for organisation " + uuid + ", the answer is another",
                transport_->options().base_url + target);
  return std::optional<OrganisationInfo>(std::move(info));
}

Result<std::vector<OrganisationInfo>> MispClient::Organisations() {
  const std::string target = "/organisations/index/scope:all";
  SGSYNC_TRY(auto r, Call("GET", target, "", true));
  SGSYNC_TRY(json::value v, Json(r, target));
  if (!v.is_array())
    return Fail(ErrorCode::kParse, "expected a list of organisations, found " + misp::Describe(v),
                transport_->options().base_url + target);
  std::vector<OrganisationInfo> out;
  for (const auto& row : v.get_array()) {
    const json::value* org = row.is_object() ? row.get_object().if_contains("Organisation") : nullptr;
    if (org != nullptr && org->is_object()) out.push_back(ReadOrganisation(org->get_object()));
  }
  return out;
}

Result<std::vector<TagInfo>> MispClient::Tags() {
  const std::string target = "/tags/index";
  SGSYNC_TRY(auto r, Call("GET", target, "", true));
  SGSYNC_TRY(json::value v, Json(r, target));
  const json::value* list = v.is_object() ? v.get_object().if_contains("Tag") : nullptr;
  if (list == nullptr || !list->is_array())
    return Fail(ErrorCode::kParse, "expected {\"Tag\": [...]}, found " + misp::Describe(v),
                transport_->options().base_url + target);
  std::vector<TagInfo> out;
  for (const auto& row : list->get_array()) {
    if (!row.is_object()) continue;
    TagInfo t;
    t.id = misp::StringOr(row.get_object(), "id");
    if (t.id.empty()) t.id = std::to_string(misp::IntOr(row.get_object(), "id", 0));
    t.name = misp::StringOr(row.get_object(), "name");
    out.push_back(std::move(t));
  }
  return out;
}

Result<json::value> MispClient::Setting(const std::string& name) {
  const std::string target = "/servers/getSetting/" + name;
  SGSYNC_TRY(auto r, Call("GET", target, "", true));
  SGSYNC_TRY(json::value v, Json(r, target));
  const json::value* value = v.is_object() ? v.get_object().if_contains("value") : nullptr;
  if (value == nullptr)
    return Fail(ErrorCode::kParse, "expected {\"value\": ...}, found " + misp::Describe(v),
                transport_->options().base_url + target);
  return *value;
}

Result<std::vector<std::string>> MispClient::Blocklist(bool organisations) {
  const std::string target = organisations ? "/org_blocklists/index" : "/event_blocklists/index";
  SGSYNC_TRY(auto r, Call("GET", target, "", true));
  SGSYNC_TRY(json::value v, Json(r, target));
  if (!v.is_array())
    return Fail(ErrorCode::kParse, "expected a list, found " + misp::Describe(v),
                transport_->options().base_url + target);
  std::vector<std::string> out;
  for (const auto& row : v.get_array()) {
    if (!row.is_object()) continue;
    // The index nests each row under its model name in some versions; both forms are read.
    const json::object* o = &row.get_object();
    for (const char* model : {"EventBlocklist", "OrgBlocklist"})
      if (const json::value* inner = o->if_contains(model); inner != nullptr && inner->is_object())
        o = &inner->get_object();
    std::string uuid(misp::StringOr(*o, organisations ? "org_uuid" : "event_uuid"));
    if (!uuid.empty()) out.push_back(AsciiLower(uuid));
  }
  return out;
}

Result<IndexPage> MispClient::EventIndex(const json::object& filter, const std::string& etag) {
  SGSYNC_TRY(auto r, Call("POST", "/events/index", json::serialize(filter), true,
                          {{"If-None-Match", etag.empty() ? "\"\"" : etag}}));
  IndexPage page;
  if (r.status == 304) {
    page.not_modified = true;
    page.etag = etag;
    return page;
  }
  SGSYNC_TRY(json::value v, Json(r, "/events/index"));
  auto rows = misp::DecodeEventIndex(v, &page.rejected);
  if (!rows.ok()) return rows.error().Within(transport_->options().base_url + "/events/index");
  page.rows = std::move(*rows);
  for (auto& e : page.rejected) e = e.Within(transport_->options().base_url + "/events/index");
  page.etag = r.headers.count("etag") ? r.headers["etag"] : "";
  if (auto it = r.headers.find("x-result-count"); it != r.headers.end()) {
    json::value count(it->second);
    page.total = misp::IntOr(&count, static_cast<std::int64_t>(page.rows.size()));
  }
  return page;
}

json::object RestSearchFilter(const ViewForm& form) {
  json::object f;
  if (form.include_deleted) f["deleted"] = json::array{0, 1};
  f["excludeLocalTags"] = form.exclude_local_tags ? 1 : 0;
  // As the view's excludeGalaxy:1 and MISP's own push and pull fetches (Event::uploadEventToServersRouter,
  // Server::__pullEvent): the clusters travel on their own channel, and a receiver turns an event's
  // Galaxy list into tags it already has. includeEventCorrelations is not a restSearch filter.
  f["excludeGalaxy"] = 1;
  return f;
}

Result<std::vector<misp::EventDocument>> MispClient::RestSearch(const json::object& filter,
                                                                std::int64_t* total) {
  json::object f = filter;
  f["returnFormat"] = "json";
  HttpResponse r;
  // Every document keeps the answer's arena, and nothing of the answer lives elsewhere: its events
  // are freed whole with it, not value by value (ArenaOwner::kCaller).
  std::shared_ptr<const void> arena;
  SGSYNC_TRY(json::value v, StreamJson("POST", "/events/restSearch", json::serialize(f), &r, &arena));
  if (total != nullptr) {
    json::value count(r.headers.count("x-result-count") ? r.headers["x-result-count"] : "0");
    *total = misp::IntOr(&count, 0);
  }
  auto docs = misp::DecodeEventList(std::move(v), {}, std::move(arena));
  if (!docs.ok()) return docs.error().Within(transport_->options().base_url + "/events/restSearch");
  return docs;
}

Result<std::optional<misp::EventDocument>> MispClient::ViewEvent(const std::string& uuid,
                                                                 const ViewForm& form) {
  // The named-parameter form MISP's pull uses (events-view-pull-form.json); a query string would be ignored.
  std::string target = "/events/view/" + uuid;
  if (form.include_deleted) target += "/deleted[]:0/deleted[]:1";
  target += "/excludeGalaxy:1/includeEventCorrelations:0/includeFeedCorrelations:0/includeWarninglistHits:0";
  if (form.exclude_local_tags) target += "/excludeLocalTags:1";
  HttpResponse r;
  auto v = StreamJson("GET", target, "", &r);
  if (!v.ok() && r.status == 404) return std::optional<misp::EventDocument>();
  if (!v.ok()) return v.error();
  auto doc = misp::EventDocument::FromJson(std::move(*v));
  if (!doc.ok()) return doc.error().Within(transport_->options().base_url + target);
  // The answer must be the event asked for (docs/security.md): another event served by a lying or
  // compromised peer is never decided on, written over the one asked for, or compared with it.
  if (misp::IsUuid(uuid)) {
    std::string_view got = misp::StringOr(doc->event_json(), "uuid");
    if (AsciiLower(got) != AsciiLower(uuid)) {
      return Fail(ErrorCode::kCorruption,
                  "asked for event " + uuid + ", the answer is event " +
                      std::string(got.empty() ? "(no uuid)" : got.substr(0, 40)) + ": refused",
                  transport_->options().base_url + "/events/view/" + uuid);
    }
  }
  return std::optional<misp::EventDocument>(std::move(*doc));
}

Result<WriteResult> MispClient::CheckWriteAnswer(misp::SavedEvent saved, const json::object& sent,
                                                 const std::string& target) {
  const std::string where = transport_->options().base_url + target;
  if (!saved.has_event) {
    // A 200 without the saved event: MISP's error form ({"name", "message", "errors"}) or junk.
    std::string text;
    if (auto parsed = misp::ParseJson(saved.head, limits_); parsed.ok()) text = misp::DecodeMispError(*parsed).Text();
    return Fail(ErrorCode::kRefused,
                "MISP answered 200 without the saved event" + (text.empty() ? std::string() : ": " + text) +
                    "; the write is not counted",
                where);
  }
  std::string_view want = misp::StringOr(sent, "uuid");
  std::string_view got = saved.uuid;
  if (!want.empty() && AsciiLower(want) != AsciiLower(got)) {
    return Fail(ErrorCode::kCorruption,
                "MISP answered with event " + std::string(got.empty() ? "(no uuid)" : got.substr(0, 40)) +
                    ", not the event " + std::string(want) + " that was sent; the write is not counted",
                where);
  }
  WriteResult w;
  w.saved = std::move(saved);
  w.written = true;
  return w;
}

namespace {

// {"Event": <event>} produced piece by piece from the event's tree, never held as one string.
class EventBodyProducer {
 public:
  explicit EventBodyProducer(const json::object& event) : serializer_(std::make_shared<json::serializer>()) {
    serializer_->reset(&event);
  }
  std::size_t operator()(char* out, std::size_t size) {
    std::size_t n = 0;
    auto copy = [&](std::string_view text) {
      while (n < size && offset_ < text.size()) out[n++] = text[offset_++];
      if (offset_ == text.size()) ++stage_, offset_ = 0;
    };
    while (n < size && stage_ < 3) {
      if (stage_ == 0) {
        copy(kPrefix);
      } else if (stage_ == 1) {
        n += serializer_->read(out + n, size - n).size();
        if (serializer_->done()) ++stage_;
      } else {
        copy(kSuffix);
      }
    }
    return n;
  }

  static constexpr std::string_view kPrefix = "{\"Event\":";
  static constexpr std::string_view kSuffix = "}";

 private:
  std::shared_ptr<json::serializer> serializer_;  // shared: std::function copies its producer
  int stage_ = 0;                                 // prefix, event, suffix, done
  std::size_t offset_ = 0;
};

// Bodies up to this size are sent as one string; a larger event is streamed (its length counted by a
// second serialisation first), so it is never held as text beside its tree.
constexpr std::size_t kWholeBodyBytes = std::size_t{1} << 20;

}  // namespace

Result<WriteResult> MispClient::WriteEvent(const std::string& target, const json::object& event, bool add) {
  HttpRequest req{"POST", target, {}, {}, false};
  EventBodyProducer whole(event);
  // Uninitialised: zeroing it was 64 KiB of memset for every write.
  constexpr std::size_t kPiece = 64 * 1024;
  const auto buf = std::make_unique_for_overwrite<char[]>(kPiece);
  std::size_t n = 0;
  while (req.body.size() <= kWholeBodyBytes && (n = whole(buf.get(), kPiece)) > 0)
    req.body.append(buf.get(), n);
  if (n > 0) {
    std::size_t length = req.body.size();
    while ((n = whole(buf.get(), kPiece)) > 0) length += n;
    req.body.clear();
    req.body.shrink_to_fit();
    req.streamed_body = StreamedBody{length, [&event] {
                                       return std::function<std::size_t(char*, std::size_t)>(EventBodyProducer(event));
                                     }};
  }
  std::unique_ptr<misp::SavedEventReader> reader;
  req.body_reset = [&] { reader = std::make_unique<misp::SavedEventReader>(limits_); };
  req.body_sink = [&](std::string_view piece) { return reader->Write(piece); };
  SGSYNC_TRY(HttpResponse r, SendStreaming(req, target));
  if (add && r.status == 404 && r.headers.count("location")) {
    // Already there: MISP names its id in Location (events-add-same-uuid-again.json).
    WriteResult w;
    const std::string& loc = r.headers["location"];
    w.existing_id = loc.substr(loc.find_last_of('/') + 1);
    return w;
  }
  if (r.status != 200) return ErrorFor(r, target);
  auto saved = reader->Finish();
  if (!saved.ok()) return saved.error().Within(transport_->options().base_url + target);
  return CheckWriteAnswer(std::move(*saved), event, target);
}

Result<WriteResult> MispClient::AddEvent(const json::object& event) {
  // The whole saved event is asked for (not metadata:1, which MISP's own push uses): the engine
  // compares it with what was sent, since MISP may accept an event and drop some of its elements.
  return WriteEvent("/events/add", event, true);
}

Result<WriteResult> MispClient::EditEvent(const std::string& uuid_or_id, const json::object& event) {
  return WriteEvent("/events/edit/" + uuid_or_id, event, false);
}

Result<std::map<std::string, EventMetadata>> MispClient::EventsMetadata(
    const std::vector<std::string>& uuids) {
  std::map<std::string, EventMetadata> out;
  if (uuids.empty()) return out;
  json::array list;
  std::set<std::string> asked;
  for (const auto& u : uuids) {
    list.emplace_back(u);
    asked.insert(AsciiLower(u));
  }
  SGSYNC_TRY(auto docs, RestSearch(json::object{{"uuid", std::move(list)}, {"metadata", 1}}));
  for (auto& doc : docs) {
    const json::object& e = doc.event_json();
    EventMetadata m;
    m.uuid = AsciiLower(misp::StringOr(e, "uuid"));
    if (!asked.count(m.uuid)) continue;
    m.timestamp = misp::IntOr(e, "timestamp", 0);
    m.locked = misp::BoolOr(e, "locked", false);
    m.org_id = std::string(misp::StringOr(e, "org_id"));
    m.attribute_count = misp::IntOr(e, "attribute_count", 0);
    const json::value* orgc = e.if_contains("Orgc");
    m.orgc_uuid = orgc != nullptr && orgc->is_object()
                      ? AsciiLower(misp::StringOr(orgc->get_object(), "uuid"))
                      : std::string();
    out[m.uuid] = std::move(m);
  }
  return out;
}

Status MispClient::DeleteEvent(const std::string& uuid) {
  ViewForm form;
  form.include_deleted = false;
  form.exclude_local_tags = true;
  SGSYNC_TRY(auto doc, ViewEvent(uuid, form));
  if (!doc)
    return Fail(ErrorCode::kNotFound, "no event " + uuid,
                transport_->options().base_url + "/events/view/" + uuid);
  std::string id(misp::StringOr(doc->event_json(), "id"));
  const std::string target = "/events/delete/" + id;
  SGSYNC_TRY(auto r, Call("POST", target, "", false));
  SGSYNC_TRY(json::value body, Json(r, target));
  (void)body;
  return {};
}

Result<std::vector<std::string>> MispClient::FilterEventIdsForPush(
    const std::vector<std::pair<std::string, std::int64_t>>& offer) {
  json::array body;
  for (const auto& [uuid, ts] : offer) {
    body.push_back(json::object{{"Event", json::object{{"uuid", uuid}, {"timestamp", std::to_string(ts)}}}});
  }
  SGSYNC_TRY(auto r, Call("POST", "/events/filterEventIdsForPush", json::serialize(body), true));
  SGSYNC_TRY(json::value v, Json(r, "/events/filterEventIdsForPush"));
  if (!v.is_array()) {
    return Fail(ErrorCode::kParse, "expected a list of uuids, found " + misp::Describe(v),
                transport_->options().base_url + "/events/filterEventIdsForPush");
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.as_array().size(); ++i) {
    const json::value& u = v.as_array()[i];
    if (!u.is_string() || !misp::IsUuid(u.as_string())) {
      return Fail(ErrorCode::kParse, "expected a uuid, found " + misp::Describe(u), misp::Index("$", i));
    }
    out.emplace_back(u.as_string());
  }
  return out;
}

Result<std::vector<misp::SharingGroupInfo>> MispClient::SharingGroups() {
  SGSYNC_TRY(auto r, Call("GET", "/sharing_groups/index", "", true));
  SGSYNC_TRY(json::value v, Json(r, "/sharing_groups/index"));
  return misp::DecodeSharingGroupIndex(v);
}

Result<misp::SharingGroupInfo> MispClient::SharingGroup(const std::string& uuid_or_id) {
  const std::string target = "/sharing_groups/view/" + uuid_or_id;
  SGSYNC_TRY(auto r, Call("GET", target, "", true));
  SGSYNC_TRY(json::value v, Json(r, target));
  auto out = misp::DecodeSharingGroup(v);
  if (!out.ok()) return out.error().Within(transport_->options().base_url + target);
  return out;
}

}  // namespace sgsync::connector
