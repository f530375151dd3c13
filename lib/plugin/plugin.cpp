// The ipoib CNI plugin: composes the config parser, the child kind, the link operations and the
// IPAM into ADD, DEL, CHECK, GC and STATUS. This is the deciding layer: it logs; the modules
// below it return errors. Each verb reads as a list of named steps; what DEL and GC delete is
// decided by the pure functions of collect.h.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <utility>

#include "ipoib/cni/result.h"
#include "ipoib/ib/port.h"
#include "ipoib/ipam/ipam.h"
#include "ipoib/netlink/message.h"
#include "ipoib/plugin/collect.h"
#include "ipoib/plugin/delegate.h"
#include "ipoib/plugin/intent.h"
#include "ipoib/plugin/ipoib_plugin.h"
#include "ipoib/plugin/tag.h"
#include "undo.h"

namespace ipoib::plugin {
namespace {

using netlink::LinkInfo;

std::string format_mac(const netlink::Bytes& hw) {
  std::string out;
  char byte[4];
  for (std::size_t i = 0; i < hw.size(); ++i) {
    (void)std::snprintf(byte, sizeof byte, i == 0 ? "%02x" : ":%02x", hw[i]);
    out += byte;
  }
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

template <class T>
Status as_status(Result<T> r) {
  if (!r.ok()) {
    return std::move(r).error();
  }
  return ok_status();
}

// Keeps the first error, logs the later ones (DEL and GC go on after a failure).
class FirstError {
 public:
  explicit FirstError(Logger& log) : log_(log) {}
  void add(Status s, std::string_view what) {
    if (s.ok()) {
      return;
    }
    Error e = std::move(s).error().with_context(what);
    if (first_) {
      log_.error(e.msg());
    } else {
      first_ = std::move(e);
    }
  }
  [[nodiscard]] bool failed() const { return first_.has_value(); }
  Status result() && {
    if (first_) {
      return std::move(*first_);
    }
    return ok_status();
  }

 private:
  Logger& log_;
  std::optional<Error> first_;
};

// How one attachment's child is recognised: its tag once tagged, its temporary name (with the
// intent recorded for it) before.
struct AttachmentIdentity {
  AttachmentRef ref;  // network + (container ID, ifname)
  std::string tag;
  std::string temporary_name;
};

AttachmentIdentity identify(const cni::Request& req) {
  const cni::Environment& env = req.env;
  return {{req.conf.name, {env.container_id, env.ifname}},
          child_tag(req.conf.name, env.container_id, env.ifname),
          temporary_child_name(env.container_id, env.ifname)};
}

// Network names up to this length always leave room in the tag for a container ID of 100 bytes
// and any ifname (the IPAM limits them the same way: ipam::is_valid_network_name).
constexpr std::size_t kMaxTaggedNetworkName = 128;

// What an IPoIB child cannot honour, refused rather than ignored (the pod would otherwise run with
// another identity than the one it asked for). Its link-layer address is 20 bytes — flags and
// QPN, then the port GID — given by the HCA driver when the child is created, so an Ethernet MAC
// (CNI_ARGS MAC, the `mac` capability, args.cni.mac) has nothing to set. A child shares its
// parent port's GID, so a per-pod InfiniBand GUID (`infinibandGUID`: Multus' infiniband-guid)
// needs an SR-IOV virtual function and its own plugin, not an IPoIB child.
Status refuse_unsettable_identity(const cni::Request& req) {
  if (auto mac = req.env.args.get("MAC"); mac && !mac->empty()) {
    return Error(ErrorCode::kInvalidEnvironment,
                 "CNI_ARGS MAC=" + *mac +
                     ": cannot be honoured: an IPoIB interface's 20-byte hardware address (QPN "
                     "and port GID) is assigned by the HCA, not chosen");
  }
  const nlohmann::json* args_cni = nullptr;
  if (auto a = req.conf.raw.find("args"); a != req.conf.raw.end() && a->is_object()) {
    if (auto c = a->find("cni"); c != a->end() && c->is_object()) {
      args_cni = &*c;
    }
  }
  struct Key {
    const char* name;
    const char* why;
  };
  for (const Key& k :
       {Key{"mac",
            "an IPoIB interface's 20-byte hardware address (QPN and port GID) is assigned "
            "by the HCA, not chosen"},
        Key{"infinibandGUID",
            "an IPoIB child shares its parent port's GUID; a GUID per pod needs "
            "an SR-IOV virtual function (ib-sriov-cni), not an IPoIB child"}}) {
    for (const auto& [where, obj] :
         {std::pair<std::string, const nlohmann::json*>{"runtimeConfig.", &req.conf.runtime_config},
          std::pair<std::string, const nlohmann::json*>{"args.cni.", args_cni}}) {
      if (obj != nullptr && obj->is_object() && obj->contains(k.name) &&
          !(*obj)[k.name].is_null()) {
        return Error(ErrorCode::kInvalidNetworkConfig,
                     where + k.name + ": cannot be honoured: " + k.why);
      }
    }
  }
  return ok_status();
}

// ADD only: the kernel refuses an alias longer than IFALIASZ - 1. (DEL and CHECK just compare.)
Status require_taggable(const AttachmentIdentity& id) {
  if (id.tag.size() <= netlink::kMaxAliasLength) {
    return ok_status();
  }
  const std::string sizes = " (" + std::to_string(id.tag.size()) + " > " +
                            std::to_string(netlink::kMaxAliasLength) + " bytes)";
  if (id.ref.network.size() > kMaxTaggedNetworkName) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "name: a network name of " + std::to_string(id.ref.network.size()) +
                     " bytes (at most " + std::to_string(kMaxTaggedNetworkName) +
                     ") is too long to tag the interface" + sizes);
  }
  return Error(ErrorCode::kInvalidEnvironment,
               "CNI_CONTAINERID: with the network name, too long to tag the interface" + sizes);
}

ChildOwner owner_of(const AttachmentRef& ref) { return {ref.network, ref.attachment}; }

Result<LinkInfo> find_master(LinkSession& host, const std::string& master) {
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> link, host.link_by_name(master));
  if (!link) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "master: " + master + " does not exist in the host network namespace");
  }
  return std::move(*link);
}

