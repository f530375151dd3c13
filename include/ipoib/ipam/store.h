// ipoib/ipam/store.h — the on-disk store: a directory of pool files behind one lock file.
//
// Layout of store_dir (created 0700; files 0600; everything opened with openat from the
// directory's fd and O_NOFOLLOW, so a planted symlink is refused, never followed):
//   lock             the dedicated lock file (fcntl lock via Boost.Interprocess file_lock; no
//                    other code opens it, because closing *any* fd of a file drops the process's
//                    fcntl locks on it — fcntl(2) "Advisory record locking")
//   pool-<name>      one pool file per network_name (pool-_default for the unnamed pool)
//   .tmp.*           a writer's temporary file; a crashed writer's leftovers are removed by the
//                    next operation that holds the lock
//
// Every write is atomic and durable: temporary file (O_EXCL, 0600) + fsync + renameat + fsync of
// the directory (rename(2) is atomic; the directory fsync makes the new entry survive power
// loss). One read and one write per operation, whatever the number of reservations.
//
// fcntl locks exclude processes, not threads of one process: the plugin is one process per CNI
// invocation, and nothing in this project shares a Store between threads. They also work across
// hosts on NFS, Lustre, GPFS and CephFS, which is what makes a shared store_dir cluster-wide.
//
//   IPOIB_TRY_ASSIGN(Store store, Store::open("/var/lib/cni/ipoib-ipam", CreateMode::kCreate));
//   IPOIB_TRY_ASSIGN(StoreLock lock, store.lock(5000));        // kTryAgainLater on timeout
//   IPOIB_TRY_ASSIGN(std::optional<PoolData> pool, store.read_pool(lock, "mynet"));
//   IPOIB_TRY(store.write_pool(lock, *pool));
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/fd.h"
#include "ipoib/ipam/pool.h"

namespace ipoib::ipam {

enum class CreateMode { kCreate, kMustExist };

// Proof that the store lock is held; released on destruction.
class StoreLock {
 public:
  StoreLock(StoreLock&&) noexcept;
  StoreLock& operator=(StoreLock&&) noexcept;
  ~StoreLock();
  struct Impl;

 private:
  friend class Store;
  explicit StoreLock(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Store {
 public:
  // Opens the store directory, creating missing directories 0700 with kCreate. With kMustExist a
  // missing directory is nullopt (nothing was ever stored). A symlink as store_dir is refused.
  // Errors: kInvalidNetworkConfig for a bad path, kIoFailure naming the path otherwise.
  static Result<std::optional<Store>> open(const std::string& dir, CreateMode mode);

  [[nodiscard]] const std::string& dir() const { return dir_; }

  // Takes the exclusive store lock, polling with backoff for up to `timeout_ms`; then removes
  // stale temporary files. kTryAgainLater when the wait times out; kIoFailure when the lock file
  // cannot be opened (read-only filesystem, planted symlink, ...).
  Result<StoreLock> lock(std::int64_t timeout_ms);

  // The pool of `network_name` ("" = default); nullopt when it has no file yet.
  // kStoreCorrupt naming the file when it fails verification; kIoFailure on I/O errors.
  Result<std::optional<PoolData>> read_pool(const StoreLock& lock,
                                            const std::string& network_name);

  // Atomically replaces the pool file (see above). On failure the old file is untouched and the
  // temporary file removed. kIoFailure naming the path (ENOSPC, EROFS, ...).
  Status write_pool(const StoreLock& lock, const PoolData& pool);

  // network_name of every pool file present (read from the file names).
  Result<std::vector<std::string>> list_networks(const StoreLock& lock);

  // Creates and removes a temporary file: whether an ADD could commit now.
  Status probe_writable(const StoreLock& lock);

  // The file name of a network's pool: "pool-<name>" or "pool-_default".
  static std::string pool_file_name(const std::string& network_name);

 private:
  Store(std::string dir, Fd dir_fd) : dir_(std::move(dir)), dir_fd_(std::move(dir_fd)) {}
  Status remove_stale_temp_files();

  std::string dir_;
  Fd dir_fd_;
};

}  // namespace ipoib::ipam
