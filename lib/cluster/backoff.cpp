// Jittered exponential backoff (ipoib/cluster/backoff.h).
#include "ipoib/cluster/backoff.h"

#include <algorithm>

namespace ipoib::cluster {

std::chrono::milliseconds conflict_backoff(int attempt, std::mt19937& rng) {
  const int shift = std::min(attempt, 7);
  const double base = 1 << shift;
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  return std::chrono::milliseconds(static_cast<std::int64_t>(base * jitter(rng)) + 1);
}

}  // namespace ipoib::cluster
