#include "ipoib/cni/skel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <string>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/file.h"

namespace ipoib::cni {
namespace {

using nlohmann::json;

// Text for stdout (dump_json: bytes of the environment that are not UTF-8 are replaced).
std::string dump(const json& doc) { return dump_json(doc) + "\n"; }

// What one invocation prints: a document, or nothing.
using Output = std::optional<json>;

Status refuse_below(const NetConf& conf, Command command, CniVersion minimum) {
  if (conf.version >= minimum) {
    return {};
  }
  return Error(ErrorCode::kIncompatibleVersion,
               "config version " + std::string(to_string(conf.version)) + " does not allow " +
                   std::string(to_string(command)),
               std::string(to_string(command)) + " requires cniVersion " +
                   std::string(to_string(minimum)) + " or later");
}

// Honours "logFile"/"log_file" and "logLevel"/"log_level" (the spellings of the Go ipoib-cni and
// whereabouts). Problems are reported as warnings: logging never fails an operation.
void configure_logger(const json& raw, const Environment& env, Logger& log) {
  std::string tag =
      "ipoib[" + std::to_string(::getpid()) + "] " + std::string(to_string(env.command));
  if (!env.container_id.empty()) {
    tag += " " + env.container_id.substr(0, 64) + "/" + env.ifname;
  }
  log.set_tag(std::move(tag));
  // The file before the level, so that a warning about the level reaches it too.
  for (const char* key : {"logFile", "log_file"}) {
    const auto it = raw.find(key);
    if (it == raw.end() || !it->is_string() || it->get<std::string>().empty()) {
      continue;
    }
    auto opened = log.open_file(it->get<std::string>());
    if (!opened.ok()) {
      log.warning(opened.error().msg());
    }
    break;
  }
  for (const char* key : {"logLevel", "log_level"}) {
    const auto it = raw.find(key);
    if (it == raw.end() || !it->is_string()) {
      continue;
    }
    const auto level = parse_log_level(it->get<std::string>());
    if (level) {
      log.set_level(*level);
    } else {
      log.warning(std::string("ignoring unknown ") + key + " \"" +
                  it->get<std::string>().substr(0, 32) + "\"");
    }
    break;
  }
}

Result<Output> dispatch(Plugin& plugin, const ProcessIo& io, Logger& log,
                        ConfigLogging config_logging, std::optional<CniVersion>& error_version) {
  // Stdin first: even an environment error is reported in the config's version when it has one.
  // The version is sniffed (a second parse of the whole config) only when it is needed: for
  // VERSION, or for an error raised before parse_netconf has read it.
  auto stdin_text = io.read_stdin();
  auto sniff = [&]() {
    if (stdin_text.ok()) {
      error_version = sniff_version(*stdin_text);
    }
  };
  auto env = read_environment(io.getenv);
  if (!env.ok()) {
    sniff();
    return std::move(env).error();
  }
  if (env->command == Command::kVersion) {
    // Nothing but the version matters; unreadable or oversized stdin means "no preference".
    sniff();
    return Output(version_json(error_version.value_or(kLatestVersion)));
  }
  if (!stdin_text.ok()) {
    return std::move(stdin_text).error();
  }
  Request req;
  req.env = std::move(env).value();
  req.stdin_text = std::move(stdin_text).value();
  auto conf = parse_netconf(req.stdin_text, req.env.command == Command::kDel ? PrevResult::kTolerate
                                                                             : PrevResult::kStrict);
  if (!conf.ok()) {
    error_version = sniff_version(req.stdin_text);
    return std::move(conf).error();
  }
  req.conf = std::move(conf).value();
  error_version = req.conf.version;
  if (config_logging == ConfigLogging::kHonour) {
    configure_logger(req.conf.raw, req.env, log);
  }
  if (!req.conf.prev_result_problem.empty()) {
    log.warning("ignoring malformed prevResult on DEL: " + req.conf.prev_result_problem);
  }
  log.debug("config " + req.conf.name + " cniVersion " + std::string(to_string(req.conf.version)));

  switch (req.env.command) {
    case Command::kAdd: {
      IPOIB_TRY_ASSIGN(CniResult result, plugin.add(req));
      IPOIB_TRY_ASSIGN(json doc, encode_result(result, req.conf.version));
      return Output(std::move(doc));
    }
    case Command::kDel:
      IPOIB_TRY(plugin.del(req));
      return Output();
    case Command::kCheck:
      // SPEC.md: CHECK exists from 0.4.0; libcni skel refuses older configs with code 1.
      IPOIB_TRY(refuse_below(req.conf, Command::kCheck, CniVersion::k0_4_0));
      IPOIB_TRY(plugin.check(req));
      return Output();
    case Command::kGc: {
      // SPEC.md 1.1.0 introduced GC and STATUS.
      IPOIB_TRY(refuse_below(req.conf, Command::kGc, CniVersion::k1_1_0));
      IPOIB_TRY_ASSIGN(auto valid, parse_gc_attachments(req.conf.raw));
      IPOIB_TRY(plugin.gc(req, valid));
      return Output();
    }
    case Command::kStatus:
      IPOIB_TRY(refuse_below(req.conf, Command::kStatus, CniVersion::k1_1_0));
      IPOIB_TRY(plugin.status(req));
      return Output();
    case Command::kVersion:
      break;
  }
  return Error(ErrorCode::kInternal, "unhandled command");
}

Result<std::vector<Attachment>> parse_attachment_list(const json& list, const char* key) {
  const auto bad = [key](const std::string& what) {
    return Error(ErrorCode::kDecodeFailure, std::string(key) + ": " + what);
  };
  if (!list.is_array()) {
    return bad("must be an array");
  }
  std::vector<Attachment> out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const json& e = list[i];
    const std::string at = "[" + std::to_string(i) + "]";
    if (!e.is_object()) {
      return bad(at + " must be an object");
    }
    // Both fields required: a malformed entry must not turn into "release everything else".
    const auto id = e.find("containerID");
    const auto ifname = e.find("ifname");
    if (id == e.end() || !id->is_string()) {
      return bad(at + ".containerID must be a string");
    }
    if (ifname == e.end() || !ifname->is_string()) {
      return bad(at + ".ifname must be a string");
    }
    out.push_back({id->get<std::string>(), ifname->get<std::string>()});
  }
  return out;
}

// A descriptor of our own, non-blocking, for the pipe or FIFO behind `fd`; invalid for anything
// else or when it cannot be opened. poll() saying "readable" does not make the next read(2)
// return at once: another reader of the same pipe (a runtime that hands one FIFO to two plugin
// processes) can take the bytes in between, and a blocking read would then wait past the
// deadline. Setting O_NONBLOCK on `fd` itself would change the runtime's open file description
// too; reopening through /proc gives this process its own (pipe(7): a FIFO opened O_RDONLY |
// O_NONBLOCK succeeds at once).
Fd nonblocking_pipe_reader(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
    return Fd();
  }
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  return Fd(::open(self.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
}

}  // namespace

Result<std::string> read_stdin_fd(int fd, std::size_t max_bytes, int deadline_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
  const Fd own = nonblocking_pipe_reader(fd);
  if (own.valid()) {
    fd = own.get();
  }
  std::string out;
  char buf[65536];
  while (true) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Error(ErrorCode::kIoFailure,
                   "stdin was not closed within " + std::to_string(deadline_ms / 1000) + " s (" +
                       std::to_string(out.size()) +
                       " bytes read): the runtime must write the network configuration to stdin "
                       "and close it");
    }
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error(ErrorCode::kIoFailure, "poll stdin");
    }
    if (ready == 0) {
      continue;  // the deadline check above reports it
    }
    if ((p.revents & POLLNVAL) != 0) {
      return out;  // no stdin at all: same as empty
    }
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;  // EAGAIN: a runtime handed us a non-blocking pipe
    }
    if (n < 0 && errno == EBADF) {
      return out;
    }
    if (n < 0) {
      return errno_error(ErrorCode::kIoFailure, "read stdin");
    }
    if (n == 0) {
      return out;
    }
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      return Error(ErrorCode::kDecodeFailure,
                   "stdin exceeds " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

ProcessIo real_process_io() {
  ProcessIo io;
  io.getenv = [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) {
      return std::nullopt;
    }
    return std::string(v);
  };
  io.read_stdin = []() -> Result<std::string> {
    // A person typing `CNI_COMMAND=VERSION ipoib` has no config to give: do not wait for one.
    if (::isatty(STDIN_FILENO) == 1) {
      return std::string();
    }
    return read_stdin_fd(STDIN_FILENO, kMaxStdinBytes, kStdinDeadlineMs);
  };
  io.write_stdout = [](std::string_view text) {
    // A failure means the runtime went away: nobody is left to tell.
    (void)write_all(STDOUT_FILENO, text, "stdout");
  };
  return io;
}

