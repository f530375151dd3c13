// ipoib/base/fd.h — the one owner of a file descriptor.
//
//   Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
//   if (!fd.valid()) return errno_error(ErrorCode::kIoFailure, "open " + path);
//   ::read(fd.get(), ...);                       // closed when fd goes out of scope
#pragma once

#include <unistd.h>

#include <utility>

namespace ipoib {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset(std::exchange(other.fd_, -1));
    }
    return *this;
  }
  ~Fd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  // Gives up ownership without closing.
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace ipoib
