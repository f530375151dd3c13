// `ipoib ipam import` end to end through admin_run: real files, a real local store.
#include "ipoib/ipam/import.h"

#include <catch2/catch.hpp>

#include "ipoib/ipam/admin.h"
#include "test_support.h"

using namespace ipoib;
using namespace ipoib::ipam;
using ipam_test::admin;
using ipam_test::AdminRun;
using ipam_test::TempDir;
using ipam_test::write_file;

namespace {

std::string netconf(const std::string& store, const std::string& network_name = "") {
  return R"({"cniVersion": "0.3.1", "name": "jarvice-ipoib", "plugins": [
      {"type": "ipoib", "master": "ib0", "ipam": {"type": "whereabouts",
       "ipRanges": [{"range": "192.168.0.0/24"}, {"range": "fd00:1::/64"}],
       "store_dir": ")" +
         store + R"(")" +
         (network_name.empty() ? "" : R"(, "network_name": ")" + network_name + "\"") + "}}]}";
}

const char* kPools = R"({"apiVersion": "v1", "kind": "List", "items": [
  {"kind": "IPPool", "metadata": {"name": "192.168.0.0-24", "namespace": "kube-system"},
   "spec": {"range": "192.168.0.0/24", "allocations": {
     "1": {"id": "c1", "podref": "default/mpi-0", "ifname": "net1"},
     "2": {"id": "c2", "podref": "default/mpi-1"},
     "7": {"id": "bad id with spaces", "podref": "default/mpi-7", "ifname": "net1"},
     "x": {"id": "c3"}}}},
  {"kind": "IPPool", "metadata": {"name": "fd00-1---64", "namespace": "kube-system"},
   "spec": {"range": "fd00:1::/64", "allocations": {
     "4294967301": {"id": "c4", "podref": "hpc/rank-4", "ifname": "net1"}}}},
  {"kind": "IPPool", "metadata": {"name": "10.5.0.0-16", "namespace": "kube-system"},
   "spec": {"range": "10.5.0.0/16", "allocations": {"3": {"id": "c5", "podref": "x/y"}}}},
  {"kind": "IPPool", "metadata": {"name": "other-192.168.0.0-24", "namespace": "kube-system"},
   "spec": {"range": "192.168.0.0/24", "allocations": {"9": {"id": "c9", "podref": "x/z"}}}}
]})";

const char* kReservations = R"({"kind": "List", "items": [
  {"kind": "OverlappingRangeIPReservation", "metadata": {"name": "192.168.0.1"},
   "spec": {"containerid": "c1", "podref": "default/mpi-0", "ifname": "net1"}},
  {"kind": "OverlappingRangeIPReservation", "metadata": {"name": "192.168.0.20"},
   "spec": {"containerid": "c20", "podref": "default/mpi-20", "ifname": "net1"}}
]})";

}  // namespace

TEST_CASE("import: this network's allocations are reserved once; reruns are idempotent") {
  TempDir tmp;
  const std::string store = tmp.path() + "/store";
  write_file(tmp.path() + "/net.conflist", netconf(store));
  write_file(tmp.path() + "/pools.json", kPools);
  write_file(tmp.path() + "/res.json", kReservations);
  const std::vector<std::string> args = {"import",
                                         "--whereabouts",
                                         tmp.path() + "/pools.json",
                                         "--whereabouts",
                                         tmp.path() + "/res.json",
                                         "--config",
                                         tmp.path() + "/net.conflist"};

  // --dry-run first: says what it would write and creates nothing.
  std::vector<std::string> dry = args;
  dry.push_back("--dry-run");
  const AdminRun d = admin(dry);
  CHECK_THAT(d.out, Catch::Contains("would reserve 192.168.0.1 ") &&
                        Catch::Contains("dry run: 5 to reserve, 0 already present"));
  CHECK(::access(store.c_str(), F_OK) != 0);

  const AdminRun first = admin(args);
  INFO(first.out << first.err);
  // The malformed offset "x" makes the exit status 1; everything else is written.
  CHECK(first.rc == 1);
  CHECK_THAT(first.err, Catch::Contains("malformed:") && Catch::Contains("offset x"));
  CHECK_THAT(first.out, Catch::Contains("5 reserved, 0 already present, 0 conflicting"));
  CHECK_THAT(first.out, Catch::Contains("skip 10.5.0.3") && Catch::Contains("not a range of"));
  CHECK_THAT(first.out, Catch::Contains("skip 192.168.0.9") &&
                            Catch::Contains("pool of another network_name"));
  // An unusable container ID is stored under a marker, never dropped (the address stays taken).
  CHECK_THAT(first.err, Catch::Contains("stored as \"whereabouts-import\""));

  const AdminRun list = admin({"list", "--store-dir", store});
  REQUIRE(list.rc == 0);
  CHECK_THAT(list.out, Catch::Contains("192.168.0.1 ") && Catch::Contains("default/mpi-0"));
  CHECK_THAT(list.out, Catch::Contains("192.168.0.2 ") && Catch::Contains("default/mpi-1"));
  CHECK_THAT(list.out, Catch::Contains("192.168.0.20") && Catch::Contains("default/mpi-20"));
  CHECK_THAT(list.out, Catch::Contains("fd00:1::1:0:5") && Catch::Contains("hpc/rank-4"));
  CHECK_THAT(list.out, !Catch::Contains("10.5.0.3") && !Catch::Contains("192.168.0.9 "));

  const AdminRun again = admin(args);
  CHECK_THAT(again.out, Catch::Contains("0 reserved, 5 already present, 0 conflicting"));

  // A record without ifname got the default (net1): the pod's DEL (c2, net1) releases it.
  const AdminRun rel =
      admin({"release", "--container", "c2", "--ifname", "net1", "--store-dir", store});
  CHECK(rel.rc == 0);
  CHECK_THAT(rel.out, Catch::Contains("released 192.168.0.2"));
}

