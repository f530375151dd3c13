// ipoib/ipam/pool_index.h — the pool model: what every operation reads, changes and commits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/file.h"
#include "ipoib/ipam/pool.h"
#include "ipoib/ipam/range.h"
#include "ipoib/ipam/record.h"

namespace ipoib::ipam {

// The pool as the plugin uses it on every operation: ranges decoded, reservations as a sorted
// index of (address, record) over the verified file bytes, which it owns. Building it costs one
// pass over the bytes with no allocation per reservation — what keeps an ADD at 10,000
// reservations within a fraction of a millisecond of an ADD on an empty pool (a PoolData would
// allocate and move five strings per reservation). The same checks as decode_snapshot, scan_journal
// and replay are made, so exactly the same files are refused (the fuzzer compares both paths) —
// with one difference in when: the contents of a snapshot's reservation fields (printable, not
// empty where required, not too long) are checked when the reservation is read out (at(),
// to_pool_data()), not at load. The store checked them when it wrote the snapshot, and its
// checksum verified; an ADD at 10,000 reservations reads out at most one of them, and checking
// them all was half its instructions. Loading still checks everything that reading records in
// place relies on (kinds, address families, lengths within the file, addresses sorted).
//
//   IPOIB_TRY_ASSIGN(PoolIndex pool, PoolIndex::load("net", std::move(snap), std::move(jrnl),
//   ...)); const std::size_t i = pool.find_attachment(key, cid, ifname);
//   if (i != PoolIndex::npos) { IPOIB_TRY_ASSIGN(ReservationView v, pool.at(i)); ... }
//   IPOIB_TRY(pool.apply({PoolOp::reserve(r)}, ""));
class PoolIndex {
 public:
  explicit PoolIndex(std::string network_name = {});
  PoolIndex(PoolIndex&&) noexcept;
  PoolIndex& operator=(PoolIndex&&) noexcept;
  ~PoolIndex();

  struct Loaded;
  // From a snapshot's bytes (empty = no snapshot; v1 text accepted) and a journal's bytes (empty
  // = no journal), read or mapped (base/file.h FileBytes; a std::string converts). The index
  // keeps both and points into them. Errors as decode_snapshot / scan_journal / replay, naming
  // the files.
  static Result<Loaded> load(const std::string& network_name, FileBytes snapshot,
                             std::string_view snapshot_file, FileBytes journal,
                             std::string_view journal_file);
  static PoolIndex from_pool_data(const PoolData& p);

  [[nodiscard]] const std::string& network_name() const { return network_name_; }
  std::vector<PoolRange> ranges;
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  // The reservation's fields, checked: kStoreCorrupt naming the snapshot when they could not
  // have been stored (a hand-made snapshot with a valid checksum).
  [[nodiscard]] Result<ReservationView> at(std::size_t i) const;
  // The same unchecked, only to compare against (in place): what is read out goes through at().
  [[nodiscard]] ReservationView peek(std::size_t i) const;
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  // The first reservation of (range_key, container ID, ifname) / (range_key, pod, ifname), or
  // npos. Field comparisons in place, without building views.
  [[nodiscard]] std::size_t find_attachment(std::string_view range_key,
                                            std::string_view container_id,
                                            std::string_view ifname) const;
  [[nodiscard]] std::size_t find_pod(std::string_view range_key, std::string_view pod_ref,
                                     std::string_view ifname) const;
  [[nodiscard]] std::vector<u128> taken(IpFamily family) const;  // sorted
  [[nodiscard]] const PoolRange* find_range(const std::string& key) const;
  PoolRange& upsert_range(const std::string& key, const Range& r);
  // Applies ops in order (apply_ops semantics); a reserve's record is encoded and kept here.
  Status apply(const std::vector<PoolOp>& ops, std::string_view file_name);
  [[nodiscard]] Result<PoolData> to_pool_data() const;  // every reservation read out by at()
  // The snapshot file's bytes: reservation records are copied, not re-encoded.
  [[nodiscard]] Result<std::string> encode_snapshot(std::uint64_t applied_seq) const;

  // The reservation record (from its kind byte), inside files_ or buffers_. The address is read
  // from the record when needed: 8 bytes per reservation instead of 48, so that loading 10,000 of
  // them touches (and page-faults) a sixth of the memory, which is what an ADD's cost grew with.
  struct Entry {
    const char* record;
  };

 private:
  std::string network_name_;
  std::string snapshot_file_;                          // what at()'s errors name
  std::vector<Entry> entries_;                         // sorted by ip, unique
  std::vector<FileBytes> files_;                       // the loaded snapshot and journal
  std::vector<std::unique_ptr<std::string>> buffers_;  // records added by apply()
  friend struct IndexBuilder;
};

struct PoolIndex::Loaded {
  PoolIndex index;
  bool snapshot_present = false;
  bool journal_present = false;
  std::uint64_t last_seq = 0;  // highest sequence in snapshot or journal
  std::size_t journal_header_bytes = 0;
  std::size_t journal_valid_bytes = 0;  // < journal size: a torn tail
};

}  // namespace ipoib::ipam
