#include "sync/policy/policy.h"
#include "sync/policy/receiver.h"

#include <algorithm>

#include "misp/event.h"
#include "sync/policy/evaluation.h"

namespace sgsync::policy {
bool ServerInSharingGroup(const misp::SharingGroupView& sg, const Link& link, std::string* why) {
  auto label = [](const OrgRef& o) { return o.name.empty() ? o.uuid : o.name; };
  auto rows = sg.servers();
  if (!rows.empty() && !sg.roaming()) {
    auto row = std::find_if(rows.begin(), rows.end(),
                            [&](const auto& r) { return SameUrl(r.url, link.remote.url); });
    if (row != rows.end() && row->all_orgs) {
      *why = "the group lists " + link.remote.url + " with all_orgs";
      return true;
    }
    if (row == rows.end() && !link.internal) {
      *why = "the group's server list does not include " + link.remote.url;
      return false;
    }
  }
  auto orgs = sg.org_uuids();
  if (std::any_of(orgs.begin(), orgs.end(),
                  [&](std::string_view u) { return SameText(u, link.remote.org.uuid); })) {
    *why = "the remote organisation " + label(link.remote.org) + " is a member";
    return true;
  }
  *why = "the remote organisation " + label(link.remote.org) + " is not a member";
  return false;
}

using detail::HasLiveContent;
using detail::PullSelectEvent;
using detail::PullTransform;
using detail::PushSelectEvent;
using detail::PushTransform;
using detail::Run;
using misp::EventView;

const Reason* Decision::refusal() const {
  for (const auto& r : reasons) {
    if (r.action == "refuse") return &r;
  }
  return nullptr;
}

bool Decision::Unchanged() const {
  return send && event &&
         std::all_of(reasons.begin(), reasons.end(), [](const Reason& r) { return r.action == "keep"; });
}

json::value Decision::ToJson() const {
  json::value v = RecordJson();
  auto wrap = [](const std::optional<json::object>& e) -> json::value {
    if (!e) return nullptr;
    json::object w;
    w["Event"] = *e;
    return w;
  };
  v.as_object()["event"] = wrap(event);
  v.as_object()["arrival"] = wrap(Arrival());
  return v;
}

json::value Decision::RecordJson() const {
  json::object o;
  o["decision"] = send ? "send" : "skip";
  json::array rs;
  for (const auto& r : reasons) {
    json::object j;
    j["rule"] = r.rule;
    j["spec"] = r.spec;
    j["path"] = r.path;
    j["action"] = r.action;
    if (!r.from.empty()) j["from"] = r.from;
    if (!r.to.empty()) j["to"] = r.to;
    j["detail"] = r.detail;
    rs.push_back(std::move(j));
  }
  o["reasons"] = std::move(rs);
  json::array ws;
  for (const auto& w : warnings) ws.push_back(json::value(w));
  o["warnings"] = std::move(ws);
  return o;
}

std::optional<json::object> Decision::Arrival() const {
  if (!send || !event) return std::nullopt;
  return MaterializeArrival(*event, receiver);
}

Decision Evaluate(Direction direction, const json::object* event, const Link& link) {
  return Evaluate(direction, event ? std::optional<json::object>(*event) : std::nullopt, link);
}

Decision Evaluate(Direction direction, std::optional<json::object> event, const Link& link) {
  Decision out;
  Run run(direction, link, out);
  out.send = true;
  if (!event) {
    run.Refuse("pull.select.not_served", "3.1, 3.3", "Event",
               "the remote does not serve this event to sgsync's account (its access rules hide it)");
    return out;
  }
  json::object& copy = *event;
  EventView ev(copy);
  if (link.internal && !link.IntPushDist() && direction == Direction::kPush) {
    out.warnings.push_back(
        "the link is internal but the remote organisation is not this instance's host organisation: MISP "
        "2.5.1 "
        "then sends attributes, objects and reports undowngraded (with local tags) while refusing events at "
        "distribution 0 or 1 (spec 2.3); check that " +
        link.remote.url + " really belongs to your organisation");
  }
  Receiver receiver;
  if (direction == Direction::kPush) {
    if (!PushSelectEvent(run, ev)) return out;
    PushTransform(run, ev);
    receiver = Receiver{"the remote MISP (" + link.remote.url + ")",
                        link.remote.url,
                        link.remote_user_org,
                        false,
                        true,
                        true,
                        link.remote_known_server_urls};
  } else {
    if (!PullSelectEvent(run, ev)) return out;
    PullTransform(run, ev);
    if (!HasLiveContent(ev)) {
      // Emptied by the pull rules, MISP counts the event neither as pulled nor as failed (spec 3.3).
      bool by_rules = std::any_of(out.reasons.begin(), out.reasons.end(),
                                  [](const Reason& r) { return r.rule.rfind("pull.rules.", 0) == 0; });
      run.Refuse(by_rules ? "pull.rules.emptied" : "pull.empty", "3.3", "Event",
                 by_rules ? "the pull rules left nothing that is not deleted: skipped, not a failure"
                          : "nothing that is not deleted is left (no attribute, object attribute or report): "
                            "MISP does not store an empty event");
      return out;
    }
    receiver = Receiver{"the local MISP (" + link.local.url + ")",
                        link.local.url,
                        link.local.org,
                        link.local_writer_is_site_admin,
                        true,
                        true,
                        {link.remote.url}};
  }
  out.receiver = std::move(receiver);
  if (!AssessArrival(copy, out.receiver, &out.reasons, &out.warnings)) {
    // The receiving MISP would refuse it (an empty published event): sgsync does not send what will
    // be refused, and says why.
    out.send = false;
    return out;
  }
  out.event = std::move(copy);
  return out;
}

}  // namespace sgsync::policy
