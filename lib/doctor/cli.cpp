#include <unistd.h>

#include <sstream>

#include "ipoib/base/fd_stream.h"
#include "ipoib/base/strings.h"
#include "ipoib/doctor/doctor.h"
#include "lib/doctor/internal.h"

namespace ipoib::doctor {
namespace detail {

// Kept in the executable (used, external linkage) so check_whereabouts() can find it in a copy.
extern const char kIpoibBinaryMarker[];
[[gnu::used]] const char kIpoibBinaryMarker[] = "ipoib-cni-binary-marker:v1";

std::string_view binary_marker_text() { return kIpoibBinaryMarker; }

std::string under(const std::string& root, std::string_view absolute) {
  while (!absolute.empty() && absolute.front() == '/') {
    absolute.remove_prefix(1);
  }
  std::string out = root.empty() ? std::string("/") : root;
  if (out.back() != '/') {
    out.push_back('/');
  }
  return out + std::string(absolute);
}

}  // namespace detail

namespace {

constexpr std::string_view kUsage =
    R"(usage: ipoib doctor [options]
Checks this node for what IPoIB pods (and MPI over them) need; prints PASS/WARN/FAIL/SKIP, the
finding and the exact fix. Exit status: 0 ready, 1 a check failed, 2 usage error.

  --master IF          IPoIB parent interface (default: the node's only IPoIB parent)
  --pkey P             partition key to check (0x8001 or decimal)
  --mode M             datagram | connected
  --mtu N              MTU the network configures
  --config FILE        take master/pkey/mode/mtu from a CNI config, conflist or
                       NetworkAttachmentDefinition (JSON or YAML); explicit options win
  --cni-bin-dir DIR    default /opt/cni/bin
  --cni-conf-dir DIR   default /etc/cni/net.d
  --store-dir DIR      IPAM store (default /var/lib/cni/ipoib-ipam)
  --json               one JSON document instead of the table
  --no-verbs           do not query libibverbs (sysfs only)
  --root DIR           read DIR/sys, DIR/proc, DIR/etc, DIR/dev, ... (fixtures)
  --sysfs-root DIR     read DIR/sys instead of /sys
  --procfs-root DIR    read DIR/proc instead of /proc
  --etc-root DIR       read DIR/etc, DIR/lib/systemd, DIR/dev and the CNI/store dirs under DIR
  -h, --help
)";

}  // namespace

std::string_view to_string(CheckStatus status) {
  switch (status) {
    case CheckStatus::kPass:
      return "PASS";
    case CheckStatus::kWarn:
      return "WARN";
    case CheckStatus::kFail:
      return "FAIL";
    case CheckStatus::kSkip:
      break;
  }
  return "SKIP";
}

int exit_status(const std::vector<CheckResult>& results) {
  for (const CheckResult& r : results) {
    if (r.status == CheckStatus::kFail) {
      return 1;
    }
  }
  return 0;
}

namespace {

struct Counts {
  int pass = 0;
  int warn = 0;
  int fail = 0;
  int skip = 0;
};

Counts count(const std::vector<CheckResult>& results) {
  Counts c;
  for (const CheckResult& r : results) {
    switch (r.status) {
      case CheckStatus::kPass:
        ++c.pass;
        break;
      case CheckStatus::kWarn:
        ++c.warn;
        break;
      case CheckStatus::kFail:
        ++c.fail;
        break;
      case CheckStatus::kSkip:
        ++c.skip;
        break;
    }
  }
  return c;
}

}  // namespace

std::string render_table(const std::vector<CheckResult>& results) {
  std::size_t id_width = 5;
  for (const CheckResult& r : results) {
    id_width = std::max(id_width, r.id.size());
  }
  std::ostringstream out;
  const auto pad = [](const std::string& s, std::size_t width) {
    return s + std::string(width > s.size() ? width - s.size() : 0, ' ');
  };
  out << "STATUS  " << pad("CHECK", id_width) << "  FINDING\n";
  for (const CheckResult& r : results) {
    out << pad(std::string(to_string(r.status)), 6) << "  " << pad(r.id, id_width) << "  "
        << r.finding << "\n";
    if (!r.fix.empty()) {
      out << std::string(8 + id_width + 2, ' ') << "fix: " << r.fix << "\n";
    }
  }
  const Counts c = count(results);
  out << "\n"
      << c.pass << " pass, " << c.warn << " warn, " << c.fail << " fail, " << c.skip
      << " skip: " << (c.fail == 0 ? "node ready" : "node NOT ready") << "\n";
  return out.str();
}

nlohmann::json to_json(const std::vector<CheckResult>& results) {
  const Counts c = count(results);
  nlohmann::json checks = nlohmann::json::array();
  for (const CheckResult& r : results) {
    checks.push_back({{"id", r.id},
                      {"title", r.title},
                      {"status", std::string(to_string(r.status))},
                      {"finding", r.finding},
                      {"fix", r.fix}});
  }
  return {{"ok", c.fail == 0},
          {"summary", {{"pass", c.pass}, {"warn", c.warn}, {"fail", c.fail}, {"skip", c.skip}}},
          {"checks", std::move(checks)}};
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  DoctorOptions options;
  std::optional<std::string> config_path;
  bool json_output = false;
  std::optional<std::string> root;
  std::optional<std::string> sysfs_root;
  std::optional<std::string> procfs_root;
  std::optional<std::string> host_root;
  const auto usage_error = [&](const std::string& message) {
    err << "ipoib doctor: " << message << "\n" << kUsage;
    return 2;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::optional<std::string> inline_value;
    if (starts_with(arg, "--") && arg.find('=') != std::string::npos) {
      inline_value = arg.substr(arg.find('=') + 1);
      arg = arg.substr(0, arg.find('='));
    }
    const auto value = [&]() -> std::optional<std::string> {
      if (inline_value) {
        return inline_value;
      }
      if (i + 1 < args.size()) {
        return args[++i];
      }
      return std::nullopt;
    };
    if (arg == "-h" || arg == "--help") {
      out << kUsage;
      return 0;
    }
    if (arg == "--json") {
      json_output = true;
      continue;
    }
    if (arg == "--no-verbs") {
      options.use_verbs = DoctorOptions::UseVerbs::kNo;
      continue;
    }
    static const char* const kWithValue[] = {
        "--master",       "--pkey",      "--mode", "--mtu",        "--config",      "--cni-bin-dir",
        "--cni-conf-dir", "--store-dir", "--root", "--sysfs-root", "--procfs-root", "--etc-root"};
    if (std::find(std::begin(kWithValue), std::end(kWithValue), arg) == std::end(kWithValue)) {
      return usage_error("unknown option '" + args[i] + "'");
    }
    const auto v = value();
    if (!v) {
      return usage_error(arg + " needs a value");
    }
    if (arg == "--master") {
      options.master = *v;
    } else if (arg == "--pkey") {
      auto pkey = parse_uint(*v, 16);
      if (!pkey.ok()) {
        return usage_error("--pkey '" + *v + "': " + pkey.error().msg());
      }
      options.pkey = static_cast<std::uint16_t>(*pkey);
    } else if (arg == "--mode") {
      if (*v != "datagram" && *v != "connected") {
        return usage_error("--mode must be datagram or connected");
      }
      options.mode = *v;
    } else if (arg == "--mtu") {
      auto mtu = parse_uint(*v, 31);
      if (!mtu.ok()) {
        return usage_error("--mtu '" + *v + "': " + mtu.error().msg());
      }
      options.mtu = static_cast<int>(*mtu);
    } else if (arg == "--config") {
      config_path = *v;
    } else if (arg == "--cni-bin-dir") {
      options.cni_bin_dir = *v;
    } else if (arg == "--cni-conf-dir") {
      options.cni_conf_dir = *v;
    } else if (arg == "--store-dir") {
      options.store_dir = *v;
    } else if (arg == "--root") {
      root = *v;
    } else if (arg == "--sysfs-root") {
      sysfs_root = *v;
    } else if (arg == "--procfs-root") {
      procfs_root = *v;
    } else if (arg == "--etc-root") {
      host_root = *v;
    }
  }
  if (root) {
    options.roots = Roots::under(*root);
  }
  if (sysfs_root) {
    options.roots.sysfs = *sysfs_root;
  }
  if (procfs_root) {
    options.roots.procfs = *procfs_root;
  }
  if (host_root) {
    options.roots.host = *host_root;
  }
  if (config_path) {
    if (Status s = apply_config_file(*config_path, options); !s.ok()) {
      err << "ipoib doctor: " << s.error().msg() << "\n";
      return 2;
    }
  }
  const std::vector<CheckResult> results = run_checks(options);
  if (json_output) {
    out << to_json(results).dump(2) << "\n";
  } else {
    out << render_table(results);
  }
  return exit_status(results);
}

int main(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    args.emplace_back(argv[i]);
  }
  FdOstream out(STDOUT_FILENO);
  FdOstream err(STDERR_FILENO, Flush::kEveryWrite);
  return run_cli(args, out, err);
}

}  // namespace ipoib::doctor
