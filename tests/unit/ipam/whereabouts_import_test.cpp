#include "ipoib/ipam/whereabouts_import.h"

#include <catch2/catch.hpp>

using namespace ipoib;
using namespace ipoib::ipam;

namespace {

WhereaboutsRecords must(const std::string& text, std::string_view network = "") {
  auto r = decode_whereabouts(text, "in.json", network);
  INFO((r ? std::string() : r.error().msg()));
  REQUIRE(r.ok());
  return std::move(r).value();
}

bool has_problem(const WhereaboutsRecords& r, std::string_view needle) {
  for (const std::string& p : r.problems) {
    if (p.find(needle) != std::string::npos) {
      return true;
    }
  }
  return false;
}

// What `kubectl get ippools.whereabouts.cni.cncf.io -A -o json` prints (trimmed to the fields
// whereabouts' CRD schema has).
const char* kPoolList = R"({
  "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
  "items": [
    {"apiVersion": "whereabouts.cni.cncf.io/v1alpha1", "kind": "IPPool",
     "metadata": {"name": "192.168.0.0-24", "namespace": "kube-system"},
     "spec": {"range": "192.168.0.0/24", "allocations": {
       "1": {"id": "c1", "podref": "default/mpi-0", "ifname": "net1"},
       "17": {"id": "c2", "podref": "default/mpi-1"}}}},
    {"apiVersion": "whereabouts.cni.cncf.io/v1alpha1", "kind": "IPPool",
     "metadata": {"name": "jarvice-fd00-1---64", "namespace": "kube-system"},
     "spec": {"range": "fd00:1::/64", "allocations": {
       "4294967301": {"id": "c3", "podref": "hpc/rank-3", "ifname": "net1"},
       "18446744073709551615": {"id": "c4", "podref": "hpc/rank-4", "ifname": "net1"}}}}
  ]})";

}  // namespace

TEST_CASE("IPPool list: decimal offsets from spec.range, IPv4 and IPv6 beyond 2^32 and 2^63") {
  const WhereaboutsRecords r = must(kPoolList);
  CHECK(r.problems.empty());
  REQUIRE(r.allocations.size() == 4);
  auto find = [&](const char* cid) -> const ImportedAllocation& {
    for (const auto& a : r.allocations) {
      if (a.container_id == cid) {
        return a;
      }
    }
    FAIL("no allocation of " << cid);
    return r.allocations.front();
  };
  CHECK(find("c1").ip.to_string() == "192.168.0.1");
  CHECK(find("c1").pod_ref == "default/mpi-0");
  CHECK(find("c1").ifname == "net1");
  CHECK(find("c1").pool_range == "192.168.0.0/24");
  CHECK(find("c2").ip.to_string() == "192.168.0.17");
  CHECK(find("c2").ifname.empty());  // records older than whereabouts' ifname field
  CHECK(find("c3").ip.to_string() == "fd00:1::1:0:5");                // 2^32 + 5
  CHECK(find("c4").ip.to_string() == "fd00:1::ffff:ffff:ffff:ffff");  // 2^64 - 1: whereabouts'
                                                                      // int64 drops it
  CHECK_THAT(find("c3").source,
             Catch::Contains("kube-system/jarvice-fd00-1---64") && Catch::Contains("4294967301"));
}

TEST_CASE("a single IPPool object is accepted as well as a List") {
  const WhereaboutsRecords r = must(R"({"kind": "IPPool", "metadata": {"name": "10.1.0.0-16"},
      "spec": {"range": "10.1.0.0/16", "allocations": {"256": {"id": "x", "podref": "a/b"}}}})");
  REQUIRE(r.allocations.size() == 1);
  CHECK(r.allocations[0].ip.to_string() == "10.1.1.0");
}

TEST_CASE("malformed allocations are reported and skipped, the rest decoded") {
  const WhereaboutsRecords r = must(R"({"kind": "IPPoolList", "items": [
    {"kind": "IPPool", "metadata": {"name": "p"}, "spec": {"range": "10.0.0.0/24", "allocations": {
       "-1": {"id": "neg"}, "0x10": {"id": "hex"}, "256": {"id": "outside"},
       "3": {"id": 7}, "4": "not-an-object", "5": {"id": "ok", "podref": "ns/p", "ifname": "net1"},
       "340282366920938463463374607431768211456": {"id": "over128"}}}},
    {"kind": "IPPool", "metadata": {"name": "nospec"}},
    {"kind": "IPPool", "metadata": {"name": "badrange"}, "spec": {"range": "10.0.0.0/33"}},
    {"kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "x"}},
    17
  ]})");
  REQUIRE(r.allocations.size() == 1);
  CHECK(r.allocations[0].container_id == "ok");
  CHECK(r.allocations[0].ip.to_string() == "10.0.0.5");
  CHECK(has_problem(r, "offset -1: the key is not a decimal offset"));
  CHECK(has_problem(r, "offset 0x10: the key is not a decimal offset"));
  CHECK(has_problem(r, "offset 256: 10.0.1.0 is outside spec.range"));
  CHECK(has_problem(r, "offset 3: not an object"));
  CHECK(has_problem(r, "offset 4: not an object"));
  CHECK(has_problem(r, "340282366920938463463374607431768211456: the key is not a decimal"));
  CHECK(has_problem(r, "IPPool nospec: no spec object"));
  CHECK(has_problem(r, "\"10.0.0.0/33\" is not a CIDR"));
  CHECK(has_problem(r, "a ConfigMap object x/cm"));
  CHECK(has_problem(r, "not an object with a string kind"));
  CHECK(r.problems.size() == 10);
}

