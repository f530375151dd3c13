#include "ipoib/ipam/pool_index.h"

#include <algorithm>
#include <cstring>

#include "byte_io.h"
#include "ipoib/ipam/journal.h"
#include "ipoib/ipam/pool_text.h"
#include "record_codec.h"

namespace ipoib::ipam {
using namespace wire;
namespace {

// A release record after its kind byte: the address, or nullopt.
std::optional<IpAddress> parse_release(Reader& rd) {
  auto ip = rd.ip();
  if (!rd.ok() || !ip || !ip_fits(*ip)) {
    return std::nullopt;
  }
  return ip;
}

static_assert(static_cast<std::uint8_t>(IpFamily::kV4) == kFamilyV4 &&
              static_cast<std::uint8_t>(IpFamily::kV6) == kFamilyV6);

IpAddress ip_of(const PoolIndex::Entry& e) { return record_ip(e.record); }
RecordKey key_of(const PoolIndex::Entry& e) { return record_key(e.record); }
bool entry_less(const PoolIndex::Entry& a, const RecordKey& b) { return key_of(a) < b; }

}  // namespace

PoolIndex::PoolIndex(std::string network_name) : network_name_(std::move(network_name)) {}
PoolIndex::PoolIndex(PoolIndex&&) noexcept = default;
PoolIndex& PoolIndex::operator=(PoolIndex&&) noexcept = default;
PoolIndex::~PoolIndex() = default;

// Builds indexes; a friend so that the loading code stays out of the class's interface.
struct IndexBuilder {
  static Status add_snapshot(PoolIndex& ix, std::string_view bytes, std::string_view file,
                             std::uint64_t& applied_seq) {
    if (is_text_pool(bytes)) {
      IPOIB_TRY_ASSIGN(PoolData p, decode_pool(bytes, file));  // the first release's format
      if (p.network_name != ix.network_name_) {
        return wrong_network(file, p.network_name);
      }
      ix = PoolIndex::from_pool_data(p);
      applied_seq = 0;
      return ok_status();
    }
    IPOIB_TRY_ASSIGN(SnapshotFrame frame, open_snapshot(bytes, file));
    if (frame.network_name != ix.network_name_) {
      return wrong_network(file, frame.network_name);
    }
    applied_seq = frame.applied_seq;
    const std::string_view payload = frame.records;
    std::size_t pos = 0;
    ix.entries_.reserve(payload.size() / 24 + 16);  // a reservation record is >= 24 bytes
    RecordKey previous{};
    while (pos < payload.size()) {
      const auto kind = static_cast<std::uint8_t>(payload[pos]);
      if (kind == kRangeOp) {
        if (!ix.entries_.empty()) {
          return corrupt(file, "range record after reservations");
        }
        Reader rr(payload.substr(pos));
        DecodedOp op;
        if (auto e = decode_op(rr, op)) {
          return corrupt(file, *e);
        }
        if (ix.find_range(op.op.range.key) != nullptr) {
          return corrupt(file, "duplicate range");
        }
        ix.ranges.push_back(std::move(op.op.range));
        pos = payload.size() - rr.left();
        continue;
      }
      if (kind != kReserveV2 && kind != kReserveV3) {
        if (kind == kReleaseOp) {
          return corrupt(file, "unexpected record in a snapshot");
        }
        return corrupt(file, "unknown record type " + std::to_string(kind));
      }
      // The fields' contents are checked when read out (at()); the structure now.
      const char* rec = payload.data() + pos;
      const std::size_t n = reservation_extent(rec, payload.size() - pos);
      if (n == 0) {
        return corrupt(file, "bad reservation record");
      }
      const RecordKey key = record_key(rec);
      if (!ix.entries_.empty() && !(previous < key)) {
        return corrupt(file, "reservations out of order or duplicated");
      }
      previous = key;
      ix.entries_.push_back({rec});
      pos += n;
    }
    return ok_status();
  }

