// The ipoib plugin end to end: the real `ipoib-testkind` binary (plugin library + macvlan
// stand-in kind) driven through the CNI protocol, in fresh network namespaces of the real kernel.
// Each test has its own "host" netns (holding the veth master) and pod netns, removed by scope
// guards. Needs root: exits 77 otherwise.
#define CATCH_CONFIG_RUNNER
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstring>
#include <set>

#include "harness.h"

using itest::json;

namespace {

const std::string kBinary = IPOIB_TESTKIND_PATH;
const std::vector<std::string> kVersions = {"0.1.0", "0.2.0", "0.3.0", "0.3.1",
                                            "0.4.0", "1.0.0", "1.1.0"};
int g_counter = 0;

std::string unique(const std::string& what) {
  return "plg" + std::to_string(::getpid()) + "_" + std::to_string(++g_counter) + what;
}

// A host netns with master "plgm" (a veth whose peer is up, so it has carrier), a pod netns and
// an IPAM store directory.
struct Topology {
  itest::NetnsGuard host{unique("h")};
  itest::NetnsGuard pod{unique("p")};
  itest::TempDir store;
  itest::TempDir intents;  // the plugin's intent directory (IPOIB_TEST_INTENT_DIR), 0700
  std::string host_name() const { return host.name(); }

  Topology() {
    REQUIRE(host.ok());
    REQUIRE(pod.ok());
    REQUIRE(itest::sh("ip -n " + host.name() + " link add plgm type veth peer name plgpeer") == 0);
    REQUIRE(itest::sh("ip -n " + host.name() + " link set plgpeer up") == 0);
    REQUIRE(itest::sh("ip -n " + host.name() + " link set plgm up") == 0);
  }

  json config(const std::string& version, bool dual_stack = false) const {
    json ipam = {{"type", "whereabouts"},
                 {"store_dir", store.path()},
                 {"routes", json::array({{{"dst", "10.200.0.0/16"}, {"gw", "10.77.0.254"}}})}};
    if (dual_stack) {
      ipam["ipRanges"] = json::array({{{"range", "10.77.0.0/24"}}, {{"range", "fd77::/64"}}});
    } else {
      ipam["range"] = "10.77.0.0/24";
    }
    return {{"cniVersion", version}, {"name", "plgnet"}, {"type", "ipoib"},
            {"master", "plgm"},      {"mtu", 1400},      {"ipam", ipam}};
  }

  itest::CniOutcome call(const std::string& command, const std::string& container,
                         const std::string& netns, const json& conf,
                         const std::map<std::string, std::string>& extra = {},
                         const std::string& ifname = "net1") const {
    auto env = itest::cni_env(command, container, netns, ifname);
    env["IPOIB_TEST_INTENT_DIR"] = intents.path();
    for (const auto& [k, v] : extra) {
      env[k] = v;
    }
    return itest::run(kBinary, host.name(), env, conf.dump());
  }

  itest::CniOutcome add(const std::string& container, const json& conf,
                        const std::map<std::string, std::string>& extra = {}) const {
    return call("ADD", container, pod.path(), conf, extra);
  }
  itest::CniOutcome del(const std::string& container, const json& conf,
                        const std::string& netns) const {
    return call("DEL", container, netns, conf);
  }
  itest::CniOutcome check(const std::string& container, json conf, const json& prev) const {
    conf["prevResult"] = prev;
    return call("CHECK", container, pod.path(), conf);
  }

  // Nothing of ours in either netns (no tagged link, no net1 in the pod).
  void require_no_child() const {
    CHECK(itest::tagged_links(host.name()).empty());
    CHECK(itest::tagged_links(pod.name()).empty());
    CHECK(itest::link(pod.name(), "net1").is_null());
  }

  // No reservation is held: a probe container in a netns of its own gets the range's first
  // address (the allocator hands out the lowest free one), then is removed again.
  void require_no_reservation(bool dual_stack = false) const {
    itest::NetnsGuard probe(unique("q"));
    REQUIRE(probe.ok());
    auto conf = config("1.0.0", dual_stack);
    auto r = call("ADD", "probe", probe.path(), conf);
    REQUIRE(r.exit_code == 0);
    CHECK(r.doc["ips"][0]["address"] == "10.77.0.1/24");
    CHECK(call("DEL", "probe", probe.path(), conf).exit_code == 0);
  }
};

}  // namespace

TEST_CASE("ADD at every CNI version returns the version's shape") {
  Topology t;
  for (const auto& v : kVersions) {
    INFO("cniVersion " << v);
    const auto conf = t.config(v);
    auto r = t.add("c-" + std::to_string(&v - &kVersions[0]), conf);
    REQUIRE(r.exit_code == 0);
    REQUIRE(r.doc.is_object());
    CHECK(r.doc["cniVersion"] == v);
    if (v == "0.1.0" || v == "0.2.0") {
      CHECK(r.doc["ip4"]["ip"] == "10.77.0.1/24");
      CHECK(r.doc["ip4"]["routes"][0]["dst"] == "10.200.0.0/16");
      CHECK_FALSE(r.doc.contains("interfaces"));
    } else {
      REQUIRE(r.doc["interfaces"].size() == 1);
      const auto& itf = r.doc["interfaces"][0];
      CHECK(itf["name"] == "net1");
      CHECK(itf["sandbox"] == t.pod.path());
      CHECK(itf["mac"].get<std::string>().size() == 17);  // macvlan: 6 bytes hex-colon
      CHECK(itf.contains("mtu") == (v == "1.1.0"));
      if (v == "1.1.0") {
        CHECK(itf["mtu"] == 1400);
      }
      REQUIRE(r.doc["ips"].size() == 1);
      CHECK(r.doc["ips"][0]["address"] == "10.77.0.1/24");
      CHECK(r.doc["ips"][0]["interface"] == 0);
      CHECK(r.doc["ips"][0].contains("version") == (v < "1.0.0"));
      CHECK(r.doc["routes"][0]["gw"] == "10.77.0.254");
    }
    // The kernel agrees.
    const auto l = itest::link(t.pod.name(), "net1");
    REQUIRE(l.is_object());
    CHECK(l["mtu"] == 1400);
    CHECK(l["linkinfo"]["info_kind"] == "macvlan");
    CHECK(itest::addresses(t.pod.name(), "net1") == std::vector<std::string>{"10.77.0.1/24"});
    std::string routes;
    itest::sh("ip -n " + t.pod.name() + " route show 10.200.0.0/16", &routes);
    CHECK(routes.find("via 10.77.0.254 dev net1") != std::string::npos);
    // Tagged for DEL/GC.
    CHECK(l.value("ifalias", "") ==
          "ipoib-cni:plgnet:c-" + std::to_string(&v - &kVersions[0]) + ":net1");
    auto d = t.del("c-" + std::to_string(&v - &kVersions[0]), conf, t.pod.path());
    CHECK(d.exit_code == 0);
    CHECK(d.out.empty());
    t.require_no_child();
  }
  t.require_no_reservation();
}

