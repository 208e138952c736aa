#include "portal-connector/transport.h"

#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <charconv>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "common/encoding.h"
#include "portal-connector/socket_stream.h"

namespace sgsync::connector {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

namespace {

// Incremental gzip decoding: pieces in, pieces out.
class Inflater {
 public:
  Inflater() { inflateInit2(&zs_, 15 + 32); }
  ~Inflater() { inflateEnd(&zs_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  bool done() const { return done_; }
  template <typename Sink>
  Status Feed(std::string_view in, Sink& sink) {
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs_.avail_in = static_cast<uInt>(in.size());
    char out[65536];
    while (zs_.avail_in > 0 && !done_) {
      zs_.next_out = reinterpret_cast<Bytef*>(out);
      zs_.avail_out = sizeof out;
      int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        return Fail(ErrorCode::kParse, "the gzip-encoded response body is corrupt");
      }
      done_ = rc == Z_STREAM_END;
      std::size_t n = sizeof out - zs_.avail_out;
      if (n > 0) SGSYNC_TRY_STATUS(sink(std::string_view(out, n)));
      if (rc == Z_BUF_ERROR && n == 0) break;
    }
    return {};
  }

 private:
  z_stream zs_{};
  bool done_ = false;
};

// One kept-alive connection, used by one thread at a time.
struct Connection {
  // Beast reads as much as the buffer's free capacity, at least 512 bytes: an empty buffer read a
  // 16 KiB TLS record 512 bytes at a time (32 reads a record; a push took 30% fewer perf samples
  // once reserved, docs/performance.md). Reserved, a read takes a whole record.
  Connection() { buffer.reserve(kReadBufferBytes); }
  static constexpr std::size_t kReadBufferBytes = 64 * 1024;
  detail::SocketStream stream;
  beast::flat_buffer buffer;
  // Set when the connection goes back to the pool: how long it may wait there, from the server's
  // last `Keep-Alive: timeout=N` (Apache sends one with every kept-alive answer), and since when.
  std::optional<Clock::duration> may_idle;
  Clock::time_point idle_since{};
  bool session_remembered = false;  // its TLS session was kept for the transport's next connection
  // The next operation (a Beast read or write of several socket operations) ends within `limit`.
  void Within(Clock::duration limit) { stream.set_deadline(Clock::now() + limit); }
};

// A body goes out and comes in through a buffer of this size. Left uninitialised: zeroing it was
// 64 KiB of memset for every request (docs/performance.md).
constexpr std::size_t kBodyPieceBytes = 64 * 1024;

// A kept connection is not reused once it has been idle for the server's announced keep-alive
// timeout less this: the request must reach the server before the server closes it.
constexpr Clock::duration kKeepAliveMargin = std::chrono::seconds(1);

// A write goes out only on a connection used this recently, or on a new one. A server that
// announces no keep-alive timeout (nginx by default) can close an idle connection at the moment a
// request is sent on it, and a write is never repeated; no web server's default timeout is this
// short (Apache 5 s, nginx 75 s). A burst of writes reuses its connections; after a pause the first
// writes connect anew, with a resumed TLS session.
constexpr Clock::duration kWriteMaxIdle = std::chrono::seconds(2);

// A header value or list member without the spaces and tabs around it (RFC 9110 5.6.3, OWS).
std::string_view TrimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace

struct HttpsTransport::Impl {
  TransportOptions options;
  std::string api_key;
  std::string scheme, host, port, prefix;
  std::string proxy_host, proxy_port;
  std::unique_ptr<asio::ssl::context> tls_ctx;
  std::mutex mu;
  std::vector<std::unique_ptr<Connection>> idle;
  // The TLS session of the latest connection that carried an exchange, offered to the next new
  // one. The web server in front of a MISP closes idle connections within seconds (Apache: 5 s), so
  // every run of a link opens new ones; a resumed handshake skips the certificate, its chain check
  // and the key exchange's signature. One transport talks to one server with one set of TLS
  // options, so a session never crosses to another server.
  std::shared_ptr<SSL_SESSION> session;
  bool offer_sessions = true;  // false once the server failed a handshake offering one
  std::mt19937_64 rng{std::random_device{}()};

