// Real-kernel tests of the netns and netlink modules. Each test case builds its own anonymous
// network namespaces (NetnsHandle::create): they vanish with their handles, so a failing or
// crashing test leaves nothing behind. Needs root; main() exits 77 (skip) otherwise.
#define CATCH_CONFIG_RUNNER
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "golden_file.h"
#include "ipoib/base/fd.h"
#include "ipoib/netlink/address.h"
#include "ipoib/netlink/link.h"
#include "ipoib/netlink/route.h"
#include "ipoib/netns/netns.h"
#include "netlink_testing.h"

using namespace ipoib;
using namespace ipoib::netlink;
using namespace ipoib::netlink::testing;
using netns::NetnsHandle;
using netns::ScopedNetns;

namespace {

// Unique names: module prefix + pid (+ a suffix), at most 15 bytes.
std::string name(const char* role) {
  return std::string("nl") + role + std::to_string(::getpid() % 1000000);
}

template <class T>
T must(Result<T> r) {
  if (!r.ok()) {
    FAIL(r.error().msg() << " [" << r.error().details() << "]");
  }
  return std::move(r).value();
}

void must_ok(const Status& s) {
  if (!s.ok()) {
    FAIL(s.error().msg() << " [" << s.error().details() << "]");
  }
}

// A fresh network namespace with a socket opened inside it.
struct TestNetns {
  NetnsHandle handle = must(NetnsHandle::create());
  NetlinkSocket sock = open_inside(handle);

  static NetlinkSocket open_inside(const NetnsHandle& h) {
    auto scope = must(ScopedNetns::enter(h));
    return must(NetlinkSocket::open());
  }
};

LinkInfo make_veth_parent(TestNetns& ns, const std::string& parent, const std::string& peer) {
  must_ok(ns.sock.request(must(build_veth_pair_request({parent, peer})), "add veth"));
  auto link = must(get_link_by_name(ns.sock, parent));
  REQUIRE(link.has_value());
  return *link;
}

std::string alias_tag() { return "ipoib-cni-test:" + std::to_string(::getpid()) + ":net1"; }

// Tags a link the way the plugin does: the kernel ignores IFLA_IFALIAS in a create request
// (rtnl_create_link never reads it), so the tag is a second request; returns the link re-read.
LinkInfo tagged(NetlinkSocket& sock, const LinkInfo& link) {
  must_ok(set_link_alias(sock, link.ifindex, alias_tag()));
  return *must(get_link_by_index(sock, link.ifindex));
}

}  // namespace

TEST_CASE("create a macvlan child with an alias tag and read it back") {
  TestNetns host;
  const LinkInfo parent = make_veth_parent(host, name("p"), name("q"));
  const auto req = must(build_macvlan_child_request(
      {.parent_ifindex = parent.ifindex, .name = name("m"), .netns_fd = {}}));
  const LinkInfo child = tagged(host.sock, must(create_link(host.sock, req)));
  CHECK(child.name == name("m"));
  CHECK(child.kind == "macvlan");
  CHECK(child.parent_ifindex == parent.ifindex);
  CHECK(child.macvlan_mode == static_cast<std::uint32_t>(MACVLAN_MODE_BRIDGE));
  CHECK(child.alias == alias_tag());
  CHECK(child.arphrd_type == kArphrdEther);
  CHECK(child.hw_address.size() == 6);
  CHECK(child.broadcast == Bytes(6, 0xff));
  CHECK(child.admin_state() == AdminState::kDown);

  SECTION("find by alias tag, exact and prefix") {
    auto exact = must(find_links_by_alias(host.sock, alias_tag(), AliasMatch::kExact));
    REQUIRE(exact.size() == 1);
    CHECK(exact[0].ifindex == child.ifindex);
    auto prefix = must(find_links_by_alias(host.sock, "ipoib-cni-test:", AliasMatch::kPrefix));
    CHECK(prefix.size() == 1);
    CHECK(must(find_links_by_alias(host.sock, "ipoib-cni-test:", AliasMatch::kExact)).empty());
    CHECK(must(find_links_by_alias(host.sock, "", AliasMatch::kPrefix)).empty());
    must_ok(set_link_alias(host.sock, child.ifindex, "other"));
    CHECK(must(find_links_by_alias(host.sock, alias_tag(), AliasMatch::kExact)).empty());
    CHECK(must(get_link_by_index(host.sock, child.ifindex))->alias == "other");
  }

  SECTION("list links of one kind: the kernel filters the dump, the veths are not returned") {
    const auto all = must(list_links(host.sock));
    CHECK(all.size() == 4);  // lo, the veth pair, the macvlan
    const auto macvlans = must(list_links(host.sock, "macvlan"));
    REQUIRE(macvlans.size() == 1);
    CHECK(macvlans[0].ifindex == child.ifindex);
    CHECK(macvlans[0].alias == alias_tag());
    CHECK(must(list_links(host.sock, "veth")).size() == 2);
    // A kind the kernel does not know: it cannot filter, this module still does.
    CHECK(must(list_links(host.sock, "nosuchkind")).empty());
  }

  SECTION("EEXIST on a name collision, recognisable by errno") {
    auto again = create_link(host.sock, req);
    REQUIRE_FALSE(again.ok());
    CHECK(kernel_errno(again.error()) == EEXIST);
    CHECK(again.error().code() == ErrorCode::kNetlinkFailure);
    CHECK(again.error().msg().find(name("m")) != std::string::npos);
  }

  SECTION("delete is idempotent: the second time reports kAbsent") {
    CHECK(must(delete_link(host.sock, child.ifindex)) == DeleteOutcome::kDeleted);
    CHECK(must(delete_link(host.sock, child.ifindex)) == DeleteOutcome::kAbsent);
    CHECK_FALSE(must(get_link_by_index(host.sock, child.ifindex)).has_value());
    CHECK_FALSE(must(get_link_by_name(host.sock, name("m"))).has_value());
  }
}

