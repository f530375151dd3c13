// Node-slice mode of the cluster store (open_node_slice_store, node_slice_size) against a real
// etcd member, through the PoolStore transaction the verbs use: the claim on the first ADD, ADDs
// inside a claimed slice with etcd unreachable (no round trip per pod), a second slice when the
// first is full, exclude and the gateway inside slices, IPv6, 8 concurrent processes ("nodes")
// that never share a slice or an address, adoption of a slice claimed before a crash, the
// slice-return rule, ADD with etcd down and the slices full (code 11), DEL and GC with etcd down,
// STATUS (writable, free_count) and a requested address in another node's slice. Exits 77 only
// when etcd/etcdctl are missing.
#define CATCH_CONFIG_RUNNER
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ipoib/cluster/keys.h"
#include "ipoib/ipam/cluster_pool_store.h"
#include "ipoib/ipam/pool_ops.h"
#include "ipoib/ipam/store.h"
#include "tests/etcd/etcd_cluster.h"

using namespace ipoib;
using namespace ipoib::ipam;
namespace keys = ipoib::cluster::keys;

namespace {

std::string live() {
  std::string why;
  etcd_test::Cluster* c = etcd_test::shared_member(&why);
  if (c == nullptr) {
    FAIL("etcd did not start: " + why);
  }
  return c->endpoints_csv();
}

struct Node {
  std::string dir;
  std::string net;
  std::string name = "node-a";
  int slice = 28;

  [[nodiscard]] StoreLocation at(const std::string& endpoints) const {
    StoreLocation loc;
    loc.datastore = Datastore::kEtcd;
    loc.cluster.etcd.etcd_host = endpoints;
    loc.cluster.node_slice_prefix = slice;
    loc.store_dir = dir;
    loc.network_name = net;
    loc.lock_timeout_ms = 10000;
    loc.node_name = name;
    return loc;
  }
  [[nodiscard]] std::unique_ptr<IpamStore> open(const std::string& endpoints,
                                                OpenMode mode = OpenMode::kCreate) const {
    auto s = open_ipam_store(at(endpoints), mode);
    INFO((s.ok() ? std::string() : s.error().msg()));
    REQUIRE(s.ok());
    return std::move(*s);
  }
};

Range range_of(const char* cidr, std::vector<std::string> exclude = {}, const char* gw = "") {
  RangeSpec spec;
  spec.range = cidr;
  spec.exclude = std::move(exclude);
  spec.gateway = gw;
  auto r = parse_range(spec);
  REQUIRE(r.ok());
  return *r;
}

// ADD's core (find the attachment, else allocate), as plugin.cpp runs it.
Result<std::optional<IpAddress>> add(PoolStore& pool, const Range& range, const std::string& cid,
                                     const std::string& node = "node-a") {
  std::optional<IpAddress> got;
  auto done = pool.transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
    got.reset();
    IPOIB_TRY(txn.use_range("r", range));
    IPOIB_TRY_ASSIGN(auto found, txn.find_attachment("r", cid, "net1"));
    if (found) {
      got = found->ip;
      return ok_status();
    }
    Reservation r;
    r.cni_network = "cni-net";
    r.container_id = cid;
    r.ifname = "net1";
    r.node = node;
    r.since_unix_s = 1700000000;
    IPOIB_TRY_ASSIGN(got, txn.allocate("r", range, AllocationPolicy::kLowestFree, r));
    return ok_status();
  });
  if (!done) {
    return std::move(done).error();
  }
  return got;
}

IpAddress must_add(PoolStore& pool, const Range& range, const std::string& cid) {
  auto ip = add(pool, range, cid);
  INFO(cid << ": " << (ip.ok() ? std::string("no address") : ip.error().msg()));
  REQUIRE(ip.ok());
  REQUIRE(ip->has_value());
  return **ip;
}

Result<TxnInfo> del(PoolStore& pool, const std::string& cid) {
  ReservationFilter f;
  f.container_id = cid;
  f.ifname = "net1";
  std::vector<Reservation> released;
  return pool.release_attachment(f, released);
}

