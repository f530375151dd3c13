// The IPAM pool on etcd (ipoib/ipam/cluster_pool_store.h) against a real etcd member, through
// the same PoolStore transaction the verbs use: key layout, idempotent lookups, exhaustion,
// release through the index keys, a transaction too big for one etcd Txn (batches), several
// concurrent processes ("nodes", each with its own client) on one small range with 0 duplicate
// addresses and exactly the range's capacity, and DEL's durable deferral while etcd is
// unreachable. Exits 77 only when etcd/etcdctl are missing.
#define CATCH_CONFIG_RUNNER
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "ipoib/cluster/keys.h"
#include "ipoib/ipam/cluster_pool_store.h"
#include "ipoib/ipam/pool_ops.h"
#include "ipoib/ipam/store.h"
#include "tests/etcd/etcd_cluster.h"

using namespace ipoib;
using namespace ipoib::ipam;
namespace keys = ipoib::cluster::keys;

namespace {

etcd_test::Cluster& member() { return etcd_test::started_member(); }

std::string unique(const char* what) {
  return std::string(what) + "-" + std::to_string(::getpid());
}

StoreLocation location(const std::string& endpoints, const std::string& store_dir,
                       const std::string& net) {
  StoreLocation loc;
  loc.datastore = Datastore::kEtcd;
  loc.cluster.etcd.etcd_host = endpoints;
  loc.store_dir = store_dir;
  loc.network_name = net;
  loc.lock_timeout_ms = 10000;
  loc.node_name = "node-a";
  return loc;
}

Range range_of(const char* cidr, const char* first = "", const char* last = "",
               std::vector<std::string> exclude = {}) {
  RangeSpec spec;
  spec.range = cidr;
  spec.range_start = first;
  spec.range_end = last;
  spec.exclude = std::move(exclude);
  auto r = parse_range(spec);
  REQUIRE(r.ok());
  return *r;
}

Reservation attachment(const std::string& cid, const std::string& pod = "") {
  Reservation r;
  r.cni_network = "cni-net";
  r.container_id = cid;
  r.ifname = "net1";
  r.pod_ref = pod;
  r.since_unix_s = 1700000000;
  r.node = "node-a";
  return r;
}

// ADD's core: the attachment's address, or a new one.
Result<std::optional<IpAddress>> add(PoolStore& pool, const std::string& key, const Range& range,
                                     const Reservation& r) {
  std::optional<IpAddress> got;
  auto done = pool.transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
    got.reset();
    IPOIB_TRY_ASSIGN(auto found, txn.find_attachment(key, r.container_id, r.ifname));
    if (found) {
      got = found->ip;
      return ok_status();
    }
    IPOIB_TRY_ASSIGN(got, txn.allocate(key, range, AllocationPolicy::kLowestFree, r));
    return ok_status();
  });
  if (!done) {
    return std::move(done).error();
  }
  return got;
}

Result<std::optional<IpAddress>> add_one(PoolStore* pool, const Range& range,
                                         const std::string& cid) {
  return add(*pool, "r", range, attachment(cid));
}

ReservationFilter of(const std::string& cid) {
  ReservationFilter f;
  f.container_id = cid;
  f.ifname = "net1";
  return f;
}

std::size_t key_count(etcd::Client& c, const std::string& prefix) {
  auto r = etcd::RangeRequest::prefix(prefix);
  r.count_only = true;
  auto resp = c.range(r);
  REQUIRE(resp.ok());
  return static_cast<std::size_t>(resp->count);
}

std::unique_ptr<etcd::Client> client_for(const std::string& endpoints) {
  etcd::ConfigKeys k;
  k.etcd_host = endpoints;
  auto cfg = etcd::config_from(k);
  REQUIRE(cfg.ok());
  auto c = etcd::Client::create(std::move(*cfg));
  REQUIRE(c.ok());
  return std::move(*c);
}

