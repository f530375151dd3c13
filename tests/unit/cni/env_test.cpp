#include "ipoib/cni/env.h"

#include <catch2/catch.hpp>
#include <map>

using namespace ipoib;
using namespace ipoib::cni;

namespace {

using EnvMap = std::map<std::string, std::string, std::less<>>;

GetEnv getter(const EnvMap& env) {
  return [&env](std::string_view name) -> std::optional<std::string> {
    const auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

// All six variables, as real clients send them; "" where not applicable.
EnvMap full_env(const std::string& command) {
  return {{"CNI_COMMAND", command},
          {"CNI_CONTAINERID", "abc123"},
          {"CNI_NETNS", "/proc/42/ns/net"},
          {"CNI_IFNAME", "ib0"},
          {"CNI_ARGS", ""},
          {"CNI_PATH", "/opt/cni/bin::/usr/lib/cni"}};
}

}  // namespace

TEST_CASE("environment: every verb with what real clients send", "[cni][env]") {
  const std::vector<std::pair<std::string, Command>> table = {
      {"ADD", Command::kAdd},         {"DEL", Command::kDel}, {"CHECK", Command::kCheck},
      {"VERSION", Command::kVersion}, {"GC", Command::kGc},   {"STATUS", Command::kStatus}};
  for (const auto& [text, command] : table) {
    INFO(text);
    const EnvMap env = full_env(text);
    const auto e = read_environment(getter(env));
    REQUIRE(e.ok());
    CHECK(e->command == command);
    CHECK(to_string(command) == text);
    if (command != Command::kVersion) {
      CHECK(e->container_id == "abc123");
      CHECK(e->netns == "/proc/42/ns/net");
      CHECK(e->ifname == "ib0");
      CHECK(e->path == std::vector<std::string>{"/opt/cni/bin", "/usr/lib/cni"});
    }
  }
}

TEST_CASE("environment: missing or empty variables are all reported at once (code 4)",
          "[cni][env]") {
  struct Case {
    std::string name;
    EnvMap env;
    std::string msg;
  };
  const std::vector<Case> table = {
      {"no CNI_COMMAND", {}, "required environment variables missing: CNI_COMMAND"},
      {"empty CNI_COMMAND",
       {{"CNI_COMMAND", ""}},
       "required environment variables missing: CNI_COMMAND"},
      {"ADD with nothing",
       {{"CNI_COMMAND", "ADD"}},
       "required environment variables missing: CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME"},
      {"ADD with empty strings",
       {{"CNI_COMMAND", "ADD"},
        {"CNI_CONTAINERID", ""},
        {"CNI_NETNS", ""},
        {"CNI_IFNAME", ""},
        {"CNI_ARGS", ""},
        {"CNI_PATH", ""}},
       "required environment variables missing: CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME"},
      {"CHECK without netns",
       {{"CNI_COMMAND", "CHECK"}, {"CNI_CONTAINERID", "a"}, {"CNI_NETNS", ""}, {"CNI_IFNAME", "x"}},
       "required environment variables missing: CNI_NETNS"},
      {"DEL without container and ifname",
       {{"CNI_COMMAND", "DEL"}, {"CNI_NETNS", ""}},
       "required environment variables missing: CNI_CONTAINERID, CNI_IFNAME"},
      {"GC without CNI_PATH",
       {{"CNI_COMMAND", "GC"}, {"CNI_PATH", ""}},
       "required environment variables missing: CNI_PATH"},
  };
  for (const auto& c : table) {
    INFO(c.name);
    const auto e = read_environment(getter(c.env));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().code() == ErrorCode::kInvalidEnvironment);
    CHECK(e.error().msg() == c.msg);
  }
}

TEST_CASE("environment: DEL with empty CNI_NETNS proceeds", "[cni][env]") {
  EnvMap env = full_env("DEL");
  env["CNI_NETNS"] = "";
  auto e = read_environment(getter(env));
  REQUIRE(e.ok());
  CHECK(e->netns.empty());
  env.erase("CNI_NETNS");
  CHECK(read_environment(getter(env)).ok());
  env["CNI_NETNS"] = "netns-that-is-gone";  // DEL does not judge the path
  CHECK(read_environment(getter(env)).ok());
}

TEST_CASE("environment: GC and STATUS need no attachment variables", "[cni][env]") {
  const EnvMap gc = {{"CNI_COMMAND", "GC"}, {"CNI_CONTAINERID", ""}, {"CNI_NETNS", ""},
                     {"CNI_IFNAME", ""},    {"CNI_ARGS", ""},        {"CNI_PATH", "/opt/cni/bin"}};
  CHECK(read_environment(getter(gc)).ok());
  const EnvMap status = {{"CNI_COMMAND", "STATUS"}};
  CHECK(read_environment(getter(status)).ok());
  // A bad CNI_ARGS does not block GC/STATUS, which do not act on it.
  EnvMap gc_args = gc;
  gc_args["CNI_ARGS"] = "UNKNOWN=1";
  CHECK(read_environment(getter(gc_args)).ok());
}

TEST_CASE("environment: VERSION with libcni's dummy values validates nothing", "[cni][env]") {
  const EnvMap env = {{"CNI_COMMAND", "VERSION"}, {"CNI_NETNS", "dummy"},
                      {"CNI_IFNAME", "dummy"},    {"CNI_PATH", "dummy"},
                      {"CNI_CONTAINERID", "!!"},  {"CNI_ARGS", "garbage"}};
  const auto e = read_environment(getter(env));
  REQUIRE(e.ok());
  CHECK(e->command == Command::kVersion);
}

TEST_CASE("environment: unknown CNI_COMMAND is code 4 naming it", "[cni][env]") {
  for (const std::string cmd : {"add", "FOO", "VERSION ", "Add"}) {
    INFO(cmd);
    const EnvMap env = full_env(cmd);
    const auto e = read_environment(getter(env));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().code() == ErrorCode::kInvalidEnvironment);
    CHECK(e.error().msg() == "unknown CNI_COMMAND: \"" + cmd + "\"");
  }
}

