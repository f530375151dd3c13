#include "ipoib/cni/config.h"

#include <catch2/catch.hpp>

#include "ipoib/plugin/config.h"

using namespace ipoib;
using namespace ipoib::plugin;
using nlohmann::json;

namespace {

cni::NetConf netconf(const json& extra) {
  json doc = {{"cniVersion", "1.0.0"}, {"name", "ibnet"}, {"type", "ipoib"}, {"master", "ib0"}};
  for (const auto& [k, v] : extra.items()) {
    if (v.is_null()) {
      doc.erase(k);
    } else {
      doc[k] = v;
    }
  }
  auto conf = cni::parse_netconf(doc.dump());
  REQUIRE(conf.ok());
  return *conf;
}

// The error for a config, which must name `key`.
std::string error_for(const json& extra, const std::string& key) {
  auto r = parse_ipoib_config(netconf(extra));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK(r.error().msg().rfind(key + ":", 0) == 0);
  return r.error().msg();
}

}  // namespace

TEST_CASE("a minimal config takes every default") {
  auto r = parse_ipoib_config(netconf(json::object()));
  REQUIRE(r.ok());
  CHECK(r->master == "ib0");
  CHECK_FALSE(r->pkey);
  CHECK_FALSE(r->mode);
  CHECK(r->umcast == Umcast::kOff);
  CHECK_FALSE(r->mtu_bytes);
  CHECK(r->ipam.kind == IpamKind::kNone);
}

TEST_CASE("master is required and must be an interface name") {
  error_for({{"master", nullptr}}, "master");
  error_for({{"master", 5}}, "master");
  error_for({{"master", ""}}, "master");
  error_for({{"master", "ib0/x"}}, "master");
  error_for({{"master", "a-very-long-ifname0"}}, "master");
}

TEST_CASE("pkey: number, hex or decimal string; 0 and 0x8000 rejected") {
  CHECK(*parse_ipoib_config(netconf({{"pkey", 0x8001}}))->pkey == 0x8001);
  CHECK(*parse_ipoib_config(netconf({{"pkey", "0x8001"}}))->pkey == 0x8001);
  CHECK(*parse_ipoib_config(netconf({{"pkey", "0X7FFF"}}))->pkey == 0x7fff);
  CHECK(*parse_ipoib_config(netconf({{"pkey", "32769"}}))->pkey == 0x8001);
  CHECK(*parse_ipoib_config(netconf({{"pkey", 1}}))->pkey == 1);  // limited member 0x0001
  CHECK(error_for({{"pkey", 0}}, "pkey").find("0x0000") != std::string::npos);
  CHECK(error_for({{"pkey", "0x8000"}}, "pkey").find("0x8000") != std::string::npos);
  error_for({{"pkey", 0x10000}}, "pkey");
  error_for({{"pkey", -1}}, "pkey");
  error_for({{"pkey", "ffff"}}, "pkey");
  error_for({{"pkey", "0x"}}, "pkey");
  error_for({{"pkey", true}}, "pkey");
  error_for({{"pkey", 1.5}}, "pkey");
}

TEST_CASE("mode and umcast") {
  CHECK(*parse_ipoib_config(netconf({{"mode", "connected"}}))->mode == IpoibMode::kConnected);
  CHECK(*parse_ipoib_config(netconf({{"mode", "Datagram"}}))->mode == IpoibMode::kDatagram);
  error_for({{"mode", "ud"}}, "mode");
  error_for({{"mode", 1}}, "mode");
  CHECK(parse_ipoib_config(netconf({{"umcast", true}}))->umcast == Umcast::kOn);
  error_for({{"umcast", "true"}}, "umcast");
}

TEST_CASE("mtu is checked against the mode") {
  CHECK(*parse_ipoib_config(netconf({{"mtu", 72}, {"mode", "datagram"}}))->mtu_bytes == 72);
  CHECK(*parse_ipoib_config(netconf({{"mtu", 4092}, {"mode", "datagram"}}))->mtu_bytes == 4092);
  error_for({{"mtu", 71}, {"mode", "datagram"}}, "mtu");
  error_for({{"mtu", 4093}, {"mode", "datagram"}}, "mtu");
  CHECK(*parse_ipoib_config(netconf({{"mtu", 65520}, {"mode", "connected"}}))->mtu_bytes == 65520);
  error_for({{"mtu", 65521}, {"mode", "connected"}}, "mtu");
  error_for({{"mtu", "2044"}}, "mtu");
  error_for({{"mtu", -5}}, "mtu");
  // Without a mode the parent's decides, at ADD time.
  CHECK(*parse_ipoib_config(netconf({{"mtu", 9000}}))->mtu_bytes == 9000);
}

