#include "ipoib/cni/skel.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "temp_dir.h"
#include "test_support.h"

using namespace ipoib;
using namespace ipoib::cni;
using ipoib::cni::testing::FakeProcess;
using ipoib::cni::testing::golden;
using ipoib::cni::testing::runtime_env;
using nlohmann::json;

namespace {

// Records every call; answers with what the test configured.
class FakePlugin : public Plugin {
 public:
  enum class Throw { kNone, kStdException, kOther };

  std::vector<std::string> calls;
  std::optional<Request> last;
  std::optional<std::optional<std::vector<Attachment>>> last_valid;
  Result<CniResult> add_result = CniResult{};
  Status status_result;
  Throw throws = Throw::kNone;

  Result<CniResult> add(const Request& req) override {
    record("ADD", req);
    return add_result;
  }
  Status del(const Request& req) override {
    record("DEL", req);
    return status_result;
  }
  Status check(const Request& req) override {
    record("CHECK", req);
    return status_result;
  }
  Status gc(const Request& req, const std::optional<std::vector<Attachment>>& valid) override {
    record("GC", req);
    last_valid = valid;
    return status_result;
  }
  Status status(const Request& req) override {
    record("STATUS", req);
    return status_result;
  }

 private:
  void record(const char* verb, const Request& req) {
    calls.emplace_back(verb);
    last = req;
    if (throws == Throw::kStdException) {
      throw std::runtime_error("boom");
    }
    if (throws == Throw::kOther) {
      throw 42;
    }
  }
};

std::string config(const std::string& version, const json& extra = json::object()) {
  json doc = {{"cniVersion", version}, {"name", "ib-net"}, {"type", "ipoib"}, {"master", "ib0"}};
  doc.update(extra);
  return doc.dump();
}

CniResult one_address_result() {
  CniResult r;
  r.interfaces.push_back({.name = "net1",
                          .mac = "",
                          .mtu = {},
                          .sandbox = "/var/run/netns/cni-1234",
                          .socket_path = "",
                          .pci_id = ""});
  r.ips.push_back({.address = IpPrefix::parse("10.56.217.5/16").value(),
                   .gateway = std::nullopt,
                   .interface = 0});
  return r;
}

struct Run {
  int exit_code;
  FakeProcess process;
};

Run run(FakePlugin& plugin, FakeProcess process) {
  Logger log;
  log.set_level(LogLevel::kOff);  // keep the test output clean; logging has its own test
  const int code = run_plugin(plugin, process.io(), log);
  return {code, std::move(process)};
}

FakeProcess process(const std::string& command, const std::string& stdin_text) {
  FakeProcess p;
  p.env = runtime_env(command);
  p.stdin_text = stdin_text;
  return p;
}

}  // namespace

TEST_CASE("VERSION answers with the config's version, or 1.1.0", "[cni][skel]") {
  struct Case {
    std::string name;
    std::string stdin_text;
    std::string version;
  };
  const std::vector<Case> table = {
      {"config 1.1.0", R"({"cniVersion":"1.1.0"})", "1.1.0"},
      {"config 0.3.1 (libcni sends only cniVersion)", R"({"cniVersion":"0.3.1"})", "0.3.1"},
      {"empty stdin", "", "1.1.0"},
      {"unparseable stdin", "{{{", "1.1.0"},
      {"unsupported version", R"({"cniVersion":"3.0.0"})", "1.1.0"},
  };
  for (const auto& c : table) {
    INFO(c.name);
    FakePlugin plugin;
    FakeProcess p;
    // libcni's VERSION environment.
    p.env = {{"CNI_COMMAND", "VERSION"},
             {"CNI_NETNS", "dummy"},
             {"CNI_IFNAME", "dummy"},
             {"CNI_PATH", "dummy"}};
    p.stdin_text = c.stdin_text;
    const auto r = run(plugin, std::move(p));
    CHECK(r.exit_code == 0);
    CHECK(r.process.document() ==
          json({{"cniVersion", c.version},
                {"supportedVersions",
                 {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}}}));
    CHECK(plugin.calls.empty());
  }
  // An unreadable (oversized) stdin does not fail VERSION either.
  FakePlugin plugin;
  FakeProcess p;
  p.env = {{"CNI_COMMAND", "VERSION"}};
  p.stdin_fails = true;
  const auto r = run(plugin, std::move(p));
  CHECK(r.exit_code == 0);
  CHECK(r.process.document().at("cniVersion") == "1.1.0");
  CHECK(version_json(CniVersion::k0_4_0).at("cniVersion") == "0.4.0");
}

