// Node-slice mode of the cluster store (ipoib/ipam/cluster_pool_store.h, node_slice_size).
//
// A range splits into slices of node_slice_size (aligned to the subnet). A node owns a slice when
// the etcd key keys::slice(net, range_key, first) names it; it claims one with one Txn
// (create-if-absent), then allocates inside its slices from its local journal store in
// store_dir, without any etcd round trip, until they are full.
//
// This node's slices are recorded in <store_dir>/node-slices/slices-<net> (JSON, published
// atomically) under that directory's own lock, which every write transaction of the pool but
// DEL holds from the first look at the slices to the end of the local commit (and, after a
// release, to the end of returning empty slices). A claim talks to etcd outside the local
// transaction (the body runs again afterwards), so a DEL, which needs the local pool's lock only,
// never waits for etcd; it returns empty slices if it gets the slice lock within a second
// (kReturnTimeout, at most lock_timeout_ms), else a later release does. The claim Txn comes first
// and the local record second: a crash between them, or a claim applied after its plugin gave up,
// leaves a slice etcd says is this node's, which the next claim adopts (every claim lists the
// range's slice keys), rewriting its key so that a late delete guarded by the old revision fails. A
// slice leaves the allocatable set locally (`returning`) before its key is deleted in etcd, so no
// other node can claim a slice this node may still allocate from; if the delete fails it stays
// returning (the delete may still be applied) and is never allocated from again unless a claim
// adopts it.
//
// The return rule: after a transaction that released an address (DEL, GC, admin release), each
// of this node's slices of a range that holds no reservation any more goes back to the range
// (its etcd key deleted, guarded by its mod_revision, if it still names this node), except that
// the node keeps one slice of every range it holds slices of (the lowest, when all are empty).
// A slice holding a reservation never goes back. When etcd cannot be reached the slice stays
// claimed (a warning) and the next release retries; DEL and GC never fail for it.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "ipoib/base/file.h"
#include "ipoib/cluster/backoff.h"
#include "ipoib/cluster/keys.h"
#include "ipoib/cni/config.h"
#include "ipoib/etcd/client.h"
#include "ipoib/ipam/cluster_pool_store.h"
#include "ipoib/ipam/local_pool_store.h"
#include "ipoib/ipam/pool_ops.h"
#include "ipoib/ipam/store.h"

namespace ipoib::ipam {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
namespace keys = cluster::keys;

constexpr std::string_view kSliceDir = "node-slices";
constexpr std::size_t kMaxStateBytes = std::size_t{8} << 20;  // 65536 slices of one range fit
constexpr std::int64_t kListPage = 1000;
// A slice return is a courtesy to other nodes: it must not hold DEL up for long.
constexpr milliseconds kReturnTimeout{1000};

// The slice of `prefix_len` that holds `ip` (ip in the range's subnet).
IpPrefix slice_holding(const IpAddress& ip, int prefix_len) {
  return IpPrefix(ip, prefix_len).network();
}

// The part of `range` inside `slice` (excluded intervals clipped), or nullopt when it holds no
// address the range may hand out.
std::optional<Range> clip(const Range& range, const IpPrefix& slice) {
  const u128 lo = std::max(range.first.value(), slice.network().address().value());
  const u128 hi = std::min(range.last.value(), slice.last().value());
  if (slice.family() != range.family() || lo > hi) {
    return std::nullopt;
  }
  Range out = range;
  out.first = IpAddress(range.family(), lo);
  out.last = IpAddress(range.family(), hi);
  out.excluded.clear();
  for (const Interval& iv : range.excluded) {
    if (iv.hi >= lo && iv.lo <= hi) {
      out.excluded.push_back({std::max(iv.lo, lo), std::min(iv.hi, hi)});
    }
  }
  if (out.usable_count() == 0) {
    return std::nullopt;
  }
  return out;
}

// Slice indexes (from the subnet's start) that overlap [range.first, range.last].
std::pair<u128, u128> slice_indexes(const Range& range, int prefix_len) {
  const int shift = range.first.bit_length() - prefix_len;
  const u128 base = range.subnet.network().address().value();
  return {(range.first.value() - base) >> shift, (range.last.value() - base) >> shift};
}

IpPrefix slice_at(const Range& range, int prefix_len, u128 index) {
  const int shift = range.first.bit_length() - prefix_len;
  const u128 base = range.subnet.network().address().value();
  return {IpAddress(range.family(), base + (index << shift)), prefix_len};
}

// A set of slices per range key, each list sorted by address.
struct SliceSets {
  std::map<std::string, std::vector<IpPrefix>> by_range;

