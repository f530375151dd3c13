// ipoib/ipam/store.h — the on-disk store: a directory of pools behind one lock file.
//
// Layout of store_dir (created 0700; files 0600; everything opened with openat from the
// directory's fd, O_NOFOLLOW and O_NONBLOCK, then type-checked (base/file.h open_checked), so a
// planted symlink, FIFO, socket or device is refused, never followed or blocked on):
//   lock                 the dedicated lock file, locked with an fcntl(2) record lock: exclusive
//                        for writers, shared for readers (opened O_RDONLY, so readers work on a
//                        read-only filesystem). Nothing else opens it, because closing *any* fd of
//                        a file drops the process's fcntl locks on it (fcntl(2) "Advisory record
//                        locking").
//   pool-<name>          a pool's snapshot (pool-_default for the unnamed pool): the whole pool as
//                        of a journal sequence number (journal.h), replaced atomically
//   pool-<name>+journal  the pool's journal: transactions appended since the snapshot ('+' cannot
//                        occur in a network name, so no network's snapshot can be another's
//                        journal)
//   .tmp.pool-<name>[+journal].<16 hex>   a writer's temporary file (base/file.h publish_file);
//                        a crashed writer's leftovers are removed by the next writer, only when
//                        both the name and the content (a store magic, or empty) are the store's.
//
// Trust: the directory must be owned by this user (or root) and not writable by group or others
// (check_store_dir_trust); so must every store file. Anything else is refused with how to fix it.
//
// Commit protocol (why every acknowledged change survives kill -9 and power loss):
//  * an operation appends one frame (all its changes, checksummed, numbered) to the journal with
//    one pwrite(2) and fdatasync(2)s it before reporting success. fdatasync makes the data and
//    the new file size durable (fdatasync(2): "the metadata needed to retrieve the data"); no
//    rename and no directory fsync per operation, so no filesystem-journal commit on the
//    critical path — ~0.1 ms instead of ~30 ms on ext4.
//  * a writer killed inside write(2), or power lost before fdatasync returned, can leave an
//    incomplete frame at the end of the journal: that operation was never acknowledged. The next
//    writer, under the lock, truncates it away before appending (scan_journal decides what a
//    torn tail is; anything else that fails verification is kStoreCorrupt and nothing is written).
//  * a new pool's first commit publishes (temporary file + fsync + renameat + directory fsync, so
//    neither ever exists half-written) its journal, holding only its header, then its snapshot,
//    which is the commit.
//  * space for releases is reserved in advance: the journal keeps
//  StoreTuning::release_reserve_bytes
//    allocated past its end (fallocate(2) FALLOC_FL_KEEP_SIZE: invisible to readers). An operation
//    that reserves an address first extends that allocation and fails with "no space" when it
//    cannot (nothing was changed); an operation that only releases (DEL, GC, admin release)
//    appends into the reserve even when the filesystem is full.
//  * compaction, when the journal outgrows max(compact_min_bytes, snapshot / 16), keeps the work
//    per operation flat: (1) the new snapshot, which records the last journal sequence it
//    includes, is written to a temporary file, fsynced, renamed over the old one and the
//    directory fsynced; (2) the journal is cut back to its header and fdatasynced. A crash
//    before (1)'s rename leaves the old snapshot and full journal; between (1) and (2) the new
//    snapshot and a journal whose frames it already includes (skipped by sequence number).
//
// Each operation reads the snapshot and the journal once and appends one frame: its cost grows
// with the number of reservations only through reading, verifying (CRC-32C) and indexing them in
// place (PoolIndex: no allocation per reservation), never with the size of the range.
//
// fcntl locks exclude processes, not threads of one process: the plugin is one process per CNI
// invocation, and nothing in this project shares a Store between threads. They also work across
// hosts on NFS, Lustre, GPFS and CephFS, which is what makes a shared store_dir cluster-wide.
//
//   IPOIB_TRY_ASSIGN(std::optional<Store> store, Store::open(dir, CreateMode::kCreate));
//   IPOIB_TRY_ASSIGN(StoreLock lock, store->lock(5000));        // kTryAgainLater on timeout
//   IPOIB_TRY_ASSIGN(std::optional<PoolIndex> pool, store->load_pool(lock, "mynet"));
//   std::vector<PoolOp> ops = {PoolOp::release(ip)};
//   IPOIB_TRY(pool->apply(ops, ""));
//   IPOIB_TRY(store->commit(lock, *pool, ops));                  // durable when it returns
//
// Readers (list, CHECK, STATUS) create and write nothing:
//   Store::open(dir, CreateMode::kMustExist) (nullopt: no store) then store->lock_shared(ms).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/fd.h"
#include "ipoib/ipam/journal.h"
#include "ipoib/ipam/pool.h"
#include "ipoib/ipam/pool_index.h"

