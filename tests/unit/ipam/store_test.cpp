// The store's files: journal appends, torn-tail recovery, corruption left untouched, and every
// crash point of journal creation and compaction (reconstructed from the files each step leaves).
#include "ipoib/ipam/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>

#include "ipoib/base/file.h"
#include "ipoib/ipam/pool_text.h"
#include "reference_pool.h"
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
  auto pool = s.load_pool(*lock, net);
  REQUIRE(pool.ok());
  PoolIndex p = *pool ? std::move(**pool) : PoolIndex(net);
  REQUIRE(p.apply(ops, "").ok());
  auto info = s.commit(*lock, p, ops);
  INFO((info.ok() ? std::string() : info.error().msg()));
  REQUIRE(info.ok());
  return *info;
}

std::string addr(int i) {
  return "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
}

bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

}  // namespace

TEST_CASE("commits append to the journal; the snapshot is written once; files are private") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir);
  commit_ops(s, {PoolOp::reserve(res("10.0.0.1", "a"))});
  const std::string snap = dir + "/pool-blue";
  const std::string journal = dir + "/pool-blue+journal";
  REQUIRE(exists(snap));  // a new pool's first commit is its snapshot
  REQUIRE(exists(journal));
  CHECK(read_file(journal) == *encode_journal_header("blue"));  // created with it, empty
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
  for (int i = 0; i < 4; ++i)
    commit_ops(s, {PoolOp::reserve(res(addr(i), "c" + std::to_string(i)))});
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
    PoolIndex p("blue");
    const std::vector<PoolOp> ops = {PoolOp::reserve(res("10.0.9.9", "x"))};
    REQUIRE(p.apply(ops, "").ok());
    CHECK_FALSE(s.commit(*lock, p, ops).ok());
    CHECK_FALSE(s.write_pool(*lock, *p.to_pool_data()).ok());
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
  while (!compacted)
    compacted = commit_ops(s, {PoolOp::reserve(res(addr(i), "c" + std::to_string(i)))}).compacted,
    ++i;
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
      {"compaction: temp snapshot half written", snap0, journal_full,
       snap1.substr(0, snap1.size() / 2)},
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

// ---- hardening (issue 9): blocking opens, untrusted and foreign directories, readers ---------

namespace {

// A test that would block forever fails instead: SIGALRM ends the process.
struct Deadline {
  explicit Deadline(unsigned s) { ::alarm(s); }
  ~Deadline() { ::alarm(0); }
};

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("a FIFO as snapshot, journal or lock file is refused at once, never opened blocking") {
  Deadline deadline(20);
  for (const char* name : {"pool-blue", "pool-blue+journal", "lock"}) {
    INFO(name);
    TempDir tmp;
    const std::string dir = tmp.path() + "/s";
    Store s = open_store(dir);
    if (std::string(name) != "lock") commit_ops(s, {PoolOp::reserve(res("10.0.0.1", "a"))});
    ::unlink((dir + "/" + name).c_str());
    REQUIRE(::mkfifo((dir + "/" + name).c_str(), 0600) == 0);
    Store again = open_store(dir);
    auto lock = again.lock(1000);
    if (std::string(name) == "lock") {
      REQUIRE_FALSE(lock.ok());
      CHECK(lock.error().code() == ErrorCode::kIoFailure);
      CHECK_THAT(lock.error().msg(), Catch::Contains("FIFO"));
      CHECK_FALSE(again.lock_shared(1000).ok());
      continue;
    }
    REQUIRE(lock.ok());
    auto pool = again.load_pool(*lock, "blue");
    REQUIRE_FALSE(pool.ok());
    CHECK(pool.error().code() == ErrorCode::kIoFailure);
    CHECK_THAT(pool.error().msg(), Catch::Contains("FIFO") && Catch::Contains(dir + "/" + name));
  }
}

TEST_CASE("an untrusted store directory is refused with how to fix it; the rule is one function") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  for (mode_t mode : {0770, 0707, 0777, 01777, 0720}) {
    INFO(mode);
    REQUIRE(::chmod(dir.c_str(), mode) == 0);
    for (CreateMode cm : {CreateMode::kCreate, CreateMode::kMustExist}) {
      auto s = Store::open(dir, cm);
      REQUIRE_FALSE(s.ok());
      CHECK(s.error().code() == ErrorCode::kIoFailure);
      CHECK_THAT(s.error().msg(), Catch::Contains("writable by group or others") &&
                                      Catch::Contains("chmod 0700 " + dir));
    }
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    CHECK_FALSE(check_store_dir_trust(fd.get(), dir).ok());
  }
  for (mode_t mode : {0700, 0755, 0750}) {
    REQUIRE(::chmod(dir.c_str(), mode) == 0);
    CHECK(Store::open(dir, CreateMode::kCreate).ok());
  }
  CHECK(names_in(dir).empty());  // opening creates nothing inside
  if (::geteuid() == 0) {
    REQUIRE(::chown(dir.c_str(), 4242, 4242) == 0);
    auto s = Store::open(dir, CreateMode::kMustExist);
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.error().msg(),
               Catch::Contains("owned by uid 4242") && Catch::Contains("chown root:root " + dir));
    REQUIRE(::chown(dir.c_str(), 0, 0) == 0);
  }
  // A pool file writable by others is refused too.
  Store s = open_store(dir);
  commit_ops(s, {PoolOp::reserve(res("10.0.0.1", "a"))});
  REQUIRE(::chmod((dir + "/pool-blue").c_str(), 0666) == 0);
  auto lock = s.lock(1000);
  REQUIRE(lock.ok());
  auto pool = s.load_pool(*lock, "blue");
  REQUIRE_FALSE(pool.ok());
  CHECK_THAT(pool.error().msg(), Catch::Contains("chmod 0600 " + dir + "/pool-blue"));
}

