// doctor.scenarios: whole-node runs of `ipoib doctor` against generated fixture trees. Each
// scenario asserts the specific check's status and that its fix text is there.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ipoib/doctor/doctor.h"
#include "tests/doctor/doctor_test_support.h"
#include "tests/fixtures/fixture_tree.h"

using namespace ipoib;
using doctor::CheckResult;
using doctor::CheckStatus;
using ipoib::testing::build_node;
using ipoib::testing::FixtureTree;
using ipoib::testing::NodeSpec;

namespace {

using doctor_test::find;
using doctor_test::fixture_options;

std::vector<CheckResult> run_node(const NodeSpec& node, doctor::DoctorOptions* tweak = nullptr) {
  FixtureTree tree;
  build_node(tree, node);
  return doctor_test::run_on(tree, tweak != nullptr ? *tweak : doctor::DoctorOptions{});
}

std::string dump(const std::vector<CheckResult>& results) { return doctor::render_table(results); }

}  // namespace

// A shared store_dir named by the flat file: a cluster store as far as a fixture can have one (its
// filesystem is not a shared one, so store.cluster WARNs; doctor.cluster_store has the all-PASS
// cluster node on a real etcd).
constexpr const char* kSharedStoreFlatFile = R"({"store_dir": "/shared/ipoib-ipam"})";

TEST_CASE("a healthy node passes every check", "[doctor]") {
  NodeSpec node;
  node.flat_file = kSharedStoreFlatFile;
  doctor::DoctorOptions options;
  options.master = "ib0";
  options.pkey = 0x8001;
  options.mtu = 2044;
  const auto results = run_node(node, &options);
  INFO(dump(results));
  for (const CheckResult& r : results) {
    if (r.id == "mode.connected" || r.id == "mtu.fits" || r.id == "store.cluster") {
      continue;
    }
    CHECK(r.status == CheckStatus::kPass);
    CHECK(r.fix.empty());
  }
  CHECK(find(results, "store.cluster").status == CheckStatus::kWarn);
  CHECK(find(results, "mtu.fits").status == CheckStatus::kPass);
  CHECK(find(results, "mode.connected").status == CheckStatus::kPass);
  CHECK(find(results, "master.exists").finding == "ib0 exists (ifindex 4)");
  CHECK(find(results, "port.found").finding ==
        "ib0 -> mlx5_0 port 1 (sysfs, 100 Gb/sec (4X EDR), link layer InfiniBand)");
  CHECK(find(results, "pkey.table").finding ==
        "configured pkey 0x8001 is in the pkey table of mlx5_0 port 1 (full member)");
  CHECK(find(results, "memlock.containerd").status == CheckStatus::kPass);
  CHECK(doctor::exit_status(results) == 0);
  // Every documented check ran.
  for (const char* id :
       {"master.exists",   "master.ipoib",    "master.parent", "master.up",
        "module.ib_ipoib", "port.found",      "port.active",   "port.link_up",
        "port.sm",         "pkey.table",      "mtu.fits",      "mode.connected",
        "ipoib.enhanced",  "rdma.netns_mode", "dev.uverbs",    "dev.rdma_cm",
        "children.leaked", "cni.bin_dir",     "cni.conf_dir",  "cni.multus",
        "cni.whereabouts", "store.dir",       "store.cluster", "memlock.containerd"}) {
    CHECK(find(results, id).id == id);
  }
}

TEST_CASE("port down fails port.active and port.link_up with fixes", "[doctor]") {
  NodeSpec node;
  node.port_state = "1: DOWN";
  node.phys_state = "3: Disabled";
  node.operstate = "lowerlayerdown";
  const auto results = run_node(node);
  INFO(dump(results));
  const CheckResult& active = find(results, "port.active");
  CHECK(active.status == CheckStatus::kFail);
  CHECK_THAT(active.finding, Catch::Contains("mlx5_0 port 1 state 1: DOWN, not 4: ACTIVE"));
  CHECK_THAT(active.fix, Catch::Contains("subnet manager"));
  CHECK_THAT(active.fix, Catch::Contains("ibstat mlx5_0 1"));
  const CheckResult& link = find(results, "port.link_up");
  CHECK(link.status == CheckStatus::kFail);
  CHECK_THAT(link.finding, Catch::Contains("3: Disabled"));
  CHECK_THAT(link.fix, Catch::Contains("cable"));
  CHECK(find(results, "master.up").status == CheckStatus::kWarn);
  CHECK(doctor::exit_status(results) == 1);
}