// One read from the live member.
etcd::RangeResponse read(const etcd::RangeRequest& r) {
  etcd::ConfigKeys k;
  k.etcd_host = live();
  auto cfg = etcd::config_from(k);
  REQUIRE(cfg.ok());
  auto c = etcd::Client::create(std::move(*cfg));
  REQUIRE(c.ok());
  auto resp = (*c)->range(r);
  REQUIRE(resp.ok());
  return std::move(*resp);
}

// The slice keys of (net, "r") in etcd: first address -> owning node.
std::map<std::string, std::string> claims(const std::string& net) {
  const etcd::RangeResponse resp = read(etcd::RangeRequest::prefix(keys::slice_prefix(net, "r")));
  std::map<std::string, std::string> out;
  for (const etcd::KeyValue& kv : resp.kvs) {
    const auto j = nlohmann::json::parse(kv.value);
    out[j["slice"].get<std::string>()] = j["node"].get<std::string>();
  }
  return out;
}

// The mod_revision of a key (0 when absent).
std::int64_t mod_revision(const std::string& key) {
  const etcd::RangeResponse resp = read(etcd::RangeRequest::single(key));
  return resp.kvs.empty() ? 0 : resp.kvs[0].mod_revision;
}

// A loopback port that accepts connections (the kernel's backlog) and never answers: every
// request to it runs into its time-out, as to a SIGSTOPped member.
class Blackhole {
 public:
  Blackhole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(fd_ >= 0);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) == 0);
    REQUIRE(::listen(fd_, 64) == 0);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    url_ = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  }
  ~Blackhole() { ::close(fd_); }
  Blackhole(const Blackhole&) = delete;
  Blackhole& operator=(const Blackhole&) = delete;
  [[nodiscard]] const std::string& url() const { return url_; }

 private:
  int fd_ = -1;
  std::string url_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string unique(const char* what) {
  return std::string(what) + "-" + std::to_string(::getpid());
}

}  // namespace

TEST_CASE("first ADD claims a slice; ADDs inside it need no etcd; full slices with etcd down: 11") {
  etcd_test::TempDir dir("slices");
  const Node node{dir.path(), unique("claim")};
  const Range range = range_of("10.20.0.0/24");
  auto store = node.open(live());
  auto pool = store->pool(node.net);
  CHECK(must_add(*pool, range, "c0").to_string() == "10.20.0.1");
  CHECK(claims(node.net) == std::map<std::string, std::string>{{"10.20.0.0/28", "node-a"}});
  // Recorded locally, so the next ADDs know their slice without asking etcd.
  CHECK_THAT(slurp(dir.path() + "/node-slices/slices-" + node.net),
             Catch::Contains("10.20.0.0/28"));

  // etcd unreachable from here on: the slice's 14 other addresses are still handed out.
  const std::string dead = etcd_test::dead_url();
  auto offline = node.open(dead);
  auto opool = offline->pool(node.net);
  std::set<std::string> got = {"10.20.0.1"};
  for (int i = 1; i < 15; ++i) {
    got.insert(must_add(*opool, range, "c" + std::to_string(i)).to_string());
  }
  CHECK(got.size() == 15);
  for (const std::string& ip : got) {
    CHECK(IpPrefix::parse("10.20.0.0/28")->contains(*IpAddress::parse(ip)));
  }
  // The idempotent re-ADD is local too.
  CHECK(must_add(*opool, range, "c3").to_string() == "10.20.0.4");
  // The slice is full and a new one needs etcd: code 11 naming the endpoint, nothing allocated.
  auto full = add(*opool, range, "c15");
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().code() == ErrorCode::kTryAgainLater);
  CHECK_THAT(full.error().msg(), Catch::Contains(dead));
  // DEL is local: it works with etcd down and is not deferred.
  auto d = del(*opool, "c4");
  REQUIRE(d.ok());
  CHECK_FALSE(d->deferred);
  CHECK(must_add(*opool, range, "c15").to_string() == "10.20.0.5");
  // STATUS: the store is not writable without etcd.
  CHECK_FALSE(offline->writable().ok());
  CHECK(store->writable().ok());

  // etcd back: the next slice is claimed when the first is full.
  CHECK(must_add(*pool, range, "c16").to_string() == "10.20.0.16");
  CHECK(claims(node.net) == std::map<std::string, std::string>{{"10.20.0.0/28", "node-a"},
                                                               {"10.20.0.16/28", "node-a"}});
  // free_count: 15 free in own slices (16 - 1 taken in the second, 0 in the first) plus the 14
  // unclaimed slices (16 addresses each, the last one without the broadcast address: 223).
  u128 free = 0;
  REQUIRE(pool->transact(Access::kRead,
                         [&](PoolTxn& txn) -> Status {
                           IPOIB_TRY_ASSIGN(free, txn.free_count("r", range));
                           return ok_status();
                         })
              .ok());
  CHECK(u128_to_string(free) == "238");
}