  std::string Where(const std::string& target) const { return options.base_url + target; }

  // `offer_session`: offer the remembered session for resumption (InspectCertificate does not: it
  // must see the certificate the server presents now).
  Result<std::unique_ptr<Connection>> Connect(const std::string& target, Clock::time_point deadline,
                                              bool offer_session = true) {
    auto c = std::make_unique<Connection>();
    const bool via_proxy = !proxy_host.empty();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* found = nullptr;
    const int gai = ::getaddrinfo(via_proxy ? proxy_host.c_str() : host.c_str(),
                                  via_proxy ? proxy_port.c_str() : port.c_str(), &hints, &found);
    if (gai != 0)
      return Fail(ErrorCode::kUnavailable, "cannot resolve " + host + ": " + ::gai_strerror(gai),
                  Where(target));
    const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
    boost::system::error_code ec = c->stream.Connect(
        addresses.get(),
        Clock::now() + std::min<Clock::duration>(options.timeouts.connect, deadline - Clock::now()));
    if (ec == beast::error::timeout) return Fail(ErrorCode::kTimeout, "connecting timed out", Where(target));
    if (ec) {
      std::string to = via_proxy ? "the proxy " + proxy_host + ":" + proxy_port : host + ":" + port;
      return Fail(ErrorCode::kUnavailable, "cannot connect to " + to + ": " + ec.message(), Where(target));
    }
    if (via_proxy) SGSYNC_TRY_STATUS(Tunnel(*c, target, deadline));
    if (!tls_ctx) return c;

    // SNI, host name verification, and the reason OpenSSL gives when verification fails.
    std::string verify_reason;
    std::shared_ptr<SSL_SESSION> offered = offer_session ? RememberedSession() : nullptr;
    ec = c->stream.Handshake(
        tls_ctx->native_handle(), host,
        Clock::now() + std::min<Clock::duration>(options.timeouts.handshake, deadline - Clock::now()),
        &verify_reason, offered.get());
    if (ec == beast::error::timeout)
      return Fail(ErrorCode::kTimeout, "the TLS handshake timed out", Where(target));
    if (ec && offered) {
      // A server can fail a handshake because of the offered session: OpenSSL does when it asks for
      // client certificates without a session id context. Resumption is only a saving, so the
      // session is dropped and the connection made again with a full handshake, which decides.
      spdlog::debug("{}: the TLS handshake offering a session failed ({}); trying a full handshake",
                    options.base_url, ec.message());
      StopOfferingSessions();
      return Connect(target, deadline, false);
    }
    if (ec) {
      std::string why = verify_reason.empty() ? ec.message() : verify_reason;
      return Fail(ErrorCode::kRefused, "TLS verification failed: " + why, Where(target));
    }
    if (options.handshake_observer) options.handshake_observer(SSL_session_reused(c->stream.ssl()) == 1);
    // A resumed session keeps the certificate its full handshake verified: the pin is checked
    // against that one, which passed this check when it was first seen.
    if (!options.tls.pin_sha256.empty()) {
      X509* cert = SSL_get1_peer_certificate(c->stream.ssl());
      if (cert == nullptr)
        return Fail(ErrorCode::kRefused, "the server sent no certificate to check the pin against",
                    Where(target));
      unsigned char* der = nullptr;
      int n = i2d_X509(cert, &der);
      std::string cert_hash =
          n > 0 ? Sha256Hex(std::string_view(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n)))
                : "";
      OPENSSL_free(der);
      der = nullptr;
      n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
      std::string key_hash =
          n > 0 ? Sha256Hex(std::string_view(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n)))
                : "";
      OPENSSL_free(der);
      X509_free(cert);
      std::string pin = options.tls.pin_sha256;
      for (auto& ch : pin) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (pin != cert_hash && pin != key_hash) {
        return Fail(
            ErrorCode::kRefused,
            "TLS verification failed: certificate pin mismatch (the server's certificate SHA-256 is " +
                cert_hash + ")",
            Where(target));
      }
    }
    return c;
  }

