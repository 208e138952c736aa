// sync/policy/sightings.h: which sightings may leave, and as whom (spec 8.1).
//
// Sightings have no distribution of their own: a peer gets the sightings of an event it holds that
// the sending MISP's sighting policy lets the peer's organisation see, with the organisation
// removed or replaced when the sending MISP anonymises them. Pure, like the rest of the policy.
#pragma once

#include <string>
#include <vector>

#include "misp/json.h"
#include "sync/policy/decision.h"

namespace sgsync::policy {

struct SightingsPolicy {
  int policy = 0;  // Plugin.Sightings_policy of the sending MISP: 0 owner, 1 reporters, 2 all, 3 owner+host
  bool anonymise = false;     // Plugin.Sightings_anonymise
  OrgRef anonymise_as;        // Plugin.Sightings_anonymise_as (push only; empty: none)
  std::string host_org_uuid;  // MISP.host_org_id's organisation, for policy 3
};

struct SightingsSelection {
  json::array send;          // rows in bulkSaveSightings form (spec 8.1, sightings-bulkSaveSightings.json)
  std::size_t withheld = 0;  // rows the policy does not let the viewer see
  std::size_t anonymised = 0;
  std::vector<Reason> reasons;  // one per rule that withheld or changed something, with counts
};

// `rows`: the event's sightings as sightings/restSearch/event serves them ({"Sighting": {...}} or
// bare); `event_org_uuid`: the event's owner (Event.Org) on the sending MISP; `viewer_org_uuid`:
// the organisation that receives (on push, the Portal's sync account's remote org).
SightingsSelection SelectSightings(const json::array& rows, std::string_view event_org_uuid,
                                   std::string_view viewer_org_uuid, const SightingsPolicy& policy);

}  // namespace sgsync::policy
