// ipoib/ipam/range.h — pure range math and the allocator of the built-in IPAM (no I/O).
//
// A Range is one whereabouts range: the subnet, the usable bounds (range_start/range_end, never
// the network or all-ones address), the excluded intervals and the gateway (never handed out).
// Allocation walks the gaps between sorted blocked intervals, so its cost depends on the number
// of reservations and excludes, never on the size of the range (an IPv6 /64 is ordinary).
//
//   IPOIB_TRY_ASSIGN(Range r, parse_range({.range = "10.0.0.0/24", .exclude = {"10.0.0.8/29"}}));
//   std::vector<u128> taken = {r.first.value(), r.first.value() + 1};     // sorted
//   std::optional<IpAddress> ip = lowest_free(r, taken, r.first);        // 10.0.0.3
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"

namespace ipoib::ipam {

// Closed interval [lo, hi] of address values of one family.
struct Interval {
  u128 lo = 0;
  u128 hi = 0;
  friend bool operator==(const Interval&, const Interval&) = default;
};

// What the configuration says about one range (one element of `ipRanges`, or the top level).
struct RangeSpec {
  std::string range{};        // "10.0.0.5/24" (host bits allowed) or "10.0.0.5-10.0.0.25/24"
  std::string range_start{};  // optional
  std::string range_end{};    // optional
  std::vector<std::string> exclude{};  // CIDRs or bare IPs
  std::string gateway{};               // optional; skipped when inside the range
};

struct Range {
  IpPrefix subnet;                   // host bits cleared
  IpAddress first;                   // lowest address that may be handed out
  IpAddress last;                    // highest address that may be handed out
  std::vector<Interval> excluded;    // sorted, merged, clipped to [first, last]; incl. gateway
  std::optional<IpAddress> gateway;  // as configured (returned in results of this family)

  [[nodiscard]] IpFamily family() const { return subnet.family(); }
  [[nodiscard]] bool contains(const IpAddress& ip) const;  // in [first,last], not excluded
  // Addresses that could ever be handed out: (last - first + 1) minus the excluded ones.
  [[nodiscard]] u128 usable_count() const;
};

// Validates and resolves a range. Errors are kInvalidNetworkConfig naming the key ("range",
// "range_start", "exclude[1]", ...): malformed text, a family mismatch, bounds outside the
// subnet's usable addresses or end < start, an exclude that does not touch the range, and a range
// with no usable address (/31, /32, /127, /128 have none: the network and all-ones addresses are
// never handed out, as in whereabouts).
Result<Range> parse_range(const RangeSpec& spec);

// The lowest address of `r` at or above `from` (clamped to r.first) that is neither excluded nor
// in `taken`. `taken` holds address values sorted ascending (any values; those outside the range
// are skipped by binary search). nullopt when [from, last] has no free address.
std::optional<IpAddress> lowest_free(const Range& r, const std::vector<u128>& taken,
                                     const IpAddress& from);

enum class AllocationPolicy { kLowestFree, kRoundRobin };

// Picks the address for a new reservation. kLowestFree: lowest free from r.first. kRoundRobin:
// lowest free after `cursor` (the last address handed out), wrapping to r.first.
std::optional<IpAddress> allocate(const Range& r, const std::vector<u128>& taken,
                                  AllocationPolicy policy, const std::optional<IpAddress>& cursor);

// Free addresses of `r` given `taken` (sorted; entries outside or excluded are not counted).
u128 free_count(const Range& r, const std::vector<u128>& taken);

// Decimal text of a 128-bit count.
std::string u128_to_string(u128 v);

}  // namespace ipoib::ipam
