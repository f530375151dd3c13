// ipoib/ipam/journal.h — the binary snapshot and the append-only journal of a pool (pure codecs,
// no I/O; store.h does the files).
//
// A pool lives in two files: a snapshot (the whole pool as of journal sequence S, rewritten only
// at compaction, atomically by rename) and a journal of transactions appended after it, one
// frame per operation of the plugin. A frame is
//
//   u32 payload_len | u64 seq | payload | u32 crc32c(payload_len, seq, payload)   (little endian)
//
// and its payload is a list of record-level operations (PoolOp): reserve an address for an
// attachment (also used to update one), release an address, set a range's description and
// round-robin cursor. One frame holds everything one CNI operation changes, so a multi-range ADD
// is all-or-nothing: a frame is either whole and verified or it does not count.
//
// A reservation is written as record version 3 (kind 5: the attachment, its pod, node and netns
// path); version 2 records (kind 1: no node, no netns), which earlier releases wrote, are read
// with both empty and copied unchanged into later snapshots.
//
//   snapshot = "IPAMSNP\2" | frame(seq = S, payload = network op, then every range and reservation)
//   journal  = "IPAMJNL\2" | frame(seq = 0, payload = network op) | frame(seq = k, ops)...
//
// Replay applies the journal frames with seq > S, which must be exactly S+1, S+2, ...: a gap means
// records were lost or files were mixed up, and is corruption. Frames with seq <= S are already in
// the snapshot (a compaction that crashed after renaming the snapshot and before cutting the
// journal) and are skipped.
//
//   std::string frame = encode_frame(7, encode_ops(ops));
//   IPOIB_TRY_ASSIGN(SnapshotImage s, decode_snapshot(bytes, "/store/pool-x"));
//   IPOIB_TRY_ASSIGN(JournalImage j, scan_journal(jbytes, "/store/pool-x+journal"));
//   IPOIB_TRY(replay(s.pool, s.applied_seq, j, "/store/pool-x+journal"));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/ipam/pool.h"

namespace ipoib::ipam {

// CRC-32C (Castagnoli, iSCSI polynomial 0x1EDC6F41 reflected): SSE4.2 crc32 instructions when
// the CPU has them, a slicing-by-8 table otherwise. Chosen over the v1 file's FNV-1a because it
// runs at several bytes per cycle (every operation verifies the whole snapshot) and detects every
// burst error up to 32 bits. `crc` continues a previous call (0 to start).
std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc = 0);
// The portable table implementation (for tests comparing both paths).
std::uint32_t crc32c_portable(std::string_view bytes, std::uint32_t crc = 0);

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

inline constexpr std::string_view kSnapshotMagic{"IPAMSNP\x02", 8};
inline constexpr std::string_view kJournalMagic{"IPAMJNL\x02", 8};
inline constexpr std::size_t kFrameOverhead = 16;  // len + seq + crc
inline constexpr std::size_t kMaxFramePayload = std::size_t{64} << 20;

// Payload of a frame holding `ops`. Fields must be storable (is_storable_field; pod_ref may be
// empty): anything else is kInternal.
Result<std::string> encode_ops(const std::vector<PoolOp>& ops);
// A whole frame around `payload`.
std::string encode_frame(std::uint64_t seq, std::string_view payload);

// The snapshot file's bytes: the pool as of journal sequence `applied_seq`.
Result<std::string> encode_snapshot(const PoolData& pool, std::uint64_t applied_seq);
// The journal's first bytes (magic and header frame), written once when the journal is created.
Result<std::string> encode_journal_header(const std::string& network_name);

struct SnapshotImage {
  PoolData pool;
  std::uint64_t applied_seq = 0;  // journal frames up to this sequence are included
};

// Verifies and parses a snapshot. Any defect — wrong magic, a torn or changed byte, trailing
// bytes, unsorted or duplicated addresses, bad fields — is kStoreCorrupt naming `file_name`.
// A v1 text pool file (pool.h) is accepted as a snapshot with applied_seq 0.
Result<SnapshotImage> decode_snapshot(std::string_view bytes, std::string_view file_name);

struct JournalFrame {
  std::uint64_t seq = 0;
  std::vector<PoolOp> ops;
  std::string_view payload;  // the frame's verified bytes, inside the scanned buffer
};

struct JournalImage {
  std::string network_name;
  std::vector<JournalFrame> frames;  // verified, consecutive sequence numbers
  std::size_t valid_bytes = 0;       // where the last verified frame ends
  std::size_t header_bytes = 0;      // magic + header frame: what compaction cuts back to
  bool torn_tail = false;            // bytes after valid_bytes are an unacknowledged append
};

