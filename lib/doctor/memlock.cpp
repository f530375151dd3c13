// Container runtime memlock (seed document, "Rootless applications and Memlock rlimit"): a
// container process inherits RLIMIT_MEMLOCK from the runtime that starts it (containerd ->
// shim -> runc), and an unprivileged init cannot raise it (setrlimit needs CAP_SYS_RESOURCE), so
// ibv_reg_mr() in rootless MPI fails unless the runtime itself runs unlimited.
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ipoib/base/strings.h"
#include "ipoib/ib/sysfs_file.h"
#include "lib/doctor/internal.h"

namespace ipoib::doctor::detail {
namespace {

constexpr std::string_view kUnitDirs[] = {"/etc/systemd/system", "/run/systemd/system",
                                          "/lib/systemd/system", "/usr/lib/systemd/system"};

std::optional<std::uint64_t> parse_limit_token(std::string_view token, bool& ok) {
  ok = true;
  if (token == "unlimited") {
    return std::nullopt;
  }
  auto value = parse_uint(token, 64);
  if (!value.ok()) {
    ok = false;
    return std::nullopt;
  }
  return *value;
}

std::string format_bytes(std::optional<std::uint64_t> bytes) {
  if (!bytes) {
    return "unlimited";
  }
  std::string out = std::to_string(*bytes) + " bytes";
  constexpr std::uint64_t kKiB = 1024;
  constexpr std::uint64_t kMiB = kKiB * kKiB;
  if (*bytes >= kKiB && *bytes % kKiB == 0) {
    out += *bytes % kMiB == 0 ? " (" + std::to_string(*bytes / kMiB) + " MiB)"
                              : " (" + std::to_string(*bytes / kKiB) + " KiB)";
  }
  return out;
}

std::string describe(const MemlockLimit& limit) {
  if (limit.soft_bytes == limit.hard_bytes) {
    return format_bytes(limit.soft_bytes);
  }
  return "soft " + format_bytes(limit.soft_bytes) + ", hard " + format_bytes(limit.hard_bytes);
}

// Applies one unit file's [Service] LimitMEMLOCK= and ExecStart= to `info`.
void apply_unit_text(std::string_view text, UnitInfo& info, std::string_view section_wanted,
                     std::string_view key_limit) {
  std::string section;
  std::string logical;
  const auto lines = split(text, '\n');
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = trim(lines[i]);
    // systemd.syntax: a trailing backslash joins the next line.
    if (!line.empty() && line.back() == '\\') {
      logical += std::string(line.substr(0, line.size() - 1)) + " ";
      continue;
    }
    logical += std::string(line);
    const std::string current = std::string(trim(logical));
    logical.clear();
    if (current.empty() || current[0] == '#' || current[0] == ';') {
      continue;
    }
    if (current.front() == '[' && current.back() == ']') {
      section = current.substr(1, current.size() - 2);
      continue;
    }
    if (section != section_wanted) {
      continue;
    }
    const auto eq = current.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    const std::string key(trim(std::string_view(current).substr(0, eq)));
    const std::string value(trim(std::string_view(current).substr(eq + 1)));
    if (key == key_limit) {
      info.limit_memlock = value.empty() ? std::nullopt : std::optional<std::string>(value);
    } else if (key == "ExecStart" && !value.empty()) {
      info.exec_start = value;
    }
  }
}

std::vector<std::string> read_dropins(const std::string& host_root, std::string_view unit_d) {
  // Same file name in a higher-priority directory masks the lower one; applied by file name.
  std::map<std::string, std::string> by_name;
  for (auto it = std::rbegin(kUnitDirs); it != std::rend(kUnitDirs); ++it) {
    const std::string dir = under(host_root, std::string(*it) + "/" + std::string(unit_d));
    auto names = ib::list_directory(dir);
    if (!names.ok()) {
      continue;
    }
    for (const std::string& name : *names) {
      if (name.size() > 5 && name.substr(name.size() - 5) == ".conf") {
        std::string path = dir;
        path += "/";
        path += name;
        by_name[name] = std::move(path);
      }
    }
  }
  std::vector<std::string> files;
  files.reserve(by_name.size());
  for (const auto& [name, path] : by_name) {
    files.push_back(path);
  }
  return files;
}

std::string display_path(const std::string& host_root, const std::string& path) {
  if (host_root == "/" || host_root.empty()) {
    return path;
  }
  std::string root = host_root;
  while (root.size() > 1 && root.back() == '/') {
    root.pop_back();
  }
  return starts_with(path, root) ? path.substr(root.size()) : path;
}

// systemd's DefaultLimitMEMLOCK= (system.conf [Manager]) applies to units that set none.
std::optional<std::string> default_limit_memlock(const std::string& host_root) {
  UnitInfo manager;
  std::vector<std::string> files = {under(host_root, "/etc/systemd/system.conf")};
  if (auto names = ib::list_directory(under(host_root, "/etc/systemd/system.conf.d")); names.ok()) {
    for (const std::string& name : *names) {
      files.push_back(under(host_root, "/etc/systemd/system.conf.d/" + name));
    }
  }
  for (const std::string& file : files) {
    if (auto text = ib::read_text_file(file); text.ok()) {
      apply_unit_text(*text, manager, "Manager", "DefaultLimitMEMLOCK");
    }
  }
  return manager.limit_memlock;
}

struct RuntimeProcess {
  int pid = 0;
  std::optional<MemlockLimit> limit;
  std::string cmdline;  // NULs replaced by spaces
};

std::map<std::string, std::vector<RuntimeProcess>> scan_processes(const std::string& procfs_root) {
  std::map<std::string, std::vector<RuntimeProcess>> found;
  auto entries = ib::list_directory(under(procfs_root, "/proc"));
  if (!entries.ok()) {
    return found;
  }
  for (const std::string& entry : *entries) {
    auto pid = parse_uint(entry, 31);
    if (!pid.ok()) {
      continue;
    }
    const std::string dir = under(procfs_root, "/proc/" + entry);
    auto comm = ib::read_trimmed(dir + "/comm");
    if (!comm.ok() || (*comm != "containerd" && *comm != "dockerd" && *comm != "crio")) {
      continue;
    }
    RuntimeProcess process;
    process.pid = static_cast<int>(*pid);
    if (auto limits = ib::read_text_file(dir + "/limits"); limits.ok()) {
      process.limit = parse_proc_limits(*limits);
    }
    if (auto cmdline = ib::read_text_file(dir + "/cmdline"); cmdline.ok()) {
      process.cmdline = *cmdline;
      std::replace(process.cmdline.begin(), process.cmdline.end(), '\0', ' ');
    }
    found[*comm].push_back(std::move(process));
  }
  return found;
}

bool daemon_json_memlock_unlimited(const std::string& host_root, std::string& note) {
  auto text = ib::read_text_file(under(host_root, "/etc/docker/daemon.json"));
  if (!text.ok()) {
    return false;
  }
  const auto doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    note = "/etc/docker/daemon.json is not valid JSON";
    return false;
  }
  const auto ulimits = doc.find("default-ulimits");
  if (ulimits == doc.end() || !ulimits->is_object()) {
    return false;
  }
  const auto memlock = ulimits->find("memlock");
  if (memlock == ulimits->end() || !memlock->is_object()) {
    return false;
  }
  const auto soft = memlock->find("Soft");
  const auto hard = memlock->find("Hard");
  return soft != memlock->end() && hard != memlock->end() && soft->is_number_integer() &&
         hard->is_number_integer() && soft->get<long long>() == -1 && hard->get<long long>() == -1;
}

