// Fuzzes the IPAM store's snapshot parsers (the v1 text pool file and the v2 binary snapshot,
// journal.h): any bytes must give a pool or kStoreCorrupt, whatever parses must re-encode to
// bytes that parse to the same pool, and PoolIndex (the fast path) must agree with
// decode_snapshot on every input: it refuses the same files, at load or when the reservations are
// read out (a snapshot's field contents are checked then), with the same pool otherwise.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../unit/ipam/reference_pool.h"
#include "ipoib/ipam/journal.h"
#include "ipoib/ipam/pool.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto pool = ipoib::ipam::decode_pool(text, "fuzz");
  if (!pool) {
    if (pool.error().code() != ipoib::ErrorCode::kStoreCorrupt) std::abort();
  } else {
    auto again = ipoib::ipam::encode_pool(*pool);
    if (!again) std::abort();
    auto back = ipoib::ipam::decode_pool(*again, "fuzz");
    if (!back || !(*back == *pool)) std::abort();
  }
  auto snap = ipoib::ipam::decode_snapshot(text, "fuzz");
  const std::string net = snap ? snap->pool.network_name : std::string();
  auto fast = ipoib::ipam::PoolIndex::load(net, std::string(text), "fuzz", {}, "j");
  if (!fast && fast.error().code() != ipoib::ErrorCode::kStoreCorrupt) std::abort();
  ipoib::Result<ipoib::ipam::PoolData> fast_pool =
      fast ? fast->index.to_pool_data() : ipoib::Result<ipoib::ipam::PoolData>(fast.error());
  if (!fast_pool && fast_pool.error().code() != ipoib::ErrorCode::kStoreCorrupt) std::abort();
  if (!snap) {
    if (snap.error().code() != ipoib::ErrorCode::kStoreCorrupt) std::abort();
    // An empty input is "no snapshot" to the index (the store reports empty files itself).
    if (fast_pool && !text.empty()) std::abort();
    return 0;
  }
  if (!fast_pool || !(*fast_pool == snap->pool)) std::abort();
  auto bytes = ipoib::ipam::encode_snapshot(snap->pool, snap->applied_seq);
  if (!bytes) std::abort();
  auto back = ipoib::ipam::decode_snapshot(*bytes, "fuzz");
  if (!back || !(back->pool == snap->pool) || back->applied_seq != snap->applied_seq) std::abort();
  return 0;
}