Error ifname_taken(const cni::Environment& env) {
  return Error(ErrorCode::kInvalidEnvironment,
               "CNI_IFNAME: an interface named " + env.ifname + " already exists in " + env.netns);
}

// The child being created, for the undo step: it lives in the pod from its creation on.
struct CreatedChild {
  int ifindex = 0;   // in the pod; 0 until read back
  std::string name;  // its current name there
};

netlink::RouteSpec route_spec(const cni::Route& route, int ifindex) {
  netlink::RouteSpec rs;
  rs.destination = route.dst;
  rs.gateway = route.gw;
  rs.ifindex = ifindex;
  if (route.priority) {
    rs.metric = static_cast<std::uint32_t>(*route.priority);
  }
  if (route.mtu) {
    rs.mtu_bytes = static_cast<std::uint32_t>(*route.mtu);
  }
  if (route.table) {
    rs.table = static_cast<std::uint32_t>(*route.table);
  }
  return rs;
}

bool has_family(const std::vector<cni::IpConfig>& ips, bool v4) {
  return std::any_of(ips.begin(), ips.end(),
                     [v4](const cni::IpConfig& ip) { return ip.address.address().is_v4() == v4; });
}

class IpoibPlugin final : public cni::Plugin {
 public:
  IpoibPlugin(PluginSeams seams, Logger& log)
      : seams_(std::move(seams)), intents_(seams_.intent_dir), log_(log) {}

  Result<cni::CniResult> add(const cni::Request& req) override;
  Status del(const cni::Request& req) override;
  Status check(const cni::Request& req) override;
  Status gc(const cni::Request& req,
            const std::optional<std::vector<cni::Attachment>>& valid) override;
  Status status(const cni::Request& req) override;

 private:
  Result<std::unique_ptr<cni::Plugin>> make_ipam(const IpamSection& section,
                                                 const cni::Request& req) const {
    auto ipam = seams_.ipam(section, req);
    if (!ipam.ok()) {
      return std::move(ipam).error().with_context("ipam " + section.type);
    }
    return ipam;
  }

  // ADD, step 1: the child, created in the pod under its temporary name (after its intent is
  // recorded), tagged and renamed to CNI_IFNAME. Pushes its undo steps.
  Status create_child(const cni::Request& req, const AttachmentIdentity& id, const ChildSpec& spec,
                      const std::string& master, LinkSession& host, LinkSession& pod,
                      const netns::NetnsHandle& pod_ns, CreatedChild& child, UndoStack& undo);
  Status create_link_replacing_stale(const cni::Request& req, const AttachmentIdentity& id,
                                     const std::optional<ChildOwner>& earlier_intent,
                                     netlink::ByteView request, LinkSession& host,
                                     LinkSession& pod);
  Status rename_child(const cni::Environment& env, LinkSession& pod, CreatedChild& child);
  // ADD, step 3: MTU, addresses and routes on the child (brought up before the routes).
  Status configure_addresses_and_routes(const cni::Environment& env, LinkSession& pod, int ifindex,
                                        const ChildSpec& spec, const cni::CniResult& ipam_result);
  // ADD, step 4: the result, from the link as the kernel now reports it.
  Result<cni::CniResult> build_result(const cni::Request& req, LinkSession& pod, int ifindex,
                                      cni::CniResult ipam_result);