TEST_CASE("a pkey missing from the port table fails pkey.table", "[doctor]") {
  NodeSpec node;
  node.pkeys = {"0xffff", "0x0000"};
  doctor::DoctorOptions options;
  options.pkey = 0x8002;
  const auto results = run_node(node, &options);
  INFO(dump(results));
  const CheckResult& pkey = find(results, "pkey.table");
  CHECK(pkey.status == CheckStatus::kFail);
  CHECK_THAT(pkey.finding, Catch::Contains("configured pkey 0x8002 is not in the pkey table"));
  CHECK_THAT(pkey.finding, Catch::Contains("carrier-down"));
  CHECK_THAT(pkey.fix, Catch::Contains("partitions.conf"));
  CHECK_THAT(pkey.fix, Catch::Contains("0x8002, ipoib : ALL=full;"));
  CHECK(doctor::exit_status(results) == 1);

  // The low 15 bits decide: 0x0002 in the table as a limited member is a WARN, not a FAIL.
  node.pkeys = {"0xffff", "0x0002"};
  const auto limited = run_node(node, &options);
  CHECK(find(limited, "pkey.table").status == CheckStatus::kWarn);
  CHECK_THAT(find(limited, "pkey.table").finding, Catch::Contains("limited member"));
  CHECK_THAT(find(limited, "pkey.table").fix, Catch::Contains("full member"));

  // Without a configured pkey the master's own pkey is checked.
  const auto defaults = run_node(NodeSpec{});
  CHECK(find(defaults, "pkey.table").status == CheckStatus::kPass);
  CHECK_THAT(find(defaults, "pkey.table").finding, Catch::Contains("ib0's pkey 0xffff"));
}

TEST_CASE("no subnet manager fails port.sm", "[doctor]") {
  NodeSpec node;
  node.sm_lid = "0x0";
  node.port_state = "2: INIT";
  const auto results = run_node(node);
  INFO(dump(results));
  const CheckResult& sm = find(results, "port.sm");
  CHECK(sm.status == CheckStatus::kFail);
  CHECK_THAT(sm.finding, Catch::Contains("sm_lid 0"));
  CHECK_THAT(sm.fix, Catch::Contains("opensm"));
  CHECK_THAT(find(results, "port.active").finding, Catch::Contains("INIT means"));
  CHECK(doctor::exit_status(results) == 1);
}

TEST_CASE("a limited containerd memlock fails with the seed's two remedies", "[doctor]") {
  NodeSpec node;
  node.containerd_memlock_soft = "8388608";
  node.containerd_memlock_hard = "8388608";
  node.containerd_unit_limit = "";
  const auto results = run_node(node);
  INFO(dump(results));
  const CheckResult& memlock = find(results, "memlock.containerd");
  CHECK(memlock.status == CheckStatus::kFail);
  CHECK_THAT(memlock.finding,
             Catch::Contains("containerd (pid 812): Max locked memory 8388608 bytes (8 MiB)"));
  CHECK_THAT(memlock.finding, Catch::Contains("containerd.service sets no LimitMEMLOCK"));
  CHECK_THAT(memlock.finding, Catch::Contains("/lib/systemd/system/containerd.service"));
  CHECK_THAT(memlock.fix,
             Catch::Contains("add `LimitMEMLOCK=infinity` under the `[Service]` line"));
  CHECK_THAT(memlock.fix,
             Catch::Contains("systemctl daemon-reload && systemctl restart containerd"));
  CHECK_THAT(memlock.fix, Catch::Contains("scripts/install --fix-memlock"));
  CHECK_THAT(memlock.fix, Catch::Contains("JARVICE_APP_ALLOW_ROOT_INIT"));
  CHECK(doctor::exit_status(results) == 1);
}

