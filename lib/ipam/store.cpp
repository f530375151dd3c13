// The store's file engine: the directory, its lock, the pool files, commits and compaction.
#include "ipoib/ipam/store.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <random>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/file.h"
#include "ipoib/base/strings.h"
#include "ipoib/ipam/config.h"

namespace ipoib::ipam {
namespace {

constexpr const char* kLockName = "lock";
constexpr std::string_view kPoolPrefix = "pool-";
constexpr std::string_view kDefaultPoolName = "_default";
constexpr std::string_view kJournalSuffix = "+journal";
constexpr std::size_t kMaxPoolBytes = std::size_t{256} << 20;

Error io_error(const std::string& what, int err) {
  if (err == ELOOP) {
    return Error(ErrorCode::kIoFailure, what +
                                            ": is a symbolic link; refusing to follow it "
                                            "(remove it: the store never uses symlinks)");
  }
  if (err == EROFS) {
    return Error(ErrorCode::kIoFailure, what + ": the store's filesystem is read-only");
  }
  if (err == ENOSPC || err == EDQUOT) {
    return Error(ErrorCode::kIoFailure,
                 what + ": no space left on the store's filesystem; nothing was changed");
  }
  return errno_error(ErrorCode::kIoFailure, what, err);
}

void sleep_us(std::int64_t us) {
  timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>((us % 1000000) * 1000)};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

std::atomic<std::uint64_t> g_lock_epoch{0};

void on_lock_timer(int /*signal*/) {}  // only interrupts F_SETLKW (EINTR)

constexpr int kCannotWait = -1;

// Takes the fcntl lock with F_SETLKW, so that the kernel hands it over the moment its holder
// releases it: polling with sleeps leaves it idle while every waiter sleeps, which 8 concurrent
// ADDs on one store paid for. F_SETLKW has no timeout: a periodic timer signal aimed at this
// thread only (timer_create, SIGEV_THREAD_ID; a no-op handler without SA_RESTART) interrupts it
// every 5 ms to look at the deadline — periodic, so that a signal arriving just before the wait
// began only delays the check. 0 once locked; ETIMEDOUT at the deadline; another errno from
// fcntl; kCannotWait when the timer cannot be set up or SIGALRM is blocked here (the caller
// polls). The previous SIGALRM disposition is restored.
int wait_for_lock(int fd, struct flock& fl, std::chrono::steady_clock::time_point deadline) {
  if (std::chrono::steady_clock::now() >= deadline) {
    return ETIMEDOUT;
  }
  sigset_t blocked;
  if (::pthread_sigmask(SIG_BLOCK, nullptr, &blocked) != 0 || sigismember(&blocked, SIGALRM)) {
    return kCannotWait;
  }
  struct sigaction quiet {};
  quiet.sa_handler = on_lock_timer;  // sa_flags 0: no SA_RESTART
  sigemptyset(&quiet.sa_mask);
  struct sigaction previous {};
  if (::sigaction(SIGALRM, &quiet, &previous) != 0) {
    return kCannotWait;
  }
  sigevent ev{};
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = SIGALRM;
  ev._sigev_un._tid = static_cast<pid_t>(::gettid());
  timer_t timer{};
  int result = kCannotWait;
  if (::timer_create(CLOCK_MONOTONIC, &ev, &timer) == 0) {
    itimerspec every{};
    every.it_interval.tv_nsec = 5'000'000;
    every.it_value.tv_nsec = 5'000'000;
    if (::timer_settime(timer, 0, &every, nullptr) == 0) {
      for (;;) {
        if (::fcntl(fd, F_SETLKW, &fl) == 0) {
          result = 0;
          break;
        }
        if (errno != EINTR) {
          result = errno;
          break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
          result = ETIMEDOUT;
          break;
        }
      }
    }
    // A signal still pending is delivered, to on_lock_timer, when this call returns.
    ::timer_delete(timer);
  }
  ::sigaction(SIGALRM, &previous, nullptr);
  return result;
}

bool trusted_owner(uid_t uid) { return uid == ::geteuid() || uid == 0; }

// What is wrong with a store file's owner or mode, or "" when nothing.
std::string untrusted_because(const struct stat& st) {
  if (!trusted_owner(st.st_uid)) {
    return "owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " +
           std::to_string(::geteuid()) + ") or root";
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    (void)std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return std::string("writable by group or others (mode ") + mode + ")";
  }
  return {};
}

// Whether `name` exists (lstat, not followed). Errors other than ENOENT are reported.
Result<bool> exists_at(int dir_fd, const std::string& name, const std::string& path) {
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    return true;
  }
  if (errno == ENOENT) {
    return false;
  }
  return io_error("stat " + path, errno);
}

// Opens a file of the store (never blocking, never following a link; regular files only) and
// checks its owner and mode as check_store_dir_trust does for the directory.
Result<Fd> open_store_file(int dir_fd, const std::string& name, const std::string& path,
                           int flags) {
  auto fd = open_checked(dir_fd, name, flags, FileType::kRegular, ErrorCode::kIoFailure, 0600);
  if (!fd) {
    struct statvfs vfs {};
    if ((flags & (O_RDWR | O_WRONLY)) != 0 && ::fstatvfs(dir_fd, &vfs) == 0 &&
        (vfs.f_flag & ST_RDONLY) != 0) {
      return io_error("open store file " + path + " for writing", EROFS);
    }
    return Error(ErrorCode::kIoFailure, "store file " + path + ": " + fd.error().msg());
  }
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) {
    return io_error("stat " + path, errno);
  }
  if (const std::string why = untrusted_because(st); !why.empty()) {
    return Error(ErrorCode::kIoFailure,
                 "store file " + path + " is " + why +
                     ": another user could change allocations; fix it with `chown root:root " +
                     path + " && chmod 0600 " + path + "` if its content is yours, or remove it");
  }
  return fd;
}

