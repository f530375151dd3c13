// tests/unit/ipam/reference_pool.h — a reference model of a pool's files, for cross-checking the
// product's one model (PoolIndex) in unit tests and fuzzers: the snapshot decoded into a PoolData
// with every reservation materialised, the journal replayed onto it (one merge), and operations
// applied one at a time. Written for clarity, not speed, on top of the product's codecs only
// (journal.h framing, record.h's one record decoder, pool_text.h), so a disagreement with PoolIndex
// is a bug in how the model applies records.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/ipam/journal.h"
#include "ipoib/ipam/pool.h"
#include "ipoib/ipam/pool_text.h"
#include "ipoib/ipam/record.h"

namespace ipoib::ipam {

struct SnapshotImage {
  PoolData pool;
  std::uint64_t applied_seq = 0;  // journal frames up to this sequence are included
};

namespace reference_detail {

inline Error corrupt(std::string_view file, std::string_view what) {
  return Error(ErrorCode::kStoreCorrupt,
               "store file " + std::string(file) + " is corrupt (" + std::string(what) + ")");
}

inline void upsert_range(std::vector<PoolRange>& ranges, const PoolRange& r) {
  for (PoolRange& x : ranges) {
    if (x.key == r.key) {
      x = r;
      return;
    }
  }
  ranges.push_back(r);
}

}  // namespace reference_detail

// Verifies and parses a snapshot (binary, or v1 text at sequence 0). Any defect is kStoreCorrupt
// naming `file`.
inline Result<SnapshotImage> decode_snapshot(std::string_view bytes, std::string_view file) {
  using reference_detail::corrupt;
  if (is_text_pool(bytes)) {
    IPOIB_TRY_ASSIGN(PoolData p, decode_pool(bytes, file));
    return SnapshotImage{std::move(p), 0};
  }
  IPOIB_TRY_ASSIGN(SnapshotFrame frame, open_snapshot(bytes, file));
  SnapshotImage img;
  img.applied_seq = frame.applied_seq;
  img.pool.network_name = frame.network_name;
  std::string_view in = frame.records;
  while (!in.empty()) {
    Record r;
    if (auto e = decode_record(in, r)) {
      return corrupt(file, *e);
    }
    if (r.is_network) {
      return corrupt(file, "unexpected record in a snapshot");
    }
    if (r.op.kind == PoolOp::Kind::kRange) {
      if (!img.pool.reservations.empty()) {
        return corrupt(file, "range record after reservations");
      }
      if (img.pool.find_range(r.op.range.key) != nullptr) {
        return corrupt(file, "duplicate range");
      }
      img.pool.ranges.push_back(std::move(r.op.range));
    } else if (r.op.kind == PoolOp::Kind::kReserve) {
      auto& res = img.pool.reservations;
      if (!res.empty() && !(res.back().ip < r.op.reservation.ip)) {
        return corrupt(file, "reservations out of order or duplicated");
      }
      res.push_back(std::move(r.op.reservation));
    } else {
      return corrupt(file, "unexpected record in a snapshot");
    }
  }
  return img;
}

// Applies the journal's frames with seq > applied_seq to `pool`; their sequence numbers must
// continue applied_seq without a gap, and a release of an address that is not reserved is
// corruption. Returns the last sequence number in the pool.
inline Result<std::uint64_t> replay(PoolData& pool, std::uint64_t applied_seq,
                                    const JournalImage& j, std::string_view file) {
  std::uint64_t last = applied_seq;
  // Latest state of every address the journal touches: a reservation, or nullptr (released).
  std::map<IpAddress, const Reservation*> overlay;
  auto in_snapshot = [&](const IpAddress& ip) {
    const auto it =
        std::lower_bound(pool.reservations.begin(), pool.reservations.end(), ip,
                         [](const Reservation& a, const IpAddress& b) { return a.ip < b; });
    return it != pool.reservations.end() && it->ip == ip;
  };
  for (const JournalFrame& f : j.frames) {
    if (f.seq <= applied_seq) {
      continue;  // already in the snapshot
    }
    if (f.seq != last + 1) {
      return reference_detail::corrupt(file, "journal record " + std::to_string(f.seq) +
                                                 " does not follow the " + "snapshot's sequence " +
                                                 std::to_string(last) + " (records lost)");
    }
    last = f.seq;
    for (const PoolOp& op : f.ops) {
      switch (op.kind) {
        case PoolOp::Kind::kRange:
          reference_detail::upsert_range(pool.ranges, op.range);
          break;
        case PoolOp::Kind::kReserve:
          overlay[op.reservation.ip] = &op.reservation;
          break;
        case PoolOp::Kind::kRelease: {
          const auto it = overlay.find(op.reservation.ip);
          const bool reserved =
              it != overlay.end() ? it->second != nullptr : in_snapshot(op.reservation.ip);
          if (!reserved) {
            return reference_detail::corrupt(
                file, "record " + std::to_string(f.seq) + " releases " +
                          op.reservation.ip.to_string() + ", which is not reserved");
          }
          overlay[op.reservation.ip] = nullptr;
          break;
        }
      }
    }
  }
  if (overlay.empty()) {
    return last;
  }
  // One merge of the sorted snapshot with the sorted overlay.
  std::vector<Reservation> out;
  out.reserve(pool.reservations.size() + overlay.size());
  auto s = pool.reservations.begin();
  auto o = overlay.begin();
  while (s != pool.reservations.end() || o != overlay.end()) {
    if (o == overlay.end() || (s != pool.reservations.end() && s->ip < o->first)) {
      out.push_back(std::move(*s++));
      continue;
    }
    if (s != pool.reservations.end() && s->ip == o->first) {
      ++s;  // replaced or released
    }
    if (o->second != nullptr) {
      out.push_back(*o->second);
    }
    ++o;
  }
  pool.reservations = std::move(out);
  return last;
}

inline Status apply_ops(PoolData& pool, const std::vector<PoolOp>& ops, std::string_view file) {
  for (const PoolOp& op : ops) {
    auto& res = pool.reservations;
    const IpAddress& ip = op.reservation.ip;
    const auto it =
        std::lower_bound(res.begin(), res.end(), ip,
                         [](const Reservation& a, const IpAddress& b) { return a.ip < b; });
    switch (op.kind) {
      case PoolOp::Kind::kRange:
        reference_detail::upsert_range(pool.ranges, op.range);
        break;
      case PoolOp::Kind::kReserve:
        if (it != res.end() && it->ip == ip) {
          *it = op.reservation;
        } else {
          res.insert(it, op.reservation);
        }
        break;
      case PoolOp::Kind::kRelease:
        if (it == res.end() || it->ip != ip) {
          return reference_detail::corrupt(
              file, "release of " + ip.to_string() + ", which is not reserved");
        }
        res.erase(it);
        break;
    }
  }
  return ok_status();
}

}  // namespace ipoib::ipam
