// The pure codecs of journal.h: CRC-32C, frames, snapshot and journal verification, replay.
#include "ipoib/ipam/journal.h"

#include <catch2/catch.hpp>
#include <random>

#include "ipoib/ipam/pool_text.h"
#include "reference_pool.h"

using namespace ipoib;
using namespace ipoib::ipam;

namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

// Every reservation of `ix`, read out (which checks a snapshot's fields).
PoolData data_of(const PoolIndex& ix) {
  auto p = ix.to_pool_data();
  REQUIRE(p.ok());
  return std::move(p).value();
}

// What the index accepts: the files load and every reservation reads out (a snapshot's field
// contents are checked then, not at load). kStoreCorrupt otherwise.
Result<PoolData> fast_load(const std::string& net, const std::string& snap,
                           const std::string& journal) {
  IPOIB_TRY_ASSIGN(PoolIndex::Loaded l, PoolIndex::load(net, snap, "s", journal, "j"));
  return l.index.to_pool_data();
}

Reservation res(const char* a, const std::string& cid, std::int64_t since = 1700000000) {
  return {ip(a), "10.0.0.0/16", "net", cid, "net1", "ns/" + cid, since};
}

PoolRange range16() {
  auto r = parse_range({.range = "10.0.0.0/16", .exclude = {"10.0.0.9"}, .gateway = "10.0.0.1"});
  REQUIRE(r.ok());
  return {"10.0.0.0/16", r->subnet, r->first, r->last, r->excluded, ip("10.0.0.3")};
}

PoolData sample_pool() {
  PoolData p;
  p.network_name = "blue";
  p.ranges.push_back(range16());
  auto r6 = parse_range({.range = "fd00::/64"});
  REQUIRE(r6.ok());
  p.upsert_range("fd00::/64", *r6);
  p.insert(res("10.0.0.2", "c0"));
  p.insert(res("10.0.0.3", "c1"));
  p.insert({ip("fd00::8000:0:0:1"), "fd00::/64", "net", "c1", "net1", "", 5});
  p.insert({ip("fd00::8000:0:0:2"), "fd00::/64", "net", "c7", "net1", "ns/c7", 7, "node-a",
            "/var/run/netns/cni-1234"});
  return p;
}

// Header + frames 1..3.
std::string sample_journal(std::vector<std::size_t>* frame_ends = nullptr) {
  std::string j = *encode_journal_header("blue");
  if (frame_ends != nullptr) frame_ends->push_back(j.size());
  const std::vector<std::vector<PoolOp>> frames = {
      {PoolOp::reserve(res("10.0.0.4", "c2")), PoolOp::set_range(range16())},
      {PoolOp::release(ip("10.0.0.2"))},
      {PoolOp::reserve(res("10.0.0.5", "c3")), PoolOp::reserve(res("10.0.0.6", "c4"))},
  };
  std::uint64_t seq = 1;
  for (const auto& ops : frames) {
    j += encode_frame(seq++, *encode_ops(ops));
    if (frame_ends != nullptr) frame_ends->push_back(j.size());
  }
  return j;
}

}  // namespace

TEST_CASE("CRC-32C: the standard check value, hardware equals portable, continuation") {
  CHECK(crc32c("123456789") == 0xE3069283U);
  CHECK(crc32c_portable("123456789") == 0xE3069283U);
  CHECK(crc32c("") == 0U);
  std::mt19937 rng(7);
  for (std::size_t len : {1U, 7U, 8U, 9U, 63U, 64U, 1000U, 4099U}) {
    std::string s(len, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    CHECK(crc32c(s) == crc32c_portable(s));
    const std::size_t cut = len / 3;
    CHECK(crc32c(s.substr(cut), crc32c(s.substr(0, cut))) == crc32c(s));
  }
}

TEST_CASE("snapshot round trip; a v1 text pool file is a snapshot at sequence 0") {
  const PoolData p = sample_pool();
  auto bytes = encode_snapshot(p, 42);
  REQUIRE(bytes.ok());
  auto back = decode_snapshot(*bytes, "/s/pool-blue");
  REQUIRE(back.ok());
  CHECK(back->applied_seq == 42);
  CHECK(back->pool == p);
  auto v1 = decode_snapshot(*encode_pool(p), "/s/pool-blue");
  REQUIRE(v1.ok());
  CHECK(v1->applied_seq == 0);
  PoolData without_v3_fields = p;  // the text format has no node and no netns
  for (Reservation& r : without_v3_fields.reservations) {
    r.node.clear();
    r.netns.clear();
  }
  CHECK(v1->pool == without_v3_fields);
  PoolData empty;
  auto e = decode_snapshot(*encode_snapshot(empty, 0), "f");
  REQUIRE(e.ok());
  CHECK(e->pool == empty);
}

TEST_CASE("every truncation, extension and single-bit change of a snapshot is corruption") {
  const std::string bytes = *encode_snapshot(sample_pool(), 9);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto r = decode_snapshot(std::string_view(bytes).substr(0, n), "/s/pool-blue");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kStoreCorrupt);
    CHECK_THAT(r.error().msg(), Catch::Contains("/s/pool-blue"));
  }
  CHECK_FALSE(decode_snapshot(bytes + '\0', "f").ok());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      auto r = decode_snapshot(bad, "f");
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code() == ErrorCode::kStoreCorrupt);
    }
  }
}

