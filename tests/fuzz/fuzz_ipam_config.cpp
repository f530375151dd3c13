// Fuzzes the IPAM configuration loader (whereabouts keys, range math): any JSON must give a
// validated config or kInvalidNetworkConfig, never a crash; a loaded config's ranges are sane.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ipoib/cni/config.h"
#include "ipoib/ipam/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto doc = ipoib::cni::parse_json(text, "fuzz");
  if (!doc || !doc->is_object()) return 0;
  // No flat files: the fuzzer must not read the host's /etc.
  const ipoib::ipam::ConfigSources none{{}};
  const nlohmann::json ipam = doc->contains("ipam") ? (*doc)["ipam"] : *doc;
  if (ipam.contains("configuration_path")) return 0;
  auto cfg = ipoib::ipam::load_ipam_config(ipam, none);
  if (!cfg) {
    if (cfg.error().code() != ipoib::ErrorCode::kInvalidNetworkConfig) std::abort();
    return 0;
  }
  for (const auto& r : cfg->ranges) {
    if (r.last < r.first || !r.subnet.contains(r.first) || !r.subnet.contains(r.last)) std::abort();
    auto ip = ipoib::ipam::lowest_free(r, {}, r.first);
    if (!ip || !r.contains(*ip)) std::abort();
  }
  return 0;
}
