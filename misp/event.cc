#include "misp/event.h"

namespace sgsync::misp {
namespace {

const json::object* ObjectField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

std::string_view NestedUuid(const json::object& o, std::string_view key) {
  const json::object* inner = ObjectField(o, key);
  return inner != nullptr ? StringOr(*inner, "uuid") : std::string_view();
}

template <typename View>
std::vector<View> ViewsOf(json::array* list) {
  std::vector<View> out;
  if (list == nullptr) return out;
  out.reserve(list->size());
  for (auto& v : *list) {
    if (v.is_object()) out.emplace_back(v.get_object());
  }
  return out;
}

// ---- validation ----

// The keys validation reads of an element (an attribute, object, report, or the event itself), found
// in one pass over its entries. An attribute has about twenty keys and validation asks for up to
// sixteen, most of them absent; a look-up each (hashing the key, then comparing) was most of
// validation's cost. Keys of a parsed object are unique, so the entry found is the one a look-up
// would find.
struct ElementFields {
  explicit ElementFields(const json::object& o) {
    for (const json::key_value_pair& kv : o) {
      const std::string_view k = kv.key();
      const json::value* v = &kv.value();
      switch (k.size()) {
        case 3:
          if (k == "Tag") tag = v;
          break;
        case 4:
          if (k == "uuid") {
            uuid = v;
          } else if (k == "type") {
            type = v;
          }
          break;
        case 6:
          if (k == "to_ids") to_ids = v;
          break;
        case 7:
          if (k == "deleted") deleted = v;
          break;
        case 8:
          if (k == "EventTag") {
            event_tag = v;
          } else if (k == "Sighting") {
            sighting = v;
          }
          break;
        case 9:
          if (k == "timestamp") {
            timestamp = v;
          } else if (k == "Attribute") {
            attribute = v;
          }
          break;
        case 12:
          if (k == "distribution") {
            distribution = v;
          } else if (k == "AttributeTag") {
            attribute_tag = v;
          } else if (k == "SharingGroup") {
            sharing_group = v;
          }
          break;
        case 13:
          if (k == "template_uuid") template_uuid = v;
          break;
        case 15:
          if (k == "ShadowAttribute") {
            shadow_attribute = v;
          } else if (k == "ObjectReference") {
            object_reference = v;
          }
          break;
        case 16:
          if (k == "sharing_group_id") sharing_group_id = v;
          break;
        default:
          break;
      }
    }
  }
  // Every element.
  const json::value* uuid = nullptr;
  const json::value* distribution = nullptr;
  const json::value* sharing_group_id = nullptr;
  const json::value* timestamp = nullptr;
  const json::value* deleted = nullptr;
  const json::value* tag = nullptr;
  const json::value* event_tag = nullptr;
  const json::value* attribute_tag = nullptr;
  const json::value* sharing_group = nullptr;
  // Attributes.
  const json::value* type = nullptr;
  const json::value* to_ids = nullptr;
  const json::value* sighting = nullptr;
  const json::value* shadow_attribute = nullptr;
  // Objects.
  const json::value* template_uuid = nullptr;
  const json::value* attribute = nullptr;
  const json::value* object_reference = nullptr;
};

Status Expect(bool ok, const std::string& path, std::string what, const json::value& found) {
  if (ok) return {};
  return Fail(ErrorCode::kParse, "expected " + std::move(what) + ", found " + Describe(found), path);
}

// `v` is the value of `key` in the object at `path`, null when the key is absent.
Status CheckUuid(const json::value* v, std::string_view key, std::string_view path, bool required) {
  if (v == nullptr || v->is_null()) {
    if (required) return Fail(ErrorCode::kParse, "expected a uuid, found nothing", Child(path, key));
    return {};
  }
  // MISP writes an empty string for "no uuid" in a few optional fields (extends_uuid).
  if (!required && v->is_string() && v->get_string().empty()) return {};
  if (v->is_string() && IsUuid(v->get_string())) return {};
  return Expect(false, Child(path, key), "a uuid", *v);
}

Status CheckUuidField(const json::object& o, std::string_view key, std::string_view path, bool required) {
  return CheckUuid(o.if_contains(key), key, path, required);
}

Status CheckNonNegative(const json::value* v, std::string_view key, std::string_view path) {
  SGSYNC_TRY(auto n, OptInt(v, key, path));
  if (n && *n < 0) {
    return Fail(ErrorCode::kParse, "expected a timestamp (seconds since 1970), found " + std::to_string(*n),
                Child(path, key));
  }
  return {};
}

Status CheckNonNegative(const json::object& o, std::string_view key, std::string_view path) {
  return CheckNonNegative(o.if_contains(key), key, path);
}

Status CheckOptionalType(const json::value* v, std::string_view key, std::string_view path, json::kind kind,
                         std::string_view what) {
  if (v == nullptr || v->is_null() || v->kind() == kind) return {};
  return Expect(false, Child(path, key), std::string(what), *v);
}

Status CheckOptionalType(const json::object& o, std::string_view key, std::string_view path, json::kind kind,
                         std::string_view what) {
  return CheckOptionalType(o.if_contains(key), key, path, kind, what);
}

Status CheckDistribution(const ElementFields& f, std::string_view path, int max_level) {
  SGSYNC_TRY(auto level, OptInt(f.distribution, "distribution", path));
  SGSYNC_TRY(auto sg_id, OptInt(f.sharing_group_id, "sharing_group_id", path));
  if (!level) return {};
  if (*level < 0 || *level > max_level) {
    return Fail(
        ErrorCode::kParse,
        "expected a distribution level 0.." + std::to_string(max_level) + ", found " + std::to_string(*level),
        Child(path, "distribution"));
  }
  const bool has_group_object = f.sharing_group != nullptr && f.sharing_group->is_object();
  if (*level == 4 && sg_id.value_or(0) <= 0 && !has_group_object) {
    return Fail(ErrorCode::kParse,
                "distribution 4 (sharing group) needs a sharing_group_id or a SharingGroup",
                Child(path, "distribution"));
  }
  return {};
}

Status CheckTags(const ElementFields& f, std::string_view path) {
  const std::pair<std::string_view, const json::value*> lists[] = {
      {"Tag", f.tag}, {"EventTag", f.event_tag}, {"AttributeTag", f.attribute_tag}};
  for (const auto& [key, list] : lists) {
    if (list == nullptr || list->is_null()) continue;
    std::string lpath = Child(path, key);
    SGSYNC_TRY_STATUS(Expect(list->is_array(), lpath, "an array of tags", *list));
    const json::array& rows = list->get_array();
    for (std::size_t i = 0; i < rows.size(); ++i) {
      std::string rpath = Index(lpath, i);
      SGSYNC_TRY_STATUS(Expect(rows[i].is_object(), rpath, "a tag object", rows[i]));
      const json::object& row = rows[i].get_object();
      SGSYNC_TRY(auto local, OptBool(row, "local", rpath));
      (void)local;
      const json::object* tag = &row;
      std::string tpath = rpath;
      if (key != "Tag") {
        const json::value* nested = row.if_contains("Tag");
        if (nested == nullptr) continue;  // a bare link row (tag_id only) carries no name to check
        tpath = Child(rpath, "Tag");
        SGSYNC_TRY_STATUS(Expect(nested->is_object(), tpath, "a tag object", *nested));
        tag = &nested->get_object();
      }
      const json::value* name = tag->if_contains("name");
      if (name == nullptr)
        return Fail(ErrorCode::kParse, "expected a tag name, found nothing", Child(tpath, "name"));
      SGSYNC_TRY_STATUS(Expect(name->is_string(), Child(tpath, "name"), "a string", *name));
      SGSYNC_TRY(auto exportable, OptBool(*tag, "exportable", tpath));
      (void)exportable;
    }
  }
  return {};
}

Status CheckSharingGroup(const json::value* v, std::string_view path) {
  if (v == nullptr || v->is_null()) return {};
  std::string sgpath = Child(path, "SharingGroup");
  // MISP serialises an element without a group as an empty SharingGroup list in some exports.
  if (v->is_array() && v->get_array().empty()) return {};
  SGSYNC_TRY_STATUS(Expect(v->is_object(), sgpath, "a sharing group object", *v));
  const json::object& sg = v->get_object();
  SGSYNC_TRY_STATUS(CheckUuidField(sg, "uuid", sgpath, false));
  SGSYNC_TRY(auto roaming, OptBool(sg, "roaming", sgpath));
  (void)roaming;
  for (std::string_view key : {"SharingGroupOrg", "SharingGroupServer"}) {
    const json::value* list = sg.if_contains(key);
    if (list == nullptr || list->is_null()) continue;
    std::string lpath = Child(sgpath, key);
    SGSYNC_TRY_STATUS(Expect(list->is_array(), lpath, "an array", *list));
    for (std::size_t i = 0; i < list->get_array().size(); ++i) {
      const json::value& row = list->get_array()[i];
      std::string rpath = Index(lpath, i);
      SGSYNC_TRY_STATUS(Expect(row.is_object(), rpath, "an object", row));
      SGSYNC_TRY(auto flag,
                 OptBool(row.get_object(), key == "SharingGroupOrg" ? "extend" : "all_orgs", rpath));
      (void)flag;
      const json::object* org = ObjectField(row.get_object(), "Organisation");
      if (org != nullptr)
        SGSYNC_TRY_STATUS(CheckUuidField(*org, "uuid", Child(rpath, "Organisation"), false));
    }
  }
  return {};
}

// What attributes, objects, reports and the event share: uuid, distribution, timestamps, flags, tags.
Status CheckElement(const ElementFields& f, std::string_view path, int max_level, bool require_uuid) {
  SGSYNC_TRY_STATUS(CheckUuid(f.uuid, "uuid", path, require_uuid));
  SGSYNC_TRY_STATUS(CheckDistribution(f, path, max_level));
  SGSYNC_TRY_STATUS(CheckNonNegative(f.timestamp, "timestamp", path));
  SGSYNC_TRY(auto deleted, OptBool(f.deleted, "deleted", path));
  (void)deleted;
  SGSYNC_TRY_STATUS(CheckTags(f, path));
  return CheckSharingGroup(f.sharing_group, path);
}

// Calls fn(item, path) for every item of `list` (the value of `key` in the object at `path`; null:
// absent). An item's path is built only when it fails: the checks are pure, so the failing item is
// checked again with its path to name it (a path for every attribute was a string built per item).
template <typename Fn>
Status ForEachObjectIn(const json::value* list, std::string_view key, std::string_view path, Fn fn) {
  if (list == nullptr || list->is_null()) return {};
  if (!list->is_array()) return Expect(false, Child(path, key), "an array", *list);
  const json::array& items = list->get_array();
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].is_object() && fn(items[i].get_object(), std::string_view()).ok()) continue;
    const std::string ipath = Index(Child(path, key), i);
    SGSYNC_TRY_STATUS(Expect(items[i].is_object(), ipath, "an object", items[i]));
    return fn(items[i].get_object(), ipath);
  }
  return {};
}

