// The node checks, in the order of the preflight list in docs/doctor.md.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>

#include "ipoib/base/fd.h"
#include "ipoib/base/file.h"
#include "ipoib/base/strings.h"
#include "ipoib/ib/netdev.h"
#include "ipoib/ib/port.h"
#include "ipoib/ib/sysfs_file.h"
#include "ipoib/ipam/ipam.h"
#include "ipoib/ipam/store.h"
#include "ipoib/plugin/collect.h"
#include "ipoib/plugin/config.h"
#include "ipoib/plugin/intent.h"
#include "ipoib/plugin/tag.h"
#include "lib/doctor/internal.h"

namespace ipoib::doctor {

namespace detail {

ChildJudgement judge_child(const netlink::LinkInfo& child,
                           const std::optional<plugin::ChildOwner>& intent) {
  const std::optional<plugin::ChildOwner> tagged =
      child.alias.empty() ? std::nullopt : plugin::parse_child_tag(child.alias);
  const std::optional<plugin::ChildOwner>& owner = tagged ? tagged : intent;
  ChildJudgement out;
  if (owner) {
    out.owner = (owner->network ? "network " + *owner->network + ", " : std::string()) +
                owner->attachment.container_id + "/" + owner->attachment.ifname;
  }
  if (tagged && !tagged->network) {
    out.verdict = ChildVerdict::kLegacy;
    return out;
  }
  if (owner && owner->network && (tagged || child.alias.empty())) {
    // Exactly GC's choice for the network that owns it, with no attachment valid: a child in
    // the host netns is in no pod.
    const std::vector<netlink::LinkInfo> links = {child};
    const std::vector<cni::Attachment> none;
    std::map<std::string, plugin::ChildOwner, std::less<>> intents;
    if (!tagged) {
      intents.emplace(child.name, *owner);
    }
    if (!plugin::select_gc_deletions(
             {links, child.parent_ifindex.value_or(0), *owner->network, none, intents})
             .empty()) {
      out.verdict = ChildVerdict::kLeaked;
      return out;
    }
  }
  if (child.alias.empty() && plugin::is_temporary_child_name(child.name)) {
    out.verdict = ChildVerdict::kLookalike;
  } else if (child.alias.empty() && child.name.size() > 3 && starts_with(child.name, "dev") &&
             child.name.find_first_not_of("0123456789", 3) == std::string::npos) {
    out.verdict = ChildVerdict::kRefunded;
  }
  return out;
}

}  // namespace detail

namespace {

using detail::under;

using plugin::format_pkey;

// Interface flags and LIDs as sysfs prints them ("0x1003"); pkeys go through the plugin's
// format_pkey.
std::string hex16(std::uint16_t v) {
  char buf[8];
  (void)std::snprintf(buf, sizeof buf, "0x%04x", v);
  return buf;
}

CheckResult row(std::string id, std::string title, CheckStatus status, std::string finding,
                std::string fix = {}) {
  return {std::move(id), std::move(title), status, std::move(finding), std::move(fix)};
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const std::string& item : items) {
    out += (out.empty() ? "" : std::string(sep)) + item;
  }
  return out;
}

// "5.10.0-26-amd64" -> {5, 10}
std::optional<std::pair<int, int>> kernel_version(std::string_view release) {
  const auto parts = split(release, '.');
  if (parts.size() < 2) {
    return std::nullopt;
  }
  auto major = parse_uint(parts[0], 16);
  std::string_view minor_text = parts[1];
  const auto end = minor_text.find_first_not_of("0123456789");
  auto minor = parse_uint(minor_text.substr(0, end), 16);
  if (!major.ok() || !minor.ok()) {
    return std::nullopt;
  }
  return std::pair<int, int>(static_cast<int>(*major), static_cast<int>(*minor));
}

class Checker {
 public:
  explicit Checker(const DoctorOptions& options) : options_(options), sys_{options.roots.sysfs} {}

  std::vector<CheckResult> run() {
    check_master();
    check_module();
    check_port();
    check_pkey();
    check_mtu();
    check_connected_mode();
    check_enhanced_caveat();
    check_netns_mode();
    check_devices();
    check_children();
    check_cni_dirs();
    check_multus();
    check_whereabouts();
    check_store();
    std::vector<std::string> cluster_signals = detail::kubelet_signals(options_.roots);
    cluster_signals.insert(cluster_signals.end(), multus_seen_.begin(), multus_seen_.end());
    for (CheckResult& r : detail::check_cluster_store(options_, cluster_signals)) {
      results_.push_back(std::move(r));
    }
    for (CheckResult& r : detail::check_memlock(options_.roots)) {
      results_.push_back(std::move(r));
    }
    return std::move(results_);
  }

 private:
  void add(CheckResult r) { results_.push_back(std::move(r)); }

  std::string host_path(const std::string& absolute) const {
    return under(options_.roots.host, absolute);
  }

