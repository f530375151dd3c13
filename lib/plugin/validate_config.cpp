// `ipoib validate-config FILE`: the configuration checks of ADD, without a kernel, and for each
// network its ranges and its store (network_file.h describe_network).
#include <fcntl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "ipoib/base/file.h"
#include "ipoib/cluster/keys.h"
#include "ipoib/etcd/client.h"
#include "ipoib/ipam/config.h"
#include "ipoib/ipam/store.h"
#include "ipoib/plugin/config.h"
#include "ipoib/plugin/ipoib_plugin.h"
#include "ipoib/plugin/network_file.h"

namespace ipoib::plugin {

std::string_view to_string(StoreScope scope) {
  return scope == StoreScope::kShared ? "shared" : "local";
}

FilesystemKind classify_filesystem(std::uint64_t magic) {
  // statfs(2) f_type values (linux/magic.h, and the vendors' for Lustre, GPFS and BeeGFS).
  // Shared: filesystems that several hosts mount at once with fcntl locks that hold across them.
  struct Known {
    std::uint64_t magic;
    const char* name;
    bool shared;
  };
  static constexpr Known kKnown[] = {
      {0x6969, "nfs", true},        {0x0bd00bd0, "lustre", true},
      {0x47504653, "gpfs", true},   {0x00c36400, "cephfs", true},
      {0x19830326, "beegfs", true}, {0x01161970, "gfs2", true},
      {0x7461636f, "ocfs2", true},  {0xff534d42, "cifs", true},
      {0xfe534d42, "smb2", true},   {0x6b414653, "afs", true},
      {0xef53, "ext4", false},      {0x58465342, "xfs", false},
      {0x9123683e, "btrfs", false}, {0x2fc12fc1, "zfs", false},
      {0x01021994, "tmpfs", false}, {0x794c7630, "overlayfs", false},
      {0x65735546, "fuse", false},  {0x01021997, "9p", false},
      {0x858458f6, "ramfs", false}, {0x4d44, "vfat", false},
  };
  for (const Known& k : kKnown) {
    if (k.magic == magic) {
      return {k.name, k.shared};
    }
  }
  char hex[24];
  (void)std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(magic));
  return {hex, false};
}

FilesystemProbe statfs_probe() {
  return [](const std::string& dir) -> std::optional<FilesystemInfo> {
    // The store creates missing directories, so they would land on the nearest existing one.
    std::string path = dir.empty() ? std::string("/") : dir;
    for (;;) {
      struct statfs st {};
      if (::statfs(path.c_str(), &st) == 0) {
        return FilesystemInfo{path, static_cast<std::uint64_t>(st.f_type)};
      }
      if (errno != ENOENT && errno != ENOTDIR) {
        return std::nullopt;
      }
      const auto slash = path.find_last_of('/');
      if (path == "/" || slash == std::string::npos) {
        return std::nullopt;
      }
      path = slash == 0 ? std::string("/") : path.substr(0, slash);
    }
  };
}

