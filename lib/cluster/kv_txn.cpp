// Optimistic transactions over etcd (ipoib/cluster/kv_txn.h).
#include "ipoib/cluster/kv_txn.h"

#include <unistd.h>

#include <random>
#include <thread>

namespace ipoib::cluster {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

}  // namespace

milliseconds conflict_backoff(int attempt, std::mt19937& rng) {
  const int shift = std::min(attempt, 7);
  const double base = 1 << shift;
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  return milliseconds(static_cast<std::int64_t>(base * jitter(rng)) + 1);
}

Result<std::optional<std::string>> KvTxn::get(const std::string& key) {
  if (auto w = writes_.find(key); w != writes_.end()) {
    return w->second;
  }
  if (auto r = reads_.find(key); r != reads_.end()) {
    return r->second.present ? std::optional<std::string>(r->second.value) : std::nullopt;
  }
  IPOIB_TRY_ASSIGN(etcd::RangeResponse resp, client_.range(etcd::RangeRequest::single(key)));
  Read read;
  if (!resp.kvs.empty()) {
    read.present = true;
    read.mod_revision = resp.kvs[0].mod_revision;
    read.value = std::move(resp.kvs[0].value);
  }
  auto& stored = reads_[key] = std::move(read);
  return stored.present ? std::optional<std::string>(stored.value) : std::nullopt;
}

Result<std::optional<std::string>> KvTxn::peek(const std::string& key) {
  IPOIB_TRY_ASSIGN(etcd::RangeResponse resp, client_.range(etcd::RangeRequest::single(key)));
  if (resp.kvs.empty()) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(std::move(resp.kvs[0].value));
}

Result<std::vector<std::string>> KvTxn::scan_keys(const std::string& from, const std::string& end,
                                                  std::int64_t limit) {
  etcd::RangeRequest r;
  r.key = from;
  r.range_end = end;
  r.limit = limit;
  r.keys_only = true;
  IPOIB_TRY_ASSIGN(etcd::RangeResponse resp, client_.range(r));
  std::vector<std::string> keys;
  keys.reserve(resp.kvs.size());
  for (auto& kv : resp.kvs) {
    keys.push_back(std::move(kv.key));
  }
  return keys;
}

Result<std::vector<etcd::KeyValue>> KvTxn::list(const std::string& from, const std::string& end) {
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
      listed_[kv.key] = kv.mod_revision;
      out.push_back(std::move(kv));
    }
    if (!page.more || page.kvs.empty()) {
      break;
    }
    r.key = out.back().key + std::string(1, '\0');
    r.revision = revision;  // one consistent snapshot across pages
  }
  guards_.push_back({from, end, revision});
  // This run's own writes in the range win over what etcd holds.
  for (auto& kv : out) {
    if (auto w = writes_.find(kv.key); w != writes_.end() && w->second) {
      kv.value = *w->second;
    }
  }
  std::erase_if(out, [&](const etcd::KeyValue& kv) {
    auto w = writes_.find(kv.key);
    return w != writes_.end() && !w->second;
  });
  return out;
}

bool KvTxn::was_read(const std::string& key) const {
  return reads_.count(key) != 0 || listed_.count(key) != 0 || writes_.count(key) != 0;
}

Status KvTxn::put(const std::string& key, std::string value) {
  if (!was_read(key)) {
    return Error(ErrorCode::kInternal, "cluster txn: write of unread key " + key);
  }
  writes_[key] = std::move(value);
  return ok_status();
}

Status KvTxn::del(const std::string& key) {
  if (!was_read(key)) {
    return Error(ErrorCode::kInternal, "cluster txn: delete of unread key " + key);
  }
  writes_[key] = std::nullopt;
  return ok_status();
}

Status KvTxn::create(const std::string& key, std::string value) {
  auto r = reads_.find(key);
  if (r != reads_.end() && r->second.present) {
    return Error(ErrorCode::kInternal, "cluster txn: create of a key read as present: " + key);
  }
  if (r == reads_.end()) {
    reads_[key] = Read{};  // compare create_revision == 0
  }
  writes_[key] = std::move(value);
  return ok_status();
}

void KvTxn::put_hint(const std::string& key, std::string value) { hints_[key] = std::move(value); }

etcd::TxnRequest KvTxn::commit_request() const {
  etcd::TxnRequest t;
  for (const auto& [key, read] : reads_) {
    t.compare.push_back(read.present ? etcd::Compare::mod_revision_is(key, read.mod_revision)
                                     : etcd::Compare::absent(key));
  }
  for (const Guard& g : guards_) {
    t.compare.push_back(etcd::Compare::range_unchanged_since(g.from, g.end, g.revision));
  }
  for (const auto& [key, value] : writes_) {
    const auto listed = listed_.find(key);
    const bool listed_only = listed != listed_.end() && reads_.count(key) == 0;
    if (listed_only) {
      // Its own compare: the range guard does not see a delete.
      t.compare.push_back(etcd::Compare::mod_revision_is(key, listed->second));
    }
    if (value) {
      t.success.emplace_back(etcd::PutRequest{key, *value});
    } else if (auto r = reads_.find(key); listed_only || (r != reads_.end() && r->second.present)) {
      t.success.emplace_back(etcd::DeleteRangeRequest::single(key));
    }
    // A delete of a key read as absent (or created and deleted by this run) is nothing to do.
  }
  for (const auto& [key, value] : hints_) {
    if (writes_.count(key) == 0) {
      t.success.emplace_back(etcd::PutRequest{key, value});
    }
  }
  return t;
}

Result<TxnStats> run_transaction(etcd::Client& client, milliseconds budget, const TxnBody& body) {
  const auto deadline = steady_clock::now() + budget;
  std::mt19937 rng(static_cast<std::uint32_t>(::getpid()) ^
                   static_cast<std::uint32_t>(steady_clock::now().time_since_epoch().count()));
  for (int attempt = 1;; ++attempt) {
    KvTxn txn(client, attempt);
    IPOIB_TRY(body(txn));
    TxnStats stats;
    stats.attempts = attempt;
    stats.writes = txn.writes();
    if (txn.writes() == 0) {
      return stats;
    }
    IPOIB_TRY_ASSIGN(etcd::TxnResponse resp,
                     client.txn(txn.commit_request(), etcd::TxnRetry::kIdempotent));
    if (resp.succeeded) {
      stats.revision = resp.header.revision;
      return stats;
    }
    auto now = steady_clock::now();
    if (now >= deadline) {
      return Error(ErrorCode::kTryAgainLater,
                   "cluster store: " + std::to_string(attempt) + " conflicting attempts within " +
                       std::to_string(budget.count()) +
                       " ms (keys read by this operation kept changing under concurrent writers)");
    }
    auto pause = std::min(conflict_backoff(attempt, rng),
                          std::chrono::duration_cast<milliseconds>(deadline - now));
    std::this_thread::sleep_for(pause);
  }
}

}  // namespace ipoib::cluster
