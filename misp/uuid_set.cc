#include "misp/uuid_set.h"

#include <algorithm>
#include <optional>

#include "common/encoding.h"
#include "misp/json.h"

namespace sgsync::misp {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;  // IsUuid has checked it is a hex digit
}

std::optional<std::array<std::uint8_t, 16>> Pack(std::string_view text) {
  if (!IsUuid(text)) return std::nullopt;
  std::array<std::uint8_t, 16> out{};
  std::size_t n = 0;
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] == '-') continue;
    out[n++] = static_cast<std::uint8_t>(HexValue(text[i]) << 4 | HexValue(text[i + 1]));
    ++i;
  }
  return out;
}

}  // namespace

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
  if (auto packed = Pack(text)) {
    Sort();
    return std::binary_search(uuids_.begin(), uuids_.end(), *packed);
  }
  return other_.count(AsciiLower(text)) > 0;
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