bool crio_conf_memlock_unlimited(const std::string& host_root) {
  std::vector<std::string> files = {under(host_root, "/etc/crio/crio.conf")};
  if (auto names = ib::list_directory(under(host_root, "/etc/crio/crio.conf.d")); names.ok()) {
    for (const std::string& name : *names) {
      files.push_back(under(host_root, "/etc/crio/crio.conf.d/" + name));
    }
  }
  bool unlimited = false;
  for (const std::string& file : files) {
    auto text = ib::read_text_file(file);
    if (!text.ok()) {
      continue;
    }
    for (std::string_view line : split(*text, '\n')) {
      line = trim(line);
      if (starts_with(line, "default_ulimits") &&
          line.find("memlock=-1:-1") != std::string_view::npos) {
        unlimited = true;
      }
    }
  }
  return unlimited;
}

std::string unit_summary(const UnitInfo& unit, const std::optional<std::string>& manager_default,
                         const std::string& host_root) {
  if (!unit.found()) {
    return "no " + unit.unit + " unit file found";
  }
  std::string files;
  for (const std::string& file : unit.files) {
    files += (files.empty() ? "" : ", ") + display_path(host_root, file);
  }
  if (unit.limit_memlock) {
    return unit.unit + " sets LimitMEMLOCK=" + *unit.limit_memlock + " (" + files + ")";
  }
  if (manager_default) {
    return unit.unit + " sets no LimitMEMLOCK; systemd's DefaultLimitMEMLOCK=" + *manager_default +
           " applies (" + files + ")";
  }
  return unit.unit + " sets no LimitMEMLOCK, so systemd's default (8 MiB or less) applies (" +
         files + ")";
}

}  // namespace

