// The transaction layer (pool_store.h) over the local journal store: commit, abort, read-only
// access, and the operations the verbs share (pool_ops.h).
#include "ipoib/ipam/pool_store.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include "ipoib/ipam/local_pool_store.h"
#include "ipoib/ipam/pool_ops.h"
#include "test_support.h"

using namespace ipoib;
using namespace ipoib::ipam;
using ipam_test::TempDir;

namespace {

const Range& test_range() {
  static const Range r = *parse_range({.range = "10.20.0.0/29"});  // .1 - .6
  return r;
}
const std::string kKey = "10.20.0.0/29";

Reservation res(const std::string& cid, const std::string& ifname = "net1") {
  return {{}, kKey, "net", cid, ifname, "", 1700000000};
}

std::unique_ptr<IpamStore> open(const std::string& dir, OpenMode mode) {
  auto s = open_local_store(dir, 1000, mode, StoreTuning{});
  REQUIRE(s.ok());
  return std::move(s).value();
}

std::vector<Reservation> all(PoolStore& pool) {
  std::vector<Reservation> out;
  auto read = pool.transact(Access::kRead, [&](PoolTxn& t) -> Status {
    IPOIB_TRY_ASSIGN(out, t.reservations({}));
    return ok_status();
  });
  REQUIRE(read.ok());
  return out;
}

// Allocates one address for `cid` in its own transaction.
IpAddress add(PoolStore& pool, const std::string& cid) {
  std::optional<IpAddress> got;
  auto done = pool.transact(Access::kWrite, [&](PoolTxn& t) -> Status {
    IPOIB_TRY_ASSIGN(got, t.allocate(kKey, test_range(), AllocationPolicy::kLowestFree, res(cid)));
    return ok_status();
  });
  REQUIRE(done.ok());
  REQUIRE(got);
  CHECK(done->changes > 0);
  return *got;
}

}  // namespace

TEST_CASE("a committed transaction is durable; changes are visible inside it") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  auto store = open(dir, OpenMode::kCreate);
  auto pool = store->pool("blue");
  std::vector<IpAddress> got;
  auto done = pool->transact(Access::kWrite, [&](PoolTxn& t) -> Status {
    got.clear();
    for (const char* cid : {"a", "b"}) {
      IPOIB_TRY_ASSIGN(auto ip,
                       t.allocate(kKey, test_range(), AllocationPolicy::kLowestFree, res(cid)));
      got.push_back(*ip);
    }
    // The second allocation saw the first; a lookup sees both before the commit.
    IPOIB_TRY_ASSIGN(auto b, t.find_attachment(kKey, "b", "net1"));
    CHECK(b->ip == got[1]);
    return ok_status();
  });
  REQUIRE(done.ok());
  CHECK(done->attempts == 1);
  REQUIRE(got.size() == 2);
  CHECK(got[0].to_string() == "10.20.0.1");
  CHECK(got[1].to_string() == "10.20.0.2");

  // A fresh store object (another process would see the same): both are there.
  auto again = open(dir, OpenMode::kExisting);
  const auto listed = all(*again->pool("blue"));
  REQUIRE(listed.size() == 2);
  CHECK(listed[1].container_id == "b");
  CHECK(again->pool_names().value() == std::vector<std::string>{"blue"});
  CHECK(again->pool("blue")->label() == dir + "/pool-blue");
}

TEST_CASE("a failing body commits nothing and its error is returned unchanged") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  auto store = open(dir, OpenMode::kCreate);
  auto pool = store->pool("");
  add(*pool, "a");
  const std::string journal = ipam_test::read_file(dir + "/pool-_default+journal");
  auto failed = pool->transact(Access::kWrite, [&](PoolTxn& t) -> Status {
    IPOIB_TRY(t.allocate(kKey, test_range(), AllocationPolicy::kLowestFree, res("b")));
    IPOIB_TRY(t.release(*IpAddress::parse("10.20.0.1")));
    return Error(ErrorCode::kIpamFailure, "second range exhausted");
  });
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().code() == ErrorCode::kIpamFailure);
  CHECK(failed.error().msg() == "second range exhausted");
  CHECK(ipam_test::read_file(dir + "/pool-_default+journal") == journal);  // not a byte more
  const auto left = all(*pool);
  REQUIRE(left.size() == 1);
  CHECK(left[0].container_id == "a");

  // Releasing what is not reserved is a bug in the body: kInternal, nothing committed.
  auto bad = pool->transact(Access::kWrite, [&](PoolTxn& t) -> Status {
    return t.release(*IpAddress::parse("10.20.0.5"));
  });
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code() == ErrorCode::kInternal);
  CHECK(all(*pool).size() == 1);
}

