#include "ipoib/ipam/journal.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <map>
#include <optional>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace ipoib::ipam {
namespace {

// Record kinds on the wire. 1..3 are PoolOp::Kind's values. A reservation is written as
// kReserveV3 (record version 3: node and netns added); kReserveV2 records, which files written
// before it hold, decode with both empty. kNetworkOp is the header record (never in a PoolOp).
constexpr std::uint8_t kReserveV2 = 1;
constexpr std::uint8_t kReleaseOp = 2;
constexpr std::uint8_t kRangeOp = 3;
constexpr std::uint8_t kNetworkOp = 4;
constexpr std::uint8_t kReserveV3 = 5;
constexpr std::uint8_t kFamilyV4 = 4;
constexpr std::uint8_t kFamilyV6 = 6;

// ---- CRC-32C -----------------------------------------------------------------------------------

constexpr std::uint32_t kCrc32cPoly = 0x82F63B78;  // 0x1EDC6F41 bit-reversed

constexpr std::array<std::array<std::uint32_t, 256>, 8> make_tables() {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) {
      c = (c & 1U) != 0 ? (c >> 1) ^ kCrc32cPoly : c >> 1;
    }
    t[0][i] = c;
  }
  for (std::size_t s = 1; s < 8; ++s) {
    for (std::uint32_t i = 0; i < 256; ++i) {
      t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFU];
    }
  }
  return t;
}
constexpr auto kTables = make_tables();

// Slicing-by-8: eight table lookups per 8-byte word.
std::uint32_t crc32c_table(const unsigned char* p, std::size_t n, std::uint32_t c) {
  while (n >= 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, 8);
    if constexpr (std::endian::native == std::endian::big) {
      w = __builtin_bswap64(w);
    }
    w ^= c;
    c = kTables[7][w & 0xFF] ^ kTables[6][(w >> 8) & 0xFF] ^ kTables[5][(w >> 16) & 0xFF] ^
        kTables[4][(w >> 24) & 0xFF] ^ kTables[3][(w >> 32) & 0xFF] ^ kTables[2][(w >> 40) & 0xFF] ^
        kTables[1][(w >> 48) & 0xFF] ^ kTables[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) {
    c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xFFU];
  }
  return c;
}

#if defined(__x86_64__)
// The SSE4.2 crc32 instruction computes exactly this polynomial, 8 bytes per instruction
// (Intel SDM, CRC32). One dependent stream runs at ~2.7 bytes/cycle: ~0.15 ms for the ~1 MB
// snapshot of 10,000 reservations, small next to reading and parsing it, so the 3-stream
// interleave with its combine tables is not worth its code.
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const unsigned char* p, std::size_t n,
                                                             std::uint32_t c) {
  std::uint64_t c64 = c;
  while (n >= 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, 8);
    c64 = _mm_crc32_u64(c64, w);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c64);
  while (n-- > 0) {
    c32 = _mm_crc32_u8(c32, *p++);
  }
  return c32;
}

bool have_sse42() {
  static const bool has = __builtin_cpu_supports("sse4.2") != 0;
  return has;
}
#endif

