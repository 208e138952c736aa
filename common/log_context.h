// common/log_context.h: what a log line is about, carried by the thread that writes it.
//
// The engine and the daemon set the link, the direction, the run and the event they are working on
// with a ScopedLogContext; sgsyncd's log sinks add the non-empty fields to every line (JSON keys
// `link`, `direction`, `run_id`, `event_uuid`; key=value in the text format), so an operator can
// filter on them (docs/operations.md, "Logs"). A thread a run starts takes its parent's context
// (Capture, then a ScopedLogContext from it in the new thread).
#pragma once

#include <array>
#include <string>
#include <utility>

namespace sgsync {

struct LogContext {
  std::string link;
  std::string direction;   // push | pull
  std::string run_id;      // a short random id per run
  std::string event_uuid;  // the event in hand
};

// The calling thread's context (empty fields when nothing is set).
const LogContext& CurrentLogContext();

// The context's fields by their key in the logs, in order: link, direction, run_id, event_uuid.
inline std::array<std::pair<const char*, const std::string*>, 4> Fields(const LogContext& c) {
  return {
      {{"link", &c.link}, {"direction", &c.direction}, {"run_id", &c.run_id}, {"event_uuid", &c.event_uuid}}};
}

// Sets the non-empty fields of `fields` for the calling thread until it goes out of scope, then
// restores what was there.
class ScopedLogContext {
 public:
  explicit ScopedLogContext(const LogContext& fields);
  ~ScopedLogContext();
  ScopedLogContext(const ScopedLogContext&) = delete;
  ScopedLogContext& operator=(const ScopedLogContext&) = delete;

 private:
  LogContext saved_;
};

// A new run id: 8 hex digits.
std::string NewRunId();

}  // namespace sgsync