  // HTTP CONNECT through the proxy: the TLS session then runs end to end with the MISP.
  Status Tunnel(Connection& c, const std::string& target, Clock::time_point deadline) {
    boost::system::error_code ec;
    http::request<http::empty_body> req{http::verb::connect, host + ":" + port, 11};
    req.set(http::field::host, host + ":" + port);
    c.Within(std::min<Clock::duration>(options.timeouts.connect, deadline - Clock::now()));
    http::write(c.stream, req, ec);
    if (ec)
      return Fail(ErrorCode::kUnavailable, "the proxy closed the connection: " + ec.message(), Where(target));
    http::response_parser<http::empty_body> parser;
    parser.skip(true);  // a CONNECT answer has no body; what follows belongs to the tunnel
    http::read_header(c.stream, c.buffer, parser, ec);
    if (ec) return Fail(ErrorCode::kUnavailable, "no answer from the proxy: " + ec.message(), Where(target));
    if (parser.get().result_int() != 200) {
      return Fail(ErrorCode::kUnavailable,
                  "the proxy refused the tunnel to " + host + ":" + port + " (HTTP " +
                      std::to_string(parser.get().result_int()) + ")",
                  Where(target));
    }
    return {};
  }

  // A kept-alive connection, unless the server closed each one while it was idle: the web server in
  // front of a MISP closes one after a few seconds without a request (Apache's KeepAliveTimeout is 5 s,
  // nginx's keepalive_timeout 75 s), and a write sent on it would fail, since writes are not repeated.
  // For a write, none idle longer than kWriteMaxIdle.
  std::unique_ptr<Connection> TakeIdle(bool for_write) {
    std::vector<std::unique_ptr<Connection>> closed;  // freed outside the lock
    std::lock_guard lock(mu);
    const auto now = Clock::now();
    while (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      // One the server said it would keep no longer (less a margin for the request's way there,
      // so that its close and the request do not cross) is not tried. The pool's last is the most
      // recently used: once one is too old for a write, all are.
      const bool expired = (c->may_idle && now - c->idle_since >= *c->may_idle - kKeepAliveMargin) ||
                           (for_write && now - c->idle_since > kWriteMaxIdle);
      if (!expired && c->stream.ReadyForReuse()) return c;
      closed.push_back(std::move(c));
    }
    if (!closed.empty()) {
      spdlog::debug(
          "{}: {} kept-alive connection(s) closed by the server, past its keep-alive timeout or "
          "idle too long for a write: set aside",
          options.base_url, closed.size());
    }
    return nullptr;
  }

  std::shared_ptr<SSL_SESSION> RememberedSession() {
    std::lock_guard lock(mu);
    return offer_sessions ? session : nullptr;
  }

  // After a connection's first exchange: in TLS 1.3 the server's session tickets arrive after the
  // handshake and are read with the first response, so this is the first moment the session can be
  // resumed. A copy is kept: OpenSSL marks a connection's own session not resumable when the
  // connection is freed without a close_notify, as every connection the server closes while idle is.
  void RememberSession(Connection& c) {
    SSL* ssl = c.stream.ssl();
    if (c.session_remembered || ssl == nullptr) return;
    SSL_SESSION* current = SSL_get0_session(ssl);
    if (current == nullptr || SSL_SESSION_is_resumable(current) != 1) return;
    c.session_remembered = true;
    std::shared_ptr<SSL_SESSION> copy(SSL_SESSION_dup(current), SSL_SESSION_free);
    if (!copy) return;
    std::lock_guard lock(mu);
    if (offer_sessions) session = std::move(copy);
  }

  // A server that failed a resumption is not offered another session by this transport: each full
  // handshake makes a new one, and offering it would fail every other connection.
  void StopOfferingSessions() {
    std::lock_guard lock(mu);
    offer_sessions = false;
    session.reset();
  }