// ---- byte writer / reader ----------------------------------------------------------------------

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v));
    u8(static_cast<std::uint8_t>(v >> 8));
  }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
      u8(static_cast<std::uint8_t>(v >> (8 * i)));
    }
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      u8(static_cast<std::uint8_t>(v >> (8 * i)));
    }
  }
  void u128v(u128 v, int bytes) {
    for (int i = 0; i < bytes; ++i) {
      u8(static_cast<std::uint8_t>(v >> (8 * i)));
    }
  }
  void ip(const IpAddress& a) {
    u8(a.is_v4() ? kFamilyV4 : kFamilyV6);
    u128v(a.value(), a.is_v4() ? 4 : 16);
  }
  void str(std::string_view s) {
    u8(static_cast<std::uint8_t>(s.size()));
    out_.append(s);
  }
  void str16(std::string_view s) {
    u16(static_cast<std::uint16_t>(s.size()));
    out_.append(s);
  }
  std::string& out() { return out_; }

 private:
  std::string& out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in)
      : p_(reinterpret_cast<const unsigned char*>(in.data())), n_(in.size()) {}
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] bool done() const { return n_ == 0; }
  [[nodiscard]] std::size_t left() const { return n_; }
  [[nodiscard]] const char* data() const { return reinterpret_cast<const char*>(p_); }
  void skip(std::size_t k) {
    if (need(k)) {
      p_ += k;
      n_ -= k;
    }
  }
  std::uint8_t u8() {
    if (!need(1)) {
      return 0;
    }
    --n_;
    return *p_++;
  }
  std::uint32_t u32() { return static_cast<std::uint32_t>(le(4)); }
  std::uint64_t u64() { return static_cast<std::uint64_t>(le(8)); }
  std::int64_t i64() { return static_cast<std::int64_t>(u64()); }
  std::optional<IpAddress> ip() {
    const std::uint8_t fam = u8();
    if (fam == kFamilyV4) {
      return IpAddress(IpFamily::kV4, le(4));
    }
    if (fam == kFamilyV6) {
      return IpAddress(IpFamily::kV6, le(16));
    }
    ok_ = false;
    return std::nullopt;
  }
  std::string_view str() {
    const std::size_t len = u8();
    if (!need(len)) {
      return {};
    }
    std::string_view s(reinterpret_cast<const char*>(p_), len);
    p_ += len;
    n_ -= len;
    return s;
  }

 private:
  bool need(std::size_t k) {
    if (!ok_ || n_ < k) {
      ok_ = false;
      return false;
    }
    return true;
  }
  u128 le(int bytes) {
    if (!need(static_cast<std::size_t>(bytes))) {
      return 0;
    }
    u128 v = 0;
    for (int i = 0; i < bytes; ++i) {
      v |= static_cast<u128>(p_[i]) << (8 * i);
    }
    p_ += bytes;
    n_ -= static_cast<std::size_t>(bytes);
    return v;
  }
  const unsigned char* p_;
  std::size_t n_;
  bool ok_ = true;
};

std::uint32_t load_u32(std::string_view b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + static_cast<std::size_t>(i)]))
         << (8 * i);
  }
  return v;
}

std::uint64_t load_u64(std::string_view b, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[at + static_cast<std::size_t>(i)]))
         << (8 * i);
  }
  return v;
}

Error corrupt(std::string_view file, std::string_view what) {
  return Error(ErrorCode::kStoreCorrupt,
               "store file " + std::string(file) + " is corrupt (" + std::string(what) +
                   "); it was left untouched: inspect or restore it (see `ipoib ipam list`), "
                   "then remove the pool's files to start the pool empty");
}

bool storable_or_empty(std::string_view s) { return s.empty() || is_storable_field(s); }

bool ip_fits(const IpAddress& a) { return !a.is_v4() || a.value() <= u128{0xFFFFFFFFU}; }

// Whether the bytes are printable ASCII without space (0x21..0x7e), 8 at a time with the SWAR
// tests of "Bit Twiddling Hacks" (hasless/hasmore, valid for thresholds below 128). A per-field
// check with one masked load for short fields measured faster than one pass over the record's
// whole field span (which has to forgive the length bytes).
bool printable_word(std::uint64_t x) {
  constexpr std::uint64_t kOnes = ~std::uint64_t{0} / 255;
  constexpr std::uint64_t kHigh = kOnes * 128;
  const std::uint64_t below = (x - kOnes * 0x21) & ~x & kHigh;           // a byte < 0x21
  const std::uint64_t above = ((x + kOnes * (127 - 0x7e)) | x) & kHigh;  // a byte > 0x7e
  return (below | above) == 0;
}

