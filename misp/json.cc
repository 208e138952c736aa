#include "misp/json.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <new>
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace sgsync::misp {
namespace {

// What stream_parser cannot limit itself: string length. A fast pass without paths; only when it
// finds a violation does a second pass build the path of the first offender.
bool StringsWithin(const json::value& v, std::size_t max) {
  switch (v.kind()) {
    case json::kind::string:
      return v.get_string().size() <= max;
    case json::kind::array:
      for (const auto& e : v.get_array()) {
        if (!StringsWithin(e, max)) return false;
      }
      return true;
    case json::kind::object:
      for (const auto& kv : v.get_object()) {
        if (kv.key().size() > max || !StringsWithin(kv.value(), max)) return false;
      }
      return true;
    default:
      return true;
  }
}

std::string FirstLongString(const json::value& v, std::size_t max, const std::string& path) {
  if (v.is_string()) return path;
  if (const auto* a = v.if_array()) {
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (!StringsWithin((*a)[i], max)) return FirstLongString((*a)[i], max, Index(path, i));
    }
  }
  if (const auto* o = v.if_object()) {
    for (const auto& kv : *o) {
      if (kv.key().size() > max) return Child(path, "<key>");
      if (!StringsWithin(kv.value(), max)) return FirstLongString(kv.value(), max, Child(path, kv.key()));
    }
  }
  return path;
}

Status CheckStrings(const json::value& root, const JsonLimits& limits) {
  if (StringsWithin(root, limits.max_string_bytes)) return {};
  std::string path = FirstLongString(root, limits.max_string_bytes, "");
  return Fail(ErrorCode::kLimitExceeded,
              "string longer than the limit of " + std::to_string(limits.max_string_bytes) + " bytes",
              path.empty() ? "$" : path);
}

json::parse_options ParseOptions(const JsonLimits& limits) {
  json::parse_options opts;
  opts.max_depth = limits.max_depth;
  return opts;
}

bool ParseDecimal(std::string_view s, std::int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, *out);
  return ec == std::errc() && ptr == last;
}

}  // namespace

bool MemoryBudget::TryCharge(std::size_t n) {
  std::size_t now = used_.load();
  do {
    if (n > limit_ || now > limit_ - n) return false;
  } while (!used_.compare_exchange_weak(now, now + n));
  return true;
}

struct JsonReader::MemoryCount {
  std::atomic<std::size_t> used{0};
  std::atomic<bool> over_budget{false};
};

namespace {

// The heap, counted: every block the document's arena takes is charged to the document's limit
// and to the shared budget, and given back when the arena (the last value of the tree) goes. Over
// a limit it throws std::bad_alloc, the only way Boost.JSON lets an allocator refuse; JsonReader
// turns that into a kLimitExceeded value right where the parser is called.
class BoundedResource final : public json::memory_resource {
 public:
  BoundedResource(std::size_t limit, std::shared_ptr<MemoryBudget> budget,
                  std::shared_ptr<JsonReader::MemoryCount> count)
      : limit_(limit), budget_(std::move(budget)), count_(std::move(count)) {}

 private:
  // Each block carries its size in a header: the arena gives back blocks with another size than it
  // asked for (Boost 1.81's monotonic_resource leaves its block header out), and both the counts
  // and a sized delete need the true one.
  static std::size_t Header(std::size_t align) { return std::max<std::size_t>(align, 16); }

  void* do_allocate(std::size_t n, std::size_t align) override {
    if (n > limit_ || count_->used.load() > limit_ - n) throw std::bad_alloc();
    if (budget_ && !budget_->TryCharge(n)) {
      count_->over_budget = true;
      throw std::bad_alloc();
    }
    count_->used += n;
    const std::size_t h = Header(align);
    auto* base = static_cast<unsigned char*>(::operator new(n + h, std::align_val_t(h)));
    *reinterpret_cast<std::size_t*>(base) = n;
    return base + h;
  }
  void do_deallocate(void* p, std::size_t, std::size_t align) override {
    const std::size_t h = Header(align);
    auto* base = static_cast<unsigned char*>(p) - h;
    const std::size_t n = *reinterpret_cast<std::size_t*>(base);
    ::operator delete(base, n + h, std::align_val_t(h));
    count_->used -= n;
    if (budget_) budget_->Release(n);
  }
  bool do_is_equal(const json::memory_resource& other) const noexcept override { return this == &other; }