TEST_CASE("a snapshot with a valid checksum but unsorted reservations is refused") {
  PoolData p = sample_pool();
  std::swap(p.reservations[0], p.reservations[1]);
  auto r = decode_snapshot(*encode_snapshot(p, 1), "f");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().msg(), Catch::Contains("out of order"));
}

TEST_CASE("journal: frames verify and replay in order") {
  const std::string j = sample_journal();
  auto img = scan_journal(j, "/s/pool-blue+journal");
  REQUIRE(img.ok());
  CHECK(img->network_name == "blue");
  REQUIRE(img->frames.size() == 3);
  CHECK(img->frames[2].seq == 3);
  CHECK_FALSE(img->torn_tail);
  CHECK(img->valid_bytes == j.size());

  PoolData p = sample_pool();
  PoolData expected = p;
  for (const auto& f : img->frames) REQUIRE(apply_ops(expected, f.ops, "f").ok());
  auto last = replay(p, 0, *img, "f");
  REQUIRE(last.ok());
  CHECK(*last == 3);
  CHECK(p == expected);
  CHECK(p.reservations.size() == 6);
}

TEST_CASE("journal: records already in the snapshot are skipped; a gap is corruption") {
  const std::string j = sample_journal();
  auto img = *scan_journal(j, "f");
  PoolData all = sample_pool();
  REQUIRE(replay(all, 0, img, "f").ok());

  // Snapshot written at sequence 2 (a compaction), journal not yet cut: only frame 3 applies.
  PoolData at2 = sample_pool();
  REQUIRE(apply_ops(at2, img.frames[0].ops, "f").ok());
  REQUIRE(apply_ops(at2, img.frames[1].ops, "f").ok());
  auto last = replay(at2, 2, img, "f");
  REQUIRE(last.ok());
  CHECK(*last == 3);
  CHECK(at2 == all);

  // A snapshot newer than the whole journal: nothing applies.
  PoolData newer = all;
  auto l2 = replay(newer, 7, img, "f");
  REQUIRE(l2.ok());
  CHECK(*l2 == 7);
  CHECK(newer == all);

  // A journal that starts after the snapshot's sequence: records were lost (old snapshot restored).
  std::string later = *encode_journal_header("blue");
  later += encode_frame(5, *encode_ops({PoolOp::reserve(res("10.0.0.7", "c5"))}));
  PoolData p = sample_pool();
  auto gap = replay(p, 3, *scan_journal(later, "f"), "/s/j");
  REQUIRE_FALSE(gap.ok());
  CHECK(gap.error().code() == ErrorCode::kStoreCorrupt);
  CHECK_THAT(gap.error().msg(), Catch::Contains("/s/j") && Catch::Contains("records lost"));

  // A gap inside the journal.
  std::string holes = *encode_journal_header("blue");
  holes += encode_frame(1, *encode_ops({PoolOp::release(ip("10.0.0.2"))}));
  holes += encode_frame(3, *encode_ops({PoolOp::release(ip("10.0.0.3"))}));
  auto h = scan_journal(holes, "f");
  REQUIRE_FALSE(h.ok());
  CHECK_THAT(h.error().msg(), Catch::Contains("sequence gap"));

  // Releasing an address that is not reserved.
  std::string bad_release = *encode_journal_header("blue");
  bad_release += encode_frame(1, *encode_ops({PoolOp::release(ip("10.0.0.200"))}));
  PoolData q = sample_pool();
  auto br = replay(q, 0, *scan_journal(bad_release, "f"), "f");
  REQUIRE_FALSE(br.ok());
  CHECK_THAT(br.error().msg(), Catch::Contains("not reserved"));
}

