// tests/support/files.h: reading the project's test data and making temporary directories in tests.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace sgsync::testing {

// tests/data in the checkout (fixtures/, conformance/; tests/data/SOURCES.md says where each comes
// from), as configured at build time.
std::filesystem::path DataDir();
std::string ReadFile(const std::filesystem::path& path);
void WriteFile(const std::filesystem::path& path, const std::string& content);
// Every regular file below `dir` whose name ends with `suffix`, sorted.
std::vector<std::filesystem::path> FilesBelow(const std::filesystem::path& dir, const std::string& suffix);

// A fresh directory under the system temp dir, removed with its contents when destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace sgsync::testing
