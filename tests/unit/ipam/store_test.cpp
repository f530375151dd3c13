// The store's files: journal appends, torn-tail recovery, corruption left untouched, and every
// crash point of journal creation and compaction (reconstructed from the files each step leaves).
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include "ipoib/ipam/store.h"
#include "test_support.h"

using namespace ipoib;
using namespace ipoib::ipam;
using ipam_test::read_file;
using ipam_test::TempDir;
using ipam_test::write_file;

namespace {

IpAddress ip(const std::string& s) { return *IpAddress::parse(s); }

Reservation res(const std::string& a, const std::string& cid) {
  return {ip(a), "10.0.0.0/16", "net", cid, "net1", "ns/" + cid, 1700000000};
}

Store open_store(const std::string& dir, StoreTuning t = {}) {
  auto s = Store::open(dir, CreateMode::kCreate);
  REQUIRE(s.ok());
  REQUIRE(*s);
  (*s)->set_tuning(t);
  return std::move(**s);
}

Result<std::optional<PoolData>> load(const std::string& dir, const std::string& net = "blue") {
  Store s = open_store(dir);
  IPOIB_TRY_ASSIGN(StoreLock lock, s.lock(1000));
  return s.read_pool(lock, net);
}

// One committed operation through the plugin's path: read, apply, commit.
CommitInfo commit_ops(Store& s, const std::vector<PoolOp>& ops, const std::string& net = "blue") {
  auto lock = s.lock(1000);
  REQUIRE(lock.ok());
  auto pool = s.read_pool(*lock, net);
  REQUIRE(pool.ok());
  PoolData p = *pool ? std::move(**pool) : PoolData{net, {}, {}};
  REQUIRE(apply_ops(p, ops, "").ok());
  auto info = s.commit(*lock, p, ops);
  INFO((info.ok() ? std::string() : info.error().msg()));
  REQUIRE(info.ok());
  return *info;
}

std::string addr(int i) { return "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); }


bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

}  // namespace

TEST_CASE("commits append to the journal; the snapshot is written once; files are private") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir);
  commit_ops(s, {PoolOp::reserve(res("10.0.0.1", "a"))});
  const std::string snap = dir + "/pool-blue";
  const std::string journal = dir + "/pool-blue+journal";
  REQUIRE(exists(snap));
  CHECK_FALSE(exists(journal));  // a new pool's first commit is its snapshot
  const std::string snap_bytes = read_file(snap);
  commit_ops(s, {PoolOp::reserve(res("10.0.0.2", "b"))});
  commit_ops(s, {PoolOp::release(ip("10.0.0.1"))});
  CHECK(read_file(snap) == snap_bytes);  // no rewrite per operation
  REQUIRE(exists(journal));
  struct stat st {};
  REQUIRE(::stat(journal.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto pool = load(dir);
  REQUIRE(pool.ok());
  REQUIRE(*pool);
  REQUIRE((*pool)->reservations.size() == 1);
  CHECK((*pool)->reservations[0].container_id == "b");

  Store again = open_store(dir);
  auto lock = again.lock(1000);
  REQUIRE(lock.ok());
  auto nets = again.list_networks(*lock);
  REQUIRE(nets.ok());
  CHECK(*nets == std::vector<std::string>{"blue"});
}

TEST_CASE("compaction keeps the journal bounded and the pool intact") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir, {.compact_min_bytes = 1024, .snapshot_divisor = 4});
  int compactions = 0;
  PoolData expected{"blue", {}, {}};
  for (int i = 0; i < 400; ++i) {
    std::vector<PoolOp> ops = {PoolOp::reserve(res(addr(i), "c" + std::to_string(i)))};
    if (i % 3 == 2) ops.push_back(PoolOp::release(ip(addr(i - 1))));
    REQUIRE(apply_ops(expected, ops, "").ok());
    const CommitInfo info = commit_ops(s, ops);
    CHECK_FALSE(info.compaction_error);
    compactions += info.compacted ? 1 : 0;
    const auto jsize = read_file(dir + "/pool-blue+journal").size();
    const auto ssize = read_file(dir + "/pool-blue").size();
    CHECK(jsize <= std::max<std::size_t>(1024, ssize / 4) + 512);
  }
  CHECK(compactions >= 5);
  auto pool = load(dir);
  REQUIRE(pool.ok());
  CHECK(**pool == expected);
  // The compacted snapshot is the binary format.
  CHECK(read_file(dir + "/pool-blue").substr(0, 8) == kSnapshotMagic);
}