TEST_CASE("journal: a torn last append is not replayed; anything earlier must verify") {
  std::vector<std::size_t> ends;
  const std::string j = sample_journal(&ends);
  const std::size_t header = ends[0];
  // Every cut inside the journal's records: the frames before the cut count, the rest is a
  // torn tail (a writer killed inside write(2) leaves a prefix of its frame).
  for (std::size_t n = header; n < j.size(); ++n) {
    auto img = scan_journal(std::string_view(j).substr(0, n), "f");
    REQUIRE(img.ok());
    std::size_t whole = 0;
    while (whole + 1 < ends.size() && ends[whole + 1] <= n) ++whole;
    CHECK(img->frames.size() == whole);
    CHECK(img->valid_bytes == ends[whole]);
    CHECK(img->torn_tail == (n != ends[whole]));
  }
  // A cut inside the header: the journal is created whole by rename, so this is corruption.
  for (std::size_t n = 0; n < header; ++n) {
    auto img = scan_journal(std::string_view(j).substr(0, n), "f");
    REQUIRE_FALSE(img.ok());
    CHECK(img.error().code() == ErrorCode::kStoreCorrupt);
  }
  // Zeros after the last frame (the size reached the disk, the data did not): torn.
  auto zeros = scan_journal(j + std::string(300, '\0'), "f");
  REQUIRE(zeros.ok());
  CHECK(zeros->torn_tail);
  CHECK(zeros->frames.size() == 3);
  CHECK(zeros->valid_bytes == j.size());
}

TEST_CASE("journal: a changed byte before the last frame is corruption, never skipped") {
  std::vector<std::size_t> ends;
  const std::string j = sample_journal(&ends);
  const std::size_t last_frame = ends[ends.size() - 2];
  for (std::size_t i = 0; i < last_frame; ++i) {
    std::string bad = j;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    auto img = scan_journal(bad, "/s/pool-blue+journal");
    INFO("byte " << i);
    REQUIRE_FALSE(img.ok());
    CHECK(img.error().code() == ErrorCode::kStoreCorrupt);
    CHECK_THAT(img.error().msg(), Catch::Contains("/s/pool-blue+journal"));
  }
  // Inside the last frame a change either is corruption or makes the frame count as the torn
  // append it looks like (documented); the changed frame is never replayed.
  for (std::size_t i = last_frame; i < j.size(); ++i) {
    std::string bad = j;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    auto img = scan_journal(bad, "f");
    if (img.ok()) {
      CHECK(img->frames.size() == 2);
      CHECK(img->torn_tail);
    }
  }
  // A bad frame followed by a valid one (a damaged length field) is corruption.
  std::string damaged = j;
  damaged[ends[1]] = static_cast<char>(0x7f);  // frame 2's length now runs past the end
  auto d = scan_journal(damaged, "f");
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().code() == ErrorCode::kStoreCorrupt);
}

TEST_CASE("replay equals applying every operation in order (random operations)") {
  std::mt19937 rng(99);
  PoolData base;
  base.network_name = "blue";
  base.ranges.push_back(range16());
  for (int i = 0; i < 200; ++i) {
    base.insert(res(("10.0." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 2)).c_str(),
                    "s" + std::to_string(i)));
  }
  std::string journal = *encode_journal_header("blue");
  PoolData sequential = base;
  for (std::uint64_t seq = 1; seq <= 300; ++seq) {
    std::vector<PoolOp> ops;
    const int n = 1 + static_cast<int>(rng() % 3);
    PoolData scratch = sequential;
    for (int k = 0; k < n; ++k) {
      const std::string a = "10.0.0." + std::to_string(2 + rng() % 240);
      const auto it = std::find_if(scratch.reservations.begin(), scratch.reservations.end(),
                                   [&](const Reservation& r) { return r.ip == ip(a.c_str()); });
      PoolOp op = it != scratch.reservations.end() && rng() % 2 == 0
                      ? PoolOp::release(ip(a.c_str()))
                      : PoolOp::reserve(
                            res(a.c_str(), "r" + std::to_string(seq) + "-" + std::to_string(k)));
      REQUIRE(apply_ops(scratch, {op}, "f").ok());
      ops.push_back(op);
    }
    REQUIRE(apply_ops(sequential, ops, "f").ok());
    journal += encode_frame(seq, *encode_ops(ops));
  }
  PoolData replayed = base;
  REQUIRE(replay(replayed, 0, *scan_journal(journal, "f"), "f").ok());
  CHECK(replayed == sequential);
}

