#include "misp/elements.h"

#include <set>

#include "common/encoding.h"

namespace sgsync::misp {
namespace {

const json::array* ListOf(const json::object& holder, const char* key) {
  const json::value* v = holder.if_contains(key);
  return v != nullptr && v->is_array() ? &v->get_array() : nullptr;
}

// Calls fn(kind, element, path) for every element of an event.
template <typename Fn>
void EachElement(const json::object& event, Fn fn) {
  auto attributes = [&](const json::object& holder, const std::string& path) {
    if (const json::array* list = ListOf(holder, "Attribute")) {
      for (std::size_t i = 0; i < list->size(); ++i)
        if ((*list)[i].is_object()) fn("Attribute", (*list)[i].get_object(), Index(Child(path, "Attribute"), i));
    }
  };
  attributes(event, "Event");
  if (const json::array* objects = ListOf(event, "Object")) {
    for (std::size_t i = 0; i < objects->size(); ++i) {
      if (!(*objects)[i].is_object()) continue;
      std::string path = Index("Event.Object", i);
      fn("Object", (*objects)[i].get_object(), path);
      attributes((*objects)[i].get_object(), path);
    }
  }
  if (const json::array* reports = ListOf(event, "EventReport")) {
    for (std::size_t i = 0; i < reports->size(); ++i)
      if ((*reports)[i].is_object()) fn("EventReport", (*reports)[i].get_object(), Index("Event.EventReport", i));
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
  EachElement(saved, [&](const char*, const json::object& e, const std::string&) {
    held.Insert(StringOr(e, "uuid"));
  });
  return ElementsMissingFrom(sent, held);
}

std::vector<MissingElement> ElementsMissingFrom(const json::object& sent, const UuidSet& held) {
  std::vector<MissingElement> out;
  std::set<std::string> missing_objects;
  EachElement(sent, [&](const char* kind, const json::object& e, const std::string& path) {
    if (BoolOr(e, "deleted", false)) return;
    std::string_view uuid = StringOr(e, "uuid");
    if (uuid.empty() || held.Contains(uuid)) return;
    // An object's attributes go with it: the object is named, not each of them again.
    std::string parent = path.substr(0, path.find(".Attribute"));
    if (std::string(kind) == "Attribute" && missing_objects.count(parent)) return;
    if (std::string(kind) == "Object") missing_objects.insert(path);
    out.push_back(MissingElement{kind, std::string(StringOr(e, "uuid")), path, Describe(kind, e)});
  });
  return out;
}

}  // namespace sgsync::misp
