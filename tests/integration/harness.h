// harness.h — what the plugin integration tests share: network namespaces with scope-guarded
// cleanup, a temp dir, running a CNI plugin binary exactly as a runtime does (environment +
// stdin -> exit status + stdout, inside a chosen "host" netns), and reading kernel state with
// iproute2 (an observer independent of the code under test).
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace itest {

using nlohmann::json;

// Runs a shell command; returns its exit status, stdout in *out when given.
inline int sh(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) {
    return -1;
  }
  std::string text;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    text.append(buf, n);
  }
  const int status = ::pclose(p);
  if (out != nullptr) {
    *out = text;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A named network namespace (`ip netns add`), deleted when the guard goes out of scope.
class NetnsGuard {
 public:
  explicit NetnsGuard(std::string name) : name_(std::move(name)) {
    ok_ = sh("ip netns add " + name_) == 0;
    if (ok_) {
      sh("ip -n " + name_ + " link set lo up");
    }
  }
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  ~NetnsGuard() { remove(); }
  void remove() {
    if (ok_) {
      sh("ip netns del " + name_);
      ok_ = false;
    }
  }
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] std::string path() const { return "/var/run/netns/" + name_; }

 private:
  std::string name_;
  bool ok_ = false;
};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/plugin-itest-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    path_ = p != nullptr ? p : "";
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (!path_.empty()) {
      sh("rm -rf '" + path_ + "'");
    }
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct CniOutcome {
  int exit_code = -1;
  std::string out;
  json doc;  // parsed stdout (null when empty or not JSON)
  [[nodiscard]] int code() const {
    return doc.is_object() && doc.contains("code") ? doc["code"].get<int>() : 0;
  }
};

struct Running {
  pid_t pid = -1;
  int stdout_fd = -1;
};

// Starts `binary` inside netns `host_netns` ("" = the current one) with exactly `env` (plus PATH)
// and `stdin_text` on stdin; in the cgroup whose `cgroup.procs` file is `cgroup_procs` when given.
inline Running start(const std::string& binary, const std::string& host_netns,
                     const std::map<std::string, std::string>& env, const std::string& stdin_text,
                     const std::string& cgroup_procs = "") {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    return {};
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!cgroup_procs.empty()) {
      const std::string self = std::to_string(::getpid());
      const int fd = ::open(cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || ::write(fd, self.data(), self.size()) != static_cast<ssize_t>(self.size())) {
        ::_exit(125);
      }
      ::close(fd);
    }
    if (!host_netns.empty()) {
      const int fd = ::open(("/var/run/netns/" + host_netns).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
        ::_exit(126);
      }
    }
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    std::vector<std::string> strings = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    for (const auto& [k, v] : env) {
      strings.push_back(k + "=" + v);
    }
    std::vector<char*> envp;
    for (auto& s : strings) {
      envp.push_back(s.data());
    }
    envp.push_back(nullptr);
    char* argv[] = {const_cast<char*>(binary.c_str()), nullptr};
    ::execve(binary.c_str(), argv, envp.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  size_t written = 0;
  while (written < stdin_text.size()) {
    const ssize_t w = ::write(in[1], stdin_text.data() + written, stdin_text.size() - written);
    if (w <= 0) {
      break;
    }
    written += static_cast<size_t>(w);
  }
  ::close(in[1]);
  return {pid, out[0]};
}

inline CniOutcome finish(Running r) {
  CniOutcome o;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(r.stdout_fd, buf, sizeof buf)) > 0) {
    o.out.append(buf, static_cast<size_t>(n));
  }
  ::close(r.stdout_fd);
  int status = 0;
  ::waitpid(r.pid, &status, 0);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (!o.out.empty()) {
    o.doc = json::parse(o.out, nullptr, false);
    if (o.doc.is_discarded()) {
      o.doc = nullptr;
    }
  }
  return o;
}

