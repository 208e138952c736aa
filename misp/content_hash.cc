#include "misp/content_hash.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

#include "common/encoding.h"

namespace sgsync::misp {
namespace {

// Keys that differ between two instances holding the same event, or that travel on their own
// (sightings, proposals) and have their own ledgers.
constexpr std::string_view kInstanceLocal[] = {"id",
                                               "event_id",
                                               "object_id",
                                               "org_id",
                                               "orgc_id",
                                               "sharing_group_id",
                                               "user_id",
                                               "tag_id",
                                               "attribute_id",
                                               "sync_user_id",
                                               "locked",
                                               "publish_timestamp",
                                               "sighting_timestamp",
                                               "Org",
                                               "RelatedEvent",
                                               "Galaxy",
                                               "attribute_count",
                                               "proposal_email_lock",
                                               "Sighting",
                                               "ShadowAttribute",
                                               "colour",
                                               "hide_tag",
                                               "numerical_value",
                                               "is_galaxy",
                                               "is_custom_galaxy",
                                               "event_creator_email",
                                               "Feed"};

// Asked for every key of every element, twice an event: the candidates are grouped by length, so
// most keys are settled by their length and the rest by a comparison or two (no hashing).
bool IsInstanceLocal(std::string_view key) {
  static constexpr std::size_t kLongest = 32;
  static const auto by_length = [] {
    std::array<std::vector<std::string_view>, kLongest + 1> t;
    for (std::string_view k : kInstanceLocal) t.at(k.size()).push_back(k);
    return t;
  }();
  if (key.size() > kLongest) return false;
  for (std::string_view k : by_length[key.size()]) {
    if (k == key) return true;
  }
  return false;
}

// Sink that digests in 64 KiB pieces so a 50 MB event never builds a 50 MB string. A plain buffer,
// not a std::string: most of what is put is one character or a few.
class Digest {
 public:
  Digest() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free), buf_(new char[kSize]) {
    EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  }
  void Put(std::string_view s) {
    if (s.size() > kSize - used_) {
      Flush();
      if (s.size() >= kSize) {
        EVP_DigestUpdate(ctx_.get(), s.data(), s.size());
        return;
      }
    }
    std::memcpy(buf_.get() + used_, s.data(), s.size());
    used_ += s.size();
  }
  void Put(char c) {
    if (used_ == kSize) Flush();
    buf_[used_++] = c;
  }
  std::string Hex() {
    Flush();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &n);
    return HexEncode(std::string_view(reinterpret_cast<const char*>(md), n));
  }

 private:
  static constexpr std::size_t kSize = std::size_t{64} << 10;
  void Flush() {
    EVP_DigestUpdate(ctx_.get(), buf_.get(), used_);
    used_ = 0;
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
  std::unique_ptr<char[]> buf_;
  std::size_t used_ = 0;
};

class TextSink {
 public:
  void Put(std::string_view s) { out.append(s); }
  void Put(char c) { out.push_back(c); }
  std::string out;
};

// Strings are written as <length>:<bytes>, which is unambiguous without escaping. Scalars lose their
// JSON type: 1, "1" and true all read 1:1, so MISP's loose typing hashes alike.
template <typename Sink>
void PutText(std::string_view s, Sink& sink) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, s.size());
  sink.Put(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
  sink.Put(':');
  sink.Put(s);
}

template <typename Sink>
void PutScalar(const json::value& v, Sink& sink) {
  char buf[32];
  std::to_chars_result r{buf, std::errc()};
  switch (v.kind()) {
    case json::kind::null:
      sink.Put('~');
      return;
    case json::kind::bool_:
      PutText(v.get_bool() ? "1" : "0", sink);
      return;
    case json::kind::int64:
      r = std::to_chars(buf, buf + sizeof buf, v.get_int64());
      break;
    case json::kind::uint64:
      r = std::to_chars(buf, buf + sizeof buf, v.get_uint64());
      break;
    case json::kind::double_:
      r = std::to_chars(buf, buf + sizeof buf, v.get_double());
      break;
    case json::kind::string:
      PutText(v.get_string(), sink);
      return;
    default:
      return;
  }
  PutText(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)), sink);
}

// Keys are short: compared inline, eight bytes at a time, instead of through a call to memcmp (a
// tenth of the hash's time went to memcmp calls for keys of 2-20 bytes).
bool SameKey(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  const char* x = a.data();
  const char* y = b.data();
  std::size_t n = a.size();
  for (; n >= 8; n -= 8, x += 8, y += 8) {
    std::uint64_t p, q;
    std::memcpy(&p, x, 8);
    std::memcpy(&q, y, 8);
    if (p != q) return false;
  }
  for (; n > 0; --n)
    if (*x++ != *y++) return false;
  return true;
}

// The position of "uuid" in the last element looked at: the elements of one list mostly share their
// shape, so the next one has it at the same place, found with one comparison instead of a look-up.
// An object's keys are unique, so a key found there is the key if_contains would find.
const json::value* FindUuid(const json::object& o, std::size_t& hint) {
  if (hint < o.size()) {
    const json::key_value_pair& kv = o.begin()[hint];
    if (SameKey(kv.key(), "uuid")) return &kv.value();
  }
  for (std::size_t i = 0; i < o.size(); ++i) {
    const json::key_value_pair& kv = o.begin()[i];
    if (SameKey(kv.key(), "uuid")) {
      hint = i;
      return &kv.value();
    }
  }
  return nullptr;
}