TEST_CASE("a missing parent is an error the caller can read") {
  TestNetns host;
  auto r =
      create_link(host.sock, must(build_macvlan_child_request(
                                 {.parent_ifindex = 999999, .name = name("m"), .netns_fd = {}})));
  REQUIRE_FALSE(r.ok());
  CHECK(kernel_errno(r.error()) == ENODEV);
}

TEST_CASE("an ipoib NEWLINK on a kernel without IPoIB is refused as an unknown kind") {
  TestNetns host;
  const LinkInfo parent = make_veth_parent(host, name("p"), name("q"));
  auto r = create_link(host.sock, must(build_ipoib_child_request({.parent_ifindex = parent.ifindex,
                                                                  .name = name("i"),
                                                                  .pkey = 0x8001,
                                                                  .mode = IpoibMode::kDatagram,
                                                                  .umcast = Umcast::kOff,
                                                                  .netns_fd = {}})));
  if (r.ok()) {
    // A kernel with ib_ipoib loaded refuses a veth parent instead (ENODEV): not this host.
    FAIL("ipoib child created on a veth parent: " << r->name);
  }
  const auto err = kernel_errno(r.error());
  INFO(r.error().msg());
  // rtnl_newlink: no rtnl_link_ops for the kind -> EOPNOTSUPP "Unknown device type";
  // with ib_ipoib present, a non-IB parent is ENODEV (ipoib_new_child_link).
  CHECK((err == EOPNOTSUPP || err == ENODEV));
  if (err == EOPNOTSUPP) {
    CHECK(r.error().msg().find("Unknown device type") != std::string::npos);
  }
}

TEST_CASE("one NEWLINK with IFLA_NET_NS_FD creates the child of a host parent inside a pod") {
  TestNetns host;
  TestNetns pod;
  const LinkInfo parent = make_veth_parent(host, name("p"), name("q"));
  const auto req = must(build_macvlan_child_request(
      {.parent_ifindex = parent.ifindex, .name = name("t"), .netns_fd = pod.handle.fd()}));
  // create_link cannot read a link back from another namespace: it says so instead.
  auto refused = create_link(host.sock, req);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == ErrorCode::kInternal);

  must_ok(send_create_request(host.sock, req));
  CHECK_FALSE(must(get_link_by_name(host.sock, name("t"))).has_value());
  auto child = must(get_link_by_name(pod.sock, name("t")));
  REQUIRE(child.has_value());
  CHECK(child->kind == "macvlan");
  CHECK(child->link_netnsid.has_value());  // its parent lives in the host netns
  CHECK(child->alias.empty());
  // The name is checked in the destination: the same request again is EEXIST there.
  auto again = send_create_request(host.sock, req);
  REQUIRE_FALSE(again.ok());
  CHECK(kernel_errno(again.error()) == EEXIST);
}