  static Status add_journal(PoolIndex& ix, const JournalImage& j, std::uint64_t applied_seq,
                            std::string_view file, std::uint64_t& last) {
    last = applied_seq;
    // Every change the journal makes, in file order: (address, record or nullptr = released,
    // frame). Sorted by address afterwards (stable: file order within an address), each address's
    // changes are checked in order and its last one wins. A vector and one sort instead of a map
    // with a node per change: the journal holds up to max(64 KiB, a sixteenth of the snapshot).
    struct Change {
      IpAddress ip;
      const char* record;
      std::uint64_t seq;
    };
    std::vector<Change> changes;
    changes.reserve(j.frames.size() * 2 + 16);
    // One decoded range record, reused: nearly every ADD's frame carries its range's cursor.
    DecodedOp op;
    for (const JournalFrame& f : j.frames) {
      // Every frame is checked, even those the snapshot already includes: scan_journal decodes
      // them all, and both paths must accept the same files.
      const bool apply = f.seq > applied_seq;
      if (apply && f.seq != last + 1) {
        return corrupt(file, "journal record " + std::to_string(f.seq) + " does not follow the " +
                                 "snapshot's sequence " + std::to_string(last) + " (records lost)");
      }
      const std::string_view payload = f.payload;
      std::size_t pos = 0;
      const auto in_record = [&f] { return " in record " + std::to_string(f.seq); };
      while (pos < payload.size()) {
        const auto kind = static_cast<std::uint8_t>(payload[pos]);
        if (kind == kReserveV2 || kind == kReserveV3) {
          const char* rec = payload.data() + pos;
          const std::size_t n = parse_reservation(rec, payload.size() - pos, nullptr, true);
          if (n == 0) {
            return corrupt(file, "bad reservation record" + in_record());
          }
          if (apply) {
            changes.push_back({record_ip(rec), rec, f.seq});
          }
          pos += n;
        } else if (kind == kReleaseOp) {
          Reader rd(payload.substr(pos + 1));
          const auto ip = parse_release(rd);
          if (!ip) {
            return corrupt(file, "bad release record" + in_record());
          }
          if (apply) {
            changes.push_back({*ip, nullptr, f.seq});
          }
          pos = payload.size() - rd.left();
        } else {
          Reader rd(payload.substr(pos));
          if (auto e = decode_op(rd, op)) {
            return corrupt(file, *e + in_record());
          }
          if (op.kind == kNetworkOp) {
            return corrupt(file, "network record inside the journal");
          }
          if (apply) {
            upsert_range_record(ix.ranges, op.op.range);
          }
          pos = payload.size() - rd.left();
        }
      }
      if (apply) {
        last = f.seq;
      }
    }
    if (changes.empty()) {
      return ok_status();
    }
    std::stable_sort(changes.begin(), changes.end(),
                     [](const Change& a, const Change& b) { return a.ip < b.ip; });
    // Per address: a release needs the address reserved at that point. Of all the violations,
    // report the earliest record, as a replay in file order would.
    const Change* bad = nullptr;
    std::vector<PoolIndex::Entry> out;
    out.reserve(ix.entries_.size() + changes.size() + 16);
    auto e = ix.entries_.begin();
    for (std::size_t i = 0; i < changes.size();) {
      const IpAddress& ip = changes[i].ip;
      // The snapshot's entries before this address, copied at once: a journal changes a few
      // hundred of 10,000 addresses.
      const RecordKey key = key_of(ip);
      const auto next = std::lower_bound(e, ix.entries_.end(), key, entry_less);
      out.insert(out.end(), e, next);
      e = next;
      bool reserved = e != ix.entries_.end() && key_of(*e) == key;
      if (reserved) {
        ++e;  // replaced or released below
      }
      const char* last_record = nullptr;
      for (; i < changes.size() && changes[i].ip == ip; ++i) {
        if (changes[i].record == nullptr && !reserved &&
            (bad == nullptr || changes[i].seq < bad->seq)) {
          bad = &changes[i];
        }
        reserved = changes[i].record != nullptr;
        last_record = changes[i].record;
      }
      if (last_record != nullptr) {
        out.push_back({last_record});  // the last change decides; nullptr: released
      }
    }
    if (bad != nullptr) {
      return corrupt(file, "record " + std::to_string(bad->seq) + " releases " +
                               bad->ip.to_string() + ", which is not reserved");
    }
    out.insert(out.end(), e, ix.entries_.end());
    ix.entries_ = std::move(out);
    return ok_status();
  }

