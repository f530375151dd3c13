// ipoib/netlink/route.h — IPv4/IPv6 routes (RTM_NEWROUTE / DELROUTE / GETROUTE).
//
//   netlink::RouteSpec r{.destination = *IpPrefix::parse("0.0.0.0/0"),
//                        .gateway = *IpAddress::parse("10.56.0.1"), .ifindex = ifindex};
//   IPOIB_TRY(netlink::add_route(pod_sock, r));
//   IPOIB_TRY_ASSIGN(auto routes, netlink::list_routes(pod_sock, IpFamily::kV4, std::nullopt));
//
// Each operation acts in the namespace `sock` was opened in (socket.h).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/netlink/address.h"  // Scope
#include "ipoib/netlink/message.h"
#include "ipoib/netlink/socket.h"

namespace ipoib::netlink {

inline constexpr std::uint32_t kMainRouteTable = 254;  // RT_TABLE_MAIN

struct RouteSpec {
  IpPrefix destination;                    // host bits are cleared when encoded
  std::optional<IpAddress> gateway;        // RTA_GATEWAY; same family as destination
  int ifindex = 0;                         // RTA_OIF; 0 = let the kernel pick by gateway
  std::optional<std::uint32_t> metric;     // RTA_PRIORITY
  std::optional<std::uint32_t> mtu_bytes;  // RTA_METRICS { RTAX_MTU }
  std::optional<std::uint32_t> table;      // default kMainRouteTable
  // Default: kUniverse with a gateway, kLink without (a directly connected prefix), as the CNI
  // reference plugins do. The kernel ignores the scope of IPv6 routes.
  std::optional<Scope> scope;
};

struct RouteInfo {
  IpPrefix destination;
  std::optional<IpAddress> gateway;
  int ifindex = 0;
  std::optional<std::uint32_t> metric;
  std::optional<std::uint32_t> mtu_bytes;
  std::uint32_t table = kMainRouteTable;
  Scope scope = Scope::kUniverse;
  std::uint8_t protocol = 0;  // RTPROT_* (2 = kernel: the prefix route of an address)
  std::uint8_t type = 0;      // RTN_* (1 = unicast, 2 = local, ...)
};

// RTM_NEWROUTE, flags REQUEST|CREATE|EXCL|ACK, type unicast, protocol boot (as `ip route add`).
// kInvalidNetworkConfig when the gateway family differs from the destination's or neither a
// gateway nor an ifindex is given.
Result<Bytes> build_add_route_request(const RouteSpec& spec);
// RTM_DELROUTE matching destination, table, and gateway/oif/metric when set.
Result<Bytes> build_delete_route_request(const RouteSpec& spec);
Bytes build_dump_routes_request(std::optional<IpFamily> family);
// Parses one RTM_NEWROUTE message. kDecodeFailure when malformed. Fuzzed by
// tests/fuzz/fuzz_netlink_messages.cpp.
Result<RouteInfo> parse_route_message(ByteView message);

// EEXIST when an identical route exists; ENETUNREACH when the gateway is not reachable through
// any link yet (add the address first).
Status add_route(NetlinkSocket& sock, const RouteSpec& spec);
// kAbsent when no route matches (ESRCH).
Result<DeleteOutcome> delete_route(NetlinkSocket& sock, const RouteSpec& spec);
// Routes of one family (both when std::nullopt) in `table` (every table when std::nullopt),
// local/broadcast routes of the local table included when every table is asked for.
Result<std::vector<RouteInfo>> list_routes(NetlinkSocket& sock, std::optional<IpFamily> family,
                                           std::optional<std::uint32_t> table);

}  // namespace ipoib::netlink