TEST_CASE("CHECK passes after ADD and fails after tampering") {
  Topology t;
  const auto conf = t.config("1.1.0");
  const std::string ns = t.pod.name();
  struct Tamper {
    std::string what;
    std::string command;
    std::string restore;
    std::string message;  // part of CHECK's error
  };
  const std::vector<Tamper> tampers = {
      {"address removed", "ip -n " + ns + " addr del 10.77.0.1/24 dev net1", "", "lacks address"},
      {"route removed", "ip -n " + ns + " route del 10.200.0.0/16", "", "lacks route"},
      {"MTU changed", "ip -n " + ns + " link set net1 mtu 1300", "", "has MTU 1300"},
      {"link down", "ip -n " + ns + " link set net1 down", "", "is down"},
      {"link removed", "ip -n " + ns + " link del net1", "", "does not exist"},
      // The parent loses carrier (for IPoIB: port down, pkey not in the table): explained.
      {"carrier lost", "ip -n " + t.host.name() + " link set plgpeer down",
       "ip -n " + t.host.name() + " link set plgpeer up", "plgm has no carrier"},
  };
  for (const auto& tamper : tampers) {
    INFO(tamper.what);
    auto r = t.add("chk", conf);
    REQUIRE(r.exit_code == 0);
    auto ok = t.check("chk", conf, r.doc);
    CHECK(ok.exit_code == 0);
    CHECK(ok.out.empty());
    REQUIRE(itest::sh(tamper.command) == 0);
    auto bad = t.check("chk", conf, r.doc);
    CHECK(bad.exit_code == 1);
    CHECK(bad.code() == 104);
    REQUIRE(bad.doc.is_object());
    CHECK(bad.doc["msg"].get<std::string>().find(tamper.message) != std::string::npos);
    if (!tamper.restore.empty()) {
      REQUIRE(itest::sh(tamper.restore) == 0);
    }
    CHECK(t.del("chk", conf, t.pod.path()).exit_code == 0);
    t.require_no_child();
  }
  SECTION("CHECK below 0.4.0 is refused with code 1") {
    auto c = t.config("0.3.1");
    auto r = t.add("old", c);
    REQUIRE(r.exit_code == 0);
    auto bad = t.check("old", c, r.doc);
    CHECK(bad.exit_code == 1);
    CHECK(bad.code() == 1);
    CHECK(t.del("old", c, t.pod.path()).exit_code == 0);
  }
  SECTION("an interface of the same name that is not ours fails CHECK") {
    auto r = t.add("chk", conf);
    REQUIRE(r.exit_code == 0);
    REQUIRE(itest::sh("ip -n " + ns + " link set net1 alias someone-else") == 0);
    auto bad = t.check("chk", conf, r.doc);
    CHECK(bad.exit_code == 1);
    CHECK(bad.doc["msg"].get<std::string>().find("not created by this plugin") !=
          std::string::npos);
    REQUIRE(itest::sh("ip -n " + ns + " link set net1 alias ipoib-cni:plgnet:chk:net1") == 0);
    CHECK(t.del("chk", conf, t.pod.path()).exit_code == 0);
  }
  t.require_no_child();
  t.require_no_reservation();
}

TEST_CASE("DEL is idempotent in every case of the checklist") {
  Topology t;
  const auto conf = t.config("1.0.0");
  auto conf_no_prev = conf;

  SECTION("twice, and without prevResult") {
    REQUIRE(t.add("d1", conf).exit_code == 0);
    CHECK(t.del("d1", conf, t.pod.path()).exit_code == 0);
    CHECK(t.del("d1", conf, t.pod.path()).exit_code == 0);
  }
  SECTION("with prevResult") {
    auto r = t.add("d2", conf);
    REQUIRE(r.exit_code == 0);
    auto with_prev = conf;
    with_prev["prevResult"] = r.doc;
    CHECK(t.del("d2", with_prev, t.pod.path()).exit_code == 0);
  }
  SECTION("with CNI_NETNS empty: the reservation is still released") {
    REQUIRE(t.add("d3", conf).exit_code == 0);
    CHECK(t.del("d3", conf, "").exit_code == 0);
    // The child is still in the pod (its netns was not named); a second DEL with it cleans up.
    CHECK(t.del("d3", conf, t.pod.path()).exit_code == 0);
  }
  SECTION("with the netns deleted") {
    REQUIRE(t.add("d4", conf).exit_code == 0);
    const std::string path = t.pod.path();
    t.pod.remove();
    CHECK(t.del("d4", conf, path).exit_code == 0);
    CHECK(t.del("d4", conf, path).exit_code == 0);
    CHECK(itest::tagged_links(t.host.name()).empty());
  }
  SECTION("never added") {
    CHECK(t.del("never", conf, t.pod.path()).exit_code == 0);
    CHECK(t.del("never", conf, "").exit_code == 0);
  }
  SECTION("after a failed ADD") {
    auto r = t.add("d5", conf, {{"IPOIB_TEST_FAIL_STEP", "up"}});
    CHECK(r.exit_code == 1);
    CHECK(t.del("d5", conf, t.pod.path()).exit_code == 0);
  }
  SECTION("with the master gone") {
    REQUIRE(t.add("d6", conf).exit_code == 0);
    REQUIRE(itest::sh("ip -n " + t.host.name() + " link del plgm") == 0);
    // Deleting the parent took the macvlan child with it; DEL still releases the address.
    CHECK(t.del("d6", conf, t.pod.path()).exit_code == 0);
    REQUIRE(itest::sh("ip -n " + t.host.name() + " link add plgm type veth peer name plgpeer") ==
            0);
    REQUIRE(itest::sh("ip -n " + t.host.name() + " link set plgpeer up") == 0);
    REQUIRE(itest::sh("ip -n " + t.host.name() + " link set plgm up") == 0);
  }
  if (t.pod.ok()) {
    t.require_no_child();
  }
  t.require_no_reservation();
}