  [[nodiscard]] bool has(const std::string& range_key, const IpPrefix& s) const {
    const auto it = by_range.find(range_key);
    return it != by_range.end() &&
           std::find(it->second.begin(), it->second.end(), s) != it->second.end();
  }
  void add(const std::string& range_key, const IpPrefix& s) {
    auto& v = by_range[range_key];
    if (std::find(v.begin(), v.end(), s) == v.end()) {
      v.push_back(s);
      std::sort(v.begin(), v.end(), [](const IpPrefix& a, const IpPrefix& b) {
        return a.address().value() < b.address().value();
      });
    }
  }
  void remove(const std::string& range_key, const IpPrefix& s) {
    auto it = by_range.find(range_key);
    if (it != by_range.end()) {
      it->second.erase(std::remove(it->second.begin(), it->second.end(), s), it->second.end());
      if (it->second.empty()) {
        by_range.erase(it);
      }
    }
  }
  [[nodiscard]] json to_json() const {
    json out = json::object();
    for (const auto& [key, v] : by_range) {
      json list = json::array();
      for (const IpPrefix& p : v) {
        list.push_back(p.to_string());
      }
      out[key] = list;
    }
    return out;
  }
};

// This node's slices of one pool. `owned`: the slices it allocates in. `returning`: slices it no
// longer allocates in whose etcd key may still name it (a return that did not complete); every
// later release retries them, and a claim may adopt them back. A slice is in at most one.
struct SliceState {
  SliceSets owned;
  SliceSets returning;

  [[nodiscard]] bool owns(const std::string& range_key, const IpPrefix& s) const {
    return owned.has(range_key, s);
  }
  void add(const std::string& range_key, const IpPrefix& s) {
    returning.remove(range_key, s);
    owned.add(range_key, s);
  }
  void start_return(const std::string& range_key, const IpPrefix& s) {
    owned.remove(range_key, s);
    returning.add(range_key, s);
  }
};

std::string state_json(const std::string& node, const SliceState& st) {
  return cni::dump_json({{"version", 1},
                         {"node", node},
                         {"slices", st.owned.to_json()},
                         {"returning", st.returning.to_json()}});
}

Result<SliceState> parse_state(const std::string& path, const std::string& text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&]() {
    return Error(ErrorCode::kStoreCorrupt, "node slices " + path + ": not a slice record");
  };
  if (!j.is_object() || !j.contains("slices") || !j["slices"].is_object()) {
    return bad();
  }
  SliceState st;
  // "returning" is absent in records written before it existed.
  for (const char* field : {"slices", "returning"}) {
    const json& sets = j.value(field, json::object());
    if (!sets.is_object()) {
      return bad();
    }
    SliceSets& into = std::string_view(field) == "slices" ? st.owned : st.returning;
    for (const auto& [key, list] : sets.items()) {
      if (!list.is_array()) {
        return bad();
      }
      for (const json& e : list) {
        if (!e.is_string()) {
          return bad();
        }
        auto p = IpPrefix::parse(e.get<std::string>());
        if (!p) {
          return bad();
        }
        into.add(key, *p);
      }
    }
  }
  return st;
}

// What a slice key in etcd says.
struct SliceClaim {
  IpPrefix slice;
  std::string node;
  std::int64_t mod_revision = 0;
  std::string key;
};

std::optional<SliceClaim> parse_claim(const etcd::KeyValue& kv) {
  const json j = json::parse(kv.value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.value("node", json()).is_string() ||
      !j.value("slice", json()).is_string()) {
    return std::nullopt;
  }
  auto p = IpPrefix::parse(j["slice"].get<std::string>());
  if (!p) {
    return std::nullopt;
  }
  return SliceClaim{*p, j["node"].get<std::string>(), kv.mod_revision, kv.key};
}

std::string net_component(const std::string& net) { return net.empty() ? "_" : net; }

class SliceIpamStore;

// A slice claim talks to etcd for up to lock_timeout_ms, so it never runs inside the local
// transaction: the pool's lock would keep every DEL of the node waiting (and failing) behind it.
// A body that needs a slice this node does not own ends with this request; SlicePool::transact
// claims outside the local transaction and runs the body again.
struct ClaimRound {
  struct Need {
    std::string range_key;
    Range range;
    std::optional<IpAddress> want;  // reserve(): the slice holding this address
  };
  std::optional<Need> need;
  // Claims that added nothing: "<range_key>" (no free slice) or "<range_key> <slice>" (held by
  // the named node, or not claimable: "").
  std::map<std::string, std::string> failed;

  static std::string key(const std::string& range_key, const std::optional<IpPrefix>& s) {
    return s ? range_key + " " + s->to_string() : range_key;
  }
  Status ask(const std::string& range_key, const Range& range, std::optional<IpAddress> want) {
    need = Need{range_key, range, want};
    return Error(ErrorCode::kTryAgainLater, "node slices: the transaction needs a slice claim");
  }
};

