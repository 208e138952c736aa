// daemon/admin_server.h: the gRPC admin API (proto/sgsync/admin/v1/admin.proto) that sgsyncctl
// talks to, with the standard health service and server reflection (grpcurl works).
//
// It listens on a Unix socket, created with the configured mode (0600, or 0660 with the configured
// group) before any client can connect, and optionally on TCP, only with TLS and client
// certificates signed by the configured CA (the configuration refuses a TCP listener without
// them). Every call that changes something (TriggerSync, Pause, Resume, ResolveConflict,
// RetryFailure, DropFailure, ReloadConfig, BackupState) is written to the audit log with who made
// it: the client certificate's subject on TCP; on the Unix socket, the peer's uid and pid from the
// kernel (daemon/peer_socket.h), with the operator name the client states beside them. Nothing it returns
// holds a secret (docs/admin-api.md).
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "daemon/service.h"

namespace sgsync::daemon {

class AdminServer {
 public:
  static Result<std::unique_ptr<AdminServer>> Start(Service& service, const config::DaemonConfig& config);
  ~AdminServer();
  void Stop();
  int tcp_port() const { return tcp_port_; }  // the bound port (0 when there is no TCP listener)

 private:
  struct Impl;
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int tcp_port_ = 0;
};

}  // namespace sgsync::daemon
