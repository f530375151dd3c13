#include "ipoib/ipam/pool.h"

#include <algorithm>

namespace ipoib::ipam {

bool is_storable_field(std::string_view s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char ch) { return ch > ' ' && ch < 0x7f; });
}

bool is_storable_path(std::string_view s) {
  if (s.empty() || s.size() > kMaxStoredPathBytes) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char ch) { return ch > ' ' && ch < 0x7f; });
}

std::vector<u128> PoolData::taken(IpFamily family) const {
  std::vector<u128> out;
  out.reserve(reservations.size());
  for (const Reservation& r : reservations) {
    if (r.ip.family() == family) {
      out.push_back(r.ip.value());
    }
  }
  return out;  // sorted: reservations are sorted by (family, value)
}

bool PoolData::insert(Reservation r) {
  const auto it =
      std::lower_bound(reservations.begin(), reservations.end(), r.ip,
                       [](const Reservation& a, const IpAddress& ip) { return a.ip < ip; });
  if (it != reservations.end() && it->ip == r.ip) {
    return false;
  }
  reservations.insert(it, std::move(r));
  return true;
}

const PoolRange* PoolData::find_range(const std::string& key) const {
  for (const PoolRange& r : ranges) {
    if (r.key == key) {
      return &r;
    }
  }
  return nullptr;
}

PoolRange& PoolData::upsert_range(const std::string& key, const Range& r) {
  for (PoolRange& pr : ranges) {
    if (pr.key == key) {
      pr.subnet = r.subnet;
      pr.first = r.first;
      pr.last = r.last;
      pr.excluded = r.excluded;
      return pr;
    }
  }
  ranges.push_back({key, r.subnet, r.first, r.last, r.excluded, std::nullopt});
  return ranges.back();
}

}  // namespace ipoib::ipam