  // CHECK steps.
  Status verify_link(const cni::Request& req, const AttachmentIdentity& id, const LinkInfo& link,
                     const LinkInfo& master, const ChildSpec& spec,
                     const cni::Interface& expected) const;
  static Status verify_addresses(const cni::Environment& env, LinkSession& pod, int ifindex,
                                 const cni::CniResult& prev, int our_index);
  static Status verify_routes(const cni::Environment& env, LinkSession& pod,
                              const cni::CniResult& prev);

  // DEL: the attachment's links in one netns (links_to_delete_for).
  Status delete_attachment_links(LinkSession& session, const AttachmentIdentity& id,
                                 const std::optional<ChildOwner>& intent, std::string_view where);
  // GC: this network's garbage children in the host netns (select_gc_deletions).
  Status collect_garbage_children(const IpoibConfig& cfg, std::string_view network,
                                  const std::vector<cni::Attachment>& valid);

  PluginSeams seams_;
  IntentDirectory intents_;
  Logger& log_;
};

Result<cni::CniResult> IpoibPlugin::add(const cni::Request& req) {
  const cni::Environment& env = req.env;
  // 0. Everything that changes nothing, config errors first: the whole config (IPAM section
  // included), the marks, the IPAM (a delegate is resolved now), the master, the pod netns.
  IPOIB_TRY_ASSIGN(IpoibConfig cfg, validate_network_config(req.conf, seams_.ipam_sources));
  const AttachmentIdentity id = identify(req);
  IPOIB_TRY(require_taggable(id));
  IPOIB_TRY(refuse_unsettable_identity(req));
  std::unique_ptr<cni::Plugin> ipam;
  if (cfg.ipam.kind != IpamKind::kNone) {
    IPOIB_TRY_ASSIGN(ipam, make_ipam(cfg.ipam, req));
  }
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> host, seams_.links->open_host());
  IPOIB_TRY_ASSIGN(LinkInfo master, find_master(*host, cfg.master));
  IPOIB_TRY(seams_.kind->validate_master(master));
  IPOIB_TRY_ASSIGN(ParentFacts facts, seams_.kind->parent_facts(master));
  IPOIB_TRY_ASSIGN(ChildSpec spec, resolve_child_spec(cfg, facts));
  IPOIB_TRY_ASSIGN(netns::NetnsHandle pod_ns, netns::NetnsHandle::open(env.netns));
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> pod, seams_.links->open_netns(pod_ns));
  {
    IPOIB_TRY_ASSIGN(std::optional<LinkInfo> existing, pod->link_by_name(env.ifname));
    if (existing) {
      return ifname_taken(env);
    }
  }

  // From here on every step that changes something pushes its undo; `undo` is declared after
  // the sessions, the IPAM and the child it uses, so it unwinds before they are destroyed.
  CreatedChild child;
  UndoStack undo(log_);
  // 1. The child.
  IPOIB_TRY(create_child(req, id, spec, cfg.master, *host, *pod, pod_ns, child, undo));
  // 2. Its addresses.
  cni::CniResult ipam_result;
  if (ipam) {
    auto reserved = ipam->add(req);
    if (!reserved.ok()) {
      return std::move(reserved).error().with_context("ipam " + cfg.ipam.type);
    }
    ipam_result = std::move(*reserved);
    undo.push("release the IPAM reservation", [&]() -> Status { return ipam->del(req); });
  }
  // 3. Configure the link.
  IPOIB_TRY(configure_addresses_and_routes(env, *pod, child.ifindex, spec, ipam_result));
  // 4. The result.
  IPOIB_TRY_ASSIGN(cni::CniResult result,
                   build_result(req, *pod, child.ifindex, std::move(ipam_result)));
  undo.commit();
  log_.info("ADD " + env.container_id + "/" + env.ifname + ": " + std::string(seams_.kind->name()) +
            " child of " + cfg.master + " pkey " + format_pkey(spec.pkey) + " " +
            std::string(to_string(spec.mode)) + " mtu " +
            std::to_string(result.interfaces[0].mtu.value_or(spec.mtu_bytes)));
  return result;
}