TEST_CASE("memlock: unit fixed but process not restarted, drop-ins, docker, not running",
          "[doctor]") {
  SECTION("the unit allows infinity but the running process is limited") {
    NodeSpec node;
    node.containerd_memlock_soft = "65536";
    node.containerd_memlock_hard = "65536";
    const auto results = run_node(node);
    const CheckResult& memlock = find(results, "memlock.containerd");
    CHECK(memlock.status == CheckStatus::kFail);
    CHECK_THAT(memlock.finding, Catch::Contains("started before"));
    CHECK_THAT(memlock.fix,
               Catch::StartsWith("systemctl daemon-reload && systemctl restart containerd"));
  }
  SECTION("a drop-in sets infinity while the process is unlimited") {
    FixtureTree tree;
    NodeSpec node;
    node.containerd_unit_limit = "";
    build_node(tree, node);
    tree.file("etc/systemd/system/containerd.service.d/memlock.conf",
              "[Service]\nLimitMEMLOCK=infinity\n");
    auto options = fixture_options(tree);
    const auto results = doctor::run_checks(options);
    const CheckResult& memlock = find(results, "memlock.containerd");
    CHECK(memlock.status == CheckStatus::kPass);
    CHECK_THAT(memlock.finding, Catch::Contains("LimitMEMLOCK=infinity"));
    CHECK_THAT(memlock.finding,
               Catch::Contains("/etc/systemd/system/containerd.service.d/memlock.conf"));
  }
  SECTION("dockerd with --default-ulimit memlock=-1:-1 passes even when its own limit is low") {
    FixtureTree tree;
    NodeSpec node;
    node.containerd_running = false;
    build_node(tree, node);
    tree.file("proc/900/comm", "dockerd\n");
    tree.file("proc/900/limits", ipoib::testing::proc_limits("65536", "65536"));
    tree.file("proc/900/cmdline", std::string("/usr/bin/dockerd\0-H\0fd://\0", 26));
    tree.file("lib/systemd/system/docker.service",
              "[Service]\nExecStart=/usr/bin/dockerd -H fd:// --default-ulimit memlock=-1:-1\n");
    const auto results = doctor::run_checks(fixture_options(tree));
    CHECK(find(results, "memlock.dockerd").status == CheckStatus::kPass);
    // containerd is installed (unit with infinity) but not running.
    CHECK(find(results, "memlock.containerd").status == CheckStatus::kPass);
    CHECK_THAT(find(results, "memlock.containerd").finding, Catch::Contains("not running"));

    tree.file("lib/systemd/system/docker.service",
              "[Service]\nExecStart=/usr/bin/dockerd -H fd://\n");
    const auto limited = doctor::run_checks(fixture_options(tree));
    const CheckResult& docker = find(limited, "memlock.dockerd");
    CHECK(docker.status == CheckStatus::kFail);
    CHECK_THAT(docker.fix, Catch::Contains("--default-ulimit memlock=-1:-1"));
    CHECK_THAT(docker.fix, Catch::Contains("JARVICE_APP_ALLOW_ROOT_INIT"));
  }
  SECTION("no runtime at all is a SKIP") {
    FixtureTree tree;
    NodeSpec node;
    node.containerd_running = false;
    build_node(tree, node);
    tree.remove("lib/systemd/system/containerd.service");
    const auto results = doctor::run_checks(fixture_options(tree));
    CHECK(find(results, "memlock.runtime").status == CheckStatus::kSkip);
  }
}