// Runs `work(node)` in `nodes` child processes at once, each writing lines to a pipe; returns
// every child's output and checks that each exited 0.
std::vector<std::string> run_nodes(int nodes, const std::function<int(int, FILE*)>& work) {
  std::vector<std::pair<pid_t, int>> kids;
  for (int n = 0; n < nodes; ++n) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      FILE* out = ::fdopen(fds[1], "w");
      const int rc = work(n, out);
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
    ssize_t n = 0;
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

std::vector<std::string> lines(const std::vector<std::string>& outputs) {
  std::vector<std::string> out;
  for (const std::string& text : outputs) {
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t nl = text.find('\n', pos);
      out.push_back(text.substr(pos, nl - pos));
      pos = nl == std::string::npos ? text.size() : nl + 1;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("key layout: version prefix, escaped components, family and fixed-width hex") {
  const IpAddress v4 = *IpAddress::parse("10.0.0.1");
  CHECK(keys::address("net1", v4) == "/ipoib/v1/net/net1/ip4/0a000001");
  CHECK(keys::address("", v4) == "/ipoib/v1/net/_/ip4/0a000001");
  CHECK(keys::address("n", *IpAddress::parse("fd00::1")) ==
        "/ipoib/v1/net/n/ip6/fd000000000000000000000000000001");
  CHECK(keys::attachment("n", "abc/../x", "net1", "10.0.0.0/24") ==
        "/ipoib/v1/net/n/att/abc%2F..%2Fx/net1/10.0.0.0%2F24");
  CHECK(keys::pod("n", "ns/pod", "net1", "r", "c") == "/ipoib/v1/net/n/pod/ns%2Fpod/net1/r/c");
  CHECK(keys::unescape(keys::escape("fd00::/64#1 x")) == "fd00::/64#1 x");
  CHECK(keys::address_of("/ipoib/v1/net/n/ip4/0a000009") == *IpAddress::parse("10.0.0.9"));
  CHECK_FALSE(keys::address_of("/ipoib/v1/net/n/ip4/0a00000"));
  CHECK(keys::address_hex(*IpAddress::parse("10.0.0.9")) <
        keys::address_hex(*IpAddress::parse("10.0.0.10")));
}

TEST_CASE("ADD is idempotent, exclude is honoured, exhaustion is nullopt, DEL frees") {
  etcd_test::TempDir dir("pool");
  const std::string net = unique("basic");
  auto store =
      open_cluster_store(location(member().endpoints_csv(), dir.path(), net), OpenMode::kCreate);
  REQUIRE(store.ok());
  auto pool = (*store)->pool(net);
  const Range range = range_of("10.1.0.0/29", "10.1.0.1", "10.1.0.6", {"10.1.0.2/31"});
  std::set<std::string> got;
  for (int i = 0; i < 4; ++i) {
    auto ip = add(*pool, "r", range, attachment("cid" + std::to_string(i), "ns/pod"));
    REQUIRE(ip.ok());
    REQUIRE(ip->has_value());
    got.insert((*ip)->to_string());
  }
  CHECK(got == std::set<std::string>{"10.1.0.1", "10.1.0.4", "10.1.0.5", "10.1.0.6"});
  auto again = add(*pool, "r", range, attachment("cid2", "ns/pod"));
  REQUIRE(again.ok());
  CHECK(got.count((*again)->to_string()) == 1);
  auto full = add(*pool, "r", range, attachment("cid9"));
  REQUIRE(full.ok());
  CHECK_FALSE(full->has_value());

  // The record names node, container, ifname, pod and time; the pod index finds all four.
  auto client = client_for(member().endpoints_csv());
  auto rec = client->range(etcd::RangeRequest::single(keys::address(net, **again)));
  REQUIRE(rec.ok());
  const auto doc = nlohmann::json::parse(rec->kvs.at(0).value);
  CHECK(doc["container_id"] == "cid2");
  CHECK(doc["node"] == "node-a");
  CHECK(doc["pod_ref"] == "ns/pod");
  CHECK(doc["since"] == 1700000000);
  std::size_t same_pod = 0;
  REQUIRE(pool->transact(Access::kRead,
                         [&](PoolTxn& txn) -> Status {
                           IPOIB_TRY_ASSIGN(auto v, txn.find_pod("r", "ns/pod", "net1"));
                           same_pod = v.size();
                           return ok_status();
                         })
              .ok());
  CHECK(same_pod == 4);

  std::vector<Reservation> released;
  auto del = pool->release_attachment(of("cid2"), released);
  REQUIRE(del.ok());
  CHECK_FALSE(del->deferred);
  REQUIRE(released.size() == 1);
  CHECK(released[0].ip == **again);
  // Its index key is gone; what is left under the attachment is its tombstone, on a lease.
  CHECK(key_count(*client, keys::attachment(net, "cid2", "net1", "r")) == 0);
  auto tomb = client->range(etcd::RangeRequest::single(keys::tombstone(net, "cid2", "net1")));
  REQUIRE(tomb.ok());
  REQUIRE(tomb->kvs.size() == 1);
  CHECK(tomb->kvs[0].lease != 0);
  auto reuse = add(*pool, "r", range, attachment("cid9"));
  REQUIRE(reuse.ok());
  CHECK(**reuse == **again);

  // A read transaction that changes something commits nothing.
  auto bad = pool->transact(Access::kRead, [&](PoolTxn& txn) { return txn.release(**reuse); });
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code() == ErrorCode::kInternal);
}

TEST_CASE("a transaction bigger than one etcd Txn commits in batches") {
  etcd_test::TempDir dir("pool");
  const std::string net = unique("batch");
  auto store =
      open_cluster_store(location(member().endpoints_csv(), dir.path(), net), OpenMode::kCreate);
  REQUIRE(store.ok());
  auto pool = (*store)->pool(net);
  const Range range = range_of("10.2.0.0/24");
  const int n = 150;  // 150 reservations x 3 keys each: several Txns
  auto made = pool->transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
    for (int i = 0; i < n; ++i) {
      IPOIB_TRY_ASSIGN(auto ip, txn.allocate("r", range, AllocationPolicy::kLowestFree,
                                             attachment("c" + std::to_string(i), "ns/p")));
      if (!ip) {
        return Error(ErrorCode::kIpamFailure, "exhausted");
      }
    }
    return ok_status();
  });
  INFO((made.ok() ? std::string() : made.error().msg()));
  REQUIRE(made.ok());
  CHECK(made->changes == static_cast<std::size_t>(n));
  auto client = client_for(member().endpoints_csv());
  CHECK(key_count(*client, keys::address_prefix(net, IpFamily::kV4)) == n);
  CHECK(key_count(*client, keys::network(net) + "att/") == n);
  CHECK(key_count(*client, keys::network(net) + "pod/") == n);
  // GC's shape: every reservation of the pool released in one transaction.
  std::size_t released = 0;
  auto gc = pool->transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
    IPOIB_TRY_ASSIGN(auto all, release_matching(txn, ReservationFilter{}));
    released = all.size();
    return ok_status();
  });
  REQUIRE(gc.ok());
  CHECK(released == static_cast<std::size_t>(n));
  // Left: the range state (cursor) and the n attachments' tombstones.
  CHECK(key_count(*client, keys::network(net)) == static_cast<std::size_t>(n) + 1);
  CHECK(key_count(*client, keys::address_prefix(net, IpFamily::kV4)) == 0);
}

