#include "ipoib/ipam/pool.h"

#include <catch2/catch.hpp>

#include "ipoib/ipam/pool_text.h"

using namespace ipoib;
using namespace ipoib::ipam;

namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

PoolData sample() {
  PoolData p;
  p.network_name = "net-a";
  auto r = parse_range({.range = "10.0.0.0/24", .exclude = {"10.0.0.9"}, .gateway = "10.0.0.1"});
  REQUIRE(r.ok());
  p.upsert_range("10.0.0.0/24", *r).cursor = ip("10.0.0.3");
  auto r6 = parse_range({.range = "fd00::/64"});
  REQUIRE(r6.ok());
  p.upsert_range("fd00::/64", *r6);
  CHECK(p.insert({ip("10.0.0.3"), "10.0.0.0/24", "mynet", "c1", "net1", "ns/pod", 1700000000}));
  CHECK(p.insert({ip("10.0.0.2"), "10.0.0.0/24", "mynet", "c0", "net1", "", 1700000001}));
  CHECK(p.insert({ip("fd00::8000:0:0:1"), "fd00::/64", "mynet", "c1", "net1", "ns/pod", 5}));
  CHECK_FALSE(p.insert({ip("10.0.0.2"), "10.0.0.0/24", "mynet", "c9", "net1", "", 0}));
  return p;
}

}  // namespace

TEST_CASE("pool round trip keeps everything, sorted by address") {
  const PoolData p = sample();
  REQUIRE(p.reservations.size() == 3);
  CHECK(p.reservations[0].ip == ip("10.0.0.2"));
  auto text = encode_pool(p);
  REQUIRE(text.ok());
  CHECK_THAT(*text, Catch::StartsWith("ipoib-ipam-pool 1\nnetwork net-a\n"));
  auto back = decode_pool(*text, "/x/pool-net-a");
  REQUIRE(back.ok());
  CHECK(*back == p);
  CHECK(p.taken(IpFamily::kV4) ==
        std::vector<u128>{ip("10.0.0.2").value(), ip("10.0.0.3").value()});
}

TEST_CASE("the default pool and an empty pool round trip") {
  PoolData p;
  auto text = encode_pool(p);
  REQUIRE(text.ok());
  auto back = decode_pool(*text, "f");
  REQUIRE(back.ok());
  CHECK(*back == p);
}

TEST_CASE("every truncation and every single-byte change is detected as corruption") {
  const std::string text = *encode_pool(sample());
  for (std::size_t n = 0; n < text.size(); ++n) {
    auto r = decode_pool(std::string_view(text).substr(0, n), "/store/pool-net-a");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kStoreCorrupt);
    CHECK_THAT(r.error().msg(), Catch::Contains("/store/pool-net-a"));
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    std::string bad = text;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    auto r = decode_pool(bad, "f");
    CHECK_FALSE(r.ok());
  }
}

TEST_CASE("a file with a valid checksum but bad content is still refused") {
  // Recompute a correct trailer over a body with unsorted reservations.
  std::string body =
      "ipoib-ipam-pool 1\nnetwork -\nres 10.0.0.3 k n c1 i1 - 1\nres 10.0.0.2 k n c2 i1 - 1\n";
  char trailer[64];
  std::snprintf(trailer, sizeof trailer, "end 4 %016llx\n",
                static_cast<unsigned long long>(fnv1a64(body)));
  auto r = decode_pool(body + trailer, "f");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().msg(), Catch::Contains("out of order"));
  std::string v2 = "ipoib-ipam-pool 2\nnetwork -\n";
  std::snprintf(trailer, sizeof trailer, "end 2 %016llx\n",
                static_cast<unsigned long long>(fnv1a64(v2)));
  auto r2 = decode_pool(v2 + trailer, "f");
  REQUIRE_FALSE(r2.ok());
  CHECK_THAT(r2.error().msg(), Catch::Contains("version 2"));
}

TEST_CASE("unstorable fields are refused at encode") {
  PoolData p;
  p.insert({ip("10.0.0.2"), "k", "n", "has space", "net1", "", 0});
  auto r = encode_pool(p);
  REQUIRE_FALSE(r.ok());
}