TEST_CASE("exclusive RDMA netns mode fails rdma.netns_mode", "[doctor]") {
  NodeSpec node;
  node.netns_mode = "N";
  const auto results = run_node(node);
  INFO(dump(results));
  const CheckResult& netns = find(results, "rdma.netns_mode");
  CHECK(netns.status == CheckStatus::kFail);
  CHECK_THAT(netns.finding, Catch::Contains("exclusive"));
  CHECK_THAT(netns.fix, Catch::Contains("rdma system set netns shared"));
  CHECK_THAT(netns.fix, Catch::Contains("options ib_core netns_mode=1"));
  CHECK(doctor::exit_status(results) == 1);

  node.netns_mode = "";  // old kernels: no parameter, always shared
  CHECK(find(run_node(node), "rdma.netns_mode").status == CheckStatus::kPass);
}

TEST_CASE("leaked and refunded children are reported", "[doctor]") {
  NodeSpec node;
  node.children = {{"dev12", 12, ""},
                   {"net1", 13, "ipoib-cni:0123456789ab:net1"},  // legacy tag
                   {"dev15", 15, "ipoib-cni:jarvice-ipoib:0123456789ab:net2"},
                   {"ib0.8001", 14, ""}};  // an administrator's own child: not reported
  const auto results = run_node(node);
  INFO(dump(results));
  const CheckResult& leaked = find(results, "children.leaked");
  CHECK(leaked.status == CheckStatus::kWarn);
  CHECK_THAT(leaked.finding, Catch::Contains("GC deletes them): dev15 (network jarvice-ipoib, "
                                             "0123456789ab/net2)"));
  CHECK_THAT(leaked.finding, Catch::Contains("legacy tag (no network named; GC never deletes "
                                             "them): net1 (ipoib-cni:0123456789ab:net1)"));
  CHECK_THAT(leaked.finding, Catch::Contains("refunded children"));
  CHECK_THAT(leaked.finding, Catch::Contains("dev12"));
  CHECK_THAT(leaked.finding, !Catch::Contains("ib0.8001"));
  CHECK_THAT(leaked.fix, Catch::Contains("ip link delete"));
  CHECK_THAT(leaked.fix, Catch::Contains("GC"));
  // The children do not confuse master auto-detection.
  CHECK(find(results, "master.exists").status == CheckStatus::kPass);
  CHECK_THAT(find(results, "master.exists").finding, Catch::Contains("auto-detected"));
}

TEST_CASE("master problems: missing, not IPoIB, a child, down", "[doctor]") {
  FixtureTree tree;
  NodeSpec node;
  node.children = {{"ib0.8001", 9, ""}};
  build_node(tree, node);
  auto options = fixture_options(tree);

  options.master = "ib7";
  auto results = doctor::run_checks(options);
  CHECK(find(results, "master.exists").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "master.exists").fix, Catch::Contains("ip -d link show type ipoib"));
  CHECK(find(results, "port.active").status == CheckStatus::kSkip);

  options.master = "lo";
  results = doctor::run_checks(options);
  CHECK(find(results, "master.ipoib").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "master.ipoib").finding, Catch::Contains("not 32"));

  options.master = "ib0.8001";
  results = doctor::run_checks(options);
  CHECK(find(results, "master.parent").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "master.parent").fix, Catch::Contains("\"pkey\""));

  tree.file("sys/class/net/ib0/flags", "0x1002\n");
  options.master = "ib0";
  results = doctor::run_checks(options);
  CHECK(find(results, "master.up").status == CheckStatus::kFail);
  CHECK(find(results, "master.up").fix ==
        "ip link set ib0 up (and make it persistent in the node's network config)");

  tree.remove("sys/module/ib_ipoib");
  results = doctor::run_checks(options);
  CHECK(find(results, "module.ib_ipoib").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "module.ib_ipoib").fix, Catch::Contains("modprobe ib_ipoib"));
}