TEST_CASE("8 concurrent nodes fill a range exactly, without a duplicate, and free it all") {
  etcd_test::TempDir dir("pool");
  const std::string net = unique("storm");
  const std::string endpoints = member().endpoints_csv();
  const Range range = range_of("10.3.0.0/26");  // 62 usable addresses
  const int nodes = 8;
  const int per_node = 10;  // 80 demands for 62 addresses: 18 must find the range full
  auto outputs = run_nodes(nodes, [&](int node, FILE* out) {
    auto store = open_cluster_store(
        location(endpoints, dir.path() + "/n" + std::to_string(node), net), OpenMode::kCreate);
    if (!store) {
      (void)std::fprintf(out, "open: %s\n", store.error().msg().c_str());
      return 1;
    }
    auto pool = (*store)->pool(net);
    for (int i = 0; i < per_node; ++i) {
      auto r = attachment("n" + std::to_string(node) + "-" + std::to_string(i));
      auto ip = add(*pool, "r", range, r);
      if (!ip) {
        (void)std::fprintf(out, "error: %s\n", ip.error().msg().c_str());
        return 1;
      }
      (void)std::fprintf(out, "%s\n", *ip ? (*ip)->to_string().c_str() : "full");
    }
    return 0;
  });
  std::multiset<std::string> got;
  int full = 0;
  for (const std::string& l : lines(outputs)) {
    if (l == "full") {
      ++full;
    } else {
      got.insert(l);
    }
  }
  std::set<std::string> distinct(got.begin(), got.end());
  CHECK(distinct.size() == got.size());  // 0 duplicates
  CHECK(got.size() == 62);               // exactly the capacity
  CHECK(full == nodes * per_node - 62);
  // Every node releases its own: nothing is left, and the whole range is free again.
  run_nodes(nodes, [&](int node, FILE* out) {
    auto store = open_cluster_store(
        location(endpoints, dir.path() + "/n" + std::to_string(node), net), OpenMode::kExisting);
    if (!store) {
      return 1;
    }
    auto pool = (*store)->pool(net);
    for (int i = 0; i < per_node; ++i) {
      std::vector<Reservation> released;
      auto del = pool->release_attachment(of("n" + std::to_string(node) + "-" + std::to_string(i)),
                                          released);
      if (!del || del->deferred) {
        (void)std::fprintf(out, "DEL failed\n");
        return 1;
      }
    }
    return 0;
  });
  auto client = client_for(endpoints);
  CHECK(key_count(*client, keys::address_prefix(net, IpFamily::kV4)) == 0);
  CHECK(key_count(*client, keys::network(net) + "pod/") == 0);
  CHECK(key_count(*client, keys::network(net) + "att/") ==
        static_cast<std::size_t>(nodes * per_node));  // one tombstone per attachment
  auto store =
      open_cluster_store(location(endpoints, dir.path() + "/again", net), OpenMode::kCreate);
  REQUIRE(store.ok());
  auto pool = (*store)->pool(net);
  for (int i = 0; i < 62; ++i) {
    auto ip = add(*pool, "r", range, attachment("again-" + std::to_string(i)));
    REQUIRE(ip.ok());
    REQUIRE(ip->has_value());
  }
  auto one_more = add(*pool, "r", range, attachment("one-more"));
  REQUIRE(one_more.ok());
  CHECK_FALSE(one_more->has_value());
}