std::optional<MemlockLimit> parse_proc_limits(std::string_view limits_text) {
  constexpr std::string_view kRow = "Max locked memory";
  for (std::string_view line : split(limits_text, '\n')) {
    if (!starts_with(line, kRow)) {
      continue;
    }
    std::istringstream in{std::string(line.substr(kRow.size()))};
    std::string soft;
    std::string hard;
    if (!(in >> soft >> hard)) {
      return std::nullopt;
    }
    bool soft_ok = false;
    bool hard_ok = false;
    MemlockLimit limit;
    limit.soft_bytes = parse_limit_token(soft, soft_ok);
    limit.hard_bytes = parse_limit_token(hard, hard_ok);
    if (!soft_ok || !hard_ok) {
      return std::nullopt;
    }
    return limit;
  }
  return std::nullopt;
}

UnitInfo read_unit(const std::string& host_root, std::string_view unit) {
  UnitInfo info;
  info.unit = std::string(unit);
  for (std::string_view dir : kUnitDirs) {
    const std::string path = under(host_root, std::string(dir) + "/" + std::string(unit));
    if (auto text = ib::read_text_file(path); text.ok()) {
      info.files.push_back(path);
      apply_unit_text(*text, info, "Service", "LimitMEMLOCK");
      break;
    }
  }
  for (const std::string& path : read_dropins(host_root, std::string(unit) + ".d")) {
    if (auto text = ib::read_text_file(path); text.ok()) {
      info.files.push_back(path);
      apply_unit_text(*text, info, "Service", "LimitMEMLOCK");
    }
  }
  return info;
}

bool memlock_value_unlimited(std::string_view value) {
  value = trim(value);
  return value == "infinity" || value == "infinity:infinity";
}

bool docker_args_memlock_unlimited(std::string_view args) {
  for (std::string_view spelling : {"memlock=-1:-1", "memlock=-1", "memlock=unlimited"}) {
    std::size_t pos = 0;
    while ((pos = args.find(spelling, pos)) != std::string_view::npos) {
      const std::size_t end = pos + spelling.size();
      const bool whole =
          end == args.size() || args[end] == ' ' || args[end] == '"' || args[end] == '\'';
      if (whole && args.find("default-ulimit") != std::string_view::npos) {
        return true;
      }
      pos = end;
    }
  }
  return false;
}

std::string memlock_fix(std::string_view runtime) {
  std::string fix =
      "Rootless MPI cannot raise its own memlock limit, so the runtime must run unlimited. "
      "Remedy 1 (cluster administrator, runtime level): ";
  if (runtime == "dockerd") {
    fix +=
        "for docker, append `--default-ulimit memlock=-1:-1` inside the docker service file, at "
        "the `ExecStart=/usr/bin/dockerd` line, then `systemctl daemon-reload && systemctl "
        "restart docker`. ";
  } else if (runtime == "crio") {
    fix +=
        "for CRI-O, add `LimitMEMLOCK=infinity` under `[Service]` of crio.service (or "
        "`default_ulimits = [\"memlock=-1:-1\"]` in /etc/crio/crio.conf), then `systemctl "
        "daemon-reload && systemctl restart crio`. ";
  } else {
    fix +=
        "for containerd, edit the service file and add `LimitMEMLOCK=infinity` under the "
        "`[Service]` line, then `systemctl daemon-reload && systemctl restart containerd`. ";
  }
  fix +=
      "`scripts/install --fix-memlock` writes these as systemd drop-ins (`--dry-run` shows "
      "them). Remedy 2 (per application): let the app run init as root before dropping to an "
      "unprivileged user, so it sets memlock to unlimited before MPI starts (JARVICE: set "
      "`JARVICE_APP_ALLOW_ROOT_INIT` to `true` in override.yaml).";
  return fix;
}

