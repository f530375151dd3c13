#include "ipoib/ipam/record.h"

#include <algorithm>
#include <bit>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "record_codec.h"

namespace ipoib::ipam {
namespace wire {
namespace {

// Whether the n bytes at p are printable ASCII without space (0x21..0x7e); `room` >= n bytes may
// be read from p. With SSE2 (every x86-64): 16 bytes per compare, signed, so that bytes >= 0x80
// (negative) fail the lower bound; a short field is one masked load. Elsewhere the SWAR tests of
// "Bit Twiddling Hacks" (hasless/hasmore), 8 bytes at a time. This check runs over every field
// of every reservation on every operation.
#if defined(__SSE2__)
[[gnu::always_inline]] inline bool printable_bytes(const unsigned char* p, std::size_t n,
                                                   std::size_t room) {
  const __m128i lo = _mm_set1_epi8(0x20);
  const __m128i hi = _mm_set1_epi8(0x7f);
  auto bad_mask = [&](const unsigned char* at) __attribute__((always_inline)) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
    // Printable: x > 0x20 and x < 0x7f (signed: >= 0x80 is negative, below 0x20).
    const __m128i ok = _mm_and_si128(_mm_cmpgt_epi8(x, lo), _mm_cmplt_epi8(x, hi));
    return static_cast<unsigned>(~_mm_movemask_epi8(ok)) & 0xFFFFU;
  };
  if (n >= 16) {
    for (std::size_t i = 0; i + 16 <= n; i += 16) {
      if (bad_mask(p + i) != 0) {
        return false;
      }
    }
    return bad_mask(p + n - 16) == 0;  // overlapping last load
  }
  if (room >= 16) {
    return (bad_mask(p) & ((1U << n) - 1)) == 0;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] < 0x21 || p[i] > 0x7e) {
      return false;
    }
  }
  return true;
}
#else
bool printable_word(std::uint64_t x) {
  constexpr std::uint64_t kOnes = ~std::uint64_t{0} / 255;
  constexpr std::uint64_t kHigh = kOnes * 128;
  const std::uint64_t below = (x - kOnes * 0x21) & ~x & kHigh;           // a byte < 0x21
  const std::uint64_t above = ((x + kOnes * (127 - 0x7e)) | x) & kHigh;  // a byte > 0x7e
  return (below | above) == 0;
}

[[gnu::always_inline]] inline bool printable_bytes(const unsigned char* p, std::size_t n,
                                                   std::size_t room) {
  std::uint64_t x = 0;
  if (n >= 8) {
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
      std::memcpy(&x, p + i, 8);
      if (!printable_word(x)) {
        return false;
      }
    }
    std::memcpy(&x, p + n - 8, 8);
    return printable_word(x);
  }
  if (room >= 8) {
    std::memcpy(&x, p, 8);
    const std::uint64_t keep = (std::uint64_t{1} << (8 * n)) - 1;  // little endian: first n bytes
    return printable_word((x & keep) | (0x4141414141414141ULL & ~keep));  // 'A' is printable
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] < 0x21 || p[i] > 0x7e) {
      return false;
    }
  }
  return true;
}
#endif

}  // namespace

Error corrupt(std::string_view file, std::string_view what) {
  return Error(ErrorCode::kStoreCorrupt,
               "store file " + std::string(file) + " is corrupt (" + std::string(what) +
                   "); it was left untouched: inspect or restore it (see `ipoib ipam list`), "
                   "then remove the pool's files to start the pool empty");
}

bool storable_or_empty(std::string_view s) { return s.empty() || is_storable_field(s); }

bool ip_fits(const IpAddress& a) { return !a.is_v4() || a.value() <= u128{0xFFFFFFFFU}; }

Status check_fields(const Reservation& r) {
  for (std::string_view f : {std::string_view(r.range_key), std::string_view(r.cni_network),
                             std::string_view(r.container_id), std::string_view(r.ifname)}) {
    if (!is_storable_field(f)) {
      return Error(ErrorCode::kInternal,
                   "pool: unstorable reservation field \"" + std::string(f.substr(0, 64)) + "\"");
    }
  }
  if (!storable_or_empty(r.pod_ref) || !storable_or_empty(r.node)) {
    return Error(ErrorCode::kInternal, "pool: unstorable pod reference or node name");
  }
  if (!r.netns.empty() && !is_storable_path(r.netns)) {
    return Error(ErrorCode::kInternal, "pool: unstorable netns path");
  }
  return ok_status();
}

