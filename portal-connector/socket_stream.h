// portal-connector/socket_stream.h: the transport's connection, read and written directly by the
// one thread that holds it. Internal to the transport.
//
// A TCP socket, plain or with TLS (OpenSSL on the socket itself), whose every operation is bounded
// by a deadline: the socket is non-blocking, an operation is tried at once and waits in poll(2)
// only when the kernel has nothing to give or take. There is no event loop: through Asio, each TLS
// record read was a round through its scheduler (epoll_wait, a timerfd update for the operation's
// deadline, a handler queued and run): a fifth of a push's perf samples were under Asio's
// scheduler, the kernel's socket work included (docs/performance.md).
//
// It is a Beast SyncReadStream and SyncWriteStream, so Beast's synchronous HTTP reads and writes
// run over it. Failures are the codes Asio's streams gave (asio::error::eof, connection_reset,
// ssl::error::stream_truncated, system and SSL errors) and beast::error::timeout for a deadline, so
// the transport maps them as before.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

struct addrinfo;

namespace sgsync::connector::detail {

class SocketStream {
 public:
  using Clock = std::chrono::steady_clock;

  SocketStream() = default;
  ~SocketStream();
  SocketStream(const SocketStream&) = delete;
  SocketStream& operator=(const SocketStream&) = delete;

  // Connects to the first of the resolved addresses that accepts before `deadline` (the last
  // address's failure is the one reported).
  boost::system::error_code Connect(const addrinfo* addresses, Clock::time_point deadline);

  // Starts TLS over the connected socket: SNI and the certificate's name checked against `host` (a
  // DNS name or an IP address), verified as `ctx` says. When verification is what failed,
  // `verify_reason` says why in OpenSSL's words ("certificate has expired") or, for the name,
  // "the certificate does not name <host>". `resume`, when set, is a session of an earlier
  // connection to the same server, offered for resumption; the server may decline it (a full
  // handshake follows, as without one).
  boost::system::error_code Handshake(SSL_CTX* ctx, const std::string& host, Clock::time_point deadline,
                                      std::string* verify_reason, SSL_SESSION* resume = nullptr);

  // What the socket's BIO (socket_stream.cc) works on: the socket, and the errno of its last failure.
  struct BioState {
    int fd = -1;
    int last_errno = 0;
  };

  // The socket (for its options); -1 before Connect.
  int native_handle() const { return fd_; }

  // The TLS session, after Handshake; null on a plain connection.
  SSL* ssl() const { return ssl_; }

  // Whether a kept-alive connection can carry another request: nothing is waiting to be read on it,
  // neither bytes nor the end of the stream (the server closed it while it was idle) nor an error.
  bool ReadyForReuse() const;

  // Every later operation fails with beast::error::timeout once this passes.
  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }

  // SyncReadStream: reads into the first non-empty buffer what is there (one TLS record at most),
  // waiting until something is.
  template <typename MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::mutable_buffer b(*it);
      if (b.size() > 0) return Read(static_cast<char*>(b.data()), b.size(), ec);
    }
    ec = {};
    return 0;
  }
  template <typename MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    return OrThrow(read_some(buffers, ec), ec);
  }

  // SyncWriteStream: Beast hands a header as a dozen small pieces; they are gathered (up to 64 KiB)
  // and written at once, one TLS record and one send(2) instead of one each.
  template <typename ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    auto it = boost::asio::buffer_sequence_begin(buffers);
    const auto end = boost::asio::buffer_sequence_end(buffers);
    while (it != end && boost::asio::const_buffer(*it).size() == 0) ++it;
    if (it == end) {
      ec = {};
      return 0;
    }
    boost::asio::const_buffer first(*it);
    auto next = it;
    ++next;
    if (next == end || first.size() >= kGatherBytes) {
      return Write(static_cast<const char*>(first.data()), first.size(), ec);
    }
    if (!gather_) gather_ = std::make_unique_for_overwrite<char[]>(kGatherBytes);
    std::size_t used = 0;
    for (; it != end && used < kGatherBytes; ++it) {
      boost::asio::const_buffer b(*it);
      used += boost::asio::buffer_copy(boost::asio::buffer(gather_.get() + used, kGatherBytes - used), b);
    }
    return Write(gather_.get(), used, ec);
  }
  template <typename ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers) {
    boost::system::error_code ec;
    return OrThrow(write_some(buffers, ec), ec);
  }

 private:
  static constexpr std::size_t kGatherBytes = 64 * 1024;

  // The throwing forms of the stream concepts (Beast's own code uses the error_code ones).
  static std::size_t OrThrow(std::size_t n, const boost::system::error_code& ec) {
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  std::size_t Read(char* data, std::size_t size, boost::system::error_code& ec);
  std::size_t Write(const char* data, std::size_t size, boost::system::error_code& ec);
  // Runs an OpenSSL call on the session (SSL_connect, SSL_read, SSL_write) until it succeeds,
  // waiting in poll for what it asks for: its positive result, or 0 with ec set (SslError, or the
  // deadline). A call retried after WANT_WRITE gets the same buffer and length, as OpenSSL requires.
  template <typename Call>
  int UntilDone(Call call, boost::system::error_code& ec);
  // The same for a call on the plain socket (recv, send) that waits for `events`: its result (0 at
  // a recv's end of stream), or -1 with ec set.
  template <typename Call>
  long UntilReady(Call call, short events, boost::system::error_code& ec);
  // Waits until the socket is ready for `events` (POLLIN, POLLOUT); false with ec set on the
  // deadline or a poll failure.
  bool Wait(short events, boost::system::error_code& ec);
  // What a failed SSL call (its return `ret`) means, as Asio's SSL stream would have said it.
  boost::system::error_code SslError(int ret);

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  BioState bio_state_;
  Clock::time_point deadline_ = Clock::time_point::max();
  std::unique_ptr<char[]> gather_;  // made on the first gathered write
};

}  // namespace sgsync::connector::detail