Status IpoibPlugin::create_child(const cni::Request& req, const AttachmentIdentity& id,
                                 const ChildSpec& spec, const std::string& master,
                                 LinkSession& host, LinkSession& pod,
                                 const netns::NetnsHandle& pod_ns, CreatedChild& child,
                                 UndoStack& undo) {
  const cni::Environment& env = req.env;
  const std::string& tmp = id.temporary_name;
  // The intent, durable before the child exists: until it is tagged, the intent is the only
  // proof that a link of that name is ours. An intent already there is an interrupted ADD's.
  const std::optional<ChildOwner> earlier_intent = intents_.lookup(tmp);
  IPOIB_TRY_CTX(intents_.record(tmp, owner_of(id.ref)), "record the intent to create " + tmp);
  undo.push("remove the intent for " + tmp, [this, tmp]() { return intents_.remove(tmp); });

  // Created directly inside the pod under the attachment's temporary name. The parent is
  // resolved in the host socket's netns, the child registered in the pod's (IFLA_NET_NS_FD; see
  // IpoibKind::build_create_request): one request, no separate move and no RCU grace period for
  // it. The child never lives in the host netns, so a concurrent GC (which only looks there)
  // cannot take it; it can only come back there as a refund.
  IPOIB_TRY_ASSIGN(netlink::Bytes request,
                   seams_.kind->build_create_request(spec, tmp, pod_ns.fd()));
  // Pushed before the request: a create may take effect although its reply says otherwise (or
  // never arrives). Until the index is known the child is found by its name in the pod, and
  // deleted only when it is the untagged child our intent names.
  child = {0, tmp};
  const std::string_view kind = seams_.kind->name();
  undo.push("delete the child", [&child, &pod, &id, kind]() -> Status {
    if (child.ifindex == 0 && child.name.empty()) {
      return ok_status();
    }
    if (child.ifindex == 0) {
      IPOIB_TRY_ASSIGN(std::optional<LinkInfo> found, pod.link_by_name(child.name));
      if (!found || found->kind != kind ||
          !is_intended_untagged_child(*found, id.ref, owner_of(id.ref))) {
        return ok_status();
      }
      child.ifindex = found->ifindex;
    }
    return as_status(pod.delete_link(child.ifindex));
  });
  Status created = create_link_replacing_stale(req, id, earlier_intent, request, host, pod);
  if (!created.ok() && netlink::kernel_errno(created.error()) == EEXIST) {
    child = {};  // refused because the name is taken: what has it is not ours to delete
  }
  if (!created.ok()) {
    return std::move(created).error().with_context("create " + std::string(kind) + " child of " +
                                                   master + " in " + env.netns);
  }
  {
    // An ifindex is per netns: read the child back where it lives.
    IPOIB_TRY_ASSIGN(std::optional<LinkInfo> made, pod.link_by_name(tmp));
    if (!made) {
      return Error(ErrorCode::kNetlinkFailure, tmp + " vanished from " + env.netns);
    }
    child.ifindex = made->ifindex;
  }
  // Tagged: from here on the tag is the mark DEL and GC rely on, and the intent is done.
  IPOIB_TRY_CTX(pod.set_alias(child.ifindex, id.tag), "tag " + tmp);
  if (Status removed = intents_.remove(tmp); !removed.ok()) {
    log_.warning(removed.error().msg());  // harmless: it names only this attachment's name
  }
  return rename_child(env, pod, child);
}

Status IpoibPlugin::create_link_replacing_stale(const cni::Request& req,
                                                const AttachmentIdentity& id,
                                                const std::optional<ChildOwner>& earlier_intent,
                                                netlink::ByteView request, LinkSession& host,
                                                LinkSession& pod) {
  Status created = host.create_link(request);
  if (created.ok() || netlink::kernel_errno(created.error()) != EEXIST) {
    return created;
  }
  // The name is this attachment's. A previous ADD of it was interrupted before the rename (the
  // runtime retries ADD after a failure; CNI forbids parallel ADDs of one attachment): its child
  // is garbage when it carries our tag, or no tag and the earlier intent names it. Anything else
  // of that name is left alone and the ADD fails.
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> stale, pod.link_by_name(id.temporary_name));
  if (!stale || stale->kind != seams_.kind->name() ||
      (!is_tagged_for_attachment(stale->alias, id.ref.network, id.ref.attachment) &&
       !is_intended_untagged_child(*stale, id.ref, earlier_intent))) {
    return created;
  }
  log_.info("deleting " + id.temporary_name + " left in " + req.env.netns +
            " by an interrupted ADD");
  IPOIB_TRY_CTX(as_status(pod.delete_link(stale->ifindex)), "delete stale " + id.temporary_name);
  return host.create_link(request);
}

