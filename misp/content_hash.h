// misp/content_hash.h: a fingerprint of an event's content, for the ledger's change detection.
//
// Two copies of one event on two MISP instances hash equal when they say the same thing, whatever
// the key order, the string-vs-number encoding ("1" vs 1 vs true) or the order of elements with
// uuids. Instance-local bookkeeping (numeric ids, the owner org, locked, publish_timestamp,
// correlations, tag colours) is left out; docs/misp-json.md lists what is and why.
#pragma once

#include <string>

#include "misp/json.h"

namespace sgsync::misp {

// Lower-case hex SHA-256 of the canonical form of `event` (the object inside the envelope).
std::string ContentHash(const json::object& event);

// The canonical text that ContentHash digests; exposed for tests and for explaining a difference.
std::string CanonicalForm(const json::object& event);

}  // namespace sgsync::misp
