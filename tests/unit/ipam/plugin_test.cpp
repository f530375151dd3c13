// The IPAM plugin through the real protocol engine (cni::run_plugin) with injected process I/O.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <set>

#include "ipoib/cni/args.h"
#include "ipoib/ipam/builtin.h"
#include "ipoib/ipam/ipam.h"
#include "ipoib/ipam/pool_store.h"
#include "ipoib/ipam/store.h"
#include "test_support.h"

using namespace ipoib;
using namespace ipoib::ipam;
using ipam_test::Invocation;
using ipam_test::TempDir;
using nlohmann::json;

namespace {

struct Harness {
  TempDir tmp;
  Logger log;
  std::unique_ptr<cni::Plugin> plugin;
  std::string store_dir;

  // `node` is this harness's $NODENAME; `alive` answers the re-ADD liveness question
  // (recorded netns, current netns) -> another live attachment? (default: never).
  explicit Harness(std::string node = "node-a",
                   std::function<bool(const std::string&, const std::string&)> alive = {})
      : store_dir(tmp.path() + "/store") {
    log.set_level(LogLevel::kOff);
    plugin = make_plugin(std::move(node), std::move(alive));
  }

  std::unique_ptr<cni::Plugin> make_plugin(
      std::string node, std::function<bool(const std::string&, const std::string&)> alive = {}) {
    IpamOptions opts;
    opts.sources.flat_file_paths = {tmp.path() + "/no-flat-file.conf"};
    opts.sources.getenv = [node](std::string_view k) -> std::optional<std::string> {
      if (k == "NODENAME") return node;
      return std::nullopt;
    };
    opts.now_unix_s = [] { return std::int64_t{1700000000}; };
    opts.other_live_netns =
        alive ? std::move(alive) : [](const std::string&, const std::string&) { return false; };
    return make_builtin_ipam(log, opts);
  }

  json conf(json ipam, const std::string& version = "1.1.0", const std::string& name = "net") {
    ipam["type"] = "whereabouts";
    ipam["store_dir"] = store_dir;
    return {{"cniVersion", version}, {"name", name}, {"type", "macvlan"}, {"ipam", ipam}};
  }

  Invocation run(const std::string& cmd, const json& config, const std::string& cid = "c1",
                 const std::string& ifname = "net1", const std::string& args = "",
                 const std::string& netns = "/var/run/netns/x") {
    Invocation inv;
    inv.env = {{"CNI_COMMAND", cmd},   {"CNI_CONTAINERID", cid}, {"CNI_NETNS", netns},
               {"CNI_IFNAME", ifname}, {"CNI_ARGS", args},       {"CNI_PATH", "/opt/cni/bin"}};
    if (cmd == "GC" || cmd == "STATUS") {
      inv.env["CNI_CONTAINERID"] = "";
      inv.env["CNI_IFNAME"] = "";
      inv.env["CNI_NETNS"] = "";
    }
    inv.stdin_text = config.dump();
    inv.rc = cni::run_plugin(*plugin, inv.io(), log);
    return inv;
  }

  std::vector<std::string> add_ips(const json& config, const std::string& cid = "c1",
                                   const std::string& ifname = "net1", const std::string& args = "",
                                   const std::string& netns = "/var/run/netns/x") {
    Invocation inv = run("ADD", config, cid, ifname, args, netns);
    INFO(inv.stdout_text);
    REQUIRE(inv.rc == 0);
    const json out = json::parse(inv.stdout_text);
    CHECK_FALSE(out.contains("interfaces"));
    std::vector<std::string> ips;
    for (const auto& i : out["ips"]) {
      CHECK_FALSE(i.contains("interface"));
      ips.push_back(i["address"]);
    }
    return ips;
  }

  int code_of(const Invocation& inv) {
    if (inv.stdout_text.empty()) return 0;
    return json::parse(inv.stdout_text).value("code", 0);
  }

  std::vector<Reservation> all(const std::string& network = "") {
    auto store = open_ipam_store({store_dir, network, 1000}, OpenMode::kReadOnly);
    REQUIRE(store.ok());
    std::vector<Reservation> out;
    auto read = (*store)->pool(network)->transact(Access::kRead, [&](PoolTxn& t) -> Status {
      IPOIB_TRY_ASSIGN(out, t.reservations({}));
      return ok_status();
    });
    REQUIRE(read.ok());
    return out;
  }

