#include "daemon/peer_socket.h"

#include <fcntl.h>
#include <grpcpp/server.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <vector>

namespace sgsync::daemon {

namespace {

std::string UserName(uid_t uid) {
  std::vector<char> buf(4096);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) return {};
  return found->pw_name;
}

}  // namespace

std::string PeerCredentials::Describe() const {
  std::string s = "uid " + std::to_string(uid);
  if (!user.empty()) s += " (" + user + ")";
  return s + ", pid " + std::to_string(pid);
}

Result<std::unique_ptr<PeerSocket>> PeerSocket::Listen(const std::string& path, unsigned mode) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return Fail(ErrorCode::kInvalidArgument, "admin.socket: the path " + path + " is longer than " +
                                                 std::to_string(sizeof(addr.sun_path) - 1) +
                                                 " bytes, the most a Unix socket path may have");
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(ErrorCode::kIo, std::string("socket(AF_UNIX): ") + std::strerror(errno));
  // A socket left by a previous process (sgsyncd holds the state lock, so it is not in use).
  std::error_code ec;
  if (std::filesystem::is_socket(path, ec)) std::filesystem::remove(path, ec);
  // The socket is born with the configured mode: nobody else can connect in between.
  mode_t old = ::umask(static_cast<mode_t>(0777 & ~mode));
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int bind_errno = errno;
  ::umask(old);
  if (rc != 0 || ::listen(fd, 64) != 0) {
    int e = rc != 0 ? bind_errno : errno;
    ::close(fd);
    return Fail(ErrorCode::kUnavailable,
                "cannot listen on the admin socket " + path + ": " + std::strerror(e));
  }
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    ::close(fd);
    return Fail(ErrorCode::kIo, std::string("pipe: ") + std::strerror(errno));
  }
  return std::unique_ptr<PeerSocket>(new PeerSocket(fd, wake[0], wake[1], path));
}

PeerSocket::PeerSocket(int fd, int wake_read, int wake_write, std::string path)
    : listen_fd_(fd), wake_read_(wake_read), wake_write_(wake_write), path_(std::move(path)) {}

PeerSocket::~PeerSocket() {
  Stop();
  ::close(listen_fd_);
  ::close(wake_read_);
  ::close(wake_write_);
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

void PeerSocket::Serve(grpc::Server* server) {
  thread_ = std::thread([this, server] { AcceptLoop(server); });
}

void PeerSocket::Stop() {
  if (stopping_.exchange(true)) return;
  char one = 1;
  // The loop polls the pipe too; a failed write leaves it to notice `stopping_` on its next wake.
  if (::write(wake_write_, &one, 1) < 0)
    spdlog::debug("admin socket: waking the accept loop: {}", std::strerror(errno));
  if (thread_.joinable()) thread_.join();
}

void PeerSocket::AcceptLoop(grpc::Server* server) {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("admin socket {}: poll: {}", path_, std::strerror(errno));
      return;
    }
    if (stopping_ || (fds[1].revents & POLLIN)) return;
    // gRPC's poller reads the descriptor until EAGAIN: it must not block.
    int conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
        spdlog::warn("admin socket {}: accept: {}", path_, std::strerror(errno));
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      // Without credentials the call could not be attributed: refuse the connection.
      spdlog::warn("admin socket {}: cannot read the peer's credentials ({}); connection closed", path_,
                   std::strerror(errno));
      ::close(conn);
      continue;
    }
    {
      // Descriptors are reused once gRPC closes a connection; the newest connection on a number wins,
      // and it is recorded before gRPC can read a call from it.
      std::lock_guard lock(mu_);
      by_fd_[conn] = PeerCredentials{cred.uid, cred.gid, cred.pid, UserName(cred.uid)};
    }
    grpc::AddInsecureChannelFromFd(server, conn);
  }
}

std::optional<PeerCredentials> PeerSocket::Lookup(const std::string& peer) const {
  constexpr std::string_view kPrefix = "fd:";
  if (peer.rfind(kPrefix, 0) != 0) return std::nullopt;
  int fd = -1;
  const char* begin = peer.data() + kPrefix.size();
  const char* end = peer.data() + peer.size();
  auto [rest, ec] = std::from_chars(begin, end, fd);
  if (ec != std::errc() || rest != end) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return std::nullopt;
  return it->second;
}

}  // namespace sgsync::daemon
