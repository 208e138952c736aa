// misp/json.h: reading untrusted JSON into Boost.JSON values, within limits, and MISP's loose
// scalars.
//
// Every byte sgsync receives from a MISP is untrusted. JsonReader parses it incrementally (network
// buffers are written as they arrive) and refuses, with the byte offset or JSON path, a document
// that is malformed, larger, deeper or holds longer strings than the configured limits allow. Memory
// stays proportional to what was accepted: the reader stops at the first byte over the size limit.
//
// MISP encodes numbers and booleans loosely ("distribution": "1", "to_ids": "0", "local": 1).
// ReadInt/ReadBool accept every form real MISP sends; docs/misp-json.md has the table.
#pragma once

#include <atomic>
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sgsync::misp {

namespace json = boost::json;

// Memory shared by every document being parsed at the same time (all requests in flight of a
// process): a reader charges what its document's tree allocates and gives it back when the tree is
// freed. Thread-safe.
class MemoryBudget {
 public:
  explicit MemoryBudget(std::size_t limit) : limit_(limit) {}
  // Takes `n` bytes if they fit; false (nothing taken) when they would pass the limit.
  bool TryCharge(std::size_t n);
  void Release(std::size_t n) { used_.fetch_sub(n); }
  std::size_t in_use() const { return used_.load(); }
  std::size_t limit() const { return limit_; }

 private:
  const std::size_t limit_;
  std::atomic<std::size_t> used_{0};
};

struct JsonLimits {
  std::size_t max_document_bytes = std::size_t{512} << 20;  // 512 MiB
  std::size_t max_depth = 64;                               // MISP events nest about 8 deep
  std::size_t max_string_bytes = std::size_t{128} << 20;    // base64 attachments can be large
  // What the parsed tree of one document may cost in memory. Bytes alone do not bound it: a
  // document of millions of tiny elements costs many times its size (a 430 MB answer of 3.8 million
  // attributes once took 8.9 GB). A 150k-attribute event (67 MB) parses in about 200 MB.
  std::size_t max_memory_bytes = std::size_t{1} << 30;  // 1 GiB
  // When set, the tree is also charged to this budget (shared by the requests in flight).
  std::shared_ptr<MemoryBudget> budget;
};

// Who keeps a parsed document's arena. kTree: every value of the tree holds it (a counted
// reference each), and it goes with the last of them; the values may go anywhere. kCaller: the
// values hold a plain pointer, and the caller keeps the arena (TakeArena) at least as long as any of
// them, copies included: no count is taken or dropped for each value, and the tree is freed whole
// with the arena instead of value by value (tearing down the decided events of a push was 4.5% of
// its CPU). For documents whose every value has one known owner (MispClient::RestSearch).
enum class ArenaOwner { kTree, kCaller };

// Incremental parser for one document. Not thread-safe; one instance per document.
class JsonReader {
 public:
  explicit JsonReader(JsonLimits limits = {}, ArenaOwner owner = ArenaOwner::kTree);

  // Feeds the next chunk. After a failure the reader is spent: every later call fails the same way.
  Status Write(std::string_view chunk);
  // Ends the document and hands over the value; the reader is spent afterwards.
  Result<json::value> Finish();
  // ArenaOwner::kCaller, after Finish: the arena every value of the document lives in.
  std::shared_ptr<const void> TakeArena() { return std::move(owned_arena_); }

  std::size_t bytes_seen() const { return bytes_seen_; }
  // What the tree built so far has allocated (charged to the limits).
  std::size_t memory_used() const;

  // What the document's allocator has counted; shared with it, since the tree may outlive the reader.
  struct MemoryCount;

 private:
  Error MemoryError() const;

  JsonLimits limits_;
  std::shared_ptr<MemoryCount> count_;
  class Arena;
  Arena* arena_ = nullptr;  // the document's arena, owned by the parser and then by the tree (kTree)
  std::shared_ptr<Arena> owned_arena_;  // ArenaOwner::kCaller: the arena, until TakeArena
  json::stream_parser parser_;
  std::size_t bytes_seen_ = 0;
  std::optional<Error> failed_;
};

// Parses a whole buffer with the limits; `source` names it in errors ("events/view response").
Result<json::value> ParseJson(std::string_view bytes, const JsonLimits& limits = {},
                              std::string_view source = {});

// Compact serialisation (what MISP accepts and what goes on the wire).
std::string ToJson(const json::value& v);

// Joins JSON paths: Child("Event", "Attribute") = "Event.Attribute", Index("Event.Attribute", 3) =
// "Event.Attribute[3]".
std::string Child(std::string_view path, std::string_view key);
std::string Index(std::string_view path, std::size_t i);

// A short description of a value's JSON type and content for error messages: `string "abc"`,
// `number 7`, `object`. Long strings are cut.
std::string Describe(const json::value& v);

// Loose scalar readers. `path` names the value in errors. Accepted forms:
//   int:  int64, uint64 within range, a string of an optional '-' and decimal digits.
//   bool: true/false, 0/1, "0"/"1", "true"/"false".
//   string: a string (a number is not silently turned into one).
// The Opt* variants treat an absent key or null as std::nullopt.
Result<std::int64_t> ReadInt(const json::value& v, std::string_view path);
Result<bool> ReadBool(const json::value& v, std::string_view path);
Result<std::string_view> ReadString(const json::value& v, std::string_view path);
Result<std::optional<std::int64_t>> OptInt(const json::object& o, std::string_view key,
                                           std::string_view path);
Result<std::optional<bool>> OptBool(const json::object& o, std::string_view key, std::string_view path);
Result<std::optional<std::string_view>> OptString(const json::object& o, std::string_view key,
                                                  std::string_view path);
// The same for a value already found in its object (`v` null: the key is absent), for readers that
// find several keys in one pass over an object's entries instead of a look-up each.
Result<std::optional<std::int64_t>> OptInt(const json::value* v, std::string_view key, std::string_view path);
Result<std::optional<bool>> OptBool(const json::value* v, std::string_view key, std::string_view path);

// Lenient readers for values already validated: they never fail and give `fallback` for an absent
// or unreadable value.
std::int64_t IntOr(const json::object& o, std::string_view key, std::int64_t fallback);
std::int64_t IntOr(const json::value* v, std::int64_t fallback);  // the value itself, may be null
bool BoolOr(const json::object& o, std::string_view key, bool fallback);
std::string_view StringOr(const json::object& o, std::string_view key, std::string_view fallback = {});

// MISP 2.5 write forms: integers as decimal strings, booleans as JSON booleans.
void WriteInt(json::object& o, std::string_view key, std::int64_t v);
void WriteBool(json::object& o, std::string_view key, bool v);

// RFC 4122 textual form, any version, either case: 8-4-4-4-12 hex digits.
bool IsUuid(std::string_view s);

}  // namespace sgsync::misp