namespace {

struct Runtime {
  std::string comm;
  std::string unit;
};

// The row for one runtime, or nullopt when it is neither running nor installed.
std::optional<CheckResult> runtime_row(
    const Runtime& runtime, const Roots& roots,
    const std::map<std::string, std::vector<RuntimeProcess>>& processes,
    const std::optional<std::string>& manager_default) {
  const UnitInfo unit = read_unit(roots.host, runtime.unit);
  const auto running = processes.find(runtime.comm);
  const bool is_running = running != processes.end() && !running->second.empty();
  if (!is_running && !unit.found()) {
    return std::nullopt;
  }
  CheckResult row;
  row.id = "memlock." + runtime.comm;
  row.title = runtime.comm + " memlock limit";
  const std::string unit_text = unit_summary(unit, manager_default, roots.host);
  const bool unit_unlimited = unit.limit_memlock
                                  ? memlock_value_unlimited(*unit.limit_memlock)
                                  : (manager_default && memlock_value_unlimited(*manager_default));

  // Runtime-specific settings that set the containers' limit regardless of the daemon's own.
  std::string config_note;
  bool config_unlimited = false;
  if (runtime.comm == "dockerd") {
    std::string args = unit.exec_start;
    if (is_running) {
      args += " " + running->second.front().cmdline;
    }
    config_unlimited = docker_args_memlock_unlimited(args) ||
                       daemon_json_memlock_unlimited(roots.host, config_note);
    if (config_unlimited) {
      config_note =
          "dockerd runs with --default-ulimit memlock=-1:-1 (or daemon.json "
          "default-ulimits memlock -1)";
    }
  } else if (runtime.comm == "crio" && crio_conf_memlock_unlimited(roots.host)) {
    config_unlimited = true;
    config_note = "crio.conf sets default_ulimits memlock=-1:-1";
  }

  if (is_running) {
    const RuntimeProcess& process = running->second.front();
    const std::string who = runtime.comm + " (pid " + std::to_string(process.pid) + ")";
    if (config_unlimited) {
      row.status = CheckStatus::kPass;
      row.finding = config_note + "; " + unit_text;
    } else if (!process.limit) {
      row.status = CheckStatus::kWarn;
      row.finding = who + ": Max locked memory unreadable in /proc/" + std::to_string(process.pid) +
                    "/limits; " + unit_text;
      row.fix = memlock_fix(runtime.comm);
    } else if (process.limit->unlimited()) {
      row.status = CheckStatus::kPass;
      row.finding = who + ": Max locked memory unlimited; " + unit_text;
    } else {
      row.status = CheckStatus::kFail;
      row.finding = who + ": Max locked memory " + describe(*process.limit) + "; " + unit_text;
      if (unit_unlimited) {
        row.finding +=
            " — the unit allows unlimited, but the running process started before "
            "it did";
        row.fix = "systemctl daemon-reload && systemctl restart " +
                  runtime.unit.substr(0, runtime.unit.find('.')) + ". " + memlock_fix(runtime.comm);
      } else {
        row.fix = memlock_fix(runtime.comm);
      }
    }
  } else {
    // Installed, not running: the unit decides what it will get when started.
    if (config_unlimited || unit_unlimited) {
      row.status = CheckStatus::kPass;
      row.finding = runtime.comm + " not running; " + (config_unlimited ? config_note : unit_text);
    } else {
      row.status = CheckStatus::kWarn;
      row.finding = runtime.comm + " not running; when started: " + unit_text;
      row.fix = memlock_fix(runtime.comm);
    }
  }
  return row;
}

}  // namespace

std::vector<CheckResult> check_memlock(const Roots& roots) {
  const Runtime runtimes[] = {{"containerd", "containerd.service"},
                              {"dockerd", "docker.service"},
                              {"crio", "crio.service"}};
  const auto processes = scan_processes(roots.procfs);
  const auto manager_default = default_limit_memlock(roots.host);
  std::vector<CheckResult> results;
  for (const Runtime& runtime : runtimes) {
    if (auto row = runtime_row(runtime, roots, processes, manager_default)) {
      results.push_back(std::move(*row));
    }
  }
  if (results.empty()) {
    results.push_back({"memlock.runtime", "container runtime memlock limit", CheckStatus::kSkip,
                       "no containerd, dockerd or crio process running and no unit file found",
                       ""});
  }
  return results;
}

}  // namespace ipoib::doctor::detail