// `room` >= n bytes may be read from p: short fields are checked with one (masked) 8-byte load,
// longer ones 8 bytes at a time with an overlapping last load.
bool printable_bytes(const unsigned char* p, std::size_t n, std::size_t room) {
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

// ---- the reservation record: one encoder, one decoder ----------------------------------------
//
//   kReserveV3 | ip | u64 since | str range_key | str cni_network | str container_id | str ifname
//              | str pod_ref | str node | str16 netns
//   kReserveV2 | the same up to pod_ref (files written before node and netns were recorded)
//
// str is a u8 length and bytes, str16 a u16 length and bytes. Every field is printable ASCII
// without spaces; pod_ref, node and netns may be empty.

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

// `r` passed check_fields.
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

// Parses (and with `check`, validates) a reservation record that starts at its kind byte
// (kReserveV2 or kReserveV3). Returns the bytes it spans, 0 when malformed. Without `check` the
// record must have been validated before (it is read without bounds checks).
std::size_t parse_reservation(const char* rec, std::size_t avail, ReservationView* out,
                              bool check) {
  static_assert(std::endian::native == std::endian::little, "records are little endian");
  const auto* p = reinterpret_cast<const unsigned char*>(rec);
  if (avail < 2 || (p[0] != kReserveV2 && p[0] != kReserveV3)) {
    return 0;
  }
  const bool v3 = p[0] == kReserveV3;
  const std::uint8_t fam = p[1];
  const std::size_t ip_len = fam == kFamilyV4 ? 4 : fam == kFamilyV6 ? 16 : 0;
  if (ip_len == 0 || avail < 2 + ip_len + 8) {
    return 0;
  }
  std::size_t pos = 2 + ip_len + 8;
  constexpr int kFields = 7;  // range_key, cni_network, container_id, ifname, pod_ref, node, netns
  std::string_view fields[kFields];
  const int n_fields = v3 ? kFields : 5;
  for (int k = 0; k < n_fields; ++k) {
    const bool wide = k == 6;
    if (avail - pos < (wide ? 2U : 1U)) {
      return 0;
    }
    std::size_t len = p[pos++];
    if (wide) {
      len |= static_cast<std::size_t>(p[pos++]) << 8;
    }
    if (avail - pos < len) {
      return 0;
    }
    if (check && ((len == 0 && k < 4) || len > (wide ? kMaxStoredPathBytes : 253) ||
                  !printable_bytes(p + pos, len, avail - pos))) {
      return 0;
    }
    fields[k] = std::string_view(rec + pos, len);
    pos += len;
  }
  if (out != nullptr) {
    u128 v = 0;
    if (ip_len == 4) {
      std::uint32_t v4 = 0;
      std::memcpy(&v4, p + 2, 4);
      v = v4;
    } else {
      std::memcpy(&v, p + 2, 16);
    }
    std::uint64_t since = 0;
    std::memcpy(&since, p + 2 + ip_len, 8);
    out->ip = IpAddress(fam == kFamilyV4 ? IpFamily::kV4 : IpFamily::kV6, v);
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

ReservationView view_record(const char* rec) {
  ReservationView v;
  (void)parse_reservation(rec, ~std::size_t{0} >> 1, &v, false);
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

// One op, or an error text (the caller adds the file name).
struct DecodedOp {
  std::uint8_t kind = 0;
  PoolOp op;
  std::string network;  // kNetworkOp
};

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
    r.key.assign(key);
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

std::uint32_t frame_crc(std::string_view bytes_without_crc) { return crc32c(bytes_without_crc); }

// A complete, verified frame at `pos`, or nullopt.
struct FrameView {
  std::uint64_t seq = 0;
  std::string_view payload;
  std::size_t end = 0;
};

std::optional<FrameView> frame_at(std::string_view b, std::size_t pos) {
  if (b.size() - pos < kFrameOverhead) {
    return std::nullopt;
  }
  const std::size_t len = load_u32(b, pos);
  if (len > kMaxFramePayload || b.size() - pos - kFrameOverhead < len) {
    return std::nullopt;
  }
  const std::size_t end = pos + kFrameOverhead + len;
  if (frame_crc(b.substr(pos, 12 + len)) != load_u32(b, end - 4)) {
    return std::nullopt;
  }
  return FrameView{load_u64(b, pos + 4), b.substr(pos + 12, len), end};
}

bool all_zero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == 0; });
}

const PoolRange* find_range_in(const std::vector<PoolRange>& ranges, const std::string& key) {
  for (const PoolRange& r : ranges) {
    if (r.key == key) {
      return &r;
    }
  }
  return nullptr;
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

}  // namespace

std::uint32_t crc32c_portable(std::string_view bytes, std::uint32_t crc) {
  return ~crc32c_table(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), ~crc);
}

std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc) {
#if defined(__x86_64__)
  if (have_sse42()) {
    return ~crc32c_sse42(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), ~crc);
  }
