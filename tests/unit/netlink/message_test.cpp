// Pure tests of the netlink module: requests are built, compared with iproute2's bytes and read
// back with the module's parsers. No kernel involved.
#include "ipoib/netlink/message.h"

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <string>

#include "golden_file.h"
#include "ipoib/netlink/address.h"
#include "ipoib/netlink/link.h"
#include "ipoib/netlink/route.h"
#include "netlink_testing.h"

using namespace ipoib;
using namespace ipoib::netlink;
using namespace ipoib::netlink::testing;

namespace {

const std::string kGolden =
    std::string(IPOIB_NETLINK_GOLDEN_DIR) + "/iproute2_6.1_newlink_ipoib.hex";

IpoibChildSpec reference_spec() {
  IpoibChildSpec spec;
  spec.parent_ifindex = 4;
  spec.name = "ib0.8001";
  spec.pkey = 0x8001;
  spec.mode = IpoibMode::kDatagram;
  spec.umcast = Umcast::kOff;
  return spec;
}

// Attributes after nlmsghdr (16) + a fixed header of `fixed` bytes.
std::vector<Attribute> top_attributes(const Bytes& msg, std::size_t fixed) {
  auto attrs = split_attributes(ByteView(msg).subspan(16 + fixed));
  REQUIRE(attrs.ok());
  return *attrs;
}

const Attribute& find(const std::vector<Attribute>& attrs, std::uint16_t type) {
  for (const auto& a : attrs) {
    if (a.type == type) {
      return a;
    }
  }
  FAIL("attribute " << type << " missing");
  throw std::logic_error("unreachable");
}

std::uint32_t u32_of(const Attribute& a) {
  REQUIRE(a.payload.size() == 4);
  std::uint32_t v = 0;
  std::memcpy(&v, a.payload.data(), 4);
  return v;
}

}  // namespace

TEST_CASE("IPoIB NEWLINK equals iproute2 6.1's request byte for byte apart from seq/pid") {
  const Bytes golden = testing::read_hex_file(kGolden);
  REQUIRE(golden.size() == 100);
  auto built = build_ipoib_child_request(reference_spec());
  REQUIRE(built.ok());
  CHECK(testing::without_seq_pid(*built) == testing::without_seq_pid(golden));

  // Attribute for attribute, so a difference names what differs.
  auto hdr = read_header(*built);
  REQUIRE(hdr.ok());
  CHECK(hdr->length == 100);
  CHECK(hdr->type == RTM_NEWLINK);
  CHECK(hdr->flags == (NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK));
  CHECK(hdr->sequence == 0);
  CHECK(hdr->port_id == 0);
  const auto ours = top_attributes(*built, sizeof(ifinfomsg));
  const auto theirs = top_attributes(golden, sizeof(ifinfomsg));
  REQUIRE(ours.size() == 3);
  REQUIRE(ours == theirs);
  CHECK(ours[0].type == IFLA_LINK);
  CHECK(ours[1].type == IFLA_IFNAME);
  CHECK(ours[2].type == IFLA_LINKINFO);
  CHECK_FALSE(ours[2].nested_flag);
  auto linkinfo = split_attributes(ours[2].payload);
  REQUIRE(linkinfo.ok());
  REQUIRE(linkinfo->size() == 2);
  CHECK((*linkinfo)[0].type == IFLA_INFO_KIND);
  CHECK((*linkinfo)[0].payload.size() == 5);  // "ipoib" without NUL: nla_len 9 in iproute2 6.1
  auto data = split_attributes((*linkinfo)[1].payload);
  REQUIRE(data.ok());
  REQUIRE(data->size() == 3);
  CHECK((*data)[0].type == IFLA_IPOIB_PKEY);
  CHECK((*data)[0].payload == Bytes{0x01, 0x80});  // host (little-endian) order
  CHECK((*data)[1].type == IFLA_IPOIB_MODE);
  CHECK((*data)[2].type == IFLA_IPOIB_UMCAST);
  // Never IFLA_TXQLEN or IFLA_MTU.
  for (const auto& a : ours) {
    CHECK(a.type != IFLA_TXQLEN);
    CHECK(a.type != IFLA_MTU);
  }
}