// Whether `name` is a temporary file name of this store: ".tmp." + a pool's snapshot or journal
// file name + "." + 16 hex digits (base/file.h publish_file), or the previous release's
// ".tmp.<pool file>.<pid>[.<counter>]" and ".tmp.probe.<pid>".
bool is_store_temp_name(std::string_view name) {
  if (!starts_with(name, kPublishTempPrefix)) {
    return false;
  }
  std::string_view rest = name.substr(kPublishTempPrefix.size());
  const auto all_of = [](std::string_view s, bool (*ok)(char)) {
    return !s.empty() && std::all_of(s.begin(), s.end(), ok);
  };
  const auto is_hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  const std::size_t dot = rest.rfind('.');
  if (dot == std::string_view::npos) {
    return false;
  }
  std::string_view file = rest.substr(0, dot);
  const std::string_view suffix = rest.substr(dot + 1);
  const bool house = suffix.size() == 16 && all_of(suffix, +is_hex);
  bool legacy = all_of(suffix, +is_digit);
  if (legacy) {
    // ".<pid>.<counter>": strip the pid as well.
    if (const std::size_t d2 = file.rfind('.');
        d2 != std::string_view::npos && all_of(file.substr(d2 + 1), +is_digit)) {
      file = file.substr(0, d2);
    }
    if (file == "probe") {
      return true;
    }
  }
  if (!house && !legacy) {
    return false;
  }
  if (!starts_with(file, kPoolPrefix)) {
    return false;
  }
  std::string_view net = file.substr(kPoolPrefix.size());
  if (net.ends_with(kJournalSuffix)) {
    net.remove_suffix(kJournalSuffix.size());
  }
  return net == kDefaultPoolName || is_valid_network_name(std::string(net));
}

// Whether the bytes begin as a file of this store does (empty counts: killed before writing).
bool has_store_format(std::string_view head) {
  return head.empty() || starts_with(head, kSnapshotMagic) || starts_with(head, kJournalMagic) ||
         starts_with(head, "ipoib-ipam-pool ");
}

