#include "ipoib/ib/port.h"

#include <catch2/catch.hpp>

#include "ipoib/ib/netdev.h"
#include "tests/fixtures/fixture_tree.h"

using namespace ipoib;
using ipoib::testing::build_node;
using ipoib::testing::FixtureTree;
using ipoib::testing::NodeSpec;

TEST_CASE("sysfs port state texts parse", "[ib]") {
  CHECK(ib::parse_port_state("4: ACTIVE") == ib::PortState::kActive);
  CHECK(ib::parse_port_state("1: DOWN\n") == ib::PortState::kDown);
  CHECK(ib::parse_port_state("2: INIT") == ib::PortState::kInit);
  CHECK(ib::parse_port_state("9: WHAT") == ib::PortState::kUnknown);
  CHECK(ib::parse_port_state("ACTIVE") == ib::PortState::kUnknown);
  CHECK(ib::parse_phys_state("5: LinkUp") == ib::PhysState::kLinkUp);
  CHECK(ib::parse_phys_state("3: Disabled") == ib::PhysState::kDisabled);
  CHECK(ib::parse_phys_state("0: x") == ib::PhysState::kUnknown);
  CHECK(ib::to_string(ib::PortState::kActive) == "ACTIVE");
  CHECK(ib::to_string(ib::PhysState::kPolling) == "Polling");
}

TEST_CASE("GIDs round-trip between sysfs text and bytes", "[ib]") {
  const auto gid = ib::parse_gid("fe80:0000:0000:0000:0002:c903:00f1:2345\n");
  REQUIRE(gid);
  CHECK((*gid)[0] == 0xfe);
  CHECK((*gid)[1] == 0x80);
  CHECK((*gid)[15] == 0x45);
  CHECK(ib::format_gid(*gid) == "fe80:0000:0000:0000:0002:c903:00f1:2345");
  CHECK_FALSE(ib::parse_gid("fe80::1"));
  CHECK_FALSE(ib::parse_gid("fe80:0000:0000:0000:0002:c903:00f1:2345:0"));
  CHECK_FALSE(ib::parse_gid("fe80:0000:0000:0000:0002:c903:00f1:zz45"));
}

TEST_CASE("pkey lookup matches the low 15 bits and prefers full membership", "[ib]") {
  ib::IbPort port;
  port.pkeys = {0xffff, 0x0001, 0x0000, 0x8002, 0x0002};
  CHECK(ib::pkey_in_table(port, 0x8001) == ib::PkeyMembership::kLimited);
  CHECK(ib::pkey_in_table(port, 0x0001) == ib::PkeyMembership::kLimited);
  CHECK(ib::pkey_in_table(port, 0x0002) == ib::PkeyMembership::kFull);
  CHECK(ib::pkey_in_table(port, 0x7fff) == ib::PkeyMembership::kFull);
  CHECK(ib::pkey_in_table(port, 0xffff) == ib::PkeyMembership::kFull);
  CHECK(ib::pkey_in_table(port, 0x8003) == ib::PkeyMembership::kAbsent);
  // 0 and 0x8000 are empty slots, never a match.
  CHECK(ib::pkey_in_table(port, 0x0000) == ib::PkeyMembership::kAbsent);
  CHECK(ib::pkey_in_table(port, 0x8000) == ib::PkeyMembership::kAbsent);
}

TEST_CASE("a netdev maps to its HCA port through sysfs", "[ib]") {
  FixtureTree tree;
  NodeSpec node;
  node.dev_port = 1;  // port 2
  build_node(tree, node);
  const ib::SysfsRoot root{tree.path()};

  auto port = ib::find_port_for_netdev(root, "ib0");
  REQUIRE(port.ok());
  CHECK(port->netdev == "ib0");
  CHECK(port->device == "mlx5_0");
  CHECK(port->port_num == 2);
  CHECK(port->state == ib::PortState::kActive);
  CHECK(port->state_text == "4: ACTIVE");
  CHECK(port->phys_state == ib::PhysState::kLinkUp);
  CHECK(port->link_layer == "InfiniBand");
  CHECK(port->lid == 5);
  CHECK(port->sm_lid == 1);
  CHECK(port->pkeys == std::vector<std::uint16_t>{0xffff, 0x8001, 0x0000});
  CHECK(port->rate == "100 Gb/sec (4X EDR)");
  CHECK(port->source == ib::QuerySource::kSysfs);
  CHECK_FALSE(port->active_mtu_bytes);
  CHECK(ib::port_usable(*port));
  CHECK(ib::explain_port(*port).empty());
  CHECK(ib::explain_carrier_down(*port, 0x8001).empty());

  auto query = ib::make_sysfs_port_query(root);
  auto via_seam = query->port_for_netdev("ib0");
  REQUIRE(via_seam.ok());
  CHECK(via_seam->port_num == 2);
}

