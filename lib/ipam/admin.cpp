#include "ipoib/ipam/admin.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>

#include "ipoib/base/fd_stream.h"
#include "ipoib/base/file.h"
#include "ipoib/cni/config.h"
#include "ipoib/cni/network_attachment.h"
#include "ipoib/ipam/config.h"
#include "ipoib/ipam/import.h"
#include "ipoib/ipam/ipam.h"
#include "ipoib/ipam/pool_ops.h"
#include "ipoib/ipam/pool_store.h"

namespace ipoib::ipam {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage =
    "usage: ipoib ipam list [--json] [--network NAME] [--node NODE]\n"
    "                       [--config NETCONF | --store-dir DIR]\n"
    "       ipoib ipam release (--ip IP | --container ID [--ifname IF] | --node NODE)\n"
    "                          [--node NODE] [--network NAME] [--config NETCONF | --store-dir "
    "DIR]\n"
    "       ipoib ipam import --whereabouts FILE [--whereabouts FILE ...] --config NETCONF\n"
    "                         [--dry-run] [--ifname NAME]\n";

constexpr std::size_t kMaxNetconfBytes = std::size_t{1} << 20;

struct Options {
  std::string command;
  bool json = false;
  std::optional<std::string> store_dir;
  std::string config;
  std::string ip;
  std::string container;
  std::string ifname;
  std::optional<std::string> node;
  std::optional<std::string> network;
};

std::string iso_time(std::int64_t unix_s) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  (void)std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json count_json(u128 v) {
  if (v <= std::numeric_limits<std::uint64_t>::max()) {
    return static_cast<std::uint64_t>(v);
  }
  return u128_to_string(v);
}

// The Range (for free counting) the pool remembers from the last ADD.
Range as_range(const PoolRange& pr) {
  Range r;
  r.subnet = pr.subnet;
  r.first = pr.first;
  r.last = pr.last;
  r.excluded = pr.excluded;
  return r;
}

std::string label(const std::string& network) { return network.empty() ? "(default)" : network; }

// One pool as list shows it, read in one transaction.
struct PoolView {
  std::vector<PoolRange> ranges;
  std::vector<Reservation> reservations;
};

// The pools a command works on: --network's, or every pool of the store.
Result<std::vector<std::string>> selected_pools(const Options& o, IpamStore& store) {
  if (o.network) {
    return std::vector<std::string>{*o.network};
  }
  return store.pool_names();
}

int run_list(const Options& o, const StoreLocation& loc, IpamStore& store, std::ostream& out,
             std::ostream& err) {
  auto networks = selected_pools(o, store);
  if (!networks) {
    err << "ipoib ipam list: " << networks.error().msg() << "\n";
    return kExitFailed;
  }
  int rc = kExitOk;
  nlohmann::json doc = {{"store", store.label()},
                        {"datastore", loc.datastore == Datastore::kEtcd ? "etcd" : "local"},
                        {"store_dir", loc.store_dir},
                        {"pools", nlohmann::json::array()}};
  for (const std::string& net : *networks) {
    const std::unique_ptr<PoolStore> pool = store.pool(net);
    PoolView p;
    auto read = pool->transact(Access::kRead, [&](PoolTxn& txn) -> Status {
      IPOIB_TRY_ASSIGN(p.ranges, txn.ranges());
      IPOIB_TRY_ASSIGN(p.reservations, txn.reservations({}));
      return ok_status();
    });
    if (!read) {
      err << "ipoib ipam list: pool " << label(net) << ": " << read.error().msg() << "\n";
      rc = kExitFailed;
      continue;
    }
    nlohmann::json pj = {{"network_name", net},
                         {"file", pool->label()},
                         {"ranges", nlohmann::json::array()},
                         {"reservations", nlohmann::json::array()}};
    if (!o.json) {
      out << "pool " << label(net) << " (" << pool->label() << ")\n";
    }
    for (const PoolRange& pr : p.ranges) {
      const Range r = as_range(pr);
      std::vector<u128> taken;
      std::size_t reserved = 0;
      for (const Reservation& res : p.reservations) {
        if (res.ip.family() == r.family()) {
          taken.push_back(res.ip.value());  // sorted: reservations come sorted by address
        }
        reserved += res.range_key == pr.key ? 1 : 0;
      }
      const u128 free = free_count(r, taken);
      pj["ranges"].push_back({{"key", pr.key},
                              {"subnet", pr.subnet.to_string()},
                              {"first", pr.first.to_string()},
                              {"last", pr.last.to_string()},
                              {"reserved", reserved},
                              {"free", count_json(free)}});
      if (!o.json) {
        out << "  range " << pr.key << "  " << pr.first.to_string() << " - " << pr.last.to_string()
            << "  reserved " << reserved << "  free " << u128_to_string(free) << "\n";
      }
    }
    std::vector<Reservation> shown;
    for (const Reservation& res : p.reservations) {
      if (!o.node || res.node == *o.node) {
        shown.push_back(res);
      }
    }
    if (!o.json && !shown.empty()) {
      out << "  " << std::left << std::setw(40) << "IP" << std::setw(20) << "CONTAINER"
          << std::setw(32) << "POD" << std::setw(16) << "IFNAME" << std::setw(24) << "NODE"
          << "SINCE\n";
    }
    for (const Reservation& res : shown) {
      pj["reservations"].push_back({{"ip", res.ip.to_string()},
                                    {"range", res.range_key},
                                    {"network", res.cni_network},
                                    {"container_id", res.container_id},
                                    {"ifname", res.ifname},
                                    {"pod", res.pod_ref},
                                    {"node", res.node},
                                    {"netns", res.netns},
                                    {"since", iso_time(res.since_unix_s)}});
      if (!o.json) {
        const std::string cid =
            res.container_id.size() > 16 ? res.container_id.substr(0, 16) : res.container_id;
        out << "  " << std::left << std::setw(40) << res.ip.to_string() << std::setw(20) << cid
            << std::setw(32) << (res.pod_ref.empty() ? "-" : res.pod_ref) << std::setw(16)
            << res.ifname << std::setw(24) << (res.node.empty() ? "-" : res.node)
            << iso_time(res.since_unix_s) << "\n";
      }
    }
    doc["pools"].push_back(std::move(pj));
  }
  if (o.json) {
    out << doc.dump(2) << "\n";
  } else if (networks->empty()) {
    out << "no pools in " << store.label() << "\n";
  }
  return rc;
}

// The same operation as DEL (release_matching), by address or by container.
int run_release(const Options& o, IpamStore& store, std::ostream& out, std::ostream& err) {
  ReservationFilter filter;
  if (!o.ip.empty()) {
    auto parsed = IpAddress::parse(o.ip);
    if (!parsed) {
      err << "ipoib ipam release: --ip: " << parsed.error().msg() << "\n";
      return kExitUsage;
    }
    filter.ip = *parsed;
  } else if (!o.container.empty()) {
    filter.container_id = o.container;
    if (!o.ifname.empty()) {
      filter.ifname = o.ifname;
    }
  }
  filter.node = o.node;
  auto networks = selected_pools(o, store);
  if (!networks) {
    err << "ipoib ipam release: " << networks.error().msg() << "\n";
    return kExitFailed;
  }
  std::size_t released = 0;
  int rc = kExitOk;
  for (const std::string& net : *networks) {
    std::vector<Reservation> gone;
    auto done = store.pool(net)->transact(Access::kWrite, [&](PoolTxn& txn) -> Status {
      IPOIB_TRY_ASSIGN(gone, release_matching(txn, filter));
      return ok_status();
    });
    if (!done) {
      err << "ipoib ipam release: " << done.error().msg() << "\n";
      rc = kExitFailed;
      continue;
    }
    for (const std::string& w : done->warnings) {
      err << "ipoib ipam release: " << w << "\n";
    }
    for (const Reservation& r : gone) {
      out << "released " << r.ip.to_string() << " (container " << r.container_id << ", ifname "
          << r.ifname << (r.node.empty() ? std::string() : ", node " + r.node) << ") from pool "
          << label(net) << "\n";
      ++released;
    }
  }
  if (released == 0 && rc == kExitOk) {
    err << "ipoib ipam release: no reservation matched\n";
    return kExitFailed;
  }
  return rc;
}

// The store the command works on: NETCONF's, or the local store in --store-dir.
Result<StoreLocation> store_location(const Options& o) {
  if (!o.config.empty()) {
    IPOIB_TRY_ASSIGN(NetconfIpam netconf, read_netconf_ipam(o.config));
    // DEL's reading (store keys only): list and release still work when the rest of the
    // section no longer validates, and need no node identity.
    auto loc = load_store_location(netconf.ipam, ConfigSources{});
    if (!loc) {
      return std::move(loc).error().with_context(o.config);
    }
    return loc;
  }
  StoreLocation loc;
  loc.store_dir = o.store_dir.value_or(std::string(kDefaultStoreDir));
  IPOIB_TRY(validate_store_dir(loc.store_dir, "--store-dir"));
  return loc;
}

// Checks what parsing alone cannot; the message, or "" when the options are usable.
std::string misuse(const Options& o) {
  if (!o.config.empty() && o.store_dir) {
    return "give --config or --store-dir, not both";
  }
  if (o.command == "release") {
    if (!o.ip.empty() && !o.container.empty()) {
      return "give one of --ip and --container";
    }
    if (o.ip.empty() && o.container.empty() && !o.node) {
      return "give --ip, --container or --node";
    }
    if (!o.ifname.empty() && o.container.empty()) {
      return "--ifname goes with --container";
    }
  }
  if (o.node && o.node->empty()) {
    return "--node: empty node name";
  }
  return "";
}

// A network configuration's "name", or "" when it has none (or not a string).
std::string network_name(const nlohmann::json& doc) {
  const auto it = doc.is_object() ? doc.find("name") : doc.end();
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Result<NetconfIpam> read_netconf_ipam(const std::string& path) {
  IPOIB_TRY_ASSIGN(std::string text, read_file(AT_FDCWD, path, kMaxNetconfBytes,
                                               ErrorCode::kIoFailure, FollowSymlinks::kYes));
  // validate-config's reading of the file (cni::network_config_texts): a .conf, a .conflist, or
  // a NetworkAttachmentDefinition as JSON or YAML.
  auto configs = cni::network_config_texts(text);
  if (!configs) {
    return std::move(configs).error().with_context(path);
  }
  if (configs->size() != 1) {
    // Several NetworkAttachmentDefinition documents may name several stores: which one the
    // command works on must not depend on their order in the file.
    std::string names;
    for (const cni::NetworkConfigText& c : *configs) {
      auto doc = cni::parse_json(c.text, c.where);
      const std::string name = doc ? network_name(*doc) : "";
      names += (names.empty() ? "" : ", ") + c.where + (name.empty() ? "" : " (" + name + ")");
    }
    return Error(
        ErrorCode::kInvalidNetworkConfig,
        path + ": " + std::to_string(configs->size()) +
            " NetworkAttachmentDefinitions in one file (" + names +
            "); --config reads one: give a file with only the network whose store to open");
  }
  const cni::NetworkConfigText& config = configs->front();
  const std::string where = config.where.empty() ? path : path + " " + config.where;
  IPOIB_TRY_ASSIGN(nlohmann::json doc, cni::parse_json(config.text, where));
  if (!doc.is_object()) {
    return Error(ErrorCode::kInvalidNetworkConfig, where + ": not a JSON object");
  }
  NetconfIpam found;
  found.network = network_name(doc);
  auto builtin_ipam = [](const nlohmann::json& plugin) -> const nlohmann::json* {
    const auto it = plugin.find("ipam");
    if (it == plugin.end() || !it->is_object()) {
      return nullptr;
    }
    const auto type = it->find("type");
    return type != it->end() && type->is_string() && is_builtin_type(type->get<std::string>())
               ? &*it
               : nullptr;
  };
  const nlohmann::json* ipam = nullptr;
  if (auto plugins = doc.find("plugins"); plugins != doc.end() && plugins->is_array()) {
    for (const auto& p : *plugins) {
      if (p.is_object() && (ipam = builtin_ipam(p)) != nullptr) {
        break;
      }
    }
  } else {
    ipam = builtin_ipam(doc);
  }
  if (ipam == nullptr) {
    return Error(
        ErrorCode::kInvalidNetworkConfig,
        where + ": no plugin with a built-in IPAM (\"ipam\": {\"type\": \"whereabouts\"})");
  }
  if (found.network.empty()) {
    return Error(ErrorCode::kInvalidNetworkConfig, where + ": the network has no name");
  }
  found.ipam = *ipam;
  return found;
}

int admin_run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Options o;
  if (!args.empty() && args[0] == "import") {
    return import_run({args.begin() + 1, args.end()}, out, err,
                      static_cast<std::int64_t>(std::time(nullptr)));
  }
  if (args.empty() || (args[0] != "list" && args[0] != "release")) {
    err << kUsage;
    return kExitUsage;
  }
  o.command = args[0];
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= args.size()) {
        return false;
      }
      dst = args[++i];
      return true;
    };
    auto optional_value = [&](std::optional<std::string>& dst) {
      std::string v;
      const bool got = value(v);
      dst = std::move(v);
      return got;
    };
    const bool release = o.command == "release";
    bool ok = true;
    if (a == "--json" && !release) {
      o.json = true;
    } else if (a == "--store-dir") {
      ok = optional_value(o.store_dir);
    } else if (a == "--config") {
      ok = value(o.config) && !o.config.empty();
    } else if (a == "--node") {
      ok = optional_value(o.node);
    } else if (a == "--network") {
      ok = optional_value(o.network);
    } else if (a == "--ip" && release) {
      ok = value(o.ip);
    } else if (a == "--container" && release) {
      ok = value(o.container);
    } else if (a == "--ifname" && release) {
      ok = value(o.ifname);
    } else if (a == "-h" || a == "--help") {
      out << kUsage;
      return kExitOk;
    } else {
      ok = false;
    }
    if (!ok) {
      err << "ipoib ipam " << o.command << ": bad argument \"" << a << "\"\n" << kUsage;
      return kExitUsage;
    }
  }
  if (const std::string why = misuse(o); !why.empty()) {
    err << "ipoib ipam " << o.command << ": " << why << "\n" << kUsage;
    return kExitUsage;
  }
  if (o.network && !o.network->empty() && !is_valid_network_name(*o.network)) {
    err << "ipoib ipam " << o.command << ": --network: invalid network name\n";
    return kExitUsage;
  }
  auto loc = store_location(o);
  if (!loc) {
    err << "ipoib ipam " << o.command << ": " << loc.error().msg() << "\n";
    return kExitFailed;
  }
  // list writes nothing at all (it must work on a read-only store); release creates nothing.
  auto store =
      open_ipam_store(*loc, o.command == "list" ? OpenMode::kReadOnly : OpenMode::kExisting);
  if (!store) {
    err << "ipoib ipam " << o.command << ": " << store.error().msg() << "\n";
    return kExitFailed;
  }
  return o.command == "list" ? run_list(o, *loc, **store, out, err)
                             : run_release(o, **store, out, err);
}

int admin_main(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    args.emplace_back(argv[i]);
  }
  FdOstream out(STDOUT_FILENO);
  FdOstream err(STDERR_FILENO, Flush::kEveryWrite);
  return admin_run(args, out, err);
}

}  // namespace ipoib::ipam
