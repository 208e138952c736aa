#include "tests/support/connect_proxy.h"

namespace sgsync::testing {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

ConnectProxy::ConnectProxy(int refuse_status) : refuse_status_(refuse_status), acceptor_(io_) {
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  acceptor_.open(ep.protocol());
  acceptor_.bind(ep);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  accept_ = std::thread([this] {
    while (!stop_) {
      auto s = std::make_shared<tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*s, ec);
      if (ec || stop_) break;
      std::lock_guard lock(mu_);
      sockets_.push_back(s);
      workers_.emplace_back([this, s] { Serve(s); });
    }
  });
}

ConnectProxy::~ConnectProxy() {
  stop_ = true;
  boost::system::error_code ec;
  {
    // Wakes the accepting thread, which then sees stop_; the acceptor is closed only once that
    // thread has left accept() (closing it under a blocked accept is a data race in Asio).
    tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);
  }
  accept_.join();
  acceptor_.close(ec);
  std::lock_guard lock(mu_);
  for (auto& s : sockets_) s->shutdown(tcp::socket::shutdown_both, ec);
  for (auto& t : workers_) t.join();
}

std::vector<std::string> ConnectProxy::targets() {
  std::lock_guard lock(mu_);
  return targets_;
}

void ConnectProxy::Serve(std::shared_ptr<tcp::socket> client) {
  boost::system::error_code ec;
  asio::streambuf head;
  asio::read_until(*client, head, "\r\n\r\n", ec);
  if (ec) return;
  std::string text(asio::buffers_begin(head.data()), asio::buffers_end(head.data()));
  if (text.rfind("CONNECT ", 0) != 0) return;
  std::string target = text.substr(8, text.find(' ', 8) - 8);
  {
    std::lock_guard lock(mu_);
    targets_.push_back(target);
  }
  if (refuse_status_ != 0) {
    std::string no = "HTTP/1.1 " + std::to_string(refuse_status_) + " Forbidden\r\nContent-Length: 0\r\n\r\n";
    asio::write(*client, asio::buffer(no), ec);
    return;
  }
  auto upstream = std::make_shared<tcp::socket>(io_);
  auto colon = target.rfind(':');
  upstream->connect({asio::ip::make_address(target.substr(0, colon)),
                     static_cast<std::uint16_t>(std::stoi(target.substr(colon + 1)))},
                    ec);
  if (ec) return;
  {
    std::lock_guard lock(mu_);
    sockets_.push_back(upstream);
  }
  asio::write(*client, asio::buffer(std::string("HTTP/1.1 200 Connection established\r\n\r\n")), ec);
  auto relay = [](tcp::socket& from, tcp::socket& to) {
    char buf[16384];
    boost::system::error_code e;
    while (true) {
      std::size_t n = from.read_some(asio::buffer(buf), e);
      if (e) break;
      asio::write(to, asio::buffer(buf, n), e);
      if (e) break;
    }
    to.shutdown(tcp::socket::shutdown_both, e);
  };
  std::thread back([&] { relay(*upstream, *client); });
  relay(*client, *upstream);
  back.join();
}

}  // namespace sgsync::testing
