#include "portal-connector/socket_stream.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <cerrno>
#include <climits>

namespace sgsync::connector::detail {

namespace asio = boost::asio;
using boost::system::error_code;

// The socket under OpenSSL (BioState). Not OpenSSL's own socket BIO: it writes with write(2), and a
// write to a connection already reset raises SIGPIPE, which would end sgsyncd; send(2) with
// MSG_NOSIGNAL gives EPIPE instead (Asio sends so too). The errno of the last failure is kept for SslError
// (OpenSSL's next calls may change errno before it is read).

namespace {

bool Retryable(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }

int BioWrite(BIO* bio, const char* data, int size) {
  auto* state = static_cast<SocketStream::BioState*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  ssize_t n = ::send(state->fd, data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
  if (n < 0) {
    state->last_errno = errno;
    if (Retryable(errno)) BIO_set_retry_write(bio);
  }
  return static_cast<int>(n);
}

int BioRead(BIO* bio, char* data, int size) {
  auto* state = static_cast<SocketStream::BioState*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  ssize_t n = ::recv(state->fd, data, static_cast<std::size_t>(size), 0);
  if (n < 0) {
    state->last_errno = errno;
    if (Retryable(errno)) BIO_set_retry_read(bio);
  }
  return static_cast<int>(n);
}

long BioCtrl(BIO*, int cmd, long, void*) {
  // OpenSSL flushes after each handshake flight and record; everything is already sent.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* SocketBioMethod() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sgsync socket");
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    return m;
  }();
  return method;
}

error_code SystemError(int e) { return error_code(e, boost::system::system_category()); }

// ECONNRESET and EOF as Asio names them, so the transport's "the connection was closed" mapping
// still recognises them.
error_code FromErrno(int e) {
  if (e == ECONNRESET) return asio::error::connection_reset;
  if (e == EPIPE) return asio::error::broken_pipe;
  return SystemError(e);
}

}  // namespace

SocketStream::~SocketStream() {
  if (ssl_ != nullptr) SSL_free(ssl_);  // frees the BIO too
  if (fd_ >= 0) ::close(fd_);
}

bool SocketStream::ReadyForReuse() const {
  if (fd_ < 0) return false;
  if (ssl_ != nullptr && SSL_pending(ssl_) > 0) return false;
  pollfd p{fd_, POLLIN, 0};
  int r = 0;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  // Between two exchanges a server sends nothing: anything readable is its close (a close_notify,
  // the end of the stream, a reset) or bytes that belong to no request.
  return r == 0;
}

bool SocketStream::Wait(short events, error_code& ec) {
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline_) {
      ec = boost::beast::error::timeout;
      return false;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - now).count();
    pollfd p{fd_, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<decltype(left)>(left, INT_MAX)));
    if (r > 0) return true;  // ready, or an error the next operation reports
    if (r < 0 && errno != EINTR) {
      ec = SystemError(errno);
      return false;
    }
  }
}

template <typename Call>
int SocketStream::UntilDone(Call call, error_code& ec) {
  for (;;) {
    ERR_clear_error();
    bio_state_.last_errno = 0;
    const int r = call();
    if (r > 0) return r;
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ && Wait(POLLIN, ec)) continue;
    if (e == SSL_ERROR_WANT_WRITE && Wait(POLLOUT, ec)) continue;
    if (!ec) ec = SslError(r);
    return 0;
  }
}

template <typename Call>
long SocketStream::UntilReady(Call call, short events, error_code& ec) {
  for (;;) {
    const long n = call();
    if (n >= 0) return n;
    if (!Retryable(errno)) {
      ec = FromErrno(errno);
      return -1;
    }
    if (!Wait(events, ec)) return -1;
  }
}

error_code SocketStream::Connect(const addrinfo* addresses, Clock::time_point deadline) {
  deadline_ = deadline;
  error_code ec = asio::error::host_not_found;
  for (const addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd_ < 0) {
      ec = SystemError(errno);
      continue;
    }
    // Requests and answers are written whole; Nagle would only hold back a request's last piece.
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_, a->ai_addr, a->ai_addrlen) == 0) return {};
    if (errno != EINPROGRESS) {
      ec = SystemError(errno);
      continue;
    }
    if (!Wait(POLLOUT, ec)) {
      if (ec == boost::beast::error::timeout) return ec;
      continue;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0) return {};
    ec = SystemError(err);
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return ec;
}

error_code SocketStream::Handshake(SSL_CTX* ctx, const std::string& host, Clock::time_point deadline,
                                   std::string* verify_reason, SSL_SESSION* resume) {
  deadline_ = deadline;
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr) return error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category());
  bio_state_.fd = fd_;
  BIO* bio = BIO_new(SocketBioMethod());
  BIO_set_data(bio, &bio_state_);
  SSL_set_bio(ssl_, bio, bio);
  SSL_set_tlsext_host_name(ssl_, host.c_str());
  if (resume != nullptr) SSL_set_session(ssl_, resume);  // takes its own reference
  // The name check is part of verification: a certificate for another name fails the handshake.
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
  // As Asio's host_name_verification checked it (X509_check_ip_asc or X509_check_host, flags 0).
  if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1)
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  error_code ec;
  if (UntilDone([&] { return SSL_connect(ssl_); }, ec) > 0) return {};
  const long verified = SSL_get_verify_result(ssl_);
  if (verified != X509_V_OK && verify_reason != nullptr) {
    *verify_reason = verified == X509_V_ERR_HOSTNAME_MISMATCH || verified == X509_V_ERR_IP_ADDRESS_MISMATCH
                         ? "the certificate does not name " + host
                         : X509_verify_cert_error_string(verified);
  }
  return ec;
}

error_code SocketStream::SslError(int ret) {
  const int e = SSL_get_error(ssl_, ret);
  if (e == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  if (e == SSL_ERROR_SYSCALL) {
    // No OpenSSL error queued: the socket failed, or (errno 0) it ended without a close_notify.
    if (ERR_peek_error() == 0) {
      const int saved = bio_state_.last_errno;
      return saved != 0 ? FromErrno(saved) : error_code(asio::ssl::error::stream_truncated);
    }
  }
  const unsigned long err = ERR_get_error();
  if (ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING) return asio::ssl::error::stream_truncated;
  return error_code(static_cast<int>(err), asio::error::get_ssl_category());
}

std::size_t SocketStream::Read(char* data, std::size_t size, error_code& ec) {
  ec = {};
  const int want = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
  if (ssl_ != nullptr)
    return static_cast<std::size_t>(UntilDone([&] { return SSL_read(ssl_, data, want); }, ec));
  const long n = UntilReady([&] { return ::recv(fd_, data, static_cast<std::size_t>(want), 0); }, POLLIN, ec);
  if (n == 0) ec = asio::error::eof;
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

std::size_t SocketStream::Write(const char* data, std::size_t size, error_code& ec) {
  ec = {};
  const int want = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
  if (ssl_ != nullptr)
    return static_cast<std::size_t>(UntilDone([&] { return SSL_write(ssl_, data, want); }, ec));
  const long n = UntilReady([&] { return ::send(fd_, data, static_cast<std::size_t>(want), MSG_NOSIGNAL); },
                            POLLOUT, ec);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

}  // namespace sgsync::connector::detail
