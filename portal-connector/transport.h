// portal-connector/transport.h: the one place where sgsync talks HTTP(S) to a MISP.
//
// HttpsTransport sends requests to one MISP base URL over HTTP/1.1 keep-alive connections (a
// bounded pool; one the server closed while it sat idle is set aside before it is reused), with TLS 1.2+
// verified by default (system CA store or a configured CA file, host name checked, SNI sent; a new
// connection resumes the TLS session of an earlier one when the server agrees), optional
// pinning of the server's certificate or public key (SHA-256), an optional client certificate (mTLS),
// deadlines for connecting, the TLS handshake, the response header, body progress and the whole exchange, a
// response size limit, gzip both ways, and retries with exponential backoff and full jitter for requests that
// are safe to repeat.
//
// Writes (events/add, events/edit) are never repeated here: the caller makes them safe (MISP
// refuses a not-newer edit with 403; a HEAD events/view tells whether an add landed).
//
// The API key travels in the Authorization header and nowhere else: no error message and no log
// line built here contains a header value. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sgsync::connector {

struct TlsOptions {
  std::string ca_file;      // PEM bundle; empty: the system store
  std::string pin_sha256;   // hex SHA-256 of the leaf certificate (DER) or of its public key (SPKI DER)
  std::string client_cert;  // PEM, for servers that require a client certificate
  std::string client_key;
};

struct Timeouts {
  std::chrono::milliseconds connect{10000};
  std::chrono::milliseconds handshake{10000};
  std::chrono::milliseconds response_header{30000};
  std::chrono::milliseconds body_progress{30000};  // longest wait between two pieces of the body
  std::chrono::milliseconds total{300000};
};

struct RetryPolicy {
  int max_attempts = 4;  // first try included
  std::chrono::milliseconds base{200};
  std::chrono::milliseconds cap{30000};
  // A peer's Retry-After is honoured up to this long; a longer (or absurd) value is clamped to it,
  // so a hostile peer can neither stall a direction for ever nor overflow the deadline arithmetic.
  std::chrono::seconds max_retry_after{120};
};

// Requests in flight to one MISP, shared by every transport of the process that talks to it (all
// runs of all links: events, sightings, proposals, clusters, analyst data), and that MISP's
// Retry-After: once it answers 429 with one, no request of the process is sent to it (writes
// included) before that time. Thread-safe.
class EndpointLimit {
 public:
  explicit EndpointLimit(int max_in_flight);
  int max_in_flight() const { return max_; }
  int in_flight() const;
  // Takes a slot, first waiting out a hold; false (nothing taken) when `deadline` comes first.
  bool Acquire(std::chrono::steady_clock::time_point deadline);
  void Release();
  // The peer asked for a pause (Retry-After): held until `until`, unless already held longer.
  void HoldUntil(std::chrono::steady_clock::time_point until);

 private:
  const int max_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  std::chrono::steady_clock::time_point hold_until_{};
};

struct TransportOptions {
  std::string base_url;              // "https://misp.example.org" (a path prefix is kept)
  bool allow_insecure_http = false;  // plain http:// only when the link configuration says so
  TlsOptions tls;
  Timeouts timeouts;
  RetryPolicy retry;
  std::size_t max_response_bytes = std::size_t{512} << 20;
  std::size_t max_connections = 4;  // kept alive per transport
  bool gzip_requests = false;       // compress bodies over 1 KB (when the peer announced gzip)
  std::string user_agent;           // sgsync chooses it deliberately: docs/connector.md
  std::string proxy;                // "http://host:port": HTTPS goes through it with CONNECT
  // Called after every attempt (metrics): the method, the target's route ("/events/view", no ids
  // or parameters), the status (0 for a transport failure) and the time it took.
  std::function<void(std::string_view method, std::string_view route, int status, double seconds)> observer;
  // Called after every completed TLS handshake (metrics): whether it resumed an earlier session.
  std::function<void(bool resumed)> handshake_observer;
  // Shared with the other transports to the same MISP (sgsyncd makes one per URL); none: unbounded
  // beyond max_connections.
  std::shared_ptr<EndpointLimit> endpoint_limit;
  // Shared by every transport of the process (sgsyncd's max_requests_in_flight): taken after the
  // endpoint's slot, so a MISP holding its clients back (Retry-After) holds no slot of the others.
  std::shared_ptr<EndpointLimit> process_limit;
};

