// ipoib/cni/skel.h — verb dispatch: environment + stdin -> plugin call -> one JSON on stdout.
//
//   class MyPlugin : public cni::Plugin { ... };
//   MyPlugin plugin;
//   return cni::run_plugin(plugin, cni::real_process_io(), logger);   // the process exit code
//
// The core takes its process I/O as injected functions, so tests drive it without a process.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/base/log.h"
#include "ipoib/cni/config.h"
#include "ipoib/cni/env.h"
#include "ipoib/cni/result.h"

namespace ipoib::cni {

// CNI configs are a few KiB; anything near this is hostile or broken.
inline constexpr std::size_t kMaxStdinBytes = std::size_t{1} << 20;

// A runtime writes the configuration and closes stdin at once (libcni runs the plugin with a
// bytes.Reader as stdin, which Go's exec copies and closes). One that never closes it must not
// hang the plugin, not even VERSION: all of stdin must arrive within this time of the read's
// start. 30 s is far above any real write of a few KiB and below the runtimes' own CNI timeouts
// (kubelet's runtime request timeout is 2 min); it is not configurable, because no runtime
// needs that.
inline constexpr int kStdinDeadlineMs = 30000;

// Reads `fd` to end of file, poll()-based: more than max_bytes is kDecodeFailure; not reaching
// end of file within deadline_ms in total is kIoFailure ("stdin was not closed within 30 s").
// A closed fd (EBADF) is an empty stdin. EINTR and a non-blocking fd (EAGAIN) are handled.
Result<std::string> read_stdin_fd(int fd, std::size_t max_bytes, int deadline_ms);

struct ProcessIo {
  GetEnv getenv;
  // Reads all of stdin: read_stdin_fd(0, kMaxStdinBytes, kStdinDeadlineMs); a terminal is an
  // empty stdin. An absent or empty stdin is an empty string.
  std::function<Result<std::string>()> read_stdin;
  std::function<void(std::string_view)> write_stdout;
};

// getenv(3), fd 0 and fd 1.
ProcessIo real_process_io();

// What a verb handler receives.
struct Request {
  Environment env;
  NetConf conf;
  std::string stdin_text;  // verbatim: delegated IPAM gets the whole config
};

struct Attachment {
  std::string container_id{};
  std::string ifname{};
  friend bool operator==(const Attachment&, const Attachment&) = default;
};

// The attachments a GC call says are valid: from "cni.dev/valid-attachments", else the legacy
// "cni.dev/attachments". nullopt when neither key is present (destroy nothing).
// kDecodeFailure when a present key is malformed.
Result<std::optional<std::vector<Attachment>>> parse_gc_attachments(const nlohmann::json& conf);

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual Result<CniResult> add(const Request& req) = 0;
  virtual Status del(const Request& req) = 0;
  virtual Status check(const Request& req) = 0;
  // `valid` as returned by parse_gc_attachments.
  virtual Status gc(const Request& req, const std::optional<std::vector<Attachment>>& valid) = 0;
  virtual Status status(const Request& req) = 0;
};

// The CNI error document {"cniVersion","code","msg","details"} (details omitted when empty;
// cniVersion omitted when unknown).
nlohmann::json error_json(const Error& error, std::optional<CniVersion> version);

// The VERSION document: {"cniVersion": <version>, "supportedVersions": [all seven]}.
nlohmann::json version_json(CniVersion version);

// Runs one CNI invocation: reads the environment and stdin, validates, dispatches, writes exactly
// one JSON document (result, error, VERSION) or nothing (successful DEL/CHECK/GC/STATUS).
// CHECK below 0.4.0 and GC/STATUS below 1.1.0 are kIncompatibleVersion. Any exception escaping
// the plugin or the parsers becomes a kInternal error document. Returns the exit status (0 or 1).
//
// Order: stdin is read first (its cniVersion labels even an environment error), then the
// environment, then the config. VERSION answers with the config's cniVersion (or the latest when
// stdin is empty, unreadable, not closed in time or names no supported version) and never fails
// on stdin; every other verb reports a stdin error (e.g. the deadline) as its error document.
// Errors are encoded in the config's version when it is known, else without "cniVersion".
//
// Logging: once the config is parsed, run_plugin configures `log` from its top-level keys
//   "logLevel" | "log_level": debug, info, verbose, warning, warn, error, panic, off (any case)
//   "logFile"  | "log_file" : a path, created 0600 and appended to (Logger::open_file)
// (the camelCase spelling wins when both are present), sets the tag "ipoib[<pid>] <VERB>
// <containerID>/<ifname>" and logs each error once at error level. Nothing is logged to stdout.
enum class ConfigLogging { kHonour, kIgnore };
// kIgnore leaves `log` as the caller set it up (fuzzers and tests feeding hostile configs must
// not create files named by their input).
int run_plugin(Plugin& plugin, const ProcessIo& io, Logger& log,
               ConfigLogging config_logging = ConfigLogging::kHonour);

}  // namespace ipoib::cni
