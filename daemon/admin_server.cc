#include "daemon/admin_server.h"

#include <grp.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "onboarding/onboarding.h"
#include "sgsync/admin/v1/admin.grpc.pb.h"

namespace sgsync::daemon {

namespace {

namespace v1 = sgsync::admin::v1;
namespace json = boost::json;

grpc::Status ToGrpc(const Error& e) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (e.code) {
    case ErrorCode::kNotFound:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kParse:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case ErrorCode::kAlreadyExists:
      code = grpc::StatusCode::ALREADY_EXISTS;
      break;
    case ErrorCode::kPermissionDenied:
      code = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case ErrorCode::kUnauthenticated:
      code = grpc::StatusCode::UNAUTHENTICATED;
      break;
    case ErrorCode::kUnavailable:
    case ErrorCode::kRateLimited:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    case ErrorCode::kTimeout:
      code = grpc::StatusCode::DEADLINE_EXCEEDED;
      break;
    case ErrorCode::kIo:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    default:
      break;
  }
  return grpc::Status(code, e.ToString());
}

std::optional<Direction> FromProto(v1::Direction d) {
  if (d == v1::DIRECTION_PUSH) return Direction::kPush;
  if (d == v1::DIRECTION_PULL) return Direction::kPull;
  return std::nullopt;
}

v1::Direction ToProto(Direction d) {
  return d == Direction::kPush ? v1::DIRECTION_PUSH : v1::DIRECTION_PULL;
}

Direction StoreDir(Direction d) {
  return d == Direction::kPush ? Direction::kPush : Direction::kPull;
}

// The stored or fresh decision JSON (policy::Decision::ToJson) as the API's Decision.
void FillDecision(const json::value& j, std::int64_t decided_at, v1::Decision* out) {
  if (!j.is_object()) return;
  const json::object& o = j.as_object();
  out->set_send(misp::StringOr(o, "decision") == "send");
  out->set_decided_at(decided_at);
  if (const json::value* reasons = o.if_contains("reasons"); reasons && reasons->is_array()) {
    for (const auto& r : reasons->as_array()) {
      if (!r.is_object()) continue;
      const json::object& ro = r.as_object();
      v1::Reason* p = out->add_reasons();
      p->set_rule(std::string(misp::StringOr(ro, "rule")));
      p->set_spec(std::string(misp::StringOr(ro, "spec")));
      p->set_path(std::string(misp::StringOr(ro, "path")));
      p->set_action(std::string(misp::StringOr(ro, "action")));
      p->set_from(std::string(misp::StringOr(ro, "from")));
      p->set_to(std::string(misp::StringOr(ro, "to")));
      p->set_detail(std::string(misp::StringOr(ro, "detail")));
    }
  }
  if (const json::value* warnings = o.if_contains("warnings"); warnings && warnings->is_array()) {
    for (const auto& w : warnings->as_array()) {
      if (w.is_string()) out->add_warnings(std::string(w.as_string()));
    }
  }
}

std::string ReasonKey(const v1::Reason& r) {
  return r.action() + " " + r.path() + " " + r.rule() + " -> " + r.to();
}

void FillFailure(const state::WorkItem& w, const std::string& link, v1::FailureInfo* f) {
  f->set_id(w.id);
  f->set_link(link);
  f->set_direction(w.direction == Direction::kPush ? v1::DIRECTION_PUSH : v1::DIRECTION_PULL);
  f->set_uuid(w.uuid);
  f->set_version(w.version);
  f->set_state(std::string(state::WorkStateName(w.state)));
  f->set_attempts(w.attempts);
  f->set_next_attempt_at(w.next_attempt_at);
  f->set_last_error(w.last_error);
}

void FillConflict(const state::Conflict& c, const std::string& link, v1::ConflictInfo* out) {
  out->set_id(c.id);
  out->set_link(link);
  out->set_uuid(c.uuid);
  out->set_local_timestamp(c.local_timestamp);
  out->set_local_hash(c.local_hash);
  out->set_remote_timestamp(c.remote_timestamp);
  out->set_remote_hash(c.remote_hash);
  out->set_differences_json(c.differences);
  out->set_detected_at(c.detected_at);
  out->set_resolution(c.resolution.value_or(""));
}

class AdminImpl final : public v1::SyncAdmin::Service {
 public:
  explicit AdminImpl(daemon::Service& service) : service_(service) {}

  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest* req,
                         v1::GetStatusResponse* resp) override {
    // A store that cannot be read is reported, never shown as zeros (docs/architecture.md, errors).
    std::optional<Error> store_failed;
    auto note = [&](const Error& e) {
      if (!store_failed) store_failed = e;
    };
    for (const auto& l : service_.Snapshot()) {
      if (!req->link().empty() && req->link() != l.name) continue;
      v1::LinkStatus* ls = resp->add_links();
      ls->set_link(l.name);
      ls->set_local_misp_version(l.local_version);
      ls->set_remote_misp_version(l.remote_version);
      std::int64_t link_id = l.link_id;
      if (link_id == 0) {
        auto id = service_.LinkId(l.name);
        if (id.ok()) {
          link_id = *id;
        } else if (id.error().code != ErrorCode::kNotFound) {
          note(id.error());
        }
      }
      if (link_id != 0) {
        auto conflicts = service_.store().ListConflicts(link_id, true);
        if (conflicts.ok()) {
          ls->set_open_conflicts(static_cast<std::int64_t>(conflicts->size()));
        } else {
          note(conflicts.error());
        }
      }
      for (Direction d : {Direction::kPush, Direction::kPull}) {
        const DirectionStatus& st = d == Direction::kPush ? l.push : l.pull;
        if (!st.enabled) continue;
        v1::DirectionStatus* ds = ls->add_directions();
        ds->set_direction(ToProto(d));
        ds->set_state(st.paused ? "paused" : st.running ? "running" : "idle");
        ds->set_paused_by(st.paused_by);
        ds->set_paused_at(st.paused_at);
        ds->set_last_run_started_at(st.last_run_started);
        ds->set_last_run_finished_at(st.last_run_ended);
        ds->set_last_run_outcome(st.last_outcome);
        if (st.last_outcome == "ok" || st.last_outcome == "not_modified")
          ds->set_last_success_at(st.last_run_ended);
        std::string dir(DirectionName(d));
        Metrics& m = service_.metrics();
        auto count = [&](const char* outcome) {
          return static_cast<std::int64_t>(
              m.Value("sgsync_events_total", {{"link", l.name}, {"direction", dir}, {"outcome", outcome}}));
        };
        if (d == Direction::kPush) {
          ds->set_sent(count("sent"));
        } else {
          ds->set_received(count("sent"));
        }
        ds->set_failed(count("failed"));
        for (const auto& [rule, n] : st.last_stats.skipped_by_reason)
          (*ds->mutable_skipped_by_reason())[rule] = n;
        if (link_id != 0) {
          auto cursor = service_.store().GetCursor(link_id, StoreDir(d), state::CursorKind::kEvents);
          if (cursor.ok()) {
            ds->set_cursor_timestamp(cursor->last_timestamp);
            ds->set_cursor_generation(cursor->generation);
          } else {
            note(cursor.error());
          }
          auto q = service_.store().CountQueue(link_id, StoreDir(d));
          if (q.ok()) {
            ds->set_queue_depth(q->pending + q->leased + q->failed);
            ds->set_dead_letters(q->dead);
          } else {
            note(q.error());
          }
        }
      }
    }
    if (!req->link().empty() && resp->links().empty()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no link named \"" + req->link() + "\"");
    }
    if (store_failed) {
      resp->Clear();
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the state database could not be read: " + store_failed->ToString());
    }
    return grpc::Status::OK;
  }

  grpc::Status TriggerSync(grpc::ServerContext* ctx, const v1::TriggerSyncRequest* req,
                           grpc::ServerWriter<v1::SyncProgress>* writer) override {
    std::vector<Direction> dirs;
    if (auto d = FromProto(req->direction())) {
      dirs.push_back(*d);
    } else {
      for (const auto& l : service_.Snapshot()) {
        if (l.name != req->link()) continue;
        if (l.push.enabled) dirs.push_back(Direction::kPush);
        if (l.pull.enabled) dirs.push_back(Direction::kPull);
      }
    }
    if (dirs.empty())
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no link named \"" + req->link() + "\"");
    std::mutex write_mu;  // progress comes from the engine's worker threads
    for (Direction d : dirs) {
      auto send = [&](const engine::RunStats& s, bool finished, const std::string& outcome) {
        v1::SyncProgress p;
        p.set_link(req->link());
        p.set_direction(ToProto(d));
        p.set_listed(s.listed);
        p.set_fetched(s.fetched);
        p.set_sent(s.sent);
        p.set_skipped(s.skipped + s.already + s.echo);
        p.set_failed(s.failed);
        p.set_total(s.total);
        p.set_finished(finished);
        p.set_outcome(outcome);
        std::lock_guard lock(write_mu);
        writer->Write(p);
      };
      auto stats = service_.Trigger(req->link(), d, req->full(),
                                    [&](const engine::RunStats& s) { send(s, false, "running"); });
      std::string what = std::string(DirectionName(d)) + (req->full() ? " (full)" : "");
      Audit(ctx, "TriggerSync", req->link() + " " + what, stats.ok() ? "ok" : stats.error().ToString());
      if (!stats.ok()) return ToGrpc(stats.error());
      send(*stats, true, stats->aborted ? "aborted: " + stats->abort_reason : "ok");
    }
    return grpc::Status::OK;
  }

  grpc::Status Pause(grpc::ServerContext* ctx, const v1::LinkDirection* req,
                     v1::PauseResponse* resp) override {
    return SetPaused(ctx, req, resp, true);
  }
  grpc::Status Resume(grpc::ServerContext* ctx, const v1::LinkDirection* req,
                      v1::PauseResponse* resp) override {
    return SetPaused(ctx, req, resp, false);
  }

  grpc::Status ListEvents(grpc::ServerContext*, const v1::ListEventsRequest* req,
                          v1::ListEventsResponse* resp) override {
    int size = req->page_size() > 0 ? std::min(req->page_size(), 1000) : 100;
    // The page token is "<link>@<last uuid>" (split at the last @: uuids have none): links in name
    // order, uuids in order within a link.
    std::string token_link, token_uuid;
    if (!req->page_token().empty()) {
      auto tab = req->page_token().rfind('@');
      if (tab == std::string::npos) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad page_token");
      token_link = req->page_token().substr(0, tab);
      token_uuid = req->page_token().substr(tab + 1);
    }
    std::vector<std::string> names;
    for (const auto& l : service_.Snapshot()) {
      if (req->link().empty() || req->link() == l.name) names.push_back(l.name);
    }
    std::sort(names.begin(), names.end());
    if (names.empty())
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no link named \"" + req->link() + "\"");
    // The API's event states map onto the work queue's (in_sync = done).
    std::string work_state = req->state() == "in_sync" ? "done" : req->state();
    for (const auto& name : names) {
      if (!token_link.empty() && name < token_link) continue;
      auto id = service_.LinkId(name);
      if (!id.ok()) return ToGrpc(id.error());
      std::string after = name == token_link ? token_uuid : "";
      int want = size - resp->events_size();
      auto rows = service_.store().ListLedger(*id, req->decision(), work_state, req->updated_since(), after,
                                              want + 1);
      if (!rows.ok()) return ToGrpc(rows.error());
      for (std::size_t i = 0; i < rows->size(); ++i) {
        const auto& r = (*rows)[i];
        if (resp->events_size() == size) {
          resp->set_next_page_token(name + "@" + resp->events(resp->events_size() - 1).uuid());
          return grpc::Status::OK;
        }
        v1::EventSummary* e = resp->add_events();
        e->set_link(name);
        e->set_uuid(r.entry.uuid);
        e->set_origin(r.entry.origin == state::Side::kLocal ? "local" : "remote");
        e->set_decision(r.entry.decision);
        std::string st =
            r.work_state == "done" ? (r.entry.decision == "skip" ? "skipped" : "in_sync") : r.work_state;
        e->set_state(st);
        e->set_local_timestamp(r.entry.local_timestamp.value_or(0));
        e->set_remote_timestamp(r.entry.remote_timestamp.value_or(0));
        e->set_updated_at(r.entry.updated_at);
      }
      if (resp->events_size() == size) {
        // Full exactly at a link's end: the next page starts after it.
        resp->set_next_page_token(name + "@" + resp->events(resp->events_size() - 1).uuid());
        return grpc::Status::OK;
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status ExplainEvent(grpc::ServerContext*, const v1::ExplainEventRequest* req,
                            v1::ExplainEventResponse* resp) override {
    auto id = service_.LinkId(req->link());
    if (!id.ok()) return ToGrpc(id.error());
    auto ledger = service_.store().GetLedger(*id, req->uuid());
    if (!ledger.ok()) return ToGrpc(ledger.error());
    std::optional<Direction> d = FromProto(req->direction());
    if (!d && *ledger)
      d = (*ledger)->origin == state::Side::kLocal ? Direction::kPush : Direction::kPull;
    if (!d) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "sgsync has no record of " + req->uuid() +
                                                                  " on link " + req->link() +
                                                                  ": give the direction to evaluate it now");
    }
    if (*ledger && !(*ledger)->decision_json.empty()) {
      auto stored = misp::ParseJson((*ledger)->decision_json);
      if (stored.ok()) FillDecision(*stored, (*ledger)->updated_at, resp->mutable_stored());
    }
    auto fresh = service_.DryRun(req->link(), *d, req->uuid());
    if (!fresh.ok()) {
      resp->add_differences("the dry run could not fetch the event: " + fresh.error().ToString());
      return grpc::Status::OK;
    }
    FillDecision(fresh->ToJson(), static_cast<std::int64_t>(std::time(nullptr)), resp->mutable_fresh());
    if (!resp->has_stored()) {
      resp->add_differences("no stored decision: sgsync has not handled this event on this link");
      return grpc::Status::OK;
    }
    if (resp->stored().send() != resp->fresh().send()) {
      resp->add_differences(std::string("the decision changed: ") +
                            (resp->stored().send() ? "send" : "skip") + " -> " +
                            (resp->fresh().send() ? "send" : "skip") +
                            (resp->stored().send() && !resp->fresh().send()
                                 ? " (what was sent stays at the Portal: MISP cannot retract an event)"
                                 : ""));
    }
    std::set<std::string> before, after;
    for (const auto& r : resp->stored().reasons()) before.insert(ReasonKey(r));
    for (const auto& r : resp->fresh().reasons()) after.insert(ReasonKey(r));
    for (const auto& k : before) {
      if (!after.count(k)) resp->add_differences("no longer: " + k);
    }
    for (const auto& k : after) {
      if (!before.count(k)) resp->add_differences("now: " + k);
    }
    return grpc::Status::OK;
  }

  grpc::Status ListConflicts(grpc::ServerContext*, const v1::ListConflictsRequest* req,
                             v1::ListConflictsResponse* resp) override {
    for (const auto& l : service_.Snapshot()) {
      if (!req->link().empty() && req->link() != l.name) continue;
      auto id = service_.LinkId(l.name);
      if (!id.ok()) return ToGrpc(id.error());
      auto list = service_.store().ListConflicts(*id, !req->include_resolved());
      if (!list.ok()) return ToGrpc(list.error());
      for (const auto& c : *list) FillConflict(c, l.name, resp->add_conflicts());
    }
    return grpc::Status::OK;
  }

  grpc::Status ResolveConflict(grpc::ServerContext* ctx, const v1::ResolveConflictRequest* req,
                               v1::ResolveConflictResponse* resp) override {
    static const std::set<std::string> kResolutions{"prefer-local", "prefer-portal", "prefer-newer"};
    if (!kResolutions.count(req->resolution())) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "resolution must be prefer-local, prefer-portal or prefer-newer, found \"" +
                              req->resolution() + "\"");
    }
    auto found = FindConflict(req->id());
    if (!found) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no conflict " + std::to_string(req->id()));
    auto st = service_.store().ResolveConflict(req->id(), req->resolution(), Actor(ctx));
    if (st.ok()) {
      // The next runs take the event up again, in both directions, under the resolution.
      auto link_id = service_.LinkId(found->first);
      auto ledger = link_id.ok() ? service_.store().GetLedger(*link_id, found->second.uuid)
                                 : Result<std::optional<state::LedgerEntry>>(link_id.error());
      if (ledger.ok() && *ledger) {
        auto a = service_.store().RecordAndEnqueue(*link_id, **ledger, Direction::kPush,
                                                   found->second.local_timestamp);
        auto b = service_.store().RecordAndEnqueue(*link_id, **ledger, Direction::kPull,
                                                   found->second.remote_timestamp);
        if (!a.ok()) st = a.error();
        if (!b.ok()) st = b.error();
      }
    }
    Audit(ctx, "ResolveConflict",
          std::to_string(req->id()) + " " + found->second.uuid + " " + req->resolution(),
          st.ok() ? "ok" : st.error().ToString());
    if (!st.ok()) return ToGrpc(st.error());
    found = FindConflict(req->id());
    FillConflict(found->second, found->first, resp->mutable_conflict());
    return grpc::Status::OK;
  }

  grpc::Status ListFailures(grpc::ServerContext*, const v1::ListFailuresRequest* req,
                            v1::ListFailuresResponse* resp) override {
    for (const auto& l : service_.Snapshot()) {
      if (!req->link().empty() && req->link() != l.name) continue;
      auto id = service_.LinkId(l.name);
      if (!id.ok()) return ToGrpc(id.error());
      std::vector<state::WorkState> states{state::WorkState::kDead};
      if (!req->dead_only()) states.insert(states.begin(), state::WorkState::kFailed);
      for (auto s : states) {
        auto items = service_.store().ListWork(*id, s, 1000);
        if (!items.ok()) return ToGrpc(items.error());
        for (const auto& w : *items) FillFailure(w, l.name, resp->add_failures());
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status RetryFailure(grpc::ServerContext* ctx, const v1::FailureRef* req,
                            v1::FailureActionResponse* resp) override {
    return FailureAction(ctx, req, resp, true);
  }
  grpc::Status DropFailure(grpc::ServerContext* ctx, const v1::FailureRef* req,
                           v1::FailureActionResponse* resp) override {
    return FailureAction(ctx, req, resp, false);
  }

  grpc::Status GetConfig(grpc::ServerContext*, const v1::GetConfigRequest*,
                         v1::GetConfigResponse* resp) override {
    std::string toml = config::RedactedToml(service_.config());
    // Rules naming tags and organisations by id: what each id stands for, as resolved at start.
    std::string notes;
    for (const auto& l : service_.Snapshot()) {
      for (const auto& n : l.rule_notes) notes += "# link " + l.name + ": " + n + "\n";
    }
    if (!notes.empty()) toml += "\n# Rule ids, resolved through the MISP they belong to:\n" + notes;
    resp->set_toml(toml);
    return grpc::Status::OK;
  }

  grpc::Status ReloadConfig(grpc::ServerContext* ctx, const v1::ReloadConfigRequest*,
                            v1::ReloadConfigResponse* resp) override {
    auto changes = service_.ReloadFromFile();
    Audit(ctx, "ReloadConfig", service_.config().path, changes.ok() ? "ok" : changes.error().ToString());
    if (!changes.ok()) return ToGrpc(changes.error());
    resp->set_reloaded(true);
    for (const auto& c : *changes) resp->add_changes(c);
    return grpc::Status::OK;
  }

  grpc::Status CheckOnboarding(grpc::ServerContext*, const v1::OnboardingCheckRequest* req,
                               grpc::ServerWriter<v1::OnboardingCheckResult>* writer) override {
    onboarding::CheckOptions options;
    options.lang = req->lang() == "ja" ? onboarding::Lang::kJa : onboarding::Lang::kEn;
    options.canary = req->canary();
    onboarding::RunMemberChecks(service_.config().path, options, [&](const onboarding::CheckResult& r) {
      v1::OnboardingCheckResult out;
      out.set_id(r.id);
      out.set_link(r.link);
      out.set_title(r.title);
      out.set_outcome(std::string(onboarding::OutcomeName(r.outcome)));
      out.set_found(r.found);
      out.set_remedy(r.remedy);
      writer->Write(out);
    });
    return grpc::Status::OK;
  }

  grpc::Status BackupState(grpc::ServerContext* ctx, const v1::BackupStateRequest* req,
                           v1::BackupStateResponse* resp) override {
    if (req->path().empty() || req->path()[0] != '/') {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the backup path must be absolute (it is a path on the daemon's host), found \"" +
                              req->path() + "\"");
    }
    if (std::filesystem::exists(req->path())) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          req->path() + " exists; sgsync does not overwrite it");
    }
    auto st = service_.store().Backup(req->path());
    Audit(ctx, "BackupState", req->path(), st.ok() ? "ok" : st.error().ToString());
    if (!st.ok()) return ToGrpc(st.error());
    resp->set_path(req->path());
    std::error_code ec;
    resp->set_bytes(static_cast<std::int64_t>(std::filesystem::file_size(req->path(), ec)));
    return grpc::Status::OK;
  }

 private:
  // Who made a call: the client certificate on TCP; on the Unix socket, the name the client states
  // (x-sgsync-operator), which only users the socket's mode admits can send.
  static std::string Actor(grpc::ServerContext* ctx) {
    auto auth = ctx->auth_context();
    if (auth) {
      for (const char* prop : {"x509_subject", "x509_common_name"}) {
        auto v = auth->FindPropertyValues(prop);
        if (!v.empty()) return std::string("certificate ") + std::string(v[0].data(), v[0].size());
      }
    }
    std::string who = "unknown";
    auto it = ctx->client_metadata().find("x-sgsync-operator");
    if (it != ctx->client_metadata().end()) who = std::string(it->second.data(), it->second.size());
    return "unix socket, operator " + who;
  }

  void Audit(grpc::ServerContext* ctx, const std::string& action, const std::string& target,
             const std::string& result) {
    state::AuditRecord r;
    r.actor = Actor(ctx);
    r.action = action;
    r.target = target;
    r.result = result;
    auto st = service_.store().Audit(r);
    if (!st.ok()) spdlog::error("audit log: {}", st.error().ToString());
    spdlog::info("admin: {} {} by {}: {}", action, target, r.actor, result);
  }

  grpc::Status SetPaused(grpc::ServerContext* ctx, const v1::LinkDirection* req, v1::PauseResponse* resp,
                         bool paused) {
    auto st = service_.SetPaused(req->link(), FromProto(req->direction()), paused, Actor(ctx));
    Audit(ctx, paused ? "Pause" : "Resume",
          req->link() + " " + (FromProto(req->direction()) ? v1::Direction_Name(req->direction()) : "both"),
          st.ok() ? "ok" : st.error().ToString());
    if (!st.ok()) return ToGrpc(st.error());
    resp->set_state(paused ? "paused" : "idle");
    return grpc::Status::OK;
  }

  std::optional<std::pair<std::string, state::Conflict>> FindConflict(std::int64_t id) {
    for (const auto& l : service_.Snapshot()) {
      auto link_id = service_.LinkId(l.name);
      if (!link_id.ok()) continue;
      auto list = service_.store().ListConflicts(*link_id, false);
      if (!list.ok()) continue;
      for (const auto& c : *list) {
        if (c.id == id) return std::make_pair(l.name, c);
      }
    }
    return std::nullopt;
  }

  grpc::Status FailureAction(grpc::ServerContext* ctx, const v1::FailureRef* req,
                             v1::FailureActionResponse* resp, bool retry) {
    auto item = service_.store().GetWork(req->id());
    if (!item.ok()) return ToGrpc(item.error());
    if (!*item) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no work item " + std::to_string(req->id()));
    std::string link;
    for (const auto& l : service_.Snapshot()) {
      auto id = service_.LinkId(l.name);
      if (id.ok() && *id == (*item)->link_id) link = l.name;
    }
    if ((*item)->state != state::WorkState::kDead) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "work item " + std::to_string(req->id()) + " is " +
                              std::string(state::WorkStateName((*item)->state)) +
                              ", not dead: it is retried on its own (next attempt at " +
                              std::to_string((*item)->next_attempt_at) + ")");
    }
    auto st = retry ? service_.store().RetryDead(req->id()) : service_.store().DropDead(req->id());
    Audit(ctx, retry ? "RetryFailure" : "DropFailure", link + " " + (*item)->uuid,
          st.ok() ? "ok" : st.error().ToString());
    if (!st.ok()) return ToGrpc(st.error());
    state::WorkItem after = **item;
    if (retry) {
      auto again = service_.store().GetWork(req->id());
      if (again.ok() && *again) after = **again;
    } else {
      after.state = state::WorkState::kDone;  // gone from the queue
    }
    FillFailure(after, link, resp->mutable_failure());
    if (!retry) resp->mutable_failure()->set_state("dropped");
    return grpc::Status::OK;
  }

  daemon::Service& service_;
};

