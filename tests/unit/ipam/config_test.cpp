#include "ipoib/ipam/config.h"

#include <catch2/catch.hpp>
#include <map>

#include "test_support.h"

using namespace ipoib;
using namespace ipoib::ipam;
using ipam_test::TempDir;
using nlohmann::json;

namespace {

ConfigSources no_flat_files() { return ConfigSources{{}}; }

IpamConfig must(const json& j, const ConfigSources& src = no_flat_files()) {
  auto c = load_ipam_config(j, src);
  INFO((c ? std::string() : c.error().msg()));
  REQUIRE(c.ok());
  return *c;
}

std::string err_of(const json& j, const ConfigSources& src = no_flat_files()) {
  auto c = load_ipam_config(j, src);
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code() == ErrorCode::kInvalidNetworkConfig);
  return c.error().msg();
}

}  // namespace

TEST_CASE("the seed's minimal config") {
  const IpamConfig c = must({{"type", "whereabouts"}, {"range", "192.168.0.0/24"}});
  REQUIRE(c.ranges.size() == 1);
  CHECK(c.range_keys[0] == "192.168.0.0/24");
  CHECK(c.location.store_dir == "/var/lib/cni/ipoib-ipam");
  CHECK(c.location.network_name.empty());
  CHECK(c.location.lock_timeout_ms == kDefaultLockTimeoutMs);
  CHECK(c.allocation == AllocationPolicy::kLowestFree);
  CHECK(c.enable_overlapping_ranges);
}

TEST_CASE("every whereabouts key is read") {
  const json j = json::parse(R"({
    "type": "whereabouts", "range": "10.0.0.0/24", "range_start": "10.0.0.10",
    "range_end": "10.0.0.100", "exclude": ["10.0.0.16/28", "10.0.0.50"], "gateway": "10.0.0.1",
    "ipRanges": [{"range": "fd00::/64", "exclude": ["fd00::5"]}, {"range": "10.0.0.0/24"}],
    "network_name": "blue", "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "fd01::/64"}],
    "dns": {"nameservers": ["10.0.0.2"], "domain": "d", "search": ["s"], "options": ["o"]},
    "addresses": [{"address": "10.9.0.1/24", "gateway": "10.9.0.254"}],
    "enable_overlapping_ranges": false, "log_file": "/tmp/x.log", "log_level": "verbose",
    "store_dir": "/tmp/st", "allocation": "round-robin", "lock_timeout_ms": 250,
    "kubernetes": {"kubeconfig": "/k"}, "datastore": "kubernetes", "etcd_host": "h",
    "leader_lease_duration": 1500, "sleep_for_race": 1, "reconciler_cron_expression": "* * * * *"
  })");
  const IpamConfig c = must(j);
  REQUIRE(c.ranges.size() == 3);
  CHECK(c.range_keys == std::vector<std::string>{"10.0.0.0/24", "fd00::/64", "10.0.0.0/24#1"});
  CHECK(c.ranges[0].first.to_string() == "10.0.0.10");
  CHECK_FALSE(c.ranges[0].contains(*IpAddress::parse("10.0.0.20")));
  CHECK_FALSE(c.ranges[0].contains(*IpAddress::parse("10.0.0.50")));
  CHECK_FALSE(c.ranges[2].contains(*IpAddress::parse("10.0.0.1")));  // gateway
  CHECK(c.ranges[1].family() == IpFamily::kV6);
  CHECK(c.location.network_name == "blue");
  CHECK(c.location.store_dir == "/tmp/st");
  CHECK(c.location.lock_timeout_ms == 250);
  CHECK(c.allocation == AllocationPolicy::kRoundRobin);
  CHECK(c.routes.size() == 2);
  CHECK(c.routes[0].gw->to_string() == "10.0.0.1");
  CHECK(c.dns.nameservers == std::vector<std::string>{"10.0.0.2"});
  CHECK(c.dns.domain == "d");
  REQUIRE(c.addresses.size() == 1);
  CHECK(c.addresses[0].address.to_string() == "10.9.0.1/24");
  CHECK_FALSE(c.enable_overlapping_ranges);
  CHECK(c.log_level == LogLevel::kInfo);
  CHECK(c.log_file == "/tmp/x.log");
  std::string notes;
  for (const auto& n : c.notes) notes += n + "\n";
  for (const char* k : {"kubernetes", "datastore", "etcd_host", "leader_lease_duration",
                        "sleep_for_race", "reconciler_cron_expression"}) {
    CHECK_THAT(notes, Catch::Contains(std::string("\"") + k + "\""));
  }
}

