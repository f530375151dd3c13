// Helpers for the process-level IPAM tests: temp dirs, in-process CNI calls inside forked
// children, and reading the store back.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "ipoib/cni/skel.h"
#include "ipoib/ipam/builtin.h"
#include "ipoib/ipam/store.h"
#include "temp_dir.h"

namespace ipam_proc {

using TempDir = ipoib::testing::TempDir;  // tests/support/temp_dir.h

struct CallResult {
  int rc = -1;
  std::string out;
};

// One CNI invocation of the built-in IPAM through the protocol engine, in this process.
inline CallResult call(const std::string& cmd, const nlohmann::json& conf, const std::string& cid,
                       const std::string& ifname = "net1",
                       const ipoib::ipam::StoreTuning& tuning = {}) {
  static ipoib::Logger log = [] {
    ipoib::Logger l;
    l.set_level(ipoib::LogLevel::kOff);
    return l;
  }();
  ipoib::ipam::IpamOptions opts;
  opts.sources.flat_file_paths = {};
  opts.store_tuning = tuning;
  auto plugin = ipoib::ipam::make_builtin_ipam(log, opts);
  std::map<std::string, std::string> env = {{"CNI_COMMAND", cmd},
                                            {"CNI_CONTAINERID", cid},
                                            {"CNI_NETNS", "/proc/self/ns/net"},
                                            {"CNI_IFNAME", ifname},
                                            {"CNI_PATH", "/nonexistent"}};
  CallResult r;
  const std::string in = conf.dump();
  ipoib::cni::ProcessIo io;
  io.getenv = [&](std::string_view k) -> std::optional<std::string> {
    auto it = env.find(std::string(k));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  io.read_stdin = [&]() -> ipoib::Result<std::string> { return in; };
  io.write_stdout = [&](std::string_view s) { r.out += s; };
  r.rc = ipoib::cni::run_plugin(*plugin, io, log);
  return r;
}

inline nlohmann::json conf(const std::string& store_dir, const nlohmann::json& extra = {}) {
  nlohmann::json ipam = {{"type", "whereabouts"},
                         {"range", "10.20.0.0/16"},
                         {"store_dir", store_dir},
                         {"lock_timeout_ms", 120000}};
  for (auto it = extra.begin(); it != extra.end(); ++it) ipam[it.key()] = it.value();
  return {{"cniVersion", "1.1.0"}, {"name", "stress"}, {"type", "x"}, {"ipam", ipam}};
}

// The pool as stored, or the error text.
inline ipoib::Result<ipoib::ipam::PoolData> load_pool(const std::string& store_dir,
                                                      const std::string& network = "") {
  using namespace ipoib::ipam;
  IPOIB_TRY_ASSIGN(std::optional<Store> store, Store::open(store_dir, CreateMode::kMustExist));
  if (!store) return PoolData{};
  IPOIB_TRY_ASSIGN(StoreLock lock, store->lock(60000));
  IPOIB_TRY_ASSIGN(std::optional<PoolData> pool, store->read_pool(lock, network));
  return pool ? *pool : PoolData{};
}

// Whether the default pool's journal ends with an unacknowledged (torn) append.
inline bool journal_has_torn_tail(const std::string& store_dir) {
  std::string bytes;
  if (FILE* f = std::fopen((store_dir + "/pool-_default+journal").c_str(), "rb")) {
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) bytes.append(buf, n);
    std::fclose(f);
  }
  if (bytes.empty()) return false;
  auto img = ipoib::ipam::scan_journal(bytes, "journal");
  return img.ok() && img->torn_tail;
}

inline int count_temp_files(const std::string& dir) {
  int n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (std::string_view(e->d_name).substr(0, 5) == ".tmp.") ++n;
    }
    ::closedir(d);
  }
  return n;
}

}  // namespace ipam_proc
