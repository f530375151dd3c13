#include "ipoib/ipam/pool_ops.h"

#include <string_view>
#include <unordered_set>

namespace ipoib::ipam {

Result<std::vector<Reservation>> release_matching(PoolTxn& txn, const ReservationFilter& filter) {
  IPOIB_TRY_ASSIGN(std::vector<Reservation> matched, txn.reservations(filter));
  for (const Reservation& r : matched) {
    IPOIB_TRY(txn.release(r.ip));
  }
  return matched;
}

std::vector<Reservation> gc_choose_releases(std::vector<Reservation> candidates,
                                            const std::vector<cni::Attachment>& valid) {
  // The key joins the two fields with a byte neither may contain (storable fields are printable
  // ASCII), so ("a", "bc") and ("ab", "c") stay distinct.
  auto key = [](std::string_view cid, std::string_view ifname) {
    std::string k;
    k.reserve(cid.size() + 1 + ifname.size());
    k.append(cid).push_back('\0');
    k.append(ifname);
    return k;
  };
  std::unordered_set<std::string> keep;
  keep.reserve(valid.size());
  for (const cni::Attachment& a : valid) {
    keep.insert(key(a.container_id, a.ifname));
  }
  std::erase_if(candidates, [&](const Reservation& r) {
    return keep.count(key(r.container_id, r.ifname)) > 0;
  });
  return candidates;
}

}  // namespace ipoib::ipam