  std::size_t reservations(const std::string& network = "") { return all(network).size(); }
};

const json kRange = {{"range", "10.1.0.0/24"}, {"gateway", "10.1.0.1"}};

}  // namespace

TEST_CASE("ADD returns the IPAM side of the result at every version") {
  Harness h;
  const json cfg = h.conf({{"range", "10.1.0.0/24"},
                           {"gateway", "10.1.0.1"},
                           {"routes", {{{"dst", "0.0.0.0/0"}}}},
                           {"dns", {{"nameservers", {"10.1.0.2"}}}},
                           {"addresses", {{{"address", "10.9.9.9/24"}}}}});
  Invocation inv = h.run("ADD", cfg);
  REQUIRE(inv.rc == 0);
  const json out = json::parse(inv.stdout_text);
  CHECK(out["cniVersion"] == "1.1.0");
  REQUIRE(out["ips"].size() == 2);
  CHECK(out["ips"][0]["address"] == "10.1.0.2/24");  // .1 is the gateway: never handed out
  CHECK(out["ips"][0]["gateway"] == "10.1.0.1");
  CHECK(out["ips"][1]["address"] == "10.9.9.9/24");
  CHECK(out["routes"][0]["dst"] == "0.0.0.0/0");
  CHECK(out["dns"]["nameservers"][0] == "10.1.0.2");
  CHECK_FALSE(out.contains("interfaces"));

  Invocation old = h.run("ADD", h.conf(kRange, "0.3.1"), "c2");
  REQUIRE(old.rc == 0);
  CHECK(json::parse(old.stdout_text)["ips"][0]["version"] == "4");
  Invocation oldest = h.run("ADD", h.conf(kRange, "0.2.0"), "c3");
  REQUIRE(oldest.rc == 0);
  CHECK(json::parse(oldest.stdout_text)["ip4"]["ip"] == "10.1.0.4/24");
}

TEST_CASE("ADD is idempotent on (container, ifname) and on (pod, ifname)") {
  Harness h;
  const json cfg = h.conf(kRange);
  const auto first = h.add_ips(cfg, "c1", "net1");
  CHECK(h.add_ips(cfg, "c1", "net1") == first);
  CHECK(h.reservations() == 1);
  // Another interface of the same container: a new address.
  CHECK(h.add_ips(cfg, "c1", "net2") != first);
  // Kubelet re-ADD after a reboot: same pod and ifname, new container ID -> same address.
  const std::string pod = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p";
  const auto pa = h.add_ips(cfg, "sandbox1", "net1", pod);
  CHECK(h.add_ips(cfg, "sandbox2", "net1", pod) == pa);
  CHECK(h.reservations() == 3);
  // The container ID was updated: DEL of the new sandbox frees it, DEL of the old one does not.
  REQUIRE(h.run("DEL", cfg, "sandbox1", "net1", pod).rc == 0);
  CHECK(h.reservations() == 3);
  REQUIRE(h.run("DEL", cfg, "sandbox2", "net1", pod).rc == 0);
  CHECK(h.reservations() == 2);
}

TEST_CASE("dual stack and multi-IP: one address per ipRanges element") {
  Harness h;
  const json cfg = h.conf({{"ipRanges",
                            {{{"range", "10.2.0.0/24"}},
                             {{"range", "fd00:2::/64"}, {"range_start", "fd00:2::8000:0:0:0"}},
                             {{"range", "10.2.0.0/24"}}}}});
  const auto ips = h.add_ips(cfg);
  CHECK(ips == std::vector<std::string>{"10.2.0.1/24", "fd00:2:0:0:8000::/64", "10.2.0.2/24"});
  CHECK(h.add_ips(cfg) == ips);
  REQUIRE(h.run("CHECK", cfg).rc == 0);
  REQUIRE(h.run("DEL", cfg).rc == 0);
  CHECK(h.reservations() == 0);
}

