#include "ipoib/plugin/tag.h"

#include <catch2/catch.hpp>

using namespace ipoib::plugin;

TEST_CASE("attachment tags round-trip") {
  const auto tag = attachment_tag("4f2a9c", "net1");
  CHECK(tag == "ipoib-cni:4f2a9c:net1");
  auto a = parse_attachment_tag(tag);
  REQUIRE(a);
  CHECK(a->container_id == "4f2a9c");
  CHECK(a->ifname == "net1");
  auto dotted = parse_attachment_tag(attachment_tag("pod.abc-1_2", "ib0.8001"));
  REQUIRE(dotted);
  CHECK(dotted->ifname == "ib0.8001");
}

TEST_CASE("malformed tags are not ours") {
  CHECK_FALSE(parse_attachment_tag(""));
  CHECK_FALSE(parse_attachment_tag("ipoib-cni:"));
  CHECK_FALSE(parse_attachment_tag("ipoib-cni:abc"));
  CHECK_FALSE(parse_attachment_tag("ipoib-cni::net1"));
  CHECK_FALSE(parse_attachment_tag("ipoib-cni:abc:"));
  CHECK_FALSE(parse_attachment_tag("other:abc:net1"));
  CHECK_FALSE(parse_attachment_tag("ipoib-cni:a:b:net1"));
  CHECK_FALSE(parse_attachment_tag("ipoib-cni:abc:a-very-long-ifname0"));
}

TEST_CASE("temporary child names are fixed per attachment, 15 bytes, and recognisable") {
  const std::string a = temporary_child_name("4f2a9c", "net1");
  CHECK(a.size() == 15);
  CHECK(a.rfind("ipt", 0) == 0);
  CHECK(is_temporary_child_name(a));
  // Deterministic: another process (DEL, GC, a retried ADD) computes the same name. The value
  // is pinned: changing the function would orphan children of the previous release.
  CHECK(temporary_child_name("4f2a9c", "net1") == a);
  // FNV-1a-64 of "4f2a9c\0net1", low 48 bits (computed independently in Python).
  CHECK(a == "ipt9a339f7ee28c");
  // Every input byte matters, including where the ID ends and the ifname begins.
  CHECK(temporary_child_name("4f2a9c", "net2") != a);
  CHECK(temporary_child_name("4f2a9d", "net1") != a);
  CHECK(temporary_child_name("ab", "cnet1") != temporary_child_name("abc", "net1"));
  CHECK_FALSE(is_temporary_child_name("ipt0123456789ab0"));
  CHECK_FALSE(is_temporary_child_name("ipt0123456789a"));
  CHECK_FALSE(is_temporary_child_name("ipt0123456789AB"));
  CHECK_FALSE(is_temporary_child_name("ipx0123456789ab"));
  CHECK(is_temporary_child_name("ipt0123456789ab"));
}
