#include "ipoib/plugin/tag.h"

#include <catch2/catch.hpp>

using namespace ipoib;
using namespace ipoib::plugin;

TEST_CASE("child tags name the network and the attachment, and round-trip") {
  const auto tag = child_tag("ibnet", "4f2a9c", "net1");
  CHECK(tag == "ipoib-cni:ibnet:4f2a9c:net1");
  auto owner = parse_child_tag(tag);
  REQUIRE(owner);
  CHECK(owner->network == "ibnet");
  CHECK(owner->attachment.container_id == "4f2a9c");
  CHECK(owner->attachment.ifname == "net1");
  auto dotted = parse_child_tag(child_tag("ib-pkey.8001", "pod.abc-1_2", "ib0.8001"));
  REQUIRE(dotted);
  CHECK(dotted->network == "ib-pkey.8001");
  CHECK(dotted->attachment.ifname == "ib0.8001");
  CHECK(is_plugin_tag(tag));
  CHECK(is_tagged_for_network(tag, "ibnet"));
  CHECK_FALSE(is_tagged_for_network(tag, "other"));
  CHECK(is_tagged_for_attachment(tag, "ibnet", {"4f2a9c", "net1"}));
  CHECK_FALSE(is_tagged_for_attachment(tag, "other", {"4f2a9c", "net1"}));
  CHECK_FALSE(is_tagged_for_attachment(tag, "ibnet", {"4f2a9c", "net2"}));
}

TEST_CASE("legacy tags name only the attachment: DEL of it matches, GC never does") {
  const std::string legacy = "ipoib-cni:4f2a9c:net1";
  auto owner = parse_child_tag(legacy);
  REQUIRE(owner);
  CHECK_FALSE(owner->network);
  CHECK(owner->attachment == cni::Attachment{"4f2a9c", "net1"});
  CHECK(is_plugin_tag(legacy));
  CHECK_FALSE(is_tagged_for_network(legacy, "ibnet"));
  CHECK(is_tagged_for_attachment(legacy, "ibnet", {"4f2a9c", "net1"}));
  CHECK(is_tagged_for_attachment(legacy, "other", {"4f2a9c", "net1"}));
  CHECK_FALSE(is_tagged_for_attachment(legacy, "ibnet", {"4f2a9c", "net2"}));
}

TEST_CASE("malformed tags are not ours") {
  for (const char* alias :
       {"", "ipoib-cni:", "ipoib-cni:abc", "ipoib-cni::net1", "ipoib-cni:abc:", "other:abc:net1",
        "ipoib-cni:a:b:c:net1", "ipoib-cni:abc:a-very-long-ifname0", "ipoib-cni::abc:net1",
        "ipoib-cni:-bad:abc:net1", "ipoib-cni:n:abc:net 1", "ipoib-cni:n:abc:"}) {
    INFO(alias);
    CHECK_FALSE(parse_child_tag(alias));
    CHECK_FALSE(is_plugin_tag(alias));
    CHECK_FALSE(is_tagged_for_attachment(alias, "n", {"abc", "net1"}));
  }
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
