// bench/etcd_floor.cpp — the etcd floor the cluster-store benchmarks compare against: a static
// process that does one create-if-absent Txn (compare create_revision == 0, put on success,
// range on failure) through lib/etcd and exits. Its per-process time is what one etcd round
// trip costs the plugin, start-up and connection set-up included.
//
//   etcd-txn-floor http://127.0.0.1:2379,http://127.0.0.1:22379 [KEY]
//       KEY defaults to /ipoib-bench/floor/<pid>-<nanoseconds>, a fresh key per process, so every
//       Txn succeeds and writes. Exit 0 when etcd answered (either branch), 1 with a message.
//   etcd-txn-floor ENDPOINTS --delete-prefix PREFIX
//       Removes the keys a run left (one delete_range), e.g. /ipoib-bench/floor/.
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "ipoib/etcd/client.h"

namespace etcd = ipoib::etcd;

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    (void)std::fprintf(stderr, "usage: %s ENDPOINTS [KEY | --delete-prefix PREFIX]\n", argv[0]);
    return 2;
  }
  etcd::ConfigKeys keys;
  keys.etcd_host = argv[1];
  auto cfg = etcd::config_from(keys);
  if (!cfg.ok()) {
    (void)std::fprintf(stderr, "etcd-txn-floor: %s\n", cfg.error().msg().c_str());
    return 1;
  }
  auto client = etcd::Client::create(std::move(*cfg));
  if (!client.ok()) {
    (void)std::fprintf(stderr, "etcd-txn-floor: %s\n", client.error().msg().c_str());
    return 1;
  }
  if (argc == 4 && std::string(argv[2]) == "--delete-prefix") {
    auto r = (*client)->delete_range(etcd::DeleteRangeRequest::prefix(argv[3]));
    if (!r.ok()) {
      (void)std::fprintf(stderr, "etcd-txn-floor: %s\n", r.error().msg().c_str());
      return 1;
    }
    (void)std::printf("%lld\n", static_cast<long long>(r->deleted));
    return 0;
  }
  std::string key;
  if (argc == 3) {
    key = argv[2];
  } else {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    key = "/ipoib-bench/floor/" + std::to_string(::getpid()) + "-" +
          std::to_string(ts.tv_sec * 1000000000LL + ts.tv_nsec);
  }
  etcd::TxnRequest t;
  t.compare.push_back(etcd::Compare::absent(key));
  t.success.emplace_back(etcd::PutRequest{key, "floor"});
  t.failure.emplace_back(etcd::RangeRequest::single(key));
  auto r = (*client)->txn(t, etcd::TxnRetry::kNotIdempotent);
  if (!r.ok()) {
    (void)std::fprintf(stderr, "etcd-txn-floor: %s\n", r.error().msg().c_str());
    return 1;
  }
  return 0;
}
