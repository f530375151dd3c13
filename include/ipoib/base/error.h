// ipoib/base/error.h — the project's one error type and its must-check Result<T>.
//
// Every recoverable failure is an Error value carrying a CNI error code, a message that names
// the problem and optional details. Layers add context as the error travels up; exactly one
// function (cni::write_error) turns it into the CNI error JSON on stdout.
//
//   Result<int> parse_mtu(std::string_view s);
//   IPOIB_TRY_ASSIGN(int mtu, parse_mtu(text));           // returns the Error on failure
//   IPOIB_TRY(link.set_mtu(mtu));                          // Result<void>
//   return Error(ErrorCode::kInvalidNetworkConfig, "mtu: must be 72..4092");
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace ipoib {

// CNI error codes (SPEC.md "Error" section) plus this plugin's own (100 and up).
enum class ErrorCode : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnvironment = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidNetworkConfig = 7,
  kTryAgainLater = 11,
  kNotAvailable = 50,
  kLimitedConnectivity = 51,
  // Plugin-specific.
  kNetlinkFailure = 100,    // the kernel refused a link, address or route operation
  kNamespaceFailure = 101,  // a network namespace could not be opened or entered
  kIpamFailure = 102,       // allocation failed (range exhausted, delegate failed)
  kStoreCorrupt = 103,      // the IPAM store failed its integrity check; nothing was changed
  kCheckFailed = 104,       // CHECK found the attachment differs from prevResult
  kInternal = 110,          // a bug: reported, never a crash
};

class Error {
 public:
  Error(ErrorCode code, std::string msg, std::string details = {})
      : code_(code), msg_(std::move(msg)), details_(std::move(details)) {}

  [[nodiscard]] ErrorCode code() const { return code_; }
  [[nodiscard]] const std::string& msg() const { return msg_; }
  [[nodiscard]] const std::string& details() const { return details_; }

  // Prefixes the message with what the caller was doing: "create child: File exists".
  Error& with_context(std::string_view what) & {
    msg_.insert(0, std::string(what) + ": ");
    return *this;
  }
  Error&& with_context(std::string_view what) && { return std::move(with_context(what)); }

 private:
  ErrorCode code_;
  std::string msg_;
  std::string details_;
};

// A value or an Error. Copyable/movable as T is.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value)
      : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error)
      : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error)
      : error_(std::move(error)), has_error_(true) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return !has_error_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_{ErrorCode::kInternal, ""};
  bool has_error_ = false;
};

using Status = Result<void>;

inline Status ok_status() { return {}; }

}  // namespace ipoib

#define IPOIB_CONCAT_INNER(a, b) a##b
#define IPOIB_CONCAT(a, b) IPOIB_CONCAT_INNER(a, b)

// Returns the error of a failed Result from the enclosing function.
#define IPOIB_TRY(expr)                            \
  do {                                             \
    auto ipoib_try_result_ = (expr);               \
    if (!ipoib_try_result_.ok()) {                 \
      return std::move(ipoib_try_result_).error(); \
    }                                              \
  } while (false)

// Declares `lhs` from the value of a Result or returns its error.
#define IPOIB_TRY_ASSIGN(lhs, expr) \
  IPOIB_TRY_ASSIGN_IMPL(IPOIB_CONCAT(ipoib_try_tmp_, __LINE__), lhs, expr)
#define IPOIB_TRY_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) {                            \
    return std::move(tmp).error();            \
  }                                           \
  lhs = std::move(tmp).value()

// As IPOIB_TRY, adding context to the error on the way up.
#define IPOIB_TRY_CTX(expr, ctx)                                     \
  do {                                                               \
    auto ipoib_try_result_ = (expr);                                 \
    if (!ipoib_try_result_.ok()) {                                   \
      return std::move(ipoib_try_result_).error().with_context(ctx); \
    }                                                                \
  } while (false)