Result<std::optional<std::vector<Attachment>>> parse_gc_attachments(const nlohmann::json& conf) {
  using Valid = std::optional<std::vector<Attachment>>;
  if (!conf.is_object()) {
    return Valid();
  }
  // libcni 1.3 sends both keys with the same list; 1.1/1.2 only the first.
  for (const char* key : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
    const auto it = conf.find(key);
    if (it == conf.end() || it->is_null()) {
      continue;
    }
    IPOIB_TRY_ASSIGN(std::vector<Attachment> list, parse_attachment_list(*it, key));
    return Valid(std::move(list));
  }
  return Valid();
}

nlohmann::json error_json(const Error& error, std::optional<CniVersion> version) {
  json doc = json::object();
  if (version) {
    doc["cniVersion"] = std::string(to_string(*version));
  }
  doc["code"] = static_cast<int>(error.code());
  doc["msg"] = error.msg();
  if (!error.details().empty()) {
    doc["details"] = error.details();
  }
  return doc;
}

nlohmann::json version_json(CniVersion version) {
  json supported = json::array();
  for (const CniVersion v : kSupportedVersions) {
    supported.push_back(std::string(to_string(v)));
  }
  return {{"cniVersion", std::string(to_string(version))},
          {"supportedVersions", std::move(supported)}};
}

int run_plugin(Plugin& plugin, const ProcessIo& io, Logger& log, ConfigLogging config_logging) {
  std::optional<CniVersion> version;
  std::string out;
  int status = 0;
  const auto fail = [&](const Error& e) {
    status = 1;
    out = dump(error_json(e, version));
    log.error(e.msg() + (e.details().empty() ? "" : " (" + e.details() + ")"));
  };
  // The last-resort handler: whatever escapes the plugin or the parsers becomes one error
  // document. The fallback text is built without allocation-heavy work in case that failed.
  try {
    try {
      auto result = dispatch(plugin, io, log, config_logging, version);
      if (!result.ok()) {
        fail(result.error());
      } else if (*result) {
        out = dump(**result);
      }
    } catch (const std::exception& e) {
      fail(Error(ErrorCode::kInternal, std::string("internal error: ") + e.what()));
    } catch (...) {
      fail(Error(ErrorCode::kInternal, "internal error: unknown exception"));
    }
  } catch (...) {
    status = 1;
    out = "{\"code\":110,\"msg\":\"internal error\"}\n";
  }
  if (!out.empty()) {
    try {
      io.write_stdout(out);
    } catch (...) {
      return 1;
    }
  }
  return status;
}

}  // namespace ipoib::cni
