// netlink_testing.h — link requests and operations only tests use: the stand-in kinds of test
// builds (a macvlan child, its veth parent), moving a link between namespaces, creating a link
// and reading it back, and finding links by alias. Pure builders like the product's
// (include/ipoib/netlink/link.h), checked against iproute2's bytes in tests/unit/netlink; the
// product never calls them (library ipoib_netlink_testing, linked by tests only).
//
//   using namespace ipoib::netlink::testing;
//   IPOIB_TRY(sock.request(*build_veth_pair_request({"v0", "v1"}), "add veth"));
//   IPOIB_TRY_ASSIGN(LinkInfo child, create_link(sock, *build_macvlan_child_request(spec)));
//   IPOIB_TRY(move_link_to_netns(sock, child.ifindex, pod_handle));
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/netlink/link.h"
#include "ipoib/netlink/message.h"
#include "ipoib/netlink/socket.h"
#include "ipoib/netns/netns.h"

namespace ipoib::netlink::testing {

// A macvlan child in bridge mode — the stand-in kind for test builds on kernels without IPoIB.
// RTM_NEWLINK as build_ipoib_child_request with IFLA_LINKINFO {KIND "macvlan", INFO_DATA
// {IFLA_MACVLAN_MODE u32 MACVLAN_MODE_BRIDGE}}. Same validation.
struct MacvlanChildSpec {
  int parent_ifindex = 0;
  std::string name;
  std::optional<int> netns_fd;  // as IpoibChildSpec::netns_fd (macvlan_newlink: same src_net rule)
};
Result<Bytes> build_macvlan_child_request(const MacvlanChildSpec& spec);

// A veth pair {name, peer_name}, both in the socket's netns — the parent link of test builds
// (IFLA_LINKINFO {KIND "veth", INFO_DATA {VETH_INFO_PEER {ifinfomsg, IFLA_IFNAME}}}).
struct VethPairSpec {
  std::string name;
  std::string peer_name;
};
Result<Bytes> build_veth_pair_request(const VethPairSpec& spec);

// RTM_SETLINK with IFLA_NET_NS_FD (u32); kInvalidNetworkConfig for a bad index or negative fd.
Result<Bytes> build_move_link_request(int ifindex, int netns_fd);

// Sends a NEWLINK request built above, then reads the new link back by the request's name.
// A request carrying IFLA_NET_NS_FD creates the link in another namespace, where this socket
// cannot read it back: kInternal (use send_create_request). Refusals as send_create_request's.
Result<LinkInfo> create_link(NetlinkSocket& sock, ByteView newlink_request);

// Moves the link into `target` (IFLA_NET_NS_FD). The link keeps its name; EEXIST if the target
// already has a link of that name.
Status move_link_to_netns(NetlinkSocket& sock, int ifindex, const netns::NetnsHandle& target);

enum class AliasMatch { kExact, kPrefix };
// Links in the socket's netns whose IFLA_IFALIAS equals (kExact) or starts with (kPrefix) `tag`.
// An empty tag matches nothing.
Result<std::vector<LinkInfo>> find_links_by_alias(NetlinkSocket& sock, std::string_view tag,
                                                  AliasMatch match);

}  // namespace ipoib::netlink::testing
