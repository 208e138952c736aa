#include "misp/saved_event.h"

#include <boost/json/basic_parser_impl.hpp>
#include <vector>

#include "common/encoding.h"

namespace sgsync::misp {
namespace {

// Where a container or a value sits in the answer, as far as the reader cares.
enum class Role {
  kRoot,           // the answer itself
  kEvent,          // {"Event": {...}}
  kElementList,    // Event.Attribute, Event.EventReport, Event.Object[].Attribute
  kObjectList,     // Event.Object
  kElement,        // an attribute or a report
  kObjectElement,  // an object (its Attribute list is an element list)
  kOther,          // anything else: read and forgotten
};

// What a string value is wanted for.
enum class Capture { kNone, kEventUuid, kEventId, kElementUuid };

constexpr std::size_t kMaxKeptKey = 16;     // the longest key the reader compares with ("EventReport")
constexpr std::size_t kMaxKeptString = 64;  // a uuid or an id; anything longer is neither

}  // namespace

struct SavedEventReader::Impl {
  struct Handler {
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    struct Frame {
      Role role;
      bool object;
      std::string key;  // the key whose value comes next (objects), cut at kMaxKeptKey
      bool key_too_long = false;
    };

    std::size_t max_string_bytes = 0;
    std::vector<Frame> stack;
    SavedEvent out;
    Capture capture = Capture::kNone;
    bool in_string = false;
    std::string text;  // the string being captured
    bool text_too_long = false;

    // The role of a value that starts now, from its container and key.
    Role ChildRole(bool is_object) const {
      if (stack.empty()) return is_object ? Role::kRoot : Role::kOther;
      const Frame& f = stack.back();
      const std::string_view key = f.key_too_long ? std::string_view() : std::string_view(f.key);
      switch (f.role) {
        case Role::kRoot:
          return is_object && key == "Event" ? Role::kEvent : Role::kOther;
        case Role::kEvent:
          if (is_object) return Role::kOther;
          if (key == "Attribute" || key == "EventReport") return Role::kElementList;
          return key == "Object" ? Role::kObjectList : Role::kOther;
        case Role::kElementList:
          return is_object ? Role::kElement : Role::kOther;
        case Role::kObjectList:
          return is_object ? Role::kObjectElement : Role::kOther;
        case Role::kObjectElement:
          return !is_object && key == "Attribute" ? Role::kElementList : Role::kOther;
        default:
          return Role::kOther;
      }
    }

    Capture ScalarCapture() const {
      if (stack.empty() || !stack.back().object || stack.back().key_too_long) return Capture::kNone;
      const Frame& f = stack.back();
      if (f.role == Role::kEvent) {
        if (f.key == "uuid") return Capture::kEventUuid;
        if (f.key == "id") return Capture::kEventId;
      }
      if ((f.role == Role::kElement || f.role == Role::kObjectElement) && f.key == "uuid")
        return Capture::kElementUuid;
      return Capture::kNone;
    }

    bool Open(bool is_object) {
      Role role = ChildRole(is_object);
      if (role == Role::kEvent) out.has_event = true;
      stack.push_back(Frame{role, is_object, {}});
      return true;
    }
    bool Close() {
      stack.pop_back();
      return true;
    }

    void Keep(std::string_view value) {
      switch (capture) {
        case Capture::kEventUuid:
          out.uuid = value;
          break;
        case Capture::kEventId:
          out.id = value;
          break;
        case Capture::kElementUuid:
          out.element_uuids.Insert(value);
          break;
        case Capture::kNone:
          break;
      }
    }

    bool StringPart(std::string_view s, std::size_t total, boost::system::error_code& ec, bool last) {
      if (total > max_string_bytes) {
        ec = json::error::string_too_large;
        return false;
      }
      if (!in_string) {
        in_string = true;
        capture = ScalarCapture();
        text.clear();
        text_too_long = false;
      }
      if (capture != Capture::kNone && !text_too_long) {
        if (text.size() + s.size() > kMaxKeptString) {
          text_too_long = true;
        } else {
          text.append(s);
        }
      }
      if (last) {
        if (capture != Capture::kNone && !text_too_long) Keep(text);
        in_string = false;
        capture = Capture::kNone;
      }
      return true;
    }

    bool KeyPart(std::string_view s, bool first) {
      Frame& f = stack.back();
      if (first) {
        f.key.clear();
        f.key_too_long = false;
      }
      if (f.key_too_long) return true;
      if (f.key.size() + s.size() > kMaxKeptKey) {
        f.key_too_long = true;
        f.key.clear();
      } else {
        f.key.append(s);
      }
      return true;
    }