TEST_CASE("exclude and the gateway are honoured inside slices; an excluded slice is skipped") {
  etcd_test::TempDir dir("slices");
  Node node{dir.path(), unique("exclude")};
  node.slice = 29;
  const Range range = range_of("10.21.0.0/24", {"10.21.0.2/31", "10.21.0.8/29"}, "10.21.0.1");
  auto store = node.open(live());
  auto pool = store->pool(node.net);
  std::vector<std::string> got;
  got.reserve(6);
  for (int i = 0; i < 6; ++i) {
    got.push_back(must_add(*pool, range, "c" + std::to_string(i)).to_string());
  }
  // .1 gateway, .2-.3 excluded; .8/29 wholly excluded, so the second slice is .16/29.
  CHECK(got == std::vector<std::string>{"10.21.0.4", "10.21.0.5", "10.21.0.6", "10.21.0.7",
                                        "10.21.0.16", "10.21.0.17"});
  CHECK(claims(node.net) == std::map<std::string, std::string>{{"10.21.0.0/29", "node-a"},
                                                               {"10.21.0.16/29", "node-a"}});
}

TEST_CASE("IPv6 slices") {
  etcd_test::TempDir dir("slices");
  Node node{dir.path(), unique("v6")};
  node.slice = 124;
  const Range range = range_of("fd00:21::/120", {"fd00:21::5"});
  auto store = node.open(live());
  auto pool = store->pool(node.net);
  std::set<std::string> first;
  for (int i = 0; i < 14; ++i) {
    first.insert(must_add(*pool, range, "c" + std::to_string(i)).to_string());
  }
  CHECK(first.count("fd00:21::5") == 0);
  CHECK(first.count("fd00:21::f") == 1);
  CHECK(must_add(*pool, range, "c14").to_string() == "fd00:21::10");
  CHECK(claims(node.net) == std::map<std::string, std::string>{{"fd00:21::/124", "node-a"},
                                                               {"fd00:21::10/124", "node-a"}});
}

TEST_CASE("8 concurrent nodes never own one slice and never hand out one address twice") {
  etcd_test::TempDir dir("slices");
  const std::string net = unique("storm");
  const std::string endpoints = live();
  const Range range = range_of("10.22.0.0/26");  // 8 slices of /29: 7 + 6x8 + 7 = 62 addresses
  const int nodes = 8;
  const int per_node = 10;
  std::vector<std::pair<pid_t, std::string>> kids;
  for (int n = 0; n < nodes; ++n) {
    const std::string out = dir.path() + "/out" + std::to_string(n);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      Node me{dir.path() + "/n" + std::to_string(n), net, "node-" + std::to_string(n), 29};
      auto s = open_ipam_store(me.at(endpoints), OpenMode::kCreate);
      FILE* f = std::fopen(out.c_str(), "w");
      if (!s || f == nullptr) {
        ::_exit(1);
      }
      auto pool = (*s)->pool(net);
      for (int i = 0; i < per_node; ++i) {
        auto ip = add(*pool, range, me.name + "-" + std::to_string(i), me.name);
        if (!ip) {
          (void)std::fprintf(f, "error %s\n", ip.error().msg().c_str());
          ::_exit(1);
        }
        (void)std::fprintf(f, "%s %s\n", me.name.c_str(),
                           *ip ? (*ip)->to_string().c_str() : "full");
      }
      (void)std::fclose(f);
      ::_exit(0);
    }
    kids.emplace_back(pid, out);
  }
  std::multiset<std::string> got;
  std::map<std::string, std::string> holder;  // address -> node
  int full = 0;
  for (const auto& [pid, out] : kids) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    const std::string text = slurp(out);
    INFO(text);
    CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
    std::istringstream in(text);
    std::string who;
    std::string ip;
    while (in >> who >> ip) {
      if (ip == "full") {
        ++full;
      } else {
        got.insert(ip);
        holder[ip] = who;
      }
    }
  }
  CHECK(std::set<std::string>(got.begin(), got.end()).size() == got.size());  // 0 duplicates
  CHECK(got.size() + full == static_cast<std::size_t>(nodes) * per_node);
  CHECK(full > 0);  // 80 demands, 62 addresses
  // Every slice is claimed once, and every address lies in a slice of the node that got it.
  const auto owners = claims(net);
  CHECK(owners.size() == 8);
  for (const auto& [ip, who] : holder) {
    const IpPrefix s = IpPrefix(*IpAddress::parse(ip), 29).network();
    INFO(ip);
    CHECK(owners.at(s.to_string()) == who);
  }
}

