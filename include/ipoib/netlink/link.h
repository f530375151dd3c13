// ipoib/netlink/link.h — network links: the IPoIB child request builder, the link message
// parser, and the link operations the plugin composes. (What only tests use — the macvlan and
// veth builders, moving a link, create-and-read-back, finding links by alias — lives in
// tests/support/netlink_testing.h.)
//
//   netlink::IpoibChildSpec spec{.parent_ifindex = 4, .name = "ib0.8001", .pkey = 0x8001,
//                                .mode = netlink::IpoibMode::kDatagram,
//                                .umcast = netlink::Umcast::kOff, .alias = "ipoib-cni:<id>:net1"};
//   IPOIB_TRY_ASSIGN(netlink::Bytes req, netlink::build_ipoib_child_request(spec));
//   spec.netns_fd = pod.fd();                           // created straight inside the pod:
//   IPOIB_TRY(netlink::send_create_request(host_sock, *netlink::build_ipoib_child_request(spec)));
//   // in the pod netns, with a socket opened there:
//   IPOIB_TRY_ASSIGN(auto child, netlink::get_link_by_name(pod_sock, "ib0.8001"));
//   IPOIB_TRY(netlink::rename_link(pod_sock, child.ifindex, "net1"));
//   IPOIB_TRY(netlink::set_link_mtu(pod_sock, child.ifindex, 2044));
//   IPOIB_TRY(netlink::set_link_admin_state(pod_sock, child.ifindex, netlink::AdminState::kUp));
//
// Every operation acts on the namespace its socket was opened in (see socket.h); an ifindex is
// only meaningful within one namespace, and a link moved to another namespace may get a new
// index there (it keeps it unless it collides: net/core/dev.c __dev_change_net_namespace).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/netlink/message.h"
#include "ipoib/netlink/socket.h"

