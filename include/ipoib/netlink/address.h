// ipoib/netlink/address.h — IPv4/IPv6 interface addresses (RTM_NEWADDR / DELADDR / GETADDR).
//
//   IPOIB_TRY_ASSIGN(auto p, IpPrefix::parse("10.56.0.7/16"));
//   IPOIB_TRY(netlink::add_address(pod_sock, ifindex, p));         // IPv6: IFA_F_NODAD
//   IPOIB_TRY_ASSIGN(auto addrs, netlink::list_addresses(pod_sock, ifindex, std::nullopt));
//   IPOIB_TRY_ASSIGN(auto gone, netlink::delete_address(pod_sock, ifindex, p));
//
// Each operation acts in the namespace `sock` was opened in (socket.h).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/netlink/message.h"
#include "ipoib/netlink/socket.h"

namespace ipoib::netlink {

// RT_SCOPE_* (include/uapi/linux/rtnetlink.h).
enum class Scope : std::uint8_t {
  kUniverse = 0,
  kSite = 200,
  kLink = 253,
  kHost = 254,
  kNowhere = 255
};

struct AddressInfo {
  int ifindex = 0;
  IpPrefix prefix;  // IFA_LOCAL (IPv4) / IFA_ADDRESS (IPv6) with ifa_prefixlen
  Scope scope = Scope::kUniverse;
  std::uint32_t flags = 0;  // IFA_FLAGS, or ifa_flags when absent (IFA_F_NODAD, IFA_F_TENTATIVE...)
  std::optional<IpAddress> broadcast;  // IFA_BROADCAST (IPv4)
};

// RTM_NEWADDR, flags REQUEST|CREATE|EXCL|ACK. IPv4: IFA_LOCAL + IFA_ADDRESS, and IFA_BROADCAST
// (the prefix's last address) for prefixes shorter than /31, as `ip addr add ... brd +` does.
// IPv6: IFA_ADDRESS and IFA_FLAGS = IFA_F_NODAD, so the address is usable at once instead of
// staying "tentative" for the DAD period (addrconf_dad_begin skips DAD with IFA_F_NODAD).
// kInvalidNetworkConfig when ifindex <= 0.
Result<Bytes> build_add_address_request(int ifindex, const IpPrefix& prefix);
Result<Bytes> build_delete_address_request(int ifindex, const IpPrefix& prefix);
// Dump of all addresses of one family, or both when std::nullopt.
Bytes build_dump_addresses_request(std::optional<IpFamily> family);
// Parses one RTM_NEWADDR message. kDecodeFailure when malformed. Fuzzed by
// tests/fuzz/fuzz_netlink_messages.cpp.
Result<AddressInfo> parse_address_message(ByteView message);

// EEXIST when the address is already there; EADDRNOTAVAIL-type refusals as kernel errors.
Status add_address(NetlinkSocket& sock, int ifindex, const IpPrefix& prefix);
// kAbsent when the link has no such address (EADDRNOTAVAIL) or the link is gone (ENODEV).
Result<DeleteOutcome> delete_address(NetlinkSocket& sock, int ifindex, const IpPrefix& prefix);
// ifindex 0 lists the addresses of every link. IPv6 link-local (fe80::/10) addresses are
// included; callers filter by scope if they only want global ones.
Result<std::vector<AddressInfo>> list_addresses(NetlinkSocket& sock, int ifindex,
                                                std::optional<IpFamily> family);

}  // namespace ipoib::netlink
