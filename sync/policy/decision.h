// sync/policy/decision.h: what the sharing policy returns, and why.
//
// Every change the policy makes to an event (a removal, a downgrade, a stripped tag, a refusal) and
// every element kept where a reader might expect it gone carries a Reason: a rule id tied to a
// section of the MISP sync-rules specification (docs/sharing-rules.md), the JSON path of the element in the
// input document, the action and the from/to values. This is what `sgsyncctl evaluate` and `explain` show.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "misp/json.h"
#include "sync/policy/link.h"

namespace sgsync::policy {

namespace json = boost::json;

struct Reason {
  std::string rule;    // stable id, e.g. "push.attribute.distribution"
  std::string spec;    // section of the spec (or "sgsync" for sgsync's own additions)
  std::string path;    // JSON path in the input, e.g. "Event.Object[2].Attribute[0]"
  std::string action;  // refuse | remove | downgrade | strip_tag | set | keep | capture | uncapture
  std::string from;    // previous value, when there is one
  std::string to;      // new value, when there is one
  std::string detail;  // one sentence for a person
};

// The MISP that receives what sgsync sends (the Portal on push, the local MISP on pull), as far as
// its sharing-group capture and publishing depend on it.
struct Receiver {
  std::string name;   // "the remote MISP (<url>)": for messages
  std::string url;    // its MISP.baseurl
  OrgRef writer_org;  // organisation of the account that writes
  bool writer_is_site_admin = false;
  bool writer_has_perm_sync = true;
  bool writer_has_perm_publish = true;
  std::vector<std::string> known_server_urls;  // its server records
};

struct Decision {
  bool send = false;
  // What sgsync would send (push) or write into the local MISP (pull); empty when not sent.
  std::optional<json::object> event;
  // Who receives it; Arrival() builds what it will store (a copy of `event`, so only on demand).
  Receiver receiver;
  std::vector<Reason> reasons;
  std::vector<std::string> warnings;

  // {"decision": "send"|"skip", "event": {"Event": ...}|null, "arrival": {"Event": ...}|null,
  //  "reasons": [...], "warnings": [...]}
  json::value ToJson() const;
  // What the ledger keeps of a decision: the verdict, its reasons and warnings, without the event
  // as sent and its predicted arrival (explain and the admin API read only these; keeping the
  // documents put two copies of every event in every ledger row, 84 KB for 100 attributes).
  json::value RecordJson() const;
  // The first refusal, when the event is not sent.
  const Reason* refusal() const;
  // Sent with no reason but "keep": every change carries a reason, so the event leaves with what
  // the content hash covers as it came (misp/content_hash.h: only instance-local keys, such as
  // ids and sightings, may differ). The engine then records the source's hash as the one written.
  bool Unchanged() const;
  // What the receiving MISP will store; empty when it stores nothing.
  std::optional<json::object> Arrival() const;
};

}  // namespace sgsync::policy