std::string_view SortKey(const json::value& v, std::size_t& uuid_hint) {
  if (!v.is_object()) return {};
  const json::object& o = v.get_object();
  if (const json::value* u = FindUuid(o, uuid_hint); u != nullptr && u->is_string()) return u->get_string();
  if (const json::value* n = o.if_contains("name"); n != nullptr && n->is_string()) return n->get_string();
  if (const json::value* t = o.if_contains("Tag"); t != nullptr && t->is_object()) {
    std::size_t tag_hint = 0;
    return SortKey(*t, tag_hint);
  }
  return {};
}

// Writes the canonical form of one document to a sink. The elements of an event mostly share
// their shape (every attribute has the same keys in the same order), so the sorted order of an
// object's keys is kept per depth and reused while the next object at that depth has the same keys
// in the same order: one comparison per key instead of a look-up in the instance-local keys and a
// sort. Kept in a deque: a deeper level added while a shallower one is in use moves nothing.
template <typename Sink>
class Canonical {
 public:
  explicit Canonical(Sink& sink) : sink_(sink) {}

  void Object(const json::object& o, std::size_t depth) {
    Level& level = At(depth);
    if (!SameShape(o, level)) {
      level.keys.clear();
      level.order.clear();
      for (const auto& kv : o) {
        if (!IsInstanceLocal(kv.key())) level.order.push_back(level.keys.size());
        level.keys.push_back(kv.key());
      }
      std::sort(level.order.begin(), level.order.end(),
                [&](std::size_t x, std::size_t y) { return level.keys[x] < level.keys[y]; });
    }
    const json::key_value_pair* fields = o.begin();  // an object's entries are contiguous
    sink_.Put('{');
    for (std::size_t i : level.order) {
      const json::key_value_pair& kv = fields[i];
      PutText(kv.key(), sink_);
      sink_.Put('=');
      Value(kv.value(), depth + 1);
      sink_.Put(',');
    }
    sink_.Put('}');
  }

  // Elements with identities (uuid, or tag name) are ordered by it: two instances may list them in
  // different orders. Arrays of plain values keep their order.
  void Array(const json::array& a, std::size_t depth) {
    std::vector<Item>& items = At(depth).items;
    items.clear();
    std::size_t uuid_hint = 0;
    for (const auto& v : a) {
      std::string_view key = SortKey(v, uuid_hint);
      items.push_back(Item{Prefix(key), key, &v});
    }
    // The order of the keys as strings: their first 8 bytes as a big-endian number decide, the
    // whole keys only when those are equal (a uuid's first 8 bytes rarely are).
    auto by_key = [](const Item& x, const Item& y) {
      return x.prefix != y.prefix ? x.prefix < y.prefix : x.key < y.key;
    };
    if (!std::is_sorted(items.begin(), items.end(), by_key))
      std::stable_sort(items.begin(), items.end(), by_key);
    sink_.Put('[');
    for (const Item& item : items) {
      Value(*item.value, depth + 1);
      sink_.Put(',');
    }
    sink_.Put(']');
  }

  void Value(const json::value& v, std::size_t depth) {
    if (v.is_object()) {
      Object(v.get_object(), depth);
    } else if (v.is_array()) {
      Array(v.get_array(), depth);
    } else {
      PutScalar(v, sink_);
    }
  }

 private:
  struct Item {
    std::uint64_t prefix;  // the key's first 8 bytes, big-endian, zeros past its end
    std::string_view key;
    const json::value* value;
  };

  // Two prefixes compare as their bytes do: where they differ, the keys differ the same way (a key
  // that ended there is the shorter, and a byte it lacks reads 0, less than any byte the other has
  // there unless that byte is 0 too, when the prefixes tie and the keys themselves decide).
  static std::uint64_t Prefix(std::string_view key) {
    std::uint64_t p = 0;
    for (std::size_t i = 0; i < 8; ++i) {
      p = (p << 8) | (i < key.size() ? static_cast<unsigned char>(key[i]) : 0u);
    }
    return p;
  }

  // What one depth keeps between objects: the keys of the object last written there, in its order
  // (all of them: an object with the same keys in the same order is filtered and sorted alike),
  // the positions of its kept keys in sorted order, and the scratch of the array being written.
  // The keys are views into that object, which lives as long as the whole document being written.
  struct Level {
    std::vector<std::string_view> keys;
    std::vector<std::size_t> order;
    std::vector<Item> items;
  };

  Level& At(std::size_t depth) {
    while (levels_.size() <= depth) levels_.emplace_back();
    return levels_[depth];
  }

  // The same keys in the same order as the object last written at this depth.
  static bool SameShape(const json::object& o, const Level& level) {
    if (level.keys.size() != o.size()) return false;
    const json::key_value_pair* fields = o.begin();
    for (std::size_t i = 0; i < level.keys.size(); ++i) {
      if (!SameKey(level.keys[i], fields[i].key())) return false;
    }
    return true;
  }

  Sink& sink_;
  std::deque<Level> levels_;
};

}  // namespace

std::string ContentHash(const json::object& event) {
  Digest d;
  Canonical<Digest>(d).Object(event, 0);
  return d.Hex();
}

std::string CanonicalForm(const json::object& event) {
  TextSink s;
  Canonical<TextSink>(s).Object(event, 0);
  return std::move(s.out);
}

}  // namespace sgsync::misp