// The transaction body's view: the local pool's, with allocate() (and reserve() of an address
// outside this node's slices) restricted to the slices this node owns.
class SliceTxn final : public PoolTxn {
 public:
  SliceTxn(SliceIpamStore& store, const std::string& net, SliceState& state, PoolTxn& inner,
           ClaimRound& round)
      : store_(store), net_(net), state_(state), inner_(inner), round_(round) {}

  Result<std::optional<Reservation>> find_attachment(std::string_view range_key,
                                                     std::string_view container_id,
                                                     std::string_view ifname) override {
    return inner_.find_attachment(range_key, container_id, ifname);
  }
  Result<std::vector<Reservation>> find_pod(std::string_view range_key, std::string_view pod_ref,
                                            std::string_view ifname) override {
    return inner_.find_pod(range_key, pod_ref, ifname);
  }
  Result<std::vector<Reservation>> reservations(const ReservationFilter& filter) override {
    return inner_.reservations(filter);
  }
  Result<std::vector<PoolRange>> ranges() override { return inner_.ranges(); }
  Result<u128> free_count(const std::string& range_key, const Range& range) override;
  Status use_range(const std::string& range_key, const Range& range) override {
    IPOIB_TRY(inner_.use_range(range_key, range));
    used_[range_key] = range;
    return ok_status();
  }
  Result<std::optional<IpAddress>> allocate(const std::string& range_key, const Range& range,
                                            AllocationPolicy policy, Reservation r) override;
  Status reserve(Reservation r) override;
  Status release(const IpAddress& ip) override {
    IPOIB_TRY(inner_.release(ip));
    released_ = true;
    return ok_status();
  }

  [[nodiscard]] bool released() const { return released_; }

 private:
  // Allocates in the owned slices of range_key; nullopt when they are all full.
  Result<std::optional<IpAddress>> allocate_owned(const std::string& range_key, const Range& range,
                                                  AllocationPolicy policy, const Reservation& r);

  SliceIpamStore& store_;
  const std::string& net_;
  SliceState& state_;
  PoolTxn& inner_;
  ClaimRound& round_;
  std::map<std::string, Range> used_;
  bool released_ = false;
};

class SlicePool final : public PoolStore {
 public:
  SlicePool(SliceIpamStore& store, std::string net, std::unique_ptr<PoolStore> local)
      : store_(store), net_(std::move(net)), local_(std::move(local)) {}
  Result<TxnInfo> transact(Access access, const Body& body) override;
  Result<TxnInfo> release_attachment(const ReservationFilter& attachment,
                                     std::vector<Reservation>& released) override;
  [[nodiscard]] std::string label() const override { return local_->label() + " (node slices)"; }

 private:
  // The local transaction with this node's slices as `state`, claiming outside it as asked.
  Result<TxnInfo> run_claiming(Access access, const Body& body, SliceState& state, bool& released);
  // The return rule after a release, if the slice lock is had within kReturnTimeout.
  void return_after_release(TxnInfo& info);

  SliceIpamStore& store_;
  std::string net_;
  std::unique_ptr<PoolStore> local_;
};

// An etcd client made at its first use. Most ADDs of a node that holds a slice never talk to
// etcd, so they do not pay for the client (with TLS: the context and the PEM files) either; the
// configuration, secret files included, is read and checked when the store opens.
class LazyClient {
 public:
  explicit LazyClient(etcd::Config cfg) : cfg_(std::move(cfg)) {}
  Result<etcd::Client*> get() {
    if (!client_) {
      IPOIB_TRY_ASSIGN(client_, etcd::Client::create(cfg_));
    }
    return client_.get();
  }

 private:
  etcd::Config cfg_;
  std::unique_ptr<etcd::Client> client_;
};

class SliceIpamStore final : public IpamStore {
 public:
  SliceIpamStore(StoreLocation loc, OpenMode mode, std::unique_ptr<IpamStore> local,
                 LazyClient client, LazyClient returner)
      : loc_(std::move(loc)),
        mode_(mode),
        local_(std::move(local)),
        client_(std::move(client)),
        returner_(std::move(returner)) {}

  Result<std::vector<std::string>> pool_names() override { return local_->pool_names(); }
  std::unique_ptr<PoolStore> pool(const std::string& network_name) override {
    return std::make_unique<SlicePool>(*this, network_name, local_->pool(network_name));
  }
  Status writable() override {
    IPOIB_TRY(local_->writable());
    IPOIB_TRY_ASSIGN(etcd::Client * client, client_.get());
    IPOIB_TRY_ASSIGN(etcd::StatusResponse st, client->status());
    if (st.leader == 0) {
      return Error(
          ErrorCode::kTryAgainLater,
          "cluster store " + label() + ": the member that answered has no leader (no quorum)");
    }
    return ok_status();
  }
  [[nodiscard]] std::string label() const override {
    return "etcd " + loc_.cluster.etcd.etcd_host + " (node slices /" +
           std::to_string(loc_.cluster.node_slice_prefix) + " of node " + loc_.node_name + ")";
  }

