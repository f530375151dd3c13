// The local journal store behind the transaction interface (local_pool_store.h).
#include "ipoib/ipam/local_pool_store.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

namespace ipoib::ipam {
namespace {

Error read_only_change() {
  return Error(ErrorCode::kInternal, "IPAM store: a read transaction tried to change the pool");
}

// A transaction over a pool loaded under the lock. Changes are applied to the index before the
// next query (so it sees them) and collected as the journal record's operations. Releases are
// applied as one batch: GC may release tens of thousands of reservations, and erasing them from
// the sorted index one at a time would move the whole index each time (O(k·n)).
class LocalTxn final : public PoolTxn {
 public:
  LocalTxn(PoolIndex& pool, Access access)
      : pool_(pool), access_(access), ranges_before_(pool.ranges) {}

  Result<std::optional<Reservation>> find_attachment(std::string_view range_key,
                                                     std::string_view container_id,
                                                     std::string_view ifname) override {
    IPOIB_TRY(flush());
    const std::size_t at = pool_.find_attachment(range_key, container_id, ifname);
    if (at == PoolIndex::npos) {
      return std::optional<Reservation>();
    }
    IPOIB_TRY_ASSIGN(const ReservationView v, pool_.at(at));
    return std::optional<Reservation>(v.to_reservation());
  }

  Result<std::vector<Reservation>> find_pod(std::string_view range_key, std::string_view pod_ref,
                                            std::string_view ifname) override {
    IPOIB_TRY(flush());
    std::vector<Reservation> out;
    const std::size_t first = pool_.find_pod(range_key, pod_ref, ifname);
    if (first == PoolIndex::npos) {
      return out;  // the common case: one scan in place, nothing built
    }
    for (std::size_t i = first; i < pool_.size(); ++i) {
      const ReservationView v = pool_.peek(i);
      if (v.range_key == range_key && v.pod_ref == pod_ref && v.ifname == ifname) {
        IPOIB_TRY_ASSIGN(const ReservationView checked, pool_.at(i));
        out.push_back(checked.to_reservation());
      }
    }
    return out;
  }

  Result<std::vector<Reservation>> reservations(const ReservationFilter& filter) override {
    IPOIB_TRY(flush());
    std::vector<Reservation> out;
    // Compared in place; only the matches are checked and copied (a DEL's filter names one
    // attachment of thousands).
    for (std::size_t i = 0; i < pool_.size(); ++i) {
      if (filter.matches_record(pool_.peek(i))) {
        IPOIB_TRY_ASSIGN(const ReservationView v, pool_.at(i));
        out.push_back(v.to_reservation());
      }
    }
    return out;
  }

  Result<std::vector<PoolRange>> ranges() override {
    IPOIB_TRY(flush());
    return pool_.ranges;
  }

  Result<u128> free_count(const std::string& /*range_key*/, const Range& range) override {
    IPOIB_TRY(flush());
    return ipam::free_count(range, pool_.taken(range.family()));
  }

  Status use_range(const std::string& range_key, const Range& range) override {
    if (access_ == Access::kRead) {
      return read_only_change();
    }
    IPOIB_TRY(flush());
    pool_.upsert_range(range_key, range);
    return ok_status();
  }

  Result<std::optional<IpAddress>> allocate(const std::string& range_key, const Range& range,
                                            AllocationPolicy policy, Reservation r) override {
    IPOIB_TRY(use_range(range_key, range));
    const PoolRange* pr = pool_.find_range(range_key);
    const auto ip = ipam::allocate(range, pool_.taken(range.family()), policy, pr->cursor);
    if (!ip) {
      return std::optional<IpAddress>();
    }
    r.ip = *ip;
    r.range_key = range_key;
    IPOIB_TRY(reserve(std::move(r)));
    // Only round-robin reads the cursor. Lowest-free leaves it alone, so that its ADD's journal
    // record is the reservation alone, not also the range's description (half of the record,
    // and decoded again by every later operation until the next compaction).
    if (policy == AllocationPolicy::kRoundRobin) {
      pool_.upsert_range(range_key, range).cursor = *ip;
    }
    return ip;
  }

