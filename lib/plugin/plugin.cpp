// The ipoib CNI plugin: composes the config parser, the child kind, the link operations and the
// IPAM into ADD, DEL, CHECK, GC and STATUS. This is the deciding layer: it logs; the modules
// below it return errors.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

#include "ipoib/cni/result.h"
#include "ipoib/ib/port.h"
#include "ipoib/ipam/ipam.h"
#include "ipoib/netlink/message.h"
#include "ipoib/plugin/delegate.h"
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
    std::snprintf(byte, sizeof byte, i == 0 ? "%02x" : ":%02x", hw[i]);
    out += byte;
  }
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

Result<std::string> tag_for(const cni::Environment& env) {
  std::string tag = attachment_tag(env.container_id, env.ifname);
  if (tag.size() > netlink::kMaxAliasLength) {
    return Error(ErrorCode::kInvalidEnvironment,
                 "CNI_CONTAINERID: too long to tag the interface (" + std::to_string(tag.size()) +
                     " > " + std::to_string(netlink::kMaxAliasLength) + " bytes)");
  }
  return tag;
}

Result<LinkInfo> find_master(LinkSession& host, const std::string& master) {
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> link, host.link_by_name(master));
  if (!link) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "master: " + master + " does not exist in the host network namespace");
  }
  return std::move(*link);
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

template <class T>
Status as_status(Result<T> r) {
  if (!r.ok()) {
    return std::move(r).error();
  }
  return ok_status();
}

// The attachment's two marks: its tag, and the temporary name its child has until the rename
// (the only mark of a child whose ADD was killed between create and tag).
struct Marks {
  std::string tag;
  std::string temporary_name;
  std::string_view kind;  // the child kind's kernel name ("ipoib"; "macvlan" in test builds)
};

// A link named like the attachment's temporary child, carrying no alias (or the attachment's
// tag) and of the child kind: what a killed ADD leaves. Anything else with that name — an
// interface someone else tagged or of another kind — is not ours and is never deleted.
bool is_untagged_child_of(const LinkInfo& link, const Marks& marks) {
  return link.name == marks.temporary_name && link.kind == marks.kind &&
         (link.alias.empty() || link.alias == marks.tag);
}

// Deletes the attachment's children in the session's namespace: every link of the child kind
// carrying the tag (the child in the pod, or a refunded dev<N> in the host) and the untagged
// temporary child of a killed ADD — found in one dump. Never an interface we did not tag or name.
Status delete_ours(LinkSession& session, const Marks& marks, Logger& log, std::string_view where) {
  IPOIB_TRY_ASSIGN(auto links, session.links_of_kind(marks.kind));
  for (const LinkInfo& link : links) {
    if (link.alias != marks.tag && !is_untagged_child_of(link, marks)) {
      continue;
    }
    IPOIB_TRY_ASSIGN(netlink::DeleteOutcome outcome, session.delete_link(link.ifindex));
    if (outcome == netlink::DeleteOutcome::kDeleted) {
      log.info("deleted " + link.name + " (" + (link.alias.empty() ? "untagged" : link.alias) +
               ") in the " + std::string(where) + " netns");
    }
  }
  return ok_status();
}

class IpoibPlugin final : public cni::Plugin {
 public:
  IpoibPlugin(PluginSeams seams, Logger& log) : s_(std::move(seams)), log_(log) {}

  Result<cni::CniResult> add(const cni::Request& req) override;
  Status del(const cni::Request& req) override;
  Status check(const cni::Request& req) override;
  Status gc(const cni::Request& req,
            const std::optional<std::vector<cni::Attachment>>& valid) override;
  Status status(const cni::Request& req) override;

 private:
  Result<std::unique_ptr<cni::Plugin>> make_ipam(const IpamSection& section,
                                                 const cni::Request& req) {
    auto ipam = s_.ipam(section, req);
    if (!ipam.ok()) {
      return std::move(ipam).error().with_context("ipam " + section.type);
    }
    return ipam;
  }

  PluginSeams s_;
  Logger& log_;
};

// Where the child being created is, for the undo step: in the pod (it is created there).
struct ChildWhereabouts {
  int ifindex = 0;   // in the pod; 0 when not known yet
  std::string name;  // its current name there
};