std::string ReadPem(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

struct AdminServer::Impl {
  std::unique_ptr<AdminImpl> service;
  std::unique_ptr<grpc::Server> server;
  std::string socket_path;
};

Result<std::unique_ptr<AdminServer>> AdminServer::Start(Service& service, const config::DaemonConfig& c) {
  auto impl = std::make_unique<Impl>();
  impl->service = std::make_unique<AdminImpl>(service);
  impl->socket_path = c.admin_socket;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.RegisterService(impl->service.get());

  std::filesystem::path dir = std::filesystem::path(c.admin_socket).parent_path();
  if (!dir.empty() && !std::filesystem::is_directory(dir)) {
    return Fail(ErrorCode::kIo,
                "the admin socket's directory " + dir.string() + " does not exist (admin.socket)");
  }
  // A socket left by a previous process (sgsyncd holds the state lock, so it is not in use).
  std::error_code ec;
  if (std::filesystem::is_socket(c.admin_socket, ec)) std::filesystem::remove(c.admin_socket, ec);
  builder.AddListeningPort("unix:" + c.admin_socket, grpc::InsecureServerCredentials());
  int tcp_port = 0;
  if (!c.admin_tcp_listen.empty()) {
    grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    for (const auto& f : {c.admin_tls_cert, c.admin_tls_key, c.admin_tls_client_ca}) {
      if (!std::filesystem::is_regular_file(f))
        return Fail(ErrorCode::kIo, "admin TLS file " + f + " is missing");
    }
    ssl.pem_root_certs = ReadPem(c.admin_tls_client_ca);
    ssl.pem_key_cert_pairs.push_back({ReadPem(c.admin_tls_key), ReadPem(c.admin_tls_cert)});
    builder.AddListeningPort(c.admin_tcp_listen, grpc::SslServerCredentials(ssl), &tcp_port);
  }
  // The socket is born with the configured mode: nobody else can connect in between.
  mode_t old = ::umask(static_cast<mode_t>(0777 & ~c.admin_socket_mode));
  impl->server = builder.BuildAndStart();
  ::umask(old);
  if (!impl->server) {
    return Fail(ErrorCode::kUnavailable,
                "cannot listen on the admin socket " + c.admin_socket +
                    (c.admin_tcp_listen.empty() ? "" : " or on " + c.admin_tcp_listen));
  }
  if (::chmod(c.admin_socket.c_str(), static_cast<mode_t>(c.admin_socket_mode)) != 0) {
    return Fail(ErrorCode::kIo, "chmod " + c.admin_socket + ": " + std::strerror(errno));
  }
  if (!c.admin_socket_group.empty()) {
    struct group* g = ::getgrnam(c.admin_socket_group.c_str());
    if (g == nullptr)
      return Fail(ErrorCode::kInvalidArgument, "admin.socket_group: no group " + c.admin_socket_group);
    if (::chown(c.admin_socket.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
      return Fail(ErrorCode::kIo, "chown " + c.admin_socket + ": " + std::strerror(errno));
    }
  }
  spdlog::info("admin API on unix:{}{}", c.admin_socket,
               tcp_port ? " and " + c.admin_tcp_listen.substr(0, c.admin_tcp_listen.rfind(':')) + ":" +
                              std::to_string(tcp_port) + " (mTLS)"
                        : "");
  std::unique_ptr<AdminServer> s(new AdminServer(std::move(impl)));
  s->tcp_port_ = tcp_port;
  return s;
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AdminServer::~AdminServer() { Stop(); }

void AdminServer::Stop() {
  if (impl_ && impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    impl_->server.reset();
    std::error_code ec;
    std::filesystem::remove(impl_->socket_path, ec);
  }
}

}  // namespace sgsync::daemon