namespace ipoib::ipam {

// kCreate: missing directories are created (0700). kMustExist: nothing is created; a missing
// directory is "no store".
enum class CreateMode { kCreate, kMustExist };
// kWrite: the exclusive lock (creates `lock`; removes the store's stale temporary files). kRead:
// the shared lock (opens `lock` read-only; without a lock file no lock is taken); such a lock
// cannot commit.
enum class LockMode { kWrite, kRead };

// Whether a store directory may be trusted: owned by this user (or root) and not writable by
// group or others, since whoever can write there can delete pools (duplicate addresses later)
// or plant files. `dir_fd` is the open directory, `path` names it in the message, which says how
// to fix it (chown/chmod). kIoFailure otherwise. The plugin (Store::open) and `ipoib doctor`
// apply this one rule.
Status check_store_dir_trust(int dir_fd, const std::string& path);

// When the journal is compacted into a new snapshot: when its records exceed
// max(compact_min_bytes, snapshot bytes / snapshot_divisor). The bytes appended between two
// compactions are then proportional to the snapshot, so the amortised cost per operation stays
// flat. Every operation replays the whole journal, and a journal byte costs ~2.5 times a
// snapshot byte to load (a checksum per frame, a sort of the changes), so the journal is kept
// short: at 10,000 reservations (an 850 KB snapshot) the 64 KiB floor decides, one compaction
// (the 850 KB snapshot rewritten) per ~1,000 ADD+DEL, where a quarter of the snapshot let the
// journal add up to 30% to every load.
struct StoreTuning {
  std::size_t compact_min_bytes = std::size_t{64} << 10;
  std::size_t snapshot_divisor = 16;
  // Journal space kept allocated for releases (see the commit protocol); 0 disables it. 64 KiB
  // hold ~2,900 one-address DEL records.
  std::size_t release_reserve_bytes = std::size_t{64} << 10;
};

// What a commit did besides making the operation durable.
struct CommitInfo {
  bool compacted = false;
  // A failed compaction does not fail the committed operation (the journal still holds it); the
  // next operation tries again. The caller may log this.
  std::optional<Error> compaction_error;
};

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
  // missing directory is nullopt (nothing was ever stored) and nothing is created. A symlink as
  // store_dir is refused, and so is a directory check_store_dir_trust refuses.
  // Errors: kInvalidNetworkConfig for a bad path, kIoFailure naming the path otherwise.
  static Result<std::optional<Store>> open(const std::string& dir, CreateMode mode);

  [[nodiscard]] const std::string& dir() const { return dir_; }
  // The open store directory (for files kept beside the pools: publish_file, read_file).
  [[nodiscard]] int dir_fd() const { return dir_fd_.get(); }

  // Takes the exclusive store lock, polling with backoff for up to `timeout_ms`; then removes
  // stale temporary files. kTryAgainLater when the wait times out; kIoFailure when the lock file
  // cannot be opened (read-only filesystem, planted symlink or FIFO, ...).
  Result<StoreLock> lock(std::int64_t timeout_ms);
  // The shared lock of readers (LockMode::kRead): writes nothing, works on a read-only store.
  Result<StoreLock> lock_shared(std::int64_t timeout_ms);
  Result<StoreLock> lock(std::int64_t timeout_ms, LockMode mode);

