// ipoib/ipam/import.h — `ipoib ipam import`: whereabouts' allocations into this IPAM's store, so
// a cluster moving from whereabouts never hands out an address a running pod still holds.
//
//   ipoib ipam import --whereabouts pools.json [--whereabouts reservations.json ...]
//                     --config /etc/cni/net.d/10-ipoib.conflist [--dry-run] [--ifname NAME]
//
// FILE is `kubectl get ippools.whereabouts.cni.cncf.io -A -o json` or
// `kubectl get overlappingrangeipreservations.whereabouts.cni.cncf.io -A -o json` (or one object).
// NETCONF is the network's CNI configuration (.conf, .conflist, or the JSON of a NAD's
// spec.config): its `ipam` section names the ranges and the store (local store_dir, shared
// store_dir, or the cluster store), after the same flat-file merge the plugin does.
//  * Only this network's records are taken: IPPools named for one of NETCONF's ranges (with its
//    network_name prefix, as whereabouts names them) and overlapping-range reservations named
//    with that prefix; an address outside every usable range of NETCONF cannot be handed out here
//    and is reported and skipped.
//  * Every reservation is written in one transaction per pool, recorded with node "" (GC of any
//    node leaves it alone: no node's runtime knows whereabouts' attachments) and released by the
//    pod's DEL (container ID + ifname) or by `ipoib ipam release`. A record without ifname
//    (whereabouts before its ifname field) is stored with --ifname (default net1, Multus' first).
//  * Idempotent: an address already reserved for the same container and ifname is left as is. A
//    conflict (the address held by another attachment, or two records disagreeing) is reported
//    and nothing is overwritten. --dry-run prints what would be written and writes nothing.
// Exit: 0 everything importable is in the store; 1 a conflict, a malformed entry or an error
// (everything else was still written); 2 usage.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace ipoib::ipam {

// args: what follows "import". `now_unix_s` stamps the reservations (tests pass a fixed time).
int import_run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
               std::int64_t now_unix_s);

}  // namespace ipoib::ipam
