#include "ipoib/plugin/delegate.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/fd.h"
#include "ipoib/base/strings.h"
#include "ipoib/cni/config.h"

extern char** environ;

namespace ipoib::plugin {
namespace {

// Owns a spawned child until it has been reaped; kills it if abandoned.
class ChildProcess {
 public:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      (void)wait();
    }
  }
  // Returns the exit code, or 128 + signal.
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0) {
      if (errno != EINTR) {
        pid_ = -1;
        return 127;
      }
    }
    pid_ = -1;
    if (WIFEXITED(status)) {
      return WEXITSTATUS(status);
    }
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  void kill() const {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
    }
  }

 private:
  pid_t pid_;
};

class SpawnFileActions {
 public:
  SpawnFileActions() { ::posix_spawn_file_actions_init(&actions_); }
  ~SpawnFileActions() { ::posix_spawn_file_actions_destroy(&actions_); }
  SpawnFileActions(const SpawnFileActions&) = delete;
  SpawnFileActions& operator=(const SpawnFileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_{};
};

Result<ExecOutput> exec_program(const std::string& path, const std::vector<std::string>& env,
                                std::string_view stdin_text) {
  // stdin is a socket so that a delegate exiting without reading it gives us EPIPE from
  // send(MSG_NOSIGNAL) instead of a SIGPIPE that would kill this process.
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return errno_error(ErrorCode::kIoFailure, "socketpair for " + path);
  }
  Fd stdin_parent(sv[0]);
  Fd stdin_child(sv[1]);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return errno_error(ErrorCode::kIoFailure, "pipe for " + path);
  }
  Fd stdout_parent(out[0]);
  Fd stdout_child(out[1]);

  SpawnFileActions actions;
  // dup2 onto 0/1 clears close-on-exec on the copies; the originals close at exec.
  ::posix_spawn_file_actions_adddup2(actions.get(), stdin_child.get(), 0);
  ::posix_spawn_file_actions_adddup2(actions.get(), stdout_child.get(), 1);

  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (const auto& e : env) {
    envp.push_back(const_cast<char*>(e.c_str()));
  }
  envp.push_back(nullptr);
  char* argv[] = {const_cast<char*>(path.c_str()), nullptr};

  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, path.c_str(), actions.get(), nullptr, argv, envp.data());
  if (rc != 0) {
    return errno_error(ErrorCode::kIpamFailure, "start " + path, rc);
  }
  ChildProcess child(pid);
  stdin_child.reset();
  stdout_child.reset();

  ExecOutput output;
  std::size_t written = 0;
  if (stdin_text.empty()) {
    stdin_parent.reset();
  }
  if (stdin_parent.valid()) {
    ::fcntl(stdin_parent.get(), F_SETFL, O_NONBLOCK);
  }
  char buf[16384];
  while (stdout_parent.valid()) {
    pollfd fds[2] = {{stdout_parent.get(), POLLIN, 0}, {stdin_parent.get(), POLLOUT, 0}};
    const nfds_t n = stdin_parent.valid() ? 2 : 1;
    if (::poll(fds, n, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error(ErrorCode::kIoFailure, "poll " + path);
    }
    if (n == 2 && fds[1].revents != 0) {
      const ssize_t w = ::send(stdin_parent.get(), stdin_text.data() + written,
                               stdin_text.size() - written, MSG_NOSIGNAL);
      if (w > 0) {
        written += static_cast<std::size_t>(w);
      }
      if ((w < 0 && errno != EINTR && errno != EAGAIN) || written == stdin_text.size()) {
        stdin_parent.reset();  // EOF for the delegate (or it stopped reading: EPIPE)
      }
    }
    if (fds[0].revents != 0) {
      const ssize_t r = ::read(stdout_parent.get(), buf, sizeof buf);
      if (r < 0 && errno == EINTR) {
        continue;
      }
      if (r <= 0) {
        stdout_parent.reset();
        break;
      }
      if (output.stdout_text.size() + static_cast<std::size_t>(r) > kMaxDelegateOutputBytes) {
        child.kill();
        return Error(ErrorCode::kIpamFailure, path + " wrote more than " +
                                                  std::to_string(kMaxDelegateOutputBytes) +
                                                  " bytes on stdout");
      }
      output.stdout_text.append(buf, static_cast<std::size_t>(r));
    }
  }
  stdin_parent.reset();
  output.exit_status = child.wait();
  return output;
}

std::string_view command_name(cni::Command c) { return cni::to_string(c); }

bool is_depth_entry(std::string_view entry) {
  return entry.size() > kDelegationDepthVariable.size() &&
         entry.substr(0, kDelegationDepthVariable.size()) == kDelegationDepthVariable &&
         entry[kDelegationDepthVariable.size()] == '=';
}

class DelegatedIpam final : public cni::Plugin {
 public:
  DelegatedIpam(std::string type, std::vector<std::string> environment, ExecFn exec,
                std::string self_exe)
      : type_(std::move(type)),
        environment_(std::move(environment)),
        exec_(std::move(exec)),
        self_exe_(std::move(self_exe)) {}

  Result<cni::CniResult> add(const cni::Request& req) override {
    IPOIB_TRY_ASSIGN(std::string out, run(req, cni::Command::kAdd));
    IPOIB_TRY_ASSIGN(nlohmann::json doc, cni::parse_json(out, "ipam " + type_ + " result"));
    auto result = cni::decode_result(doc, req.conf.version);
    if (!result) {
      return std::move(result).error().with_context("ipam " + type_ + " result");
    }
    return result;
  }
  Status del(const cni::Request& req) override { return status_of(run(req, cni::Command::kDel)); }
  Status check(const cni::Request& req) override {
    return status_of(run(req, cni::Command::kCheck));
  }
  Status gc(const cni::Request& req, const std::optional<std::vector<cni::Attachment>>&) override {
    // The attachment lists travel in the stdin config, which is passed whole.
    return status_of(run(req, cni::Command::kGc));
  }
  Status status(const cni::Request& req) override {
    return status_of(run(req, cni::Command::kStatus));
  }

