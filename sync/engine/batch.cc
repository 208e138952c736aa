// One wave of work items made ready to write: fetched (in bulk where it can), decided by the policy
// and offered to the destination; each completed with its ledger entry once it reaches its end.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <set>

#include "common/encoding.h"
#include "common/metric_families.h"
#include "misp/content_hash.h"
#include "misp/elements.h"
#include "misp/event.h"
#include "sync/engine/run.h"

namespace sgsync::engine {

// The event's ledger entry once the source's version was seen and decided: what the ledger knew,
// plus the source's timestamp and hash, and the decision with its reasons.
state::LedgerEntry LinkEngine::SeenEntry(const Prepared& p, const Route& route,
                                         state::LedgerDecision decision) {
  state::LedgerEntry entry = p.ledger.value_or(state::LedgerEntry{});
  entry.uuid = p.item.uuid;
  if (!p.ledger) entry.origin = route.source_side;
  SeenTimestamp(entry, route.source_side) = p.source_timestamp;
  if (!p.source_hash.empty()) SeenHash(entry, route.source_side) = p.source_hash;
  entry.decision = decision;
  if (p.decision) entry.decision_json = json::serialize(p.decision->RecordJson());
  return entry;
}

// The ledger after the destination took the event: what was written there, and that its copy is
// now at the source's timestamp (MISP keeps the timestamp it is sent).
state::LedgerEntry LinkEngine::WrittenEntry(const Prepared& p, const Route& route,
                                            const json::object& written) {
  state::LedgerEntry entry = SeenEntry(p, route, state::LedgerDecision::kSend);
  entry.written_side = route.destination_side;
  entry.written_timestamp = p.source_timestamp;
  // Unchanged by the policy, the event hashes as the source did: one hash an event instead of two
  // (the second was a twelfth of a push's CPU; PolicyLinkTest.AnEventTheRulesLeaveUnchanged...).
  const bool as_decided = p.decision && p.decision->event && &written == &*p.decision->event;
  entry.written_hash = as_decided && p.decision->Unchanged() && !p.source_hash.empty()
                           ? p.source_hash
                           : misp::ContentHash(written);
  SeenTimestamp(entry, route.destination_side) = p.source_timestamp;
  return entry;
}

void LinkEngine::FailItem(RunContext& run, const state::WorkItem& item, const Error& e) {
  std::optional<std::int64_t> retry_at;
  if (e.code == ErrorCode::kRateLimited && e.retry_after_seconds > 0)
    retry_at = static_cast<std::int64_t>(std::time(nullptr)) + e.retry_after_seconds;
  auto st = store_.FailAttempt(item.id, e.ToString(), retry_at);
  run.progressed = true;
  {
    std::lock_guard lock(run.mu);
    ++run.stats.failed;
  }
  if (metrics_ != nullptr) {
    metrics_->Add(metric::kEvents, {{"link", name_},
                                    {"direction", std::string(run.route.name())},
                                    {"outcome", std::string(OutcomeName(Outcome::kFailed))}});
  }
  if (!st.ok()) {
    spdlog::error("link {}: {} {}: recording a failed attempt failed: {}", name_, run.route.name(), item.uuid,
                  st.error().ToString());
  } else {
    spdlog::warn("link {}: {} {} failed ({}): {}", name_, run.route.name(), item.uuid,
                 *st == state::WorkState::kDead ? "dead-lettered" : "will retry", e.ToString());
  }
  if (PeerTrouble(e)) {
    if (run.peer_failures.fetch_add(1) + 1 >= options_.peer_failures_to_abort) run.peer_down = true;
  }
}

// The completion waits for others: one fsync for several events, where one each was a third of the
// CPU of a small event (docs/performance.md). They are written once as many have gathered as the
// run has writes in flight, and at the wave's end. Not a wave at a time: a kill leaves the events
// written but not recorded, which the restarted run finds there and records as "already" without
// knowing sgsync wrote them (docs/reliability.md); a wave's worth was 628 such events in the long
// crash campaign, against 47 with one commit each.
void LinkEngine::Finish(RunContext& run, Prepared& p, state::LedgerEntry entry, Outcome outcome) {
  p.done = true;
  p.reached = outcome == Outcome::kSent || outcome == Outcome::kAlready;
  run.peer_failures = 0;  // the peer answered, whether or not the store takes the completion
  run.progressed = true;
  bool full = false;
  {
    std::lock_guard lock(run.mu);
    run.finished.push_back({&p, std::move(entry), outcome});
    full = run.finished.size() >= FullCompletion();
  }
  if (full) CompleteFinished(run, FullCompletion());
}

void LinkEngine::CompleteFinished(RunContext& run, std::size_t at_least) {
  std::lock_guard completing(run.completing);
  std::vector<RunContext::Finished> finished;
  {
    std::lock_guard lock(run.mu);
    // Another writer may have taken them while this one waited for `completing`: the rest wait for
    // a full transaction of their own.
    if (run.finished.empty() || run.finished.size() < at_least) return;
    finished.swap(run.finished);
  }
  std::vector<state::StateStore::Completion> completions;
  completions.reserve(finished.size());
  for (auto& f : finished) completions.push_back({f.p->item.id, std::move(f.entry)});
  const std::vector<Status> written = store_.CompleteMany(link_id_, completions);
  const std::string dir(run.route.name());
  for (std::size_t i = 0; i < finished.size(); ++i) {
    Prepared& p = *finished[i].p;
    const Outcome outcome = finished[i].outcome;
    if (!written[i].ok()) {
      FailItem(run, p.item, written[i].error());
      p.reached = false;
      continue;
    }
    const policy::Reason* why = p.decision ? p.decision->refusal() : nullptr;
    {
      std::lock_guard lock(run.mu);
      if (outcome == Outcome::kSent) ++run.stats.sent;
      if (outcome == Outcome::kAlready) ++run.stats.already;
      if (outcome == Outcome::kHeld) ++run.stats.held;
      if (outcome == Outcome::kSkipped) {
        ++run.stats.skipped;
        ++run.stats.skipped_by_reason[why != nullptr ? why->rule : "source.not_served"];
      }
    }
    if (metrics_ != nullptr) {
      metrics_->Add(metric::kEvents,
                    {{"link", name_}, {"direction", dir}, {"outcome", std::string(OutcomeName(outcome))}});
      if (outcome == Outcome::kSkipped) {
        metrics_->Add(metric::kEventsSkipped, {{"link", name_},
                                               {"direction", dir},
                                               {"reason", why != nullptr ? why->rule : "source.not_served"}});
      }
    }
  }
  run.Report();
}

namespace {

// The sightings embedded in an event as its MISP serves it (Attribute.Sighting[], and an event-level
// Sighting[]), in the rows form the sightings channel sends, each with its attribute and event uuid.
json::array EmbeddedSightings(const json::object& event) {
  json::array out;
  const std::string event_uuid(misp::StringOr(event, "uuid"));
  auto take = [&](const json::object& holder, std::string_view attribute_uuid) {
    const json::value* list = holder.if_contains("Sighting");
    if (list == nullptr || !list->is_array()) return;
    for (const auto& row : list->get_array()) {
      if (!row.is_object()) continue;
      json::object s = row.get_object();
      if (!attribute_uuid.empty() && !s.contains("attribute_uuid")) s["attribute_uuid"] = attribute_uuid;
      if (!s.contains("event_uuid")) s["event_uuid"] = event_uuid;
      out.push_back(std::move(s));
    }
  };
  take(event, "");
  misp::ForEachAttribute(event, [&](const json::object& a) { take(a, misp::StringOr(a, "uuid")); });
  return out;
}

}  // namespace

void LinkEngine::Decide(RunContext& run, Prepared& p, json::object event) {
  p.source_timestamp = misp::IntOr(event, "timestamp", p.item.version);
  p.source_hash = misp::ContentHash(event);
  // The payload never carries them (the policy strips them, spec 8.1); they follow a successful push
  // under the sighting policy (SendEventSightings), as MISP's push sends them after the event.
  if (run.route.push() && options_.sightings) p.sightings = EmbeddedSightings(event);
  p.decision = policy::Evaluate(run.route.direction, std::optional<json::object>(std::move(event)), link_);
}

connector::ViewForm LinkEngine::SourceForm(const RunContext& run) const {
  connector::ViewForm form;
  form.include_deleted = true;
  form.exclude_local_tags = !run.route.push() && !link_.internal;
  return form;
}

// One restSearch per `bulk_fetch` events instead of one events/view each (real MISP 2.5.1: 200
// events in ~1 s instead of ~19 s). What it does not return is fetched singly afterwards, so an
// event the bulk answer lacks is never taken for "not served".
void LinkEngine::BulkFetch(RunContext& run, std::vector<Prepared>& batch) {
  if (options_.bulk_fetch <= 0) return;
  connector::MispApi& source = *run.route.source;
  // The same form as a single view: local tags asked for where they count (RestSearchFilter).
  const json::object form = connector::RestSearchFilter(SourceForm(run));
  // The groups of a wave larger than bulk_fetch go out at once (up to max_in_flight): on a slow MISP,
  // four restSearch one after the other were most of a batch's time before its first write.
  const std::size_t width = static_cast<std::size_t>(options_.bulk_fetch);
  const std::size_t groups = (batch.size() + width - 1) / width;
  std::atomic<bool> failed{false};  // a MISP whose restSearch fails is not asked again this batch
  ForEachBounded(
      groups, options_.max_in_flight,
      [&](std::size_t g) {
        if (failed) return;
        const std::size_t from = g * width, to = std::min(batch.size(), from + width);
        json::array uuids;
        std::map<std::string, Prepared*> by_uuid;
        for (std::size_t i = from; i < to; ++i) {
          uuids.emplace_back(batch[i].item.uuid);
          by_uuid[AsciiLower(batch[i].item.uuid)] = &batch[i];
        }
        json::object filter = form;
        filter["uuid"] = std::move(uuids);
        auto docs = source.RestSearch(filter);
        if (!docs.ok()) {
          failed = true;
          spdlog::debug("link {}: bulk fetch failed ({}); fetching its events one by one", name_,
                        docs.error().ToString());
          return;
        }
        for (auto& doc : *docs) {
          std::shared_ptr<const void> arena = doc.arena();
          json::object event = std::move(doc).TakeEvent();
          auto it = by_uuid.find(AsciiLower(misp::StringOr(event, "uuid")));
          if (it == by_uuid.end()) continue;
          it->second->arena = std::move(arena);
          it->second->prefetched = std::move(event);
        }
      },
      [&] { return run.ShouldStop(); });
}

void LinkEngine::Fetch(RunContext& run, Prepared& p) {
  connector::MispApi& source = *run.route.source;
  auto ledger = store_.GetLedger(link_id_, p.item.uuid);
  if (!ledger.ok()) return FailItem(run, p.item, ledger.error()), void(p.done = true);
  p.ledger = *ledger;
  if (p.prefetched) {
    {
      std::lock_guard lock(run.mu);
      ++run.stats.fetched;
    }
    json::object event = std::move(*p.prefetched);
    p.prefetched.reset();
    return Decide(run, p, std::move(event));
  }
  auto doc = source.ViewEvent(p.item.uuid, SourceForm(run));
  if (!doc.ok()) return FailItem(run, p.item, doc.error()), void(p.done = true);
  {
    std::lock_guard lock(run.mu);
    ++run.stats.fetched;
  }
  if (!doc->has_value()) {
    p.decision = policy::Evaluate(run.route.direction, nullptr, link_);
    p.source_timestamp = p.item.version;
    return;
  }
  Decide(run, p, std::move(**doc).TakeEvent());
}

Status LinkEngine::PrepareWave(RunContext& run, std::vector<state::WorkItem> items, Wave& wave) {
  const Route& route = run.route;
  connector::MispApi& dest = *route.destination;
  std::vector<Prepared>& batch = wave.batch;
  batch.resize(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) batch[i].item = std::move(items[i]);

  // Fetch and decide.
  BulkFetch(run, batch);
  std::size_t handed = ForEachBounded(
      batch.size(), options_.max_in_flight,
      [&](std::size_t i) {
        ScopedLogContext event({"", "", "", batch[i].item.uuid});
        Fetch(run, batch[i]);
      },
      [&] { return run.ShouldStop(); });
  for (std::size_t i = handed; i < batch.size(); ++i) {
    SGSYNC_TRY_STATUS(store_.Release(batch[i].item.id));
    batch[i].done = true;
  }

  SGSYNC_TRY_STATUS(LearnDestinationTimestamps(run, batch));

  // Refusals are complete now; the rest are offered to the destination.
  std::vector<std::pair<std::string, std::int64_t>> offer;
  for (auto& p : batch) {
    if (p.done || !p.decision) continue;
    ScopedLogContext event({"", "", "", p.item.uuid});
    if (!p.decision->send) {
      if (p.ledger && p.ledger->decision == state::LedgerDecision::kSend &&
          p.ledger->written_side == route.destination_side) {
        // Eligible before, not now (a changed rule or TLP policy): MISP has no way to take an event
        // back, so the copy stays where it is. Say so where explain and the logs show it.
        p.decision->warnings.push_back(
            std::string("sent earlier under a previous configuration; MISP cannot retract an event: ") +
            std::string(route.destination_name()) + " keeps the copy it has");
        spdlog::warn("link {}: {} {} is no longer eligible but was sent before: {} keeps its copy", name_,
                     route.name(), p.item.uuid, route.destination_name());
        std::lock_guard lock(run.mu);
        ++run.stats.no_longer_eligible;
      }
      state::LedgerEntry entry = SeenEntry(p, route, state::LedgerDecision::kSkip);
      const policy::Reason* why = p.decision->refusal();
      spdlog::info("link {}: {} {} skipped: {}", name_, run.route.name(), p.item.uuid,
                   why != nullptr ? why->rule + " (" + why->detail + ")" : "not served by the source");
      Finish(run, p, std::move(entry), Outcome::kSkipped);
      continue;
    }
    auto held = HandleConflict(run, p);
    if (!held.ok()) {
      FailItem(run, p.item, held.error());
      p.done = true;
      continue;
    }
    if (*held) {
      Finish(run, p, SeenEntry(p, route, state::LedgerDecision::kHeldConflict), Outcome::kHeld);
      continue;
    }
    offer.emplace_back(p.item.uuid, p.source_timestamp);
  }
  if (offer.empty()) return {};

  // Which does the destination need? (MISP's own push asks filterEventIdsForPush, spec 7.2.)
  auto needed = dest.FilterEventIdsForPush(offer);
  if (!needed.ok()) {
    for (auto& p : batch) {
      if (!p.done && p.decision && p.decision->send) FailItem(run, p.item, needed.error()), p.done = true;
    }
    return {};
  }
  std::set<std::string> need;
  for (const auto& u : *needed) need.insert(AsciiLower(u));
  for (auto& p : batch) {
    if (p.done || !p.decision || !p.decision->send) continue;
    if (need.count(AsciiLower(p.item.uuid))) {
      wave.to_write.push_back(&p);
      continue;
    }
    if (p.item.last_error.rfind(kPartialPrefix, 0) == 0) {
      RecheckPartial(run, p);  // held at this version already: was it mended there?
      continue;
    }
    Finish(run, p, SeenEntry(p, route, state::LedgerDecision::kSend), Outcome::kAlready);
  }
  return {};
}

}  // namespace sgsync::engine