template <typename Fn>
Status ForEachObjectIn(const json::object& o, std::string_view key, std::string_view path, Fn fn) {
  return ForEachObjectIn(o.if_contains(key), key, path, fn);
}

Status CheckAttribute(const json::object& a, std::string_view path) {
  const ElementFields f(a);
  SGSYNC_TRY_STATUS(CheckElement(f, path, 5, false));
  SGSYNC_TRY_STATUS(
      CheckOptionalType(f.type, "type", path, json::kind::string, "an attribute type (string)"));
  SGSYNC_TRY(auto to_ids, OptBool(f.to_ids, "to_ids", path));
  (void)to_ids;
  SGSYNC_TRY_STATUS(
      ForEachObjectIn(f.sighting, "Sighting", path, [](const json::object& s, std::string_view p) -> Status {
        SGSYNC_TRY_STATUS(CheckUuidField(s, "uuid", p, false));
        return CheckNonNegative(s, "date_sighting", p);
      }));
  return ForEachObjectIn(f.shadow_attribute, "ShadowAttribute", path,
                         [](const json::object& s, std::string_view p) -> Status {
                           return CheckUuidField(s, "uuid", p, false);
                         });
}

Status CheckObject(const json::object& o, std::string_view path) {
  const ElementFields f(o);
  SGSYNC_TRY_STATUS(CheckElement(f, path, 5, false));
  SGSYNC_TRY_STATUS(CheckUuid(f.template_uuid, "template_uuid", path, false));
  SGSYNC_TRY_STATUS(ForEachObjectIn(f.attribute, "Attribute", path, CheckAttribute));
  return ForEachObjectIn(f.object_reference, "ObjectReference", path,
                         [](const json::object& r, std::string_view p) -> Status {
                           SGSYNC_TRY_STATUS(CheckUuidField(r, "uuid", p, false));
                           SGSYNC_TRY_STATUS(CheckUuidField(r, "referenced_uuid", p, false));
                           SGSYNC_TRY_STATUS(CheckNonNegative(r, "timestamp", p));
                           SGSYNC_TRY(auto deleted, OptBool(r, "deleted", p));
                           (void)deleted;
                           return Status();
                         });
}

}  // namespace