TEST_CASE("IPoIB NEWLINK reads back through the link parser") {
  IpoibChildSpec spec = reference_spec();
  spec.mode = IpoibMode::kConnected;
  spec.umcast = Umcast::kOn;
  spec.pkey = 0x7fff;
  auto built = build_ipoib_child_request(spec);
  REQUIRE(built.ok());
  auto link = parse_link_message(*built);
  REQUIRE(link.ok());
  CHECK(link->kind == "ipoib");
  CHECK(link->name == "ib0.8001");
  CHECK(link->parent_ifindex == 4);
  REQUIRE(link->ipoib.has_value());
  CHECK(link->ipoib->pkey == 0x7fff);
  CHECK(link->ipoib->mode == IpoibMode::kConnected);
  CHECK(link->ipoib->umcast == Umcast::kOn);
  CHECK(link->alias.empty());  // the kernel ignores IFLA_IFALIAS on create: never sent
  const auto attrs = top_attributes(*built, sizeof(ifinfomsg));
  REQUIRE(attrs.size() == 3);
}

TEST_CASE("IPoIB NEWLINK with a target netns: iproute2's bytes, then IFLA_NET_NS_FD") {
  const Bytes golden = testing::read_hex_file(kGolden);
  IpoibChildSpec spec = reference_spec();
  spec.netns_fd = 9;
  auto built = build_ipoib_child_request(spec);
  REQUIRE(built.ok());
  // nlmsg_len grows by one u32 attribute (8 bytes); everything before it is iproute2's request.
  REQUIRE(built->size() == golden.size() + 8);
  Bytes head(built->begin(), built->begin() + static_cast<std::ptrdiff_t>(golden.size()));
  const std::uint32_t golden_len = static_cast<std::uint32_t>(golden.size());
  std::memcpy(head.data(), &golden_len, 4);
  CHECK(testing::without_seq_pid(head) == testing::without_seq_pid(golden));
  const auto attrs = top_attributes(*built, sizeof(ifinfomsg));
  REQUIRE(attrs.size() == 4);
  CHECK(attrs[2].type == IFLA_LINKINFO);
  CHECK(attrs[3].type == IFLA_NET_NS_FD);
  CHECK(u32_of(attrs[3]) == 9U);
  auto link = parse_link_message(*built);
  REQUIRE(link.ok());
  CHECK(link->netns_fd == 9);
  CHECK(link->parent_ifindex == 4);  // IFLA_LINK unchanged: resolved in the requester's netns
  CHECK(link->name == "ib0.8001");
  // Without the field nothing is appended, and the parser reports no netns.
  auto plain = parse_link_message(*build_ipoib_child_request(reference_spec()));
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->netns_fd.has_value());
  spec.netns_fd = -1;
  CHECK_FALSE(build_ipoib_child_request(spec).ok());
}

TEST_CASE("macvlan child request with a target netns reads back") {
  auto built = build_macvlan_child_request({.parent_ifindex = 7, .name = "nlm1", .netns_fd = 0});
  REQUIRE(built.ok());
  auto link = parse_link_message(*built);
  REQUIRE(link.ok());
  CHECK(link->netns_fd == 0);  // fd 0 is a valid fd number
  CHECK(link->kind == "macvlan");
  CHECK(link->parent_ifindex == 7);
}

