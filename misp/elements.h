// misp/elements.h: which elements of an event another copy of it lacks.
//
// A receiving MISP may accept an event and silently drop some of its elements (an object whose
// `description` is empty: "Description cannot be empty."; a sharing group it cannot capture on an
// edit; an attribute uuid held by another event). Comparing what was sent with what the receiver
// answered it saved (the add/edit answer, or a view of its copy) tells which.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "misp/json.h"
#include "misp/uuid_set.h"

namespace sgsync::misp {

struct MissingElement {
  std::string kind;  // "Attribute", "Object", "EventReport"
  std::string uuid;
  std::string path;  // where it was in the sent event: "Event.Object[2]"
  std::string what;  // "domain example.org", "object domain-ip", "report <name>", for people
};

// The elements of `sent` that are not soft-deleted and that `saved` does not hold (by uuid, any
// case, wherever in `saved` they sit: a standalone attribute that became an object's is not
// missing). Soft-deleted elements are left out: MISP's answers do not show them.
std::vector<MissingElement> ElementsMissingFrom(const json::object& sent, const json::object& saved);
// The same, against the uuids of the elements the receiver holds (what misp::SavedEventReader keeps
// of an add or edit answer).
std::vector<MissingElement> ElementsMissingFrom(const json::object& sent, const UuidSet& held);

// The elements of an event about to be written, read before the write, while the event is in the
// processor's caches. Read after the exchange (the answer parsed, other writes' work done
// meanwhile), most elements' uuids missed the cache: that look-up was 3% of a push's CPU. Each uuid
// is decoded to its 16 bytes here too, so the look-up after the exchange reads no text of `sent`
// (done then, it was still 2.7%). The same pass gathers the tag names the event and its elements
// carry (a receiver creates a tag the first time a write names it: LinkEngine::Write). Holds views
// into `sent`, which must outlive it.
class SentElements {
 public:
  explicit SentElements(const json::object& sent);
  // What ElementsMissingFrom(sent, held) gives; reads `sent` again only for the missing elements.
  std::vector<MissingElement> MissingFrom(const UuidSet& held) const;
  // Every tag name on the event, its attributes, objects and their attributes; sorted, unique.
  const std::vector<std::string_view>& tag_names() const { return tag_names_; }

 private:
  enum class Kind : unsigned char { kAttribute, kObject, kObjectAttribute, kReport };
  // 48 bytes, reserved exactly: a 150k-attribute event's list is 7.2 MB beside its 195 MB tree.
  struct Element {
    std::string_view uuid;
    UuidSet::Bytes packed;  // the uuid decoded, when is_uuid
    std::uint32_t index;   // in its list
    std::uint32_t object;  // an object's attribute: its object's index in Event.Object
    Kind kind;
    bool deleted;
    bool is_uuid;
  };
  const json::object& At(const Element& e) const;  // the element itself, for a missing one

  const json::object& sent_;
  std::vector<Element> elements_;  // in the event's order: an object is followed by its attributes
  std::vector<std::string_view> tag_names_;
};

}  // namespace sgsync::misp