#endif
  return crc32c_portable(bytes, crc);
}

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
  Writer w(out);
  for (const PoolOp& op : ops) {
    IPOIB_TRY(encode_op(w, op));
  }
  return out;
}

std::string encode_frame(std::uint64_t seq, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + kFrameOverhead);
  Writer w(out);
  w.u32(static_cast<std::uint32_t>(payload.size()));
  w.u64(seq);
  out.append(payload);
  w.u32(frame_crc(out));
  return out;
}

Result<std::string> encode_snapshot(const PoolData& pool, std::uint64_t applied_seq) {
  if (!storable_or_empty(pool.network_name)) {
    return Error(ErrorCode::kInternal, "pool: unstorable network name");
  }
  std::string payload;
  payload.reserve(64 + pool.ranges.size() * 96 + pool.reservations.size() * 128);
  Writer w(payload);
  w.u8(kNetworkOp);
  w.str(pool.network_name);
  for (const PoolRange& r : pool.ranges) {
    IPOIB_TRY(encode_op(w, PoolOp::set_range(r)));
  }
  for (const Reservation& r : pool.reservations) {
    // Encoded in place (not through PoolOp::reserve) to avoid copying every reservation.
    IPOIB_TRY(check_fields(r));
    encode_reservation(w, r);
  }
  if (payload.size() > kMaxFramePayload) {
    return Error(ErrorCode::kIoFailure, "pool: snapshot larger than 64 MiB");
  }
  return std::string(kSnapshotMagic) + encode_frame(applied_seq, payload);
}

Result<std::string> encode_journal_header(const std::string& network_name) {
  if (!storable_or_empty(network_name)) {
    return Error(ErrorCode::kInternal, "pool: unstorable network name");
  }
  std::string payload;
  Writer w(payload);
  w.u8(kNetworkOp);
  w.str(network_name);
  return std::string(kJournalMagic) + encode_frame(0, payload);
}

Result<SnapshotImage> decode_snapshot(std::string_view bytes, std::string_view file) {
  if (bytes.substr(0, 16) == "ipoib-ipam-pool ") {
    IPOIB_TRY_ASSIGN(PoolData p, decode_pool(bytes, file));
    return SnapshotImage{std::move(p), 0};
  }
  if (bytes.substr(0, kSnapshotMagic.size()) != kSnapshotMagic) {
    return corrupt(file, "not an ipoib IPAM snapshot");
  }
  const auto frame = frame_at(bytes, kSnapshotMagic.size());
  if (!frame) {
    return corrupt(file, "truncated or checksum mismatch");
  }
  if (frame->end != bytes.size()) {
    return corrupt(file, "unexpected bytes after the snapshot");
  }
  SnapshotImage img;
  img.applied_seq = frame->seq;
  Reader rd(frame->payload);
  DecodedOp d;
  if (auto e = decode_op(rd, d)) {
    return corrupt(file, *e);
  }
  if (d.kind != kNetworkOp) {
    return corrupt(file, "no network record");
  }
  img.pool.network_name = std::move(d.network);
  // A payload of 10,000 reservations: reserve once.
  img.pool.reservations.reserve(frame->payload.size() / 96);
  while (!rd.done()) {
    DecodedOp op;
    if (auto e = decode_op(rd, op)) {
      return corrupt(file, *e);
    }
    if (op.kind == kRangeOp) {
      if (!img.pool.reservations.empty()) {
        return corrupt(file, "range record after reservations");
      }
      if (find_range_in(img.pool.ranges, op.op.range.key) != nullptr) {
        return corrupt(file, "duplicate range");
      }
      img.pool.ranges.push_back(std::move(op.op.range));
    } else if (op.kind == static_cast<std::uint8_t>(PoolOp::Kind::kReserve)) {
      auto& res = img.pool.reservations;
      if (!res.empty() && !(res.back().ip < op.op.reservation.ip)) {
        return corrupt(file, "reservations out of order or duplicated");
      }
      res.push_back(std::move(op.op.reservation));
    } else {
      return corrupt(file, "unexpected record in a snapshot");
    }
  }
  return img;
}

