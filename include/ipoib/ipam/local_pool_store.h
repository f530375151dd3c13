// ipoib/ipam/local_pool_store.h — the local journal store as an IpamStore (pool_store.h).
//
// A transaction is: take the store's fcntl lock (waiting up to lock_timeout_ms, then code 11),
// load the pool (snapshot + journal, verified), run the body over it, and append the body's
// changes as one journal record, fdatasync'ed before transact returns (store.h has the commit
// protocol). The body's queries are answered from the loaded pool; nothing is ever retried,
// because nothing can change under the lock.
//
//   IPOIB_TRY_ASSIGN(auto store, open_local_store("/var/lib/cni/ipoib-ipam", 5000,
//                                                 OpenMode::kExisting, StoreTuning{}));
//   auto pool = store->pool("mynet");
//   IPOIB_TRY(pool->transact(Access::kRead, [&](PoolTxn& t) { ... }));
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ipoib/ipam/pool_store.h"
#include "ipoib/ipam/store.h"

namespace ipoib::ipam {

// The store in `dir`. With kExisting and kReadOnly a missing directory is an empty store (and
// nothing is created); kCreate creates missing directories 0700. A symlink as `dir` is refused
// (kIoFailure). The returned IpamStore must outlive the PoolStores it hands out.
Result<std::unique_ptr<IpamStore>> open_local_store(const std::string& dir,
                                                    std::int64_t lock_timeout_ms, OpenMode mode,
                                                    const StoreTuning& tuning);

}  // namespace ipoib::ipam
