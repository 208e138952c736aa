#include "misp/content_hash.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/encoding.h"

namespace sgsync::misp {
namespace {

// Keys that differ between two instances holding the same event, or that travel on their own
// (sightings, proposals) and have their own ledgers.
bool IsInstanceLocal(std::string_view key) {
  static const std::unordered_set<std::string_view> kKeys = {"id",
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
  return kKeys.count(key) != 0;
}

// Sink that digests in 64 KiB pieces so a 50 MB event never builds a 50 MB string.
class Digest {
 public:
  Digest() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void Put(std::string_view s) {
    buf_.append(s);
    if (buf_.size() >= (64u << 10)) Flush();
  }
  void Put(char c) { buf_.push_back(c); }
  std::string Hex() {
    Flush();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &n);
    return HexEncode(std::string_view(reinterpret_cast<const char*>(md), n));
  }

 private:
  void Flush() {
    EVP_DigestUpdate(ctx_.get(), buf_.data(), buf_.size());
    buf_.clear();
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
  std::string buf_;
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

std::string_view SortKey(const json::value& v) {
  if (!v.is_object()) return {};
  const json::object& o = v.get_object();
  if (const json::value* u = o.if_contains("uuid"); u != nullptr && u->is_string()) return u->get_string();
  if (const json::value* n = o.if_contains("name"); n != nullptr && n->is_string()) return n->get_string();
  if (const json::value* t = o.if_contains("Tag"); t != nullptr && t->is_object()) return SortKey(*t);
  return {};
}

template <typename Sink>
void PutValue(const json::value& v, Sink& sink);

template <typename Sink>
void PutObject(const json::object& o, Sink& sink) {
  std::vector<const json::key_value_pair*> fields;
  fields.reserve(o.size());
  for (const auto& kv : o) {
    if (!IsInstanceLocal(kv.key())) fields.push_back(&kv);
  }
  std::sort(fields.begin(), fields.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
  sink.Put('{');
  for (const auto* kv : fields) {
    PutText(kv->key(), sink);
    sink.Put('=');
    PutValue(kv->value(), sink);
    sink.Put(',');
  }
  sink.Put('}');
}

// Elements with identities (uuid, or tag name) are ordered by it: two instances may list them in
// different orders. Arrays of plain values keep their order.
template <typename Sink>
void PutArray(const json::array& a, Sink& sink) {
  std::vector<std::pair<std::string_view, const json::value*>> items;
  items.reserve(a.size());
  for (const auto& v : a) items.emplace_back(SortKey(v), &v);
  std::stable_sort(items.begin(), items.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  sink.Put('[');
  for (const auto& item : items) {
    PutValue(*item.second, sink);
    sink.Put(',');
  }
  sink.Put(']');
}

template <typename Sink>
void PutValue(const json::value& v, Sink& sink) {
  if (v.is_object()) {
    PutObject(v.get_object(), sink);
  } else if (v.is_array()) {
    PutArray(v.get_array(), sink);
  } else {
    PutScalar(v, sink);
  }
}

}  // namespace

std::string ContentHash(const json::object& event) {
  Digest d;
  PutObject(event, d);
  return d.Hex();
}

std::string CanonicalForm(const json::object& event) {
  TextSink s;
  PutObject(event, s);
  return std::move(s.out);
}

}  // namespace sgsync::misp