    bool key_started = false;

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_array_begin(boost::system::error_code&) { return Open(false); }
    bool on_array_end(std::size_t, boost::system::error_code&) { return Close(); }
    bool on_object_begin(boost::system::error_code&) { return Open(true); }
    bool on_object_end(std::size_t, boost::system::error_code&) { return Close(); }
    bool on_string_part(std::string_view s, std::size_t n, boost::system::error_code& ec) {
      return StringPart(s, n, ec, false);
    }
    bool on_string(std::string_view s, std::size_t n, boost::system::error_code& ec) {
      return StringPart(s, n, ec, true);
    }
    bool on_key_part(std::string_view s, std::size_t n, boost::system::error_code& ec) {
      if (n > max_string_bytes) return ec = json::error::key_too_large, false;
      KeyPart(s, !key_started);
      key_started = true;
      return true;
    }
    bool on_key(std::string_view s, std::size_t n, boost::system::error_code& ec) {
      if (n > max_string_bytes) return ec = json::error::key_too_large, false;
      KeyPart(s, !key_started);
      key_started = false;
      return true;
    }
    bool on_number_part(std::string_view, boost::system::error_code&) { return true; }
    bool on_int64(std::int64_t v, std::string_view, boost::system::error_code&) {
      if (ScalarCapture() == Capture::kEventId) out.id = std::to_string(v);
      return true;
    }
    bool on_uint64(std::uint64_t v, std::string_view, boost::system::error_code&) {
      if (ScalarCapture() == Capture::kEventId) out.id = std::to_string(v);
      return true;
    }
    bool on_double(double, std::string_view, boost::system::error_code&) { return true; }
    bool on_bool(bool, boost::system::error_code&) { return true; }
    bool on_null(boost::system::error_code&) { return true; }
    bool on_comment_part(std::string_view, boost::system::error_code&) { return true; }
    bool on_comment(std::string_view, boost::system::error_code&) { return true; }
  };

  static json::parse_options Options(const JsonLimits& limits) {
    json::parse_options o;
    o.max_depth = limits.max_depth;
    return o;
  }

  explicit Impl(const JsonLimits& l) : limits(l), parser(Options(l)) {
    parser.handler().max_string_bytes = l.max_string_bytes;
  }

  Error Fail(const boost::system::error_code& ec, std::size_t at) {
    const bool limit = ec == json::error::too_deep || ec == json::error::string_too_large ||
                       ec == json::error::key_too_large;
    std::string what = ec == json::error::too_deep ? "nesting deeper than the limit of " +
                                                         std::to_string(limits.max_depth)
                       : limit ? "a string longer than the limit of " + std::to_string(limits.max_string_bytes) +
                                     " bytes"
                               : "malformed JSON: " + ec.message();
    failed = sgsync::Fail(limit ? ErrorCode::kLimitExceeded : ErrorCode::kParse, std::move(what),
                          "byte " + std::to_string(at));
    return *failed;
  }

  JsonLimits limits;
  json::basic_parser<Handler> parser;
  std::size_t bytes_seen = 0;
  std::optional<Error> failed;
};

SavedEventReader::SavedEventReader(const JsonLimits& limits) : impl_(std::make_unique<Impl>(limits)) {}
SavedEventReader::~SavedEventReader() = default;

Status SavedEventReader::Write(std::string_view chunk) {
  Impl& m = *impl_;
  if (m.failed) return *m.failed;
  if (chunk.size() > m.limits.max_document_bytes - m.bytes_seen) {
    m.failed = Fail(ErrorCode::kLimitExceeded,
                    "document exceeds the limit of " + std::to_string(m.limits.max_document_bytes) + " bytes",
                    "byte " + std::to_string(m.limits.max_document_bytes));
    return *m.failed;
  }
  // The head is read only for an answer without "Event": once the event has begun, the rest of the
  // answer is not copied into it (it was most of this reader's copying, a whole event per add).
  SavedEvent& out = m.parser.handler().out;
  if (!out.has_event && out.head.size() < SavedEvent::kHeadBytes)
    out.head.append(chunk.substr(0, SavedEvent::kHeadBytes - out.head.size()));
  boost::system::error_code ec;
  std::size_t used = m.parser.write_some(true, chunk.data(), chunk.size(), ec);
  if (!ec && used < chunk.size()) ec = json::error::extra_data;
  if (ec) return m.Fail(ec, m.bytes_seen + used);
  m.bytes_seen += chunk.size();
  return {};
}

Result<SavedEvent> SavedEventReader::Finish() {
  Impl& m = *impl_;
  if (m.failed) return *m.failed;
  boost::system::error_code ec;
  m.parser.write_some(false, nullptr, 0, ec);
  if (ec) return m.Fail(ec, m.bytes_seen);
  if (!m.parser.done()) return m.Fail(json::error::incomplete, m.bytes_seen);
  SavedEvent out = std::move(m.parser.handler().out);
  m.failed = sgsync::Fail(ErrorCode::kInvalidArgument, "the answer was already read");
  return out;
}

Result<SavedEvent> ReadSavedEvent(std::string_view answer, const JsonLimits& limits) {
  SavedEventReader reader(limits);
  SGSYNC_TRY_STATUS(reader.Write(answer));
  return reader.Finish();
}

}  // namespace sgsync::misp
