// ipoib/base/fd_stream.h — a std::ostream writing to a file descriptor, for the command-line
// tools' stdout and stderr.
//
// Why not std::cout: with GCC 12's libstdc++, every translation unit that includes <iostream>
// holds a static std::ios_base::Init, and the first one constructs the eight standard streams and
// the classic locale at the start of every process — ~44,000 instructions, a sixth of an IPAM ADD
// (callgrind), paid by the plugin on every CNI call although only the tools print through
// streams. This stream costs nothing until a tool constructs one. The product includes
// <iostream> nowhere.
//
//   FdOstream out(STDOUT_FILENO), err(STDERR_FILENO, Flush::kEveryWrite);
//   out << "ok\n";  // buffered; written at flush() and when `out` is destroyed
#pragma once

#include <array>
#include <ostream>
#include <streambuf>

namespace ipoib {

// Buffered; a write error (EPIPE: the reader went away) drops the rest of the output and sets
// badbit on the stream, as std::cout does.
class FdStreambuf final : public std::streambuf {
 public:
  explicit FdStreambuf(int fd);
  FdStreambuf(const FdStreambuf&) = delete;
  FdStreambuf& operator=(const FdStreambuf&) = delete;
  ~FdStreambuf() override;

 protected:
  int_type overflow(int_type ch) override;
  int sync() override;

 private:
  bool drain();  // writes the buffered bytes; false after a write error
  int fd_;
  bool failed_ = false;
  std::array<char, 4096> buf_{};
};

// kEveryWrite flushes after each output operation (std::unitbuf), as std::cerr does: for stderr.
enum class Flush { kBuffered, kEveryWrite };

class FdOstream final : public std::ostream {
 public:
  explicit FdOstream(int fd, Flush flush = Flush::kBuffered) : std::ostream(nullptr), buf_(fd) {
    rdbuf(&buf_);
    if (flush == Flush::kEveryWrite) {
      setf(std::ios_base::unitbuf);
    }
  }
  FdOstream(const FdOstream&) = delete;
  FdOstream& operator=(const FdOstream&) = delete;
  ~FdOstream() override { flush(); }

 private:
  FdStreambuf buf_;
};

}  // namespace ipoib