TEST_CASE("import: an address held by another attachment is a conflict, never overwritten") {
  TempDir tmp;
  const std::string store = tmp.path() + "/store";
  write_file(tmp.path() + "/net.conflist", netconf(store));
  write_file(tmp.path() + "/a.json", R"({"kind": "IPPool", "metadata": {"name": "192.168.0.0-24"},
      "spec": {"range": "192.168.0.0/24", "allocations": {"5": {"id": "owner", "podref": "a/b",
      "ifname": "net1"}}}})");
  write_file(tmp.path() + "/b.json", R"({"kind": "IPPool", "metadata": {"name": "192.168.0.0-24"},
      "spec": {"range": "192.168.0.0/24", "allocations": {"5": {"id": "intruder", "podref": "c/d",
      "ifname": "net1"}, "6": {"id": "owner", "podref": "a/b", "ifname": "net1"}}}})");
  const std::string conf = tmp.path() + "/net.conflist";
  REQUIRE(admin({"import", "--whereabouts", tmp.path() + "/a.json", "--config", conf}).rc == 0);
  const AdminRun second =
      admin({"import", "--whereabouts", tmp.path() + "/b.json", "--config", conf});
  CHECK(second.rc == 1);
  CHECK_THAT(second.err, Catch::Contains("conflict 192.168.0.5: held by container owner") &&
                             Catch::Contains("not overwritten"));
  // The same attachment cannot get a second address in one range either.
  CHECK_THAT(second.err, Catch::Contains("conflict 192.168.0.6: container owner") &&
                             Catch::Contains("already holds 192.168.0.5"));
  const AdminRun list = admin({"list", "--json", "--store-dir", store});
  CHECK_THAT(list.out, Catch::Contains("\"owner\"") && !Catch::Contains("intruder"));

  // Two input records disagreeing about one address: reported, neither chosen silently.
  const AdminRun both = admin({"import", "--whereabouts", tmp.path() + "/a.json", "--whereabouts",
                               tmp.path() + "/b.json", "--config", conf, "--dry-run"});
  CHECK(both.rc == 1);
  CHECK_THAT(both.err, Catch::Contains("conflict 192.168.0.5: ") && Catch::Contains("intruder"));
}

TEST_CASE("import: network_name prefixes select this network's pools and reservations") {
  TempDir tmp;
  const std::string store = tmp.path() + "/store";
  write_file(tmp.path() + "/net.conf", R"({"cniVersion": "0.3.1", "name": "n", "type": "ipoib",
      "ipam": {"type": "whereabouts", "range": "192.168.0.0/24", "network_name": "blue",
      "store_dir": ")" + store + R"("}})");
  write_file(tmp.path() + "/in.json", R"({"kind": "List", "items": [
    {"kind": "IPPool", "metadata": {"name": "blue-192.168.0.0-24"},
     "spec": {"range": "192.168.0.0/24", "allocations": {"3": {"id": "b3", "ifname": "net1"}}}},
    {"kind": "IPPool", "metadata": {"name": "192.168.0.0-24"},
     "spec": {"range": "192.168.0.0/24", "allocations": {"4": {"id": "u4", "ifname": "net1"}}}},
    {"kind": "OverlappingRangeIPReservation", "metadata": {"name": "blue-192.168.0.8"},
     "spec": {"containerid": "b8", "podref": "p/q", "ifname": "net1"}}]})");
  const AdminRun r = admin(
      {"import", "--whereabouts", tmp.path() + "/in.json", "--config", tmp.path() + "/net.conf"});
  INFO(r.out << r.err);
  CHECK(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("reserve 192.168.0.3") &&
                        Catch::Contains("reserve 192.168.0.8") &&
                        Catch::Contains("skip 192.168.0.4"));
  CHECK_THAT(r.out, Catch::Contains("pool-blue"));
}

TEST_CASE("import: usage and unreadable inputs are clear errors") {
  TempDir tmp;
  CHECK(admin({"import"}).rc == 2);
  CHECK(admin({"import", "--config", "x"}).rc == 2);
  const AdminRun missing = admin({"import", "--whereabouts", tmp.path() + "/nope.json", "--config",
                                  tmp.path() + "/nope.conf"});
  CHECK(missing.rc == 1);
  CHECK_THAT(missing.err, Catch::Contains("nope.conf"));
  write_file(tmp.path() + "/host-local.conf",
             R"({"name": "n", "type": "ipoib", "ipam": {"type": "host-local"}})");
  const AdminRun foreign = admin({"import", "--whereabouts", tmp.path() + "/nope.json", "--config",
                                  tmp.path() + "/host-local.conf"});
  CHECK(foreign.rc == 1);
  CHECK_THAT(foreign.err, Catch::Contains("no plugin with a built-in IPAM"));
}
