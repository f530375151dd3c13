// What every IpamStore shares: the filter's meaning and the choice of implementation.
#include "ipoib/ipam/pool_store.h"

#include "ipoib/ipam/local_pool_store.h"

namespace ipoib::ipam {

bool ReservationFilter::matches(const Reservation& r) const {
  return (!ip || r.ip == *ip) && (!container_id || r.container_id == *container_id) &&
         (!ifname || r.ifname == *ifname) && (!cni_network || r.cni_network == *cni_network);
}

Result<std::unique_ptr<IpamStore>> open_ipam_store(const StoreLocation& loc, OpenMode mode,
                                                   const StoreTuning& tuning) {
  // The cluster store (etcd) is chosen here from loc once it exists; everything else is local.
  return open_local_store(loc.store_dir, loc.lock_timeout_ms, mode, tuning);
}

Result<std::unique_ptr<IpamStore>> open_ipam_store(const StoreLocation& loc, OpenMode mode) {
  return open_ipam_store(loc, mode, StoreTuning{});
}

}  // namespace ipoib::ipam
