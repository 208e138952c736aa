#include "daemon/operations.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <set>

#include "common/metric_families.h"
#include "misp/json.h"

namespace sgsync::daemon {

namespace {

std::string NoLink(const std::string& link) { return "no link named \"" + link + "\""; }

// One reason as explain compares them: what it did, where, by which rule, to what.
std::string ReasonKey(const json::object& r) {
  return std::string(misp::StringOr(r, "action")) + " " + std::string(misp::StringOr(r, "path")) + " " +
         std::string(misp::StringOr(r, "rule")) + " -> " + std::string(misp::StringOr(r, "to"));
}

std::set<std::string> ReasonKeys(const json::value& decision) {
  std::set<std::string> keys;
  const json::value* reasons = decision.is_object() ? decision.as_object().if_contains("reasons") : nullptr;
  if (reasons == nullptr || !reasons->is_array()) return keys;
  for (const auto& r : reasons->as_array()) {
    if (r.is_object()) keys.insert(ReasonKey(r.as_object()));
  }
  return keys;
}

bool Sends(const json::value& decision) {
  return decision.is_object() && misp::StringOr(decision.as_object(), "decision") == "send";
}

}  // namespace

// ---------------------------------------------------------------- status

Result<std::vector<Operations::LinkView>> Operations::LinkStatus(const std::string& link) {
  // A store that cannot be read is reported, never shown as zeros (docs/architecture.md, errors).
  auto unreadable = [](const Error& e) {
    return Fail(ErrorCode::kUnavailable, "the state database could not be read: " + e.ToString());
  };
  std::vector<LinkView> out;
  for (auto& l : service_.Snapshot()) {
    if (!link.empty() && link != l.name) continue;
    LinkView view;
    std::int64_t link_id = l.link_id;
    if (link_id == 0) {
      auto id = service_.LinkId(l.name);
      if (id.ok()) {
        link_id = *id;
      } else if (id.error().code != ErrorCode::kNotFound) {
        return unreadable(id.error());
      }
    }
    if (link_id != 0) {
      auto conflicts = service_.store().ListConflicts(link_id, true);
      if (!conflicts.ok()) return unreadable(conflicts.error());
      view.open_conflicts = static_cast<std::int64_t>(conflicts->size());
    }
    for (Direction d : {Direction::kPush, Direction::kPull}) {
      const DirectionStatus& st = d == Direction::kPush ? l.push : l.pull;
      if (!st.enabled) continue;
      DirectionView dv;
      dv.direction = d;
      dv.status = st;
      const std::string dir(DirectionName(d));
      auto count = [&](const char* outcome) {
        return static_cast<std::int64_t>(service_.metrics().Value(
            metric::kEvents, {{"link", l.name}, {"direction", dir}, {"outcome", outcome}}));
      };
      dv.sent = count("sent");
      dv.failed = count("failed");
      if (link_id != 0) {
        auto cursor = service_.store().GetCursor(link_id, d, state::CursorKind::kEvents);
        if (!cursor.ok()) return unreadable(cursor.error());
        dv.cursor_timestamp = cursor->last_timestamp;
        dv.cursor_generation = cursor->generation;
        auto q = service_.store().CountQueue(link_id, d);
        if (!q.ok()) return unreadable(q.error());
        dv.queue_depth = q->pending + q->leased + q->failed;
        dv.dead_letters = q->dead;
      }
      view.directions.push_back(std::move(dv));
    }
    view.link = std::move(l);
    out.push_back(std::move(view));
  }
  if (!link.empty() && out.empty()) return Fail(ErrorCode::kNotFound, NoLink(link));
  return out;
}

// ---------------------------------------------------------------- the ledger

Result<Operations::EventsPage> Operations::ListEvents(const std::string& link,
                                                      const std::string& decision_text,
                                                      const std::string& state_text,
                                                      std::int64_t updated_since,
                                                      const std::string& page_token, int limit) {
  const int size = limit > 0 ? std::min(limit, 1000) : 100;
  // The page token is "<link>@<last uuid>" (split at the last @: uuids have none): links in name
  // order, uuids in order within a link.
  std::string token_link, token_uuid;
  if (!page_token.empty()) {
    auto at = page_token.rfind('@');
    if (at == std::string::npos) return Fail(ErrorCode::kInvalidArgument, "bad page_token");
    token_link = page_token.substr(0, at);
    token_uuid = page_token.substr(at + 1);
  }
  std::vector<std::string> names;
  for (const auto& l : service_.Snapshot()) {
    if (link.empty() || link == l.name) names.push_back(l.name);
  }
  std::sort(names.begin(), names.end());
  if (names.empty()) return Fail(ErrorCode::kNotFound, NoLink(link));
  std::optional<state::LedgerDecision> decision;
  if (!decision_text.empty()) {
    decision = state::ParseLedgerDecision(decision_text);
    if (!decision) {
      return Fail(ErrorCode::kInvalidArgument,
                  "decision \"" + decision_text +
                      "\" is none of queued, send, skip, held_conflict, deleted_at_portal, tombstoned");
    }
  }
  // The API's event states map onto the work queue's (in_sync = done).
  const std::string work_state = state_text == "in_sync" ? "done" : state_text;
  EventsPage page;
  for (const auto& name : names) {
    if (!token_link.empty() && name < token_link) continue;
    SGSYNC_TRY(std::int64_t id, service_.LinkId(name));
    const std::string after = name == token_link ? token_uuid : "";
    const int want = size - static_cast<int>(page.events.size());
    SGSYNC_TRY(auto rows,
               service_.store().ListLedger(id, decision, work_state, updated_since, after, want + 1));
    for (auto& r : rows) {
      if (static_cast<int>(page.events.size()) == size) {
        page.next_page_token = name + "@" + page.events.back().row.entry.uuid;
        return page;
      }
      // No work item left (finished ones are pruned after a while) is as done.
      std::string st = r.work_state == "done" || r.work_state.empty()
                           ? (r.entry.decision == state::LedgerDecision::kSkip ? "skipped" : "in_sync")
                           : r.work_state;
      page.events.push_back(EventRow{name, std::move(r), std::move(st)});
    }
    if (static_cast<int>(page.events.size()) == size) {
      // Full exactly at a link's end: the next page starts after it.
      page.next_page_token = name + "@" + page.events.back().row.entry.uuid;
      return page;
    }
  }
  return page;
}

// ---------------------------------------------------------------- explain

Result<Operations::Explanation> Operations::Explain(const std::string& link, const std::string& uuid,
                                                    std::optional<Direction> direction) {
  SGSYNC_TRY(std::int64_t id, service_.LinkId(link));
  SGSYNC_TRY(auto ledger, service_.store().GetLedger(id, uuid));
  if (!direction && ledger)
    direction = ledger->origin == state::Side::kLocal ? Direction::kPush : Direction::kPull;
  if (!direction) {
    return Fail(ErrorCode::kInvalidArgument, "sgsync has no record of " + uuid + " on link " + link +
                                                 ": give the direction to evaluate it now");
  }
  Explanation out;
  if (ledger && !ledger->decision_json.empty()) {
    if (auto stored = misp::ParseJson(ledger->decision_json); stored.ok()) {
      out.stored = std::move(*stored);
      out.stored_at = ledger->updated_at;
    }
  }
  auto fresh = service_.DryRun(link, *direction, uuid);
  if (!fresh.ok()) {
    out.differences.push_back("the dry run could not fetch the event: " + fresh.error().ToString());
    return out;
  }
  out.fresh = fresh->ToJson();
  out.fresh_at = static_cast<std::int64_t>(std::time(nullptr));
  if (!out.stored) {
    out.differences.push_back("no stored decision: sgsync has not handled this event on this link");
    return out;
  }
  const bool before = Sends(*out.stored), now = Sends(*out.fresh);
  if (before != now) {
    out.differences.push_back(
        std::string("the decision changed: ") + (before ? "send" : "skip") + " -> " +
        (now ? "send" : "skip") +
        (before && !now ? " (what was sent stays at the Portal: MISP cannot retract an event)" : ""));
  }
  std::set<std::string> was = ReasonKeys(*out.stored), is = ReasonKeys(*out.fresh);
  for (const auto& k : was) {
    if (!is.count(k)) out.differences.push_back("no longer: " + k);
  }
  for (const auto& k : is) {
    if (!was.count(k)) out.differences.push_back("now: " + k);
  }
  return out;
}

// ---------------------------------------------------------------- preview

Result<engine::RunPreview> Operations::Preview(const std::string& link, std::optional<Direction> direction,
                                               int limit) {
  if (!direction) return Fail(ErrorCode::kInvalidArgument, "give the direction to preview: push or pull");
  return service_.Preview(link, *direction, limit);
}

// ---------------------------------------------------------------- resend

Result<Operations::ResendResult> Operations::Resend(const std::string& link, const std::string& uuid,
                                                    std::optional<Direction> direction,
                                                    const std::string& actor) {
  SGSYNC_TRY(std::int64_t id, service_.LinkId(link));
  if (!direction) {
    SGSYNC_TRY(auto ledger, service_.store().GetLedger(id, uuid));
    if (!ledger) {
      return Fail(ErrorCode::kInvalidArgument,
                  "sgsync has no record of " + uuid + " on link " + link + ": give the direction to send it");
    }
    direction = ledger->origin == state::Side::kLocal ? Direction::kPush : Direction::kPull;
  }
  auto stats = service_.Resend(link, *direction, uuid);
  ResendResult out;
  if (stats.ok()) {
    if (stats->sent > 0) {
      out.outcome = "sent";
    } else if (stats->already > 0) {
      out.outcome = "already";
      out.detail = "the destination has this version or a newer one";
    } else if (stats->skipped > 0) {
      out.outcome = "skipped";
      out.detail = stats->skipped_by_reason.empty() ? "" : stats->skipped_by_reason.begin()->first;
    } else if (stats->held > 0) {
      out.outcome = "held";
      out.detail = "a conflict holds it (sgsyncctl conflicts)";
    } else {
      out.outcome = "failed";
      for (auto s : {state::WorkState::kFailed, state::WorkState::kDead}) {
        auto items = service_.store().ListWork(id, s, 1000);
        if (!items.ok()) continue;
        for (const auto& w : *items) {
          if (w.uuid == uuid && w.direction == *direction) out.detail = w.last_error;
        }
      }
    }
  }
  Audit(actor, "ResendEvent", link + " " + uuid + " " + std::string(DirectionName(*direction)),
        stats.ok() ? out.outcome + (out.detail.empty() ? "" : ": " + out.detail) : stats.error().ToString());
  if (!stats.ok()) return stats.error();
  return out;
}

// ---------------------------------------------------------------- conflicts

Result<std::vector<Operations::ConflictRow>> Operations::ListConflicts(const std::string& link,
                                                                       bool include_resolved) {
  std::vector<ConflictRow> out;
  for (const auto& l : service_.Snapshot()) {
    if (!link.empty() && link != l.name) continue;
    SGSYNC_TRY(std::int64_t id, service_.LinkId(l.name));
    SGSYNC_TRY(auto list, service_.store().ListConflicts(id, !include_resolved));
    for (auto& c : list) out.push_back(ConflictRow{l.name, std::move(c)});
  }
  return out;
}

std::optional<Operations::ConflictRow> Operations::FindConflict(std::int64_t id) {
  for (const auto& l : service_.Snapshot()) {
    auto link_id = service_.LinkId(l.name);
    if (!link_id.ok()) continue;
    auto list = service_.store().ListConflicts(*link_id, false);
    if (!list.ok()) continue;
    for (const auto& c : *list) {
      if (c.id == id) return ConflictRow{l.name, c};
    }
  }
  return std::nullopt;
}

Result<Operations::ConflictRow> Operations::ResolveConflict(std::int64_t id, const std::string& resolution,
                                                            const std::string& actor) {
  auto policy = engine::ParseConflictPolicy(resolution);
  if (!policy || *policy == engine::ConflictPolicy::kManual) {
    return Fail(
        ErrorCode::kInvalidArgument,
        "resolution must be prefer-local, prefer-portal or prefer-newer, found \"" + resolution + "\"");
  }
  auto found = FindConflict(id);
  if (!found) return Fail(ErrorCode::kNotFound, "no conflict " + std::to_string(id));
  Status st = service_.store().ResolveConflict(id, resolution, actor);
  if (st.ok()) {
    // The next runs take the event up again, in both directions, under the resolution.
    auto link_id = service_.LinkId(found->link);
    auto ledger = link_id.ok() ? service_.store().GetLedger(*link_id, found->conflict.uuid)
                               : Result<std::optional<state::LedgerEntry>>(link_id.error());
    if (!ledger.ok()) st = ledger.error();
    if (ledger.ok() && *ledger) {
      auto a = service_.store().RecordAndEnqueue(*link_id, **ledger, Direction::kPush,
                                                 found->conflict.local_timestamp);
      auto b = service_.store().RecordAndEnqueue(*link_id, **ledger, Direction::kPull,
                                                 found->conflict.remote_timestamp);
      if (!a.ok()) st = a.error();
      if (!b.ok()) st = b.error();
    }
  }
  Audit(actor, "ResolveConflict",
        found->link + " conflict " + std::to_string(id) + " " + found->conflict.uuid + " " + resolution,
        st.ok() ? "ok" : st.error().ToString());
  if (!st.ok()) return st.error();
  auto after = FindConflict(id);
  if (!after)
    return Fail(ErrorCode::kNotFound, "conflict " + std::to_string(id) + " is gone after resolving it");
  return *after;
}

// ---------------------------------------------------------------- failures

Result<std::vector<Operations::FailureRow>> Operations::ListFailures(const std::string& link,
                                                                     bool dead_only) {
  std::vector<FailureRow> out;
  for (const auto& l : service_.Snapshot()) {
    if (!link.empty() && link != l.name) continue;
    SGSYNC_TRY(std::int64_t id, service_.LinkId(l.name));
    std::vector<state::WorkState> states{state::WorkState::kDead};
    if (!dead_only) states.insert(states.begin(), state::WorkState::kFailed);
    for (auto s : states) {
      SGSYNC_TRY(auto items, service_.store().ListWork(id, s, 1000));
      for (auto& w : items) out.push_back(FailureRow{l.name, std::move(w), false});
    }
  }
  return out;
}

Result<Operations::FailureRow> Operations::RetryFailure(std::int64_t id, const std::string& actor) {
  return FailureAction(id, actor, true);
}

Result<Operations::FailureRow> Operations::DropFailure(std::int64_t id, const std::string& actor) {
  return FailureAction(id, actor, false);
}

std::string Operations::LinkNameOf(std::int64_t link_id) {
  for (const auto& l : service_.Snapshot()) {
    auto id = service_.LinkId(l.name);
    if (id.ok() && *id == link_id) return l.name;
  }
  return "";
}

Result<Operations::FailureRow> Operations::FailureAction(std::int64_t id, const std::string& actor,
                                                         bool retry) {
  SGSYNC_TRY(auto item, service_.store().GetWork(id));
  if (!item) return Fail(ErrorCode::kNotFound, "no work item " + std::to_string(id));
  const std::string link = LinkNameOf(item->link_id);
  if (item->state != state::WorkState::kDead) {
    return Fail(ErrorCode::kFailedPrecondition, "work item " + std::to_string(id) + " is " +
                                                    std::string(state::WorkStateName(item->state)) +
                                                    ", not dead: it is retried on its own (next attempt at " +
                                                    std::to_string(item->next_attempt_at) + ")");
  }
  Status st = retry ? service_.store().RetryDead(id) : service_.store().DropDead(id);
  Audit(actor, retry ? "RetryFailure" : "DropFailure", link + " " + item->uuid,
        st.ok() ? "ok" : st.error().ToString());
  if (!st.ok()) return st.error();
  FailureRow out{link, *item, !retry};
  if (retry) {
    auto again = service_.store().GetWork(id);
    if (again.ok() && *again) out.item = **again;
  } else {
    out.item.state = state::WorkState::kDone;  // gone from the queue
  }
  return out;
}

// ---------------------------------------------------------------- the audit trail

Result<Operations::AuditPage> Operations::ListAudit(std::int64_t since, const std::string& link,
                                                    std::int64_t after_id, int limit) {
  if (!link.empty()) {
    bool known = false;
    for (const auto& l : service_.Snapshot()) known = known || l.name == link;
    if (!known) return Fail(ErrorCode::kNotFound, NoLink(link));
  }
  const int size = limit > 0 ? std::min(limit, 1000) : 100;
  AuditPage page;
  SGSYNC_TRY(page.entries,
             service_.store().ListAudit(since, size + 1, after_id, link.empty() ? "" : link + " "));
  if (static_cast<int>(page.entries.size()) > size) {
    page.entries.pop_back();
    page.next_after_id = page.entries.back().id;
  }
  return page;
}

// ---------------------------------------------------------------- control

Status Operations::SetPaused(const std::string& link, std::optional<Direction> d, bool paused,
                             const std::string& actor) {
  Status st = service_.SetPaused(link, d, paused, actor);
  Audit(actor, paused ? "Pause" : "Resume", link + " " + (d ? std::string(DirectionName(*d)) : "both"),
        st.ok() ? "ok" : st.error().ToString());
  return st;
}

Result<std::vector<Direction>> Operations::TriggerDirections(const std::string& link,
                                                             std::optional<Direction> d) {
  for (const auto& l : service_.Snapshot()) {
    if (l.name != link) continue;
    if (d) return std::vector<Direction>{*d};
    std::vector<Direction> dirs;
    if (l.push.enabled) dirs.push_back(Direction::kPush);
    if (l.pull.enabled) dirs.push_back(Direction::kPull);
    return dirs;
  }
  return Fail(ErrorCode::kNotFound, NoLink(link));
}

Result<engine::RunStats> Operations::Trigger(const std::string& link, Direction d, bool full,
                                             const std::string& actor,
                                             const std::function<void(const engine::RunStats&)>& progress) {
  auto stats = service_.Trigger(link, d, full, progress);
  Audit(actor, "TriggerSync", link + " " + std::string(DirectionName(d)) + (full ? " (full)" : ""),
        stats.ok() ? "ok" : stats.error().ToString());
  return stats;
}

Status Operations::Backup(const std::string& path, const std::string& actor) {
  if (path.empty() || path[0] != '/') {
    return Fail(
        ErrorCode::kInvalidArgument,
        "the backup path must be absolute (it is a path on the daemon's host), found \"" + path + "\"");
  }
  if (std::filesystem::exists(path)) {
    return Fail(ErrorCode::kAlreadyExists, path + " exists; sgsync does not overwrite it");
  }
  Status st = service_.store().Backup(path);
  Audit(actor, "BackupState", path, st.ok() ? "ok" : st.error().ToString());
  return st;
}

std::string Operations::ConfigText() {
  std::string toml = config::RedactedToml(service_.config());
  // Rules naming tags and organisations by id: what each id stands for, as resolved at start.
  std::string notes;
  for (const auto& l : service_.Snapshot()) {
    for (const auto& n : l.rule_notes) notes += "# link " + l.name + ": " + n + "\n";
  }
  if (!notes.empty()) toml += "\n# Rule ids, resolved through the MISP they belong to:\n" + notes;
  return toml;
}

Result<std::vector<std::string>> Operations::Reload(const std::string& actor) {
  auto changes = service_.ReloadFromFile();
  Audit(actor, "ReloadConfig", service_.config().path, changes.ok() ? "ok" : changes.error().ToString());
  return changes;
}

Result<std::int64_t> Operations::StateSize() { return service_.store().SizeBytes(); }

Result<std::pair<std::int64_t, std::int64_t>> Operations::Vacuum(const std::string& actor) {
  SGSYNC_TRY(std::int64_t before, service_.store().SizeBytes());
  Status st = service_.store().Vacuum();
  auto after = st.ok() ? service_.store().SizeBytes() : Result<std::int64_t>(st.error());
  Audit(actor, "VacuumState", service_.config().state_db,
        after.ok() ? "ok: " + std::to_string(before) + " -> " + std::to_string(*after) + " bytes"
                   : after.error().ToString());
  if (!after.ok()) return after.error();
  return std::make_pair(before, *after);
}

void Operations::Audit(const std::string& actor, const std::string& action, const std::string& target,
                       const std::string& result) {
  state::AuditRecord r;
  r.actor = actor;
  r.action = action;
  r.target = target;
  r.result = result;
  auto st = service_.store().Audit(r);
  if (!st.ok()) spdlog::error("audit log: {}", st.error().ToString());
  spdlog::info("admin: {} {} by {}: {}", action, target, r.actor, result);
}

}  // namespace sgsync::daemon
