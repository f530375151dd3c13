// ipoib/netlink/socket.h — the one owner of an rtnetlink socket (libnl's nl_sock underneath).
//
// A NETLINK_ROUTE socket is bound to the network namespace that is current when it is created
// (net/netlink/af_netlink.c: __netlink_create takes sock_net of the creating task) and stays
// bound to it even if the thread later switches namespace. So: open the socket inside the
// ScopedNetns of the namespace you want to act on.
//
//   IPOIB_TRY_ASSIGN(auto host, netlink::NetlinkSocket::open());      // host netns
//   {
//     IPOIB_TRY_ASSIGN(auto scope, netns::ScopedNetns::enter(pod));
//     IPOIB_TRY_ASSIGN(auto pod_sock, netlink::NetlinkSocket::open());  // pod netns
//     IPOIB_TRY(netlink::set_link_mtu(pod_sock, index, 2044));
//   }
//
// Most callers use the domain operations in link.h / address.h / route.h; request() and dump()
// are the transport they share.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/netlink/message.h"

namespace ipoib::netlink {

class NetlinkSocket {
 public:
  // Opens and connects a NETLINK_ROUTE socket (O_CLOEXEC) in the current network namespace,
  // with extended acks enabled so refusals carry the kernel's text ("Unknown device type").
  static Result<NetlinkSocket> open();

  NetlinkSocket(NetlinkSocket&&) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&&) noexcept;
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;
  ~NetlinkSocket();

  // Sends one request built by this module (its seq/pid are overwritten; NLM_F_ACK is added)
  // and waits for the kernel's acknowledgement. A refusal is kernel_error(operation, errno,
  // extack text). Expects nothing about the current namespace: the socket's own namespace is
  // the one acted on.
  Status request(ByteView message, std::string_view operation);

  // As request(), but also collects any messages the kernel sends before the ack (RTM_NEWLINK
  // echo for NLM_F_ECHO requests, or the reply to a non-dump GET). Returns them in order.
  Result<std::vector<Bytes>> request_with_reply(ByteView message, std::string_view operation);

  // Sends a GET request with NLM_F_DUMP and returns every message of the reply up to
  // NLMSG_DONE (the header-only terminators are not returned). Restarts the dump if the kernel
  // flags it inconsistent (NLM_F_DUMP_INTR), at most a few times.
  Result<std::vector<Bytes>> dump(ByteView message, std::string_view operation);

 private:
  struct Impl;
  explicit NetlinkSocket(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ipoib::netlink