TEST_CASE("multi-range ADD is all-or-nothing") {
  Harness h;
  // The second range has exactly one address.
  const json cfg = h.conf(
      {{"ipRanges",
        {{{"range", "10.3.0.0/24"}}, {{"range", "10.4.0.0/30"}, {"range_end", "10.4.0.1"}}}}});
  h.add_ips(cfg, "c1");
  CHECK(h.reservations() == 2);
  Invocation inv = h.run("ADD", cfg, "c2");
  CHECK(inv.rc != 0);
  CHECK(h.code_of(inv) == static_cast<int>(ErrorCode::kIpamFailure));
  CHECK_THAT(inv.stdout_text, Catch::Contains("exhausted") && Catch::Contains("10.4.0.0/30"));
  CHECK(h.reservations() == 2);  // nothing from the first range was kept
  // After a DEL frees the small range, c2 gets the lowest address of the first range again.
  REQUIRE(h.run("DEL", cfg, "c1").rc == 0);
  CHECK(h.add_ips(cfg, "c2") == std::vector<std::string>{"10.3.0.1/24", "10.4.0.1/30"});
}

TEST_CASE("overlapping ranges of one network_name never share an address") {
  Harness h;
  const json a = h.conf({{"range", "10.5.0.0/24"}, {"network_name", "shared"}}, "1.1.0", "neta");
  const json b = h.conf({{"range", "10.5.0.0/16"}, {"network_name", "shared"}}, "1.1.0", "netb");
  const json other = h.conf({{"range", "10.5.0.0/24"}, {"network_name", "other"}});
  std::set<std::string> seen;
  for (int i = 0; i < 10; ++i) {
    const std::string cid = "c" + std::to_string(i);
    for (const auto& ip : h.add_ips(i % 2 ? a : b, cid)) {
      CHECK(seen.insert(ip.substr(0, ip.find('/'))).second);
    }
  }
  // A different network_name is a different pool: it starts at the lowest address again.
  CHECK(h.add_ips(other, "z") == std::vector<std::string>{"10.5.0.1/24"});
}

TEST_CASE("DEL releases in every range and succeeds when nothing matches") {
  Harness h;
  const json cfg = h.conf(kRange);
  REQUIRE(h.run("DEL", cfg, "never").rc == 0);  // no store yet
  h.add_ips(cfg, "c1");
  REQUIRE(h.run("DEL", cfg, "never").rc == 0);
  REQUIRE(h.run("DEL", cfg, "c1").rc == 0);
  REQUIRE(h.run("DEL", cfg, "c1").rc == 0);
  CHECK(h.reservations() == 0);
  // DEL still works when the rest of the config no longer validates.
  h.add_ips(cfg, "c2");
  json broken = cfg;
  broken["ipam"]["range"] = "garbage";
  REQUIRE(h.run("DEL", broken, "c2").rc == 0);
  CHECK(h.reservations() == 0);
}

TEST_CASE("freed addresses: lowest-free reuses at once, round-robin moves on") {
  Harness h;
  const json lf = h.conf({{"range", "10.6.0.0/24"}});
  h.add_ips(lf, "a");
  h.add_ips(lf, "b");
  REQUIRE(h.run("DEL", lf, "a").rc == 0);
  CHECK(h.add_ips(lf, "c") == std::vector<std::string>{"10.6.0.1/24"});

  const json rr =
      h.conf({{"range", "10.7.0.0/29"}, {"allocation", "round-robin"}, {"network_name", "rr"}});
  CHECK(h.add_ips(rr, "a") == std::vector<std::string>{"10.7.0.1/29"});
  CHECK(h.add_ips(rr, "b") == std::vector<std::string>{"10.7.0.2/29"});
  REQUIRE(h.run("DEL", rr, "a").rc == 0);
  CHECK(h.add_ips(rr, "c") == std::vector<std::string>{"10.7.0.3/29"});
  for (const char* id : {"d", "e", "f"}) h.add_ips(rr, id);              // .4 .5 .6
  CHECK(h.add_ips(rr, "g") == std::vector<std::string>{"10.7.0.1/29"});  // wrapped
}

TEST_CASE("CHECK passes after ADD and fails when the reservation is missing") {
  Harness h;
  const json cfg = h.conf(kRange);
  Invocation add = h.run("ADD", cfg);
  REQUIRE(add.rc == 0);
  json with_prev = cfg;
  with_prev["prevResult"] = json::parse(add.stdout_text);
  Invocation ok = h.run("CHECK", with_prev);
  CHECK(ok.rc == 0);
  CHECK(ok.stdout_text.empty());
  // prevResult naming a different address.
  json wrong = with_prev;
  wrong["prevResult"]["ips"][0]["address"] = "10.1.0.77/24";
  CHECK(h.code_of(h.run("CHECK", wrong)) == static_cast<int>(ErrorCode::kCheckFailed));
  REQUIRE(h.run("DEL", cfg).rc == 0);
  Invocation missing = h.run("CHECK", with_prev);
  CHECK(missing.rc != 0);
  CHECK(h.code_of(missing) == static_cast<int>(ErrorCode::kCheckFailed));
  CHECK_THAT(missing.stdout_text, Catch::Contains("no reservation"));
}

