// misp/saved_event.h: what a receiving MISP says it saved, read from its events/add or events/edit
// answer as the answer arrives.
//
// MISP answers a write with the whole saved event ({"Event": {...}}, every element included). The
// sender needs little of it: that it is the event that was sent (its uuid), and which elements the
// receiver holds (their uuids), to find those it accepted without a word and did not save
// (misp/elements.h). Reading the answer into a tree would hold a second copy of the event beside the
// one being sent: about 200 MB more for a 150k-attribute event. SavedEventReader keeps the uuids
// only, so an answer costs 16 bytes an element whatever its size.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "misp/json.h"
#include "misp/uuid_set.h"

namespace sgsync::misp {

struct SavedEvent {
  bool has_event = false;  // the answer's root is an object holding an "Event" object
  std::string uuid;        // Event.uuid as answered (empty when absent or not a string)
  std::string id;          // Event.id, a string or a number in the answer
  // The uuids of every element the answer holds: Event.Attribute[], Event.Object[] and their
  // Attribute[], Event.EventReport[].
  UuidSet element_uuids;
  // The answer's first bytes (at most kHeadBytes): an answer without "Event" is MISP's error form
  // ({"name", "message", "errors"}), which the caller decodes from these. Once the answer's event
  // has begun (has_event), no more is kept: the head may then end anywhere.
  std::string head;
  static constexpr std::size_t kHeadBytes = 64 * 1024;
};

// Incremental reader for one answer; the same size and depth limits as JsonReader (a string longer
// than max_string_bytes is refused, not skipped). Not thread-safe; one instance per answer.
class SavedEventReader {
 public:
  explicit SavedEventReader(const JsonLimits& limits = {});
  ~SavedEventReader();
  SavedEventReader(const SavedEventReader&) = delete;
  SavedEventReader& operator=(const SavedEventReader&) = delete;

  // Feeds the next chunk. After a failure the reader is spent: every later call fails the same way.
  Status Write(std::string_view chunk);
  // Ends the answer: what it said was saved. Malformed or truncated JSON fails with the byte offset.
  Result<SavedEvent> Finish();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The same reading of an answer already held whole (a test, a small answer).
Result<SavedEvent> ReadSavedEvent(std::string_view answer, const JsonLimits& limits = {});

}  // namespace sgsync::misp
