// fake_kernel.h — an in-memory stand-in for the link operations (link_ops.h) and a child kind,
// so the plugin's decisions (ADD's rollback at every step, what DEL and GC delete) are tested
// without root. It models what the plugin relies on: names unique per netns, EEXIST, the
// kernel's expansion of "%d" on rename, links created in the netns the request names.
#pragma once

#include <linux/if.h>

#include <cerrno>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ipoib/cni/skel.h"
#include "ipoib/netlink/message.h"
#include "ipoib/plugin/child_kind.h"
#include "ipoib/plugin/link_ops.h"

namespace fake {

using ipoib::Error;
using ipoib::ErrorCode;
using ipoib::Result;
using ipoib::Status;
using ipoib::netlink::LinkInfo;

inline constexpr std::string_view kKind = "fakekind";

struct Netns {
  std::vector<LinkInfo> links;
  std::vector<ipoib::netlink::AddressInfo> addresses;
  std::vector<ipoib::netlink::RouteInfo> routes;

  LinkInfo* by_name(std::string_view name) {
    for (auto& l : links) {
      if (l.name == name) return &l;
    }
    return nullptr;
  }
  LinkInfo* by_index(int ifindex) {
    for (auto& l : links) {
      if (l.ifindex == ifindex) return &l;
    }
    return nullptr;
  }
};

struct Kernel {
  Netns host;
  Netns pod;
  int next_ifindex = 100;
  std::string fail_step;             // the one step that fails (as ipoib-testkind's steps)
  std::vector<std::string> deleted;  // names, in order

  Kernel() {
    LinkInfo master;
    master.ifindex = 2;
    master.name = "m0";
    master.kind = "veth";
    master.flags = IFF_UP;
    master.mtu = 1500;
    host.links.push_back(master);
  }

  // A child of the master, as someone (or a killed ADD) left it.
  void plant(Netns& ns, const std::string& name, const std::string& alias,
             std::string_view kind = kKind) {
    LinkInfo l;
    l.ifindex = next_ifindex++;
    l.name = name;
    l.alias = alias;
    l.kind = std::string(kind);
    l.parent_ifindex = 2;
    ns.links.push_back(l);
  }
};

inline Error injected(std::string_view step) {
  return ipoib::netlink::kernel_error("injected failure at step " + std::string(step), EIO);
}

class Session final : public ipoib::plugin::LinkSession {
 public:
  Session(Kernel& k, Netns& ns) : k_(k), ns_(ns) {}

  // The request is the child's name (FakeKind); the child appears in the pod (IFLA_NET_NS_FD).
  Status create_link(ipoib::netlink::ByteView request) override {
    if (k_.fail_step == "create") return injected("create");
    const std::string name(request.begin(), request.end());
    if (k_.pod.by_name(name) != nullptr) {
      return ipoib::netlink::kernel_error("create link " + name, EEXIST);
    }
    k_.plant(k_.pod, name, "");
    if (k_.fail_step == "move") return injected("move");
    return {};
  }
  Status set_alias(int ifindex, std::string_view alias) override {
    if (k_.fail_step == "alias") return injected("alias");
    IPOIB_TRY_ASSIGN(LinkInfo * l, find(ifindex));
    l->alias = std::string(alias);
    return {};
  }
  Status rename_link(int ifindex, std::string_view name) override {
    if (k_.fail_step == "rename") return injected("rename");
    IPOIB_TRY_ASSIGN(LinkInfo * l, find(ifindex));
    std::string actual(name);
    // dev_get_valid_name(): a '%' makes the name a template the kernel fills in.
    if (const auto pct = actual.find("%d"); pct != std::string::npos) {
      actual.replace(pct, 2, "0");
    }
    if (ns_.by_name(actual) != nullptr) {
      return ipoib::netlink::kernel_error("rename", EEXIST);
    }
    l->name = actual;
    return {};
  }
  Status set_mtu(int ifindex, int mtu_bytes) override {
    if (k_.fail_step == "mtu") return injected("mtu");
    IPOIB_TRY_ASSIGN(LinkInfo * l, find(ifindex));
    l->mtu = static_cast<std::uint32_t>(mtu_bytes);
    return {};
  }
  Status enable_ipv6(std::string_view) override {
    if (k_.fail_step == "ipv6") return injected("ipv6");
    return {};
  }
  Status add_address(int ifindex, const ipoib::IpPrefix& prefix) override {
    if (k_.fail_step == "address") return injected("address");
    ipoib::netlink::AddressInfo a;
    a.ifindex = ifindex;
    a.prefix = prefix;
    ns_.addresses.push_back(a);
    return {};
  }
  Status add_route(const ipoib::netlink::RouteSpec& route) override {
    if (k_.fail_step == "route") return injected("route");
    ipoib::netlink::RouteInfo r;
    r.destination = route.destination;
    r.gateway = route.gateway;
    r.ifindex = route.ifindex;
    ns_.routes.push_back(r);
    return {};
  }
  Status set_up(int ifindex) override {
    if (k_.fail_step == "up") return injected("up");
    IPOIB_TRY_ASSIGN(LinkInfo * l, find(ifindex));
    l->flags |= IFF_UP;
    l->carrier = ipoib::netlink::Carrier::kUp;
    return {};
  }
  Status enable_arp_notify(std::string_view) override { return {}; }
  Result<ipoib::netlink::DeleteOutcome> delete_link(int ifindex) override {
    for (auto it = ns_.links.begin(); it != ns_.links.end(); ++it) {
      if (it->ifindex == ifindex) {
        k_.deleted.push_back(it->name);
        ns_.links.erase(it);
        // Addresses and routes go with the link.
        std::erase_if(ns_.addresses, [&](const auto& a) { return a.ifindex == ifindex; });
        std::erase_if(ns_.routes, [&](const auto& r) { return r.ifindex == ifindex; });
        return ipoib::netlink::DeleteOutcome::kDeleted;
      }
    }
    return ipoib::netlink::DeleteOutcome::kAbsent;
  }
  Result<std::optional<LinkInfo>> link_by_name(std::string_view name) override {
    const LinkInfo* l = ns_.by_name(name);
    return l ? std::optional<LinkInfo>(*l) : std::nullopt;
  }
  Result<std::optional<LinkInfo>> link_by_index(int ifindex) override {
    const LinkInfo* l = ns_.by_index(ifindex);
    return l ? std::optional<LinkInfo>(*l) : std::nullopt;
  }
  Result<std::vector<LinkInfo>> links_of_kind(std::string_view kind) override {
    std::vector<LinkInfo> out;
    for (const auto& l : ns_.links) {
      if (l.kind == kind) out.push_back(l);
    }
    return out;
  }
  Result<std::vector<ipoib::netlink::AddressInfo>> addresses(int ifindex) override {
    std::vector<ipoib::netlink::AddressInfo> out;
    for (const auto& a : ns_.addresses) {
      if (a.ifindex == ifindex) out.push_back(a);
    }
    return out;
  }
  Result<std::vector<ipoib::netlink::RouteInfo>> routes(ipoib::IpFamily family) override {
    std::vector<ipoib::netlink::RouteInfo> out;
    for (const auto& r : ns_.routes) {
      if (r.destination.family() == family) out.push_back(r);
    }
    return out;
  }