TEST_CASE("ADD prints the result in the config's version", "[cni][skel]") {
  for (const CniVersion v : kSupportedVersions) {
    const std::string version(to_string(v));
    INFO(version);
    FakePlugin plugin;
    plugin.add_result = one_address_result();
    const auto r = run(plugin, process("ADD", config(version)));
    CHECK(r.exit_code == 0);
    const json doc = r.process.document();
    CHECK(doc == encode_result(one_address_result(), v).value());
    CHECK(doc.at("cniVersion") == version);
    REQUIRE(plugin.calls == std::vector<std::string>{"ADD"});
    // The request carries the environment, the parsed config and the verbatim stdin.
    CHECK(plugin.last->env.container_id == "4f8a1b2c3d");
    CHECK(plugin.last->env.netns == "/var/run/netns/cni-1234");
    CHECK(plugin.last->env.ifname == "net1");
    CHECK(plugin.last->env.args.pod_ref() == "mpi/worker-0");
    CHECK(plugin.last->conf.version == v);
    CHECK(plugin.last->conf.raw.at("master") == "ib0");
    CHECK(plugin.last->stdin_text == config(version));
  }
}

TEST_CASE("successful DEL, CHECK, GC and STATUS print nothing", "[cni][skel]") {
  for (const std::string verb : {"DEL", "CHECK", "GC", "STATUS"}) {
    INFO(verb);
    FakePlugin plugin;
    const auto r = run(plugin, process(verb, config("1.1.0")));
    CHECK(r.exit_code == 0);
    CHECK(r.process.writes.empty());
    CHECK(plugin.calls == std::vector<std::string>{verb});
  }
}

TEST_CASE("DEL with empty CNI_NETNS reaches the plugin", "[cni][skel]") {
  FakePlugin plugin;
  FakeProcess p = process("DEL", config("1.0.0"));
  p.env["CNI_NETNS"] = "";
  const auto r = run(plugin, std::move(p));
  CHECK(r.exit_code == 0);
  CHECK(r.process.writes.empty());
  REQUIRE(plugin.calls == std::vector<std::string>{"DEL"});
  CHECK(plugin.last->env.netns.empty());
}

TEST_CASE("DEL tolerates a malformed prevResult; ADD and CHECK refuse it", "[cni][skel]") {
  const json bad_prev = {{"prevResult", {{"ips", {{{"address", "10.0.0.5"}}}}}}};  // no prefix
  {
    FakePlugin plugin;
    const auto r = run(plugin, process("DEL", config("1.0.0", bad_prev)));
    CHECK(r.exit_code == 0);
    REQUIRE(plugin.calls == std::vector<std::string>{"DEL"});
    CHECK_FALSE(plugin.last->conf.prev_result.has_value());
    CHECK_THAT(plugin.last->conf.prev_result_problem, Catch::Contains("ips[0].address"));
  }
  for (const char* verb : {"ADD", "CHECK"}) {
    INFO(verb);
    FakePlugin plugin;
    const auto r = run(plugin, process(verb, config("1.0.0", bad_prev)));
    CHECK(r.exit_code == 1);
    CHECK(plugin.calls.empty());
    REQUIRE(r.process.writes.size() == 1);
    CHECK(json::parse(r.process.writes[0])["code"] == 6);
  }
}

TEST_CASE("verbs refused below their spec version (code 1), plugin not called", "[cni][skel]") {
  struct Case {
    std::string verb;
    std::string version;
    std::string golden;
  };
  const std::vector<Case> table = {
      {"CHECK", "0.1.0", ""},  {"CHECK", "0.2.0", ""},
      {"CHECK", "0.3.0", ""},  {"CHECK", "0.3.1", "error-check-0.3.1.json"},
      {"GC", "0.4.0", ""},     {"GC", "1.0.0", "error-gc-1.0.0.json"},
      {"STATUS", "0.3.1", ""}, {"STATUS", "1.0.0", "error-status-1.0.0.json"},
  };
  for (const auto& c : table) {
    INFO(c.verb << " at " << c.version);
    FakePlugin plugin;
    const auto r = run(plugin, process(c.verb, config(c.version)));
    CHECK(r.exit_code == 1);
    const json doc = r.process.document();
    CHECK(doc.at("code") == 1);
    CHECK(doc.at("cniVersion") == c.version);
    if (!c.golden.empty()) {
      CHECK(doc == golden(c.golden));
    }
    CHECK(plugin.calls.empty());
  }
  // And allowed from their version on.
  for (const auto& [verb, version] : std::vector<std::pair<std::string, std::string>>{
           {"CHECK", "0.4.0"}, {"CHECK", "1.0.0"}, {"GC", "1.1.0"}, {"STATUS", "1.1.0"}}) {
    INFO(verb << " at " << version);
    FakePlugin plugin;
    CHECK(run(plugin, process(verb, config(version))).exit_code == 0);
    CHECK(plugin.calls == std::vector<std::string>{verb});
  }
}