TEST_CASE("validation names the key") {
  CHECK_THAT(err_of({{"range_start", "10.0.0.1"}}), Catch::Contains("range_start"));
  CHECK_THAT(err_of(json::object()), Catch::Contains("range"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"exclude", {"x"}}}), Catch::Contains("exclude[0]"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"exclude", "10.0.0.1"}}),
             Catch::Contains("exclude"));
  CHECK_THAT(err_of({{"ipRanges", {{{"range", "10.0.0.0/24"}}, {{"range", "bad"}}}}}),
             Catch::Contains("ipRanges[1].range"));
  CHECK_THAT(err_of({{"ipRanges", {{{"range", "10.0.0.0/24"}, {"range_end", "10.0.1.1"}}}}}),
             Catch::Contains("ipRanges[0].range_end"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"gateway", "nope"}}), Catch::Contains("gateway"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"network_name", "../x"}}),
             Catch::Contains("network_name"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"store_dir", "rel/dir"}}),
             Catch::Contains("store_dir"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"store_dir", "/a/../b"}}),
             Catch::Contains("store_dir"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"allocation", "random"}}),
             Catch::Contains("allocation"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"lock_timeout_ms", 0}}),
             Catch::Contains("lock_timeout_ms"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"node_name", "a b"}}),
             Catch::Contains("node_name"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"routes", {{{"dst", "x"}}}}}),
             Catch::Contains("routes[0].dst"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"addresses", {{{"address", "10.0.0.1"}}}}}),
             Catch::Contains("addresses[0].address"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"enable_overlapping_ranges", "yes"}}),
             Catch::Contains("enable_overlapping_ranges"));
  CHECK_THAT(err_of({{"range", 5}}), Catch::Contains("range"));
}

