// ipoib/ipam/builtin.h — the built-in IPAM plugin with its seams exposed for tests.
//
// make_builtin_ipam(log) (ipam.h) is make_builtin_ipam(log, IpamOptions{}): the standard
// whereabouts.conf search paths and the real clock. Tests inject both:
//
//   IpamOptions opts;
//   opts.sources.flat_file_paths = {tmp + "/whereabouts.conf"};
//   opts.now_unix_s = [] { return std::int64_t{1700000000}; };
//   auto plugin = make_builtin_ipam(log, opts);
//   int rc = cni::run_plugin(*plugin, fake_io, log);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ipoib/base/log.h"
#include "ipoib/cni/skel.h"
#include "ipoib/ipam/config.h"
#include "ipoib/ipam/store.h"

namespace ipoib::ipam {

struct IpamOptions {
  ConfigSources sources;
  std::function<std::int64_t()> now_unix_s;  // empty = time(2)
  StoreTuning store_tuning;                  // when the journal is compacted (store.h)
  // Whether a reservation's recorded netns is another live attachment (attachment_liveness.h);
  // empty = other_live_netns.
  std::function<bool(const std::string& recorded, const std::string& current)> other_live_netns;
};

// See ipam.h. Verbs:
//  ADD   one address per configured range, all-or-nothing (one journal record for all ranges);
//        idempotent on (container ID, ifname) and on (K8S_POD_NAMESPACE/K8S_POD_NAME, ifname),
//        the latter updating the stored container ID unless the earlier attachment still lives
//        (attachment_liveness.h): then a new address. Records node and netns. Exhausted range:
//        kIpamFailure.
//  DEL   releases every reservation of (container ID, ifname) in the pool; success when none.
//  CHECK kCheckFailed unless every configured range holds a reservation for (container ID,
//        ifname), and each reserved address is in prevResult's ips when prevResult is given.
//  GC    releases this CNI network's reservations made by this node (config.h
//        resolve_node_name) whose (container ID, ifname) is not listed; with no list (neither key
//        sent) releases nothing. Reservations of other nodes and without a node are kept.
//  STATUS kNotAvailable when the store cannot be opened, locked, read or written, or a range
//        has no free address (the message names it).
std::unique_ptr<cni::Plugin> make_builtin_ipam(Logger& log, IpamOptions options);

}  // namespace ipoib::ipam