// The ops that turn `before` into `after` (both sorted pools of one network); nullopt when that
// cannot be expressed (a range removed): the caller writes a whole snapshot instead.
std::optional<std::vector<PoolOp>> diff_pools(const PoolData& before, const PoolData& after) {
  if (before.network_name != after.network_name) {
    return std::nullopt;
  }
  std::vector<PoolOp> ops;
  for (const PoolRange& b : before.ranges) {
    if (after.find_range(b.key) == nullptr) {
      return std::nullopt;
    }
  }
  for (const PoolRange& a : after.ranges) {
    const PoolRange* b = before.find_range(a.key);
    if (b == nullptr || !(*b == a)) {
      ops.push_back(PoolOp::set_range(a));
    }
  }
  auto b = before.reservations.begin();
  auto a = after.reservations.begin();
  while (b != before.reservations.end() || a != after.reservations.end()) {
    if (a == after.reservations.end() || (b != before.reservations.end() && b->ip < a->ip)) {
      ops.push_back(PoolOp::release(b->ip));
      ++b;
    } else if (b == before.reservations.end() || a->ip < b->ip) {
      ops.push_back(PoolOp::reserve(*a));
      ++a;
    } else {
      if (!(*a == *b)) {
        ops.push_back(PoolOp::reserve(*a));
      }
      ++a;
      ++b;
    }
  }
  return ops;
}

}  // namespace

Status check_store_dir_trust(int dir_fd, const std::string& path) {
  struct stat st {};
  if (::fstat(dir_fd, &st) != 0) {
    return io_error("stat store directory " + path, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kIoFailure, "store directory " + path + " is not a directory");
  }
  if (const std::string why = untrusted_because(st); !why.empty()) {
    return Error(ErrorCode::kIoFailure,
                 "store directory " + path + " is " + why +
                     ": another user could delete pools (duplicate addresses later) or plant "
                     "files; refusing to use it. Fix it with `chown root:root " +
                     path + " && chmod 0700 " + path + "`, or set ipam \"store_dir\" elsewhere");
  }
  return ok_status();
}

struct StoreLock::Impl {
  std::uint64_t epoch = 0;  // which load_pool results this lock may commit against
  LockMode mode = LockMode::kWrite;
  Fd lock_fd;  // our fd of the lock file (invalid: a reader of a store without one); its close
               // releases the fcntl lock
};

StoreLock::StoreLock(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StoreLock::StoreLock(StoreLock&&) noexcept = default;
StoreLock& StoreLock::operator=(StoreLock&&) noexcept = default;
StoreLock::~StoreLock() = default;

std::string Store::pool_file_name(const std::string& network_name) {
  return std::string(kPoolPrefix) +
         (network_name.empty() ? std::string(kDefaultPoolName) : network_name);
}

std::string Store::journal_file_name(const std::string& network_name) {
  return pool_file_name(network_name) + std::string(kJournalSuffix);
}

Result<std::optional<Store>> Store::open(const std::string& dir, CreateMode mode) {
  IPOIB_TRY(validate_store_dir(dir, "store_dir"));
  std::string path = dir;
  while (path.size() > 1 && path.back() == '/') {
    path.pop_back();
  }
  // Walk from "/" with openat: intermediate components may be symlinks the administrator set up
  // (/var/lib on another disk); the store directory itself must not be one.
  Fd cur(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur.valid()) {
    return io_error("open /", errno);
  }
  const auto parts = split(std::string_view(path).substr(1), '/');
  std::string so_far;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty()) {
      continue;
    }
    const std::string name(parts[i]);
    so_far += "/" + name;
    const bool leaf = i + 1 == parts.size();
    const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (leaf ? O_NOFOLLOW : 0);
    Fd next(::openat(cur.get(), name.c_str(), flags));
    if (!next.valid() && errno == ENOENT) {
      if (mode == CreateMode::kMustExist) {
        return std::optional<Store>();
      }
      if (::mkdirat(cur.get(), name.c_str(), 0700) != 0 && errno != EEXIST) {
        return io_error("create store directory " + so_far, errno);
      }
      next = Fd(::openat(cur.get(), name.c_str(), flags));
    }
    if (!next.valid()) {
      const int err = errno;
      struct stat st {};
      if (leaf && ::fstatat(cur.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        return io_error("store directory " + so_far, ELOOP);
      }
      return io_error("open store directory " + so_far, err);
    }
    cur = std::move(next);
  }
  IPOIB_TRY(check_store_dir_trust(cur.get(), path));
  return std::optional<Store>(Store(path, std::move(cur)));
}

