#include "ipoib/ipam/range.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

using namespace ipoib;
using namespace ipoib::ipam;

namespace {

Range must(const RangeSpec& s) {
  auto r = parse_range(s);
  INFO((r ? std::string() : r.error().msg()));
  REQUIRE(r.ok());
  return *r;
}

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

std::string err_of(const RangeSpec& s) {
  auto r = parse_range(s);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
  return r.error().msg();
}

}  // namespace

TEST_CASE("IPv4 range: host bits, usable bounds exclude network and all-ones") {
  const Range r = must({.range = "192.168.2.225/28"});
  CHECK(r.subnet.to_string() == "192.168.2.224/28");
  CHECK(r.first == ip("192.168.2.225"));
  CHECK(r.last == ip("192.168.2.238"));
  CHECK(r.usable_count() == 14);
  CHECK(lowest_free(r, {}, r.first) == ip("192.168.2.225"));
}

TEST_CASE("first-last/prefix form sets both bounds") {
  const Range r = must({.range = "192.168.1.5-192.168.1.25/24"});
  CHECK(r.subnet.to_string() == "192.168.1.0/24");
  CHECK(r.first == ip("192.168.1.5"));
  CHECK(r.last == ip("192.168.1.25"));
  CHECK(r.usable_count() == 21);
}

TEST_CASE("range_start / range_end are validated, not ignored") {
  const Range r =
      must({.range = "10.0.0.0/24", .range_start = "10.0.0.10", .range_end = "10.0.0.20"});
  CHECK(r.usable_count() == 11);
  CHECK_THAT(err_of({.range = "10.0.0.0/24", .range_start = "10.0.1.1"}),
             Catch::Contains("range_start") && Catch::Contains("outside"));
  CHECK_THAT(err_of({.range = "10.0.0.0/24", .range_end = "10.0.0.255"}),
             Catch::Contains("range_end"));
  CHECK_THAT(err_of({.range = "10.0.0.0/24", .range_start = "10.0.0.0"}),
             Catch::Contains("range_start"));
  CHECK_THAT(err_of({.range = "10.0.0.0/24", .range_start = "10.0.0.9", .range_end = "10.0.0.8"}),
             Catch::Contains("range_end") && Catch::Contains("below"));
  CHECK_THAT(err_of({.range = "10.0.0.0/24", .range_start = "fd00::1"}),
             Catch::Contains("range_start") && Catch::Contains("family"));
  CHECK_THAT(err_of({.range = "10.0.0.0/24", .range_start = "bogus"}),
             Catch::Contains("range_start"));
}

TEST_CASE("ranges without usable addresses and malformed ranges are refused") {
  for (const char* s : {"10.0.0.0/31", "10.0.0.1/32", "fd00::/127", "fd00::1/128"}) {
    CHECK_THAT(err_of({.range = s}), Catch::Contains("no usable address"));
  }
  for (const char* s : {"10.0.0.0", "10.0.0.0/33", "10.0.0.0/24x", "nonsense", "10.0.0.1-10.0.0.5",
                        "-/24", "10.0.0.1-/24"}) {
    CHECK_THAT(err_of({.range = s}), Catch::StartsWith("range"));
  }
}

TEST_CASE("excludes: CIDRs and bare IPs, validated") {
  const Range r =
      must({.range = "10.0.0.0/24", .exclude = {"10.0.0.0/30", "10.0.0.5", "10.0.0.4/32"}});
  // .1-.3 excluded (network .0 is not usable anyway), .4 and .5 excluded -> first free .6
  CHECK(lowest_free(r, {}, r.first) == ip("10.0.0.6"));
  CHECK(r.usable_count() == 254 - 5);
  CHECK_FALSE(r.contains(ip("10.0.0.5")));
  CHECK(r.contains(ip("10.0.0.6")));
  CHECK_THAT(err_of({.range = "10.0.0.0/24", .exclude = {"10.0.0.0/24x"}}),
             Catch::Contains("exclude[0]"));
  CHECK_THAT(err_of({.range = "10.0.0.0/24", .exclude = {"10.0.0.1", "10.1.0.0/24"}}),
             Catch::Contains("exclude[1]") && Catch::Contains("overlap"));
  CHECK_THAT(err_of({.range = "10.0.0.0/24", .exclude = {"fd00::/64"}}),
             Catch::Contains("exclude[0]"));
  CHECK_THAT(err_of({.range = "10.0.0.0/30", .exclude = {"10.0.0.0/30"}}),
             Catch::Contains("excluded"));
}

