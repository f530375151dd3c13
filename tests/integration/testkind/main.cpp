// ipoib-testkind — the ipoib plugin as the integration tests run it on a kernel without IPoIB:
// the same plugin library with the child link kind swapped for macvlan (bridge mode) on a veth
// parent (DEVELOPERS guide; STYLE.md principle 7). Never installed.
//
// Failure injection, for the rollback tests only: IPOIB_TEST_FAIL_STEP names the one step that
// fails during ADD — create, alias, move, rename, mtu, ipv6, address, up, route or ipam ("move":
// the create request, which places the child in the pod, succeeds but reports failure).
// IPOIB_TEST_INTENT_DIR, when set, replaces /run/ipoib-cni as the intent directory (intent.h),
// so that tests running side by side do not share one.
//   ipoib-testkind --version   answers as `ipoib --version` does, naming itself.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "ipoib/base/log.h"
#include "ipoib/cni/skel.h"
#include "ipoib/cni/version.h"
#include "ipoib/netlink/message.h"
#include "ipoib/plugin/ipoib_plugin.h"
#include "netlink_testing.h"

namespace ipoib::plugin {
namespace {

// macvlan children of an Ethernet (veth) parent: everything IPoIB-specific that the kernel
// here cannot do is stood in for; pkey and mode cannot be carried and are not verified.
class MacvlanKind final : public ChildKind {
 public:
  [[nodiscard]] std::string_view name() const override { return "macvlan"; }

  [[nodiscard]] Status validate_master(const netlink::LinkInfo& master) const override {
    if (master.arphrd_type != netlink::kArphrdEther) {
      return Error(ErrorCode::kInvalidNetworkConfig,
                   "master: " + master.name + " is not an Ethernet interface");
    }
    if (master.kind == "macvlan") {
      return Error(ErrorCode::kInvalidNetworkConfig,
                   "master: " + master.name + " is a macvlan child, not a parent");
    }
    if (master.admin_state() != netlink::AdminState::kUp) {
      return Error(ErrorCode::kInvalidNetworkConfig, "master: " + master.name + " is down");
    }
    return ok_status();
  }

  [[nodiscard]] Result<ParentFacts> parent_facts(const netlink::LinkInfo& master) const override {
    ParentFacts facts;
    facts.ifindex = master.ifindex;
    facts.mtu_bytes = static_cast<int>(master.mtu);
    return facts;
  }

  [[nodiscard]] Result<netlink::Bytes> build_create_request(const ChildSpec& spec,
                                                            std::string_view child_name,
                                                            int target_netns_fd) const override {
    return netlink::testing::build_macvlan_child_request({.parent_ifindex = spec.parent_ifindex,
                                                          .name = std::string(child_name),
                                                          .netns_fd = target_netns_fd});
  }

  [[nodiscard]] Status verify_child(const netlink::LinkInfo& child,
                                    const ChildSpec& spec) const override {
    if (child.kind != "macvlan") {
      return Error(ErrorCode::kCheckFailed,
                   child.name + " is of kind \"" + child.kind + "\", not a macvlan child");
    }
    if (!child.parent_ifindex || *child.parent_ifindex != spec.parent_ifindex) {
      return Error(ErrorCode::kCheckFailed, child.name + " is not a child of the master");
    }
    return ok_status();
  }

  [[nodiscard]] ArpHardware arp_hardware() const override { return {netlink::kArphrdEther, 6}; }

  [[nodiscard]] Status master_ready(const netlink::LinkInfo& master) const override {
    if (master.admin_state() != netlink::AdminState::kUp) {
      return Error(ErrorCode::kNotAvailable, "master " + master.name + " is down");
    }
    if (master.carrier == netlink::Carrier::kDown) {
      return Error(ErrorCode::kNotAvailable, "master " + master.name + " has no carrier");
    }
    return ok_status();
  }

  [[nodiscard]] std::string explain_carrier_down(const netlink::LinkInfo& master,
                                                 const ChildSpec&) const override {
    return master.carrier == netlink::Carrier::kDown ? master.name + " has no carrier" : "";
  }
};

Error injected(std::string_view step) {
  return netlink::kernel_error("injected failure at step " + std::string(step), EIO);
}

// Fails the one configured step; everything else goes to the real session.
class FailingSession final : public LinkSession {
 public:
  FailingSession(std::unique_ptr<LinkSession> inner, std::string step)
      : inner_(std::move(inner)), step_(std::move(step)) {}

