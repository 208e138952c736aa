// misp/event.h: MISP events as sgsync reads and writes them.
//
// An EventDocument owns the JSON exactly as it arrived (Boost.JSON keeps every key in order with its
// JSON type), so parse -> modify -> serialize never drops a field a newer MISP added. Typed views
// (EventView, AttributeView, ObjectView, ReportView, TagView, SharingGroupView) read and write the
// fields the policy and the engine need, in MISP's loose typing on the way in and in MISP 2.5's own
// form on the way out (integers as strings, booleans as booleans; docs/misp-json.md).
//
// Documents are validated when they are made (ValidateEvent): after that the views' accessors do not
// fail. Views point into their document and live no longer than it; they are not thread-safe.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/result.h"
#include "misp/json.h"

namespace sgsync::misp {

// Distribution levels (spec 2.1). Level 5 is valid on elements only, never on an event.
enum class Distribution : int {
  kOrganisation = 0,
  kCommunity = 1,
  kConnected = 2,
  kAll = 3,
  kSharingGroup = 4,
  kInherit = 5,
};
std::string_view DistributionName(int level);

// One tag on an event or attribute, in either of MISP's forms: a `Tag[]` entry (the tag with its
// `local` flag), or an `EventTag[]`/`AttributeTag[]` row holding `local` and a nested `Tag`.
class TagView {
 public:
  TagView(json::object& tag, json::object* row) : tag_(&tag), row_(row) {}
  std::string_view name() const { return StringOr(*tag_, "name"); }
  // `local` is read from the row in the EventTag form, from the tag itself otherwise.
  bool local() const;
  // Tags are exportable unless they say otherwise.
  bool exportable() const { return BoolOr(*tag_, "exportable", true); }
  std::optional<std::string_view> relationship_type() const;
  json::object& json() const { return *tag_; }

 private:
  json::object* tag_;
  json::object* row_;
};

// Tags of an element in document order, in whichever form the element carries them.
std::vector<TagView> TagsOf(json::object& element);

// Whether the event carries any attribute, object or report (deleted or not): MISP refuses to add a
// published event that carries none (Event::_add).
bool HasElements(const json::object& event);
// Removes the tags for which `drop(tag)` is true, in both forms; returns the names removed.
template <typename Pred>
std::vector<std::string> RemoveTagsIf(json::object& element, Pred drop);

// A sharing group, as embedded in an element (`SharingGroup` with nested `SharingGroupOrg[]` and
// `SharingGroupServer[]`) or as an index row (the same arrays beside `SharingGroup`).
struct SharingGroupServerRow {
  std::int64_t server_id = 0;  // 0 = the instance that serves the group
  std::string_view url;
  std::string_view name;
  bool all_orgs = false;
};
class SharingGroupView {
 public:
  // `group` is the SharingGroup object; `holder` the object holding the member arrays when they
  // are not inside `group` (index rows), else the group itself.
  explicit SharingGroupView(const json::object& group, const json::object* holder = nullptr)
      : group_(&group), holder_(holder ? holder : &group) {}
  std::string_view uuid() const { return StringOr(*group_, "uuid"); }
  std::string_view name() const { return StringOr(*group_, "name"); }
  std::string_view releasability() const { return StringOr(*group_, "releasability"); }
  std::string_view organisation_uuid() const { return StringOr(*group_, "organisation_uuid"); }
  bool roaming() const { return BoolOr(*group_, "roaming", false); }
  bool active() const { return BoolOr(*group_, "active", true); }
  bool local() const { return BoolOr(*group_, "local", false); }
  std::vector<std::string_view> org_uuids() const;  // SharingGroupOrg[].Organisation.uuid
  std::vector<SharingGroupServerRow> servers() const;
  const json::object& json() const { return *group_; }