TEST_CASE("environment: invalid container ID, ifname, netns are code 4", "[cni][env]") {
  struct Case {
    std::string var;
    std::string value;
    std::string msg;
  };
  const std::vector<Case> table = {
      {"CNI_CONTAINERID", "-abc", "invalid characters in containerID"},
      {"CNI_CONTAINERID", "_abc", "invalid characters in containerID"},
      {"CNI_CONTAINERID", "abc/def", "invalid characters in containerID"},
      {"CNI_CONTAINERID", "abc def", "invalid characters in containerID"},
      {"CNI_CONTAINERID", "ab:c", "invalid characters in containerID"},
      {"CNI_IFNAME", "abcdefghijklmnop", "interface name is too long"},
      {"CNI_IFNAME", ".", "interface name is . or .."},
      {"CNI_IFNAME", "..", "interface name is . or .."},
      {"CNI_IFNAME", "ib/0", "interface name contains / or : or whitespace characters"},
      {"CNI_IFNAME", "ib:0", "interface name contains / or : or whitespace characters"},
      {"CNI_IFNAME", "ib 0", "interface name contains / or : or whitespace characters"},
      {"CNI_IFNAME", "ib\t0", "interface name contains / or : or whitespace characters"},
      {"CNI_IFNAME",
       "ib\xc2\xa0"
       "0",
       "interface name contains / or : or whitespace characters"},
      // The kernel expands '%' in a name as a template (net%d -> net0): refused.
      {"CNI_IFNAME", "net%d",
       "interface name contains %, which the kernel expands as a name template"},
      {"CNI_IFNAME", "%d",
       "interface name contains %, which the kernel expands as a name template"},
      {"CNI_IFNAME", "net%",
       "interface name contains %, which the kernel expands as a name template"},
      {"CNI_NETNS", "var/run/netns/x", "CNI_NETNS must be an absolute path"},
  };
  for (const std::string cmd : {"ADD", "CHECK", "DEL"}) {
    for (const auto& c : table) {
      if (cmd == "DEL" && c.var == "CNI_NETNS") {
        continue;
      }
      INFO(cmd << " " << c.var << "=\"" << c.value << "\"");
      EnvMap env = full_env(cmd);
      env[c.var] = c.value;
      const auto e = read_environment(getter(env));
      REQUIRE_FALSE(e.ok());
      CHECK(e.error().code() == ErrorCode::kInvalidEnvironment);
      CHECK(e.error().msg() == c.msg);
    }
  }
}

TEST_CASE("environment: bad CNI_ARGS fails ADD/CHECK/DEL with code 4", "[cni][env]") {
  EnvMap env = full_env("ADD");
  env["CNI_ARGS"] = "K8S_POD_NAME=p;FOO=bar";
  const auto e = read_environment(getter(env));
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().code() == ErrorCode::kInvalidEnvironment);
  env["CNI_ARGS"] = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;FOO=bar";
  const auto ok = read_environment(getter(env));
  REQUIRE(ok.ok());
  CHECK(ok->args.pod_ref() == "ns/p");
  CHECK(ok->args_text == env["CNI_ARGS"]);
}

TEST_CASE("is_valid_identifier follows libcni's pattern", "[cni][env]") {
  for (const std::string ok :
       {"a", "0", "abc-DEF_1.2", "4f8a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c"}) {
    INFO(ok);
    CHECK(is_valid_identifier(ok));
  }
  for (const std::string bad : {"", ".a", "-a", "_a", "a b", "a/b", "a:b", "a+b", "\xc3\xa9"}) {
    INFO(bad);
    CHECK_FALSE(is_valid_identifier(bad));
  }
}

TEST_CASE("is_valid_ifname follows libcni and the kernel's dev_valid_name", "[cni][env]") {
  for (const std::string ok :
       {"a", "net1", "ib0.8001", "abcdefghijklmno", "...", "ib-0_1", "\xc3\xa9th0", "bad\xff"}) {
    INFO(ok);
    CHECK(is_valid_ifname(ok));
  }
  for (const std::string bad :
       {"", ".", "..", "abcdefghijklmnop", "a/b", "a:b", "a b", "a\nb", "a\rb", "a\vb", "a\fb",
        "a\xe2\x80\x83"
        "b" /* U+2003 em space */,
        "a\xe3\x80\x80" /* U+3000 */}) {
    INFO(bad);
    CHECK_FALSE(is_valid_ifname(bad));
  }
}