inline CniOutcome run(const std::string& binary, const std::string& host_netns,
                      const std::map<std::string, std::string>& env, const std::string& stdin_text,
                      const std::string& cgroup_procs = "") {
  return finish(start(binary, host_netns, env, stdin_text, cgroup_procs));
}

// A cgroup-v1 `pids` group that counts every process ever in it (pids.peak), capped by pids.max
// so that a runaway fork chain stays bounded; removed when the guard goes out of scope.
class PidsCgroup {
 public:
  PidsCgroup(std::string name, int max_processes)
      : path_("/sys/fs/cgroup/pids/" + std::move(name)) {
    ok_ = ::mkdir(path_.c_str(), 0755) == 0 &&
          sh("echo " + std::to_string(max_processes) + " > " + path_ + "/pids.max") == 0;
  }
  PidsCgroup(const PidsCgroup&) = delete;
  PidsCgroup& operator=(const PidsCgroup&) = delete;
  ~PidsCgroup() {
    if (!path_.empty()) {
      ::rmdir(path_.c_str());
    }
  }
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] std::string procs() const { return path_ + "/cgroup.procs"; }
  // The most processes that were in the group at once, -1 when unreadable.
  [[nodiscard]] int peak() const {
    std::string out;
    return sh("cat " + path_ + "/pids.peak", &out) == 0 ? std::atoi(out.c_str()) : -1;
  }

 private:
  std::string path_;
  bool ok_ = false;
};

// The six CNI variables, as real clients set them (empty strings for the unused ones).
inline std::map<std::string, std::string> cni_env(const std::string& command,
                                                  const std::string& container,
                                                  const std::string& netns,
                                                  const std::string& ifname) {
  return {{"CNI_COMMAND", command}, {"CNI_CONTAINERID", container},
          {"CNI_NETNS", netns},     {"CNI_IFNAME", ifname},
          {"CNI_ARGS", ""},         {"CNI_PATH", "/usr/lib/cni"}};
}

// `ip -d -j link show` of a netns: an array of link objects (with "ifalias" when set).
inline json links(const std::string& netns) {
  std::string out;
  sh((netns.empty() ? std::string("ip") : "ip -n " + netns) + " -d -j link show", &out);
  json j = json::parse(out, nullptr, false);
  return j.is_array() ? j : json::array();
}

inline json link(const std::string& netns, const std::string& name) {
  for (const auto& l : links(netns)) {
    if (l.value("ifname", "") == name) {
      return l;
    }
  }
  return nullptr;
}

// Links whose alias carries the plugin's tag prefix.
inline std::vector<std::string> tagged_links(const std::string& netns) {
  std::vector<std::string> out;
  for (const auto& l : links(netns)) {
    if (l.value("ifalias", "").rfind("ipoib-cni:", 0) == 0) {
      out.push_back(l.value("ifname", "") + "=" + l.value("ifalias", ""));
    }
  }
  return out;
}

// "10.77.0.1/24" strings of a link's addresses (global scope).
inline std::vector<std::string> addresses(const std::string& netns, const std::string& dev) {
  std::string out;
  sh("ip -n " + netns + " -j addr show dev " + dev, &out);
  std::vector<std::string> result;
  json j = json::parse(out, nullptr, false);
  if (!j.is_array()) {
    return result;
  }
  for (const auto& l : j) {
    for (const auto& a : l.value("addr_info", json::array())) {
      if (a.value("scope", "") == "global") {
        result.push_back(a.value("local", "") + "/" + std::to_string(a.value("prefixlen", 0)));
      }
    }
  }
  return result;
}

inline bool can_run_privileged(std::string* why) {
  if (::geteuid() != 0) {
    *why = "not root";
    return false;
  }
  if (sh("command -v ip") != 0) {
    *why = "iproute2 (ip) not installed";
    return false;
  }
  NetnsGuard probe("plgprobe" + std::to_string(::getpid()));
  if (!probe.ok()) {
    *why = "cannot create a network namespace";
    return false;
  }
  return true;
}

}  // namespace itest