Status IpoibPlugin::rename_child(const cni::Environment& env, LinkSession& pod,
                                 CreatedChild& child) {
  Status renamed = pod.rename_link(child.ifindex, env.ifname);
  if (!renamed.ok()) {
    if (netlink::kernel_errno(renamed.error()) == EEXIST) {
      return ifname_taken(env);
    }
    return std::move(renamed).error().with_context("rename " + child.name + " to " + env.ifname);
  }
  // The kernel expands name templates ("net%d") and may have changed the name in other ways:
  // the result must name the interface the pod has, so read it back.
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> now, pod.link_by_index(child.ifindex));
  if (!now) {
    return Error(ErrorCode::kNetlinkFailure, env.ifname + " vanished from " + env.netns);
  }
  child.name = now->name;
  if (now->name != env.ifname) {
    return Error(ErrorCode::kInvalidEnvironment,
                 "CNI_IFNAME: the kernel named the interface " + now->name + ", not " + env.ifname);
  }
  return ok_status();
}

Status IpoibPlugin::configure_addresses_and_routes(const cni::Environment& env, LinkSession& pod,
                                                   int ifindex, const ChildSpec& spec,
                                                   const cni::CniResult& ipam_result) {
  IPOIB_TRY_CTX(pod.set_mtu(ifindex, spec.mtu_bytes),
                "set MTU " + std::to_string(spec.mtu_bytes) + " on " + env.ifname);
  if (has_family(ipam_result.ips, /*v4=*/false)) {
    IPOIB_TRY_CTX(pod.enable_ipv6(env.ifname), "enable IPv6 on " + env.ifname);
  }
  for (const cni::IpConfig& ip : ipam_result.ips) {
    IPOIB_TRY_CTX(pod.add_address(ifindex, ip.address),
                  "add address " + ip.address.to_string() + " to " + env.ifname);
  }
  if (has_family(ipam_result.ips, /*v4=*/true)) {
    // Neighbours learn the new addresses when the link comes up rather than after their ARP
    // entries expire; the kernel sends the gratuitous ARP (link_ops.h). A lost announcement
    // only delays that, so it is not worth failing the ADD.
    Status notify = pod.enable_arp_notify(env.ifname);
    if (!notify.ok()) {
      log_.warning("gratuitous ARP on " + env.ifname + " not enabled: " + notify.error().msg());
    }
  }
  // Up before routes: fib_check_nh() refuses a nexthop through a link that is down.
  IPOIB_TRY_CTX(pod.set_up(ifindex), "set " + env.ifname + " up");
  for (const cni::Route& route : ipam_result.routes) {
    IPOIB_TRY_CTX(pod.add_route(route_spec(route, ifindex)),
                  "add route " + route.dst.to_string() + " via " +
                      (route.gw ? route.gw->to_string() : env.ifname));
  }
  return ok_status();
}

Result<cni::CniResult> IpoibPlugin::build_result(const cni::Request& req, LinkSession& pod,
                                                 int ifindex, cni::CniResult ipam_result) {
  const cni::Environment& env = req.env;
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> link, pod.link_by_index(ifindex));
  if (!link) {
    return Error(ErrorCode::kNetlinkFailure, env.ifname + " vanished from " + env.netns);
  }
  const ArpHardware hw = seams_.kind->arp_hardware();
  if (link->hw_address.size() != hw.address_length) {
    log_.warning(env.ifname + " has a " + std::to_string(link->hw_address.size()) +
                 "-byte hardware address, expected " + std::to_string(hw.address_length));
  }
  cni::CniResult result;
  result.interfaces.push_back({.name = link->name,
                               .mac = format_mac(link->hw_address),
                               .mtu = static_cast<int>(link->mtu),
                               .sandbox = env.netns,
                               .socket_path = {},
                               .pci_id = {}});
  for (cni::IpConfig ip : ipam_result.ips) {
    ip.interface = 0;
    result.ips.push_back(ip);
  }
  result.routes = std::move(ipam_result.routes);
  result.dns = std::move(ipam_result.dns);
  // A result the requested version cannot express (0.1.0/0.2.0 without an address) would fail
  // after this function returned, leaving the attachment behind: fail here and roll back.
  IPOIB_TRY(as_status(cni::encode_result(result, req.conf.version)));
  return result;
}

