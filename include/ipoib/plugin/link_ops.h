// ipoib/plugin/link_ops.h — the link operations ADD, DEL, CHECK and GC are made of, per network
// namespace. The seam where the test executable injects a failure at one step (create, alias,
// rename, mtu, address, route, up) to prove every rollback path; the real implementation is a
// thin layer over ipoib/netlink and ipoib/netns.
//
//   auto ops = make_kernel_link_ops();
//   IPOIB_TRY_ASSIGN(auto host, ops->open_host());          // the plugin's own netns
//   IPOIB_TRY_ASSIGN(auto pod, ops->open_netns(pod_handle)); // a socket bound to the pod netns
//   IPOIB_TRY(host->create_link(request));                   // IFLA_NET_NS_FD = pod_handle
//   IPOIB_TRY_ASSIGN(auto child, pod->link_by_name(tmp));
#pragma once

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/netlink/address.h"
#include "ipoib/netlink/link.h"
#include "ipoib/netlink/route.h"
#include "ipoib/netns/netns.h"

namespace ipoib::plugin {

// Operations on the links of one network namespace (the one the session was opened for; an
// ifindex means something only there).
class LinkSession {
 public:
  virtual ~LinkSession() = default;

  // Sends a creating RTM_NEWLINK; its IFLA_LINK is resolved in this session's netns, the link
  // appears in the netns its IFLA_NET_NS_FD names (look it up with that netns' session).
  virtual Status create_link(netlink::ByteView newlink_request) = 0;
  // Tags the link (IFLA_IFALIAS by RTM_SETLINK: the kernel ignores IFLA_IFALIAS in a creating
  // RTM_NEWLINK — rtnl_create_link() never reads it — so the tag is set right after creation).
  virtual Status set_alias(int ifindex, std::string_view alias) = 0;
  virtual Status rename_link(int ifindex, std::string_view name) = 0;
  virtual Status set_mtu(int ifindex, int mtu_bytes) = 0;
  // IPv6 on the link: disable_ipv6=0 and accept_dad=0 (addresses are added with IFA_F_NODAD).
  virtual Status enable_ipv6(std::string_view ifname) = 0;
  virtual Status add_address(int ifindex, const IpPrefix& prefix) = 0;
  virtual Status add_route(const netlink::RouteSpec& route) = 0;
  virtual Status set_up(int ifindex) = 0;
  // Asks the kernel to announce the link's IPv4 addresses with gratuitous ARP when it comes up
  // (arp_notify=1: inetdev_event(NETDEV_UP) -> inetdev_send_gratuitous_arp, built by arp_create
  // in the device's own format: hardware type 32 and 20-byte addresses on IPoIB). Call before
  // set_up. Cheaper than sending it ourselves: closing an AF_PACKET socket waits for an RCU
  // grace period (packet_release -> synchronize_net), ~8 ms per ADD measured here.
  virtual Status enable_arp_notify(std::string_view ifname) = 0;
  virtual Result<netlink::DeleteOutcome> delete_link(int ifindex) = 0;

  virtual Result<std::optional<netlink::LinkInfo>> link_by_name(std::string_view name) = 0;
  virtual Result<std::optional<netlink::LinkInfo>> link_by_index(int ifindex) = 0;
  // The links of the namespace of `kind` ("ipoib"; one dump, filtered by the kernel).
  virtual Result<std::vector<netlink::LinkInfo>> links_of_kind(std::string_view kind) = 0;
  virtual Result<std::vector<netlink::AddressInfo>> addresses(int ifindex) = 0;
  virtual Result<std::vector<netlink::RouteInfo>> routes(IpFamily family) = 0;
};

// Sessions must not outlive the LinkOps that opened them.
class LinkOps {
 public:
  virtual ~LinkOps() = default;
  // A session in the calling thread's current (host) network namespace.
  virtual Result<std::unique_ptr<LinkSession>> open_host() = 0;
  // A session bound to `ns` (its socket opened inside it; sysctls and ARP run inside it).
  // `ns` must outlive the session.
  virtual Result<std::unique_ptr<LinkSession>> open_netns(const netns::NetnsHandle& ns) = 0;
};

// rtnetlink sockets, sysctls and packet sockets of the real kernel.
std::unique_ptr<LinkOps> make_kernel_link_ops();

}  // namespace ipoib::plugin