TEST_CASE("ADD onto an existing ifname fails, leaks nothing, leaves the interface alone") {
  Topology t;
  const auto conf = t.config("1.0.0");
  const std::string ns = t.pod.name();
  REQUIRE(itest::sh("ip -n " + ns + " link add net1 type veth peer name other1") == 0);
  const auto before = itest::link(ns, "net1");
  REQUIRE(before.is_object());

  auto r = t.add("clash", conf);
  CHECK(r.exit_code == 1);
  CHECK(r.code() != 0);
  CHECK(r.doc["msg"].get<std::string>().find("already exists") != std::string::npos);
  CHECK(itest::tagged_links(t.host.name()).empty());
  CHECK(itest::tagged_links(ns).empty());
  auto after = itest::link(ns, "net1");
  REQUIRE(after.is_object());
  CHECK(after["ifindex"] == before["ifindex"]);
  CHECK(after["linkinfo"]["info_kind"] == "veth");
  // A DEL for that attachment must not delete the untagged interface named net1.
  CHECK(t.del("clash", conf, t.pod.path()).exit_code == 0);
  CHECK(itest::link(ns, "net1").is_object());
  t.require_no_reservation();
}

TEST_CASE("a failure at any ADD step rolls everything back") {
  for (const std::string step :
       {"create", "alias", "move", "rename", "ipam", "mtu", "ipv6", "address", "up", "route"}) {
    DYNAMIC_SECTION("step " << step) {
      Topology t;
      const auto conf = t.config("1.1.0", /*dual_stack=*/true);
      auto r = t.add("rb", conf, {{"IPOIB_TEST_FAIL_STEP", step}});
      CHECK(r.exit_code == 1);
      REQUIRE(r.doc.is_object());
      CHECK(r.doc["msg"].get<std::string>().find("injected failure at step " + step) !=
            std::string::npos);
      t.require_no_child();
      // Only lo is left in the pod.
      CHECK(itest::links(t.pod.name()).size() == 1);
      t.require_no_reservation(/*dual_stack=*/true);
    }
  }
}

namespace {
// Receives ARP frames arriving at `ifname` of netns `netns` (an AF_PACKET socket opened inside
// it; the test process itself returns to its own netns right away).
class ArpListener {
 public:
  ArpListener(const std::string& netns, const std::string& ifname) {
    const int original = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = ::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (original >= 0 && target >= 0 && ::setns(target, CLONE_NEWNET) == 0) {
      fd_ = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ARP));
      sockaddr_ll at{};
      at.sll_family = AF_PACKET;
      at.sll_protocol = htons(ETH_P_ARP);
      at.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
      if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0) {
        ::close(fd_);
        fd_ = -1;
      }
      if (::setns(original, CLONE_NEWNET) != 0) {
        std::abort();  // the rest of the test would run in the wrong netns
      }
    }
    if (original >= 0) ::close(original);
    if (target >= 0) ::close(target);
  }
  ArpListener(const ArpListener&) = delete;
  ArpListener& operator=(const ArpListener&) = delete;
  ~ArpListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] bool ok() const { return fd_ >= 0; }
  // The first gratuitous ARP (sender IP == target IP) for `ipv4` within `timeout_ms`, as the
  // ARP header+payload bytes; empty when none came.
  std::vector<std::uint8_t> gratuitous_for(const std::string& ipv4, int timeout_ms) const {
    in_addr want{};
    ::inet_pton(AF_INET, ipv4.c_str(), &want);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      ::poll(&p, 1, 50);
      std::uint8_t buf[256];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 8) continue;
      const std::size_t hlen = buf[4];
      const std::size_t plen = buf[5];
      if (plen != 4 || static_cast<std::size_t>(n) < 8 + 2 * hlen + 8) continue;
      const std::uint8_t* sender_ip = buf + 8 + hlen;
      const std::uint8_t* target_ip = buf + 8 + 2 * hlen + 4;
      if (std::memcmp(sender_ip, &want, 4) == 0 && std::memcmp(target_ip, &want, 4) == 0) {
        return {buf, buf + n};
      }
    }
    return {};
  }

 private:
  int fd_ = -1;
};
}  // namespace

TEST_CASE("ADD announces its IPv4 address with a gratuitous ARP in the link's format") {
  Topology t;
  ArpListener listener(t.host.name(), "plgpeer");
  REQUIRE(listener.ok());
  auto r = t.add("garp", t.config("1.0.0"));
  REQUIRE(r.exit_code == 0);
  const auto arp = listener.gratuitous_for("10.77.0.1", 2000);
  REQUIRE_FALSE(arp.empty());
  CHECK(arp[0] == 0x00);
  CHECK(arp[1] == 0x01);  // hardware type 1: the macvlan stand-in is Ethernet (IPoIB: 32)
  CHECK(arp[4] == 6);     // hardware address length of the link (IPoIB: 20)
  CHECK(arp[7] == 1);     // a request, as the kernel's arp_notify sends it
  // The sender hardware address is the pod interface's.
  const std::string mac = r.doc["interfaces"][0]["mac"];
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", arp[8], arp[9], arp[10],
                arp[11], arp[12], arp[13]);
  CHECK(mac == text);
  CHECK(t.del("garp", t.config("1.0.0"), t.pod.path()).exit_code == 0);
}

