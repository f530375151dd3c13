// Network namespace handles and the scoped switch (see include/ipoib/netns/netns.h).
#include "ipoib/netns/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/file.h"

namespace ipoib::netns {
namespace {

constexpr const char* kCurrentNetnsPath = "/proc/thread-self/ns/net";

enum class OpenFailure { kAbsent, kNotNetns, kOther };

struct Opened {
  Fd fd;
  ino_t inode = 0;
};

// Opens `path` and checks it is an nsfs file for a network namespace. On failure sets `why` and
// returns an Error describing it.
//
// The path comes from CNI_NETNS: it may name a FIFO, a socket or a device. It is first opened
// O_PATH, which never blocks and has no side effect on any file type (open(2)), and checked with
// fstatfs() == NSFS_MAGIC; only an nsfs file is then reopened for real through
// /proc/self/fd/<n> (the same inode, no second lookup of `path`). Symlinks are followed:
// /proc/<pid>/ns/net is one.
Result<Opened> open_netns_file(const std::string& path, OpenFailure& why) {
  Fd probe(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!probe.valid()) {
    const int err = errno;
    why = (err == ENOENT || err == ENOTDIR) ? OpenFailure::kAbsent : OpenFailure::kOther;
    return errno_error(ErrorCode::kNamespaceFailure, "open netns " + path, err);
  }
  struct statfs fs {};
  if (::fstatfs(probe.get(), &fs) != 0) {
    why = OpenFailure::kOther;
    return errno_error(ErrorCode::kNamespaceFailure, "statfs netns " + path);
  }
  // A bind mount removed by `ip netns delete` leaves the empty file on tmpfs behind.
  if (static_cast<unsigned long>(fs.f_type) != static_cast<unsigned long>(NSFS_MAGIC)) {
    why = OpenFailure::kNotNetns;
    struct stat st {};
    const std::string kind = ::fstat(probe.get(), &st) == 0
                                 ? "a " + std::string(file_kind_name(st.st_mode))
                                 : "not a namespace file";
    return Error(ErrorCode::kNamespaceFailure,
                 "open netns " + path + ": " + kind + ", not a network namespace (nsfs) file");
  }
  const std::string reopen = "/proc/self/fd/" + std::to_string(probe.get());
  Fd fd(::open(reopen.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    why = OpenFailure::kOther;
    return errno_error(ErrorCode::kNamespaceFailure, "open netns " + path);
  }
  const int type = ::ioctl(fd.get(), NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    why = OpenFailure::kNotNetns;
    return Error(ErrorCode::kNamespaceFailure, "open netns " + path + ": not a network namespace");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    why = OpenFailure::kOther;
    return errno_error(ErrorCode::kNamespaceFailure, "stat netns " + path);
  }
  return Opened{std::move(fd), st.st_ino};
}

// Continuing after a failed switch back would run the rest of the plugin against the wrong
// namespace: the one failure this module treats as impossible.
[[noreturn]] void die_unrestorable(const NetnsHandle& back, int err) {
  (void)std::fprintf(stderr, "ipoib: fatal: cannot return to network namespace %s: %s\n",
                     back.path().c_str(), errno_string(err).c_str());
  std::abort();
}

}  // namespace

Result<NetnsHandle> NetnsHandle::open(std::string_view path) {
  std::string p(path);
  if (p.empty()) {
    return Error(ErrorCode::kNamespaceFailure, "open netns: empty path");
  }
  OpenFailure why = OpenFailure::kOther;
  IPOIB_TRY_ASSIGN(Opened opened, open_netns_file(p, why));
  return NetnsHandle(std::move(opened.fd), std::move(p), opened.inode);
}

Result<std::optional<NetnsHandle>> NetnsHandle::open_if_exists(std::string_view path) {
  std::string p(path);
  if (p.empty()) {
    return Error(ErrorCode::kNamespaceFailure, "open netns: empty path");
  }
  OpenFailure why = OpenFailure::kOther;
  auto opened = open_netns_file(p, why);
  if (!opened.ok()) {
    if (why == OpenFailure::kAbsent || why == OpenFailure::kNotNetns) {
      return std::optional<NetnsHandle>();
    }
    return std::move(opened).error();
  }
  return std::optional<NetnsHandle>(
      NetnsHandle(std::move(opened->fd), std::move(p), opened->inode));
}

Result<NetnsHandle> NetnsHandle::current() { return open(kCurrentNetnsPath); }

Result<NetnsHandle> NetnsHandle::create() {
  IPOIB_TRY_ASSIGN(NetnsHandle original, current());
  if (::unshare(CLONE_NEWNET) != 0) {
    return errno_error(ErrorCode::kNamespaceFailure, "create netns");
  }
  OpenFailure why = OpenFailure::kOther;
  auto fresh = open_netns_file(kCurrentNetnsPath, why);
  // Go back before anything else: from here on this thread must not act in the new namespace.
  if (::setns(original.fd(), CLONE_NEWNET) != 0) {
    die_unrestorable(original, errno);
  }
  if (!fresh.ok()) {
    return std::move(fresh).error().with_context("create netns");
  }
  std::string path =
      "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fresh->fd.get());
  return NetnsHandle(std::move(fresh->fd), std::move(path), fresh->inode);
}

Result<ScopedNetns> ScopedNetns::enter(const NetnsHandle& target) {
  IPOIB_TRY_ASSIGN(NetnsHandle original, NetnsHandle::current());
  if (::setns(target.fd(), CLONE_NEWNET) != 0) {
    return errno_error(ErrorCode::kNamespaceFailure, "enter netns " + target.path());
  }
  return ScopedNetns(std::move(original));
}

Result<ScopedNetns> ScopedNetns::enter(const NetnsHandle& target, const NetnsHandle& return_to) {
  if (::setns(target.fd(), CLONE_NEWNET) != 0) {
    return errno_error(ErrorCode::kNamespaceFailure, "enter netns " + target.path());
  }
  return ScopedNetns(&return_to);
}

ScopedNetns::ScopedNetns(ScopedNetns&& other) noexcept
    : original_(std::move(other.original_)), borrowed_(other.borrowed_) {
  other.original_.reset();
  other.borrowed_ = nullptr;
}

ScopedNetns::~ScopedNetns() {
  const NetnsHandle* back = restore_to();
  if (back == nullptr) {
    return;
  }
  if (::setns(back->fd(), CLONE_NEWNET) != 0) {
    die_unrestorable(*back, errno);
  }
}

}  // namespace ipoib::netns
