#include "ipoib/base/fd_stream.h"

#include <unistd.h>

#include <cerrno>

namespace ipoib {

FdStreambuf::FdStreambuf(int fd) : fd_(fd) { setp(buf_.data(), buf_.data() + buf_.size()); }

FdStreambuf::~FdStreambuf() { (void)drain(); }

bool FdStreambuf::drain() {
  const char* p = pbase();
  const char* const end = pptr();
  while (!failed_ && p < end) {
    const ssize_t n = ::write(fd_, p, static_cast<std::size_t>(end - p));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      failed_ = true;
      break;
    }
    p += n;
  }
  setp(buf_.data(), buf_.data() + buf_.size());
  return !failed_;
}

FdStreambuf::int_type FdStreambuf::overflow(int_type ch) {
  if (!drain()) {
    return traits_type::eof();
  }
  if (!traits_type::eq_int_type(ch, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
  }
  return traits_type::not_eof(ch);
}

int FdStreambuf::sync() { return drain() ? 0 : -1; }

}  // namespace ipoib
