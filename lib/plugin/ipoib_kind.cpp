// The real child kind: IPoIB children of an IPoIB port interface.
#include <linux/if.h>

#include "ipoib/plugin/child_kind.h"

namespace ipoib::plugin {
namespace {

Error master_error(const netlink::LinkInfo& master, std::string_view why) {
  return Error(ErrorCode::kInvalidNetworkConfig, "master: " + master.name + " " + std::string(why));
}

class IpoibKind final : public ChildKind {
 public:
  explicit IpoibKind(std::unique_ptr<ib::PortQuery> ports) : ports_(std::move(ports)) {}

  [[nodiscard]] std::string_view name() const override { return "ipoib"; }

  [[nodiscard]] Status validate_master(const netlink::LinkInfo& master) const override {
    // ipoib_new_child_link(): a parent that is not ARPHRD_INFINIBAND is ENODEV.
    if (master.arphrd_type != netlink::kArphrdInfiniband) {
      return master_error(master, "is not an IPoIB interface (link type " +
                                      std::to_string(master.arphrd_type) + ", not 32)");
    }
    // ipoib_get_iflink() reports the parent for a child, so IFLA_LINK differs from the index;
    // the kernel refuses children of children (EINVAL: "parent is a child").
    if (master.parent_ifindex && *master.parent_ifindex != master.ifindex) {
      return master_error(master, "is an IPoIB child (of ifindex " +
                                      std::to_string(*master.parent_ifindex) +
                                      "), not a port interface such as ib0");
    }
    if (master.admin_state() != netlink::AdminState::kUp) {
      return master_error(master, "is down (ip link set " + master.name + " up)");
    }
    return ok_status();
  }

  [[nodiscard]] Result<ParentFacts> parent_facts(const netlink::LinkInfo& master) const override {
    ParentFacts facts;
    facts.ifindex = master.ifindex;
    facts.mtu_bytes = static_cast<int>(master.mtu);
    if (master.ipoib) {
      facts.pkey = master.ipoib->pkey;
      facts.mode = static_cast<IpoibMode>(master.ipoib->mode);
    }
    // The port's IB MTU bounds a datagram child; unknown (sysfs has no active_mtu) is fine.
    if (ports_) {
      auto port = ports_->port_for_netdev(master.name);
      if (port.ok()) {
        facts.port_ib_mtu_bytes = port->active_mtu_bytes;
      }
    }
    return facts;
  }

  [[nodiscard]] Result<netlink::Bytes> build_create_request(const ChildSpec& spec,
                                                            std::string_view child_name,
                                                            int target_netns_fd) const override {
    netlink::IpoibChildSpec req;
    req.parent_ifindex = spec.parent_ifindex;
    req.name = std::string(child_name);
    // The driver sets the full-membership bit anyway (ipoib_new_child_link); sending it keeps
    // what `ip -d link` shows equal to what was asked for.
    req.pkey = static_cast<std::uint16_t>(spec.pkey | kFullMembershipBit);
    req.mode = static_cast<netlink::IpoibMode>(spec.mode);
    req.umcast = static_cast<netlink::Umcast>(spec.umcast);
    // Created straight in the pod: ipoib_new_child_link(src_net, ...) (torvalds/linux
    // drivers/infiniband/ulp/ipoib/ipoib_netlink.c) finds the parent with
    // __dev_get_by_index(src_net, IFLA_LINK) in the requesting socket's (host) netns, while
    // rtnl_create_link registers the child in the IFLA_NET_NS_FD netns — as for macvlan. No
    // separate move, so no synchronize_net() grace period per ADD.
    req.netns_fd = target_netns_fd;
    return netlink::build_ipoib_child_request(req);
  }

  [[nodiscard]] Status verify_child(const netlink::LinkInfo& child,
                                    const ChildSpec& spec) const override {
    if (child.kind != "ipoib") {
      return Error(ErrorCode::kCheckFailed,
                   child.name + " is of kind \"" + child.kind + "\", not an IPoIB child");
    }
    if (!child.parent_ifindex || *child.parent_ifindex != spec.parent_ifindex) {
      return Error(ErrorCode::kCheckFailed, child.name + " is not a child of the master (ifindex " +
                                                std::to_string(spec.parent_ifindex) + ")");
    }
    if (!child.ipoib) {
      return Error(ErrorCode::kCheckFailed, child.name + ": the kernel reported no pkey/mode");
    }
    if (!same_partition(child.ipoib->pkey, spec.pkey)) {
      return Error(ErrorCode::kCheckFailed, child.name + " has pkey " +
                                                format_pkey(child.ipoib->pkey) + ", configured " +
                                                format_pkey(spec.pkey));
    }
    if (static_cast<IpoibMode>(child.ipoib->mode) != spec.mode) {
      return Error(ErrorCode::kCheckFailed,
                   child.name + " is in " +
                       std::string(to_string(static_cast<IpoibMode>(child.ipoib->mode))) +
                       " mode, configured " + std::string(to_string(spec.mode)));
    }
    return ok_status();
  }

  [[nodiscard]] ArpHardware arp_hardware() const override {
    return {netlink::kArphrdInfiniband, netlink::kInfinibandAddressLength};
  }

  [[nodiscard]] Status master_ready(const netlink::LinkInfo& master) const override {
    // Every message names the master the same way: "master ib0 ...".
    const std::string who = "master " + master.name;
    if (master.arphrd_type != netlink::kArphrdInfiniband) {
      return Error(ErrorCode::kNotAvailable, who + " is not an IPoIB interface");
    }
    if (master.admin_state() != netlink::AdminState::kUp) {
      return Error(ErrorCode::kNotAvailable, who + " is down");
    }
    if (!ports_) {
      return ok_status();
    }
    auto port = ports_->port_for_netdev(master.name);
    if (!port.ok()) {
      return Error(ErrorCode::kNotAvailable,
                   who + ": cannot find its IB port: " + port.error().msg());
    }
    if (!ib::port_usable(*port)) {
      return Error(ErrorCode::kNotAvailable, who + ": " + ib::explain_port(*port));
    }
    return ok_status();
  }

  [[nodiscard]] std::string explain_carrier_down(const netlink::LinkInfo& master,
                                                 const ChildSpec& spec) const override {
    if (!ports_) {
      return "";
    }
    auto port = ports_->port_for_netdev(master.name);
    if (!port.ok()) {
      return "the IB port of " + master.name + " is unknown: " + port.error().msg();
    }
    return ib::explain_carrier_down(*port, spec.pkey);
  }

 private:
  std::unique_ptr<ib::PortQuery> ports_;
};

}  // namespace

std::unique_ptr<ChildKind> make_ipoib_kind(std::unique_ptr<ib::PortQuery> ports) {
  return std::make_unique<IpoibKind>(std::move(ports));
}

}  // namespace ipoib::plugin