TEST_CASE("MTU, connected mode and the enhanced-IPoIB caveat", "[doctor]") {
  FixtureTree tree;
  NodeSpec node;
  node.kernel = "5.4.0-150-generic";
  build_node(tree, node);
  auto options = fixture_options(tree);

  auto results = doctor::run_checks(options);
  CHECK(find(results, "mtu.fits").status == CheckStatus::kSkip);
  CHECK_THAT(find(results, "mtu.fits").finding,
             Catch::Contains("port's maximum MTU, not at ib0's 2044"));
  const CheckResult& enhanced = find(results, "ipoib.enhanced");
  CHECK(enhanced.status == CheckStatus::kWarn);
  CHECK_THAT(enhanced.finding, Catch::Contains("same node is dropped"));
  CHECK_THAT(enhanced.fix, Catch::Contains("5.8"));

  options.mode = "connected";
  options.mtu = 9000;
  results = doctor::run_checks(options);
  CHECK(find(results, "mode.connected").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "mode.connected").fix, Catch::Contains("ipoib_enhanced=0"));
  CHECK(find(results, "mtu.fits").status == CheckStatus::kPass);

  options.mode = "datagram";
  results = doctor::run_checks(options);
  CHECK(find(results, "mtu.fits").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "mtu.fits").fix, Catch::Contains("72..4092"));

  options.mtu = 4092;  // fits the port, above ib0's 2044: clamped by the kernel
  results = doctor::run_checks(options);
  CHECK(find(results, "mtu.fits").status == CheckStatus::kWarn);

  tree.file("sys/module/ib_ipoib/parameters/ipoib_enhanced", "0\n");
  options.mode = "connected";
  options.mtu = 65520;
  results = doctor::run_checks(options);
  CHECK(find(results, "mode.connected").status == CheckStatus::kPass);
  CHECK(find(results, "ipoib.enhanced").status == CheckStatus::kPass);
  CHECK(find(results, "mtu.fits").status == CheckStatus::kPass);
}

TEST_CASE("node side: devices, CNI dirs, Multus, whereabouts, store", "[doctor]") {
  FixtureTree tree;
  NodeSpec node;
  node.uverbs = false;
  node.rdma_cm = false;
  node.multus = false;
  node.ipoib_installed = false;
  node.whereabouts_content =
      "\x7f"
      "ELF some other whereabouts";
  build_node(tree, node);
  auto options = fixture_options(tree);
  options.store_dir = "/var/lib/cni/ipoib-ipam";
  tree.dir("var/lib/cni/ipoib-ipam", 0777);
  tree.file("var/lib/cni/ipoib-ipam/lock", "");

  auto results = doctor::run_checks(options);
  INFO(dump(results));
  CHECK(find(results, "dev.uverbs").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "dev.uverbs").fix, Catch::Contains("modprobe ib_uverbs"));
  CHECK(find(results, "dev.rdma_cm").status == CheckStatus::kWarn);
  CHECK(find(results, "cni.bin_dir").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "cni.bin_dir").fix, Catch::Contains("scripts/install"));
  CHECK(find(results, "cni.multus").status == CheckStatus::kWarn);
  CHECK(find(results, "cni.whereabouts").status == CheckStatus::kWarn);
  CHECK_THAT(find(results, "cni.whereabouts").finding, Catch::Contains("not this project's"));
  const CheckResult& store = find(results, "store.dir");
  CHECK(store.status == CheckStatus::kFail);
  CHECK_THAT(store.finding, Catch::Contains("mode 0777"));
  CHECK_THAT(store.fix, Catch::Contains("chmod 0700"));

  // This project's binary installed as whereabouts carries the marker.
  tree.file("opt/cni/bin/whereabouts",
            "\x7f"
            "ELF ... ipoib-cni-binary-marker:v1 ...",
            0755);
  std::filesystem::permissions(tree.abs("var/lib/cni/ipoib-ipam"),
                               std::filesystem::perms::owner_all);
  results = doctor::run_checks(options);
  CHECK(find(results, "cni.whereabouts").status == CheckStatus::kPass);
  CHECK(find(results, "store.dir").status == CheckStatus::kPass);
  CHECK_THAT(find(results, "store.dir").finding, Catch::Contains("mode 0700"));

  tree.remove("var/lib/cni/ipoib-ipam/lock");
  tree.dir("var/lib/cni/ipoib-ipam/lock");
  results = doctor::run_checks(options);
  CHECK(find(results, "store.dir").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "store.dir").finding, Catch::Contains("not a regular file"));

  tree.remove("etc/cni");
  results = doctor::run_checks(options);
  CHECK(find(results, "cni.conf_dir").status == CheckStatus::kFail);
}

