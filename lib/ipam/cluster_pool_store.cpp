// The cluster store on etcd v3 (ipoib/ipam/cluster_pool_store.h).
#include "ipoib/ipam/cluster_pool_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/file.h"
#include "ipoib/cluster/backoff.h"
#include "ipoib/cluster/keys.h"
#include "ipoib/cni/config.h"
#include "ipoib/etcd/client.h"
#include "ipoib/ipam/pool_ops.h"
#include "ipoib/ipam/store.h"

namespace ipoib::ipam {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
namespace keys = cluster::keys;

// etcd's default --max-txn-ops: the most compares, and the most operations, one Txn may carry.
constexpr std::size_t kMaxTxnOps = 128;
// Keys per bounded read while searching for a free address.
constexpr std::int64_t kScanPage = 64;
// Free addresses after the cursor among which an ADD picks (times the attempt number).
constexpr std::size_t kChoiceWindow = 16;
constexpr std::string_view kDeferredDir = "cluster-deferred";
constexpr std::size_t kMaxDeferredBytes = 4096;
// Tombstones' lease (keys.h): an hour, renewed when less than a quarter of an hour is left, so a
// tombstone lives between 15 and 60 minutes — far longer than any request can sit unanswered.
constexpr std::int64_t kLeaseTtl = 3600;
constexpr std::int64_t kLeaseMinLeft = 900;
constexpr std::string_view kLeaseFile = "cluster-lease";
// Where this node's last ADD left each range's cursor: {"<network>\n<range key>": "<address>"}.
// Only a guess of where the next search starts (see choose()); losing it costs a round trip.
constexpr std::string_view kCursorFile = "cluster-cursors";
constexpr std::size_t kMaxCursorHints = 64;
// A guessed scan starts this many addresses before the guess: other nodes' ADDs may have left
// the cursor a little behind this node's last pick (each picks at random after the cursor).
constexpr unsigned kGuessSlack = 16;
// The range state's "mode": a range is allocated per address or in node slices, never both (the
// two keep their reservations in different places, so mixing them could hand out an address
// twice). Node-slice mode writes "node-slices".
constexpr std::string_view kPerAddressMode = "per-address";

Error corrupt(const std::string& key, const std::string& why) {
  return {ErrorCode::kStoreCorrupt, "cluster store: key " + key + ": " + why};
}

std::string record_json(const Reservation& r) {
  return cni::dump_json({{"ip", r.ip.to_string()},
                         {"range_key", r.range_key},
                         {"network", r.cni_network},
                         {"container_id", r.container_id},
                         {"ifname", r.ifname},
                         {"pod_ref", r.pod_ref},
                         {"since", r.since_unix_s},
                         {"node", r.node},
                         {"netns", r.netns}});
}

Result<Reservation> parse_record(const std::string& key, const std::string& text) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  const auto ip = keys::address_of(key);
  if (!doc.is_object() || !ip) {
    return corrupt(key, "not a reservation record");
  }
  Reservation r;
  r.ip = *ip;
  auto str = [&](const char* name, std::string& out) {
    const auto it = doc.find(name);
    if (it != doc.end() && it->is_string()) {
      out = it->get<std::string>();
      return true;
    }
    return false;
  };
  if (!str("container_id", r.container_id) || !str("ifname", r.ifname) ||
      !str("range_key", r.range_key)) {
    return corrupt(key, "reservation record without container_id, ifname or range_key");
  }
  str("network", r.cni_network);
  str("pod_ref", r.pod_ref);
  str("node", r.node);
  str("netns", r.netns);
  if (const auto it = doc.find("since"); it != doc.end() && it->is_number_integer()) {
    r.since_unix_s = it->get<std::int64_t>();
  }
  return r;
}

// The index keys a reservation owns, with their values (the address).
std::vector<std::pair<std::string, std::string>> index_keys(const std::string& net,
                                                            const Reservation& r) {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back(keys::attachment(net, r.container_id, r.ifname, r.range_key), r.ip.to_string());
  if (!r.pod_ref.empty()) {
    out.emplace_back(keys::pod(net, r.pod_ref, r.ifname, r.range_key, r.container_id),
                     r.ip.to_string());
  }
  return out;
}

std::string range_state_json(const Range& range, const std::optional<IpAddress>& cursor) {
  json excluded = json::array();
  for (const Interval& iv : range.excluded) {
    excluded.push_back({IpAddress(range.family(), iv.lo).to_string(),
                        IpAddress(range.family(), iv.hi).to_string()});
  }
  json j = {{"mode", kPerAddressMode},
            {"subnet", range.subnet.to_string()},
            {"first", range.first.to_string()},
            {"last", range.last.to_string()},
            {"excluded", excluded}};
  if (cursor) {
    j["cursor"] = cursor->to_string();
  }
  return cni::dump_json(j);
}

std::optional<PoolRange> parse_range_state(const std::string& key, const std::string& text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  auto ip = [&](const char* name) -> std::optional<IpAddress> {
    const auto it = j.find(name);
    if (it == j.end() || !it->is_string()) {
      return std::nullopt;
    }
    auto parsed = IpAddress::parse(it->get<std::string>());
    return parsed ? std::optional<IpAddress>(*parsed) : std::nullopt;
  };
  const auto subnet_it = j.find("subnet");
  if (subnet_it == j.end() || !subnet_it->is_string()) {
    return std::nullopt;
  }
  auto subnet = IpPrefix::parse(subnet_it->get<std::string>());
  const auto first = ip("first");
  const auto last = ip("last");
  if (!subnet || !first || !last) {
    return std::nullopt;
  }
  PoolRange pr;
  // .../range/<escaped key>/state
  const std::string_view tail = std::string_view(key).substr(0, key.size() - 6);
  pr.key = keys::unescape(tail.substr(tail.rfind('/') + 1));
  pr.subnet = *subnet;
  pr.first = *first;
  pr.last = *last;
  if (const auto ex = j.find("excluded"); ex != j.end() && ex->is_array()) {
    for (const json& e : *ex) {
      if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        auto lo = IpAddress::parse(e[0].get<std::string>());
        auto hi = IpAddress::parse(e[1].get<std::string>());
        if (lo && hi) {
          pr.excluded.push_back({lo->value(), hi->value()});
        }
      }
    }
  }
  pr.cursor = ip("cursor");
  return pr;
}

// What one read found at a key: the compare that guards it.
struct ReadState {
  bool present = false;
  std::int64_t mod_revision = 0;
};