  [[nodiscard]] const StoreLocation& location() const { return loc_; }
  [[nodiscard]] OpenMode mode() const { return mode_; }
  [[nodiscard]] int prefix_len() const { return loc_.cluster.node_slice_prefix; }
  [[nodiscard]] std::string slice_dir() const {
    return loc_.store_dir + "/" + std::string(kSliceDir);
  }
  [[nodiscard]] static std::string state_name(const std::string& net) {
    return "slices-" + net_component(net);
  }

  // The slice directory as a store (for its lock); nullopt when it does not exist and `create`
  // is false.
  Result<std::optional<Store>> slice_store(bool create) const {
    return Store::open(slice_dir(), create ? CreateMode::kCreate : CreateMode::kMustExist);
  }

  Result<SliceState> load_state(const std::string& net) const {
    const std::string dir = slice_dir();
    IPOIB_TRY_ASSIGN(std::optional<std::string> text,
                     read_file_if_exists(AT_FDCWD, dir + "/" + state_name(net), kMaxStateBytes,
                                         ErrorCode::kStoreCorrupt, FollowSymlinks::kNo));
    if (!text) {
      return SliceState{};
    }
    return parse_state(dir + "/" + state_name(net), *text);
  }

  Status save_state(const std::string& net, const SliceState& st) const {
    const std::string dir = slice_dir();
    IPOIB_TRY_ASSIGN(Fd fd, open_checked(AT_FDCWD, dir, O_RDONLY, FileType::kDirectory));
    return publish_file(fd.get(), dir, state_name(net), state_json(loc_.node_name, st), 0600);
  }

  // Every claim of range_key's slices in etcd (paged). With `range_state`, also the range's state
  // key (keys::range_state; nullopt when absent), read in one Txn with the first page: a claim
  // needs both, and a round trip less per claim is one less wait of every contending node.
  Result<std::vector<SliceClaim>> list_claims(
      const std::string& net, const std::string& range_key,
      std::optional<etcd::KeyValue>* range_state = nullptr) {
    IPOIB_TRY_ASSIGN(etcd::Client * client, client_.get());
    std::vector<SliceClaim> out;
    const std::string prefix = keys::slice_prefix(net_component(net), range_key);
    std::string from = prefix;
    const std::string end = keys::prefix_end(prefix);
    for (;;) {
      etcd::RangeRequest r;
      r.key = from;
      r.range_end = end;
      r.limit = kListPage;
      etcd::RangeResponse resp;
      if (range_state != nullptr) {
        const std::vector<etcd::RangeRequest> reads = {
            r, etcd::RangeRequest::single(keys::range_state(net_component(net), range_key))};
        IPOIB_TRY_ASSIGN(std::vector<etcd::RangeResponse> both, client->read(reads));
        resp = std::move(both[0]);
        *range_state =
            both[1].kvs.empty() ? std::nullopt : std::optional<etcd::KeyValue>(both[1].kvs[0]);
        range_state = nullptr;  // later pages: the slice keys only
      } else {
        IPOIB_TRY_ASSIGN(resp, client->range(r));
      }
      for (const etcd::KeyValue& kv : resp.kvs) {
        auto c = parse_claim(kv);
        if (!c) {
          return Error(ErrorCode::kStoreCorrupt,
                       "cluster store: key " + kv.key + ": not a slice claim");
        }
        out.push_back(std::move(*c));
      }
      if (!resp.more || resp.kvs.empty()) {
        return out;
      }
      from = resp.kvs.back().key + std::string(1, '\0');
    }
  }