std::string_view DistributionName(int level) {
  switch (level) {
    case 0:
      return "your organisation only";
    case 1:
      return "this community only";
    case 2:
      return "connected communities";
    case 3:
      return "all communities";
    case 4:
      return "sharing group";
    case 5:
      return "inherit event";
    default:
      return "unknown";
  }
}

bool TagView::local() const {
  if (row_ != nullptr && row_->contains("local")) return BoolOr(*row_, "local", false);
  return BoolOr(*tag_, "local", false);
}

std::optional<std::string_view> TagView::relationship_type() const {
  for (const json::object* o : std::initializer_list<const json::object*>{row_, tag_}) {
    if (o == nullptr) continue;
    const json::value* v = o->if_contains("relationship_type");
    if (v != nullptr && v->is_string()) return std::string_view(v->get_string());
  }
  return std::nullopt;
}

bool HasElements(const json::object& event) {
  for (const char* key : {"Attribute", "Object", "EventReport"}) {
    const json::value* v = event.if_contains(key);
    if (v != nullptr && v->is_array() && !v->get_array().empty()) return true;
  }
  return false;
}

std::vector<TagView> TagsOf(json::object& element) {
  std::vector<TagView> out;
  for (std::string_view key : {"Tag", "EventTag", "AttributeTag"}) {
    json::value* list = element.if_contains(key);
    if (list == nullptr || !list->is_array()) continue;
    for (auto& row : list->get_array()) {
      if (!row.is_object()) continue;
      if (key == "Tag") {
        out.emplace_back(row.get_object(), nullptr);
        continue;
      }
      json::value* nested = row.get_object().if_contains("Tag");
      if (nested != nullptr && nested->is_object()) out.emplace_back(nested->get_object(), &row.get_object());
    }
  }
  return out;
}

