#include <algorithm>
#include <ctime>

#include "ipoib/ipam/builtin.h"
#include "ipoib/ipam/ipam.h"
#include "ipoib/ipam/store.h"

namespace ipoib::ipam {
namespace {

Result<const nlohmann::json*> ipam_section(const cni::Request& req) {
  const auto it = req.conf.raw.find("ipam");
  if (it == req.conf.raw.end() || !it->is_object()) {
    return Error(ErrorCode::kInvalidNetworkConfig, "ipam: missing or not an object");
  }
  return &*it;
}

bool same_attachment(const ReservationView& r, std::string_view cid, std::string_view ifname) {
  return r.container_id == cid && r.ifname == ifname;
}

class BuiltinIpam final : public cni::Plugin {
 public:
  BuiltinIpam(Logger& log, IpamOptions options) : log_(log), opts_(std::move(options)) {}

  Result<cni::CniResult> add(const cni::Request& req) override {
    IPOIB_TRY_ASSIGN(IpamConfig cfg, load(req));
    const std::string& cid = req.env.container_id;
    const std::string& ifname = req.env.ifname;
    std::string pod_ref = req.env.args.pod_ref();
    if (!pod_ref.empty() && !is_storable_field(pod_ref)) {
      log_.warning("ignoring unstorable pod reference \"" + pod_ref + "\"");
      pod_ref.clear();
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
    IPOIB_TRY_ASSIGN(std::optional<Store> store,
                     Store::open(cfg.location.store_dir, CreateMode::kCreate));
    store->set_tuning(opts_.store_tuning);
    IPOIB_TRY_ASSIGN(StoreLock lock, store->lock(cfg.location.lock_timeout_ms));
    IPOIB_TRY_ASSIGN(std::optional<PoolIndex> loaded,
                     store->load_pool(lock, cfg.location.network_name));
    PoolIndex pool = loaded ? std::move(*loaded) : PoolIndex(cfg.location.network_name);
    const std::int64_t now = now_s();
    // What changes, as journal records (journal.h); the pool is updated along the way so that a
    // later range of this ADD sees the addresses taken by an earlier one.
    std::vector<PoolOp> ops;
    const std::vector<PoolRange> ranges_before = pool.ranges;
    auto change = [&](PoolOp op) -> Status {
      IPOIB_TRY(pool.apply({op}, ""));
      ops.push_back(std::move(op));
      return ok_status();
    };

    std::vector<IpAddress> assigned;
    for (std::size_t i = 0; i < cfg.ranges.size(); ++i) {
      const Range& range = cfg.ranges[i];
      const std::string& key = cfg.range_keys[i];
      pool.upsert_range(key, range);
      // 1. Same (container ID, ifname): the runtime repeated the ADD.
      std::size_t at = pool.find_attachment(key, cid, ifname);
      // 2. Same (pod, ifname): the kubelet re-ADDs a pod after a reboot with a new sandbox.
      if (at == PoolIndex::npos && !pod_ref.empty()) {
        at = pool.find_pod(key, pod_ref, ifname);
        if (at != PoolIndex::npos) {
          Reservation r = pool.at(at).to_reservation();
          log_.info("re-ADD of pod " + pod_ref + "/" + ifname + ": keeping " + r.ip.to_string() +
                    ", container " + r.container_id + " -> " + cid);
          r.container_id = cid;
          r.cni_network = req.conf.name;
          r.since_unix_s = now;
          IPOIB_TRY(change(PoolOp::reserve(std::move(r))));
        }
      }
      if (at != PoolIndex::npos && !range.contains(pool.at(at).ip)) {
        // The range was reconfigured and no longer covers the old address: move it.
        const IpAddress old = pool.at(at).ip;
        log_.info("reservation " + old.to_string() + " left range " + key + "; reallocating");
        IPOIB_TRY(change(PoolOp::release(old)));
        at = PoolIndex::npos;
      }
      if (at != PoolIndex::npos) {
        assigned.push_back(pool.at(at).ip);
        continue;
      }
      const PoolRange* pr = pool.find_range(key);
      auto ip = allocate(range, pool.taken(range.family()), cfg.allocation, pr->cursor);
      if (!ip) {
        return Error(ErrorCode::kIpamFailure,
                     "range " + key + " (" + range.first.to_string() + " - " +
                         range.last.to_string() + ") is exhausted: every usable address is "
                         "reserved; find leaks with `ipoib ipam list` and free them with `ipoib "
                         "ipam release`");
      }
      IPOIB_TRY(change(PoolOp::reserve({*ip, key, req.conf.name, cid, ifname, pod_ref, now})));
      pool.upsert_range(key, range).cursor = *ip;
      assigned.push_back(*ip);
    }
    for (const PoolRange& r : pool.ranges) {
      const auto old = std::find_if(ranges_before.begin(), ranges_before.end(),
                                    [&](const PoolRange& b) { return b.key == r.key; });
      if (old == ranges_before.end() || !(*old == r)) {
        ops.push_back(PoolOp::set_range(r));
      }
    }
    // One journal record for every range: all-or-nothing.
    IPOIB_TRY(commit(*store, lock, pool, ops));

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
    log_.info("ADD " + cid + "/" + ifname + " pool " + pool_label(cfg.location) + ":" + list);
    return result;
  }

  Status del(const cni::Request& req) override {
    IPOIB_TRY_ASSIGN(const nlohmann::json* ipam, ipam_section(req));
    IPOIB_TRY_ASSIGN(StoreLocation loc, load_store_location(*ipam, opts_.sources));
    IPOIB_TRY_ASSIGN(std::optional<Store> store, Store::open(loc.store_dir, CreateMode::kMustExist));
    if (!store) {
      return ok_status();
    }
    store->set_tuning(opts_.store_tuning);
    IPOIB_TRY_ASSIGN(StoreLock lock, store->lock(loc.lock_timeout_ms));
    IPOIB_TRY_ASSIGN(std::optional<PoolIndex> pool, store->load_pool(lock, loc.network_name));
    if (!pool) {
      return ok_status();
    }
    std::vector<PoolOp> ops;
    for (std::size_t i = 0; i < pool->size(); ++i) {
      const ReservationView r = pool->at(i);
      if (same_attachment(r, req.env.container_id, req.env.ifname)) {
        ops.push_back(PoolOp::release(r.ip));
      }
    }
    const std::size_t n = ops.size();
    if (n > 0) {
      IPOIB_TRY(pool->apply(ops, ""));
      IPOIB_TRY(commit(*store, lock, *pool, ops));
      log_.info("DEL " + req.env.container_id + "/" + req.env.ifname + ": released " +
                std::to_string(n) + " address(es) from pool " + pool_label(loc));
    }
    return ok_status();
  }

  Status check(const cni::Request& req) override {
    IPOIB_TRY_ASSIGN(IpamConfig cfg, load(req));
    IPOIB_TRY_ASSIGN(std::optional<Store> store,
                     Store::open(cfg.location.store_dir, CreateMode::kMustExist));
    if (!store) {
      return Error(ErrorCode::kCheckFailed, "no IPAM store at " + cfg.location.store_dir);
    }
    IPOIB_TRY_ASSIGN(StoreLock lock, store->lock(cfg.location.lock_timeout_ms));
    IPOIB_TRY_ASSIGN(std::optional<PoolIndex> pool,
                     store->load_pool(lock, cfg.location.network_name));
    for (const std::string& key : cfg.range_keys) {
      std::optional<ReservationView> found;
      if (pool) {
        const std::size_t at = pool->find_attachment(key, req.env.container_id, req.env.ifname);
        if (at != PoolIndex::npos) {
          found = pool->at(at);
        }
      }
      if (!found) {
        return Error(ErrorCode::kCheckFailed,
                     "no reservation for container " + req.env.container_id + " ifname " +
                         req.env.ifname + " in range " + key + " of pool " +
                         pool_label(cfg.location));
      }
      if (req.conf.prev_result) {
        const auto& ips = req.conf.prev_result->ips;
        if (std::none_of(ips.begin(), ips.end(), [&](const cni::IpConfig& c) {
              return c.address.address() == found->ip;
            })) {
          return Error(ErrorCode::kCheckFailed, "reserved address " + found->ip.to_string() +
                                                    " is not in prevResult");
        }
      }
    }
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
    IPOIB_TRY_ASSIGN(std::optional<Store> store, Store::open(loc.store_dir, CreateMode::kMustExist));
    if (!store) {
      return ok_status();
    }
    store->set_tuning(opts_.store_tuning);
    IPOIB_TRY_ASSIGN(StoreLock lock, store->lock(loc.lock_timeout_ms));
    IPOIB_TRY_ASSIGN(std::optional<PoolIndex> pool, store->load_pool(lock, loc.network_name));
    if (!pool) {
      return ok_status();
    }
    // Only this CNI network's reservations: the list names this network's attachments only,
    // while other networks may share the pool (same network_name and store).
    std::vector<PoolOp> ops;
    for (std::size_t i = 0; i < pool->size(); ++i) {
      const ReservationView r = pool->at(i);
      if (r.cni_network != req.conf.name) {
        continue;
      }
      const bool keep = std::any_of(valid->begin(), valid->end(), [&](const cni::Attachment& a) {
        return same_attachment(r, a.container_id, a.ifname);
      });
      if (!keep) {
        log_.info("GC: releasing " + r.ip.to_string() + " of " + std::string(r.container_id) +
                  "/" + std::string(r.ifname));
        ops.push_back(PoolOp::release(r.ip));
      }
    }
    const std::size_t n = ops.size();
    if (n > 0) {
      IPOIB_TRY(pool->apply(ops, ""));
      IPOIB_TRY(commit(*store, lock, *pool, ops));
    }
    return ok_status();
  }

  Status status(const cni::Request& req) override {
    IPOIB_TRY_ASSIGN(IpamConfig cfg, load(req));
    auto unavailable = [](const Error& e) {
      return Error(ErrorCode::kNotAvailable, "IPAM store not usable: " + e.msg());
    };
    auto store = Store::open(cfg.location.store_dir, CreateMode::kCreate);
    if (!store) {
      return unavailable(store.error());
    }
    auto lock = (*store)->lock(cfg.location.lock_timeout_ms);
    if (!lock) {
      return unavailable(lock.error());
    }
    auto pool = (*store)->load_pool(*lock, cfg.location.network_name);
    if (!pool) {
      return unavailable(pool.error());
    }
    if (auto w = (*store)->probe_writable(*lock); !w) {
      return unavailable(w.error());
    }
    for (std::size_t i = 0; i < cfg.ranges.size(); ++i) {
      const Range& r = cfg.ranges[i];
      const std::vector<u128> taken =
          *pool ? (*pool)->taken(r.family()) : std::vector<u128>{};
      if (free_count(r, taken) == 0) {
        return Error(ErrorCode::kNotAvailable,
                     "range " + cfg.range_keys[i] + " (" + r.first.to_string() + " - " +
                         r.last.to_string() + ") of pool " + pool_label(cfg.location) +
                         " is exhausted: all " + u128_to_string(r.usable_count()) +
                         " usable addresses are reserved");
      }
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
    return cfg;
  }

  // Commits and logs a failed compaction (the operation itself is durable).
  Status commit(Store& store, const StoreLock& lock, const PoolIndex& after,
                const std::vector<PoolOp>& ops) {
    IPOIB_TRY_ASSIGN(CommitInfo info, store.commit(lock, after, ops));
    if (info.compaction_error) {
      log_.warning("IPAM journal compaction failed (retried by the next operation): " +
                   info.compaction_error->msg());
    }
    return ok_status();
  }

  std::int64_t now_s() const {
    return opts_.now_unix_s ? opts_.now_unix_s() : static_cast<std::int64_t>(::time(nullptr));
  }

  static std::string pool_label(const StoreLocation& loc) {
    return loc.store_dir + "/" + Store::pool_file_name(loc.network_name);
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