Result<cni::CniResult> IpoibPlugin::add(const cni::Request& req) {
  const cni::Environment& env = req.env;
  // 1. Everything that needs no kernel changes: config, tag, master, the pod netns.
  IPOIB_TRY_ASSIGN(IpoibConfig cfg, parse_ipoib_config(req.conf));
  IPOIB_TRY_ASSIGN(std::string tag, tag_for(env));
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> host, s_.links->open_host());
  IPOIB_TRY_ASSIGN(LinkInfo master, find_master(*host, cfg.master));
  IPOIB_TRY(s_.kind->validate_master(master));
  IPOIB_TRY_ASSIGN(ParentFacts facts, s_.kind->parent_facts(master));
  IPOIB_TRY_ASSIGN(ChildSpec spec, resolve_child_spec(cfg, facts));
  IPOIB_TRY_ASSIGN(netns::NetnsHandle pod_ns, netns::NetnsHandle::open(env.netns));
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> pod, s_.links->open_netns(pod_ns));
  {
    IPOIB_TRY_ASSIGN(std::optional<LinkInfo> existing, pod->link_by_name(env.ifname));
    if (existing) {
      return Error(ErrorCode::kInvalidEnvironment, "CNI_IFNAME: an interface named " + env.ifname +
                                                       " already exists in " + env.netns);
    }
  }
  std::unique_ptr<cni::Plugin> ipam;
  if (cfg.ipam.kind != IpamKind::kNone) {
    IPOIB_TRY_ASSIGN(ipam, make_ipam(cfg.ipam, req));
  }

  // From here on every step that changes something pushes its undo; `undo` is declared after
  // the sessions and the IPAM it uses, so it unwinds before they are destroyed.
  ChildWhereabouts child;
  UndoStack undo(log_);

  // 2. Create the child directly inside the pod under the attachment's own temporary name. The
  // parent is resolved in the host socket's netns, the child registered in the pod's
  // (IFLA_NET_NS_FD; see IpoibKind::build_create_request): one request, no separate move and
  // no RCU grace period for it. The child never lives in the host netns, so a concurrent GC
  // (which only looks there) cannot take it; it can only come back there as a refund.
  const Marks marks{tag, temporary_child_name(env.container_id, env.ifname), s_.kind->name()};
  const std::string& tmp = marks.temporary_name;
  IPOIB_TRY_ASSIGN(netlink::Bytes request, s_.kind->build_create_request(spec, tmp, pod_ns.fd()));
  // Pushed before the request: a create may take effect although its reply says otherwise (or
  // never arrives). Until the index is known the child is found by its name in the pod — and
  // only deleted if it is ours (never an interface we did not create or tag).
  child = {0, tmp};
  undo.push("delete the child", [&]() -> Status {
    if (child.ifindex == 0) {
      IPOIB_TRY_ASSIGN(std::optional<LinkInfo> found, pod->link_by_name(child.name));
      if (!found || !is_untagged_child_of(*found, marks)) {
        return ok_status();
      }
      child.ifindex = found->ifindex;
    }
    return as_status(pod->delete_link(child.ifindex));
  });
  Status created = host->create_link(request);
  if (!created.ok() && netlink::kernel_errno(created.error()) == EEXIST) {
    // The name is this attachment's: a previous ADD of it was killed before the rename (the
    // runtime retries ADD after a failure; CNI forbids parallel ADDs of one attachment). Its
    // child is garbage: delete it and create afresh. Anything else of that name (not our kind,
    // or tagged for another attachment) is left alone and the ADD fails.
    IPOIB_TRY_ASSIGN(std::optional<LinkInfo> stale, pod->link_by_name(tmp));
    if (stale && is_untagged_child_of(*stale, marks)) {
      log_.info("deleting " + tmp + " left in " + env.netns + " by an interrupted ADD");
      IPOIB_TRY_CTX(as_status(pod->delete_link(stale->ifindex)), "delete stale " + tmp);
      created = host->create_link(request);
    }
  }
  if (!created.ok()) {
    return std::move(created).error().with_context("create " + std::string(s_.kind->name()) +
                                                   " child of " + cfg.master + " in " + env.netns);
  }
  {
    // An ifindex is per netns: read the child back where it lives.
    IPOIB_TRY_ASSIGN(std::optional<LinkInfo> made, pod->link_by_name(tmp));
    if (!made) {
      return Error(ErrorCode::kNetlinkFailure, tmp + " vanished from " + env.netns);
    }
    child.ifindex = made->ifindex;
  }
  // 3. Tag it (the mark DEL and GC rely on from here on), then its final name.
  IPOIB_TRY_CTX(pod->set_alias(child.ifindex, tag), "tag " + tmp);
  {
    Status renamed = pod->rename_link(child.ifindex, env.ifname);
    if (!renamed.ok()) {
      if (netlink::kernel_errno(renamed.error()) == EEXIST) {
        return Error(
            ErrorCode::kInvalidEnvironment,
            "CNI_IFNAME: an interface named " + env.ifname + " already exists in " + env.netns);
      }
      return std::move(renamed).error().with_context("rename " + tmp + " to " + env.ifname);
    }
    child.name = env.ifname;
  }

  // 4. Addresses.
  cni::CniResult ipam_result;
  if (ipam) {
    auto allocated = ipam->add(req);
    if (!allocated.ok()) {
      return std::move(allocated).error().with_context("ipam " + cfg.ipam.type);
    }
    ipam_result = std::move(*allocated);
    undo.push("release the IPAM reservation", [&]() -> Status { return ipam->del(req); });
  }

  IPOIB_TRY_CTX(pod->set_mtu(child.ifindex, spec.mtu_bytes),
                "set MTU " + std::to_string(spec.mtu_bytes) + " on " + env.ifname);
  const bool has_ipv6 =
      std::any_of(ipam_result.ips.begin(), ipam_result.ips.end(),
                  [](const cni::IpConfig& ip) { return !ip.address.address().is_v4(); });
  if (has_ipv6) {
    IPOIB_TRY_CTX(pod->enable_ipv6(env.ifname), "enable IPv6 on " + env.ifname);
  }
  for (const cni::IpConfig& ip : ipam_result.ips) {
    IPOIB_TRY_CTX(pod->add_address(child.ifindex, ip.address),
                  "add address " + ip.address.to_string() + " to " + env.ifname);
  }
  const bool has_ipv4 =
      std::any_of(ipam_result.ips.begin(), ipam_result.ips.end(),
                  [](const cni::IpConfig& ip) { return ip.address.address().is_v4(); });
  if (has_ipv4) {
    // Neighbours learn the new addresses when the link comes up rather than after their ARP
    // entries expire; the kernel sends the gratuitous ARP (link_ops.h). A lost announcement
    // only delays that, so it is not worth failing the ADD.
    Status notify = pod->enable_arp_notify(env.ifname);
    if (!notify.ok()) {
      log_.warning("gratuitous ARP on " + env.ifname + " not enabled: " + notify.error().msg());
    }
  }
  // Up before routes: fib_check_nh() refuses a nexthop through a link that is down.
  IPOIB_TRY_CTX(pod->set_up(child.ifindex), "set " + env.ifname + " up");
  for (const cni::Route& route : ipam_result.routes) {
    netlink::RouteSpec rs;
    rs.destination = route.dst;
    rs.gateway = route.gw;
    rs.ifindex = child.ifindex;
    if (route.priority) {
      rs.metric = static_cast<std::uint32_t>(*route.priority);
    }
    if (route.mtu) {
      rs.mtu_bytes = static_cast<std::uint32_t>(*route.mtu);
    }
    if (route.table) {
      rs.table = static_cast<std::uint32_t>(*route.table);
    }
    IPOIB_TRY_CTX(pod->add_route(rs), "add route " + route.dst.to_string() + " via " +
                                          (route.gw ? route.gw->to_string() : env.ifname));
  }

  // 5. The result, from the link as the kernel now reports it.
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> final_link, pod->link_by_index(child.ifindex));
  if (!final_link) {
    return Error(ErrorCode::kNetlinkFailure, env.ifname + " vanished from " + env.netns);
  }
  const ArpHardware hw = s_.kind->arp_hardware();
  if (final_link->hw_address.size() != hw.address_length) {
    log_.warning(env.ifname + " has a " + std::to_string(final_link->hw_address.size()) +
                 "-byte hardware address, expected " + std::to_string(hw.address_length));
  }
  cni::CniResult result;
  result.interfaces.push_back({.name = env.ifname,
                               .mac = format_mac(final_link->hw_address),
                               .mtu = static_cast<int>(final_link->mtu),
                               .sandbox = env.netns,
                               .socket_path = {},
                               .pci_id = {}});
  for (cni::IpConfig ip : ipam_result.ips) {
    ip.interface = 0;
    result.ips.push_back(std::move(ip));
  }
  result.routes = std::move(ipam_result.routes);
  result.dns = std::move(ipam_result.dns);
  // A result the requested version cannot express (0.1.0/0.2.0 without an address) would fail
  // after this function returned, leaving the attachment behind: fail here and roll back.
  if (auto encoded = cni::encode_result(result, req.conf.version); !encoded.ok()) {
    return std::move(encoded).error();
  }
  undo.commit();
  log_.info("ADD " + env.container_id + "/" + env.ifname + ": " + std::string(s_.kind->name()) +
            " child of " + cfg.master + " pkey " + format_pkey(spec.pkey) + " " +
            std::string(to_string(spec.mode)) + " mtu " + std::to_string(final_link->mtu));
  return result;
}

