#include "ipoib/cni/result.h"

#include <catch2/catch.hpp>

#include "test_support.h"

using namespace ipoib;
using namespace ipoib::cni;
using ipoib::cni::testing::golden;
using nlohmann::json;

namespace {

IpPrefix prefix(const char* text) { return IpPrefix::parse(text).value(); }
IpAddress ip(const char* text) { return IpAddress::parse(text).value(); }

// The one result every golden file encodes: an IPoIB interface, two IPv4 addresses (only the
// first survives 0.1.0/0.2.0) and one IPv6 with gateways, routes including the 1.1.0 extras,
// and dns.
CniResult golden_result() {
  CniResult r;
  r.interfaces.push_back({.name = "net1",
                          .mac = "80:00:00:68:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0a:0b:0c",
                          .mtu = 2044,
                          .sandbox = "/var/run/netns/cni-1234",
                          .socket_path = "",
                          .pci_id = "0000:3b:00.1"});
  r.ips.push_back(
      {.address = prefix("10.56.217.5/16"), .gateway = ip("10.56.0.1"), .interface = 0});
  r.ips.push_back({.address = prefix("10.57.0.9/24"), .gateway = std::nullopt, .interface = 0});
  r.ips.push_back(
      {.address = prefix("fd00:56::5/64"), .gateway = ip("fd00:56::1"), .interface = 0});
  r.routes.push_back({.dst = prefix("0.0.0.0/0"), .gw = ip("10.56.0.1")});
  r.routes.push_back({.dst = prefix("192.168.0.0/16"),
                      .gw = std::nullopt,
                      .mtu = 2000,
                      .advmss = 1960,
                      .priority = 100,
                      .table = 100,
                      .scope = 0});
  r.routes.push_back({.dst = prefix("::/0"), .gw = ip("fd00:56::1")});
  r.dns = {.nameservers = {"10.56.0.2", "fd00:56::2"},
           .domain = "cluster.local",
           .search = {"mpi.svc.cluster.local", "svc.cluster.local"},
           .options = {"ndots:5"}};
  return r;
}

// What survives an encoding at `v` and a decoding back.
CniResult expected_after(CniVersion v) {
  CniResult r = golden_result();
  if (v < CniVersion::k1_1_0) {
    for (auto& i : r.interfaces) {
      i.mtu.reset();
      i.socket_path.clear();
      i.pci_id.clear();
    }
    for (auto& route : r.routes) {
      route.mtu.reset();
      route.advmss.reset();
      route.priority.reset();
      route.table.reset();
      route.scope.reset();
    }
  }
  if (v <= CniVersion::k0_2_0) {
    r.interfaces.clear();
    r.ips = {{.address = prefix("10.56.217.5/16"), .gateway = ip("10.56.0.1"), .interface = {}},
             {.address = prefix("fd00:56::5/64"), .gateway = ip("fd00:56::1"), .interface = {}}};
    // ip4's routes, then ip6's.
    r.routes = {r.routes[0], r.routes[1], r.routes[2]};
  }
  return r;
}

}  // namespace

TEST_CASE("encode_result matches the golden document of every version", "[cni][result]") {
  for (const CniVersion v : kSupportedVersions) {
    const std::string file = "result-" + std::string(to_string(v)) + ".json";
    INFO(file);
    const auto doc = encode_result(golden_result(), v);
    REQUIRE(doc.ok());
    CHECK(*doc == golden(file));
  }
}

TEST_CASE("decode_result reads every golden document back", "[cni][result]") {
  for (const CniVersion v : kSupportedVersions) {
    const std::string file = "result-" + std::string(to_string(v)) + ".json";
    INFO(file);
    const auto r = decode_result(golden(file), v);
    REQUIRE(r.ok());
    CHECK(*r == expected_after(v));
    // And the decoded model encodes to the same document again.
    const auto again = encode_result(*r, v);
    REQUIRE(again.ok());
    CHECK(*again == golden(file));
  }
}

TEST_CASE("0.1.0/0.2.0 cannot express a result without IP addresses", "[cni][result]") {
  CniResult r = golden_result();
  r.ips.clear();
  for (const CniVersion v : {CniVersion::k0_1_0, CniVersion::k0_2_0}) {
    const auto doc = encode_result(r, v);
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.error().code() == ErrorCode::kIncompatibleVersion);
    CHECK(doc.error().msg() ==
          "cannot express a result without IP addresses in CNI " + std::string(to_string(v)));
  }
  // Later versions express it: interfaces, routes and dns only.
  const auto doc = encode_result(r, CniVersion::k0_3_1);
  REQUIRE(doc.ok());
  CHECK_FALSE(doc->contains("ips"));
  CHECK(doc->contains("interfaces"));
}

TEST_CASE("0.2.0 with only IPv6 has no ip4 and drops IPv4 routes", "[cni][result]") {
  CniResult r;
  r.ips.push_back({.address = prefix("fd00::5/64"), .gateway = std::nullopt, .interface = {}});
  r.routes.push_back({.dst = prefix("10.0.0.0/8"), .gw = std::nullopt});
  r.routes.push_back({.dst = prefix("fd01::/64"), .gw = ip("fd00::1")});
  const auto doc = encode_result(r, CniVersion::k0_2_0);
  REQUIRE(doc.ok());
  CHECK(*doc == json::parse(R"({"cniVersion":"0.2.0",
      "ip6":{"ip":"fd00::5/64","routes":[{"dst":"fd01::/64","gw":"fd00::1"}]}})"));
}

