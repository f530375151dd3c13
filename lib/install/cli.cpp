// `ipoib install` and `ipoib sleep`: argument parsing and the pure texts (flat file, drop-in).
#include <unistd.h>

#include <csignal>
#include <nlohmann/json.hpp>

#include "ipoib/base/fd_stream.h"
#include "ipoib/base/strings.h"
#include "ipoib/install/install.h"

namespace ipoib::install {
namespace {

constexpr std::string_view kUsage =
    R"(usage: ipoib install [options]
Installs this executable as the CNI plugin `ipoib` (atomically: temporary file, fsync, rename),
optionally the `whereabouts` name, the container runtimes' memlock drop-ins and the flat file
that names the cluster IPAM store. A second run changes nothing ("up to date").

  --root DIR            prefix every path with DIR (the DaemonSet: --root /host)
  --bin-dir DIR         CNI plugin directory (default /opt/cni/bin)
  --source FILE         install FILE instead of this executable (/proc/self/exe)
  --whereabouts         also install the name `whereabouts` (a hard link, else a copy); an
                        existing whereabouts that is not ours is refused unless --force
  --fix-memlock         systemd drop-ins with LimitMEMLOCK=infinity for the runtimes
  --runtime NAME        containerd, docker or crio (repeatable; default all three)
  --conf                copy the examples CONF_SRC/{nad,cni} into --conf-dir
  --conf-src DIR        where the examples are (the image carries none)
  --conf-dir DIR        default /usr/local/share/ipoib-cni/conf
  --store-dir DIR       write the flat file ROOT/etc/cni/net.d/whereabouts.d/whereabouts.conf
                        (mode 0600) naming a shared store directory
  --etcd-endpoints URLS the flat file names etcd instead (comma-separated http(s)://host:port)
  --etcd-ca-file F      etcd_ca_cert_file (a path on the node; also --etcd-ca-cert-file)
  --etcd-cert-file F    etcd_cert_file
  --etcd-key-file F     etcd_key_file
  --etcd-username U     etcd_username
  --etcd-password-file F  etcd_password_file (a path on the node; needs --etcd-username)
  --etcd-tls-dir DIR    copy DIR/{ca.crt,tls.crt,tls.key,password} (a mounted Secret; tls.key
                        and password mode 0600 or stricter: defaultMode: 0600) to the node's
                        /etc/cni/net.d/whereabouts.d/etcd/ (0600); the flat file names them
  --node-slice-size N   node_slice_size "/N" (or "/N" given): each node claims slices of /N
                        from the range (needs --etcd-endpoints)
  --flat-file-only      write (or with --uninstall remove) the flat file, nothing else
  --uninstall           remove what the same options installed, only what is provably ours
  --force, -f           replace or remove files that are not ours
  --dry-run, -n         print every action and the text of every file; change nothing
  -h, --help
Exit status: 0 done, 1 failed, 2 usage error.
)";

Error usage_error(std::string msg) { return Error(ErrorCode::kInvalidEnvironment, std::move(msg)); }

bool has_dot_dot(std::string_view path) {
  for (std::string_view part : split(path, '/')) {
    if (part == "..") {
      return true;
    }
  }
  return false;
}

Status check_absolute(std::string_view option, const std::string& path) {
  if (path.empty() || path.front() != '/' || has_dot_dot(path)) {
    return usage_error(std::string(option) + ": \"" + path +
                       "\" must be an absolute path without \"..\"");
  }
  return ok_status();
}

Result<Runtime> parse_runtime(std::string_view name) {
  if (name == "containerd") {
    return Runtime::kContainerd;
  }
  if (name == "docker") {
    return Runtime::kDocker;
  }
  if (name == "crio" || name == "cri-o") {
    return Runtime::kCrio;
  }
  return usage_error("unknown runtime '" + std::string(name) + "' (containerd, docker, crio)");
}

Result<std::vector<std::string>> parse_endpoints(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view e : split(text, ',')) {
    e = trim(e);
    if (!starts_with(e, "http://") && !starts_with(e, "https://")) {
      return usage_error("--etcd-endpoints: \"" + std::string(e) +
                         "\" must be http://host:port or https://host:port");
    }
    const std::string_view rest = e.substr(e.find("//") + 2);
    if (rest.empty() || rest.find_first_of(" \t\"\\") != std::string_view::npos) {
      return usage_error("--etcd-endpoints: \"" + std::string(e) + "\" has no valid host");
    }
    out.emplace_back(e);
  }
  return out;
}

// whereabouts' node_slice_size: "/26" or "26", a prefix length 1..128 (the IPAM checks it
// against each range when it loads the config).
Result<int> parse_slice_size(std::string_view text) {
  const std::string_view digits = starts_with(text, "/") ? text.substr(1) : text;
  const auto n = parse_uint(digits, 8);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos ||
      !n.ok() || *n < 1 || *n > 128) {
    return usage_error("--node-slice-size: \"" + std::string(text) +
                       "\" must be a prefix length such as /26 (1..128)");
  }
  return static_cast<int>(*n);
}

