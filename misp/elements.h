// misp/elements.h: which elements of an event another copy of it lacks.
//
// A receiving MISP may accept an event and silently drop some of its elements (an object whose
// `description` is empty: "Description cannot be empty."; a sharing group it cannot capture on an
// edit; an attribute uuid held by another event). Comparing what was sent with what the receiver
// answered it saved (the add/edit answer, or a view of its copy) tells which.
#pragma once

#include <string>
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

}  // namespace sgsync::misp
