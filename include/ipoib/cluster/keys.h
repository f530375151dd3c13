// ipoib/cluster/keys.h — the cluster store's etcd key layout (version-prefixed), as pure
// builders. Every component is percent-encoded (escape), so '/' never appears inside one and a
// prefix ending in '/' never matches a longer component.
//
//   /ipoib/v1/net/<net>/ip4/<hex8>   /ip6/<hex32>     one reservation (JSON record); the address
//        as fixed-width lower-case hex, so key order is address order and a bounded range read
//        walks addresses upwards. Addresses are unique per network (all its ranges), as in the
//        local store.
//   /ipoib/v1/net/<net>/att/<container_id>/<ifname>/<range_key>     index: the address (hex key
//        suffix) an attachment holds in a range: find_attachment is one read
//   /ipoib/v1/net/<net>/pod/<pod_ref>/<ifname>/<range_key>/<cid>    index: a pod's reservations
//        (the re-ADD rule): one bounded prefix read
//   /ipoib/v1/net/<net>/range/<range_key>/state     the range as last configured and its cursor
//        (JSON; a hint written without a compare): list's free counts, where a search starts
//   /ipoib/v1/net/<net>/range/<range_key>/slice/<hex>   node-slice mode: the node owning the
//        slice that starts at <hex>
// <net> is the IPAM network_name, or "_" for the default pool ("" is not a valid component and a
// valid network_name never starts with '_'). An index key is written and deleted only in the same
// Txn as the reservation key it points to, so it is consistent with it whenever that key is.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ipoib/base/ip.h"

namespace ipoib::cluster::keys {

inline constexpr std::string_view kRoot = "/ipoib/v1/";

std::string escape(std::string_view component);    // percent-encodes all but [A-Za-z0-9._-]
std::string unescape(std::string_view component);  // escape's inverse (a bad %XX stays as is)
std::string address_hex(const IpAddress& ip);      // 8 digits IPv4, 32 IPv6

std::string network(std::string_view net);                          // /ipoib/v1/net/<net>/
std::string address_prefix(std::string_view net, IpFamily family);  // .../ip4/ or .../ip6/
std::string address(std::string_view net, const IpAddress& ip);
// The address an address key names; nullopt when `key` is not one.
std::optional<IpAddress> address_of(std::string_view key);

std::string attachment_prefix(std::string_view net, std::string_view container_id,
                              std::string_view ifname);
std::string attachment(std::string_view net, std::string_view container_id, std::string_view ifname,
                       std::string_view range_key);
std::string pod_prefix(std::string_view net, std::string_view pod_ref, std::string_view ifname,
                       std::string_view range_key);
std::string pod(std::string_view net, std::string_view pod_ref, std::string_view ifname,
                std::string_view range_key, std::string_view container_id);

std::string ranges_prefix(std::string_view net);  // .../range/
std::string range_state(std::string_view net, std::string_view range_key);
std::string slice_prefix(std::string_view net, std::string_view range_key);
std::string slice(std::string_view net, std::string_view range_key, const IpAddress& first);

// The end of a prefix read: [prefix, prefix_end(prefix)).
std::string prefix_end(std::string_view prefix);

}  // namespace ipoib::cluster::keys
