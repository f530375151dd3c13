#include "ipoib/ipam/import.h"

#include <fcntl.h>

#include <map>
#include <optional>

#include "ipoib/base/file.h"
#include "ipoib/ipam/admin.h"
#include "ipoib/ipam/config.h"
#include "ipoib/ipam/ipam.h"
#include "ipoib/ipam/pool_store.h"
#include "ipoib/ipam/whereabouts_import.h"

namespace ipoib::ipam {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr std::size_t kMaxInputBytes = std::size_t{256} << 20;  // a 100k-pod cluster's pools
constexpr const char* kUnknownContainer = "whereabouts-import";

constexpr const char* kUsage =
    "usage: ipoib ipam import --whereabouts FILE [--whereabouts FILE ...] --config NETCONF\n"
    "                         [--dry-run] [--ifname NAME]\n";

struct Options {
  std::vector<std::string> files;
  std::string config;
  bool dry_run = false;
  std::string default_ifname = "net1";
};

// What one imported address becomes.
struct Candidate {
  Reservation reservation;
  std::string source;
};

std::string owner(const Reservation& r) {
  return "container " + r.container_id + " ifname " + r.ifname +
         (r.pod_ref.empty() ? "" : " pod " + r.pod_ref);
}

// The allocations of `recs` that belong to this network, as reservations (keyed by address).
// Lines for what is skipped or conflicting go to `err`; returns whether nothing conflicted.
bool select(const WhereaboutsRecords& recs, const IpamConfig& cfg, const std::string& network,
            const Options& o, std::int64_t now, std::map<IpAddress, Candidate>& picked,
            std::ostream& out, std::ostream& err) {
  bool clean = true;
  const std::string& network_name = cfg.location.network_name;
  for (const ImportedAllocation& a : recs.allocations) {
    if (!a.pool_range.empty()) {
      if (a.object_name != whereabouts_pool_name(a.pool_range, network_name)) {
        out << "skip " << a.ip.to_string() << " (" << a.source << "): pool of another "
            << "network_name than \"" << network_name << "\"\n";
        continue;
      }
      auto pool_prefix = IpPrefix::parse(a.pool_range);
      bool ours = false;
      for (const Range& r : cfg.ranges) {
        ours = ours || (pool_prefix && pool_prefix->network() == r.subnet);
      }
      if (!ours) {
        out << "skip " << a.ip.to_string() << " (" << a.source << "): pool range " << a.pool_range
            << " is not a range of " << o.config << "\n";
        continue;
      }
    }
    std::size_t i = 0;
    while (i < cfg.ranges.size() && !cfg.ranges[i].contains(a.ip)) {
      ++i;
    }
    if (i == cfg.ranges.size()) {
      out << "skip " << a.ip.to_string() << " (" << a.source << "): outside every usable range "
          << "of " << o.config << ", so never handed out here\n";
      continue;
    }
    Reservation r;
    r.ip = a.ip;
    r.range_key = cfg.range_keys[i];
    r.cni_network = network;
    r.container_id = is_storable_field(a.container_id) ? a.container_id : kUnknownContainer;
    r.ifname = is_storable_field(a.ifname) ? a.ifname : o.default_ifname;
    r.pod_ref = is_storable_field(a.pod_ref) ? a.pod_ref : "";
    r.since_unix_s = now;
    if (r.container_id != a.container_id) {
      err << "note: " << a.source << " has no usable container ID: stored as \""
          << kUnknownContainer << "\" (only `ipoib ipam release --ip` frees it)\n";
    }
    auto [it, inserted] = picked.try_emplace(a.ip, Candidate{r, a.source});
    if (!inserted && (it->second.reservation.container_id != r.container_id ||
                      it->second.reservation.ifname != r.ifname)) {
      err << "conflict " << a.ip.to_string() << ": " << a.source << " names " << owner(r) << " but "
          << it->second.source << " names " << owner(it->second.reservation) << "\n";
      clean = false;
    }
  }
  return clean;
}

}  // namespace

