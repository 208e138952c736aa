// The admin API's transport: the Unix socket's mode, the TCP listener's client certificates, the
// standard health service and server reflection, over real gRPC channels.
#include "daemon/admin_server.h"

#include <grp.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "sgsync/admin/v1/admin.grpc.pb.h"
#include "tests/support/files.h"
#include "tests/support/test_pki.h"

namespace sgsync::daemon {
namespace {

namespace v1 = sgsync::admin::v1;
using sgsync::testing::ReadFile;
using sgsync::testing::TempDir;
using sgsync::testing::TestPki;

const char* kKey = "0123456789abcdefghij0123456789ABCDEFGHIJ";

// A daemon configuration whose link points at MISPs that are never contacted: these tests look at
// the admin transport only, so the service is created but its schedulers are not started.
config::DaemonConfig MakeConfig(const TempDir& dir, int mode = 0600) {
  config::DaemonConfig c;
  c.path = (dir.path() / "sgsync.toml").string();
  c.state_db = (dir.path() / "state.db").string();
  c.admin_socket = (dir.path() / "admin.sock").string();
  c.admin_socket_mode = mode;
  c.metrics_listen = "";
  config::LinkConfig l;
  l.name = "portal";
  for (auto* e : {&l.local, &l.remote}) {
    e->url = "https://127.0.0.1:9";
    e->api_key = config::Secret(kKey);
    e->api_key.source = "test";
  }
  l.remote.org_uuid = "1315aee3-d0b4-4569-a8f2-b99ad776f149";
  l.policy = boost::json::object{
      {"name", "portal"},
      {"local", boost::json::object{{"url", l.local.url}}},
      {"remote", boost::json::object{{"url", l.remote.url},
                                     {"org", boost::json::object{{"uuid", l.remote.org_uuid}}}}}};
  c.links.push_back(l);
  return c;
}

// A TCP listener on a free port that requires client certificates signed by the test client CA.
config::DaemonConfig WithTcpListener(config::DaemonConfig c, const TestPki& pki) {
  c.admin_tcp_listen = "127.0.0.1:0";
  c.admin_tls_cert = pki.server_cert();
  c.admin_tls_key = pki.server_key();
  c.admin_tls_client_ca = pki.client_ca();
  return c;
}

// A unary call without generated stubs: `method` is "/package.Service/Method", `request` the
// serialized message; returns the serialized answer. It waits on its own completion queue, on this
// thread, rather than through gRPC's callback API: the callback runs on one of gRPC's threads,
// handed over by synchronisation inside Debian's uninstrumented libgrpc, which ThreadSanitizer
// cannot see (the tsan preset runs this test; docs/reliability.md).
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& request, std::string* response) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(request);
  grpc::ByteBuffer in(&slice, 1), out;
  grpc::CompletionQueue cq;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(&ctx, method, in, &cq);
  call->StartCall();
  int finished = 0;
  call->Finish(&out, &status, &finished);
  void* tag = nullptr;
  bool ok = false;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(tag, &finished);
  EXPECT_TRUE(ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (status.ok()) {
    std::vector<grpc::Slice> slices;
    (void)out.Dump(&slices);
    for (const auto& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return status;
}

class AdminServerTest : public ::testing::Test {
 protected:
  void StartServer(config::DaemonConfig c) {
    config_ = c;
    auto service = Service::Create(c);
    ASSERT_TRUE(service.ok()) << service.error().ToString();
    service_ = std::move(*service);
    auto server = AdminServer::Start(*service_, c);
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = std::move(*server);
  }
  std::shared_ptr<grpc::Channel> UnixChannel() {
    return grpc::CreateChannel("unix:" + config_.admin_socket, grpc::InsecureChannelCredentials());
  }
  TempDir dir_;
  config::DaemonConfig config_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, SocketIsCreatedWithTheConfiguredMode) {
  StartServer(MakeConfig(dir_));
  struct stat st {};
  ASSERT_EQ(::stat(config_.admin_socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AdminServerTest, SocketMode0660WithAGroup) {
  config::DaemonConfig c = MakeConfig(dir_, 0660);
  struct group* g = ::getgrgid(::getgid());
  ASSERT_NE(g, nullptr);
  c.admin_socket_group = g->gr_name;
  StartServer(c);
  struct stat st {};
  ASSERT_EQ(::stat(config_.admin_socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, ::getgid());
}

TEST_F(AdminServerTest, HealthServiceAnswersServing) {
  StartServer(MakeConfig(dir_));
  std::string answer;
  // grpc.health.v1.HealthCheckRequest{service: ""} is the empty message; the answer
  // HealthCheckResponse{status: SERVING (1)} is field 1, varint 1.
  grpc::Status s = RawCall(UnixChannel(), "/grpc.health.v1.Health/Check", "", &answer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(answer, std::string("\x08\x01", 2));
}

TEST_F(AdminServerTest, ReflectionListsTheAdminAndHealthServices) {
  StartServer(MakeConfig(dir_));
  auto channel = UnixChannel();
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  grpc::Slice req(std::string("\x3a\x00", 2));
  grpc::ByteBuffer in(&req, 1);
  call->Write(in, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer out;
  call->Read(&out, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  (void)out.Dump(&slices);
  std::string answer;
  for (const auto& s : slices) answer.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_NE(answer.find("sgsync.admin.v1.SyncAdmin"), std::string::npos);
  EXPECT_NE(answer.find("grpc.health.v1.Health"), std::string::npos);
  ctx.TryCancel();
  grpc::Status finished;
  call->Finish(&finished, reinterpret_cast<void*>(4));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(AdminServerTest, TcpListenerRefusesAClientWithoutCertificateAndAcceptsOneSignedByTheCa) {
  TestPki pki;
  StartServer(WithTcpListener(MakeConfig(dir_), pki));
  ASSERT_GT(server_->tcp_port(), 0);
  std::string target = "127.0.0.1:" + std::to_string(server_->tcp_port());

  grpc::SslCredentialsOptions anonymous;
  anonymous.pem_root_certs = ReadFile(pki.ca());
  auto refused = v1::SyncAdmin::NewStub(grpc::CreateChannel(target, grpc::SslCredentials(anonymous)));
  grpc::ClientContext ctx1;
  ctx1.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::GetConfigResponse resp;
  grpc::Status s = refused->GetConfig(&ctx1, v1::GetConfigRequest(), &resp);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();

  grpc::SslCredentialsOptions with_cert = anonymous;
  with_cert.pem_cert_chain = ReadFile(pki.client_cert());
  with_cert.pem_private_key = ReadFile(pki.client_key());
  auto accepted = v1::SyncAdmin::NewStub(grpc::CreateChannel(target, grpc::SslCredentials(with_cert)));
  grpc::ClientContext ctx2;
  ctx2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  s = accepted->GetConfig(&ctx2, v1::GetConfigRequest(), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_NE(resp.toml().find("<redacted: test>"), std::string::npos);
  EXPECT_EQ(resp.toml().find(kKey), std::string::npos);
}

TEST_F(AdminServerTest, MutatingCallsAreAuditedWithTheCertificateSubject) {
  TestPki pki;
  StartServer(WithTcpListener(MakeConfig(dir_), pki));
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadFile(pki.ca());
  o.pem_cert_chain = ReadFile(pki.client_cert());
  o.pem_private_key = ReadFile(pki.client_key());
  auto stub = v1::SyncAdmin::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->tcp_port()), grpc::SslCredentials(o)));
  grpc::ClientContext ctx;
  v1::LinkDirection req;
  req.set_link("portal");
  v1::PauseResponse resp;
  ASSERT_TRUE(stub->Pause(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.state(), "paused");
  auto audit = service_->store().ListAudit(0);
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].action, "Pause");
  EXPECT_EQ((*audit)[0].actor, "certificate CN=client");
}

}  // namespace
}  // namespace sgsync::daemon