  const std::size_t limit_;
  std::shared_ptr<MemoryBudget> budget_;
  std::shared_ptr<JsonReader::MemoryCount> count_;
};

#if defined(__SANITIZE_THREAD__)
void TsanAcquire(void* address) { __tsan_acquire(address); }
void TsanRelease(void* address) { __tsan_release(address); }
#else
void TsanAcquire(void*) {}
void TsanRelease(void*) {}
#endif

}  // namespace

// A document's arena, safe to allocate from on several threads once the document is parsed. The
// events of one bulk answer go to different threads, which change them (the policy strips tags,
// adds keys); they keep the arena they were parsed into instead of a copy each (the copy was 5% of
// sgsyncd's CPU in a push, docs/performance.md). While the parser alone allocates, it takes no lock
// (nothing else can reach the tree yet, and parsing allocates for every value); the reader shares
// the arena as it hands the document over, before any other thread can see it.
class JsonReader::Arena final : public json::memory_resource {
 public:
  // `self` learns where the arena lives: make_shared_resource builds it inside its own holder.
  Arena(json::storage_ptr upstream, Arena** self) : arena_(std::size_t{1024}, std::move(upstream)) {
    *self = this;
  }
  // The thread that drops the last of the arena's holders destroys it. The holders are counted
  // inside Boost.JSON, whose library Debian builds without ThreadSanitizer, so TSan cannot see that
  // the other threads' last uses (each value's destructor calls do_deallocate) come before the
  // destruction, and reports a race on the arena. The annotations tell it; they cost nothing
  // elsewhere (docs/reliability.md, "Sanitizers").
  ~Arena() override { TsanAcquire(this); }
  void Share() { shared_.store(true, std::memory_order_relaxed); }

 private:
  void* do_allocate(std::size_t n, std::size_t align) override {
    if (!shared_.load(std::memory_order_relaxed)) return arena_.allocate(n, align);
    std::lock_guard lock(mu_);
    return arena_.allocate(n, align);
  }
  // An arena frees all at once.
  void do_deallocate(void*, std::size_t, std::size_t) override { TsanRelease(this); }
  bool do_is_equal(const json::memory_resource& other) const noexcept override { return this == &other; }

  std::atomic<bool> shared_{false};
  std::mutex mu_;
  json::monotonic_resource arena_;
};

}  // namespace sgsync::misp

// Values in a caller-owned arena skip their destructors: the arena frees all at once.
template <>
struct boost::json::is_deallocate_trivial<sgsync::misp::JsonReader::Arena> : std::true_type {};