 private:
  const json::object* group_;
  const json::object* holder_;
};

// A sighting (`Attribute.Sighting[]`, or a sightings/restSearch row).
class SightingView {
 public:
  explicit SightingView(json::object& o) : o_(&o) {}
  json::object& json() const { return *o_; }
  std::string_view uuid() const { return StringOr(*o_, "uuid"); }
  std::string_view attribute_uuid() const { return StringOr(*o_, "attribute_uuid"); }
  std::int64_t date_sighting() const { return IntOr(*o_, "date_sighting", 0); }
  // 0 sighting, 1 false positive, 2 expiration.
  std::int64_t type() const { return IntOr(*o_, "type", 0); }
  std::string_view source() const { return StringOr(*o_, "source"); }
  // The reporting organisation (`Organisation.uuid`); empty when anonymised.
  std::string_view org_uuid() const;

 private:
  json::object* o_;
};

// A proposal (ShadowAttribute) on an event or attribute.
class ProposalView {
 public:
  explicit ProposalView(json::object& o) : o_(&o) {}
  json::object& json() const { return *o_; }
  std::string_view uuid() const { return StringOr(*o_, "uuid"); }
  std::string_view event_uuid() const { return StringOr(*o_, "event_uuid"); }
  std::int64_t timestamp() const { return IntOr(*o_, "timestamp", 0); }
  bool deleted() const { return BoolOr(*o_, "deleted", false); }
  bool proposal_to_delete() const { return BoolOr(*o_, "proposal_to_delete", false); }
  std::string_view org_uuid() const;  // `Org.uuid`, or `org_uuid` in the index form

 private:
  json::object* o_;
};

// A galaxy cluster as events carry it (`Galaxy[].GalaxyCluster[]`).
class GalaxyClusterView {
 public:
  explicit GalaxyClusterView(json::object& o) : o_(&o) {}
  json::object& json() const { return *o_; }
  std::string_view uuid() const { return StringOr(*o_, "uuid"); }
  std::string_view value() const { return StringOr(*o_, "value"); }
  std::string_view tag_name() const { return StringOr(*o_, "tag_name"); }
  std::int64_t version() const { return IntOr(*o_, "version", 0); }
  bool is_default() const { return BoolOr(*o_, "default", false); }
  std::optional<int> distribution() const;

 private:
  json::object* o_;
};

// Analyst data (spec 8.5): a Note, an Opinion or a Relationship attached to an event or element.
class AnalystDataView {
 public:
  AnalystDataView(json::object& o, std::string_view kind) : o_(&o), kind_(kind) {}
  json::object& json() const { return *o_; }
  std::string_view kind() const { return kind_; }  // "Note", "Opinion" or "Relationship"
  std::string_view uuid() const { return StringOr(*o_, "uuid"); }
  std::string_view object_uuid() const { return StringOr(*o_, "object_uuid"); }
  std::string_view orgc_uuid() const { return StringOr(*o_, "orgc_uuid"); }
  std::string_view modified() const { return StringOr(*o_, "modified"); }  // "YYYY-MM-DD hh:mm:ss"
  std::optional<int> distribution() const;
  bool locked() const { return BoolOr(*o_, "locked", false); }

 private:
  json::object* o_;
  std::string_view kind_;
};

// What every distributable element (event, attribute, object, report) has.
class ElementView {
 public:
  explicit ElementView(json::object& o) : o_(&o) {}
  json::object& json() const { return *o_; }
  std::string_view uuid() const { return StringOr(*o_, "uuid"); }
  // Absent on feed-format events and on some requests.
  std::optional<int> distribution() const;
  std::int64_t sharing_group_id() const { return IntOr(*o_, "sharing_group_id", 0); }
  // The embedded SharingGroup, when the element carries one.
  std::optional<SharingGroupView> sharing_group() const;
  std::int64_t timestamp() const { return IntOr(*o_, "timestamp", 0); }
  bool deleted() const { return BoolOr(*o_, "deleted", false); }
  std::vector<TagView> tags() const { return TagsOf(*o_); }

