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

}  // namespace

std::vector<MissingElement> ElementsMissingFrom(const json::object& sent, const json::object& saved) {
  UuidSet held;
  EachElement(saved, [&](const json::object& e) { held.Insert(StringOr(e, "uuid")); });
  return ElementsMissingFrom(sent, held);
}

// Paths and descriptions are made for the missing elements only: made for every element, their
// strings were most of this check's cost (it runs on every write, for every element sent).
std::vector<MissingElement> ElementsMissingFrom(const json::object& sent, const UuidSet& held) {
  std::vector<MissingElement> out;
  // The uuid first: almost every element is held, and then its `deleted` flag need not be looked up
  // (that look-up was 2% of a push's CPU, docs/performance.md).
  auto missing = [&](const json::object& e) {
    std::string_view uuid = StringOr(e, "uuid");
    return !uuid.empty() && !held.Contains(uuid) && !BoolOr(e, "deleted", false);
  };
  auto add = [&](const char* kind, const json::object& e, std::string path) {
    out.push_back(MissingElement{kind, std::string(StringOr(e, "uuid")), std::move(path), Describe(kind, e)});
  };
  auto attributes = [&](const json::object& holder, const std::string& path) {
    const json::array* list = ListOf(holder, "Attribute");
    if (list == nullptr) return;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const json::value& v = (*list)[i];
      if (v.is_object() && missing(v.get_object()))
        add("Attribute", v.get_object(), Index(Child(path, "Attribute"), i));
    }
  };
  attributes(sent, "Event");
  if (const json::array* objects = ListOf(sent, "Object")) {
    for (std::size_t i = 0; i < objects->size(); ++i) {
      if (!(*objects)[i].is_object()) continue;
      const json::object& o = (*objects)[i].get_object();
      std::string path = Index("Event.Object", i);
      // An object's attributes go with it: the object is named, not each of them again.
      if (missing(o)) {
        add("Object", o, std::move(path));
      } else {
        attributes(o, path);
      }
    }
  }
  if (const json::array* reports = ListOf(sent, "EventReport")) {
    for (std::size_t i = 0; i < reports->size(); ++i) {
      const json::value& v = (*reports)[i];
      if (v.is_object() && missing(v.get_object()))
        add("EventReport", v.get_object(), Index("Event.EventReport", i));
    }
  }
  return out;
}

}  // namespace sgsync::misp