TEST_CASE("etcd unreachable: ADD is code 11 naming the endpoint; DEL is deferred, then applied") {
  etcd_test::TempDir dir("pool");
  const std::string net = unique("defer");
  const Range range = range_of("10.4.0.0/28");
  // A reservation made while etcd answers.
  auto live =
      open_cluster_store(location(member().endpoints_csv(), dir.path(), net), OpenMode::kCreate);
  REQUIRE(live.ok());
  auto ip = add(*(*live)->pool(net), "r", range, attachment("gone"));
  REQUIRE(ip.ok());
  REQUIRE(ip->has_value());

  const std::string dead = etcd_test::dead_url();
  auto loc = location(dead, dir.path(), net);
  loc.lock_timeout_ms = 800;
  auto down = open_cluster_store(loc, OpenMode::kExisting);
  REQUIRE(down.ok());
  auto pool = (*down)->pool(net);
  auto a = add(*pool, "r", range, attachment("new"));
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().code() == ErrorCode::kTryAgainLater);
  CHECK_THAT(a.error().msg(), Catch::Contains(dead));

  std::vector<Reservation> released;
  auto del = pool->release_attachment(of("gone"), released);
  REQUIRE(del.ok());
  CHECK(del->deferred);
  CHECK(released.empty());
  const std::string deferred = dir.path() + "/cluster-deferred";
  struct stat st {};
  REQUIRE(::stat(deferred.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);

  // The address is still reserved in etcd; the next write transaction with etcd back applies
  // the release first, so the same address is free for the next ADD.
  auto client = client_for(member().endpoints_csv());
  CHECK(key_count(*client, keys::address_prefix(net, IpFamily::kV4)) == 1);
  auto back = (*live)->pool(net);
  auto next = add(*back, "r", range, attachment("next"));
  REQUIRE(next.ok());
  CHECK(key_count(*client, keys::attachment(net, "gone", "net1", "r")) == 0);
  CHECK(key_count(*client, keys::address_prefix(net, IpFamily::kV4)) == 1);
  std::string names;
  REQUIRE(etcd_test::run("ls -A " + deferred, &names) == 0);
  CHECK(names.empty());
}