TEST_CASE("empty parts are omitted; socketPath is 1.1.0 only", "[cni][result]") {
  CHECK(encode_result(CniResult{}, CniVersion::k1_0_0).value() == json({{"cniVersion", "1.0.0"}}));
  CniResult r;
  r.interfaces.push_back({.name = "vhost0",
                          .mac = "",
                          .mtu = 0,
                          .sandbox = "",
                          .socket_path = "/run/vhost.sock",
                          .pci_id = ""});
  CHECK(encode_result(r, CniVersion::k1_1_0).value() ==
        json::parse(R"({"cniVersion":"1.1.0","interfaces":[{"name":"vhost0",
                        "socketPath":"/run/vhost.sock"}]})"));
  CHECK(encode_result(r, CniVersion::k1_0_0).value() ==
        json::parse(R"({"cniVersion":"1.0.0","interfaces":[{"name":"vhost0"}]})"));
}

TEST_CASE("encode_result refuses an interface index past the list", "[cni][result]") {
  CniResult r = golden_result();
  r.ips[1].interface = 1;
  const auto doc = encode_result(r, CniVersion::k1_0_0);
  REQUIRE_FALSE(doc.ok());
  CHECK(doc.error().code() == ErrorCode::kInternal);
  CHECK(doc.error().msg() == "result: ips[1].interface 1 indexes no interface");
  r.ips[1].interface = -1;
  CHECK_FALSE(encode_result(r, CniVersion::k1_1_0).ok());
}

TEST_CASE("decode_result tolerates what real producers emit", "[cni][result]") {
  const auto r = decode_result(json::parse(R"({
      "cniVersion": "1.0.0",
      "interfaces": [{"name": "net1", "mtu": 0, "unknownKey": true}],
      "ips": [{"address": "10.0.0.5/24", "gateway": "", "interface": 0, "version": "6"}],
      "routes": [{"dst": "0.0.0.0/0", "gw": null, "mtu": 0}],
      "dns": {},
      "somethingNew": [1, 2]})"),
                               CniVersion::k1_0_0);
  REQUIRE(r.ok());
  CniResult expected;
  expected.interfaces.push_back({.name = "net1",
                                 .mac = "",
                                 .mtu = std::nullopt,
                                 .sandbox = "",
                                 .socket_path = "",
                                 .pci_id = ""});
  expected.ips.push_back(
      {.address = prefix("10.0.0.5/24"), .gateway = std::nullopt, .interface = 0});
  expected.routes.push_back({.dst = prefix("0.0.0.0/0"), .gw = std::nullopt});
  CHECK(*r == expected);
}

TEST_CASE("decode_result names the malformed field", "[cni][result]") {
  struct Case {
    std::string doc;
    std::string msg;
  };
  const std::vector<Case> table = {
      {"[]", "result: document: must be an object"},
      {R"({"ips":{}})", "result: ips: must be an array"},
      {R"({"ips":[1]})", "result: ips[0]: must be an object"},
      {R"({"ips":[{}]})", "result: ips[0].address: missing"},
      {R"({"ips":[{"address":"10.0.0.5"}]})", "result: ips[0].address: "},
      {R"({"ips":[{"address":"10.0.0.5/24","gateway":"x"}]})", "result: ips[0].gateway: "},
      {R"({"ips":[{"address":"10.0.0.5/24","interface":0}]})",
       "result: ips[0].interface: indexes no interface"},
      {R"({"ips":[{"address":"10.0.0.5/24","interface":"0"}]})",
       "result: ips[0].interface: must be an integer"},
      {R"({"interfaces":[{"name":1}]})", "result: interfaces[0].name: must be a string"},
      {R"({"interfaces":[{"mtu":1e99}]})", "result: interfaces[0].mtu: must be an integer"},
      {R"({"interfaces":[{"mtu":99999999999}]})", "result: interfaces[0].mtu: out of range"},
      {R"({"routes":[{"gw":"10.0.0.1"}]})", "result: routes[0].dst: missing"},
      {R"({"ip4":{"ip":"fd00::1/64"}})", "result: ip4.ip: wrong address family"},
      {R"({"ip4":{"ip":"10.0.0.1/8","routes":{}}})", "result: ip4.routes: must be an array"},
      {R"({"ip6":{"ip":"fd00::1/64","routes":[{"dst":"x"}]}})", "result: ip6.routes[0].dst: "},
      {R"({"dns":[]})", "result: dns: must be an object"},
      {R"({"dns":{"nameservers":"10.0.0.2"}})",
       "result: dns.nameservers: must be an array of strings"},
  };
  for (const auto& c : table) {
    INFO(c.doc);
    const auto r = decode_result(json::parse(c.doc), CniVersion::k1_0_0);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kDecodeFailure);
    CHECK_THAT(r.error().msg(), Catch::StartsWith(c.msg));
  }
}
