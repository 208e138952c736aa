#include "sync/engine/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <set>
#include <thread>

#include "common/encoding.h"
#include "misp/content_hash.h"
#include "misp/elements.h"
#include "misp/event.h"

namespace sgsync::engine {

namespace {

bool PeerTrouble(const Error& e) {
  return e.code == ErrorCode::kUnavailable || e.code == ErrorCode::kRateLimited ||
         e.code == ErrorCode::kTimeout;
}

// Runs fn(i) for i in [0, n) on up to `width` threads; stops handing out work once `stop()` holds
// and returns how many were handed out (a prefix of [0, n)).
template <typename Fn, typename Stop>
std::size_t ForEachBounded(std::size_t n, int width, Fn fn, Stop stop) {
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    while (true) {
      if (stop()) return;
      std::size_t i = next.fetch_add(1);
      if (i >= n) return;
      fn(i);
    }
  };
  std::size_t threads = std::min<std::size_t>(n, static_cast<std::size_t>(std::max(1, width)));
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::jthread> pool;
    for (std::size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
  }
  return std::min(next.load(), n);
}

}  // namespace

bool PlausibleTimestamp(std::int64_t ts) {
  return ts > 0 && ts <= static_cast<std::int64_t>(std::time(nullptr)) + kFutureSkewSeconds;
}

void DeclareMetrics(Metrics& m) {
  using T = Metrics::Type;
  m.Declare("sgsync_events_total", T::kCounter,
            "Events handled, by link, direction and outcome (sent, already, skipped, echo, failed).");
  m.Declare("sgsync_events_skipped_total", T::kCounter,
            "Events the policy refused, by link, direction and rule.");
  m.Declare("sgsync_runs_total", T::kCounter,
            "Sync runs, by link, direction and outcome (ok, not_modified, aborted, error).");
  m.Declare("sgsync_conflicts_total", T::kCounter, "Events found changed on both sides since the last sync.");
  m.Declare("sgsync_reconciliation_found_total", T::kCounter,
            "Events a full reconciliation found behind the cursor (late arrivals), by link and direction.");
  m.Declare("sgsync_sightings_total", T::kCounter,
            "Sightings by link, direction and outcome (sent, withheld by the sighting policy).");
  m.Declare("sgsync_queue_depth", T::kGauge,
            "Work items by link, direction and state (pending, failed, dead).");
  m.Declare("sgsync_last_success_timestamp_seconds", T::kGauge,
            "When a run last ended without error, by link and direction (Unix seconds).");
  m.Declare("sgsync_cursor_timestamp_seconds", T::kGauge, "The event cursor, by link and direction.");
  m.Declare("sgsync_requests_total", T::kCounter,
            "Requests to a MISP, by peer, method, route and status (0: no answer).");
  m.Declare("sgsync_request_duration_seconds", T::kHistogram,
            "Time of one request attempt, by peer and route.");
  m.Declare("sgsync_elements_dropped_total", T::kCounter,
            "Elements a receiver accepted the event without (saved in part), by link, direction and kind.");
  m.Declare("sgsync_proposals_withheld_total", T::kCounter,
            "Proposals kept home because what they change does not leave, by link, direction and rule.");
  m.Declare("sgsync_index_rows_rejected_total", T::kCounter,
            "Index rows left out, by link, direction and reason (unreadable, implausible_timestamp).");
  m.Declare("sgsync_protected_total", T::kCounter,
            "Writes and deletions refused to protect the member's own events, by link and what "
            "(overwrite, delete).");
}

// One event on its way through a run.
struct LinkEngine::Prepared {
  state::WorkItem item;
  std::optional<state::LedgerEntry> ledger;  // as it was before this run
  std::int64_t source_timestamp = 0;
  std::string source_hash;
  std::optional<policy::Decision> decision;
  std::optional<json::object> prefetched;  // from a bulk restSearch
  json::array sightings;                   // push: the sightings the event carried (EmbeddedSightings)
  bool done = false;                       // finished (completed or failed); nothing more to do
};

class LinkEngine::RunContext {
 public:
  RunContext(Direction d, const RunOptions& o) : direction(d), options(o) {}
  Direction direction;
  const RunOptions& options;
  std::mutex mu;  // guards stats
  RunStats stats;
  std::atomic<int> peer_failures{0};
  std::atomic<bool> peer_down{false};

  bool ShouldStop() const { return peer_down.load() || (options.stop != nullptr && options.stop->load()); }
  void Report() {
    if (!options.progress) return;
    RunStats copy;
    {
      std::lock_guard lock(mu);
      copy = stats;
    }
    options.progress(copy);
  }
};

// The event's ledger entry once the source's version was seen and decided: what the ledger knew,
// plus the source's timestamp and hash, and the decision with its reasons.
state::LedgerEntry LinkEngine::SeenEntry(const Prepared& p, bool push, const std::string& decision) {
  state::LedgerEntry entry = p.ledger.value_or(state::LedgerEntry{});
  entry.uuid = p.item.uuid;
  if (!p.ledger) entry.origin = push ? state::Side::kLocal : state::Side::kRemote;
  (push ? entry.local_timestamp : entry.remote_timestamp) = p.source_timestamp;
  if (!p.source_hash.empty()) (push ? entry.local_hash : entry.remote_hash) = p.source_hash;
  entry.decision = decision;
  if (p.decision) entry.decision_json = json::serialize(p.decision->ToJson());
  return entry;
}

