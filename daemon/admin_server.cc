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

#include "common/metric_families.h"
#include "daemon/operations.h"
#include "daemon/peer_socket.h"
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
    case ErrorCode::kFailedPrecondition:
      code = grpc::StatusCode::FAILED_PRECONDITION;
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

v1::Direction ToProto(Direction d) { return d == Direction::kPush ? v1::DIRECTION_PUSH : v1::DIRECTION_PULL; }

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
  explicit AdminImpl(daemon::Service& service) : service_(service), ops_(service) {}

  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest* req,
                         v1::GetStatusResponse* resp) override {
    auto links = ops_.LinkStatus(req->link());
    if (!links.ok()) return ToGrpc(links.error());
    auto size = ops_.StateSize();
    if (!size.ok()) return ToGrpc(size.error());
    resp->set_state_db_bytes(*size);
    for (const auto& view : *links) {
      v1::LinkStatus* ls = resp->add_links();
      ls->set_link(view.link.name);
      ls->set_local_misp_version(view.link.local_version);
      ls->set_remote_misp_version(view.link.remote_version);
      ls->set_open_conflicts(view.open_conflicts);
      ls->set_local_key_fingerprint(view.link.local_key_fingerprint);
      ls->set_remote_key_fingerprint(view.link.remote_key_fingerprint);
      ls->set_keys_loaded_at(view.link.keys_loaded_at);
      ls->set_sync_window_start(view.link.sync_window_start);
      ls->set_sync_window(view.link.sync_window);
      for (const auto& dv : view.directions) {
        const DirectionStatus& st = dv.status;
        v1::DirectionStatus* ds = ls->add_directions();
        ds->set_direction(ToProto(dv.direction));
        ds->set_state(st.paused ? "paused" : st.running ? "running" : "idle");
        ds->set_paused_by(st.paused_by);
        ds->set_paused_at(st.paused_at);
        ds->set_last_run_started_at(st.last_run_started);
        ds->set_last_run_finished_at(st.last_run_ended);
        ds->set_last_run_outcome(st.last_outcome.Text());
        if (st.last_outcome.succeeded()) ds->set_last_success_at(st.last_run_ended);
        if (dv.direction == Direction::kPush) {
          ds->set_sent(dv.sent);
        } else {
          ds->set_received(dv.sent);
        }
        ds->set_failed(dv.failed);
        for (const auto& [rule, n] : st.last_stats.skipped_by_reason)
          (*ds->mutable_skipped_by_reason())[rule] = n;
        ds->set_cursor_timestamp(dv.cursor_timestamp);
        ds->set_cursor_generation(dv.cursor_generation);
        ds->set_queue_depth(dv.queue_depth);
        ds->set_dead_letters(dv.dead_letters);
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status TriggerSync(grpc::ServerContext* ctx, const v1::TriggerSyncRequest* req,
                           grpc::ServerWriter<v1::SyncProgress>* writer) override {
    auto dirs = ops_.TriggerDirections(req->link(), FromProto(req->direction()));
    if (!dirs.ok()) return ToGrpc(dirs.error());
    std::mutex write_mu;  // progress comes from the engine's worker threads
    for (Direction d : *dirs) {
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
      auto stats = ops_.Trigger(req->link(), d, req->full(), Actor(ctx),
                                [&](const engine::RunStats& s) { send(s, false, "running"); });
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
    auto page = ops_.ListEvents(req->link(), req->decision(), req->state(), req->updated_since(),
                                req->page_token(), req->page_size());
    if (!page.ok()) return ToGrpc(page.error());
    for (const auto& row : page->events) {
      const state::LedgerEntry& entry = row.row.entry;
      v1::EventSummary* e = resp->add_events();
      e->set_link(row.link);
      e->set_uuid(entry.uuid);
      e->set_origin(entry.origin == state::Side::kLocal ? "local" : "remote");
      e->set_decision(std::string(state::LedgerDecisionName(entry.decision)));
      e->set_state(row.state);
      e->set_local_timestamp(entry.local_timestamp.value_or(0));
      e->set_remote_timestamp(entry.remote_timestamp.value_or(0));
      e->set_updated_at(entry.updated_at);
    }
    resp->set_next_page_token(page->next_page_token);
    return grpc::Status::OK;
  }

  grpc::Status ExplainEvent(grpc::ServerContext*, const v1::ExplainEventRequest* req,
                            v1::ExplainEventResponse* resp) override {
    auto e = ops_.Explain(req->link(), req->uuid(), FromProto(req->direction()));
    if (!e.ok()) return ToGrpc(e.error());
    if (e->stored) FillDecision(*e->stored, e->stored_at, resp->mutable_stored());
    if (e->fresh) FillDecision(*e->fresh, e->fresh_at, resp->mutable_fresh());
    for (const auto& d : e->differences) resp->add_differences(d);
    return grpc::Status::OK;
  }

  grpc::Status PreviewRun(grpc::ServerContext*, const v1::PreviewRunRequest* req,
                          v1::PreviewRunResponse* resp) override {
    auto p = ops_.Preview(req->link(), FromProto(req->direction()), req->limit());
    if (!p.ok()) return ToGrpc(p.error());
    resp->set_link(req->link());
    resp->set_direction(req->direction());
    resp->set_listed(p->listed);
    resp->set_changed(p->changed);
    resp->set_would_send(p->would_send);
    for (const auto& [rule, n] : p->withheld_by_rule) (*resp->mutable_withheld_by_rule())[rule] = n;
    for (const auto& e : p->events) {
      v1::PreviewEvent* out = resp->add_events();
      out->set_uuid(e.uuid);
      out->set_timestamp(e.timestamp);
      out->set_send(e.send);
      out->set_rule(e.rule);
      out->set_detail(e.detail);
    }
    return grpc::Status::OK;
  }

  grpc::Status ResendEvent(grpc::ServerContext* ctx, const v1::ResendEventRequest* req,
                           v1::ResendEventResponse* resp) override {
    auto r = ops_.Resend(req->link(), req->uuid(), FromProto(req->direction()), Actor(ctx));
    if (!r.ok()) return ToGrpc(r.error());
    resp->set_outcome(r->outcome);
    resp->set_detail(r->detail);
    return grpc::Status::OK;
  }

  grpc::Status ListConflicts(grpc::ServerContext*, const v1::ListConflictsRequest* req,
                             v1::ListConflictsResponse* resp) override {
    auto list = ops_.ListConflicts(req->link(), req->include_resolved());
    if (!list.ok()) return ToGrpc(list.error());
    for (const auto& row : *list) FillConflict(row.conflict, row.link, resp->add_conflicts());
    return grpc::Status::OK;
  }

  grpc::Status ResolveConflict(grpc::ServerContext* ctx, const v1::ResolveConflictRequest* req,
                               v1::ResolveConflictResponse* resp) override {
    auto row = ops_.ResolveConflict(req->id(), req->resolution(), Actor(ctx));
    if (!row.ok()) return ToGrpc(row.error());
    FillConflict(row->conflict, row->link, resp->mutable_conflict());
    return grpc::Status::OK;
  }

  grpc::Status ListFailures(grpc::ServerContext*, const v1::ListFailuresRequest* req,
                            v1::ListFailuresResponse* resp) override {
    auto list = ops_.ListFailures(req->link(), req->dead_only());
    if (!list.ok()) return ToGrpc(list.error());
    for (const auto& row : *list) FillFailure(row.item, row.link, resp->add_failures());
    return grpc::Status::OK;
  }

  grpc::Status RetryFailure(grpc::ServerContext* ctx, const v1::FailureRef* req,
                            v1::FailureActionResponse* resp) override {
    return Answer(ops_.RetryFailure(req->id(), Actor(ctx)), resp);
  }
  grpc::Status DropFailure(grpc::ServerContext* ctx, const v1::FailureRef* req,
                           v1::FailureActionResponse* resp) override {
    return Answer(ops_.DropFailure(req->id(), Actor(ctx)), resp);
  }

  grpc::Status GetConfig(grpc::ServerContext*, const v1::GetConfigRequest*,
                         v1::GetConfigResponse* resp) override {
    resp->set_toml(ops_.ConfigText());
    return grpc::Status::OK;
  }

  grpc::Status ReloadConfig(grpc::ServerContext* ctx, const v1::ReloadConfigRequest*,
                            v1::ReloadConfigResponse* resp) override {
    auto changes = ops_.Reload(Actor(ctx));
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

  grpc::Status ListAudit(grpc::ServerContext*, const v1::ListAuditRequest* req,
                         v1::ListAuditResponse* resp) override {
    auto page = ops_.ListAudit(req->since(), req->link(), req->after_id(), req->page_size());
    if (!page.ok()) return ToGrpc(page.error());
    for (const auto& r : page->entries) {
      v1::AuditEntry* e = resp->add_entries();
      e->set_id(r.id);
      e->set_at(r.at);
      e->set_actor(r.actor);
      e->set_action(r.action);
      e->set_target(r.target);
      e->set_result(r.result);
      e->set_details(r.details);
    }
    resp->set_next_after_id(page->next_after_id);
    return grpc::Status::OK;
  }

  grpc::Status VacuumState(grpc::ServerContext* ctx, const v1::VacuumStateRequest*,
                           v1::VacuumStateResponse* resp) override {
    auto sizes = ops_.Vacuum(Actor(ctx));
    if (!sizes.ok()) return ToGrpc(sizes.error());
    resp->set_bytes_before(sizes->first);
    resp->set_bytes_after(sizes->second);
    return grpc::Status::OK;
  }

  grpc::Status BackupState(grpc::ServerContext* ctx, const v1::BackupStateRequest* req,
                           v1::BackupStateResponse* resp) override {
    auto st = ops_.Backup(req->path(), Actor(ctx));
    if (!st.ok()) return ToGrpc(st.error());
    resp->set_path(req->path());
    std::error_code ec;
    resp->set_bytes(static_cast<std::int64_t>(std::filesystem::file_size(req->path(), ec)));
    return grpc::Status::OK;
  }

 private:
  // Who made a call: the client certificate's subject on TCP; on the Unix socket, the connecting
  // process's uid and pid as the kernel gives them (SO_PEERCRED), with the operator name the client
  // states (x-sgsync-operator) alongside, for the person behind a shared account.
  std::string Actor(grpc::ServerContext* ctx) const {
    auto auth = ctx->auth_context();
    if (auth) {
      for (const char* prop : {"x509_subject", "x509_common_name"}) {
        auto v = auth->FindPropertyValues(prop);
        if (!v.empty()) return std::string("certificate ") + std::string(v[0].data(), v[0].size());
      }
    }
    std::string stated = "unknown";
    auto it = ctx->client_metadata().find("x-sgsync-operator");
    if (it != ctx->client_metadata().end()) stated = std::string(it->second.data(), it->second.size());
    auto cred = peers_ ? peers_->Lookup(ctx->peer()) : std::nullopt;
    return "unix socket " + (cred ? cred->Describe() : "peer " + ctx->peer() + " without credentials") +
           ", operator " + stated;
  }

  grpc::Status SetPaused(grpc::ServerContext* ctx, const v1::LinkDirection* req, v1::PauseResponse* resp,
                         bool paused) {
    auto st = ops_.SetPaused(req->link(), FromProto(req->direction()), paused, Actor(ctx));
    if (!st.ok()) return ToGrpc(st.error());
    resp->set_state(paused ? "paused" : "idle");
    return grpc::Status::OK;
  }

  static grpc::Status Answer(const Result<Operations::FailureRow>& row, v1::FailureActionResponse* resp) {
    if (!row.ok()) return ToGrpc(row.error());
    FillFailure(row->item, row->link, resp->mutable_failure());
    if (row->dropped) resp->mutable_failure()->set_state("dropped");
    return grpc::Status::OK;
  }

  daemon::Service& service_;
  Operations ops_;

 public:
  const PeerSocket* peers_ = nullptr;  // set before the first call can arrive
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
  std::unique_ptr<PeerSocket> socket;
  std::unique_ptr<grpc::Server> server;
};

Result<std::unique_ptr<AdminServer>> AdminServer::Start(Service& service, const config::DaemonConfig& c) {
  auto impl = std::make_unique<Impl>();
  impl->service = std::make_unique<AdminImpl>(service);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.RegisterService(impl->service.get());

  std::filesystem::path dir = std::filesystem::path(c.admin_socket).parent_path();
  if (!dir.empty() && !std::filesystem::is_directory(dir)) {
    return Fail(ErrorCode::kIo,
                "the admin socket's directory " + dir.string() + " does not exist (admin.socket)");
  }
  auto socket = PeerSocket::Listen(c.admin_socket, static_cast<unsigned>(c.admin_socket_mode));
  if (!socket.ok()) return socket.error();
  impl->socket = std::move(*socket);
  impl->service->peers_ = impl->socket.get();
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
  impl->server = builder.BuildAndStart();
  if (!impl->server) {
    return Fail(ErrorCode::kUnavailable,
                "cannot start the admin API" +
                    (c.admin_tcp_listen.empty() ? std::string() : " on " + c.admin_tcp_listen));
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
  impl->socket->Serve(impl->server.get());
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
    impl_->socket->Stop();  // no new connections while the server drains
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    impl_->server.reset();
    impl_->socket.reset();  // removes the socket file
  }
}

}  // namespace sgsync::daemon