TEST_CASE("error documents (golden)", "[cni][skel]") {
  struct Case {
    std::string name;
    FakeProcess process;
    std::string golden;
  };
  FakeProcess missing = process("ADD", config("1.0.0"));
  missing.env["CNI_CONTAINERID"] = "";
  missing.env.erase("CNI_NETNS");
  missing.env["CNI_IFNAME"] = "";
  FakeProcess bad_ifname = process("ADD", config("0.4.0"));
  bad_ifname.env["CNI_IFNAME"] = "abcdefghijklmnop";
  FakeProcess bad_container = process("DEL", config("1.1.0"));
  bad_container.env["CNI_CONTAINERID"] = "bad/id";
  FakeProcess unknown_args = process("ADD", config("1.0.0"));
  unknown_args.env["CNI_ARGS"] = "K8S_POD_NAME=p;FOO=bar";
  FakeProcess unknown_command = process("FOO", config("1.0.0"));
  std::vector<Case> table;
  table.push_back({"missing environment", missing, "error-missing-env.json"});
  table.push_back({"16-byte ifname", bad_ifname, "error-ifname-too-long.json"});
  table.push_back({"bad container ID", bad_container, "error-bad-container-id.json"});
  table.push_back({"unknown CNI_ARGS key", unknown_args, "error-unknown-args.json"});
  table.push_back({"unknown command", unknown_command, "error-unknown-command.json"});
  table.push_back({"missing name", process("ADD", R"({"cniVersion":"1.0.0","type":"ipoib"})"),
                   "error-missing-name.json"});
  table.push_back({"bad name", process("ADD", R"({"cniVersion":"1.1.0","name":"a b"})"),
                   "error-bad-name.json"});
  table.push_back({"unknown cniVersion", process("ADD", R"({"cniVersion":"1.2.0","name":"n"})"),
                   "error-unknown-version.json"});
  for (auto& c : table) {
    INFO(c.name);
    FakePlugin plugin;
    const auto r = run(plugin, c.process);
    CHECK(r.exit_code == 1);
    CHECK(r.process.document() == golden(c.golden));
    CHECK(plugin.calls.empty());
  }
}

TEST_CASE("non-JSON stdin is code 6 without cniVersion", "[cni][skel]") {
  for (const std::string text : {"", "not json", "{\"name\":", "\xff\xfe"}) {
    INFO(text);
    FakePlugin plugin;
    const auto r = run(plugin, process("ADD", text));
    CHECK(r.exit_code == 1);
    const json doc = r.process.document();
    CHECK(doc.at("code") == 6);
    CHECK_FALSE(doc.contains("cniVersion"));
    CHECK_THAT(doc.at("msg").get<std::string>(), Catch::StartsWith("network config: invalid JSON"));
  }
}

TEST_CASE("stdin that cannot be read is reported once", "[cni][skel]") {
  FakePlugin plugin;
  FakeProcess p = process("ADD", "");
  p.stdin_fails = true;
  const auto r = run(plugin, std::move(p));
  CHECK(r.exit_code == 1);
  CHECK(r.process.document() == json({{"code", 5}, {"msg", "read stdin: Input/output error"}}));
}