TEST_CASE("layer 2 only: no ipam") {
  Topology t;
  auto conf = t.config("1.1.0");
  conf.erase("ipam");
  auto r = t.add("l2", conf);
  REQUIRE(r.exit_code == 0);
  CHECK(r.doc["interfaces"][0]["name"] == "net1");
  CHECK_FALSE(r.doc.contains("ips"));
  CHECK(itest::addresses(t.pod.name(), "net1").empty());
  CHECK(t.check("l2", conf, r.doc).exit_code == 0);
  CHECK(t.del("l2", conf, t.pod.path()).exit_code == 0);
  t.require_no_child();
  // 0.2.0 results cannot express an attachment without addresses: refused, rolled back.
  conf["cniVersion"] = "0.2.0";
  auto old = t.add("l2old", conf);
  CHECK(old.exit_code == 1);
  CHECK(old.code() == 1);
  t.require_no_child();
}

TEST_CASE("dual stack: IPv4 and IPv6 from ipRanges") {
  Topology t;
  const auto conf = t.config("1.0.0", /*dual_stack=*/true);
  auto r = t.add("ds", conf);
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.doc["ips"].size() == 2);
  CHECK(r.doc["ips"][0]["address"] == "10.77.0.1/24");
  CHECK(r.doc["ips"][1]["address"] == "fd77::1/64");
  CHECK(r.doc["ips"][1]["interface"] == 0);
  const auto addrs = itest::addresses(t.pod.name(), "net1");
  CHECK(std::find(addrs.begin(), addrs.end(), "fd77::1/64") != addrs.end());
  CHECK(std::find(addrs.begin(), addrs.end(), "10.77.0.1/24") != addrs.end());
  std::string dad;
  itest::sh("ip netns exec " + t.pod.name() + " sysctl -n net.ipv6.conf.net1.disable_ipv6", &dad);
  CHECK(dad == "0\n");
  auto ok = t.check("ds", conf, r.doc);
  CHECK(ok.exit_code == 0);
  CHECK(t.del("ds", conf, t.pod.path()).exit_code == 0);
  t.require_no_child();
  t.require_no_reservation(true);
}

TEST_CASE("refunded children: DEL and GC delete tagged links in the host, never untagged ones") {
  Topology t;
  const std::string h = t.host.name();
  auto conf = t.config("1.1.0");
  auto macvlan = [&](const std::string& name, const std::string& alias) {
    REQUIRE(itest::sh("ip -n " + h + " link add " + name + " link plgm type macvlan mode bridge") ==
            0);
    if (!alias.empty()) {
      REQUIRE(itest::sh("ip -n " + h + " link set " + name + " alias " + alias) == 0);
    }
  };
  // What the kernel leaves when a pod netns dies without DEL: the child back in the host as
  // dev<N>, still tagged. Plus an untagged link, and an untagged net1.
  macvlan("dev901", "ipoib-cni:plgnet:gone1:net1");
  macvlan("dev902", "ipoib-cni:plgnet:gone2:net1");
  macvlan("dev903", "ipoib-cni:plgnet:alive:net1");
  macvlan("dev904", "");
  macvlan("net1", "");

  // DEL of gone1 (netns already gone: CNI_NETNS empty) removes its refunded child only.
  CHECK(t.del("gone1", conf, "").exit_code == 0);
  CHECK(itest::link(h, "dev901").is_null());
  CHECK(itest::link(h, "dev902").is_object());
  CHECK(itest::link(h, "net1").is_object());

  // GC without any attachment list destroys nothing.
  CHECK(t.call("GC", "", "", conf, {}, "").exit_code == 0);
  CHECK(itest::link(h, "dev902").is_object());

  // GC below 1.1.0 is refused.
  auto old = t.config("1.0.0");
  auto refused = t.call("GC", "", "", old, {}, "");
  CHECK(refused.exit_code == 1);
  CHECK(refused.code() == 1);

  // GC with the valid list keeps "alive", deletes "gone2", never touches untagged links.
  conf["cni.dev/valid-attachments"] = json::array({{{"containerID", "alive"}, {"ifname", "net1"}}});
  auto gc = t.call("GC", "", "", conf, {}, "");
  CHECK(gc.exit_code == 0);
  CHECK(gc.out.empty());
  CHECK(itest::link(h, "dev902").is_null());
  CHECK(itest::link(h, "dev903").is_object());
  CHECK(itest::link(h, "dev904").is_object());
  CHECK(itest::link(h, "net1").is_object());

  // The legacy key alone works too.
  conf.erase("cni.dev/valid-attachments");
  conf["cni.dev/attachments"] = json::array();
  CHECK(t.call("GC", "", "", conf, {}, "").exit_code == 0);
  CHECK(itest::link(h, "dev903").is_null());
  CHECK(itest::link(h, "dev904").is_object());
}

TEST_CASE("GC of one network never deletes another network's child on the same master") {
  Topology t;
  const std::string h = t.host.name();
  // Network B's ADD (a valid attachment of B), then its child is refunded to the host.
  auto conf_b = t.config("1.1.0");
  conf_b["name"] = "plgnetb";
  conf_b["ipam"]["range"] = "10.79.0.0/24";
  conf_b["ipam"].erase("routes");
  itest::NetnsGuard pod_b(unique("b"));
  REQUIRE(pod_b.ok());
  REQUIRE(t.call("ADD", "podb", pod_b.path(), conf_b).exit_code == 0);
  REQUIRE(itest::sh("ip -n " + pod_b.name() + " link set net1 netns " + h) == 0);
  REQUIRE(itest::link(h, "net1").value("ifalias", "") == "ipoib-cni:plgnetb:podb:net1");
  // A child tagged by the previous release's format (no network): whose, nobody can prove.
  REQUIRE(itest::sh("ip -n " + h + " link add dev905 link plgm type macvlan mode bridge") == 0);
  REQUIRE(itest::sh("ip -n " + h + " link set dev905 alias ipoib-cni:legacy1:net1") == 0);

  // Network A's GC, whose valid list knows only A's attachments.
  auto conf_a = t.config("1.1.0");
  conf_a["cni.dev/valid-attachments"] = json::array({{{"containerID", "a1"}, {"ifname", "net1"}}});
  CHECK(t.call("GC", "", "", conf_a, {}, "").exit_code == 0);
  CHECK(itest::link(h, "net1").is_object());
  CHECK(itest::link(h, "dev905").is_object());

  // B's own GC with B's valid list keeps it too; DEL of the legacy attachment removes its child.
  conf_b["cni.dev/valid-attachments"] =
      json::array({{{"containerID", "podb"}, {"ifname", "net1"}}});
  CHECK(t.call("GC", "", "", conf_b, {}, "").exit_code == 0);
  CHECK(itest::link(h, "net1").is_object());
  CHECK(t.del("legacy1", t.config("1.1.0"), "").exit_code == 0);
  CHECK(itest::link(h, "dev905").is_null());
  CHECK(t.call("DEL", "podb", "", conf_b).exit_code == 0);
  CHECK(itest::link(h, "net1").is_null());
}