  // Every IPoIB parent on the node.
  std::vector<ib::NetdevInfo> ipoib_parents() const {
    std::vector<ib::NetdevInfo> parents;
    auto names = ib::list_netdevs(sys_);
    if (!names.ok()) {
      return parents;
    }
    for (const std::string& name : *names) {
      auto info = ib::read_netdev(sys_, name);
      if (info.ok() && info->is_ipoib() && !info->is_child()) {
        parents.push_back(*info);
      }
    }
    return parents;
  }

  void check_master() {
    const std::string title = "master interface exists";
    std::string name;
    if (options_.master) {
      name = *options_.master;
    } else {
      const auto parents = ipoib_parents();
      if (parents.empty()) {
        add(row("master.exists", title, CheckStatus::kFail,
                "no --master given and no IPoIB interface (type 32) found under " +
                    sys_.join("sys/class/net"),
                "load the HCA driver and ib_ipoib (`modprobe ib_ipoib`), or pass --master / "
                "--config naming the interface your NetworkAttachmentDefinition uses"));
        return;
      }
      name = parents.front().name;
      if (parents.size() > 1) {
        std::vector<std::string> names;
        names.reserve(parents.size());
        for (const auto& p : parents) {
          names.push_back(p.name);
        }
        auto_note_ = "several IPoIB parents (" + join(names, ", ") + "); checking " + name +
                     "; pass --master to choose";
      } else {
        auto_note_ = "auto-detected (the only IPoIB parent)";
      }
    }
    auto info = ib::read_netdev(sys_, name);
    if (!info.ok()) {
      add(row("master.exists", title, CheckStatus::kFail, info.error().msg(),
              "set \"master\" in the network config to an existing IPoIB interface (`ip -d link "
              "show type ipoib` lists them)"));
      return;
    }
    master_ = *info;
    add(row("master.exists", title, CheckStatus::kPass,
            name + " exists (ifindex " + std::to_string(info->ifindex) + ")" +
                (auto_note_.empty() ? "" : "; " + auto_note_)));

    if (!info->is_ipoib()) {
      add(row("master.ipoib", "master is IPoIB", CheckStatus::kFail,
              name + " has link type " + std::to_string(info->type) +
                  ", not 32 (ARPHRD_INFINIBAND); the kernel refuses an IPoIB child on it (ENODEV)",
              "use the IPoIB interface of the HCA port (`ip -d link show type ipoib`); on a "
              "RoCE/Ethernet port use an Ethernet plugin (macvlan, ipvlan) instead"));
    } else {
      add(row("master.ipoib", "master is IPoIB", CheckStatus::kPass, name + " is type 32 (IPoIB)"));
    }
    if (info->is_child()) {
      const std::string parent =
          info->parent ? *info->parent : "ifindex " + std::to_string(info->iflink);
      add(row("master.parent", "master is a parent interface", CheckStatus::kFail,
              name + " is itself a child of " + parent +
                  "; the kernel refuses children of children (EINVAL, ipoib_new_child_link)",
              "set \"master\" to the parent interface (" + parent +
                  ") and the partition with "
                  "\"pkey\""));
    } else {
      add(row("master.parent", "master is a parent interface", CheckStatus::kPass,
              name + " is a port interface, not a child"));
    }
    if (!info->admin_up()) {
      add(row("master.up", "master is up", CheckStatus::kFail,
              name + " is administratively down (flags " +
                  hex16(static_cast<std::uint16_t>(info->flags)) +
                  "); children of a down parent stay down",
              "ip link set " + name + " up (and make it persistent in the node's network config)"));
    } else if (info->operstate != "up" && !info->operstate.empty()) {
      add(row("master.up", "master is up", CheckStatus::kWarn,
              name + " is up but operstate is " + info->operstate +
                  " (no carrier); see the port "
                  "checks below for the reason",
              "fix the port problems reported below; carrier returns by itself"));
    } else {
      add(row(
          "master.up", "master is up", CheckStatus::kPass,
          name + " is up, operstate " + (info->operstate.empty() ? "unknown" : info->operstate)));
    }
  }

  void check_module() {
    if (ib::path_kind(sys_.join("sys/module/ib_ipoib")) == ib::PathKind::kDirectory) {
      add(row("module.ib_ipoib", "ib_ipoib loaded", CheckStatus::kPass,
              "/sys/module/ib_ipoib present"));
    } else {
      add(row("module.ib_ipoib", "ib_ipoib loaded", CheckStatus::kFail,
              "/sys/module/ib_ipoib missing: the IPoIB driver is not loaded",
              "modprobe ib_ipoib (persist: echo ib_ipoib > /etc/modules-load.d/ipoib.conf)"));
    }
  }

  void skip(std::string id, std::string title, std::string why) {
    add(row(std::move(id), std::move(title), CheckStatus::kSkip, std::move(why)));
  }

