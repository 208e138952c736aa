// Fuzzes the MISP JSON codec with what a peer could send: any bytes as an event document (the
// events/view form), as an events/index answer and as a restSearch list. Whatever the input, the
// codec returns a value or an Error; a crash, a sanitizer report or an unbounded allocation is a
// finding. A document that decodes must encode and decode again to the same event. Read as an
// events/add answer, a document that parses must give the streaming saved-event reader every element
// uuid the tree holds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "misp/api.h"
#include "misp/elements.h"
#include "misp/event.h"
#include "misp/json.h"
#include "misp/saved_event.h"

namespace {

// Tight limits: the fuzzer finds the paths past a limit without spending its memory on them.
sgsync::misp::JsonLimits Limits() {
  sgsync::misp::JsonLimits l;
  l.max_document_bytes = 1 << 20;
  l.max_string_bytes = 1 << 16;
  l.max_memory_bytes = 64 << 20;
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  sgsync::misp::DecodeOptions options;
  options.limits = Limits();
  auto event = sgsync::misp::EventDocument::Parse(bytes, options);
  if (event.ok()) {
    std::string again = event->Serialize();
    auto reparsed = sgsync::misp::EventDocument::Parse(again, options);
    if (!reparsed.ok() || reparsed->Serialize() != again) std::abort();  // the codec lost its own output
  }
  auto root = sgsync::misp::ParseJson(bytes, Limits());
  auto saved = sgsync::misp::ReadSavedEvent(bytes, Limits());
  if (!root.ok()) return 0;
  if (!saved.ok()) std::abort();  // the tree parsed it: the reader must too
  const boost::json::value* answered = root->is_object() ? root->get_object().if_contains("Event") : nullptr;
  // (Not the converse: with a key twice the tree keeps one value, the reader has seen both.)
  if (answered != nullptr && answered->is_object()) {
    if (!saved->has_event) std::abort();
    for (const auto& m : sgsync::misp::ElementsMissingFrom(answered->get_object(), saved->element_uuids)) {
      if (m.uuid.size() <= 64) std::abort();  // only an overlong "uuid" is not kept
    }
  }
  (void)sgsync::misp::DecodeEventIndex(*root);
  (void)sgsync::misp::DecodeSharingGroupIndex(*root);
  (void)sgsync::misp::DecodeServerVersion(*root);
  (void)sgsync::misp::DecodeUserInfo(*root);
  (void)sgsync::misp::DecodeEventList(std::move(*root), options);
  return 0;
}