namespace {
// The plugin's temporary child name for an attachment (tag.h: "ipt" + low 48 bits of
// FNV-1a-64 over containerID, NUL, ifname), recomputed here independently of the plugin.
std::string temporary_name(const std::string& container_id, const std::string& ifname) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  const std::string bytes = container_id + std::string(1, '\0') + ifname;
  for (unsigned char c : bytes) {
    h = (h ^ c) * 0x100000001b3ULL;
  }
  char name[16];
  std::snprintf(name, sizeof name, "ipt%012llx",
                static_cast<unsigned long long>(h & 0xffffffffffffULL));
  return name;
}

// What an ADD records before it creates the child (intent.h), written here by hand.
void write_intent(const Topology& t, const std::string& container_id,
                  const std::string& network = "plgnet") {
  const std::string path = t.intents.path() + "/" + temporary_name(container_id, "net1");
  FILE* f = std::fopen(path.c_str(), "w");
  REQUIRE(f != nullptr);
  std::fprintf(f, "%s\n",
               json({{"network", network}, {"containerID", container_id}, {"ifname", "net1"}})
                   .dump()
                   .c_str());
  std::fclose(f);
}

bool intent_exists(const Topology& t, const std::string& container_id) {
  return ::access((t.intents.path() + "/" + temporary_name(container_id, "net1")).c_str(), F_OK) ==
         0;
}
}  // namespace

TEST_CASE("untagged temporary children of killed ADDs: removed only when an intent proves them") {
  Topology t;
  const std::string h = t.host.name();
  const std::string p = t.pod.name();
  auto conf = t.config("1.1.0");
  auto untagged = [&](const std::string& netns, const std::string& name) {
    return itest::sh("ip -n " + netns + " link add " + name +
                     " link plgm type macvlan mode bridge") == 0;
  };
  // What a SIGKILL between create and tag leaves: the intent, and the child under the
  // attachment's temporary name without alias — in the pod (created there) or in the host
  // (refunded by a dying netns).
  const std::string k1 = temporary_name("killed1", "net1");
  REQUIRE(itest::sh("ip -n " + h + " link add " + k1 + " link plgm type macvlan mode bridge") == 0);
  REQUIRE(itest::sh("ip -n " + h + " link set " + k1 + " netns " + p) == 0);
  write_intent(t, "killed1");
  const std::string k2 = temporary_name("killed2", "net1");
  REQUIRE(untagged(h, k2));
  write_intent(t, "killed2");
  // Not ours although named like killed3's child and with an intent: another kind (veth), or
  // tagged by someone else; and killed5's, named exactly so but without an intent (hand-made).
  const std::string k3 = temporary_name("killed3", "net1");
  REQUIRE(itest::sh("ip -n " + h + " link add " + k3 + " type veth peer name plgv") == 0);
  write_intent(t, "killed3");
  const std::string k4 = temporary_name("killed4", "net1");
  REQUIRE(untagged(h, k4));
  REQUIRE(itest::sh("ip -n " + h + " link set " + k4 + " alias somebody-else") == 0);
  write_intent(t, "killed4");
  const std::string k5 = temporary_name("killed5", "net1");
  REQUIRE(untagged(h, k5));
  // And killed6's intent names another network: not this network's DEL to take.
  const std::string k6 = temporary_name("killed6", "net1");
  REQUIRE(untagged(h, k6));
  write_intent(t, "killed6", "othernet");

  CHECK(t.del("killed1", conf, t.pod.path()).exit_code == 0);
  CHECK(itest::link(p, k1).is_null());
  CHECK_FALSE(intent_exists(t, "killed1"));
  CHECK(t.del("killed2", conf, "").exit_code == 0);
  CHECK(itest::link(h, k2).is_null());
  CHECK(t.del("killed3", conf, "").exit_code == 0);
  CHECK(itest::link(h, k3).is_object());
  CHECK(t.del("killed4", conf, "").exit_code == 0);
  CHECK(itest::link(h, k4).is_object());
  CHECK(t.del("killed5", conf, "").exit_code == 0);
  CHECK(itest::link(h, k5).is_object());
  CHECK(t.del("killed6", conf, "").exit_code == 0);
  CHECK(itest::link(h, k6).is_object());
  CHECK(intent_exists(t, "killed6"));
  for (const auto& name : {k3, k4, k5, k6}) {
    itest::sh("ip -n " + h + " link del " + name);
  }

  SECTION("a retried ADD replaces the stale temporary child its own intent names") {
    const std::string k7 = temporary_name("retry", "net1");
    REQUIRE(itest::sh("ip -n " + h + " link add " + k7 + " link plgm type macvlan mode bridge") ==
            0);
    REQUIRE(itest::sh("ip -n " + h + " link set " + k7 + " netns " + p) == 0);
    write_intent(t, "retry");
    auto r = t.add("retry", conf);
    REQUIRE(r.exit_code == 0);
    CHECK(itest::link(p, k7).is_null());
    CHECK(itest::link(p, "net1").value("ifalias", "") == "ipoib-cni:plgnet:retry:net1");
    CHECK_FALSE(intent_exists(t, "retry"));  // removed once the child was tagged
    CHECK(t.del("retry", conf, t.pod.path()).exit_code == 0);
    t.require_no_child();
  }
  SECTION("a retried ADD leaves a hand-made link of the temporary name alone") {
    const std::string k8 = temporary_name("handmade", "net1");
    REQUIRE(itest::sh("ip -n " + h + " link add " + k8 + " link plgm type macvlan mode bridge") ==
            0);
    REQUIRE(itest::sh("ip -n " + h + " link set " + k8 + " netns " + p) == 0);
    auto r = t.add("handmade", conf);
    CHECK(r.exit_code == 1);
    CHECK(itest::link(p, k8).is_object());
    CHECK_FALSE(intent_exists(t, "handmade"));  // the failed ADD took its intent back
    itest::sh("ip -n " + p + " link del " + k8);
  }
  SECTION("GC deletes untagged temporary children of invalid attachments only with an intent") {
    const std::string dead = temporary_name("dead", "net1");
    const std::string live = temporary_name("live", "net1");
    const std::string shaped = temporary_name("shaped", "net1");
    REQUIRE(untagged(h, dead));
    write_intent(t, "dead");
    REQUIRE(untagged(h, live));
    write_intent(t, "live");
    REQUIRE(untagged(h, shaped));  // a hand-made macvlan with the temporary-name shape
    REQUIRE(untagged(h, "iptnothex00000z"));
    conf["cni.dev/valid-attachments"] =
        json::array({{{"containerID", "live"}, {"ifname", "net1"}}});
    CHECK(t.call("GC", "", "", conf, {}, "").exit_code == 0);
    CHECK(itest::link(h, dead).is_null());
    CHECK_FALSE(intent_exists(t, "dead"));
    CHECK(itest::link(h, live).is_object());
    CHECK(itest::link(h, shaped).is_object());
    CHECK(itest::link(h, "iptnothex00000z").is_object());
    for (const auto& name : {live, shaped, std::string("iptnothex00000z")}) {
      itest::sh("ip -n " + h + " link del " + name);
    }
  }
  SECTION("an intent directory others can write proves nothing") {
    const std::string dead = temporary_name("dead2", "net1");
    REQUIRE(untagged(h, dead));
    write_intent(t, "dead2");
    REQUIRE(::chmod(t.intents.path().c_str(), 0777) == 0);
    CHECK(t.del("dead2", conf, "").exit_code == 0);
    CHECK(itest::link(h, dead).is_object());
    // And ADD refuses to record intents there, saying how to fix it.
    auto r = t.add("c-untrusted", conf);
    CHECK(r.exit_code == 1);
    CHECK(r.code() == 5);
    CHECK(r.doc["msg"].get<std::string>().find("writable by group or others") != std::string::npos);
    t.require_no_child();
    REQUIRE(::chmod(t.intents.path().c_str(), 0700) == 0);
    itest::sh("ip -n " + h + " link del " + dead);
  }
}

