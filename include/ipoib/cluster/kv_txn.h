// ipoib/cluster/kv_txn.h — optimistic transactions over etcd keys: the body reads and writes
// through a KvTxn, and its changes commit in one etcd Txn whose compares check that every key it
// read is unchanged (present: mod_revision == seen; absent: create_revision == 0). On a failed
// compare the body runs again on fresh reads, with jittered backoff, until the budget is spent
// (then kTryAgainLater, 11). This is the engine an etcd PoolStore::transact needs
// (ipam-store's pool_store.h: "read set / compare set", "retry").
//
//   auto info = cluster::run_transaction(client, 2000ms, [&](cluster::KvTxn& t) -> Status {
//     IPOIB_TRY_ASSIGN(auto v, t.get(key));           // recorded in the read set
//     if (!v) IPOIB_TRY(t.put(key, "mine"));          // create-if-absent
//     return ok_status();
//   });
//
// A commit whose outcome is unknown (a member died after receiving it) is safe to send again:
// its compares cover everything it read, so a second application is impossible and a re-run of
// the body sees the first one's effect. run_transaction therefore sends commits as idempotent.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/etcd/client.h"

namespace ipoib::cluster {

class KvTxn {
 public:
  explicit KvTxn(etcd::Client& client, int attempt) : client_(client), attempt_(attempt) {}

  // The key's value (this transaction's own write if it made one), or nullopt. Recorded in the
  // read set: the commit fails if the key changed meanwhile.
  Result<std::optional<std::string>> get(const std::string& key);
  // The key's current value, not recorded: for hints (a cursor) that must not make concurrent
  // transactions conflict.
  Result<std::optional<std::string>> peek(const std::string& key);
  // Keys in [from, end), at most limit (> 0), sorted, not recorded (a bounded scan for
  // candidates: whatever the body decides on it must get()).
  Result<std::vector<std::string>> scan_keys(const std::string& from, const std::string& end,
                                             std::int64_t limit);
  // Every key in [from, end) with its value, read at one revision (paged), and recorded as a
  // range guard: the commit fails if any key in the range was written after that revision.
  // A key listed here may then be put() or del() (with its own mod_revision compare, which
  // also catches a delete). For broad reads: list, GC, STATUS; never on an ADD's path.
  Result<std::vector<etcd::KeyValue>> list(const std::string& from, const std::string& end);
  // Writes and deletes of keys the body has get() or list()ed (kInternal otherwise: a blind
  // write would be outside the compare set).
  Status put(const std::string& key, std::string value);
  Status del(const std::string& key);
  // Creates a key the body believes absent (a gap a scan showed) without reading it first: the
  // commit requires create_revision == 0. kInternal if this run read it as present.
  Status create(const std::string& key, std::string value);
  // A write outside the compare set (last writer wins): hints only.
  void put_hint(const std::string& key, std::string value);

  // 1 for the first run of the body, 2 for the first retry, ...
  [[nodiscard]] int attempt() const { return attempt_; }
  [[nodiscard]] std::size_t writes() const { return writes_.size() + hints_.size(); }

  // The Txn that commits this run (compares for the read set; writes, deletes and hints).
  [[nodiscard]] etcd::TxnRequest commit_request() const;
  [[nodiscard]] std::size_t reads() const { return reads_.size() + guards_.size(); }

 private:
  struct Read {
    bool present = false;
    std::int64_t mod_revision = 0;
    std::string value;
  };
  struct Guard {
    std::string from;
    std::string end;
    std::int64_t revision = 0;
  };
  [[nodiscard]] bool was_read(const std::string& key) const;
  etcd::Client& client_;
  int attempt_;
  std::map<std::string, Read> reads_;
  std::vector<Guard> guards_;
  std::map<std::string, std::int64_t> listed_;                // key -> mod_revision, from list()
  std::map<std::string, std::optional<std::string>> writes_;  // nullopt: delete
  std::map<std::string, std::string> hints_;
};

struct TxnStats {
  int attempts = 0;           // runs of the body
  std::size_t writes = 0;     // keys written or deleted by the committed run
  std::int64_t revision = 0;  // the revision of the commit (0 when nothing was sent)
};

using TxnBody = std::function<Status(KvTxn&)>;

// The pause before retry `attempt` after a conflict: 2, 4, 8 ... 128 ms, times a random factor
// in [0.5, 1.5), so that writers that collided do not collide again.
std::chrono::milliseconds conflict_backoff(int attempt, std::mt19937& rng);

// Runs body until a run commits or `budget` has elapsed since the call. A body error is
// returned unchanged and nothing is committed. A run that wrote nothing commits nothing (what
// it read was current when it read it; there is nothing to guard). Errors: the body's;
// kTryAgainLater naming the conflict when the budget ran out; the etcd client's errors
// (kTryAgainLater naming endpoints when unreachable).
Result<TxnStats> run_transaction(etcd::Client& client, std::chrono::milliseconds budget,
                                 const TxnBody& body);

}  // namespace ipoib::cluster