TEST_CASE("plugin errors and exceptions become one error document", "[cni][skel]") {
  SECTION("plugin error keeps its code, message and details") {
    FakePlugin plugin;
    plugin.add_result = Error(ErrorCode::kIpamFailure, "range 10.56.0.0/16 is exhausted", "x");
    const auto r = run(plugin, process("ADD", config("0.4.0")));
    CHECK(r.exit_code == 1);
    CHECK(r.process.document() == json({{"cniVersion", "0.4.0"},
                                        {"code", 102},
                                        {"msg", "range 10.56.0.0/16 is exhausted"},
                                        {"details", "x"}}));
  }
  SECTION("STATUS not available") {
    FakePlugin plugin;
    plugin.status_result = Error(ErrorCode::kNotAvailable, "store unreachable");
    const auto r = run(plugin, process("STATUS", config("1.1.0")));
    CHECK(r.exit_code == 1);
    CHECK(r.process.document() ==
          json({{"cniVersion", "1.1.0"}, {"code", 50}, {"msg", "store unreachable"}}));
  }
  SECTION("std::exception") {
    FakePlugin plugin;
    plugin.throws = FakePlugin::Throw::kStdException;
    const auto r = run(plugin, process("ADD", config("1.0.0")));
    CHECK(r.exit_code == 1);
    CHECK(r.process.document() == golden("error-internal.json"));
  }
  SECTION("anything else thrown") {
    FakePlugin plugin;
    plugin.throws = FakePlugin::Throw::kOther;
    const auto r = run(plugin, process("DEL", config("1.0.0")));
    CHECK(r.exit_code == 1);
    CHECK(r.process.document() == json({{"cniVersion", "1.0.0"},
                                        {"code", 110},
                                        {"msg", "internal error: unknown exception"}}));
  }
  SECTION("a throwing environment") {
    FakePlugin plugin;
    FakeProcess p = process("ADD", config("1.0.0"));
    ProcessIo io = p.io();
    io.getenv = [](std::string_view) -> std::optional<std::string> { throw std::bad_alloc(); };
    Logger log;
    log.set_level(LogLevel::kOff);
    CHECK(run_plugin(plugin, io, log) == 1);
    CHECK(p.document().at("code") == 110);
  }
  SECTION("a result that cannot be expressed at 0.2.0") {
    FakePlugin plugin;
    CniResult no_ip = one_address_result();
    no_ip.ips.clear();
    plugin.add_result = no_ip;
    const auto r = run(plugin, process("ADD", config("0.2.0")));
    CHECK(r.exit_code == 1);
    CHECK(r.process.document() == golden("error-no-ip-0.2.0.json"));
  }
}

TEST_CASE("GC passes the valid attachments", "[cni][skel]") {
  const json list = json::array(
      {{{"containerID", "c1"}, {"ifname", "net1"}}, {{"containerID", "c2"}, {"ifname", "net2"}}});
  const std::vector<Attachment> expected = {{"c1", "net1"}, {"c2", "net2"}};
  struct Case {
    std::string name;
    json extra;
    std::optional<std::vector<Attachment>> valid;
  };
  const std::vector<Case> table = {
      {"valid-attachments", {{"cni.dev/valid-attachments", list}}, expected},
      {"both keys (libcni 1.3)",
       {{"cni.dev/valid-attachments", list}, {"cni.dev/attachments", list}},
       expected},
      {"legacy key only", {{"cni.dev/attachments", list}}, expected},
      {"empty list: everything is stale",
       {{"cni.dev/valid-attachments", json::array()}},
       std::vector<Attachment>{}},
      {"neither key (cnitool gc)", json::object(), std::nullopt},
  };
  for (const auto& c : table) {
    INFO(c.name);
    FakePlugin plugin;
    FakeProcess p;
    p.env = {{"CNI_COMMAND", "GC"}, {"CNI_CONTAINERID", ""}, {"CNI_NETNS", ""},
             {"CNI_IFNAME", ""},    {"CNI_ARGS", ""},        {"CNI_PATH", "/opt/cni/bin"}};
    p.stdin_text = config("1.1.0", c.extra);
    const auto r = run(plugin, std::move(p));
    CHECK(r.exit_code == 0);
    CHECK(r.process.writes.empty());
    REQUIRE(plugin.last_valid.has_value());
    CHECK(*plugin.last_valid == c.valid);
  }
}

TEST_CASE("parse_gc_attachments refuses malformed lists (code 6)", "[cni][skel]") {
  for (const std::string bad :
       {R"({"cni.dev/valid-attachments":{}})", R"({"cni.dev/valid-attachments":[1]})",
        R"({"cni.dev/valid-attachments":[{"containerID":"c"}]})",
        R"({"cni.dev/valid-attachments":[{"ifname":"net1"}]})",
        R"({"cni.dev/valid-attachments":[{"containerID":1,"ifname":"net1"}]})",
        R"({"cni.dev/attachments":"c1"})"}) {
    INFO(bad);
    const auto r = parse_gc_attachments(json::parse(bad));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kDecodeFailure);
  }
  // Through run_plugin: the plugin is not called.
  FakePlugin plugin;
  const auto r = run(plugin, process("GC", config("1.1.0", {{"cni.dev/attachments", 5}})));
  CHECK(r.exit_code == 1);
  CHECK(r.process.document().at("code") == 6);
  CHECK(plugin.calls.empty());
}