// "/events/view/5b7d.../deleted[]:1" -> "/events/view": the route of a MISP target, for metrics.
std::string RouteOf(std::string_view target);

// An HTTP-date in the IMF-fixdate form RFC 9110 5.6.7 requires senders to use ("Sun, 06 Nov 1994
// 08:49:37 GMT"), as seconds since the epoch; nullopt for anything else.
std::optional<std::int64_t> ParseHttpDate(std::string_view value);

// A Retry-After header (RFC 9110 10.2.3): delay-seconds ("120") or an HTTP-date ("Sun, 06 Nov 1994
// 08:49:37 GMT", read against `now`), at most `max`. Any number of digits is accepted and clamped
// (never an overflow, never an exception); a date in the past is zero; anything else is nullopt.
std::optional<std::chrono::seconds> ParseRetryAfter(
    std::string_view value, std::chrono::seconds max,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// The `timeout=N` of a Keep-Alive header ("timeout=5, max=100", as Apache sends it with every
// kept-alive answer): how long the server keeps an idle connection. nullopt when it says none or
// anything unreadable (more than a day included).
std::optional<std::chrono::seconds> ParseKeepAliveTimeout(std::string_view header);

// A request body written piece by piece instead of held whole (a 150k-attribute event is 67 MB of
// JSON): `start` begins it afresh (once per attempt) and gives a producer that fills up to `size`
// bytes of `out` and returns how many it wrote, 0 once the body is over. The producer must write
// exactly `length` bytes in all: it is the Content-Length already sent. Never gzip-compressed.
struct StreamedBody {
  std::size_t length = 0;
  std::function<std::function<std::size_t(char* out, std::size_t size)>()> start;
};

struct HttpRequest {
  std::string method;                          // GET, HEAD, POST
  std::string target;                          // path below the base URL, e.g. "/events/index"
  std::map<std::string, std::string> headers;  // besides Authorization/Accept/Content-Type/User-Agent
  std::string body;
  bool idempotent = false;  // safe to repeat: GET, HEAD and MISP's query POSTs
  // When set, the (decoded) body of a 200 answer streams to `body_sink` piece by piece as it
  // arrives, instead of into HttpResponse::body; `body_reset` is called before every attempt so a
  // retried exchange starts the sink afresh. Other statuses always collect their body.
  std::function<Status(std::string_view)> body_sink = nullptr;
  std::function<void()> body_reset = nullptr;
  std::optional<StreamedBody> streamed_body = std::nullopt;  // when set, sent instead of `body`
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;                            // gzip already undone
  int attempts = 1;
};

// The certificate a MISP presented, once verified (host name, chain, pin as configured).
struct PeerCertificate {
  std::string subject;                              // the subject's one-line form
  std::chrono::system_clock::time_point not_after;  // when it expires
};

class HttpsTransport {
 public:
  // Checks the options (URL, files, pin syntax) and loads the TLS material; fails naming the option.
  static Result<std::unique_ptr<HttpsTransport>> Create(TransportOptions options, std::string api_key);
  ~HttpsTransport();

  // Sends one request (retrying when `idempotent` and the failure allows it). HTTP statuses are
  // not errors here: MISP's 4xx carry meaning the client decodes. Errors are transport failures:
  // kUnavailable (DNS, connect, reset), kRefused (TLS verification, with the reason), kTimeout,
  // kLimitExceeded (response too large), kParse (malformed HTTP), kRateLimited (429 after the
  // last attempt is returned as a response, not an error).
  Result<HttpResponse> Send(const HttpRequest& request);

  // Connects and completes the TLS handshake (verification and pin as for any request) and says
  // which certificate the server presented. kInvalidArgument for a plain http:// URL; the
  // handshake's own errors (kRefused with OpenSSL's reason, kTimeout, kUnavailable) otherwise.
  Result<PeerCertificate> InspectCertificate();

  const TransportOptions& options() const;

 private:
  struct Impl;
  explicit HttpsTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgsync::connector