Status IpoibPlugin::del(const cni::Request& req) {
  const cni::Environment& env = req.env;
  // Only the IPAM section: DEL must work when the master is gone or the rest no longer parses.
  IPOIB_TRY_ASSIGN(IpamSection section, parse_ipam_section(req.conf.raw));
  IPOIB_TRY_ASSIGN(std::string tag, tag_for(env));
  const Marks marks{tag, temporary_child_name(env.container_id, env.ifname), s_.kind->name()};
  FirstError errors(log_);

  // The child in the pod (deleting it also removes its addresses and routes).
  if (!env.netns.empty()) {
    auto pod_ns = netns::NetnsHandle::open_if_exists(env.netns);
    if (!pod_ns.ok()) {
      errors.add(std::move(pod_ns).error(), "open " + env.netns);
    } else if (*pod_ns) {
      auto pod = s_.links->open_netns(**pod_ns);
      if (!pod.ok()) {
        errors.add(std::move(pod).error(), "enter " + env.netns);
      } else {
        errors.add(delete_ours(**pod, marks, log_, "pod"), "delete " + env.ifname);
      }
    } else {
      log_.debug("DEL: " + env.netns + " is gone");
    }
  }
  // A child refunded to the host when its netns was destroyed without DEL (netns_refund), or
  // one a crashed ADD left there under its temporary name.
  {
    auto host = s_.links->open_host();
    if (!host.ok()) {
      errors.add(std::move(host).error(), "host netns");
    } else {
      errors.add(delete_ours(**host, marks, log_, "host"), "delete refunded child");
    }
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

Status IpoibPlugin::check(const cni::Request& req) {
  const cni::Environment& env = req.env;
  IPOIB_TRY_ASSIGN(IpoibConfig cfg, parse_ipoib_config(req.conf));
  if (!req.conf.prev_result) {
    return Error(ErrorCode::kInvalidNetworkConfig, "prevResult: required for CHECK");
  }
  const cni::CniResult& prev = *req.conf.prev_result;
  IPOIB_TRY_ASSIGN(std::string tag, tag_for(env));

  // Host side first: sysfs (IB port) answers only there.
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> host, s_.links->open_host());
  IPOIB_TRY_ASSIGN(LinkInfo master, find_master(*host, cfg.master));
  IPOIB_TRY_ASSIGN(ParentFacts facts, s_.kind->parent_facts(master));
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
  const cni::Interface& expected = prev.interfaces[static_cast<std::size_t>(*our_index)];

  IPOIB_TRY_ASSIGN(netns::NetnsHandle pod_ns, netns::NetnsHandle::open(env.netns));
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> pod, s_.links->open_netns(pod_ns));
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> link, pod->link_by_name(env.ifname));
  if (!link) {
    return Error(ErrorCode::kCheckFailed, env.ifname + " does not exist in " + env.netns);
  }
  if (link->alias != tag) {
    return Error(ErrorCode::kCheckFailed,
                 env.ifname + " in " + env.netns + " was not created by this plugin for " +
                     env.container_id + " (alias \"" + link->alias + "\")");
  }
  IPOIB_TRY(s_.kind->verify_child(*link, spec));
  if (!expected.mac.empty() && lower(expected.mac) != format_mac(link->hw_address)) {
    return Error(ErrorCode::kCheckFailed, env.ifname + " has hardware address " +
                                              format_mac(link->hw_address) + ", prevResult " +
                                              expected.mac);
  }
  const int want_mtu = expected.mtu.value_or(spec.mtu_bytes);
  if (static_cast<int>(link->mtu) != want_mtu) {
    return Error(ErrorCode::kCheckFailed, env.ifname + " has MTU " + std::to_string(link->mtu) +
                                              ", expected " + std::to_string(want_mtu));
  }
  if (link->admin_state() != netlink::AdminState::kUp) {
    return Error(ErrorCode::kCheckFailed, env.ifname + " is down");
  }
  if (link->carrier == netlink::Carrier::kDown ||
      link->operstate == netlink::OperState::kLowerLayerDown) {
    std::string why = s_.kind->explain_carrier_down(master, spec);
    return Error(ErrorCode::kCheckFailed,
                 env.ifname + " has no carrier (operstate " +
                     std::string(netlink::to_string(link->operstate)) + ")" +
                     (why.empty() ? std::string(": the partition's broadcast group is not joined "
                                                "(yet)")
                                  : ": " + why));
  }

  IPOIB_TRY_ASSIGN(std::vector<netlink::AddressInfo> addrs, pod->addresses(link->ifindex));
  for (const cni::IpConfig& ip : prev.ips) {
    if (ip.interface && *ip.interface != *our_index) {
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
  for (const cni::Route& route : prev.routes) {
    IPOIB_TRY_ASSIGN(std::vector<netlink::RouteInfo> routes, pod->routes(route.dst.family()));
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

  if (cfg.ipam.kind != IpamKind::kNone) {
    IPOIB_TRY_ASSIGN(std::unique_ptr<cni::Plugin> ipam, make_ipam(cfg.ipam, req));
    IPOIB_TRY_CTX(ipam->check(req), "ipam " + cfg.ipam.type);
  }
  return ok_status();
}

Status IpoibPlugin::gc(const cni::Request& req,
                       const std::optional<std::vector<cni::Attachment>>& valid) {
  IPOIB_TRY_ASSIGN(IpoibConfig cfg, parse_ipoib_config(req.conf));
  FirstError errors(log_);
  // Without a valid list there is no information: destroy nothing (CNI SPEC.md GC).
  if (valid) {
    auto host = s_.links->open_host();
    if (!host.ok()) {
      errors.add(std::move(host).error(), "host netns");
    } else {
      auto master = (*host)->link_by_name(cfg.master);
      auto links = (*host)->links_of_kind(s_.kind->name());
      if (!master.ok()) {
        errors.add(std::move(master).error(), "master " + cfg.master);
      } else if (!links.ok()) {
        errors.add(std::move(links).error(), "list links");
      } else if (*master) {
        std::vector<std::string> valid_temporary_names;
        for (const cni::Attachment& a : *valid) {
          valid_temporary_names.push_back(temporary_child_name(a.container_id, a.ifname));
        }
        // Children of this network's master only: another network's GC owns its own.
        for (const LinkInfo& link : *links) {
          if (!link.parent_ifindex || *link.parent_ifindex != (*master)->ifindex) {
            continue;
          }
          if (const auto attachment = parse_attachment_tag(link.alias)) {
            if (std::find(valid->begin(), valid->end(), *attachment) != valid->end()) {
              continue;
            }
          } else if (!(link.alias.empty() && is_temporary_child_name(link.name)) ||
                     std::find(valid_temporary_names.begin(), valid_temporary_names.end(),
                               link.name) != valid_temporary_names.end()) {
            // Untagged: only the temporary child of an ADD killed before it could tag — and
            // not one of a valid attachment (whose retried ADD or DEL will take care of it).
            continue;
          }
          auto deleted = (*host)->delete_link(link.ifindex);
          if (deleted.ok()) {
            log_.info("GC: deleted " + link.name + " (" + link.alias + ")");
          }
          errors.add(as_status(std::move(deleted)), "GC delete " + link.name);
        }
      }
    }
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

Status IpoibPlugin::status(const cni::Request& req) {
  IPOIB_TRY_ASSIGN(IpoibConfig cfg, parse_ipoib_config(req.conf));
  IPOIB_TRY_ASSIGN(std::unique_ptr<LinkSession> host, s_.links->open_host());
  IPOIB_TRY_ASSIGN(std::optional<LinkInfo> master, host->link_by_name(cfg.master));
  if (!master) {
    return Error(ErrorCode::kNotAvailable, "master " + cfg.master + " does not exist");
  }
  IPOIB_TRY(s_.kind->master_ready(*master));
  if (cfg.ipam.kind != IpamKind::kNone) {
    IPOIB_TRY_ASSIGN(std::unique_ptr<cni::Plugin> ipam, make_ipam(cfg.ipam, req));
    IPOIB_TRY_CTX(ipam->status(req), "ipam " + cfg.ipam.type);
  }
  return ok_status();
}

}  // namespace

IpamFactory default_ipam_factory(Logger& log) {
  return [&log](const IpamSection& section,
                const cni::Request&) -> Result<std::unique_ptr<cni::Plugin>> {
    if (section.kind == IpamKind::kBuiltin) {
      return ipam::make_builtin_ipam(log);
    }
    return make_delegated_ipam(section.type, process_environment(), real_exec());
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