TEST_CASE("pkey table indexes sort numerically", "[ib]") {
  FixtureTree tree;
  NodeSpec node;
  node.pkeys.clear();
  for (int i = 0; i < 12; ++i) {
    node.pkeys.push_back(i == 11 ? "0x8011" : "0x0000");
  }
  build_node(tree, node);
  auto port = ib::read_port(ib::SysfsRoot{tree.path()}, "mlx5_0", 1);
  REQUIRE(port.ok());
  REQUIRE(port->pkeys.size() == 12);
  CHECK(port->pkeys[11] == 0x8011);  // "11" sorts before "2" as text
}

TEST_CASE("the interface GID cross-checks gids/0 and finds the right port", "[ib]") {
  FixtureTree tree;
  NodeSpec node;
  build_node(tree, node);
  // dev_port says port 1, but the address GID belongs to port 2.
  tree.file("sys/class/infiniband/mlx5_0/ports/1/gids/0",
            "fe80:0000:0000:0000:0002:c903:00f1:9999\n");
  tree.file("sys/class/infiniband/mlx5_0/ports/2/state", "4: ACTIVE\n");
  tree.file("sys/class/infiniband/mlx5_0/ports/2/gids/0", node.gid0 + "\n");
  const ib::SysfsRoot root{tree.path()};
  auto port = ib::find_port_for_netdev(root, "ib0");
  REQUIRE(port.ok());
  CHECK(port->port_num == 2);

  tree.file("sys/class/infiniband/mlx5_0/ports/2/gids/0",
            "fe80:0000:0000:0000:0002:c903:00f1:8888\n");
  auto mismatch = ib::find_port_for_netdev(root, "ib0");
  REQUIRE_FALSE(mismatch.ok());
  CHECK(mismatch.error().code() == ErrorCode::kNotAvailable);
  CHECK_THAT(mismatch.error().msg(), Catch::Contains("does not match"));
}

TEST_CASE("find_port_for_netdev explains why there is no port", "[ib]") {
  FixtureTree tree;
  NodeSpec node;
  build_node(tree, node);
  const ib::SysfsRoot root{tree.path()};

  auto missing = ib::find_port_for_netdev(root, "ib9");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == ErrorCode::kNotAvailable);
  CHECK_THAT(missing.error().msg(), Catch::Contains("ib9 not found"));

  auto not_ib = ib::find_port_for_netdev(root, "lo");
  REQUIRE_FALSE(not_ib.ok());
  CHECK_THAT(not_ib.error().msg(), Catch::Contains("not an IPoIB interface"));

  tree.remove("sys/class/net/ib0/device");
  auto no_device = ib::find_port_for_netdev(root, "ib0");
  REQUIRE_FALSE(no_device.ok());
  CHECK_THAT(no_device.error().msg(), Catch::Contains("no InfiniBand device"));

  auto bad_name = ib::find_port_for_netdev(root, "../x");
  REQUIRE_FALSE(bad_name.ok());
  CHECK(bad_name.error().code() == ErrorCode::kInvalidNetworkConfig);
}