TEST_CASE("GC releases reservations of attachments that are not valid") {
  Topology t;
  auto conf = t.config("1.1.0");
  REQUIRE(t.add("keep", conf).exit_code == 0);
  itest::NetnsGuard other(unique("o"));
  REQUIRE(other.ok());
  REQUIRE(t.call("ADD", "drop", other.path(), conf).exit_code == 0);
  other.remove();  // macvlan children die with their netns; the reservation stays
  conf["cni.dev/valid-attachments"] = json::array({{{"containerID", "keep"}, {"ifname", "net1"}}});
  CHECK(t.call("GC", "", "", conf, {}, "").exit_code == 0);
  // "drop"'s 10.77.0.2 is free again: the next container gets it.
  itest::NetnsGuard next(unique("n"));
  auto r = t.call("ADD", "next", next.path(), t.config("1.0.0"));
  REQUIRE(r.exit_code == 0);
  CHECK(r.doc["ips"][0]["address"] == "10.77.0.2/24");
  CHECK(t.call("DEL", "next", next.path(), conf).exit_code == 0);
  CHECK(t.del("keep", conf, t.pod.path()).exit_code == 0);
}

TEST_CASE("STATUS: 0 when the master is up, 50 otherwise") {
  Topology t;
  const auto conf = t.config("1.1.0");
  auto ok = t.call("STATUS", "", "", conf, {}, "");
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.empty());
  REQUIRE(itest::sh("ip -n " + t.host.name() + " link set plgm down") == 0);
  auto down = t.call("STATUS", "", "", conf, {}, "");
  CHECK(down.exit_code == 1);
  CHECK(down.code() == 50);
  // Every message names the master the same way.
  CHECK(down.doc["msg"] == "master plgm is down");
  auto missing_conf = conf;
  missing_conf["master"] = "plgnone";
  auto missing = t.call("STATUS", "", "", missing_conf, {}, "");
  CHECK(missing.code() == 50);
  CHECK(missing.doc["msg"] == "master plgnone does not exist");
  auto old = t.call("STATUS", "", "", t.config("1.0.0"), {}, "");
  CHECK(old.code() == 1);
}

TEST_CASE("configuration errors are code 7 and touch nothing") {
  Topology t;
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{{"master", "plgnone"},
                                                                            {"master", ""},
                                                                            {"pkey", "0x8000"},
                                                                            {"pkey", 0},
                                                                            {"mode", "bogus"},
                                                                            {"mtu", 70000},
                                                                            {"umcast", "yes"}}) {
    INFO(key << "=" << value.dump());
    auto conf = t.config("1.0.0");
    conf[key] = value;
    auto r = t.add("cfg", conf);
    CHECK(r.exit_code == 1);
    CHECK(r.code() == 7);
    CHECK(r.doc["msg"].get<std::string>().rfind(key + ":", 0) == 0);
    t.require_no_child();
  }
  // A master that is down is refused before anything is created.
  REQUIRE(itest::sh("ip -n " + t.host.name() + " link set plgm down") == 0);
  auto r = t.add("cfg", t.config("1.0.0"));
  CHECK(r.code() == 7);
  t.require_no_child();
  REQUIRE(itest::sh("ip -n " + t.host.name() + " link set plgm up") == 0);
  t.require_no_reservation();
}

