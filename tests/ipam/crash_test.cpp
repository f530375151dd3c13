// Crash: >= 1,000 operations, each in a child process that is killed with SIGKILL at a random
// instant about half of the time. After every operation the store must load, every reservation
// known to be committed must be there with its address, every known release must be gone, and
// temporary files must not accumulate (a completed operation leaves none). The journal is
// compacted every ~20 operations here (instead of every few hundred) so that kills also land in
// compactions: between writing the new snapshot, renaming it and cutting the journal.
#include <signal.h>
#include <time.h>

#include <cstdio>
#include <random>
#include <set>

#include "proc_support.h"

namespace {

constexpr int kOperations = 1000;
constexpr ipoib::ipam::StoreTuning kTuning{.compact_min_bytes = 512, .snapshot_divisor = 16};

void sleep_us(long us) {
  timespec ts{0, us * 1000};
  ::nanosleep(&ts, nullptr);
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "FAIL: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main() {
  ipam_proc::TempDir tmp;
  const std::string store = tmp.path() + "/store";
  const auto cfg = ipam_proc::conf(store, {{"range", "10.40.0.0/20"}});
  std::map<std::string, std::string> committed;  // cid -> ip known to be in the store
  // Seed a few hundred reservations so writes take a measurable time.
  for (int i = 0; i < 300; ++i) {
    const std::string cid = "seed" + std::to_string(i);
    auto r = ipam_proc::call("ADD", cfg, cid, "net1", kTuning);
    if (r.rc != 0) return fail("seed ADD: " + r.out);
    committed[cid] = nlohmann::json::parse(r.out)["ips"][0]["address"].get<std::string>();
    committed[cid] = committed[cid].substr(0, committed[cid].find('/'));
  }
  std::mt19937 rng(12345);
  int kills = 0;
  int torn = 0;
  int in_snapshot_write =
      0;  // killed while writing a snapshot (compaction) or creating the journal
  int next_id = 0;
  for (int op = 0; op < kOperations; ++op) {
    const bool del = !committed.empty() && rng() % 2 == 0;
    std::string cid;
    if (del) {
      auto it = committed.begin();
      std::advance(it, static_cast<long>(rng() % committed.size()));
      cid = it->first;
    } else {
      cid = "c" + std::to_string(next_id++);
    }
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return fail("pipe");
    const pid_t pid = ::fork();
    if (pid < 0) return fail("fork");
    if (pid == 0) {
      auto r = ipam_proc::call(del ? "DEL" : "ADD", cfg, cid, "net1", kTuning);
      (void)!::write(pipefd[1], r.out.data(), r.out.size());
      ::_exit(r.rc);
    }
    ::close(pipefd[1]);
    const bool kill_it = rng() % 2 == 0;
    if (kill_it) {
      // An operation takes ~0.3-3 ms (machine load): most kills land inside one.
      sleep_us(static_cast<long>(rng() % 800));
      ::kill(pid, SIGKILL);
    }
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;)
      out.append(buf, static_cast<std::size_t>(n));
    ::close(pipefd[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    const bool killed = WIFSIGNALED(st);
    kills += killed ? 1 : 0;
    if (!killed && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
      return fail("operation " + std::to_string(op) + " failed: " + out);
    }
    if (killed && ipam_proc::journal_has_torn_tail(store)) ++torn;
    if (killed && ipam_proc::count_temp_files(store) > 0) ++in_snapshot_write;
    auto pool = ipam_proc::load_pool(store);
    if (!pool)
      return fail("store does not load after operation " + std::to_string(op) + ": " +
                  pool.error().msg());
    std::map<std::string, std::string> stored;
    for (const auto& r : pool->reservations) {
      if (!stored.emplace(r.container_id, r.ip.to_string()).second)
        return fail("two reservations for " + r.container_id);
    }
    if (!killed) {
      if (del) {
        committed.erase(cid);
      } else {
        std::string ip = nlohmann::json::parse(out)["ips"][0]["address"].get<std::string>();
        committed[cid] = ip.substr(0, ip.find('/'));
      }
      if (ipam_proc::count_temp_files(store) != 0)
        return fail("temporary file left after a completed operation");
    } else {
      // Either outcome is allowed for the killed operation; the store decides which happened.
      if (auto it = stored.find(cid); it != stored.end()) {
        committed[cid] = it->second;
      } else {
        committed.erase(cid);
      }
      if (ipam_proc::count_temp_files(store) > 1) return fail("temporary files accumulate");
    }
    for (const auto& [c, ip] : committed) {
      auto it = stored.find(c);
      if (it == stored.end() || it->second != ip)
        return fail("committed reservation lost: " + c + " " + ip);
    }
    if (stored.size() != committed.size()) return fail("store holds reservations nobody committed");
  }
  // The next locked operation removes what the last killed writer left.
  auto r = ipam_proc::call("ADD", cfg, "final");
  if (r.rc != 0) return fail("final ADD: " + r.out);
  if (ipam_proc::count_temp_files(store) != 0) return fail("stale temporary files not cleaned");
  std::printf(
      "ok: %d operations, %d killed with SIGKILL (%d inside a snapshot write), %zu "
      "reservations intact, %d torn appends seen (cut by the next writer)\n",
      kOperations, kills, in_snapshot_write, committed.size(), torn);
  return 0;
}
