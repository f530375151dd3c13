// ipoib/ipam/pool_store.h — the IPAM store behind one transaction: the only way the verbs (ADD,
// DEL, CHECK, GC, STATUS) and the admin commands (list, release) read or change a pool.
//
// A transaction is begin → read the pool → apply operations → commit. Locking, loading,
// publishing and retrying happen in exactly one place, PoolStore::transact, and nowhere in the
// verbs. Two implementations fit the same contract:
//  * the local journal store (local_pool_store.h): the body runs under the store's file lock
//    (shared for kRead), over the pool loaded from snapshot + journal, and its changes become one
//    journal record appended and fdatasync'ed before transact returns;
//  * a remote compare-and-swap store (etcd v3): the body runs optimistically; every query's
//    answer is recorded as the transaction's read set, and the changes are committed with one
//    Txn whose compares check that nothing read has changed. On conflict the body is run again
//    on fresh reads, with jittered backoff, until the location's lock_timeout_ms has elapsed
//    (then kTryAgainLater, code 11).
//
// Why the body sees queries (find_attachment, find_pod, allocate, ...) and not the whole pool:
// a remote store answers each with a targeted read and puts exactly that in its compare set, so
// an ADD in per-address mode never lists the whole range and two ADDs on different addresses
// do not conflict. Only list, GC and STATUS ask for everything (reservations, free_count), and
// only they pay for it.
//
//   IPOIB_TRY_ASSIGN(std::unique_ptr<IpamStore> store, open_ipam_store(loc, OpenMode::kCreate,
//   {})); std::unique_ptr<PoolStore> pool = store->pool(loc.network_name); std::vector<IpAddress>
//   got; IPOIB_TRY_ASSIGN(TxnInfo info, pool->transact(Access::kWrite, [&](PoolTxn& txn) -> Status
//   {
//     got.clear();                                   // the body may run more than once
//     txn.use_range(key, range);
//     IPOIB_TRY_ASSIGN(auto ip, txn.allocate(key, range, AllocationPolicy::kLowestFree, r));
//     if (!ip) return Error(ErrorCode::kIpamFailure, "exhausted");   // nothing is committed
//     got.push_back(*ip);
//     return ok_status();
//   }));
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/ipam/config.h"
#include "ipoib/ipam/pool.h"
#include "ipoib/ipam/range.h"

namespace ipoib::ipam {

// Which reservations a query means: every field that is set must match exactly (ifname: when
// set). An empty filter means every reservation of the pool.
struct ReservationFilter {
  std::optional<IpAddress> ip{};
  std::optional<std::string> container_id{};
  std::optional<std::string> ifname{};
  std::optional<std::string> cni_network{};
  std::optional<std::string> node{};

  [[nodiscard]] bool matches(const Reservation& r) const { return matches_record(r); }
  // The same on anything with Reservation's field names (ReservationView: compared in place).
  template <class Record>
  [[nodiscard]] bool matches_record(const Record& r) const {
    return (!ip || r.ip == *ip) && (!container_id || r.container_id == *container_id) &&
           (!ifname || r.ifname == *ifname) && (!cni_network || r.cni_network == *cni_network) &&
           (!node || r.node == *node);
  }
  // Whether the filter names one attachment (container_id and ifname set): a remote store
  // answers it from its attachment index instead of listing the pool.
  [[nodiscard]] bool is_attachment() const { return container_id && ifname; }
};

// What a transaction body sees: one network's pool, through queries and changes. Changes are
// visible to the later queries of the same run of the body, and become durable only when
// PoolStore::transact returns success. All calls are only valid during the body's run.
class PoolTxn {
 public:
  virtual ~PoolTxn() = default;

  // The reservation of (range_key, container ID, ifname), if any (unique by construction).
  virtual Result<std::optional<Reservation>> find_attachment(std::string_view range_key,
                                                             std::string_view container_id,
                                                             std::string_view ifname) = 0;
  // Every reservation of (range_key, pod_ref, ifname): usually none or one; several when two
  // live containers claimed one pod reference (podman, cnitool with a fixed CNI_ARGS).
  virtual Result<std::vector<Reservation>> find_pod(std::string_view range_key,
                                                    std::string_view pod_ref,
                                                    std::string_view ifname) = 0;
  // Every reservation matching `filter`, sorted by address. An attachment filter is a targeted
  // read; anything broader may read the whole pool (list, GC, admin release).
  virtual Result<std::vector<Reservation>> reservations(const ReservationFilter& filter) = 0;
  // The ranges the pool remembers (for list); a remote store may return only what it keeps.
  virtual Result<std::vector<PoolRange>> ranges() = 0;
  // Free addresses of `range` (STATUS): may read every reservation of the range.
  virtual Result<u128> free_count(const std::string& range_key, const Range& range) = 0;

