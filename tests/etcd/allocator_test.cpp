// The per-address cluster allocator (ipoib/cluster/address_allocator.h) against a real etcd
// member: key layout, idempotent ADD, exhaustion, release, and several concurrent processes
// ("nodes", each with its own client) allocating and releasing on one small range with
// 0 duplicate addresses and nothing leaked. Exits 77 only when etcd/etcdctl are missing.
#define CATCH_CONFIG_RUNNER
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ipoib/cluster/address_allocator.h"
#include "tests/etcd/etcd_cluster.h"

using namespace ipoib;
using namespace ipoib::cluster;
using std::chrono::milliseconds;

namespace {

std::unique_ptr<etcd::Client> client_for(const std::string& endpoints) {
  etcd::ConfigKeys k;
  k.etcd_host = endpoints;
  auto cfg = etcd::config_from(k);
  if (!cfg.ok()) {
    return nullptr;
  }
  auto c = etcd::Client::create(std::move(*cfg));
  return c.ok() ? std::move(*c) : nullptr;
}

AddressRange v4_range(const char* first, const char* last) {
  return {*IpAddress::parse(first), *IpAddress::parse(last), {}};
}

std::string network_name(const char* what) {
  return std::string("net-") + what + "-" + std::to_string(::getpid());
}

// Runs `work(node)` in `nodes` child processes at once; each prints lines to its pipe. Returns
// every child's output; a child that fails exits non-zero and fails the test.
std::vector<std::string> run_nodes(int nodes, const std::function<int(int, FILE*)>& work) {
  std::vector<std::pair<pid_t, int>> kids;
  for (int n = 0; n < nodes; ++n) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      FILE* out = ::fdopen(fds[1], "w");
      int rc = work(n, out);
      (void)std::fclose(out);
      ::_exit(rc);
    }
    ::close(fds[1]);
    kids.emplace_back(pid, fds[0]);
  }
  std::vector<std::string> outputs;
  for (auto [pid, fd] : kids) {
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
      text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    int st = 0;
    ::waitpid(pid, &st, 0);
    INFO(text);
    CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
    outputs.push_back(text);
  }
  return outputs;
}

}  // namespace

TEST_CASE("key layout: version prefix, escaped components, fixed-width hex addresses") {
  auto v4 = *IpAddress::parse("10.0.0.1");
  CHECK(keys::address("net1", "10.0.0.0/24", v4) ==
        "/ipoib/v1/net/net1/range/10.0.0.0%2F24/ip/0a000001");
  CHECK(keys::attachment("net1", "r", "abc/../x", "net1") ==
        "/ipoib/v1/net/net1/range/r/att/abc%2F..%2Fx/net1");
  CHECK(keys::cursor("n", "fd00::/64") == "/ipoib/v1/net/n/range/fd00%3A%3A%2F64/cursor");
  CHECK(keys::address_hex(*IpAddress::parse("fd00::1")) == "fd000000000000000000000000000001");
  // Key order is address order.
  CHECK(keys::address_hex(*IpAddress::parse("10.0.0.9")) <
        keys::address_hex(*IpAddress::parse("10.0.0.10")));
}

TEST_CASE("add is idempotent, exhaustion is kIpamFailure, release frees the address") {
  auto client = client_for(etcd_test::started_member().endpoints_csv());
  REQUIRE(client);
  const std::string net = network_name("basic");
  AddressRange range = v4_range("10.1.0.1", "10.1.0.6");
  range.exclude.push_back(*IpPrefix::parse("10.1.0.2/31"));  // .2 and .3
  AddressAllocator alloc(*client, net, "10.1.0.0/29", range);

  std::set<std::string> got;
  for (int i = 0; i < 4; ++i) {
    auto a = alloc.add({"cid" + std::to_string(i), "net1", "ns/pod" + std::to_string(i), "node-a"});
    REQUIRE(a.ok());
    CHECK_FALSE(a->existing);
    got.insert(a->ip.to_string());
  }
  CHECK(got == std::set<std::string>{"10.1.0.1", "10.1.0.4", "10.1.0.5", "10.1.0.6"});
  auto again = alloc.add({"cid2", "net1", "ns/pod2", "node-a"});
  REQUIRE(again.ok());
  CHECK(again->existing);
  auto full = alloc.add({"cid9", "net1", "ns/pod9", "node-a"});
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().code() == ErrorCode::kIpamFailure);

  // The record names node, container, ifname, pod and time.
  auto rec =
      client->range(etcd::RangeRequest::single(keys::address(net, "10.1.0.0/29", again->ip)));
  REQUIRE(rec.ok());
  auto doc = nlohmann::json::parse(rec->kvs.at(0).value);
  CHECK(doc["container_id"] == "cid2");
  CHECK(doc["node"] == "node-a");
  CHECK(doc["pod_ref"] == "ns/pod2");
  CHECK(doc["ip"] == again->ip.to_string());
  CHECK(doc.contains("time"));

  auto rel = alloc.release("cid2", "net1");
  REQUIRE(rel.ok());
  CHECK(*rel);
  CHECK_FALSE(*alloc.release("cid2", "net1"));  // already gone: nothing to do
  auto reuse = alloc.add({"cid10", "net1", "ns/pod10", "node-b"});
  REQUIRE(reuse.ok());
  CHECK(reuse->ip == again->ip);
  CHECK(alloc.list()->size() == 4);

  // IPv6 works the same way.
  AddressAllocator v6(*client, net, "fd00::/120",
                      {*IpAddress::parse("fd00::1"), *IpAddress::parse("fd00::ff"), {}});
  auto a6 = v6.add({"cid6", "net1", "", "node-a"});
  REQUIRE(a6.ok());
  CHECK(a6->ip.to_string() == "fd00::1");
  CHECK(v6.add({"cid7", "net1", "", "node-a"})->ip.to_string() == "fd00::2");
}

