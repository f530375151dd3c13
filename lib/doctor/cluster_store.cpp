// The cluster store rows: which store this node allocates from (the IPAM's own loader, after the
// flat-file merge), and for etcd whether the client can work with it: file modes (the client's
// read_private_file rule), every endpoint (status_of), a leader, and the credentials (a read
// under the store's key root). A node-local store on a node that looks like part of a cluster is
// the silent duplicate-address trap: every node hands out the same addresses.
#include <sys/statfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipoib/base/strings.h"
#include "ipoib/cluster/keys.h"
#include "ipoib/etcd/client.h"
#include "ipoib/ib/sysfs_file.h"
#include "ipoib/ipam/ipam.h"
#include "lib/doctor/internal.h"

namespace ipoib::doctor::detail {
namespace {

constexpr std::string_view kInstallFix =
    "name the cluster store in the flat file on every node: `ipoib install --flat-file-only "
    "--etcd-endpoints https://ETCD:2379 --etcd-tls-dir DIR` (conf/deploy/daemonset.yaml does it "
    "on every node), or --store-dir DIR on a filesystem shared by every node";

CheckResult row(std::string id, std::string title, CheckStatus status, std::string finding,
                std::string fix = {}) {
  return {std::move(id), std::move(title), status, std::move(finding), std::move(fix)};
}

std::string join_items(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) {
    out += (out.empty() ? "" : ", ") + item;
  }
  return out;
}

// Filesystems that are the same directory on every node that mounts them (statfs(2) f_type).
std::optional<std::string_view> shared_filesystem(long type) {
  struct Known {
    unsigned long magic;
    std::string_view name;
  };
  static constexpr Known kShared[] = {
      {0x6969, "nfs"},         {0x00c36400, "ceph"},
      {0xff534d42, "cifs"},    {0xfe534d42, "smb2"},
      {0x0bd00bd0, "lustre"},  {0x47504653, "gpfs"},
      {0x19830326, "beegfs"},  {0x01161970, "gfs2"},
      {0x7461636f, "ocfs2"},   {0x65735546, "fuse (glusterfs, cephfs-fuse, ...)"},
      {0x564c, "ncp"},         {0x6b414653, "afs"},
      {0x5346414f, "openafs"},
  };
  for (const Known& k : kShared) {
    if (static_cast<unsigned long>(type) == k.magic) {
      return k.name;
    }
  }
  return std::nullopt;
}

// The filesystem type of `path`, or of its nearest existing parent (the store dir may not exist
// yet: the first ADD creates it on whatever is mounted there).
std::optional<long> filesystem_type(std::string path) {
  while (!path.empty()) {
    struct statfs fs {};
    if (::statfs(path.c_str(), &fs) == 0) {
      return static_cast<long>(fs.f_type);
    }
    const auto slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) {
      break;
    }
    path.resize(slash);
  }
  return std::nullopt;
}

// The flat file the IPAM merged: the first of its search paths that exists (display only; the
// merge itself is ipam::load_store_location's).
std::string flat_file_in_use(const ipam::ConfigSources& sources) {
  for (const std::string& p : sources.flat_file_paths) {
    if (ib::path_kind(p) != ib::PathKind::kMissing) {
      return p;
    }
  }
  return {};
}

std::string hex_id(std::uint64_t id) {
  char buf[24];
  (void)std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(id));
  return buf;
}

class EtcdChecks {
 public:
  EtcdChecks(const DoctorOptions& options, const ipam::StoreLocation& loc, std::string flat)
      : options_(options), loc_(loc), flat_(std::move(flat)) {}

