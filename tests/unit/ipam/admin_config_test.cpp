// `ipoib ipam list|release --config NETCONF` and `--node`: the store the network's IPAM names,
// read by the one reader import uses (read_netconf_ipam); here a local store (the cluster store
// is driven the same way in tests/etcd/admin_test.py).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <sstream>

#include "ipoib/ipam/admin.h"
#include "ipoib/ipam/pool_store.h"
#include "test_support.h"

using namespace ipoib;
using namespace ipoib::ipam;
using ipam_test::admin;
using ipam_test::AdminRun;
using ipam_test::TempDir;
using ipam_test::write_file;

namespace {

std::string conflist(const std::string& store) {
  return R"({"cniVersion": "1.0.0", "name": "ib", "plugins": [
      {"type": "ipoib", "master": "ib0", "ipam": {"type": "whereabouts",
       "range": "10.9.0.0/29", "network_name": "blue", "store_dir": ")" +
         store + R"("}}, {"type": "tuning"}]})";
}

// A NetworkAttachmentDefinition document in YAML whose spec.config is `config` as a block scalar.
std::string nad_yaml(const std::string& name, const std::string& config) {
  std::string out =
      "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
      "metadata:\n  name: " +
      name + "\nspec:\n  config: |\n";
  std::istringstream lines(config);
  for (std::string line; std::getline(lines, line);) {
    out += "    " + line + "\n";
  }
  return out;
}

// Three reservations of pool "blue", made by node-a (two) and node-b (one).
void seed(const std::string& store) {
  StoreLocation loc;
  loc.store_dir = store;
  loc.network_name = "blue";
  auto opened = open_ipam_store(loc, OpenMode::kCreate);
  REQUIRE(opened.ok());
  auto range = parse_range({.range = "10.9.0.0/29"});
  REQUIRE(range.ok());
  auto done = (*opened)->pool("blue")->transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
    IPOIB_TRY(txn.use_range("10.9.0.0/29", *range));
    const char* nodes[] = {"node-a", "node-b", "node-a"};
    for (int i = 0; i < 3; ++i) {
      Reservation r;
      r.ip = *IpAddress::parse("10.9.0." + std::to_string(i + 1));
      r.range_key = "10.9.0.0/29";
      r.cni_network = "ib";
      r.container_id = "c" + std::to_string(i + 1);
      r.ifname = "net1";
      r.pod_ref = "ns/pod-" + std::to_string(i + 1);
      r.node = nodes[i];
      IPOIB_TRY(txn.reserve(r));
    }
    return ok_status();
  });
  REQUIRE(done.ok());
}

std::vector<std::string> listed_ips(const nlohmann::json& doc) {
  std::vector<std::string> ips;
  for (const auto& p : doc["pools"]) {
    for (const auto& r : p["reservations"]) {
      ips.push_back(r["ip"].get<std::string>() + "@" + r["node"].get<std::string>());
    }
  }
  return ips;
}

}  // namespace