  void check_port() {
    const std::vector<std::pair<std::string, std::string>> dependents = {
        {"port.active", "HCA port ACTIVE"},
        {"port.link_up", "HCA port LinkUp"},
        {"port.sm", "subnet manager present"}};
    if (!master_ || !master_->is_ipoib()) {
      skip("port.found", "HCA port found", "no IPoIB master to map to a port");
      for (const auto& [id, title] : dependents) {
        skip(id, title, "no HCA port");
      }
      return;
    }
    std::unique_ptr<ib::PortQuery> query =
        (options_.use_verbs == DoctorOptions::UseVerbs::kYes && sys_.path == "/")
            ? ib::make_system_port_query(sys_)
            : ib::make_sysfs_port_query(sys_);
    auto port = query->port_for_netdev(master_->name);
    if (!port.ok()) {
      add(row("port.found", "HCA port found", CheckStatus::kFail, port.error().msg(),
              "check the HCA driver (`ibstat`, `rdma link show`) and that " + master_->name +
                  " belongs to it"));
      for (const auto& [id, title] : dependents) {
        skip(id, title, "no HCA port");
      }
      return;
    }
    port_ = *port;
    const std::string where = port_->device + " port " + std::to_string(port_->port_num);
    add(row("port.found", "HCA port found", CheckStatus::kPass,
            master_->name + " -> " + where + " (" +
                (port_->source == ib::QuerySource::kVerbs ? "libibverbs" : "sysfs") +
                (port_->rate.empty() ? "" : ", " + port_->rate) +
                (port_->link_layer.empty() ? "" : ", link layer " + port_->link_layer) + ")"));
    if (port_->state == ib::PortState::kActive) {
      add(row("port.active", "HCA port ACTIVE", CheckStatus::kPass,
              where + " state " + port_->state_text));
    } else {
      std::string hint =
          port_->state == ib::PortState::kInit
              ? "INIT means the link is up but no subnet manager has configured the port"
              : "the port is not part of an operational subnet";
      add(row("port.active", "HCA port ACTIVE", CheckStatus::kFail,
              where + " state " + port_->state_text + ", not 4: ACTIVE; " + hint +
                  "; IPoIB interfaces stay carrier-down",
              "bring the link up (cable, switch port) and make sure a subnet manager runs "
              "(`systemctl start opensm` on one node, or enable the switch's SM); `ibstat " +
                  port_->device + " " + std::to_string(port_->port_num) + "` shows the state"));
    }
    if (port_->phys_state == ib::PhysState::kLinkUp) {
      add(row("port.link_up", "HCA port LinkUp", CheckStatus::kPass,
              where + " phys_state " + port_->phys_state_text));
    } else {
      add(row("port.link_up", "HCA port LinkUp", CheckStatus::kFail,
              where + " phys_state " +
                  (port_->phys_state_text.empty() ? "unknown" : port_->phys_state_text) +
                  ", not 5: LinkUp",
              "check the cable and the switch port; Disabled means the port was turned off "
              "(`ibportstate` / the switch), Polling means no peer answers"));
    }
    if (port_->sm_lid != 0) {
      add(row("port.sm", "subnet manager present", CheckStatus::kPass,
              where + " sm_lid " + hex16(port_->sm_lid) + ", lid " + hex16(port_->lid)));
    } else {
      add(row("port.sm", "subnet manager present", CheckStatus::kFail,
              where + " sm_lid 0: no subnet manager has configured this port (no LID, no "
                      "multicast groups, so no IPoIB broadcast group)",
              "run a subnet manager on the fabric: `apt install opensm && systemctl enable --now "
              "opensm` on one node, or enable the managed switch's SM"));
    }
  }

  void check_pkey() {
    const std::string title = "pkey in the port's table";
    if (!port_) {
      skip("pkey.table", title, "no HCA port");
      return;
    }
    std::uint16_t pkey = 0xffff;
    std::string origin;
    if (options_.pkey) {
      pkey = *options_.pkey;
      origin = "configured pkey " + format_pkey(pkey);
    } else if (master_ && master_->pkey) {
      pkey = *master_->pkey;
      origin = "no pkey configured: children use " + master_->name + "'s pkey " + format_pkey(pkey);
    } else {
      origin = "no pkey configured: default partition " + format_pkey(pkey);
    }
    if ((pkey & 0x7fff) == 0) {
      add(row(
          "pkey.table", title, CheckStatus::kFail,
          origin + " is invalid (0 and 0x8000 are reserved; the kernel refuses them with EINVAL)",
          "choose a pkey 0x0001..0x7fff (the full-membership bit 0x8000 is added by the driver)"));
      return;
    }
    if (port_->pkeys.empty()) {
      skip("pkey.table", title, origin + "; the port's pkey table is not readable");
      return;
    }
    const std::string where = port_->device + " port " + std::to_string(port_->port_num);
    switch (ib::pkey_in_table(*port_, pkey)) {
      case ib::PkeyMembership::kFull:
        add(row("pkey.table", title, CheckStatus::kPass,
                origin + " is in the pkey table of " + where + " (full member)"));
        break;
      case ib::PkeyMembership::kLimited:
        add(row("pkey.table", title, CheckStatus::kWarn,
                origin + " is in the table of " + where + " only as a limited member (" +
                    format_pkey(static_cast<std::uint16_t>(pkey & 0x7fff)) +
                    "): limited members cannot talk to each other, only to full members",
                "make this node a full member of the partition in the subnet manager (opensm "
                "partitions.conf: `<name>=" +
                    format_pkey(static_cast<std::uint16_t>(pkey | 0x8000)) +
                    ", ipoib : ALL=full;`), then restart/resweep the SM"));
        break;
      case ib::PkeyMembership::kAbsent:
        add(row("pkey.table", title, CheckStatus::kFail,
                origin + " is not in the pkey table of " + where +
                    ": children are created but stay carrier-down (LOWERLAYERDOWN) until the "
                    "subnet manager adds the partition",
                "add the partition to the subnet manager (opensm /etc/opensm/partitions.conf: "
                "`<name>=" +
                    format_pkey(static_cast<std::uint16_t>(pkey | 0x8000)) +
                    ", ipoib : ALL=full;`, then `systemctl restart opensm`), or use a pkey the "
                    "table lists (`cat /sys/class/infiniband/" +
                    port_->device + "/ports/" + std::to_string(port_->port_num) + "/pkeys/*`)"));
        break;
    }
  }

