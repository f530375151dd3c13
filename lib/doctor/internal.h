// lib/doctor/internal.h — pieces of the doctor shared between its files and its unit tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/doctor/doctor.h"
#include "ipoib/ipam/config.h"
#include "ipoib/netlink/link.h"
#include "ipoib/plugin/tag.h"

namespace ipoib::doctor::detail {

// A string compiled into every executable that links the doctor (the `ipoib` binary), so the
// doctor recognises its own binary installed as `whereabouts` even when versions differ.
std::string_view binary_marker_text();

// "<root>/<absolute>" with one slash between.
std::string under(const std::string& root, std::string_view absolute);

// RLIMIT_MEMLOCK as /proc/<pid>/limits shows it; nullopt members mean "unlimited".
struct MemlockLimit {
  std::optional<std::uint64_t> soft_bytes;
  std::optional<std::uint64_t> hard_bytes;
  [[nodiscard]] bool unlimited() const { return !soft_bytes && !hard_bytes; }
};
// Finds the "Max locked memory" row; nullopt when absent or garbled.
std::optional<MemlockLimit> parse_proc_limits(std::string_view limits_text);

// What systemd would apply to a unit: main file plus drop-ins (<unit>.d/*.conf), searched in
// /etc/systemd/system, /run/systemd/system, /lib/systemd/system, /usr/lib/systemd/system.
struct UnitInfo {
  std::string unit;                          // "containerd.service"
  std::vector<std::string> files;            // files read, in the order applied
  std::optional<std::string> limit_memlock;  // the last LimitMEMLOCK= value; nullopt: not set
  std::string exec_start;                    // the last non-empty ExecStart= (continuations joined)
  [[nodiscard]] bool found() const { return !files.empty(); }
};
UnitInfo read_unit(const std::string& host_root, std::string_view unit);

// "infinity" / "infinity:infinity" (systemd.exec LimitMEMLOCK=, both soft and hard).
bool memlock_value_unlimited(std::string_view value);
// Whether dockerd arguments carry `--default-ulimit memlock=-1:-1` (or =unlimited / =-1).
bool docker_args_memlock_unlimited(std::string_view args);

// The memlock rows: one per container runtime found running or installed; a SKIP row when none.
std::vector<CheckResult> check_memlock(const Roots& roots);

// The remedies of the seed document (docs/doctor.md "memlock"), quoted in every memlock FAIL.
std::string memlock_fix(std::string_view runtime);

// The whereabouts flat-file paths (ipam::ConfigSources) under roots.host.
ipam::ConfigSources config_sources(const Roots& roots);

// What says this node is part of a Kubernetes cluster: a running kubelet (roots.procfs), its
// config files or its systemd unit (roots.host). Empty when none is seen.
std::vector<std::string> kubelet_signals(const Roots& roots);

// The cluster store rows (docs/doctor.md "cluster store"): store.cluster, and for datastore etcd
// etcd.files, etcd.client (only when it cannot be set up), etcd.reachable, etcd.quorum and
// etcd.auth. `cluster_signals` (kubelet_signals and the Multus files seen) non-empty with a
// node-local store is the duplicate-address trap: FAIL.
std::vector<CheckResult> check_cluster_store(const DoctorOptions& options,
                                             const std::vector<std::string>& cluster_signals);

// What a child interface seen in the host netns is, by the plugin's own marks (plugin/tag.h,
// plugin/intent.h) and the plugin's own GC choice (plugin/collect.h select_gc_deletions).
enum class ChildVerdict {
  kLeaked,     // its network's GC deletes it: tagged for a network, or untagged with an intent
  kLegacy,     // a legacy tag (no network): the plugin made it, GC never deletes it
  kRefunded,   // untagged dev<N>: refunded by the kernel (netns_refund); nothing proves it ours
  kLookalike,  // untagged with a temporary-looking name and no intent: not ours
  kOther,      // anyone else's
};
struct ChildJudgement {
  ChildVerdict verdict = ChildVerdict::kOther;
  std::string owner;  // "network ibnet, c1/net1" when the tag or the intent names one
};
// `child` as the host netns' dump would show it (name, alias, parent_ifindex); `intent` is the
// intent recorded under its name (IntentDirectory::lookup), if any.
ChildJudgement judge_child(const netlink::LinkInfo& child,
                           const std::optional<plugin::ChildOwner>& intent);

}  // namespace ipoib::doctor::detail