// Checks the combination of options once every one has been read.
Status check_options(const Options& o) {
  IPOIB_TRY(check_absolute("--bin-dir", o.bin_dir));
  IPOIB_TRY(check_absolute("--conf-dir", o.conf_dir));
  if (o.store) {
    const StoreSpec& s = *o.store;
    if (!s.store_dir.empty() && !s.etcd_endpoints.empty()) {
      return usage_error("--store-dir and --etcd-endpoints name two different stores: pick one");
    }
    const bool etcd_extras = !s.etcd_ca_file.empty() || !s.etcd_cert_file.empty() ||
                             !s.etcd_key_file.empty() || !s.etcd_username.empty() ||
                             !s.etcd_password_file.empty() || s.node_slice_prefix != 0;
    if (s.etcd_endpoints.empty() && etcd_extras) {
      return usage_error(
          "--etcd-ca-file, --etcd-cert-file, --etcd-key-file, --etcd-username, "
          "--etcd-password-file and --node-slice-size need --etcd-endpoints");
    }
    if (!s.etcd_password_file.empty() && s.etcd_username.empty()) {
      return usage_error(
          "--etcd-password-file needs --etcd-username (the user it is the "
          "password of)");
    }
    const bool explicit_files =
        !s.etcd_ca_file.empty() || !s.etcd_cert_file.empty() || !s.etcd_key_file.empty();
    if (!o.etcd_tls_dir.empty() && explicit_files) {
      return usage_error(
          "--etcd-tls-dir names the certificate files itself: drop "
          "--etcd-ca-file/--etcd-cert-file/--etcd-key-file");
    }
    if (s.etcd_cert_file.empty() != s.etcd_key_file.empty()) {
      return usage_error("--etcd-cert-file and --etcd-key-file go together");
    }
    if (!s.store_dir.empty()) {
      IPOIB_TRY(check_absolute("--store-dir", s.store_dir));
    }
    for (const auto& [opt, path] : {std::pair{"--etcd-ca-file", &s.etcd_ca_file},
                                    std::pair{"--etcd-cert-file", &s.etcd_cert_file},
                                    std::pair{"--etcd-key-file", &s.etcd_key_file},
                                    std::pair{"--etcd-password-file", &s.etcd_password_file}}) {
      if (!path->empty()) {
        IPOIB_TRY(check_absolute(opt, *path));
      }
    }
  }
  if (!o.etcd_tls_dir.empty() && (!o.store || o.store->etcd_endpoints.empty())) {
    return usage_error("--etcd-tls-dir needs --etcd-endpoints");
  }
  if (o.flat_file_only && !o.store && !o.uninstall) {
    return usage_error("--flat-file-only needs --store-dir or --etcd-endpoints");
  }
  if (o.flat_file_only && (o.whereabouts || o.conf || o.fix_memlock)) {
    return usage_error(
        "--flat-file-only does nothing else: drop --whereabouts/--conf/--fix-memlock");
  }
  return ok_status();
}

}  // namespace

