#include "ipoib/ipam/admin.h"

#include <ctime>
#include <iomanip>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

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
    "usage: ipoib ipam list [--json] [--store-dir DIR]\n"
    "       ipoib ipam release (--ip IP | --container ID [--ifname IF]) [--network NAME]\n"
    "                          [--store-dir DIR]\n"
    "       ipoib ipam import --whereabouts FILE [--whereabouts FILE ...] --config NETCONF\n"
    "                         [--dry-run] [--ifname NAME]\n";

struct Options {
  std::string command;
  bool json = false;
  std::string store_dir = std::string(kDefaultStoreDir);
  std::string ip;
  std::string container;
  std::string ifname;
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

int run_list(const Options& o, IpamStore& store, std::ostream& out, std::ostream& err) {
  auto networks = store.pool_names();
  if (!networks) {
    err << "ipoib ipam list: " << networks.error().msg() << "\n";
    return kExitFailed;
  }
  int rc = kExitOk;
  nlohmann::json doc = {{"store_dir", store.label()}, {"pools", nlohmann::json::array()}};
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
    if (!o.json && !p.reservations.empty()) {
      out << "  " << std::left << std::setw(40) << "IP" << std::setw(20) << "CONTAINER"
          << std::setw(32) << "POD" << std::setw(16) << "IFNAME" << std::setw(24) << "NODE"
          << "SINCE\n";
    }
    for (const Reservation& res : p.reservations) {
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
  } else {
    filter.container_id = o.container;
    if (!o.ifname.empty()) {
      filter.ifname = o.ifname;
    }
  }
  std::vector<std::string> networks;
  if (o.network) {
    networks.push_back(*o.network);
  } else {
    auto all = store.pool_names();
    if (!all) {
      err << "ipoib ipam release: " << all.error().msg() << "\n";
      return kExitFailed;
    }
    networks = *all;
  }
  std::size_t released = 0;
  int rc = kExitOk;
  for (const std::string& net : networks) {
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
          << r.ifname << ") from pool " << label(net) << "\n";
      ++released;
    }
  }
  if (released == 0 && rc == kExitOk) {
    err << "ipoib ipam release: no reservation matched\n";
    return kExitFailed;
  }
  return rc;
}

}  // namespace

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
    bool ok = true;
    if (a == "--json" && o.command == "list") {
      o.json = true;
    } else if (a == "--store-dir") {
      ok = value(o.store_dir);
    } else if (a == "--ip" && o.command == "release") {
      ok = value(o.ip);
    } else if (a == "--container" && o.command == "release") {
      ok = value(o.container);
    } else if (a == "--ifname" && o.command == "release") {
      ok = value(o.ifname);
    } else if (a == "--network" && o.command == "release") {
      std::string n;
      ok = value(n);
      o.network = n;
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
  if (o.command == "release" && o.ip.empty() == o.container.empty()) {
    err << "ipoib ipam release: give exactly one of --ip and --container\n" << kUsage;
    return kExitUsage;
  }
  if (o.command == "release" && !o.ip.empty() && !o.ifname.empty()) {
    err << "ipoib ipam release: --ifname goes with --container\n" << kUsage;
    return kExitUsage;
  }
  if (o.network && !o.network->empty() && !is_valid_network_name(*o.network)) {
    err << "ipoib ipam release: --network: invalid network name\n";
    return kExitUsage;
  }
  StoreLocation loc;
  loc.store_dir = o.store_dir;
  if (auto v = validate_store_dir(loc.store_dir, "--store-dir"); !v) {
    err << "ipoib ipam " << o.command << ": " << v.error().msg() << "\n";
    return kExitFailed;
  }
  // list writes nothing at all (it must work on a read-only store); release creates nothing.
  auto store =
      open_ipam_store(loc, o.command == "list" ? OpenMode::kReadOnly : OpenMode::kExisting);
  if (!store) {
    err << "ipoib ipam " << o.command << ": " << store.error().msg() << "\n";
    return kExitFailed;
  }
  return o.command == "list" ? run_list(o, **store, out, err) : run_release(o, **store, out, err);
}

int admin_main(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    args.emplace_back(argv[i]);
  }
  return admin_run(args, std::cout, std::cerr);
}

}  // namespace ipoib::ipam
