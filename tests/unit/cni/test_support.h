// Helpers shared by the unit.cni tests: an injected process (environment, stdin, stdout) and
// golden-file access.
#pragma once

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "ipoib/cni/skel.h"

namespace ipoib::cni::testing {

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  INFO("reading " << path);
  REQUIRE(in.good());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline nlohmann::json golden(const std::string& name) {
  return nlohmann::json::parse(read_text_file(std::string(IPOIB_CNI_GOLDEN_DIR) + "/" + name));
}

// A process: environment map (a missing key is an unset variable), stdin text, captured stdout.
struct FakeProcess {
  std::map<std::string, std::string, std::less<>> env;
  std::string stdin_text;
  bool stdin_fails = false;
  std::vector<std::string> writes;

  ProcessIo io() {
    ProcessIo io;
    io.getenv = [this](std::string_view name) -> std::optional<std::string> {
      const auto it = env.find(name);
      if (it == env.end()) {
        return std::nullopt;
      }
      return it->second;
    };
    io.read_stdin = [this]() -> Result<std::string> {
      if (stdin_fails) {
        return Error(ErrorCode::kIoFailure, "read stdin: Input/output error");
      }
      return stdin_text;
    };
    io.write_stdout = [this](std::string_view text) { writes.emplace_back(text); };
    return io;
  }

  // Everything written to stdout, which must be exactly one JSON document.
  [[nodiscard]] nlohmann::json document() const {
    REQUIRE(writes.size() == 1);
    return nlohmann::json::parse(writes[0]);  // throws on trailing garbage or a second document
  }
};

// The environment a real runtime sends for `command`: all six variables, valid values.
inline std::map<std::string, std::string, std::less<>> runtime_env(const std::string& command) {
  return {{"CNI_COMMAND", command},
          {"CNI_CONTAINERID", "4f8a1b2c3d"},
          {"CNI_NETNS", "/var/run/netns/cni-1234"},
          {"CNI_IFNAME", "net1"},
          {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=mpi;K8S_POD_NAME=worker-0"},
          {"CNI_PATH", "/opt/cni/bin"}};
}

}  // namespace ipoib::cni::testing
