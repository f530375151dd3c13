// lib/ipam/record_codec.h (private to the store) — the binary records inside a frame's payload:
// the one encoder and the one decoder of each record kind, shared by the journal format
// (journal.cpp) and the pool model (pool_index.cpp).
//
//   kReserveV3 | ip | u64 since | str range_key | str cni_network | str container_id | str ifname
//              | str pod_ref | str node | str16 netns
//   kReserveV2 | the same up to pod_ref (files written before node and netns were recorded)
//
// str is a u8 length and bytes, str16 a u16 length and bytes. Every field is printable ASCII
// without spaces; pod_ref, node and netns may be empty.

#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "byte_io.h"
#include "ipoib/base/error.h"
#include "ipoib/ipam/pool.h"
#include "ipoib/ipam/record.h"

namespace ipoib::ipam::wire {

// Record kinds on the wire. 1..3 are PoolOp::Kind's values. A reservation is written as
// kReserveV3 (record version 3: node and netns added); kReserveV2 records, which files written
// before it hold, decode with both empty. kNetworkOp is the header record (never in a PoolOp).
inline constexpr std::uint8_t kReserveV2 = 1;
inline constexpr std::uint8_t kReleaseOp = 2;
inline constexpr std::uint8_t kRangeOp = 3;
inline constexpr std::uint8_t kNetworkOp = 4;
inline constexpr std::uint8_t kReserveV3 = 5;

// kStoreCorrupt naming the file; the message says what to do.
Error corrupt(std::string_view file, std::string_view what);
bool storable_or_empty(std::string_view s);
bool ip_fits(const IpAddress& a);

// Whether every field of `r` may be stored (kInternal otherwise: callers validate before).
Status check_fields(const Reservation& r);
// `r` passed check_fields.
void encode_reservation(Writer& w, const Reservation& r);
// Parses (and with `check`, validates) a reservation record that starts at its kind byte
// (kReserveV2 or kReserveV3). Returns the bytes it spans, 0 when malformed. Without `check` the
// record must have been validated before (it is read without bounds checks).
std::size_t parse_reservation(const char* rec, std::size_t avail, ReservationView* out, bool check);
// The longest reservation record: kind, family, IPv6 address, since, six short fields and the
// netns path.
inline constexpr std::size_t kMaxRecordBytes = 2 + 16 + 8 + 6 * (1 + 253) + 2 + kMaxStoredPathBytes;

// reservation_extent for a record near the end of its buffer (every length checked).
std::size_t reservation_extent_checked(const char* rec, std::size_t avail);

// The bytes a reservation record spans (kind, address family and every length prefix within
// `avail`), 0 when they do not fit: what reading it without bounds checks needs. Its fields'
// contents are not checked (parse_reservation with `check` does that). Inline: it runs once per
// record of a snapshot on every operation.
inline std::size_t reservation_extent(const char* rec, std::size_t avail) {
  const auto* p = reinterpret_cast<const unsigned char*>(rec);
  if (avail < kMaxRecordBytes) {
    return reservation_extent_checked(rec, avail);
  }
  // Every length prefix lies within the first kMaxRecordBytes bytes whatever they hold, so only
  // the end needs checking.
  const bool v3 = p[0] == kReserveV3;
  if ((!v3 && p[0] != kReserveV2) || (p[1] != kFamilyV4 && p[1] != kFamilyV6)) {
    return 0;
  }
  std::size_t pos = p[1] == kFamilyV4 ? 2 + 4 + 8 : 2 + 16 + 8;
  for (int k = 0; k < 5; ++k) {
    pos += 1 + static_cast<std::size_t>(p[pos]);
  }
  if (v3) {
    pos += 1 + static_cast<std::size_t>(p[pos]);
    pos += 2 + (static_cast<std::size_t>(p[pos]) | static_cast<std::size_t>(p[pos + 1]) << 8);
  }
  return pos <= avail ? pos : 0;
}
ReservationView view_record(const char* rec);  // a validated record

// The address of a validated reservation record (cheaper than a whole view).
inline IpAddress record_ip(const char* rec) {
  const auto* p = reinterpret_cast<const unsigned char*>(rec);
  if (p[1] == kFamilyV4) {
    std::uint32_t v4 = 0;
    std::memcpy(&v4, p + 2, 4);
    return IpAddress(IpFamily::kV4, v4);
  }
  u128 v = 0;
  std::memcpy(&v, p + 2, 16);
  return IpAddress(IpFamily::kV6, v);
}

// A record's address as a sort key, read in place (IpAddress order: family, then value) — the
// loops over every record of a pool compare these instead of building IpAddress values.
struct RecordKey {
  std::uint8_t family;
  u128 value;
  friend bool operator<(const RecordKey& a, const RecordKey& b) {
    return a.family != b.family ? a.family < b.family : a.value < b.value;
  }
  friend bool operator==(const RecordKey& a, const RecordKey& b) = default;
};
inline RecordKey record_key(const char* rec) {
  const auto* p = reinterpret_cast<const unsigned char*>(rec);
  if (p[1] == kFamilyV4) {
    std::uint32_t v4 = 0;
    std::memcpy(&v4, p + 2, 4);
    return {kFamilyV4, v4};
  }
  u128 v = 0;
  std::memcpy(&v, p + 2, 16);
  return {p[1], v};
}
inline RecordKey key_of(const IpAddress& ip) {
  return {static_cast<std::uint8_t>(ip.family()), ip.value()};
}

// A record validated when it was loaded or encoded (it starts at its kind byte): read without
// bounds checks. at() and the finders run over every reservation of the pool on every ADD.
struct RecordCursor {
  const char* rec;
  std::size_t pos;
  explicit RecordCursor(const char* r)
      : rec(r), pos(2 + (static_cast<unsigned char>(r[1]) == kFamilyV4 ? 4 : 16) + 8) {}
  std::string_view next() {
    const std::size_t len = static_cast<unsigned char>(rec[pos]);
    const std::string_view f(rec + pos + 1, len);
    pos += 1 + len;
    return f;
  }
  void skip() { pos += 1 + static_cast<std::size_t>(static_cast<unsigned char>(rec[pos])); }
};

Status encode_op(Writer& w, const PoolOp& op);

// One op, or an error text (the caller adds the file name).
struct DecodedOp {
  std::uint8_t kind = 0;
  PoolOp op;
  std::string network;  // kNetworkOp
};
std::optional<std::string> decode_op(Reader& rd, DecodedOp& out);

// The records heading a snapshot: the network record, then one range record per range.
Status encode_pool_head(Writer& w, const std::string& network_name,
                        const std::vector<PoolRange>& ranges);

void upsert_range_record(std::vector<PoolRange>& ranges, const PoolRange& r);

}  // namespace ipoib::ipam::wire