Status IpoibPlugin::del(const cni::Request& req) {
  const cni::Environment& env = req.env;
  // Only the IPAM section: DEL must work when the master is gone or the rest no longer parses.
  IPOIB_TRY_ASSIGN(IpamSection section, parse_ipam_section(req.conf.raw));
  const AttachmentIdentity id = identify(req);
  const std::optional<ChildOwner> intent = intents_.lookup(id.temporary_name);
  FirstError errors(log_);

  // The child in the pod (deleting it also removes its addresses and routes).
  if (!env.netns.empty()) {
    auto pod_ns = netns::NetnsHandle::open_if_exists(env.netns);
    if (!pod_ns.ok()) {
      errors.add(std::move(pod_ns).error(), "open " + env.netns);
    } else if (*pod_ns) {
      auto pod = seams_.links->open_netns(**pod_ns);
      if (!pod.ok()) {
        errors.add(std::move(pod).error(), "enter " + env.netns);
      } else {
        errors.add(delete_attachment_links(**pod, id, intent, "pod"), "delete " + env.ifname);
      }
    } else {
      log_.debug("DEL: " + env.netns + " is gone (or is not a network namespace)");
    }
  }
  // A child refunded to the host when its netns was destroyed without DEL (netns_refund), or
  // one an interrupted ADD left there under its temporary name.
  {
    auto host = seams_.links->open_host();
    if (!host.ok()) {
      errors.add(std::move(host).error(), "host netns");
    } else {
      errors.add(delete_attachment_links(**host, id, intent, "host"), "delete refunded child");
    }
  }
  // The intent proved an untagged child ours; once the links are gone it has done its work.
  // Kept when a deletion failed, so that the next DEL can still prove it.
  // (An interrupted record() leaves only its temporary file: removed as well.)
  if ((!intent || intent->network == id.ref.network) && !errors.failed()) {
    Status removed = intents_.remove(id.temporary_name);
    errors.add(removed, "DEL");
  }
  // The reservation, last: the address stays unusable for others until the link is gone.
  if (section.kind != IpamKind::kNone) {
    auto ipam = make_ipam(section, req);
    if (!ipam.ok()) {
      errors.add(std::move(ipam).error(), "DEL");
    } else {
      errors.add((*ipam)->del(req), "ipam " + section.type);
    }
  }
  return std::move(errors).result();
}

Status IpoibPlugin::delete_attachment_links(LinkSession& session, const AttachmentIdentity& id,
                                            const std::optional<ChildOwner>& intent,
                                            std::string_view where) {
  IPOIB_TRY_ASSIGN(auto links, session.links_of_kind(seams_.kind->name()));
  for (const LinkInfo& link : links_to_delete_for(links, id.ref, intent)) {
    IPOIB_TRY_ASSIGN(netlink::DeleteOutcome outcome, session.delete_link(link.ifindex));
    if (outcome == netlink::DeleteOutcome::kDeleted) {
      log_.info("deleted " + link.name + " (" + (link.alias.empty() ? "untagged" : link.alias) +
                ") in the " + std::string(where) + " netns");
    }
  }
  return ok_status();
}

Status IpoibPlugin::check(const cni::Request& req) {
  const cni::Environment& env = req.env;
  IPOIB_TRY_ASSIGN(IpoibConfig cfg, validate_network_config(req.conf, seams_.ipam_sources));
  if (!req.conf.prev_result) {
    return Error(ErrorCode::kCheckFailed,
                 "prevResult: absent: the runtime has no cached result for attachment " +
                     env.container_id + "/" + env.ifname + " of network " + req.conf.name +
                     " (gone after GC or a runtime state reset), so there is nothing to check "
                     "the interface against");
  }
  const cni::CniResult& prev = *req.conf.prev_result;
  const AttachmentIdentity id = identify(req);
  std::unique_ptr<cni::Plugin> ipam;
  if (cfg.ipam.kind != IpamKind::kNone) {
    IPOIB_TRY_ASSIGN(ipam, make_ipam(cfg.ipam, req));
  }

  // Host side first: sysfs (IB port) answers only there.
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> host, seams_.links->open_host());
  IPOIB_TRY_ASSIGN(LinkInfo master, find_master(*host, cfg.master));
  IPOIB_TRY_ASSIGN(ParentFacts facts, seams_.kind->parent_facts(master));
  IPOIB_TRY_ASSIGN(ChildSpec spec, resolve_child_spec(cfg, facts));

  // prevResult must describe our interface.
  std::optional<int> our_index;
  for (std::size_t i = 0; i < prev.interfaces.size(); ++i) {
    const cni::Interface& itf = prev.interfaces[i];
    if (itf.name == env.ifname && (itf.sandbox.empty() || itf.sandbox == env.netns)) {
      our_index = static_cast<int>(i);
      break;
    }
  }
  if (!our_index) {
    return Error(ErrorCode::kCheckFailed,
                 "prevResult has no interface " + env.ifname + " in " + env.netns);
  }

  IPOIB_TRY_ASSIGN(netns::NetnsHandle pod_ns, netns::NetnsHandle::open(env.netns));
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> pod, seams_.links->open_netns(pod_ns));
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> link, pod->link_by_name(env.ifname));
  if (!link) {
    return Error(ErrorCode::kCheckFailed, env.ifname + " does not exist in " + env.netns);
  }
  IPOIB_TRY(verify_link(req, id, *link, master, spec,
                        prev.interfaces[static_cast<std::size_t>(*our_index)]));
  IPOIB_TRY(verify_addresses(env, *pod, link->ifindex, prev, *our_index));
  IPOIB_TRY(verify_routes(env, *pod, prev));
  if (ipam) {
    IPOIB_TRY_CTX(ipam->check(req), "ipam " + cfg.ipam.type);
  }
  return ok_status();
}

