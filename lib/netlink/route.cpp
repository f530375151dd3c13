// Routes (see include/ipoib/netlink/route.h).
#include "ipoib/netlink/route.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "wire.h"

namespace ipoib::netlink {
namespace {

Status validate(const RouteSpec& spec) {
  if (spec.gateway && spec.gateway->family() != spec.destination.family()) {
    return Error(ErrorCode::kInvalidNetworkConfig, "route " + spec.destination.to_string() +
                                                       ": gateway " + spec.gateway->to_string() +
                                                       " is of another address family");
  }
  if (!spec.gateway && spec.ifindex <= 0) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "route " + spec.destination.to_string() + ": needs a gateway or an interface");
  }
  if (spec.ifindex < 0) {
    return Error(ErrorCode::kInvalidNetworkConfig, "route: invalid interface index");
  }
  return ok_status();
}

Result<Bytes> build_route_request(const RouteSpec& spec, bool add) {
  IPOIB_TRY(validate(spec));
  const IpPrefix network = spec.destination.network();
  const std::uint32_t table = spec.table.value_or(kMainRouteTable);
  rtmsg rtm{};
  rtm.rtm_family = wire::address_family(network.family());
  rtm.rtm_dst_len = static_cast<std::uint8_t>(network.length());
  // Tables >= 256 only fit RTA_TABLE; rtm_table then says RT_TABLE_UNSPEC (as iproute2 does).
  rtm.rtm_table =
      table < 256 ? static_cast<std::uint8_t>(table) : static_cast<std::uint8_t>(RT_TABLE_UNSPEC);
  if (add) {
    rtm.rtm_protocol = RTPROT_BOOT;
    rtm.rtm_type = RTN_UNICAST;
    const Scope scope = spec.scope.value_or(spec.gateway ? Scope::kUniverse : Scope::kLink);
    rtm.rtm_scope = static_cast<std::uint8_t>(scope);
  } else {
    // fib_table_delete: RT_SCOPE_NOWHERE and type/protocol 0 match any route of that prefix.
    rtm.rtm_scope = spec.scope ? static_cast<std::uint8_t>(*spec.scope)
                               : static_cast<std::uint8_t>(RT_SCOPE_NOWHERE);
  }
  const std::uint16_t flags =
      add ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK : NLM_F_REQUEST | NLM_F_ACK;
  wire::MessageBuilder b(add ? RTM_NEWROUTE : RTM_DELROUTE, flags, &rtm, sizeof rtm);
  std::array<std::uint8_t, 16> storage{};
  if (network.length() > 0) {
    b.put_bytes(RTA_DST, wire::address_payload(network.address(), storage));
  }
  if (spec.gateway) {
    std::array<std::uint8_t, 16> gw{};
    b.put_bytes(RTA_GATEWAY, wire::address_payload(*spec.gateway, gw));
  }
  if (spec.ifindex > 0) {
    b.put_u32(RTA_OIF, static_cast<std::uint32_t>(spec.ifindex));
  }
  if (spec.metric) {
    b.put_u32(RTA_PRIORITY, *spec.metric);
  }
  b.put_u32(RTA_TABLE, table);
  if (add && spec.mtu_bytes) {
    b.begin_nest(RTA_METRICS);
    b.put_u32(RTAX_MTU, *spec.mtu_bytes);
    b.end_nest();
  }
  return b.build();
}

}  // namespace

Result<Bytes> build_add_route_request(const RouteSpec& spec) {
  return build_route_request(spec, true);
}

Result<Bytes> build_delete_route_request(const RouteSpec& spec) {
  return build_route_request(spec, false);
}

Bytes build_dump_routes_request(std::optional<IpFamily> family) {
  rtmsg rtm{};
  rtm.rtm_family = family ? wire::address_family(*family) : AF_UNSPEC;
  return wire::build_dump_request(RTM_GETROUTE, &rtm, sizeof rtm);
}