TEST_CASE("CLI: table, JSON shape and exit status", "[doctor]") {
  FixtureTree tree;
  NodeSpec node;
  node.flat_file = kSharedStoreFlatFile;
  build_node(tree, node);
  std::ostringstream out;
  std::ostringstream err;

  SECTION("healthy node, table") {
    const int status =
        doctor::run_cli({"--root", tree.path(), "--no-verbs", "--pkey", "0x8001"}, out, err);
    CHECK(status == 0);
    CHECK_THAT(out.str(), Catch::StartsWith("STATUS  CHECK"));
    CHECK_THAT(out.str(), Catch::Contains("PASS    port.active"));
    CHECK_THAT(out.str(), Catch::Contains("fail, "));
    CHECK_THAT(out.str(), Catch::EndsWith("node ready\n"));
    CHECK(err.str().empty());
  }
  SECTION("failing node, JSON") {
    tree.file("sys/class/infiniband/mlx5_0/ports/1/state", "1: DOWN\n");
    const int status = doctor::run_cli({"--json", "--root=" + tree.path(), "--no-verbs"}, out, err);
    CHECK(status == 1);
    const auto doc = nlohmann::json::parse(out.str());  // exactly one JSON document
    CHECK(doc.at("ok") == false);
    CHECK(doc.at("summary").at("fail").get<int>() >= 1);
    CHECK(doc.at("summary").size() == 4);
    REQUIRE(doc.at("checks").is_array());
    bool saw_port = false;
    int total = 0;
    for (const auto& check : doc.at("checks")) {
      ++total;
      CHECK(check.size() == 5);
      for (const char* key : {"id", "title", "status", "finding", "fix"}) {
        CHECK(check.at(key).is_string());
      }
      if (check.at("id") == "port.active") {
        saw_port = true;
        CHECK(check.at("status") == "FAIL");
        CHECK_FALSE(check.at("fix").get<std::string>().empty());
      }
    }
    CHECK(saw_port);
    const auto& s = doc.at("summary");
    CHECK(s.at("pass").get<int>() + s.at("warn").get<int>() + s.at("fail").get<int>() +
              s.at("skip").get<int>() ==
          total);
  }
  SECTION("--config takes master, pkey and mtu from a NAD in YAML") {
    tree.file(
        "nad.yaml",
        "apiVersion: \"k8s.cni.cncf.io/v1\"\nkind: NetworkAttachmentDefinition\n"
        "metadata:\n  name: jarvice-ipoib\nspec:\n  config: '{\n  \"cniVersion\": \"0.3.1\",\n"
        "  \"type\": \"ipoib\",\n  \"name\": \"jarvice-ipoib\",\n  \"master\": \"ib0\",\n"
        "  \"pkey\": \"0x8005\",\n  \"ipam\": {\n    \"type\": \"whereabouts\",\n"
        "    \"range\": \"192.168.0.0/24\"\n  }\n}'\n");
    const int status = doctor::run_cli(
        {"--root", tree.path(), "--no-verbs", "--json", "--config", tree.abs("nad.yaml")}, out,
        err);
    CHECK(status == 1);
    const auto doc = nlohmann::json::parse(out.str());
    bool saw = false;
    for (const auto& check : doc.at("checks")) {
      if (check.at("id") == "pkey.table") {
        saw = true;
        CHECK(check.at("status") == "FAIL");
        CHECK_THAT(check.at("finding").get<std::string>(), Catch::Contains("0x8005"));
      }
    }
    CHECK(saw);
  }
  SECTION("usage errors exit 2") {
    CHECK(doctor::run_cli({"--bogus"}, out, err) == 2);
    CHECK_THAT(err.str(), Catch::Contains("unknown option '--bogus'"));
    CHECK(doctor::run_cli({"--pkey"}, out, err) == 2);
    CHECK(doctor::run_cli({"--mode", "fast"}, out, err) == 2);
    CHECK(doctor::run_cli({"--config", tree.abs("missing.json")}, out, err) == 2);
    CHECK(out.str().empty());
    CHECK(doctor::run_cli({"--help"}, out, err) == 0);
    CHECK_THAT(out.str(), Catch::Contains("--sysfs-root DIR"));
  }
}

