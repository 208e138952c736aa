// sync/policy/policy.h: the sharing decision. The one place in sgsync that decides what may cross a
// link, reproducing MISP 2.5.1's push and pull rules (docs/sharing-rules.md) and, where
// MISP would let out what its distribution forbids, stricter (docs/sharing-rules.md).
//
// Evaluate is pure: it reads the event and the link and returns a new document; it does no I/O and
// keeps no state, so the engine, the admin API's explain and dry-run, and `sgsyncctl evaluate` get
// the same answer for the same input. Thread-safe.
#pragma once

#include "misp/event.h"
#include "misp/json.h"
#include "sync/policy/decision.h"
#include "sync/policy/link.h"

namespace sgsync::policy {

// `event` is the event object (inside the {"Event": ...} envelope):
//  - push: the local event as its owner's MISP serves it with deleted elements (events/view with
//    deleted[]:0/deleted[]:1), i.e. what MISP's own push starts from;
//  - pull: what the remote serves to sgsync's account in the pull form (spec 3.3); nullptr when the
//    remote does not serve the event at all.
// The event is taken by value so a caller that no longer needs it moves it in (a 150k-attribute
// event is not copied); the pointer form copies.
Decision Evaluate(Direction direction, std::optional<json::object> event, const Link& link);
Decision Evaluate(Direction direction, const json::object* event, const Link& link);

// MISP's SharingGroup::checkIfServerInSG (spec 4.3): may the link's remote receive an element of
// this group? `why` says which test decided.
bool ServerInSharingGroup(const misp::SharingGroupView& sg, const Link& link, std::string* why);

// The events/index filter that MISP's pull derives from pull_rules (spec 6.2), with `minimal` and
// `published` forced. `org_as_string` is for remotes that predate the array org rule (<= 2.4.123).
json::object PullIndexFilter(const FilterRules& rules, bool org_as_string = false);

}  // namespace sgsync::policy