TEST_CASE("error_json omits what is unknown or empty", "[cni][skel]") {
  CHECK(error_json(Error(ErrorCode::kTryAgainLater, "busy"), std::nullopt) ==
        json({{"code", 11}, {"msg", "busy"}}));
  CHECK(error_json(Error(ErrorCode::kUnsupportedField, "pkey", "0x8000"), CniVersion::k0_3_1) ==
        json({{"cniVersion", "0.3.1"}, {"code", 2}, {"msg", "pkey"}, {"details", "0x8000"}}));
}

TEST_CASE("output stays one valid JSON document for non-UTF-8 environment bytes", "[cni][skel]") {
  FakePlugin plugin;
  FakeProcess p = process("ADD", config("1.0.0"));
  p.env["CNI_CONTAINERID"] = "bad\xff\xfe";
  const auto r = run(plugin, std::move(p));
  CHECK(r.exit_code == 1);
  const json doc = r.process.document();
  CHECK(doc.at("code") == 4);
  CHECK(doc.at("details") == "bad\xef\xbf\xbd\xef\xbf\xbd");  // U+FFFD twice
}

TEST_CASE("the config's logFile and logLevel configure the logger", "[cni][skel]") {
  const ipoib::testing::TempDir tmp("cni-skel-test");
  const std::string dir = tmp.path();
  const std::string path = dir + "/plugin.log";

  FakePlugin plugin;
  plugin.add_result = Error(ErrorCode::kIpamFailure, "range exhausted");
  FakeProcess p = process("ADD", config("1.0.0", {{"logFile", path}, {"logLevel", "debug"}}));
  Logger log;
  log.set_stderr(false);
  CHECK(run_plugin(plugin, p.io(), log) == 1);
  CHECK(log.level() == LogLevel::kDebug);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const std::string text = ipoib::cni::testing::read_text_file(path);
  CHECK_THAT(text,
             Catch::Contains("ipoib[" + std::to_string(::getpid()) + "] ADD 4f8a1b2c3d/net1"));
  CHECK_THAT(text, Catch::Contains("range exhausted"));
  // stdout still carries only the error document.
  CHECK(p.document().at("msg") == "range exhausted");

  // ConfigLogging::kIgnore leaves the logger alone and creates nothing.
  const std::string ignored_path = dir + "/ignored.log";
  Logger quiet;
  quiet.set_level(LogLevel::kOff);
  FakeProcess p3 =
      process("DEL", config("1.0.0", {{"logFile", ignored_path}, {"logLevel", "debug"}}));
  CHECK(run_plugin(plugin, p3.io(), quiet, ConfigLogging::kIgnore) == 0);
  CHECK(quiet.level() == LogLevel::kOff);
  struct stat ignored_st {};
  CHECK(::stat(ignored_path.c_str(), &ignored_st) != 0);

  // snake_case spellings work too.
  Logger log2;
  log2.set_stderr(false);
  FakeProcess p2 = process("DEL", config("1.0.0", {{"log_level", "ERROR"}}));
  CHECK(run_plugin(plugin, p2.io(), log2) == 0);
  CHECK(log2.level() == LogLevel::kError);
}

namespace {

// Runs `fn` with fd 0 reading `bytes` from a temporary file; restores fd 0 afterwards.
template <class Fn>
void with_stdin_bytes(const std::string& bytes, Fn fn) {
  char path[] = "/tmp/cni-stdin-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::unlink(path);
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  REQUIRE(::lseek(fd, 0, SEEK_SET) == 0);
  const int saved = ::dup(STDIN_FILENO);
  REQUIRE(saved >= 0);
  REQUIRE(::dup2(fd, STDIN_FILENO) == STDIN_FILENO);
  ::close(fd);
  fn();
  ::dup2(saved, STDIN_FILENO);
  ::close(saved);
}

}  // namespace

TEST_CASE("real_process_io reads stdin up to 1 MiB", "[cni][skel]") {
  const ProcessIo io = real_process_io();
  with_stdin_bytes(std::string(kMaxStdinBytes, 'x'), [&] {
    const auto text = io.read_stdin();
    REQUIRE(text.ok());
    CHECK(text->size() == kMaxStdinBytes);
  });
  with_stdin_bytes(std::string(kMaxStdinBytes + 1, 'x'), [&] {
    const auto text = io.read_stdin();
    REQUIRE_FALSE(text.ok());
    CHECK(text.error().code() == ErrorCode::kDecodeFailure);
    CHECK(text.error().msg() == "stdin exceeds 1048576 bytes");
  });
  with_stdin_bytes("", [&] { CHECK(io.read_stdin().value().empty()); });
}