  // Claims a slice of `range` for this node: adopts the slices etcd says are this node's and
  // that it has not recorded (a crash after an earlier claim), else creates the lowest free one
  // (`want`: the one holding that address). Returns the slices added to `state` (recorded
  // locally before this returns); empty when the range has no free slice (or `want`'s slice
  // belongs to another node: then `holder` names it).
  Result<std::vector<IpPrefix>> claim(const std::string& net, const std::string& range_key,
                                      const Range& range, SliceState& state,
                                      const std::optional<IpAddress>& want, std::string* holder) {
    if (mode_ == OpenMode::kReadOnly) {
      return Error(ErrorCode::kInternal, "node slices: a claim in a read-only store");
    }
    if (loc_.node_name.empty()) {
      return Error(ErrorCode::kInvalidNetworkConfig,
                   "node_slice_size: claiming a slice needs the node's name: " + loc_.node_error);
    }
    const milliseconds budget(loc_.lock_timeout_ms);
    const auto deadline = steady_clock::now() + budget;
    std::mt19937 rng(static_cast<std::uint32_t>(::getpid()) ^
                     static_cast<std::uint32_t>(steady_clock::now().time_since_epoch().count()));
    const int len = prefix_len();
    IPOIB_TRY_ASSIGN(etcd::Client * client, client_.get());
    for (int attempt = 1;; ++attempt) {
      std::optional<etcd::KeyValue> range_state;
      IPOIB_TRY_ASSIGN(std::vector<SliceClaim> claims, list_claims(net, range_key, &range_state));
      std::set<u128> taken;
      std::vector<IpPrefix> adopted;
      for (const SliceClaim& c : claims) {
        if (c.slice.length() != len || c.slice.family() != range.family()) {
          return Error(ErrorCode::kInvalidNetworkConfig,
                       "node_slice_size: range " + range_key + " is split into slices such as " +
                           c.slice.to_string() + " (node " + c.node + ") in etcd, not /" +
                           std::to_string(len) +
                           "; keep the size while slices are claimed, or return them first");
        }
        taken.insert(c.slice.address().value());
        if (c.node == loc_.node_name && !state.owns(range_key, c.slice)) {
          // Ours in etcd, not recorded: a claim applied after its plugin died or gave up, or a
          // return that may still be in flight. Rewriting the key (guarded by the revision we
          // read) makes such a late delete fail its compare before the node allocates here.
          etcd::TxnRequest t;
          t.compare.push_back(etcd::Compare::mod_revision_is(c.key, c.mod_revision));
          t.success.emplace_back(etcd::PutRequest{c.key, claim_value(c.slice)});
          IPOIB_TRY_ASSIGN(etcd::TxnResponse resp, client->txn(t, etcd::TxnRetry::kIdempotent));
          if (resp.succeeded) {
            adopted.push_back(c.slice);
          }
        }
      }
      if (!adopted.empty()) {
        for (const IpPrefix& s : adopted) {
          state.add(range_key, s);
        }
        IPOIB_TRY(save_state(net, state));
        return adopted;
      }
      std::vector<IpPrefix> free;
      if (want) {
        const IpPrefix s = slice_holding(*want, len);
        if (taken.count(s.address().value()) != 0) {
          for (const SliceClaim& c : claims) {
            if (c.slice == s && holder != nullptr) {
              *holder = c.node;
            }
          }
          return std::vector<IpPrefix>{};
        }
        free.push_back(s);
      } else {
        const auto [lo, hi] = slice_indexes(range, len);
        // After a conflict, spread the contenders over the first few free slices.
        const std::size_t want_n = attempt == 1 ? 1 : 8;
        for (u128 i = lo; i <= hi && free.size() < want_n; ++i) {
          const IpPrefix s = slice_at(range, len, i);
          if (taken.count(s.address().value()) == 0 && clip(range, s)) {
            free.push_back(s);
          }
        }
      }
      if (free.empty()) {
        return std::vector<IpPrefix>{};
      }
      const IpPrefix pick =
          free[std::uniform_int_distribution<std::size_t>(0, free.size() - 1)(rng)];
      const std::string key = keys::slice(net_component(net), range_key, pick.address());
      etcd::TxnRequest t;
      t.compare.push_back(etcd::Compare::absent(key));
      // A range is per-address or node slices, never both (cluster_pool_store.cpp): the range
      // state says which; the first claim writes it.
      const std::string state_key = keys::range_state(net_component(net), range_key);
      if (!range_state) {
        t.compare.push_back(etcd::Compare::absent(state_key));
        t.success.emplace_back(
            etcd::PutRequest{state_key, cni::dump_json({{"mode", "node-slices"}})});
      } else {
        const json mode = json::parse(range_state->value, nullptr, /*allow_exceptions=*/false);
        if (!mode.is_object() || mode.value("mode", std::string()) != "node-slices") {
          std::string msg = "node_slice_size: range ";
          msg.append(range_key)
              .append(" is allocated per address in the cluster store (")
              .append(state_key)
              .append(
                  "): a range cannot mix per-address allocation and node slices; set the "
                  "same node_slice_size on every node");
          return Error(ErrorCode::kInvalidNetworkConfig, msg);
        }
      }
      t.success.emplace_back(etcd::PutRequest{key, claim_value(pick)});
      // Safe to resend: a second application fails its compare, and a first one that did
      // apply is adopted by the next list.
      IPOIB_TRY_ASSIGN(etcd::TxnResponse resp, client->txn(t, etcd::TxnRetry::kIdempotent));
      if (resp.succeeded) {
        state.add(range_key, pick);
        IPOIB_TRY(save_state(net, state));
        return std::vector<IpPrefix>{pick};
      }
      const auto now = steady_clock::now();
      if (now >= deadline) {
        return Error(ErrorCode::kTryAgainLater,
                     "cluster store " + label() + ": " + std::to_string(attempt) +
                         " conflicting slice claims within " + std::to_string(budget.count()) +
                         " ms (lock_timeout_ms) in range " + range_key);
      }
      std::this_thread::sleep_for(
          std::min(cluster::conflict_backoff(attempt, rng),
                   std::chrono::duration_cast<milliseconds>(deadline - now)));
    }
  }