TEST_CASE("a torn append is ignored by readers and cut by the next writer") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir);
  commit_ops(s, {PoolOp::reserve(res("10.0.0.1", "a"))});
  commit_ops(s, {PoolOp::reserve(res("10.0.0.2", "b"))});
  const std::string journal = dir + "/pool-blue+journal";
  const std::string good = read_file(journal);
  // What a writer killed inside write(2) leaves: the first bytes of its frame.
  const std::string frame = encode_frame(2, *encode_ops({PoolOp::reserve(res("10.0.0.3", "c"))}));
  write_file(journal, good + frame.substr(0, frame.size() - 5));
  auto pool = load(dir);
  REQUIRE(pool.ok());
  CHECK((*pool)->reservations.size() == 2);
  CHECK(read_file(journal).size() == good.size() + frame.size() - 5);  // readers change nothing
  commit_ops(s, {PoolOp::reserve(res("10.0.0.4", "d"))});
  const std::string after = read_file(journal);
  CHECK(after.substr(0, good.size()) == good);
  auto img = scan_journal(after, "j");
  REQUIRE(img.ok());
  CHECK_FALSE(img->torn_tail);
  REQUIRE(img->frames.size() == 2);
  CHECK(img->frames[1].seq == 2);
  auto again = load(dir);
  REQUIRE(again.ok());
  CHECK((*again)->reservations.size() == 3);
}

TEST_CASE("a corrupt journal or snapshot is reported naming the file and never written") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir);
  for (int i = 0; i < 4; ++i) commit_ops(s, {PoolOp::reserve(res(addr(i), "c" + std::to_string(i)))});
  const std::string journal = dir + "/pool-blue+journal";
  const std::string snap = dir + "/pool-blue";
  std::string j = read_file(journal);
  j[j.size() / 2] ^= 0x04;  // inside an early frame: valid data follows
  write_file(journal, j);
  const std::string snap_before = read_file(snap);
  auto r = load(dir);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kStoreCorrupt);
  CHECK_THAT(r.error().msg(), Catch::Contains(journal));
  {
    auto lock = s.lock(1000);
    REQUIRE(lock.ok());
    PoolData p{"blue", {}, {}};
    CHECK_FALSE(s.commit(*lock, p, {PoolOp::reserve(res("10.0.9.9", "x"))}).ok());
    CHECK_FALSE(s.write_pool(*lock, p).ok());
    CHECK_FALSE(s.compact(*lock, "blue").ok());
  }
  CHECK(read_file(journal) == j);
  CHECK(read_file(snap) == snap_before);

  std::string sb = snap_before;
  sb[sb.size() - 1] ^= 0x01;
  write_file(snap, sb);
  auto r2 = load(dir);
  REQUIRE_FALSE(r2.ok());
  CHECK_THAT(r2.error().msg(), Catch::Contains(snap));
}

TEST_CASE("a restored old snapshot with a newer journal is corruption (records lost)") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir, {.compact_min_bytes = 200, .snapshot_divisor = 4});
  commit_ops(s, {PoolOp::reserve(res("10.0.0.1", "a"))});
  const std::string old_snapshot = read_file(dir + "/pool-blue");
  int i = 2;
  bool compacted = false;
  while (!compacted) compacted = commit_ops(s, {PoolOp::reserve(res(addr(i), "c" + std::to_string(i)))}).compacted, ++i;
  commit_ops(s, {PoolOp::reserve(res(addr(i), "after"))});
  write_file(dir + "/pool-blue", old_snapshot);
  auto r = load(dir);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kStoreCorrupt);
  CHECK_THAT(r.error().msg(), Catch::Contains("records lost"));
}