std::string_view install_usage() { return kUsage; }

std::string_view unit_of(Runtime runtime) {
  switch (runtime) {
    case Runtime::kContainerd:
      return "containerd.service";
    case Runtime::kDocker:
      return "docker.service";
    case Runtime::kCrio:
      break;
  }
  return "crio.service";
}

std::string_view memlock_dropin_text() {
  return "# Written by `ipoib install --fix-memlock`; removed by `ipoib install --uninstall "
         "--fix-memlock`.\n"
         "# Containers inherit the runtime's RLIMIT_MEMLOCK, and RDMA (MPI over InfiniBand) "
         "pins its\n"
         "# buffers against it (ibv_reg_mr). Unprivileged container processes cannot raise it "
         "themselves.\n"
         "[Service]\n"
         "LimitMEMLOCK=infinity\n";
}

std::string flat_file_text(const StoreSpec& store) {
  nlohmann::ordered_json doc = nlohmann::ordered_json::object();
  if (!store.etcd_endpoints.empty()) {
    std::string hosts;
    for (const std::string& e : store.etcd_endpoints) {
      hosts += (hosts.empty() ? "" : ",") + e;
    }
    doc["datastore"] = "etcd";
    doc["etcd_host"] = hosts;
    for (const auto& [key, value] : {std::pair{"etcd_ca_cert_file", &store.etcd_ca_file},
                                     std::pair{"etcd_cert_file", &store.etcd_cert_file},
                                     std::pair{"etcd_key_file", &store.etcd_key_file},
                                     std::pair{"etcd_username", &store.etcd_username},
                                     std::pair{"etcd_password_file", &store.etcd_password_file}}) {
      if (!value->empty()) {
        doc[key] = *value;
      }
    }
    if (store.node_slice_prefix != 0) {
      doc["node_slice_size"] = "/" + std::to_string(store.node_slice_prefix);
    }
  } else {
    doc["store_dir"] = store.store_dir;
  }
  return doc.dump(2) + "\n";
}

