// ipoib/ipam/cluster_pool_store.h — the cluster store: the IPAM pool on etcd v3
// (datastore: etcd), the second implementation of pool_store.h's transaction.
//
// Per-address mode (the default): every reservation is one etcd key plus index keys
// (cluster/keys.h has the layout). A transaction runs its body optimistically: each query is a
// targeted read recorded in the read set (an ADD reads its attachment's index key, its pod's
// index prefix and a bounded window of address keys after the range's cursor — never the whole
// range), the changes are committed with one Txn whose compares check that nothing read has
// changed, and on a conflict the body runs again on fresh reads with jittered backoff until
// lock_timeout_ms (then code 11). No lock, no lease, no leader election: a dead node holds
// nothing. A transaction too big for one etcd Txn (etcd's --max-txn-ops, 128 by default: a GC
// or an admin release of dozens of reservations, an import) commits in batches: each
// reservation's keys change together under its own compare, and a conflict re-runs the body,
// which sees what the earlier batches did.
//
// When etcd cannot be reached: ADD fails with code 11 naming the endpoints; DEL
// (release_attachment) records the release in <store_dir>/cluster-deferred/ (one file per
// attachment, published atomically) and succeeds; every later write transaction of the pool,
// GC's included, and STATUS (writable) first apply those releases, and a pool with releases
// still pending commits nothing else, so an address is never reused before it is released.
//
// Node-slice mode (node_slice_size): each node claims slices of a range in etcd and allocates
// inside them from its local journal store in store_dir (open_node_slice_store).
#pragma once

#include <memory>

#include "ipoib/base/error.h"
#include "ipoib/ipam/config.h"
#include "ipoib/ipam/pool_store.h"

namespace ipoib::ipam {

struct StoreTuning;

// The per-address cluster store loc names (loc.datastore == kEtcd). Validates the etcd keys and
// reads the TLS and password files (etcd::config_from; kInvalidNetworkConfig naming the key or
// file, e.g. a key file that others can read); does no I/O to etcd.
Result<std::unique_ptr<IpamStore>> open_cluster_store(const StoreLocation& loc, OpenMode mode);

// The node-slice store (loc.cluster.node_slice_prefix != 0).
Result<std::unique_ptr<IpamStore>> open_node_slice_store(const StoreLocation& loc, OpenMode mode,
                                                         const StoreTuning& tuning);

}  // namespace ipoib::ipam