Result<StoreLock> Store::lock(std::int64_t timeout_ms) {
  return lock(timeout_ms, LockMode::kWrite);
}

Result<StoreLock> Store::lock_shared(std::int64_t timeout_ms) {
  return lock(timeout_ms, LockMode::kRead);
}

Result<StoreLock> Store::lock(std::int64_t timeout_ms, LockMode mode) {
  const std::string lock_path = path_of(kLockName);
  auto impl = std::make_unique<StoreLock::Impl>();
  impl->mode = mode;
  if (mode == LockMode::kRead) {
    IPOIB_TRY_ASSIGN(bool present, exists_at(dir_fd_.get(), kLockName, lock_path));
    if (!present) {
      // No writer ever used this directory (writers create the lock file first): nothing to
      // exclude, and a reader creates nothing.
      impl->epoch = ++g_lock_epoch;
      return StoreLock(std::move(impl));
    }
  }
  const int flags = mode == LockMode::kRead ? O_RDONLY : O_RDWR | O_CREAT;
  IPOIB_TRY_ASSIGN(impl->lock_fd, open_store_file(dir_fd_.get(), kLockName, lock_path, flags));
  struct flock fl {};
  fl.l_type = mode == LockMode::kRead ? F_RDLCK : F_WRLCK;
  fl.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
  const int fd = impl->lock_fd.get();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool locked = ::fcntl(fd, F_SETLK, &fl) == 0;
  if (!locked && errno != EAGAIN && errno != EACCES && errno != EINTR) {
    return io_error("lock " + lock_path, errno);
  }
  if (!locked) {
    // Held by another process: wait in the kernel's queue (wait_for_lock).
    const int err = wait_for_lock(fd, fl, deadline);
    if (err == ETIMEDOUT) {
      return lock_timed_out(timeout_ms);
    }
    if (err != 0 && err != kCannotWait && err != EDEADLK) {
      return io_error("lock " + lock_path, err);
    }
    locked = err == 0;
  }
  // Without a timer (or on EDEADLK): poll with backoff. The cap is short (2 ms, jittered): an
  // operation holds the lock ~0.2 ms, and a waiter asleep for longer leaves the lock idle.
  std::minstd_rand rng(
      static_cast<unsigned>(::getpid()) ^
      static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::int64_t backoff_us = 100;
  while (!locked) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return lock_timed_out(timeout_ms);
    }
    sleep_us(50 + static_cast<std::int64_t>(rng() % static_cast<unsigned>(backoff_us)));
    backoff_us = std::min<std::int64_t>(backoff_us * 2, 2000);
    locked = ::fcntl(fd, F_SETLK, &fl) == 0;
    if (!locked && errno != EAGAIN && errno != EACCES && errno != EINTR) {
      return io_error("lock " + lock_path, errno);
    }
  }
  impl->epoch = ++g_lock_epoch;
  StoreLock held(std::move(impl));
  if (mode == LockMode::kWrite) {
    IPOIB_TRY(remove_stale_temp_files());
  }
  return held;
}

Error Store::lock_timed_out(std::int64_t timeout_ms) const {
  return Error(ErrorCode::kTryAgainLater,
               "store " + dir_ + ": lock held by another process for more than " +
                   std::to_string(timeout_ms) + " ms (lock_timeout_ms); try again");
}

