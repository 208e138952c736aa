// misp-sim over HTTPS: TLS 1.2+ with a certificate the test makes with the openssl command line.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdlib>

#include "misp-sim/sim.h"
#include "tests/support/files.h"

namespace sgsync::sim {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

TEST(MispSimTlsTest, ServesHttpsWithTheGivenCertificate) {
  sgsync::testing::TempDir dir;
  std::string cert = (dir.path() / "cert.pem").string(), key = (dir.path() / "key.pem").string();
  std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext "
      "subjectAltName=IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string admin(40, 'c');
  auto sim = MispSim::Create(SimConfig{":memory:", "", "ORG1", "", admin, "", ""});
  ASSERT_TRUE(sim.ok());
  MispSim* raw = sim->get();
  auto server = HttpServer::Start(
      "127.0.0.1", 0, [raw](const HttpRequest& r) { return raw->Handle(r); }, TlsFiles{cert, key, ""});
  ASSERT_TRUE(server.ok()) << server.error().ToString();

  asio::io_context io;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.load_verify_file(cert);
  ctx.set_verify_mode(asio::ssl::verify_peer);
  boost::beast::ssl_stream<boost::beast::tcp_stream> stream(io, ctx);
  boost::beast::get_lowest_layer(stream).connect({asio::ip::make_address("127.0.0.1"), (*server)->port()});
  stream.handshake(asio::ssl::stream_base::client);
  EXPECT_GE(SSL_version(stream.native_handle()), TLS1_2_VERSION);
  http::request<http::empty_body> req{http::verb::get, "/servers/getVersion", 11};
  req.set(http::field::authorization, admin);
  http::write(stream, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_NE(res.body().find("\"version\":\"2.5.1\""), std::string::npos);

  // A plain-HTTP client gets no answer from the TLS port.
  asio::ip::tcp::socket plain(io);
  plain.connect({asio::ip::make_address("127.0.0.1"), (*server)->port()});
  http::request<http::empty_body> clear{http::verb::get, "/servers/getVersion", 11};
  http::write(plain, clear);
  boost::beast::flat_buffer b2;
  http::response<http::string_body> r2;
  boost::system::error_code ec;
  http::read(plain, b2, r2, ec);
  EXPECT_TRUE(ec) << "plain HTTP must not be answered on the HTTPS port";
}

}  // namespace
}  // namespace sgsync::sim
