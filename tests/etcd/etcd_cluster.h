// tests/etcd/etcd_cluster.h — real etcd members for tests: started on free loopback ports with
// temporary data directories, waited for until healthy, and always stopped and removed.
//
// Reuse (header-only; link nothing extra, needs `etcd` and `etcdctl` on PATH, Debian's
// etcd-server and etcd-client):
//
//   #include "tests/etcd/etcd_cluster.h"            // include dir: the source root
//   if (!etcd_test::binaries_present()) return 77;  // the only reason to skip
//   etcd_test::Cluster c(3);                        // 1 member for quick cases, 3 for a cluster
//   REQUIRE(c.start());                             // c.error() says why not
//   c.endpoints_csv();          // "http://127.0.0.1:P1,http://127.0.0.1:P2,..." (etcd_host)
//   c.client_url(i);            // one member's client URL
//   c.leader();                 // index of the current leader (-1 if none answered)
//   c.kill(i);                  // kill -9 a member (c.signal(i, SIGSTOP) / SIGCONT too)
//   c.etcdctl({"user", "add", "root", "--new-user-password=pw", "--interactive=false"});
//   etcd_test::shared_member(&why);                 // one member shared by a process's tests
//   etcd_test::started_member();                    // the same, or throw (fails the TEST_CASE)
//   int main(int argc, char** argv) {               // a test's main: skip (77) only without etcd
//     if (const int skip = etcd_test::skip_unless_binaries_present()) return skip;
//     return Catch::Session().run(argc, argv);
//   }
//
// Options: TLS on the client URLs (Pki below makes a CA, a server and a client certificate with
// the openssl CLI), extra etcd flags (e.g. --auth-token-ttl 1). Members die with the test
// process (PR_SET_PDEATHSIG), and the destructor SIGKILLs and reaps them and removes the data
// directory, even when a REQUIRE failed (Catch2 unwinds). Ports come from binding port 0 and are
// released just before etcd binds them; a member that loses that race makes start() retry on
// new ports. Directories are /tmp/ipoib-etcd-<pid>-XXXXXX.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace etcd_test {

inline bool on_path(const char* name) {
  std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// etcd and etcdctl are installed (tests exit 77 with the reason otherwise).
inline bool binaries_present() { return on_path("etcd") && on_path("etcdctl"); }

// Runs a shell command, returns its exit status and stdout (stderr folded in with 2>&1 by
// callers that want it).
inline int run(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    return -1;
  }
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    text.append(buf, n);
  }
  int st = ::pclose(p);
  if (out != nullptr) {
    *out = text;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

inline void remove_tree(const std::string& path) {
  if (path.empty()) {
    return;
  }
  ::nftw(
      path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); },
      16, FTW_DEPTH | FTW_PHYS);
}

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "etcd") {
    std::string tmpl = "/tmp/ipoib-" + tag + "-" + std::to_string(::getpid()) + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) {
      path_ = tmpl;
    }
  }
  ~TempDir() { remove_tree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A loopback TCP port nobody listens on right now (bound to port 0, then released).
class PortReservation {
 public:
  PortReservation() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port_ = ntohs(a.sin_port);
    }
  }
  ~PortReservation() { release(); }
  PortReservation(const PortReservation&) = delete;
  PortReservation& operator=(const PortReservation&) = delete;
  void release() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  [[nodiscard]] int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A URL on loopback where nothing listens (connection refused).
inline std::string dead_url() {
  PortReservation p;
  return "http://127.0.0.1:" + std::to_string(p.port());
}

