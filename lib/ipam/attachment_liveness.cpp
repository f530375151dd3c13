#include "ipoib/ipam/attachment_liveness.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <optional>

#include "ipoib/base/fd.h"

namespace ipoib::ipam {
namespace {

struct NsId {
  dev_t dev;
  ino_t ino;
};

// The identity of the network namespace `path` names, or nullopt when it names none.
std::optional<NsId> netns_id(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return std::nullopt;
  }
  // O_PATH: no open(2) of the object itself, so a FIFO or device cannot block or react.
  // Symlinks are followed: /proc/<pid>/ns/net is one (a magic link into nsfs).
  const Fd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!fd.valid()) {
    return std::nullopt;
  }
  struct statfs fs {};
  struct stat st {};
  if (::fstatfs(fd.get(), &fs) != 0 || fs.f_type != NSFS_MAGIC || ::fstat(fd.get(), &st) != 0) {
    return std::nullopt;
  }
  // An nsfs file may be another kind of namespace (mnt, pid, ...): ask which. The reopen goes
  // through the O_PATH descriptor, so it is the same inode that was just checked.
  const std::string self = "/proc/self/fd/" + std::to_string(fd.get());
  const Fd ns(::open(self.c_str(), O_RDONLY | O_CLOEXEC));
  if (ns.valid()) {
    const int type = ::ioctl(ns.get(), NS_GET_NSTYPE);
    if (type >= 0 && type != CLONE_NEWNET) {
      return std::nullopt;
    }
  }
  return NsId{st.st_dev, st.st_ino};
}

}  // namespace

bool other_live_netns(const std::string& recorded, const std::string& current) {
  const auto old_ns = netns_id(recorded);
  if (!old_ns) {
    return false;
  }
  const auto new_ns = netns_id(current);
  return !new_ns || new_ns->dev != old_ns->dev || new_ns->ino != old_ns->ino;
}

}  // namespace ipoib::ipam
