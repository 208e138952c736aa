#include "cli/admin.h"

#include <grpcpp/grpcpp.h>
#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/render.h"
#include "sgsync/admin/v1/admin.grpc.pb.h"

namespace sgsync::cli {

namespace {

constexpr int kOk = 0, kFound = 1, kUsage = 2, kUnreachable = 3;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The person at the keyboard, as far as this process knows: under sudo the user who ran sudo
// (the daemon sees root's uid from the socket itself), otherwise the account's name. sgsyncd
// records it next to the uid and pid the kernel gives, never instead of them.
std::string OperatorName() {
  if (const char* sudo_user = std::getenv("SUDO_USER"); sudo_user != nullptr && *sudo_user != '\0')
    return std::string(sudo_user) + "(sudo)";
  struct passwd* pw = ::getpwuid(::getuid());
  return pw != nullptr ? std::string(pw->pw_name) : "uid" + std::to_string(::getuid());
}

class Client {
 public:
  explicit Client(const AdminArgs& a) : args_(a) {
    std::shared_ptr<grpc::Channel> channel;
    if (!a.tls_cert.empty()) {
      grpc::SslCredentialsOptions o;
      o.pem_root_certs = ReadFile(a.tls_ca);
      o.pem_cert_chain = ReadFile(a.tls_cert);
      o.pem_private_key = ReadFile(a.tls_key);
      target_ = a.socket;
      channel = grpc::CreateChannel(target_, grpc::SslCredentials(o));
    } else {
      target_ = "unix:" + a.socket;
      channel = grpc::CreateChannel(target_, grpc::InsecureChannelCredentials());
    }
    stub_ = v1::SyncAdmin::NewStub(channel);
  }

  // A context with a deadline and the operator's name for the audit log.
  std::unique_ptr<grpc::ClientContext> Context(int seconds = 30) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (seconds > 0) ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    ctx->AddMetadata("x-sgsync-operator", OperatorName());
    return ctx;
  }

  // Prints the failure and returns the exit code for it.
  int Failed(const grpc::Status& s) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
        s.error_message().find("connect") != std::string::npos) {
      std::fprintf(stderr, "sgsyncctl: sgsyncd is not reachable on %s: %s\n", target_.c_str(),
                   s.error_message().c_str());
      return kUnreachable;
    }
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
        s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      std::fprintf(stderr, "sgsyncctl: sgsyncd is not reachable on %s: %s\n", target_.c_str(),
                   s.error_message().c_str());
      return kUnreachable;
    }
    std::fprintf(stderr, "sgsyncctl: %s\n", s.error_message().c_str());
    bool usage = s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                 s.error_code() == grpc::StatusCode::NOT_FOUND ||
                 s.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
                 s.error_code() == grpc::StatusCode::ALREADY_EXISTS;
    return usage ? kUsage : kFound;
  }

  v1::SyncAdmin::Stub& stub() { return *stub_; }

 private:
  const AdminArgs& args_;
  std::string target_;
  std::unique_ptr<v1::SyncAdmin::Stub> stub_;
};

v1::Direction DirectionOf(const std::string& d) {
  return d == "push" ? v1::DIRECTION_PUSH : d == "pull" ? v1::DIRECTION_PULL : v1::DIRECTION_UNSPECIFIED;
}

void Print(const AdminArgs& a, const google::protobuf::Message& m, const std::string& human) {
  std::fputs(a.json ? (RenderJson(m) + "\n").c_str() : human.c_str(), stdout);
}

// The link to act on: the one given, or the daemon's only link.
bool ResolveLink(Client& c, const AdminArgs& a, std::string* link, int* rc) {
  if (!a.link.empty()) {
    *link = a.link;
    return true;
  }
  v1::GetStatusResponse status;
  auto ctx = c.Context();
  grpc::Status s = c.stub().GetStatus(ctx.get(), v1::GetStatusRequest(), &status);
  if (!s.ok()) {
    *rc = c.Failed(s);
    return false;
  }
  if (status.links_size() != 1) {
    std::fprintf(stderr, "sgsyncctl: sgsyncd runs %d links: name one with --link\n", status.links_size());
    *rc = kUsage;
    return false;
  }
  *link = status.links(0).link();
  return true;
}

