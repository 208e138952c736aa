#include "misp/elements.h"

#include <string_view>

#include "common/encoding.h"

namespace sgsync::misp {
namespace {

const json::array* ListOf(const json::object& holder, const char* key) {
  const json::value* v = holder.if_contains(key);
  return v != nullptr && v->is_array() ? &v->get_array() : nullptr;
}

// Calls fn(element) for every element of an event: attributes, objects and theirs, reports.
template <typename Fn>
void EachElement(const json::object& event, Fn fn) {
  for (const char* key : {"Attribute", "Object", "EventReport"}) {
    const json::array* list = ListOf(event, key);
    if (list == nullptr) continue;
    for (const json::value& v : *list) {
      if (!v.is_object()) continue;
      fn(v.get_object());
      if (key == std::string_view("Object")) {
        if (const json::array* inner = ListOf(v.get_object(), "Attribute")) {
          for (const json::value& a : *inner)
            if (a.is_object()) fn(a.get_object());
        }
      }
    }
  }
}

std::string Describe(const std::string& kind, const json::object& e) {
  if (kind == "Attribute") return std::string(StringOr(e, "type")) + " " + std::string(StringOr(e, "value")).substr(0, 80);
  if (kind == "Object") return "object " + std::string(StringOr(e, "name"));
  return "report " + std::string(StringOr(e, "name"));
}

// An element's uuid and deleted flag in one pass over its entries.
void ReadIdentity(const json::object& e, std::string_view& uuid, bool& deleted) {
  uuid = {};
  deleted = false;
  for (const json::key_value_pair& kv : e) {
    const std::string_view k = kv.key();
    if (k.size() == 4 && k == "uuid") {
      if (kv.value().is_string()) uuid = kv.value().get_string();
    } else if (k.size() == 7 && k == "deleted") {
      auto d = ReadBool(kv.value(), {});
      deleted = d.ok() && *d;
    }
  }
}

}  // namespace

std::vector<MissingElement> ElementsMissingFrom(const json::object& sent, const json::object& saved) {
  UuidSet held;
  EachElement(saved, [&](const json::object& e) { held.Insert(StringOr(e, "uuid")); });
  return ElementsMissingFrom(sent, held);
}

std::vector<MissingElement> ElementsMissingFrom(const json::object& sent, const UuidSet& held) {
  return SentElements(sent).MissingFrom(held);
}

SentElements::SentElements(const json::object& sent) {
  auto add = [&](const json::object& e, Kind kind, std::size_t index, std::size_t object) {
    Element el{{}, &e, index, object, kind, false};
    ReadIdentity(e, el.uuid, el.deleted);
    elements_.push_back(el);
  };
  auto list = [&](const json::object& holder, const char* key, Kind kind, std::size_t object) {
    const json::array* items = ListOf(holder, key);
    if (items == nullptr) return;
    for (std::size_t i = 0; i < items->size(); ++i) {
      const json::value& v = (*items)[i];
      if (!v.is_object()) continue;
      add(v.get_object(), kind, i, object);
      if (kind == Kind::kObject)
        if (const json::array* inner = ListOf(v.get_object(), "Attribute"))
          for (std::size_t k = 0; k < inner->size(); ++k)
            if ((*inner)[k].is_object()) add((*inner)[k].get_object(), Kind::kObjectAttribute, k, i);
    }
  };
  list(sent, "Attribute", Kind::kAttribute, 0);
  list(sent, "Object", Kind::kObject, 0);
  list(sent, "EventReport", Kind::kReport, 0);
}

// Paths and descriptions are made for the missing elements only: made for every element, their
// strings were most of this check's cost (it runs on every write, for every element sent).
std::vector<MissingElement> SentElements::MissingFrom(const UuidSet& held) const {
  std::vector<MissingElement> out;
  // The uuid first: almost every element is held, and a deleted one is then not missing anyway.
  auto missing = [&](const Element& e) { return !e.uuid.empty() && !held.Contains(e.uuid) && !e.deleted; };
  bool object_missing = false;  // an object's attributes go with it: the object is named, not each again
  for (const Element& e : elements_) {
    if (e.kind == Kind::kObjectAttribute && object_missing) continue;
    if (e.kind == Kind::kObject) object_missing = missing(e);
    if (!missing(e)) continue;
    switch (e.kind) {
      case Kind::kAttribute:
        out.push_back({"Attribute", std::string(e.uuid), Index("Event.Attribute", e.index),
                       Describe("Attribute", *e.element)});
        break;
      case Kind::kObject:
        out.push_back(
            {"Object", std::string(e.uuid), Index("Event.Object", e.index), Describe("Object", *e.element)});
        break;
      case Kind::kObjectAttribute:
        out.push_back({"Attribute", std::string(e.uuid),
                       Index(Child(Index("Event.Object", e.object), "Attribute"), e.index),
                       Describe("Attribute", *e.element)});
        break;
      case Kind::kReport:
        out.push_back({"EventReport", std::string(e.uuid), Index("Event.EventReport", e.index),
                       Describe("EventReport", *e.element)});
        break;
    }
  }
  return out;
}

}  // namespace sgsync::misp