TEST_CASE("ipam: none, empty, built-in or delegated") {
  CHECK(parse_ipoib_config(netconf({{"ipam", json::object()}}))->ipam.kind == IpamKind::kNone);
  auto builtin = parse_ipoib_config(netconf({{"ipam", {{"type", "whereabouts"}}}}));
  CHECK(builtin->ipam.kind == IpamKind::kBuiltin);
  auto delegated = parse_ipoib_config(netconf({{"ipam", {{"type", "host-local"}}}}));
  CHECK(delegated->ipam.kind == IpamKind::kDelegated);
  CHECK(delegated->ipam.type == "host-local");
  error_for({{"ipam", "whereabouts"}}, "ipam");
  error_for({{"ipam", {{"range", "10.0.0.0/24"}}}}, "ipam.type");
  error_for({{"ipam", {{"type", "../../bin/sh"}}}}, "ipam.type");
  error_for({{"ipam", {{"type", ""}}}}, "ipam.type");
}

TEST_CASE("resolve_child_spec takes the parent's defaults") {
  auto cfg = parse_ipoib_config(netconf(json::object()));
  ParentFacts parent{.ifindex = 4,
                     .pkey = 0x8001,
                     .mode = IpoibMode::kConnected,
                     .mtu_bytes = 1496,
                     .port_ib_mtu_bytes = std::nullopt};
  auto spec = resolve_child_spec(*cfg, parent);
  REQUIRE(spec.ok());
  CHECK(spec->parent_ifindex == 4);
  CHECK(spec->pkey == 0x8001);
  CHECK(spec->mode == IpoibMode::kConnected);
  // The parent's configured MTU, not the port maximum (the known complaint: 1496 vs 2044).
  CHECK(spec->mtu_bytes == 1496);
}

TEST_CASE("resolve_child_spec bounds a datagram MTU by the port's IB MTU") {
  ParentFacts parent{.ifindex = 4,
                     .pkey = 0xffff,
                     .mode = IpoibMode::kDatagram,
                     .mtu_bytes = 4092,
                     .port_ib_mtu_bytes = 2048};
  auto over = resolve_child_spec(*parse_ipoib_config(netconf({{"mtu", 2045}})), parent);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().msg().find("IB MTU 2048") != std::string::npos);
  CHECK(resolve_child_spec(*parse_ipoib_config(netconf({{"mtu", 2044}})), parent)->mtu_bytes ==
        2044);
  // The default is clamped to what the port carries.
  CHECK(resolve_child_spec(*parse_ipoib_config(netconf(json::object())), parent)->mtu_bytes ==
        2044);
  // A connected-mode parent's 65520 does not fit a datagram child.
  ParentFacts cm{.ifindex = 4,
                 .pkey = 0xffff,
                 .mode = IpoibMode::kConnected,
                 .mtu_bytes = 65520,
                 .port_ib_mtu_bytes = std::nullopt};
  auto dg = resolve_child_spec(*parse_ipoib_config(netconf({{"mode", "datagram"}})), cm);
  CHECK(dg->mtu_bytes == 4092);
  // An explicit MTU valid only in connected mode fails once the parent's datagram mode applies.
  auto bad = resolve_child_spec(*parse_ipoib_config(netconf({{"mtu", 9000}})), parent);
  CHECK_FALSE(bad.ok());
}

TEST_CASE("same_partition ignores the membership bit") {
  CHECK(same_partition(0x0001, 0x8001));
  CHECK(same_partition(0x7fff, 0xffff));
  CHECK_FALSE(same_partition(0x8001, 0x8002));
  CHECK(format_pkey(0x8001) == "0x8001");
  CHECK(format_pkey(1) == "0x0001");
}

TEST_CASE("every bad key is reported at once") {
  auto r = parse_ipoib_config(netconf({{"master", nullptr}, {"pkey", 0}, {"mode", "fast"}}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
  const auto& msg = r.error().msg();
  CHECK(msg.rfind("master: required", 0) == 0);
  CHECK(msg.find("; pkey: 0x0000 is not a valid partition key") != std::string::npos);
  CHECK(msg.find("; mode: \"fast\" is not") != std::string::npos);
}

TEST_CASE("validate_network_config checks the built-in IPAM's section by its own parser") {
  const ipam::ConfigSources no_flat_file{{}};
  auto ok = validate_network_config(
      netconf({{"ipam", {{"type", "whereabouts"}, {"range", "10.0.0.0/24"}}}}), no_flat_file);
  REQUIRE(ok.ok());
  CHECK(ok->ipam.kind == IpamKind::kBuiltin);
  // Both problems, the plugin's and the IPAM's, in one message.
  auto both = validate_network_config(
      netconf({{"master", nullptr}, {"ipam", {{"type", "whereabouts"}, {"range", "10.0.0.0/33"}}}}),
      no_flat_file);
  REQUIRE_FALSE(both.ok());
  CHECK(both.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK(both.error().msg().rfind("master: required", 0) == 0);
  CHECK(both.error().msg().find("; ipam.range") != std::string::npos);
  // A delegated IPAM's section is the delegate's to judge.
  CHECK(
      validate_network_config(netconf({{"ipam", {{"type", "host-local"}, {"x", 1}}}}), no_flat_file)
          .ok());
  // No range at all is an IPAM config error too.
  auto none = validate_network_config(netconf({{"ipam", {{"type", "whereabouts"}}}}), no_flat_file);
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().msg().rfind("ipam.", 0) == 0);
}
