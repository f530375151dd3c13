// ipoib/cluster/backoff.h — the pause between optimistic attempts on etcd after a conflict
// (a failed compare): the cluster store's transactions and node-slice claims.
#pragma once

#include <chrono>
#include <random>

namespace ipoib::cluster {

// The pause before retry `attempt`: 2, 4, 8 ... 128 ms, times a random factor in [0.5, 1.5), so
// that writers that collided do not collide again.
std::chrono::milliseconds conflict_backoff(int attempt, std::mt19937& rng);

}  // namespace ipoib::cluster
