// ipoib/base/errno_error.h — builds an Error from errno.
//
//   if (::fsync(fd.get()) != 0) return errno_error(ErrorCode::kIoFailure, "fsync " + path);
//   // -> "fsync /var/lib/cni/ipoib/net/lock: Input/output error"
#pragma once

#include <string>
#include <string_view>

#include "ipoib/base/error.h"

namespace ipoib {

// Returns strerror(err) without touching errno.
std::string errno_string(int err);

// Error "<what>: <strerror(errno)>" with the given code; reads errno at the call.
Error errno_error(ErrorCode code, std::string_view what);
Error errno_error(ErrorCode code, std::string_view what, int err);

}  // namespace ipoib
