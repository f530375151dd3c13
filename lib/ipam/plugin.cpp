#include <algorithm>
#include <ctime>
#include <initializer_list>
#include <string_view>

#include "ipoib/ipam/attachment_liveness.h"
#include "ipoib/ipam/builtin.h"
#include "ipoib/ipam/ipam.h"
#include "ipoib/ipam/pool_ops.h"
#include "ipoib/ipam/pool_store.h"
#include "ipoib/ipam/requested_ips.h"

namespace ipoib::ipam {
namespace {

Result<const nlohmann::json*> ipam_section(const cni::Request& req) {
  const auto it = req.conf.raw.find("ipam");
  if (it == req.conf.raw.end() || !it->is_object()) {
    return Error(ErrorCode::kInvalidNetworkConfig, "ipam: missing or not an object");
  }
  return &*it;
}

// One allocation for a message of many parts.
std::string concat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (const std::string_view p : parts) {
    out += p;
  }
  return out;
}

ReservationFilter attachment_filter(const std::string& cid, const std::string& ifname) {
  ReservationFilter f;
  f.container_id = cid;
  f.ifname = ifname;
  return f;
}

class BuiltinIpam final : public cni::Plugin {
 public:
  BuiltinIpam(Logger& log, IpamOptions options) : log_(log), opts_(std::move(options)) {}