  void check_mtu() {
    const std::string title = "MTU fits the mode and port";
    const std::string mode = options_.mode.value_or("datagram");
    if (!options_.mtu) {
      std::string finding = "no mtu configured: a new child starts at the port's maximum MTU";
      if (master_) {
        finding += ", not at " + master_->name + "'s " + std::to_string(master_->mtu);
      }
      skip("mtu.fits", title, finding);
      return;
    }
    const int mtu = *options_.mtu;
    int max_mtu = 0;
    std::string why;
    if (mode == "connected") {
      max_mtu = 65520;
      why = "connected mode allows at most 65520";
    } else if (port_ && port_->active_mtu_bytes) {
      max_mtu = *port_->active_mtu_bytes - 4;
      why = "datagram mode allows IB MTU - 4 = " + std::to_string(max_mtu) + " (active IB MTU " +
            std::to_string(*port_->active_mtu_bytes) + ")";
    } else {
      max_mtu = 4092;
      why = "datagram mode allows at most 4092 (4K IB MTU; 2044 on a 2K fabric)";
    }
    if (mtu < 72 || mtu > max_mtu) {
      add(row("mtu.fits", title, CheckStatus::kFail,
              "mtu " + std::to_string(mtu) + " with mode " + mode + ": " + why + ", minimum 72",
              "set \"mtu\" to 72.." + std::to_string(max_mtu) +
                  (mode == "connected" ? "" : ", or use \"mode\": \"connected\" for larger MTUs")));
      return;
    }
    if (mode != "connected" && master_ && master_->mode.value_or("datagram") == "datagram" &&
        master_->mtu > 0 && mtu > master_->mtu) {
      add(row("mtu.fits", title, CheckStatus::kWarn,
              "mtu " + std::to_string(mtu) + " exceeds " + master_->name + "'s datagram MTU " +
                  std::to_string(master_->mtu) +
                  ": the kernel silently clamps to the broadcast group's MTU after the join",
              "set \"mtu\" to at most " + std::to_string(master_->mtu) +
                  " (the fabric's broadcast-group MTU - 4)"));
      return;
    }
    add(row("mtu.fits", title, CheckStatus::kPass,
            "mtu " + std::to_string(mtu) + " with mode " + mode + ": " + why));
  }

  // mlx5 uses "enhanced IPoIB" (ipoib_enhanced=1, the default since 4.12), which has no
  // connected mode (ipoib_set_mode -> EINVAL).
  std::optional<bool> enhanced_ipoib() const {
    if (!port_) {
      return std::nullopt;
    }
    // The device name can be renamed by udev (ibp59s0); the driver link cannot.
    const std::string driver = driver_name(port_->device);
    if (driver != "mlx5_core" && !(driver.empty() && starts_with(port_->device, "mlx5"))) {
      return false;
    }
    auto param = ib::read_trimmed(sys_.join("sys/module/ib_ipoib/parameters/ipoib_enhanced"));
    if (param.ok() && (*param == "0" || *param == "N")) {
      return false;
    }
    return true;
  }

  // Basename of /sys/class/infiniband/<dev>/device/driver ("mlx5_core"); "" when unreadable.
  std::string driver_name(const std::string& device) const {
    const std::string link = sys_.join("sys/class/infiniband/" + device + "/device/driver");
    char target[4096];
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) {
      return {};
    }
    const std::string_view path(target, static_cast<std::size_t>(n));
    const auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
  }

