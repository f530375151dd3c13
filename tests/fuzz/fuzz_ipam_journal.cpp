// Fuzzes the IPAM journal parser and replay (journal.h): any bytes must give a verified journal
// image or kStoreCorrupt; a verified image's frames re-encode to bytes that scan to the same frames
// (exactly the same bytes unless they hold records of an earlier version), and
// replaying them onto an empty pool either succeeds or is kStoreCorrupt and equals applying each
// operation in order; and PoolIndex (the fast path every operation uses) accepts exactly the same
// journals, with the same pool.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

#include "../unit/ipam/reference_pool.h"
#include "ipoib/ipam/journal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ipoib::ipam;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto img = scan_journal(bytes, "fuzz");
  // The index is loaded for the network the journal names (or "" when it names none).
  const std::string net = img ? img->network_name : std::string();
  auto fast = PoolIndex::load(net, {}, "s", std::string(bytes), "fuzz");
  if (!fast && fast.error().code() != ipoib::ErrorCode::kStoreCorrupt) std::abort();
  if (!img) {
    if (img.error().code() != ipoib::ErrorCode::kStoreCorrupt) std::abort();
    // An empty input is "no journal" to the index (the store reports empty files itself).
    if (fast && !bytes.empty()) std::abort();
    return 0;
  }
  if (img->valid_bytes > size || img->torn_tail != (img->valid_bytes < size)) std::abort();
  auto header = encode_journal_header(img->network_name);
  if (!header) std::abort();
  std::string again = *header;
  for (const JournalFrame& f : img->frames) {
    auto payload = encode_ops(f.ops);
    if (!payload) std::abort();
    again += encode_frame(f.seq, *payload);
  }
  // Records of an earlier version are accepted and re-encoded in the current one, so the bytes
  // may differ from the input's; what they say may not.
  auto again_img = scan_journal(again, "fuzz-again");
  if (!again_img || again_img->torn_tail || again_img->frames.size() != img->frames.size()) {
    std::abort();
  }
  for (std::size_t i = 0; i < img->frames.size(); ++i) {
    if (again_img->frames[i].seq != img->frames[i].seq ||
        !(again_img->frames[i].ops == img->frames[i].ops)) {
      std::abort();
    }
  }
  PoolData replayed{img->network_name, {}, {}};
  auto last = replay(replayed, 0, *img, "fuzz");
  PoolData sequential{img->network_name, {}, {}};
  ipoib::Status seq_ok = ipoib::ok_status();
  for (const JournalFrame& f : img->frames) {
    seq_ok = apply_ops(sequential, f.ops, "fuzz");
    if (!seq_ok) break;
  }
  if (!last) {
    if (last.error().code() != ipoib::ErrorCode::kStoreCorrupt) std::abort();
    if (fast) std::abort();
    return 0;
  }
  if (!fast || fast->last_seq != *last) std::abort();
  auto fast_pool = fast->index.to_pool_data();
  if (!fast_pool || !(*fast_pool == replayed)) std::abort();
  // A gap (first frame not 1) fails replay before any comparison matters.
  if (seq_ok && !(replayed == sequential)) std::abort();
  return 0;
}
