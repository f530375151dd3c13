// ipoib/ipam/config.h — the whereabouts `ipam` configuration, merged with its flat file and
// validated at load.
//
//   ConfigSources src;                                   // the standard whereabouts.conf paths
//   IPOIB_TRY_ASSIGN(IpamConfig c, load_ipam_config(netconf_json["ipam"], src));
//   c.ranges[0].subnet;        // resolved ranges: the top-level `range` first, then `ipRanges`
//   c.store_dir;               // "/var/lib/cni/ipoib-ipam" unless configured
//   for (auto& note : c.notes) log.debug(note);          // keys accepted and ignored
//
// Every error is kInvalidNetworkConfig naming the key (departure from whereabouts, which ignores
// bad bounds and fails every ADD on a bad exclude).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/base/log.h"
#include "ipoib/cni/env.h"
#include "ipoib/cni/result.h"
#include "ipoib/etcd/client.h"
#include "ipoib/ipam/range.h"

namespace ipoib::ipam {

// Where the flat file (whereabouts.conf) is searched after `configuration_path`. Injected so
// tests do not depend on the host's /etc.
struct ConfigSources {
  std::vector<std::string> flat_file_paths = {
      "/etc/kubernetes/cni/net.d/whereabouts.d/whereabouts.conf",
      "/etc/cni/net.d/whereabouts.d/whereabouts.conf",
      "/host/etc/cni/net.d/whereabouts.d/whereabouts.conf",
  };
  // The process environment ($NODENAME) and the host name, for the node identity; empty =
  // getenv(3) and uname(2).
  cni::GetEnv getenv = {};
  std::function<std::string()> hostname = {};
};

inline constexpr std::int64_t kDefaultLockTimeoutMs = 5000;

// Where the store is and which pool file a network uses: all DEL and GC need, so they still work
// when the rest of the configuration no longer validates.
// Which engine holds the reservations (`datastore`).
enum class Datastore {
  kLocal,  // the journal store in store_dir (absent, "" or whereabouts' default "kubernetes")
  kEtcd,   // the cluster store on etcd v3 ("etcd"); store_dir keeps this node's own state
};

// The cluster store's keys (datastore: etcd). The etcd keys are whereabouts' (plus
// etcd_password_file); they are checked when the store opens (etcd::config_from), except
// etcd_host, which must be present and parse at load.
struct ClusterStore {
  etcd::ConfigKeys etcd{};
  // node_slice_size as a prefix length ("/26" or "26"): each node claims slices of that size
  // from a range and allocates inside them locally; 0 = per-address mode (every ADD in etcd).
  int node_slice_prefix = 0;
};

struct StoreLocation {
  std::string store_dir;     // absolute, no ".." (validated)
  std::string network_name;  // "" = the default pool (whereabouts' default)
  std::int64_t lock_timeout_ms = kDefaultLockTimeoutMs;
  std::string node_name = {};   // resolve_node_name's answer; "" when it failed:
  std::string node_error = {};  // then why (load_store_location only; load_ipam_config fails)
  Datastore datastore = Datastore::kLocal;
  ClusterStore cluster = {};  // datastore == kEtcd only
};

struct StaticAddress {
  IpPrefix address;
  std::optional<IpAddress> gateway;
};

struct IpamConfig {
  StoreLocation location;
  std::vector<Range> ranges;            // one address per element; never empty
  std::vector<std::string> range_keys;  // store key per range: "10.0.0.0/24" (+ "#n" if repeated)
  AllocationPolicy allocation = AllocationPolicy::kLowestFree;
  std::vector<cni::Route> routes;
  cni::Dns dns;
  std::vector<StaticAddress> addresses;
  bool enable_overlapping_ranges = true;
  std::optional<LogLevel> log_level;
  std::string log_file;
  std::string flat_file;              // the flat file merged in ("" when none was found)
  std::vector<std::string> notes;     // debug notes: ignored keys, the flat file used
  std::vector<std::string> warnings;  // accepted but wrong (an unknown log_level): log them
};

// Reads the flat file (the first of `configuration_path` and src.flat_file_paths that exists;
// none is fine), fills the keys `ipam` leaves unset, and validates everything. `ipam` must be an
// object. A flat file that exists but is not a JSON object is an error naming the file.
Result<IpamConfig> load_ipam_config(const nlohmann::json& ipam, const ConfigSources& src);

// Just store_dir, network_name, lock_timeout_ms and the node (after the same flat-file merge):
// what DEL and GC need. DEL needs no node, so a node name that cannot be resolved is not an
// error here: node_name is then "" and GC refuses to run (resolve_node_name tells why).
Result<StoreLocation> load_store_location(const nlohmann::json& ipam, const ConfigSources& src);

// The node identity, one rule for every store (the file store and the cluster store): the IPAM
// config's `node_name` (after the flat-file merge; `configured`), else $NODENAME (what the
// Kubernetes downward API gives a DaemonSet, and whereabouts' own key), else the host name
// (uname(2) nodename). Every reservation records it and GC releases only its own node's
// reservations. It must be 1..253 printable ASCII bytes without spaces: kInvalidNetworkConfig
// naming node_name, kInvalidEnvironment naming NODENAME, kInternal when the host has no name.
Result<std::string> resolve_node_name(const std::string& configured, const ConfigSources& src);

// Absolute, not empty, no "." or ".." component, no NUL; kInvalidNetworkConfig naming `key`.
Status validate_store_dir(const std::string& dir, const std::string& key);

// ^[A-Za-z0-9][A-Za-z0-9_.\-]*$, at most 128 bytes (it becomes part of a file name).
bool is_valid_network_name(const std::string& name);

}  // namespace ipoib::ipam
