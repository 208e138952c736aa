// The HTTPS transport against misp-sim over real TLS on 127.0.0.1, with certificates the tests make:
// verification fails closed with a reason, pins and client certificates work, retries follow the
// rules for safe requests, and broken answers give their typed errors.
#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "common/encoding.h"
#include "misp-sim/sim.h"
#include "portal-connector/socket_stream.h"
#include "portal-connector/transport.h"
#include "tests/support/connect_proxy.h"
#include "tests/support/test_pki.h"

namespace sgsync::connector {
namespace {

const std::string kKey(40, 'k');

class TransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new sgsync::testing::TestPki(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  // `keep_alive_timeout`: the server closes a connection idle that long (zero: never).
  void Serve(const std::string& cert, const std::string& key, const std::string& client_ca = "",
             std::chrono::milliseconds keep_alive_timeout = std::chrono::milliseconds::zero()) {
    auto sim = sim::MispSim::Create(sim::SimConfig{":memory:", "", "ORG1", "", kKey, "", ""});
    ASSERT_TRUE(sim.ok());
    sim_ = std::move(*sim);
    sim::MispSim* raw = sim_.get();
    auto server = sim::HttpServer::Start(
        "127.0.0.1", 0, [raw](const sim::HttpRequest& r) { return raw->Handle(r); },
        sim::TlsFiles{cert, key, client_ca}, std::size_t{64} << 20, keep_alive_timeout);
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = std::move(*server);
  }

  // A TLS server answering `{}` with `headers`, recording which peer (address:port, so which
  // connection) sent each request: Peers().
  void ServeRecordingPeers(std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto server = sim::HttpServer::Start(
        "127.0.0.1", 0,
        [this, headers = std::move(headers)](const sim::HttpRequest& r) {
          std::lock_guard lock(peers_mu_);
          peers_.push_back(r.peer);
          sim::HttpResponse out;
          out.headers = headers;
          out.body = "{}";
          return out;
        },
        sim::TlsFiles{pki_->server_cert(), pki_->server_key(), ""});
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = std::move(*server);
  }
  std::vector<std::string> Peers() {
    std::lock_guard lock(peers_mu_);
    return peers_;
  }

  // A TLS server giving every request `answer`, and options that reach it.
  TransportOptions AnswerEveryRequest(sim::HttpResponse answer) {
    auto server = sim::HttpServer::Start(
        "127.0.0.1", 0, [answer = std::move(answer)](const sim::HttpRequest&) { return answer; },
        sim::TlsFiles{pki_->server_cert(), pki_->server_key(), ""});
    EXPECT_TRUE(server.ok()) << server.error().ToString();
    if (server.ok()) server_ = std::move(*server);
    return Options();
  }

  TransportOptions Options() {
    TransportOptions o;
    o.base_url = "https://127.0.0.1:" + std::to_string(server_->port());
    o.tls.ca_file = pki_->ca();
    o.retry.base = std::chrono::milliseconds(10);
    o.retry.cap = std::chrono::milliseconds(50);
    return o;
  }

  Result<HttpResponse> Get(TransportOptions o, const std::string& target = "/servers/getVersion") {
    auto t = HttpsTransport::Create(std::move(o), kKey);
    if (!t.ok()) return t.error();
    return (*t)->Send(HttpRequest{"GET", target, {}, "", true});
  }

  static sgsync::testing::TestPki* pki_;
  std::unique_ptr<sim::MispSim> sim_;
  std::unique_ptr<sim::HttpServer> server_;
  std::mutex peers_mu_;
  std::vector<std::string> peers_;
};
sgsync::testing::TestPki* TransportTest::pki_ = nullptr;

TEST_F(TransportTest, AVerifiedServerAnswers) {
  Serve(pki_->server_cert(), pki_->server_key());
  auto r = Get(Options());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("\"version\":\"2.5.1\""), std::string::npos);
}

TEST_F(TransportTest, EveryBadCertificateFailsClosedWithItsReason) {
  struct Case {
    std::string name, cert, key, ca, reason;
  };
  for (const Case& c : std::vector<Case>{
           {"wrong host", pki_->wrong_host_cert(), pki_->Path("wronghost.key"), pki_->ca(),
            "does not name 127.0.0.1"},
           {"expired", pki_->expired_cert(), pki_->Path("expired.key"), pki_->ca(), "expired"},
           {"self-signed", pki_->self_signed_cert(), pki_->self_signed_key(), pki_->ca(), "self-signed"},
           {"untrusted CA", pki_->server_cert(), pki_->server_key(), pki_->client_ca(),
            "unable to get local issuer"},
       }) {
    Serve(c.cert, c.key);
    TransportOptions o = Options();
    o.tls.ca_file = c.ca;
    auto r = Get(o);
    ASSERT_FALSE(r.ok()) << c.name << " was accepted";
    EXPECT_EQ(r.error().code, ErrorCode::kRefused) << c.name << ": " << r.error().ToString();
    EXPECT_NE(r.error().message.find(c.reason), std::string::npos) << c.name << ": " << r.error().message;
    EXPECT_EQ(r.error().message.find(kKey), std::string::npos);
  }
}

TEST_F(TransportTest, APinMustMatchTheCertificate) {
  Serve(pki_->server_cert(), pki_->server_key());
  TransportOptions o = Options();
  o.tls.pin_sha256 = pki_->Fingerprint(pki_->server_cert());
  ASSERT_EQ(o.tls.pin_sha256.size(), 64u);
  auto good = Get(o);
  EXPECT_TRUE(good.ok()) << good.error().ToString();
  o.tls.pin_sha256 = pki_->Fingerprint(pki_->self_signed_cert());
  auto r = Get(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("pin mismatch"), std::string::npos) << r.error().message;
  o.tls.pin_sha256 = "nothex";
  EXPECT_EQ(HttpsTransport::Create(o, kKey).error().where, "tls.pin_sha256");
}

TEST_F(TransportTest, AServerRequiringAClientCertificateAcceptsOnlyWithIt) {
  Serve(pki_->server_cert(), pki_->server_key(), pki_->client_ca());
  TransportOptions o = Options();
  EXPECT_FALSE(Get(o).ok()) << "no client certificate";
  o.tls.client_cert = pki_->client_cert();
  o.tls.client_key = pki_->client_key();
  auto r = Get(o);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
}

TEST_F(TransportTest, AnHttpProxyCarriesTheTlsSessionThroughConnect) {
  Serve(pki_->server_cert(), pki_->server_key());
  sgsync::testing::ConnectProxy proxy;
  TransportOptions o = Options();
  o.proxy = "http://127.0.0.1:" + std::to_string(proxy.port());
  auto r = Get(o);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(proxy.targets(), std::vector<std::string>{"127.0.0.1:" + std::to_string(server_->port())});
  sgsync::testing::ConnectProxy refusing(403);
  o.proxy = "http://127.0.0.1:" + std::to_string(refusing.port());
  o.retry.max_attempts = 1;
  auto no = Get(o);
  ASSERT_FALSE(no.ok());
  EXPECT_NE(no.error().message.find("refused the tunnel"), std::string::npos) << no.error().message;
  o.proxy = "socks5://127.0.0.1:1";
  EXPECT_EQ(HttpsTransport::Create(o, kKey).error().where, "proxy");
}

TEST_F(TransportTest, GzipAnswersAreDecodedAndCanStreamToASink) {
  // A server that compresses its answers (a MISP behind a compressing web server).
  std::string big(300000, 'x');
  for (std::size_t i = 0; i < big.size(); i += 97) big[i] = static_cast<char>('a' + i % 26);
  sim::HttpResponse gzipped;
  gzipped.headers.emplace_back("Content-Encoding", "gzip");
  gzipped.body = GzipCompress(big);
  TransportOptions o = AnswerEveryRequest(std::move(gzipped));
  ASSERT_FALSE(HasFailure());
  auto t = HttpsTransport::Create(o, kKey);
  auto whole = (*t)->Send(HttpRequest{"GET", "/x", {}, "", true});
  ASSERT_TRUE(whole.ok()) << whole.error().ToString();
  EXPECT_EQ(whole->body, big);
  std::string streamed;
  int pieces = 0, resets = 0;
  HttpRequest req{"GET", "/x", {}, "", true};
  req.body_reset = [&] {
    ++resets;
    streamed.clear();
  };
  req.body_sink = [&](std::string_view piece) {
    ++pieces;
    streamed.append(piece);
    return Status();
  };
  auto r = (*t)->Send(req);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->body.empty()) << "a streamed body is not kept twice";
  EXPECT_EQ(streamed, big);
  EXPECT_GT(pieces, 1);
  EXPECT_EQ(resets, 1);
  o.max_response_bytes = 100000;  // the compressed answer fits, the decoded one does not
  auto small = HttpsTransport::Create(o, kKey);
  auto limited = (*small)->Send(HttpRequest{"GET", "/x", {}, "", true});
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.error().code, ErrorCode::kLimitExceeded) << limited.error().ToString();
}