TEST_CASE("unstorable journal fields are refused at encode") {
  CHECK_FALSE(
      encode_ops({PoolOp::reserve({ip("10.0.0.2"), "k", "n", "has space", "net1", "", 0})}).ok());
  CHECK_FALSE(encode_ops({PoolOp::reserve({ip("10.0.0.2"), "k", "n", "", "net1", "", 0})}).ok());
}

namespace {

// The PoolData path: decode_snapshot + scan_journal + replay.
Result<PoolData> slow_load(const std::string& snap, const std::string& journal) {
  SnapshotImage img{PoolData{"blue", {}, {}}, 0};
  if (!snap.empty()) {
    IPOIB_TRY_ASSIGN(img, decode_snapshot(snap, "s"));
    if (img.pool.network_name != "blue") return Error(ErrorCode::kStoreCorrupt, "network");
  }
  if (!journal.empty()) {
    IPOIB_TRY_ASSIGN(JournalImage j, scan_journal(journal, "j"));
    if (j.network_name != "blue") return Error(ErrorCode::kStoreCorrupt, "network");
    IPOIB_TRY_ASSIGN(std::uint64_t last, replay(img.pool, img.applied_seq, j, "j"));
    (void)last;
  }
  return img.pool;
}

void check_same(const std::string& snap, const std::string& journal) {
  auto slow = slow_load(snap, journal);
  auto fast = fast_load("blue", snap, journal);
  REQUIRE(slow.ok() == fast.ok());
  if (slow.ok()) {
    CHECK(*fast == *slow);
  } else {
    CHECK(fast.error().code() == ErrorCode::kStoreCorrupt);
  }
}

}  // namespace

TEST_CASE("PoolIndex accepts exactly what the PoolData path accepts, with the same pool") {
  const std::string snap = *encode_snapshot(sample_pool(), 0);
  const std::string journal = sample_journal();
  check_same(snap, journal);
  check_same(snap, "");
  check_same("", "");
  check_same(*encode_pool(sample_pool()), journal);  // v1 text snapshot
  for (std::size_t n = 0; n <= journal.size(); ++n) {
    check_same(snap, journal.substr(0, n));
  }
  for (std::size_t i = 0; i < journal.size(); ++i) {
    std::string bad = journal;
    bad[i] = static_cast<char>(bad[i] ^ 0x41);
    check_same(snap, bad);
  }
  for (std::size_t i = 0; i < snap.size(); i += 3) {
    std::string bad = snap;
    bad[i] = static_cast<char>(bad[i] ^ 0x02);
    check_same(bad, journal);
  }
}