// The ledger after the destination took the event: what was written there, and that its copy is
// now at the source's timestamp (MISP keeps the timestamp it is sent).
state::LedgerEntry LinkEngine::WrittenEntry(const Prepared& p, bool push, const json::object& written) {
  state::LedgerEntry entry = SeenEntry(p, push, "send");
  entry.written_side = push ? state::Side::kRemote : state::Side::kLocal;
  entry.written_timestamp = p.source_timestamp;
  entry.written_hash = misp::ContentHash(written);
  (push ? entry.remote_timestamp : entry.local_timestamp) = p.source_timestamp;
  return entry;
}

LinkEngine::LinkEngine(std::string name, std::int64_t link_id, policy::Link link, EngineOptions options,
                       connector::MispApi& local, connector::MispApi& remote, state::StateStore& store,
                       Metrics* metrics)
    : name_(std::move(name)),
      link_id_(link_id),
      link_(std::move(link)),
      options_(options),
      local_(local),
      remote_(remote),
      store_(store),
      metrics_(metrics) {}

void LinkEngine::FailItem(RunContext& run, const state::WorkItem& item, const Error& e) {
  std::optional<std::int64_t> retry_at;
  if (e.code == ErrorCode::kRateLimited && e.retry_after_seconds > 0)
    retry_at = static_cast<std::int64_t>(std::time(nullptr)) + e.retry_after_seconds;
  auto st = store_.FailAttempt(item.id, e.ToString(), retry_at);
  {
    std::lock_guard lock(run.mu);
    ++run.stats.failed;
  }
  if (metrics_ != nullptr) {
    metrics_->Add(
        "sgsync_events_total",
        {{"link", name_}, {"direction", std::string(DirectionName(run.direction))}, {"outcome", "failed"}});
  }
  if (!st.ok()) {
    spdlog::error("link {}: {} {}: recording a failed attempt failed: {}", name_,
                  DirectionName(run.direction), item.uuid, st.error().ToString());
  } else {
    spdlog::warn("link {}: {} {} failed ({}): {}", name_, DirectionName(run.direction), item.uuid,
                 *st == state::WorkState::kDead ? "dead-lettered" : "will retry", e.ToString());
  }
  if (PeerTrouble(e)) {
    if (run.peer_failures.fetch_add(1) + 1 >= options_.peer_failures_to_abort) run.peer_down = true;
  }
}