  Status reserve(Reservation r) override {
    if (access_ == Access::kRead) {
      return read_only_change();
    }
    IPOIB_TRY(flush());
    return change(PoolOp::reserve(std::move(r)));
  }

  Status release(const IpAddress& ip) override {
    if (access_ == Access::kRead) {
      return read_only_change();
    }
    pending_releases_.push_back(ip);
    ops_.push_back(PoolOp::release(ip));
    return ok_status();
  }

  // The journal record's operations: the body's changes, then every range description that
  // differs from the loaded one (the round-robin cursor included).
  Result<std::vector<PoolOp>> take_ops() {
    IPOIB_TRY(flush());
    for (const PoolRange& r : pool_.ranges) {
      const auto old = std::find_if(ranges_before_.begin(), ranges_before_.end(),
                                    [&](const PoolRange& b) { return b.key == r.key; });
      if (old == ranges_before_.end() || !(*old == r)) {
        ops_.push_back(PoolOp::set_range(r));
      }
    }
    return std::move(ops_);
  }

 private:
  Status change(PoolOp op) {
    IPOIB_TRY(pool_.apply({op}, ""));
    ops_.push_back(std::move(op));
    return ok_status();
  }

  static Error not_reserved(const IpAddress& ip) {
    return Error(ErrorCode::kInternal,
                 "IPAM store: release of " + ip.to_string() + ", which is not reserved");
  }

  // Applies the pending releases: a few one by one, many by rebuilding the index once (one
  // merge of the sorted reservations with the sorted releases: O(n + k log k)).
  Status flush() {
    if (pending_releases_.empty()) {
      return ok_status();
    }
    std::vector<IpAddress> gone = std::move(pending_releases_);
    pending_releases_.clear();
    if (gone.size() <= kReleasesAppliedOneByOne) {
      for (const IpAddress& ip : gone) {
        if (!pool_.apply({PoolOp::release(ip)}, "")) {
          return not_reserved(ip);
        }
      }
      return ok_status();
    }
    std::sort(gone.begin(), gone.end());
    if (const auto dup = std::adjacent_find(gone.begin(), gone.end()); dup != gone.end()) {
      return not_reserved(*dup);  // released twice
    }
    IPOIB_TRY_ASSIGN(PoolData data, pool_.to_pool_data());
    std::vector<Reservation> kept;
    kept.reserve(data.reservations.size() - std::min(data.reservations.size(), gone.size()));
    std::size_t j = 0;
    for (Reservation& r : data.reservations) {
      if (j < gone.size() && gone[j] < r.ip) {
        return not_reserved(gone[j]);
      }
      if (j < gone.size() && gone[j] == r.ip) {
        ++j;
      } else {
        kept.push_back(std::move(r));
      }
    }
    if (j < gone.size()) {
      return not_reserved(gone[j]);
    }
    data.reservations = std::move(kept);
    pool_ = PoolIndex::from_pool_data(data);
    return ok_status();
  }

  static constexpr std::size_t kReleasesAppliedOneByOne = 16;

  PoolIndex& pool_;
  Access access_;
  std::vector<PoolRange> ranges_before_;
  std::vector<PoolOp> ops_;
  std::vector<IpAddress> pending_releases_;
};

class LocalIpamStore;

class LocalPoolStore final : public PoolStore {
 public:
  LocalPoolStore(LocalIpamStore& store, std::string network_name)
      : store_(store), network_name_(std::move(network_name)) {}
  Result<TxnInfo> transact(Access access, const Body& body) override;
  [[nodiscard]] std::string label() const override;

 private:
  LocalIpamStore& store_;
  std::string network_name_;
};

class LocalIpamStore final : public IpamStore {
 public:
  LocalIpamStore(std::string dir, std::optional<Store> store, std::int64_t lock_timeout_ms,
                 OpenMode mode)
      : dir_(std::move(dir)),
        store_(std::move(store)),
        lock_timeout_ms_(lock_timeout_ms),
        mode_(mode) {}

  Result<std::vector<std::string>> pool_names() override {
    if (!store_) {
      return std::vector<std::string>();
    }
    IPOIB_TRY_ASSIGN(StoreLock lock, store_->lock_shared(lock_timeout_ms_));
    IPOIB_TRY_ASSIGN(std::vector<std::string> names, store_->list_networks(lock));
    std::sort(names.begin(), names.end());
    return names;
  }