Result<RouteInfo> parse_route_message(ByteView message) {
  IPOIB_TRY_ASSIGN(wire::Decoded d, wire::decode(message, RTM_NEWROUTE, sizeof(rtmsg), "route"));
  rtmsg rtm{};
  std::memcpy(&rtm, d.fixed.data(), sizeof rtm);
  IPOIB_TRY_ASSIGN(const IpFamily family, wire::ip_family(rtm.rtm_family, "route"));
  const int bits = family == IpFamily::kV4 ? 32 : 128;
  if (rtm.rtm_dst_len > bits) {
    return Error(ErrorCode::kDecodeFailure, "route: prefix length out of range");
  }
  RouteInfo out;
  out.destination = IpPrefix(IpAddress(family, 0), rtm.rtm_dst_len);
  out.table = rtm.rtm_table;
  out.scope = static_cast<Scope>(rtm.rtm_scope);
  out.protocol = rtm.rtm_protocol;
  out.type = rtm.rtm_type;
  wire::AttributeWalker walker(d.attributes);
  std::uint16_t type = 0;
  ByteView payload;
  bool malformed = false;
  while (walker.next(type, payload)) {
    switch (type & NLA_TYPE_MASK) {
      case RTA_DST:
        if (const auto dst = wire::read_address(payload, family)) {
          out.destination = IpPrefix(*dst, rtm.rtm_dst_len);
        }
        break;
      case RTA_GATEWAY:
        if (const auto gw = wire::read_address(payload, family)) {
          out.gateway = gw;
        }
        break;
      case RTA_OIF:
        out.ifindex = static_cast<int>(wire::read_u32(payload).value_or(0));
        break;
      case RTA_PRIORITY:
        out.metric = wire::read_u32(payload);
        break;
      case RTA_TABLE:
        out.table = wire::read_u32(payload).value_or(out.table);
        break;
      case RTA_METRICS: {
        wire::AttributeWalker mw(payload);
        std::uint16_t mt = 0;
        ByteView mp;
        while (mw.next(mt, mp)) {
          if ((mt & NLA_TYPE_MASK) == RTAX_MTU) {
            out.mtu_bytes = wire::read_u32(mp);
          }
        }
        malformed = malformed || mw.malformed();
        break;
      }
      default:
        break;
    }
  }
  if (malformed || walker.malformed()) {
    return Error(ErrorCode::kDecodeFailure, "route: malformed attribute");
  }
  return out;
}

Status add_route(NetlinkSocket& sock, const RouteSpec& spec) {
  IPOIB_TRY_ASSIGN(Bytes req, build_add_route_request(spec));
  return sock.request(req, "add route " + spec.destination.network().to_string());
}

Result<DeleteOutcome> delete_route(NetlinkSocket& sock, const RouteSpec& spec) {
  IPOIB_TRY_ASSIGN(Bytes req, build_delete_route_request(spec));
  Status s = sock.request(req, "delete route " + spec.destination.network().to_string());
  if (!s.ok()) {
    const auto err = kernel_errno(s.error());
    // ESRCH: no such route (fib_table_delete, ip6_route_del); ENODEV: its link is gone.
    if (err == ESRCH || err == ENODEV) {
      return DeleteOutcome::kAbsent;
    }
    return std::move(s).error();
  }
  return DeleteOutcome::kDeleted;
}

Result<std::vector<RouteInfo>> list_routes(NetlinkSocket& sock, std::optional<IpFamily> family,
                                           std::optional<std::uint32_t> table) {
  IPOIB_TRY_ASSIGN(std::vector<Bytes> messages,
                   sock.dump(build_dump_routes_request(family), "list routes"));
  std::vector<RouteInfo> out;
  for (const Bytes& m : messages) {
    IPOIB_TRY_ASSIGN(MessageHeader h, read_header(m));
    if (h.type != RTM_NEWROUTE) {
      continue;
    }
    auto r = parse_route_message(m);
    if (!r.ok()) {
      // Families other than IPv4/IPv6 (e.g. multicast routing) are not ours to read.
      if (family) {
        return std::move(r).error();
      }
      continue;
    }
    if (family && r->destination.family() != *family) {
      continue;
    }
    if (table && r->table != *table) {
      continue;
    }
    out.push_back(std::move(r).value());
  }
  return out;
}

}  // namespace ipoib::netlink