// One transaction body's view of a pool: reads recorded, changes kept per address key and
// turned into Txns by commit_requests().
class ClusterPoolTxn final : public PoolTxn {
 public:
  // With Speculate::kEmpty, find_attachment and find_pod answer "nothing" without reading, and
  // the commit checks that instead (see speculate_empty); run() falls back to reading when that
  // guess cannot be confirmed.
  enum class Speculate { kNo, kEmpty };
  // cursor_hints: where this node last left each range's cursor (by range key).
  ClusterPoolTxn(etcd::Client& client, const std::string& net, Access access, int attempt,
                 Speculate speculate, const std::map<std::string, IpAddress>& cursor_hints)
      : client_(client),
        net_(net),
        access_(access),
        attempt_(attempt),
        speculate_(access == Access::kWrite && speculate == Speculate::kEmpty),
        cursor_hints_(cursor_hints) {}

  Result<std::optional<Reservation>> find_attachment(std::string_view range_key,
                                                     std::string_view container_id,
                                                     std::string_view ifname) override {
    for (const auto& [key, after] : pending_) {
      if (after && after->range_key == range_key && after->container_id == container_id &&
          after->ifname == ifname) {
        return after;
      }
    }
    // The attachment's whole index prefix, guarded: a DEL's tombstone created under it after
    // this read makes the commit fail, so a late copy of this ADD's Txn cannot apply after its DEL.
    const std::string index = keys::attachment(net_, container_id, ifname, range_key);
    if (const std::string prefix = keys::attachment_prefix(net_, container_id, ifname);
        attachments_.count(prefix) == 0 && speculate_empty(prefix)) {
      attachments_.emplace(prefix, std::vector<etcd::KeyValue>());  // for reservations() too
      return std::optional<Reservation>();
    }
    IPOIB_TRY_ASSIGN(const std::vector<etcd::KeyValue>* entries,
                     attachment_entries(container_id, ifname));
    const auto held = std::find_if(entries->begin(), entries->end(),
                                   [&](const etcd::KeyValue& kv) { return kv.key == index; });
    if (held == entries->end()) {
      return std::optional<Reservation>();
    }
    IPOIB_TRY_ASSIGN(std::optional<Reservation> r, at_index(index, held->value));
    if (r && r->range_key == range_key && r->container_id == container_id && r->ifname == ifname) {
      return r;
    }
    return std::optional<Reservation>();
  }

  Result<std::vector<Reservation>> find_pod(std::string_view range_key, std::string_view pod_ref,
                                            std::string_view ifname) override {
    ReservationFilter f;
    auto same_pod = [&](const Reservation& r) {
      return r.range_key == range_key && r.pod_ref == pod_ref && r.ifname == ifname;
    };
    const std::string prefix = keys::pod_prefix(net_, pod_ref, ifname, range_key);
    if (speculate_empty(prefix)) {
      return from_index({}, same_pod);  // this run's own changes only
    }
    return via_index(prefix, same_pod);
  }

  Result<std::vector<Reservation>> reservations(const ReservationFilter& filter) override {
    auto matches = [&](const Reservation& r) { return filter.matches(r); };
    if (filter.is_attachment()) {
      IPOIB_TRY_ASSIGN(const std::vector<etcd::KeyValue>* entries,
                       attachment_entries(*filter.container_id, *filter.ifname));
      return from_index(*entries, matches);
    }
    if (filter.ip) {
      std::vector<Reservation> out;
      IPOIB_TRY_ASSIGN(std::optional<Reservation> r, current(keys::address(net_, *filter.ip)));
      if (r && matches(*r)) {
        out.push_back(std::move(*r));
      }
      return out;
    }
    std::map<std::string, std::optional<Reservation>> all;
    for (const IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
      const std::string prefix = keys::address_prefix(net_, family);
      // Not guarded as a range: a body that reads everything (GC, admin release) changes only
      // reservations it read, each under its own compare, and must not conflict with every ADD
      // of the network meanwhile.
      IPOIB_TRY_ASSIGN(std::vector<etcd::KeyValue> kvs,
                       list(prefix, keys::prefix_end(prefix), /*guard=*/false));
      for (etcd::KeyValue& kv : kvs) {
        IPOIB_TRY_ASSIGN(Reservation r, parse_record(kv.key, kv.value));
        remember(kv.key, ReadState{true, kv.mod_revision}, r, /*listed=*/true);
        all[kv.key] = std::move(r);
      }
    }
    for (const auto& [key, after] : pending_) {
      all[key] = after;
    }
    std::vector<Reservation> out;
    for (auto& [key, r] : all) {
      if (r && matches(*r)) {
        out.push_back(std::move(*r));
      }
    }
    sort_by_ip(out);
    return out;
  }

  Result<std::vector<PoolRange>> ranges() override {
    const std::string prefix = keys::ranges_prefix(net_);
    etcd::RangeRequest req = etcd::RangeRequest::prefix(prefix);
    IPOIB_TRY_ASSIGN(etcd::RangeResponse resp, client_.range(req));
    std::vector<PoolRange> out;
    for (const etcd::KeyValue& kv : resp.kvs) {
      if (kv.key.size() > 6 && kv.key.compare(kv.key.size() - 6, 6, "/state") == 0) {
        if (auto pr = parse_range_state(kv.key, kv.value)) {
          out.push_back(std::move(*pr));
        }
      }
    }
    return out;
  }

  Result<u128> free_count(const std::string& /*range_key*/, const Range& range) override {
    // Count the reservations in each part of [first, last] that is not excluded.
    u128 taken = 0;
    u128 lo = range.first.value();
    auto count = [&](u128 from, u128 to) -> Status {
      etcd::RangeRequest req;
      req.key = keys::address(net_, IpAddress(range.family(), from));
      req.range_end = keys::address(net_, IpAddress(range.family(), to)) + std::string(1, '\0');
      req.count_only = true;
      IPOIB_TRY_ASSIGN(etcd::RangeResponse resp, client_.range(req));
      taken += static_cast<u128>(resp.count);
      return ok_status();
    };
    for (const Interval& iv : range.excluded) {
      if (iv.lo > lo) {
        IPOIB_TRY(count(lo, iv.lo - 1));
      }
      lo = iv.hi + 1;
      if (iv.hi >= range.last.value()) {
        lo = range.last.value() + 1;
        break;
      }
    }
    if (lo <= range.last.value() && lo >= range.first.value()) {
      IPOIB_TRY(count(lo, range.last.value()));
    }
    const u128 usable = range.usable_count();
    return taken >= usable ? u128{0} : usable - taken;
  }

  Status use_range(const std::string& /*range_key*/, const Range& /*range*/) override {
    if (access_ == Access::kRead) {
      return read_only_change();
    }
    // Written with the cursor when an address is handed out (allocate): no write per ADD.
    return ok_status();
  }