  // The return rule (top of this file), under the slice lock, after the local commit: this
  // node's empty slices move to `returning` (no process of the node allocates there any more),
  // then every returning slice's key is deleted. A slice whose delete fails stays returning (its
  // delete may still be applied: it is never allocated from again unless a claim adopts it) and
  // the next release retries. Returns warnings; never fails the transaction.
  std::vector<std::string> return_empty(const std::string& net, PoolStore& local,
                                        SliceState& state) {
    std::vector<std::string> warnings;
    if (state.owned.by_range.empty() && state.returning.by_range.empty()) {
      return warnings;
    }
    std::vector<Reservation> all;
    auto read = local.transact(Access::kRead, [&](PoolTxn& txn) -> Status {
      IPOIB_TRY_ASSIGN(all, txn.reservations(ReservationFilter{}));
      return ok_status();
    });
    if (!read) {
      warnings.push_back("node slices: not returning empty slices: " + read.error().msg());
      return warnings;
    }
    std::vector<std::pair<std::string, IpPrefix>> emptied;
    for (const auto& entry : state.owned.by_range) {
      // Not a structured binding: the lambda below captures the key (C++17).
      const std::string& range_key = entry.first;
      const std::vector<IpPrefix>& slices = entry.second;
      std::vector<IpPrefix> empty;
      for (const IpPrefix& s : slices) {
        const bool used = std::any_of(all.begin(), all.end(), [&](const Reservation& r) {
          return r.range_key == range_key && s.contains(r.ip);
        });
        if (!used) {
          empty.push_back(s);
        }
      }
      // Keep one slice of the range: the lowest, when every slice is empty.
      const std::size_t keep = empty.size() == slices.size() ? 1 : 0;
      for (std::size_t i = keep; i < empty.size(); ++i) {
        emptied.emplace_back(range_key, empty[i]);
      }
    }
    if (!emptied.empty()) {
      SliceState next = state;
      for (const auto& [range_key, s] : emptied) {
        next.start_return(range_key, s);
      }
      if (auto saved = save_state(net, next); !saved) {
        warnings.push_back("node slices: keeping empty slices: " + saved.error().msg());
        return warnings;
      }
      state = std::move(next);
    }
    const auto returning = state.returning.by_range;  // the loop below changes the state
    for (const auto& [range_key, slices] : returning) {
      for (const IpPrefix& s : slices) {
        if (auto gone = delete_claim(net, range_key, s); !gone) {
          warnings.push_back("node slices: slice " + s.to_string() + " of range " + range_key +
                             " is empty and stays claimed until a later release returns it: " +
                             gone.error().msg());
          return warnings;
        }
        state.returning.remove(range_key, s);
        if (auto saved = save_state(net, state); !saved) {
          // Returned in etcd, still listed as returning here: the next release finds it gone.
          warnings.push_back("node slices: " + saved.error().msg());
          return warnings;
        }
      }
    }
    return warnings;
  }

 private:
  // Deletes the slice's key if it still names this node (guarded by its mod_revision).
  Status delete_claim(const std::string& net, const std::string& range_key, const IpPrefix& s) {
    const std::string key = keys::slice(net_component(net), range_key, s.address());
    IPOIB_TRY_ASSIGN(etcd::Client * returner, returner_.get());
    IPOIB_TRY_ASSIGN(etcd::RangeResponse resp, returner->range(etcd::RangeRequest::single(key)));
    if (resp.kvs.empty()) {
      return ok_status();
    }
    const auto c = parse_claim(resp.kvs[0]);
    if (!c || c->node != loc_.node_name) {
      return ok_status();  // not ours (an admin reassigned it): nothing to give back
    }
    etcd::TxnRequest t;
    t.compare.push_back(etcd::Compare::mod_revision_is(key, c->mod_revision));
    t.success.emplace_back(etcd::DeleteRangeRequest::single(key));
    IPOIB_TRY_ASSIGN(etcd::TxnResponse done, returner->txn(t, etcd::TxnRetry::kIdempotent));
    (void)done;  // a failed compare: it changed hands meanwhile, and is not ours to delete
    return ok_status();
  }

  // A slice key's value naming this node.
  [[nodiscard]] std::string claim_value(const IpPrefix& s) const {
    return cni::dump_json({{"node", loc_.node_name},
                           {"slice", s.to_string()},
                           {"since", static_cast<std::int64_t>(std::time(nullptr))}});
  }

