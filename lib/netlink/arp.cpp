// Gratuitous ARP for IPoIB and Ethernet (see include/ipoib/netlink/arp.h).
#include "ipoib/netlink/arp.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/fd.h"

namespace ipoib::netlink {
namespace {

void put_be16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

// sockaddr_ll has room for 8 address bytes; IPoIB needs 20. packet_snd() accepts a longer
// msg_namelen (>= offsetof(sll_addr) + dev->addr_len), so extend it.
struct WideSockaddrLl {
  sockaddr_ll ll;
  std::uint8_t extra[32];
};

}  // namespace

Result<Bytes> build_gratuitous_arp(std::uint16_t arphrd_type, ByteView hw_address,
                                   const IpAddress& ipv4, ArpOp op) {
  if (!ipv4.is_v4()) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "gratuitous ARP: " + ipv4.to_string() + " is not an IPv4 address");
  }
  if (hw_address.empty() || hw_address.size() > 255) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "gratuitous ARP: hardware address length " + std::to_string(hw_address.size()));
  }
  const auto ip = ipv4.bytes();
  Bytes out;
  out.reserve(8 + 2 * (hw_address.size() + 4));
  put_be16(out, arphrd_type);                  // ar_hrd
  put_be16(out, ETH_P_IP);                     // ar_pro
  out.push_back(static_cast<std::uint8_t>(hw_address.size()));  // ar_hln
  out.push_back(4);                            // ar_pln
  put_be16(out, static_cast<std::uint16_t>(op));  // ar_op
  out.insert(out.end(), hw_address.begin(), hw_address.end());  // sender hw
  out.insert(out.end(), ip.begin(), ip.begin() + 4);            // sender IP
  out.insert(out.end(), hw_address.size(), 0);                  // target hw
  out.insert(out.end(), ip.begin(), ip.begin() + 4);            // target IP
  return out;
}

Status announce_ipv4(const LinkInfo& link, const IpAddress& ipv4, ArpOp op) {
  const std::string what = "gratuitous ARP for " + ipv4.to_string() + " on " + link.name;
  if (link.ifindex <= 0) {
    return Error(ErrorCode::kIoFailure, what + ": link has no index");
  }
  if (link.broadcast.empty() || link.broadcast.size() > sizeof(sockaddr_ll::sll_addr) + 32) {
    return Error(ErrorCode::kIoFailure, what + ": link has no usable broadcast address");
  }
  auto payload = build_gratuitous_arp(link.arphrd_type, link.hw_address, ipv4, op);
  if (!payload.ok()) {
    return Error(ErrorCode::kIoFailure, what + ": " + payload.error().msg());
  }
  Fd sock(::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP)));
  if (!sock.valid()) {
    return errno_error(ErrorCode::kIoFailure, what + ": packet socket");
  }
  WideSockaddrLl to{};
  to.ll.sll_family = AF_PACKET;
  to.ll.sll_protocol = htons(ETH_P_ARP);
  to.ll.sll_ifindex = link.ifindex;
  to.ll.sll_halen = static_cast<unsigned char>(link.broadcast.size());
  std::memcpy(reinterpret_cast<std::uint8_t*>(&to) + offsetof(sockaddr_ll, sll_addr),
              link.broadcast.data(), link.broadcast.size());
  const socklen_t len = static_cast<socklen_t>(
      std::max(sizeof(sockaddr_ll), offsetof(sockaddr_ll, sll_addr) + link.broadcast.size()));
  ssize_t n = 0;
  do {
    n = ::sendto(sock.get(), payload->data(), payload->size(), 0,
                 reinterpret_cast<const sockaddr*>(&to), len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return errno_error(ErrorCode::kIoFailure, what);
  }
  if (static_cast<std::size_t>(n) != payload->size()) {
    return Error(ErrorCode::kIoFailure, what + ": short send");
  }
  return ok_status();
}

}  // namespace ipoib::netlink