namespace ipoib::netlink {

// IFLA_IPOIB_MODE values (include/uapi/linux/if_link.h: IPOIB_MODE_DATAGRAM/CONNECTED).
enum class IpoibMode : std::uint16_t { kDatagram = 0, kConnected = 1 };
// IFLA_IPOIB_UMCAST: whether the child accepts user-space multicast groups.
enum class Umcast : std::uint16_t { kOff = 0, kOn = 1 };
enum class AdminState { kDown, kUp };
enum class Carrier { kDown, kUp };

// RFC 2863 operational state (IFLA_OPERSTATE, include/uapi/linux/if.h IF_OPER_*).
enum class OperState : std::uint8_t {
  kUnknown = 0,
  kNotPresent = 1,
  kDown = 2,
  kLowerLayerDown = 3,  // IPoIB child whose pkey is not in the port table, or port not active
  kTesting = 4,
  kDormant = 5,
  kUp = 6,
};
std::string_view to_string(OperState state);

// ARPHRD_* values the plugin cares about (include/uapi/linux/if_arp.h).
inline constexpr std::uint16_t kArphrdEther = 1;
inline constexpr std::uint16_t kArphrdInfiniband = 32;
// IPoIB hardware address: 4 bytes flags + QPN, 16 bytes GID (INFINIBAND_ALEN).
inline constexpr std::size_t kInfinibandAddressLength = 20;

// Longest interface name: IFNAMSIZ - 1 (include/uapi/linux/if.h).
inline constexpr std::size_t kMaxIfnameLength = 15;
// Longest alias: IFALIASZ - 1 (include/uapi/linux/if.h); the kernel refuses longer ones.
inline constexpr std::size_t kMaxAliasLength = 255;

// Checks an interface name as the kernel's dev_valid_name() does (net/core/dev.c): 1..15 bytes,
// not "." or "..", no '/', ':' or whitespace. kInvalidNetworkConfig naming the name otherwise.
Status validate_ifname(std::string_view name);

// An IPoIB child to create (ipoib_new_child_link, drivers/infiniband/ulp/ipoib/ipoib_netlink.c).
struct IpoibChildSpec {
  int parent_ifindex = 0;  // IFLA_LINK: the parent port interface, in the socket's netns
  std::string name;        // IFLA_IFNAME
  std::uint16_t pkey = 0;  // IFLA_IPOIB_PKEY; 0 and 0x8000 are refused (EINVAL) by the driver
  IpoibMode mode = IpoibMode::kDatagram;
  Umcast umcast = Umcast::kOff;
  // IFLA_NET_NS_FD, appended after IFLA_LINKINFO: the namespace the child is registered in.
  // IFLA_LINK is still resolved in the requesting socket's netns (rtnl_newlink_create passes
  // that src_net to ipoib_new_child_link, which looks the parent up there), so one request
  // creates the child of a host-side parent directly inside a pod — no separate move, whose
  // dev_change_net_namespace costs an RCU grace period (synchronize_net).
  std::optional<int> netns_fd;
};

// Builds RTM_NEWLINK, flags REQUEST|CREATE|EXCL|ACK, ifinfomsg all zero, then IFLA_LINK (u32),
// IFLA_IFNAME (NUL included), IFLA_LINKINFO {IFLA_INFO_KIND "ipoib" (5 bytes, no NUL, as
// iproute2 6.1 sends it), IFLA_INFO_DATA {PKEY, MODE, UMCAST as host-order u16}} — nests without
// NLA_F_NESTED — then, if set, IFLA_NET_NS_FD (u32). No IFLA_IFALIAS: rtnl_create_link never
// reads it (only do_setlink does), so a tag is set afterwards (build_set_alias_request). Never
// IFLA_TXQLEN or IFLA_MTU (the driver overwrites the MTU while registering; set it afterwards). seq
// and pid are 0 (the socket fills them). Without netns fd the bytes equal iproute2 6.1's `ip link
// add link <parent> name <name> type ipoib pkey <p> mode <m> umcast <u>` apart from seq/pid
// (tests/unit/netlink golden file). Errors (kInvalidNetworkConfig): parent_ifindex <= 0, invalid
// name, pkey 0 or 0x8000, negative netns fd.
Result<Bytes> build_ipoib_child_request(const IpoibChildSpec& spec);

// IPoIB parameters read back from IFLA_INFO_DATA (ipoib_fill_info fills all three).
struct IpoibParams {
  std::uint16_t pkey = 0;
  IpoibMode mode = IpoibMode::kDatagram;
  Umcast umcast = Umcast::kOff;
  friend bool operator==(const IpoibParams&, const IpoibParams&) = default;
};

// What a link message says about a link. Attributes the message lacks keep their defaults.
struct LinkInfo {
  int ifindex = 0;                    // ifinfomsg.ifi_index (0 in a NEWLINK request)
  std::uint16_t arphrd_type = 0;      // ifinfomsg.ifi_type: kArphrdInfiniband for IPoIB
  std::uint32_t flags = 0;            // ifinfomsg.ifi_flags (IFF_UP, IFF_LOWER_UP, ...)
  std::string name;                   // IFLA_IFNAME
  std::optional<int> parent_ifindex;  // IFLA_LINK (for a child moved away: index in the
                                      // parent's netns, see link_netnsid)
  std::optional<int> link_netnsid;    // IFLA_LINK_NETNSID: parent lives in another netns
  std::string kind;                   // IFLA_LINKINFO/IFLA_INFO_KIND ("ipoib", "macvlan", "veth")
  std::optional<IpoibParams> ipoib;   // when kind == "ipoib" and INFO_DATA carried all three
  std::optional<std::uint32_t> macvlan_mode;  // IFLA_MACVLAN_MODE when kind == "macvlan"
  std::string alias;                          // IFLA_IFALIAS ("" when none)
  std::optional<int> netns_fd;                // IFLA_NET_NS_FD (only in requests built here)
  std::uint32_t mtu = 0;                      // IFLA_MTU
  OperState operstate = OperState::kUnknown;  // IFLA_OPERSTATE
  std::optional<Carrier> carrier;             // IFLA_CARRIER (absent in requests)
  Bytes hw_address;                           // IFLA_ADDRESS (20 bytes on IPoIB, 6 on Ethernet)
  Bytes broadcast;                            // IFLA_BROADCAST