int import_run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
               std::int64_t now_unix_s) {
  Options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--whereabouts" && has_value) {
      o.files.push_back(args[++i]);
    } else if (a == "--config" && has_value) {
      o.config = args[++i];
    } else if (a == "--ifname" && has_value) {
      o.default_ifname = args[++i];
    } else if (a == "--dry-run") {
      o.dry_run = true;
    } else if (a == "-h" || a == "--help") {
      out << kUsage;
      return kExitOk;
    } else {
      err << "ipoib ipam import: bad argument \"" << a << "\"\n" << kUsage;
      return kExitUsage;
    }
  }
  if (o.files.empty() || o.config.empty()) {
    err << "ipoib ipam import: --whereabouts and --config are required\n" << kUsage;
    return kExitUsage;
  }
  if (!is_storable_field(o.default_ifname)) {
    err << "ipoib ipam import: --ifname: not a storable interface name\n";
    return kExitUsage;
  }
  auto fail = [&](const Error& e) {
    err << "ipoib ipam import: " << e.msg() << "\n";
    return kExitFailed;
  };
  auto netconf = read_netconf_ipam(o.config);
  if (!netconf) {
    return fail(netconf.error());
  }
  const std::string& network = netconf->network;
  auto cfg = load_ipam_config(netconf->ipam, ConfigSources{});
  if (!cfg) {
    return fail(std::move(cfg).error().with_context(o.config));
  }
  bool clean = true;
  std::map<IpAddress, Candidate> picked;
  for (const std::string& file : o.files) {
    auto text =
        read_file(AT_FDCWD, file, kMaxInputBytes, ErrorCode::kIoFailure, FollowSymlinks::kYes);
    if (!text) {
      return fail(text.error());
    }
    auto recs = decode_whereabouts(*text, file, cfg->location.network_name);
    if (!recs) {
      return fail(recs.error());
    }
    for (const std::string& p : recs->problems) {
      err << "malformed: " << file << ": " << p << " (skipped)\n";
      clean = false;
    }
    clean = select(*recs, *cfg, network, o, now_unix_s, picked, out, err) && clean;
  }

  auto store = open_ipam_store(cfg->location, o.dry_run ? OpenMode::kReadOnly : OpenMode::kCreate);
  if (!store) {
    return fail(store.error());
  }
  const std::unique_ptr<PoolStore> pool = (*store)->pool(cfg->location.network_name);
  std::vector<std::string> lines;
  std::size_t reserved = 0;
  std::size_t present = 0;
  std::size_t conflicts = 0;
  auto done =
      pool->transact(o.dry_run ? Access::kRead : Access::kWrite, [&](PoolTxn& txn) -> Status {
        lines.clear();  // the body may run again on an optimistic store
        reserved = present = conflicts = 0;
        if (!o.dry_run) {
          for (std::size_t i = 0; i < cfg->ranges.size(); ++i) {
            IPOIB_TRY(txn.use_range(cfg->range_keys[i], cfg->ranges[i]));
          }
        }
        for (const auto& [ip, c] : picked) {
          const Reservation& r = c.reservation;
          IPOIB_TRY_ASSIGN(std::vector<Reservation> held, txn.reservations({.ip = ip}));
          if (!held.empty()) {
            if (held[0].container_id == r.container_id && held[0].ifname == r.ifname) {
              ++present;
              continue;
            }
            ++conflicts;
            lines.push_back("conflict " + ip.to_string() + ": held by " + owner(held[0]) + " in " +
                            pool->label() + "; " + c.source + " names " + owner(r) +
                            " (not overwritten)");
            continue;
          }
          IPOIB_TRY_ASSIGN(auto same, txn.find_attachment(r.range_key, r.container_id, r.ifname));
          if (same) {
            ++conflicts;
            lines.push_back("conflict " + ip.to_string() + ": " + owner(r) + " already holds " +
                            same->ip.to_string() + " in range " + r.range_key +
                            " (one address per range and attachment; not imported)");
            continue;
          }
          lines.push_back((o.dry_run ? "would reserve " : "reserve ") + ip.to_string() + " " +
                          owner(r) + " (" + c.source + ")");
          ++reserved;
          if (!o.dry_run) {
            IPOIB_TRY(txn.reserve(r));
          }
        }
        return ok_status();
      });
  if (!done) {
    return fail(done.error());
  }
  for (const std::string& l : lines) {
    (l.rfind("conflict", 0) == 0 ? err : out) << l << "\n";
  }
  for (const std::string& w : done->warnings) {
    err << "ipoib ipam import: " << w << "\n";
  }
  out << (o.dry_run ? "dry run: " : "") << reserved << (o.dry_run ? " to reserve, " : " reserved, ")
      << present << " already present, " << conflicts << " conflicting, in " << pool->label()
      << "\n";
  return clean && conflicts == 0 ? kExitOk : kExitFailed;
}

}  // namespace ipoib::ipam
