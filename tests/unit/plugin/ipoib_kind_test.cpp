#include <linux/if.h>

#include <catch2/catch.hpp>

#include "ipoib/plugin/child_kind.h"

using namespace ipoib;
using namespace ipoib::plugin;

namespace {

// IB port answers without hardware (the doctor's fixture-free seam).
class FakePorts final : public ib::PortQuery {
 public:
  explicit FakePorts(ib::IbPort port) : port_(std::move(port)) {}
  [[nodiscard]] Result<ib::IbPort> port_for_netdev(std::string_view ifname) const override {
    if (ifname != "ib0") {
      return Error(ErrorCode::kNotAvailable, std::string(ifname) + " has no IB port");
    }
    return port_;
  }

 private:
  ib::IbPort port_;
};

ib::IbPort active_port() {
  ib::IbPort p;
  p.netdev = "ib0";
  p.device = "mlx5_0";
  p.port_num = 1;
  p.state = ib::PortState::kActive;
  p.state_text = "4: ACTIVE";
  p.phys_state = ib::PhysState::kLinkUp;
  p.phys_state_text = "5: LinkUp";
  p.link_layer = "InfiniBand";
  p.lid = 3;
  p.sm_lid = 1;
  p.pkeys = {0xffff, 0x8001};
  p.active_mtu_bytes = 2048;
  return p;
}

netlink::LinkInfo ib0() {
  netlink::LinkInfo l;
  l.ifindex = 4;
  l.name = "ib0";
  l.arphrd_type = netlink::kArphrdInfiniband;
  l.flags = IFF_UP;
  l.kind = "ipoib";
  l.ipoib = netlink::IpoibParams{0xffff, netlink::IpoibMode::kDatagram, netlink::Umcast::kOff};
  l.mtu = 2044;
  return l;
}

ChildSpec spec_8001() {
  return {.parent_ifindex = 4,
          .pkey = 0x8001,
          .mode = IpoibMode::kDatagram,
          .umcast = Umcast::kOff,
          .mtu_bytes = 2044};
}

}  // namespace

TEST_CASE("the create request is iproute2's, byte for byte, plus the pod netns fd") {
  auto kind = make_ipoib_kind(nullptr);
  auto req = kind->build_create_request(spec_8001(), "ib0.8001", 7);
  REQUIRE(req.ok());
  // `ip link add link ib0 name ib0.8001 type ipoib pkey 0x8001 mode datagram umcast 0` with
  // ib0 = ifindex 4, as Debian 12's iproute2 sends it (ipoib-kernel.md; seq/pid zero here).
  const netlink::Bytes iproute2 = {
      0x64, 0x00, 0x00, 0x00, 0x10, 0x00, 0x05, 0x06, 0,    0,    0,    0,    0,    0,    0,
      0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
      0,    0,    0x08, 0x00, 0x05, 0x00, 0x04, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x03, 0x00, 'i',
      'b',  '0',  '.',  '8',  '0',  '0',  '1',  0,    0,    0,    0,    0x2c, 0x00, 0x12, 0x00,
      0x09, 0x00, 0x01, 0x00, 'i',  'p',  'o',  'i',  'b',  0,    0,    0,    0x1c, 0x00, 0x02,
      0x00, 0x06, 0x00, 0x01, 0x00, 0x01, 0x80, 0,    0,    0x06, 0x00, 0x02, 0x00, 0x00, 0x00,
      0,    0,    0x06, 0x00, 0x03, 0x00, 0x00, 0x00, 0,    0};
  REQUIRE(iproute2.size() == 100);
  REQUIRE(req->size() > 100);
  netlink::Bytes head(req->begin(), req->begin() + 100);
  head[0] = 0x64;  // our nlmsg_len also counts IFLA_NET_NS_FD
  head[1] = head[2] = head[3] = 0;
  CHECK(head == iproute2);
  // The rest is IFLA_NET_NS_FD (28) naming the pod; no alias (the kernel would ignore it).
  REQUIRE(req->size() == 108);
  auto tail = netlink::split_attributes(netlink::ByteView(*req).subspan(100));
  REQUIRE(tail.ok());
  REQUIRE(tail->size() == 1);
  CHECK((*tail)[0].type == 28);
  CHECK((*tail)[0].payload == netlink::Bytes{7, 0, 0, 0});
  // Read back as a link message.
  auto info = netlink::parse_link_message(*req);
  REQUIRE(info.ok());
  CHECK(info->kind == "ipoib");
  CHECK(info->parent_ifindex == 4);
  CHECK(info->netns_fd == 7);
  CHECK(info->alias.empty());
  REQUIRE(info->ipoib);
  CHECK(info->ipoib->pkey == 0x8001);
}

