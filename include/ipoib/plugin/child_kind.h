// ipoib/plugin/child_kind.h — the seam between the plugin's ADD/DEL/CHECK/GC/STATUS logic and
// the one thing a test kernel cannot provide: the IPoIB link kind.
//
// The installed plugin uses make_ipoib_kind() only. The integration test executable
// `ipoib-testkind` supplies a macvlan-on-veth kind through the same interface; nothing in the
// installed binary knows about it (no flag, no `if (testing)`).
//
//   auto kind = make_ipoib_kind(ib::make_system_port_query());
//   IPOIB_TRY(kind->validate_master(master_link));          // ARPHRD_INFINIBAND, a parent, up
//   IPOIB_TRY_ASSIGN(ParentFacts facts, kind->parent_facts(master_link));
//   IPOIB_TRY_ASSIGN(netlink::Bytes req, kind->build_create_request(spec, tmp, pod.fd()));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ipoib/base/error.h"
#include "ipoib/ib/port.h"
#include "ipoib/netlink/link.h"
#include "ipoib/plugin/config.h"

namespace ipoib::plugin {

// What a neighbour announcement on the child looks like (RFC 4391 9.1.2 for IPoIB).
struct ArpHardware {
  std::uint16_t arphrd_type = 0;   // 32 for IPoIB, 1 for Ethernet
  std::size_t address_length = 0;  // 20 for IPoIB, 6 for Ethernet
};

class ChildKind {
 public:
  virtual ~ChildKind() = default;

  // "ipoib", or the stand-in's name, for messages.
  [[nodiscard]] virtual std::string_view name() const = 0;

  // Whether `master` (read in the host netns) can parent a child. kInvalidNetworkConfig naming
  // "master" and saying why: wrong link type, a child itself, administratively down.
  [[nodiscard]] virtual Status validate_master(const netlink::LinkInfo& master) const = 0;

  // The parent's pkey, mode, MTU and port IB MTU — the defaults of an unset config key. Expects
  // the host netns (sysfs for the IB port).
  [[nodiscard]] virtual Result<ParentFacts> parent_facts(const netlink::LinkInfo& master) const = 0;

  // The RTM_NEWLINK request creating the child `name` of spec.parent_ifindex (an index in the
  // requesting socket's netns) directly inside the netns `target_netns_fd` (IFLA_NET_NS_FD).
  // No alias: the kernel ignores IFLA_IFALIAS on create; the plugin tags the child afterwards.
  [[nodiscard]] virtual Result<netlink::Bytes> build_create_request(const ChildSpec& spec,
                                                                    std::string_view name,
                                                                    int target_netns_fd) const = 0;

  // CHECK: `child` (read in the pod netns) is this kind's child of spec.parent_ifindex with the
  // spec's parameters. kCheckFailed saying what differs.
  [[nodiscard]] virtual Status verify_child(const netlink::LinkInfo& child,
                                            const ChildSpec& spec) const = 0;

  [[nodiscard]] virtual ArpHardware arp_hardware() const = 0;

  // STATUS: ready for ADD — the master is up and its port can carry traffic. kNotAvailable with
  // the reason otherwise, naming the master as "master <name> ..." (the plugin's own "master
  // <name> does not exist" reads the same). Expects the host netns.
  [[nodiscard]] virtual Status master_ready(const netlink::LinkInfo& master) const = 0;

  // Why a child with `spec` on `master` would have no carrier ("" when nothing explains it).
  // Expects the host netns.
  [[nodiscard]] virtual std::string explain_carrier_down(const netlink::LinkInfo& master,
                                                         const ChildSpec& spec) const = 0;
};

// The real kind: RTM_NEWLINK "ipoib" {PKEY, MODE, UMCAST}; IB port facts from `ports`.
std::unique_ptr<ChildKind> make_ipoib_kind(std::unique_ptr<ib::PortQuery> ports);

}  // namespace ipoib::plugin