  Result<std::optional<IpAddress>> allocate(const std::string& range_key, const Range& range,
                                            AllocationPolicy /*policy*/, Reservation r) override {
    if (access_ == Access::kRead) {
      return read_only_change();
    }
    IPOIB_TRY_ASSIGN(std::optional<IpAddress> ip, choose(range_key, range));
    if (!ip) {
      return ip;
    }
    const std::string key = keys::address(net_, *ip);
    reads_[key] = ReadState{};  // create-if-absent: create_revision == 0
    base_[key] = std::nullopt;
    r.ip = *ip;
    r.range_key = range_key;
    pending_[key] = std::move(r);
    hints_[keys::range_state(net_, range_key)] = range_state_json(range, *ip);
    cursors_.insert_or_assign(range_key, *ip);
    return ip;
  }

  Status reserve(Reservation r) override {
    if (access_ == Access::kRead) {
      return read_only_change();
    }
    const std::string key = keys::address(net_, r.ip);
    IPOIB_TRY_ASSIGN(std::optional<Reservation> cur, current(key));
    (void)cur;  // read: the compare guards the replacement
    pending_[key] = std::move(r);
    return ok_status();
  }

  Status release(const IpAddress& ip) override {
    if (access_ == Access::kRead) {
      return read_only_change();
    }
    const std::string key = keys::address(net_, ip);
    IPOIB_TRY_ASSIGN(std::optional<Reservation> cur, current(key));
    if (!cur) {
      return Error(ErrorCode::kInternal,
                   "cluster store: release of " + ip.to_string() + ", which is not reserved");
    }
    pending_[key] = std::nullopt;
    mark_released(cur->container_id, cur->ifname);
    return ok_status();
  }

  // Leaves the attachment's tombstone (keys.h) in this run's commit: DEL does so even when it
  // found nothing to release, since an ADD of that attachment may still be in flight.
  void mark_released(const std::string& container_id, const std::string& ifname) {
    tombstones_.insert(keys::tombstone(net_, container_id, ifname));
  }
  [[nodiscard]] bool needs_lease() const { return !tombstones_.empty(); }
  void set_lease(std::int64_t lease) { lease_ = lease; }

  // The Txns that commit this run: one when it fits in one etcd Txn (every compare of the read
  // set), else batches of whole changes, each under its own address key's compare.
  Result<std::vector<etcd::TxnRequest>> commit_requests() const {
    std::vector<etcd::TxnRequest> out;
    std::vector<Change> changes = collect_changes();
    if (changes.empty() && tombstones_.empty()) {
      return out;
    }
    etcd::TxnRequest one;
    for (const auto& [key, read] : reads_) {
      one.compare.push_back(compare_for(key, read));
    }
    for (const Guard& g : guards_) {
      one.compare.push_back(etcd::Compare::range_unchanged_since(g.from, g.end, g.revision));
    }
    for (const Change& c : changes) {
      if (reads_.count(c.key) == 0) {
        one.compare.push_back(compare_for(c.key, listed_.at(c.key)));
      }
    }
    std::map<std::string, std::optional<std::string>> ops;
    for (const Change& c : changes) {
      add_ops(c, ops);
    }
    for (const auto& [k, v] : hints_) {
      ops[k] = v;  // the range state: last writer wins, no compare
    }
    for (const std::string& k : tombstones_) {
      ops[k] = tombstone_value();
    }
    if (one.compare.size() <= kMaxTxnOps && ops.size() <= kMaxTxnOps) {
      append_ops(ops, one);
      // On a failed compare, whether the guessed-empty prefixes still are (guess_held).
      for (const std::string& prefix : assumed_empty_) {
        etcd::RangeRequest count = etcd::RangeRequest::prefix(prefix);
        count.count_only = true;
        one.failure.emplace_back(std::move(count));
      }
      out.push_back(std::move(one));
      return out;
    }
    // Batches: a key two changes touch would have to be in one batch; that only happens when
    // one attachment moves between addresses, which an ADD does in a small transaction.
    std::map<std::string, std::size_t> owner;
    for (std::size_t i = 0; i < changes.size(); ++i) {
      std::map<std::string, std::optional<std::string>> mine;
      add_ops(changes[i], mine);
      for (const auto& [key, v] : mine) {
        if (!owner.emplace(key, i).second && !keys::is_tombstone(key)) {
          return Error(ErrorCode::kInternal,
                       "cluster store: a transaction too large for one etcd Txn changes key " +
                           key + " twice");
        }
      }
    }
    etcd::TxnRequest batch;
    std::map<std::string, std::optional<std::string>> batch_ops;
    for (const Change& c : changes) {
      std::map<std::string, std::optional<std::string>> mine;
      add_ops(c, mine);
      if (batch.compare.size() + 1 > kMaxTxnOps || batch_ops.size() + mine.size() > kMaxTxnOps) {
        append_ops(batch_ops, batch);
        out.push_back(std::move(batch));
        batch = {};
        batch_ops.clear();
      }
      const auto r = reads_.find(c.key);
      batch.compare.push_back(
          compare_for(c.key, r != reads_.end() ? r->second : listed_.at(c.key)));
      batch_ops.insert(mine.begin(), mine.end());
    }
    append_ops(batch_ops, batch);
    out.push_back(std::move(batch));
    etcd::TxnRequest hints;  // after every batch: a cursor never runs ahead of its reservation
    for (const auto& [k, v] : hints_) {
      hints.success.emplace_back(etcd::PutRequest{k, v});
    }
    if (!hints.success.empty()) {
      out.push_back(std::move(hints));
    }
    return out;
  }

  [[nodiscard]] std::size_t changes() const { return collect_changes().size(); }
  // The cursors this run's allocations leave, by range key.
  [[nodiscard]] const std::map<std::string, IpAddress>& cursors() const { return cursors_; }
  // Whether a failed commit's reply shows every guessed-empty prefix still empty: the conflict
  // was elsewhere (two nodes picked one address), so the next run may guess again.
  [[nodiscard]] static bool guess_held(const etcd::TxnResponse& failed) {
    return std::all_of(failed.responses.begin(), failed.responses.end(),
                       [](const etcd::ResponseOp& op) {
                         const auto* r = std::get_if<etcd::RangeResponse>(&op);
                         return r != nullptr && r->count == 0;
                       });
  }
  // Whether an answer of this run is a guess that only a single-Txn commit confirms.
  [[nodiscard]] bool speculated() const { return speculated_; }
  [[nodiscard]] bool changed() const {
    return !pending_.empty() || !hints_.empty() || !tombstones_.empty();
  }