  void GiveBack(std::unique_ptr<Connection> c) {
    c->idle_since = Clock::now();
    std::lock_guard lock(mu);
    if (idle.size() < options.max_connections) idle.push_back(std::move(c));
  }

  template <typename Body>
  void SetHeaders(http::request<Body>& out, const HttpRequest& req) {
    out.set(http::field::host, host);
    out.set(http::field::authorization, api_key);
    out.set(http::field::accept, "application/json");
    out.set(http::field::content_type, "application/json");
    out.set(http::field::accept_encoding, "gzip");
    if (!options.user_agent.empty()) out.set(http::field::user_agent, options.user_agent);
    for (const auto& [k, v] : req.headers) out.set(k, v);
    out.keep_alive(true);
  }

  template <typename Remaining>
  Status WriteWhole(Connection& c, const HttpRequest& req, Remaining remaining) {
    boost::system::error_code ec;
    http::request<http::string_body> out{http::string_to_verb(req.method), prefix + req.target, 11};
    SetHeaders(out, req);
    if (options.gzip_requests && req.body.size() > 1024) {
      out.set(http::field::content_encoding, "gzip");
      out.body() = GzipCompress(req.body);
    } else {
      out.body() = req.body;
    }
    out.prepare_payload();
    c.Within(std::min<Clock::duration>(options.timeouts.response_header, remaining()));
    http::write(c.stream, out, ec);
    if (ec) return MapError(ec, req.target, "sending the request");
    return {};
  }

  // The header with its Content-Length, then the body as the producer makes it, 64 KiB at a time,
  // each piece under the body-progress deadline.
  template <typename Remaining>
  Status WriteStreamed(Connection& c, const HttpRequest& req, Remaining remaining) {
    boost::system::error_code ec;
    http::request<http::buffer_body> out{http::string_to_verb(req.method), prefix + req.target, 11};
    SetHeaders(out, req);
    out.content_length(req.streamed_body->length);
    out.body().data = nullptr;
    out.body().more = true;
    http::request_serializer<http::buffer_body> sr{out};
    c.Within(std::min<Clock::duration>(options.timeouts.response_header, remaining()));
    http::write_header(c.stream, sr, ec);
    if (ec) return MapError(ec, req.target, "sending the request header");
    auto produce = req.streamed_body->start();
    const auto buf = std::make_unique_for_overwrite<char[]>(kBodyPieceBytes);
    std::size_t sent = 0;
    for (;;) {
      std::size_t n = produce(buf.get(), kBodyPieceBytes);
      sent += n;
      if (sent > req.streamed_body->length || (n == 0 && sent != req.streamed_body->length)) {
        // The producer and the length it announced disagree: the peer would read a broken body.
        throw std::logic_error("a streamed request body of " + std::to_string(sent) +
                               " bytes where its Content-Length said " +
                               std::to_string(req.streamed_body->length));
      }
      out.body().data = n > 0 ? buf.get() : nullptr;
      out.body().size = n;
      out.body().more = n > 0;
      c.Within(std::min<Clock::duration>(options.timeouts.body_progress, remaining()));
      http::write(c.stream, sr, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        return MapError(ec, req.target, "sending the request body (" + std::to_string(sent) + " of " +
                                            std::to_string(req.streamed_body->length) + " bytes)");
      }
      if (n == 0) return {};
    }
  }

