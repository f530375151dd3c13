// ipoib/ipam/pool.h — the values a pool holds: reservations and the ranges used with it, and the
// rule for what may be stored. A pool holds every range used with one network_name and every
// reservation, sorted by address, so that overlapping ranges of one network_name can never hand
// out an address twice (the uniqueness is by address across the pool).
//
// PoolData is the plain value (the admin commands, tests); the model every operation uses is
// pool_index.h; the files are journal.h and store.h; the first release's text file pool_text.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/ipam/range.h"

namespace ipoib::ipam {

struct Reservation {
  IpAddress ip;
  std::string range_key;    // which configured range it was allocated from
  std::string cni_network;  // the CNI network `name` (GC only touches its own network)
  std::string container_id;
  std::string ifname;
  std::string pod_ref;  // "namespace/name", or "" when unknown
  std::int64_t since_unix_s = 0;
  // The node that made the reservation ("" in records written before nodes were recorded), and
  // the CNI_NETNS path of the attachment ("" when unknown): whether an earlier container's
  // attachment is still alive. Both are stored by record version 3 (journal.h).
  std::string node = {};
  std::string netns = {};
  friend bool operator==(const Reservation&, const Reservation&) = default;
};

// What the pool remembers about a range: enough for `ipoib ipam list` to count free addresses,
// and the round-robin cursor.
struct PoolRange {
  std::string key;
  IpPrefix subnet;
  IpAddress first;
  IpAddress last;
  std::vector<Interval> excluded;
  std::optional<IpAddress> cursor;  // last address handed out (round-robin)
  friend bool operator==(const PoolRange&, const PoolRange&) = default;
};

struct PoolData {
  std::string network_name;  // "" = default pool
  std::vector<PoolRange> ranges;
  std::vector<Reservation> reservations;  // sorted by ip, unique ip

  // Sorted address values of one family (for the allocator).
  [[nodiscard]] std::vector<u128> taken(IpFamily family) const;
  // Inserts keeping the order; false if the address is already reserved.
  bool insert(Reservation r);
  [[nodiscard]] const PoolRange* find_range(const std::string& key) const;
  // Adds or refreshes the range description; keeps the cursor.
  PoolRange& upsert_range(const std::string& key, const Range& r);
  friend bool operator==(const PoolData&, const PoolData&) = default;
};

// Whether a field may be stored: 1..253 bytes, printable ASCII without spaces.
bool is_storable_field(std::string_view s);

inline constexpr std::size_t kMaxStoredPathBytes = 4096;  // PATH_MAX
// Whether a path (Reservation::netns) may be stored: 1..4096 bytes, printable ASCII without
// spaces ('/' included).
bool is_storable_path(std::string_view s);

}  // namespace ipoib::ipam