namespace {

std::string decimal(u128 v) {
  std::string out;
  do {
    out.insert(out.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  return out;
}

std::string describe_range(const std::string& key, const ipam::Range& r) {
  std::string line = "range " + key + ": " + r.first.to_string() + "-" + r.last.to_string() + ", " +
                     decimal(r.usable_count()) + " addresses";
  if (!r.excluded.empty()) {
    line += " (" + std::to_string(r.excluded.size()) + " excluded interval" +
            (r.excluded.size() == 1 ? "" : "s") + ")";
  }
  if (r.gateway) {
    line += ", gateway " + r.gateway->to_string();
  }
  return line;
}

// How the reservations of the cluster store travel and who may read them: TLS and
// authentication as configured (file names only: a password is never printed).
std::string describe_etcd_access(const etcd::ConfigKeys& k, bool tls) {
  std::string line;
  if (tls) {
    line = "TLS, members verified against " + (k.etcd_ca_cert_file.empty()
                                                   ? std::string("the system's CAs")
                                                   : "etcd_ca_cert_file " + k.etcd_ca_cert_file);
    line += k.etcd_cert_file.empty()
                ? ", no client certificate"
                : ", client certificate " + k.etcd_cert_file + " (key " + k.etcd_key_file + ")";
  } else {
    line = "plain http (no TLS)";
  }
  if (k.etcd_username.empty()) {
    line += "; no authentication";
  } else {
    line += "; user " + k.etcd_username + ", password " +
            (!k.etcd_password_file.empty() ? "from etcd_password_file " + k.etcd_password_file
             : k.etcd_password.empty()     ? std::string("empty")
                                           : std::string("inline (etcd_password)"));
  }
  return line;
}

// The cluster store (datastore etcd): its endpoints, its mode and how it is reached; then what
// would refuse it on this machine (a key or password file others can read, a file missing), as
// found by the client's own checks, which do no I/O to etcd.
std::vector<std::string> describe_cluster_store(const ipam::StoreLocation& loc) {
  const etcd::ConfigKeys& k = loc.cluster.etcd;
  auto endpoints = etcd::parse_endpoints(k.etcd_host);
  bool tls = false;
  std::string urls;
  for (const etcd::Endpoint& ep : endpoints ? *endpoints : std::vector<etcd::Endpoint>{}) {
    tls = tls || ep.tls;
    urls += (urls.empty() ? "" : ",") + ep.url();
  }
  const std::string keys =
      cluster::keys::network(loc.network_name.empty() ? "_" : loc.network_name);
  std::string mode = loc.cluster.node_slice_prefix == 0
                         ? "per-address: every reservation a key under " + keys
                         : "node slices /" + std::to_string(loc.cluster.node_slice_prefix) +
                               ": each node claims slices of a range under " + keys +
                               "range/ and allocates inside them from " + loc.store_dir;
  std::vector<std::string> lines;
  lines.push_back("store cluster: etcd " + urls + " (" + mode + "; " +
                  describe_etcd_access(k, tls) +
                  "): addresses are unique cluster-wide among the nodes using these endpoints "
                  "and network_name; " +
                  loc.store_dir +
                  " keeps this node's own state (releases DEL deferred while etcd was "
                  "unreachable)");
  if (!tls && !k.etcd_username.empty()) {
    lines.push_back(
        "warning: the etcd password crosses the network in clear (plain http): use "
        "https:// endpoints");
  }
  const Status usable = [&]() -> Status {
    IPOIB_TRY_ASSIGN(etcd::Config cfg, etcd::config_from(k));
    if (!k.etcd_key_file.empty()) {
      // The key's mode first: the client reads the certificate before it, and a key others can
      // read is the finding that matters even where the certificate is also wrong.
      IPOIB_TRY(etcd::read_private_file(k.etcd_key_file, "etcd_key_file"));
    }
    IPOIB_TRY_ASSIGN(std::unique_ptr<etcd::Client> client, etcd::Client::create(std::move(cfg)));
    (void)client;
    return ok_status();
  }();
  if (!usable) {
    lines.push_back("warning: on this machine ADD would fail (code " +
                    std::to_string(static_cast<int>(usable.error().code())) +
                    "): " + usable.error().msg());
  }
  return lines;
}

// How the local store is decided: the configured store_dir's filesystem as this machine sees it
// (statfs f_type of the directory or, before the first ADD creates it, its nearest existing
// ancestor). A node-local filesystem is "local" even for a path meant to be shared: on this
// machine nothing is mounted there, and two nodes like it hand out the same addresses.
std::vector<std::string> describe_store(const NetworkEntry& entry, const FilesystemProbe& probe) {
  const ipam::StoreLocation& loc = entry.ipam->location;
  if (loc.datastore == ipam::Datastore::kEtcd) {
    return describe_cluster_store(loc);
  }
  const std::string& dir = loc.store_dir;
  const std::string pool = ipam::Store::pool_file_name(loc.network_name);
  const std::optional<FilesystemInfo> fs = probe(dir);
  const FilesystemKind kind =
      fs ? classify_filesystem(fs->magic) : FilesystemKind{"unreadable", false};
  std::string where = dir + " (" + pool + "; ";
  where += !fs               ? "its filesystem cannot be read here)"
           : fs->path == dir ? kind.name + ")"
                             : "not created yet, " + fs->path + " is " + kind.name + ")";
  if (kind.shared) {
    return {"store " + std::string(to_string(StoreScope::kShared)) + ": " + where +
            ": a filesystem shared between hosts: addresses are unique cluster-wide when every "
            "node mounts it there"};
  }
  std::vector<std::string> lines = {
      "store " + std::string(to_string(StoreScope::kLocal)) + ": " + where +
      ": addresses are unique on this node only; other nodes with this config hand out the "
      "same ones (for one cluster-wide pool, set \"datastore\": \"etcd\" with etcd_host, or "
      "mount a shared filesystem such as NFS, Lustre, GPFS or CephFS there on every node)"};
  // A NetworkAttachmentDefinition is the cluster's: every node its pods land on uses it.
  if (entry.where.find("spec.config") != std::string::npos) {
    lines.push_back(
        "warning: a NetworkAttachmentDefinition with a node-local store: pods on different "
        "nodes get the same addresses (duplicates across nodes, silently); use \"datastore\": "
        "\"etcd\"");
  }
  return lines;
}

}  // namespace

std::vector<std::string> describe_network(const NetworkEntry& entry, const FilesystemProbe& probe) {
  std::vector<std::string> lines;
  if (!entry.ipoib || entry.ipoib->ipam.kind == IpamKind::kNone) {
    return lines;
  }
  if (!entry.ipam) {
    lines.push_back("store delegated: addresses and their store are the " + entry.ipoib->ipam.type +
                    " plugin's (" + entry.ipoib->ipam.type +
                    " decides whether they are unique beyond this node)");
    return lines;
  }
  for (std::size_t i = 0; i < entry.ipam->ranges.size(); ++i) {
    lines.push_back(describe_range(entry.ipam->range_keys.at(i), entry.ipam->ranges[i]));
  }
  for (std::string& line : describe_store(entry, probe)) {
    lines.push_back(std::move(line));
  }
  for (const std::string& note : entry.ipam->notes) {
    lines.push_back("note: " + note);
  }
  return lines;
}

namespace {

// A NetworkAttachmentDefinition list or a network directory's file, with room to spare.
constexpr std::size_t kMaxConfigFileBytes = std::size_t{16} << 20;

// The summary line of one plugin configuration.
std::string summarize(const NetworkEntry& entry) {
  const std::string name =
      "network \"" + entry.conf.name + "\"" + (entry.where.empty() ? "" : " (" + entry.where + ")");
  if (!entry.ipoib) {
    return name + ": type \"" + entry.conf.type + "\" (not checked)";
  }
  const IpoibConfig& cfg = *entry.ipoib;
  std::string summary = name + ": master " + cfg.master;
  summary += cfg.pkey ? " pkey " + format_pkey(*cfg.pkey) : " pkey (parent's)";
  summary += cfg.mode ? " mode " + std::string(to_string(*cfg.mode)) : " mode (parent's)";
  summary += cfg.mtu_bytes ? " mtu " + std::to_string(*cfg.mtu_bytes) : " mtu (parent's)";
  summary += cfg.ipam.kind == IpamKind::kNone      ? " ipam none (layer 2)"
             : cfg.ipam.kind == IpamKind::kBuiltin ? " ipam " + cfg.ipam.type + " (built in)"
                                                   : " ipam " + cfg.ipam.type + " (delegated)";
  return summary;
}

}  // namespace

int validate_config_main(int argc, char** argv) {
  if (argc != 2) {
    (void)std::fprintf(stderr, "usage: ipoib validate-config FILE   (\"-\" reads stdin)\n");
    return 2;
  }
  const std::string path = argv[1];
  // Through base/file.h, not std::ifstream: a FIFO or a device named by mistake is refused at
  // once instead of blocking in open(2) or reading forever.
  const Result<std::string> text = path == "-"
                                       ? read_all(STDIN_FILENO, "stdin", kMaxConfigFileBytes)
                                       : read_file(AT_FDCWD, path, kMaxConfigFileBytes,
                                                   ErrorCode::kIoFailure, FollowSymlinks::kYes);
  if (!text.ok()) {
    (void)std::fprintf(stderr, "validate-config: cannot read %s: %s\n", path.c_str(),
                       text.error().msg().c_str());
    return 2;
  }
  auto entries = read_network_file(*text, ipam::ConfigSources{});
  if (!entries.ok()) {
    std::printf("invalid: %s (code %d)\n", entries.error().msg().c_str(),
                static_cast<int>(entries.error().code()));
    return 1;
  }
  const FilesystemProbe probe = statfs_probe();
  for (const NetworkEntry& entry : *entries) {
    std::printf("ok: %s\n", summarize(entry).c_str());
    for (const std::string& line : describe_network(entry, probe)) {
      std::printf("  %s\n", line.c_str());
    }
  }
  return 0;
}

}  // namespace ipoib::plugin