std::vector<std::string_view> SharingGroupView::org_uuids() const {
  std::vector<std::string_view> out;
  const json::value* list = holder_->if_contains("SharingGroupOrg");
  if (list == nullptr || !list->is_array()) return out;
  for (const auto& row : list->get_array()) {
    if (!row.is_object()) continue;
    std::string_view uuid = NestedUuid(row.get_object(), "Organisation");
    if (!uuid.empty()) out.push_back(uuid);
  }
  return out;
}

std::vector<SharingGroupServerRow> SharingGroupView::servers() const {
  std::vector<SharingGroupServerRow> out;
  const json::value* list = holder_->if_contains("SharingGroupServer");
  if (list == nullptr || !list->is_array()) return out;
  for (const auto& row : list->get_array()) {
    if (!row.is_object()) continue;
    const json::object& r = row.get_object();
    SharingGroupServerRow s;
    s.server_id = IntOr(r, "server_id", 0);
    s.all_orgs = BoolOr(r, "all_orgs", false);
    if (const json::object* server = ObjectField(r, "Server")) {
      s.url = StringOr(*server, "url");
      s.name = StringOr(*server, "name");
    }
    out.push_back(s);
  }
  return out;
}

std::optional<int> ElementView::distribution() const {
  const json::value* v = o_->if_contains("distribution");
  if (v == nullptr || v->is_null()) return std::nullopt;
  return static_cast<int>(IntOr(*o_, "distribution", 0));
}