  StoreLocation loc_;
  OpenMode mode_;
  std::unique_ptr<IpamStore> local_;
  LazyClient client_;
  LazyClient returner_;

  friend class SliceTxn;
};

Result<std::optional<IpAddress>> SliceTxn::allocate_owned(const std::string& range_key,
                                                          const Range& range,
                                                          AllocationPolicy policy,
                                                          const Reservation& r) {
  const auto it = state_.owned.by_range.find(range_key);
  if (it == state_.owned.by_range.end()) {
    return std::optional<IpAddress>();
  }
  const std::vector<IpPrefix>& slices = it->second;
  for (const IpPrefix& s : slices) {
    const std::optional<Range> part = clip(range, s);
    if (!part) {
      continue;
    }
    IPOIB_TRY_ASSIGN(std::optional<IpAddress> ip, inner_.allocate(range_key, *part, policy, r));
    if (ip) {
      // The pool keeps the configured range's description (list's counts), not the slice's.
      IPOIB_TRY(inner_.use_range(range_key, range));
      return ip;
    }
  }
  return std::optional<IpAddress>();
}

Result<std::optional<IpAddress>> SliceTxn::allocate(const std::string& range_key,
                                                    const Range& range, AllocationPolicy policy,
                                                    Reservation r) {
  IPOIB_TRY(use_range(range_key, range));
  IPOIB_TRY_ASSIGN(std::optional<IpAddress> ip, allocate_owned(range_key, range, policy, r));
  if (ip) {
    return ip;
  }
  if (round_.failed.count(ClaimRound::key(range_key, std::nullopt)) != 0) {
    return std::optional<IpAddress>();  // the range has no free slice
  }
  // Every owned slice is full: adopt or claim one, then run again.
  IPOIB_TRY(round_.ask(range_key, range, std::nullopt));
  return std::optional<IpAddress>();
}

Status SliceTxn::reserve(Reservation r) {
  const auto used = used_.find(r.range_key);
  if (used == used_.end() || !used->second.contains(r.ip)) {
    return inner_.reserve(std::move(r));  // not in a range this transaction configured
  }
  const IpPrefix s = slice_holding(r.ip, store_.prefix_len());
  if (!state_.owns(r.range_key, s)) {
    const auto failed = round_.failed.find(ClaimRound::key(r.range_key, s));
    if (failed == round_.failed.end()) {
      return round_.ask(r.range_key, used->second, r.ip);
    }
    const std::string& holder = failed->second;
    return Error(ErrorCode::kIpamFailure,
                 "address " + r.ip.to_string() + " is in node slice " + s.to_string() +
                     (holder.empty() ? std::string(", which this node cannot claim")
                                     : ", which node " + holder + " holds"));
  }
  return inner_.reserve(std::move(r));
}

Result<u128> SliceTxn::free_count(const std::string& range_key, const Range& range) {
  // Free in this node's slices, plus every address of the slices nobody has claimed.
  const int len = store_.prefix_len();
  u128 free = 0;
  std::set<u128> counted;
  u128 claimed_usable = 0;
  auto count_claimed = [&](const IpPrefix& s) {
    if (s.length() == len && counted.insert(s.address().value()).second) {
      if (auto part = clip(range, s)) {
        claimed_usable += part->usable_count();
      }
    }
  };
  if (const auto it = state_.owned.by_range.find(range_key); it != state_.owned.by_range.end()) {
    for (const IpPrefix& s : it->second) {
      if (auto part = clip(range, s)) {
        IPOIB_TRY_ASSIGN(u128 f, inner_.free_count(range_key, *part));
        free += f;
      }
      count_claimed(s);
    }
  }
  IPOIB_TRY_ASSIGN(std::vector<SliceClaim> claims, store_.list_claims(net_, range_key));
  for (const SliceClaim& c : claims) {
    count_claimed(c.slice);
  }
  const u128 usable = range.usable_count();
  return free + (claimed_usable >= usable ? u128{0} : usable - claimed_usable);
}

Result<TxnInfo> SlicePool::run_claiming(Access access, const Body& body, SliceState& state,
                                        bool& released) {
  ClaimRound round;
  for (;;) {
    round.need.reset();
    auto info = local_->transact(access, [&](PoolTxn& inner) -> Status {
      round.need.reset();
      SliceTxn txn(store_, net_, state, inner, round);
      IPOIB_TRY(body(txn));
      released = txn.released();
      return ok_status();
    });
    if (info || !round.need) {
      return info;
    }
    // Nothing was committed and the local lock is free again: claim, then run the body again.
    if (access == Access::kRead) {
      return Error(ErrorCode::kInternal, "node slices: a claim in a read transaction");
    }
    const ClaimRound::Need need = *round.need;
    std::string holder;
    IPOIB_TRY_ASSIGN(std::vector<IpPrefix> added,
                     store_.claim(net_, need.range_key, need.range, state, need.want, &holder));
    const std::optional<IpPrefix> wanted =
        need.want ? std::optional<IpPrefix>(slice_holding(*need.want, store_.prefix_len()))
                  : std::nullopt;
    if (added.empty() || (wanted && !state.owns(need.range_key, *wanted))) {
      round.failed[ClaimRound::key(need.range_key, wanted)] = holder;
    }
  }
}