  std::vector<CheckResult> run() {
    const etcd::ConfigKeys& k = loc_.cluster.etcd;
    std::string where = flat_.empty() ? std::string("the network's IPAM config")
                                      : display(flat_) + " (the flat file)";
    out_.push_back(row("store.cluster", "cluster IPAM store", CheckStatus::kPass,
                       "datastore etcd, etcd_host " + k.etcd_host + ", from " + where +
                           (loc_.cluster.node_slice_prefix != 0
                                ? ", node slices /" + std::to_string(loc_.cluster.node_slice_prefix)
                                : std::string(", per-address mode"))));
    if (!check_files()) {
      skip_rest("the etcd client cannot be set up (etcd.files)");
      return std::move(out_);
    }
    etcd::ConfigKeys on_node = k;
    for (std::string* path : {&on_node.etcd_cert_file, &on_node.etcd_key_file,
                              &on_node.etcd_ca_cert_file, &on_node.etcd_password_file}) {
      if (!path->empty()) {
        *path = under(options_.roots.host, *path);
      }
    }
    auto cfg = etcd::config_from(on_node);
    std::unique_ptr<etcd::Client> client;
    std::string error = cfg.ok() ? std::string() : cfg.error().msg();
    if (cfg.ok()) {
      cfg->call_timeout = std::chrono::milliseconds(1500);
      cfg->operation_timeout = std::chrono::milliseconds(3000);
      auto created = etcd::Client::create(std::move(cfg).value());
      if (created.ok()) {
        client = std::move(created).value();
      } else {
        error = created.error().msg();
      }
    }
    if (!client) {
      out_.push_back(row("etcd.client", "etcd client set up", CheckStatus::kFail, error,
                         "fix the etcd_* keys in " + where + " (the plugin refuses them too)"));
      skip_rest("the etcd client cannot be set up (etcd.client)");
      return std::move(out_);
    }
    check_members(*client);
    return std::move(out_);
  }

 private:
  [[nodiscard]] std::string display(const std::string& host_path) const {
    const std::string& root = options_.roots.host;
    if (root != "/" && starts_with(host_path, root)) {
      return host_path.substr(root.size());
    }
    return host_path;
  }

  void skip_rest(const std::string& why) {
    for (const char* id : {"etcd.reachable", "etcd.quorum", "etcd.auth"}) {
      out_.push_back(row(id, id, CheckStatus::kSkip, why));
    }
  }

  // Key and password files by the client's own rule; the certificates exist and are readable.
  bool check_files() {
    const etcd::ConfigKeys& k = loc_.cluster.etcd;
    std::vector<std::string> ok;
    std::vector<std::string> problems;
    std::vector<std::string> fixes;
    const std::pair<const char*, const std::string*> secrets[] = {
        {"etcd_key_file", &k.etcd_key_file}, {"etcd_password_file", &k.etcd_password_file}};
    for (const auto& [key, path] : secrets) {
      if (path->empty()) {
        continue;
      }
      const std::string on_node = under(options_.roots.host, *path);
      if (auto held = etcd::read_private_file(on_node, key); held.ok()) {
        ok.push_back(std::string(key) + " " + *path + " mode 0600 or stricter");
      } else {
        problems.push_back(held.error().msg());
        fixes.push_back("chmod 600 " + *path);
      }
    }
    const std::pair<const char*, const std::string*> public_files[] = {
        {"etcd_cert_file", &k.etcd_cert_file}, {"etcd_ca_cert_file", &k.etcd_ca_cert_file}};
    for (const auto& [key, path] : public_files) {
      if (path->empty()) {
        continue;
      }
      const std::string on_node = under(options_.roots.host, *path);
      if (::access(on_node.c_str(), R_OK) == 0 && ib::path_kind(on_node) == ib::PathKind::kFile) {
        ok.push_back(std::string(key) + " " + *path + " readable");
      } else {
        problems.push_back(std::string(key) + " " + *path + " is missing or unreadable");
        fixes.push_back("install " + *path + " (ipoib install --etcd-tls-dir copies a Secret's)");
      }
    }
    if (!k.etcd_password.empty() && !flat_.empty()) {
      // An inline password: the flat file itself is then a secret file.
      if (auto held = etcd::read_private_file(flat_, "flat file with etcd_password"); !held.ok()) {
        problems.push_back(held.error().msg());
        fixes.push_back("chmod 600 " + display(flat_) + ", or use etcd_password_file");
      } else {
        ok.push_back("etcd_password inline in the flat file (mode 0600 or stricter)");
      }
    }
    if (!problems.empty()) {
      std::string fix;
      for (const std::string& f : fixes) {
        fix += (fix.empty() ? "" : "; ") + f;
      }
      out_.push_back(row("etcd.files", "etcd key and password file modes", CheckStatus::kFail,
                         join_items(problems) + ": the etcd client refuses them, so every ADD "
                                                "on this node fails",
                         fix + " (a Secret volume: defaultMode: 0600)"));
      return false;
    }
    out_.push_back(row("etcd.files", "etcd key and password file modes", CheckStatus::kPass,
                       ok.empty() ? std::string("no key, certificate or password file configured")
                                  : join_items(ok)));
    return true;
  }

