// ipoib/ipam/crc32c.h — the checksum of the store's frames (journal.h).
//
//   std::uint32_t c = crc32c(bytes);          // crc32c(b, crc32c(a)) == crc32c(a + b)
#pragma once

#include <cstdint>
#include <string_view>

namespace ipoib::ipam {

// CRC-32C (Castagnoli, iSCSI polynomial 0x1EDC6F41 reflected): SSE4.2 crc32 instructions when
// the CPU has them, a slicing-by-8 table otherwise. Chosen over the v1 file's FNV-1a because it
// runs at several bytes per cycle (every operation verifies the whole snapshot) and detects every
// burst error up to 32 bits. `crc` continues a previous call (0 to start).
std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc = 0);
// The portable table implementation (for tests comparing both paths).
std::uint32_t crc32c_portable(std::string_view bytes, std::uint32_t crc = 0);

}  // namespace ipoib::ipam