  void check_connected_mode() {
    const std::string title = "connected mode availability";
    const auto enhanced = enhanced_ipoib();
    const bool wants_connected = options_.mode == "connected";
    if (!enhanced) {
      if (wants_connected) {
        skip("mode.connected", title, "no HCA port to inspect");
      } else {
        skip("mode.connected", title, "no HCA port to inspect (datagram mode needs nothing)");
      }
      return;
    }
    if (*enhanced) {
      if (wants_connected) {
        add(row("mode.connected", title, CheckStatus::kFail,
                port_->device + " runs enhanced IPoIB, which has no connected mode: creating a "
                                "child with mode connected fails with EINVAL",
                "use \"mode\": \"datagram\" (the default), or load ib_ipoib with "
                "ipoib_enhanced=0 (`echo 'options ib_ipoib ipoib_enhanced=0' > "
                "/etc/modprobe.d/ib_ipoib.conf`, reload the module) to get connected mode"));
      } else {
        add(row("mode.connected", title, CheckStatus::kPass,
                "datagram mode configured; connected mode is unavailable here (enhanced IPoIB on " +
                    port_->device + ")"));
      }
      return;
    }
    const bool master_has_mode = master_ && master_->mode.has_value();
    add(row("mode.connected", title, CheckStatus::kPass,
            std::string("connected mode available") +
                (master_has_mode ? " (" + master_->name + " runs " + *master_->mode + ")" : "")));
  }

  void check_enhanced_caveat() {
    const std::string title = "enhanced IPoIB same-host traffic";
    const auto enhanced = enhanced_ipoib();
    if (!enhanced) {
      skip("ipoib.enhanced", title, "no HCA port to inspect");
      return;
    }
    if (!*enhanced) {
      add(row("ipoib.enhanced", title, CheckStatus::kPass,
              port_->device + " does not use enhanced IPoIB"));
      return;
    }
    auto release = ib::read_trimmed(under(options_.roots.procfs, "/proc/sys/kernel/osrelease"));
    auto ofed = ib::read_trimmed(sys_.join("sys/module/mlx5_core/version"));
    const auto kernel = release.ok() ? kernel_version(*release) : std::nullopt;
    const auto ofed_version = ofed.ok() ? kernel_version(*ofed) : std::nullopt;
    const bool kernel_fixed = kernel && *kernel >= std::pair<int, int>(5, 8);
    const bool ofed_fixed = ofed_version && *ofed_version >= std::pair<int, int>(5, 1);
    const std::string seen = "kernel " + (release.ok() ? *release : std::string("unknown")) +
                             (ofed.ok() ? ", mlx5_core " + *ofed : "");
    if (kernel_fixed || ofed_fixed) {
      add(row("ipoib.enhanced", title, CheckStatus::kPass,
              "enhanced IPoIB on " + port_->device + " with " + seen +
                  ": same-host pod-to-pod traffic works"));
    } else if (!kernel) {
      add(row("ipoib.enhanced", title, CheckStatus::kWarn,
              "enhanced IPoIB on " + port_->device + "; kernel version unreadable",
              "make sure the kernel is >= 5.8 (or MLNX_OFED >= 5.1): older ones drop traffic "
              "between two IPoIB children on the same host"));
    } else {
      add(row("ipoib.enhanced", title, CheckStatus::kWarn,
              "enhanced IPoIB on " + port_->device + " with " + seen +
                  " (< 5.8, OFED < 5.1): traffic between two pods on the same node is dropped",
              "upgrade to kernel >= 5.8 or MLNX_OFED >= 5.1, or load ib_ipoib with "
              "ipoib_enhanced=0 (`options ib_ipoib ipoib_enhanced=0` in /etc/modprobe.d)"));
    }
  }

  void check_netns_mode() {
    const std::string title = "RDMA netns mode shared";
    auto mode = ib::read_trimmed(sys_.join("sys/module/ib_core/parameters/netns_mode"));
    if (!mode.ok()) {
      if (ib::path_kind(sys_.join("sys/module/ib_core")) == ib::PathKind::kDirectory) {
        add(row("rdma.netns_mode", title, CheckStatus::kPass,
                "ib_core has no netns_mode parameter: RDMA devices are shared by all namespaces"));
      } else {
        skip("rdma.netns_mode", title, "ib_core not loaded");
      }
      return;
    }
    if (*mode == "Y" || *mode == "1") {
      add(row("rdma.netns_mode", title, CheckStatus::kPass,
              "netns_mode=" + *mode + ": RDMA devices are visible in every network namespace"));
    } else {
      add(row("rdma.netns_mode", title, CheckStatus::kFail,
              "netns_mode=" + *mode +
                  " (exclusive): pods get IP over the IPoIB child but cannot open verbs on the HCA "
                  "(EPERM), so MPI over RDMA fails; the shared RDMA device plugin refuses to start",
              "`rdma system set netns shared`, and persist it with `echo 'options ib_core "
              "netns_mode=1' > /etc/modprobe.d/ib_core.conf` (unless you deliberately use the "
              "RDMA CNI with exclusive mode)"));
    }
  }