  void check_members(etcd::Client& client) {
    const auto& endpoints = client.endpoints();
    std::vector<std::string> answered;
    std::vector<std::string> failed;
    // Answered, but refused the credentials or the certificate (the client's
    // kInvalidNetworkConfig): reachable, and etcd.auth says why.
    std::vector<std::string> refused;
    std::optional<etcd::StatusResponse> with_leader;
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
      auto st = client.status_of(i);
      if (!st.ok()) {
        const bool answer = st.error().code() == ErrorCode::kInvalidNetworkConfig;
        (answer ? refused : failed).push_back(endpoints[i].url() + ": " + st.error().msg());
        continue;
      }
      answered.push_back(endpoints[i].url() + " (etcd " + st->version + ", member " +
                         hex_id(st->header.member_id) + ")");
      if (st->leader != 0 && !with_leader) {
        with_leader = *st;
      }
    }
    const std::string total = std::to_string(endpoints.size());
    const std::string title = "etcd endpoints reachable";
    if (answered.empty() && refused.empty()) {
      out_.push_back(row("etcd.reachable", title, CheckStatus::kFail,
                         "no endpoint answered: " + join_items(failed) +
                             ". ADD fails with code 11 on this node (never a local fallback)",
                         "check each endpoint from this node's host network (the plugin runs "
                         "there), the firewall, and the certificates; then re-run"));
      out_.push_back(
          row("etcd.quorum", "etcd has a leader", CheckStatus::kSkip, "no member answered"));
      out_.push_back(
          row("etcd.auth", "etcd credentials work", CheckStatus::kSkip, "no member answered"));
      return;
    }
    std::vector<std::string> reached = answered;
    for (const std::string& r : refused) {
      reached.push_back(r.substr(0, r.find(": ")) + " (refused the credentials)");
    }
    if (failed.empty()) {
      out_.push_back(row("etcd.reachable", title, CheckStatus::kPass,
                         total + "/" + total + " answered: " + join_items(reached)));
    } else {
      out_.push_back(row("etcd.reachable", title, CheckStatus::kWarn,
                         std::to_string(reached.size()) + "/" + total +
                             " answered; not: " + join_items(failed) +
                             " (calls fail over to the others, each dead one costs a time-out)",
                         "bring the member back, or drop it from etcd_host"));
    }
    if (answered.empty()) {
      out_.push_back(row("etcd.quorum", "etcd has a leader", CheckStatus::kSkip,
                         "the members refuse these credentials (etcd.auth)"));
      auth_failed(refused.front());
      return;
    }
    if (with_leader) {
      out_.push_back(row("etcd.quorum", "etcd has a leader", CheckStatus::kPass,
                         "leader " + hex_id(with_leader->leader) + ", raft term " +
                             std::to_string(with_leader->raft_term)));
    } else {
      out_.push_back(row("etcd.quorum", "etcd has a leader", CheckStatus::kFail,
                         "no member that answered knows a leader: etcd has no quorum, and ADD "
                         "fails with code 11 until it has",
                         "start enough members for a majority (etcdctl endpoint status "
                         "--cluster shows them)"));
    }
    check_auth(client);
  }

  // A read under the store's key root, with the configured credentials, as the store does.
  void check_auth(etcd::Client& client) {
    const etcd::ConfigKeys& k = loc_.cluster.etcd;
    etcd::RangeRequest r = etcd::RangeRequest::prefix(cluster::keys::kRoot);
    r.count_only = true;
    const std::string who = k.etcd_username.empty() ? std::string("without authentication")
                                                    : "as etcd user \"" + k.etcd_username + "\"";
    auto got = client.range(r);
    const std::string title = "etcd credentials work";
    if (got.ok()) {
      out_.push_back(row("etcd.auth", title, CheckStatus::kPass,
                         "a read under " + std::string(cluster::keys::kRoot) + " " + who +
                             " works (" + std::to_string(got->count) + " key(s))"));
      return;
    }
    auth_failed("a read under " + std::string(cluster::keys::kRoot) + " " + who +
                " failed: " + got.error().msg());
  }

  void auth_failed(const std::string& finding) {
    const etcd::ConfigKeys& k = loc_.cluster.etcd;
    out_.push_back(row("etcd.auth", "etcd credentials work", CheckStatus::kFail, finding,
                       k.etcd_username.empty()
                           ? "etcd has authentication on: set etcd_username and "
                             "etcd_password_file (ipoib install --etcd-username, a Secret's "
                             "`password`), or a client certificate whose CN is an etcd user"
                           : "check the user, its password and its role's permission on " +
                                 std::string(cluster::keys::kRoot) + " (etcdctl role get)"));
  }

  const DoctorOptions& options_;
  const ipam::StoreLocation& loc_;
  std::string flat_;
  std::vector<CheckResult> out_;
};

}  // namespace