namespace sgsync::misp {

JsonReader::JsonReader(JsonLimits limits, ArenaOwner owner)
    : limits_(std::move(limits)),
      count_(std::make_shared<MemoryCount>()),
      parser_(json::storage_ptr(), ParseOptions(limits_)) {
  json::storage_ptr upstream =
      json::make_shared_resource<BoundedResource>(limits_.max_memory_bytes, limits_.budget, count_);
  // A document is built once and freed whole, so an arena (monotonic resource) serves it: it
  // halves the memory of a big event compared with one heap allocation per value.
  if (owner == ArenaOwner::kCaller) {
    owned_arena_ = std::make_shared<Arena>(std::move(upstream), &arena_);
    parser_.reset(json::storage_ptr(owned_arena_.get()));
  } else {
    parser_.reset(json::make_shared_resource<Arena>(std::move(upstream), &arena_));
  }
}

std::size_t JsonReader::memory_used() const { return count_->used.load(); }

Error JsonReader::MemoryError() const {
  if (count_->over_budget.load()) {
    return Fail(ErrorCode::kLimitExceeded,
                "the documents being read at once would take more than their shared budget of " +
                    std::to_string(limits_.budget->limit()) + " bytes of memory",
                "byte " + std::to_string(bytes_seen_));
  }
  return Fail(ErrorCode::kLimitExceeded,
              "the parsed document would take more than the limit of " +
                  std::to_string(limits_.max_memory_bytes) + " bytes of memory (too many elements)",
              "byte " + std::to_string(bytes_seen_));
}

Status JsonReader::Write(std::string_view chunk) {
  if (failed_) return *failed_;
  if (chunk.size() > limits_.max_document_bytes - bytes_seen_) {
    failed_ = Fail(ErrorCode::kLimitExceeded,
                   "document exceeds the limit of " + std::to_string(limits_.max_document_bytes) + " bytes",
                   "byte " + std::to_string(limits_.max_document_bytes));
    return *failed_;
  }
  boost::system::error_code ec;
  std::size_t used = 0;
  try {
    used = parser_.write_some(chunk.data(), chunk.size(), ec);
  } catch (const std::bad_alloc&) {
    failed_ = MemoryError();
    parser_.reset();  // gives the arena back now, not when the reader goes
    return *failed_;
  }
  // write_some stops at the end of a complete value; anything after it is trailing garbage.
  if (!ec && used < chunk.size()) ec = json::error::extra_data;
  if (ec) {
    ErrorCode code = ec == json::error::too_deep ? ErrorCode::kLimitExceeded : ErrorCode::kParse;
    std::string what = ec == json::error::too_deep
                           ? "nesting deeper than the limit of " + std::to_string(limits_.max_depth)
                           : "malformed JSON: " + ec.message();
    failed_ = Fail(code, std::move(what), "byte " + std::to_string(bytes_seen_ + used));
    return *failed_;
  }
  bytes_seen_ += chunk.size();
  return {};
}

Result<json::value> JsonReader::Finish() {
  if (failed_) return *failed_;
  boost::system::error_code ec;
  try {
    parser_.finish(ec);
  } catch (const std::bad_alloc&) {
    failed_ = MemoryError();
    parser_.reset();
    return *failed_;
  }
  if (ec) {
    failed_ = Fail(ErrorCode::kParse, bytes_seen_ == 0 ? "empty document" : "malformed JSON: " + ec.message(),
                   "byte " + std::to_string(bytes_seen_));
    return *failed_;
  }
  json::value v = parser_.release();
  arena_->Share();  // the tree holds the arena now; the reader no longer touches it
  if (auto s = CheckStrings(v, limits_); !s.ok()) {
    failed_ = s.error();
    return *failed_;
  }
  failed_ = Fail(ErrorCode::kInternal, "JsonReader used after Finish");
  return v;
}

Result<json::value> ParseJson(std::string_view bytes, const JsonLimits& limits, std::string_view source) {
  JsonReader reader(limits);
  if (auto s = reader.Write(bytes); !s.ok()) return s.error().Within(source);
  auto v = reader.Finish();
  if (!v.ok()) return v.error().Within(source);
  return v;
}

std::string ToJson(const json::value& v) { return json::serialize(v); }

std::string Child(std::string_view path, std::string_view key) {
  std::string out;
  out.reserve(path.size() + key.size() + 1);
  out += path;
  if (!path.empty()) out += '.';
  out += key;
  return out;
}

std::string Index(std::string_view path, std::size_t i) {
  std::string out(path);
  out += '[';
  out += std::to_string(i);
  out += ']';
  return out;
}

std::string Describe(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return v.get_bool() ? "true" : "false";
    case json::kind::int64:
      return "number " + std::to_string(v.get_int64());
    case json::kind::uint64:
      return "number " + std::to_string(v.get_uint64());
    case json::kind::double_:
      return "number " + json::serialize(v);
    case json::kind::object:
      return "object";
    case json::kind::array:
      return "array";
    case json::kind::string: {
      std::string_view s = v.get_string();
      std::string out = "string ";
      out += json::serialize(json::value(s.substr(0, 40)));
      if (s.size() > 40) out += "...";
      return out;
    }
  }
  return "value";
}