Status Store::remove_stale_temp_files() {
  IPOIB_TRY_ASSIGN(std::vector<std::string> names, list_directory(dir_fd_.get(), dir_));
  for (const std::string& name : names) {
    if (!is_store_temp_name(name)) {
      continue;  // not a name this store writes: never touched
    }
    // The exclusive lock is held, so no writer of this store is active: a temporary file of
    // ours is a crashed writer's. Ours means: a regular file of this user (or root) whose bytes
    // begin as a store file does.
    struct stat st {};
    if (::fstatat(dir_fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode) || !trusted_owner(st.st_uid)) {
      continue;
    }
    auto fd = open_checked(dir_fd_.get(), name, O_RDONLY, FileType::kRegular);
    if (!fd) {
      continue;
    }
    char head[16];
    const ssize_t n = ::pread(fd->get(), head, sizeof head, 0);
    if (n < 0 || !has_store_format(std::string_view(head, static_cast<std::size_t>(n)))) {
      continue;
    }
    if (::unlinkat(dir_fd_.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      if (errno == EROFS) {
        break;  // nothing can be written anyway; the commit reports it
      }
      return io_error("remove stale temporary file " + path_of(name), errno);
    }
  }
  return ok_status();
}

Result<Store::PoolFiles*> Store::files_for(const StoreLock& lock, const std::string& network_name) {
  auto it = files_.find(network_name);
  if (it == files_.end() || it->second.lock_epoch != lock.impl_->epoch) {
    IPOIB_TRY_ASSIGN(std::optional<PoolIndex> ignored, load_pool(lock, network_name));
    (void)ignored;
    it = files_.find(network_name);
  }
  return &it->second;
}

Result<std::optional<PoolIndex>> Store::load_pool(const StoreLock& lock,
                                                  const std::string& network_name) {
  const std::string snap_name = pool_file_name(network_name);
  const std::string jrnl_name = journal_file_name(network_name);
  const std::string snap_path = path_of(snap_name);
  const std::string jrnl_path = path_of(jrnl_name);
  files_.erase(network_name);
  PoolFiles f;
  f.lock_epoch = lock.impl_->epoch;

  FileBytes snap_bytes;
  IPOIB_TRY_ASSIGN(f.snapshot_exists, exists_at(dir_fd_.get(), snap_name, snap_path));
  if (f.snapshot_exists) {
    IPOIB_TRY_ASSIGN(Fd sfd, open_store_file(dir_fd_.get(), snap_name, snap_path, O_RDONLY));
    // Mapped, not copied (base/file.h): a snapshot is never written in place, only replaced by
    // rename under the exclusive lock, so the mapped file cannot shrink under the index. The
    // journal, which commits truncate, is read.
    IPOIB_TRY_ASSIGN(snap_bytes, map_or_read_all(sfd.get(), snap_path, kMaxPoolBytes));
    if (snap_bytes.empty()) {
      return Error(ErrorCode::kStoreCorrupt,
                   "store file " + snap_path + " is corrupt (empty); it was left untouched");
    }
    f.snapshot_bytes = snap_bytes.size();
  }

  // A writer opens the journal read-write: the next commit appends through this descriptor. A
  // read-only filesystem still lets every reader work.
  std::string jrnl_bytes;
  IPOIB_TRY_ASSIGN(f.journal_exists, exists_at(dir_fd_.get(), jrnl_name, jrnl_path));
  if (f.journal_exists) {
    const bool writer = lock.impl_->mode == LockMode::kWrite;
    auto fd = open_store_file(dir_fd_.get(), jrnl_name, jrnl_path, writer ? O_RDWR : O_RDONLY);
    f.journal_writable = writer && fd.ok();
    if (!fd && writer) {
      fd = open_store_file(dir_fd_.get(), jrnl_name, jrnl_path, O_RDONLY);
    }
    if (!fd) {
      return std::move(fd).error();
    }
    f.journal_fd = std::move(*fd);
    IPOIB_TRY_ASSIGN(jrnl_bytes, read_all(f.journal_fd.get(), jrnl_path, kMaxPoolBytes));
    if (jrnl_bytes.empty()) {
      return Error(ErrorCode::kStoreCorrupt,
                   "store file " + jrnl_path + " is corrupt (empty); it was left untouched");
    }
    f.journal_file_bytes = jrnl_bytes.size();
  }
  IPOIB_TRY_ASSIGN(PoolIndex::Loaded loaded,
                   PoolIndex::load(network_name, std::move(snap_bytes), snap_path,
                                   std::move(jrnl_bytes), jrnl_path));
  f.last_seq = loaded.last_seq;
  f.journal_header_bytes = loaded.journal_header_bytes;
  f.journal_valid_bytes = loaded.journal_valid_bytes;
  const bool exists = f.snapshot_exists || f.journal_exists;
  files_.emplace(network_name, std::move(f));
  if (!exists) {
    return std::optional<PoolIndex>();
  }
  return std::optional<PoolIndex>(std::move(loaded.index));
}

Result<std::optional<PoolData>> Store::read_pool(const StoreLock& lock,
                                                 const std::string& network_name) {
  IPOIB_TRY_ASSIGN(std::optional<PoolIndex> ix, load_pool(lock, network_name));
  if (!ix) {
    return std::optional<PoolData>();
  }
  IPOIB_TRY_ASSIGN(PoolData p, ix->to_pool_data());
  return std::optional<PoolData>(std::move(p));
}

Status Store::write_snapshot(const std::string& network_name, const std::string& bytes) {
  IPOIB_TRY(publish_file(dir_fd_.get(), dir_, pool_file_name(network_name), bytes, 0600));
  if (auto it = files_.find(network_name); it != files_.end()) {
    it->second.snapshot_exists = true;
    it->second.snapshot_bytes = bytes.size();
  }
  return ok_status();
}

Status Store::create_journal(PoolFiles& f, const std::string& network_name) {
  IPOIB_TRY_ASSIGN(std::string header, encode_journal_header(network_name));
  const std::string name = journal_file_name(network_name);
  const std::string path = path_of(name);
  // The lock is held and load_pool saw no journal, so nothing is replaced here.
  IPOIB_TRY(publish_file(dir_fd_.get(), dir_, name, header, 0600));
  IPOIB_TRY_ASSIGN(f.journal_fd, open_store_file(dir_fd_.get(), name, path, O_RDWR));
  f.journal_writable = true;
  f.journal_exists = true;
  f.journal_header_bytes = header.size();
  f.journal_valid_bytes = header.size();
  f.journal_file_bytes = header.size();
  return ok_status();
}

Status Store::cut_journal(PoolFiles& f, const std::string& network_name) {
  if (!f.journal_exists || f.journal_file_bytes == f.journal_header_bytes) {
    return ok_status();
  }
  const std::string path = path_of(journal_file_name(network_name));
  if (::ftruncate(f.journal_fd.get(), static_cast<off_t>(f.journal_header_bytes)) != 0) {
    return io_error("truncate " + path, errno);
  }
  if (::fdatasync(f.journal_fd.get()) != 0) {
    return io_error("fdatasync " + path, errno);
  }
  f.journal_valid_bytes = f.journal_header_bytes;
  f.journal_file_bytes = f.journal_header_bytes;
  // The truncation freed the release reserve too: take it again (a full disk leaves it for the
  // next commit to retry).
  (void)reserve_journal_space(f, 0, true, path);
  return ok_status();
}

Status Store::reserve_journal_space(PoolFiles& f, std::size_t append_bytes, bool may_use_reserve,
                                    const std::string& path) const {
  const std::size_t want = append_bytes + tuning_.release_reserve_bytes;
  if (want == 0) {
    return ok_status();
  }
  // FALLOC_FL_KEEP_SIZE: blocks past the end, the size (what readers see) unchanged.
  if (::fallocate(f.journal_fd.get(), FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(f.journal_valid_bytes), static_cast<off_t>(want)) == 0) {
    return ok_status();
  }
  const int err = errno;
  if (err == EOPNOTSUPP || err == ENOSYS) {
    return ok_status();  // e.g. NFSv3: no reserve possible; appends allocate as they go
  }
  if (may_use_reserve && (err == ENOSPC || err == EDQUOT)) {
    return ok_status();  // a release appends into what earlier commits reserved
  }
  return io_error("reserve space in " + path, err);
}

Result<CommitInfo> Store::commit(const StoreLock& lock, const PoolIndex& after,
                                 const std::vector<PoolOp>& ops) {
  return commit_ops(lock, after.network_name(), ops,
                    [&](std::uint64_t seq) { return after.encode_snapshot(seq); });
}

Result<CommitInfo> Store::commit_ops(const StoreLock& lock, const std::string& net,
                                     const std::vector<PoolOp>& ops,
                                     const SnapshotBytes& snapshot) {
  CommitInfo info;
  if (ops.empty()) {
    return info;
  }
  if (lock.impl_->mode != LockMode::kWrite) {
    return Error(ErrorCode::kInternal, "store " + dir_ + ": commit under a shared (read) lock");
  }
  IPOIB_TRY_ASSIGN(PoolFiles * f, files_for(lock, net));
  const std::string path = path_of(journal_file_name(net));
  if (!f->journal_exists) {
    // A new pool (or one of the first release, with only a snapshot): its journal first, with the
    // release reserve, so that a later DEL never has to create a file.
    IPOIB_TRY(create_journal(*f, net));
    IPOIB_TRY(reserve_journal_space(*f, 0, false, path));
  }
  if (!f->snapshot_exists && f->journal_valid_bytes == f->journal_header_bytes) {
    // A new pool: its first snapshot is the commit (the journal holds only its header, an empty
    // pool, until then).
    IPOIB_TRY_ASSIGN(std::string bytes, snapshot(f->last_seq));
    IPOIB_TRY(write_snapshot(net, bytes));
    return info;
  }
  if (!f->journal_writable) {
    return io_error("open store file " + path + " for writing", EROFS);
  }
  const int fd = f->journal_fd.get();
  if (f->journal_file_bytes > f->journal_valid_bytes) {
    // Recovery of an uncommitted record: a writer died inside its append (scan_journal).
    if (::ftruncate(fd, static_cast<off_t>(f->journal_valid_bytes)) != 0) {
      return io_error("truncate the torn end of " + path, errno);
    }
    f->journal_file_bytes = f->journal_valid_bytes;
  }
  IPOIB_TRY_ASSIGN(std::string payload, encode_ops(ops));
  const std::string frame = encode_frame(f->last_seq + 1, payload);
  const bool releases_only = std::all_of(
      ops.begin(), ops.end(), [](const PoolOp& op) { return op.kind == PoolOp::Kind::kRelease; });
  IPOIB_TRY(reserve_journal_space(*f, frame.size(), releases_only, path));
  auto undo = [&](Error e) -> Result<CommitInfo> {
    // Leave no partial frame behind: the operation fails as a whole. (Truncating keeps blocks
    // below the cut; the reserve past it is taken again by the next commit.)
    (void)!::ftruncate(fd, static_cast<off_t>(f->journal_valid_bytes));
    return e;
  };
  std::size_t done = 0;
  while (done < frame.size()) {
    const ssize_t n = ::pwrite(fd, frame.data() + done, frame.size() - done,
                               static_cast<off_t>(f->journal_valid_bytes + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return undo(io_error("append to " + path, errno));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd) != 0) {
    return undo(io_error("fdatasync " + path, errno));
  }
  f->journal_valid_bytes += frame.size();
  f->journal_file_bytes = f->journal_valid_bytes;
  ++f->last_seq;

  const std::size_t records = f->journal_valid_bytes - f->journal_header_bytes;
  if (records > std::max(tuning_.compact_min_bytes,
                         f->snapshot_bytes / std::max<std::size_t>(tuning_.snapshot_divisor, 1))) {
    auto bytes = snapshot(f->last_seq);
    Status s = bytes ? write_snapshot(net, *bytes) : Status(bytes.error());
    if (s) {
      s = cut_journal(*f, net);
    }
    if (s) {
      info.compacted = true;
    } else {
      info.compaction_error = s.error();
    }
  }
  return info;
}

Status Store::write_pool(const StoreLock& lock, const PoolData& pool) {
  IPOIB_TRY_ASSIGN(std::optional<PoolData> current, read_pool(lock, pool.network_name));
  PoolIndex after = PoolIndex::from_pool_data(pool);
  if (current) {
    if (auto ops = diff_pools(*current, pool)) {
      IPOIB_TRY_ASSIGN(CommitInfo info, commit(lock, after, *ops));
      (void)info;  // a failed compaction is retried by the next commit
      return ok_status();
    }
  }
  IPOIB_TRY_ASSIGN(PoolFiles * f, files_for(lock, pool.network_name));
  IPOIB_TRY_ASSIGN(std::string bytes, after.encode_snapshot(f->last_seq));
  IPOIB_TRY(write_snapshot(pool.network_name, bytes));
  return cut_journal(*f, pool.network_name);
}

Status Store::compact(const StoreLock& lock, const std::string& network_name) {
  IPOIB_TRY_ASSIGN(std::optional<PoolIndex> pool, load_pool(lock, network_name));
  if (!pool) {
    return ok_status();
  }
  IPOIB_TRY_ASSIGN(PoolFiles * f, files_for(lock, network_name));
  IPOIB_TRY_ASSIGN(std::string bytes, pool->encode_snapshot(f->last_seq));
  IPOIB_TRY(write_snapshot(network_name, bytes));
  return cut_journal(*f, network_name);
}

Result<std::vector<std::string>> Store::list_networks(const StoreLock& /*lock*/) {
  IPOIB_TRY_ASSIGN(std::vector<std::string> names, list_directory(dir_fd_.get(), dir_));
  std::vector<std::string> out;
  for (const std::string& name : names) {
    const std::string_view n = name;
    if (!starts_with(n, kPoolPrefix)) {
      continue;
    }
    std::string_view rest = n.substr(kPoolPrefix.size());
    if (rest.ends_with(kJournalSuffix)) {
      rest.remove_suffix(kJournalSuffix.size());  // a pool may have only a journal
    }
    if (rest == kDefaultPoolName) {
      out.emplace_back();
    } else if (is_valid_network_name(std::string(rest))) {
      out.emplace_back(rest);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Status Store::probe_writable(const StoreLock& /*lock*/) {
  struct statvfs vfs {};
  if (::fstatvfs(dir_fd_.get(), &vfs) != 0) {
    return io_error("statvfs " + dir_, errno);
  }
  if ((vfs.f_flag & ST_RDONLY) != 0) {
    return io_error("store " + dir_ + " is not writable", EROFS);
  }
  if (::faccessat(dir_fd_.get(), ".", W_OK | X_OK, AT_EACCESS) != 0) {
    return io_error("store " + dir_ + " is not writable", errno);
  }
  // An ADD needs room for its record beyond the release reserve, which the journal holds
  // already: a few KiB (a pool's first ADD also needs the reserve; it reports its own ENOSPC).
  const std::uint64_t free_bytes =
      static_cast<std::uint64_t>(vfs.f_bavail) * static_cast<std::uint64_t>(vfs.f_frsize);
  if (free_bytes < (std::uint64_t{16} << 10)) {
    return io_error("store " + dir_ + " is not writable", ENOSPC);
  }
  return ok_status();
}

}  // namespace ipoib::ipam
