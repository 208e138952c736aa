// tests/support/connect_proxy.h: a minimal HTTP CONNECT proxy on 127.0.0.1 for transport tests:
// it answers each CONNECT with 200 (or with `refuse_status`) and relays bytes both ways.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sgsync::testing {

class ConnectProxy {
 public:
  explicit ConnectProxy(int refuse_status = 0);
  ~ConnectProxy();
  std::uint16_t port() const { return port_; }
  std::vector<std::string> targets();  // the host:port of every CONNECT seen

 private:
  void Serve(std::shared_ptr<boost::asio::ip::tcp::socket> client);

  int refuse_status_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_;
  std::mutex mu_;
  std::vector<std::string> targets_;
  std::vector<std::thread> workers_;
  std::vector<std::shared_ptr<boost::asio::ip::tcp::socket>> sockets_;
};

}  // namespace sgsync::testing