TEST_CASE("IPv4 offsets that would wrap past 255.255.255.255 are refused") {
  const WhereaboutsRecords r = must(R"({"kind": "IPPool", "metadata": {"name": "p"},
      "spec": {"range": "255.255.255.0/24", "allocations": {"4294967295": {"id": "w"}}}})");
  CHECK(r.allocations.empty());
  CHECK(has_problem(r, "beyond the last address"));
}

TEST_CASE("overlapping-range reservations: named by the IP, network_name prefix, IPv6 dashes") {
  const WhereaboutsRecords r = must(R"({"kind": "List", "items": [
    {"kind": "OverlappingRangeIPReservation", "metadata": {"name": "jarvice-ipoib-192.168.0.10"},
     "spec": {"containerid": "c10", "podref": "default/p10", "ifname": "net1"}},
    {"kind": "OverlappingRangeIPReservation", "metadata": {"name": "jarvice-ipoib-fd00--a"},
     "spec": {"containerid": "c11", "podref": "default/p11"}},
    {"kind": "OverlappingRangeIPReservation", "metadata": {"name": "jarvice-ipoib-fd00--0"},
     "spec": {"containerid": "c12", "podref": "default/p12"}},
    {"kind": "OverlappingRangeIPReservation", "metadata": {"name": "192.168.0.9"},
     "spec": {"containerid": "c9"}},
    {"kind": "OverlappingRangeIPReservation", "metadata": {"name": "other-net-10.0.0.1"},
     "spec": {"containerid": "c13"}},
    {"kind": "OverlappingRangeIPReservation", "metadata": {"name": "jarvice-ipoib-10.0.0.2"},
     "spec": []}
  ]})",
                                    "jarvice-ipoib");
  REQUIRE(r.allocations.size() == 3);
  CHECK(r.allocations[0].ip.to_string() == "192.168.0.10");
  CHECK(r.allocations[0].container_id == "c10");
  CHECK(r.allocations[0].ifname == "net1");
  CHECK(r.allocations[0].pool_range.empty());
  CHECK(r.allocations[0].object_name == "jarvice-ipoib-192.168.0.10");
  CHECK(r.allocations[1].ip.to_string() == "fd00::a");
  CHECK(r.allocations[2].ip.to_string() == "fd00::");  // whereabouts wrote "fd00::" as "fd00--0"
  // Another network's (or the unnamed network's) reservations are not this network's.
  CHECK(has_problem(r, "\"192.168.0.9\" does not start with the network_name"));
  CHECK(has_problem(r, "\"other-net-10.0.0.1\" does not start with the network_name"));
  CHECK(has_problem(r, "jarvice-ipoib-10.0.0.2: spec is not an object"));

  const WhereaboutsRecords unnamed = must(R"({"kind": "OverlappingRangeIPReservation",
      "metadata": {"name": "192.168.0.9"}, "spec": {"containerid": "c9", "podref": "a/b"}})");
  REQUIRE(unnamed.allocations.size() == 1);
  CHECK(unnamed.allocations[0].ip.to_string() == "192.168.0.9");
}

TEST_CASE("pool names as whereabouts makes them") {
  CHECK(whereabouts_pool_name("192.168.0.0/24", "") == "192.168.0.0-24");
  CHECK(whereabouts_pool_name("fd00:1::/64", "jarvice") == "jarvice-fd00-1---64");
  CHECK(whereabouts_pool_name("fd00::", "") == "fd00--0");
}

TEST_CASE("documents that are not whereabouts records are errors naming the file") {
  for (const char* text : {"", "[1,2]", "{\"kind\": \"Pod\"}", "{\"kind\": \"List\"}", "{",
                           "{\"kind\": \"List\", \"items\": {}}"}) {
    auto r = decode_whereabouts(text, "pools.json", "");
    INFO(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kDecodeFailure);
    CHECK_THAT(r.error().msg(), Catch::StartsWith("pools.json"));
  }
}