TEST_CASE("PoolIndex: apply, views, taken and snapshot encoding") {
  auto loaded = PoolIndex::load("blue", *encode_snapshot(sample_pool(), 5), "s", {}, "j");
  REQUIRE(loaded.ok());
  CHECK(loaded->last_seq == 5);
  PoolIndex& ix = loaded->index;
  PoolData expected = sample_pool();
  const std::vector<PoolOp> ops = {PoolOp::reserve(res("10.0.0.50", "x")),
                                   PoolOp::release(ip("10.0.0.2")),
                                   PoolOp::reserve(res("10.0.0.3", "replaced"))};
  REQUIRE(ix.apply(ops, "f").ok());
  REQUIRE(apply_ops(expected, ops, "f").ok());
  CHECK(data_of(ix) == expected);
  CHECK(ix.at(0)->container_id == "replaced");
  CHECK(ix.find_attachment("10.0.0.0/16", "replaced", "net1") == 0);
  CHECK(ix.find_attachment("10.0.0.0/16", "x", "net1") == 1);
  CHECK(ix.find_attachment("10.0.0.0/16", "x", "net2") == PoolIndex::npos);
  CHECK(ix.find_attachment("fd00::/64", "x", "net1") == PoolIndex::npos);
  CHECK(ix.find_pod("10.0.0.0/16", "ns/x", "net1") == 1);
  CHECK(ix.find_pod("10.0.0.0/16", "ns/y", "net1") == PoolIndex::npos);
  CHECK(ix.find_attachment("fd00::/64", "c1", "net1") == 2);
  CHECK(ix.taken(IpFamily::kV4) ==
        std::vector<u128>{ip("10.0.0.3").value(), ip("10.0.0.50").value()});
  CHECK(ix.taken(IpFamily::kV6).size() == 2);
  auto bytes = ix.encode_snapshot(9);
  REQUIRE(bytes.ok());
  auto back = decode_snapshot(*bytes, "s");
  REQUIRE(back.ok());
  CHECK(back->applied_seq == 9);
  CHECK(back->pool == expected);
  CHECK_FALSE(ix.apply({PoolOp::release(ip("10.0.0.99"))}, "f").ok());
  CHECK(data_of(PoolIndex::from_pool_data(expected)) == expected);
  // A snapshot of another network is refused.
  auto other = PoolIndex::load("red", *encode_snapshot(sample_pool(), 0), "/s/pool-red", {}, "j");
  REQUIRE_FALSE(other.ok());
  CHECK_THAT(other.error().msg(), Catch::Contains("belongs to network"));
}

TEST_CASE(
    "PoolIndex refuses every unprintable byte in any field (read out), as decode_snapshot does") {
  // Build records by hand with a valid checksum: only the field check can refuse them.
  for (int field = 0; field < 5; ++field) {
    for (int c : {0x00, 0x09, 0x20, 0x7f, 0x80, 0xff, 0x21, 0x7e}) {
      std::string fields[5] = {"10.0.0.0/16", "net", "abcdefghijklmnopq", "net1",
                               "ns/pod-with-long-name"};
      fields[field][fields[field].size() / 2] = static_cast<char>(c);
      std::string payload;
      payload += '\x04';
      payload += '\0';  // default network, empty name
      payload += '\x01';
      payload += '\x04';
      payload += std::string("\x02\x00\x00\x0a", 4);
      payload += std::string(8, '\0');
      for (const std::string& f : fields) {
        payload += static_cast<char>(f.size());
        payload += f;
      }
      const std::string snap = std::string(kSnapshotMagic) + encode_frame(0, payload);
      auto slow = decode_snapshot(snap, "s");
      auto fast = fast_load("", snap, "");
      INFO("field " << field << " byte " << c);
      CHECK(slow.ok() == (c == 0x21 || c == 0x7e));
      CHECK(fast.ok() == slow.ok());
      if (!fast.ok()) {
        CHECK(fast.error().code() == ErrorCode::kStoreCorrupt);
      }
    }
  }
}

TEST_CASE("PoolIndex refuses an unprintable byte anywhere in a record with records after it") {
  // The first record of a large snapshot: decode_snapshot checks it with room after it (one pass
  // over all its fields), the index when it is read out. Every field, first, middle and last
  // byte, and the length limits.
  const auto record = [](std::uint32_t host, const std::string* f, std::size_t netns_len) {
    std::string r;
    r += '\x05';  // kReserveV3
    r += '\x04';
    r += std::string(reinterpret_cast<const char*>(&host), 4);
    r += std::string(8, '\0');
    for (int k = 0; k < 6; ++k) {
      r += static_cast<char>(f[k].size());
      r += f[k];
    }
    r += static_cast<char>(netns_len & 0xff);
    r += static_cast<char>(netns_len >> 8);
    r += f[6];
    return r;
  };
  const std::string good[7] = {
      "10.0.0.0/16",           "net",    "abcdefghijklmnopqrstuvwxyz0123456789", "net1",
      "ns/pod-with-long-name", "node-1", "/run/netns/" + std::string(50, 'n')};
  std::string tail;
  for (std::uint32_t k = 0; k < 100; ++k) {
    tail += record(0x0a000100 + k, good, good[6].size());
  }
  const auto check = [&](const std::string* fields, std::size_t netns_len, bool want) {
    std::string payload("\x04\0", 2);  // default network, empty name
    payload += record(0x0a000002, fields, netns_len);
    payload += tail;
    const std::string snap = std::string(kSnapshotMagic) + encode_frame(0, payload);
    auto slow = decode_snapshot(snap, "s");
    auto fast = fast_load("", snap, "");
    CHECK(slow.ok() == want);
    CHECK(fast.ok() == want);
    if (fast.ok()) {
      CHECK(fast->reservations.size() == 101);
    }
  };
  check(good, good[6].size(), true);
  for (int field = 0; field < 7; ++field) {
    for (int c : {0x00, 0x09, 0x20, 0x7f, 0x80, 0xff, 0x21, 0x7e}) {
      for (int where = 0; where < 3; ++where) {
        std::string fields[7] = {good[0], good[1], good[2], good[3], good[4], good[5], good[6]};
        std::string& f = fields[field];
        f[where == 0 ? 0 : where == 1 ? f.size() / 2 : f.size() - 1] = static_cast<char>(c);
        INFO("field " << field << " byte " << c << " at " << where);
        check(fields, fields[6].size(), c == 0x21 || c == 0x7e);
      }
    }
  }
  // Required fields empty; optional ones empty; a netns path longer than allowed.
  for (int field = 0; field < 7; ++field) {
    std::string fields[7] = {good[0], good[1], good[2], good[3], good[4], good[5], good[6]};
    fields[field].clear();
    INFO("field " << field << " empty");
    check(fields, fields[6].size(), field >= 4);
  }
  std::string fields[7] = {good[0],
                           good[1],
                           good[2],
                           good[3],
                           good[4],
                           good[5],
                           std::string(kMaxStoredPathBytes + 1, 'p')};
  check(fields, fields[6].size(), false);
}