TEST_CASE("the real host: one JSON document whose exit status matches its FAILs", "[doctor]") {
  // Whatever this machine is, the run must complete, print exactly one well-formed document and
  // exit 1 exactly when a check failed.
  std::ostringstream out;
  std::ostringstream err;
  const int status = doctor::run_cli({"--json"}, out, err);
  const auto doc = nlohmann::json::parse(out.str());
  bool any_fail = false;
  for (const auto& check : doc.at("checks")) {
    CHECK_FALSE(check.at("id").get<std::string>().empty());
    CHECK_FALSE(check.at("finding").get<std::string>().empty());
    const std::string s = check.at("status");
    CHECK((s == "PASS" || s == "WARN" || s == "FAIL" || s == "SKIP"));
    if (s == "FAIL" || s == "WARN") {
      CHECK_FALSE(check.at("fix").get<std::string>().empty());
    }
    any_fail = any_fail || s == "FAIL";
  }
  CHECK(status == (any_fail ? 1 : 0));
  CHECK(doc.at("ok") == !any_fail);
}

TEST_CASE("enhanced IPoIB is recognised by the driver, not the device name", "[doctor]") {
  NodeSpec node;
  node.device = "ibp59s0";  // udev-renamed mlx5 device
  node.driver = "mlx5_core";
  doctor::DoctorOptions options;
  options.mode = "connected";
  auto results = run_node(node, &options);
  CHECK(find(results, "mode.connected").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "mode.connected").finding,
             Catch::Contains("ibp59s0 runs enhanced IPoIB"));

  node.device = "mlx4_0";
  node.driver = "mlx4_core";
  results = run_node(node, &options);
  CHECK(find(results, "mode.connected").status == CheckStatus::kPass);
  CHECK(find(results, "ipoib.enhanced").status == CheckStatus::kPass);
}