Result<std::int64_t> ReadInt(const json::value& v, std::string_view path) {
  std::int64_t out = 0;
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(v.get_uint64());
  }
  if (v.is_string() && ParseDecimal(v.get_string(), &out)) return out;
  return Fail(ErrorCode::kParse, "expected an integer, found " + Describe(v), std::string(path));
}

Result<bool> ReadBool(const json::value& v, std::string_view path) {
  if (v.is_bool()) return v.get_bool();
  if (v.is_int64() && (v.get_int64() == 0 || v.get_int64() == 1)) return v.get_int64() == 1;
  if (v.is_uint64() && v.get_uint64() <= 1) return v.get_uint64() == 1;
  if (v.is_string()) {
    std::string_view s = v.get_string();
    if (s == "1" || s == "true") return true;
    if (s == "0" || s == "false") return false;
  }
  return Fail(ErrorCode::kParse, "expected a boolean, found " + Describe(v), std::string(path));
}

Result<std::string_view> ReadString(const json::value& v, std::string_view path) {
  if (v.is_string()) return std::string_view(v.get_string());
  return Fail(ErrorCode::kParse, "expected a string, found " + Describe(v), std::string(path));
}

namespace {

// An optional field read with `read`; the field's path is built for an error only, because these run
// for several fields of every element (the read is pure, so reading again with the path is harmless).
template <typename T>
Result<std::optional<T>> ReadOptional(const json::value* v, std::string_view key, std::string_view path,
                                      Result<T> (*read)(const json::value&, std::string_view)) {
  if (v == nullptr || v->is_null()) return std::optional<T>();
  Result<T> r = read(*v, {});
  if (!r.ok()) return read(*v, Child(path, key)).error();
  return std::optional<T>(*r);
}

}  // namespace

Result<std::optional<std::int64_t>> OptInt(const json::object& o, std::string_view key,
                                           std::string_view path) {
  return ReadOptional(o.if_contains(key), key, path, &ReadInt);
}

Result<std::optional<std::int64_t>> OptInt(const json::value* v, std::string_view key,
                                           std::string_view path) {
  return ReadOptional(v, key, path, &ReadInt);
}

Result<std::optional<bool>> OptBool(const json::object& o, std::string_view key, std::string_view path) {
  return ReadOptional(o.if_contains(key), key, path, &ReadBool);
}

Result<std::optional<bool>> OptBool(const json::value* v, std::string_view key, std::string_view path) {
  return ReadOptional(v, key, path, &ReadBool);
}

Result<std::optional<std::string_view>> OptString(const json::object& o, std::string_view key,
                                                  std::string_view path) {
  return ReadOptional(o.if_contains(key), key, path, &ReadString);
}

std::int64_t IntOr(const json::object& o, std::string_view key, std::int64_t fallback) {
  return IntOr(o.if_contains(key), fallback);
}

std::int64_t IntOr(const json::value* v, std::int64_t fallback) {
  if (v == nullptr) return fallback;
  if (v->is_int64()) return v->get_int64();
  std::int64_t out = 0;
  if (v->is_string() && ParseDecimal(v->get_string(), &out)) return out;
  if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(v->get_uint64());
  }
  if (v->is_bool()) return v->get_bool() ? 1 : 0;
  return fallback;
}

bool BoolOr(const json::object& o, std::string_view key, bool fallback) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return fallback;
  auto b = ReadBool(*v, key);
  return b.ok() ? *b : fallback;
}

std::string_view StringOr(const json::object& o, std::string_view key, std::string_view fallback) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return fallback;
  return v->get_string();
}

void WriteInt(json::object& o, std::string_view key, std::int64_t v) { o[key] = std::to_string(v); }

void WriteBool(json::object& o, std::string_view key, bool v) { o[key] = v; }

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

}  // namespace sgsync::misp