// Verifies and parses a journal. The only defect tolerated is at the very end: an incomplete
// frame (its length or header runs past the end of the file) or a tail of zero bytes — what a
// writer killed inside write(2), or a power loss before its fdatasync(2) returned, leaves behind.
// That append was never acknowledged (success is reported only after fdatasync), so it is
// reported as torn_tail and not replayed. Everything else — a complete frame whose checksum
// fails, a bad frame followed by more bytes, a sequence gap, a bad header — is kStoreCorrupt
// naming `file_name`.
Result<JournalImage> scan_journal(std::string_view bytes, std::string_view file_name);

// Applies the journal's frames with seq > applied_seq to `pool` (a snapshot's content). Their
// sequence numbers must continue applied_seq without a gap; releasing an address that is not
// reserved is corruption too. Cost: O(pool + journal · log journal) — one merge, not one vector
// insert per record. Returns the last sequence number in the pool (max(applied_seq, last frame)).
Result<std::uint64_t> replay(PoolData& pool, std::uint64_t applied_seq, const JournalImage& journal,
                             std::string_view file_name);

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

// The pool as the plugin uses it on every operation: ranges decoded, reservations as a sorted
// index of (address, record) over the verified file bytes, which it owns. Building it costs one
// pass over the bytes with no allocation per reservation — what keeps an ADD at 10,000
// reservations within a fraction of a millisecond of an ADD on an empty pool (a PoolData would
// allocate and move five strings per reservation). The same checks as decode_snapshot, scan_journal
// and replay are made, so exactly the same files are accepted (the fuzzer compares both paths).
//
//   IPOIB_TRY_ASSIGN(PoolIndex pool, PoolIndex::load("net", std::move(snap), std::move(jrnl),
//   ...)); for (std::size_t i = 0; i < pool.size(); ++i) if (pool.at(i).container_id == cid) ...
//   IPOIB_TRY(pool.apply({PoolOp::reserve(r)}, ""));
class PoolIndex {
 public:
  explicit PoolIndex(std::string network_name = {});
  PoolIndex(PoolIndex&&) noexcept;
  PoolIndex& operator=(PoolIndex&&) noexcept;
  ~PoolIndex();

  struct Loaded;
  // From a snapshot's bytes (empty = no snapshot; v1 text accepted) and a journal's bytes (empty
  // = no journal). Errors as decode_snapshot / scan_journal / replay, naming the files.
  static Result<Loaded> load(const std::string& network_name, std::string snapshot,
                             std::string_view snapshot_file, std::string journal,
                             std::string_view journal_file);
  static PoolIndex from_pool_data(const PoolData& p);

  [[nodiscard]] const std::string& network_name() const { return network_name_; }
  std::vector<PoolRange> ranges;
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  [[nodiscard]] ReservationView at(std::size_t i) const;
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  // The first reservation of (range_key, container ID, ifname) / (range_key, pod, ifname), or
  // npos. Field comparisons in place, without building views.
  [[nodiscard]] std::size_t find_attachment(std::string_view range_key,
                                            std::string_view container_id,
                                            std::string_view ifname) const;
  [[nodiscard]] std::size_t find_pod(std::string_view range_key, std::string_view pod_ref,
                                     std::string_view ifname) const;
  [[nodiscard]] std::vector<u128> taken(IpFamily family) const;  // sorted
  [[nodiscard]] const PoolRange* find_range(const std::string& key) const;
  PoolRange& upsert_range(const std::string& key, const Range& r);
  // Applies ops in order (apply_ops semantics); a reserve's record is encoded and kept here.
  Status apply(const std::vector<PoolOp>& ops, std::string_view file_name);
  [[nodiscard]] PoolData to_pool_data() const;
  // The snapshot file's bytes: reservation records are copied, not re-encoded.
  [[nodiscard]] Result<std::string> encode_snapshot(std::uint64_t applied_seq) const;

  struct Entry {
    IpAddress ip;
    const char* record;  // the reservation record (from its kind byte), inside buffers_
  };

 private:
  std::string network_name_;
  std::vector<Entry> entries_;                         // sorted by ip, unique
  std::vector<std::unique_ptr<std::string>> buffers_;  // stable storage the records point into
  friend struct IndexBuilder;
};

struct PoolIndex::Loaded {
  PoolIndex index;
  bool snapshot_present = false;
  bool journal_present = false;
  std::uint64_t last_seq = 0;  // highest sequence in snapshot or journal
  std::size_t journal_header_bytes = 0;
  std::size_t journal_valid_bytes = 0;  // < journal size: a torn tail
};

// Applies ops in order to `pool` (the same semantics as replay, one operation at a time).
Status apply_ops(PoolData& pool, const std::vector<PoolOp>& ops, std::string_view file_name);

// The ops that turn `before` into `after` (both sorted pools of one network); nullopt when that
// cannot be expressed (a range removed): the caller writes a whole snapshot instead.
std::optional<std::vector<PoolOp>> diff_pools(const PoolData& before, const PoolData& after);

}  // namespace ipoib::ipam
