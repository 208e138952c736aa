#include "common/log_context.h"

#include <cstdio>
#include <random>

namespace sgsync {

namespace {
thread_local LogContext current;
}  // namespace

const LogContext& CurrentLogContext() { return current; }

ScopedLogContext::ScopedLogContext(const LogContext& fields) : saved_(current) {
  if (!fields.link.empty()) current.link = fields.link;
  if (!fields.direction.empty()) current.direction = fields.direction;
  if (!fields.run_id.empty()) current.run_id = fields.run_id;
  if (!fields.event_uuid.empty()) current.event_uuid = fields.event_uuid;
}

ScopedLogContext::~ScopedLogContext() { current = saved_; }

std::string NewRunId() {
  thread_local std::mt19937 rng{std::random_device{}()};
  char text[9];
  std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(rng()));
  return text;
}

}  // namespace sgsync