TEST_CASE("readers write nothing: no lock file, no directory, no temp cleanup") {
  TempDir tmp;
  // Not a store: a directory with someone else's files.
  const std::string foreign = tmp.path() + "/foreign";
  REQUIRE(::mkdir(foreign.c_str(), 0700) == 0);
  write_file(foreign + "/.tmp.theirs", "not ours");
  write_file(foreign + "/notes", "x");
  const auto before = names_in(foreign);
  {
    auto s = Store::open(foreign, CreateMode::kMustExist);
    REQUIRE(s.ok());
    REQUIRE(*s);
    auto lock = (*s)->lock_shared(1000);
    REQUIRE(lock.ok());
    auto nets = (*s)->list_networks(*lock);
    REQUIRE(nets.ok());
    CHECK(nets->empty());
    auto pool = (*s)->load_pool(*lock, "blue");
    REQUIRE(pool.ok());
    CHECK_FALSE(*pool);
    CHECK((*s)->probe_writable(*lock).ok());
    // A shared lock cannot commit.
    PoolIndex ix("blue");
    const std::vector<PoolOp> ops = {PoolOp::reserve(res("10.0.0.1", "a"))};
    REQUIRE(ix.apply(ops, "").ok());
    auto c = (*s)->commit(*lock, ix, ops);
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().code() == ErrorCode::kInternal);
  }
  CHECK(names_in(foreign) == before);
  // A missing store directory is not created by a reader.
  auto none = Store::open(tmp.path() + "/absent/store", CreateMode::kMustExist);
  REQUIRE(none.ok());
  CHECK_FALSE(*none);
  CHECK(names_in(tmp.path()) == std::vector<std::string>{"foreign"});
}

TEST_CASE("a writer removes only temporary files that are the store's by name and content") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir);
  commit_ops(s, {PoolOp::reserve(res("10.0.0.1", "a"))});
  const std::string magic(kSnapshotMagic);
  const std::vector<std::pair<std::string, std::string>> ours = {
      {".tmp.pool-blue.0123456789abcdef", magic + "half"},
      {".tmp.pool-blue+journal.fedcba9876543210", std::string(kJournalMagic)},
      {".tmp.pool-_default.1234.7", ""},  // the previous release's name, killed before writing
      {".tmp.pool-red.99", "ipoib-ipam-pool 1\nnet"},
  };
  const std::vector<std::pair<std::string, std::string>> theirs = {
      {".tmp.pool-blue.0123456789abcdef0", magic},        // not the name grammar
      {".tmp.pool-blue.0123456789abcdeg", magic},         // not hex
      {".tmp.pool-blue.0123456789abcdee", "their data"},  // our name, not our format
      {".tmp.notes", magic},
      {".tmp.pool-bad/name.1", magic},
      {"pool-blue.bak", magic},
  };
  const auto in_dir = [&](const std::string& n) {
    std::string path = dir;
    path += '/';
    path += n;
    return path;
  };
  for (const auto& [n, c] : ours) write_file(in_dir(n), c);
  for (const auto& [n, c] : theirs) {
    if (n.find('/') == std::string::npos) write_file(in_dir(n), c);
  }
  REQUIRE(::symlink("/etc/hostname", (dir + "/.tmp.pool-blue.00000000000000aa").c_str()) == 0);
  {
    // Readers never clean up.
    auto lock = s.lock_shared(1000);
    REQUIRE(lock.ok());
  }
  for (const auto& [n, c] : ours) CHECK(exists(in_dir(n)));
  {
    auto lock = s.lock(1000);
    REQUIRE(lock.ok());
  }
  for (const auto& [n, c] : ours) {
    INFO(n);
    CHECK_FALSE(exists(in_dir(n)));
  }
  for (const auto& [n, c] : theirs) {
    if (n.find('/') != std::string::npos) continue;
    INFO(n);
    CHECK(exists(in_dir(n)));
  }
  struct stat st {};
  CHECK(::lstat((dir + "/.tmp.pool-blue.00000000000000aa").c_str(), &st) == 0);
}

