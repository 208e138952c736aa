// Writing one decided event to the destination: add or edit, what the receiver saved in part, its
// sightings after a push, and the member's own events that sync never overwrites.
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

void LinkEngine::Write(RunContext& run, Prepared& p) {
  const Route& route = run.route;
  const int side = route.push() ? 0 : 1;
  // Read before the exchange, not after it, when the answer's work has pushed the event out of the
  // caches (misp/elements.h); its elements are compared with the receiver's answer after the
  // exchange, its tag names decide whether it goes alone.
  const misp::SentElements sent(*p.decision->event);
  NewTagGate& gate = *new_tags_[side];
  const std::vector<std::string_view>& tags = sent.tag_names();
  std::unique_lock<std::mutex> alone = gate.Enter(tags);
  WriteEvent(run, p, sent);
  if (p.reached) gate.Written(tags);
}

void LinkEngine::WriteEvent(RunContext& run, Prepared& p, const misp::SentElements& sent) {
  const Route& route = run.route;
  connector::MispApi& dest = *route.destination;
  const json::object& event = *p.decision->event;
  // MISP's own push: an edit when the destination has the event, else an add (spec 7.2). The ledger
  // knows whether sgsync wrote it there before; an add of a uuid that exists anyway answers 404
  // with its Location, and becomes an edit.
  bool written_before = p.ledger && p.ledger->written_side == route.destination_side;
  // Pull: before any edit of an event on the member's MISP that sgsync did not write there itself
  // (an add answered "already there"), or of one that now claims the member's organisation as its
  // creator, the member's copy is looked at: sgsync writes with a site-admin key, so MISP's own
  // "Blocked an edit to an event that was created locally" does not protect it; this does
  // (docs/security.md).
  auto guard = [&]() -> Result<bool> {
    if (route.push()) return false;
    return RefuseMemberEvent(p);
  };
  const json::value* orgc = event.if_contains("Orgc");
  const bool claims_member =
      !link_.local.org.uuid.empty() && orgc != nullptr && orgc->is_object() &&
      policy::SameText(misp::StringOr(orgc->get_object(), "uuid"), link_.local.org.uuid);
  Result<connector::WriteResult> w = connector::WriteResult{};
  if (written_before) {
    auto refused = claims_member ? guard() : Result<bool>(false);
    if (!refused.ok()) return FailItem(run, p.item, refused.error()), void(p.done = true);
    if (*refused) return Protected(run, p, "overwrite");
    w = dest.EditEvent(p.item.uuid, event);
    // The destination lost the copy sgsync wrote (deleted there, restored from an older backup):
    // filterEventIdsForPush asked for it, so it is added again.
    if (!w.ok() && w.error().code == ErrorCode::kNotFound) w = dest.AddEvent(event);
  } else {
    w = dest.AddEvent(event);
  }
  if (w.ok() && !w->written) {
    auto refused = guard();
    if (!refused.ok()) return FailItem(run, p.item, refused.error()), void(p.done = true);
    if (*refused) return Protected(run, p, "overwrite");
    w = dest.EditEvent(w->existing_id.empty() ? p.item.uuid : w->existing_id, event);
  }
  if (!w.ok() && w.error().code == ErrorCode::kNotNewer) {
    if (p.item.last_error.rfind(kPartialPrefix, 0) == 0) return RecheckPartial(run, p);
    // The destination has this version or a newer one: nothing to write (idempotent replay).
    return Finish(run, p, SeenEntry(p, route, state::LedgerDecision::kSend), Outcome::kAlready);
  }
  if (!w.ok()) return FailItem(run, p.item, w.error()), void(p.done = true);
  // What the receiver saved, compared with what was sent (issue 16 item 11): MISP may accept an
  // event and drop some of its elements without a word.
  auto missing = w->written ? sent.MissingFrom(w->saved.element_uuids) : std::vector<misp::MissingElement>{};
  if (!missing.empty()) {
    const std::string where(route.destination_name());
    json::array dropped;
    for (const auto& m : missing) {
      spdlog::warn(
          "link {}: {} {}: {} accepted the event but did not save {} {} ({}, {}); MISP gave no reason", name_,
          run.route.name(), p.item.uuid, where, m.kind, m.uuid, m.what, m.path);
      if (metrics_ != nullptr)
        metrics_->Add(metric::kElementsDropped,
                      {{"link", name_}, {"direction", std::string(run.route.name())}, {"kind", m.kind}});
      dropped.push_back(json::object{{"kind", m.kind}, {"uuid", m.uuid}, {"path", m.path}, {"what", m.what}});
    }
    switch (options_.on_partial_write) {
      case PartialWrite::kAccept: {
        p.decision->warnings.push_back(where + " saved the event without " + std::to_string(missing.size()) +
                                       " of its elements (receiver_dropped); accepted (on_partial_write)");
        state::LedgerEntry entry = WrittenEntry(p, route, event);
        json::value decision = p.decision->RecordJson();
        decision.as_object()["receiver_dropped"] = std::move(dropped);
        entry.decision_json = json::serialize(decision);
        {
          std::lock_guard lock(run.mu);
          ++run.stats.partial;
        }
        Finish(run, p, std::move(entry), Outcome::kSent);
        return SendSightingsAfterPush(run, p);
      }
      case PartialWrite::kRetry:
        return FailItem(run, p.item, PartialError(missing, route)), void(p.done = true);
      case PartialWrite::kDeadLetter: {
        auto st = store_.DeadLetter(p.item.id, PartialError(missing, route).ToString());
        if (!st.ok())
          spdlog::error("link {}: dead-lettering {}: {}", name_, p.item.uuid, st.error().ToString());
        std::lock_guard lock(run.mu);
        ++run.stats.failed;
        ++run.stats.partial;
        p.done = true;
        return;
      }
    }
  }
  spdlog::info("link {}: {} {} (timestamp {}) {}", name_, run.route.name(), p.item.uuid, p.source_timestamp,
               written_before ? "edited" : "written");
  Finish(run, p, WrittenEntry(p, route, event), Outcome::kSent);
  SendSightingsAfterPush(run, p);
}