TEST_CASE(
    "PoolIndex: a snapshot's field contents are checked when read out, its structure at load") {
  const std::string file = "/s/pool-blue";
  const std::string good = *encode_snapshot(sample_pool(), 4);
  const std::string payload =
      good.substr(kSnapshotMagic.size() + 12, good.size() - kSnapshotMagic.size() - kFrameOverhead);
  // The payload with one byte changed, in a frame with a valid checksum (a hand-made file).
  const auto changed = [&](std::size_t at, char to) {
    std::string p = payload;
    p[at] = to;
    return std::string(kSnapshotMagic) + encode_frame(4, p);
  };
  REQUIRE(changed(0, payload[0]) == good);
  // "c7" is the container ID of the last reservation (fd00::8000:0:0:2).
  const std::size_t c7 = payload.find("c7");
  const std::string bad = changed(c7, '\x01');
  REQUIRE_FALSE(decode_snapshot(bad, file).ok());
  auto loaded = PoolIndex::load("blue", bad, file, {}, "j");
  REQUIRE(loaded.ok());
  const PoolIndex& ix = loaded->index;
  REQUIRE(ix.size() == 4);
  // What an ADD reads: the finders, the taken addresses, the reservation it finds.
  CHECK(ix.find_attachment("10.0.0.0/16", "c1", "net1") == 1);
  CHECK(ix.find_attachment("fd00::/64", "c7", "net1") == PoolIndex::npos);
  CHECK(ix.find_pod("fd00::/64", "ns/c7", "net1") == 3);
  CHECK(ix.taken(IpFamily::kV6).size() == 2);
  REQUIRE(ix.at(1).ok());
  CHECK(ix.at(1)->container_id == "c1");
  // The damaged reservation, and so the whole pool, is refused when read out, naming the file.
  const auto at3 = ix.at(3);
  REQUIRE_FALSE(at3.ok());
  CHECK(at3.error().code() == ErrorCode::kStoreCorrupt);
  CHECK_THAT(at3.error().msg(), Catch::Contains(file) && Catch::Contains("fd00::8000:0:0:2"));
  const auto all = ix.to_pool_data();
  REQUIRE_FALSE(all.ok());
  CHECK(all.error().code() == ErrorCode::kStoreCorrupt);
  // A compaction copies the record as it is: still refused when read out.
  const auto compacted = ix.encode_snapshot(5);
  REQUIRE(compacted.ok());
  auto again = PoolIndex::load("blue", *compacted, file, {}, "j");
  REQUIRE(again.ok());
  CHECK_FALSE(again->index.at(3).ok());
  CHECK_FALSE(decode_snapshot(*compacted, file).ok());

  // The structure is checked at load: lengths within the payload, the address family.
  const std::size_t netns_len = payload.size() - 2 - std::string("/var/run/netns/cni-1234").size();
  const std::size_t family = payload.rfind('\x05', c7) + 1;
  REQUIRE(payload[family] == '\x06');
  for (const std::string& broken : {changed(netns_len, '\x7f'), changed(netns_len + 1, '\x01'),
                                    changed(family, '\x09'), changed(c7 - 1, '\xff')}) {
    auto r = PoolIndex::load("blue", broken, file, {}, "j");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kStoreCorrupt);
    CHECK_THAT(r.error().msg(), Catch::Contains("bad reservation record"));
    CHECK_FALSE(decode_snapshot(broken, file).ok());
  }
}

