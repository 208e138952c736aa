#include "tests/support/http_client.h"


#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <stdexcept>

namespace sgsync::testing {

namespace asio = boost::asio;
namespace http = boost::beast::http;

HttpResult Request(std::uint16_t port, const std::string& method, const std::string& target,
                   const std::string& body, const std::map<std::string, std::string>& headers) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::accept, "application/json");
  req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::write(socket, req);
  // Room for more than 512 bytes a read, which is what Beast reads into an empty buffer.
  boost::beast::flat_buffer buffer;
  buffer.reserve(64 * 1024);
  http::response_parser<http::string_body> parser;
  parser.body_limit(1u << 30);
  if (method == "HEAD") parser.skip(true);
  http::read(socket, buffer, parser);
  HttpResult out;
  out.status = static_cast<int>(parser.get().result_int());
  for (const auto& f : parser.get()) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[name] = std::string(f.value());
  }
  out.body = parser.get().body();
  boost::system::error_code ec;
  socket.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  return out;
}

}  // namespace sgsync::testing