std::vector<std::string> kubelet_signals(const Roots& roots) {
  std::vector<std::string> seen;
  if (auto entries = ib::list_directory(under(roots.procfs, "/proc")); entries.ok()) {
    for (const std::string& pid : *entries) {
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) {
        continue;
      }
      auto comm = ib::read_trimmed(under(roots.procfs, "/proc/" + pid + "/comm"));
      if (comm.ok() && *comm == "kubelet") {
        seen.push_back("kubelet running (pid " + pid + ")");
        break;
      }
    }
  }
  for (const char* path : {"/var/lib/kubelet/config.yaml", "/etc/kubernetes/kubelet.conf"}) {
    if (ib::path_kind(under(roots.host, path)) == ib::PathKind::kFile) {
      seen.push_back(path);
    }
  }
  if (const UnitInfo unit = read_unit(roots.host, "kubelet.service"); unit.found()) {
    seen.push_back("kubelet.service");
  }
  return seen;
}

std::vector<CheckResult> check_cluster_store(const DoctorOptions& options,
                                             const std::vector<std::string>& cluster_signals) {
  const ipam::ConfigSources sources = config_sources(options.roots);
  Result<ipam::StoreLocation> loc =
      options.ipam_location ? Result<ipam::StoreLocation>(*options.ipam_location)
                            : ipam::load_store_location(nlohmann::json::object(), sources);
  const std::string flat = flat_file_in_use(sources);
  const std::string title = "cluster IPAM store";
  if (!loc.ok()) {
    return {row("store.cluster", title, CheckStatus::kFail,
                "the IPAM refuses its configuration: " + loc.error().msg(),
                "fix the flat file (`ipoib install --flat-file-only ... --force` rewrites it)")};
  }
  if (loc->datastore == ipam::Datastore::kEtcd) {
    return EtcdChecks(options, *loc, flat).run();
  }
  const std::string dir = options.store_dir.empty() ? loc->store_dir : options.store_dir;
  const std::optional<long> fs = filesystem_type(under(options.roots.host, dir));
  const std::optional<std::string_view> shared = fs ? shared_filesystem(*fs) : std::nullopt;
  if (shared) {
    return {row("store.cluster", title, CheckStatus::kPass,
                "the local store in " + dir + " is on a shared filesystem (" +
                    std::string(*shared) +
                    "): one store for every node that mounts it at that path")};
  }
  if (cluster_signals.empty()) {
    return {row("store.cluster", title, CheckStatus::kPass,
                "node-local store in " + dir +
                    "; no kubelet or Multus on this node, so no other node shares its ranges")};
  }
  const std::string why =
      "this node looks like part of a cluster (" + join_items(cluster_signals) + ")";
  if (dir != ipam::kDefaultStoreDir) {
    return {row("store.cluster", title, CheckStatus::kWarn,
                "store_dir " + dir +
                    " is configured but on a filesystem the doctor does not know "
                    "as shared, and " +
                    why +
                    ": unless it is the same directory on every node, each node hands out the "
                    "same addresses",
                std::string(kInstallFix))};
  }
  return {row("store.cluster", title, CheckStatus::kFail,
              "no cluster store configured: this node allocates from its node-local store " + dir +
                  " while " + why +
                  ". Every node hands out the same addresses (the first pod on each gets the "
                  "range's first one) and traffic between them breaks, silently",
              std::string(kInstallFix))};
}

}  // namespace ipoib::doctor::detail