TEST_CASE("a slice claimed in etcd but not recorded (crash in between) is adopted") {
  etcd_test::TempDir dir("slices");
  const Node node{dir.path(), unique("adopt")};
  const std::string net = node.net;
  // What a crash right after the claim Txn leaves: the key names node-a, store_dir knows nothing.
  REQUIRE(etcd_test::run("ETCDCTL_API=3 etcdctl --endpoints=" + live() + " put '" +
                         keys::slice(net, "r", *IpAddress::parse("10.23.0.32")) +
                         "' '{\"node\":\"node-a\",\"slice\":\"10.23.0.32/28\",\"since\":1}' "
                         ">/dev/null") == 0);
  const Range range = range_of("10.23.0.0/24");
  auto store = node.open(live());
  auto pool = store->pool(node.net);
  CHECK(must_add(*pool, range, "c0").to_string() == "10.23.0.32");
  CHECK(claims(net).size() == 1);  // adopted, not a second claim
  CHECK_THAT(slurp(dir.path() + "/node-slices/slices-" + net), Catch::Contains("10.23.0.32/28"));
}

TEST_CASE("return rule: an emptied slice goes back after a release, except the node's last one") {
  etcd_test::TempDir dir("slices");
  Node node{dir.path(), unique("return")};
  node.slice = 29;
  const Range range = range_of("10.24.0.0/24");  // slice .0/29: 7 addresses, then 8 each
  auto store = node.open(live());
  auto pool = store->pool(node.net);
  for (int i = 0; i < 9; ++i) {
    must_add(*pool, range, "c" + std::to_string(i));  // .1-.7, then .8, .9 in .8/29
  }
  CHECK(claims(node.net).size() == 2);
  // A slice with a live reservation never goes back.
  REQUIRE(del(*pool, "c7").ok());
  CHECK(claims(node.net).size() == 2);
  // Emptied: it goes back (etcd and the local record).
  REQUIRE(del(*pool, "c8").ok());
  CHECK(claims(node.net) == std::map<std::string, std::string>{{"10.24.0.0/29", "node-a"}});
  CHECK_THAT(slurp(dir.path() + "/node-slices/slices-" + node.net),
             !Catch::Contains("10.24.0.8/29"));
  // The node keeps its last slice even when it is empty.
  for (int i = 0; i < 7; ++i) {
    REQUIRE(del(*pool, "c" + std::to_string(i)).ok());
  }
  CHECK(claims(node.net) == std::map<std::string, std::string>{{"10.24.0.0/29", "node-a"}});

  // etcd down when a slice empties: DEL (and GC) still succeed, the slice stays claimed, and a
  // later release with etcd back returns it.
  for (int i = 0; i < 8; ++i) {
    must_add(*pool, range, "d" + std::to_string(i));  // .1-.7, .8
  }
  CHECK(claims(node.net).size() == 2);
  auto offline = node.open(etcd_test::dead_url(), OpenMode::kExisting);
  auto opool = offline->pool(node.net);
  auto d = del(*opool, "d7");
  REQUIRE(d.ok());
  CHECK_FALSE(d->warnings.empty());
  auto gc = opool->transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
    ReservationFilter mine;
    mine.node = "node-a";
    IPOIB_TRY_ASSIGN(auto all, txn.reservations(mine));
    for (const Reservation& r : all) {
      if (r.container_id == "d0") {
        IPOIB_TRY(txn.release(r.ip));
      }
    }
    return ok_status();
  });
  REQUIRE(gc.ok());
  CHECK(gc->changes == 1);
  CHECK(claims(node.net).size() == 2);
  REQUIRE(del(*pool, "d1").ok());
  CHECK(claims(node.net).size() == 1);
}

