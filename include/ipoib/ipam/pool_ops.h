// ipoib/ipam/pool_ops.h — the pool operations the verbs and the admin commands share, written
// against a transaction (pool_store.h), and GC's pure choice of what to release.
//
//   pool->transact(Access::kWrite, [&](PoolTxn& t) -> Status {
//     IPOIB_TRY_ASSIGN(released, release_matching(t, {.container_id = cid, .ifname = ifname}));
//     return ok_status();
//   });
#pragma once

#include <string>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/cni/skel.h"
#include "ipoib/ipam/pool.h"
#include "ipoib/ipam/pool_store.h"

namespace ipoib::ipam {

// Releases every reservation matching `filter` and returns them (sorted by address). DEL
// (container ID + ifname) and `ipoib ipam release` (an address, or a container with or without
// an ifname) are this one operation.
Result<std::vector<Reservation>> release_matching(PoolTxn& txn, const ReservationFilter& filter);

// GC's choice: the reservations among `candidates` whose (container ID, ifname) is not in
// `valid`. Linear in both (a hash set of the valid attachments), so a GC of tens of thousands of
// attachments against tens of thousands of reservations stays far below the lock timeout.
// Which candidates GC may consider at all (its CNI network, its node) is the caller's filter.
std::vector<Reservation> gc_choose_releases(std::vector<Reservation> candidates,
                                            const std::vector<cni::Attachment>& valid);

}  // namespace ipoib::ipam