Result<Options> parse_install_args(const std::vector<std::string_view>& args) {
  Options o;
  StoreSpec store;
  bool store_given = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    std::string_view name = arg;
    std::optional<std::string_view> inline_value;
    if (starts_with(arg, "--")) {
      if (const auto eq = arg.find('='); eq != std::string_view::npos) {
        name = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
      }
    }
    // The value of an option that takes one: `--opt=value` or `--opt value`.
    auto value = [&]() -> Result<std::string> {
      if (inline_value) {
        return std::string(*inline_value);
      }
      if (i + 1 >= args.size()) {
        return usage_error(std::string(name) + " needs a value");
      }
      return std::string(args[++i]);
    };
    // A store option's value: any of them makes the flat file part of the install.
    auto store_value = [&](std::string& target) -> Status {
      IPOIB_TRY_ASSIGN(target, value());
      store_given = true;
      return ok_status();
    };
    auto flag = [&](bool& target) -> Status {
      if (inline_value) {
        return usage_error(std::string(name) + " takes no value");
      }
      target = true;
      return ok_status();
    };
    if (name == "--root") {
      IPOIB_TRY_ASSIGN(o.root, value());
    } else if (name == "--bin-dir") {
      IPOIB_TRY_ASSIGN(o.bin_dir, value());
    } else if (name == "--source") {
      IPOIB_TRY_ASSIGN(o.source, value());
    } else if (name == "--conf-dir") {
      IPOIB_TRY_ASSIGN(o.conf_dir, value());
    } else if (name == "--conf-src") {
      IPOIB_TRY_ASSIGN(o.conf_src, value());
    } else if (name == "--runtime") {
      IPOIB_TRY_ASSIGN(std::string r, value());
      IPOIB_TRY_ASSIGN(Runtime rt, parse_runtime(r));
      o.runtimes.push_back(rt);
    } else if (name == "--store-dir") {
      IPOIB_TRY(store_value(store.store_dir));
    } else if (name == "--etcd-endpoints") {
      IPOIB_TRY_ASSIGN(std::string e, value());
      IPOIB_TRY_ASSIGN(store.etcd_endpoints, parse_endpoints(e));
      store_given = true;
    } else if (name == "--etcd-ca-file" || name == "--etcd-ca-cert-file") {
      IPOIB_TRY(store_value(store.etcd_ca_file));
    } else if (name == "--etcd-cert-file") {
      IPOIB_TRY(store_value(store.etcd_cert_file));
    } else if (name == "--etcd-key-file") {
      IPOIB_TRY(store_value(store.etcd_key_file));
    } else if (name == "--etcd-tls-dir") {
      IPOIB_TRY(store_value(o.etcd_tls_dir));
    } else if (name == "--etcd-username") {
      IPOIB_TRY(store_value(store.etcd_username));
    } else if (name == "--etcd-password-file") {
      IPOIB_TRY(store_value(store.etcd_password_file));
    } else if (name == "--node-slice-size") {
      IPOIB_TRY_ASSIGN(std::string n, value());
      IPOIB_TRY_ASSIGN(store.node_slice_prefix, parse_slice_size(n));
      store_given = true;
    } else if (name == "--whereabouts") {
      IPOIB_TRY(flag(o.whereabouts));
    } else if (name == "--fix-memlock") {
      IPOIB_TRY(flag(o.fix_memlock));
    } else if (name == "--conf") {
      IPOIB_TRY(flag(o.conf));
    } else if (name == "--uninstall") {
      IPOIB_TRY(flag(o.uninstall));
    } else if (name == "--flat-file-only") {
      IPOIB_TRY(flag(o.flat_file_only));
    } else if (name == "--dry-run" || name == "-n") {
      IPOIB_TRY(flag(o.dry_run));
    } else if (name == "--force" || name == "-f") {
      IPOIB_TRY(flag(o.force));
    } else if (name == "--help" || name == "-h") {
      o.help = true;
    } else {
      return usage_error("unknown option " + std::string(arg));
    }
  }
  if (store_given) {
    o.store = std::move(store);
  }
  if (o.runtimes.empty()) {
    o.runtimes = {Runtime::kContainerd, Runtime::kDocker, Runtime::kCrio};
  }
  IPOIB_TRY(check_options(o));
  return o;
}

int install_main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  FdOstream out(STDOUT_FILENO);
  FdOstream err(STDERR_FILENO, Flush::kEveryWrite);
  auto opts = parse_install_args(args);
  if (!opts.ok()) {
    err << "install: " << opts.error().msg() << "\n" << kUsage;
    return 2;
  }
  if (opts->help) {
    out << kUsage;
    return 0;
  }
  const Status done = run_install(*opts, out);
  out.flush();
  if (!done.ok()) {
    err << "install: error: " << done.error().msg() << "\n";
    return 1;
  }
  return 0;
}

int sleep_main(int argc, char** argv) {
  if (argc > 1) {
    const std::string_view a = argv[1];
    if (a == "--help" || a == "-h") {
      FdOstream(STDOUT_FILENO)
          << "usage: ipoib sleep\nWaits until SIGTERM or SIGINT, then exits 0 (the "
             "DaemonSet's main container;\nthe image has no shell).\n";
      return 0;
    }
    FdOstream(STDERR_FILENO) << "ipoib sleep: takes no arguments\n";
    return 2;
  }
  // Blocked and taken with sigwait: works as PID 1 too, where the default action of an
  // unhandled SIGTERM is to ignore it (pid_namespaces(7)).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
    return 1;
  }
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return 0;
}

}  // namespace ipoib::install
