// sync/policy/other_data.h: the sharing rules for what MISP syncs beside events: custom galaxy
// clusters (spec 8.3) and analyst data (notes, opinions, relationships; spec 8.5).
//
// Like Evaluate, every function here is pure: it reads an element and the link and returns what
// may cross, with a Reason for every change. The clusters and analyst data are their inner
// objects (inside {"GalaxyCluster": ...} or {"Note": ...}).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "misp/json.h"
#include "sync/policy/decision.h"
#include "sync/policy/link.h"

namespace sgsync::policy {

struct ElementDecision {
  bool send = false;
  json::object element;  // what is sent (push) or stored (pull) when `send`
  std::vector<Reason> reasons;
  const Reason* refusal() const;
};

// ---- Custom galaxy clusters (spec 8.3)

// Push (__prepareForPushToServer, __updateClusterForSync): only custom (not default), published
// clusters; distribution 0/1 never leave by a non-internal push, 2 -> 1; a distribution-4 cluster
// needs this remote in its group; relations below 2 are removed, 2 -> 1, level-4 relations need
// the remote in their group; non-exportable relation tags removed; local ids removed; sent locked
// (an sgsync addition, docs/sharing-rules.md).
ElementDecision PrepareClusterForPush(json::object cluster, const Link& link);

// MISP sends a cluster only when its local version is greater than the remote's, or the remote has
// none (galaxy_clusters/restSearch, minimal).
bool ClusterNewerThanRemote(std::int64_t local_version, std::optional<std::int64_t> remote_version);

// Pull: stored locked, downgraded 1 -> 0 and 2 -> 1 (relations too) unless the pull is internal.
ElementDecision PreparePulledCluster(json::object cluster, const Link& link);

// What the receiving MISP holds of an element: a cluster's `version` or analyst data's
// `modified` (compared as text: "YYYY-MM-DD hh:mm:ss"), and whether it is locked (came by sync).
struct HeldCopy {
  bool locked = false;
  std::string stamp;  // version (digits) or modified date
};

// The receiver's capture (GalaxyCluster::captureCluster): a default cluster is refused; an existing
// one is replaced only when it is locked (or the sending server is internal) and the incoming
// version is greater.
ElementDecision AcceptCluster(const json::object& incoming, const std::optional<HeldCopy>& held,
                              bool from_internal_server);

// ---- Analyst data (spec 8.5): `type` is "Note", "Opinion" or "Relationship"

// Push (AnalystData::push): distribution 2-3 and 5, or 4 with the remote in the group; the push
// rules' organisation filters on its creator; sent locked with 2 -> 1 (non-internal), `id` removed.
// Children (nested Note/Opinion/Relationship lists) follow the same rules.
ElementDecision PrepareAnalystDataForPush(std::string_view type, json::object entry, const Link& link);

// Pull: stored locked, downgraded 1 -> 0 and 2 -> 1 unless the pull is internal.
ElementDecision PreparePulledAnalystData(std::string_view type, json::object entry, const Link& link);

// The receiver's filterAnalystDataForPush and capture: it wants an entry it does not hold, or holds
// locked (or the sender is internal) with an older `modified`.
bool AnalystDataWanted(std::string_view offered_modified, const std::optional<HeldCopy>& held,
                       bool from_internal_server);

// ---- Proposals (spec 8.2)

// A proposal (ShadowAttribute) travels only where what it proposes to change travels (an sgsync
// rule: MISP's own proposal sync sends every proposal of an event the remote holds, spec 8.2,
// docs/sharing-rules.md). `source` is the event as its MISP serves it (with its attribute ids),
// `event` the policy's decision for it. The proposal is attribute-level when its `old_id` names an
// attribute of the source event, or its `uuid` is an attribute's (a change proposal carries the
// attribute's uuid): it goes only if that attribute leaves with the event. Otherwise it proposes a
// new attribute: it goes only if the event leaves. The proposal's `id` is removed.
ElementDecision DecideProposal(json::object proposal, const json::object& source, const Decision& event);

}  // namespace sgsync::policy