 private:
  struct Guard {
    std::string from;
    std::string end;
    std::int64_t revision = 0;
  };
  struct Change {
    std::string key;
    std::optional<Reservation> before;
    std::optional<Reservation> after;
  };

  static Error read_only_change() {
    return {ErrorCode::kInternal, "cluster store: a read transaction tried to change the pool"};
  }

  static etcd::Compare compare_for(const std::string& key, const ReadState& read) {
    return read.present ? etcd::Compare::mod_revision_is(key, read.mod_revision)
                        : etcd::Compare::absent(key);
  }

  static void sort_by_ip(std::vector<Reservation>& v) {
    std::sort(v.begin(), v.end(),
              [](const Reservation& a, const Reservation& b) { return a.ip < b.ip; });
  }

  std::vector<Change> collect_changes() const {
    std::vector<Change> out;
    for (const auto& [key, after] : pending_) {
      const auto b = base_.find(key);
      std::optional<Reservation> before = b != base_.end() ? b->second : std::nullopt;
      if (before != after) {
        out.push_back({key, std::move(before), after});
      }
    }
    return out;
  }

  // Deletes of what `before` owned, then writes of `after` (a key both delete and write keeps
  // the write: etcd refuses one key twice in a Txn).
  void add_ops(const Change& c, std::map<std::string, std::optional<std::string>>& ops) const {
    if (c.before) {
      for (auto& [k, v] : index_keys(net_, *c.before)) {
        ops.emplace(k, std::nullopt);
      }
      if (!c.after) {
        const std::string tomb = keys::tombstone(net_, c.before->container_id, c.before->ifname);
        if (tombstones_.count(tomb) != 0) {
          ops[tomb] = tombstone_value();  // with its release, in whichever Txn that goes
        }
      }
    }
    if (c.after) {
      for (auto& [k, v] : index_keys(net_, *c.after)) {
        ops[k] = v;
      }
      ops[c.key] = record_json(*c.after);
    } else {
      ops.emplace(c.key, std::nullopt);
    }
  }

  [[nodiscard]] std::string tombstone_value() const {
    return cni::dump_json({{"released", static_cast<std::int64_t>(::time(nullptr))}});
  }

  void append_ops(const std::map<std::string, std::optional<std::string>>& ops,
                  etcd::TxnRequest& t) const {
    for (const auto& [key, value] : ops) {
      if (value) {
        etcd::PutRequest put{key, *value};
        if (keys::is_tombstone(key)) {
          put.lease = lease_;
        }
        t.success.emplace_back(std::move(put));
      } else {
        t.success.emplace_back(etcd::DeleteRangeRequest::single(key));
      }
    }
  }

  void remember(const std::string& key, ReadState state, std::optional<Reservation> r,
                bool listed) {
    if (listed) {
      listed_[key] = state;
    } else {
      reads_[key] = state;
    }
    base_.emplace(key, std::move(r));
  }

  // The common ADD (a new attachment of a new pod) finds its attachment and pod prefixes empty.
  // Instead of reading them (two round trips), this run assumes so and guards the commit with
  // "no key in [prefix, end)" (mod_revision < 1 over the range: a guard of an empty read at
  // revision 0): what an empty read followed by range_unchanged_since would confirm, checked at
  // the commit itself. The attachment's tombstone lies under its prefix, so a DEL since (the
  // late-ADD rule) fails the commit as before. Returns whether the prefix is assumed empty.
  bool speculate_empty(const std::string& prefix) {
    if (!speculate_) {
      return false;
    }
    if (assumed_empty_.insert(prefix).second) {
      guards_.push_back({prefix, keys::prefix_end(prefix), 0});
    }
    speculated_ = true;
    return true;
  }

  // One key's value, recorded in the read set.
  Result<std::optional<std::string>> get_value(const std::string& key) {
    IPOIB_TRY_ASSIGN(etcd::RangeResponse resp, client_.range(etcd::RangeRequest::single(key)));
    if (resp.kvs.empty()) {
      reads_.emplace(key, ReadState{});
      return std::optional<std::string>();
    }
    reads_.emplace(key, ReadState{true, resp.kvs[0].mod_revision});
    return std::optional<std::string>(std::move(resp.kvs[0].value));
  }

  // The reservation at an address key as this run sees it: its own change, else what etcd held
  // when this run first read it.
  Result<std::optional<Reservation>> current(const std::string& key) {
    if (auto p = pending_.find(key); p != pending_.end()) {
      return p->second;
    }
    if (auto b = base_.find(key); b != base_.end()) {
      return b->second;
    }
    IPOIB_TRY_ASSIGN(std::optional<std::string> text, get_value(key));
    std::optional<Reservation> r;
    if (text) {
      IPOIB_TRY_ASSIGN(Reservation parsed, parse_record(key, *text));
      r = std::move(parsed);
    }
    base_.emplace(key, r);
    return r;
  }

  // The reservation an index entry (value: the address) points to.
  Result<std::optional<Reservation>> at_index(const std::string& index, const std::string& value) {
    auto ip = IpAddress::parse(value);
    if (!ip) {
      return corrupt(index, "not an address: " + value.substr(0, 64));
    }
    return current(keys::address(net_, *ip));
  }

  // Every key in [from, end), read at one revision; with `guard`, the commit also checks that no
  // key in the range was written since (one range compare; a delete is not seen by it).
  Result<std::vector<etcd::KeyValue>> list(const std::string& from, const std::string& end,
                                           bool guard = true) {
    std::vector<etcd::KeyValue> out;
    etcd::RangeRequest r;
    r.key = from;
    r.range_end = end;
    r.limit = 512;
    std::int64_t revision = 0;
    for (;;) {
      IPOIB_TRY_ASSIGN(etcd::RangeResponse page, client_.range(r));
      revision = page.header.revision;
      for (auto& kv : page.kvs) {
        out.push_back(std::move(kv));
      }
      if (!page.more || out.empty()) {
        break;
      }
      r.key = out.back().key + std::string(1, '\0');
      r.revision = revision;  // one consistent snapshot across pages
    }
    if (guard) {
      guards_.push_back({from, end, revision});
    }
    return out;
  }

  // The reservations an index prefix names that satisfy `keep`, with this run's own changes.
  template <class Keep>
  Result<std::vector<Reservation>> via_index(const std::string& prefix, const Keep& keep) {
    IPOIB_TRY_ASSIGN(std::vector<etcd::KeyValue> entries, list(prefix, keys::prefix_end(prefix)));
    return from_index(entries, keep);
  }

