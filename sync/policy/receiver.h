// sync/policy/receiver.h: sgsync's model of the receiving MISP, used to say before a write what the
// other side will store (warnings in decisions, `explain`, the prediction tests). misp-sim must not
// include this header: it is the other side of the tests and carries its own capture, written from
// MISP's source (misp-sim/capture.cc), so a mistake in this model shows up as a disagreement
// (tests/architecture/check_includes.py enforces it).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "misp/json.h"
#include "sync/policy/decision.h"

namespace sgsync::policy {

// The receiving side (spec 3.4, 4.5): what a MISP stores when `writer` adds `sent` through its REST
// API. AssessArrival says whether it accepts the event, with a reason and a warning for every
// element whose sharing group it will not accept; MaterializeArrival builds the stored document;
// PredictArrival does both (nothing when the event is refused).
bool AssessArrival(const json::object& sent, const Receiver& receiver, std::vector<Reason>* reasons,
                   std::vector<std::string>* warnings);
json::object MaterializeArrival(json::object sent, const Receiver& receiver);
std::optional<json::object> PredictArrival(const json::object& sent, const Receiver& receiver,
                                           std::vector<Reason>* reasons, std::vector<std::string>* warnings);

}  // namespace sgsync::policy