std::optional<SharingGroupView> ElementView::sharing_group() const {
  const json::object* sg = ObjectField(*o_, "SharingGroup");
  if (sg == nullptr) return std::nullopt;
  return SharingGroupView(*sg);
}

json::array* ElementView::ArrayField(std::string_view key) const {
  json::value* v = o_->if_contains(key);
  return v != nullptr && v->is_array() ? &v->get_array() : nullptr;
}

std::vector<AttributeView> ObjectView::attribute_views() const {
  return ViewsOf<AttributeView>(attributes());
}
std::vector<AttributeView> EventView::attribute_views() const { return ViewsOf<AttributeView>(attributes()); }
std::vector<ObjectView> EventView::object_views() const { return ViewsOf<ObjectView>(objects()); }
std::vector<ReportView> EventView::report_views() const { return ViewsOf<ReportView>(reports()); }

std::string_view EventView::orgc_uuid() const {
  std::string_view nested = NestedUuid(*o_, "Orgc");
  return nested.empty() ? StringOr(*o_, "orgc_uuid") : nested;
}
std::string_view EventView::org_uuid() const { return NestedUuid(*o_, "Org"); }
std::string_view EventView::orgc_name() const {
  const json::object* orgc = ObjectField(*o_, "Orgc");
  return orgc != nullptr ? StringOr(*orgc, "name") : std::string_view();
}

std::string_view SightingView::org_uuid() const { return NestedUuid(*o_, "Organisation"); }

std::string_view ProposalView::org_uuid() const {
  std::string_view nested = NestedUuid(*o_, "Org");
  return nested.empty() ? StringOr(*o_, "org_uuid") : nested;
}

namespace {
std::optional<int> DistributionOf(const json::object& o) {
  const json::value* v = o.if_contains("distribution");
  if (v == nullptr || v->is_null()) return std::nullopt;
  return static_cast<int>(IntOr(v, 0));
}

// Every element of the event that can carry sightings, proposals or analyst data, the event first.
template <typename Fn>
void ForEachCarrier(json::object& event, Fn fn) {
  fn(event, false);
  auto each = [&](json::object& holder, const char* key, bool is_attribute) {
    json::value* list = holder.if_contains(key);
    if (list == nullptr || !list->is_array()) return;
    for (auto& item : list->get_array()) {
      if (item.is_object()) fn(item.get_object(), is_attribute);
    }
  };
  each(event, "Attribute", true);
  each(event, "EventReport", false);
  if (json::value* objects = event.if_contains("Object"); objects != nullptr && objects->is_array()) {
    for (auto& o : objects->get_array()) {
      if (!o.is_object()) continue;
      fn(o.get_object(), false);
      each(o.get_object(), "Attribute", true);
    }
  }
}

template <typename View>
void Collect(json::object& holder, std::string_view key, std::vector<View>& out) {
  json::value* list = holder.if_contains(key);
  if (list == nullptr || !list->is_array()) return;
  for (auto& item : list->get_array()) {
    if (item.is_object()) out.emplace_back(item.get_object());
  }
}
}  // namespace

