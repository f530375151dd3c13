#include "netlink_testing.h"

#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "lib/netlink/wire.h"

namespace ipoib::netlink::testing {

Result<Bytes> build_macvlan_child_request(const MacvlanChildSpec& spec) {
  return wire::build_child_request(
      spec.parent_ifindex, spec.name, "macvlan", spec.netns_fd,
      [](wire::MessageBuilder& b) { b.put_u32(IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE); });
}

Result<Bytes> build_veth_pair_request(const VethPairSpec& spec) {
  IPOIB_TRY(validate_ifname(spec.name));
  IPOIB_TRY(validate_ifname(spec.peer_name));
  const ifinfomsg ifi = wire::make_ifinfo(0);
  wire::MessageBuilder b(RTM_NEWLINK, wire::kCreateFlags, &ifi, sizeof ifi);
  b.put_string(IFLA_IFNAME, spec.name);
  b.begin_nest(IFLA_LINKINFO);
  b.put_string(IFLA_INFO_KIND, "veth");
  b.begin_nest(IFLA_INFO_DATA);
  // veth_newlink: VETH_INFO_PEER carries a whole ifinfomsg followed by the peer's attributes.
  b.begin_nest(VETH_INFO_PEER);
  b.append_raw(&ifi, sizeof ifi);
  b.put_string(IFLA_IFNAME, spec.peer_name);
  b.end_nest();
  b.end_nest();
  b.end_nest();
  return b.build();
}

Result<Bytes> build_move_link_request(int ifindex, int netns_fd) {
  if (netns_fd < 0) {
    return Error(ErrorCode::kInvalidNetworkConfig, "move link: invalid netns fd");
  }
  return wire::build_setlink_request(ifindex, "move link", [&](wire::MessageBuilder& b) {
    b.put_u32(IFLA_NET_NS_FD, static_cast<std::uint32_t>(netns_fd));
  });
}

Result<LinkInfo> create_link(NetlinkSocket& sock, ByteView newlink_request) {
  IPOIB_TRY_ASSIGN(LinkInfo wanted, parse_link_message(newlink_request));
  if (wanted.name.empty()) {
    return Error(ErrorCode::kInternal, "create link: request carries no IFLA_IFNAME");
  }
  if (wanted.netns_fd) {
    return Error(ErrorCode::kInternal,
                 "create link " + wanted.name + ": the request names another netns");
  }
  const std::string what = "create link " + wanted.name;
  IPOIB_TRY(sock.request(newlink_request, what));
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> created, get_link_by_name(sock, wanted.name));
  if (!created) {
    // Something deleted or renamed it between the ack and the lookup.
    return Error(ErrorCode::kNetlinkFailure, what + ": link vanished right after creation");
  }
  return std::move(*created);
}

Status move_link_to_netns(NetlinkSocket& sock, int ifindex, const netns::NetnsHandle& target) {
  IPOIB_TRY_ASSIGN(Bytes req, build_move_link_request(ifindex, target.fd()));
  return sock.request(req, "move link " + std::to_string(ifindex) + " to netns " + target.path());
}

Result<std::vector<LinkInfo>> find_links_by_alias(NetlinkSocket& sock, std::string_view tag,
                                                  AliasMatch match) {
  std::vector<LinkInfo> out;
  if (tag.empty()) {
    return out;
  }
  IPOIB_TRY_ASSIGN(std::vector<LinkInfo> links, list_links(sock));
  for (LinkInfo& link : links) {
    const bool hit = match == AliasMatch::kExact
                         ? link.alias == tag
                         : std::string_view(link.alias).substr(0, tag.size()) == tag;
    if (hit) {
      out.push_back(std::move(link));
    }
  }
  return out;
}

}  // namespace ipoib::netlink::testing