  void set_distribution(int level) { WriteInt(*o_, "distribution", level); }
  void set_sharing_group_id(std::int64_t id) { WriteInt(*o_, "sharing_group_id", id); }
  void set_timestamp(std::int64_t t) { WriteInt(*o_, "timestamp", t); }
  void set_deleted(bool d) { WriteBool(*o_, "deleted", d); }

 protected:
  json::array* ArrayField(std::string_view key) const;

  json::object* o_;
};

class AttributeView : public ElementView {
 public:
  using ElementView::ElementView;
  std::string_view type() const { return StringOr(*o_, "type"); }
  std::string_view category() const { return StringOr(*o_, "category"); }
  std::string_view value() const { return StringOr(*o_, "value"); }
  std::string_view object_relation() const { return StringOr(*o_, "object_relation"); }
  bool to_ids() const { return BoolOr(*o_, "to_ids", false); }
  json::array* sightings() const { return ArrayField("Sighting"); }
  json::array* proposals() const { return ArrayField("ShadowAttribute"); }
};

class ObjectView : public ElementView {
 public:
  using ElementView::ElementView;
  std::string_view name() const { return StringOr(*o_, "name"); }
  std::string_view template_uuid() const { return StringOr(*o_, "template_uuid"); }
  json::array* attributes() const { return ArrayField("Attribute"); }
  json::array* references() const { return ArrayField("ObjectReference"); }
  std::vector<AttributeView> attribute_views() const;
};

class ReportView : public ElementView {
 public:
  using ElementView::ElementView;
  std::string_view name() const { return StringOr(*o_, "name"); }
  std::string_view content() const { return StringOr(*o_, "content"); }
};

class EventView : public ElementView {
 public:
  using ElementView::ElementView;
  std::string_view info() const { return StringOr(*o_, "info"); }
  bool published() const { return BoolOr(*o_, "published", false); }
  bool locked() const { return BoolOr(*o_, "locked", false); }
  bool is_protected() const { return BoolOr(*o_, "protected", false); }
  std::int64_t publish_timestamp() const { return IntOr(*o_, "publish_timestamp", 0); }
  std::int64_t sighting_timestamp() const { return IntOr(*o_, "sighting_timestamp", 0); }
  // Creator organisation (`Orgc`) and owner organisation (`Org`) uuids; empty when absent.
  std::string_view orgc_uuid() const;
  std::string_view org_uuid() const;
  std::string_view orgc_name() const;

  json::array* attributes() const { return ArrayField("Attribute"); }
  json::array* objects() const { return ArrayField("Object"); }
  json::array* reports() const { return ArrayField("EventReport"); }
  std::vector<AttributeView> attribute_views() const;
  std::vector<ObjectView> object_views() const;
  std::vector<ReportView> report_views() const;

  // Everything else an event carries, in document order: sightings of every attribute (standalone
  // and in objects), proposals (event level and on attributes), galaxy clusters, analyst data
  // (on the event, its attributes, objects and reports), cryptographic keys (`protected` events).
  std::vector<SightingView> sightings() const;
  std::vector<ProposalView> proposals() const;
  std::vector<GalaxyClusterView> galaxy_clusters() const;
  std::vector<AnalystDataView> analyst_data() const;
  json::array* cryptographic_keys() const { return ArrayField("CryptographicKey"); }

