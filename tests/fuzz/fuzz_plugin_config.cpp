// libFuzzer target for the ipoib plugin's own parsers of untrusted bytes:
//   - the plugin keys of a network configuration (master, pkey, mode, umcast, mtu, ipam) through
//     parse_netconf -> parse_ipoib_config -> resolve_child_spec, and parse_ipam_section, which
//     DEL uses on its own;
//   - the alias of a link as a netlink reply reports it (parse_child_tag): any interface on
//     the node can carry any alias up to IFALIASZ - 1 bytes, set by anyone with CAP_NET_ADMIN.
// Invariants checked: errors are kInvalidNetworkConfig (or the protocol's decode / version
// errors, which come before any plugin key is read); a resolved child never has a pkey the
// kernel refuses (0 or 0x8000 in the low 15 bits) and its MTU is within the mode's bounds; a
// parsed tag rebuilds to exactly the alias it came from.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ipoib/cni/config.h"
#include "ipoib/plugin/config.h"
#include "ipoib/plugin/tag.h"

namespace {

using namespace ipoib;
using namespace ipoib::plugin;

#define FUZZ_ASSERT(cond)                                                                 \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "fuzz_plugin_config: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (false)

void check_tag(std::string_view alias) {
  // Either format (with the network, or the previous one without) rebuilds to exactly the alias.
  if (const auto o = parse_child_tag(alias)) {
    FUZZ_ASSERT(
        o->network
            ? child_tag(*o->network, o->attachment.container_id, o->attachment.ifname) == alias
            : std::string(kTagPrefix) + o->attachment.container_id + ":" + o->attachment.ifname ==
                  alias);
    FUZZ_ASSERT(is_plugin_tag(alias));
  }
}

// Parent facts derived from the input's bytes, so the fuzzer explores defaults and limits.
ParentFacts facts_from(std::string_view text) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a: cheap, deterministic spread
  for (const char c : text) {
    h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  // Only what a real parent can report: a valid pkey and an MTU within its mode's bounds.
  ParentFacts f;
  f.ifindex = 2 + static_cast<int>(h % 64);
  f.pkey = static_cast<std::uint16_t>(h >> 16);
  if ((f.pkey & 0x7fff) == 0) {
    f.pkey = 0xffff;
  }
  f.mode = (h & 1) != 0 ? IpoibMode::kConnected : IpoibMode::kDatagram;
  const int max_mtu = f.mode == IpoibMode::kConnected ? kConnectedMaxMtu : kDatagramMaxMtu;
  f.mtu_bytes = kDatagramMinMtu + static_cast<int>((h >> 32) % (max_mtu - kDatagramMinMtu + 1));
  if ((h & 2) != 0) {
    static constexpr int kIbMtus[] = {256, 512, 1024, 2048, 4096};
    f.port_ib_mtu_bytes = kIbMtus[(h >> 40) % 5];
  }
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_tag(text);
  check_tag(std::string(kTagPrefix) + std::string(text));

  auto conf = cni::parse_netconf(text);
  if (!conf.ok()) {
    return 0;
  }
  auto section = parse_ipam_section(conf->raw);
  if (!section.ok()) {
    FUZZ_ASSERT(section.error().code() == ErrorCode::kInvalidNetworkConfig);
  }
  auto cfg = parse_ipoib_config(*conf);
  if (!cfg.ok()) {
    FUZZ_ASSERT(cfg.error().code() == ErrorCode::kInvalidNetworkConfig);
    FUZZ_ASSERT(!cfg.error().msg().empty());
    return 0;
  }
  // What ADD would store and what DEL would read must agree.
  FUZZ_ASSERT(section.ok() && section->kind == cfg->ipam.kind && section->type == cfg->ipam.type);
  FUZZ_ASSERT(!cfg->master.empty());
  if (cfg->pkey) {
    FUZZ_ASSERT((*cfg->pkey & 0x7fff) != 0);
  }
  auto spec = resolve_child_spec(*cfg, facts_from(text));
  if (!spec.ok()) {
    FUZZ_ASSERT(spec.error().code() == ErrorCode::kInvalidNetworkConfig);
    return 0;
  }
  FUZZ_ASSERT((spec->pkey & 0x7fff) != 0);
  FUZZ_ASSERT(spec->mtu_bytes > 0);
  FUZZ_ASSERT(spec->mtu_bytes <=
              (spec->mode == IpoibMode::kConnected ? kConnectedMaxMtu : kDatagramMaxMtu));
  return 0;
}