TEST_CASE("an ADD's commit that arrives after its DEL does not apply (the DEL's tombstone)") {
  // The runtime's order: an ADD gives up (code 11) while its Txn still sits in a member, the
  // runtime DELs, and only then does the Txn reach etcd. Here the DEL runs inside the ADD's body,
  // after its reads and before its commit: that commit must fail, and nothing may be reserved.
  etcd_test::TempDir dir("pool");
  const std::string net = unique("late");
  const std::string endpoints = member().endpoints_csv();
  auto adder = open_cluster_store(location(endpoints, dir.path() + "/a", net), OpenMode::kCreate);
  auto runtime = open_cluster_store(location(endpoints, dir.path() + "/b", net), OpenMode::kCreate);
  REQUIRE(adder.ok());
  REQUIRE(runtime.ok());
  const Range range = range_of("10.5.0.0/28");
  int runs = 0;
  auto add = (*adder)->pool(net)->transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
    if (++runs > 1) {
      return Error(ErrorCode::kTryAgainLater, "the plugin gave up");  // exits: no retry
    }
    IPOIB_TRY_ASSIGN(auto found, txn.find_attachment("r", "late", "net1"));
    REQUIRE_FALSE(found);
    IPOIB_TRY_ASSIGN(auto ip,
                     txn.allocate("r", range, AllocationPolicy::kLowestFree, attachment("late")));
    REQUIRE(ip);
    std::vector<Reservation> released;
    auto del = (*runtime)->pool(net)->release_attachment(of("late"), released);
    REQUIRE(del.ok());
    CHECK(released.empty());
    return ok_status();
  });
  REQUIRE_FALSE(add.ok());
  CHECK(runs == 2);  // the first commit failed its compare
  auto client = client_for(endpoints);
  CHECK(key_count(*client, keys::address_prefix(net, IpFamily::kV4)) == 0);
  CHECK(key_count(*client, keys::attachment(net, "late", "net1", "r")) == 0);
  // A later ADD of the same attachment (a runtime retrying after its DEL) is not blocked.
  auto again = add_one((*adder)->pool(net).get(), range, "late");
  REQUIRE(again.ok());
  CHECK(again->has_value());
}

TEST_CASE("a range is per-address or node slices, never both") {
  etcd_test::TempDir dir("pool");
  const std::string net = unique("mode");
  const std::string endpoints = member().endpoints_csv();
  auto per_address =
      open_cluster_store(location(endpoints, dir.path() + "/p", net), OpenMode::kCreate);
  StoreLocation sliced_loc = location(endpoints, dir.path() + "/s", net);
  sliced_loc.cluster.node_slice_prefix = 28;
  auto sliced = open_node_slice_store(sliced_loc, OpenMode::kCreate, StoreTuning{});
  REQUIRE(per_address.ok());
  REQUIRE(sliced.ok());
  const Range range = range_of("10.6.0.0/24");
  // Per-address first: a node-slice claim on the same range is refused, naming both modes.
  auto p1 = add(*(*per_address)->pool(net), "r", range, attachment("p1"));
  REQUIRE(p1.ok());
  auto s1 = add(*(*sliced)->pool(net), "r", range, attachment("s1"));
  REQUIRE_FALSE(s1.ok());
  CHECK(s1.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK_THAT(s1.error().msg(), Catch::Contains("per address") && Catch::Contains("r"));
  // Node slices first: a per-address ADD on that range is refused.
  auto s2 = add(*(*sliced)->pool(net), "r2", range, attachment("s2"));
  REQUIRE(s2.ok());
  REQUIRE(s2->has_value());
  auto p2 = add(*(*per_address)->pool(net), "r2", range, attachment("p2"));
  REQUIRE_FALSE(p2.ok());
  CHECK(p2.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK_THAT(p2.error().msg(), Catch::Contains("node slices"));
}

int main(int argc, char** argv) {
  if (const int skip = etcd_test::skip_unless_binaries_present()) {
    return skip;
  }
  return Catch::Session().run(argc, argv);
}

TEST_CASE("an ADD's lookups guessed empty are checked by its commit: a pod reserved meanwhile") {
  // The first run of an ADD assumes its attachment and pod prefixes are empty instead of reading
  // them. Another node reserving for the same pod between that run and its commit must make the
  // commit fail, and the next run must see the reservation (the re-ADD rule).
  etcd_test::TempDir dir("pool");
  const std::string net = unique("guess");
  const std::string endpoints = member().endpoints_csv();
  auto a = open_cluster_store(location(endpoints, dir.path() + "/a", net), OpenMode::kCreate);
  auto b = open_cluster_store(location(endpoints, dir.path() + "/b", net), OpenMode::kCreate);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const Range range = range_of("10.6.0.0/28");
  int runs = 0;
  std::size_t seen = 0;
  std::optional<IpAddress> other;
  auto done = (*a)->pool(net)->transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
    ++runs;
    IPOIB_TRY_ASSIGN(auto found, txn.find_attachment("r", "mine", "net1"));
    CHECK_FALSE(found);
    IPOIB_TRY_ASSIGN(auto same_pod, txn.find_pod("r", "ns/p", "net1"));
    seen = same_pod.size();
    if (runs == 1) {
      auto b_add = add(*(*b)->pool(net), "r", range, attachment("theirs", "ns/p"));
      REQUIRE(b_add.ok());
      other = **b_add;
    }
    IPOIB_TRY_ASSIGN(auto ip,
                     txn.allocate("r", range, AllocationPolicy::kLowestFree, attachment("mine")));
    CHECK(ip);
    return ok_status();
  });
  REQUIRE(done.ok());
  CHECK(runs == 2);
  CHECK(seen == 1);
  CHECK(done->attempts == 2);
  // The same for the attachment itself: its index key written meanwhile (another process of
  // the runtime repeating the ADD) fails the guessed commit; the next run returns that address.
  runs = 0;
  std::optional<IpAddress> got;
  done = (*a)->pool(net)->transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
    ++runs;
    IPOIB_TRY_ASSIGN(auto found, txn.find_attachment("r", "twice", "net1"));
    if (found) {
      got = found->ip;
      return ok_status();
    }
    if (runs == 1) {
      auto b_add = add(*(*b)->pool(net), "r", range, attachment("twice"));
      REQUIRE(b_add.ok());
      other = **b_add;
    }
    IPOIB_TRY_ASSIGN(got,
                     txn.allocate("r", range, AllocationPolicy::kLowestFree, attachment("twice")));
    return ok_status();
  });
  REQUIRE(done.ok());
  CHECK(runs == 2);
  REQUIRE(got);
  CHECK(*got == *other);
  auto client = client_for(endpoints);
  CHECK(key_count(*client, keys::attachment_prefix(net, "twice", "net1")) == 1);
  CHECK(key_count(*client, keys::address_prefix(net, IpFamily::kV4)) == 3);
}