TEST_CASE("move into another netns, rename, MTU, up, addresses and routes there") {
  TestNetns host;
  TestNetns pod;
  const LinkInfo parent = make_veth_parent(host, name("p"), name("q"));
  must_ok(set_link_admin_state(host.sock, parent.ifindex, AdminState::kUp));
  const LinkInfo child = tagged(
      host.sock,
      must(create_link(
          host.sock, must(build_macvlan_child_request(
                         {.parent_ifindex = parent.ifindex, .name = name("t"), .netns_fd = {}})))));

  must_ok(move_link_to_netns(host.sock, child.ifindex, pod.handle));
  CHECK_FALSE(must(get_link_by_name(host.sock, name("t"))).has_value());
  auto moved = must(get_link_by_name(pod.sock, name("t")));
  REQUIRE(moved.has_value());
  CHECK(moved->alias == alias_tag());
  CHECK(moved->link_netnsid.has_value());  // the parent lives in another netns
  const int idx = moved->ifindex;

  must_ok(rename_link(pod.sock, idx, "net1"));
  must_ok(set_link_mtu(pod.sock, idx, 1400));
  must_ok(set_link_admin_state(pod.sock, idx, AdminState::kUp));
  auto now = must(get_link_by_index(pod.sock, idx));
  REQUIRE(now.has_value());
  CHECK(now->name == "net1");
  CHECK(now->mtu == 1400);
  CHECK(now->admin_state() == AdminState::kUp);

  // sysctls act on the namespace entered.
  {
    auto in_pod = must(ScopedNetns::enter(pod.handle));
    must_ok(netns::write_sysctl(netns::ipv6_conf_sysctl("net1", "disable_ipv6"), "0"));
    CHECK(must(netns::read_sysctl(netns::ipv6_conf_sysctl("net1", "disable_ipv6"))) == "0");
    must_ok(netns::write_sysctl(netns::ipv6_conf_sysctl("net1", "accept_dad"), "0"));
    CHECK(must(netns::read_sysctl("net/ipv6/conf/net1/accept_dad")) == "0");
  }
  // The host netns has no net1 interface: its sysctl path does not exist there.
  CHECK_FALSE(netns::read_sysctl(netns::ipv6_conf_sysctl("net1", "accept_dad")).ok());

  const IpPrefix v4 = must(IpPrefix::parse("10.77.1.7/24"));
  const IpPrefix v6 = must(IpPrefix::parse("fd00:77::7/64"));
  must_ok(add_address(pod.sock, idx, v4));
  must_ok(add_address(pod.sock, idx, v6));
  auto dup = add_address(pod.sock, idx, v4);
  REQUIRE_FALSE(dup.ok());
  CHECK(kernel_errno(dup.error()) == EEXIST);

  auto addrs = must(list_addresses(pod.sock, idx, std::nullopt));
  bool saw4 = false;
  bool saw6 = false;
  for (const auto& a : addrs) {
    CHECK(a.ifindex == idx);
    if (a.prefix == v4) {
      saw4 = true;
      CHECK(a.broadcast == must(IpAddress::parse("10.77.1.255")));
    }
    if (a.prefix == v6) {
      saw6 = true;
      // IFA_F_NODAD: usable at once, never tentative.
      CHECK((a.flags & IFA_F_NODAD) != 0);
      CHECK((a.flags & IFA_F_TENTATIVE) == 0);
    }
  }
  CHECK(saw4);
  CHECK(saw6);
  CHECK(must(list_addresses(pod.sock, idx, IpFamily::kV4)).size() == 1);

  RouteSpec r4;
  r4.destination = must(IpPrefix::parse("10.88.0.0/16"));
  r4.gateway = must(IpAddress::parse("10.77.1.1"));
  r4.ifindex = idx;
  r4.metric = 50;
  r4.mtu_bytes = 1300;
  RouteSpec r6;
  r6.destination = must(IpPrefix::parse("fd00:88::/48"));
  r6.gateway = must(IpAddress::parse("fd00:77::1"));
  r6.ifindex = idx;
  RouteSpec def4;
  def4.destination = must(IpPrefix::parse("0.0.0.0/0"));
  def4.gateway = must(IpAddress::parse("10.77.1.1"));
  must_ok(add_route(pod.sock, r4));
  must_ok(add_route(pod.sock, r6));
  must_ok(add_route(pod.sock, def4));
  auto dup_route = add_route(pod.sock, r4);
  REQUIRE_FALSE(dup_route.ok());
  CHECK(kernel_errno(dup_route.error()) == EEXIST);

  auto routes4 = must(list_routes(pod.sock, IpFamily::kV4, kMainRouteTable));
  bool saw_r4 = false;
  bool saw_def = false;
  for (const auto& r : routes4) {
    if (r.destination == r4.destination) {
      saw_r4 = true;
      CHECK(r.gateway == r4.gateway);
      CHECK(r.ifindex == idx);
      CHECK(r.metric == 50u);
      CHECK(r.mtu_bytes == 1300u);
    }
    if (r.destination.length() == 0) {
      saw_def = true;
      CHECK(r.ifindex == idx);  // resolved through the gateway
    }
  }
  CHECK(saw_r4);
  CHECK(saw_def);
  auto routes6 = must(list_routes(pod.sock, IpFamily::kV6, std::nullopt));
  bool saw_r6 = false;
  for (const auto& r : routes6) {
    if (r.destination == r6.destination) {
      saw_r6 = true;
      CHECK(r.gateway == r6.gateway);
    }
  }
  CHECK(saw_r6);

  CHECK(must(delete_route(pod.sock, r4)) == DeleteOutcome::kDeleted);
  CHECK(must(delete_route(pod.sock, r4)) == DeleteOutcome::kAbsent);
  CHECK(must(delete_route(pod.sock, r6)) == DeleteOutcome::kDeleted);
  CHECK(must(delete_route(pod.sock, r6)) == DeleteOutcome::kAbsent);
  CHECK(must(delete_address(pod.sock, idx, v4)) == DeleteOutcome::kDeleted);
  CHECK(must(delete_address(pod.sock, idx, v4)) == DeleteOutcome::kAbsent);
  CHECK(must(delete_address(pod.sock, idx, v6)) == DeleteOutcome::kDeleted);
  CHECK(must(delete_address(pod.sock, idx, v6)) == DeleteOutcome::kAbsent);
  CHECK(must(list_addresses(pod.sock, idx, IpFamily::kV4)).empty());

  // Moving back under a taken name is refused; the plugin moves under a temporary name.
  SECTION("EEXIST when renaming onto an existing name") {
    auto r = rename_link(pod.sock, idx, "lo");
    REQUIRE_FALSE(r.ok());
    CHECK(kernel_errno(r.error()) == EEXIST);
  }
}

