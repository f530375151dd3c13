// The only file of the project that uses Boost.Interprocess.
#include "ipoib/ipam/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <atomic>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/sync/file_lock.hpp>
#include <chrono>
#include <random>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/strings.h"
#include "ipoib/ipam/config.h"

namespace ipoib::ipam {
namespace {

constexpr const char* kLockName = "lock";
constexpr std::string_view kPoolPrefix = "pool-";
constexpr std::string_view kDefaultPoolName = "_default";
constexpr std::string_view kTempPrefix = ".tmp.";
constexpr std::string_view kJournalSuffix = "+journal";
constexpr std::size_t kMaxPoolBytes = std::size_t{256} << 20;

Error io_error(const std::string& what, int err) {
  if (err == ELOOP) {
    return Error(ErrorCode::kIoFailure, what + ": is a symbolic link; refusing to follow it "
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

Status write_all(int fd, std::string_view bytes, const std::string& what) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return io_error(what, errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return ok_status();
}

void sleep_us(std::int64_t us) {
  timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>((us % 1000000) * 1000)};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

std::atomic<std::uint64_t> g_lock_epoch{0};

Result<std::string> read_all(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return io_error("stat " + path, errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kIoFailure, "store file " + path + ": not a regular file");
  }
  if (static_cast<std::size_t>(st.st_size) > kMaxPoolBytes) {
    return Error(ErrorCode::kStoreCorrupt, "store file " + path + ": larger than 256 MiB");
  }
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::pread(fd, text.data() + got, text.size() - got, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return io_error("read " + path, errno);
    }
    if (n == 0) {
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);
  return text;
}

}  // namespace

struct StoreLock::Impl {
  std::uint64_t epoch = 0;  // which read_pool results this lock may commit against
  Fd lock_fd;  // our O_NOFOLLOW fd of the lock file; closed only after `lock` is released
  std::unique_ptr<boost::interprocess::file_lock> lock;
  ~Impl() {
    if (lock) {
      try {
        lock->unlock();
      } catch (const boost::interprocess::interprocess_exception&) {
        // Closing the fd below drops the lock anyway (fcntl semantics).
      }
      lock.reset();
    }
  }
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
  return std::optional<Store>(Store(path, std::move(cur)));
}

Result<StoreLock> Store::lock(std::int64_t timeout_ms) {
  const std::string lock_path = dir_ + "/" + kLockName;
  auto impl = std::make_unique<StoreLock::Impl>();
  impl->lock_fd = Fd(::openat(dir_fd_.get(), kLockName,
                              O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
  if (!impl->lock_fd.valid()) {
    return io_error("open lock file " + lock_path, errno);
  }
  struct stat st {};
  if (::fstat(impl->lock_fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kIoFailure, "lock file " + lock_path + ": not a regular file");
  }
  // Boost opens by name: give it our fd's inode through /proc so a rename race cannot swap it.
  // Both fds belong to this process; ours closes only after the lock is released (Impl order).
  const std::string via_proc = "/proc/self/fd/" + std::to_string(impl->lock_fd.get());
  try {
    try {
      impl->lock = std::make_unique<boost::interprocess::file_lock>(via_proc.c_str());
    } catch (const boost::interprocess::interprocess_exception&) {
      impl->lock = std::make_unique<boost::interprocess::file_lock>(lock_path.c_str());
    }
    // Poll with backoff instead of Boost's timed_lock, which spins on try_lock and would burn
    // the CPU that the lock holder needs. The cap is short (2 ms, jittered): an operation holds
    // the lock ~0.2 ms now that a commit is one fdatasync, and a waiter asleep for longer leaves
    // the lock idle.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::minstd_rand rng(static_cast<unsigned>(::getpid()) ^
                         static_cast<unsigned>(std::chrono::steady_clock::now()
                                                   .time_since_epoch()
                                                   .count()));
    std::int64_t backoff_us = 100;
    while (!impl->lock->try_lock()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        impl->lock.reset();
        return Error(ErrorCode::kTryAgainLater,
                     "store " + dir_ + ": lock held by another process for more than " +
                         std::to_string(timeout_ms) + " ms (lock_timeout_ms); try again");
      }
      sleep_us(50 + static_cast<std::int64_t>(rng() % static_cast<unsigned>(backoff_us)));
      backoff_us = std::min<std::int64_t>(backoff_us * 2, 2000);
    }
  } catch (const boost::interprocess::interprocess_exception& e) {
    impl->lock.reset();
    return Error(ErrorCode::kIoFailure, "lock " + lock_path + ": " + e.what());
  }
  impl->epoch = ++g_lock_epoch;
  StoreLock held(std::move(impl));
  IPOIB_TRY(remove_stale_temp_files());
  return held;
}

Status Store::remove_stale_temp_files() {
  Fd dup_fd(::openat(dir_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dup_fd.valid()) {
    return io_error("open " + dir_, errno);
  }
  DIR* d = ::fdopendir(dup_fd.get());
  if (d == nullptr) {
    return io_error("read " + dir_, errno);
  }
  (void)dup_fd.release();  // owned by DIR now
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    if (starts_with(e->d_name, kTempPrefix)) {
      stale.emplace_back(e->d_name);
    }
  }
  ::closedir(d);
  for (const std::string& name : stale) {
    // The lock is held, so no writer is active: every temporary file is a crashed writer's.
    if (::unlinkat(dir_fd_.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      if (errno == EROFS) {
        break;  // nothing can be written anyway; write_pool reports it
      }
      return io_error("remove stale temporary file " + dir_ + "/" + name, errno);
    }
  }
  return ok_status();
}

Result<Store::PoolFiles*> Store::files_for(const StoreLock& lock,
                                           const std::string& network_name) {
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

  std::string snap_bytes;
  Fd sfd(::openat(dir_fd_.get(), snap_name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
  if (sfd.valid()) {
    IPOIB_TRY_ASSIGN(snap_bytes, read_all(sfd.get(), snap_path));
    if (snap_bytes.empty()) {
      return Error(ErrorCode::kStoreCorrupt, "store file " + snap_path +
                                                 " is corrupt (empty); it was left untouched");
    }
    f.snapshot_exists = true;
    f.snapshot_bytes = snap_bytes.size();
  } else if (errno != ENOENT) {
    return io_error("open store file " + snap_path, errno);
  }

  // Read-write when possible: the next commit appends through this descriptor. A read-only
  // filesystem still lets every reader work.
  std::string jrnl_bytes;
  f.journal_fd = Fd(::openat(dir_fd_.get(), jrnl_name.c_str(),
                             O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
  f.journal_writable = f.journal_fd.valid();
  if (!f.journal_fd.valid() && (errno == EROFS || errno == EACCES || errno == EPERM)) {
    f.journal_fd = Fd(::openat(dir_fd_.get(), jrnl_name.c_str(),
                               O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
  }
  if (f.journal_fd.valid()) {
    IPOIB_TRY_ASSIGN(jrnl_bytes, read_all(f.journal_fd.get(), jrnl_path));
    if (jrnl_bytes.empty()) {
      return Error(ErrorCode::kStoreCorrupt, "store file " + jrnl_path +
                                                 " is corrupt (empty); it was left untouched");
    }
    f.journal_exists = true;
    f.journal_file_bytes = jrnl_bytes.size();
  } else if (errno != ENOENT) {
    return io_error("open store file " + jrnl_path, errno);
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
  return std::optional<PoolData>(ix->to_pool_data());
}

Status Store::write_snapshot(const std::string& network_name, const std::string& bytes) {
  const std::string name = pool_file_name(network_name);
  const std::string path = path_of(name);
  static std::atomic<unsigned> counter{0};
  const std::string tmp = std::string(kTempPrefix) + name + "." + std::to_string(::getpid()) +
                          "." + std::to_string(counter++);
  Fd fd(::openat(dir_fd_.get(), tmp.c_str(),
                 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
  if (!fd.valid()) {
    return io_error("create " + dir_ + "/" + tmp, errno);
  }
  auto fail = [&](Error e) -> Status {
    fd.reset();
    ::unlinkat(dir_fd_.get(), tmp.c_str(), 0);
    return e;
  };
  if (auto s = write_all(fd.get(), bytes, "write " + path); !s) {
    return fail(std::move(s).error());
  }
  if (::fsync(fd.get()) != 0) {
    return fail(io_error("fsync " + path, errno));
  }
  fd.reset();
  if (::renameat(dir_fd_.get(), tmp.c_str(), dir_fd_.get(), name.c_str()) != 0) {
    return fail(io_error("rename into " + path, errno));
  }
  if (::fsync(dir_fd_.get()) != 0) {
    // The rename happened; only its durability is in doubt. Report it: the caller fails the
    // operation, and the next operation sees the new file (or, after power loss, the old one).
    return io_error("fsync directory " + dir_, errno);
  }
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
  const std::string tmp = std::string(kTempPrefix) + name + "." + std::to_string(::getpid());
  Fd fd(::openat(dir_fd_.get(), tmp.c_str(),
                 O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
  if (!fd.valid()) {
    return io_error("create " + dir_ + "/" + tmp, errno);
  }
  auto fail = [&](Error e) -> Status {
    fd.reset();
    ::unlinkat(dir_fd_.get(), tmp.c_str(), 0);
    return e;
  };
  if (auto s = write_all(fd.get(), header, "write " + path); !s) {
    return fail(std::move(s).error());
  }
  if (::fsync(fd.get()) != 0) {
    return fail(io_error("fsync " + path, errno));
  }
  // The lock is held and read_pool saw no journal, so nothing is replaced here.
  if (::renameat(dir_fd_.get(), tmp.c_str(), dir_fd_.get(), name.c_str()) != 0) {
    return fail(io_error("rename into " + path, errno));
  }
  if (::fsync(dir_fd_.get()) != 0) {
    return io_error("fsync directory " + dir_, errno);
  }
  f.journal_fd = std::move(fd);  // the renamed inode, still open read-write
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
  return ok_status();
}

Result<CommitInfo> Store::commit(const StoreLock& lock, const PoolIndex& after,
                                 const std::vector<PoolOp>& ops) {
  return commit_ops(lock, after.network_name(), ops,
                    [&](std::uint64_t seq) { return after.encode_snapshot(seq); });
}

Result<CommitInfo> Store::commit(const StoreLock& lock, const PoolData& after,
                                 const std::vector<PoolOp>& ops) {
  return commit_ops(lock, after.network_name, ops,
                    [&](std::uint64_t seq) { return encode_snapshot(after, seq); });
}

Result<CommitInfo> Store::commit_ops(const StoreLock& lock, const std::string& net,
                                     const std::vector<PoolOp>& ops,
                                     const SnapshotBytes& snapshot) {
  CommitInfo info;
  if (ops.empty()) {
    return info;
  }
  IPOIB_TRY_ASSIGN(PoolFiles * f, files_for(lock, net));
  if (!f->snapshot_exists && !f->journal_exists) {
    // A new pool: its first snapshot is the commit.
    IPOIB_TRY_ASSIGN(std::string bytes, snapshot(f->last_seq));
    IPOIB_TRY(write_snapshot(net, bytes));
    return info;
  }
  if (!f->journal_exists) {
    IPOIB_TRY(create_journal(*f, net));
  }
  const std::string path = path_of(journal_file_name(net));
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
  auto undo = [&](Error e) -> Result<CommitInfo> {
    // Leave no partial frame behind: the operation fails as a whole.
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
  if (current) {
    if (auto ops = diff_pools(*current, pool)) {
      IPOIB_TRY_ASSIGN(CommitInfo info, commit(lock, pool, *ops));
      (void)info;  // a failed compaction is retried by the next commit
      return ok_status();
    }
  }
  IPOIB_TRY_ASSIGN(PoolFiles * f, files_for(lock, pool.network_name));
  IPOIB_TRY_ASSIGN(std::string bytes, encode_snapshot(pool, f->last_seq));
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
  Fd dup_fd(::openat(dir_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dup_fd.valid()) {
    return io_error("open " + dir_, errno);
  }
  DIR* d = ::fdopendir(dup_fd.get());
  if (d == nullptr) {
    return io_error("read " + dir_, errno);
  }
  (void)dup_fd.release();
  std::vector<std::string> out;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
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
  ::closedir(d);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Status Store::probe_writable(const StoreLock& /*lock*/) {
  const std::string tmp = std::string(kTempPrefix) + "probe." + std::to_string(::getpid());
  Fd fd(::openat(dir_fd_.get(), tmp.c_str(),
                 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
  if (!fd.valid()) {
    return io_error("store " + dir_ + " is not writable", errno);
  }
  fd.reset();
  ::unlinkat(dir_fd_.get(), tmp.c_str(), 0);
  return ok_status();
}

}  // namespace ipoib::ipam