TEST_CASE("a limited-membership pkey is sent with the full-membership bit") {
  auto kind = make_ipoib_kind(nullptr);
  auto spec = spec_8001();
  spec.pkey = 0x0001;
  spec.mode = IpoibMode::kConnected;
  spec.umcast = Umcast::kOn;
  auto info = netlink::parse_link_message(*kind->build_create_request(spec, "t", 3));
  REQUIRE(info.ok());
  REQUIRE(info->ipoib);
  CHECK(info->ipoib->pkey == 0x8001);
  CHECK(info->ipoib->mode == netlink::IpoibMode::kConnected);
  CHECK(info->ipoib->umcast == netlink::Umcast::kOn);
}

TEST_CASE("validate_master: IPoIB, a parent, up") {
  auto kind = make_ipoib_kind(nullptr);
  CHECK(kind->validate_master(ib0()).ok());
  auto eth = ib0();
  eth.arphrd_type = netlink::kArphrdEther;
  auto r = kind->validate_master(eth);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK(r.error().msg().rfind("master: ib0 is not an IPoIB", 0) == 0);
  auto child = ib0();
  child.ifindex = 7;
  child.parent_ifindex = 4;
  CHECK(kind->validate_master(child).error().msg().find("child") != std::string::npos);
  auto down = ib0();
  down.flags = 0;
  CHECK(kind->validate_master(down).error().msg().find("down") != std::string::npos);
}

TEST_CASE("parent_facts: the parent's pkey, mode, MTU and the port's IB MTU") {
  auto kind = make_ipoib_kind(std::make_unique<FakePorts>(active_port()));
  auto parent = ib0();
  parent.ipoib->mode = netlink::IpoibMode::kConnected;
  auto facts = kind->parent_facts(parent);
  REQUIRE(facts.ok());
  CHECK(facts->ifindex == 4);
  CHECK(facts->pkey == 0xffff);
  CHECK(facts->mode == IpoibMode::kConnected);
  CHECK(facts->mtu_bytes == 2044);
  CHECK(facts->port_ib_mtu_bytes == 2048);
}

TEST_CASE("verify_child compares kind, parent, partition and mode") {
  auto kind = make_ipoib_kind(nullptr);
  netlink::LinkInfo child;
  child.name = "net1";
  child.kind = "ipoib";
  child.parent_ifindex = 4;
  child.ipoib = netlink::IpoibParams{0x8001, netlink::IpoibMode::kDatagram, netlink::Umcast::kOff};
  CHECK(kind->verify_child(child, spec_8001()).ok());
  auto limited = spec_8001();
  limited.pkey = 0x0001;  // same partition
  CHECK(kind->verify_child(child, limited).ok());
  auto other_pkey = spec_8001();
  other_pkey.pkey = 0x8002;
  CHECK(kind->verify_child(child, other_pkey).error().code() == ErrorCode::kCheckFailed);
  auto connected = spec_8001();
  connected.mode = IpoibMode::kConnected;
  CHECK(kind->verify_child(child, connected).error().msg().find("datagram") != std::string::npos);
  auto other_parent = spec_8001();
  other_parent.parent_ifindex = 5;
  CHECK_FALSE(kind->verify_child(child, other_parent).ok());
  auto macvlan = child;
  macvlan.kind = "macvlan";
  CHECK_FALSE(kind->verify_child(macvlan, spec_8001()).ok());
  CHECK(kind->arp_hardware().arphrd_type == 32);
  CHECK(kind->arp_hardware().address_length == 20);
}

TEST_CASE("master_ready and the carrier-down explanation come from the port") {
  auto ok = make_ipoib_kind(std::make_unique<FakePorts>(active_port()));
  CHECK(ok->master_ready(ib0()).ok());
  CHECK(ok->explain_carrier_down(ib0(), spec_8001()).empty());
  auto missing_pkey = spec_8001();
  missing_pkey.pkey = 0x8005;
  CHECK(ok->explain_carrier_down(ib0(), missing_pkey).find("0x8005") != std::string::npos);

  auto down_port = active_port();
  down_port.state = ib::PortState::kDown;
  down_port.state_text = "1: DOWN";
  auto down = make_ipoib_kind(std::make_unique<FakePorts>(down_port));
  auto r = down->master_ready(ib0());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kNotAvailable);
  CHECK_FALSE(down->explain_carrier_down(ib0(), spec_8001()).empty());

  auto no_port = ib0();
  no_port.name = "ib9";
  CHECK(ok->master_ready(no_port).error().code() == ErrorCode::kNotAvailable);
  auto master_down = ib0();
  master_down.flags = 0;
  CHECK(ok->master_ready(master_down).error().code() == ErrorCode::kNotAvailable);
  // Every STATUS message names the master the same way.
  CHECK(ok->master_ready(master_down).error().msg() == "master ib0 is down");
  auto ethernet = ib0();
  ethernet.arphrd_type = 1;
  CHECK(ok->master_ready(ethernet).error().msg() == "master ib0 is not an IPoIB interface");
  CHECK(ok->master_ready(no_port).error().msg().rfind("master ib9: ", 0) == 0);
  CHECK(r.error().msg().rfind("master ib0: ", 0) == 0);
}