  static Error wrong_network(std::string_view file, std::string_view network) {
    return Error(ErrorCode::kStoreCorrupt, "store file " + std::string(file) +
                                               " belongs to network \"" + std::string(network) +
                                               "\"; it was left untouched");
  }
};

Result<PoolIndex::Loaded> PoolIndex::load(const std::string& network_name, FileBytes snapshot,
                                          std::string_view snapshot_file, FileBytes journal,
                                          std::string_view journal_file) {
  Loaded out{PoolIndex(network_name), false, false, 0, 0, 0};
  PoolIndex& ix = out.index;
  std::uint64_t applied = 0;
  if (!snapshot.empty()) {
    ix.files_.push_back(std::move(snapshot));
    const std::string_view bytes = ix.files_.back().view();
    IPOIB_TRY(IndexBuilder::add_snapshot(ix, bytes, snapshot_file, applied));
    ix.snapshot_file_ = snapshot_file;
    out.snapshot_present = true;
  }
  out.last_seq = applied;
  if (!journal.empty()) {
    ix.files_.push_back(std::move(journal));
    const std::string_view bytes = ix.files_.back().view();
    IPOIB_TRY_ASSIGN(JournalImage j, scan_journal_frames(bytes, journal_file));
    if (j.network_name != network_name) {
      return IndexBuilder::wrong_network(journal_file, j.network_name);
    }
    IPOIB_TRY(IndexBuilder::add_journal(ix, j, applied, journal_file, out.last_seq));
    out.journal_present = true;
    out.journal_header_bytes = j.header_bytes;
    out.journal_valid_bytes = j.valid_bytes;
  }
  return out;
}

PoolIndex PoolIndex::from_pool_data(const PoolData& p) {
  PoolIndex ix(p.network_name);
  ix.ranges = p.ranges;
  std::vector<PoolOp> ops;
  ops.reserve(p.reservations.size());
  for (const Reservation& r : p.reservations) {
    ops.push_back(PoolOp::reserve(r));
  }
  (void)ix.apply(ops,
                 "");  // fields were validated by whoever built `p`; unstorable ones are dropped
  return ix;
}

ReservationView PoolIndex::peek(std::size_t i) const { return view_record(entries_[i].record); }

Result<ReservationView> PoolIndex::at(std::size_t i) const {
  const char* rec = entries_[i].record;
  const std::size_t n = parse_reservation(rec, 0, nullptr, false);
  ReservationView v;
  if (parse_reservation(rec, n, &v, true) != n) {
    return corrupt(snapshot_file_, "bad reservation record for " + record_ip(rec).to_string());
  }
  return v;
}

namespace {

// String equality that rejects most unequal fields without a call: IDs and pod names of one pool
// often share their length and a long prefix, and differ near the end.
inline bool same(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         (a.empty() || (a.back() == b.back() && std::memcmp(a.data(), b.data(), a.size()) == 0));
}

}  // namespace

std::size_t PoolIndex::find_attachment(std::string_view range_key, std::string_view container_id,
                                       std::string_view ifname) const {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    // The most selective field first.
    RecordCursor c(entries_[i].record);
    const std::string_view key = c.next();
    c.skip();  // cni_network
    if (same(c.next(), container_id) && same(c.next(), ifname) && same(key, range_key)) {
      return i;
    }
  }
  return npos;
}

std::size_t PoolIndex::find_pod(std::string_view range_key, std::string_view pod_ref,
                                std::string_view ifname) const {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    RecordCursor c(entries_[i].record);
    const std::string_view key = c.next();
    c.skip();  // cni_network
    c.skip();  // container_id
    const std::string_view ifn = c.next();
    if (same(c.next(), pod_ref) && same(ifn, ifname) && same(key, range_key)) {
      return i;
    }
  }
  return npos;
}

std::vector<u128> PoolIndex::taken(IpFamily family) const {
  std::vector<u128> out;
  out.reserve(entries_.size());
  const std::uint8_t fam = static_cast<std::uint8_t>(family);
  for (const Entry& e : entries_) {
    const RecordKey k = record_key(e.record);
    if (k.family == fam) {
      out.push_back(k.value);
    }
  }
  return out;
}

const PoolRange* PoolIndex::find_range(const std::string& key) const {
  return ipam::find_range(ranges, key);
}

PoolRange& PoolIndex::upsert_range(const std::string& key, const Range& r) {
  return ipam::upsert_range(ranges, key, r);
}

Status PoolIndex::apply(const std::vector<PoolOp>& ops, std::string_view file) {
  for (const PoolOp& op : ops) {
    const IpAddress& ip = op.reservation.ip;
    const auto it = std::lower_bound(entries_.begin(), entries_.end(), key_of(ip), entry_less);
    switch (op.kind) {
      case PoolOp::Kind::kRange:
        upsert_range_record(ranges, op.range);
        break;
      case PoolOp::Kind::kReserve: {
        IPOIB_TRY(check_fields(op.reservation));
        auto rec = std::make_unique<std::string>();
        Writer w(*rec);
        IPOIB_TRY(encode_op(w, op));
        const char* p = rec->data();
        buffers_.push_back(std::move(rec));
        if (it != entries_.end() && ip_of(*it) == ip) {
          it->record = p;
        } else {
          entries_.insert(it, {p});
        }
        break;
      }
      case PoolOp::Kind::kRelease:
        if (it == entries_.end() || ip_of(*it) != ip) {
          return corrupt(file, "release of " + ip.to_string() + ", which is not reserved");
        }
        entries_.erase(it);
        break;
    }
  }
  return ok_status();
}

Result<PoolData> PoolIndex::to_pool_data() const {
  PoolData p;
  p.network_name = network_name_;
  p.ranges = ranges;
  p.reservations.reserve(entries_.size());
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    IPOIB_TRY_ASSIGN(const ReservationView v, at(i));
    p.reservations.push_back(v.to_reservation());
  }
  return p;
}

Result<std::string> PoolIndex::encode_snapshot(std::uint64_t applied_seq) const {
  std::string payload;
  payload.reserve(64 + ranges.size() * 96 + entries_.size() * 112);
  Writer w(payload);
  IPOIB_TRY(encode_pool_head(w, network_name_, ranges));
  for (const Entry& e : entries_) {
    const std::size_t n = parse_reservation(e.record, 0, nullptr, false);
    payload.append(e.record, n);  // records are copied, not re-encoded
  }
  return snapshot_file(applied_seq, payload);
}

}  // namespace ipoib::ipam