TEST_CASE("IPoIB NEWLINK rejects what the kernel would refuse") {
  auto with = [](auto mutate) {
    IpoibChildSpec s = reference_spec();
    mutate(s);
    return build_ipoib_child_request(s);
  };
  CHECK_FALSE(with([](IpoibChildSpec& s) { s.pkey = 0; }).ok());
  CHECK_FALSE(with([](IpoibChildSpec& s) { s.pkey = 0x8000; }).ok());
  CHECK(with([](IpoibChildSpec& s) { s.pkey = 0xffff; }).ok());
  CHECK_FALSE(with([](IpoibChildSpec& s) { s.parent_ifindex = 0; }).ok());
  CHECK_FALSE(with([](IpoibChildSpec& s) { s.name = "0123456789abcdef"; }).ok());  // 16 bytes
  CHECK(with([](IpoibChildSpec& s) { s.name = "0123456789abcde"; }).ok());         // 15 bytes
  for (const char* bad : {"", ".", "..", "a/b", "a:b", "a b", "a\tb"}) {
    auto r = with([&](IpoibChildSpec& s) { s.name = bad; });
    CHECK_FALSE(r.ok());
    if (!r.ok()) {
      CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
    }
  }
  auto zero = with([](IpoibChildSpec& s) { s.pkey = 0x8000; });
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.error().msg().find("0x8000") != std::string::npos);
}

TEST_CASE("macvlan child request: bridge mode, reads back") {
  MacvlanChildSpec spec{.parent_ifindex = 7, .name = "nlm1", .netns_fd = {}};
  auto built = build_macvlan_child_request(spec);
  REQUIRE(built.ok());
  auto link = parse_link_message(*built);
  REQUIRE(link.ok());
  CHECK(link->kind == "macvlan");
  CHECK(link->parent_ifindex == 7);
  CHECK(link->macvlan_mode == static_cast<std::uint32_t>(MACVLAN_MODE_BRIDGE));
  CHECK(link->alias.empty());
  CHECK_FALSE(link->ipoib.has_value());
  CHECK_FALSE(
      build_macvlan_child_request({.parent_ifindex = -1, .name = "x", .netns_fd = {}}).ok());
}

TEST_CASE("veth pair request nests the peer's ifinfomsg") {
  auto built = build_veth_pair_request({.name = "nlv0", .peer_name = "nlv1"});
  REQUIRE(built.ok());
  auto link = parse_link_message(*built);
  REQUIRE(link.ok());
  CHECK(link->kind == "veth");
  CHECK(link->name == "nlv0");
  const auto attrs = top_attributes(*built, sizeof(ifinfomsg));
  auto info = split_attributes(find(attrs, IFLA_LINKINFO).payload);
  REQUIRE(info.ok());
  auto data = split_attributes(find(*info, IFLA_INFO_DATA).payload);
  REQUIRE(data.ok());
  REQUIRE(data->size() == 1);
  const Bytes& peer = (*data)[0].payload;
  REQUIRE(peer.size() > sizeof(ifinfomsg));
  auto peer_attrs = split_attributes(ByteView(peer).subspan(sizeof(ifinfomsg)));
  REQUIRE(peer_attrs.ok());
  const Bytes& name = find(*peer_attrs, IFLA_IFNAME).payload;
  CHECK(std::string(name.begin(), name.end()) == std::string("nlv1\0", 5));
}

TEST_CASE("link dump request: no statistics, optionally one kind") {
  const Bytes plain = build_dump_links_request();
  auto header = read_header(plain);
  REQUIRE(header.ok());
  CHECK(header->type == RTM_GETLINK);
  CHECK((header->flags & NLM_F_DUMP) == NLM_F_DUMP);
  const auto attrs = top_attributes(plain, sizeof(ifinfomsg));
  REQUIRE(attrs.size() == 1);
  CHECK(attrs[0].type == IFLA_EXT_MASK);
  CHECK(u32_of(attrs[0]) == static_cast<std::uint32_t>(RTEXT_FILTER_SKIP_STATS));
  const Bytes filtered = build_dump_links_request("ipoib");
  const auto fattrs = top_attributes(filtered, sizeof(ifinfomsg));
  REQUIRE(fattrs.size() == 2);
  CHECK(fattrs[1].type == IFLA_LINKINFO);
  auto nest = split_attributes(fattrs[1].payload);
  REQUIRE(nest.ok());
  REQUIRE(nest->size() == 1);
  CHECK((*nest)[0].type == IFLA_INFO_KIND);
  CHECK(std::string((*nest)[0].payload.begin(), (*nest)[0].payload.end()) == "ipoib");
}