  // Records the configured description of a range this ADD uses (for list's free counts and the
  // round-robin cursor). Cheap when nothing changed; a remote store may ignore it.
  virtual Status use_range(const std::string& range_key, const Range& range) = 0;
  // Picks the next free address of `range` by `policy` (round-robin continues after the range's
  // cursor, which moves to the address picked) and reserves it for `r` (r.ip is ignored and
  // r.range_key is set to range_key). nullopt when the range has no free address: nothing
  // changed.
  virtual Result<std::optional<IpAddress>> allocate(const std::string& range_key,
                                                    const Range& range, AllocationPolicy policy,
                                                    Reservation r) = 0;
  // Inserts the reservation or replaces the one at its address (a re-ADD taking an address over).
  virtual Status reserve(Reservation r) = 0;
  // Releases the reservation of `ip`. Releasing what is not reserved is a bug in the body
  // (a body releases only what it read): kInternal, from this call or from transact, and
  // nothing is committed.
  virtual Status release(const IpAddress& ip) = 0;
};

enum class Access {
  kRead,   // the body only queries; nothing is ever written (works on a read-only store)
  kWrite,  // the body's changes are committed together, or not at all
};

struct TxnInfo {
  std::size_t changes = 0;  // operations committed (0: nothing was written)
  int attempts = 1;         // runs of the body (> 1 only for an optimistic store on conflict)
  // The changes were recorded durably on this node and are applied to the shared store later
  // (a remote store that cannot be reached; releases only, so DEL never blocks pod teardown).
  bool deferred = false;
  // What the caller may log: the transaction itself succeeded (e.g. a failed compaction, retried
  // by the next operation).
  std::vector<std::string> warnings;
};

// One network's pool.
class PoolStore {
 public:
  virtual ~PoolStore() = default;
  using Body = std::function<Status(PoolTxn&)>;

  // Runs `body` in one transaction. When the body returns an error, nothing is committed and
  // that error is returned unchanged. Otherwise every change the body made is committed
  // atomically (all-or-nothing across ranges) before transact returns, and the result says what
  // happened. The body may run more than once (an optimistic store after a conflict): it must
  // derive everything from the PoolTxn and overwrite, not append to, what it hands back.
  // A kRead body that changes something fails with kInternal and nothing is written.
  // Errors: kTryAgainLater when the lock (local) or a conflict-free commit (remote) cannot be had
  // within lock_timeout_ms; kStoreCorrupt naming the file or key when the pool fails
  // verification; kIoFailure when it cannot be read or written (naming the path and errno).
  virtual Result<TxnInfo> transact(Access access, const Body& body) = 0;

  // DEL's operation: releases every reservation of one attachment (release_matching on an
  // attachment filter, in one transaction) and returns them in `released`. It never blocks pod
  // teardown on a remote store: when the cluster cannot be reached, the release is recorded
  // durably on this node instead (info.deferred, `released` empty) and applied before any
  // later transaction of this pool commits. The local store simply runs the transaction.
  virtual Result<TxnInfo> release_attachment(const ReservationFilter& attachment,
                                             std::vector<Reservation>& released);

  // Names the pool in messages: "/var/lib/cni/ipoib-ipam/pool-mynet".
  [[nodiscard]] virtual std::string label() const = 0;
};

enum class OpenMode {
  kCreate,    // ADD: creates what the store needs (the directory, the lock file)
  kExisting,  // DEL, GC, CHECK, admin: creates nothing; a store that does not exist is empty,
              // and a write transaction on it succeeds while it changes nothing
  kReadOnly,  // STATUS, list: writes nothing at all, also not a lock file; kWrite is refused
};

// A store: every network's pool at one location.
class IpamStore {
 public:
  virtual ~IpamStore() = default;
  // The network names that have a pool ("" = the default pool), sorted.
  virtual Result<std::vector<std::string>> pool_names() = 0;
  // One network's pool ("" = default). Opening costs nothing; the transaction does the work.
  virtual std::unique_ptr<PoolStore> pool(const std::string& network_name) = 0;
  // Whether a write transaction could commit now: STATUS's check (local: the directory accepts a
  // new file; remote: the cluster answers with a quorum). kIoFailure/kTryAgainLater with the
  // reason.
  virtual Status writable() = 0;
  // Names the store in messages: its directory, or its endpoints.
  [[nodiscard]] virtual std::string label() const = 0;
};

struct StoreTuning;  // store.h: when the local journal is compacted

// Opens the store `loc` names: the local journal store in loc.store_dir (local_pool_store.h), or
// with datastore etcd the cluster store (cluster_pool_store.h: per-address, or node slices when
// node_slice_size is set).
// Errors as the implementation's open (kInvalidNetworkConfig for a bad path, kIoFailure).
Result<std::unique_ptr<IpamStore>> open_ipam_store(const StoreLocation& loc, OpenMode mode,
                                                   const StoreTuning& tuning);
// The same with the default tuning.
Result<std::unique_ptr<IpamStore>> open_ipam_store(const StoreLocation& loc, OpenMode mode);

}  // namespace ipoib::ipam
