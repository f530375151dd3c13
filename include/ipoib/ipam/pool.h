// ipoib/ipam/pool.h — a pool's in-memory model and the first release's text pool file.
//
// A pool holds every range used with one network_name and every reservation, sorted by address,
// so that overlapping ranges of one network_name can never hand out an address twice (the
// uniqueness is by address across the pool). On disk it is a snapshot plus a journal (journal.h,
// store.h); the text format below is the first release's pool file, still read as a snapshot
// (decode_snapshot) and replaced by the binary one at the next compaction. Its last line carries
// the record count and an FNV-1a 64 checksum of every byte before it, so a torn or edited file
// is detected (kStoreCorrupt), never silently reset.
//
//   ipoib-ipam-pool 1
//   network default
//   range 10.0.0.0/24 10.0.0.0/24 10.0.0.1 10.0.0.254 10.0.0.1-10.0.0.1 10.0.0.7
//   res 10.0.0.2 10.0.0.0/24 mynet 3f2a... net1 ns/pod 1712345678
//   end 4 9c1e0f7a5b3d2c11
//
//   IPOIB_TRY_ASSIGN(PoolData p, decode_pool(text, "/var/lib/cni/ipoib-ipam/pool-default"));
//   std::string bytes = encode_pool(p);
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

inline constexpr int kPoolFormatVersion = 1;

// Whether a field may be stored: 1..253 bytes, printable ASCII without spaces.
bool is_storable_field(std::string_view s);

inline constexpr std::size_t kMaxStoredPathBytes = 4096;  // PATH_MAX
// Whether a path (Reservation::netns) may be stored: 1..4096 bytes, printable ASCII without
// spaces ('/' included).
bool is_storable_path(std::string_view s);

// The file's bytes. Fields must be storable (the plugin validates them before): an unstorable
// field is kInternal.
Result<std::string> encode_pool(const PoolData& p);

// Parses and verifies a pool file. Any defect (bad header, unknown version, malformed line,
// unsorted or duplicated address, missing or wrong trailer) is kStoreCorrupt naming `file_name`
// and the line.
Result<PoolData> decode_pool(std::string_view text, std::string_view file_name);

// FNV-1a 64 of `bytes`.
std::uint64_t fnv1a64(std::string_view bytes);

}  // namespace ipoib::ipam