  Result<cni::CniResult> add(const cni::Request& req) override {
    IPOIB_TRY_ASSIGN(IpamConfig cfg, load(req));
    const std::string& cid = req.env.container_id;
    const std::string& ifname = req.env.ifname;
    std::string pod_ref = req.env.args.pod_ref();
    if (const std::string why = req.env.args.pod_ref_problem(); !why.empty()) {
      log_.warning("no pod reference for the re-ADD rule: " + why);
    }
    if (!pod_ref.empty() && !is_storable_field(pod_ref)) {
      log_.warning("ignoring unstorable pod reference \"" + pod_ref + "\"");
      pod_ref.clear();
    }
    // The netns tells a later ADD of the same pod whether this attachment still lives.
    std::string netns = req.env.netns;
    if (!netns.empty() && !is_storable_path(netns)) {
      log_.warning("CNI_NETNS cannot be stored (" + std::to_string(netns.size()) +
                   " bytes): the re-ADD rule will treat this attachment as gone");
      netns.clear();
    }
    // Each field names itself, and the code says who must fix it: the network config (7) or
    // the runtime's environment (4).
    struct Field {
      const std::string* value;
      const char* name;
      ErrorCode code;
    };
    for (const Field& f : {Field{&req.conf.name, "name", ErrorCode::kInvalidNetworkConfig},
                           Field{&cid, "CNI_CONTAINERID", ErrorCode::kInvalidEnvironment},
                           Field{&ifname, "CNI_IFNAME", ErrorCode::kInvalidEnvironment}}) {
      if (!is_storable_field(*f.value)) {
        return Error(f.code, std::string(f.name) + ": cannot be stored in the IPAM store (" +
                                 std::to_string(f.value->size()) +
                                 " bytes; it must be 1..253 printable ASCII bytes without spaces)");
      }
    }
    // Static addresses the runtime asks for (requested_ips.h): each is reserved in its range or
    // the ADD fails; never another address instead.
    IPOIB_TRY_ASSIGN(const RequestedIps requested, requested_ips(req.conf, req.env.args));
    for (const std::string& ignored : requested.ignored_sources) {
      log_.warning(ignored + " ignored: " + requested.source + " takes precedence");
    }
    IPOIB_TRY_ASSIGN(const std::vector<std::optional<IpAddress>> wanted,
                     assign_requested(requested, cfg.ranges, cfg.range_keys));
    IPOIB_TRY_ASSIGN(std::unique_ptr<IpamStore> store, open_store(cfg.location, OpenMode::kCreate));
    const std::unique_ptr<PoolStore> pool = store->pool(cfg.location.network_name);
    const std::int64_t now = now_s();
    const std::string& node = cfg.location.node_name;
    std::vector<IpAddress> assigned;
    std::vector<std::string> notes;  // logged once the transaction committed
    // One transaction for every range: all-or-nothing. A range's lookups see the addresses an
    // earlier range of this ADD took (overlapping ranges of one pool).
    const PoolStore::Body body = [&](PoolTxn& txn) -> Status {
      assigned.clear();
      notes.clear();
      for (std::size_t i = 0; i < cfg.ranges.size(); ++i) {
        const Range& range = cfg.ranges[i];
        const std::string& key = cfg.range_keys[i];
        IPOIB_TRY(txn.use_range(key, range));
        if (wanted[i]) {
          IPOIB_TRY(reserve_requested(
              txn, *wanted[i], {{}, key, req.conf.name, cid, ifname, pod_ref, now, node, netns},
              requested.source));
          assigned.push_back(*wanted[i]);
          continue;
        }
        // 1. Same (container ID, ifname): the runtime repeated the ADD.
        IPOIB_TRY_ASSIGN(std::optional<Reservation> found, txn.find_attachment(key, cid, ifname));
        // 2. Same (pod, ifname): the kubelet re-ADDs a pod after a reboot with a new sandbox.
        if (!found && !pod_ref.empty()) {
          IPOIB_TRY_ASSIGN(std::vector<Reservation> same_pod, txn.find_pod(key, pod_ref, ifname));
          // Never one address for two live attachments: take over only a gone one.
          for (Reservation& r : same_pod) {
            if (!r.node.empty() && r.node != node) {
              // Its netns is on another node: nothing here can tell whether it still lives.
              notes.push_back(concat({"ADD of pod ", pod_ref, "/", ifname, ": ", r.ip.to_string(),
                                      " stays with container ", r.container_id, " of node ", r.node,
                                      "; allocating another address"}));
              continue;
            }
            if (other_live(r.netns, req.env.netns)) {
              notes.push_back(concat({"ADD of pod ", pod_ref, "/", ifname, ": ", r.ip.to_string(),
                                      " stays with container ", r.container_id, ", whose netns ",
                                      r.netns, " still exists; allocating another address"}));
              continue;
            }
            notes.push_back(
                concat({"re-ADD of pod ", pod_ref, "/", ifname, ": keeping ", r.ip.to_string(),
                        ", container ", r.container_id, " -> ", cid}));
            r.container_id = cid;
            r.cni_network = req.conf.name;
            r.since_unix_s = now;
            r.node = node;
            r.netns = netns;
            IPOIB_TRY(txn.reserve(r));
            found = std::move(r);
            break;
          }
        }
        if (found && !range.contains(found->ip)) {
          // The range was reconfigured and no longer covers the old address: move it.
          notes.push_back("reservation " + found->ip.to_string() + " left range " + key +
                          "; reallocating");
          IPOIB_TRY(txn.release(found->ip));
          found.reset();
        }
        if (found) {
          assigned.push_back(found->ip);
          continue;
        }
        IPOIB_TRY_ASSIGN(
            std::optional<IpAddress> ip,
            txn.allocate(key, range, cfg.allocation,
                         {{}, key, req.conf.name, cid, ifname, pod_ref, now, node, netns}));
        if (!ip) {
          return Error(ErrorCode::kIpamFailure,
                       "range " + key + " (" + range.first.to_string() + " - " +
                           range.last.to_string() +
                           ") is exhausted: every usable address is "
                           "reserved; find leaks with `ipoib ipam list` and free them with `ipoib "
                           "ipam release`");
        }
        assigned.push_back(*ip);
      }
      return ok_status();
    };
    IPOIB_TRY(transact(*pool, Access::kWrite, body));
    for (const std::string& note : notes) {
      log_.info(note);
    }

    cni::CniResult result;
    for (std::size_t i = 0; i < cfg.ranges.size(); ++i) {
      cni::IpConfig ipc;
      ipc.address = IpPrefix(assigned[i], cfg.ranges[i].subnet.length());
      if (cfg.ranges[i].gateway && cfg.ranges[i].gateway->family() == assigned[i].family()) {
        ipc.gateway = cfg.ranges[i].gateway;
      }
      result.ips.push_back(ipc);
    }
    for (const StaticAddress& a : cfg.addresses) {
      result.ips.push_back({a.address, a.gateway, std::nullopt});
    }
    result.routes = cfg.routes;
    result.dns = cfg.dns;
    std::string list;
    for (const IpAddress& ip : assigned) {
      list += " " + ip.to_string();
    }
    log_.info("ADD " + cid + "/" + ifname + " pool " + pool->label() + ":" + list);
    return result;
  }