// Beast reads as much as its buffer's free capacity, at least 512 bytes. With the connection's buffer
// unreserved, a megabyte came in 2 048 pieces of 512 bytes, each an asynchronous round through Asio
// (a push took 30% more perf samples). Reserved, each read takes a whole TLS record (16 KiB).
TEST_F(TransportTest, ALargeAnswerIsReadAWholeTlsRecordAtATime) {
  const std::size_t size = std::size_t{1} << 20;
  sim::HttpResponse big;
  big.body.assign(size, 'x');
  TransportOptions o = AnswerEveryRequest(std::move(big));
  ASSERT_FALSE(HasFailure());
  auto t = HttpsTransport::Create(o, kKey);
  ASSERT_TRUE(t.ok());
  std::size_t received = 0;
  int pieces = 0;
  HttpRequest req{"GET", "/x", {}, "", true};
  req.body_sink = [&](std::string_view piece) {
    ++pieces;
    received += piece.size();
    return Status();
  };
  for (int exchange = 0; exchange < 2; ++exchange) {  // a fresh connection, then the kept-alive one
    pieces = 0;
    received = 0;
    auto r = (*t)->Send(req);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(received, size);
    // 64 records of 16 KiB; a few more where a record straddles the header's read.
    EXPECT_LE(pieces, 80) << "exchange " << exchange << ": " << pieces << " pieces for 1 MiB";
  }
}