int Sync(Client& c, const AdminArgs& a) {
  std::string link;
  int rc = kOk;
  if (!ResolveLink(c, a, &link, &rc)) return rc;
  v1::TriggerSyncRequest req;
  req.set_link(link);
  req.set_direction(DirectionOf(a.direction));
  req.set_full(a.full);
  auto ctx = c.Context(0);
  auto reader = c.stub().TriggerSync(ctx.get(), req);
  const bool terminal = ::isatty(STDOUT_FILENO) != 0 && !a.json;
  const auto started = std::chrono::steady_clock::now();
  v1::SyncProgress p;
  bool failed = false;
  while (reader->Read(&p)) {
    if (!a.wait) {
      std::printf("sync of %s started; sgsyncctl status shows how it goes\n", link.c_str());
      ctx->TryCancel();
      reader->Finish();
      return kOk;
    }
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (a.json) {
      if (p.finished()) std::printf("%s\n", RenderJson(p).c_str());
    } else if (terminal || p.finished()) {
      std::fputs(RenderProgress(p, elapsed, terminal).c_str(), stdout);
      std::fflush(stdout);
    }
    if (p.finished() && (p.failed() > 0 || p.outcome() != "ok")) failed = true;
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return c.Failed(s);
  return failed ? kFound : kOk;
}

}  // namespace