TEST_CASE("delegated IPAM (host-local from CNI_PATH): ADD, CHECK, DEL and rollback") {
  if (itest::sh("test -x /usr/lib/cni/host-local") != 0) {
    WARN("skipped: /usr/lib/cni/host-local not installed");
    return;
  }
  Topology t;
  itest::TempDir data;
  json conf = {{"cniVersion", "1.0.0"},
               {"name", "plgnet"},
               {"type", "ipoib"},
               {"master", "plgm"},
               {"ipam",
                {{"type", "host-local"},
                 {"dataDir", data.path()},
                 {"ranges", json::array({json::array({{{"subnet", "10.78.0.0/24"}}})})}}}};
  auto r = t.add("hl", conf);
  REQUIRE(r.exit_code == 0);
  CHECK(r.doc["ips"][0]["address"] == "10.78.0.2/24");
  CHECK(r.doc["ips"][0]["interface"] == 0);
  CHECK(t.check("hl", conf, r.doc).exit_code == 0);
  CHECK(t.del("hl", conf, t.pod.path()).exit_code == 0);
  std::string files;
  itest::sh("ls " + data.path() + "/plgnet", &files);
  CHECK(files.find("10.78.0.2") == std::string::npos);
  // Rollback: the delegate's reservation is released with a delegated DEL.
  auto failed = t.add("hl2", conf, {{"IPOIB_TEST_FAIL_STEP", "address"}});
  CHECK(failed.exit_code == 1);
  itest::sh("ls " + data.path() + "/plgnet", &files);
  CHECK(files.find("10.78.0.") == std::string::npos);
  t.require_no_child();
}

TEST_CASE("parallel ADD and DEL of 16 containers") {
  Topology t;
  const auto conf = t.config("1.0.0");
  constexpr int kCount = 16;
  std::vector<std::unique_ptr<itest::NetnsGuard>> pods;
  for (int i = 0; i < kCount; ++i) {
    pods.push_back(std::make_unique<itest::NetnsGuard>(unique("par")));
    REQUIRE(pods.back()->ok());
  }
  std::vector<itest::Running> running;
  for (int i = 0; i < kCount; ++i) {
    running.push_back(itest::start(
        kBinary, t.host.name(),
        itest::cni_env("ADD", "par" + std::to_string(i), pods[i]->path(), "net1"), conf.dump()));
  }
  std::set<std::string> addresses;
  for (int i = 0; i < kCount; ++i) {
    auto r = itest::finish(running[i]);
    INFO("container " << i << ": " << r.out);
    CHECK(r.exit_code == 0);
    REQUIRE(r.doc.is_object());  // exactly one JSON document
    addresses.insert(r.doc["ips"][0]["address"].get<std::string>());
    CHECK(itest::addresses(pods[i]->name(), "net1") ==
          std::vector<std::string>{r.doc["ips"][0]["address"].get<std::string>()});
  }
  CHECK(addresses.size() == kCount);
  running.clear();
  for (int i = 0; i < kCount; ++i) {
    running.push_back(itest::start(
        kBinary, t.host.name(),
        itest::cni_env("DEL", "par" + std::to_string(i), pods[i]->path(), "net1"), conf.dump()));
  }
  for (int i = 0; i < kCount; ++i) {
    auto r = itest::finish(running[i]);
    CHECK(r.exit_code == 0);
    CHECK(r.out.empty());
    CHECK(itest::tagged_links(pods[i]->name()).empty());
  }
  CHECK(itest::tagged_links(t.host.name()).empty());
  t.require_no_reservation();
}

namespace {
// Runs one CNI call in a fresh pids cgroup; returns the outcome and the most processes that were
// ever in the group at once (the plugin itself is 1).
std::pair<itest::CniOutcome, int> call_counting_processes(const Topology& t,
                                                          const std::string& command,
                                                          const std::string& cni_path,
                                                          const json& conf) {
  // The cap keeps a runaway chain (the defect) bounded; the peak is what the test asserts.
  itest::PidsCgroup group(unique("cg"), 16);
  REQUIRE(group.ok());
  auto env = itest::cni_env(command, command == "GC" || command == "STATUS" ? "" : "self1",
                            command == "ADD" || command == "CHECK" ? t.pod.path() : "",
                            command == "GC" || command == "STATUS" ? "" : "net1");
  env["CNI_PATH"] = cni_path;
  env["IPOIB_TEST_INTENT_DIR"] = t.intents.path();
  auto outcome = itest::run(kBinary, t.host.name(), env, conf.dump(), group.procs());
  return {outcome, group.peak()};
}
}  // namespace

TEST_CASE("an IPAM delegate that is this plugin itself is refused without spawning anything") {
  Topology t;
  itest::TempDir bin;
  // Reached through a link and under another name: caught by device and inode.
  REQUIRE(::symlink(kBinary.c_str(), (bin.path() + "/ipoib").c_str()) == 0);
  REQUIRE(::symlink(kBinary.c_str(), (bin.path() + "/my-ipam").c_str()) == 0);
  for (const std::string type : {"ipoib", "my-ipam"}) {
    auto conf = t.config("1.1.0");
    conf["ipam"] = {{"type", type}};
    auto with_prev = conf;
    with_prev["prevResult"] = {{"cniVersion", "1.1.0"}, {"interfaces", json::array()}};
    for (const std::string command : {"ADD", "DEL", "CHECK", "STATUS", "GC"}) {
      INFO(type << " " << command);
      auto [r, peak] =
          call_counting_processes(t, command, bin.path(), command == "CHECK" ? with_prev : conf);
      CHECK(peak == 1);  // the plugin alone: no delegate was started
      if (command == "DEL") {
        CHECK(r.exit_code == 0);  // DEL succeeds, without recursing
        CHECK(r.out.empty());
      } else {
        CHECK(r.exit_code == 1);
        CHECK(r.code() == 7);
        REQUIRE(r.doc.is_object());
        CHECK(r.doc["msg"].get<std::string>().find("ipam.type: \"" + type + "\" is this plugin") !=
              std::string::npos);
      }
    }
  }
  t.require_no_child();
}