TEST_CASE("datastore etcd: whereabouts' keys, node_slice_size, and what is refused") {
  const json etcd = {{"range", "10.0.0.0/16"},
                     {"datastore", "etcd"},
                     {"etcd_host", "https://10.0.0.1:2379,http://[fd00::1]:2379"},
                     {"etcd_username", "u"},
                     {"etcd_password", "p"},
                     {"etcd_key_file", "/k"},
                     {"etcd_cert_file", "/c"},
                     {"etcd_ca_cert_file", "/ca"}};
  const IpamConfig c = must(etcd);
  CHECK(c.location.datastore == Datastore::kEtcd);
  CHECK(c.location.cluster.etcd.etcd_host == "https://10.0.0.1:2379,http://[fd00::1]:2379");
  CHECK(c.location.cluster.etcd.etcd_username == "u");
  CHECK(c.location.cluster.etcd.etcd_ca_cert_file == "/ca");
  CHECK(c.location.cluster.node_slice_prefix == 0);
  for (const auto& n : c.notes) {
    CHECK_THAT(n, !Catch::Contains("etcd_"));  // every etcd key is used
  }
  json sliced = etcd;
  sliced["node_slice_size"] = "/22";
  CHECK(must(sliced).location.cluster.node_slice_prefix == 22);
  sliced["node_slice_size"] = "24";
  CHECK(must(sliced).location.cluster.node_slice_prefix == 24);
  // DEL and GC read the same location.
  auto loc = load_store_location(sliced, no_flat_files());
  REQUIRE(loc.ok());
  CHECK(loc->datastore == Datastore::kEtcd);
  CHECK(loc->cluster.node_slice_prefix == 24);

  for (const char* bad : {"/16", "/8", "/33", "x", "/"}) {
    sliced["node_slice_size"] = bad;
    CHECK_THAT(err_of(sliced), Catch::Contains("node_slice_size"));
  }
  sliced["node_slice_size"] = "/30";  // 2^14 slices of a /16: fine; a /0 range would not be
  CHECK(must(sliced).location.cluster.node_slice_prefix == 30);
  json huge = sliced;
  huge["range"] = "10.0.0.0/8";
  CHECK_THAT(err_of(huge), Catch::Contains("65536"));

  // Slices need the cluster store; etcd needs endpoints; an unknown datastore is refused.
  CHECK_THAT(err_of({{"range", "10.0.0.0/16"}, {"node_slice_size", "/22"}}),
             Catch::Contains("node_slice_size") && Catch::Contains("etcd"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/16"}, {"datastore", "etcd"}}),
             Catch::Contains("etcd_host"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/16"}, {"datastore", "etcd"}, {"etcd_host", "ftp://x"}}),
             Catch::Contains("etcd_host"));
  CHECK_THAT(err_of({{"range", "10.0.0.0/16"}, {"datastore", "consul"}}),
             Catch::Contains("datastore") && Catch::Contains("consul"));
  // Without datastore etcd the etcd keys are noted as ignored, and the store stays local.
  const IpamConfig local = must({{"range", "10.0.0.0/16"}, {"etcd_host", "http://h:1"}});
  CHECK(local.location.datastore == Datastore::kLocal);
  std::string notes;
  for (const auto& n : local.notes) notes += n;
  CHECK_THAT(notes, Catch::Contains("etcd_host"));
}

TEST_CASE("flat file: configuration_path first, inline wins, missing is fine") {
  TempDir tmp;
  const std::string flat = tmp.path() + "/whereabouts.conf";
  const std::string other = tmp.path() + "/other.conf";
  ipam_test::write_file(flat, R"({"datastore": "kubernetes", "network_name": "fromflat",
                                  "store_dir": "/flat/store", "range": "10.9.0.0/24"})");
  ipam_test::write_file(other, R"({"network_name": "fromother"})");
  ConfigSources src{{tmp.path() + "/missing.conf", flat}};
  // Found through the search list; inline range wins, unset keys come from the file.
  IpamConfig c = must({{"range", "10.0.0.0/24"}}, src);
  CHECK(c.flat_file == flat);
  CHECK(c.location.network_name == "fromflat");
  CHECK(c.location.store_dir == "/flat/store");
  CHECK(c.range_keys[0] == "10.0.0.0/24");
  // configuration_path comes before the search list.
  c = must({{"range", "10.0.0.0/24"}, {"configuration_path", other}}, src);
  CHECK(c.location.network_name == "fromother");
  // Inline network_name wins over the file.
  c = must({{"range", "10.0.0.0/24"}, {"network_name", "inline"}}, src);
  CHECK(c.location.network_name == "inline");
  // Nothing found anywhere: fine.
  c = must({{"range", "10.0.0.0/24"}, {"configuration_path", tmp.path() + "/nope"}},
           ConfigSources{{tmp.path() + "/none"}});
  CHECK(c.flat_file.empty());
  // The flat file may carry the range alone.
  c = must({{"type", "whereabouts"}}, src);
  CHECK(c.range_keys[0] == "10.9.0.0/24");
  // A broken flat file is an error naming it.
  ipam_test::write_file(other, "{not json");
  CHECK_THAT(err_of({{"range", "10.0.0.0/24"}, {"configuration_path", other}}, src),
             Catch::Contains(other));
}

TEST_CASE("store location alone survives an otherwise invalid config") {
  auto loc = load_store_location({{"range", "garbage"}, {"store_dir", "/s"}, {"network_name", "n"}},
                                 no_flat_files());
  REQUIRE(loc.ok());
  CHECK(loc->store_dir == "/s");
  CHECK(loc->network_name == "n");
}

TEST_CASE("an unknown log_level is a warning, not an error") {
  const IpamConfig c = must({{"range", "10.0.0.0/24"}, {"log_level", "loud"}});
  CHECK_FALSE(c.log_level);
  REQUIRE(c.warnings.size() == 1);
  CHECK_THAT(c.warnings[0], Catch::Contains("log_level") && Catch::Contains("loud"));
  CHECK(must({{"range", "10.0.0.0/24"}, {"log_level", "debug"}}).warnings.empty());
}

TEST_CASE("node identity: node_name, else $NODENAME, else the host name") {
  std::map<std::string, std::string> env;
  ConfigSources src{{}};
  src.getenv = [&](std::string_view k) -> std::optional<std::string> {
    const auto it = env.find(std::string(k));
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  src.hostname = [] { return std::string("host-a"); };
  CHECK(resolve_node_name("", src).value() == "host-a");
  env["NODENAME"] = "";  // empty counts as unset
  CHECK(resolve_node_name("", src).value() == "host-a");
  env["NODENAME"] = "node-b";
  CHECK(resolve_node_name("", src).value() == "node-b");
  CHECK(resolve_node_name("cfg-c", src).value() == "cfg-c");
  // Through the config (and the flat-file merge), for ADD and for DEL/GC's location.
  CHECK(must({{"range", "10.0.0.0/24"}}, src).location.node_name == "node-b");
  CHECK(must({{"range", "10.0.0.0/24"}, {"node_name", "cfg-c"}}, src).location.node_name ==
        "cfg-c");
  CHECK(load_store_location({{"node_name", "cfg-c"}}, src).value().node_name == "cfg-c");
  // Unstorable values name their source, with the code saying who must fix it.
  env["NODENAME"] = "bad\nname";
  auto e = resolve_node_name("", src);
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().code() == ErrorCode::kInvalidEnvironment);
  CHECK_THAT(e.error().msg(), Catch::Contains("NODENAME"));
  // DEL's location does not fail on it (DEL needs no node); GC is told why.
  const StoreLocation loc = load_store_location(json::object(), src).value();
  CHECK(loc.node_name.empty());
  CHECK_THAT(loc.node_error, Catch::Contains("NODENAME"));
  auto c = load_ipam_config({{"range", "10.0.0.0/24"}}, src);
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code() == ErrorCode::kInvalidEnvironment);
}