TEST_CASE("carrier-down explanations name the cause", "[ib]") {
  ib::IbPort port;
  port.device = "mlx5_0";
  port.port_num = 1;
  port.state = ib::PortState::kActive;
  port.state_text = "4: ACTIVE";
  port.phys_state = ib::PhysState::kLinkUp;
  port.link_layer = "InfiniBand";
  port.sm_lid = 1;
  port.pkeys = {0xffff};
  CHECK(ib::explain_carrier_down(port, 0x8001) ==
        "pkey 0x8001 is not in the pkey table of mlx5_0 port 1 (the subnet manager has not added "
        "this partition)");
  CHECK(ib::explain_carrier_down(port, 0x7fff).empty());
  CHECK(ib::explain_carrier_down(port, std::nullopt).empty());

  port.state = ib::PortState::kInit;
  port.state_text = "2: INIT";
  port.sm_lid = 0;
  const std::string why = ib::explain_carrier_down(port, std::nullopt);
  CHECK_THAT(why, Catch::Contains("state is 2: INIT, not 4: ACTIVE"));
  CHECK_THAT(why, Catch::Contains("no subnet manager (sm_lid 0)"));
  CHECK_FALSE(ib::port_usable(port));

  port.state = ib::PortState::kActive;
  port.phys_state = ib::PhysState::kDisabled;
  port.phys_state_text = "3: Disabled";
  CHECK_THAT(ib::explain_port(port), Catch::Contains("physical state is 3: Disabled"));
  port.phys_state = ib::PhysState::kLinkUp;
  port.link_layer = "Ethernet";
  CHECK_FALSE(ib::port_usable(port));
  CHECK_THAT(ib::explain_port(port), Catch::Contains("link layer is Ethernet"));
}

TEST_CASE("read_netdev reads attributes and tells parents from children", "[ib]") {
  FixtureTree tree;
  NodeSpec node;
  node.children = {{"dev7", 7, ""}, {"ib0.8001", 8, "ipoib-cni:abc:net1"}};
  build_node(tree, node);
  const ib::SysfsRoot root{tree.path()};

  auto ib0 = ib::read_netdev(root, "ib0");
  REQUIRE(ib0.ok());
  CHECK(ib0->is_ipoib());
  CHECK_FALSE(ib0->is_child());
  CHECK(ib0->admin_up());
  CHECK(ib0->ifindex == 4);
  CHECK(ib0->mtu == 2044);
  CHECK(ib0->address.size() == 20);
  CHECK(ib0->address[4] == 0xfe);
  CHECK(ib0->mode == "datagram");
  CHECK(ib0->pkey == 0xffff);
  CHECK(ib0->carrier == true);
  CHECK(ib0->ib_device == "mlx5_0");

  auto child = ib::read_netdev(root, "ib0.8001");
  REQUIRE(child.ok());
  CHECK(child->is_child());
  CHECK(child->iflink == 4);
  CHECK(child->ifalias == "ipoib-cni:abc:net1");
  CHECK_FALSE(child->admin_up());
  CHECK_FALSE(child->mode);  // netlink children have no mode/pkey sysfs files
  CHECK_FALSE(child->carrier);

  // A sysfs-created child is recognised by its `parent` attribute alone.
  tree.file("sys/class/net/dev7/iflink", "7\n");
  tree.file("sys/class/net/dev7/parent", "ib0\n");
  auto sysfs_child = ib::read_netdev(root, "dev7");
  REQUIRE(sysfs_child.ok());
  CHECK(sysfs_child->is_child());

  auto names = ib::list_netdevs(root);
  REQUIRE(names.ok());
  CHECK(*names == std::vector<std::string>{"dev7", "ib0", "ib0.8001", "lo"});

  CHECK(ib::parse_hw_address("80:00:00:48") == std::vector<std::uint8_t>{0x80, 0, 0, 0x48});
  CHECK_FALSE(ib::parse_hw_address("80:0g"));
  CHECK_FALSE(ib::parse_hw_address("800:00"));
}

TEST_CASE("SysfsRoot joins with exactly one slash", "[ib]") {
  CHECK(ib::SysfsRoot{}.join("sys/class/net") == "/sys/class/net");
  CHECK(ib::SysfsRoot{"/tmp/x/"}.join("/sys") == "/tmp/x/sys");
  CHECK(ib::SysfsRoot{"/tmp/x"}.join("sys") == "/tmp/x/sys");
}