std::optional<int> GalaxyClusterView::distribution() const { return DistributionOf(*o_); }
std::optional<int> AnalystDataView::distribution() const { return DistributionOf(*o_); }

std::vector<SightingView> EventView::sightings() const {
  std::vector<SightingView> out;
  ForEachCarrier(*o_, [&](json::object& el, bool is_attribute) {
    if (is_attribute) Collect(el, "Sighting", out);
  });
  return out;
}

std::vector<ProposalView> EventView::proposals() const {
  std::vector<ProposalView> out;
  ForEachCarrier(*o_, [&](json::object& el, bool is_attribute) {
    if (is_attribute || &el == o_) Collect(el, "ShadowAttribute", out);
  });
  return out;
}

std::vector<GalaxyClusterView> EventView::galaxy_clusters() const {
  std::vector<GalaxyClusterView> out;
  ForEachCarrier(*o_, [&](json::object& el, bool) {
    json::value* galaxies = el.if_contains("Galaxy");
    if (galaxies == nullptr || !galaxies->is_array()) return;
    for (auto& g : galaxies->get_array()) {
      if (g.is_object()) Collect(g.get_object(), "GalaxyCluster", out);
    }
  });
  return out;
}

std::vector<AnalystDataView> EventView::analyst_data() const {
  std::vector<AnalystDataView> out;
  ForEachCarrier(*o_, [&](json::object& el, bool) {
    for (std::string_view kind : {"Note", "Opinion", "Relationship"}) {
      json::value* list = el.if_contains(kind);
      if (list == nullptr || !list->is_array()) continue;
      for (auto& item : list->get_array()) {
        if (item.is_object()) out.emplace_back(item.get_object(), kind);
      }
    }
  });
  return out;
}

Status ValidateEvent(const json::object& e, std::string_view path, const DecodeOptions& options) {
  SGSYNC_TRY_STATUS(CheckElement(ElementFields(e), path, 4, options.require_uuid));
  SGSYNC_TRY_STATUS(CheckNonNegative(e, "publish_timestamp", path));
  SGSYNC_TRY_STATUS(CheckNonNegative(e, "sighting_timestamp", path));
  for (std::string_view flag : {"published", "locked", "disable_correlation"}) {
    SGSYNC_TRY(auto b, OptBool(e, flag, path));
    (void)b;
  }
  SGSYNC_TRY_STATUS(CheckOptionalType(e, "info", path, json::kind::string, "a string"));
  for (std::string_view org : {"Orgc", "Org"}) {
    SGSYNC_TRY_STATUS(CheckOptionalType(e, org, path, json::kind::object, "an organisation object"));
    if (const json::object* o = ObjectField(e, org)) {
      SGSYNC_TRY_STATUS(CheckUuidField(*o, "uuid", Child(path, org), false));
    }
  }
  SGSYNC_TRY_STATUS(ForEachObjectIn(e, "Attribute", path, CheckAttribute));
  SGSYNC_TRY_STATUS(ForEachObjectIn(e, "Object", path, CheckObject));
  SGSYNC_TRY_STATUS(
      ForEachObjectIn(e, "EventReport", path, [](const json::object& r, std::string_view p) -> Status {
        return CheckElement(ElementFields(r), p, 5, false);
      }));
  return ForEachObjectIn(e, "ShadowAttribute", path, [](const json::object& s, std::string_view p) -> Status {
    return CheckUuidField(s, "uuid", p, false);
  });
}

json::object& EventDocument::EventObject() {
  switch (envelope_) {
    case Envelope::kWrapped:
      return root_.get_object()["Event"].get_object();
    case Envelope::kBare:
      return root_.get_object();
    case Envelope::kResponseWrapped:
      return root_.get_object()["response"].get_array()[0].get_object()["Event"].get_object();
    case Envelope::kResponseBare:
      return root_.get_object()["response"].get_array()[0].get_object();
  }
  return root_.get_object();
}