void LinkEngine::Finish(RunContext& run, Prepared& p, state::LedgerEntry entry, const std::string& outcome) {
  auto st = store_.Complete(p.item.id, link_id_, entry);
  if (!st.ok()) {
    FailItem(run, p.item, st.error());
    p.done = true;
    return;
  }
  run.peer_failures = 0;
  p.done = true;
  {
    std::lock_guard lock(run.mu);
    if (outcome == "sent") ++run.stats.sent;
    if (outcome == "already") ++run.stats.already;
    if (outcome == "held") ++run.stats.held;
    if (outcome == "skipped") {
      ++run.stats.skipped;
      const policy::Reason* why = p.decision ? p.decision->refusal() : nullptr;
      ++run.stats.skipped_by_reason[why != nullptr ? why->rule : "source.not_served"];
    }
  }
  if (metrics_ != nullptr) {
    std::string dir(DirectionName(run.direction));
    metrics_->Add("sgsync_events_total", {{"link", name_}, {"direction", dir}, {"outcome", outcome}});
    if (outcome == "skipped") {
      const policy::Reason* why = p.decision ? p.decision->refusal() : nullptr;
      metrics_->Add("sgsync_events_skipped_total",
                    {{"link", name_},
                     {"direction", dir},
                     {"reason", why != nullptr ? why->rule : "source.not_served"}});
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
  if (run.direction == Direction::kPush && options_.sightings) p.sightings = EmbeddedSightings(event);
  p.decision = policy::Evaluate(run.direction, std::optional<json::object>(std::move(event)), link_);
}

// One restSearch per `bulk_fetch` events instead of one events/view each (real MISP 2.5.1: 200
// events in ~1 s instead of ~19 s). What it does not return is fetched singly afterwards, so an
// event the bulk answer lacks is never taken for "not served".
void LinkEngine::BulkFetch(RunContext& run, std::vector<Prepared>& batch) {
  // restSearch leaves local tags out. They matter on internal links (they travel) and to push
  // rules on tags (MISP matches local tags too, spec 6.1): then each event is viewed instead.
  const bool push = run.direction == Direction::kPush;
  bool tag_rules = !link_.push_rules.tags_or.empty() || !link_.push_rules.tags_not.empty();
  if (options_.bulk_fetch <= 0 || link_.internal || (push && tag_rules)) return;
  connector::MispApi& source = push ? local_ : remote_;
  for (std::size_t from = 0; from < batch.size() && !run.ShouldStop(); from += options_.bulk_fetch) {
    std::size_t to = std::min(batch.size(), from + static_cast<std::size_t>(options_.bulk_fetch));
    json::array uuids;
    std::map<std::string, Prepared*> by_uuid;
    for (std::size_t i = from; i < to; ++i) {
      uuids.emplace_back(batch[i].item.uuid);
      by_uuid[AsciiLower(batch[i].item.uuid)] = &batch[i];
    }
    // deleted [0, 1]: soft-deleted elements included, as the view's deleted filters do (spec 3.3).
    auto docs = source.RestSearch(json::object{{"uuid", std::move(uuids)}, {"deleted", json::array{0, 1}}});
    if (!docs.ok()) {
      spdlog::debug("link {}: bulk fetch failed ({}); fetching one by one", name_, docs.error().ToString());
      return;
    }
    for (auto& doc : *docs) {
      json::object event = std::move(doc).TakeEvent();
      auto it = by_uuid.find(AsciiLower(misp::StringOr(event, "uuid")));
      if (it != by_uuid.end()) it->second->prefetched = std::move(event);
    }
  }
}

void LinkEngine::Fetch(RunContext& run, Prepared& p) {
  const bool push = run.direction == Direction::kPush;
  connector::MispApi& source = push ? local_ : remote_;
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
  connector::ViewForm form;
  form.include_deleted = true;
  // Push reads the member's event whole (local tags included: the policy strips them unless the
  // link is internal); pull asks the Portal for what MISP's own pull asks (spec 3.3).
  form.exclude_local_tags = !push && !link_.internal;
  auto doc = source.ViewEvent(p.item.uuid, form);
  if (!doc.ok()) return FailItem(run, p.item, doc.error()), void(p.done = true);
  {
    std::lock_guard lock(run.mu);
    ++run.stats.fetched;
  }
  if (!doc->has_value()) {
    p.decision = policy::Evaluate(run.direction, nullptr, link_);
    p.source_timestamp = p.item.version;
    return;
  }
  Decide(run, p, std::move(**doc).TakeEvent());
}

void LinkEngine::Write(RunContext& run, Prepared& p) {
  const bool push = run.direction == Direction::kPush;
  connector::MispApi& dest = push ? remote_ : local_;
  const state::Side dest_side = push ? state::Side::kRemote : state::Side::kLocal;
  const json::object& event = *p.decision->event;
  // MISP's own push: an edit when the destination has the event, else an add (spec 7.2). The ledger
  // knows whether sgsync wrote it there before; an add of a uuid that exists anyway answers 404
  // with its Location, and becomes an edit.
  bool written_before = p.ledger && p.ledger->written_side == dest_side;
  // Pull: before any edit of an event on the member's MISP that sgsync did not write there itself
  // (an add answered "already there"), or of one that now claims the member's organisation as its
  // creator, the member's copy is looked at: sgsync writes with a site-admin key, so MISP's own
  // "Blocked an edit to an event that was created locally" does not protect it; this does
  // (docs/security.md).
  auto guard = [&]() -> Result<bool> {
    if (push) return false;
    return RefuseMemberEvent(p);
  };
  const json::value* orgc = event.if_contains("Orgc");
  const bool claims_member = !link_.local.org.uuid.empty() && orgc != nullptr && orgc->is_object() &&
                             policy::SameText(misp::StringOr(orgc->get_object(), "uuid"), link_.local.org.uuid);
  Result<connector::WriteResult> w = connector::WriteResult{};
  if (written_before) {
    auto refused = claims_member ? guard() : Result<bool>(false);
    if (!refused.ok()) return FailItem(run, p.item, refused.error()), void(p.done = true);
    if (*refused) return Protected(run, p, "overwrite");
    w = dest.EditEvent(p.item.uuid, event);
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
    return Finish(run, p, SeenEntry(p, push, "send"), "already");
  }
  if (!w.ok()) return FailItem(run, p.item, w.error()), void(p.done = true);
  // What the receiver saved, compared with what was sent (issue 16 item 11): MISP may accept an
  // event and drop some of its elements without a word.
  const json::value* saved = w->body.is_object() ? w->body.get_object().if_contains("Event") : nullptr;
  auto missing = saved != nullptr && saved->is_object() ? misp::ElementsMissingFrom(event, saved->get_object())
                                                         : std::vector<misp::MissingElement>{};
  if (!missing.empty()) {
    const std::string where = push ? "the Portal" : "the member's MISP";
    json::array dropped;
    for (const auto& m : missing) {
      spdlog::warn("link {}: {} {}: {} accepted the event but did not save {} {} ({}, {}); MISP gave no reason",
                   name_, DirectionName(run.direction), p.item.uuid, where, m.kind, m.uuid, m.what, m.path);
      if (metrics_ != nullptr)
        metrics_->Add("sgsync_elements_dropped_total",
                      {{"link", name_}, {"direction", std::string(DirectionName(run.direction))}, {"kind", m.kind}});
      dropped.push_back(json::object{{"kind", m.kind}, {"uuid", m.uuid}, {"path", m.path}, {"what", m.what}});
    }
    switch (options_.on_partial_write) {
      case PartialWrite::kAccept: {
        p.decision->warnings.push_back(where + " saved the event without " + std::to_string(missing.size()) +
                                       " of its elements (receiver_dropped); accepted (on_partial_write)");
        state::LedgerEntry entry = WrittenEntry(p, push, event);
        json::value decision = p.decision->ToJson();
        decision.as_object()["receiver_dropped"] = std::move(dropped);
        entry.decision_json = json::serialize(decision);
        {
          std::lock_guard lock(run.mu);
          ++run.stats.partial;
        }
        Finish(run, p, std::move(entry), "sent");
        return SendSightingsAfterPush(run, p);
      }
      case PartialWrite::kRetry:
        return FailItem(run, p.item, PartialError(missing, dest_side)), void(p.done = true);
      case PartialWrite::kDeadLetter: {
        auto st = store_.DeadLetter(p.item.id, PartialError(missing, dest_side).ToString());
        if (!st.ok()) spdlog::error("link {}: dead-lettering {}: {}", name_, p.item.uuid, st.error().ToString());
        std::lock_guard lock(run.mu);
        ++run.stats.failed;
        ++run.stats.partial;
        p.done = true;
        return;
      }
    }
  }
  spdlog::info("link {}: {} {} (timestamp {}) {}", name_, DirectionName(run.direction), p.item.uuid,
               p.source_timestamp, written_before ? "edited" : "written");
  Finish(run, p, WrittenEntry(p, push, event), "sent");
  SendSightingsAfterPush(run, p);
}

// MISP's push sends an event's sightings after the event (Event::pushSightingsToServer, spec 8.1), as
// the sighting policy shows them to the receiving organisation; so does sgsync, for the sightings the
// event carried when it was read.
void LinkEngine::SendSightingsAfterPush(RunContext& run, Prepared& p) {
  if (run.direction != Direction::kPush || p.sightings.empty()) return;
  SightingsStats s;
  auto sent = SendEventSightings(Direction::kPush, p.item.uuid, p.sightings, s);
  if (!sent.ok()) {
    spdlog::warn("link {}: push {}: its sightings: {}", name_, p.item.uuid, sent.error().ToString());
  } else if (!*sent) {
    spdlog::warn("link {}: push {}: its sightings were not all taken; the sightings runs try again", name_,
                 p.item.uuid);
  }
  if (metrics_ != nullptr) {
    metrics_->Add("sgsync_sightings_total", {{"link", name_}, {"direction", "push"}, {"outcome", "sent"}},
                  static_cast<double>(s.sent));
    metrics_->Add("sgsync_sightings_total", {{"link", name_}, {"direction", "push"}, {"outcome", "withheld"}},
                  static_cast<double>(s.withheld));
  }
  p.sightings = json::array();
}

// An earlier attempt was saved in part (on_partial_write = "retry"): MISP refuses the same version
// again, so the destination's copy is looked at: complete now (someone mended it there), or still
// short (failed again, dead-lettered after max_attempts).
void LinkEngine::RecheckPartial(RunContext& run, Prepared& p) {
  const bool push = run.direction == Direction::kPush;
  const state::Side dest_side = push ? state::Side::kRemote : state::Side::kLocal;
  connector::ViewForm form;
  form.include_deleted = false;
  auto theirs = (push ? remote_ : local_).ViewEvent(p.item.uuid, form);
  if (!theirs.ok()) return FailItem(run, p.item, theirs.error()), void(p.done = true);
  json::object saved = *theirs ? (**theirs).event_json() : json::object();
  if (auto missing = misp::ElementsMissingFrom(*p.decision->event, saved); !missing.empty())
    return FailItem(run, p.item, PartialError(missing, dest_side)), void(p.done = true);
  Finish(run, p, WrittenEntry(p, push, *p.decision->event), "sent");
}

Error LinkEngine::PartialError(const std::vector<misp::MissingElement>& missing, state::Side dest_side) const {
  std::string list;
  for (std::size_t i = 0; i < missing.size() && i < 5; ++i)
    list += (i ? ", " : "") + missing[i].kind + " " + missing[i].uuid + " (" + missing[i].what + ")";
  if (missing.size() > 5) list += ", ...";
  return Fail(ErrorCode::kRefused,
              std::string(kPartialPrefix) + (dest_side == state::Side::kRemote ? "the Portal" : "the member's MISP") +
                  " saved the event without " + std::to_string(missing.size()) + " of its elements: " + list +
                  " (MISP gave no reason)");
}

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

void LinkEngine::Protected(RunContext& run, Prepared& p, const char* what) {
  if (metrics_ != nullptr) metrics_->Add("sgsync_protected_total", {{"link", name_}, {"what", what}});
  Finish(run, p, SeenEntry(p, run.direction == Direction::kPush, "skip"), "skipped");
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
    p.decision->reasons.push_back(policy::Reason{"sgsync.protect.member_event", "sgsync", "Event.uuid", "refuse",
                                                 "", "", why});
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

// A conflict must be seen whichever direction runs first (issue 16 item 9). The ledger learns the
// destination's timestamp when the other direction lists it; a run in this direction that comes
// first would otherwise write over a change it never saw (and filterEventIdsForPush would drop a
// newer destination copy without a word). So before offering events sgsync wrote to the
// destination before, it asks the destination for their timestamps: one restSearch (metadata) per
// batch, and only for such edits.
Status LinkEngine::LearnDestinationTimestamps(RunContext& run, std::vector<Prepared>& batch) {
  const bool push = run.direction == Direction::kPush;
  const state::Side dest_side = push ? state::Side::kRemote : state::Side::kLocal;
  std::vector<std::string> uuids;
  for (const auto& p : batch) {
    if (p.done || !p.decision || !p.decision->send || !p.ledger) continue;
    if (p.ledger->written_side == dest_side && p.ledger->written_timestamp) uuids.push_back(p.item.uuid);
  }
  if (uuids.empty()) return {};
  connector::MispApi& dest = push ? remote_ : local_;
  auto held = dest.EventsMetadata(uuids);
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
    std::optional<std::int64_t>& seen = push ? p.ledger->remote_timestamp : p.ledger->local_timestamp;
    if (!seen || it->second.timestamp > *seen) seen = it->second.timestamp;
  }
  return {};
}

Result<bool> LinkEngine::HandleConflict(RunContext& run, Prepared& p) {
  const bool push = run.direction == Direction::kPush;
  if (!p.ledger || p.ledger->written_side != (push ? state::Side::kRemote : state::Side::kLocal))
    return false;
  auto dest_seen = push ? p.ledger->remote_timestamp : p.ledger->local_timestamp;
  if (!dest_seen || !p.ledger->written_timestamp || *dest_seen <= *p.ledger->written_timestamp) return false;
  // Changed on both sides since sgsync last wrote: the destination's copy moved on too.
  state::Conflict c;
  c.uuid = p.item.uuid;
  c.local_timestamp = push ? p.source_timestamp : *dest_seen;
  c.remote_timestamp = push ? *dest_seen : p.source_timestamp;
  c.local_hash = push ? p.source_hash : p.ledger->local_hash.value_or("");
  c.remote_hash = push ? p.ledger->remote_hash.value_or("") : p.source_hash;
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
    connector::MispApi& dest = push ? remote_ : local_;
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
        name_, p.item.uuid, c.local_timestamp, c.remote_timestamp, id, static_cast<int>(options_.conflict_policy));
    std::lock_guard lock(run.mu);
    ++run.stats.conflicts;
    if (metrics_ != nullptr) metrics_->Add("sgsync_conflicts_total", {{"link", name_}});
  }
  ConflictPolicy policy = options_.conflict_policy;
  if (resolution == "prefer-newer") policy = ConflictPolicy::kPreferNewer;
  if (resolution == "prefer-local") policy = ConflictPolicy::kPreferLocal;
  if (resolution == "prefer-portal") policy = ConflictPolicy::kPreferPortal;
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

Status LinkEngine::ProcessBatch(RunContext& run, std::vector<state::WorkItem> items) {
  const bool push = run.direction == Direction::kPush;
  connector::MispApi& dest = push ? remote_ : local_;
  std::vector<Prepared> batch(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) batch[i].item = std::move(items[i]);

  // Fetch and decide.
  BulkFetch(run, batch);
  std::size_t handed = ForEachBounded(
      batch.size(), options_.max_in_flight, [&](std::size_t i) { Fetch(run, batch[i]); },
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
    if (!p.decision->send) {
      if (p.ledger && p.ledger->decision == "send" &&
          p.ledger->written_side == (push ? state::Side::kRemote : state::Side::kLocal)) {
        // Eligible before, not now (a changed rule or TLP policy): MISP has no way to take an event
        // back, so the copy stays where it is. Say so where explain and the logs show it.
        p.decision->warnings.push_back(
            std::string("sent earlier under a previous configuration; MISP cannot retract an event: ") +
            (push ? "the Portal" : "the member's MISP") + " keeps the copy it has");
        spdlog::warn("link {}: {} {} is no longer eligible but was sent before: {} keeps its copy", name_,
                     DirectionName(run.direction), p.item.uuid, push ? "the Portal" : "the member's MISP");
        std::lock_guard lock(run.mu);
        ++run.stats.no_longer_eligible;
      }
      state::LedgerEntry entry = SeenEntry(p, push, "skip");
      const policy::Reason* why = p.decision->refusal();
      spdlog::info("link {}: {} {} skipped: {}", name_, DirectionName(run.direction), p.item.uuid,
                   why != nullptr ? why->rule + " (" + why->detail + ")" : "not served by the source");
      Finish(run, p, std::move(entry), "skipped");
      continue;
    }
    auto held = HandleConflict(run, p);
    if (!held.ok()) {
      FailItem(run, p.item, held.error());
      p.done = true;
      continue;
    }
    if (*held) {
      Finish(run, p, SeenEntry(p, push, "held_conflict"), "held");
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
  std::vector<Prepared*> to_write;
  for (auto& p : batch) {
    if (p.done || !p.decision || !p.decision->send) continue;
    if (need.count(AsciiLower(p.item.uuid))) {
      to_write.push_back(&p);
      continue;
    }
    if (p.item.last_error.rfind(kPartialPrefix, 0) == 0) {
      RecheckPartial(run, p);  // held at this version already: was it mended there?
      continue;
    }
    Finish(run, p, SeenEntry(p, push, "send"), "already");
  }

  handed = ForEachBounded(
      to_write.size(), options_.max_in_flight, [&](std::size_t i) { Write(run, *to_write[i]); },
      [&] { return run.ShouldStop(); });
  for (std::size_t i = handed; i < to_write.size(); ++i)
    SGSYNC_TRY_STATUS(store_.Release(to_write[i]->item.id));
  return {};
}

// An event sgsync pulled that the Portal's full index no longer lists has either been deleted
// there or merely left the sync account's view (distribution lowered, pull rules). MISP's own
// filterEventIdsForPush tells them apart (spec 7.4): it asks for an unknown uuid back, and drops
// one it still holds (as new, or unlocked as the origin's).
Status LinkEngine::FindDeletions(RunContext& run, const std::vector<misp::EventIndexEntry>& listed) {
  std::set<std::string> present;
  for (const auto& row : listed) present.insert(row.uuid);
  SGSYNC_TRY(auto written, store_.ListWritten(link_id_, state::Side::kLocal));
  std::vector<std::pair<std::string, std::int64_t>> missing;
  for (const auto& w : written) {
    if (!present.count(w.uuid)) missing.emplace_back(w.uuid, w.timestamp);
  }
  if (missing.empty()) return {};
  SGSYNC_TRY(auto answered, remote_.FilterEventIdsForPush(missing));
  // Only what was asked about counts: an answer naming any other uuid (a lying Portal) is ignored.
  std::set<std::string> asked;
  for (const auto& m : missing) asked.insert(AsciiLower(m.first));
  std::vector<std::string> gone;
  for (const auto& uuid : answered) {
    if (asked.erase(AsciiLower(uuid)) == 0) {
      spdlog::warn("link {}: the Portal's filterEventIdsForPush named {}, which was not asked about: ignored",
                   name_, uuid);
      continue;
    }
    gone.push_back(uuid);
  }
  for (const auto& uuid : gone) {
    SGSYNC_TRY(auto ledger, store_.GetLedger(link_id_, uuid));
    // A tombstone applies only to an event that came from the Portal and that sgsync wrote here.
    if (!ledger || ledger->origin != state::Side::kRemote || ledger->written_side != state::Side::kLocal)
      continue;
    // Seen before while tombstones were off: reported then, applied once they are on (issue 16
    // item 10), never counted twice.
    if (!options_.tombstones && ledger->decision == "deleted_at_portal") continue;
    ++run.stats.deleted_at_source;
    state::LedgerEntry entry = *ledger;
    if (!options_.tombstones) {
      entry.decision = "deleted_at_portal";
      SGSYNC_TRY_STATUS(store_.UpsertLedger(link_id_, entry));
      spdlog::info("link {}: {} was deleted at the Portal; the member's copy stays (tombstones are off)",
                   name_, uuid);
      continue;
    }
    SGSYNC_TRY(auto held, local_.EventsMetadata({uuid}));
    if (auto it = held.find(AsciiLower(uuid)); it != held.end()) {
      if (std::string why = MemberOwns(it->second); !why.empty()) {
        spdlog::warn("link {}: {} is gone from the Portal, but its deletion is refused: {}", name_, uuid, why);
        if (metrics_ != nullptr) metrics_->Add("sgsync_protected_total", {{"link", name_}, {"what", "delete"}});
        state::AuditRecord refused{};
        refused.actor = "sgsyncd";
        refused.action = "tombstone";
        refused.target = name_ + " " + uuid;
        refused.result = "refused";
        refused.details = why;
        SGSYNC_TRY_STATUS(store_.Audit(refused));
        continue;
      }
    }
    auto deleted = local_.DeleteEvent(uuid);
    state::AuditRecord audit;
    audit.actor = "sgsyncd";
    audit.action = "tombstone";
    audit.target = name_ + " " + uuid;
    audit.result = deleted.ok() ? "ok" : deleted.error().ToString();
    audit.details = "deleted at the Portal; the member's copy deleted (its MISP blocklists the uuid)";
    SGSYNC_TRY_STATUS(store_.Audit(audit));
    if (!deleted.ok() && deleted.error().code != ErrorCode::kNotFound) {
      spdlog::warn("link {}: {} was deleted at the Portal; deleting the member's copy failed: {}", name_,
                   uuid, deleted.error().ToString());
      continue;  // tried again at the next full run
    }
    SGSYNC_TRY_STATUS(store_.AddTombstone(link_id_, uuid, "portal", "deleted"));
    entry.decision = "tombstoned";
    SGSYNC_TRY_STATUS(store_.UpsertLedger(link_id_, entry));
    ++run.stats.tombstoned;
    spdlog::warn("link {}: {} was deleted at the Portal: the member's copy is deleted (tombstone recorded)",
                 name_, uuid);
  }
  return {};
}

std::string LinkEngine::CachedEtag(const std::string& channel, const std::string& filter) {
  std::lock_guard lock(etag_mu_);
  auto it = etags_.find(channel);
  return it != etags_.end() && it->second.first == filter ? it->second.second : "";
}

void LinkEngine::RememberEtag(const std::string& channel, const std::string& filter,
                              const std::string& etag) {
  std::lock_guard lock(etag_mu_);
  etags_[channel] = {filter, etag};
}

Result<policy::Decision> LinkEngine::DryRun(Direction d, const std::string& uuid) {
  const bool push = d == Direction::kPush;
  connector::ViewForm form;
  form.include_deleted = true;
  form.exclude_local_tags = !push && !link_.internal;
  connector::MispApi& source = push ? local_ : remote_;
  SGSYNC_TRY(auto doc, source.ViewEvent(uuid, form));
  if (!doc) return policy::Evaluate(d, nullptr, link_);
  return policy::Evaluate(d, std::optional<json::object>(std::move(*doc).TakeEvent()), link_);
}

Result<RunStats> LinkEngine::Run(Direction d, const RunOptions& options) {
  const bool push = d == Direction::kPush;
  std::unique_lock running(push ? push_run_ : pull_run_, std::defer_lock);
  if (options.wait_if_running) {
    running.lock();
  } else if (!running.try_lock()) {
    return Fail(ErrorCode::kUnavailable, std::string("a ") + std::string(DirectionName(d)) + " run of link " +
                                             name_ + " is already in progress");
  }
  if (push && !options_.remote_perm_sync) {
    return Fail(ErrorCode::kPermissionDenied,
                "the Portal account of link " + name_ +
                    " has no perm_sync (its role is not a sync role): MISP accepts no pushed events from it "
                    "(spec 12 case 36); ask the Portal's administrators for a sync user");
  }
  RunContext run(d, options);
  const Direction sd = d;
  const state::Side source_side = push ? state::Side::kLocal : state::Side::kRemote;
  connector::MispApi& source = push ? local_ : remote_;
  const std::string dir(DirectionName(d));

  SGSYNC_TRY(state::Cursor cursor, store_.GetCursor(link_id_, sd, state::CursorKind::kEvents));
  std::int64_t since =
      options.full ? 0 : std::max<std::int64_t>(0, cursor.last_timestamp - options_.overlap_seconds);
  // Push: what MISP's own push selects (published events). Pull: the pull rules as index filters.
  json::object filter =
      push ? json::object{{"minimal", 1}, {"published", 1}} : policy::PullIndexFilter(link_.pull_rules);
  filter["minimal"] = 1;
  filter["published"] = 1;
  if (since > 0) filter["timestamp"] = std::to_string(since);
  const std::string channel = "events " + dir, filter_text = json::serialize(filter);
  std::string etag = options.full ? "" : CachedEtag(channel, filter_text);
  SGSYNC_TRY(connector::IndexPage page, source.EventIndex(filter, etag));
  std::int64_t newest = cursor.last_timestamp;
  if (page.not_modified) {
    run.stats.not_modified = true;
  } else {
    RememberEtag(channel, filter_text, page.etag);
    run.stats.listed = static_cast<std::int64_t>(page.rows.size());
    std::vector<state::IndexPair> pairs;
    std::map<std::string, std::int64_t> stamp;
    pairs.reserve(page.rows.size());
    for (const auto& bad : page.rejected) {
      spdlog::warn("link {}: {} index row left out: {}", name_, dir, bad.ToString());
      if (metrics_ != nullptr)
        metrics_->Add("sgsync_index_rows_rejected_total",
                      {{"link", name_}, {"direction", dir}, {"reason", "unreadable"}});
    }
    for (const auto& row : page.rows) {
      if (!PlausibleTimestamp(row.timestamp)) {
        spdlog::warn("link {}: {} index row {} left out: its timestamp {} is not plausible (not positive, or "
                     "more than {} s ahead of this clock)",
                     name_, dir, row.uuid, row.timestamp, kFutureSkewSeconds);
        if (metrics_ != nullptr)
          metrics_->Add("sgsync_index_rows_rejected_total",
                        {{"link", name_}, {"direction", dir}, {"reason", "implausible_timestamp"}});
        continue;
      }
      newest = std::max(newest, row.timestamp);
      // MISP's pull leaves the local MISP's blocklisted events out of the index (spec 7.8).
      if (!push && policy::PullBlocklisted(link_, row.uuid, row.orgc_uuid)) {
        spdlog::debug("link {}: {} is on the member's blocklists: not fetched", name_, row.uuid);
        continue;
      }
      pairs.push_back({row.uuid, row.timestamp});
      stamp[row.uuid] = row.timestamp;
    }
    SGSYNC_TRY(std::vector<std::string> changed, store_.Changed(link_id_, source_side, pairs));
    if (!push && options.full && page.rejected.empty()) SGSYNC_TRY_STATUS(FindDeletions(run, page.rows));
    if (!push && options.full && !page.rejected.empty())
      spdlog::warn("link {}: deletions at the Portal not looked for: its index had rows that could not be read",
                   name_);
    for (const auto& uuid : changed) {
      std::int64_t ts = stamp[uuid];
      SGSYNC_TRY(auto ledger, store_.GetLedger(link_id_, uuid));
      if (!push) {
        SGSYNC_TRY(bool tomb, store_.HasTombstone(link_id_, uuid));
        if (tomb) continue;
      }
      // No echo: sgsync wrote this version here itself.
      if (ledger && ledger->written_side == source_side && ledger->written_timestamp &&
          *ledger->written_timestamp >= ts) {
        (push ? ledger->local_timestamp : ledger->remote_timestamp) = ts;
        SGSYNC_TRY_STATUS(store_.UpsertLedger(link_id_, *ledger));
        ++run.stats.echo;
        if (metrics_ != nullptr)
          metrics_->Add("sgsync_events_total", {{"link", name_}, {"direction", dir}, {"outcome", "echo"}});
        continue;
      }
      state::LedgerEntry entry = ledger.value_or(state::LedgerEntry{});
      if (!ledger) {
        entry.uuid = uuid;
        entry.origin = source_side;
        entry.decision = "queued";
      }
      SGSYNC_TRY(std::int64_t id, store_.RecordAndEnqueue(link_id_, entry, sd, ts));
      (void)id;
      ++run.stats.queued;
      if (options.full && ts < cursor.last_timestamp - options_.overlap_seconds) {
        ++run.stats.late_arrivals;
        spdlog::info("link {}: {} {} found by reconciliation (timestamp {} is behind the cursor {})", name_,
                     dir, uuid, ts, cursor.last_timestamp);
        if (metrics_ != nullptr)
          metrics_->Add("sgsync_reconciliation_found_total", {{"link", name_}, {"direction", dir}});
      }
    }
  }
  SGSYNC_TRY(state::QueueCounts counts, store_.CountQueue(link_id_, sd));
  run.stats.total = counts.pending + counts.failed + counts.leased;
  run.Report();

  // Work through the queue: this run's items and any earlier ones now due.
  while (!run.ShouldStop()) {
    SGSYNC_TRY(auto items, store_.Lease(link_id_, sd, options_.batch, options_.lease_seconds));
    if (items.empty()) break;
    SGSYNC_TRY_STATUS(ProcessBatch(run, std::move(items)));
  }
  if (run.peer_down) {
    run.stats.aborted = true;
    run.stats.abort_reason = std::string(push ? "the Portal" : "the local MISP") + " kept failing";
  } else if (options.stop != nullptr && options.stop->load()) {
    run.stats.aborted = true;
    run.stats.abort_reason = "stopping";
  }

  // The cursor: past everything listed, but never past work not done.
  SGSYNC_TRY(auto oldest, store_.OldestUnfinished(link_id_, sd));
  std::int64_t target = newest;
  if (oldest) target = std::min(target, *oldest - 1);
  if (target > cursor.last_timestamp) {
    SGSYNC_TRY_STATUS(store_.AdvanceCursor(link_id_, sd, state::CursorKind::kEvents, target));
    cursor.last_timestamp = target;
  }
  run.stats.cursor = cursor.last_timestamp;

  if (metrics_ != nullptr) {
    SGSYNC_TRY(counts, store_.CountQueue(link_id_, sd));
    Labels base{{"link", name_}, {"direction", dir}};
    auto with = [&](const char* k, const char* v) {
      Labels l = base;
      l.emplace_back(k, v);
      return l;
    };
    metrics_->Set("sgsync_queue_depth", with("state", "pending"),
                  static_cast<double>(counts.pending + counts.leased));
    metrics_->Set("sgsync_queue_depth", with("state", "failed"), static_cast<double>(counts.failed));
    metrics_->Set("sgsync_queue_depth", with("state", "dead"), static_cast<double>(counts.dead));
    metrics_->Set("sgsync_cursor_timestamp_seconds", base, static_cast<double>(cursor.last_timestamp));
    metrics_->Add("sgsync_runs_total", with("outcome", run.stats.aborted        ? "aborted"
                                                       : run.stats.not_modified ? "not_modified"
                                                                                : "ok"));
    if (!run.stats.aborted) {
      metrics_->Set("sgsync_last_success_timestamp_seconds", base, static_cast<double>(std::time(nullptr)));
    }
  }
  run.Report();
  std::lock_guard lock(run.mu);
  return run.stats;
}

}  // namespace sgsync::engine