TEST_F(TransportTest, PlainHttpNeedsToBeAllowed) {
  TransportOptions o;
  o.base_url = "http://127.0.0.1:1";
  auto t = HttpsTransport::Create(o, kKey);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().where, "url");
  o.allow_insecure_http = true;
  EXPECT_TRUE(HttpsTransport::Create(o, kKey).ok());
}

TEST_F(TransportTest, SafeRequestsAreRetriedOn5xxAndWritesAreNot) {
  Serve(pki_->server_cert(), pki_->server_key());
  sim::Fault f;
  f.route = "/servers/getVersion";
  f.error_rate = 1;
  f.error_status = 500;
  f.remaining = 2;
  sim_->AddFault(f);
  auto r = Get(Options());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->attempts, 3);
  f.route = "/events/add";
  f.remaining = 1;
  sim_->AddFault(f);
  auto t = HttpsTransport::Create(Options(), kKey);
  auto w = (*t)->Send(HttpRequest{"POST", "/events/add", {}, R"({"Event":{"info":"x"}})", false});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->status, 500) << "a write is never repeated blindly";
  EXPECT_EQ(w->attempts, 1);
}

TEST_F(TransportTest, A429RetryAfterIsHonoured) {
  Serve(pki_->server_cert(), pki_->server_key());
  sim::Fault f;
  f.route = "/servers/getVersion";
  f.error_rate = 1;
  f.error_status = 429;
  f.retry_after_s = 1;
  f.remaining = 1;
  sim_->AddFault(f);
  auto start = std::chrono::steady_clock::now();
  auto r = Get(Options());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000))
      << "waited as the server asked";
}