Result<EventDocument> EventDocument::FromJson(json::value root, const DecodeOptions& options) {
  if (!root.is_object()) {
    return Fail(ErrorCode::kParse, "expected an event object, found " + Describe(root), "$");
  }
  json::object& top = root.get_object();
  Envelope envelope = Envelope::kBare;
  std::string path;
  const json::value* inner = nullptr;
  if ((inner = top.if_contains("Event")) != nullptr) {
    envelope = Envelope::kWrapped;
    path = "Event";
  } else if (const json::value* response = top.if_contains("response")) {
    if (!response->is_array() || response->get_array().size() != 1) {
      return Fail(ErrorCode::kParse,
                  "expected a list of exactly one event, found " + Describe(*response) +
                      (response->is_array() ? " of " + std::to_string(response->get_array().size()) : ""),
                  "response");
    }
    const json::value& first = response->get_array()[0];
    if (first.is_object() && first.get_object().contains("Event")) {
      envelope = Envelope::kResponseWrapped;
      path = "response[0].Event";
      inner = first.get_object().if_contains("Event");
    } else {
      envelope = Envelope::kResponseBare;
      path = "response[0]";
      inner = &first;
    }
  } else {
    inner = &root;
  }
  if (!inner->is_object()) {
    return Fail(ErrorCode::kParse, "expected an event object, found " + Describe(*inner),
                path.empty() ? "$" : path);
  }
  SGSYNC_TRY_STATUS(ValidateEvent(inner->get_object(), path, options));
  return EventDocument(std::move(root), envelope);
}

Result<EventDocument> EventDocument::Parse(std::string_view bytes, const DecodeOptions& options) {
  SGSYNC_TRY(json::value root, ParseJson(bytes, options.limits));
  return FromJson(std::move(root), options);
}

EventDocument EventDocument::Wrap(json::object event) {
  // In the event's own storage (a parsed document's arena): a default-storage envelope would copy
  // the whole event into the heap instead of taking it.
  json::object top(event.storage());
  top["Event"] = std::move(event);
  return EventDocument(json::value(std::move(top)), Envelope::kWrapped);
}

Result<std::vector<EventDocument>> DecodeEventList(json::value root, const DecodeOptions& options,
                                                   std::shared_ptr<const void> arena) {
  json::array* items = nullptr;
  std::string path;
  if (root.is_array()) {
    items = &root.get_array();
  } else if (root.is_object() && root.get_object().contains("response") &&
             root.get_object()["response"].is_array()) {
    items = &root.get_object()["response"].get_array();
    path = "response";
  } else {
    return Fail(ErrorCode::kParse, "expected a list of events, found " + Describe(root), "$");
  }
  std::vector<EventDocument> out;
  out.reserve(items->size());
  for (std::size_t i = 0; i < items->size(); ++i) {
    std::string ipath = Index(path, i);
    json::value& item = (*items)[i];
    if (!item.is_object()) {
      return Fail(ErrorCode::kParse, "expected an event object, found " + Describe(item), ipath);
    }
    json::object& obj = item.get_object();
    bool wrapped = obj.contains("Event");
    json::value& event = wrapped ? obj["Event"] : item;
    std::string epath = wrapped ? Child(ipath, "Event") : ipath;
    if (!event.is_object()) {
      return Fail(ErrorCode::kParse, "expected an event object, found " + Describe(event), epath);
    }
    SGSYNC_TRY_STATUS(ValidateEvent(event.get_object(), epath, options));
    // Taken, not copied: the events keep the answer's arena, which several threads may allocate
    // from at once (JsonReader's arena is thread-safe), and which goes when the last of them does
    // (or, caller-owned, with the last document or engine item holding `arena`).
    out.push_back(EventDocument::Wrap(std::move(event.get_object())));
    out.back().arena_ = arena;
  }
  return out;
}

}  // namespace sgsync::misp