TEST_CASE("real_process_io getenv reads the process environment", "[cni][skel]") {
  const ProcessIo io = real_process_io();
  REQUIRE(::setenv("IPOIB_CNI_TEST_VAR", "v=1", 1) == 0);
  CHECK(io.getenv("IPOIB_CNI_TEST_VAR") == std::optional<std::string>("v=1"));
  ::unsetenv("IPOIB_CNI_TEST_VAR");
  CHECK_FALSE(io.getenv("IPOIB_CNI_TEST_VAR").has_value());
}

TEST_CASE("an unknown top-level logLevel warns and is ignored", "[cni][skel]") {
  const ipoib::testing::TempDir tmp("cni-skel-test");
  FakePlugin plugin;
  FakeProcess p =
      process("ADD", config("1.0.0", {{"logLevel", "loud"}, {"logFile", tmp.abs("plugin.log")}}));
  Logger log;
  log.set_stderr(false);
  CHECK(run_plugin(plugin, p.io(), log) == 0);
  CHECK(log.level() == LogLevel::kWarning);  // unchanged
  CHECK(plugin.calls == std::vector<std::string>{"ADD"});
  CHECK_THAT(ipoib::cni::testing::read_text_file(tmp.abs("plugin.log")),
             Catch::Contains("ignoring unknown logLevel \"loud\""));
}

TEST_CASE("a FIFO as logFile never blocks: a warning, and the verb runs", "[cni][skel]") {
  const ipoib::testing::TempDir tmp("cni-skel-test");
  const std::string fifo = tmp.abs("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);  // no reader: a blocking open would never return
  FakePlugin plugin;
  for (const char* verb : {"ADD", "DEL", "CHECK", "STATUS"}) {
    FakeProcess p = process(verb, config("1.1.0", {{"logFile", fifo}}));
    Logger log;
    log.set_stderr(false);
    CHECK(run_plugin(plugin, p.io(), log) == 0);
  }
  CHECK(plugin.calls == std::vector<std::string>{"ADD", "DEL", "CHECK", "STATUS"});
}

namespace {

struct Pipe {
  ipoib::Fd read, write;
  explicit Pipe(int flags = 0) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC | flags) == 0);
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

}  // namespace

TEST_CASE("stdin that is never closed ends in an error at the deadline", "[cni][skel]") {
  Pipe silent;  // the writer stays open and writes nothing
  const auto start = std::chrono::steady_clock::now();
  auto r = read_stdin_fd(silent.read.get(), kMaxStdinBytes, 200);
  const auto waited = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kIoFailure);
  CHECK_THAT(r.error().msg(), Catch::StartsWith("stdin was not closed within 0 s (0 bytes read)"));
  CHECK(waited >= std::chrono::milliseconds(200));

  Pipe partial;  // a whole config, but the writer never closes
  const std::string conf = R"({"cniVersion":"1.0.0","name":"n"})";
  REQUIRE(::write(partial.write.get(), conf.data(), conf.size()) ==
          static_cast<ssize_t>(conf.size()));
  auto p = read_stdin_fd(partial.read.get(), kMaxStdinBytes, 100);
  REQUIRE_FALSE(p.ok());
  CHECK_THAT(p.error().msg(), Catch::Contains("(" + std::to_string(conf.size()) + " bytes read)"));

  CHECK(kStdinDeadlineMs == 30000);
}

TEST_CASE("read_stdin_fd reads a closed pipe, a non-blocking one, and no stdin", "[cni][skel]") {
  for (int flags : {0, O_NONBLOCK}) {
    Pipe pipe(flags);
    REQUIRE(::write(pipe.write.get(), "abc", 3) == 3);
    pipe.write.reset();
    auto r = read_stdin_fd(pipe.read.get(), 10, 1000);
    REQUIRE(r.ok());
    CHECK(*r == "abc");
  }
  Pipe big;
  REQUIRE(::write(big.write.get(), "0123456789x", 11) == 11);
  big.write.reset();
  auto over = read_stdin_fd(big.read.get(), 10, 1000);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().code() == ErrorCode::kDecodeFailure);

  Pipe gone;
  const int closed = gone.read.get();
  gone.read.reset();
  auto none = read_stdin_fd(closed, 10, 1000);
  REQUIRE(none.ok());
  CHECK(none->empty());
}
