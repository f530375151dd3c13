// Interface addresses (see include/ipoib/netlink/address.h).
#include "ipoib/netlink/address.h"

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "wire.h"

namespace ipoib::netlink {
namespace {

Result<Bytes> build_address_request(std::uint16_t type, std::uint16_t flags, int ifindex,
                                    const IpPrefix& prefix, bool add) {
  if (ifindex <= 0) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "address: invalid interface index " + std::to_string(ifindex));
  }
  ifaddrmsg ifa{};
  ifa.ifa_family = wire::address_family(prefix.family());
  ifa.ifa_prefixlen = static_cast<std::uint8_t>(prefix.length());
  ifa.ifa_index = static_cast<std::uint32_t>(ifindex);
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  wire::MessageBuilder b(type, flags, &ifa, sizeof ifa);
  std::array<std::uint8_t, 16> storage{};
  const ByteView addr = wire::address_payload(prefix.address(), storage);
  if (prefix.family() == IpFamily::kV4) {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS the peer (same when not p2p).
    b.put_bytes(IFA_LOCAL, addr);
    b.put_bytes(IFA_ADDRESS, addr);
    if (add && prefix.length() < 31) {
      std::array<std::uint8_t, 16> brd{};
      b.put_bytes(IFA_BROADCAST, wire::address_payload(prefix.last(), brd));
    }
  } else {
    b.put_bytes(IFA_ADDRESS, addr);
    if (add) {
      b.put_u32(IFA_FLAGS, IFA_F_NODAD);
    }
  }
  return b.build();
}

}  // namespace

Result<Bytes> build_add_address_request(int ifindex, const IpPrefix& prefix) {
  return build_address_request(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
                               ifindex, prefix, true);
}

Result<Bytes> build_delete_address_request(int ifindex, const IpPrefix& prefix) {
  return build_address_request(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, ifindex, prefix, false);
}

Bytes build_dump_addresses_request(std::optional<IpFamily> family) {
  ifaddrmsg ifa{};
  ifa.ifa_family = family ? wire::address_family(*family) : AF_UNSPEC;
  return wire::build_dump_request(RTM_GETADDR, &ifa, sizeof ifa);
}

Result<AddressInfo> parse_address_message(ByteView message) {
  IPOIB_TRY_ASSIGN(wire::Decoded d,
                   wire::decode(message, RTM_NEWADDR, sizeof(ifaddrmsg), "address"));
  ifaddrmsg ifa{};
  std::memcpy(&ifa, d.fixed.data(), sizeof ifa);
  IPOIB_TRY_ASSIGN(const IpFamily family, wire::ip_family(ifa.ifa_family, "address"));
  if (ifa.ifa_prefixlen > (family == IpFamily::kV4 ? 32 : 128)) {
    return Error(ErrorCode::kDecodeFailure, "address: prefix length out of range");
  }
  AddressInfo out;
  out.ifindex = static_cast<int>(ifa.ifa_index);
  out.scope = static_cast<Scope>(ifa.ifa_scope);
  out.flags = ifa.ifa_flags;
  std::optional<IpAddress> local;
  std::optional<IpAddress> address;
  wire::AttributeWalker walker(d.attributes);
  std::uint16_t type = 0;
  ByteView payload;
  while (walker.next(type, payload)) {
    switch (type & NLA_TYPE_MASK) {
      case IFA_LOCAL:
        local = wire::read_address(payload, family);
        break;
      case IFA_ADDRESS:
        address = wire::read_address(payload, family);
        break;
      case IFA_BROADCAST:
        out.broadcast = wire::read_address(payload, family);
        break;
      case IFA_FLAGS:
        out.flags = wire::read_u32(payload).value_or(out.flags);
        break;
      default:
        break;
    }
  }
  if (walker.malformed()) {
    return Error(ErrorCode::kDecodeFailure, "address: malformed attribute");
  }
  // IPv4 keeps the interface's own address in IFA_LOCAL (IFA_ADDRESS is the peer on p2p links).
  const std::optional<IpAddress>& own = local ? local : address;
  if (!own) {
    return Error(ErrorCode::kDecodeFailure, "address: message carries no address");
  }
  out.prefix = IpPrefix(*own, ifa.ifa_prefixlen);
  return out;
}

Status add_address(NetlinkSocket& sock, int ifindex, const IpPrefix& prefix) {
  IPOIB_TRY_ASSIGN(Bytes req, build_add_address_request(ifindex, prefix));
  return sock.request(req,
                      "add address " + prefix.to_string() + " to link " + std::to_string(ifindex));
}

Result<DeleteOutcome> delete_address(NetlinkSocket& sock, int ifindex, const IpPrefix& prefix) {
  IPOIB_TRY_ASSIGN(Bytes req, build_delete_address_request(ifindex, prefix));
  Status s = sock.request(
      req, "delete address " + prefix.to_string() + " from link " + std::to_string(ifindex));
  if (!s.ok()) {
    const auto err = kernel_errno(s.error());
    if (err == EADDRNOTAVAIL || err == ENODEV) {
      return DeleteOutcome::kAbsent;
    }
    return std::move(s).error();
  }
  return DeleteOutcome::kDeleted;
}

Result<std::vector<AddressInfo>> list_addresses(NetlinkSocket& sock, int ifindex,
                                                std::optional<IpFamily> family) {
  IPOIB_TRY_ASSIGN(std::vector<Bytes> messages,
                   sock.dump(build_dump_addresses_request(family), "list addresses"));
  std::vector<AddressInfo> out;
  for (const Bytes& m : messages) {
    IPOIB_TRY_ASSIGN(MessageHeader h, read_header(m));
    if (h.type != RTM_NEWADDR) {
      continue;
    }
    IPOIB_TRY_ASSIGN(AddressInfo a, parse_address_message(m));
    if (ifindex != 0 && a.ifindex != ifindex) {
      continue;
    }
    if (family && a.prefix.family() != *family) {
      continue;
    }
    out.push_back(a);  // trivially copyable
  }
  return out;
}

}  // namespace ipoib::netlink