TEST_CASE("GC: valid-attachments, the legacy key, and neither") {
  Harness h;
  const json cfg = h.conf(kRange);
  const json other_net = h.conf(kRange, "1.1.0", "othernet");  // same pool, other CNI network
  for (const char* id : {"keep", "drop1", "drop2"}) h.add_ips(cfg, id);
  h.add_ips(other_net, "foreign");
  REQUIRE(h.reservations() == 4);

  Invocation none = h.run("GC", cfg);
  CHECK(none.rc == 0);
  CHECK(h.reservations() == 4);  // no list: destroy nothing

  json legacy = cfg;
  legacy["cni.dev/attachments"] = {{{"containerID", "keep"}, {"ifname", "net1"}},
                                   {{"containerID", "drop1"}, {"ifname", "net1"}}};
  Invocation l = h.run("GC", legacy);
  CHECK(l.rc == 0);
  CHECK(l.stdout_text.empty());
  CHECK(h.reservations() == 3);

  json valid = cfg;
  valid["cni.dev/valid-attachments"] = {{{"containerID", "keep"}, {"ifname", "net1"}}};
  REQUIRE(h.run("GC", valid).rc == 0);
  CHECK(h.reservations() == 2);  // keep + the other network's reservation
  REQUIRE(h.run("CHECK", cfg, "keep").rc == 0);
  REQUIRE(h.run("CHECK", other_net, "foreign").rc == 0);

  CHECK(h.code_of(h.run("GC", h.conf(kRange, "1.0.0"))) ==
        static_cast<int>(ErrorCode::kIncompatibleVersion));
}

TEST_CASE("STATUS: ready, exhausted, store unusable") {
  Harness h;
  const json cfg = h.conf({{"range", "10.8.0.0/30"}});  // .1 .2
  Invocation ready = h.run("STATUS", cfg);
  CHECK(ready.rc == 0);
  CHECK(ready.stdout_text.empty());
  h.add_ips(cfg, "a");
  h.add_ips(cfg, "b");
  Invocation full = h.run("STATUS", cfg);
  CHECK(h.code_of(full) == static_cast<int>(ErrorCode::kNotAvailable));
  CHECK_THAT(full.stdout_text, Catch::Contains("exhausted"));

  // A corrupt pool file: STATUS says so (50), ADD reports it (103) and the file is untouched.
  const std::string pool = h.store_dir + "/pool-_default";
  std::string text = ipam_test::read_file(pool);
  text[text.size() / 2] ^= 0x20;
  ipam_test::write_file(pool, text);
  Invocation corrupt = h.run("STATUS", cfg);
  CHECK(h.code_of(corrupt) == static_cast<int>(ErrorCode::kNotAvailable));
  CHECK_THAT(corrupt.stdout_text, Catch::Contains("corrupt") && Catch::Contains(pool));
  Invocation add = h.run("ADD", cfg, "c");
  CHECK(h.code_of(add) == static_cast<int>(ErrorCode::kStoreCorrupt));
  CHECK(ipam_test::read_file(pool) == text);

  // store_dir is a regular file.
  ipam_test::write_file(h.tmp.path() + "/afile", "x");
  json bad = cfg;
  bad["ipam"]["store_dir"] = h.tmp.path() + "/afile";
  CHECK(h.code_of(h.run("STATUS", bad)) == static_cast<int>(ErrorCode::kNotAvailable));
}

TEST_CASE("invalid configuration is code 7 naming the key") {
  Harness h;
  Invocation inv = h.run("ADD", h.conf({{"range", "10.0.0.0/24"}, {"range_start", "10.0.1.5"}}));
  CHECK(h.code_of(inv) == 7);
  CHECK_THAT(inv.stdout_text, Catch::Contains("range_start"));
  CHECK(h.code_of(h.run("ADD", h.conf({{"range", "10.0.0.0/24"}, {"node_slice_size", "/26"}}))) ==
        7);
}