Status IpoibPlugin::verify_link(const cni::Request& req, const AttachmentIdentity& id,
                                const LinkInfo& link, const LinkInfo& master, const ChildSpec& spec,
                                const cni::Interface& expected) const {
  const cni::Environment& env = req.env;
  if (!is_tagged_for_attachment(link.alias, id.ref.network, id.ref.attachment)) {
    return Error(ErrorCode::kCheckFailed, env.ifname + " in " + env.netns +
                                              " was not created by this plugin for " +
                                              env.container_id + " (alias \"" + link.alias + "\")");
  }
  IPOIB_TRY(seams_.kind->verify_child(link, spec));
  if (!expected.mac.empty() && lower(expected.mac) != format_mac(link.hw_address)) {
    return Error(ErrorCode::kCheckFailed, env.ifname + " has hardware address " +
                                              format_mac(link.hw_address) + ", prevResult " +
                                              expected.mac);
  }
  const int want_mtu = expected.mtu.value_or(spec.mtu_bytes);
  if (static_cast<int>(link.mtu) != want_mtu) {
    return Error(ErrorCode::kCheckFailed, env.ifname + " has MTU " + std::to_string(link.mtu) +
                                              ", expected " + std::to_string(want_mtu));
  }
  if (link.admin_state() != netlink::AdminState::kUp) {
    return Error(ErrorCode::kCheckFailed, env.ifname + " is down");
  }
  if (link.carrier == netlink::Carrier::kDown ||
      link.operstate == netlink::OperState::kLowerLayerDown) {
    std::string why = seams_.kind->explain_carrier_down(master, spec);
    return Error(ErrorCode::kCheckFailed,
                 env.ifname + " has no carrier (operstate " +
                     std::string(netlink::to_string(link.operstate)) + ")" +
                     (why.empty() ? std::string(": the partition's broadcast group is not joined "
                                                "(yet)")
                                  : ": " + why));
  }
  return ok_status();
}

Status IpoibPlugin::verify_addresses(const cni::Environment& env, LinkSession& pod, int ifindex,
                                     const cni::CniResult& prev, int our_index) {
  IPOIB_TRY_ASSIGN(std::vector<netlink::AddressInfo> addrs, pod.addresses(ifindex));
  for (const cni::IpConfig& ip : prev.ips) {
    if (ip.interface && *ip.interface != our_index) {
      continue;
    }
    const bool found = std::any_of(addrs.begin(), addrs.end(), [&](const netlink::AddressInfo& a) {
      return a.prefix.address() == ip.address.address() && a.prefix.length() == ip.address.length();
    });
    if (!found) {
      return Error(ErrorCode::kCheckFailed,
                   env.ifname + " lacks address " + ip.address.to_string());
    }
  }
  return ok_status();
}

Status IpoibPlugin::verify_routes(const cni::Environment& env, LinkSession& pod,
                                  const cni::CniResult& prev) {
  for (const cni::Route& route : prev.routes) {
    IPOIB_TRY_ASSIGN(std::vector<netlink::RouteInfo> routes, pod.routes(route.dst.family()));
    const bool found = std::any_of(routes.begin(), routes.end(), [&](const netlink::RouteInfo& r) {
      return r.destination.network() == route.dst.network() &&
             (!route.gw || r.gateway == route.gw) &&
             (!route.table || r.table == static_cast<std::uint32_t>(*route.table));
    });
    if (!found) {
      return Error(ErrorCode::kCheckFailed,
                   env.netns + " lacks route " + route.dst.to_string() +
                       (route.gw ? " via " + route.gw->to_string() : std::string()));
    }
  }
  return ok_status();
}

