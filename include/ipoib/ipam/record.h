// ipoib/ipam/record.h — what one frame of a pool's journal holds: record-level operations on a
// pool (PoolOp), their encoding, and a reservation viewed in place in the verified bytes.
//
// The byte layout of each record and its one encoder and decoder live in lib/ipam/record.cpp;
// journal.h frames the records, pool_index.h applies them.
//
//   IPOIB_TRY_ASSIGN(std::string payload, encode_ops({PoolOp::release(ip)}));
//   std::string_view in = payload;
//   Record r;
//   while (!in.empty()) if (auto e = decode_record(in, r)) return corrupt(*e); else use(r.op);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/ipam/pool.h"

namespace ipoib::ipam {

struct PoolOp {
  enum class Kind : std::uint8_t { kReserve = 1, kRelease = 2, kRange = 3 };
  Kind kind = Kind::kReserve;
  Reservation reservation;  // kReserve: the whole reservation (inserted or replaced by address);
                            // kRelease: only .ip
  PoolRange range;          // kRange: inserted or replaced by key

  static PoolOp reserve(Reservation r);
  static PoolOp release(const IpAddress& ip);
  static PoolOp set_range(PoolRange r);
  friend bool operator==(const PoolOp&, const PoolOp&) = default;
};

// Payload of a frame holding `ops`. Fields must be storable (is_storable_field; pod_ref and node
// may be empty; netns empty or is_storable_path): anything else is kInternal.
Result<std::string> encode_ops(const std::vector<PoolOp>& ops);

// One decoded record: an operation, or the network record that heads a snapshot or journal.
struct Record {
  bool is_network = false;
  std::string network;  // is_network
  PoolOp op;            // otherwise
};

// Decodes the record at the start of `in` (validating every field) and advances `in` past it.
// Returns what is wrong when it is malformed (the caller names the file: kStoreCorrupt).
std::optional<std::string> decode_record(std::string_view& in, Record& out);

// A reservation read in place from the verified bytes of a snapshot or journal (no allocation).
struct ReservationView {
  IpAddress ip;
  std::int64_t since_unix_s = 0;
  std::string_view range_key;
  std::string_view cni_network;
  std::string_view container_id;
  std::string_view ifname;
  std::string_view pod_ref;
  std::string_view node;   // "" in records before version 3
  std::string_view netns;  // "" in records before version 3, or when unknown
  [[nodiscard]] Reservation to_reservation() const;
};

}  // namespace ipoib::ipam
