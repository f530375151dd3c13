// ipoib/plugin/config.h — the ipoib plugin's configuration, parsed and validated before anything
// touches the kernel, and the defaults resolved from the parent interface.
//
//   IPOIB_TRY_ASSIGN(IpoibConfig cfg, parse_ipoib_config(request.conf));   // pure: code 7 naming
//   cfg.master;                                                             // the key on error
//   IPOIB_TRY_ASSIGN(ChildSpec spec, resolve_child_spec(cfg, parent_facts)); // defaults applied
//
// `ipoib validate-config FILE` and the configuration tests call parse_ipoib_config directly.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "ipoib/base/error.h"
#include "ipoib/cni/config.h"
#include "ipoib/ipam/config.h"

namespace ipoib::plugin {

// IFLA_IPOIB_MODE values (include/uapi/linux/if_link.h: IPOIB_MODE_DATAGRAM = 0, CONNECTED = 1).
enum class IpoibMode : std::uint16_t { kDatagram = 0, kConnected = 1 };
enum class Umcast : std::uint16_t { kOff = 0, kOn = 1 };

std::string_view to_string(IpoibMode mode);
// "0x8001", as ip-link and sysfs print pkeys.
std::string format_pkey(std::uint16_t pkey);

// The kernel rejects 0 and 0x8000 (ipoib_new_child_link: "if (pkey == 0 || pkey == 0x8000)").
inline constexpr std::uint16_t kFullMembershipBit = 0x8000;
// Datagram MTU bounds: IPOIB_UD_MTU(4096) = 4092; 72 is the smallest the kernel's UD path takes.
inline constexpr int kDatagramMinMtu = 72;
inline constexpr int kDatagramMaxMtu = 4092;
// Connected mode: IPOIB_CM_MTU(0x10000 - 0x10) = 65520 (ipoib_cm.c).
inline constexpr int kConnectedMaxMtu = 65520;
// The IPoIB encapsulation header the datagram MTU leaves out of the IB MTU (IPOIB_ENCAP_LEN).
inline constexpr int kIpoibEncapBytes = 4;

// Where addresses come from.
enum class IpamKind {
  kNone,       // no "ipam" (or "ipam": {}): layer 2 only
  kBuiltin,    // served in-process by ipam::make_builtin_ipam
  kDelegated,  // the binary named by ipam.type, found in CNI_PATH
};

struct IpamSection {
  IpamKind kind = IpamKind::kNone;
  std::string type;  // empty for kNone
};

// What the user asked for; unset optionals take the parent's values at ADD/CHECK time.
struct IpoibConfig {
  std::string master;
  std::optional<std::uint16_t> pkey;  // as written (with or without the full-membership bit)
  std::optional<IpoibMode> mode;
  Umcast umcast = Umcast::kOff;
  std::optional<int> mtu_bytes;
  IpamSection ipam;
};

// Parses and validates the plugin keys of a network configuration (pure: no I/O). Errors are
// kInvalidNetworkConfig naming every bad key, joined by "; ":
// "master: required (...); pkey: 0x8000 is not a valid partition key".
Result<IpoibConfig> parse_ipoib_config(const cni::NetConf& conf);

// The whole configuration: parse_ipoib_config and, for the built-in IPAM, its section by the
// IPAM's own parser (ipam::load_ipam_config, which merges the flat file found through `sources`;
// its errors are prefixed "ipam."), every problem reported together. What every verb but DEL
// checks before any kernel lookup, so that a config error is reported as one.
Result<IpoibConfig> validate_network_config(const cni::NetConf& conf,
                                            const ipam::ConfigSources& sources);

// Just the "ipam" section (DEL uses only this: it must work when the rest no longer validates
// or the master is gone).
Result<IpamSection> parse_ipam_section(const nlohmann::json& raw);

// Facts about the parent interface that supply defaults and limits.
struct ParentFacts {
  int ifindex = 0;
  std::uint16_t pkey = 0xffff;
  IpoibMode mode = IpoibMode::kDatagram;
  int mtu_bytes = 0;                     // the parent's current MTU
  std::optional<int> port_ib_mtu_bytes;  // the IB port's active MTU (256..4096), when known
};

// The child to create, every value decided.
struct ChildSpec {
  int parent_ifindex = 0;
  std::uint16_t pkey = 0xffff;
  IpoibMode mode = IpoibMode::kDatagram;
  Umcast umcast = Umcast::kOff;
  int mtu_bytes = 0;
};

// Applies the parent's defaults and re-validates the MTU against the resolved mode and the port's
// IB MTU (datagram: at most IB MTU - 4). kInvalidNetworkConfig naming "mtu" on violation.
Result<ChildSpec> resolve_child_spec(const IpoibConfig& config, const ParentFacts& parent);

// Whether two pkeys name the same partition: the kernel matches the low 15 bits and always sets
// the full-membership bit on the child (ipoib_vlan_add / ipoib_new_child_link).
inline bool same_partition(std::uint16_t a, std::uint16_t b) {
  return (a & 0x7fff) == (b & 0x7fff);
}

}  // namespace ipoib::plugin