Status IpoibPlugin::gc(const cni::Request& req,
                       const std::optional<std::vector<cni::Attachment>>& valid) {
  IPOIB_TRY_ASSIGN(IpoibConfig cfg, validate_network_config(req.conf, seams_.ipam_sources));
  FirstError errors(log_);
  // Without a valid list there is no information: destroy nothing (CNI SPEC.md GC).
  if (valid) {
    errors.add(collect_garbage_children(cfg, req.conf.name, *valid), "GC");
  }
  if (cfg.ipam.kind != IpamKind::kNone) {
    auto ipam = make_ipam(cfg.ipam, req);
    if (!ipam.ok()) {
      errors.add(std::move(ipam).error(), "GC");
    } else {
      errors.add((*ipam)->gc(req, valid), "ipam " + cfg.ipam.type);
    }
  }
  return std::move(errors).result();
}

Status IpoibPlugin::collect_garbage_children(const IpoibConfig& cfg, std::string_view network,
                                             const std::vector<cni::Attachment>& valid) {
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> host, seams_.links->open_host());
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> master, host->link_by_name(cfg.master));
  if (!master) {
    return ok_status();  // no master, no children of it
  }
  IPOIB_TRY_ASSIGN(std::vector<LinkInfo> links, host->links_of_kind(seams_.kind->name()));
  std::map<std::string, ChildOwner, std::less<>> intents;
  for (const LinkInfo& link : links) {
    if (link.alias.empty()) {
      if (auto intent = intents_.lookup(link.name)) {
        intents.emplace(link.name, std::move(*intent));
      }
    }
  }
  FirstError errors(log_);
  for (const LinkInfo& link :
       select_gc_deletions({links, master->ifindex, network, valid, intents})) {
    auto deleted = host->delete_link(link.ifindex);
    if (deleted.ok()) {
      log_.info("GC: deleted " + link.name + " (" +
                (link.alias.empty() ? "untagged, intent recorded" : link.alias) + ")");
      if (intents.count(link.name) != 0) {
        errors.add(intents_.remove(link.name), "remove intent");
      }
    }
    errors.add(as_status(std::move(deleted)), "delete " + link.name);
  }
  return std::move(errors).result();
}

Status IpoibPlugin::status(const cni::Request& req) {
  IPOIB_TRY_ASSIGN(IpoibConfig cfg, validate_network_config(req.conf, seams_.ipam_sources));
  std::unique_ptr<cni::Plugin> ipam;
  if (cfg.ipam.kind != IpamKind::kNone) {
    IPOIB_TRY_ASSIGN(ipam, make_ipam(cfg.ipam, req));
  }
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> host, seams_.links->open_host());
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> master, host->link_by_name(cfg.master));
  if (!master) {
    return Error(ErrorCode::kNotAvailable, "master " + cfg.master + " does not exist");
  }
  IPOIB_TRY(seams_.kind->master_ready(*master));
  if (ipam) {
    IPOIB_TRY_CTX(ipam->status(req), "ipam " + cfg.ipam.type);
  }
  return ok_status();
}

}  // namespace

IpamFactory default_ipam_factory(Logger& log) {
  return [&log](const IpamSection& section,
                const cni::Request& req) -> Result<std::unique_ptr<cni::Plugin>> {
    if (section.kind == IpamKind::kBuiltin) {
      return ipam::make_builtin_ipam(log);
    }
    std::vector<std::string> environment = process_environment();
    // Every verb but DEL resolves the delegate up front: a missing or recursive one is a
    // config error before anything is changed. DEL resolves it when it runs (and succeeds
    // without running one that would recurse).
    if (req.env.command != cni::Command::kDel) {
      IPOIB_TRY(as_status(resolve_delegate(section.type, req.env.path, environment)));
    }
    return make_delegated_ipam(section.type, std::move(environment), real_exec());
  };
}

std::unique_ptr<cni::Plugin> make_plugin(PluginSeams seams, Logger& log) {
  return std::make_unique<IpoibPlugin>(std::move(seams), log);
}

std::unique_ptr<cni::Plugin> make_ipoib_plugin(Logger& log) {
  PluginSeams seams;
  seams.kind = make_ipoib_kind(ib::make_system_port_query());
  seams.links = make_kernel_link_ops();
  seams.ipam = default_ipam_factory(log);
  return make_plugin(std::move(seams), log);
}

}  // namespace ipoib::plugin