  // The pool of `network_name` ("" = default) as the plugin uses it (journal.h PoolIndex: no
  // allocation per reservation); nullopt when it has no file yet. kStoreCorrupt naming the file
  // when it fails verification; kIoFailure on I/O errors.
  Result<std::optional<PoolIndex>> load_pool(const StoreLock& lock,
                                             const std::string& network_name);

  // The same pool as a PoolData (every reservation materialised): for the admin commands/tests.
  Result<std::optional<PoolData>> read_pool(const StoreLock& lock, const std::string& network_name);

  // Makes `ops` durable: `after` must be the pool load_pool returned under this same lock with
  // `ops` applied (PoolIndex::apply); it is what a new pool's first snapshot or a compaction
  // writes. One journal append + fdatasync (see above); nothing when ops is empty. On failure
  // nothing was committed (a partial append is cut back). kIoFailure naming the path (ENOSPC,
  // EROFS, ...); kStoreCorrupt when the pool does not verify.
  Result<CommitInfo> commit(const StoreLock& lock, const PoolIndex& after,
                            const std::vector<PoolOp>& ops);

  // Makes the stored pool equal to `pool`, whatever was changed: the difference with the stored
  // pool becomes one commit (O(pool); the admin commands and tests use it). Refuses (kStoreCorrupt)
  // to replace a pool that does not verify.
  Status write_pool(const StoreLock& lock, const PoolData& pool);

  // Writes the pool as a new snapshot now and cuts the journal (the compaction steps above).
  Status compact(const StoreLock& lock, const std::string& network_name);

  // network_name of every pool file present (read from the file names).
  Result<std::vector<std::string>> list_networks(const StoreLock& lock);

  // Whether an ADD could commit now, without writing anything: the filesystem is not read-only,
  // the directory is writable by this process, and there is room beyond the release reserve.
  Status probe_writable(const StoreLock& lock);

  // The file name of a network's snapshot: "pool-<name>" or "pool-_default".
  static std::string pool_file_name(const std::string& network_name);
  // The file name of a network's journal: pool_file_name + "+journal".
  static std::string journal_file_name(const std::string& network_name);

  void set_tuning(StoreTuning t) { tuning_ = t; }

 private:
  // What read_pool learnt about a pool's files, valid while the same lock is held.
  struct PoolFiles {
    std::uint64_t lock_epoch = 0;
    bool snapshot_exists = false;
    std::size_t snapshot_bytes = 0;
    bool journal_exists = false;
    Fd journal_fd;  // read-write unless the filesystem refused it
    bool journal_writable = false;
    std::size_t journal_header_bytes = 0;
    std::size_t journal_valid_bytes = 0;  // end of the last verified frame
    std::size_t journal_file_bytes = 0;   // > valid: a torn tail to cut before appending
    std::uint64_t last_seq = 0;           // highest sequence in snapshot or journal
  };

  Store(std::string dir, Fd dir_fd) : dir_(std::move(dir)), dir_fd_(std::move(dir_fd)) {}
  Status remove_stale_temp_files();
  [[nodiscard]] Error lock_timed_out(std::int64_t timeout_ms) const;
  Result<PoolFiles*> files_for(const StoreLock& lock, const std::string& network_name);
  using SnapshotBytes = std::function<Result<std::string>(std::uint64_t applied_seq)>;
  Result<CommitInfo> commit_ops(const StoreLock& lock, const std::string& network_name,
                                const std::vector<PoolOp>& ops, const SnapshotBytes& snapshot);
  Status write_snapshot(const std::string& network_name, const std::string& bytes);
  Status create_journal(PoolFiles& f, const std::string& network_name);
  Status cut_journal(PoolFiles& f, const std::string& network_name);
  Status reserve_journal_space(PoolFiles& f, std::size_t append_bytes, bool may_use_reserve,
                               const std::string& path) const;
  std::string path_of(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
  Fd dir_fd_;
  StoreTuning tuning_;
  std::uint64_t lock_epoch_ = 0;
  std::map<std::string, PoolFiles> files_;
};

}  // namespace ipoib::ipam
