// The choice of IpamStore implementation, and what every PoolStore shares.
#include "ipoib/ipam/pool_store.h"

#include "ipoib/ipam/cluster_pool_store.h"
#include "ipoib/ipam/local_pool_store.h"
#include "ipoib/ipam/pool_ops.h"

namespace ipoib::ipam {

Result<TxnInfo> PoolStore::release_attachment(const ReservationFilter& attachment,
                                              std::vector<Reservation>& released) {
  return transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
    IPOIB_TRY_ASSIGN(released, release_matching(txn, attachment));
    return ok_status();
  });
}

Result<std::unique_ptr<IpamStore>> open_ipam_store(const StoreLocation& loc, OpenMode mode,
                                                   const StoreTuning& tuning) {
  if (loc.datastore == Datastore::kEtcd) {
    if (loc.cluster.node_slice_prefix != 0) {
      return open_node_slice_store(loc, mode, tuning);
    }
    return open_cluster_store(loc, mode);
  }
  return open_local_store(loc.store_dir, loc.lock_timeout_ms, mode, tuning);
}

Result<std::unique_ptr<IpamStore>> open_ipam_store(const StoreLocation& loc, OpenMode mode) {
  return open_ipam_store(loc, mode, StoreTuning{});
}

}  // namespace ipoib::ipam