Result<TxnInfo> SlicePool::transact(Access access, const Body& body) {
  bool released = false;
  if (access == Access::kRead) {
    // The state is published atomically: a reader needs no lock.
    IPOIB_TRY_ASSIGN(SliceState state, store_.load_state(net_));
    return run_claiming(access, body, state, released);
  }
  IPOIB_TRY_ASSIGN(std::optional<Store> dir,
                   store_.slice_store(store_.mode() == OpenMode::kCreate));
  if (!dir) {
    // DEL or GC on a node that never claimed a slice: only the local pool can change.
    SliceState none;
    IPOIB_TRY_ASSIGN(TxnInfo info, run_claiming(access, body, none, released));
    if (!none.owned.by_range.empty()) {
      return Error(ErrorCode::kInternal, "node slices: a claim in a store opened for DEL/GC");
    }
    return info;
  }
  // Held from the first look at the slices to the end of the local commit (and the returns), so
  // no process of this node allocates in a slice another is returning. Claims run under it too
  // (outside the local transaction): two claims of one node never race each other.
  IPOIB_TRY_ASSIGN(StoreLock lock, dir->lock(store_.location().lock_timeout_ms));
  IPOIB_TRY_ASSIGN(SliceState state, store_.load_state(net_));
  IPOIB_TRY_ASSIGN(TxnInfo info, run_claiming(access, body, state, released));
  if (released) {
    std::vector<std::string> w = store_.return_empty(net_, *local_, state);
    info.warnings.insert(info.warnings.end(), w.begin(), w.end());
  }
  return info;
}

Result<TxnInfo> SlicePool::release_attachment(const ReservationFilter& attachment,
                                              std::vector<Reservation>& released) {
  // DEL: releases are local and need no slice state, so they do not wait for the slice lock (an
  // ADD may hold it while its claim waits for etcd): pod teardown is never blocked by etcd.
  SliceState none;
  bool any = false;
  IPOIB_TRY_ASSIGN(TxnInfo info, run_claiming(
                                     Access::kWrite,
                                     [&](PoolTxn& txn) -> Status {
                                       IPOIB_TRY_ASSIGN(released,
                                                        release_matching(txn, attachment));
                                       return ok_status();
                                     },
                                     none, any));
  if (any) {
    return_after_release(info);
  }
  return info;
}

void SlicePool::return_after_release(TxnInfo& info) {
  auto dir = store_.slice_store(/*create=*/false);
  if (!dir || !*dir) {
    return;  // never claimed a slice
  }
  // A courtesy to other nodes, like the return itself: DEL waits for it no longer than that.
  auto lock = (*dir)->lock(
      std::min<std::int64_t>(store_.location().lock_timeout_ms, kReturnTimeout.count()));
  auto state = lock ? store_.load_state(net_) : Result<SliceState>(lock.error());
  if (!state) {
    info.warnings.push_back("node slices: empty slices go back at a later release: " +
                            state.error().msg());
    return;
  }
  std::vector<std::string> w = store_.return_empty(net_, *local_, *state);
  info.warnings.insert(info.warnings.end(), w.begin(), w.end());
}

etcd::Config with_timeout(etcd::Config cfg, milliseconds timeout) {
  cfg.operation_timeout = timeout;
  cfg.call_timeout = std::min(cfg.call_timeout, cfg.operation_timeout);
  return cfg;
}

}  // namespace

Result<std::unique_ptr<IpamStore>> open_node_slice_store(const StoreLocation& loc, OpenMode mode,
                                                         const StoreTuning& tuning) {
  const milliseconds budget(loc.lock_timeout_ms);
  // Read (secret files included) and checked once, here; the clients are made at first use.
  IPOIB_TRY_ASSIGN(etcd::Config cfg, etcd::config_from(loc.cluster.etcd));
  LazyClient returner(with_timeout(cfg, std::min(budget, kReturnTimeout)));
  LazyClient client(with_timeout(std::move(cfg), budget));
  IPOIB_TRY_ASSIGN(std::unique_ptr<IpamStore> local,
                   open_local_store(loc.store_dir, loc.lock_timeout_ms, mode, tuning));
  return std::unique_ptr<IpamStore>(std::make_unique<SliceIpamStore>(
      loc, mode, std::move(local), std::move(client), std::move(returner)));
}

}  // namespace ipoib::ipam
