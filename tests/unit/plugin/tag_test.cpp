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