  // One exchange. `reused` tells whether the connection came from the pool.
  Result<HttpResponse> Exchange(Connection& c, const HttpRequest& req, Clock::time_point deadline,
                                bool* keep) {
    boost::system::error_code ec;
    auto remaining = [&] { return deadline - Clock::now(); };
    SGSYNC_TRY_STATUS(req.streamed_body ? WriteStreamed(c, req, remaining) : WriteWhole(c, req, remaining));
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(options.max_response_bytes);
    parser.header_limit(64 * 1024);
    if (req.method == "HEAD") parser.skip(true);
    http::read_header(c.stream, c.buffer, parser, ec);
    if (ec) return MapError(ec, req.target, "waiting for the response header");
    HttpResponse r;
    r.status = static_cast<int>(parser.get().result_int());
    for (const auto& f : parser.get()) {
      std::string name(f.name_string());
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      r.headers[name] = std::string(f.value());
    }
    // The body goes piece by piece to the sink (a 200 with a sink) or into r.body, gzip undone on
    // the way, so a 50 MB event is never held twice.
    const bool to_sink = req.body_sink && r.status == 200;
    std::size_t delivered = 0;
    auto deliver = [&](std::string_view piece) -> Status {
      delivered += piece.size();
      if (delivered > options.max_response_bytes) {
        return Fail(ErrorCode::kLimitExceeded,
                    "the decoded response exceeds " + std::to_string(options.max_response_bytes) + " bytes",
                    Where(req.target));
      }
      if (to_sink) return req.body_sink(piece);
      r.body.append(piece);
      return {};
    };
    std::optional<Inflater> inflater;
    if (r.headers["content-encoding"] == "gzip") inflater.emplace();
    std::size_t received = 0;
    const auto buf = std::make_unique_for_overwrite<char[]>(kBodyPieceBytes);
    while (!parser.is_done()) {
      if (remaining() <= Clock::duration::zero()) {
        return Fail(ErrorCode::kTimeout, "the exchange took longer than its total deadline",
                    Where(req.target));
      }
      parser.get().body().data = buf.get();
      parser.get().body().size = kBodyPieceBytes;
      c.Within(std::min<Clock::duration>(options.timeouts.body_progress, remaining()));
      http::read_some(c.stream, c.buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      std::size_t n = kBodyPieceBytes - parser.get().body().size;
      received += n;
      if (ec) {
        std::string progress = parser.content_length()
                                   ? " (" + std::to_string(received) + " of " +
                                         std::to_string(*parser.content_length()) + " bytes)"
                                   : "";
        return MapError(ec, req.target, "reading the response body" + progress);
      }
      std::string_view piece(buf.get(), n);
      if (inflater) {
        SGSYNC_TRY_STATUS(inflater->Feed(piece, deliver));
      } else if (n > 0) {
        SGSYNC_TRY_STATUS(deliver(piece));
      }
    }
    if (inflater && !inflater->done()) {
      return Fail(ErrorCode::kParse, "the gzip-encoded response body is truncated", Where(req.target));
    }
    *keep = parser.get().keep_alive();
    auto announced = r.headers.find("keep-alive");
    c.may_idle = announced == r.headers.end() ? std::nullopt : ParseKeepAliveTimeout(announced->second);
    return r;
  }

  Error MapError(boost::system::error_code ec, const std::string& target, const std::string& while_doing) {
    if (ec == beast::error::timeout)
      return Fail(ErrorCode::kTimeout, "timed out " + while_doing, Where(target));
    if (ec == http::error::body_limit) {
      return Fail(
          ErrorCode::kLimitExceeded,
          "the response is larger than the limit of " + std::to_string(options.max_response_bytes) + " bytes",
          Where(target));
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == http::error::partial_message || ec == asio::ssl::error::stream_truncated) {
      return Fail(ErrorCode::kUnavailable, "the connection was closed while " + while_doing, Where(target));
    }
    if (ec.category() == http::make_error_code(http::error::bad_version).category()) {
      return Fail(ErrorCode::kParse, "malformed HTTP response: " + ec.message(), Where(target));
    }
    return Fail(ErrorCode::kUnavailable, ec.message() + " while " + while_doing, Where(target));
  }

  Result<HttpResponse> Once(const HttpRequest& req, Clock::time_point deadline) {
    std::unique_ptr<Connection> c = TakeIdle(/*for_write=*/!req.idempotent);
    bool reused = c != nullptr;
    if (!c) {
      SGSYNC_TRY(c, Connect(req.target, deadline));
    }
    bool keep = false;
    Result<HttpResponse> r = Exchange(*c, req, deadline, &keep);
    // A kept-alive connection the server closed just as it was taken (TakeIdle sets aside those it
    // had closed before): one fresh try for a safe request, because nothing was read back.
    if (!r.ok() && reused && r.error().code == ErrorCode::kUnavailable &&
        r.error().message.find("waiting for the response header") != std::string::npos && req.idempotent) {
      SGSYNC_TRY(c, Connect(req.target, deadline));
      r = Exchange(*c, req, deadline, &keep);
    }
    if (r.ok()) RememberSession(*c);
    if (r.ok() && keep) GiveBack(std::move(c));
    return r;
  }

  std::chrono::milliseconds Backoff(int attempt) {
    std::int64_t cap = options.retry.cap.count();
    std::int64_t ceiling = options.retry.base.count();
    for (int i = 1; i < attempt && ceiling < cap; ++i) ceiling *= 2;
    ceiling = std::min(ceiling, cap);
    std::lock_guard lock(mu);
    return std::chrono::milliseconds(
        std::uniform_int_distribution<std::int64_t>(0, ceiling)(rng));  // full jitter
  }
};

HttpsTransport::HttpsTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpsTransport::~HttpsTransport() = default;
const TransportOptions& HttpsTransport::options() const { return impl_->options; }

Result<std::unique_ptr<HttpsTransport>> HttpsTransport::Create(TransportOptions options,
                                                               std::string api_key) {
  auto impl = std::make_unique<Impl>();
  auto url = boost::urls::parse_uri(options.base_url);
  if (!url) return Fail(ErrorCode::kInvalidArgument, "not a URL: " + url.error().message(), "url");
  impl->scheme = std::string(url->scheme());
  impl->host = std::string(url->host());
  impl->port = url->has_port() ? std::string(url->port()) : impl->scheme == "https" ? "443" : "80";
  impl->prefix = std::string(url->encoded_path());
  while (!impl->prefix.empty() && impl->prefix.back() == '/') impl->prefix.pop_back();
  if (impl->scheme == "http") {
    if (!options.allow_insecure_http) {
      return Fail(ErrorCode::kInvalidArgument,
                  "plain http:// needs allow_insecure_http = true in the link configuration", "url");
    }
  } else if (impl->scheme != "https") {
    return Fail(ErrorCode::kInvalidArgument, "expected an https:// URL, found \"" + impl->scheme + "://\"",
                "url");
  } else {
    impl->tls_ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    boost::system::error_code ec;
    SSL_CTX_set_min_proto_version(impl->tls_ctx->native_handle(), TLS1_2_VERSION);
    impl->tls_ctx->set_verify_mode(asio::ssl::verify_peer);
    if (options.tls.ca_file.empty()) {
      impl->tls_ctx->set_default_verify_paths(ec);
    } else {
      impl->tls_ctx->load_verify_file(options.tls.ca_file, ec);
    }
    if (ec)
      return Fail(ErrorCode::kInvalidArgument, "cannot load the CA certificates: " + ec.message(),
                  "tls.ca_file");
    if (!options.tls.client_cert.empty()) {
      impl->tls_ctx->use_certificate_chain_file(options.tls.client_cert, ec);
      if (ec)
        return Fail(ErrorCode::kInvalidArgument, "cannot load the client certificate: " + ec.message(),
                    "tls.client_cert");
      impl->tls_ctx->use_private_key_file(options.tls.client_key, asio::ssl::context::pem, ec);
      if (ec)
        return Fail(ErrorCode::kInvalidArgument, "cannot load the client key: " + ec.message(),
                    "tls.client_key");
    }
    const std::string& pin = options.tls.pin_sha256;
    if (!pin.empty() && (pin.size() != 64 || !std::all_of(pin.begin(), pin.end(), [](char ch) {
                           return std::isxdigit(static_cast<unsigned char>(ch));
                         }))) {
      return Fail(ErrorCode::kInvalidArgument, "expected 64 hex digits (a SHA-256)", "tls.pin_sha256");
    }
  }
  if (!options.proxy.empty()) {
    auto p = boost::urls::parse_uri(options.proxy);
    if (!p || p->scheme() != "http" || p->host().empty()) {
      return Fail(ErrorCode::kInvalidArgument, "expected http://host:port, found \"" + options.proxy + "\"",
                  "proxy");
    }
    impl->proxy_host = std::string(p->host());
    impl->proxy_port = p->has_port() ? std::string(p->port()) : "80";
  }
  impl->options = std::move(options);
  impl->api_key = std::move(api_key);
  return std::unique_ptr<HttpsTransport>(new HttpsTransport(std::move(impl)));
}

std::string RouteOf(std::string_view target) {
  // MISP's routes are /controller/action; what follows is ids, uuids and named parameters.
  target = target.substr(0, target.find_first_of("?#"));
  std::string out;
  int segments = 0;
  std::size_t i = 0;
  while (i < target.size() && segments < 2) {
    if (target[i] == '/') {
      ++i;
      continue;
    }
    std::size_t end = target.find('/', i);
    std::string_view seg = target.substr(i, end == std::string_view::npos ? target.size() - i : end - i);
    bool word = !seg.empty() && std::all_of(seg.begin(), seg.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.';
    });
    if (!word) break;
    out += '/';
    out += seg.substr(0, seg.find('.'));  // events/index.json -> events/index
    ++segments;
    i += seg.size();
  }
  return out.empty() ? "/" : out;
}

EndpointLimit::EndpointLimit(int max_in_flight) : max_(std::max(1, max_in_flight)) {}

int EndpointLimit::in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

bool EndpointLimit::Acquire(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  while (true) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    if (now < hold_until_) {
      cv_.wait_until(lock, std::min(hold_until_, deadline));
      continue;
    }
    if (in_flight_ < max_) {
      ++in_flight_;
      return true;
    }
    cv_.wait_until(lock, deadline);
  }
}