namespace {

// The framing checks of scan_journal; `decode` also decodes every frame's operations (the index
// walks the payloads itself, with the same checks, without materialising them).
Result<JournalImage> scan_frames(std::string_view b, std::string_view file, bool decode) {
  // The journal is created whole (header written to a temporary file, renamed into place), so a
  // short or wrong header is corruption, never a torn write.
  if (b.substr(0, kJournalMagic.size()) != kJournalMagic) {
    return corrupt(file, "not an ipoib IPAM journal");
  }
  const auto header = frame_at(b, kJournalMagic.size());
  if (!header || header->seq != 0) {
    return corrupt(file, "bad journal header");
  }
  JournalImage img;
  {
    Reader rd(header->payload);
    DecodedOp d;
    if (auto e = decode_op(rd, d); e || d.kind != kNetworkOp || !rd.done()) {
      return corrupt(file, "bad journal header");
    }
    img.network_name = std::move(d.network);
  }
  img.header_bytes = header->end;
  std::size_t pos = header->end;
  std::uint64_t last = 0;
  while (pos < b.size()) {
    const auto f = frame_at(b, pos);
    if (!f) {
      // Not a valid frame: a torn append (only at the very end) or corruption.
      const std::string_view rest = b.substr(pos);
      const std::string where = " at byte " + std::to_string(pos);
      if (all_zero(rest)) {
        break;  // the file grew but the data never reached the disk (power loss)
      }
      if (rest.size() < kFrameOverhead) {
        break;  // a header cut short by SIGKILL inside write(2)
      }
      const std::size_t len = load_u32(b, pos);
      const std::uint64_t seq = load_u64(b, pos + 4);
      if (len > kMaxFramePayload) {
        return corrupt(file, "impossible record length" + where);
      }
      if (!img.frames.empty() && seq != last + 1) {
        return corrupt(file, "bad record" + where + " (sequence " + std::to_string(seq) +
                                 " after " + std::to_string(last) + ")");
      }
      if (pos + kFrameOverhead + len < b.size()) {
        return corrupt(file, "record" + where + " fails its checksum and more data follows");
      }
      // The bad frame reaches the end of the file. If a valid later frame hides in it, its
      // length field was damaged: corruption, not a tear.
      for (std::size_t o = pos + 1; o + kFrameOverhead <= b.size(); ++o) {
        const std::uint64_t s = load_u64(b, o + 4);
        if (s > last && s - last <= b.size() && frame_at(b, o)) {
          return corrupt(file, "bad record" + where + " followed by a valid one");
        }
      }
      break;
    }
    if (f->seq == 0 || (!img.frames.empty() && f->seq != last + 1)) {
      return corrupt(file, "sequence gap at byte " + std::to_string(pos) + " (" +
                               std::to_string(f->seq) + " after " + std::to_string(last) + ")");
    }
    JournalFrame jf;
    jf.seq = f->seq;
    jf.payload = f->payload;
    if (f->payload.empty()) {
      return corrupt(file, "empty record " + std::to_string(f->seq));
    }
    Reader rd(f->payload);
    while (decode && !rd.done()) {
      DecodedOp d;
      if (auto e = decode_op(rd, d)) {
        return corrupt(file, *e + " in record " + std::to_string(f->seq));
      }
      if (d.kind == kNetworkOp) {
        return corrupt(file, "network record inside the journal");
      }
      jf.ops.push_back(std::move(d.op));
    }
    last = f->seq;
    img.frames.push_back(std::move(jf));
    pos = f->end;
  }
  img.valid_bytes = pos;
  img.torn_tail = pos < b.size();
  return img;
}

}  // namespace

Result<JournalImage> scan_journal(std::string_view b, std::string_view file) {
  return scan_frames(b, file, true);
}

