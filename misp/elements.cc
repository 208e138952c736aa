#include "misp/elements.h"

#include <algorithm>
#include <stdexcept>
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

// The names of a Tag list's tags.
void AddTagNames(const json::array& tags, std::vector<std::string_view>& out) {
  for (const json::value& t : tags)
    if (t.is_object()) out.push_back(StringOr(t.get_object(), "name"));
}

// An element's uuid and deleted flag in one pass over its entries; and its tags' names, when asked.
void ReadIdentity(const json::object& e, std::string_view& uuid, bool& deleted,
                  std::vector<std::string_view>* tag_names = nullptr) {
  uuid = {};
  deleted = false;
  for (const json::key_value_pair& kv : e) {
    const std::string_view k = kv.key();
    if (k.size() == 4 && k == "uuid") {
      if (kv.value().is_string()) uuid = kv.value().get_string();
    } else if (k.size() == 7 && k == "deleted") {
      auto d = ReadBool(kv.value(), {});
      deleted = d.ok() && *d;
    } else if (tag_names != nullptr && k.size() == 3 && k == "Tag" && kv.value().is_array()) {
      AddTagNames(kv.value().get_array(), *tag_names);
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

SentElements::SentElements(const json::object& sent) : sent_(sent) {
  const json::array* attributes = ListOf(sent, "Attribute");
  const json::array* objects = ListOf(sent, "Object");
  const json::array* reports = ListOf(sent, "EventReport");
  std::size_t count = (attributes ? attributes->size() : 0) + (reports ? reports->size() : 0);
  if (objects != nullptr) {
    for (const json::value& o : *objects) {
      ++count;
      if (!o.is_object()) continue;
      if (const json::array* inner = ListOf(o.get_object(), "Attribute")) count += inner->size();
    }
  }
  elements_.reserve(count);
  auto add = [&](const json::value& v, Kind kind, std::size_t index, std::size_t object) {
    if (!v.is_object()) return;
    Element el{{},    {},   static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(object), kind,
               false, false};
    ReadIdentity(v.get_object(), el.uuid, el.deleted, kind == Kind::kReport ? nullptr : &tag_names_);
    if (auto packed = UuidSet::Pack(el.uuid)) {
      el.packed = *packed;
      el.is_uuid = true;
    }
    elements_.push_back(el);
  };
  if (attributes != nullptr)
    for (std::size_t i = 0; i < attributes->size(); ++i) add((*attributes)[i], Kind::kAttribute, i, 0);
  if (objects != nullptr) {
    for (std::size_t i = 0; i < objects->size(); ++i) {
      const json::value& o = (*objects)[i];
      add(o, Kind::kObject, i, 0);
      if (!o.is_object()) continue;
      if (const json::array* inner = ListOf(o.get_object(), "Attribute"))
        for (std::size_t k = 0; k < inner->size(); ++k) add((*inner)[k], Kind::kObjectAttribute, k, i);
    }
  }
  if (reports != nullptr)
    for (std::size_t i = 0; i < reports->size(); ++i) add((*reports)[i], Kind::kReport, i, 0);
  if (const json::array* tags = ListOf(sent, "Tag")) AddTagNames(*tags, tag_names_);
  std::sort(tag_names_.begin(), tag_names_.end());
  tag_names_.erase(std::unique(tag_names_.begin(), tag_names_.end()), tag_names_.end());
}

const json::object& SentElements::At(const Element& e) const {
  switch (e.kind) {
    case Kind::kAttribute:
      return (*ListOf(sent_, "Attribute"))[e.index].get_object();
    case Kind::kObject:
      return (*ListOf(sent_, "Object"))[e.index].get_object();
    case Kind::kObjectAttribute:
      return (*ListOf((*ListOf(sent_, "Object"))[e.object].get_object(), "Attribute"))[e.index].get_object();
    case Kind::kReport:
      return (*ListOf(sent_, "EventReport"))[e.index].get_object();
  }
  throw std::logic_error("SentElements: an element of no kind");
}

// Paths and descriptions are made for the missing elements only: made for every element, their
// strings were most of this check's cost (it runs on every write, for every element sent).
std::vector<MissingElement> SentElements::MissingFrom(const UuidSet& held) const {
  std::vector<MissingElement> out;
  // The uuid first: almost every element is held, and a deleted one is then not missing anyway.
  auto missing = [&](const Element& e) {
    return !e.uuid.empty() && !(e.is_uuid ? held.Contains(e.packed) : held.Contains(e.uuid)) && !e.deleted;
  };
  bool object_missing = false;  // an object's attributes go with it: the object is named, not each again
  for (const Element& e : elements_) {
    if (e.kind == Kind::kObjectAttribute && object_missing) continue;
    if (e.kind == Kind::kObject) object_missing = missing(e);
    if (!missing(e)) continue;
    switch (e.kind) {
      case Kind::kAttribute:
        out.push_back({"Attribute", std::string(e.uuid), Index("Event.Attribute", e.index),
                       Describe("Attribute", At(e))});
        break;
      case Kind::kObject:
        out.push_back(
            {"Object", std::string(e.uuid), Index("Event.Object", e.index), Describe("Object", At(e))});
        break;
      case Kind::kObjectAttribute:
        out.push_back({"Attribute", std::string(e.uuid),
                       Index(Child(Index("Event.Object", e.object), "Attribute"), e.index),
                       Describe("Attribute", At(e))});
        break;
      case Kind::kReport:
        out.push_back({"EventReport", std::string(e.uuid), Index("Event.EventReport", e.index),
                       Describe("EventReport", At(e))});
        break;
    }
  }
  return out;
}

}  // namespace sgsync::misp