TEST_CASE("a DEL never waits for an ADD whose slice claim waits for etcd") {
  etcd_test::TempDir dir("slices");
  Node node{dir.path(), unique("nowait")};
  node.slice = 29;
  const Range range = range_of("10.26.0.0/24");
  {
    auto store = node.open(live());
    auto pool = store->pool(node.net);
    for (int i = 0; i < 7; ++i) {
      must_add(*pool, range, "c" + std::to_string(i));  // slice .0/29 is full
    }
  }
  // An ADD that needs a second slice while its etcd never answers: it waits its whole
  // lock_timeout_ms (3 s) for the claim, then fails with 11.
  const Blackhole hole;
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    Node slow = node;
    auto loc = slow.at(hole.url());
    loc.lock_timeout_ms = 3000;
    auto s = open_ipam_store(loc, OpenMode::kCreate);
    if (!s) {
      ::_exit(2);
    }
    auto pool = (*s)->pool(node.net);
    auto ip = add(*pool, range, "c7");
    ::_exit(!ip.ok() && ip.error().code() == ErrorCode::kTryAgainLater ? 0 : 1);
  }
  ::usleep(500 * 1000);
  // Meanwhile the runtime tears a pod down, with a budget shorter than the claim's.
  auto loc = node.at(live());
  loc.lock_timeout_ms = 500;
  auto s = open_ipam_store(loc, OpenMode::kExisting);
  REQUIRE(s.ok());
  auto pool = (*s)->pool(node.net);
  const auto t0 = std::chrono::steady_clock::now();
  auto d = del(*pool, "c3");
  const auto waited = std::chrono::steady_clock::now() - t0;
  INFO((d.ok() ? std::string() : d.error().msg()));
  CHECK(d.ok());
  CHECK(waited < std::chrono::milliseconds(2000));
  int st = 0;
  REQUIRE(::waitpid(pid, &st, 0) == pid);
  CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  // The released address is free again for the node.
  auto again = node.open(live());
  auto apool = again->pool(node.net);
  CHECK(must_add(*apool, range, "c8").to_string() == "10.26.0.4");
}

TEST_CASE("a slice whose return may have reached etcd is never allocated from again") {
  etcd_test::TempDir dir("slices");
  const std::string net = unique("lostreturn");
  Node a{dir.path() + "/a", net, "node-a", 29};
  Node b{dir.path() + "/b", net, "node-b", 29};
  const Range range = range_of("10.27.0.0/24");
  auto sa = a.open(live());
  auto pa = sa->pool(net);
  for (int i = 0; i < 8; ++i) {
    must_add(*pa, range, "c" + std::to_string(i));  // .1-.7 in .0/29, .8 in .8/29
  }
  const std::string key8 = keys::slice(net, "r", *IpAddress::parse("10.27.0.8"));
  // The DEL that empties .8/29 cannot finish the return (etcd unreachable): the delete may
  // still be applied later, as one that sat in a stopped member is.
  auto offline = a.open(etcd_test::dead_url(), OpenMode::kExisting);
  auto d = del(*offline->pool(net), "c7");
  REQUIRE(d.ok());
  CHECK_FALSE(d->warnings.empty());
  CHECK(claims(net).at("10.27.0.8/29") == "node-a");
  // It is applied late; node-b claims the lowest free slice, .8/29.
  REQUIRE(etcd_test::run("ETCDCTL_API=3 etcdctl --endpoints=" + live() + " del '" + key8 +
                         "' >/dev/null") == 0);
  auto sb = b.open(live());
  auto pb = sb->pool(net);
  CHECK(must_add(*pb, range, "b0").to_string() == "10.27.0.8");
  // node-a needs room again: never in .8/29 (node-b's), a slice of its own.
  CHECK(must_add(*pa, range, "c8").to_string() == "10.27.0.16");
  CHECK(claims(net) == std::map<std::string, std::string>{{"10.27.0.0/29", "node-a"},
                                                          {"10.27.0.8/29", "node-b"},
                                                          {"10.27.0.16/29", "node-a"}});
}