TEST_CASE("the node's cursor hint: a search still starts after the range's real cursor") {
  // An ADD reads the range state and the scan page where this node's last ADD left the cursor
  // (store_dir/cluster-cursors) in one read-only Txn. A hint behind, ahead of, or beside the
  // real cursor, or a damaged file, must not change where the search starts.
  etcd_test::TempDir dir("pool");
  const std::string net = unique("hint");
  const std::string endpoints = member().endpoints_csv();
  auto a = open_cluster_store(location(endpoints, dir.path() + "/a", net), OpenMode::kCreate);
  auto b = open_cluster_store(location(endpoints, dir.path() + "/b", net), OpenMode::kCreate);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const Range range = range_of("10.7.0.0/24");
  for (int i = 0; i < 40; ++i) {
    REQUIRE(add_one((*a)->pool(net).get(), range, "a" + std::to_string(i)).ok());
  }
  auto client = client_for(endpoints);
  auto cursor = [&]() {
    auto st = client->range(etcd::RangeRequest::single(keys::range_state(net, "r")));
    REQUIRE(st.ok());
    REQUIRE(st->kvs.size() == 1);
    return *IpAddress::parse(nlohmann::json::parse(st->kvs[0].value)["cursor"].get<std::string>());
  };
  const std::string hint_file = dir.path() + "/b/cluster-cursors";
  auto write_hint = [&](const std::string& text) {
    FILE* f = std::fopen(hint_file.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(text.c_str(), f);
    REQUIRE(std::fclose(f) == 0);
  };
  REQUIRE(add_one((*b)->pool(net).get(), range, "b-first").ok());  // creates b's store_dir
  int n = 0;
  for (const std::string& hint : {std::string("10.7.0.1"), std::string("10.7.0.250"),
                                  std::string("10.9.9.9"), std::string("fd00::1"), std::string()}) {
    if (hint.empty()) {
      write_hint("not json");
    } else {
      write_hint(nlohmann::json{{net + "\nr", hint}}.dump());
    }
    const IpAddress before = cursor();
    auto got = add_one((*b)->pool(net).get(), range, "b" + std::to_string(n++));
    REQUIRE(got.ok());
    REQUIRE(got->has_value());
    INFO("hint " << hint << " cursor " << before.to_string() << " got " << (*got)->to_string());
    // One of the 16 free addresses after the cursor (at most 16 + 45 taken ones further).
    CHECK(**got > before);
    CHECK((*got)->value() - before.value() <= 61);
    CHECK(cursor() == **got);
  }
  // The hint names what the last ADD left, mode 0600.
  struct stat st {};
  REQUIRE(::stat(hint_file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  FILE* f = std::fopen(hint_file.c_str(), "r");
  REQUIRE(f != nullptr);
  char buf[512] = {};
  const std::size_t len = std::fread(buf, 1, sizeof buf - 1, f);
  (void)std::fclose(f);
  const auto doc = nlohmann::json::parse(std::string(buf, len));
  CHECK(doc[net + "\nr"] == cursor().to_string());
}