  // An attachment's index entries in every range, and its tombstone if any: read once per run.
  Result<const std::vector<etcd::KeyValue>*> attachment_entries(std::string_view container_id,
                                                                std::string_view ifname) {
    const std::string prefix = keys::attachment_prefix(net_, container_id, ifname);
    auto it = attachments_.find(prefix);
    if (it == attachments_.end()) {
      IPOIB_TRY_ASSIGN(std::vector<etcd::KeyValue> entries, list(prefix, keys::prefix_end(prefix)));
      it = attachments_.emplace(prefix, std::move(entries)).first;
    }
    return &it->second;
  }

  template <class Keep>
  Result<std::vector<Reservation>> from_index(const std::vector<etcd::KeyValue>& entries,
                                              const Keep& keep) {
    std::map<std::string, Reservation> found;
    for (const etcd::KeyValue& kv : entries) {
      if (keys::is_tombstone(kv.key)) {
        continue;
      }
      IPOIB_TRY_ASSIGN(std::optional<Reservation> r, at_index(kv.key, kv.value));
      if (r && keep(*r)) {
        found.emplace(keys::address(net_, r->ip), std::move(*r));
      }
    }
    for (const auto& [key, after] : pending_) {
      if (after && keep(*after)) {
        found.insert_or_assign(key, *after);
      } else {
        found.erase(key);
      }
    }
    std::vector<Reservation> out;
    out.reserve(found.size());
    for (auto& [key, r] : found) {
      out.push_back(std::move(r));
    }
    sort_by_ip(out);
    return out;
  }

  [[nodiscard]] std::string net_label() const { return net_.empty() ? "(default)" : net_; }

  [[nodiscard]] bool excluded(const Range& range, u128 v, u128* skip_to) const {
    for (const Interval& iv : range.excluded) {
      if (v >= iv.lo && v <= iv.hi) {
        *skip_to = iv.hi;
        return true;
      }
    }
    return false;
  }

  // A free address after the range's cursor (wrapping once), found with keys-only reads of
  // kScanPage keys: a random one of the first kChoiceWindow × attempt free addresses, so that
  // concurrent nodes rarely collide. The commit's create-if-absent compare on its key decides;
  // the scan itself is not guarded.
  Result<std::optional<IpAddress>> choose(const std::string& range_key, const Range& range) {
    const IpFamily fam = range.family();
    // A window of free addresses after the cursor, one picked at random: nodes that ADD at the
    // same moment read the same cursor, and taking its first free address would make all but
    // one of them conflict. The window widens on each retry.
    const std::size_t want =
        std::min<std::size_t>(kChoiceWindow * static_cast<std::size_t>(attempt_), 128);
    u128 start = range.first.value();
    const std::string seg_end =
        keys::address(net_, IpAddress(fam, range.last.value())) + std::string(1, '\0');
    std::optional<etcd::RangeResponse> guessed;  // a first scan page read with the state
    u128 guessed_from = 0;
    {
      etcd::RangeResponse resp;
      const auto hint = cursor_hints_.find(range_key);
      if (hint != cursor_hints_.end() && hint->second.family() == fam &&
          hint->second >= range.first && hint->second < range.last) {
        // One read-only Txn (no compares, two reads: one round trip, one revision) for the
        // state and the scan page where the cursor probably is; the page serves only when it
        // starts at or before the real cursor.
        guessed_from = std::max(range.first.value(), hint->second.value() - kGuessSlack);
        IPOIB_TRY_ASSIGN(
            std::vector<etcd::RangeResponse> both,
            client_.read({etcd::RangeRequest::single(keys::range_state(net_, range_key)),
                          scan_page(IpAddress(fam, guessed_from), seg_end)}));
        resp = std::move(both[0]);
        guessed = std::move(both[1]);
      } else {
        IPOIB_TRY_ASSIGN(
            resp, client_.range(etcd::RangeRequest::single(keys::range_state(net_, range_key))));
      }
      if (!resp.kvs.empty()) {
        const json state = json::parse(resp.kvs[0].value, nullptr, /*allow_exceptions=*/false);
        if (state.is_object() && state.contains("mode") && state["mode"] != kPerAddressMode) {
          return Error(ErrorCode::kInvalidNetworkConfig,
                       "range " + range_key + " of network " + net_label() +
                           " is allocated in node slices in the cluster store (" + resp.kvs[0].key +
                           "): set the same node_slice_size on every node; a range cannot mix "
                           "node slices and per-address allocation");
        }
        const auto pr = parse_range_state(resp.kvs[0].key, resp.kvs[0].value);
        if (pr && pr->cursor && pr->cursor->family() == fam && *pr->cursor >= range.first &&
            *pr->cursor < range.last) {
          start = pr->cursor->value() + 1;
        }
      }
    }
    std::vector<IpAddress> candidates;
    auto add_free = [&](u128 lo, u128 hi) {
      while (lo <= hi && candidates.size() < want) {
        u128 skip = 0;
        if (excluded(range, lo, &skip)) {
          if (skip >= hi) {
            return;
          }
          lo = skip + 1;
          continue;
        }
        const IpAddress ip(fam, lo);
        const std::string key = keys::address(net_, ip);
        const auto p = pending_.find(key);
        const auto b = base_.find(key);
        const bool seen_taken = (p != pending_.end()) || (b != base_.end() && b->second);
        if (!seen_taken) {
          candidates.push_back(ip);
        }
        if (lo == hi) {
          return;
        }
        ++lo;
      }
    };
    std::vector<std::pair<u128, u128>> segments = {{start, range.last.value()}};
    if (start > range.first.value()) {
      segments.emplace_back(range.first.value(), start - 1);
    }
    for (const auto& [seg_first, seg_last] : segments) {
      u128 pos = seg_first;
      const std::string end = keys::address(net_, IpAddress(fam, seg_last)) + std::string(1, '\0');
      bool done = false;
      while (!done && candidates.size() < want) {
        etcd::RangeResponse page;
        if (guessed && end == seg_end && guessed_from <= pos) {
          page = std::move(*guessed);  // its keys before pos are skipped below
        } else {
          IPOIB_TRY_ASSIGN(page, client_.range(scan_page(IpAddress(fam, pos), end)));
        }
        guessed.reset();
        for (const etcd::KeyValue& kv : page.kvs) {
          const auto t = keys::address_of(kv.key);
          if (!t || t->family() != fam) {
            return corrupt(kv.key, "not an address key");
          }
          if (t->value() < pos) {
            continue;
          }
          if (t->value() > pos) {
            add_free(pos, t->value() - 1);
          }
          if (t->value() >= seg_last) {
            done = true;
            break;
          }
          pos = t->value() + 1;
        }
        if (!done && !page.more) {
          add_free(pos, seg_last);
          done = true;
        }
      }
      if (candidates.size() >= want) {
        break;
      }
    }
    if (candidates.empty()) {
      return std::optional<IpAddress>();
    }
    // Seeded per call: a static generator would repeat its sequence in every forked process.
    std::mt19937 rng(
        static_cast<std::uint32_t>(::getpid()) * 2654435761U ^
        static_cast<std::uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
    const std::size_t pick =
        std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(rng);
    return std::optional<IpAddress>(candidates[pick]);
  }

  // Up to kScanPage address keys from `from` to `end` (keys only).
  etcd::RangeRequest scan_page(const IpAddress& from, const std::string& end) const {
    etcd::RangeRequest r;
    r.key = keys::address(net_, from);
    r.range_end = end;
    r.limit = kScanPage;
    r.keys_only = true;
    return r;
  }

  etcd::Client& client_;
  const std::string& net_;
  Access access_;
  int attempt_;
  bool speculate_;
  const std::map<std::string, IpAddress>& cursor_hints_;
  std::map<std::string, IpAddress> cursors_;  // range key -> where this run left its cursor
  bool speculated_ = false;
  std::map<std::string, ReadState> reads_;   // get(): compared in the one-Txn commit
  std::map<std::string, ReadState> listed_;  // from list(): covered by a guard until changed
  std::vector<Guard> guards_;
  std::map<std::string, std::optional<Reservation>> base_;          // address key -> what etcd held
  std::map<std::string, std::optional<Reservation>> pending_;       // address key -> this run's
  std::map<std::string, std::string> hints_;                        // range state (cursor)
  std::map<std::string, std::vector<etcd::KeyValue>> attachments_;  // att prefix -> entries
  std::set<std::string> tombstones_;
  std::set<std::string> assumed_empty_;  // prefixes speculate_empty answered for
  std::int64_t lease_ = 0;
};

// A deferred release: the attachment whose reservations DEL could not release in etcd.
struct Deferred {
  std::string network;
  std::string container_id;
  std::string ifname;
};

std::string deferred_name(const Deferred& d) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  for (const std::string* part : {&d.network, &d.container_id, &d.ifname}) {
    for (const char c : *part) {
      h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    }
    h = (h ^ 0xffU) * 1099511628211ULL;  // a byte no storable field holds separates them
  }
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string name = "release-";
  for (int i = 15; i >= 0; --i) {
    name += kHex[(h >> (4 * i)) & 15];
  }
  return name;
}