  void check_devices() {
    const std::string dir = host_path("/dev/infiniband");
    auto entries = ib::list_directory(dir);
    std::vector<std::string> uverbs;
    bool rdma_cm = false;
    if (entries.ok()) {
      for (const std::string& name : *entries) {
        if (starts_with(name, "uverbs")) {
          uverbs.push_back(name);
        }
        rdma_cm = rdma_cm || name == "rdma_cm";
      }
    }
    if (!uverbs.empty()) {
      add(row("dev.uverbs", "/dev/infiniband/uverbs*", CheckStatus::kPass,
              "/dev/infiniband: " + join(uverbs, ", ")));
    } else {
      add(row("dev.uverbs", "/dev/infiniband/uverbs*", CheckStatus::kFail,
              "no /dev/infiniband/uverbs* device: pods (and this doctor) cannot use verbs",
              "modprobe ib_uverbs (persist in /etc/modules-load.d/); the RDMA device plugin passes "
              "these devices to pods"));
    }
    if (rdma_cm) {
      add(row("dev.rdma_cm", "/dev/infiniband/rdma_cm", CheckStatus::kPass,
              "/dev/infiniband/rdma_cm present"));
    } else {
      add(row("dev.rdma_cm", "/dev/infiniband/rdma_cm", CheckStatus::kWarn,
              "no /dev/infiniband/rdma_cm: MPI/UCX connection setup over RDMA CM is unavailable",
              "modprobe rdma_ucm (persist in /etc/modules-load.d/)"));
    }
  }

  void check_children() {
    const std::string title = "no leaked IPoIB children on the host";
    auto names = ib::list_netdevs(sys_);
    if (!names.ok()) {
      skip("children.leaked", title, names.error().msg());
      return;
    }
    const std::string intent_path = host_path(std::string(plugin::IntentDirectory::kDefaultPath));
    const plugin::IntentDirectory intent_dir(intent_path);
    std::vector<std::string> leaked;
    std::vector<std::string> legacy;
    std::vector<std::string> refunded;
    std::vector<std::string> lookalikes;
    for (const std::string& name : *names) {
      auto info = ib::read_netdev(sys_, name);
      if (!info.ok() || !info->is_ipoib() || !info->is_child()) {
        continue;
      }
      netlink::LinkInfo child;
      child.ifindex = info->ifindex;
      child.name = name;
      child.kind = "ipoib";
      child.parent_ifindex = info->iflink;
      child.alias = info->ifalias;
      const auto intent = child.alias.empty() ? intent_dir.lookup(name) : std::nullopt;
      const detail::ChildJudgement judged = detail::judge_child(child, intent);
      switch (judged.verdict) {
        case detail::ChildVerdict::kLeaked:
          leaked.push_back(name + " (" +
                           (child.alias.empty() ? "untagged, interrupted ADD of " : "") +
                           judged.owner + ")");
          break;
        case detail::ChildVerdict::kLegacy:
          legacy.push_back(name + " (" + child.alias + ")");
          break;
        case detail::ChildVerdict::kRefunded:
          refunded.push_back(name);
          break;
        case detail::ChildVerdict::kLookalike:
          lookalikes.push_back(name);
          break;
        case detail::ChildVerdict::kOther:
          break;
      }
    }
    std::string notes;
    if (!lookalikes.empty()) {
      notes += "; untagged links with a temporary-looking name and no intent in " +
               std::string(plugin::IntentDirectory::kDefaultPath) +
               " are not ours and are left alone: " + join(lookalikes, ", ");
      if (const std::string why = plugin::untrusted_directory_reason(intent_path);
          ib::path_kind(intent_path) != ib::PathKind::kMissing && !why.empty()) {
        notes += " (the intent directory is not trusted: " + why + ")";
      }
    }
    if (leaked.empty() && legacy.empty() && refunded.empty()) {
      add(row("children.leaked", title, CheckStatus::kPass,
              "no IPoIB child of this plugin in the host netns (tagged " +
                  std::string(plugin::kTagPrefix) + "…, or untagged with an intent)" + notes));
      return;
    }
    std::string finding;
    if (!leaked.empty()) {
      finding += "this plugin's children in the host netns (its network's CNI GC deletes them): " +
                 join(leaked, ", ") + ". ";
    }
    if (!legacy.empty()) {
      finding += "children with a legacy tag (no network named; GC never deletes them): " +
                 join(legacy, ", ") + ". ";
    }
    if (!refunded.empty()) {
      finding +=
          "untagged refunded children (renamed dev<ifindex> when a pod netns was destroyed "
          "without DEL; nothing proves them ours, GC leaves them): " +
          join(refunded, ", ") + ". ";
    }
    finding +=
        "They hold HCA resources (and possibly IPs) with no pod; a child seen during a "
        "pod start is transient — re-run to confirm" +
        notes;
    add(row("children.leaked", title, CheckStatus::kWarn, finding,
            "let the runtime run CNI GC for the network (or `cnitool gc`), or delete each one "
            "with `ip link delete <name>` and release its IP with `ipoib ipam release`"));
  }