TEST_CASE("SETLINK requests carry the index and only the changed attribute") {
  auto rename = build_rename_link_request(12, "net1");
  REQUIRE(rename.ok());
  auto r = parse_link_message(Bytes(*rename));
  // RTM_SETLINK is not RTM_NEWLINK: the link parser refuses it by type.
  CHECK_FALSE(r.ok());
  auto hdr = read_header(*rename);
  REQUIRE(hdr.ok());
  CHECK(hdr->type == RTM_SETLINK);
  CHECK(hdr->flags == (NLM_F_REQUEST | NLM_F_ACK));
  ifinfomsg ifi{};
  std::memcpy(&ifi, rename->data() + 16, sizeof ifi);
  CHECK(ifi.ifi_index == 12);
  auto attrs = top_attributes(*rename, sizeof ifi);
  REQUIRE(attrs.size() == 1);
  CHECK(attrs[0].type == IFLA_IFNAME);

  auto mtu = build_set_mtu_request(12, 2044);
  REQUIRE(mtu.ok());
  auto mattrs = top_attributes(*mtu, sizeof ifi);
  REQUIRE(mattrs.size() == 1);
  CHECK(mattrs[0].type == IFLA_MTU);
  CHECK(u32_of(mattrs[0]) == 2044);

  auto up = build_set_admin_state_request(12, AdminState::kUp);
  REQUIRE(up.ok());
  std::memcpy(&ifi, up->data() + 16, sizeof ifi);
  CHECK(ifi.ifi_change == IFF_UP);
  CHECK(ifi.ifi_flags == IFF_UP);
  auto down = build_set_admin_state_request(12, AdminState::kDown);
  REQUIRE(down.ok());
  std::memcpy(&ifi, down->data() + 16, sizeof ifi);
  CHECK(ifi.ifi_change == IFF_UP);
  CHECK(ifi.ifi_flags == 0);

  auto move = build_move_link_request(12, 5);
  REQUIRE(move.ok());
  auto vattrs = top_attributes(*move, sizeof ifi);
  REQUIRE(vattrs.size() == 1);
  CHECK(vattrs[0].type == IFLA_NET_NS_FD);
  CHECK(u32_of(vattrs[0]) == 5);

  auto del = build_delete_link_request(12);
  REQUIRE(del.ok());
  CHECK(read_header(*del)->type == RTM_DELLINK);
  CHECK_FALSE(build_delete_link_request(0).ok());
  CHECK_FALSE(build_rename_link_request(12, "this-name-is-too-long").ok());
  CHECK_FALSE(build_set_alias_request(12, std::string(300, 'a')).ok());
}

TEST_CASE("address requests: IPv4 with broadcast, IPv6 with IFA_F_NODAD, read back") {
  auto p4 = IpPrefix::parse("10.56.1.7/16");
  REQUIRE(p4.ok());
  auto add4 = build_add_address_request(3, *p4);
  REQUIRE(add4.ok());
  CHECK(read_header(*add4)->flags == (NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK));
  auto a4 = parse_address_message(*add4);
  REQUIRE(a4.ok());
  CHECK(a4->ifindex == 3);
  CHECK(a4->prefix.to_string() == "10.56.1.7/16");
  REQUIRE(a4->broadcast.has_value());
  CHECK(a4->broadcast->to_string() == "10.56.255.255");

  auto p31 = IpPrefix::parse("10.0.0.0/31");
  REQUIRE(p31.ok());
  auto a31 = parse_address_message(*build_add_address_request(3, *p31));
  REQUIRE(a31.ok());
  CHECK_FALSE(a31->broadcast.has_value());

  auto p6 = IpPrefix::parse("fd00:56::7/64");
  REQUIRE(p6.ok());
  auto add6 = build_add_address_request(3, *p6);
  REQUIRE(add6.ok());
  auto a6 = parse_address_message(*add6);
  REQUIRE(a6.ok());
  CHECK(a6->prefix.to_string() == "fd00:56::7/64");
  CHECK((a6->flags & IFA_F_NODAD) != 0);

  auto del6 = build_delete_address_request(3, *p6);
  REQUIRE(del6.ok());
  CHECK(read_header(*del6)->type == RTM_DELADDR);
  CHECK_FALSE(build_add_address_request(0, *p6).ok());
}

