// common/result.h: how sgsync reports expected failures.
//
// An operation that can fail for reasons outside the program's control (a peer down, a malformed
// event, a full disk) returns Result<T>: either the value, or an Error that says what failed
// (code and message) and where (a JSON path, a file and line, a URL, a table). Exceptions are kept
// for programming errors only; reading the value of a failed Result is one, and aborts.
//
// Result is a plain value type: copyable when T is, movable, not thread-safe beyond that.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace sgsync {

// Kinds of failure. Callers branch on these; the message is for people.
enum class ErrorCode {
  kInvalidArgument,     // the caller gave something unusable (bad configuration, bad flag)
  kParse,               // input is not well-formed (JSON syntax, wrong type, bad UUID)
  kLimitExceeded,       // input is larger or deeper than a configured limit allows
  kNotFound,            // the thing asked for does not exist
  kAlreadyExists,       // creating something that is already there
  kNotNewer,            // an edit that is not strictly newer than what is stored
  kPermissionDenied,    // authenticated but not allowed (MISP 403, file mode)
  kUnauthenticated,     // credentials refused (MISP 401/403 on the key)
  kRateLimited,         // the peer asked us to slow down (429)
  kUnavailable,         // the peer or resource cannot be reached now; trying later may work
  kTimeout,             // a deadline passed
  kIo,                  // the operating system refused (disk full, read-only, missing directory)
  kCorruption,          // stored data is damaged or not what it claims to be
  kVersionMismatch,     // data written by a newer or incompatible sgsync or MISP
  kRefused,             // a policy said no (sharing policy, TLS verification)
  kFailedPrecondition,  // the thing is not in the state the action needs (retrying an item that is not dead)
  kInternal,            // a broken invariant that was caught rather than crashed on
};

// The stable lower-case name of a code ("parse", "not_found"), for logs and the admin API.
std::string_view ErrorCodeName(ErrorCode code);

// What failed and where. `where` is empty when the place is the whole operation.
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::string where;
  // kRateLimited: how long the peer asked to wait (its Retry-After, clamped), 0 when it did not say.
  std::int64_t retry_after_seconds = 0;

  // "<where>: <message> [<code>]", or "<message> [<code>]" when where is empty.
  std::string ToString() const;

  // Returns a copy whose `where` is `outer` joined in front of this one ("config.toml:12" +
  // "link[0].url"), so a caller can say where it was when a callee failed.
  Error Within(std::string_view outer) const;
};

// Shorthand for building an error: return Fail(ErrorCode::kParse, "expected a string", path);
inline Error Fail(ErrorCode code, std::string message, std::string where = {}) {
  return Error{code, std::move(message), std::move(where)};
}

namespace internal {
[[noreturn]] void DieOnBadAccess(const Error* error);
}  // namespace internal

template <typename T>
class [[nodiscard]] Result {
 public:
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>, "Result<Error> is ambiguous");

  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit on purpose
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // The value. Calling these on a failed Result is a programming error and aborts.
  T& value() & {
    Check();
    return std::get<0>(state_);
  }
  const T& value() const& {
    Check();
    return std::get<0>(state_);
  }
  T&& value() && {
    Check();
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The error. Calling this on a successful Result is a programming error and aborts.
  const Error& error() const {
    if (ok()) internal::DieOnBadAccess(nullptr);
    return std::get<1>(state_);
  }

  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<0>(state_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void Check() const {
    if (!ok()) internal::DieOnBadAccess(&std::get<1>(state_));
  }
  std::variant<T, Error> state_;
};

// Result of an operation that produces nothing but may fail. Default-constructed = success.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT: implicit on purpose

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    if (!failed_) internal::DieOnBadAccess(nullptr);
    return error_;
  }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

// Propagates a failure to the caller: SGSYNC_TRY(auto v, ParseThing(x)); or SGSYNC_TRY_STATUS(Write(x));
#define SGSYNC_CONCAT_INNER(a, b) a##b
#define SGSYNC_CONCAT(a, b) SGSYNC_CONCAT_INNER(a, b)
#define SGSYNC_TRY_STATUS(expr)                                      \
  do {                                                               \
    auto sgsync_try_status_ = (expr);                                \
    if (!sgsync_try_status_.ok()) return sgsync_try_status_.error(); \
  } while (0)
#define SGSYNC_TRY_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                     \
  if (!tmp.ok()) return tmp.error();     \
  decl = std::move(tmp).value()
#define SGSYNC_TRY(decl, expr) SGSYNC_TRY_IMPL(SGSYNC_CONCAT(sgsync_try_, __LINE__), decl, expr)

}  // namespace sgsync
