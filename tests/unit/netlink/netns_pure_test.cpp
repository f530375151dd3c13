// netns tests that need no privileges: sysctl names and opening namespace files.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <string>

#include "ipoib/base/fd.h"
#include "ipoib/netns/netns.h"
#include "temp_dir.h"

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

TEST_CASE("a FIFO, socket, device or directory as the netns never blocks and is named") {
  ipoib::testing::TempDir dir("netns-test");
  const std::string fifo = dir.abs("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);  // nobody writes: a blocking open would hang
  const std::string sock_path = dir.abs("sock");
  ipoib::Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(sock.valid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  REQUIRE(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);

  struct Case {
    std::string path;
    const char* kind;
  };
  for (const Case& c : {Case{fifo, "a FIFO"}, Case{sock_path, "a socket"},
                        Case{"/dev/null", "a character device"}, Case{dir.path(), "a directory"}}) {
    INFO(c.path);
    auto lenient = NetnsHandle::open_if_exists(c.path);  // DEL: "netns gone", not an error
    REQUIRE(lenient.ok());
    CHECK_FALSE(lenient->has_value());
    auto strict = NetnsHandle::open(c.path);
    REQUIRE_FALSE(strict.ok());
    CHECK(strict.error().code() == ErrorCode::kNamespaceFailure);
    CHECK(strict.error().msg() ==
          "open netns " + c.path + ": " + c.kind + ", not a network namespace (nsfs) file");
  }
}