TEST_CASE("route requests read back; invalid combinations are refused") {
  RouteSpec def;
  def.destination = *IpPrefix::parse("0.0.0.0/0");
  def.gateway = *IpAddress::parse("10.56.0.1");
  def.ifindex = 3;
  auto add = build_add_route_request(def);
  REQUIRE(add.ok());
  auto r = parse_route_message(*add);
  REQUIRE(r.ok());
  CHECK(r->destination.to_string() == "0.0.0.0/0");
  REQUIRE(r->gateway.has_value());
  CHECK(r->gateway->to_string() == "10.56.0.1");
  CHECK(r->ifindex == 3);
  CHECK(r->table == kMainRouteTable);
  CHECK(r->scope == Scope::kUniverse);
  CHECK(r->type == RTN_UNICAST);

  RouteSpec v6;
  v6.destination = *IpPrefix::parse("fd00:99::5/48");
  v6.ifindex = 3;
  v6.metric = 300;
  v6.mtu_bytes = 2044;
  v6.table = 1000;
  auto r6 = parse_route_message(*build_add_route_request(v6));
  REQUIRE(r6.ok());
  CHECK(r6->destination.to_string() == "fd00:99::/48");  // host bits cleared
  CHECK(r6->metric == 300u);
  CHECK(r6->mtu_bytes == 2044u);
  CHECK(r6->table == 1000u);
  CHECK(r6->scope == Scope::kLink);

  RouteSpec mixed = def;
  mixed.gateway = *IpAddress::parse("fd00::1");
  CHECK_FALSE(build_add_route_request(mixed).ok());
  RouteSpec nowhere;
  nowhere.destination = *IpPrefix::parse("10.0.0.0/8");
  CHECK_FALSE(build_add_route_request(nowhere).ok());
  auto del = build_delete_route_request(def);
  REQUIRE(del.ok());
  CHECK(read_header(*del)->type == RTM_DELROUTE);
}

TEST_CASE("attribute walker refuses truncated and overlong attributes") {
  CHECK(split_attributes(Bytes{})->empty());
  CHECK(split_attributes(Bytes{0, 0})->empty());                // zero padding is fine
  CHECK_FALSE(split_attributes(Bytes{1, 2}).ok());              // non-zero trailing garbage
  CHECK_FALSE(split_attributes(Bytes{3, 0, 1, 0}).ok());        // nla_len < 4
  CHECK_FALSE(split_attributes(Bytes{9, 0, 1, 0, 1, 2}).ok());  // nla_len beyond the buffer
  auto one = split_attributes(Bytes{5, 0, 0x01, 0x80, 7, 0, 0, 0});
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  CHECK((*one)[0].type == 1);
  CHECK((*one)[0].nested_flag);
  CHECK((*one)[0].payload == Bytes{7});
}

TEST_CASE("message header checks") {
  CHECK_FALSE(read_header(Bytes(15, 0)).ok());
  Bytes h(16, 0);
  h[0] = 15;
  CHECK_FALSE(read_header(h).ok());
  h[0] = 17;
  CHECK_FALSE(read_header(h).ok());
  h[0] = 16;
  CHECK(read_header(h).ok());
  CHECK_FALSE(parse_link_message(h).ok());  // type 0, not RTM_NEWLINK
}