  Status del(const cni::Request& req) override {
    IPOIB_TRY_ASSIGN(const nlohmann::json* ipam, ipam_section(req));
    IPOIB_TRY_ASSIGN(StoreLocation loc, load_store_location(*ipam, opts_.sources));
    IPOIB_TRY_ASSIGN(std::unique_ptr<IpamStore> store, open_store(loc, OpenMode::kExisting));
    const std::unique_ptr<PoolStore> pool = store->pool(loc.network_name);
    std::vector<Reservation> released;
    IPOIB_TRY_ASSIGN(TxnInfo info,
                     pool->release_attachment(
                         attachment_filter(req.env.container_id, req.env.ifname), released));
    for (const std::string& w : info.warnings) {
      log_.warning(w);
    }
    if (!released.empty()) {
      log_.info("DEL " + req.env.container_id + "/" + req.env.ifname + ": released " +
                std::to_string(released.size()) + " address(es) from pool " + pool->label());
    }
    return ok_status();
  }

  Status check(const cni::Request& req) override {
    IPOIB_TRY_ASSIGN(IpamConfig cfg, load(req));
    IPOIB_TRY_ASSIGN(std::unique_ptr<IpamStore> store,
                     open_store(cfg.location, OpenMode::kReadOnly));
    const std::unique_ptr<PoolStore> pool = store->pool(cfg.location.network_name);
    const std::string& cid = req.env.container_id;
    const std::string& ifname = req.env.ifname;
    const PoolStore::Body body = [&](PoolTxn& txn) -> Status {
      for (const std::string& key : cfg.range_keys) {
        IPOIB_TRY_ASSIGN(std::optional<Reservation> found, txn.find_attachment(key, cid, ifname));
        if (!found) {
          std::string msg = concat({"no reservation for container ", cid, " ifname ", ifname,
                                    " in range ", key, " of pool ", pool->label()});
          if (!req.conf.prev_result) {
            msg +=
                " (and the runtime sent no prevResult: it has no cached result for this "
                "attachment, e.g. after GC released it)";
          }
          return Error(ErrorCode::kCheckFailed, msg);
        }
        if (req.conf.prev_result) {
          const auto& ips = req.conf.prev_result->ips;
          if (std::none_of(ips.begin(), ips.end(), [&](const cni::IpConfig& c) {
                return c.address.address() == found->ip;
              })) {
            return Error(ErrorCode::kCheckFailed,
                         "reserved address " + found->ip.to_string() + " is not in prevResult");
          }
        }
      }
      return ok_status();
    };
    IPOIB_TRY(transact(*pool, Access::kRead, body));
    return ok_status();
  }

  Status gc(const cni::Request& req,
            const std::optional<std::vector<cni::Attachment>>& valid) override {
    if (!valid) {
      log_.debug("GC without cni.dev/valid-attachments: nothing released");
      return ok_status();
    }
    IPOIB_TRY_ASSIGN(const nlohmann::json* ipam, ipam_section(req));
    IPOIB_TRY_ASSIGN(StoreLocation loc, load_store_location(*ipam, opts_.sources));
    IPOIB_TRY_ASSIGN(std::unique_ptr<IpamStore> store, open_store(loc, OpenMode::kExisting));
    const std::unique_ptr<PoolStore> pool = store->pool(loc.network_name);
    // Only this CNI network's reservations made by this node: the list names the attachments of
    // this network on this node only, while other networks may share the pool (same
    // network_name and store) and other nodes a shared store_dir. Reservations without a node
    // (written before nodes were recorded) are never GC'ed: no node can tell they are its own.
    if (loc.node_name.empty()) {
      return Error(ErrorCode::kInvalidNetworkConfig, "GC: " + loc.node_error);
    }
    ReservationFilter mine;
    mine.cni_network = req.conf.name;
    mine.node = loc.node_name;
    std::vector<Reservation> released;
    const PoolStore::Body body = [&](PoolTxn& txn) -> Status {
      IPOIB_TRY_ASSIGN(std::vector<Reservation> candidates, txn.reservations(mine));
      released = gc_choose_releases(std::move(candidates), *valid);
      for (const Reservation& r : released) {
        IPOIB_TRY(txn.release(r.ip));
      }
      return ok_status();
    };
    IPOIB_TRY(transact(*pool, Access::kWrite, body));
    for (const Reservation& r : released) {
      log_.info("GC: released " + r.ip.to_string() + " of " + r.container_id + "/" + r.ifname);
    }
    return ok_status();
  }

