#include "httpd/http_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cerrno>

#include "common/encoding.h"

namespace sgsync::httpd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

struct HttpServer::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  Handler handler;
  std::optional<asio::ssl::context> tls;
  std::size_t max_body = 0;
  std::chrono::milliseconds keep_alive_timeout{0};
  std::thread accept_thread;
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::vector<std::thread> workers;
  std::vector<std::weak_ptr<tcp::socket>> sockets;

  void AcceptLoop() {
    while (!stopping) {
      auto socket = std::make_shared<tcp::socket>(io);
      boost::system::error_code ec;
      acceptor.accept(*socket, ec);
      if (ec || stopping) break;
      std::lock_guard lock(mu);
      sockets.push_back(socket);
      workers.emplace_back([this, socket] { Serve(socket); });
    }
  }

  // Whether the client sends nothing more within the keep-alive timeout after an answer: the
  // connection is then closed, as Apache (KeepAliveTimeout) and nginx (keepalive_timeout) close theirs.
  bool IdleTooLong(tcp::socket& socket, const beast::flat_buffer& buffer) const {
    if (keep_alive_timeout.count() <= 0 || buffer.size() > 0) return false;
    pollfd p{socket.native_handle(), POLLIN, 0};
    int r = 0;
    do {
      r = ::poll(&p, 1, static_cast<int>(keep_alive_timeout.count()));
    } while (r < 0 && errno == EINTR);
    return r == 0;
  }

  // Returns true when the connection was closed for being idle (nothing more is to be sent on it).
  template <typename Stream>
  bool Exchange(Stream& stream, tcp::socket& socket, const std::string& peer) {
    beast::flat_buffer buffer;
    // Beast reads as much as the buffer's free capacity, at least 512 bytes: unreserved, a 45 KB
    // event arrived 512 bytes (one SSL_read) at a time.
    buffer.reserve(64 * 1024);
    for (bool first = true; !stopping; first = false) {
      if (!first && IdleTooLong(socket, buffer)) return true;
      http::request_parser<http::string_body> parser;
      parser.body_limit(max_body);
      parser.header_limit(64 * 1024);
      boost::system::error_code ec;
      http::read(stream, buffer, parser, ec);
      if (ec) {
        if (ec == http::error::body_limit) {
          http::response<http::string_body> res{http::status::payload_too_large, 11};
          res.body() = R"({"name":"Request too large","message":"Request too large","url":""})";
          res.set(http::field::content_type, "application/json; charset=UTF-8");
          res.prepare_payload();
          http::write(stream, res, ec);
        }
        return false;
      }
      auto& req = parser.get();
      HttpRequest in;
      in.method = std::string(req.method_string());
      in.target = std::string(req.target());
      in.peer = peer;
      for (const auto& f : req) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        in.headers[name] = std::string(f.value());
      }
      in.body = std::move(req.body());
      HttpResponse out;
      std::string encoding = in.Header("content-encoding");
      if (encoding == "gzip" || encoding == "deflate") {
        auto decoded = GzipDecompress(in.body, max_body);
        if (!decoded.ok()) {
          out.status = 400;
          out.body = R"({"name":"Bad request","message":")" + decoded.error().message + R"(","url":""})";
          out.headers.emplace_back("Content-Type", "application/json; charset=UTF-8");
        } else {
          in.body = std::move(*decoded);
          out = handler(in);
        }
      } else {
        out = handler(in);
      }
      if (!Send(stream, in, out, req.keep_alive())) return false;
      if (!req.keep_alive()) return false;
    }
    return false;
  }

  // Returns false when the connection must end.
  template <typename Stream>
  bool Send(Stream& stream, const HttpRequest& in, const HttpResponse& out, bool keep_alive) {
    boost::system::error_code ec;
    if (out.raw) {
      asio::write(stream, asio::buffer(*out.raw), ec);
      return false;
    }
    http::response<http::string_body> res{static_cast<http::status>(out.status), 11};
    for (const auto& [k, v] : out.headers) res.set(k, v);
    res.keep_alive(keep_alive);
    // As Apache says it ("timeout=5, max=100"; misp-sim sets no limit of requests per connection), in
    // whole seconds: a timeout under one second is not announced (nginx announces none by default).
    if (keep_alive && keep_alive_timeout >= std::chrono::seconds(1))
      res.set("Keep-Alive", "timeout=" + std::to_string(keep_alive_timeout.count() / 1000));
    res.body() = out.body;
    if (in.method == "HEAD") {
      res.content_length(out.body.size());
      res.body().clear();
      http::response_serializer<http::string_body> sr{res};
      http::write_header(stream, sr, ec);
    } else {
      res.prepare_payload();
      http::write(stream, res, ec);
    }
    return !ec;
  }

  void Serve(std::shared_ptr<tcp::socket> socket) {
    boost::system::error_code ec;
    auto ep = socket->remote_endpoint(ec);
    std::string peer = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    if (!tls) {
      Exchange(*socket, *socket, peer);
      socket->shutdown(tcp::socket::shutdown_both, ec);
      return;
    }
    asio::ssl::stream<tcp::socket&> stream(*socket, *tls);
    stream.handshake(asio::ssl::stream_base::server, ec);
    if (ec) return;
    if (Exchange(stream, *socket, peer)) {
      // Idle: closed without waiting for a close_notify the client has no reason to send.
      socket->shutdown(tcp::socket::shutdown_both, ec);
      return;
    }
    stream.shutdown(ec);
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl, std::uint16_t port)
    : impl_(std::move(impl)), port_(port) {}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& host, std::uint16_t port,
                                                      Handler handler, std::optional<TlsFiles> tls,
                                                      std::size_t max_body_bytes,
                                                      std::chrono::milliseconds keep_alive_timeout) {
  auto impl = std::make_unique<Impl>();
  impl->handler = std::move(handler);
  impl->max_body = max_body_bytes;
  impl->keep_alive_timeout = keep_alive_timeout;
  std::string where = host + ":" + std::to_string(port);
  if (tls) {
    impl->tls.emplace(asio::ssl::context::tls_server);
    boost::system::error_code ec;
    impl->tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1);
    impl->tls->use_certificate_chain_file(tls->cert_chain, ec);
    if (ec)
      return Fail(ErrorCode::kInvalidArgument, "cannot load the certificate: " + ec.message(),
                  tls->cert_chain);
    impl->tls->use_private_key_file(tls->private_key, asio::ssl::context::pem, ec);
    if (ec)
      return Fail(ErrorCode::kInvalidArgument, "cannot load the private key: " + ec.message(),
                  tls->private_key);
    if (!tls->client_ca.empty()) {
      impl->tls->load_verify_file(tls->client_ca, ec);
      if (ec)
        return Fail(ErrorCode::kInvalidArgument, "cannot load the client CA: " + ec.message(),
                    tls->client_ca);
      impl->tls->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
      // Without a session id context OpenSSL fails the handshake of any client that offers an
      // earlier session when client certificates are verified (Apache and nginx set one).
      static constexpr unsigned char kSessionContext[] = "sgsync-httpd";
      SSL_CTX_set_session_id_context(impl->tls->native_handle(), kSessionContext, sizeof kSessionContext - 1);
    }
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return Fail(ErrorCode::kInvalidArgument, "not an IP address: " + ec.message(), where);
  tcp::endpoint ep(address, port);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Fail(ErrorCode::kUnavailable, "cannot listen: " + ec.message(), where);
  std::uint16_t bound = impl->acceptor.local_endpoint().port();
  Impl* raw = impl.get();
  impl->accept_thread = std::thread([raw] { raw->AcceptLoop(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl), bound));
}

void HttpServer::Stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  boost::system::error_code ec;
  // Wake the blocking accept with a connection of our own (or, failing that, by shutting the
  // listening descriptor down), and close the acceptor only once its thread is gone: an Asio
  // object is not to be changed while another thread is inside it (ThreadSanitizer saw it).
  {
    tcp::socket poke(impl_->io);
    poke.connect(impl_->acceptor.local_endpoint(), ec);
    if (ec) ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  }
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  impl_->acceptor.close(ec);
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& w : impl_->sockets) {
      if (auto s = w.lock()) s->shutdown(tcp::socket::shutdown_both, ec);
    }
    workers.swap(impl_->workers);
  }
  for (auto& t : workers) t.join();
}

HttpServer::~HttpServer() { Stop(); }

}  // namespace sgsync::httpd
