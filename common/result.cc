#include "common/result.h"

#include <cstdio>

namespace sgsync {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kParse:
      return "parse";
    case ErrorCode::kLimitExceeded:
      return "limit_exceeded";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kNotNewer:
      return "not_newer";
    case ErrorCode::kPermissionDenied:
      return "permission_denied";
    case ErrorCode::kUnauthenticated:
      return "unauthenticated";
    case ErrorCode::kRateLimited:
      return "rate_limited";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kCorruption:
      return "corruption";
    case ErrorCode::kVersionMismatch:
      return "version_mismatch";
    case ErrorCode::kRefused:
      return "refused";
    case ErrorCode::kFailedPrecondition:
      return "failed_precondition";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

std::string Error::ToString() const {
  std::string out;
  if (!where.empty()) {
    out += where;
    out += ": ";
  }
  out += message;
  out += " [";
  out += ErrorCodeName(code);
  out += "]";
  return out;
}

Error Error::Within(std::string_view outer) const {
  Error copy = *this;
  if (outer.empty()) return copy;
  if (copy.where.empty()) {
    copy.where = std::string(outer);
  } else {
    std::string joined(outer);
    // A JSON path continues with '.' or '['; anything else (a file name) is separated by ": ".
    joined += (copy.where.front() == '[' || copy.where.front() == '.') ? "" : ": ";
    joined += copy.where;
    copy.where = std::move(joined);
  }
  return copy;
}

namespace internal {
void DieOnBadAccess(const Error* error) {
  if (error != nullptr) {
    std::fprintf(stderr, "sgsync: value() of a failed Result: %s\n", error->ToString().c_str());
  } else {
    std::fprintf(stderr, "sgsync: error() of a successful Result\n");
  }
  std::abort();
}
}  // namespace internal

}  // namespace sgsync