TEST_CASE("a busy store lock is code 11 after lock_timeout_ms") {
  Harness h;
  const json cfg = h.conf({{"range", "10.0.0.0/24"}, {"lock_timeout_ms", 50}});
  h.add_ips(cfg, "a");
  // Hold the lock from another process (fcntl locks do not exclude this process itself).
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto store = Store::open(h.store_dir, CreateMode::kMustExist);
    auto lock = (*store)->lock(1000);
    (void)!::write(ready[1], lock.ok() ? "1" : "0", 1);
    ::sleep(3);
    ::_exit(0);
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  REQUIRE(c == '1');
  Invocation inv = h.run("ADD", cfg, "b");
  CHECK(h.code_of(inv) == static_cast<int>(ErrorCode::kTryAgainLater));
  CHECK_THAT(inv.stdout_text, Catch::Contains("lock_timeout_ms"));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  CHECK(h.add_ips(cfg, "b").size() == 1);  // the lock died with its holder
}

TEST_CASE("store files and directories are private; symlinks are refused") {
  Harness h;
  const json cfg = h.conf(kRange);
  h.add_ips(cfg, "a");
  struct stat st {};
  REQUIRE(::stat(h.store_dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat((h.store_dir + "/pool-_default").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat((h.store_dir + "/lock").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  // A planted symlink as a pool file: refused, target untouched.
  const std::string target = h.tmp.path() + "/target";
  ipam_test::write_file(target, "precious");
  const json named = h.conf({{"range", "10.1.0.0/24"}, {"network_name", "n1"}});
  REQUIRE(::symlink(target.c_str(), (h.store_dir + "/pool-n1").c_str()) == 0);
  Invocation inv = h.run("ADD", named, "b");
  CHECK(h.code_of(inv) == static_cast<int>(ErrorCode::kIoFailure));
  CHECK_THAT(inv.stdout_text, Catch::Contains("symbolic link"));
  CHECK(ipam_test::read_file(target) == "precious");

  // A symlink as store_dir: refused.
  const std::string link_dir = h.tmp.path() + "/linkstore";
  REQUIRE(::symlink(h.store_dir.c_str(), link_dir.c_str()) == 0);
  json via_link = cfg;
  via_link["ipam"]["store_dir"] = link_dir;
  Invocation l = h.run("ADD", via_link, "c");
  CHECK(h.code_of(l) == static_cast<int>(ErrorCode::kIoFailure));
  CHECK_THAT(l.stdout_text, Catch::Contains("symbolic link"));
}

TEST_CASE("stale temporary files of a crashed writer are removed at the next operation") {
  Harness h;
  const json cfg = h.conf(kRange);
  h.add_ips(cfg, "a");
  const std::string stale = h.store_dir + "/.tmp.pool-_default.99999.0";
  ipam_test::write_file(stale, std::string(kSnapshotMagic) + "half a file");
  h.add_ips(cfg, "b");
  CHECK(::access(stale.c_str(), F_OK) != 0);
}

TEST_CASE("is_builtin_type") {
  CHECK(is_builtin_type("whereabouts"));
  CHECK_FALSE(is_builtin_type("host-local"));
}

TEST_CASE("pod references are validated as Kubernetes does: no collision through '/'") {
  Harness h;
  const json cfg = h.conf(kRange);
  // "a/b" + "c" and "a" + "b/c" would both be "a/b/c": neither forms a reference.
  const auto first = h.add_ips(cfg, "c1", "net1", "K8S_POD_NAMESPACE=a/b;K8S_POD_NAME=c");
  const auto second = h.add_ips(cfg, "c2", "net1", "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b/c");
  CHECK(first != second);
  for (const Reservation& r : h.all()) CHECK(r.pod_ref.empty());
  // Valid ones are kept, with the dots a pod name may have.
  h.add_ips(cfg, "c3", "net1", "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-5d78c.x-1");
  CHECK(h.all().back().pod_ref == "kube-system/coredns-5d78c.x-1");
  CHECK(cni::is_dns1123_label("a-1"));
  CHECK_FALSE(cni::is_dns1123_label("A"));
  CHECK_FALSE(cni::is_dns1123_label("-a"));
  CHECK_FALSE(cni::is_dns1123_label(std::string(64, 'a')));
  CHECK(cni::is_dns1123_subdomain("a.b-c.d"));
  CHECK_FALSE(cni::is_dns1123_subdomain("a..b"));
  CHECK_FALSE(cni::is_dns1123_subdomain("a/b"));
}

TEST_CASE("same pod and ifname: take over only a gone attachment, never a live one") {
  // The liveness probe is injected: netns paths under /live/ are "another live namespace".
  Harness h("node-a", [](const std::string& recorded, const std::string& current) {
    return recorded.rfind("/live/", 0) == 0 && recorded != current;
  });
  const json cfg = h.conf(kRange);
  const std::string pod = "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p";
  const auto a = h.add_ips(cfg, "ctr-a", "net1", pod, "/live/a");
  // A second live container with the same pod reference: its own address.
  const auto b = h.add_ips(cfg, "ctr-b", "net1", pod, "/live/b");
  CHECK(a != b);
  CHECK(h.reservations() == 2);
  // Both recorded their node and netns.
  const auto rs = h.all();
  CHECK(rs[0].node == "node-a");
  CHECK(rs[0].netns == "/live/a");
  CHECK(rs[1].netns == "/live/b");
  // The kubelet after a reboot: the old sandbox's netns is gone -> the address is taken over.
  Harness rebooted("node-a", [](const std::string&, const std::string&) { return false; });
  rebooted.store_dir = h.store_dir;
  const auto c = rebooted.add_ips(cfg, "ctr-c", "net1", pod, "/live/c");
  CHECK((c == a || c == b));
  CHECK(rebooted.reservations() == 2);
  CHECK(rebooted.run("CHECK", cfg, "ctr-c").rc == 0);
}

TEST_CASE("same pod and ifname on another node: never taken over") {
  // Node B cannot see node A's namespaces: a reservation of node A is never taken over by a pod
  // reference on node B, even though A's netns path does not exist on B.
  Harness a("node-a");
  Harness b("node-b");
  b.store_dir = a.store_dir;  // one shared store (a shared store_dir, or the cluster store)
  const json cfg = a.conf(kRange);
  const std::string pod = "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p";
  const auto on_a = a.add_ips(cfg, "ctr-a", "net1", pod, "/gone/a");
  const auto on_b = b.add_ips(cfg, "ctr-b", "net1", pod, "/gone/b");
  CHECK(on_a != on_b);
  CHECK(a.reservations() == 2);
  // On its own node the same pod's gone attachment is still taken over.
  const auto again_a = a.add_ips(cfg, "ctr-a2", "net1", pod, "/gone/a2");
  CHECK(again_a == on_a);
  CHECK(a.reservations() == 2);
}

TEST_CASE("GC releases only its own node's reservations; node-less records are kept") {
  Harness a("node-a");
  Harness b("node-b");
  b.store_dir = a.store_dir;  // one shared store_dir, two nodes
  const json cfg = a.conf(kRange);
  a.add_ips(cfg, "on-a");
  b.add_ips(cfg, "on-b");
  // A reservation written before nodes were recorded (node "").
  {
    auto store = open_ipam_store({a.store_dir, "", 1000}, OpenMode::kExisting);
    REQUIRE(store.ok());
    REQUIRE((*store)
                ->pool("")
                ->transact(Access::kWrite,
                           [](PoolTxn& t) -> Status {
                             return t.reserve({*IpAddress::parse("10.1.0.200"), "10.1.0.0/24",
                                               "net", "old", "net1", "", 1});
                           })
                .ok());
  }
  REQUIRE(a.reservations() == 3);
  // Node A's runtime lists none of its attachments as valid: only on-a goes.
  json gc = cfg;
  gc["cni.dev/valid-attachments"] = json::array();
  REQUIRE(a.run("GC", gc).rc == 0);
  std::set<std::string> left;
  for (const Reservation& r : a.all()) left.insert(r.container_id);
  CHECK(left == std::set<std::string>{"on-b", "old"});
  // Node A's next ADD does not get node B's address.
  const auto next = a.add_ips(cfg, "next-a");
  for (const Reservation& r : a.all()) {
    if (r.container_id == "on-b") CHECK(next[0] != r.ip.to_string() + "/24");
  }
}

TEST_CASE("an unknown ipam.log_level is ignored with a warning") {
  Harness h;
  Invocation inv = h.run("ADD", h.conf({{"range", "10.1.0.0/24"}, {"log_level", "loud"}}));
  CHECK(inv.rc == 0);
  CHECK(h.reservations() == 1);
}

TEST_CASE("CHECK without prevResult says the runtime has no cached result") {
  Harness h;
  const json cfg = h.conf(kRange);
  Invocation inv = h.run("CHECK", cfg, "never-added");
  CHECK(h.code_of(inv) == static_cast<int>(ErrorCode::kCheckFailed));
  CHECK_THAT(inv.stdout_text, Catch::Contains("no cached result"));
  h.add_ips(cfg, "c1");
  CHECK(h.run("CHECK", cfg, "c1").rc == 0);  // without prevResult: the store's reservation
}

TEST_CASE("STATUS and CHECK create nothing") {
  Harness h;
  const json cfg = h.conf(kRange);
  CHECK(h.run("STATUS", cfg).rc == 0);
  CHECK(h.code_of(h.run("CHECK", cfg)) == static_cast<int>(ErrorCode::kCheckFailed));
  CHECK(::access(h.store_dir.c_str(), F_OK) != 0);
  // An existing store without a lock file: readers take no lock and create none.
  h.add_ips(cfg, "c1");
  const std::string lock = h.store_dir + "/lock";
  REQUIRE(::unlink(lock.c_str()) == 0);
  CHECK(h.run("STATUS", cfg).rc == 0);
  CHECK(h.run("CHECK", cfg, "c1").rc == 0);
  CHECK(::access(lock.c_str(), F_OK) != 0);
}

TEST_CASE("static addresses: CNI_ARGS IP, args.cni.ips and runtimeConfig.ips are reserved") {
  Harness h;
  json cfg = h.conf({{"ipRanges", {{{"range", "10.7.0.0/24"}}, {{"range", "fd00:7::/64"}}}}});
  // podman's --ip: CNI_ARGS IP=, with a prefix length, dual stack by a comma.
  CHECK(h.add_ips(cfg, "c1", "net1", "IP=10.7.0.50/24,fd00:7::50") ==
        std::vector<std::string>{"10.7.0.50/24", "fd00:7::50/64"});
  // A repeated ADD keeps them; another attachment asking for the same address is refused with
  // the holder named, and gets no other address instead.
  CHECK(h.add_ips(cfg, "c1", "net1", "IP=10.7.0.50/24,fd00:7::50") ==
        std::vector<std::string>{"10.7.0.50/24", "fd00:7::50/64"});
  Invocation taken = h.run("ADD", cfg, "c2", "net1", "IP=10.7.0.50");
  CHECK(taken.rc != 0);
  const json err = json::parse(taken.stdout_text);
  CHECK(err["code"] == static_cast<int>(ErrorCode::kIpamFailure));
  CHECK_THAT(err["msg"].get<std::string>(), Catch::Contains("10.7.0.50 is held by container c1"));
  // Outside every range: code 4 (the runtime's argument), never a dynamic fallback.
  Invocation outside = h.run("ADD", cfg, "c3", "net1", "IP=10.8.0.1");
  CHECK(json::parse(outside.stdout_text)["code"] ==
        static_cast<int>(ErrorCode::kInvalidEnvironment));
  CHECK_THAT(outside.stdout_text, Catch::Contains("outside every range"));
  // Only one range requested: the other range allocates as usual.
  CHECK(h.add_ips(cfg, "c4", "net1", "IP=10.7.0.9") ==
        std::vector<std::string>{"10.7.0.9/24", "fd00:7::1/64"});
  // args.cni.ips in the configuration; runtimeConfig.ips under the `ips` capability wins.
  json with_args = cfg;
  with_args["args"] = {{"cni", {{"ips", {"10.7.0.60"}}}}};
  CHECK(h.add_ips(with_args, "c5", "net1")[0] == "10.7.0.60/24");
  json with_caps = with_args;
  with_caps["capabilities"] = {{"ips", true}};
  with_caps["runtimeConfig"] = {{"ips", {"10.7.0.70/24"}}};
  CHECK(h.add_ips(with_caps, "c6", "net1", "IP=10.7.0.80")[0] == "10.7.0.70/24");
  // DEL releases static reservations like any other.
  CHECK(h.run("DEL", cfg, "c1", "net1").rc == 0);
  CHECK(h.add_ips(cfg, "c7", "net1", "IP=10.7.0.50")[0] == "10.7.0.50/24");
}
