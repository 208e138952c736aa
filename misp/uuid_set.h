// misp/uuid_set.h: a set of uuids held in 16 bytes each, compared without regard to case.
//
// The uuids of a 150k-attribute event's elements cost about 22 MB as strings in a std::set and
// 2.4 MB as 128-bit values in a sorted vector; they are held while the event itself is (the
// receiver's answer to its write is checked against it). Text that is not a uuid (a receiver may
// answer anything) is kept as lower-case text, so it is still found.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace sgsync::misp {

class UuidSet {
 public:
  using Bytes = std::array<std::uint8_t, 16>;
  // The 16 bytes of `text` when it is a uuid (any case), what IsUuid accepts; nullopt otherwise.
  static std::optional<Bytes> Pack(std::string_view text);

  void Insert(std::string_view text);
  // Sorts what was inserted since the last call first (so not thread-safe with Insert).
  bool Contains(std::string_view text) const;
  bool Contains(const Bytes& uuid) const;
  std::size_t size() const;
  bool empty() const { return size() == 0; }
  // Every member as lower-case text (tests, diagnostics).
  std::set<std::string> ToStrings() const;

 private:
  void Sort() const;

  mutable std::vector<Bytes> uuids_;
  mutable bool sorted_ = true;
  std::set<std::string> other_;
};

}  // namespace sgsync::misp