Result<std::uint64_t> replay(PoolData& pool, std::uint64_t applied_seq, const JournalImage& j,
                             std::string_view file) {
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
      return corrupt(file, "journal record " + std::to_string(f.seq) + " does not follow the " +
                               "snapshot's sequence " + std::to_string(last) + " (records lost)");
    }
    last = f.seq;
    for (const PoolOp& op : f.ops) {
      switch (op.kind) {
        case PoolOp::Kind::kRange:
          upsert_range_record(pool.ranges, op.range);
          break;
        case PoolOp::Kind::kReserve:
          overlay[op.reservation.ip] = &op.reservation;
          break;
        case PoolOp::Kind::kRelease: {
          const auto it = overlay.find(op.reservation.ip);
          const bool reserved =
              it != overlay.end() ? it->second != nullptr : in_snapshot(op.reservation.ip);
          if (!reserved) {
            return corrupt(file, "record " + std::to_string(f.seq) + " releases " +
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

Status apply_ops(PoolData& pool, const std::vector<PoolOp>& ops, std::string_view file) {
  for (const PoolOp& op : ops) {
    auto& res = pool.reservations;
    const IpAddress& ip = op.reservation.ip;
    const auto it =
        std::lower_bound(res.begin(), res.end(), ip,
                         [](const Reservation& a, const IpAddress& b) { return a.ip < b; });
    switch (op.kind) {
      case PoolOp::Kind::kRange:
        upsert_range_record(pool.ranges, op.range);
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
          return corrupt(file, "release of " + ip.to_string() + ", which is not reserved");
        }
        res.erase(it);
        break;
    }
  }
  return ok_status();
}

std::optional<std::vector<PoolOp>> diff_pools(const PoolData& before, const PoolData& after) {
  if (before.network_name != after.network_name) {
    return std::nullopt;
  }
  std::vector<PoolOp> ops;
  for (const PoolRange& b : before.ranges) {
    if (find_range_in(after.ranges, b.key) == nullptr) {
      return std::nullopt;
    }
  }
  for (const PoolRange& a : after.ranges) {
    const PoolRange* b = find_range_in(before.ranges, a.key);
    if (b == nullptr || !(*b == a)) {
      ops.push_back(PoolOp::set_range(a));
    }
  }
  auto b = before.reservations.begin();
  auto a = after.reservations.begin();
  while (b != before.reservations.end() || a != after.reservations.end()) {
    if (a == after.reservations.end() || (b != before.reservations.end() && b->ip < a->ip)) {
      ops.push_back(PoolOp::release(b->ip));
      ++b;
    } else if (b == before.reservations.end() || a->ip < b->ip) {
      ops.push_back(PoolOp::reserve(*a));
      ++a;
    } else {
      if (!(*a == *b)) {
        ops.push_back(PoolOp::reserve(*a));
      }
      ++a;
      ++b;
    }
  }
  return ops;
}

// ---- PoolIndex ---------------------------------------------------------------------------------

namespace {

// A release record after its kind byte: the address, or nullopt.
std::optional<IpAddress> parse_release(Reader& rd) {
  auto ip = rd.ip();
  if (!rd.ok() || !ip || !ip_fits(*ip)) {
    return std::nullopt;
  }
  return ip;
}

bool entry_less(const PoolIndex::Entry& a, const IpAddress& b) { return a.ip < b; }

}  // namespace

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

PoolIndex::PoolIndex(std::string network_name) : network_name_(std::move(network_name)) {}
PoolIndex::PoolIndex(PoolIndex&&) noexcept = default;
PoolIndex& PoolIndex::operator=(PoolIndex&&) noexcept = default;
PoolIndex::~PoolIndex() = default;

// Builds indexes; a friend so that the loading code stays out of the class's interface.
struct IndexBuilder {
  static Status add_snapshot(PoolIndex& ix, std::string_view bytes, std::string_view file,
                             std::uint64_t& applied_seq) {
    if (bytes.substr(0, kSnapshotMagic.size()) != kSnapshotMagic) {
      IPOIB_TRY_ASSIGN(SnapshotImage img, decode_snapshot(bytes, file));  // v1 text, or the error
      PoolIndex converted = PoolIndex::from_pool_data(img.pool);
      if (img.pool.network_name != ix.network_name_) {
        return wrong_network(file, img.pool.network_name);
      }
      ix = std::move(converted);
      applied_seq = img.applied_seq;
      return ok_status();
    }
    const auto frame = frame_at(bytes, kSnapshotMagic.size());
    if (!frame) {
      return corrupt(file, "truncated or checksum mismatch");
    }
    if (frame->end != bytes.size()) {
      return corrupt(file, "unexpected bytes after the snapshot");
    }
    applied_seq = frame->seq;
    Reader rd(frame->payload);
    DecodedOp d;
    if (auto e = decode_op(rd, d)) {
      return corrupt(file, *e);
    }
    if (d.kind != kNetworkOp) {
      return corrupt(file, "no network record");
    }
    if (d.network != ix.network_name_) {
      return wrong_network(file, d.network);
    }
    const std::string_view payload = frame->payload;
    std::size_t pos = payload.size() - rd.left();
    ix.entries_.reserve(payload.size() / 24 + 16);  // a reservation record is >= 24 bytes
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
      ReservationView v;
      const char* rec = payload.data() + pos;
      const std::size_t n = parse_reservation(rec, payload.size() - pos, &v, true);
      if (n == 0) {
        return corrupt(file, "bad reservation record");
      }
      if (!ix.entries_.empty() && !(ix.entries_.back().ip < v.ip)) {
        return corrupt(file, "reservations out of order or duplicated");
      }
      ix.entries_.push_back({v.ip, rec});
      pos += n;
    }
    return ok_status();
  }

  static Status add_journal(PoolIndex& ix, const JournalImage& j, std::uint64_t applied_seq,
                            std::string_view file, std::uint64_t& last) {
    last = applied_seq;
    std::map<IpAddress, const char*> overlay;  // nullptr = released
    auto reserved = [&](const IpAddress& ip) {
      if (const auto it = overlay.find(ip); it != overlay.end()) {
        return it->second != nullptr;
      }
      const auto it = std::lower_bound(ix.entries_.begin(), ix.entries_.end(), ip, entry_less);
      return it != ix.entries_.end() && it->ip == ip;
    };
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
      const std::string in_record = " in record " + std::to_string(f.seq);
      while (pos < payload.size()) {
        const auto kind = static_cast<std::uint8_t>(payload[pos]);
        if (kind == kReserveV2 || kind == kReserveV3) {
          ReservationView v;
          const char* rec = payload.data() + pos;
          const std::size_t n = parse_reservation(rec, payload.size() - pos, &v, true);
          if (n == 0) {
            return corrupt(file, "bad reservation record" + in_record);
          }
          if (apply) {
            overlay[v.ip] = rec;
          }
          pos += n;
        } else if (kind == kReleaseOp) {
          Reader rd(payload.substr(pos + 1));
          const auto ip = parse_release(rd);
          if (!ip) {
            return corrupt(file, "bad release record" + in_record);
          }
          if (apply) {
            if (!reserved(*ip)) {
              return corrupt(file, "record " + std::to_string(f.seq) + " releases " +
                                       ip->to_string() + ", which is not reserved");
            }
            overlay[*ip] = nullptr;
          }
          pos = payload.size() - rd.left();
        } else {
          Reader rd(payload.substr(pos));
          DecodedOp op;
          if (auto e = decode_op(rd, op)) {
            return corrupt(file, *e + in_record);
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
    if (overlay.empty()) {
      return ok_status();
    }
    // One merge of two sorted sequences of small trivially copyable entries.
    std::vector<PoolIndex::Entry> out;
    out.reserve(ix.entries_.size() + overlay.size() + 16);
    auto e = ix.entries_.begin();
    auto o = overlay.begin();
    while (e != ix.entries_.end() || o != overlay.end()) {
      if (o == overlay.end() || (e != ix.entries_.end() && e->ip < o->first)) {
        out.push_back(*e++);
        continue;
      }
      if (e != ix.entries_.end() && e->ip == o->first) {
        ++e;
      }
      if (o->second != nullptr) {
        out.push_back({o->first, o->second});
      }
      ++o;
    }
    ix.entries_ = std::move(out);
    return ok_status();
  }

  static Error wrong_network(std::string_view file, std::string_view network) {
    return Error(ErrorCode::kStoreCorrupt, "store file " + std::string(file) +
                                               " belongs to network \"" + std::string(network) +
                                               "\"; it was left untouched");
  }
};

Result<PoolIndex::Loaded> PoolIndex::load(const std::string& network_name, std::string snapshot,
                                          std::string_view snapshot_file, std::string journal,
                                          std::string_view journal_file) {
  Loaded out{PoolIndex(network_name), false, false, 0, 0, 0};
  PoolIndex& ix = out.index;
  std::uint64_t applied = 0;
  if (!snapshot.empty()) {
    ix.buffers_.push_back(std::make_unique<std::string>(std::move(snapshot)));
    const std::string_view bytes = *ix.buffers_.back();
    IPOIB_TRY(IndexBuilder::add_snapshot(ix, bytes, snapshot_file, applied));
    out.snapshot_present = true;
  }
  out.last_seq = applied;
  if (!journal.empty()) {
    ix.buffers_.push_back(std::make_unique<std::string>(std::move(journal)));
    const std::string_view bytes = *ix.buffers_.back();
    IPOIB_TRY_ASSIGN(JournalImage j, scan_frames(bytes, journal_file, false));
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

ReservationView PoolIndex::at(std::size_t i) const { return view_record(entries_[i].record); }

std::size_t PoolIndex::find_attachment(std::string_view range_key, std::string_view container_id,
                                       std::string_view ifname) const {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    RecordCursor c(entries_[i].record);
    if (c.next() != range_key) {
      continue;
    }
    c.skip();  // cni_network
    if (c.next() == container_id && c.next() == ifname) {
      return i;
    }
  }
  return npos;
}

std::size_t PoolIndex::find_pod(std::string_view range_key, std::string_view pod_ref,
                                std::string_view ifname) const {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    RecordCursor c(entries_[i].record);
    if (c.next() != range_key) {
      continue;
    }
    c.skip();  // cni_network
    c.skip();  // container_id
    const std::string_view ifn = c.next();
    if (ifn == ifname && c.next() == pod_ref) {
      return i;
    }
  }
  return npos;
}

std::vector<u128> PoolIndex::taken(IpFamily family) const {
  std::vector<u128> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) {
    if (e.ip.family() == family) {
      out.push_back(e.ip.value());
    }
  }
  return out;
}

const PoolRange* PoolIndex::find_range(const std::string& key) const {
  return find_range_in(ranges, key);
}

PoolRange& PoolIndex::upsert_range(const std::string& key, const Range& r) {
  for (PoolRange& pr : ranges) {
    if (pr.key == key) {
      pr.subnet = r.subnet;
      pr.first = r.first;
      pr.last = r.last;
      pr.excluded = r.excluded;
      return pr;
    }
  }
  ranges.push_back({key, r.subnet, r.first, r.last, r.excluded, std::nullopt});
  return ranges.back();
}

Status PoolIndex::apply(const std::vector<PoolOp>& ops, std::string_view file) {
  for (const PoolOp& op : ops) {
    const IpAddress& ip = op.reservation.ip;
    const auto it = std::lower_bound(entries_.begin(), entries_.end(), ip, entry_less);
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
        if (it != entries_.end() && it->ip == ip) {
          it->record = p;
        } else {
          entries_.insert(it, {ip, p});
        }
        break;
      }
      case PoolOp::Kind::kRelease:
        if (it == entries_.end() || it->ip != ip) {
          return corrupt(file, "release of " + ip.to_string() + ", which is not reserved");
        }
        entries_.erase(it);
        break;
    }
  }
  return ok_status();
}

PoolData PoolIndex::to_pool_data() const {
  PoolData p;
  p.network_name = network_name_;
  p.ranges = ranges;
  p.reservations.reserve(entries_.size());
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    p.reservations.push_back(at(i).to_reservation());
  }
  return p;
}

Result<std::string> PoolIndex::encode_snapshot(std::uint64_t applied_seq) const {
  std::string payload;
  payload.reserve(64 + ranges.size() * 96 + entries_.size() * 112);
  Writer w(payload);
  w.u8(kNetworkOp);
  w.str(network_name_);
  for (const PoolRange& r : ranges) {
    IPOIB_TRY(encode_op(w, PoolOp::set_range(r)));
  }
  for (const Entry& e : entries_) {
    const std::size_t n = parse_reservation(e.record, ~std::size_t{0} >> 1, nullptr, false);
    payload.append(e.record, n);
  }
  if (payload.size() > kMaxFramePayload) {
    return Error(ErrorCode::kIoFailure, "pool: snapshot larger than 64 MiB");
  }
  return std::string(kSnapshotMagic) + encode_frame(applied_seq, payload);
}

}  // namespace ipoib::ipam
