// httpd/http_server.h: a small HTTP/1.1 server (plain or TLS) on Boost.Beast. misp-sim serves
// MISP's API with it; sgsyncd serves its Prometheus /metrics with it.
//
// One thread per connection, keep-alive (a connection idle for longer than the keep-alive timeout,
// when one is given, is closed, as the web servers in front of MISP do), bodies up to a size limit,
// gzip request bodies decoded (MISP's sync compresses bodies over 1 KB). The handler sees a decoded
// request and returns a response; the server adds nothing but Content-Length, Connection and
// Keep-Alive. Stop() closes the listener and every open connection, then joins their threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"

namespace sgsync::httpd {

struct HttpRequest {
  std::string method;                          // "GET", "POST", "HEAD", ...
  std::string target;                          // path and query as sent
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // decoded (gzip undone)
  std::string peer;                            // "127.0.0.1:54321"

  std::string Header(const std::string& lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, written to the connection byte for byte instead of the fields above, and the
  // connection closes: for a server that must answer what HTTP cannot express (misp-sim's broken
  // answers, misp-sim/sim.h, Fault). The server adds nothing.
  std::optional<std::string> raw;
};

struct TlsFiles {
  std::string cert_chain;  // PEM
  std::string private_key;
  std::string client_ca;  // when set, clients must present a certificate signed by it
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Listens on host:port (port 0 picks a free one). Fails naming the address. `keep_alive_timeout`:
  // how long a connection may wait for its next request after an answer before the server closes
  // it (zero: as long as the client keeps it), said in each kept-alive answer as Apache says it
  // (`Keep-Alive: timeout=<whole seconds>`) when it is a second or more.
  static Result<std::unique_ptr<HttpServer>> Start(
      const std::string& host, std::uint16_t port, Handler handler,
      std::optional<TlsFiles> tls = std::nullopt, std::size_t max_body_bytes = std::size_t{64} << 20,
      std::chrono::milliseconds keep_alive_timeout = std::chrono::milliseconds::zero());
  ~HttpServer();
  void Stop();
  std::uint16_t port() const { return port_; }

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl, std::uint16_t port);
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_;
};

}  // namespace sgsync::httpd