// A test PKI made with the openssl CLI: ca.crt, server.{crt,key} (SAN IP:127.0.0.1, localhost),
// client.{crt,key}; keys mode 0600.
class Pki {
 public:
  explicit Pki(const std::string& dir, const std::string& name = "pki") : dir_(dir + "/" + name) {}
  bool make() {
    ::mkdir(dir_.c_str(), 0700);
    std::ofstream(dir_ + "/ext-server") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                           "extendedKeyUsage=serverAuth,clientAuth\n";
    std::ofstream(dir_ + "/ext-client") << "extendedKeyUsage=clientAuth\n";
    const std::string d = dir_;
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script =
        "set -e; cd " + d + "; umask 077;" + "openssl req -x509" + key +
        " -keyout ca.key -out ca.crt -days 2 -subj /CN=ipoib-test-ca;" + "openssl req" + key +
        " -keyout server.key -out server.csr -subj /CN=etcd-member;" +
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
        " -out server.crt -days 2 -extfile ext-server;" +
        "openssl req" + key + " -keyout client.key -out client.csr -subj /CN=root;" +
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
        " -out client.crt -days 2 -extfile ext-client;" +
        "chmod 644 ca.crt server.crt client.crt";
    std::string out;
    return run("(" + script + ") >" + d + "/openssl.log 2>&1", &out) == 0;
  }
  [[nodiscard]] std::string ca() const { return dir_ + "/ca.crt"; }
  [[nodiscard]] std::string server_cert() const { return dir_ + "/server.crt"; }
  [[nodiscard]] std::string server_key() const { return dir_ + "/server.key"; }
  [[nodiscard]] std::string client_cert() const { return dir_ + "/client.crt"; }
  [[nodiscard]] std::string client_key() const { return dir_ + "/client.key"; }

 private:
  std::string dir_;
};

struct Options {
  // TLS on the client URLs: the member's certificate and key, and (client_cert_auth) the CA
  // that client certificates must chain to.
  std::string cert_file;
  std::string key_file;
  std::string trusted_ca_file;
  bool client_cert_auth = false;
  // Client certificate etcdctl uses (health checks, admin commands) when client_cert_auth.
  std::string etcdctl_cert;
  std::string etcdctl_key;
  int heartbeat_ms = 50;
  int election_ms = 500;
  std::vector<std::string> extra_args;
  std::chrono::seconds start_timeout{30};
};

// A member serving TLS with pki's server certificate and requiring client certificates from
// pki's CA; etcdctl uses pki's client certificate.
inline Options mutual_tls_options(const Pki& pki) {
  Options o;
  o.cert_file = pki.server_cert();
  o.key_file = pki.server_key();
  o.trusted_ca_file = pki.ca();
  o.client_cert_auth = true;
  o.etcdctl_cert = pki.client_cert();
  o.etcdctl_key = pki.client_key();
  return o;
}

