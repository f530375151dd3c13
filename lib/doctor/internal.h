// lib/doctor/internal.h — pieces of the doctor shared between its files and its unit tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/doctor/doctor.h"
#include "ipoib/ipam/config.h"

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

// Who a child interface seen in the host netns belongs to, by the plugin's own marks
// (plugin/tag.h), decided as the plugin's GC decides what to delete.
enum class ChildOwner {
  kPlugin,    // GC deletes it: tagged by this plugin, or untagged under a temporary child name
  kRefunded,  // untagged dev<N>: refunded by the kernel (netns_refund); GC cannot prove it ours
  kOther,     // anyone else's
};
ChildOwner classify_child(std::string_view name, std::string_view alias);

}  // namespace ipoib::doctor::detail