TEST_CASE("the gateway is never handed out") {
  const Range r = must({.range = "10.0.0.0/29", .gateway = "10.0.0.1"});
  CHECK(r.gateway == ip("10.0.0.1"));
  CHECK(lowest_free(r, {}, r.first) == ip("10.0.0.2"));
  CHECK(r.usable_count() == 5);
  CHECK_THAT(err_of({.range = "10.0.0.0/29", .gateway = "x"}), Catch::Contains("gateway"));
}

TEST_CASE("lowest free walks gaps between reservations and excludes") {
  const Range r = must({.range = "10.0.0.0/24", .exclude = {"10.0.0.4/30"}});
  std::vector<u128> taken = {ip("10.0.0.1").value(), ip("10.0.0.2").value(), ip("10.0.0.3").value(),
                             ip("10.0.0.8").value(), ip("10.0.0.10").value()};
  CHECK(lowest_free(r, taken, r.first) == ip("10.0.0.9"));
  CHECK(lowest_free(r, taken, ip("10.0.0.10")) == ip("10.0.0.11"));
  // Values outside the range in `taken` are harmless.
  taken.insert(taken.begin(), ip("9.0.0.1").value());
  CHECK(lowest_free(r, taken, r.first) == ip("10.0.0.9"));
}

TEST_CASE("exhaustion and the last address") {
  const Range r = must({.range = "10.0.0.0/30"});  // .1 .2
  CHECK(lowest_free(r, {ip("10.0.0.1").value()}, r.first) == ip("10.0.0.2"));
  CHECK_FALSE(lowest_free(r, {ip("10.0.0.1").value(), ip("10.0.0.2").value()}, r.first));
  CHECK(free_count(r, {ip("10.0.0.1").value()}) == 1);
  const Range ex = must({.range = "10.0.0.0/29", .exclude = {"10.0.0.4/30"}});  // .1 .2 .3 free
  CHECK_FALSE(lowest_free(
      ex, {ip("10.0.0.1").value(), ip("10.0.0.2").value(), ip("10.0.0.3").value()}, ex.first));
}

TEST_CASE("round-robin continues after the cursor and wraps") {
  const Range r = must({.range = "10.0.0.0/29"});  // .1 - .6
  std::vector<u128> taken = {ip("10.0.0.2").value()};
  CHECK(allocate(r, taken, AllocationPolicy::kRoundRobin, ip("10.0.0.2")) == ip("10.0.0.3"));
  CHECK(allocate(r, taken, AllocationPolicy::kLowestFree, ip("10.0.0.2")) == ip("10.0.0.1"));
  CHECK(allocate(r, taken, AllocationPolicy::kRoundRobin, ip("10.0.0.6")) == ip("10.0.0.1"));
  CHECK(allocate(r, taken, AllocationPolicy::kRoundRobin, std::nullopt) == ip("10.0.0.1"));
  taken = {ip("10.0.0.1").value(), ip("10.0.0.5").value(), ip("10.0.0.6").value()};
  CHECK(allocate(r, taken, AllocationPolicy::kRoundRobin, ip("10.0.0.4")) == ip("10.0.0.2"));
}

TEST_CASE("IPv6: a /64 and a /48 with offsets beyond 2^63 and 2^64") {
  const Range r64 = must({.range = "fd00:1::/64"});
  CHECK(r64.first == ip("fd00:1::1"));
  CHECK(r64.last == ip("fd00:1::ffff:ffff:ffff:fffe"));
  CHECK(r64.usable_count() == (u128{1} << 64) - 2);
  CHECK(u128_to_string(r64.usable_count()) == "18446744073709551614");
  // High offset: range_start above 2^63 inside the /64.
  const Range hi = must({.range = "fd00:1::/64", .range_start = "fd00:1::8000:0:0:5"});
  CHECK(lowest_free(hi, {ip("fd00:1::8000:0:0:5").value()}, hi.first) == ip("fd00:1::8000:0:0:6"));
  // A /48: offsets beyond 64 bits stay distinct (no aliasing).
  const Range r48 = must({.range = "fd00:2::/48", .range_start = "fd00:2:0:ffff::1"});
  CHECK(lowest_free(r48, {}, r48.first) == ip("fd00:2:0:ffff::1"));
  CHECK(r48.last == ip("fd00:2:0:ffff:ffff:ffff:ffff:fffe"));
  CHECK(r48.contains(ip("fd00:2:0:ffff:1::")));
  CHECK_FALSE(r48.contains(ip("fd00:2:0:1::")));  // below range_start
  CHECK_FALSE(r48.contains(ip("fd00:3::1")));
  std::vector<u128> taken = {ip("fd00:2:0:ffff::1").value(), ip("fd00:2:0:ffff::2").value()};
  CHECK(lowest_free(r48, taken, r48.first) == ip("fd00:2:0:ffff::3"));
  CHECK(free_count(r48, taken) ==
        (u128{1} << 80) - 2 - (ip("fd00:2:0:ffff::1").value() - ip("fd00:2::1").value()) - 2);
}

