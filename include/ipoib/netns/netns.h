// ipoib/netns/netns.h — network namespace handles, a scoped namespace switch, and per-netns
// sysctls. This module is the only code in the project that opens netns files or calls setns().
//
//   IPOIB_TRY_ASSIGN(auto pod, netns::NetnsHandle::open_if_exists(env.netns));
//   if (!pod) { /* DEL: the netns is gone — nothing left to undo in it */ }
//   {
//     IPOIB_TRY_ASSIGN(auto inside, netns::ScopedNetns::enter(*pod));
//     IPOIB_TRY(netns::write_sysctl(netns::ipv6_conf_sysctl("net1", "accept_dad"), "0"));
//     // ... open a netlink socket here: it is bound to the pod netns for its whole life
//   }  // back in the original netns (abort() if that is impossible)
//
// Threads: setns() changes the namespace of the calling thread only (kernel/nsproxy.c). The
// plugin is single-threaded; a multi-threaded caller must keep a ScopedNetns on one thread.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ipoib/base/error.h"
#include "ipoib/base/fd.h"

namespace ipoib::netns {

// An open network namespace: the one owner of an O_CLOEXEC fd on an nsfs file
// (/var/run/netns/<name>, /proc/<pid>/ns/net, ...). Holding it keeps the namespace alive.
class NetnsHandle {
 public:
  // Opens `path` as a network namespace. Errors (kNamespaceFailure) name the path, including
  // when the path does not exist or is not a network namespace — use open_if_exists() when
  // absence is an expected outcome.
  static Result<NetnsHandle> open(std::string_view path);

  // As open(), but "absent" is not an error: returns std::nullopt when the path does not exist
  // (ENOENT) or exists but is not a network namespace — e.g. the empty mount point left behind
  // by `ip netns delete` or a runtime that already unmounted it (checked with statfs() ==
  // NSFS_MAGIC and the NS_GET_NSTYPE ioctl). CNI DEL treats that as "netns gone" (SPEC.md DEL:
  // "Plugins should generally complete a DEL action without error even if some resources are
  // missing"). Other failures (EACCES, EMFILE, ...) are errors.
  static Result<std::optional<NetnsHandle>> open_if_exists(std::string_view path);

  // The calling thread's current network namespace (/proc/thread-self/ns/net).
  static Result<NetnsHandle> current();

  // Creates a new, empty network namespace (only lo, down) without entering it: unshare() then
  // switch straight back. It is anonymous — no bind mount — so it disappears with the last
  // handle, even if the process crashes; path() is "/proc/<pid>/fd/<n>", which other processes
  // (e.g. the plugin binary run by a test as CNI_NETNS) can open while this handle lives.
  // Errors are kNamespaceFailure (EPERM without CAP_SYS_ADMIN).
  static Result<NetnsHandle> create();

  NetnsHandle(NetnsHandle&&) noexcept = default;
  NetnsHandle& operator=(NetnsHandle&&) noexcept = default;
  NetnsHandle(const NetnsHandle&) = delete;
  NetnsHandle& operator=(const NetnsHandle&) = delete;
  ~NetnsHandle() = default;

  // The fd, for APIs that take a namespace by fd (IFLA_NET_NS_FD). Stays owned by this handle.
  [[nodiscard]] int fd() const { return fd_.get(); }
  // The path it was opened from (for messages).
  [[nodiscard]] const std::string& path() const { return path_; }
  // The namespace's inode number: two handles name the same namespace iff their inodes match
  // (nsfs has one superblock, so st_dev is the same for all).
  [[nodiscard]] ino_t inode() const { return inode_; }
  [[nodiscard]] bool same_namespace_as(const NetnsHandle& other) const {
    return inode_ == other.inode_;
  }

