// Node-slice mode of the cluster store (cluster_pool_store.h): not built yet.
#include "ipoib/ipam/cluster_pool_store.h"

namespace ipoib::ipam {

Result<std::unique_ptr<IpamStore>> open_node_slice_store(const StoreLocation& /*loc*/,
                                                         OpenMode /*mode*/,
                                                         const StoreTuning& /*tuning*/) {
  return Error(ErrorCode::kInvalidNetworkConfig,
               "node_slice_size: node-slice mode is not available in this build");
}

}  // namespace ipoib::ipam