TEST_CASE("concurrent nodes: every address exactly once, nothing leaked after DEL") {
  const std::string eps = etcd_test::started_member().endpoints_csv();
  const int nodes = 8;
  const int per_node = 6;  // 48 = the range's capacity
  const bool v6 = GENERATE(false, true);
  const std::string net = network_name(v6 ? "storm6" : "storm4");
  const AddressRange range =
      v6 ? AddressRange{*IpAddress::parse("fd00:2::1"), *IpAddress::parse("fd00:2::30"), {}}
         : v4_range("10.2.0.1", "10.2.0.48");
  const std::string rkey = v6 ? "fd00:2::/122" : "10.2.0.0/26";

  // Phase 1: fill the range exactly, all nodes at once; interleave a DEL and a re-ADD per node.
  auto outputs = run_nodes(nodes, [&](int node, FILE* out) {
    auto client = client_for(eps);
    if (!client) {
      return 2;
    }
    AddressAllocator alloc(*client, net, rkey, range, {milliseconds(20000), 64});
    const std::string name = "node-" + std::to_string(node);
    for (int i = 0; i < per_node; ++i) {
      std::string cid = name + "-c" + std::to_string(i);
      auto a = alloc.add({cid, "net1", "ns/" + cid, name});
      if (!a.ok()) {
        (void)std::fprintf(out, "ERR add %s: %s\n", cid.c_str(), a.error().msg().c_str());
        return 1;
      }
      if (i % 3 == 0) {  // DEL and ADD again: the address may change, never duplicate
        auto r = alloc.release(cid, "net1");
        if (!r.ok() || !*r) {
          (void)std::fprintf(out, "ERR release %s\n", cid.c_str());
          return 1;
        }
        a = alloc.add({cid, "net1", "ns/" + cid, name});
        if (!a.ok()) {
          (void)std::fprintf(out, "ERR re-add %s: %s\n", cid.c_str(), a.error().msg().c_str());
          return 1;
        }
      }
      (void)std::fprintf(out, "%s %s %d\n", cid.c_str(), a->ip.to_string().c_str(), a->attempts);
    }
    return 0;
  });
  std::map<std::string, std::string> owner_of_ip;
  int duplicates = 0;
  int retries = 0;
  for (const auto& text : outputs) {
    std::istringstream in(text);
    std::string cid, ip;
    int attempts;
    while (in >> cid >> ip >> attempts) {
      if (!owner_of_ip.emplace(ip, cid).second) {
        ++duplicates;
      }
      retries += attempts - 1;
    }
  }
  CHECK(duplicates == 0);
  CHECK(owner_of_ip.size() == static_cast<std::size_t>(nodes * per_node));
  (void)std::fprintf(stderr, "allocator: %d conflict retries across %d nodes\n", retries, nodes);

  // The store agrees: one record per address, naming the same owner; the range is full.
  auto client = client_for(eps);
  REQUIRE(client);
  AddressAllocator alloc(*client, net, rkey, range);
  auto listed = alloc.list();
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == owner_of_ip.size());
  for (const auto& [ip, record] : *listed) {
    auto doc = nlohmann::json::parse(record);
    CHECK(owner_of_ip[ip.to_string()] == doc["container_id"].get<std::string>());
  }
  CHECK(alloc.add({"extra", "net1", "", "x"}).error().code() == ErrorCode::kIpamFailure);

  // Phase 2: every node releases its attachments concurrently; then the whole capacity can be
  // allocated again, exactly.
  run_nodes(nodes, [&](int node, FILE* out) {
    auto c = client_for(eps);
    if (!c) {
      return 2;
    }
    AddressAllocator a(*c, net, rkey, range, {milliseconds(20000), 64});
    for (int i = 0; i < per_node; ++i) {
      std::string cid = "node-" + std::to_string(node) + "-c" + std::to_string(i);
      auto r = a.release(cid, "net1");
      if (!r.ok() || !*r) {
        (void)std::fprintf(out, "ERR release %s\n", cid.c_str());
        return 1;
      }
    }
    return 0;
  });
  auto after = client->range(etcd::RangeRequest::prefix(keys::range_prefix(net, rkey) + "att/"));
  REQUIRE(after.ok());
  CHECK(after->count == 0);
  CHECK(alloc.list()->empty());
  std::set<std::string> second;
  for (int i = 0; i < nodes * per_node; ++i) {
    auto a = alloc.add({"again-" + std::to_string(i), "net1", "", "x"});
    REQUIRE(a.ok());
    second.insert(a->ip.to_string());
  }
  CHECK(second.size() == static_cast<std::size_t>(nodes * per_node));
  CHECK(alloc.add({"one-more", "net1", "", "x"}).error().code() == ErrorCode::kIpamFailure);
}

TEST_CASE("etcd unreachable: add fails with code 11 naming the endpoint, within the budget") {
  const std::string dead = etcd_test::dead_url();
  etcd::ConfigKeys k;
  k.etcd_host = dead;
  auto cfg = etcd::config_from(k);
  REQUIRE(cfg.ok());
  cfg->operation_timeout = milliseconds(800);
  auto client = etcd::Client::create(std::move(*cfg));
  REQUIRE(client.ok());
  AddressAllocator alloc(**client, "n", "r", v4_range("10.3.0.1", "10.3.0.9"));
  auto a = alloc.add({"c", "net1", "", "x"});
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().code() == ErrorCode::kTryAgainLater);
  CHECK_THAT(a.error().msg(), Catch::Contains(dead));
}

int main(int argc, char** argv) {
  if (const int skip = etcd_test::skip_unless_binaries_present()) {
    return skip;
  }
  return Catch::Session().run(argc, argv);
}
