// ipoib/ipam/admin.h — `ipoib ipam list|release`, with its output streams injectable.
//
//   std::ostringstream out, err;
//   int rc = admin_run({"list", "--json", "--store-dir", dir}, out, err);   // 0 ok, 1 failed, 2
//   usage
//
// list    [--json] [--store-dir D]: every pool, its ranges with reserved and free counts, and its
//         reservations (IP, container ID, pod, ifname, since) as a table or one JSON document.
// release (--ip IP | --container ID [--ifname IF]) [--network NAME] [--store-dir D]: frees the
//         matching reservations (in every pool unless --network), one journal commit per pool.
// import  --whereabouts FILE... --config NETCONF [--dry-run]: whereabouts' allocations into the
//         store NETCONF names (import.h).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace ipoib::ipam {

int admin_run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace ipoib::ipam