TEST_CASE(
    "a failed return is retried by a later release; an adopted slice outlives a late "
    "delete") {
  etcd_test::TempDir dir("slices");
  Node node{dir.path(), unique("retry"), "node-a", 29};
  const Range range = range_of("10.28.0.0/24");
  auto store = node.open(live());
  auto pool = store->pool(node.net);
  for (int i = 0; i < 8; ++i) {
    must_add(*pool, range, "c" + std::to_string(i));  // .1-.7, .8
  }
  auto offline = node.open(etcd_test::dead_url(), OpenMode::kExisting);
  REQUIRE(del(*offline->pool(node.net), "c7").ok());
  CHECK(claims(node.net).size() == 2);
  // etcd back: the next release (in the slice that stays) returns .8/29 as well.
  REQUIRE(del(*pool, "c0").ok());
  CHECK(claims(node.net) == std::map<std::string, std::string>{{"10.28.0.0/29", "node-a"}});

  // A slice etcd says is node-a's and node-a does not record (its return's delete, or a claim
  // applied after its plugin gave up): the next claim adopts it, and rewrites the key so that a
  // delete guarded by the revision it had (a late return) no longer applies.
  const std::string key40 = keys::slice(node.net, "r", *IpAddress::parse("10.28.0.40"));
  REQUIRE(etcd_test::run("ETCDCTL_API=3 etcdctl --endpoints=" + live() + " put '" + key40 +
                         "' '{\"node\":\"node-a\",\"slice\":\"10.28.0.40/29\",\"since\":1}' "
                         ">/dev/null") == 0);
  const std::int64_t before = mod_revision(key40);
  must_add(*pool, range, "d0");  // .1, the slice is full again
  CHECK(must_add(*pool, range, "d1").to_string() == "10.28.0.40");
  CHECK(mod_revision(key40) > before);
  std::string out;
  REQUIRE(etcd_test::run("printf 'mod(\"" + key40 + "\") = \"" + std::to_string(before) +
                             "\"\\n\\ndel " + key40 +
                             "\\n\\n\\n' | ETCDCTL_API=3 etcdctl --endpoints=" + live() + " txn",
                         &out) == 0);
  CHECK_THAT(out, Catch::Contains("FAILURE"));
  CHECK(claims(node.net).at("10.28.0.40/29") == "node-a");
}

TEST_CASE("a requested address is reserved only in this node's slice or a free one") {
  etcd_test::TempDir dir("slices");
  const std::string net = unique("request");
  const Range range = range_of("10.25.0.0/24");
  const Node a{dir.path() + "/a", net, "node-a"};
  const Node b{dir.path() + "/b", net, "node-b"};
  auto sa = a.open(live());
  auto pa = sa->pool(net);
  must_add(*pa, range, "a0");  // node-a holds 10.25.0.0/28
  auto sb = b.open(live());
  auto pb = sb->pool(net);
  auto want = [&](PoolStore& pool, const char* ip, const std::string& node) {
    return pool.transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
      IPOIB_TRY(txn.use_range("r", range));
      Reservation r;
      r.ip = *IpAddress::parse(ip);
      r.range_key = "r";
      r.cni_network = "cni-net";
      r.container_id = std::string("static-") + ip;
      r.ifname = "net1";
      r.node = node;
      return txn.reserve(r);
    });
  };
  auto taken = want(*pb, "10.25.0.9", "node-b");
  REQUIRE_FALSE(taken.ok());
  CHECK(taken.error().code() == ErrorCode::kIpamFailure);
  CHECK_THAT(taken.error().msg(), Catch::Contains("node-a"));
  auto claimed = want(*pb, "10.25.0.100", "node-b");
  INFO((claimed.ok() ? std::string() : claimed.error().msg()));
  REQUIRE(claimed.ok());  // claims 10.25.0.96/28 for node-b
  CHECK(claims(net).at("10.25.0.96/28") == "node-b");
}

int main(int argc, char** argv) {
  if (!etcd_test::binaries_present()) {
    (void)std::fprintf(stderr,
                       "SKIP: etcd or etcdctl not on PATH (Debian: etcd-server etcd-client)\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
