// ipoib/cni/env.h — the CNI_* environment, validated exactly as real clients do.
//
//   auto env = read_environment(getenv_fn);     // Result<Environment>
//   env->command == Command::kAdd;
//   env->ifname;                                // "net1"
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/cni/args.h"

namespace ipoib::cni {

enum class Command { kAdd, kDel, kCheck, kVersion, kGc, kStatus };

std::string_view to_string(Command c);

// Returns the value of an environment variable, or nullopt. Injected so tests need no process.
using GetEnv = std::function<std::optional<std::string>(std::string_view)>;

struct Environment {
  Command command = Command::kVersion;
  std::string container_id;       // CNI_CONTAINERID
  std::string netns;              // CNI_NETNS (may be empty on DEL)
  std::string ifname;             // CNI_IFNAME
  std::string args_text;          // CNI_ARGS verbatim
  CniArgs args;                   // parsed CNI_ARGS
  std::vector<std::string> path;  // CNI_PATH split on ':' (empty elements dropped)
};

// Reads and validates the environment. Empty values count as absent. Requirements per verb as
// in the spec table (ADD/CHECK: CONTAINERID, NETNS, IFNAME; DEL: CONTAINERID, IFNAME; GC: PATH;
// VERSION and STATUS: nothing beyond CNI_COMMAND). All missing variables are reported at once:
// kInvalidEnvironment "required environment variables missing: CNI_CONTAINERID, CNI_IFNAME".
// VERSION never validates the other variables (libcni sends "dummy").
// Unknown CNI_COMMAND (case-sensitive, as libcni's skel) -> kInvalidEnvironment naming it.
// ADD/CHECK/DEL then validate, with libcni's messages, all kInvalidEnvironment: the container ID
// (is_valid_identifier; details = the ID), the ifname (is_valid_ifname) and CNI_ARGS
// (parse_cni_args). ADD/CHECK also need an absolute CNI_NETNS; DEL accepts any (or none).
// GC/STATUS keep a CNI_ARGS that does not parse as empty args instead of failing.
Result<Environment> read_environment(const GetEnv& getenv);

// ^[A-Za-z0-9][A-Za-z0-9_.\-]*$ — used for container IDs and network names.
bool is_valid_identifier(std::string_view s);
// Non-empty, <= 15 bytes, not "." or "..", no '/', ':' or whitespace — whitespace as Go's
// unicode.IsSpace on UTF-8 runes (libcni), which covers the kernel's isspace() (dev_valid_name).
bool is_valid_ifname(std::string_view s);

}  // namespace ipoib::cni
