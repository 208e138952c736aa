#include "misp/uuid_set.h"

#include <algorithm>
#include <optional>

#include "common/encoding.h"
#include "misp/json.h"

namespace sgsync::misp {
namespace {

// The value of each hex digit, -1 for any other byte.
constexpr std::array<std::int8_t, 256> kHexValue = [] {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<std::int8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[c] = static_cast<std::int8_t>(c - 'A' + 10);
  return t;
}();

}  // namespace

// What IsUuid accepts, decoded in the same pass: every element of every write is looked up here
// (misp::ElementsMissingFrom), and checking first then decoding read each uuid twice.
std::optional<UuidSet::Bytes> UuidSet::Pack(std::string_view text) {
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
    return std::nullopt;
  static constexpr std::size_t kPairAt[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
  std::array<std::uint8_t, 16> out;
  for (std::size_t i = 0; i < 16; ++i) {
    const int hi = kHexValue[static_cast<unsigned char>(text[kPairAt[i]])];
    const int lo = kHexValue[static_cast<unsigned char>(text[kPairAt[i] + 1])];
    if ((hi | lo) < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return out;
}

void UuidSet::Insert(std::string_view text) {
  if (auto packed = Pack(text)) {
    uuids_.push_back(*packed);
    sorted_ = false;
  } else {
    other_.insert(AsciiLower(text));
  }
}

void UuidSet::Sort() const {
  if (sorted_) return;
  std::sort(uuids_.begin(), uuids_.end());
  uuids_.erase(std::unique(uuids_.begin(), uuids_.end()), uuids_.end());
  uuids_.shrink_to_fit();
  sorted_ = true;
}

bool UuidSet::Contains(std::string_view text) const {
  if (auto packed = Pack(text)) return Contains(*packed);
  return other_.count(AsciiLower(text)) > 0;
}

bool UuidSet::Contains(const Bytes& uuid) const {
  Sort();
  return std::binary_search(uuids_.begin(), uuids_.end(), uuid);
}

std::size_t UuidSet::size() const {
  Sort();
  return uuids_.size() + other_.size();
}

std::set<std::string> UuidSet::ToStrings() const {
  Sort();
  static constexpr char kHex[] = "0123456789abcdef";
  std::set<std::string> out = other_;
  for (const Bytes& b : uuids_) {
    std::string s;
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
      s += kHex[b[i] >> 4];
      s += kHex[b[i] & 15];
    }
    out.insert(std::move(s));
  }
  return out;
}

}  // namespace sgsync::misp
