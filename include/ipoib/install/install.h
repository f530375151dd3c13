// ipoib/install/install.h — `ipoib install`: the executable installs itself on a node, so the
// image needs no shell.
//
//   ipoib install --root /host --whereabouts          # DaemonSet init container
//   ipoib install --store-dir /shared/ipam --flat-file-only
//   ipoib install --uninstall --whereabouts --dry-run
//
//   IPOIB_TRY_ASSIGN(Options opts, parse_install_args(args));   // pure
//   std::string text = flat_file_text(*opts.store);             // pure
//   IPOIB_TRY(run_install(opts, std::cout));                    // the filesystem work
//
// Every file lands by rename(2) of a fsync'ed temporary file in the same directory: a runtime
// exec'ing the plugin meanwhile runs the old or the new file, never a half-written one. Nothing
// that is not provably ours (same inode or bytes as this executable, or an ELF file carrying
// this project's marker) is replaced or removed without --force.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"

namespace ipoib::install {

enum class Runtime { kContainerd, kDocker, kCrio };

// The cluster store that the flat file (whereabouts.conf) names, in whereabouts' keys: either a
// shared `store_dir`, or etcd (`datastore`, `etcd_host`, `etcd_*_file`).
struct StoreSpec {
  std::string store_dir;                    // absolute
  std::vector<std::string> etcd_endpoints;  // http(s)://host:port
  std::string etcd_ca_file;                 // -> etcd_ca_cert_file
  std::string etcd_cert_file;               // -> etcd_cert_file
  std::string etcd_key_file;                // -> etcd_key_file
  std::string etcd_username;                // -> etcd_username
  std::string etcd_password_file;           // -> etcd_password_file (needs etcd_username)
  int node_slice_prefix = 0;                // -> node_slice_size "/N"; 0 = per-address mode
};

struct Options {
  std::string root = "/";
  std::string bin_dir = "/opt/cni/bin";
  // What to install; /proc/self/exe unless given (the tests and the wrapper script use it).
  std::string source = "/proc/self/exe";
  bool whereabouts = false;
  bool force = false;
  bool uninstall = false;
  bool dry_run = false;
  bool fix_memlock = false;
  std::vector<Runtime> runtimes;  // empty = all three
  bool conf = false;
  std::string conf_dir = "/usr/local/share/ipoib-cni/conf";
  std::string conf_src;  // holds nad/ and cni/; required by --conf
  std::optional<StoreSpec> store;
  std::string flat_file = "/etc/cni/net.d/whereabouts.d/whereabouts.conf";
  // A Secret's directory (ca.crt, tls.crt, tls.key, password): what it holds is copied, 0600, to
  // kEtcdTlsHostDir on the node, and the flat file's etcd_*_file keys name the copies. tls.key
  // and password must already be 0600 or stricter there (etcd::read_private_file, the client's
  // rule): the Secret volume's defaultMode: 0600.
  std::string etcd_tls_dir;
  bool flat_file_only = false;  // write (or remove) the flat file and nothing else
  bool help = false;
};

// Parses the arguments after `install`. Errors are usage errors (kInvalidEnvironment).
Result<Options> parse_install_args(const std::vector<std::string_view>& args);

// The flat file's JSON text (ends with a newline); keys in a fixed order, so equal specs give
// equal bytes and a re-run is "up to date".
std::string flat_file_text(const StoreSpec& store);

// The systemd drop-in that gives a container runtime LimitMEMLOCK=infinity.
std::string_view memlock_dropin_text();
inline constexpr std::string_view kEtcdTlsHostDir = "/etc/cni/net.d/whereabouts.d/etcd";
inline constexpr std::string_view kMemlockDropinName = "50-ipoib-cni-memlock.conf";
std::string_view unit_of(Runtime runtime);

// Does what `opts` asks, printing one line per action ("installed X", "up to date: X",
// "would ..." under dry_run) to `out`.
Status run_install(const Options& opts, std::ostream& out);

std::string_view install_usage();

// `ipoib install ...`: 0 done, 1 failed, 2 usage error.
int install_main(int argc, char** argv);

// `ipoib sleep`: blocks until SIGTERM or SIGINT, then exits 0. The DaemonSet's main container
// (the image has no shell, so no `sleep`).
int sleep_main(int argc, char** argv);

}  // namespace ipoib::install