// Issue 23 item 3: a peer's Retry-After, whatever it says, is a bounded wait: no exception, no
// overflow. Both forms of RFC 9110 are read.
TEST(RetryAfterTest, EveryFormIsReadAndClampedWithoutOverflow) {
  using std::chrono::seconds;
  const seconds max(120);
  const auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(ParseRetryAfter("5", max, now), seconds(5));
  EXPECT_EQ(ParseRetryAfter(" 0 ", max, now), seconds(0));
  EXPECT_EQ(ParseRetryAfter("99999999999999999999", max, now), max) << "20 digits: clamped, no exception";
  EXPECT_EQ(ParseRetryAfter("9223372036854775", max, now), max) << "would overflow * 1000: clamped";
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", max, now), seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", max, now), seconds(0)) << "a date past";
  EXPECT_EQ(ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", max, now), max);
  for (const char* bad : {"", "-5", "soon", "1e9", "5 s", "Sun, 06 Nov 1994"}) {
    EXPECT_EQ(ParseRetryAfter(bad, max, now), std::nullopt) << bad;
  }
}

// The Date header the onboarding clock check reads and the date form of Retry-After: only the
// IMF-fixdate RFC 9110 requires of senders, whole.
TEST(HttpDateTest, ReadsOnlyAWholeImfFixdate) {
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  for (const char* bad : {"", "Sun, 06 Nov 1994", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT x"})
    EXPECT_EQ(ParseHttpDate(bad), std::nullopt) << bad;
}

// Issue 16 item 7: requests in flight are bounded per MISP across every transport of the process
// (all runs of all links), and a 429's Retry-After holds back every request to that MISP, writes
// included. The server counts what it sees at once.
TEST_F(TransportTest, TransportsSharingAnEndpointLimitNeverExceedItTogether) {
  std::atomic<int> now{0}, peak{0}, served{0};
  auto server = sim::HttpServer::Start(
      "127.0.0.1", 0,
      [&](const sim::HttpRequest&) {
        int n = ++now;
        int p = peak.load();
        while (n > p && !peak.compare_exchange_weak(p, n)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
        --now;
        ++served;
        sim::HttpResponse r;
        r.body = "{}";
        return r;
      },
      sim::TlsFiles{pki_->server_cert(), pki_->server_key(), ""});
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  auto limit = std::make_shared<EndpointLimit>(2);
  auto make = [&] {
    TransportOptions o;
    o.base_url = "https://127.0.0.1:" + std::to_string((*server)->port());
    o.tls.ca_file = pki_->ca();
    o.max_connections = 8;
    o.endpoint_limit = limit;
    return std::move(*HttpsTransport::Create(std::move(o), kKey));
  };
  auto push = make(), pull = make();  // two runs, one MISP
  std::vector<std::thread> threads;
  for (int i = 0; i < 12; ++i) {
    HttpsTransport* t = i % 2 == 0 ? push.get() : pull.get();
    threads.emplace_back([t, i] {
      auto r = t->Send(HttpRequest{i % 3 == 0 ? "POST" : "GET", "/events/index", {}, "{}", i % 3 != 0});
      EXPECT_TRUE(r.ok());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(served.load(), 12);
  EXPECT_EQ(peak.load(), 2) << "never more than the limit at once, and the limit is used";
  EXPECT_EQ(limit->in_flight(), 0);
}

TEST_F(TransportTest, ARetryAfterOnAWriteHoldsBackEveryRequestToThatMisp) {
  std::atomic<int> calls{0};
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> at;
  auto server = sim::HttpServer::Start(
      "127.0.0.1", 0,
      [&](const sim::HttpRequest&) {
        {
          std::lock_guard lock(mu);
          at.push_back(std::chrono::steady_clock::now());
        }
        sim::HttpResponse r;
        if (calls++ == 0) {
          r.status = 429;
          r.headers.emplace_back("Retry-After", "1");
        }
        r.body = "{}";
        return r;
      },
      sim::TlsFiles{pki_->server_cert(), pki_->server_key(), ""});
  ASSERT_TRUE(server.ok());
  TransportOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string((*server)->port());
  o.tls.ca_file = pki_->ca();
  o.endpoint_limit = std::make_shared<EndpointLimit>(4);
  auto t = std::move(*HttpsTransport::Create(std::move(o), kKey));
  auto write = t->Send(HttpRequest{"POST", "/events/add", {}, "{}", false});
  ASSERT_TRUE(write.ok());
  EXPECT_EQ(write->status, 429) << "a write is not repeated";
  auto next = t->Send(HttpRequest{"GET", "/servers/getVersion", {}, "", true});
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(at.size(), 2u);
  EXPECT_GE(at[1] - at[0], std::chrono::milliseconds(950)) << "the next request waited the write's Retry-After";
}

TEST_F(TransportTest, BrokenAnswersGiveTypedErrors) {
  Serve(pki_->server_cert(), pki_->server_key());
  TransportOptions o = Options();
  o.retry.max_attempts = 1;
  o.timeouts.response_header = std::chrono::milliseconds(300);
  struct Case {
    std::string name;
    sim::Fault fault;
    ErrorCode code;
  };
  sim::Fault reset;
  reset.reset_after_bytes = 10;
  sim::Fault truncated;
  truncated.truncate_body = true;
  sim::Fault stall;
  stall.stall_ms = 1500;
  for (Case c : std::vector<Case>{{"reset mid-body", reset, ErrorCode::kUnavailable},
                                  {"truncated body", truncated, ErrorCode::kUnavailable},
                                  {"stalled server", stall, ErrorCode::kTimeout}}) {
    c.fault.route = "/servers/getVersion";
    c.fault.remaining = 1;
    sim_->AddFault(c.fault);
    auto r = Get(o);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.error().code, c.code) << c.name << ": " << r.error().ToString();
  }
  TransportOptions small = Options();
  small.max_response_bytes = 50;
  auto big = Get(small);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, ErrorCode::kLimitExceeded) << big.error().ToString();
}

TEST_F(TransportTest, SpecCase35_BodiesOver1KbAreGzippedAndSmallerOnesAreNot) {
  // sgsync has no brotli: with gzip announced, a 5 000-byte body goes gzip and an 800-byte one plain.
  Serve(pki_->server_cert(), pki_->server_key());
  TransportOptions o = Options();
  o.gzip_requests = true;
  auto t = HttpsTransport::Create(o, kKey);
  for (auto [size, compressed] : {std::pair{5000, true}, std::pair{800, false}}) {
    std::string body = R"({"minimal":1,"p":")" + std::string(static_cast<std::size_t>(size), 'p') + R"("})";
    ASSERT_TRUE((*t)->Send(HttpRequest{"POST", "/events/index", {}, body, true}).ok());
    auto log = sim_->RequestLog();
    EXPECT_EQ(log.back().headers.count("content-encoding") > 0, compressed) << size;
    EXPECT_EQ(log.back().body, body) << size;
  }
}

TEST_F(TransportTest, GzipGoesBothWaysAndTheKeyTravelsOnlyInTheHeader) {
  Serve(pki_->server_cert(), pki_->server_key());
  TransportOptions o = Options();
  o.gzip_requests = true;
  auto t = HttpsTransport::Create(o, kKey);
  std::string body = R"({"minimal":1,"padding":")" + std::string(3000, 'p') + R"("})";
  auto r = (*t)->Send(HttpRequest{"POST", "/events/index", {}, body, true});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  auto log = sim_->RequestLog();
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back().headers.at("content-encoding"), "gzip");
  EXPECT_EQ(log.back().body, body) << "misp-sim decoded what the transport compressed";
}

// A TCP listener on 127.0.0.1 that never answers: connections wait in its backlog. A test serving
// on it itself takes its socket (fd).
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), len), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  int port() const { return port_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// The request goes out whole and at once: with Nagle's algorithm on, the last piece of a request
// waited for the peer's delayed ACK, 10 ms an event (bench: 1 000 events took 25 s instead of 15).
TEST(SocketStreamTest, TheConnectionSendsWithoutNaglesDelay) {
  SilentListener listener;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  ASSERT_EQ(::getaddrinfo("127.0.0.1", std::to_string(listener.port()).c_str(), &hints, &found), 0);
  detail::SocketStream s;
  auto ec = s.Connect(found, std::chrono::steady_clock::now() + std::chrono::seconds(5));
  ::freeaddrinfo(found);
  ASSERT_FALSE(ec) << ec.message();
  int on = 0;
  socklen_t len = sizeof on;
  ASSERT_EQ(::getsockopt(s.native_handle(), IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
  EXPECT_EQ(on, 1);
}

TEST_F(TransportTest, AServerThatNeverAnswersTheHandshakeTimesOut) {
  SilentListener listener;
  TransportOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(listener.port());
  o.tls.ca_file = pki_->ca();
  o.retry.max_attempts = 1;
  o.timeouts.handshake = std::chrono::milliseconds(200);
  const auto started = std::chrono::steady_clock::now();
  auto r = Get(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout) << r.error().ToString();
  EXPECT_NE(r.error().message.find("TLS handshake timed out"), std::string::npos) << r.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

// A server that closes while a large request is still going out (here: over its body limit) resets
// the connection: the write fails with the connection's error, named as a transport failure.
TEST_F(TransportTest, AServerClosingWhileTheRequestIsSentGivesAnError) {
  auto server = sim::HttpServer::Start(
      "127.0.0.1", 0, [](const sim::HttpRequest&) { return sim::HttpResponse{}; },
      sim::TlsFiles{pki_->server_cert(), pki_->server_key(), ""}, 1024);
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  server_ = std::move(*server);
  TransportOptions o = Options();
  o.retry.max_attempts = 1;
  auto t = HttpsTransport::Create(o, kKey);
  ASSERT_TRUE(t.ok());
  auto r = (*t)->Send(HttpRequest{"POST", "/events/add", {}, std::string(std::size_t{32} << 20, 'x'), false});
  ASSERT_FALSE(r.ok()) << "answered " << r->status;
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable) << r.error().ToString();
  EXPECT_NE(r.error().message.find("while sending the request"), std::string::npos) << r.error().message;
}

// The web server in front of a MISP closes a kept-alive connection that stays idle (Apache after 5 s,
// nginx after 75 s by default). A write is never repeated, so it must not go out on a connection the
// server has already closed: the pool sets such a connection aside before using it.
TEST_F(TransportTest, AConnectionTheServerClosedWhileIdleIsNotUsedForAWrite) {
  Serve(pki_->server_cert(), pki_->server_key(), "", std::chrono::milliseconds(100));
  std::vector<int> statuses;
  std::mutex mu;
  TransportOptions o = Options();
  o.observer = [&](std::string_view, std::string_view, int status, double) {
    std::lock_guard lock(mu);
    statuses.push_back(status);
  };
  auto t = HttpsTransport::Create(o, kKey);
  ASSERT_TRUE(t.ok());
  // Two connections in the pool, both then closed by the server.
  std::thread other([&] { (void)(*t)->Send(HttpRequest{"GET", "/servers/getVersion", {}, "", true}); });
  ASSERT_TRUE((*t)->Send(HttpRequest{"GET", "/servers/getVersion", {}, "", true}).ok());
  other.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  for (int i = 0; i < 2; ++i) {
    auto w =
        (*t)->Send(HttpRequest{"POST",
                               "/events/add",
                               {},
                               R"({"Event":{"info":"after an idle pause )" + std::to_string(i) + R"("}})",
                               false});
    ASSERT_TRUE(w.ok()) << "write " << i << ": " << w.error().ToString();
    EXPECT_EQ(w->status, 200) << w->body;
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 0), 0) << "no attempt failed";
}

// Apache says how long it keeps an idle connection (`Keep-Alive: timeout=5, max=100`). A connection
// is not reused once it has been idle that long less a second, so that a request and the server's
// close never cross; before that it is.
TEST_F(TransportTest, AConnectionIsNotReusedPastTheKeepAliveTimeoutTheServerAnnounced) {
  ServeRecordingPeers({{"Keep-Alive", "timeout=2, max=100"}});
  auto t = HttpsTransport::Create(Options(), kKey);
  ASSERT_TRUE(t.ok());
  auto send = [&] { return (*t)->Send(HttpRequest{"POST", "/events/add", {}, "{}", false}); };
  ASSERT_TRUE(send().ok());
  ASSERT_TRUE(send().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ASSERT_TRUE(send().ok());
  const std::vector<std::string> peers = Peers();
  ASSERT_EQ(peers.size(), 3u);
  EXPECT_EQ(peers[0], peers[1]) << "reused at once";
  EXPECT_NE(peers[1], peers[2]) << "idle 1.2 s of the 2 s announced: a fresh connection";
}

// nginx announces no keep-alive timeout and may close an idle connection just as a request goes out
// on it; a write is never repeated, so after a pause it goes out on a new connection, while a read
// (repeated if need be) still reuses the kept one, and writes in a burst share theirs.
TEST_F(TransportTest, AWriteAfterAPauseGoesOutOnANewConnectionAndAReadReusesTheKeptOne) {
  ServeRecordingPeers();
  auto t = HttpsTransport::Create(Options(), kKey);
  ASSERT_TRUE(t.ok());
  auto read = [&] { return (*t)->Send(HttpRequest{"GET", "/servers/getVersion", {}, "", true}).ok(); };
  auto write = [&] { return (*t)->Send(HttpRequest{"POST", "/events/add", {}, "{}", false}).ok(); };
  const auto pause = std::chrono::milliseconds(2300);
  ASSERT_TRUE(read());
  std::this_thread::sleep_for(pause);
  ASSERT_TRUE(read());
  std::this_thread::sleep_for(pause);
  ASSERT_TRUE(write());
  ASSERT_TRUE(write());
  const std::vector<std::string> peers = Peers();
  ASSERT_EQ(peers.size(), 4u);
  EXPECT_EQ(peers[0], peers[1]) << "a read after a pause reuses the kept connection";
  EXPECT_NE(peers[1], peers[2]) << "a write after a pause goes out on a new one";
  EXPECT_EQ(peers[2], peers[3]) << "the next write at once reuses it";
}

// The web server in front of a MISP closes idle connections within seconds, so each run opens new
// ones: the next connection resumes the session of the last one instead of a full handshake.
TEST_F(TransportTest, ANewConnectionResumesTheTlsSessionOfTheLastOne) {
  Serve(pki_->server_cert(), pki_->server_key(), "", std::chrono::milliseconds(100));
  std::vector<bool> resumed;
  TransportOptions o = Options();
  o.handshake_observer = [&](bool r) { resumed.push_back(r); };
  auto t = HttpsTransport::Create(o, kKey);
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < 3; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the server closes it
    auto r = (*t)->Send(HttpRequest{"GET", "/servers/getVersion", {}, "", true});
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }
  EXPECT_EQ(resumed, (std::vector<bool>{false, true, true}));
}

// Resumption keeps what a full handshake checked: a client certificate the server requires, and the
// pin, checked against the certificate the session was made with.
TEST_F(TransportTest, AResumedSessionKeepsTheClientCertificateAndThePin) {
  Serve(pki_->server_cert(), pki_->server_key(), pki_->client_ca(), std::chrono::milliseconds(100));
  std::vector<bool> resumed;
  TransportOptions o = Options();
  o.tls.client_cert = pki_->client_cert();
  o.tls.client_key = pki_->client_key();
  o.tls.pin_sha256 = pki_->Fingerprint(pki_->server_cert());
  o.handshake_observer = [&](bool r) { resumed.push_back(r); };
  auto t = HttpsTransport::Create(o, kKey);
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < 2; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto r = (*t)->Send(HttpRequest{"GET", "/servers/getVersion", {}, "", true});
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(resumed, (std::vector<bool>{false, true}));
}

// A TLS server asking for client certificates without a session id context, as OpenSSL's own
// s_server-style servers can be: it fails the handshake of any client offering a session. Each
// connection gets one `{}` answer and is closed.
class NoSessionContextServer {
 public:
  explicit NoSessionContextServer(const sgsync::testing::TestPki& pki) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx_, pki.server_cert().c_str()), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx_, pki.server_key().c_str(), SSL_FILETYPE_PEM), 1);
    EXPECT_EQ(SSL_CTX_load_verify_locations(ctx_, pki.client_ca().c_str(), nullptr), 1);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    thread_ = std::thread([this] { Serve(); });
  }
  ~NoSessionContextServer() {
    ::shutdown(listener_.fd(), SHUT_RDWR);  // ends accept()
    thread_.join();
    SSL_CTX_free(ctx_);
  }
  int port() const { return listener_.port(); }
  int handshakes_failed() const { return failed_; }

 private:
  void Serve() {
    for (;;) {
      const int fd = ::accept(listener_.fd(), nullptr, nullptr);
      if (fd < 0) return;
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        std::string got;
        char buf[4096];
        while (got.find("\r\n\r\n") == std::string::npos) {
          const int n = SSL_read(ssl, buf, sizeof buf);
          if (n <= 0) break;
          got.append(buf, static_cast<std::size_t>(n));
        }
        const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        SSL_write(ssl, answer.data(), static_cast<int>(answer.size()));
        SSL_shutdown(ssl);
      } else {
        ++failed_;
      }
      SSL_free(ssl);
      ::close(fd);
    }
  }

  SilentListener listener_;
  SSL_CTX* ctx_ = nullptr;
  std::atomic<int> failed_{0};
  std::thread thread_;
};

