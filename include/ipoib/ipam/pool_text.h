// ipoib/ipam/pool_text.h — the first release's text pool file, still read as a snapshot
// (journal.h is_text_pool) and replaced by the binary one at the next compaction. Its last line
// carries the record count and an FNV-1a 64 checksum of every byte before it, so a torn or edited
// file is detected (kStoreCorrupt), never silently reset. It has no node and no netns.
//
//   ipoib-ipam-pool 1
//   network default
//   range 10.0.0.0/24 10.0.0.0/24 10.0.0.1 10.0.0.254 10.0.0.1-10.0.0.1 10.0.0.7
//   res 10.0.0.2 10.0.0.0/24 mynet 3f2a... net1 ns/pod 1712345678
//   end 4 9c1e0f7a5b3d2c11
//
//   IPOIB_TRY_ASSIGN(PoolData p, decode_pool(text, "/var/lib/cni/ipoib-ipam/pool-default"));
//   std::string bytes = encode_pool(p);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ipoib/base/error.h"
#include "ipoib/ipam/pool.h"

namespace ipoib::ipam {

inline constexpr int kPoolFormatVersion = 1;

// The file's bytes. Fields must be storable (the plugin validates them before): an unstorable
// field is kInternal.
Result<std::string> encode_pool(const PoolData& p);

// Parses and verifies a pool file. Any defect (bad header, unknown version, malformed line,
// unsorted or duplicated address, missing or wrong trailer) is kStoreCorrupt naming `file_name`
// and the line.
Result<PoolData> decode_pool(std::string_view text, std::string_view file_name);

// FNV-1a 64 of `bytes`.
std::uint64_t fnv1a64(std::string_view bytes);

}  // namespace ipoib::ipam
