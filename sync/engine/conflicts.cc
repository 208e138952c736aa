// Events changed on both sides since sgsync last wrote them: found, recorded with what differs,
// and held or let through by the conflict policy (docs/operations.md).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "common/encoding.h"
#include "common/metric_families.h"
#include "misp/content_hash.h"
#include "misp/elements.h"
#include "misp/event.h"
#include "sync/engine/run.h"

namespace sgsync::engine {

namespace {

// Which elements of two copies of an event differ: by uuid, present on one side only or with other
// timestamps; and the event fields that differ. For the conflicts table (sgsyncctl conflicts).
json::object DescribeDifferences(const json::object& local, const json::object& portal) {
  auto elements = [](const json::object& e) {
    std::map<std::string, std::int64_t> out;
    auto add = [&](const json::object& holder, const char* key) {
      const json::value* list = holder.if_contains(key);
      if (list == nullptr || !list->is_array()) return;
      for (const auto& el : list->as_array()) {
        if (!el.is_object()) continue;
        out[std::string(misp::StringOr(el.as_object(), "uuid"))] =
            misp::IntOr(el.as_object(), "timestamp", 0);
        if (std::string_view(key) == "Object") {
          const json::value* attrs = el.as_object().if_contains("Attribute");
          if (attrs == nullptr || !attrs->is_array()) continue;
          for (const auto& a : attrs->as_array()) {
            if (a.is_object())
              out[std::string(misp::StringOr(a.as_object(), "uuid"))] =
                  misp::IntOr(a.as_object(), "timestamp", 0);
          }
        }
      }
    };
    for (const char* k : {"Attribute", "Object", "EventReport"}) add(e, k);
    return out;
  };
  auto l = elements(local), p = elements(portal);
  json::array only_local, only_portal, changed, fields;
  for (const auto& [uuid, ts] : l) {
    auto it = p.find(uuid);
    if (it == p.end()) {
      only_local.emplace_back(uuid);
    } else if (it->second != ts) {
      changed.push_back(
          json::object{{"uuid", uuid}, {"local_timestamp", ts}, {"portal_timestamp", it->second}});
    }
  }
  for (const auto& [uuid, ts] : p) {
    if (!l.count(uuid)) only_portal.emplace_back(uuid);
  }
  for (const char* f : {"info", "threat_level_id", "analysis", "distribution", "published", "date"}) {
    const json::value* a = local.if_contains(f);
    const json::value* b = portal.if_contains(f);
    std::string av = a != nullptr ? (a->is_string() ? std::string(a->as_string()) : json::serialize(*a)) : "";
    std::string bv = b != nullptr ? (b->is_string() ? std::string(b->as_string()) : json::serialize(*b)) : "";
    if (av != bv) fields.emplace_back(f);
  }
  return json::object{{"only_local", std::move(only_local)},
                      {"only_portal", std::move(only_portal)},
                      {"changed", std::move(changed)},
                      {"event_fields", std::move(fields)}};
}

}  // namespace

// A conflict must be seen whichever direction runs first (issue 16 item 9). The ledger learns the
// destination's timestamp when the other direction lists it; a run in this direction that comes
// first would otherwise write over a change it never saw (and filterEventIdsForPush would drop a
// newer destination copy without a word). So before offering events sgsync wrote to the
// destination before, it asks the destination for their timestamps: one restSearch (metadata) per
// batch, and only for such edits.
Status LinkEngine::LearnDestinationTimestamps(RunContext& run, std::vector<Prepared>& batch) {
  const state::Side dest_side = run.route.destination_side;
  std::vector<std::string> uuids;
  for (const auto& p : batch) {
    if (p.done || !p.decision || !p.decision->send || !p.ledger) continue;
    if (p.ledger->written_side == dest_side && p.ledger->written_timestamp) uuids.push_back(p.item.uuid);
  }
  if (uuids.empty()) return {};
  auto held = run.route.destination->EventsMetadata(uuids);
  if (!held.ok()) {
    // Without them a conflict could go unseen: these events wait for the next run.
    for (auto& p : batch) {
      if (std::find(uuids.begin(), uuids.end(), p.item.uuid) == uuids.end() || p.done) continue;
      FailItem(run, p.item, held.error());
      p.done = true;
    }
    return {};
  }
  for (auto& p : batch) {
    if (p.done || !p.ledger) continue;
    auto it = held->find(AsciiLower(p.item.uuid));
    if (it == held->end()) continue;
    std::optional<std::int64_t>& seen = SeenTimestamp(*p.ledger, dest_side);
    if (!seen || it->second.timestamp > *seen) seen = it->second.timestamp;
  }
  return {};
}

Result<bool> LinkEngine::HandleConflict(RunContext& run, Prepared& p) {
  const Route& route = run.route;
  const bool push = route.push();
  if (!p.ledger || p.ledger->written_side != route.destination_side) return false;
  auto dest_seen = SeenTimestamp(*p.ledger, route.destination_side);
  if (!dest_seen || !p.ledger->written_timestamp || *dest_seen <= *p.ledger->written_timestamp) return false;
  // Changed on both sides since sgsync last wrote: the destination's copy moved on too.
  state::Conflict c;
  c.uuid = p.item.uuid;
  // The source's copy as just read; the destination's as the ledger knows it.
  state::LedgerEntry sides = *p.ledger;
  SeenTimestamp(sides, route.source_side) = p.source_timestamp;
  SeenTimestamp(sides, route.destination_side) = *dest_seen;
  SeenHash(sides, route.source_side) = p.source_hash;
  c.local_timestamp = *sides.local_timestamp;
  c.remote_timestamp = *sides.remote_timestamp;
  c.local_hash = sides.local_hash.value_or("");
  c.remote_hash = sides.remote_hash.value_or("");
  // The same conflict seen again (both timestamps equal): its record, and its resolution if any.
  std::optional<std::string> resolution;
  bool known = false;
  // A failed read is not "no conflict known" (that would record it again): the event fails and is
  // retried.
  SGSYNC_TRY(auto list, store_.ListConflicts(link_id_, false));
  for (const auto& old : list) {
    if (old.uuid != c.uuid || old.local_timestamp != c.local_timestamp ||
        old.remote_timestamp != c.remote_timestamp)
      continue;
    known = true;
    resolution = old.resolution;
  }
  if (!known) {
    connector::MispApi& dest = *route.destination;
    connector::ViewForm form;
    // The destination's copy, to say what differs; unreadable, the event is retried (a conflict
    // recorded against an empty copy would claim every element differs).
    SGSYNC_TRY(auto theirs, dest.ViewEvent(p.item.uuid, form));
    json::object mine = p.decision && p.decision->event ? *p.decision->event : json::object();
    json::object other = theirs.has_value() ? theirs->event_json() : json::object();
    c.differences =
        json::serialize(push ? DescribeDifferences(mine, other) : DescribeDifferences(other, mine));
    // Unrecorded, the conflict would be lost: the event fails (and is retried) instead of going on.
    SGSYNC_TRY(std::int64_t id, store_.RecordConflict(link_id_, c));
    spdlog::warn(
        "link {}: {} changed on both sides since the last sync (local {}, portal {}); recorded as conflict "
        "{} (policy {})",
        name_, p.item.uuid, c.local_timestamp, c.remote_timestamp, id,
        ConflictPolicyName(options_.conflict_policy));
    std::lock_guard lock(run.mu);
    ++run.stats.conflicts;
    if (metrics_ != nullptr) metrics_->Add(metric::kConflicts, {{"link", name_}});
  }
  ConflictPolicy policy = options_.conflict_policy;
  // An operator's resolution (sgsyncctl resolve: prefer-local, prefer-portal, prefer-newer) wins.
  if (auto resolved = resolution ? ParseConflictPolicy(*resolution) : std::nullopt;
      resolved && *resolved != ConflictPolicy::kManual)
    policy = *resolved;
  switch (policy) {
    case ConflictPolicy::kPreferNewer:
      return false;
    case ConflictPolicy::kPreferLocal:
      return !push;
    case ConflictPolicy::kPreferPortal:
      return push;
    case ConflictPolicy::kManual:
      return true;
  }
  return false;
}

}  // namespace sgsync::engine
