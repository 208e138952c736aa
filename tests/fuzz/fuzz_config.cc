// Fuzzes the configuration loader with any text as sgsync.toml: a value or an Error naming the
// key and line, never a crash. The seeds take their keys from two environment variables set here
// (api_key_env), so the fuzzer starts past the key checks.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::setenv("SGSYNC_FUZZ_LOCAL_KEY", "0123456789abcdefghij0123456789ABCDEFGHIJ", 1);
  ::setenv("SGSYNC_FUZZ_PORTAL_KEY", "abcdefghij0123456789ABCDEFGHIJ0123456789", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)sgsync::config::ParseConfig(text, "fuzz.toml");
  return 0;
}