TEST_CASE("every crash point of journal creation and compaction loads the committed pool") {
  TempDir tmp;
  const std::string live = tmp.path() + "/live";
  Store s = open_store(live, {.compact_min_bytes = 1U << 30, .snapshot_divisor = 1});
  for (int i = 0; i < 20; ++i) {
    commit_ops(s, {PoolOp::reserve(res(addr(i), "c" + std::to_string(i)))});
  }
  commit_ops(s, {PoolOp::release(ip(addr(3)))});
  auto expected = load(live);
  REQUIRE(expected.ok());
  const std::string snap0 = read_file(live + "/pool-blue");
  const std::string journal_full = read_file(live + "/pool-blue+journal");
  {
    auto lock = s.lock(1000);
    REQUIRE(lock.ok());
    REQUIRE(s.compact(*lock, "blue").ok());
  }
  const std::string snap1 = read_file(live + "/pool-blue");
  const std::string journal_cut = read_file(live + "/pool-blue+journal");
  REQUIRE(snap1 != snap0);
  REQUIRE(journal_cut.size() < journal_full.size());
  const std::string tmp_name = "/.tmp.pool-blue.1234.0";

  struct State {
    const char* step;
    std::string snapshot;
    std::string journal;  // "" = no journal file
    std::string temp;     // a leftover temporary file ("" = none)
  };
  const std::vector<State> states = {
      {"compaction: temp snapshot half written", snap0, journal_full, snap1.substr(0, snap1.size() / 2)},
      {"compaction: temp snapshot written, not renamed", snap0, journal_full, snap1},
      {"compaction: renamed, journal not cut", snap1, journal_full, ""},
      {"compaction: journal cut", snap1, journal_cut, ""},
      {"journal creation: temp journal not renamed", snap0, "", journal_cut},
  };
  for (const State& st : states) {
    INFO(st.step);
    const std::string dir = tmp.path() + "/crash" + std::to_string(&st - states.data());
    REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
    write_file(dir + "/pool-blue", st.snapshot);
    if (!st.journal.empty()) write_file(dir + "/pool-blue+journal", st.journal);
    if (!st.temp.empty()) write_file(dir + tmp_name, st.temp);
    auto pool = load(dir);
    REQUIRE(pool.ok());
    if (st.journal.empty()) {
      // Before the journal existed only the snapshot's state was committed.
      auto snap = decode_snapshot(st.snapshot, "");
      REQUIRE(snap.ok());
      CHECK(**pool == snap->pool);
    } else {
      CHECK(**pool == **expected);
    }
    CHECK_FALSE(exists(dir + tmp_name));  // removed under the lock
    // The store keeps working from there: one more commit, reloaded.
    Store again = open_store(dir);
    commit_ops(again, {PoolOp::reserve(res("10.0.200.1", "next"))});
    auto next = load(dir);
    REQUIRE(next.ok());
    CHECK((*next)->reservations.size() == (*pool)->reservations.size() + 1);
  }
  // ftruncate is atomic, but a journal cut anywhere between its header and its end loads too:
  // every frame left is already in the new snapshot, or a torn tail.
  for (std::size_t n = journal_cut.size(); n <= journal_full.size(); n += 7) {
    const std::string dir = tmp.path() + "/cut" + std::to_string(n);
    REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
    write_file(dir + "/pool-blue", snap1);
    write_file(dir + "/pool-blue+journal", journal_full.substr(0, n));
    auto pool = load(dir);
    REQUIRE(pool.ok());
    CHECK(**pool == **expected);
  }
}

TEST_CASE("a v1 text pool file is read, extended through the journal and compacted to v2") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  PoolData v1{"blue", {}, {}};
  v1.insert(res("10.0.0.1", "old"));
  write_file(dir + "/pool-blue", *encode_pool(v1));
  Store s = open_store(dir);
  commit_ops(s, {PoolOp::reserve(res("10.0.0.2", "new"))});
  CHECK(read_file(dir + "/pool-blue").substr(0, 16) == "ipoib-ipam-pool ");
  {
    auto lock = s.lock(1000);
    REQUIRE(lock.ok());
    REQUIRE(s.compact(*lock, "blue").ok());
  }
  CHECK(read_file(dir + "/pool-blue").substr(0, 8) == kSnapshotMagic);
  auto pool = load(dir);
  REQUIRE(pool.ok());
  CHECK((*pool)->reservations.size() == 2);
}

TEST_CASE("write_pool turns any change into one commit") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir);
  auto lock = s.lock(1000);
  REQUIRE(lock.ok());
  PoolData p{"blue", {}, {}};
  p.insert(res("10.0.0.1", "a"));
  REQUIRE(s.write_pool(*lock, p).ok());
  p.insert(res("10.0.0.2", "b"));
  p.reservations.erase(p.reservations.begin());
  REQUIRE(s.write_pool(*lock, p).ok());
  auto back = s.read_pool(*lock, "blue");
  REQUIRE(back.ok());
  CHECK(**back == p);
  auto img = scan_journal(read_file(dir + "/pool-blue+journal"), "j");
  REQUIRE(img.ok());
  CHECK(img->frames.size() == 1);
}