  std::unique_ptr<PoolStore> pool(const std::string& network_name) override {
    return std::make_unique<LocalPoolStore>(*this, network_name);
  }

  Status writable() override {
    if (!store_) {
      // Nothing exists yet: an ADD creates the directory below its nearest existing ancestor.
      std::string dir = dir_;
      while (dir.size() > 1 && ::access(dir.c_str(), F_OK) != 0) {
        dir.erase(dir.find_last_of('/') == 0 ? 1 : dir.find_last_of('/'));
      }
      if (::access(dir.c_str(), W_OK) != 0) {
        return Error(ErrorCode::kIoFailure, "store " + dir_ + " does not exist and " + dir +
                                                " is not writable: an ADD could not create it");
      }
      return ok_status();
    }
    IPOIB_TRY_ASSIGN(StoreLock lock, store_->lock_shared(lock_timeout_ms_));
    return store_->probe_writable(lock);
  }

  [[nodiscard]] std::string label() const override { return dir_; }

  // transact's one sequence: lock, load, run the body, commit.
  Result<TxnInfo> transact(const std::string& network_name, Access access,
                           const PoolStore::Body& body) {
    if (access == Access::kWrite && mode_ == OpenMode::kReadOnly) {
      return Error(ErrorCode::kInternal, "IPAM store " + dir_ + ": opened read-only");
    }
    TxnInfo info;
    if (!store_) {
      // No store: an empty pool, and no lock to take (nothing can be committed to it).
      PoolIndex empty(network_name);
      LocalTxn txn(empty, access);
      IPOIB_TRY(body(txn));
      IPOIB_TRY_ASSIGN(const std::vector<PoolOp> ops, txn.take_ops());
      if (!ops.empty()) {
        return Error(ErrorCode::kInternal, "IPAM store " + dir_ + " does not exist");
      }
      return info;
    }
    // Readers share the lock (and write nothing: no lock file is created, a read-only store
    // works); writers exclude everyone.
    IPOIB_TRY_ASSIGN(StoreLock lock,
                     store_->lock(lock_timeout_ms_,
                                  access == Access::kRead ? LockMode::kRead : LockMode::kWrite));
    IPOIB_TRY_ASSIGN(std::optional<PoolIndex> loaded, store_->load_pool(lock, network_name));
    PoolIndex pool = loaded ? std::move(*loaded) : PoolIndex(network_name);
    LocalTxn txn(pool, access);
    IPOIB_TRY(body(txn));
    IPOIB_TRY_ASSIGN(const std::vector<PoolOp> ops, txn.take_ops());
    if (ops.empty()) {
      return info;
    }
    if (access == Access::kRead) {
      return read_only_change();
    }
    IPOIB_TRY_ASSIGN(CommitInfo commit, store_->commit(lock, pool, ops));
    info.changes = ops.size();
    if (commit.compaction_error) {
      info.warnings.push_back("IPAM journal compaction failed (retried by the next operation): " +
                              commit.compaction_error->msg());
    }
    return info;
  }

  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::optional<Store> store_;
  std::int64_t lock_timeout_ms_;
  OpenMode mode_;
};

Result<TxnInfo> LocalPoolStore::transact(Access access, const Body& body) {
  return store_.transact(network_name_, access, body);
}

std::string LocalPoolStore::label() const {
  return store_.dir() + "/" + Store::pool_file_name(network_name_);
}

}  // namespace

Result<std::unique_ptr<IpamStore>> open_local_store(const std::string& dir,
                                                    std::int64_t lock_timeout_ms, OpenMode mode,
                                                    const StoreTuning& tuning) {
  IPOIB_TRY_ASSIGN(
      std::optional<Store> store,
      Store::open(dir, mode == OpenMode::kCreate ? CreateMode::kCreate : CreateMode::kMustExist));
  if (store) {
    store->set_tuning(tuning);
  }
  return std::unique_ptr<IpamStore>(
      std::make_unique<LocalIpamStore>(dir, std::move(store), lock_timeout_ms, mode));
}

}  // namespace ipoib::ipam