  void check_cni_dirs() {
    const std::string bin = host_path(options_.cni_bin_dir);
    if (ib::path_kind(bin) != ib::PathKind::kDirectory) {
      add(row("cni.bin_dir", "CNI bin dir has ipoib", CheckStatus::kFail,
              options_.cni_bin_dir + " does not exist",
              "scripts/install --bin-dir " + options_.cni_bin_dir +
                  " (or pass --cni-bin-dir with the kubelet/runtime's bin_dir)"));
    } else if (::access((bin + "/ipoib").c_str(), X_OK) != 0) {
      add(row("cni.bin_dir", "CNI bin dir has ipoib", CheckStatus::kFail,
              options_.cni_bin_dir + "/ipoib is missing or not executable",
              "scripts/install --bin-dir " + options_.cni_bin_dir));
    } else {
      add(row("cni.bin_dir", "CNI bin dir has ipoib", CheckStatus::kPass,
              options_.cni_bin_dir + "/ipoib installed"));
    }
    const std::string conf = host_path(options_.cni_conf_dir);
    auto entries = ib::list_directory(conf);
    if (!entries.ok()) {
      add(row("cni.conf_dir", "CNI conf dir", CheckStatus::kFail,
              options_.cni_conf_dir + " does not exist: the runtime has no network configured",
              "install the cluster's primary CNI (it writes " + options_.cni_conf_dir +
                  "), or pass --cni-conf-dir with the runtime's conf_dir"));
      return;
    }
    std::vector<std::string> configs;
    for (const std::string& name : *entries) {
      if (name.ends_with(".conf") || name.ends_with(".conflist") || name.ends_with(".json")) {
        configs.push_back(name);
      }
    }
    if (configs.empty()) {
      add(row("cni.conf_dir", "CNI conf dir", CheckStatus::kWarn,
              options_.cni_conf_dir + " has no .conf/.conflist: no primary network yet",
              "install the cluster's primary CNI and Multus"));
    } else {
      add(row("cni.conf_dir", "CNI conf dir", CheckStatus::kPass,
              options_.cni_conf_dir + ": " + join(configs, ", ")));
    }
  }

  void check_multus() {
    const std::string bin = host_path(options_.cni_bin_dir);
    std::vector<std::string> seen;
    for (const char* name : {"multus", "multus-shim"}) {
      if (ib::path_kind(bin + "/" + name) == ib::PathKind::kFile) {
        seen.push_back(options_.cni_bin_dir + "/" + name);
      }
    }
    if (auto entries = ib::list_directory(host_path(options_.cni_conf_dir)); entries.ok()) {
      for (const std::string& name : *entries) {
        if (name.find("multus") != std::string::npos) {
          seen.push_back(options_.cni_conf_dir + "/" + name);
        }
      }
    }
    multus_seen_ = seen;
    if (seen.empty()) {
      add(row("cni.multus", "Multus present", CheckStatus::kWarn,
              "no multus binary in " + options_.cni_bin_dir + " and no multus config in " +
                  options_.cni_conf_dir +
                  ": NetworkAttachmentDefinitions will not reach this plugin",
              "kubectl apply -f multus-daemonset-thick-plugin.yml (see the Multus project)"));
    } else {
      add(row("cni.multus", "Multus present", CheckStatus::kPass, join(seen, ", ")));
    }
  }

  void check_whereabouts() {
    const std::string title = "no foreign whereabouts binary";
    const std::string path = host_path(options_.cni_bin_dir + "/whereabouts");
    if (ib::path_kind(path) != ib::PathKind::kFile) {
      add(row("cni.whereabouts", title, CheckStatus::kPass,
              "no whereabouts binary in " + options_.cni_bin_dir +
                  " (ipoib networks use the built-in IPAM either way)"));
      return;
    }
    auto content = ib::read_text_file(path, std::size_t{256} << 20);
    const bool ours =
        content.ok() && content->find(detail::binary_marker_text()) != std::string::npos;
    if (ours) {
      add(row("cni.whereabouts", title, CheckStatus::kPass,
              options_.cni_bin_dir + "/whereabouts is this project's binary"));
      return;
    }
    add(row("cni.whereabouts", title, CheckStatus::kWarn,
            options_.cni_bin_dir +
                "/whereabouts is not this project's binary: networks whose "
                "plugins exec `whereabouts` (macvlan, ...) allocate through it and its Kubernetes "
                "store, while ipoib networks use the built-in file store — a range shared by both "
                "can be handed out twice",
            "use distinct ranges per allocator, or replace it with this project's: "
            "`scripts/install --whereabouts --force` (keep a copy of the old binary)"));
  }

