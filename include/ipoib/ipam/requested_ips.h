// ipoib/ipam/requested_ips.h — static addresses a runtime asks for (pure: no store access).
//
// Users already ask for a fixed address in three ways, and all three are accepted:
//   runtimeConfig.ips   ["10.0.0.5/24", ...]  the `ips` capability (Multus' `ips` in the
//                                              network-selection annotation; libcni's CAP_ARGS)
//   args.cni.ips        ["10.0.0.5", ...]     in the network configuration (CONVENTIONS.md)
//   CNI_ARGS IP=        "10.0.0.5[/24][,fd00::5[/64]]"  podman's --ip, whereabouts' IP arg
// Precedence follows the CNI conventions (runtimeConfig over args over CNI_ARGS): the first
// source that names any address is used whole, and the others are ignored (the caller logs it).
// A prefix length, when given, must equal the subnet length of the range the address falls in.
//
//   IPOIB_TRY_ASSIGN(RequestedIps req, requested_ips(request.conf, request.env.args));
//   IPOIB_TRY_ASSIGN(auto per_range, assign_requested(req, cfg.ranges, cfg.range_keys));
//   per_range[i];   // the address range i must reserve, or nullopt: allocate as usual
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/cni/args.h"
#include "ipoib/cni/config.h"
#include "ipoib/ipam/pool_store.h"
#include "ipoib/ipam/range.h"

namespace ipoib::ipam {

struct RequestedIp {
  IpAddress ip;
  std::optional<int> prefix_length;  // when the request carried one
  std::string text;                  // as given, for messages
};

struct RequestedIps {
  std::vector<RequestedIp> ips;              // empty: nothing requested
  std::string source;                        // "runtimeConfig.ips", "args.cni.ips" or "CNI_ARGS IP"
  std::vector<std::string> ignored_sources;  // lower-precedence sources that also named some
};

// Reads the three sources. A malformed address or a repeated one is an error naming the source:
// kInvalidEnvironment for CNI_ARGS, kInvalidNetworkConfig for the two configuration keys.
Result<RequestedIps> requested_ips(const cni::NetConf& conf, const cni::CniArgs& args);

// Matches each requested address to the one range (of `ranges`, same order as `keys`) it may
// be handed out from: inside [first, last], not excluded, not the gateway. An error names the
// address and why (outside every range, two addresses for one range, a prefix length that is not
// the range's) with the source's code (kInvalidEnvironment for CNI_ARGS, kInvalidNetworkConfig
// otherwise). Never silently falls back to a dynamic address. Whether the address is free is the
// store's question (an address held by another attachment is kIpamFailure there).
Result<std::vector<std::optional<IpAddress>>> assign_requested(
    const RequestedIps& req, const std::vector<Range>& ranges,
    const std::vector<std::string>& keys);

// Inside an ADD's transaction: reserves the requested `ip` for the attachment `r` describes
// (r.range_key, container_id, ifname, ...; r.ip is ignored). Already this attachment's: nothing
// changes. The attachment holding another address of the range (a repeated ADD asking for a new
// one): that one is released. Held by another attachment: kIpamFailure naming the holder —
// never another address instead.
Status reserve_requested(PoolTxn& txn, const IpAddress& ip, Reservation r,
                         const std::string& source);

}  // namespace ipoib::ipam