  Status status(const cni::Request& req) override {
    IPOIB_TRY_ASSIGN(IpamConfig cfg, load(req));
    auto unavailable = [](const Error& e) {
      return Error(ErrorCode::kNotAvailable, "IPAM store not usable: " + e.msg());
    };
    auto store = open_store(cfg.location, OpenMode::kReadOnly);
    if (!store) {
      return unavailable(store.error());
    }
    const std::unique_ptr<PoolStore> pool = (*store)->pool(cfg.location.network_name);
    std::optional<Error> exhausted;
    auto read = pool->transact(Access::kRead, [&](PoolTxn& txn) -> Status {
      exhausted.reset();
      for (std::size_t i = 0; i < cfg.ranges.size() && !exhausted; ++i) {
        const Range& r = cfg.ranges[i];
        IPOIB_TRY_ASSIGN(u128 free, txn.free_count(cfg.range_keys[i], r));
        if (free == 0) {
          exhausted =
              Error(ErrorCode::kNotAvailable,
                    "range " + cfg.range_keys[i] + " (" + r.first.to_string() + " - " +
                        r.last.to_string() + ") of pool " + pool->label() + " is exhausted: all " +
                        u128_to_string(r.usable_count()) + " usable addresses are reserved");
        }
      }
      return ok_status();
    });
    if (!read) {
      return unavailable(read.error());
    }
    if (auto w = (*store)->writable(); !w) {
      return unavailable(w.error());
    }
    if (exhausted) {
      return *exhausted;
    }
    return ok_status();
  }

 private:
  Result<IpamConfig> load(const cni::Request& req) {
    IPOIB_TRY_ASSIGN(const nlohmann::json* ipam, ipam_section(req));
    IPOIB_TRY_ASSIGN(IpamConfig cfg, load_ipam_config(*ipam, opts_.sources));
    if (cfg.log_level) {
      log_.set_level(*cfg.log_level);
    }
    if (!cfg.log_file.empty() && cfg.log_file != opened_log_file_) {
      if (auto s = log_.open_file(cfg.log_file); !s) {
        log_.warning("log_file: " + s.error().msg());
      } else {
        opened_log_file_ = cfg.log_file;
      }
    }
    for (const std::string& note : cfg.notes) {
      log_.debug(note);
    }
    for (const std::string& w : cfg.warnings) {
      log_.warning(w);
    }
    return cfg;
  }

  Result<std::unique_ptr<IpamStore>> open_store(const StoreLocation& loc, OpenMode mode) const {
    return open_ipam_store(loc, mode, opts_.store_tuning);
  }

  // Runs one transaction and logs what the store reports besides its result.
  Status transact(PoolStore& pool, Access access, const PoolStore::Body& body) {
    IPOIB_TRY_ASSIGN(TxnInfo info, pool.transact(access, body));
    for (const std::string& w : info.warnings) {
      log_.warning(w);
    }
    return ok_status();
  }

  bool other_live(const std::string& recorded, const std::string& current) const {
    return opts_.other_live_netns ? opts_.other_live_netns(recorded, current)
                                  : other_live_netns(recorded, current);
  }

  std::int64_t now_s() const {
    return opts_.now_unix_s ? opts_.now_unix_s() : static_cast<std::int64_t>(::time(nullptr));
  }

  Logger& log_;
  IpamOptions opts_;
  std::string opened_log_file_;
};

}  // namespace

bool is_builtin_type(std::string_view type) { return type == "whereabouts"; }

std::unique_ptr<cni::Plugin> make_builtin_ipam(Logger& log, IpamOptions options) {
  return std::make_unique<BuiltinIpam>(log, std::move(options));
}

std::unique_ptr<cni::Plugin> make_builtin_ipam(Logger& log) {
  return make_builtin_ipam(log, IpamOptions{});
}

}  // namespace ipoib::ipam
