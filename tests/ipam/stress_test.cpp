// Stress: 8 processes x 500 interleaved ADD/DEL on one store. Afterwards the store must hold
// exactly the reservations the workers believe are live (nothing lost, nothing extra), with no
// address given to two live containers.
#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#include "proc_support.h"

namespace {

constexpr int kWorkers = 8;
constexpr int kOpsPerWorker = 500;

int worker(int w, const std::string& store, const std::string& out_path) {
  std::mt19937 rng(static_cast<unsigned>(w * 7919 + ::getpid()));
  std::map<std::string, std::string> live;  // cid -> ip
  const auto cfg = ipam_proc::conf(store, {{"range", "10.30.0.0/21"}});
  for (int i = 0; i < kOpsPerWorker; ++i) {
    if (!live.empty() && rng() % 3 == 0) {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      auto r = ipam_proc::call("DEL", cfg, it->first);
      if (r.rc != 0) {
        std::fprintf(stderr, "worker %d: DEL %s failed: %s\n", w, it->first.c_str(), r.out.c_str());
        return 1;
      }
      live.erase(it);
    } else {
      const std::string cid = "w" + std::to_string(w) + "-" + std::to_string(i);
      auto r = ipam_proc::call("ADD", cfg, cid);
      if (r.rc != 0) {
        std::fprintf(stderr, "worker %d: ADD %s failed: %s\n", w, cid.c_str(), r.out.c_str());
        return 1;
      }
      live[cid] = nlohmann::json::parse(r.out)["ips"][0]["address"].get<std::string>();
    }
  }
  std::ofstream out(out_path);
  for (const auto& [cid, ip] : live) out << cid << " " << ip.substr(0, ip.find('/')) << "\n";
  return out.good() ? 0 : 1;
}

}  // namespace

int main() {
  ipam_proc::TempDir tmp;
  const std::string store = tmp.path() + "/store";
  std::vector<pid_t> pids;
  for (int w = 0; w < kWorkers; ++w) {
    const pid_t pid = ::fork();
    if (pid < 0) return 1;
    if (pid == 0) ::_exit(worker(w, store, tmp.path() + "/w" + std::to_string(w)));
    pids.push_back(pid);
  }
  int failures = 0;
  for (const pid_t pid : pids) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ++failures;
  }
  if (failures != 0) {
    std::fprintf(stderr, "FAIL: %d worker(s) failed\n", failures);
    return 1;
  }
  std::map<std::string, std::string> expected;
  std::set<std::string> ips;
  for (int w = 0; w < kWorkers; ++w) {
    std::ifstream in(tmp.path() + "/w" + std::to_string(w));
    std::string cid, ip;
    while (in >> cid >> ip) {
      expected[cid] = ip;
      if (!ips.insert(ip).second) {
        std::fprintf(stderr, "FAIL: duplicate address %s handed to two live containers\n",
                     ip.c_str());
        return 1;
      }
    }
  }
  auto pool = ipam_proc::load_pool(store);
  if (!pool) {
    std::fprintf(stderr, "FAIL: store does not load: %s\n", pool.error().msg().c_str());
    return 1;
  }
  std::map<std::string, std::string> stored;
  for (const auto& r : pool->reservations) stored[r.container_id] = r.ip.to_string();
  if (stored != expected) {
    std::fprintf(stderr, "FAIL: store has %zu reservations, workers expect %zu\n", stored.size(),
                 expected.size());
    for (const auto& [cid, ip] : expected) {
      auto it = stored.find(cid);
      if (it == stored.end() || it->second != ip)
        std::fprintf(stderr, "  lost/changed %s %s\n", cid.c_str(), ip.c_str());
    }
    return 1;
  }
  if (ipam_proc::count_temp_files(store) != 0) {
    std::fprintf(stderr, "FAIL: temporary files left in the store\n");
    return 1;
  }
  std::printf("ok: %d processes x %d ops, %zu live reservations, all distinct and present\n",
              kWorkers, kOpsPerWorker, expected.size());
  return 0;
}