void encode_reservation(Writer& w, const Reservation& r) {
  w.u8(kReserveV3);
  w.ip(r.ip);
  w.u64(static_cast<std::uint64_t>(r.since_unix_s));
  w.str(r.range_key);
  w.str(r.cni_network);
  w.str(r.container_id);
  w.str(r.ifname);
  w.str(r.pod_ref);
  w.str(r.node);
  w.str16(r.netns);
}

namespace {

// One field of a record being validated: its length prefix (1 byte, or 2 when `wide`) and bytes.
// Advances `pos`; false when it does not fit in `avail`, is empty while required, is too long,
// or is not printable.
// With kRoomy the caller has made sure that the longest possible record (kMaxRecordBytes) and 16
// bytes more fit in `avail`, so no bound needs checking.
template <bool kWide, bool kRoomy>
[[gnu::always_inline]] inline bool check_field(const unsigned char* p, std::size_t avail,
                                               std::size_t& pos, bool required) {
  constexpr std::size_t kPrefix = kWide ? 2 : 1;
  constexpr std::size_t kMax = kWide ? kMaxStoredPathBytes : 253;
  if (!kRoomy && avail - pos < kPrefix) {
    return false;
  }
  std::size_t len = p[pos];
  if constexpr (kWide) {
    len |= static_cast<std::size_t>(p[pos + 1]) << 8;
  }
  pos += kPrefix;
  if ((!kRoomy && avail - pos < len) || len > kMax || (required && len == 0) ||
      !printable_bytes(p + pos, len, kRoomy ? 16 : avail - pos)) {
    return false;
  }
  pos += len;
  return true;
}

// The fields after a record's fixed header at `pos`; the record's end, or 0.
template <bool kRoomy>
[[gnu::always_inline]] inline std::size_t check_fields_at(const unsigned char* p, std::size_t avail,
                                                          std::size_t pos) {
  // range_key, cni_network, container_id, ifname: required; pod_ref, node, netns: optional.
  const bool ok = check_field<false, kRoomy>(p, avail, pos, true) &&
                  check_field<false, kRoomy>(p, avail, pos, true) &&
                  check_field<false, kRoomy>(p, avail, pos, true) &&
                  check_field<false, kRoomy>(p, avail, pos, true) &&
                  check_field<false, kRoomy>(p, avail, pos, false) &&
                  (p[0] == kReserveV2 || (check_field<false, kRoomy>(p, avail, pos, false) &&
                                          check_field<true, kRoomy>(p, avail, pos, false)));
  return ok ? pos : 0;
}

}  // namespace

std::size_t parse_reservation(const char* rec, std::size_t avail, ReservationView* out,
                              bool check) {
  static_assert(std::endian::native == std::endian::little, "records are little endian");
  const auto* p = reinterpret_cast<const unsigned char*>(rec);
  if (check) {
    // The validating walk (every record of a pool, on every operation): no view is built.
    if (avail < 2 || (p[0] != kReserveV2 && p[0] != kReserveV3)) {
      return 0;
    }
    const std::size_t ip_len = p[1] == kFamilyV4 ? 4 : p[1] == kFamilyV6 ? 16 : 0;
    if (ip_len == 0 || avail < 2 + ip_len + 8) {
      return 0;
    }
    // Far from the end of the buffer (every record of a pool but its last few), no field's
    // bounds need checking.
    const std::size_t pos = avail >= kMaxRecordBytes + 16
                                ? check_fields_at<true>(p, avail, 2 + ip_len + 8)
                                : check_fields_at<false>(p, avail, 2 + ip_len + 8);
    if (pos == 0) {
      return 0;
    }
    if (out != nullptr) {
      *out = view_record(rec);
    }
    return pos;
  }
  // A validated record: read without bounds checks.
  const std::size_t ip_len = p[1] == kFamilyV4 ? 4 : 16;
  std::size_t pos = 2 + ip_len + 8;
  std::string_view fields[7];
  const int n_fields = p[0] == kReserveV3 ? 7 : 5;
  for (int k = 0; k < n_fields; ++k) {
    std::size_t len = p[pos++];
    if (k == 6) {
      len |= static_cast<std::size_t>(p[pos++]) << 8;
    }
    fields[k] = std::string_view(rec + pos, len);
    pos += len;
  }
  if (out != nullptr) {
    std::uint64_t since = 0;
    std::memcpy(&since, p + 2 + ip_len, 8);
    out->ip = record_ip(rec);
    out->since_unix_s = static_cast<std::int64_t>(since);
    out->range_key = fields[0];
    out->cni_network = fields[1];
    out->container_id = fields[2];
    out->ifname = fields[3];
    out->pod_ref = fields[4];
    out->node = fields[5];
    out->netns = fields[6];
  }
  return pos;
}

