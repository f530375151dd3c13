// ipoib/ipam/admin.h — `ipoib ipam list|release|import`, with its output streams injectable.
//
//   std::ostringstream out, err;
//   int rc = admin_run({"list", "--json", "--config", "/etc/cni/net.d/10-ib.conflist"}, out, err);
//   // 0 ok, 1 failed, 2 usage
//
// Which store: --config NETCONF opens the store NETCONF's built-in IPAM names (read_netconf_ipam,
// then the same flat-file merge the plugin does): the local store in store_dir, a shared
// store_dir, or the cluster store on etcd (per-address or node slices), with its endpoints, TLS
// and authentication. --store-dir D opens the local store in D (default /var/lib/cni/ipoib-ipam).
// They exclude each other. Either way every pool of that store is shown or searched (unless
// --network); NETCONF's own network_name is not a filter.
//
// list    [--json] [--network NAME] [--node NODE] (--config NETCONF | --store-dir D): every
//         pool, its ranges with reserved and free counts, and its reservations (IP, container ID,
//         pod, ifname, node, since) as a table or one JSON document; --node shows only the
//         reservations that node made (the range counts stay the pool's).
// release (--ip IP | --container ID [--ifname IF] | --node NODE) [--node NODE] [--network NAME]
//         (--config NETCONF | --store-dir D): frees the matching reservations (every given
//         filter must match; in every pool unless --network) with DEL's operation
//         (release_matching), one transaction per pool. `--node NODE` alone frees everything a
//         node reserved: a node removed from the cluster, whose own GC will never run again.
// import  --whereabouts FILE... --config NETCONF [--dry-run]: whereabouts' allocations into the
//         store NETCONF names (import.h).
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "ipoib/base/error.h"

namespace ipoib::ipam {

int admin_run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// A network's built-in IPAM section as the plugin would see it, from the file an administrator
// has: whatever `ipoib validate-config` reads (cni::network_config_texts): a CNI .conf, a
// .conflist (the first plugin whose ipam type is built in), or a NetworkAttachmentDefinition as
// JSON or YAML (its spec.config read as a .conf or .conflist). A file with several
// NetworkAttachmentDefinition documents is refused (naming them): the command works on one
// store, and which one must not depend on the documents' order. The one reader of list, release
// and import.
struct NetconfIpam {
  std::string network;                             // the CNI network name
  nlohmann::json ipam = nlohmann::json::object();  // `ipam`, before the flat-file merge
};
// kInvalidNetworkConfig naming `path` (no built-in IPAM, no name, several NADs), kDecodeFailure
// for text that is neither JSON nor a YAML NAD, kIoFailure when it cannot be read.
Result<NetconfIpam> read_netconf_ipam(const std::string& path);

}  // namespace ipoib::ipam