TEST_CASE("kernel errno survives in the error and is recognisable") {
  Error e = kernel_error("create link x", EEXIST, "");
  CHECK(e.code() == ErrorCode::kNetlinkFailure);
  CHECK(kernel_errno(e) == EEXIST);
  CHECK(e.msg() == "create link x: File exists");
  CHECK(e.details().find("EEXIST") != std::string::npos);
  Error with_ack = kernel_error("create link y", EOPNOTSUPP, "Unknown device type");
  CHECK(kernel_errno(with_ack) == EOPNOTSUPP);
  CHECK(with_ack.msg().find("Unknown device type") != std::string::npos);
  // Context added by the caller keeps the errno readable.
  Error wrapped = kernel_error("rename", EBUSY).with_context("ADD");
  CHECK(kernel_errno(wrapped) == EBUSY);
  // Every errno has its symbolic name in the details, not only the common ones.
  for (const auto& [err, name] :
       std::initializer_list<std::pair<int, const char*>>{{EIO, "EIO"},
                                                          {ENOBUFS, "ENOBUFS"},
                                                          {EMSGSIZE, "EMSGSIZE"},
                                                          {ENOTSUP, "EOPNOTSUPP"},
                                                          {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
                                                          {ENFILE, "ENFILE"},
                                                          {EMFILE, "EMFILE"},
                                                          {ETIMEDOUT, "ETIMEDOUT"},
                                                          {ENETUNREACH, "ENETUNREACH"},
                                                          {EBADF, "EBADF"}}) {
    const Error named = kernel_error("op", err);
    CHECK(named.details() == "netlink errno " + std::to_string(err) + " (" + name + ")");
    CHECK(kernel_errno(named) == err);
  }
  CHECK(kernel_error("op", 4000).details() == "netlink errno 4000 (?)");
  CHECK_FALSE(
      kernel_errno(Error(ErrorCode::kIoFailure, "x", "netlink errno 17 (EEXIST)")).has_value());
  CHECK_FALSE(kernel_errno(Error(ErrorCode::kNetlinkFailure, "x")).has_value());
}

TEST_CASE("parsers survive corrupted messages (deterministic mutations; run under ASan too)") {
  // The fuzzer (tests/fuzz/fuzz_netlink_messages.cpp) needs clang; this keeps a cheap version
  // of it in every build: flip, truncate and stretch valid messages, and parse them all.
  std::vector<Bytes> seeds;
  seeds.push_back(testing::read_hex_file(kGolden));
  seeds.push_back(*build_set_alias_request(3, "tag"));
  seeds.push_back(*build_veth_pair_request({.name = "a", .peer_name = "b"}));
  seeds.push_back(*build_add_address_request(3, *IpPrefix::parse("fd00::1/64")));
  RouteSpec r;
  r.destination = *IpPrefix::parse("10.0.0.0/8");
  r.ifindex = 2;
  r.mtu_bytes = 1500;
  seeds.push_back(*build_add_route_request(r));
  std::uint32_t state = 12345;
  auto next = [&] {
    state = state * 1103515245U + 12345U;
    return state >> 8;
  };
  int parsed = 0;
  for (int round = 0; round < 20000; ++round) {
    Bytes m = seeds[next() % seeds.size()];
    const unsigned edits = 1 + next() % 4;
    for (unsigned e = 0; e < edits; ++e) {
      switch (next() % 3) {
        case 0:
          m[next() % m.size()] = static_cast<std::uint8_t>(next());
          break;
        case 1:
          m.resize(std::max<std::size_t>(1, m.size() - next() % 8));
          break;
        default:
          m.push_back(static_cast<std::uint8_t>(next()));
          break;
      }
    }
    parsed += parse_link_message(m).ok() ? 1 : 0;
    parsed += parse_address_message(m).ok() ? 1 : 0;
    parsed += parse_route_message(m).ok() ? 1 : 0;
    if (m.size() > 16) {
      (void)split_attributes(ByteView(m).subspan(16));
    }
  }
  // Some mutations only touch payload bytes, so some messages still parse.
  CHECK(parsed > 0);
}
