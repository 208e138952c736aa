// daemon/peer_socket.h: the admin API's Unix socket, accepted by us rather than by gRPC, so that
// each connection's peer credentials (SO_PEERCRED: the connecting process's uid, gid and pid) are
// read by the kernel's word before the connection is handed to the gRPC server. The audit log
// then names who made a call from the credentials, not from what the client says about itself.
//
// gRPC 1.51 serves a Unix socket it listens on itself without exposing its peer's credentials;
// grpc::AddInsecureChannelFromFd (grpcpp/server_posix.h) accepts a connected descriptor instead,
// and calls on it report the peer as "fd:N", which Lookup maps back to the credentials.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/result.h"

namespace grpc {
class Server;
}

namespace sgsync::daemon {

struct PeerCredentials {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::string user;  // the uid's name in the password database, empty when it has none
  // "uid 1000 (alice), pid 4242": what the audit log records.
  std::string Describe() const;
};

class PeerSocket {
 public:
  // Binds and listens on `path` with `mode` from birth (a stale socket file is replaced); accepting
  // starts with Serve. Fails with the path and the system's reason.
  static Result<std::unique_ptr<PeerSocket>> Listen(const std::string& path, unsigned mode);
  ~PeerSocket();

  // Accepts connections on a thread of its own and hands each to `server`, until Stop.
  void Serve(grpc::Server* server);
  void Stop();

  // The credentials of the connection a call came on, from the call's peer string ("fd:N").
  std::optional<PeerCredentials> Lookup(const std::string& peer) const;

 private:
  PeerSocket(int fd, int wake_read, int wake_write, std::string path);
  void AcceptLoop(grpc::Server* server);

  int listen_fd_;
  int wake_read_;
  int wake_write_;
  std::string path_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::map<int, PeerCredentials> by_fd_;
};

}  // namespace sgsync::daemon