std::size_t reservation_extent_checked(const char* rec, std::size_t avail) {
  const auto* p = reinterpret_cast<const unsigned char*>(rec);
  if (avail < 2 || (p[0] != kReserveV2 && p[0] != kReserveV3)) {
    return 0;
  }
  const std::size_t ip_len = p[1] == kFamilyV4 ? 4 : p[1] == kFamilyV6 ? 16 : 0;
  std::size_t pos = 2 + ip_len + 8;
  if (ip_len == 0 || avail < pos) {
    return 0;
  }
  const int n_short = p[0] == kReserveV3 ? 6 : 5;
  for (int k = 0; k < n_short; ++k) {
    if (pos >= avail) {
      return 0;
    }
    pos += 1 + static_cast<std::size_t>(p[pos]);
  }
  if (p[0] == kReserveV3) {
    if (avail - std::min(pos, avail) < 2) {
      return 0;
    }
    pos += 2 + (static_cast<std::size_t>(p[pos]) | static_cast<std::size_t>(p[pos + 1]) << 8);
  }
  return pos <= avail ? pos : 0;
}

ReservationView view_record(const char* rec) {
  ReservationView v;
  (void)parse_reservation(rec, 0, &v, false);
  return v;
}

Status encode_op(Writer& w, const PoolOp& op) {
  switch (op.kind) {
    case PoolOp::Kind::kReserve: {
      IPOIB_TRY(check_fields(op.reservation));
      encode_reservation(w, op.reservation);
      return ok_status();
    }
    case PoolOp::Kind::kRelease:
      w.u8(static_cast<std::uint8_t>(op.kind));
      w.ip(op.reservation.ip);
      return ok_status();
    case PoolOp::Kind::kRange: {
      const PoolRange& r = op.range;
      if (!is_storable_field(r.key)) {
        return Error(ErrorCode::kInternal, "pool: unstorable range key");
      }
      w.u8(static_cast<std::uint8_t>(op.kind));
      w.str(r.key);
      w.ip(r.subnet.address());
      w.u8(static_cast<std::uint8_t>(r.subnet.length()));
      w.ip(r.first);
      w.ip(r.last);
      w.u32(static_cast<std::uint32_t>(r.excluded.size()));
      const int width = r.subnet.address().is_v4() ? 4 : 16;
      for (const Interval& i : r.excluded) {
        w.u128v(i.lo, width);
        w.u128v(i.hi, width);
      }
      w.u8(r.cursor ? 1 : 0);
      if (r.cursor) {
        w.ip(*r.cursor);
      }
      return ok_status();
    }
  }
  return Error(ErrorCode::kInternal, "pool: unknown operation");
}

