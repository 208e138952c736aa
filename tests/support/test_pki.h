// tests/support/test_pki.h: a test certificate authority and certificates, made with the openssl
// command line in a temporary directory, for TLS tests on 127.0.0.1.
#pragma once

#include <string>

#include "tests/support/files.h"

namespace sgsync::testing {

class TestPki {
 public:
  // Makes: a CA; a server certificate for IP 127.0.0.1; one naming only wrong.example; an expired
  // one; a self-signed one; a client CA with a client certificate. Throws if openssl fails.
  TestPki();
  std::string Path(const std::string& name) const { return (dir_.path() / name).string(); }
  std::string ca() const { return Path("ca.pem"); }
  std::string server_cert() const { return Path("server.pem"); }
  std::string server_key() const { return Path("server.key"); }
  std::string wrong_host_cert() const { return Path("wronghost.pem"); }
  std::string expired_cert() const { return Path("expired.pem"); }
  std::string self_signed_cert() const { return Path("selfsigned.pem"); }
  std::string self_signed_key() const { return Path("selfsigned.key"); }
  std::string client_ca() const { return Path("clientca.pem"); }
  std::string client_cert() const { return Path("client.pem"); }
  std::string client_key() const { return Path("client.key"); }
  // Hex SHA-256 of a certificate's DER encoding.
  std::string Fingerprint(const std::string& cert) const;

 private:
  TempDir dir_;
};

}  // namespace sgsync::testing
