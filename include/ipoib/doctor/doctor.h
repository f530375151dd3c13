// ipoib/doctor/doctor.h — `ipoib doctor`: a node preflight that says what would break IPoIB pods
// and MPI over them, and the exact fix.
//
// It reads sysfs, procfs and files only (no netlink, no setns), so every check runs against a
// fixture tree in tests; the one exception is the cluster store: when the IPAM names etcd, the
// etcd client asks every endpoint for its status and makes one read (docs/doctor.md). Library entry
// points:
//
//   doctor::DoctorOptions options;
//   options.master = "ib0";
//   options.pkey = 0x8001;
//   options.roots = doctor::Roots::under("/tmp/fixture");      // <dir>/sys, <dir>/proc,
//   <dir>/etc... std::vector<doctor::CheckResult> results = doctor::run_checks(options); std::cout
//   << doctor::render_table(results);                // or doctor::to_json(results) return
//   doctor::exit_status(results);                       // 1 when any FAIL
//
// The command line (`ipoib doctor --help` lists the options):
//
//   int status = doctor::main(argc, argv);                     // argv[0] is "doctor"
#pragma once

#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/ipam/config.h"

namespace ipoib::doctor {

enum class CheckStatus { kPass, kWarn, kFail, kSkip };
std::string_view to_string(CheckStatus status);  // "PASS", "WARN", "FAIL", "SKIP"

struct CheckResult {
  std::string id;     // stable machine name, "port.active"
  std::string title;  // "HCA port ACTIVE"
  CheckStatus status = CheckStatus::kSkip;
  std::string finding;  // what was seen, with the values read
  std::string fix;      // the exact remedy; "" for PASS/SKIP
};

// Where the node's filesystems are. Each is the directory that plays "/" for that purpose.
struct Roots {
  std::string sysfs = "/";   // <sysfs>/sys/class/net, <sysfs>/sys/module, ...
  std::string procfs = "/";  // <procfs>/proc/<pid>/{comm,limits,cmdline}, /proc/sys/kernel
  std::string host = "/";    // <host>/etc, <host>/lib/systemd, <host>/dev, CNI and store dirs
  static Roots under(const std::string& dir) { return Roots{dir, dir, dir}; }
};

struct DoctorOptions {
  std::optional<std::string> master;  // auto-detected when the node has exactly one parent
  std::optional<std::uint16_t> pkey;
  std::optional<std::string> mode;  // "datagram" | "connected"
  std::optional<int> mtu;
  // Absolute paths on the node; resolved under roots.host.
  std::string cni_bin_dir = "/opt/cni/bin";
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::string store_dir;  // "" -> ipam::kDefaultStoreDir
  // The network whose pool files are checked by name ("" = the default pool); unset: none.
  std::optional<std::string> network_name;
  // The IPAM's store as the network's config gives it (apply_config_file, after the flat-file
  // merge); unset: the flat file alone, read by ipam::load_store_location.
  std::optional<ipam::StoreLocation> ipam_location;
  Roots roots;
  // Query libibverbs too (only meaningful when roots.sysfs is "/").
  enum class UseVerbs { kYes, kNo } use_verbs = UseVerbs::kYes;
};

// Fills master/pkey/mode/mtu/store_dir/network_name (those not already set) from the first
// "ipoib" plugin of a CNI network config, a conflist or a NetworkAttachmentDefinition, read and
// validated by plugin::read_network_file — the reader of `ipoib validate-config`, so the doctor
// refuses exactly what validate-config refuses, with the same message. Errors: unreadable file,
// an invalid config, no ipoib plugin in it.
Status apply_config_file(const std::string& path, DoctorOptions& options);

// Runs every check in the documented order. Never fails: problems become FAIL/WARN rows.
std::vector<CheckResult> run_checks(const DoctorOptions& options);

std::string render_table(const std::vector<CheckResult>& results);
// {"ok": bool, "summary": {"pass","warn","fail","skip"}, "checks": [{id,title,status,finding,fix}]}
nlohmann::json to_json(const std::vector<CheckResult>& results);
// 1 when any check FAILed, else 0.
int exit_status(const std::vector<CheckResult>& results);

// The command line with injected streams. Returns the exit status: 0 ready, 1 a check failed,
// 2 usage error.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// `ipoib doctor ...`; argv[0] is "doctor". Writes to stdout/stderr.
int main(int argc, char** argv);

}  // namespace ipoib::doctor