TEST_CASE("a shared lock excludes writers and admits readers") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir);
  commit_ops(s, {PoolOp::reserve(res("10.0.0.1", "a"))});
  auto reader = s.lock_shared(1000);
  REQUIRE(reader.ok());
  const pid_t child = ::fork();
  if (child == 0) {
    // Another process: a second reader gets in, a writer times out.
    auto s2 = Store::open(dir, CreateMode::kMustExist);
    const bool reader_ok = s2.ok() && *s2 && (*s2)->lock_shared(200).ok();
    auto w = s2.ok() && *s2 ? (*s2)->lock(200) : Result<StoreLock>(Error(ErrorCode::kInternal, ""));
    const bool writer_refused = !w.ok() && w.error().code() == ErrorCode::kTryAgainLater;
    ::_exit(reader_ok && writer_refused ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a waiting writer gets the lock when the holder releases it; SIGALRM is left as it was") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir);
  commit_ops(s, {PoolOp::reserve(res("10.0.0.1", "a"))});
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  if (child == 0) {
    // Holds the exclusive lock for 300 ms, then exits (which releases it).
    ::close(ready[0]);
    auto s2 = Store::open(dir, CreateMode::kMustExist);
    auto held =
        s2.ok() && *s2 ? (*s2)->lock(1000) : Result<StoreLock>(Error(ErrorCode::kInternal, ""));
    const char c = held.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::usleep(300 * 1000);
    ::_exit(0);
  }
  ::close(ready[1]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);
  REQUIRE(c == 'y');
  struct sigaction before {};
  REQUIRE(::sigaction(SIGALRM, nullptr, &before) == 0);
  // The child still holds it: a short timeout fails, a long one succeeds once the child exits.
  auto refused = s.lock(50);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == ErrorCode::kTryAgainLater);
  const auto t0 = std::chrono::steady_clock::now();
  auto got = s.lock(20000);
  const auto waited = std::chrono::steady_clock::now() - t0;
  REQUIRE(got.ok());
  CHECK(waited < std::chrono::seconds(10));  // woken by the release, not by the deadline
  struct sigaction after {};
  REQUIRE(::sigaction(SIGALRM, nullptr, &after) == 0);
  CHECK(after.sa_handler == before.sa_handler);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  // The pool is still there and writable under the lock that was waited for.
  auto pool = s.load_pool(*got, "blue");
  REQUIRE(pool.ok());
  REQUIRE(*pool);
  CHECK((*pool)->size() == 1);
}

TEST_CASE("a large snapshot is mapped, a small one read; both load the same pool") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/s";
  Store s = open_store(dir, {.compact_min_bytes = 1U << 30, .snapshot_divisor = 1});
  PoolData big;
  big.network_name = "blue";
  for (int i = 0; i < 2000; ++i) {
    big.reservations.push_back(res(addr(i), "c" + std::to_string(i)));
  }
  {
    auto lock = s.lock(1000);
    REQUIRE(lock.ok());
    REQUIRE(s.write_pool(*lock, big).ok());
  }
  const std::string snap = dir + "/pool-blue";
  const std::string bytes = read_file(snap);
  REQUIRE(bytes.size() >= (std::size_t{64} << 10));
  auto fd = open_checked(AT_FDCWD, snap, O_RDONLY, FileType::kRegular);
  REQUIRE(fd.ok());
  auto mapped = map_or_read_all(fd->get(), snap, std::size_t{1} << 30);
  REQUIRE(mapped.ok());
  CHECK(mapped->mapped());
  CHECK(mapped->view() == bytes);
  FileBytes moved = std::move(*mapped);  // the bytes stay where they are
  CHECK(moved.view() == bytes);
  auto too_big = map_or_read_all(fd->get(), snap, 1000);
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.error().msg().find("larger than 1000 bytes") != std::string::npos);
  auto loaded = load(dir);
  REQUIRE(loaded.ok());
  REQUIRE(*loaded);
  CHECK(**loaded == big);
  // A small snapshot is read (and loads the same way).
  write_file(dir + "/small", "IPAMSNP");
  auto sfd = open_checked(AT_FDCWD, dir + "/small", O_RDONLY, FileType::kRegular);
  REQUIRE(sfd.ok());
  auto small = map_or_read_all(sfd->get(), dir + "/small", 100);
  REQUIRE(small.ok());
  CHECK_FALSE(small->mapped());
  CHECK(small->view() == "IPAMSNP");
}