TEST_CASE("a macvlan child is deleted with its netns (an IPoIB child would be refunded)") {
  TestNetns host;
  const LinkInfo parent = make_veth_parent(host, name("p"), name("q"));
  int child_index = 0;
  {
    TestNetns pod;
    const LinkInfo child =
        tagged(host.sock,
               must(create_link(
                   host.sock,
                   must(build_macvlan_child_request(
                       {.parent_ifindex = parent.ifindex, .name = name("d"), .netns_fd = {}})))));
    child_index = child.ifindex;
    must_ok(move_link_to_netns(host.sock, child.ifindex, pod.handle));
    REQUIRE(must(get_link_by_name(pod.sock, name("d"))).has_value());
  }  // the last handle and socket of `pod` close: the kernel tears the namespace down
  // Namespace cleanup runs asynchronously (net/core/net_namespace.c cleanup_net); wait for it.
  bool parent_still_there = false;
  bool no_refund = false;
  for (int i = 0; i < 100; ++i) {
    auto tagged = must(find_links_by_alias(host.sock, alias_tag(), AliasMatch::kExact));
    auto by_index = must(get_link_by_index(host.sock, child_index));
    parent_still_there = must(get_link_by_index(host.sock, parent.ifindex)).has_value();
    no_refund = tagged.empty() && (!by_index || by_index->kind != "macvlan");
    if (no_refund) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(parent_still_there);
  CHECK(no_refund);  // macvlan has no netns_refund: nothing comes back as dev<N>
}

TEST_CASE("ScopedNetns switches and restores; open_if_exists sees live namespaces") {
  auto before = must(NetnsHandle::current());
  TestNetns other;
  CHECK_FALSE(other.handle.same_namespace_as(before));
  {
    auto scope = must(ScopedNetns::enter(other.handle));
    CHECK(must(NetnsHandle::current()).same_namespace_as(other.handle));
    {
      auto nested = must(ScopedNetns::enter(before));
      CHECK(must(NetnsHandle::current()).same_namespace_as(before));
    }
    CHECK(must(NetnsHandle::current()).same_namespace_as(other.handle));
    // A socket opened here stays bound to `other` after the scope ends.
  }
  CHECK(must(NetnsHandle::current()).same_namespace_as(before));

  // The /proc/<pid>/fd/<n> path of an anonymous namespace can be reopened (as CNI_NETNS).
  auto reopened = must(NetnsHandle::open_if_exists(other.handle.path()));
  REQUIRE(reopened.has_value());
  CHECK(reopened->same_namespace_as(other.handle));
  auto run = netns::run_in(other.handle, [] { return NetnsHandle::current(); });
  REQUIRE(run.ok());
  CHECK(run->same_namespace_as(other.handle));
  CHECK(must(NetnsHandle::current()).same_namespace_as(before));

  // Returning to a handle the caller holds instead of reopening the current namespace.
  {
    auto borrowed = must(ScopedNetns::enter(other.handle, before));
    CHECK(must(NetnsHandle::current()).same_namespace_as(other.handle));
    auto moved = std::move(borrowed);  // the moved-from scope restores nothing
  }
  CHECK(must(NetnsHandle::current()).same_namespace_as(before));
  auto run2 = netns::run_in(other.handle, before, [] { return NetnsHandle::current(); });
  REQUIRE(run2.ok());
  CHECK(run2->same_namespace_as(other.handle));
  CHECK(must(NetnsHandle::current()).same_namespace_as(before));
}

TEST_CASE("the IPoIB request equals a live iproute2 capture on this host") {
  const std::string script = IPOIB_NETLINK_CAPTURE_SCRIPT;
  const std::string out = "/tmp/netlink-capture-" + std::to_string(::getpid()) + ".hex";
  const int status = std::system((script + " > " + out + " 2>/dev/null").c_str());
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::string reason;
  if (rc == 77) {
    // This binary runs only as root (main), so 77 means a tool is missing: strace and iproute2
    // are in scripts/install-deps, and a comparison not made is a failure, not a pass.
    reason = "strace, ip or unshare missing (scripts/install-deps installs them)";
  }
  INFO(reason);
  REQUIRE(rc == 0);
  const Bytes live = testing::read_hex_file(out);
  std::remove(out.c_str());
  const Bytes golden = testing::read_hex_file(std::string(IPOIB_NETLINK_GOLDEN_DIR) +
                                              "/iproute2_6.1_newlink_ipoib.hex");
  const Bytes ours = must(build_ipoib_child_request({.parent_ifindex = 4,
                                                     .name = "ib0.8001",
                                                     .pkey = 0x8001,
                                                     .mode = IpoibMode::kDatagram,
                                                     .umcast = Umcast::kOff,
                                                     .netns_fd = {}}));
  CHECK(testing::without_seq_pid(live) == testing::without_seq_pid(ours));
  CHECK(testing::without_seq_pid(live) == testing::without_seq_pid(golden));
}

TEST_CASE("netlink sockets are close-on-exec") {
  // Every netlink socket and namespace fd this process holds must carry FD_CLOEXEC (fds
  // inherited from whoever started the test are not ours to judge).
  TestNetns ns;
  CHECK((::fcntl(ns.handle.fd(), F_GETFD) & FD_CLOEXEC) != 0);
  int netlink_fds = 0;
  for (int fd = 3; fd < 1024; ++fd) {
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) {
      continue;
    }
    int domain = 0;
    socklen_t len = sizeof domain;
    const bool is_netlink =
        ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_NETLINK;
    char target[64] = {};
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    const bool is_netns =
        n > 0 && std::string(target, static_cast<std::size_t>(n)).rfind("net:[", 0) == 0;
    if (is_netlink || is_netns) {
      INFO("fd " << fd << " " << target);
      CHECK((flags & FD_CLOEXEC) != 0);
      netlink_fds += is_netlink ? 1 : 0;
    }
  }
  CHECK(netlink_fds >= 1);
}

int main(int argc, char* argv[]) {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "kernel.netlink: skipped: needs root (network namespaces, netlink)\n");
    return 77;
  }
  auto probe = NetnsHandle::create();
  if (!probe.ok()) {
    std::fprintf(stderr, "kernel.netlink: skipped: %s\n", probe.error().msg().c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