// Resumption is only a saving: a server that fails the handshake because a session was offered
// gets a full handshake on a fresh connection, the request goes through, and no session is offered
// to it again.
TEST_F(TransportTest, AServerThatFailsResumptionGetsAFullHandshake) {
  NoSessionContextServer server(*pki_);
  TransportOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(server.port());
  o.tls.ca_file = pki_->ca();
  o.tls.client_cert = pki_->client_cert();
  o.tls.client_key = pki_->client_key();
  o.retry.max_attempts = 1;
  std::vector<bool> resumed;
  o.handshake_observer = [&](bool r) { resumed.push_back(r); };
  auto t = HttpsTransport::Create(o, kKey);
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < 3; ++i) {
    auto r = (*t)->Send(HttpRequest{"POST", "/events/add", {}, "{}", false});
    ASSERT_TRUE(r.ok()) << "request " << i << ": " << r.error().ToString();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(server.handshakes_failed(), 1) << "offered once, then never again to this server";
  EXPECT_EQ(resumed, (std::vector<bool>{false, false, false}));
}

TEST(KeepAliveHeaderTest, OnlyAWholeTimeoutIsRead) {
  EXPECT_EQ(ParseKeepAliveTimeout("timeout=5, max=100"), std::chrono::seconds(5));
  EXPECT_EQ(ParseKeepAliveTimeout("max=100, Timeout=75"), std::chrono::seconds(75));
  EXPECT_EQ(ParseKeepAliveTimeout("max=100"), std::nullopt);
  EXPECT_EQ(ParseKeepAliveTimeout("timeout=abc"), std::nullopt);
  EXPECT_EQ(ParseKeepAliveTimeout("timeout=5abc"), std::nullopt);
  EXPECT_EQ(ParseKeepAliveTimeout(" timeout=5 "), std::chrono::seconds(5));
  EXPECT_EQ(ParseKeepAliveTimeout("timeout=99999999999999999999999"), std::nullopt);
  EXPECT_EQ(ParseKeepAliveTimeout(""), std::nullopt);
}

}  // namespace
}  // namespace sgsync::connector
