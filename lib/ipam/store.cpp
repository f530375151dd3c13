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

void sleep_ms(std::int64_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace

struct StoreLock::Impl {
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
    // the CPU that the lock holder needs.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::minstd_rand rng(static_cast<unsigned>(::getpid()) ^
                         static_cast<unsigned>(std::chrono::steady_clock::now()
                                                   .time_since_epoch()
                                                   .count()));
    std::int64_t backoff_ms = 1;
    while (!impl->lock->try_lock()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        impl->lock.reset();
        return Error(ErrorCode::kTryAgainLater,
                     "store " + dir_ + ": lock held by another process for more than " +
                         std::to_string(timeout_ms) + " ms (lock_timeout_ms); try again");
      }
      sleep_ms(1 + static_cast<std::int64_t>(rng() % static_cast<unsigned>(backoff_ms)));
      backoff_ms = std::min<std::int64_t>(backoff_ms * 2, 16);
    }
  } catch (const boost::interprocess::interprocess_exception& e) {
    impl->lock.reset();
    return Error(ErrorCode::kIoFailure, "lock " + lock_path + ": " + e.what());
  }
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

Result<std::optional<PoolData>> Store::read_pool(const StoreLock& /*lock*/,
                                                 const std::string& network_name) {
  const std::string name = pool_file_name(network_name);
  const std::string path = dir_ + "/" + name;
  Fd fd(::openat(dir_fd_.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return std::optional<PoolData>();
    }
    return io_error("open store file " + path, errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
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
    const ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
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
  IPOIB_TRY_ASSIGN(PoolData p, decode_pool(text, path));
  if (p.network_name != network_name) {
    return Error(ErrorCode::kStoreCorrupt, "store file " + path + " belongs to network \"" +
                                               p.network_name + "\"; it was left untouched");
  }
  return std::optional<PoolData>(std::move(p));
}

Status Store::write_pool(const StoreLock& /*lock*/, const PoolData& pool) {
  IPOIB_TRY_ASSIGN(std::string bytes, encode_pool(pool));
  const std::string name = pool_file_name(pool.network_name);
  const std::string path = dir_ + "/" + name;
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
  return ok_status();
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
    const std::string_view rest = n.substr(kPoolPrefix.size());
    if (rest == kDefaultPoolName) {
      out.emplace_back();
    } else if (is_valid_network_name(std::string(rest))) {
      out.emplace_back(rest);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
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
