// Fuzzes the IPAM store's pool-file parser: any bytes must give a PoolData or kStoreCorrupt,
// and whatever parses must re-encode to bytes that parse to the same pool.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ipoib/ipam/pool.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto pool = ipoib::ipam::decode_pool(text, "fuzz");
  if (!pool) {
    if (pool.error().code() != ipoib::ErrorCode::kStoreCorrupt) std::abort();
    return 0;
  }
  auto again = ipoib::ipam::encode_pool(*pool);
  if (!again) std::abort();
  auto back = ipoib::ipam::decode_pool(*again, "fuzz");
  if (!back || !(*back == *pool)) std::abort();
  return 0;
}