TEST_CASE("store directory layout problems and a lock held by another process", "[doctor]") {
  FixtureTree tree;
  build_node(tree, NodeSpec{});
  auto options = fixture_options(tree);
  options.store_dir = "/store";
  tree.dir("store", 0700);
  tree.file("store/lock", "", 0600);
  tree.file("store/pool-net", "{}", 0600);
  tree.file("store/.tmp.123", "", 0600);

  auto results = doctor::run_checks(options);
  CHECK(find(results, "store.dir").status == CheckStatus::kPass);
  CHECK_THAT(find(results, "store.dir").finding, Catch::Contains("1 .tmp.* leftover"));

  // Another process holds the store lock (fcntl locks are per process: fork one).
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t holder = ::fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    const int fd = ::open(tree.abs("store/lock").c_str(), O_RDWR | O_CLOEXEC);
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    const char ok = (fd >= 0 && ::fcntl(fd, F_SETLK, &lock) == 0) ? '1' : '0';
    (void)::write(ready[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  char ok = '0';
  REQUIRE(::read(ready[0], &ok, 1) == 1);
  results = doctor::run_checks(options);
  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  REQUIRE(ok == '1');
  CHECK(find(results, "store.dir").status == CheckStatus::kPass);
  CHECK_THAT(find(results, "store.dir").finding,
             Catch::Contains("lock held by pid " + std::to_string(holder)));

  std::filesystem::permissions(tree.abs("store/pool-net"),
                               static_cast<std::filesystem::perms>(0666));
  results = doctor::run_checks(options);
  CHECK(find(results, "store.dir").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "store.dir").finding,
             Catch::Contains("pool-net is writable by other users"));

  std::filesystem::permissions(tree.abs("store/pool-net"),
                               static_cast<std::filesystem::perms>(0600));
  tree.remove("store/lock");
  tree.symlink("store/lock", "/etc/passwd");
  results = doctor::run_checks(options);
  CHECK(find(results, "store.dir").status == CheckStatus::kFail);
  CHECK_THAT(find(results, "store.dir").finding, Catch::Contains("a symlink: refused"));
  CHECK_THAT(find(results, "store.dir").fix, Catch::Contains("chmod 0700 /store"));

  // The store's own trust rule (ipam::check_store_dir_trust): owned by another user is refused,
  // whatever the mode. Only root can hand the directory to someone else.
  if (::geteuid() == 0) {
    tree.remove("store/lock");
    REQUIRE(::chown(tree.abs("store").c_str(), 65534, 65534) == 0);
    results = doctor::run_checks(options);
    CHECK(find(results, "store.dir").status == CheckStatus::kFail);
    CHECK_THAT(find(results, "store.dir").finding, Catch::Contains("store directory /store is"));
    REQUIRE(::chown(tree.abs("store").c_str(), 0, 0) == 0);
  }
}

TEST_CASE("cluster store: a node-local store on a cluster node is the duplicate-address trap",
          "[doctor]") {
  NodeSpec node;
  SECTION("Multus present, no flat file") {
    const auto results = run_node(node);
    const CheckResult& r = find(results, "store.cluster");
    CHECK(r.status == CheckStatus::kFail);
    CHECK_THAT(r.finding, Catch::Contains("no cluster store configured") &&
                              Catch::Contains("node-local store /var/lib/cni/ipoib-ipam") &&
                              Catch::Contains("/opt/cni/bin/multus-shim") &&
                              Catch::Contains("same addresses"));
    CHECK_THAT(r.fix, Catch::Contains("ipoib install --flat-file-only --etcd-endpoints"));
    CHECK(doctor::exit_status(results) == 1);
  }
  SECTION("a kubelet: running, its unit, or its config file") {
    node.multus = false;
    struct Sign {
      const char* file;
      const char* content;
      const char* finding;
    };
    for (const Sign& sign : {Sign{"proc/4242/comm", "kubelet\n", "kubelet running (pid 4242)"},
                             Sign{"lib/systemd/system/kubelet.service",
                                  "[Service]\nExecStart=/usr/bin/kubelet\n", "kubelet.service"},
                             Sign{"var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n",
                                  "/var/lib/kubelet/config.yaml"}}) {
      INFO(sign.file);
      FixtureTree tree;
      build_node(tree, node);
      tree.file(sign.file, sign.content);
      const auto results = doctor::run_checks(fixture_options(tree));
      CHECK(find(results, "store.cluster").status == CheckStatus::kFail);
      CHECK_THAT(find(results, "store.cluster").finding, Catch::Contains(sign.finding));
    }
  }
  SECTION("no kubelet and no Multus: a single node, the local store is right") {
    node.multus = false;
    const auto results = run_node(node);
    CHECK(find(results, "store.cluster").status == CheckStatus::kPass);
    CHECK_THAT(find(results, "store.cluster").finding, Catch::Contains("no kubelet or Multus"));
  }
  SECTION("a configured store_dir on a filesystem not known as shared: WARN") {
    node.flat_file = kSharedStoreFlatFile;
    const auto results = run_node(node);
    CHECK(find(results, "store.cluster").status == CheckStatus::kWarn);
    CHECK_THAT(find(results, "store.cluster").finding, Catch::Contains("/shared/ipoib-ipam"));
  }
  SECTION("a flat file the IPAM refuses") {
    node.flat_file = R"({"datastore": "etcd"})";
    const auto results = run_node(node);
    CHECK(find(results, "store.cluster").status == CheckStatus::kFail);
    CHECK_THAT(find(results, "store.cluster").finding,
               Catch::Contains("refuses") && Catch::Contains("etcd_host"));
  }
}