class ClusterIpamStore;

class ClusterPool final : public PoolStore {
 public:
  ClusterPool(ClusterIpamStore& store, std::string net) : store_(store), net_(std::move(net)) {}
  Result<TxnInfo> transact(Access access, const Body& body) override;
  Result<TxnInfo> release_attachment(const ReservationFilter& attachment,
                                     std::vector<Reservation>& released) override;
  [[nodiscard]] std::string label() const override;
  // The transaction without applying deferred releases first (what applying one runs).
  Result<TxnInfo> run(Access access, const Body& body);
  Result<TxnInfo> release_tombstoned(const ReservationFilter& attachment,
                                     std::vector<Reservation>& released);

 private:
  ClusterIpamStore& store_;
  std::string net_;
};

class ClusterIpamStore final : public IpamStore {
 public:
  // Every OpenMode is the same here: etcd needs nothing created, and store_dir is created only
  // when a DEL defers a release or a lease is recorded.
  ClusterIpamStore(StoreLocation loc, std::unique_ptr<etcd::Client> client)
      : loc_(std::move(loc)), client_(std::move(client)) {}

  Result<std::vector<std::string>> pool_names() override {
    // One bounded read per network: after a network's first key, skip past its prefix.
    std::vector<std::string> out;
    const std::string root = std::string(keys::kRoot) + "net/";
    std::string from = root;
    const std::string end = keys::prefix_end(root);
    for (;;) {
      etcd::RangeRequest r;
      r.key = from;
      r.range_end = end;
      r.limit = 1;
      r.keys_only = true;
      IPOIB_TRY_ASSIGN(etcd::RangeResponse resp, client_->range(r));
      if (resp.kvs.empty()) {
        return out;
      }
      const std::string& key = resp.kvs[0].key;
      const std::size_t slash = key.find('/', root.size());
      if (slash == std::string::npos) {
        return out;
      }
      const std::string name = keys::unescape(key.substr(root.size(), slash - root.size()));
      out.push_back(name == "_" ? std::string() : name);
      from = keys::prefix_end(key.substr(0, slash + 1));
    }
  }

  std::unique_ptr<PoolStore> pool(const std::string& network_name) override {
    return std::make_unique<ClusterPool>(*this, network_name);
  }

  Status writable() override {
    IPOIB_TRY_ASSIGN(etcd::StatusResponse st, client_->status());
    if (st.leader == 0) {
      return Error(ErrorCode::kTryAgainLater, "cluster store " + label() +
                                                  ": the member that answered has no leader (no "
                                                  "quorum)");
    }
    // STATUS applies what DEL deferred, every network's.
    IPOIB_TRY_ASSIGN(std::vector<Deferred> pending, deferred_entries());
    for (const Deferred& d : pending) {
      IPOIB_TRY(apply_deferred(d));
    }
    return ok_status();
  }

  [[nodiscard]] std::string label() const override { return "etcd " + loc_.cluster.etcd.etcd_host; }

  etcd::Client& client() { return *client_; }

  // The lease tombstones are put with: one per node for about an hour, granted when the one
  // recorded in <store_dir>/cluster-lease has less than kLeaseMinLeft left, so a DEL rarely
  // pays a round trip for it. Not recording it (a read-only store_dir) only costs grants.
  Result<std::int64_t> tombstone_lease() {
    const std::int64_t now = static_cast<std::int64_t>(::time(nullptr));
    if (lease_ != 0 && lease_expires_ - now > kLeaseMinLeft) {
      return lease_;
    }
    const std::string path = loc_.store_dir + "/" + std::string(kLeaseFile);
    auto text = read_file_if_exists(AT_FDCWD, path, kMaxDeferredBytes);
    if (text && *text) {
      const json j = json::parse(**text, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.value("id", json()).is_number_integer() &&
          j.value("expires", json()).is_number_integer() &&
          j["expires"].get<std::int64_t>() - now > kLeaseMinLeft) {
        lease_ = j["id"].get<std::int64_t>();
        lease_expires_ = j["expires"].get<std::int64_t>();
        return lease_;
      }
    }
    IPOIB_TRY_ASSIGN(lease_, client_->lease_grant(kLeaseTtl));
    lease_expires_ = now + kLeaseTtl;
    publish_hint(std::string(kLeaseFile),
                 cni::dump_json({{"id", lease_}, {"expires", lease_expires_}}));
    return lease_;
  }