 private:
  NetnsHandle(Fd fd, std::string path, ino_t inode)
      : fd_(std::move(fd)), path_(std::move(path)), inode_(inode) {}
  Fd fd_;
  std::string path_;
  ino_t inode_ = 0;
};

// While alive, the calling thread is in the target namespace; the destructor switches back to
// the namespace that was current at enter(). If switching back fails the process can no longer
// tell which namespace it acts on, so the destructor prints a message to stderr and abort()s —
// the one failure this module treats as impossible.
//
// Movable (so it can travel in a Result) but not copyable; a moved-from scope restores nothing.
// Scopes must be destroyed in reverse order of creation (they nest like lock guards).
class ScopedNetns {
 public:
  // Saves the current namespace, then setns(target, CLONE_NEWNET). Entering the namespace the
  // thread is already in is allowed and cheap. Errors are kNamespaceFailure.
  static Result<ScopedNetns> enter(const NetnsHandle& target);
  // As enter(target), but returns to `return_to` — which the caller already holds, must be the
  // thread's current namespace, and must outlive the scope — instead of opening the current
  // namespace again (saves the open/statfs/ioctl/stat of /proc/thread-self/ns/net per switch).
  static Result<ScopedNetns> enter(const NetnsHandle& target, const NetnsHandle& return_to);

  ScopedNetns(ScopedNetns&& other) noexcept;
  ScopedNetns& operator=(ScopedNetns&&) = delete;
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;
  ~ScopedNetns();

 private:
  explicit ScopedNetns(std::optional<NetnsHandle> original) : original_(std::move(original)) {}
  explicit ScopedNetns(const NetnsHandle* borrowed) : borrowed_(borrowed) {}
  [[nodiscard]] const NetnsHandle* restore_to() const {
    return original_ ? &*original_ : borrowed_;
  }
  std::optional<NetnsHandle> original_;    // owned; empty when borrowed or moved from
  const NetnsHandle* borrowed_ = nullptr;  // the caller's; null when owned or moved from
};

// Runs fn() inside `target` and returns its result; the original namespace is restored after.
//   IPOIB_TRY_ASSIGN(auto link, netns::run_in(pod, [&] { return find_link(...); }));
template <class Fn>
auto run_in(const NetnsHandle& target, Fn&& fn) -> decltype(fn()) {
  auto scope = ScopedNetns::enter(target);
  if (!scope.ok()) {
    return std::move(scope).error();
  }
  return std::forward<Fn>(fn)();
}

// As run_in(target, fn), returning to `return_to` (see ScopedNetns::enter with two arguments).
template <class Fn>
auto run_in(const NetnsHandle& target, const NetnsHandle& return_to, Fn&& fn) -> decltype(fn()) {
  auto scope = ScopedNetns::enter(target, return_to);
  if (!scope.ok()) {
    return std::move(scope).error();
  }
  return std::forward<Fn>(fn)();
}

// ---- sysctls of the current network namespace ----
//
// /proc/sys/net/* resolves against the netns of the task that opens the file
// (net/sysctl_net.c: net_ctl_header_lookup uses current->nsproxy->net_ns), so after
// ScopedNetns::enter these act on the entered namespace. (sysfs does not follow setns().)
//
// Names use '/' as the separator, relative to /proc/sys: "net/ipv6/conf/ib0.8001/accept_dad".
// The dotted sysctl(8) form is ambiguous once an interface name contains a '.', so it is only
// accepted when no '/' is present and is then split on every '.' (fine for keys without dotted
// interface names, e.g. "net.ipv4.ip_forward"). Validation: the first component must be "net"
// (only network sysctls are per-netns), no empty, "." or ".." components, no whitespace or NUL;
// violations are kInvalidNetworkConfig naming the key.

// Builds "net/ipv6/conf/<ifname>/<key>" (e.g. disable_ipv6, accept_dad, keep_addr_on_down).
std::string ipv6_conf_sysctl(std::string_view ifname, std::string_view key);
// Builds "net/ipv4/conf/<ifname>/<key>" (e.g. arp_notify).
std::string ipv4_conf_sysctl(std::string_view ifname, std::string_view key);

// Validates a sysctl name as described above and returns its /proc/sys path.
Result<std::string> sysctl_path(std::string_view name);

// Writes `value` (no trailing newline needed) to the sysctl. Errors are kIoFailure naming the
// key; a missing key (ENOENT: no such interface / IPv6 disabled at boot) is an error too.
Status write_sysctl(std::string_view name, std::string_view value);

// Reads the sysctl, without the trailing newline.
Result<std::string> read_sysctl(std::string_view name);

}  // namespace ipoib::netns