void EndpointLimit::Release() {
  {
    std::lock_guard lock(mu_);
    --in_flight_;
  }
  cv_.notify_one();
}

void EndpointLimit::HoldUntil(std::chrono::steady_clock::time_point until) {
  std::lock_guard lock(mu_);
  hold_until_ = std::max(hold_until_, until);
}

Result<PeerCertificate> HttpsTransport::InspectCertificate() {
  if (!impl_->tls_ctx)
    return Fail(ErrorCode::kInvalidArgument, "plain http: no certificate to inspect",
                impl_->options.base_url);
  SGSYNC_TRY(auto c, impl_->Connect("/", Clock::now() + impl_->options.timeouts.total,
                                    /*offer_session=*/false));
  X509* cert = SSL_get1_peer_certificate(c->stream.ssl());
  if (cert == nullptr)
    return Fail(ErrorCode::kRefused, "the server sent no certificate", impl_->options.base_url);
  PeerCertificate out;
  char subject[512];
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  out.subject = subject;
  int days = 0, seconds = 0;
  if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert)) == 1) {
    out.not_after =
        std::chrono::system_clock::now() + std::chrono::hours(24) * days + std::chrono::seconds(seconds);
  }
  X509_free(cert);
  return out;
}

std::optional<std::int64_t> ParseHttpDate(std::string_view value) {
  std::tm tm{};
  const std::string text(value);
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value, std::chrono::seconds max,
                                                    std::chrono::system_clock::time_point now) {
  value = TrimOws(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::int64_t n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && n > max.count())) return max;
    if (ec != std::errc() || ptr != value.data() + value.size()) return std::nullopt;
    return std::chrono::seconds(n);
  }
  std::optional<std::int64_t> date = ParseHttpDate(value);
  if (!date) return std::nullopt;
  const std::int64_t at = *date;
  std::int64_t from = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (at <= from) return std::chrono::seconds(0);
  return std::chrono::seconds(std::min<std::int64_t>(at - from, max.count()));
}

