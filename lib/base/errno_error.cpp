#include "ipoib/base/errno_error.h"

#include <cerrno>
#include <cstring>

namespace ipoib {

std::string errno_string(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be buf.
  const char* text = ::strerror_r(err, buf, sizeof buf);
  return text;
}

Error errno_error(ErrorCode code, std::string_view what) { return errno_error(code, what, errno); }

Error errno_error(ErrorCode code, std::string_view what, int err) {
  return {code, std::string(what) + ": " + errno_string(err)};
}

}  // namespace ipoib