TEST_CASE("delegation depth is bounded even through a wrapper that is not this file") {
  Topology t;
  itest::TempDir bin;
  // A script that runs the plugin: another inode at every level, so only the depth bound stops
  // the chain plugin -> wrapper -> plugin -> ...
  const std::string wrapper = bin.path() + "/wrap-ipam";
  FILE* f = std::fopen(wrapper.c_str(), "w");
  REQUIRE(f != nullptr);
  std::fprintf(f, "#!/bin/sh\nexec '%s' \"$@\"\n", kBinary.c_str());
  std::fclose(f);
  REQUIRE(::chmod(wrapper.c_str(), 0755) == 0);
  auto conf = t.config("1.1.0");
  conf["ipam"] = {{"type", "wrap-ipam"}};
  auto [r, peak] = call_counting_processes(t, "STATUS", bin.path(), conf);
  CHECK(r.code() == 7);
  REQUIRE(r.doc.is_object());
  CHECK(r.doc["msg"].get<std::string>().find("delegation is already 3 deep") != std::string::npos);
  CHECK(peak == 4);  // the plugin and three nested delegates (kMaxDelegationDepth), no more
}

TEST_CASE("CNI_IFNAME with % (a kernel name template) is refused with code 4") {
  Topology t;
  const auto conf = t.config("1.1.0");
  for (const std::string ifname : {"net%d", "%d", "n%"}) {
    INFO(ifname);
    auto r = t.call("ADD", "pct", t.pod.path(), conf, {}, ifname);
    CHECK(r.exit_code == 1);
    CHECK(r.code() == 4);
    REQUIRE(r.doc.is_object());
    CHECK(r.doc["msg"].get<std::string>().find('%') != std::string::npos);
    CHECK(itest::links(t.pod.name()).size() == 1);  // only lo: nothing created, nothing renamed
  }
  t.require_no_reservation();
}

TEST_CASE("DEL with CNI_NETNS naming a FIFO or a regular file succeeds without blocking") {
  Topology t;
  itest::TempDir dir;
  const std::string fifo = dir.path() + "/fifo";
  const std::string file = dir.path() + "/file";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  REQUIRE(itest::sh("echo not-a-netns > " + file) == 0);
  const auto conf = t.config("1.0.0");
  for (const std::string& netns : {fifo, file}) {
    INFO(netns);
    REQUIRE(t.add("odd", conf).exit_code == 0);
    auto env = itest::cni_env("DEL", "odd", netns, "net1");
    env["IPOIB_TEST_INTENT_DIR"] = t.intents.path();
    itest::Running running = itest::start(kBinary, t.host.name(), env, conf.dump());
    // A hang guard, not a speed target: a DEL blocked in open(2) never exits on its own.
    bool exited = false;
    for (int i = 0; i < 300 && !exited; ++i) {
      pollfd p{running.stdout_fd, POLLIN, 0};
      exited = ::poll(&p, 1, 100) > 0 && (p.revents & (POLLHUP | POLLIN)) != 0;
    }
    if (!exited) {
      ::kill(running.pid, SIGKILL);
    }
    auto r = itest::finish(running);
    CHECK(exited);
    CHECK(r.exit_code == 0);
    CHECK(r.out.empty());
    // The reservation went; the child (in a netns DEL was not told about) goes with the next DEL.
    CHECK(t.del("odd", conf, t.pod.path()).exit_code == 0);
    t.require_no_child();
  }
  t.require_no_reservation();
}

TEST_CASE("config errors come first and together, the IPAM section included") {
  Topology t;
  auto no_master = t.config("1.1.0");
  no_master.erase("master");
  no_master["ipam"]["range"] = "10.77.0.0/33";
  auto r = t.add("order", no_master);
  CHECK(r.code() == 7);
  REQUIRE(r.doc.is_object());
  const std::string both = r.doc["msg"];
  CHECK(both.find("master: required") != std::string::npos);
  CHECK(both.find("ipam.range") != std::string::npos);
  // A bad range is a config error even on a node where the master does not exist: reported
  // before any kernel lookup, by every verb that validates the config.
  auto absent_master = t.config("1.1.0");
  absent_master["master"] = "plgnone";
  absent_master["ipam"]["range"] = "10.77.0.0/33";
  for (const std::string command : {"ADD", "CHECK", "STATUS", "GC"}) {
    INFO(command);
    auto conf = absent_master;
    if (command == "CHECK") {
      conf["prevResult"] = {{"cniVersion", "1.1.0"}};
    }
    const bool attachment = command == "ADD" || command == "CHECK";
    auto bad = t.call(command, attachment ? "order" : "", attachment ? t.pod.path() : "", conf, {},
                      attachment ? "net1" : "");
    CHECK(bad.code() == 7);
    REQUIRE(bad.doc.is_object());
    const std::string msg = bad.doc["msg"];
    CHECK(msg.find("ipam.range") != std::string::npos);
    CHECK(msg.find("does not exist") == std::string::npos);
  }
  t.require_no_child();
}

TEST_CASE("CHECK without a cached result says so") {
  Topology t;
  const auto conf = t.config("1.1.0");
  REQUIRE(t.add("nocache", conf).exit_code == 0);
  auto r = t.call("CHECK", "nocache", t.pod.path(), conf);
  CHECK(r.exit_code == 1);
  REQUIRE(r.doc.is_object());
  const std::string msg = r.doc["msg"];
  CHECK(msg.find("no cached result for attachment nocache/net1") != std::string::npos);
  CHECK(r.code() != 7);  // the configuration is fine
  CHECK(t.del("nocache", conf, t.pod.path()).exit_code == 0);
}

TEST_CASE("ipoib-testkind --version answers like the product") {
  std::string out;
  REQUIRE(itest::sh("'" + kBinary + "' --version", &out) == 0);
  CHECK(out.rfind("ipoib-testkind ", 0) == 0);
  CHECK(out.find("CNI spec versions: ") != std::string::npos);
  CHECK(out.find("1.1.0") != std::string::npos);
}

int main(int argc, char** argv) {
  // A plugin that exits before reading stdin must fail its test, not kill this process.
  std::signal(SIGPIPE, SIG_IGN);
  std::string why;
  if (!itest::can_run_privileged(&why)) {
    std::fprintf(stderr, "SKIP integration.plugin: %s\n", why.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