TEST_CASE("list --config opens the store NETCONF's IPAM names; --node filters by node") {
  TempDir tmp;
  const std::string store = tmp.path() + "/store";
  seed(store);
  const std::string conf = tmp.path() + "/10-ib.conflist";
  write_file(conf, conflist(store));

  AdminRun r = admin({"list", "--json", "--config", conf});
  REQUIRE(r.rc == 0);
  auto doc = nlohmann::json::parse(r.out);
  CHECK(doc["datastore"] == "local");
  CHECK(doc["store_dir"] == store);
  CHECK(listed_ips(doc) ==
        std::vector<std::string>{"10.9.0.1@node-a", "10.9.0.2@node-b", "10.9.0.3@node-a"});
  CHECK(doc["pools"][0]["reservations"][1]["pod"] == "ns/pod-2");

  r = admin({"list", "--json", "--config", conf, "--node", "node-a"});
  REQUIRE(r.rc == 0);
  doc = nlohmann::json::parse(r.out);
  CHECK(listed_ips(doc) == std::vector<std::string>{"10.9.0.1@node-a", "10.9.0.3@node-a"});
  CHECK(doc["pools"][0]["ranges"][0]["reserved"] == 3);  // the pool's counts, not the filter's

  r = admin({"list", "--config", conf, "--node", "node-b"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("10.9.0.2") && Catch::Contains("node-b") &&
                        !Catch::Contains(" c1 ") && Catch::Contains("pool blue"));

  // A NetworkAttachmentDefinition as kubectl prints it in JSON: its spec.config is the network.
  const std::string nad = tmp.path() + "/nad.json";
  write_file(nad, nlohmann::json{{"apiVersion", "k8s.cni.cncf.io/v1"},
                                 {"kind", "NetworkAttachmentDefinition"},
                                 {"metadata", {{"name", "ib"}}},
                                 {"spec", {{"config", conflist(store)}}}}
                      .dump());
  r = admin({"list", "--json", "--config", nad, "--network", "blue"});
  REQUIRE(r.rc == 0);
  CHECK(listed_ips(nlohmann::json::parse(r.out)).size() == 3);
  r = admin({"list", "--json", "--config", nad, "--network", "red"});
  REQUIRE(r.rc == 0);
  CHECK(listed_ips(nlohmann::json::parse(r.out)).empty());

  // The same NetworkAttachmentDefinition in YAML, as `kubectl get -o yaml` or a manifest has it
  // (validate-config's reader: spec.config as a block scalar here).
  const std::string yaml = tmp.path() + "/nad.yaml";
  write_file(yaml, nad_yaml("ib", conflist(store)));
  r = admin({"list", "--json", "--config", yaml});
  REQUIRE(r.rc == 0);
  CHECK(listed_ips(nlohmann::json::parse(r.out)).size() == 3);
  r = admin({"release", "--config", yaml, "--ip", "10.9.0.3"});
  CHECK(r.rc == 0);
  r = admin({"list", "--json", "--config", yaml});
  REQUIRE(r.rc == 0);
  CHECK(listed_ips(nlohmann::json::parse(r.out)) ==
        std::vector<std::string>{"10.9.0.1@node-a", "10.9.0.2@node-b"});
}

TEST_CASE("--config refuses a file of several NetworkAttachmentDefinitions, naming them") {
  TempDir tmp;
  const std::string store = tmp.path() + "/store";
  seed(store);
  const std::string other = tmp.path() + "/other";
  const std::string yaml = tmp.path() + "/nads.yaml";
  // Two networks, two stores: which one `release` would touch must not depend on their order.
  std::string second = conflist(other);
  second.replace(second.find(R"("name": "ib")"), 12, R"("name": "ib2")");
  write_file(yaml, nad_yaml("ib", conflist(store)) + "---\n" + nad_yaml("ib2", second));
  for (const char* verb : {"list", "release"}) {
    std::vector<std::string> args{verb, "--config", yaml};
    if (std::string(verb) == "release") {
      args.insert(args.end(), {"--node", "node-a"});
    }
    const AdminRun r = admin(args);
    CHECK(r.rc == 1);
    CHECK_THAT(r.err, Catch::Contains("nads.yaml") &&
                          Catch::Contains("2 NetworkAttachmentDefinitions") &&
                          Catch::Contains("document 1 spec.config (ib)") &&
                          Catch::Contains("document 2 spec.config (ib2)"));
  }
  CHECK(::access(other.c_str(), F_OK) != 0);
  const AdminRun kept = admin({"list", "--json", "--store-dir", store});
  REQUIRE(kept.rc == 0);
  CHECK(listed_ips(nlohmann::json::parse(kept.out)).size() == 3);  // release freed nothing
}

TEST_CASE("release --config frees with DEL's operation; --node narrows or names a whole node") {
  TempDir tmp;
  const std::string store = tmp.path() + "/store";
  seed(store);
  const std::string conf = tmp.path() + "/10-ib.conflist";
  write_file(conf, conflist(store));

  // --ip with another node's name matches nothing and frees nothing.
  AdminRun r = admin({"release", "--config", conf, "--ip", "10.9.0.2", "--node", "node-a"});
  CHECK(r.rc == 1);
  CHECK_THAT(r.err, Catch::Contains("no reservation matched"));
  r = admin({"release", "--config", conf, "--ip", "10.9.0.2", "--node", "node-b"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("released 10.9.0.2 (container c2, ifname net1, node node-b) "
                                    "from pool blue"));
  // Everything node-a reserved (a node removed from the cluster).
  r = admin({"release", "--config", conf, "--node", "node-a"});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("released 10.9.0.1") && Catch::Contains("released 10.9.0.3"));
  r = admin({"list", "--json", "--store-dir", store});  // --store-dir still opens the same store
  REQUIRE(r.rc == 0);
  CHECK(listed_ips(nlohmann::json::parse(r.out)).empty());
}

TEST_CASE("--config: usage and unreadable networks are clear errors; nothing is created") {
  TempDir tmp;
  const std::string store = tmp.path() + "/store";
  const std::string conf = tmp.path() + "/10-ib.conflist";
  write_file(conf, conflist(store));

  CHECK(admin({"list", "--config", conf, "--store-dir", store}).rc == 2);
  CHECK(admin({"list", "--config"}).rc == 2);
  CHECK(admin({"list", "--config", ""}).rc == 2);
  CHECK(admin({"list", "--node", ""}).rc == 2);
  CHECK(admin({"release", "--config", conf}).rc == 2);  // no filter at all
  CHECK(admin({"release", "--config", conf, "--ifname", "net1", "--node", "n"}).rc == 2);

  AdminRun r = admin({"list", "--config", conf});  // no store yet: empty, and nothing created
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("no pools in " + store));
  CHECK(::access(store.c_str(), F_OK) != 0);
  r = admin({"release", "--config", conf, "--node", "node-a"});
  CHECK(r.rc == 1);
  CHECK(::access(store.c_str(), F_OK) != 0);

  r = admin({"list", "--config", tmp.path() + "/missing.conflist"});
  CHECK(r.rc == 1);
  CHECK_THAT(r.err, Catch::Contains("missing.conflist"));

  write_file(tmp.path() + "/host-local.conf",
             R"({"cniVersion": "1.0.0", "name": "x", "type": "ipoib", "master": "ib0",
                 "ipam": {"type": "host-local"}})");
  r = admin({"list", "--config", tmp.path() + "/host-local.conf"});
  CHECK(r.rc == 1);
  CHECK_THAT(r.err, Catch::Contains("no plugin with a built-in IPAM"));

  // A YAML NAD is read; what its spec.config lacks is named with where it stands.
  write_file(tmp.path() + "/nad.yaml",
             "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
             "spec:\n  config: '{}'\n");
  r = admin({"list", "--config", tmp.path() + "/nad.yaml"});
  CHECK(r.rc == 1);
  CHECK_THAT(r.err, Catch::Contains("nad.yaml spec.config") &&
                        Catch::Contains("no plugin with a built-in IPAM"));
  write_file(tmp.path() + "/no-config.yaml",
             "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
             "spec:\n  other: 1\n");
  r = admin({"list", "--config", tmp.path() + "/no-config.yaml"});
  CHECK(r.rc == 1);
  CHECK_THAT(r.err, Catch::Contains("no-config.yaml") && Catch::Contains("no spec.config"));
  write_file(tmp.path() + "/broken.conf", R"({"cniVersion": "1.0.0", "name": )");
  r = admin({"list", "--config", tmp.path() + "/broken.conf"});
  CHECK(r.rc == 1);
  CHECK_THAT(r.err, Catch::Contains("broken.conf") && Catch::Contains("invalid JSON"));

  write_file(tmp.path() + "/bad-store.conf",
             R"({"cniVersion": "1.0.0", "name": "x", "type": "ipoib", "master": "ib0",
                 "ipam": {"type": "whereabouts", "range": "10.0.0.0/24",
                          "store_dir": "relative/dir"}})");
  r = admin({"list", "--config", tmp.path() + "/bad-store.conf"});
  CHECK(r.rc == 1);
  CHECK_THAT(r.err, Catch::Contains("store_dir") && Catch::Contains("bad-store.conf"));
}