  Status create_link(netlink::ByteView request) override {
    if (step_ == "create") return injected(step_);
    // The move into the pod is part of the create request now (IFLA_NET_NS_FD). "move" is the
    // create that took effect in the kernel but reported failure (say, a lost ack): the child
    // exists in the pod, untagged and unknown by index, and the rollback must find it by name.
    IPOIB_TRY(inner_->create_link(request));
    if (step_ == "move") return injected(step_);
    return ok_status();
  }
  Status set_alias(int ifindex, std::string_view alias) override {
    if (step_ == "alias") return injected(step_);
    return inner_->set_alias(ifindex, alias);
  }
  Status rename_link(int ifindex, std::string_view name) override {
    if (step_ == "rename") return injected(step_);
    return inner_->rename_link(ifindex, name);
  }
  Status set_mtu(int ifindex, int mtu_bytes) override {
    if (step_ == "mtu") return injected(step_);
    return inner_->set_mtu(ifindex, mtu_bytes);
  }
  Status enable_ipv6(std::string_view ifname) override {
    if (step_ == "ipv6") return injected(step_);
    return inner_->enable_ipv6(ifname);
  }
  Status add_address(int ifindex, const IpPrefix& prefix) override {
    if (step_ == "address") return injected(step_);
    return inner_->add_address(ifindex, prefix);
  }
  Status add_route(const netlink::RouteSpec& route) override {
    if (step_ == "route") return injected(step_);
    return inner_->add_route(route);
  }
  Status set_up(int ifindex) override {
    if (step_ == "up") return injected(step_);
    return inner_->set_up(ifindex);
  }
  Status enable_arp_notify(std::string_view ifname) override {
    return inner_->enable_arp_notify(ifname);
  }
  Result<netlink::DeleteOutcome> delete_link(int ifindex) override {
    return inner_->delete_link(ifindex);
  }
  Result<std::optional<netlink::LinkInfo>> link_by_name(std::string_view name) override {
    return inner_->link_by_name(name);
  }
  Result<std::optional<netlink::LinkInfo>> link_by_index(int ifindex) override {
    return inner_->link_by_index(ifindex);
  }
  Result<std::vector<netlink::LinkInfo>> links_of_kind(std::string_view kind) override {
    return inner_->links_of_kind(kind);
  }
  Result<std::vector<netlink::AddressInfo>> addresses(int ifindex) override {
    return inner_->addresses(ifindex);
  }
  Result<std::vector<netlink::RouteInfo>> routes(IpFamily family) override {
    return inner_->routes(family);
  }

 private:
  std::unique_ptr<LinkSession> inner_;
  std::string step_;
};

class FailingLinkOps final : public LinkOps {
 public:
  FailingLinkOps(std::unique_ptr<LinkOps> inner, std::string step)
      : inner_(std::move(inner)), step_(std::move(step)) {}
  Result<std::unique_ptr<LinkSession>> open_host() override { return wrap(inner_->open_host()); }
  Result<std::unique_ptr<LinkSession>> open_netns(const netns::NetnsHandle& ns) override {
    return wrap(inner_->open_netns(ns));
  }

 private:
  Result<std::unique_ptr<LinkSession>> wrap(Result<std::unique_ptr<LinkSession>> session) {
    if (!session.ok()) {
      return session;
    }
    return std::unique_ptr<LinkSession>(
        std::make_unique<FailingSession>(std::move(*session), step_));
  }
  std::unique_ptr<LinkOps> inner_;
  std::string step_;
};

// An IPAM whose ADD fails (the reservation is never made); other verbs pass through.
class FailingIpamAdd final : public cni::Plugin {
 public:
  explicit FailingIpamAdd(std::unique_ptr<cni::Plugin> inner) : inner_(std::move(inner)) {}
  Result<cni::CniResult> add(const cni::Request&) override {
    return Error(ErrorCode::kIpamFailure, "injected failure at step ipam");
  }
  Status del(const cni::Request& r) override { return inner_->del(r); }
  Status check(const cni::Request& r) override { return inner_->check(r); }
  Status gc(const cni::Request& r, const std::optional<std::vector<cni::Attachment>>& v) override {
    return inner_->gc(r, v);
  }
  Status status(const cni::Request& r) override { return inner_->status(r); }

 private:
  std::unique_ptr<cni::Plugin> inner_;
};

}  // namespace
}  // namespace ipoib::plugin

int main(int argc, char** argv) {
  using namespace ipoib;
  using namespace ipoib::plugin;
  if (argc > 1 && (std::string_view(argv[1]) == "--version" || std::string_view(argv[1]) == "-v")) {
    std::printf(
        "ipoib-testkind %s (test build: macvlan stand-in kind, never installed)\n"
        "CNI spec versions: %s\n",
        IPOIB_VERSION, cni::supported_versions_text().c_str());
    return 0;
  }
  Logger log;
  const char* fail = std::getenv("IPOIB_TEST_FAIL_STEP");
  const std::string step = fail != nullptr ? fail : "";

  PluginSeams seams;
  seams.kind = std::make_unique<MacvlanKind>();
  seams.links = make_kernel_link_ops();
  seams.ipam = default_ipam_factory(log);
  if (const char* dir = std::getenv("IPOIB_TEST_INTENT_DIR"); dir != nullptr && *dir != '\0') {
    seams.intent_dir = dir;
  }
  if (!step.empty() && step != "ipam") {
    seams.links = std::make_unique<FailingLinkOps>(std::move(seams.links), step);
  }
  if (step == "ipam") {
    seams.ipam = [inner = std::move(seams.ipam)](
                     const IpamSection& s,
                     const cni::Request& r) -> Result<std::unique_ptr<cni::Plugin>> {
      IPOIB_TRY_ASSIGN(std::unique_ptr<cni::Plugin> real, inner(s, r));
      return std::unique_ptr<cni::Plugin>(std::make_unique<FailingIpamAdd>(std::move(real)));
    };
  }
  auto plugin = make_plugin(std::move(seams), log);
  return cni::run_plugin(*plugin, cni::real_process_io(), log);
}
