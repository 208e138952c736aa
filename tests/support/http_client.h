// tests/support/http_client.h: a minimal blocking HTTP/1.1 client for tests of misp-sim, until the
// portal-connector's client replaces it in the integration tests.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace sgsync::testing {

struct HttpResult {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// One request on a fresh connection to 127.0.0.1:port. Throws on connection errors (a test bug).
HttpResult Request(std::uint16_t port, const std::string& method, const std::string& target,
                   const std::string& body = "", const std::map<std::string, std::string>& headers = {});

}  // namespace sgsync::testing
