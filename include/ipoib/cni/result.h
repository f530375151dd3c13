// ipoib/cni/result.h — one result model and exact encoders/decoders for every CNI version.
//
//   CniResult r;
//   r.interfaces.push_back({.name = "net1", .mac = "80:00:...", .mtu = 2044, .sandbox = netns});
//   r.ips.push_back({.address = *IpPrefix::parse("10.0.0.5/24"), .interface = 0});
//   IPOIB_TRY_ASSIGN(nlohmann::json doc, encode_result(r, CniVersion::k0_3_1));
//   auto prev = decode_result(conf_json["prevResult"]);   // any supported shape
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/cni/version.h"

namespace ipoib::cni {

// Every member has a default initializer so designated initializers may name only some
// (GCC 12 -Wmissing-field-initializers).
struct Interface {
  std::string name{};
  std::string mac{};          // may be empty (delegated results); IPoIB: 20 bytes, hex:colon
  std::optional<int> mtu{};   // encoded at 1.1.0 only
  std::string sandbox{};      // netns path for a container interface; empty on the host
  std::string socket_path{};  // 1.1.0 only, omitted when empty
  std::string pci_id{};       // 1.1.0 only, omitted when empty
  friend bool operator==(const Interface&, const Interface&) = default;
};

struct IpConfig {
  IpPrefix address{};  // CIDR with host bits: 10.0.0.5/24
  std::optional<IpAddress> gateway{};
  std::optional<int> interface {};  // index into CniResult::interfaces
  friend bool operator==(const IpConfig&, const IpConfig&) = default;
};

struct Route {
  IpPrefix dst{};
  std::optional<IpAddress> gw{};
  // 1.1.0 only:
  std::optional<int> mtu{};
  std::optional<int> advmss{};
  std::optional<int> priority{};
  std::optional<int> table{};
  std::optional<int> scope{};
  friend bool operator==(const Route&, const Route&) = default;
};

struct Dns {
  std::vector<std::string> nameservers{};
  std::string domain{};
  std::vector<std::string> search{};
  std::vector<std::string> options{};
  [[nodiscard]] bool empty() const {
    return nameservers.empty() && domain.empty() && search.empty() && options.empty();
  }
  friend bool operator==(const Dns&, const Dns&) = default;
};

struct CniResult {
  std::vector<Interface> interfaces{};
  std::vector<IpConfig> ips{};
  std::vector<Route> routes{};
  Dns dns{};
  friend bool operator==(const CniResult&, const CniResult&) = default;
};

// Encodes `r` in the shape of `version`, with "cniVersion" set to it:
//  - 1.0.0/1.1.0: interfaces, ips (no "version"), routes, dns; mtu/socketPath/pciID and the
//    route extras only at 1.1.0.
//  - 0.3.0/0.3.1/0.4.0: as 1.0.0 plus ips[].version "4"/"6".
//  - 0.1.0/0.2.0: ip4/ip6 (first address of each family, with the routes of that family),
//    dns; a result without any IP address cannot be expressed there: kIncompatibleVersion
//    "cannot express a result without IP addresses in CNI 0.2.0".
// Empty arrays and an empty dns are omitted; interface indexes out of range are an error.
Result<nlohmann::json> encode_result(const CniResult& r, CniVersion version);

// Decodes a result (prevResult, or a delegated IPAM's stdout) of any supported shape. Tolerates
// "dns": {}, null or missing fields, "" gateways and unknown keys. The shape is recognised by its
// keys (ips/interfaces/routes and ip4/ip6 are unambiguous), so a missing or wrong cniVersion does
// not matter; `fallback` is kept for callers that know the version. Go's `int,omitempty` fields
// (interface mtu, route mtu/advmss/priority) decode 0 as absent. kDecodeFailure naming the field
// on malformed input (including an ips[].interface that indexes no interface).
Result<CniResult> decode_result(const nlohmann::json& doc, CniVersion fallback);

}  // namespace ipoib::cni