std::optional<std::string> decode_op(Reader& rd, DecodedOp& out) {
  const char* at = rd.data();
  const std::size_t avail = rd.left();
  out.kind = rd.u8();
  if (!rd.ok()) {
    return "truncated record";
  }
  if (out.kind == kNetworkOp) {
    const std::string_view n = rd.str();
    if (!rd.ok() || !storable_or_empty(n)) {
      return "bad network record";
    }
    out.network = std::string(n);
    return std::nullopt;
  }
  if (out.kind == kReserveV2 || out.kind == kReserveV3) {
    ReservationView v;
    const std::size_t n = parse_reservation(at, avail, &v, true);
    if (n == 0) {
      return "bad reservation record";
    }
    rd.skip(n - 1);
    out.kind = static_cast<std::uint8_t>(PoolOp::Kind::kReserve);
    out.op.kind = PoolOp::Kind::kReserve;
    out.op.reservation = v.to_reservation();
    return std::nullopt;
  }
  if (out.kind == kReleaseOp) {
    out.op.kind = PoolOp::Kind::kRelease;
    const auto ip = rd.ip();
    if (!rd.ok() || !ip || !ip_fits(*ip)) {
      return "bad release record";
    }
    out.op.reservation.ip = *ip;
    return std::nullopt;
  }
  if (out.kind == kRangeOp) {
    out.op.kind = PoolOp::Kind::kRange;
    PoolRange& r = out.op.range;
    const std::string_view key = rd.str();
    const auto addr = rd.ip();
    const int len = rd.u8();
    const auto first = rd.ip();
    const auto last = rd.ip();
    const std::uint32_t n_ex = rd.u32();
    if (!rd.ok() || !is_storable_field(key) || !addr || !first || !last || !ip_fits(*addr) ||
        !ip_fits(*first) || !ip_fits(*last) || len > addr->bit_length() ||
        first->family() != addr->family() || last->family() != addr->family() || *last < *first) {
      return "bad range record";
    }
    r.key.assign(key);  // `out` may be reused: every field is assigned, the list cleared
    r.excluded.clear();
    r.cursor.reset();
    r.subnet = IpPrefix(*addr, len);
    r.first = *first;
    r.last = *last;
    const int width = addr->is_v4() ? 4 : 16;
    const u128 max = addr->is_v4() ? u128{0xFFFFFFFFU} : ~u128{0};
    for (std::uint32_t i = 0; i < n_ex; ++i) {
      Interval iv;
      for (u128* v : {&iv.lo, &iv.hi}) {
        u128 x = 0;
        for (int b = 0; b < width; ++b) {
          x |= static_cast<u128>(rd.u8()) << (8 * b);
        }
        *v = x;
      }
      if (!rd.ok() || iv.hi < iv.lo || iv.hi > max) {
        return "bad excluded interval";
      }
      r.excluded.push_back(iv);
    }
    const std::uint8_t has_cursor = rd.u8();
    if (has_cursor > 1 || !rd.ok()) {
      return "bad cursor";
    }
    if (has_cursor == 1) {
      const auto c = rd.ip();
      if (!rd.ok() || !c || !ip_fits(*c) || c->family() != addr->family()) {
        return "bad cursor";
      }
      r.cursor = *c;
    }
    return std::nullopt;
  }
  return "unknown record type " + std::to_string(out.kind);
}

void upsert_range_record(std::vector<PoolRange>& ranges, const PoolRange& r) {
  for (PoolRange& x : ranges) {
    if (x.key == r.key) {
      x = r;
      return;
    }
  }
  ranges.push_back(r);
}
Status encode_pool_head(Writer& w, const std::string& network_name,
                        const std::vector<PoolRange>& ranges) {
  if (!storable_or_empty(network_name)) {
    return Error(ErrorCode::kInternal, "pool: unstorable network name");
  }
  w.u8(kNetworkOp);
  w.str(network_name);
  for (const PoolRange& r : ranges) {
    IPOIB_TRY(encode_op(w, PoolOp::set_range(r)));
  }
  return ok_status();
}

}  // namespace wire

PoolOp PoolOp::reserve(Reservation r) {
  PoolOp op;
  op.kind = Kind::kReserve;
  op.reservation = std::move(r);
  return op;
}

PoolOp PoolOp::release(const IpAddress& ip) {
  PoolOp op;
  op.kind = Kind::kRelease;
  op.reservation.ip = ip;
  return op;
}

PoolOp PoolOp::set_range(PoolRange r) {
  PoolOp op;
  op.kind = Kind::kRange;
  op.range = std::move(r);
  return op;
}

Result<std::string> encode_ops(const std::vector<PoolOp>& ops) {
  std::string out;
  wire::Writer w(out);
  for (const PoolOp& op : ops) {
    IPOIB_TRY(wire::encode_op(w, op));
  }
  return out;
}

Reservation ReservationView::to_reservation() const {
  return {ip,
          std::string(range_key),
          std::string(cni_network),
          std::string(container_id),
          std::string(ifname),
          std::string(pod_ref),
          since_unix_s,
          std::string(node),
          std::string(netns)};
}

std::optional<std::string> decode_record(std::string_view& in, Record& out) {
  wire::Reader rd(in);
  wire::DecodedOp d;
  if (auto e = wire::decode_op(rd, d)) {
    return e;
  }
  out.is_network = d.kind == wire::kNetworkOp;
  out.network = std::move(d.network);
  out.op = std::move(d.op);
  in.remove_prefix(in.size() - rd.left());
  return std::nullopt;
}

}  // namespace ipoib::ipam