TEST_CASE("read access never writes; a read-only store refuses write access") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  {
    auto store = open(dir, OpenMode::kCreate);
    add(*store->pool(""), "a");
  }
  const std::string journal = ipam_test::read_file(dir + "/pool-_default+journal");
  auto store = open(dir, OpenMode::kExisting);
  auto pool = store->pool("");
  auto changed = pool->transact(Access::kRead, [&](PoolTxn& t) -> Status {
    IPOIB_TRY(t.reserve(res("x")));
    return ok_status();
  });
  REQUIRE_FALSE(changed.ok());
  CHECK(changed.error().code() == ErrorCode::kInternal);
  CHECK(ipam_test::read_file(dir + "/pool-_default+journal") == journal);

  auto ro = open(dir, OpenMode::kReadOnly);
  auto w = ro->pool("")->transact(Access::kWrite, [](PoolTxn&) { return ok_status(); });
  REQUIRE_FALSE(w.ok());
  CHECK(w.error().code() == ErrorCode::kInternal);
  CHECK(all(*ro->pool("")).size() == 1);
}

TEST_CASE("a store that does not exist is empty and nothing is created") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/none";
  for (OpenMode mode : {OpenMode::kExisting, OpenMode::kReadOnly}) {
    auto store = open(dir, mode);
    CHECK(store->pool_names().value().empty());
    CHECK(all(*store->pool("x")).empty());
    CHECK(store->writable().ok());  // its parent is writable: an ADD could create it
  }
  auto store = open(dir, OpenMode::kExisting);
  std::vector<Reservation> released;
  auto del = store->pool("")->transact(Access::kWrite, [&](PoolTxn& t) -> Status {
    IPOIB_TRY_ASSIGN(released, release_matching(t, {.container_id = "c", .ifname = "net1"}));
    return ok_status();
  });
  REQUIRE(del.ok());
  CHECK(del->changes == 0);
  CHECK(released.empty());
  CHECK(::access(dir.c_str(), F_OK) != 0);
}

TEST_CASE("release_matching: by attachment, by container, by address") {
  TempDir tmp;
  auto store = open(tmp.path() + "/s", OpenMode::kCreate);
  auto pool = store->pool("");
  add(*pool, "a");
  std::optional<IpAddress> second;
  REQUIRE(pool->transact(Access::kWrite,
                         [&](PoolTxn& t) -> Status {
                           IPOIB_TRY(t.allocate(kKey, test_range(), AllocationPolicy::kLowestFree,
                                                res("a", "net2")));
                           IPOIB_TRY_ASSIGN(
                               second, t.allocate(kKey, test_range(), AllocationPolicy::kLowestFree,
                                                  res("b")));
                           return ok_status();
                         })
              .ok());
  auto release = [&](const ReservationFilter& f) {
    std::vector<Reservation> gone;
    auto done = pool->transact(Access::kWrite, [&](PoolTxn& t) -> Status {
      IPOIB_TRY_ASSIGN(gone, release_matching(t, f));
      return ok_status();
    });
    REQUIRE(done.ok());
    CHECK(done->changes == gone.size());
    return gone.size();
  };
  CHECK(release({.ip = second}) == 1);
  CHECK(release({.container_id = "a", .ifname = "net9"}) == 0);
  CHECK(release({.container_id = "a"}) == 2);
  CHECK(all(*pool).empty());
}

TEST_CASE("GC's choice is exact and linear at 20,000 valid x 60,000 reservations") {
  // 60,000 candidates; every third is listed as valid. The choice is a hash-set join, so this
  // runs in milliseconds (the pairwise comparison it replaces made 1.2e9 comparisons).
  std::vector<Reservation> candidates;
  std::vector<cni::Attachment> valid;
  for (int i = 0; i < 60000; ++i) {
    Reservation r = res("c" + std::to_string(i), i % 2 ? "net1" : "net2");
    r.ip = IpAddress(IpFamily::kV4, static_cast<u128>(0x0a000000 + i));
    if (i % 3 == 0) {
      valid.push_back({r.container_id, r.ifname});
    }
    candidates.push_back(std::move(r));
  }
  // Same container, other interface: not valid (the pair is the key).
  valid.push_back({"c1", "net2"});
  const auto released = gc_choose_releases(candidates, valid);
  REQUIRE(released.size() == 40000);
  for (const Reservation& r : released) {
    REQUIRE(std::stoi(r.container_id.substr(1)) % 3 != 0);
  }
  // Field boundaries are part of the key: ("ab", "c") does not keep ("a", "bc").
  const auto edge = gc_choose_releases({res("a", "bc")}, {{"ab", "c"}});
  CHECK(edge.size() == 1);
}
