// Helpers shared by the IPAM unit tests: a temporary directory, a fake CNI process and one run
// of the admin command line (`ipoib ipam ...`) without a process.
#pragma once

#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ipoib/cni/skel.h"
#include "ipoib/ipam/admin.h"
#include "temp_dir.h"

namespace ipam_test {

using TempDir = ipoib::testing::TempDir;  // tests/support/temp_dir.h

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// One CNI invocation without a process.
struct Invocation {
  std::map<std::string, std::string> env;
  std::string stdin_text;
  std::string stdout_text;
  int rc = -1;

  ipoib::cni::ProcessIo io() {
    ipoib::cni::ProcessIo pio;
    pio.getenv = [this](std::string_view k) -> std::optional<std::string> {
      auto it = env.find(std::string(k));
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    pio.read_stdin = [this]() -> ipoib::Result<std::string> { return stdin_text; };
    pio.write_stdout = [this](std::string_view s) { stdout_text += s; };
    return pio;
  }
};

// One `ipoib ipam ARGS...` run through admin_run: its exit status and what it printed.
struct AdminRun {
  int rc = -1;
  std::string out;
  std::string err;
};

inline AdminRun admin(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  AdminRun r;
  r.rc = ipoib::ipam::admin_run(args, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

}  // namespace ipam_test