  void check_store() {
    const std::string title = "IPAM store directory";
    const std::string dir_abs =
        options_.store_dir.empty() ? std::string(ipam::kDefaultStoreDir) : options_.store_dir;
    const std::string dir = host_path(dir_abs);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      add(row("store.dir", title, CheckStatus::kPass,
              dir_abs + " does not exist yet: the first ADD creates it (mode 0700)"));
      return;
    }
    if (!S_ISDIR(st.st_mode)) {
      add(row("store.dir", title, CheckStatus::kFail, dir_abs + " exists but is not a directory",
              "move it away: the IPAM store needs a directory there (or set ipam \"store_dir\")"));
      return;
    }
    std::vector<std::string> problems;
    CheckStatus status = CheckStatus::kPass;
    const unsigned perms = st.st_mode & 07777;
    char mode_text[8];
    (void)std::snprintf(mode_text, sizeof mode_text, "%04o", perms);
    // The store's own trust rule (owner, group/other write), as Store::open applies it.
    const Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    const Status trusted =
        dir_fd.valid()
            ? ipam::check_store_dir_trust(dir_fd.get(), dir_abs)
            : Status(Error(ErrorCode::kIoFailure,
                           errno == ELOOP
                               ? dir_abs + " is a symlink: the store refuses it"
                               : "cannot open " + dir_abs + ": " + std::strerror(errno)));
    if (!trusted.ok()) {
      status = CheckStatus::kFail;
      problems.push_back("mode " + std::string(mode_text) + ": " + trusted.error().msg());
    } else if ((perms & 0077) != 0) {
      status = CheckStatus::kWarn;
      problems.push_back(std::string("mode ") + mode_text + ", expected 0700");
    }
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
      status = CheckStatus::kFail;
      problems.push_back("not writable by this user");
    }
    std::vector<std::string> notes;
    check_store_entries(dir, status, problems, notes);
    if (problems.empty()) {
      std::string finding = dir_abs + ": directory, mode " + mode_text + ", writable, lock usable";
      for (const std::string& note : notes) {
        finding += "; " + note;
      }
      add(row("store.dir", title, CheckStatus::kPass, finding));
      return;
    }
    add(row("store.dir", title, status, dir_abs + ": " + join(problems, "; "),
            "chown -R root:root " + dir_abs + " && chmod 0700 " + dir_abs + " && find " + dir_abs +
                " -maxdepth 1 -type f -exec chmod 0600 {} + (remove symlinks there, and "
                "directories named like the store's files; run the doctor as root: the plugin "
                "runs as root)"));
  }

  // The store's files (ipoib/ipam/store.h): the lock file, and a pool's snapshot and journal
  // (Store::pool_file_name / journal_file_name), all regular files the store opens O_NOFOLLOW
  // and nobody else may write; `.tmp.*` leftovers of a crashed writer.
  void check_store_entries(const std::string& dir, CheckStatus& status,
                           std::vector<std::string>& problems, std::vector<std::string>& notes) {
    // store.h names the lock file `lock` but does not expose the name: the only store name the
    // doctor spells itself. Temporary files are publish_file's (base/file.h).
    static constexpr std::string_view kLockName = "lock";
    const std::string_view kTempPrefix = kPublishTempPrefix;
    std::vector<std::string> named = {std::string(kLockName)};
    if (options_.network_name) {
      named.push_back(ipam::Store::pool_file_name(*options_.network_name));
      named.push_back(ipam::Store::journal_file_name(*options_.network_name));
    }
    auto entries = ib::list_directory(dir);
    if (!entries.ok()) {
      return;
    }
    int leftovers = 0;
    for (const std::string& name : *entries) {
      std::string path = dir;
      path.append("/").append(name);
      struct stat entry {};
      if (::lstat(path.c_str(), &entry) != 0) {
        continue;
      }
      if (starts_with(name, kTempPrefix)) {
        ++leftovers;
        continue;
      }
      const bool is_store_name = std::find(named.begin(), named.end(), name) != named.end();
      if (S_ISDIR(entry.st_mode) && !is_store_name) {
        continue;  // not the store's (lost+found on a mount point, ...)
      }
      if (!S_ISREG(entry.st_mode)) {
        status = CheckStatus::kFail;
        problems.push_back(name + " is not a regular file" +
                           std::string(S_ISLNK(entry.st_mode) ? " (a symlink: refused)" : ""));
        continue;
      }
      if ((entry.st_mode & 0022) != 0) {
        status = CheckStatus::kFail;
        problems.push_back(name + " is writable by other users");
      }
      if (name == kLockName) {
        probe_lock(path, name, status, problems, notes);
      }
    }
    if (leftovers > 0) {
      notes.push_back(
          std::to_string(leftovers) +
          " .tmp.* leftover(s) of an interrupted write (removed by the next operation)");
    }
  }

  static void probe_lock(const std::string& path, const std::string& name, CheckStatus& status,
                         std::vector<std::string>& problems, std::vector<std::string>& notes) {
    // The doctor holds no lock, so opening and closing the file cannot drop anyone's fcntl
    // lock (those are per process). F_GETLK reports a holder without taking the lock.
    Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) {
      status = CheckStatus::kFail;
      problems.push_back("lock file " + name + " cannot be opened read-write");
      return;
    }
    struct flock probe {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK) {
      notes.push_back(name + " held by pid " + std::to_string(probe.l_pid) +
                      " right now (an operation in progress)");
    }
  }

  const DoctorOptions& options_;
  ib::SysfsRoot sys_;
  std::vector<CheckResult> results_;
  std::vector<std::string> multus_seen_;  // check_multus's finds: a sign of a cluster
  std::optional<ib::NetdevInfo> master_;
  std::optional<ib::IbPort> port_;
  std::string auto_note_;
};

}  // namespace

std::vector<CheckResult> run_checks(const DoctorOptions& options) { return Checker(options).run(); }

}  // namespace ipoib::doctor