int RunAdmin(const AdminArgs& a) {
  Client c(a);
  const std::string& cmd = a.command;
  grpc::Status s;
  if (cmd == "status") {
    v1::GetStatusRequest req;
    req.set_link(a.link);
    v1::GetStatusResponse resp;
    s = c.stub().GetStatus(c.Context().get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp, RenderStatus(resp));
    for (const auto& l : resp.links()) {
      for (const auto& d : l.directions()) {
        if (d.dead_letters() > 0 || d.last_run_outcome().rfind("error", 0) == 0 ||
            d.last_run_outcome().rfind("aborted", 0) == 0)
          return kFound;
      }
    }
    return kOk;
  }
  if (cmd == "sync") return Sync(c, a);
  if (cmd == "pause" || cmd == "resume") {
    std::string link;
    int rc = kOk;
    if (!ResolveLink(c, a, &link, &rc)) return rc;
    v1::LinkDirection req;
    req.set_link(link);
    req.set_direction(DirectionOf(a.direction));
    v1::PauseResponse resp;
    s = cmd == "pause" ? c.stub().Pause(c.Context().get(), req, &resp)
                       : c.stub().Resume(c.Context().get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp,
          link + " " + (a.direction.empty() ? "push and pull" : a.direction) + ": " + resp.state() + "\n");
    return kOk;
  }
  if (cmd == "events") {
    v1::ListEventsRequest req;
    req.set_link(a.link);
    req.set_state(a.state);
    req.set_decision(a.decision);
    req.set_updated_since(a.since);
    req.set_page_size(a.limit);
    req.set_page_token(a.page_token);
    v1::ListEventsResponse resp;
    s = c.stub().ListEvents(c.Context().get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp, RenderEvents(resp));
    return kOk;
  }
  if (cmd == "explain") {
    std::string link;
    int rc = kOk;
    if (!ResolveLink(c, a, &link, &rc)) return rc;
    v1::ExplainEventRequest req;
    req.set_link(link);
    req.set_uuid(a.uuid);
    req.set_direction(DirectionOf(a.direction));
    v1::ExplainEventResponse resp;
    s = c.stub().ExplainEvent(c.Context(120).get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp, RenderExplain(a.uuid, resp));
    return kOk;
  }
  if (cmd == "conflicts") {
    v1::ListConflictsRequest req;
    req.set_link(a.link);
    req.set_include_resolved(a.all);
    v1::ListConflictsResponse resp;
    s = c.stub().ListConflicts(c.Context().get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp, RenderConflicts(resp));
    for (const auto& x : resp.conflicts()) {
      if (x.resolution().empty()) return kFound;
    }
    return kOk;
  }
  if (cmd == "preview") {
    std::string link;
    int rc = kOk;
    if (!ResolveLink(c, a, &link, &rc)) return rc;
    v1::PreviewRunRequest req;
    req.set_link(link);
    req.set_direction(DirectionOf(a.direction));
    req.set_limit(a.limit);
    v1::PreviewRunResponse resp;
    s = c.stub().PreviewRun(c.Context(600).get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp, RenderPreview(resp));
    return kOk;
  }
  if (cmd == "resend") {
    std::string link;
    int rc = kOk;
    if (!ResolveLink(c, a, &link, &rc)) return rc;
    v1::ResendEventRequest req;
    req.set_link(link);
    req.set_uuid(a.uuid);
    req.set_direction(DirectionOf(a.direction));
    v1::ResendEventResponse resp;
    s = c.stub().ResendEvent(c.Context(600).get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp,
          a.uuid + ": " + resp.outcome() + (resp.detail().empty() ? "" : " (" + resp.detail() + ")") + "\n");
    return resp.outcome() == "failed" ? kFound : kOk;
  }
  if (cmd == "resolve") {
    v1::ResolveConflictRequest req;
    req.set_id(a.id);
    req.set_resolution(a.resolution);
    v1::ResolveConflictResponse resp;
    s = c.stub().ResolveConflict(c.Context().get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    v1::ListConflictsResponse one;
    *one.add_conflicts() = resp.conflict();
    Print(a, resp, RenderConflicts(one));
    return kOk;
  }
  if (cmd == "failures") {
    v1::ListFailuresRequest req;
    req.set_link(a.link);
    req.set_dead_only(a.dead_only);
    v1::ListFailuresResponse resp;
    s = c.stub().ListFailures(c.Context().get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp, RenderFailures(resp));
    return resp.failures_size() > 0 ? kFound : kOk;
  }
  if (cmd == "retry" || cmd == "drop") {
    v1::FailureRef req;
    req.set_id(a.id);
    v1::FailureActionResponse resp;
    s = cmd == "retry" ? c.stub().RetryFailure(c.Context().get(), req, &resp)
                       : c.stub().DropFailure(c.Context().get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    v1::ListFailuresResponse one;
    *one.add_failures() = resp.failure();
    Print(a, resp, RenderFailures(one));
    return kOk;
  }
  if (cmd == "audit") {
    v1::ListAuditRequest req;
    req.set_since(a.since);
    req.set_link(a.link);
    req.set_page_size(a.limit);
    req.set_after_id(a.after_id);
    if (a.format == "jsonl") {
      // Every page, one entry per line: what a SIEM's file input reads.
      while (true) {
        v1::ListAuditResponse resp;
        s = c.stub().ListAudit(c.Context().get(), req, &resp);
        if (!s.ok()) return c.Failed(s);
        for (const auto& e : resp.entries()) std::fputs(RenderAuditLine(e).c_str(), stdout);
        if (resp.next_after_id() == 0) return kOk;
        req.set_after_id(resp.next_after_id());
      }
    }
    v1::ListAuditResponse resp;
    s = c.stub().ListAudit(c.Context().get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp, RenderAudit(resp));
    return kOk;
  }
  if (cmd == "config") {
    v1::GetConfigResponse resp;
    s = c.stub().GetConfig(c.Context().get(), v1::GetConfigRequest(), &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp, resp.toml());
    return kOk;
  }
  if (cmd == "reload") {
    v1::ReloadConfigResponse resp;
    s = c.stub().ReloadConfig(c.Context(120).get(), v1::ReloadConfigRequest(), &resp);
    if (!s.ok()) return c.Failed(s);
    std::string human = "configuration reloaded\n";
    for (const auto& ch : resp.changes()) human += "  " + ch + "\n";
    Print(a, resp, human);
    return kOk;
  }
  if (cmd == "vacuum") {
    v1::VacuumStateResponse resp;
    s = c.stub().VacuumState(c.Context(3600).get(), v1::VacuumStateRequest(), &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp,
          "state database compacted: " + std::to_string(resp.bytes_before()) + " -> " +
              std::to_string(resp.bytes_after()) + " bytes\n");
    return kOk;
  }
  if (cmd == "backup") {
    v1::BackupStateRequest req;
    req.set_path(a.path);
    v1::BackupStateResponse resp;
    s = c.stub().BackupState(c.Context(600).get(), req, &resp);
    if (!s.ok()) return c.Failed(s);
    Print(a, resp, "backup written: " + resp.path() + " (" + std::to_string(resp.bytes()) + " bytes)\n");
    return kOk;
  }
  std::fprintf(stderr, "sgsyncctl: unknown command %s\n", cmd.c_str());
  return kUsage;
}

int StreamOnboarding(const AdminArgs& a, const std::string& lang, bool canary,
                     const std::function<void(const OnboardingRow&)>& each) {
  Client c(a);
  v1::OnboardingCheckRequest req;
  req.set_lang(lang);
  req.set_canary(canary);
  auto ctx = c.Context(600);
  auto reader = c.stub().CheckOnboarding(ctx.get(), req);
  v1::OnboardingCheckResult r;
  while (reader->Read(&r))
    each(OnboardingRow{r.id(), r.link(), r.title(), r.outcome(), r.found(), r.remedy()});
  grpc::Status s = reader->Finish();
  return s.ok() ? kOk : c.Failed(s);
}

}  // namespace sgsync::cli