TEST_CASE("IPv6 last address of the range and all-ones exclusion") {
  const Range r = must({.range = "fd00::/120", .range_start = "fd00::fd"});
  CHECK(r.last == ip("fd00::fe"));
  CHECK(lowest_free(r, {ip("fd00::fd").value()}, r.first) == ip("fd00::fe"));
  CHECK_FALSE(lowest_free(r, {ip("fd00::fd").value(), ip("fd00::fe").value()}, r.first));
}

TEST_CASE("cost does not depend on range size: allocation in a /8 and a /64 is immediate") {
  const Range r = must({.range = "10.0.0.0/8", .exclude = {"10.0.0.0/9"}});
  CHECK(lowest_free(r, {}, r.first) == ip("10.128.0.0"));
  const Range r6 = must({.range = "fd00::/64", .exclude = {"fd00::/65"}});
  CHECK(lowest_free(r6, {}, r6.first) == ip("fd00::8000:0:0:0"));
}

TEST_CASE("ranges overlapping special-purpose blocks are refused, naming the block") {
  CHECK_THAT(err_of({.range = "0.0.0.0/0"}), Catch::Contains("0.0.0.0/8"));
  CHECK_THAT(err_of({.range = "128.0.0.0/1"}), Catch::Contains("224.0.0.0/4"));
  CHECK_THAT(err_of({.range = "127.0.0.0/24"}), Catch::Contains("loopback"));
  CHECK_THAT(err_of({.range = "239.1.0.0/16"}), Catch::Contains("multicast"));
  CHECK_THAT(err_of({.range = "::/0"}), Catch::Contains("::/96"));
  CHECK_THAT(err_of({.range = "::ffff:10.0.0.0/120"}), Catch::Contains("IPv4-mapped"));
  CHECK_THAT(err_of({.range = "ff02::/64"}), Catch::Contains("multicast"));
  CHECK_THAT(err_of({.range = "0.0.0.0/0"}), Catch::StartsWith("range: "));
  // Ordinary private and global ranges, large ones included, stay fine.
  CHECK(must({.range = "10.0.0.0/8"}).subnet.to_string() == "10.0.0.0/8");
  CHECK(must({.range = "100.64.0.0/10"}).subnet.length() == 10);
  CHECK(must({.range = "fd00::/8"}).subnet.length() == 8);
  CHECK(must({.range = "2001:db8::/32"}).subnet.length() == 32);
}

TEST_CASE("lowest free equals a walk over every address (runs of taken addresses, excludes)") {
  // The allocator crosses a run of consecutive taken addresses in one binary search; a plain walk
  // over the /27 decides the same, whatever the reservations, excludes and cursor.
  std::uint32_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 1103515245U + 12345U;
    return seed >> 16;
  };
  for (int round = 0; round < 400; ++round) {
    RangeSpec spec{.range = "10.9.0.0/27"};
    for (int k = 0; k < static_cast<int>(next() % 3); ++k) {
      spec.exclude.push_back("10.9.0." + std::to_string(next() % 32) + "/" +
                             std::to_string(30 + next() % 3));
    }
    auto parsed = parse_range(spec);
    if (!parsed) continue;  // every address excluded
    const Range& r = *parsed;
    std::vector<u128> taken;
    const std::uint32_t density = next() % 100;
    for (u128 v = r.first.value() - 2; v <= r.last.value() + 2; ++v) {
      if (next() % 100 < density) taken.push_back(v);  // also outside the range
    }
    const IpAddress cursor(IpFamily::kV4, r.first.value() + next() % 32);
    auto walk = [&](u128 from) -> std::optional<IpAddress> {
      for (u128 v = std::max(from, r.first.value()); v <= r.last.value(); ++v) {
        const IpAddress a(IpFamily::kV4, v);
        if (r.contains(a) && !std::binary_search(taken.begin(), taken.end(), v)) return a;
      }
      return std::nullopt;
    };
    INFO("round " << round);
    CHECK(allocate(r, taken, AllocationPolicy::kLowestFree, std::nullopt) == walk(0));
    std::optional<IpAddress> rr;
    if (cursor < r.last) rr = walk(cursor.value() + 1);
    if (!rr) rr = walk(0);
    CHECK(allocate(r, taken, AllocationPolicy::kRoundRobin, cursor) == rr);
  }
}
