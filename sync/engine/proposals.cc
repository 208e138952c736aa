// LinkEngine::SyncProposals: proposals (MISP's ShadowAttribute) between both sides (spec 8.2).
#include <spdlog/spdlog.h>

#include <ctime>
#include <map>
#include <tuple>

#include "common/encoding.h"
#include "common/metric_families.h"
#include "sync/engine/engine.h"
#include "sync/policy/other_data.h"

namespace sgsync::engine {

namespace {

// MISP's pull asks for the proposals of the last 90 days (spec 8.2: timestamp:<now - 7 776 000>).
constexpr std::int64_t kProposalWindowSeconds = 90 * 24 * 3600;

// What makes two proposals the same one for the receiving MISP (ShadowAttribute::capture and
// pushProposals compare these; the newer timestamp wins).
using ProposalKey = std::tuple<std::string, std::string, std::string, std::string, std::string, bool>;

ProposalKey KeyOf(const json::object& p) {
  return {AsciiLower(std::string(misp::StringOr(p, "event_uuid"))),
          AsciiLower(std::string(misp::StringOr(p, "uuid"))),
          std::string(misp::StringOr(p, "value")),
          std::string(misp::StringOr(p, "type")),
          std::string(misp::StringOr(p, "category")),
          misp::BoolOr(p, "to_ids", false)};
}

}  // namespace

Status LinkEngine::SyncProposals(const Route& route, ChannelStats& stats) {
  const bool push = route.push();
  if (push && !options_.remote_perm_sync) return Status();  // spec 12 case 36: no proposals pushed
  connector::MispApi& source = *route.source;
  connector::MispApi& dest = *route.destination;
  const std::string dir(route.name());
  const std::int64_t since = static_cast<std::int64_t>(std::time(nullptr)) - kProposalWindowSeconds;

  SGSYNC_TRY(json::array offered, source.Proposals(since));
  // Proposals of events the destination holds (sgsync sent them there, or they came from it).
  std::map<std::string, json::array> by_event;
  for (auto& row : offered) {
    if (!row.is_object()) continue;  // a peer's junk row: nothing to send
    json::object& p = row.as_object();
    std::string event(AsciiLower(std::string(misp::StringOr(p, "event_uuid"))));
    const json::value* org = p.if_contains("Org");
    if (event.empty() || org == nullptr || !org->is_object()) continue;  // MISP needs both (spec 8.2)
    if (!by_event.contains(event)) {
      SGSYNC_TRY(auto ledger, store_.GetLedger(link_id_, event));
      if (!ledger || !DestinationHolds(*ledger, route.destination_side)) continue;
    }
    p.erase("id");
    by_event[event].push_back(std::move(row));
  }
  if (by_event.empty()) return Status();
  // The receiving MISP stores a pushed proposal row as it comes (EventsController::pushProposals),
  // and its event_org_id column has no default: the row must name the owner of the destination's
  // copy, by the destination's own id (as ShadowAttribute::capture does on MISP's own pull).
  std::vector<std::string> events;
  for (const auto& [event, rows] : by_event) events.push_back(event);
  SGSYNC_TRY(auto held_events, dest.EventsMetadata(events));

  // What the destination already has, so a cycle with nothing new writes nothing.
  SGSYNC_TRY(json::array held, dest.Proposals(since));
  std::map<ProposalKey, std::int64_t> newest_held;
  for (const auto& row : held) {
    if (!row.is_object()) continue;
    std::int64_t& t = newest_held[KeyOf(row.as_object())];
    t = std::max(t, misp::IntOr(row.as_object(), "timestamp", 0));
  }
  for (auto& [event, rows] : by_event) {
    json::array fresh;
    for (auto& row : rows) {
      auto it = newest_held.find(KeyOf(row.as_object()));
      if (it == newest_held.end() || it->second < misp::IntOr(row.as_object(), "timestamp", 0))
        fresh.push_back(std::move(row));
    }
    if (fresh.empty()) continue;
    // Each proposal goes only where what it changes goes (policy::DecideProposal): the event as its
    // source serves it now, decided by the policy.
    connector::ViewForm form;
    form.include_deleted = true;
    form.exclude_local_tags = !push && !link_.internal;
    auto doc = source.ViewEvent(event, form);
    if (!doc.ok()) {
      ++stats.failed;
      spdlog::warn("link {}: {} proposals of {}: {}", name_, dir, event, doc.error().ToString());
      continue;
    }
    json::object source_event = *doc ? (**doc).event_json() : json::object();
    policy::Decision decision = *doc ? policy::Evaluate(route.direction, &source_event, link_)
                                     : policy::Evaluate(route.direction, nullptr, link_);
    json::array allowed;
    for (auto& row : fresh) {
      policy::ElementDecision pd = policy::DecideProposal(std::move(row.as_object()), source_event, decision);
      if (!pd.send) {
        ++stats.withheld;
        const policy::Reason* why = pd.refusal();
        spdlog::info("link {}: {} proposal {} of {} withheld: {} ({})", name_, dir,
                     misp::StringOr(pd.element, "uuid"), event, why != nullptr ? why->rule : "",
                     why != nullptr ? why->detail : "");
        if (metrics_ != nullptr)
          metrics_->Add(metric::kProposalsWithheld,
                        {{"link", name_}, {"direction", dir}, {"reason", why != nullptr ? why->rule : ""}});
        continue;
      }
      allowed.push_back(std::move(pd.element));
    }
    if (allowed.empty()) continue;
    auto copy = held_events.find(event);
    if (copy == held_events.end() || copy->second.org_id.empty()) {
      ++stats.failed;
      spdlog::warn("link {}: {} proposals of {}: the {} does not show its copy of the event (or its owner)",
                   name_, dir, event, route.destination_name());
      continue;
    }
    for (auto& row : allowed) row.as_object()["event_org_id"] = copy->second.org_id;
    auto added = dest.PushProposals(event, allowed);
    if (!added.ok()) {
      ++stats.failed;
      spdlog::warn("link {}: {} proposals of {}: {}", name_, dir, event, added.error().ToString());
      continue;
    }
    stats.sent += *added;
    if (metrics_ != nullptr && *added > 0)
      metrics_->Add(metric::kProposals, {{"link", name_}, {"direction", dir}}, static_cast<double>(*added));
  }
  return Status();
}

}  // namespace sgsync::engine
