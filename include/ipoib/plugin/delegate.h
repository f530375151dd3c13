// ipoib/plugin/delegate.h — a delegated IPAM plugin: the `ipam.type` binary from CNI_PATH, run
// with the caller's environment and the whole stdin config (CNI SPEC.md "Delegated plugins").
//
//   auto ipam = make_delegated_ipam("host-local", process_environment(), real_exec());
//   IPOIB_TRY_ASSIGN(cni::CniResult r, ipam->add(request));   // exec CNI_COMMAND=ADD host-local
//   IPOIB_TRY(ipam->del(request));                             // the rollback: CNI_COMMAND=DEL
//
// Its stderr goes straight through to ours; its stdout (one JSON document) is read with a bound
// and decoded with cni::decode_result, whatever version it answers in.
//
// Delegation never recurses without bound: a delegate that is this executable (by device and
// inode, whatever the name or link it is reached by) is refused, and every delegate runs with
// kDelegationDepthVariable one higher than ours, refused at kMaxDelegationDepth. ADD, CHECK, GC
// and STATUS report either as kInvalidNetworkConfig naming ipam.type; DEL then succeeds without
// running anything (ADD never reserved through such a configuration).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/cni/skel.h"

namespace ipoib::plugin {

// Largest stdout a delegate may write (a result is a few KiB; anything bigger is a bug).
inline constexpr std::size_t kMaxDelegateOutputBytes = 1 << 20;

struct ExecOutput {
  int exit_status = 0;  // exit code, or 128 + signal number when killed
  std::string stdout_text;
};

// Runs `path` with argv {path}, `environment` ("K=V" entries) and `stdin_text` on its stdin;
// stderr is inherited. Errors: the program could not be started, or wrote more than
// kMaxDelegateOutputBytes (it is then killed).
using ExecFn = std::function<Result<ExecOutput>(const std::string& path,
                                                const std::vector<std::string>& environment,
                                                std::string_view stdin_text)>;

// posix_spawn + close-on-exec pipes, one RAII owner each, bounded read; no shell.
ExecFn real_exec();

// This process's environment (environ) as "K=V" entries.
std::vector<std::string> process_environment();

// The first regular, executable file named `type` in `cni_path`. kInvalidNetworkConfig when
// `type` contains '/' or none is found (naming the directories searched).
Result<std::string> find_plugin(std::string_view type, const std::vector<std::string>& cni_path);

// How deep delegation is: absent or not a number means 0 (the runtime called us).
inline constexpr std::string_view kDelegationDepthVariable = "IPOIB_CNI_DELEGATION_DEPTH";
// An IPAM delegating to an IPAM delegating to one more is the deepest chain allowed.
inline constexpr int kMaxDelegationDepth = 3;
// What names this executable for the self-recursion check (its device and inode).
inline constexpr std::string_view kSelfExecutable = "/proc/self/exe";

// The delegation depth `environment` ("K=V" entries) records.
int delegation_depth(const std::vector<std::string>& environment);

// Refuses to run `path` (found for ipam.type `type`) when it is the file `self_exe` resolves to
// (same st_dev and st_ino) or when `environment` is already kMaxDelegationDepth deep.
// kInvalidNetworkConfig naming ipam.type and saying which.
Status refuse_recursion(std::string_view type, const std::string& path,
                        const std::vector<std::string>& environment, const std::string& self_exe);

// find_plugin, then refuse_recursion: the delegate ADD, CHECK, GC and STATUS would run.
Result<std::string> resolve_delegate(std::string_view type,
                                     const std::vector<std::string>& cni_path,
                                     const std::vector<std::string>& environment,
                                     const std::string& self_exe = std::string(kSelfExecutable));

// A cni::Plugin that forwards each verb to the `type` binary. `environment` is the base
// environment; CNI_COMMAND is replaced per verb (the rollback DEL of an ADD runs as DEL) and
// kDelegationDepthVariable raised by one. `self_exe` names this executable (tests pass another).
std::unique_ptr<cni::Plugin> make_delegated_ipam(
    std::string type, std::vector<std::string> environment, ExecFn exec,
    std::string self_exe = std::string(kSelfExecutable));

}  // namespace ipoib::plugin
