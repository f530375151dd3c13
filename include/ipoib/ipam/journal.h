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
// The records inside a payload are record.h's; the one pool model that applies them is
// pool_index.h (tests keep a PoolData reference replay, tests/unit/ipam/reference_pool.h).
//
//   std::string frame = encode_frame(7, *encode_ops(ops));
//   IPOIB_TRY_ASSIGN(SnapshotFrame s, open_snapshot(bytes, "/store/pool-x"));
//   IPOIB_TRY_ASSIGN(JournalImage j, scan_journal(jbytes, "/store/pool-x+journal"));
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/ipam/crc32c.h"
#include "ipoib/ipam/pool.h"
#include "ipoib/ipam/pool_index.h"  // the model applying these files (found here before the split)
#include "ipoib/ipam/record.h"

namespace ipoib::ipam {

inline constexpr std::string_view kSnapshotMagic{"IPAMSNP\x02", 8};
inline constexpr std::string_view kJournalMagic{"IPAMJNL\x02", 8};
inline constexpr std::size_t kFrameOverhead = 16;  // len + seq + crc
inline constexpr std::size_t kMaxFramePayload = std::size_t{64} << 20;

// A whole frame around `payload`.
std::string encode_frame(std::uint64_t seq, std::string_view payload);

// The snapshot file's bytes: the pool as of journal sequence `applied_seq`. Reservations are
// written in the order given (a pool keeps them sorted by address; decoders refuse anything else).
Result<std::string> encode_snapshot(const PoolData& pool, std::uint64_t applied_seq);
// The snapshot file around a payload holding the network record, the ranges and the
// reservations (kIoFailure above kMaxFramePayload).
Result<std::string> snapshot_file(std::uint64_t applied_seq, std::string_view payload);
// The journal's first bytes (magic and header frame), written once when the journal is created.
Result<std::string> encode_journal_header(const std::string& network_name);

// A verified binary snapshot: its frame's checksum and length, and the network record heading
// the payload. `records` are the ranges and reservations after it, still to be decoded.
struct SnapshotFrame {
  std::uint64_t applied_seq = 0;  // journal frames up to this sequence are included
  std::string network_name;
  std::string_view records;  // inside `bytes`
};
// Wrong magic, a torn or changed byte, trailing bytes or no network record: kStoreCorrupt naming
// `file_name`. (A v1 text pool file is pool_text.h's.)
Result<SnapshotFrame> open_snapshot(std::string_view bytes, std::string_view file_name);
// Whether `bytes` begin as a v1 text pool file (pool_text.h), which is read as a snapshot.
bool is_text_pool(std::string_view bytes);

struct JournalFrame {
  std::uint64_t seq = 0;
  std::vector<PoolOp> ops;   // scan_journal only
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
// fails, a bad frame followed by more bytes, a sequence gap, a bad header, a bad record — is
// kStoreCorrupt naming `file_name`.
Result<JournalImage> scan_journal(std::string_view bytes, std::string_view file_name);
// The same checks of the framing only: frames' ops are left empty, their payloads undecoded (the
// pool model walks them itself).
Result<JournalImage> scan_journal_frames(std::string_view bytes, std::string_view file_name);

}  // namespace ipoib::ipam
