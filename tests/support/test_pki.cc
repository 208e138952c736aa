#include "tests/support/test_pki.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace sgsync::testing {

namespace {
void Run(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) throw std::runtime_error("failed: " + cmd);
}
}  // namespace

TestPki::TestPki() {
  const std::string d = dir_.path().string() + "/";
  auto issue = [&](const std::string& name, const std::string& ca, const std::string& san,
                   const std::string& days) {
    Run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=" + name +
        " -keyout " + d + name + ".key -out " + d + name + ".csr");
    std::string ext = d + name + ".ext";
    WriteFile(ext, "subjectAltName=" + san + "\n");
    Run("openssl x509 -req -in " + d + name + ".csr -CA " + d + ca + ".pem -CAkey " + d + ca +
        ".key -CAcreateserial -days " + days + " -extfile " + ext + " -out " + d + name + ".pem");
  };
  Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "
      "/CN=sgsync-test-ca -keyout " +
      d + "ca.key -out " + d + "ca.pem");
  Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "
      "/CN=sgsync-client-ca -keyout " +
      d + "clientca.key -out " + d + "clientca.pem");
  issue("server", "ca", "IP:127.0.0.1", "2");
  issue("wronghost", "ca", "DNS:wrong.example", "2");
  issue("expired", "ca", "IP:127.0.0.1", "0");
  issue("client", "clientca", "DNS:member.example", "2");
  Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      d + "selfsigned.key -out " + d + "selfsigned.pem");
  // "-days 0" ends validity at issue time: wait past it.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
}

std::string TestPki::Fingerprint(const std::string& cert) const {
  std::string text;
  FILE* p = ::popen(("openssl x509 -in " + cert + " -noout -fingerprint -sha256").c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen openssl");
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) text += buf;
  ::pclose(p);
  if (text.find('=') == std::string::npos) throw std::runtime_error("no fingerprint for " + cert);
  std::string hex;
  for (char c : text.substr(text.find('=') + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(c)))
      hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return hex;
}

}  // namespace sgsync::testing