  // Whether a failed commit says the lease it named is gone; then it is forgotten.
  bool lease_lost(const Error& e) {
    if (e.msg().find("lease not found") == std::string::npos) {
      return false;
    }
    lease_ = 0;
    lease_expires_ = 0;
    const std::string path = loc_.store_dir + "/" + std::string(kLeaseFile);
    (void)::unlink(path.c_str());
    return true;
  }
  [[nodiscard]] const StoreLocation& location() const { return loc_; }

  // Where this node's last ADDs left its networks' cursors (kCursorFile): the file's document,
  // read once per operation, and net's hints in it by range key (empty when unknown). A hint: a
  // missing or damaged file only costs a round trip.
  struct CursorHints {
    json doc = json::object();
    std::map<std::string, IpAddress> by_range;
  };
  [[nodiscard]] CursorHints cursor_hints(const std::string& net) const {
    CursorHints out;
    out.doc = read_cursor_file();
    const std::string prefix = net + "\n";
    for (const auto& [key, value] : out.doc.items()) {
      if (key.compare(0, prefix.size(), prefix) == 0 && value.is_string()) {
        if (auto ip = IpAddress::parse(value.get<std::string>())) {
          out.by_range.emplace(key.substr(prefix.size()), *ip);
        }
      }
    }
    return out;
  }

  // Records where a committed ADD left net's cursors, into the document cursor_hints read. Two
  // ADDs of this node may race on the file: the later rename wins, and the hints the other wrote
  // are lost, which costs a later ADD one read.
  void record_cursors(json doc, const std::string& net,
                      const std::map<std::string, IpAddress>& cursors) {
    if (doc.size() >= kMaxCursorHints) {
      doc = json::object();  // stale networks' hints go; this one's are written again below
    }
    for (const auto& [range_key, ip] : cursors) {
      std::string key = net;
      key.append("\n").append(range_key);
      doc[key] = ip.to_string();
    }
    publish_hint(std::string(kCursorFile), cni::dump_json(doc));
  }

  // Applies this network's deferred releases; an error when one cannot be applied (then the
  // pool must commit nothing else).
  Status flush_deferred(const std::string& net) {
    IPOIB_TRY_ASSIGN(std::vector<Deferred> pending, deferred_entries());
    for (const Deferred& d : pending) {
      if (d.network == net) {
        IPOIB_TRY(apply_deferred(d));
      }
    }
    return ok_status();
  }

  // Records a release durably on this node.
  Status defer(const Deferred& d) {
    IPOIB_TRY(ensure_deferred_dir());
    const std::string dir = deferred_dir();
    auto fd = open_checked(AT_FDCWD, dir, O_RDONLY, FileType::kDirectory);
    if (!fd) {
      return std::move(fd).error();
    }
    const std::string text = cni::dump_json(
        {{"network", d.network}, {"container_id", d.container_id}, {"ifname", d.ifname}});
    return publish_file(fd->get(), dir, deferred_name(d), text, 0600);
  }

 private:
  [[nodiscard]] std::string deferred_dir() const {
    return loc_.store_dir + "/" + std::string(kDeferredDir);
  }

  Status ensure_deferred_dir() {
    // Store::open creates missing directories 0700 and refuses untrusted ones.
    IPOIB_TRY_ASSIGN(std::optional<Store> s, Store::open(deferred_dir(), CreateMode::kCreate));
    (void)s;
    return ok_status();
  }

  Result<std::vector<Deferred>> deferred_entries() {
    std::vector<Deferred> out;
    const std::string dir = deferred_dir();
    auto fd = open_checked(AT_FDCWD, dir, O_RDONLY, FileType::kDirectory);
    if (!fd) {
      if (::access(dir.c_str(), F_OK) != 0 && errno == ENOENT) {
        return out;  // nothing was ever deferred
      }
      return std::move(fd).error();
    }
    IPOIB_TRY_ASSIGN(std::vector<std::string> names, list_directory(fd->get(), dir));
    for (const std::string& name : names) {
      if (name.rfind("release-", 0) != 0) {
        continue;  // publish_file's temporary files, or not ours
      }
      IPOIB_TRY_ASSIGN(std::optional<std::string> text,
                       read_file_if_exists(fd->get(), name, kMaxDeferredBytes,
                                           ErrorCode::kStoreCorrupt, FollowSymlinks::kNo));
      if (!text) {
        continue;  // applied by another process meanwhile
      }
      const json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object() || !j.value("container_id", json()).is_string() ||
          !j.value("ifname", json()).is_string() || !j.value("network", json()).is_string()) {
        std::string msg = "deferred release ";
        msg.append(dir).append("/").append(name).append(" is not a release record");
        return Error(ErrorCode::kStoreCorrupt, msg);
      }
      out.push_back({j["network"].get<std::string>(), j["container_id"].get<std::string>(),
                     j["ifname"].get<std::string>()});
    }
    return out;
  }

  Status apply_deferred(const Deferred& d);

  // Replaces store_dir/name, a hint whose loss only costs time (the lease, the cursors):
  // atomically, without fsync, and a failure (a read-only store_dir) is ignored. Store::open
  // creates a missing store_dir 0700 and refuses an untrusted one.
  void publish_hint(const std::string& name, std::string_view text) const {
    if (auto dir = Store::open(loc_.store_dir, CreateMode::kCreate); dir && *dir) {
      (void)publish_file((*dir)->dir_fd(), loc_.store_dir, name, text, 0600,
                         Durability::kAtomicOnly);
    }
  }

  [[nodiscard]] json read_cursor_file() const {
    const std::string path = loc_.store_dir + "/" + std::string(kCursorFile);
    auto text = read_file_if_exists(AT_FDCWD, path, kMaxDeferredBytes * 4);
    if (!text || !*text) {
      return json::object();
    }
    json j = json::parse(**text, nullptr, /*allow_exceptions=*/false);
    return j.is_object() ? j : json::object();
  }

  StoreLocation loc_;
  std::unique_ptr<etcd::Client> client_;
  std::int64_t lease_ = 0;
  std::int64_t lease_expires_ = 0;
};

