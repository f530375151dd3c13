#include "ipoib/ipam/journal.h"

#include <algorithm>
#include <optional>

#include "byte_io.h"
#include "record_codec.h"

namespace ipoib::ipam {
using namespace wire;
namespace {

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

}  // namespace

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
  std::string payload;
  payload.reserve(64 + pool.ranges.size() * 96 + pool.reservations.size() * 128);
  Writer w(payload);
  IPOIB_TRY(encode_pool_head(w, pool.network_name, pool.ranges));
  for (const Reservation& r : pool.reservations) {
    // Encoded in place (not through PoolOp::reserve) to avoid copying every reservation.
    IPOIB_TRY(check_fields(r));
    encode_reservation(w, r);
  }
  return snapshot_file(applied_seq, payload);
}

Result<std::string> snapshot_file(std::uint64_t applied_seq, std::string_view payload) {
  if (payload.size() > kMaxFramePayload) {
    return Error(ErrorCode::kIoFailure, "pool: snapshot larger than 64 MiB");
  }
  return std::string(kSnapshotMagic) + encode_frame(applied_seq, payload);
}

Result<std::string> encode_journal_header(const std::string& network_name) {
  std::string payload;
  Writer w(payload);
  IPOIB_TRY(encode_pool_head(w, network_name, {}));
  return std::string(kJournalMagic) + encode_frame(0, payload);
}

bool is_text_pool(std::string_view bytes) { return bytes.substr(0, 16) == "ipoib-ipam-pool "; }

Result<SnapshotFrame> open_snapshot(std::string_view bytes, std::string_view file) {
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
  SnapshotFrame out;
  out.applied_seq = frame->seq;
  Reader rd(frame->payload);
  DecodedOp d;
  if (auto e = decode_op(rd, d)) {
    return corrupt(file, *e);
  }
  if (d.kind != kNetworkOp) {
    return corrupt(file, "no network record");
  }
  out.network_name = std::move(d.network);
  out.records = frame->payload.substr(frame->payload.size() - rd.left());
  return out;
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

Result<JournalImage> scan_journal_frames(std::string_view b, std::string_view file) {
  return scan_frames(b, file, false);
}

}  // namespace ipoib::ipam