 private:
  Result<LinkInfo*> find(int ifindex) {
    LinkInfo* l = ns_.by_index(ifindex);
    if (l == nullptr) return ipoib::netlink::kernel_error("no such link", ENODEV);
    return l;
  }
  Kernel& k_;
  Netns& ns_;
};

class Ops final : public ipoib::plugin::LinkOps {
 public:
  explicit Ops(Kernel& k) : k_(k) {}
  Result<std::unique_ptr<ipoib::plugin::LinkSession>> open_host() override {
    return std::unique_ptr<ipoib::plugin::LinkSession>(std::make_unique<Session>(k_, k_.host));
  }
  Result<std::unique_ptr<ipoib::plugin::LinkSession>> open_netns(
      const ipoib::netns::NetnsHandle&) override {
    return std::unique_ptr<ipoib::plugin::LinkSession>(std::make_unique<Session>(k_, k_.pod));
  }

 private:
  Kernel& k_;
};

class Kind final : public ipoib::plugin::ChildKind {
 public:
  [[nodiscard]] std::string_view name() const override { return kKind; }
  [[nodiscard]] Status validate_master(const LinkInfo&) const override { return {}; }
  [[nodiscard]] Result<ipoib::plugin::ParentFacts> parent_facts(
      const LinkInfo& master) const override {
    ipoib::plugin::ParentFacts f;
    f.ifindex = master.ifindex;
    f.mtu_bytes = static_cast<int>(master.mtu);
    return f;
  }
  [[nodiscard]] Result<ipoib::netlink::Bytes> build_create_request(const ipoib::plugin::ChildSpec&,
                                                                   std::string_view name,
                                                                   int) const override {
    return ipoib::netlink::Bytes(name.begin(), name.end());
  }
  [[nodiscard]] Status verify_child(const LinkInfo&,
                                    const ipoib::plugin::ChildSpec&) const override {
    return {};
  }
  [[nodiscard]] ipoib::plugin::ArpHardware arp_hardware() const override { return {1, 0}; }
  [[nodiscard]] Status master_ready(const LinkInfo&) const override { return {}; }
  [[nodiscard]] std::string explain_carrier_down(const LinkInfo&,
                                                 const ipoib::plugin::ChildSpec&) const override {
    return "";
  }
};

// An IPAM holding reservations in memory: one IPv4 and one IPv6 address and a route.
class Ipam final : public ipoib::cni::Plugin {
 public:
  explicit Ipam(std::set<std::string>& reserved, bool fail_add)
      : reserved_(reserved), fail_add_(fail_add) {}
  Result<ipoib::cni::CniResult> add(const ipoib::cni::Request& req) override {
    if (fail_add_) return Error(ErrorCode::kIpamFailure, "injected failure at step ipam");
    reserved_.insert(req.env.container_id + "/" + req.env.ifname);
    ipoib::cni::CniResult r;
    r.ips.push_back({*ipoib::IpPrefix::parse("10.0.0.5/24"), std::nullopt, std::nullopt});
    r.ips.push_back({*ipoib::IpPrefix::parse("fd00::5/64"), std::nullopt, std::nullopt});
    ipoib::cni::Route route;
    route.dst = *ipoib::IpPrefix::parse("10.1.0.0/16");
    route.gw = *ipoib::IpAddress::parse("10.0.0.1");
    r.routes.push_back(route);
    return r;
  }
  Status del(const ipoib::cni::Request& req) override {
    reserved_.erase(req.env.container_id + "/" + req.env.ifname);
    return {};
  }
  Status check(const ipoib::cni::Request&) override { return {}; }
  Status gc(const ipoib::cni::Request&,
            const std::optional<std::vector<ipoib::cni::Attachment>>&) override {
    return {};
  }
  Status status(const ipoib::cni::Request&) override { return {}; }

 private:
  std::set<std::string>& reserved_;
  bool fail_add_;
};

}  // namespace fake