std::optional<std::chrono::seconds> ParseKeepAliveTimeout(std::string_view header) {
  for (std::size_t at = 0; at < header.size();) {
    std::size_t end = header.find(',', at);
    if (end == std::string_view::npos) end = header.size();
    std::string_view part = TrimOws(header.substr(at, end - at));
    if (part.size() > 8 && AsciiLower(part.substr(0, 8)) == "timeout=") {
      std::int64_t seconds = 0;
      const char* end_of_value = part.data() + part.size();
      auto [ptr, ec] = std::from_chars(part.data() + 8, end_of_value, seconds);
      if (ec == std::errc() && ptr == end_of_value && seconds >= 0 && seconds <= 24 * 3600)
        return std::chrono::seconds(seconds);
      return std::nullopt;
    }
    at = end + 1;
  }
  return std::nullopt;
}

Result<HttpResponse> HttpsTransport::Send(const HttpRequest& request) {
  const auto deadline = Clock::now() + impl_->options.timeouts.total;
  const int attempts = request.idempotent ? std::max(1, impl_->options.retry.max_attempts) : 1;
  for (int attempt = 1;; ++attempt) {
    const auto started = Clock::now();
    if (request.body_reset) request.body_reset();
    EndpointLimit* limit = impl_->options.endpoint_limit.get();
    if (limit != nullptr && !limit->Acquire(deadline)) {
      return Fail(
          ErrorCode::kRateLimited,
          "no request slot for this MISP before the deadline (requests in flight, or its Retry-After)",
          impl_->Where(request.target));
    }
    EndpointLimit* process = impl_->options.process_limit.get();
    if (process != nullptr && !process->Acquire(deadline)) {
      if (limit != nullptr) limit->Release();
      return Fail(ErrorCode::kRateLimited,
                  "no request slot before the deadline: sgsyncd's requests in flight to all MISPs "
                  "(max_requests_in_flight) were all taken",
                  impl_->Where(request.target));
    }
    Result<HttpResponse> r = impl_->Once(request, deadline);
    if (process != nullptr) process->Release();
    if (limit != nullptr) limit->Release();
    // Method, URL, outcome and time only: never a header (the API key is one) or a body.
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    if (impl_->options.observer) {
      impl_->options.observer(request.method, RouteOf(request.target), r.ok() ? r->status : 0,
                              std::chrono::duration<double>(Clock::now() - started).count());
    }
    if (r.ok()) {
      spdlog::debug("{} {}{} -> {} in {} ms (attempt {})", request.method, impl_->options.base_url,
                    request.target, r->status, ms, attempt);
    } else {
      spdlog::debug("{} {}{} failed in {} ms (attempt {}): {}", request.method, impl_->options.base_url,
                    request.target, ms, attempt, r.error().ToString());
    }
    if (r.ok() && r->status == 429 && limit != nullptr) {
      // Every request of the process to this MISP waits it out (writes too), not only this one.
      if (auto it = r->headers.find("retry-after"); it != r->headers.end()) {
        if (auto asked = ParseRetryAfter(it->second, impl_->options.retry.max_retry_after))
          limit->HoldUntil(Clock::now() + *asked);
      }
    }
    bool last = attempt >= attempts || Clock::now() >= deadline;
    std::chrono::milliseconds wait = impl_->Backoff(attempt);
    if (r.ok()) {
      r->attempts = attempt;
      bool retryable = r->status >= 500 || r->status == 429;
      if (!retryable || last) return r;
      if (r->status == 429) {
        auto it = r->headers.find("retry-after");
        if (it != r->headers.end()) {
          auto asked = ParseRetryAfter(it->second, impl_->options.retry.max_retry_after);
          if (!asked) {
            spdlog::warn("{}{}: ignoring an unreadable Retry-After header", impl_->options.base_url,
                         request.target);
          } else {
            wait = std::max(wait, std::chrono::duration_cast<std::chrono::milliseconds>(*asked));
          }
        }
      }
    } else {
      ErrorCode code = r.error().code;
      bool retryable = code == ErrorCode::kUnavailable || code == ErrorCode::kTimeout;
      if (!retryable || last) return r;
    }
    // `wait` is bounded (backoff cap, clamped Retry-After), so this cannot overflow.
    if (wait >= deadline - Clock::now()) return r;
    std::this_thread::sleep_for(wait);
  }
}

}  // namespace sgsync::connector
