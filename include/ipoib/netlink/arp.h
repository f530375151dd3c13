// ipoib/netlink/arp.h — gratuitous ARP announcements, correct for IPoIB.
//
// IPoIB hardware addresses are 20 bytes and its ARP hardware type is 32 (RFC 4391 section 9.1.2,
// ARPHRD_INFINIBAND); an Ethernet-format ARP (htype 1, hlen 6) is malformed on IPoIB. The builder
// is generic over the hardware type and address length so a macvlan test child (htype 1, hlen 6)
// announces through the same code.
//
//   IPOIB_TRY_ASSIGN(auto link, netlink::get_link_by_index(pod_sock, ifindex));
//   Status s = netlink::announce_ipv4(*link, *IpAddress::parse("10.56.0.7"), netlink::ArpOp::kRequest);
//   if (!s.ok()) log.warning(s.error().msg());        // not fatal for the plugin
//
// (Lives in the netlink module because it needs the link's attributes read over netlink; it
// uses an AF_PACKET socket, not netlink.)
#pragma once

#include <cstdint>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/netlink/link.h"
#include "ipoib/netlink/message.h"

namespace ipoib::netlink {

enum class ArpOp : std::uint16_t { kRequest = 1, kReply = 2 };

// The ARP payload (no link-layer header) announcing `ipv4` for `hw_address`:
//   htype (u16 BE) = arphrd_type, ptype 0x0800, hlen = hw_address.size(), plen 4, op,
//   sender hw = hw_address, sender IP = ipv4, target hw = zeros, target IP = ipv4.
// The target hardware address is zero per RFC 5227 section 3 (ignored by receivers of a
// gratuitous ARP). kInvalidNetworkConfig when ipv4 is not IPv4 or hw_address is empty or
// longer than 255 bytes.
Result<Bytes> build_gratuitous_arp(std::uint16_t arphrd_type, ByteView hw_address,
                                   const IpAddress& ipv4, ArpOp op);

// Sends build_gratuitous_arp(link.arphrd_type, link.hw_address, ...) on `link` through an
// AF_PACKET SOCK_DGRAM socket (ETH_P_ARP) addressed to link.broadcast (IFLA_BROADCAST; 20 bytes
// on IPoIB, so the sockaddr_ll is extended past its 8-byte sll_addr as packet_snd() allows).
// Expects to run in the namespace the link lives in (packet sockets resolve ifindex in the
// current netns). The link must be up. Errors are kIoFailure; the plugin logs them and goes on.
Status announce_ipv4(const LinkInfo& link, const IpAddress& ipv4, ArpOp op);

}  // namespace ipoib::netlink
