// ipoib/cluster/address_allocator.h — per-address allocation on etcd: one key per reserved
// address plus an attachment index, every change one Txn guarded by compares (kv_txn.h). No
// lock, no leader: concurrent nodes resolve conflicts by compare-and-swap retries.
//
// Key layout (version-prefixed; components percent-encoded, so '/' never appears inside one):
//   /ipoib/v1/net/<network>/range/<range_key>/ip/<hex>              the reservation record (JSON:
//        {"ip","container_id","ifname","pod_ref","node","time"}); <hex> is the address as a
//        fixed-width lower-case hex number (8 digits IPv4, 32 IPv6), so key order is address
//        order and a bounded range read walks addresses upwards
//   /ipoib/v1/net/<network>/range/<range_key>/att/<container_id>/<ifname>   the address (text)
//        of that attachment: ADD finds an existing reservation with one read
//   /ipoib/v1/net/<network>/range/<range_key>/cursor                the last address handed out
//        (text): a hint, written without a compare, where the next search starts
//
// ADD (add): read the attachment key (present: return its address: idempotent); peek the
// cursor; scan address keys from the cursor with keys-only range reads of `page_keys` keys
// until a gap (free address) appears, wrapping once; commit create-if-absent on the chosen
// address key and the attachment key, and the cursor hint. Concurrent ADDs that pick the same
// address conflict on its key; a retry chooses at random among the first few free addresses it
// sees, so a storm of nodes spreads out. The whole range is read only when it is (nearly) full.
// DEL (release): read the attachment key and the address key; delete both (guarded).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/cluster/kv_txn.h"
#include "ipoib/etcd/client.h"

namespace ipoib::cluster {

// Key builders (pure).
namespace keys {
inline constexpr std::string_view kRoot = "/ipoib/v1/";
std::string escape(std::string_view component);  // percent-encodes all but [A-Za-z0-9._-]
std::string range_prefix(std::string_view network, std::string_view range_key);
std::string address(std::string_view network, std::string_view range_key, const IpAddress& ip);
std::string attachment(std::string_view network, std::string_view range_key,
                       std::string_view container_id, std::string_view ifname);
std::string cursor(std::string_view network, std::string_view range_key);
// The fixed-width hex form used in address keys.
std::string address_hex(const IpAddress& ip);
}  // namespace keys

struct AddressRange {
  IpAddress first;  // inclusive, same family as last
  IpAddress last;
  std::vector<IpPrefix> exclude;
};

struct Attachment {
  std::string container_id;
  std::string ifname;
  std::string pod_ref;
  std::string node;
};

struct Allocation {
  IpAddress ip;
  bool existing = false;  // the attachment already held it (idempotent re-ADD)
  int attempts = 1;
};

struct AllocatorOptions {
  std::chrono::milliseconds budget{5000};  // lock_timeout_ms: conflicts retried until then
  std::int64_t page_keys = 64;             // keys per bounded range read while searching
};

class AddressAllocator {
 public:
  AddressAllocator(etcd::Client& client, std::string network, std::string range_key,
                   AddressRange range, AllocatorOptions options = {});

  // Reserves an address for the attachment, or returns the one it holds. kIpamFailure when the
  // range has no free address; kTryAgainLater when conflicts or etcd did not allow a commit
  // within the budget.
  Result<Allocation> add(const Attachment& a);
  // Releases the attachment's address; false when it held none.
  Result<bool> release(std::string_view container_id, std::string_view ifname);
  // Every reservation of the range (address, record JSON), paged reads: admin list only.
  Result<std::vector<std::pair<IpAddress, std::string>>> list();

 private:
  Result<std::optional<IpAddress>> choose(KvTxn& txn);
  [[nodiscard]] bool excluded(const IpAddress& ip, IpAddress* skip_to) const;

  etcd::Client& client_;
  std::string network_;
  std::string range_key_;
  AddressRange range_;
  AllocatorOptions options_;
};

}  // namespace ipoib::cluster