  void set_published(bool p) { WriteBool(*o_, "published", p); }
  void set_locked(bool l) { WriteBool(*o_, "locked", l); }
};

// Calls fn(attribute) for every attribute of an event (a json::object, const or not): the
// standalone ones, then each object's.
template <typename Object, typename Fn>
  requires std::same_as<std::remove_const_t<Object>, json::object>
void ForEachAttribute(Object& event, Fn&& fn) {
  auto list = [&](Object& holder) {
    auto* attributes = holder.if_contains("Attribute");
    if (attributes == nullptr || !attributes->is_array()) return;
    for (auto& a : attributes->get_array())
      if (a.is_object()) fn(a.get_object());
  };
  list(event);
  if (auto* objects = event.if_contains("Object"); objects != nullptr && objects->is_array()) {
    for (auto& o : objects->get_array())
      if (o.is_object()) list(o.get_object());
  }
}

// The shapes an event arrives in (fixtures/SOURCES.md).
enum class Envelope {
  kWrapped,          // {"Event": {...}}: events/view, feeds, events/add bodies
  kBare,             // {...}: PyMISP re-serialisations
  kResponseWrapped,  // {"response": [{"Event": {...}}]}: events/restSearch
  kResponseBare,     // {"response": [{...}]}
};

struct DecodeOptions {
  JsonLimits limits;
  // Sync needs the uuid; feed-format and request documents may lack it.
  bool require_uuid = true;
};

// One event with the envelope it came in; Serialize() writes the same envelope back.
class EventDocument {
 public:
  // Parses and validates. Errors name the byte offset or the JSON path ("Event.Attribute[3].uuid").
  static Result<EventDocument> Parse(std::string_view bytes, const DecodeOptions& options = {});
  static Result<EventDocument> FromJson(json::value root, const DecodeOptions& options = {});
  // A document holding just `event`, in the {"Event": {...}} envelope.
  static EventDocument Wrap(json::object event);

  EventView event() { return EventView(EventObject()); }
  const json::object& event_json() const { return const_cast<EventDocument*>(this)->EventObject(); }
  Envelope envelope() const { return envelope_; }
  const json::value& root() const { return root_; }
  std::string Serialize() const { return ToJson(root_); }
  // Moves the event object out (a 150k-attribute event is not copied); the document is spent.
  // When arena() is set, the event lives in it: whoever keeps the event keeps that too.
  json::object TakeEvent() && { return std::move(EventObject()); }
  // The caller-owned arena the document lives in (ArenaOwner::kCaller), or null when its values
  // hold their storage themselves.
  const std::shared_ptr<const void>& arena() const { return arena_; }

 private:
  friend Result<std::vector<EventDocument>> DecodeEventList(json::value, const DecodeOptions&,
                                                            std::shared_ptr<const void>);
  EventDocument(json::value root, Envelope envelope) : root_(std::move(root)), envelope_(envelope) {}
  json::object& EventObject();

  std::shared_ptr<const void> arena_;  // first: it outlives root_
  json::value root_;
  Envelope envelope_;
};

// Splits a response holding several events ({"response": [...]}, or a bare list of events) into
// documents in the {"Event": {...}} envelope, each validated. The documents keep `root`'s storage
// (nothing is copied), and may be changed on different threads only if that storage is thread-safe:
// the heap, or the arena of a JsonReader (ParseJson), which every answer of a MISP is parsed into.
// `arena`: the caller-owned arena `root` lives in (ArenaOwner::kCaller), kept by every document.
Result<std::vector<EventDocument>> DecodeEventList(json::value root, const DecodeOptions& options = {},
                                                   std::shared_ptr<const void> arena = nullptr);

// Checks types and values of an event object. `path` is where the event sits ("Event").
Status ValidateEvent(const json::object& event, std::string_view path, const DecodeOptions& options = {});

// ---- implementation of the template above ----
template <typename Pred>
std::vector<std::string> RemoveTagsIf(json::object& element, Pred drop) {
  std::vector<std::string> removed;
  for (std::string_view key : {"Tag", "EventTag", "AttributeTag"}) {
    json::value* list = element.if_contains(key);
    if (list == nullptr || !list->is_array()) continue;
    json::array& rows = list->get_array();
    for (std::size_t i = rows.size(); i-- > 0;) {
      if (!rows[i].is_object()) continue;
      json::object& row = rows[i].get_object();
      json::value* nested = key == "Tag" ? nullptr : row.if_contains("Tag");
      json::object* tag = nested != nullptr && nested->is_object() ? &nested->get_object() : &row;
      TagView view(*tag, key == "Tag" ? nullptr : &row);
      if (drop(view)) {
        removed.emplace_back(view.name());
        rows.erase(rows.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
  }
  std::reverse(removed.begin(), removed.end());
  return removed;
}

}  // namespace sgsync::misp