namespace {

// A reservation record as files written before record version 3 hold it (kind 1: no node, no
// netns), built by hand.
std::string v2_record(std::uint8_t last_ip_byte, const std::string& cid) {
  std::string r;
  r += '\x01';
  r += '\x04';
  r += static_cast<char>(last_ip_byte);  // 10.0.0.x, little endian
  r += std::string("\x00\x00\x0a", 3);
  r += std::string(8, '\0');
  for (const std::string& f : {std::string("10.0.0.0/16"), std::string("net"), cid,
                               std::string("net1"), std::string("ns/pod")}) {
    r += static_cast<char>(f.size());
    r += f;
  }
  return r;
}

}  // namespace

TEST_CASE("a record's verdict does not depend on what follows it (the validator's two paths)") {
  // A record far from the end of its buffer is checked in one pass over its span; one near the
  // end field by field with bounds checks. Every change of one byte must get the same verdict
  // and, when accepted, the same length from both.
  const std::vector<Reservation> samples = {
      {ip("10.0.0.2"), "10.0.0.0/16", "net", "c0", "net1", "ns/c0", 7, "node-a", "/run/netns/x"},
      {ip("fd00::1"), "fd00::/64", "n", "c", "i", "", 1, "", ""},  // shortest v3 record
      {ip("10.0.0.3"), "10.0.0.0/16", "network", std::string(64, 'a'), "net1", "namespace/pod-name",
       9, "node", "/var/run/netns/cni-" + std::string(40, 'b')},  // > 128
  };
  for (const Reservation& r : samples) {
    const std::string rec = *encode_ops({PoolOp::reserve(r)});
    for (std::size_t at = 0; at < rec.size(); ++at) {
      for (int c : {0x00, 0x01, 0x02, 0x05, 0x10, 0x20, 0x21, 0x41, 0x7e, 0x7f, 0x80, 0xfe, 0xff}) {
        std::string tight = rec;
        tight[at] = static_cast<char>(c);
        const std::string roomy = tight + std::string(8192, 'A');
        std::string_view in_tight = tight;
        std::string_view in_roomy = roomy;
        Record a;
        Record b;
        const bool ok_tight = !decode_record(in_tight, a);
        const bool ok_roomy = !decode_record(in_roomy, b);
        INFO("record of " << rec.size() << " bytes, byte " << at << " = " << c);
        // The tight buffer holds the record only: a longer decode cannot succeed there.
        if (ok_roomy && roomy.size() - in_roomy.size() <= tight.size()) {
          CHECK(ok_tight);
          CHECK(tight.size() - in_tight.size() == roomy.size() - in_roomy.size());
        }
        if (ok_tight) {
          CHECK(ok_roomy);
          CHECK(tight.size() - in_tight.size() == roomy.size() - in_roomy.size());
        }
      }
    }
  }
}

TEST_CASE("record v3: node and netns round-trip through snapshot, journal and PoolIndex") {
  const std::string long_netns = "/" + std::string(kMaxStoredPathBytes - 1, 'n');
  Reservation a = res("10.0.0.20", "ca");
  a.node = "worker-1.example.org";
  a.netns = "/proc/1234/ns/net";
  Reservation b = res("10.0.0.21", "cb");
  b.netns = long_netns;  // node unknown, netns at its bound
  PoolData p = sample_pool();
  p.insert(a);
  p.insert(b);
  auto snap = encode_snapshot(p, 3);
  REQUIRE(snap.ok());
  auto back = decode_snapshot(*snap, "s");
  REQUIRE(back.ok());
  CHECK(back->pool == p);

  std::string journal = *encode_journal_header("blue");
  Reservation c = res("10.0.0.22", "cc");
  c.node = "n";
  c.netns = "/run/netns/x";
  journal += encode_frame(4, *encode_ops({PoolOp::reserve(c)}));
  auto loaded = PoolIndex::load("blue", *snap, "s", journal, "j");
  REQUIRE(loaded.ok());
  PoolData expected = p;
  expected.insert(c);
  CHECK(data_of(loaded->index) == expected);
  const PoolIndex& ix = loaded->index;
  bool seen = false;
  for (std::size_t i = 0; i < ix.size(); ++i) {
    const ReservationView v = *ix.at(i);
    if (v.container_id == "cb") {
      CHECK(v.node.empty());
      CHECK(v.netns == long_netns);
      seen = true;
    }
  }
  CHECK(seen);
  // PoolIndex::encode_snapshot copies the records: the same pool again.
  auto again = decode_snapshot(*ix.encode_snapshot(9), "s");
  REQUIRE(again.ok());
  CHECK(again->pool == expected);
}

