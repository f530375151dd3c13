// netns tests that need no privileges: sysctl names and opening namespace files.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "ipoib/netns/netns.h"

using namespace ipoib;
using namespace ipoib::netns;

TEST_CASE("sysctl names: slash form, dotted form, validation") {
  CHECK(ipv6_conf_sysctl("ib0.8001", "accept_dad") == "net/ipv6/conf/ib0.8001/accept_dad");
  CHECK(ipv4_conf_sysctl("net1", "arp_notify") == "net/ipv4/conf/net1/arp_notify");
  CHECK(*sysctl_path("net/ipv6/conf/ib0.8001/disable_ipv6") ==
        "/proc/sys/net/ipv6/conf/ib0.8001/disable_ipv6");
  CHECK(*sysctl_path("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward");
  for (const char* bad : {"", "net", "kernel/hostname", "kernel.hostname", "net/../kernel/x",
                          "net//ipv4", "net/ipv4/conf/a b/x", "net/./ipv4", "/net/ipv4"}) {
    auto r = sysctl_path(bad);
    CHECK_FALSE(r.ok());
    if (!r.ok()) {
      CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
    }
  }
}

TEST_CASE("open_if_exists: a missing path or a non-namespace file is 'absent', not an error") {
  const std::string missing = "/nonexistent/ipoib-netns-" + std::to_string(::getpid());
  auto gone = NetnsHandle::open_if_exists(missing);
  REQUIRE(gone.ok());
  CHECK_FALSE(gone->has_value());

  // What `ip netns delete` leaves behind when a runtime still holds the path: a plain file.
  char tmpl[] = "/tmp/netlink-notns-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  ::close(fd);
  auto plain = NetnsHandle::open_if_exists(tmpl);
  std::remove(tmpl);
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->has_value());

  // A namespace file of another type is not a network namespace.
  auto uts = NetnsHandle::open_if_exists("/proc/self/ns/uts");
  REQUIRE(uts.ok());
  CHECK_FALSE(uts->has_value());

  auto strict = NetnsHandle::open(missing);
  REQUIRE_FALSE(strict.ok());
  CHECK(strict.error().code() == ErrorCode::kNamespaceFailure);
  CHECK(strict.error().msg().find(missing) != std::string::npos);
}

TEST_CASE("current() and /proc/self/ns/net name the same namespace") {
  auto cur = NetnsHandle::current();
  REQUIRE(cur.ok());
  auto self = NetnsHandle::open("/proc/self/ns/net");
  REQUIRE(self.ok());
  CHECK(cur->same_namespace_as(*self));
  CHECK(cur->fd() >= 0);
  auto maybe = NetnsHandle::open_if_exists("/proc/self/ns/net");
  REQUIRE(maybe.ok());
  REQUIRE(maybe->has_value());
  CHECK((*maybe)->same_namespace_as(*cur));
}