// MISP's push sends an event's sightings after the event (Event::pushSightingsToServer, spec 8.1), as
// the sighting policy shows them to the receiving organisation; so does sgsync, for the sightings the
// event carried when it was read.
void LinkEngine::SendSightingsAfterPush(RunContext& run, Prepared& p) {
  if (!run.route.push() || p.sightings.empty()) return;
  SightingsStats s;
  auto sent = SendEventSightings(run.route, p.item.uuid, p.sightings, s);
  if (!sent.ok()) {
    spdlog::warn("link {}: push {}: its sightings: {}", name_, p.item.uuid, sent.error().ToString());
  } else if (!*sent) {
    spdlog::warn("link {}: push {}: its sightings were not all taken; the sightings runs try again", name_,
                 p.item.uuid);
  }
  if (metrics_ != nullptr) {
    metrics_->Add(metric::kSightings, {{"link", name_}, {"direction", "push"}, {"outcome", "sent"}},
                  static_cast<double>(s.sent));
    metrics_->Add(metric::kSightings, {{"link", name_}, {"direction", "push"}, {"outcome", "withheld"}},
                  static_cast<double>(s.withheld));
  }
  p.sightings = json::array();
}

// An earlier attempt was saved in part (on_partial_write = "retry"): MISP refuses the same version
// again, so the destination's copy is looked at: complete now (someone mended it there), or still
// short (failed again, dead-lettered after max_attempts).
void LinkEngine::RecheckPartial(RunContext& run, Prepared& p) {
  connector::ViewForm form;
  form.include_deleted = false;
  auto theirs = run.route.destination->ViewEvent(p.item.uuid, form);
  if (!theirs.ok()) return FailItem(run, p.item, theirs.error()), void(p.done = true);
  json::object saved = *theirs ? (**theirs).event_json() : json::object();
  if (auto missing = misp::ElementsMissingFrom(*p.decision->event, saved); !missing.empty())
    return FailItem(run, p.item, PartialError(missing, run.route)), void(p.done = true);
  Finish(run, p, WrittenEntry(p, run.route, *p.decision->event), Outcome::kSent);
}

Error LinkEngine::PartialError(const std::vector<misp::MissingElement>& missing, const Route& route) const {
  std::string list;
  for (std::size_t i = 0; i < missing.size() && i < 5; ++i)
    list += (i ? ", " : "") + missing[i].kind + " " + missing[i].uuid + " (" + missing[i].what + ")";
  if (missing.size() > 5) list += ", ...";
  return Fail(ErrorCode::kRefused, std::string(kPartialPrefix) + std::string(route.destination_name()) +
                                       " saved the event without " + std::to_string(missing.size()) +
                                       " of its elements: " + list + " (MISP gave no reason)");
}

void LinkEngine::Protected(RunContext& run, Prepared& p, const char* what) {
  if (metrics_ != nullptr) metrics_->Add(metric::kProtected, {{"link", name_}, {"what", what}});
  Finish(run, p, SeenEntry(p, run.route, state::LedgerDecision::kSkip), Outcome::kSkipped);
}

Result<bool> LinkEngine::RefuseMemberEvent(Prepared& p) {
  SGSYNC_TRY(auto held, local_.EventsMetadata({p.item.uuid}));
  auto it = held.find(AsciiLower(p.item.uuid));
  if (it == held.end()) return false;
  std::string why = MemberOwns(it->second);
  if (why.empty()) return false;
  spdlog::warn("link {}: pull {} refused: {}", name_, p.item.uuid, why);
  if (p.decision) {
    p.decision->send = false;
    p.decision->reasons.push_back(
        policy::Reason{"sgsync.protect.member_event", "sgsync", "Event.uuid", "refuse", "", "", why});
  }
  return true;
}

std::string LinkEngine::MemberOwns(const connector::EventMetadata& m) const {
  if (link_.internal) return "";  // an internal link may update unlocked events, as MISP (spec 7.7)
  if (!m.locked)
    return "the member's MISP holds this uuid as an event created there (not locked): sync never overwrites "
           "or deletes it";
  if (!link_.local.org.uuid.empty() && policy::SameText(m.orgc_uuid, link_.local.org.uuid))
    return "the member's MISP holds this uuid as an event of the member's own organisation: the Portal "
           "cannot speak for it";
  return "";
}

}  // namespace sgsync::engine
