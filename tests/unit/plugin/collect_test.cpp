// What DEL and GC choose to delete: the pure functions of collect.h.
#include "ipoib/plugin/collect.h"

#include <catch2/catch.hpp>

using namespace ipoib;
using namespace ipoib::plugin;
using netlink::LinkInfo;

namespace {

LinkInfo child(const std::string& name, const std::string& alias, int parent = 2) {
  LinkInfo l;
  l.name = name;
  l.alias = alias;
  l.parent_ifindex = parent;
  l.kind = "ipoib";
  return l;
}

std::vector<std::string> names(const std::vector<LinkInfo>& links) {
  std::vector<std::string> out;
  for (const auto& l : links) {
    out.push_back(l.name);
  }
  return out;
}

}  // namespace

TEST_CASE("GC: this network's tagged children of invalid attachments, on its master") {
  const std::vector<LinkInfo> links = {
      child("a", "ipoib-cni:n:dead:net1"),      // deleted
      child("b", "ipoib-cni:n:live:net1"),      // valid
      child("c", "ipoib-cni:other:dead:net1"),  // another network's, same master
      child("d", "ipoib-cni:dead:net1"),        // legacy tag: network unknown
      child("e", "ipoib-cni:n:dead:net2", 7),   // another master
      child("f", "someone-else"),               // foreign alias
      child("g", "ipoib-cni:n:dead:net2"),      // deleted
  };
  const std::vector<cni::Attachment> valid = {{"live", "net1"}};
  const std::map<std::string, ChildOwner, std::less<>> intents;
  CHECK(names(select_gc_deletions({links, 2, "n", valid, intents})) ==
        std::vector<std::string>{"a", "g"});
  // Network "other" on the same master takes only its own.
  CHECK(names(select_gc_deletions({links, 2, "other", valid, intents})) ==
        std::vector<std::string>{"c"});
  // Everything valid: nothing.
  const std::vector<cni::Attachment> all = {{"dead", "net1"}, {"live", "net1"}, {"dead", "net2"}};
  CHECK(select_gc_deletions({links, 2, "n", all, intents}).empty());
}

TEST_CASE("GC: an untagged child only with an intent of this network naming exactly it") {
  const std::string dead = temporary_child_name("dead", "net1");
  const std::string live = temporary_child_name("live", "net1");
  const std::string other = temporary_child_name("foreign", "net1");
  const std::string mismatched = temporary_child_name("x", "net1");
  const std::string shaped = temporary_child_name("nobody", "net1");
  const std::vector<LinkInfo> links = {child(dead, ""), child(live, ""), child(other, ""),
                                       child(mismatched, ""), child(shaped, "")};
  const std::map<std::string, ChildOwner, std::less<>> intents = {
      {dead, {"n", {"dead", "net1"}}},
      {live, {"n", {"live", "net1"}}},
      {other, {"othernet", {"foreign", "net1"}}},
      {mismatched, {"n", {"y", "net1"}}},  // names an attachment whose temporary name differs
  };
  const std::vector<cni::Attachment> valid = {{"live", "net1"}};
  CHECK(names(select_gc_deletions({links, 2, "n", valid, intents})) ==
        std::vector<std::string>{dead});
}

TEST_CASE("DEL: the attachment's tagged links, and its untagged child when the intent proves it") {
  const std::string tmp = temporary_child_name("c1", "net1");
  const std::vector<LinkInfo> links = {
      child("net1", "ipoib-cni:n:c1:net1"),      // current tag
      child("dev5", "ipoib-cni:c1:net1"),        // legacy tag of the same attachment
      child("dev6", "ipoib-cni:other:c1:net1"),  // another network's
      child("dev7", "ipoib-cni:n:c2:net1"),      // another attachment
      child(tmp, ""),                            // untagged, temporary name
      child("net2", ""),
  };
  const AttachmentRef me{"n", {"c1", "net1"}};
  CHECK(names(links_to_delete_for(links, me, std::nullopt)) ==
        std::vector<std::string>{"net1", "dev5"});
  CHECK(names(links_to_delete_for(links, me, ChildOwner{"n", {"c1", "net1"}})) ==
        std::vector<std::string>{"net1", "dev5", tmp});
  CHECK(names(links_to_delete_for(links, me, ChildOwner{"other", {"c1", "net1"}})) ==
        std::vector<std::string>{"net1", "dev5"});
  CHECK(names(links_to_delete_for(links, me, ChildOwner{"n", {"c9", "net1"}})) ==
        std::vector<std::string>{"net1", "dev5"});
}
