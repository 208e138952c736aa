// Fuzzes the connector's HTTP response path end to end: the input is what a MISP answers, written
// raw onto a real loopback socket by a one-shot server thread, and read by the real transport and
// MispClient (status line, headers, chunked and gzip bodies, Retry-After, ETag, X-Result-Count,
// the JSON codec behind). The first byte chooses the call, so each answer is read as an index
// page, an event view, a version, a write's answer or a sightings list. Whatever arrives, the
// client returns a value or an Error.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

#include "portal-connector/misp_client.h"
#include "portal-connector/transport.h"

namespace {

using namespace sgsync;

struct Server {
  int fd = -1;
  int port = 0;
  int wake[2] = {-1, -1};  // the client's call returned: the server stops serving this input
  Server() {
    if (::pipe(wake) != 0) std::abort();
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      std::abort();  // the harness itself failed, not the code under test
    port = ntohs(a.sin_port);
  }
  // Answers every connection with `response` (a real peer answers alike when asked again: a
  // write's follow-up HEAD, a retry) until `done`, when the client call has returned.
  void Serve(const std::string& response, const std::atomic<bool>& done) const {
    while (true) {
      pollfd p[2] = {{fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[0].revents & POLLIN) {
        AnswerOne(response);
      } else if (done) {
        char b;
        while (::read(wake[0], &b, 1) != 1) {
        }
        return;
      }
    }
  }
  void Finish(std::atomic<bool>& done) const {
    done = true;
    if (::write(wake[1], "x", 1) != 1) std::abort();
  }
  // Reads one request's head, answers and closes: no keep-alive, so every answer meets a fresh
  // connection and the transport's EOF handling.
  void AnswerOne(const std::string& response) const {
    int c = ::accept(fd, nullptr, nullptr);
    if (c < 0) return;
    // The whole request is read (head and Content-Length body) so that closing sends FIN, not the
    // RST that unread bytes would cause; the client may keep its end open, so nothing waits on it.
    std::string in;
    char buf[4096];
    std::size_t need = std::string::npos;
    while (need == std::string::npos || in.size() < need) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<std::size_t>(n));
      std::size_t end = in.find("\r\n\r\n");
      if (need == std::string::npos && end != std::string::npos) {
        std::string head = in.substr(0, end);
        for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::size_t at = head.find("content-length:");
        need = end + 4 + (at == std::string::npos ? 0 : std::strtoul(head.c_str() + at + 15, nullptr, 10));
      }
    }
    std::size_t off = 0;
    while (off < response.size()) {
      ssize_t n = ::send(c, response.data() + off, response.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(c);
  }
};

const Server& TheServer() {
  static const Server* s = new Server();
  return *s;
}

std::unique_ptr<connector::MispClient> Client() {
  connector::TransportOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(TheServer().port);
  o.allow_insecure_http = true;
  o.retry.max_attempts = 1;  // one answer per input; retries are the transport's own tests' business
  o.timeouts.connect = o.timeouts.handshake = o.timeouts.response_header = std::chrono::milliseconds(2000);
  o.timeouts.body_progress = std::chrono::milliseconds(2000);
  o.timeouts.total = std::chrono::milliseconds(5000);
  o.max_response_bytes = 1 << 20;
  o.max_connections = 1;
  auto t = connector::HttpsTransport::Create(std::move(o), std::string(40, 'k'));
  if (!t.ok()) std::abort();
  misp::JsonLimits limits;
  limits.max_memory_bytes = 64 << 20;
  return std::make_unique<connector::MispClient>(std::move(*t), limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static auto client = Client();
  std::string response(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::atomic<bool> done{false};
  std::thread server([&response, &done] { TheServer().Serve(response, done); });
  const std::string uuid = "5b7d1c2e-0c3c-4b5e-9f5a-0d6a3c1e2f00";
  switch (data[0] % 6) {
    case 0:
      (void)client->EventIndex(boost::json::object{{"minimal", 1}}, "\"etag\"");
      break;
    case 1:
      (void)client->ViewEvent(uuid, connector::ViewForm{});
      break;
    case 2:
      (void)client->GetVersion();
      break;
    case 3:
      (void)client->AddEvent(boost::json::object{{"Event", boost::json::object{{"uuid", uuid}}}});
      break;
    case 4:
      (void)client->SightingsForEvents({uuid});
      break;
    default:
      (void)client->WhoAmI();
      break;
  }
  TheServer().Finish(done);
  server.join();
  return 0;
}