Result<TxnInfo> ClusterPool::run(Access access, const Body& body) {
  etcd::Client& client = store_.client();
  const milliseconds budget(store_.location().lock_timeout_ms);
  const auto deadline = steady_clock::now() + budget;
  std::mt19937 rng(static_cast<std::uint32_t>(::getpid()) ^
                   static_cast<std::uint32_t>(steady_clock::now().time_since_epoch().count()));
  // The first run guesses that the ADD's lookups find nothing (speculate_empty), and so does the
  // run after a conflict that left the guessed prefixes empty (guess_held). A commit that fails
  // otherwise is a conflict whose next run reads; a run whose guess cannot be confirmed runs
  // again reading, without counting as a conflict: the body
  // failed (its error may stem from the guess: "exhausted" for a re-ADD that holds an address),
  // it commits nothing (nothing would check the guess), or it needs batches (they carry only
  // their changes' compares).
  auto speculate = ClusterPoolTxn::Speculate::kEmpty;
  ClusterIpamStore::CursorHints hints;
  if (access == Access::kWrite) {
    hints = store_.cursor_hints(net_);
  }
  for (int attempt = 1;; ++attempt) {
    ClusterPoolTxn txn(client, net_, access, attempt, speculate, hints.by_range);
    speculate = ClusterPoolTxn::Speculate::kNo;
    if (Status st = body(txn); !st.ok()) {
      if (txn.speculated()) {
        --attempt;
        continue;
      }
      return std::move(st).error();
    }
    TxnInfo info;
    info.attempts = attempt;
    if (access == Access::kRead) {
      if (txn.changed()) {
        return Error(ErrorCode::kInternal, "cluster store: a read transaction changed the pool");
      }
      return info;
    }
    if (txn.needs_lease()) {
      IPOIB_TRY_ASSIGN(std::int64_t lease, store_.tombstone_lease());
      txn.set_lease(lease);
    }
    IPOIB_TRY_ASSIGN(std::vector<etcd::TxnRequest> commits, txn.commit_requests());
    if (txn.speculated() && commits.size() != 1) {
      --attempt;
      continue;
    }
    bool conflict = false;
    for (const etcd::TxnRequest& t : commits) {
      // Every commit is guarded by compares over what it read, so sending it again after an
      // unknown outcome cannot apply it twice.
      auto resp = client.txn(t, etcd::TxnRetry::kIdempotent);
      if (!resp && txn.needs_lease() && store_.lease_lost(resp.error())) {
        conflict = true;  // the lease expired or etcd was restored: grant another, run again
        break;
      }
      if (!resp) {
        return std::move(resp).error();
      }
      if (!resp->succeeded) {
        conflict = true;
        if (txn.speculated() && ClusterPoolTxn::guess_held(*resp)) {
          speculate = ClusterPoolTxn::Speculate::kEmpty;
        }
        break;
      }
    }
    if (!conflict) {
      info.changes = txn.changes();
      if (!txn.cursors().empty()) {
        store_.record_cursors(std::move(hints.doc), net_, txn.cursors());
      }
      return info;
    }
    const auto now = steady_clock::now();
    if (now >= deadline) {
      return Error(ErrorCode::kTryAgainLater,
                   "cluster store " + store_.label() + ": " + std::to_string(attempt) +
                       " conflicting attempts within " + std::to_string(budget.count()) +
                       " ms (lock_timeout_ms): the keys this operation read kept changing");
    }
    std::this_thread::sleep_for(std::min(cluster::conflict_backoff(attempt, rng),
                                         std::chrono::duration_cast<milliseconds>(deadline - now)));
  }
}

Result<TxnInfo> ClusterPool::transact(Access access, const Body& body) {
  if (access == Access::kWrite) {
    // Nothing commits while a release DEL deferred is pending: its address must be free first.
    IPOIB_TRY(store_.flush_deferred(net_));
  }
  return run(access, body);
}

// release_matching, and the attachment's tombstone even when nothing matched (keys.h).
Result<TxnInfo> ClusterPool::release_tombstoned(const ReservationFilter& attachment,
                                                std::vector<Reservation>& released) {
  return run(Access::kWrite, [&](PoolTxn& txn) -> Status {
    IPOIB_TRY_ASSIGN(released, release_matching(txn, attachment));
    if (attachment.is_attachment()) {
      // run() hands its bodies a ClusterPoolTxn.
      static_cast<ClusterPoolTxn&>(txn).mark_released(*attachment.container_id, *attachment.ifname);
    }
    return ok_status();
  });
}

Result<TxnInfo> ClusterPool::release_attachment(const ReservationFilter& attachment,
                                                std::vector<Reservation>& released) {
  auto done = [&]() -> Result<TxnInfo> {
    IPOIB_TRY(store_.flush_deferred(net_));
    return release_tombstoned(attachment, released);
  }();
  if (done || done.error().code() != ErrorCode::kTryAgainLater || !attachment.is_attachment()) {
    return done;
  }
  // etcd cannot be reached (or kept conflicting): DEL must not block pod teardown.
  released.clear();
  IPOIB_TRY(store_.defer({net_, *attachment.container_id, *attachment.ifname}));
  TxnInfo info;
  info.deferred = true;
  info.warnings.push_back(
      "cluster store unreachable; the release of " + *attachment.container_id + "/" +
      *attachment.ifname +
      " is recorded on this node and applied when etcd answers: " + done.error().msg());
  return info;
}

std::string ClusterPool::label() const {
  return store_.label() + " network " + (net_.empty() ? std::string("(default)") : net_);
}

Status ClusterIpamStore::apply_deferred(const Deferred& d) {
  ClusterPool pool(*this, d.network);
  ReservationFilter f;
  f.container_id = d.container_id;
  f.ifname = d.ifname;
  std::vector<Reservation> released;
  auto done = pool.release_tombstoned(f, released);
  if (!done) {
    return Error(done.error().code(), "applying a release deferred by DEL (" + d.container_id +
                                          "/" + d.ifname + "): " + done.error().msg());
  }
  const std::string path = deferred_dir() + "/" + deferred_name(d);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return errno_error(ErrorCode::kIoFailure, "remove " + path);
  }
  return ok_status();
}

}  // namespace

Result<std::unique_ptr<IpamStore>> open_cluster_store(const StoreLocation& loc, OpenMode /*mode*/) {
  IPOIB_TRY_ASSIGN(etcd::Config cfg, etcd::config_from(loc.cluster.etcd));
  cfg.operation_timeout = milliseconds(loc.lock_timeout_ms);
  cfg.call_timeout = std::min(cfg.call_timeout, cfg.operation_timeout);
  IPOIB_TRY_ASSIGN(std::unique_ptr<etcd::Client> client, etcd::Client::create(std::move(cfg)));
  return std::unique_ptr<IpamStore>(std::make_unique<ClusterIpamStore>(loc, std::move(client)));
}

}  // namespace ipoib::ipam