TEST_CASE("record v3: unstorable node or netns is refused when encoding") {
  Reservation r = res("10.0.0.20", "ca");
  r.netns = "/run/netns/has space";
  CHECK(encode_ops({PoolOp::reserve(r)}).error().code() == ErrorCode::kInternal);
  r.netns = "/" + std::string(kMaxStoredPathBytes, 'n');
  CHECK(encode_ops({PoolOp::reserve(r)}).error().code() == ErrorCode::kInternal);
  r.netns = "";
  r.node = std::string(254, 'n');
  CHECK(encode_ops({PoolOp::reserve(r)}).error().code() == ErrorCode::kInternal);
  r.node = "node\n";
  CHECK_FALSE(encode_ops({PoolOp::reserve(r)}).ok());
  CHECK(is_storable_path("/var/run/netns/cni-5f0c"));
  CHECK_FALSE(is_storable_path(""));
}

TEST_CASE("records written before version 3 (v2 binary, v1 text) load with node and netns empty") {
  // A v2 snapshot and a v2 journal record, byte for byte as the previous release wrote them.
  std::string payload;
  payload += '\x04';
  payload += '\x04';
  payload += "blue";
  payload += v2_record(1, "old-snap");
  const std::string snap = std::string(kSnapshotMagic) + encode_frame(0, payload);
  std::string journal = *encode_journal_header("blue");
  journal += encode_frame(1, v2_record(2, "old-jrnl"));
  Reservation fresh = res("10.0.0.3", "new");
  fresh.node = "node-b";
  fresh.netns = "/run/netns/y";
  journal += encode_frame(2, *encode_ops({PoolOp::reserve(fresh)}));
  auto decoded = decode_snapshot(snap, "s");
  REQUIRE(decoded.ok());
  REQUIRE(decoded->pool.reservations.size() == 1);
  CHECK(decoded->pool.reservations[0].container_id == "old-snap");
  CHECK(decoded->pool.reservations[0].node.empty());
  CHECK(decoded->pool.reservations[0].netns.empty());
  auto img = scan_journal(journal, "j");
  REQUIRE(img.ok());
  REQUIRE(img->frames.size() == 2);
  CHECK(img->frames[0].ops[0].reservation.node.empty());
  CHECK(img->frames[1].ops[0].reservation.node == "node-b");

  auto loaded = PoolIndex::load("blue", snap, "s", journal, "j");
  REQUIRE(loaded.ok());
  PoolData p = data_of(loaded->index);
  REQUIRE(p.reservations.size() == 3);
  CHECK(p.reservations[0].container_id == "old-snap");
  CHECK(p.reservations[1].container_id == "old-jrnl");
  for (int i : {0, 1}) {
    CHECK(p.reservations[i].node.empty());
    CHECK(p.reservations[i].netns.empty());
    CHECK(p.reservations[i].pod_ref == "ns/pod");
  }
  CHECK(p.reservations[2] == fresh);
  // Compaction keeps the old records as they were and they still load.
  auto compacted = PoolIndex::load("blue", *loaded->index.encode_snapshot(2), "s", {}, "j");
  REQUIRE(compacted.ok());
  CHECK(data_of(compacted->index) == p);

  // v1 text: no node, no netns.
  PoolData v1 = sample_pool();
  auto text = decode_snapshot(*encode_pool(v1), "s");
  REQUIRE(text.ok());
  for (const Reservation& r : text->pool.reservations) {
    CHECK(r.node.empty());
    CHECK(r.netns.empty());
  }
}