  [[nodiscard]] AdminState admin_state() const;  // from IFF_UP
};

// Parses one RTM_NEWLINK message (a kernel reply or a request built here). kDecodeFailure on a
// wrong message type, truncation or malformed attributes; unknown attributes are skipped.
// Fuzzed by tests/fuzz/fuzz_netlink_messages.cpp.
Result<LinkInfo> parse_link_message(ByteView message);

// Other link requests, pure like the builders above (flags REQUEST|ACK; seq/pid 0).
Result<Bytes> build_get_link_by_index_request(int ifindex);
Result<Bytes> build_get_link_by_name_request(std::string_view name);
Bytes build_dump_links_request(std::string_view kind = {});  // see list_links
Result<Bytes> build_delete_link_request(int ifindex);
Result<Bytes> build_rename_link_request(int ifindex, std::string_view new_name);
Result<Bytes> build_set_mtu_request(int ifindex, std::uint32_t mtu_bytes);
Result<Bytes> build_set_admin_state_request(int ifindex, AdminState state);
Result<Bytes> build_set_alias_request(int ifindex, std::string_view alias);

// ---- operations; each acts in the namespace `sock` was opened in ----

// Sends a NEWLINK create request and waits for the kernel's ack — nothing else: no read-back.
// A request carrying IFLA_NET_NS_FD creates the link in that namespace: look it up with a socket
// opened there. A refusal is kernel_error("create link <name>", errno, extack): EEXIST (name
// taken), ENODEV (parent missing or not ARPHRD_INFINIBAND), EINVAL (parent is a child, bad pkey),
// EBUSY (connected mode raced the rtnl lock), EOPNOTSUPP with "Unknown device type" (kind not
// available: no ib_ipoib module on this kernel).
Status send_create_request(NetlinkSocket& sock, ByteView newlink_request);

// std::nullopt when no such link exists (ENODEV from RTM_GETLINK).
Result<std::optional<LinkInfo>> get_link_by_index(NetlinkSocket& sock, int ifindex);
Result<std::optional<LinkInfo>> get_link_by_name(NetlinkSocket& sock, std::string_view name);
// Every link of the socket's netns — or, with `kind`, only links of that kind: the dump request
// carries IFLA_LINKINFO {IFLA_INFO_KIND} so the kernel skips the others (rtnl_dump_ifinfo ->
// link_dump_filtered; on a node with hundreds of veths this is most of a DEL's user time), and
// the result is filtered here again (a kernel without that kind's ops does not filter). Either
// way the dump asks for no statistics (IFLA_EXT_MASK RTEXT_FILTER_SKIP_STATS).
Result<std::vector<LinkInfo>> list_links(NetlinkSocket& sock, std::string_view kind = {});

// kAbsent when no link has this index (ENODEV). Note: deleting a link also deletes its
// addresses and routes. A macvlan child is deleted with its netns; an IPoIB child is instead
// refunded to the host netns as dev<N> (netns_refund) — see ipoib-kernel.md.
Result<DeleteOutcome> delete_link(NetlinkSocket& sock, int ifindex);

// EEXIST when the name is taken; EBUSY when the link is up on old kernels.
Status rename_link(NetlinkSocket& sock, int ifindex, std::string_view new_name);
// EINVAL when the driver refuses the value (IPoIB datagram: above IB MTU - 4).
Status set_link_mtu(NetlinkSocket& sock, int ifindex, std::uint32_t mtu_bytes);
Status set_link_admin_state(NetlinkSocket& sock, int ifindex, AdminState state);
Status set_link_alias(NetlinkSocket& sock, int ifindex, std::string_view alias);

}  // namespace ipoib::netlink