 private:
  static Status status_of(Result<std::string> r) {
    if (!r) {
      return std::move(r).error();
    }
    return ok_status();
  }

  Result<std::string> run(const cni::Request& req, cni::Command command) {
    IPOIB_TRY_ASSIGN(std::string path, find_plugin(type_, req.env.path));
    if (Status refused = refuse_recursion(type_, path, environment_, self_exe_); !refused.ok()) {
      if (command == cni::Command::kDel) {
        // ADD refuses this configuration before reserving anything: nothing to release, and a
        // DEL that fails for ever would block the pod's teardown.
        return std::string();
      }
      return std::move(refused).error();
    }
    std::vector<std::string> env;
    env.reserve(environment_.size() + 2);
    for (const auto& e : environment_) {
      if (!starts_with(e, "CNI_COMMAND=") && !is_depth_entry(e)) {
        env.push_back(e);
      }
    }
    env.push_back("CNI_COMMAND=" + std::string(command_name(command)));
    env.push_back(std::string(kDelegationDepthVariable) + "=" +
                  std::to_string(delegation_depth(environment_) + 1));
    IPOIB_TRY_ASSIGN(ExecOutput out, exec_(path, env, req.stdin_text));
    if (out.exit_status == 0) {
      return std::move(out.stdout_text);
    }
    // A failing plugin prints {"code","msg","details"} (SPEC.md "Error"); keep its code.
    auto doc = cni::parse_json(out.stdout_text, "ipam error");
    if (doc && doc->is_object() && doc->contains("code") && (*doc)["code"].is_number_integer()) {
      const auto msg = doc->value("msg", std::string());
      const auto details = doc->value("details", std::string());
      return Error(static_cast<ErrorCode>((*doc)["code"].get<int>()),
                   "ipam " + type_ + " " + std::string(command_name(command)) + ": " + msg,
                   details);
    }
    return Error(ErrorCode::kIpamFailure,
                 "ipam " + type_ + " " + std::string(command_name(command)) +
                     " exited with status " + std::to_string(out.exit_status));
  }

  std::string type_;
  std::vector<std::string> environment_;
  ExecFn exec_;
  std::string self_exe_;
};

}  // namespace

ExecFn real_exec() { return exec_program; }

std::vector<std::string> process_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    out.emplace_back(*e);
  }
  return out;
}

Result<std::string> find_plugin(std::string_view type, const std::vector<std::string>& cni_path) {
  if (type.empty() || type.find('/') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "ipam.type: \"" + std::string(type) + "\" is not a plugin name");
  }
  std::string searched;
  for (const auto& dir : cni_path) {
    std::string candidate = dir + "/" + std::string(type);
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    searched += searched.empty() ? dir : ":" + dir;
  }
  return Error(
      ErrorCode::kInvalidNetworkConfig,
      "ipam.type: plugin \"" + std::string(type) + "\" not found in CNI_PATH \"" + searched + "\"");
}

int delegation_depth(const std::vector<std::string>& environment) {
  for (const auto& e : environment) {
    if (is_depth_entry(e)) {
      auto depth = parse_uint(std::string_view(e).substr(kDelegationDepthVariable.size() + 1), 16);
      return depth ? static_cast<int>(*depth) : 0;
    }
  }
  return 0;
}

Status refuse_recursion(std::string_view type, const std::string& path,
                        const std::vector<std::string>& environment, const std::string& self_exe) {
  struct stat delegate {};
  struct stat self {};
  // stat() follows links: a symlink, a hard link or another name of this binary is caught.
  if (::stat(path.c_str(), &delegate) == 0 && ::stat(self_exe.c_str(), &self) == 0 &&
      delegate.st_dev == self.st_dev && delegate.st_ino == self.st_ino) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "ipam.type: \"" + std::string(type) + "\" is this plugin itself (" + path +
                     "): a plugin cannot be its own IPAM (the built-in IPAM is \"whereabouts\")");
  }
  const int depth = delegation_depth(environment);
  if (depth >= kMaxDelegationDepth) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "ipam.type: \"" + std::string(type) + "\" refused: delegation is already " +
                     std::to_string(depth) + " deep (" + std::string(kDelegationDepthVariable) +
                     "), at most " + std::to_string(kMaxDelegationDepth) +
                     " allowed (do the IPAM plugins delegate to each other?)");
  }
  return ok_status();
}

Result<std::string> resolve_delegate(std::string_view type,
                                     const std::vector<std::string>& cni_path,
                                     const std::vector<std::string>& environment,
                                     const std::string& self_exe) {
  IPOIB_TRY_ASSIGN(std::string path, find_plugin(type, cni_path));
  IPOIB_TRY(refuse_recursion(type, path, environment, self_exe));
  return path;
}

std::unique_ptr<cni::Plugin> make_delegated_ipam(std::string type,
                                                 std::vector<std::string> environment, ExecFn exec,
                                                 std::string self_exe) {
  return std::make_unique<DelegatedIpam>(std::move(type), std::move(environment), std::move(exec),
                                         std::move(self_exe));
}

}  // namespace ipoib::plugin
