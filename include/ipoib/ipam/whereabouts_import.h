// ipoib/ipam/whereabouts_import.h — reads whereabouts' allocation records (pure: JSON text in,
// allocations out; writing them into a store is the admin command's job).
//
// A cluster moving from whereabouts has pods running with addresses that whereabouts handed out.
// `kubectl get ippools.whereabouts.cni.cncf.io -A -o json` and
// `kubectl get overlappingrangeipreservations.whereabouts.cni.cncf.io -A -o json` print them as
// a `List` (or one object with `-o json NAME`). Both kinds are decoded as whereabouts itself
// reads them (pkg/storage/kubernetes):
//   IPPool                          metadata.name  "<range with / and : as ->" or
//                                                  "<network_name>-<range ...>"
//                                   spec.range     "10.0.0.0/24": offsets count from its address
//                                   spec.allocations {"<decimal offset>": {id, podref, ifname}}
//   OverlappingRangeIPReservation   metadata.name  the IP, ':' written as '-', optionally
//                                                  prefixed by "<network_name>-"
//                                   spec           {containerid, podref, ifname}
// Offsets are decoded as 128-bit decimals (whereabouts parses them as int64 and silently drops
// larger ones — an IPv6 allocation beyond 2^63 would look free to it, not to us).
//
//   IPOIB_TRY_ASSIGN(WhereaboutsRecords recs, decode_whereabouts(text, "pools.json"));
//   for (const ImportedAllocation& a : recs.allocations) ...   // a.ip, a.container_id, ...
//   for (const std::string& p : recs.problems) log(p);        // malformed entries, skipped
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"

namespace ipoib::ipam {

struct ImportedAllocation {
  IpAddress ip;
  std::string container_id;  // "" when whereabouts did not record one
  std::string pod_ref;       // "namespace/name" as whereabouts stored it, or ""
  std::string ifname;        // "" for records older than whereabouts' ifname field
  std::string source;        // "IPPool kube-system/10.0.0.0-24 offset 5": for messages
  std::string pool_range;    // IPPool spec.range ("" for an overlapping-range reservation)
  std::string object_name;   // metadata.name of the object it came from
};

struct WhereaboutsRecords {
  std::vector<ImportedAllocation> allocations;
  // One line per entry that could not be decoded (it is skipped, never guessed at) and per
  // object of another kind.
  std::vector<std::string> problems;
};

// Decodes a List of IPPool / OverlappingRangeIPReservation objects, or one such object.
// `network_name` is the importing network's whereabouts network_name ("" for the unnamed one):
// it is the prefix an overlapping-range reservation's name carries. Errors (kDecodeFailure
// naming `file_name`): not JSON, or neither a List nor an object of a known kind. Anything wrong
// inside one entry is a problem line, and the rest is still decoded.
Result<WhereaboutsRecords> decode_whereabouts(std::string_view text, std::string_view file_name,
                                              std::string_view network_name);

// The IP an OverlappingRangeIPReservation's name stands for: the name must start with
// `network_name` + "-" when network_name is not empty (another network's reservation is no
// address of this one), then '-' is read as ':' for IPv6 ("fd00--5" is fd00::5; whereabouts
// appends a "0" to names ending in ':'). kDecodeFailure when it is no address.
Result<IpAddress> decode_reservation_name(std::string_view name, std::string_view network_name);

// The IPPool name whereabouts gives the pool of `range` in `network_name` (IPPoolName):
// "192.168.0.0-24", "mynet-fd00-1---64".
std::string whereabouts_pool_name(std::string_view range, std::string_view network_name);
}  // namespace ipoib::ipam