class Cluster {
 public:
  explicit Cluster(int members, Options opts = {}) : n_(members), opts_(std::move(opts)) {}
  ~Cluster() { stop_all(); }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Starts every member and waits until each answers `endpoint health` (a leader exists).
  bool start() {
    for (int tries = 0; tries < 3; ++tries) {
      if (start_once()) {
        return true;
      }
      stop_all();
    }
    return false;
  }

  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] int size() const { return n_; }
  [[nodiscard]] const std::string& dir() const { return dir_.path(); }
  [[nodiscard]] std::string client_url(int i) const {
    return std::string(tls() ? "https" : "http") + "://127.0.0.1:" + std::to_string(client_[i]);
  }
  [[nodiscard]] std::string endpoints_csv() const {
    std::string s;
    for (int i = 0; i < n_; ++i) {
      s += (i ? "," : "") + client_url(i);
    }
    return s;
  }
  [[nodiscard]] pid_t pid(int i) const { return pids_[i]; }

  // Sends sig to member i. For SIGSTOP it returns once every thread of the member is stopped
  // (or after 2 s): kill() returns before a thread running on another CPU has taken the stop, and
  // such a thread could still answer a request the caller sends next.
  void signal(int i, int sig) {
    if (pids_[i] <= 0) {
      return;
    }
    ::kill(pids_[i], sig);
    if (sig != SIGSTOP) {
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!all_threads_stopped(pids_[i]) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  // Whether every thread of pid is in state T (stopped) in /proc/<pid>/task/<tid>/stat.
  static bool all_threads_stopped(pid_t pid) {
    const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = ::opendir(tasks.c_str());
    if (d == nullptr) {
      return false;
    }
    bool stopped = true;
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') {
        continue;
      }
      std::ifstream f(tasks + "/" + e->d_name + "/stat");
      std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      const std::size_t close = stat.rfind(')');  // the state follows the command's ") "
      if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'T') {
        stopped = false;
        break;
      }
    }
    ::closedir(d);
    return stopped;
  }
  // kill -9 and reap.
  void kill(int i) {
    if (pids_[i] > 0) {
      ::kill(pids_[i], SIGKILL);
      ::waitpid(pids_[i], nullptr, 0);
      pids_[i] = -1;
    }
  }
  void stop_all() {
    for (int i = 0; i < static_cast<int>(pids_.size()); ++i) {
      if (pids_[i] > 0) {
        ::kill(pids_[i], SIGCONT);
      }
      kill(i);
    }
    pids_.clear();
  }

  // etcdctl against the given members (all when `only` is -1), with this cluster's TLS flags.
  int etcdctl(std::initializer_list<std::string> args, std::string* out = nullptr,
              int only = -1) const {
    std::string cmd = "ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=5s --endpoints=" +
                      (only < 0 ? endpoints_csv() : client_url(only)) + tls_flags();
    for (const auto& a : args) {
      cmd += " '" + a + "'";
    }
    return run(cmd + " 2>&1", out);
  }

  // The index of the member that is leader, as the members that answer see it; -1 if none.
  int leader() const {
    std::string out;
    etcdctl({"endpoint", "status", "-w", "json"}, &out);
    auto doc = nlohmann::json::parse(out, nullptr, false);
    if (!doc.is_array()) {
      return -1;
    }
    for (const auto& e : doc) {
      if (!e.contains("Status") || !e.contains("Endpoint")) {
        continue;
      }
      const auto& st = e["Status"];
      if (st.value("leader", 0ULL) != 0 &&
          st["header"].value("member_id", 0ULL) == st.value("leader", 0ULL)) {
        std::string url = e["Endpoint"].get<std::string>();
        for (int i = 0; i < n_; ++i) {
          if (client_url(i) == url) {
            return i;
          }
        }
      }
    }
    return -1;
  }

  // Waits until etcdctl endpoint health succeeds on every live member, or the timeout.
  bool wait_healthy(std::chrono::seconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      bool all = true;
      for (int i = 0; i < n_ && all; ++i) {
        if (pids_[i] <= 0) {
          continue;
        }
        if (::waitpid(pids_[i], nullptr, WNOHANG) == pids_[i]) {
          pids_[i] = -1;
          error_ = "etcd member m" + std::to_string(i) + " exited; log: " + log_tail(i);
          return false;
        }
        all = etcdctl({"endpoint", "health"}, nullptr, i) == 0;
      }
      if (all) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    error_ = "etcd members not healthy within " + std::to_string(timeout.count()) + " s";
    return false;
  }

  [[nodiscard]] std::string log_tail(int i) const {
    std::string out;
    run("tail -c 600 " + dir() + "/m" + std::to_string(i) + ".log", &out);
    return out;
  }

 private:
  [[nodiscard]] bool tls() const { return !opts_.cert_file.empty(); }
  [[nodiscard]] std::string tls_flags() const {
    if (!tls()) {
      return "";
    }
    std::string f = " --cacert=" + opts_.trusted_ca_file;
    if (!opts_.etcdctl_cert.empty()) {
      f += " --cert=" + opts_.etcdctl_cert + " --key=" + opts_.etcdctl_key;
    }
    return f;
  }

  bool start_once() {
    if (dir().empty()) {
      error_ = "cannot create a temporary directory";
      return false;
    }
    std::vector<std::unique_ptr<PortReservation>> res;
    client_.assign(n_, 0);
    peer_.assign(n_, 0);
    for (int i = 0; i < n_; ++i) {
      res.push_back(std::make_unique<PortReservation>());
      client_[i] = res.back()->port();
      res.push_back(std::make_unique<PortReservation>());
      peer_[i] = res.back()->port();
    }
    std::string initial;
    for (int i = 0; i < n_; ++i) {
      initial += (i ? "," : "") + name(i) + "=http://127.0.0.1:" + std::to_string(peer_[i]);
    }
    const std::string token =
        "ipoib-test-" + std::to_string(::getpid()) + "-" + std::to_string(++generation_);
    res.clear();  // release the ports just before the members bind them
    pids_.assign(n_, -1);
    for (int i = 0; i < n_; ++i) {
      std::string data = dir() + "/" + name(i) + "-" + std::to_string(generation_);
      std::vector<std::string> args = {
          "etcd",
          "--name=" + name(i),
          "--data-dir=" + data,
          "--listen-client-urls=" + client_url(i),
          "--advertise-client-urls=" + client_url(i),
          "--listen-peer-urls=http://127.0.0.1:" + std::to_string(peer_[i]),
          "--initial-advertise-peer-urls=http://127.0.0.1:" + std::to_string(peer_[i]),
          "--initial-cluster=" + initial,
          "--initial-cluster-state=new",
          "--initial-cluster-token=" + token,
          "--heartbeat-interval=" + std::to_string(opts_.heartbeat_ms),
          "--election-timeout=" + std::to_string(opts_.election_ms),
          "--log-level=warn",
          "--logger=zap",
      };
      if (tls()) {
        args.push_back("--cert-file=" + opts_.cert_file);
        args.push_back("--key-file=" + opts_.key_file);
        if (!opts_.trusted_ca_file.empty()) {
          args.push_back("--trusted-ca-file=" + opts_.trusted_ca_file);
        }
        if (opts_.client_cert_auth) {
          args.push_back("--client-cert-auth");
        }
      }
      args.insert(args.end(), opts_.extra_args.begin(), opts_.extra_args.end());
      pids_[i] = spawn(args, dir() + "/" + name(i) + ".log");
      if (pids_[i] < 0) {
        error_ = "fork failed";
        return false;
      }
    }
    return wait_healthy(opts_.start_timeout);
  }

  static std::string name(int i) { return "m" + std::to_string(i); }

  static pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
    std::vector<char*> argv;
    for (const auto& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) {
        ::_exit(127);
      }
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    return pid;
  }

  int n_;
  Options opts_;
  TempDir dir_{"etcd"};
  std::vector<int> client_;
  std::vector<int> peer_;
  std::vector<pid_t> pids_;
  std::string error_;
  int generation_ = 0;
};

// One single-member cluster per test process, started on first use and stopped at exit: for
// the quick cases. nullptr (with the reason in *why) when it could not start.
inline Cluster* shared_member(std::string* why) {
  static Cluster c(1);
  static bool started = c.start();
  if (!started) {
    *why = c.error();
    return nullptr;
  }
  return &c;
}

// shared_member for a TEST_CASE: the member, or an exception saying why it did not start (which
// fails the test case, as a FAIL would, without this header needing Catch2).
inline Cluster& started_member() {
  std::string why;
  Cluster* c = shared_member(&why);
  if (c == nullptr) {
    throw std::runtime_error("etcd did not start: " + why);
  }
  return *c;
}

// For a test's main(): 77 (skip), with the reason on stderr, when etcd or etcdctl is missing —
// the only reason an etcd test may skip; 0 when the tests can run.
//   if (const int skip = etcd_test::skip_unless_binaries_present()) return skip;
inline int skip_unless_binaries_present() {
  if (binaries_present()) {
    return 0;
  }
  (void)std::fprintf(stderr,
                     "SKIP: etcd or etcdctl not on PATH (Debian: etcd-server etcd-client)\n");
  return 77;
}

}  // namespace etcd_test
