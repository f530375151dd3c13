// unit.install: the pure parts of `ipoib install` (argument parsing, the flat file's text, the
// memlock drop-in) and the file primitives against a temporary directory.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "ipoib/install/install.h"
#include "tests/unit/install/install_test_support.h"

using install_test::slurp;
using install_test::TempDir;
using ipoib::ErrorCode;
using ipoib::install::Options;
using ipoib::install::parse_install_args;
using ipoib::install::Runtime;
using ipoib::install::StoreSpec;

namespace {

ipoib::Result<Options> parse(const std::vector<std::string_view>& args) {
  return parse_install_args(args);
}

}  // namespace

TEST_CASE("defaults: /opt/cni/bin on /, this executable, every runtime") {
  auto o = parse({});
  REQUIRE(o.ok());
  CHECK(o->root == "/");
  CHECK(o->bin_dir == "/opt/cni/bin");
  CHECK(o->source == "/proc/self/exe");
  CHECK(o->runtimes ==
        std::vector<Runtime>{Runtime::kContainerd, Runtime::kDocker, Runtime::kCrio});
  CHECK_FALSE(o->store);
  CHECK(o->flat_file == "/etc/cni/net.d/whereabouts.d/whereabouts.conf");
}

TEST_CASE("options take `--opt value` and `--opt=value`") {
  auto o = parse({"--root", "/host", "--bin-dir=/usr/libexec/cni", "--whereabouts", "-n", "-f",
                  "--runtime", "containerd", "--runtime=crio"});
  REQUIRE(o.ok());
  CHECK(o->root == "/host");
  CHECK(o->bin_dir == "/usr/libexec/cni");
  CHECK(o->whereabouts);
  CHECK(o->dry_run);
  CHECK(o->force);
  CHECK(o->runtimes == std::vector<Runtime>{Runtime::kContainerd, Runtime::kCrio});
}

TEST_CASE("usage errors name the problem") {
  struct Case {
    std::vector<std::string_view> args;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"--bogus"}, "unknown option --bogus"},
      {{"--root"}, "--root needs a value"},
      {{"--whereabouts=yes"}, "takes no value"},
      {{"--bin-dir", "opt/cni/bin"}, "absolute path"},
      {{"--bin-dir", "/opt/../etc"}, "absolute path"},
      {{"--runtime", "podman"}, "unknown runtime 'podman'"},
      {{"--store-dir", "relative"}, "--store-dir"},
      {{"--store-dir", "/a", "--etcd-endpoints", "http://h:2379"}, "pick one"},
      {{"--etcd-endpoints", "10.0.0.1:2379"}, "must be http://host:port"},
      {{"--etcd-endpoints", "https://"}, "no valid host"},
      {{"--etcd-endpoints", "https://h:2379,"}, "must be http://host:port"},
      {{"--etcd-ca-file", "/ca"}, "need --etcd-endpoints"},
      {{"--etcd-endpoints", "https://h:2379", "--etcd-cert-file", "/c"}, "go together"},
      {{"--etcd-endpoints", "https://h:2379", "--etcd-ca-file", "ca.crt"}, "--etcd-ca-file"},
      {{"--etcd-tls-dir", "/secret"}, "needs --etcd-endpoints"},
      {{"--etcd-endpoints", "https://h:2379", "--etcd-tls-dir", "/s", "--etcd-ca-file", "/ca"},
       "names the certificate files itself"},
      {{"--flat-file-only"}, "needs --store-dir or --etcd-endpoints"},
      {{"--flat-file-only", "--store-dir", "/s", "--whereabouts"}, "does nothing else"},
  };
  for (const Case& c : cases) {
    auto o = parse(c.args);
    INFO(c.needle);
    REQUIRE_FALSE(o.ok());
    CHECK(o.error().code() == ErrorCode::kInvalidEnvironment);
    CHECK_THAT(o.error().msg(), Catch::Contains(c.needle));
  }
}

TEST_CASE("flat file: store_dir, or whereabouts' etcd keys in a fixed order") {
  StoreSpec dir;
  dir.store_dir = "/shared/ipam";
  CHECK(ipoib::install::flat_file_text(dir) == "{\n  \"store_dir\": \"/shared/ipam\"\n}\n");

  auto o = parse({"--etcd-endpoints", "https://a:2379, https://b:2379", "--etcd-ca-file",
                  "/e/ca.crt", "--etcd-cert-file", "/e/tls.crt", "--etcd-key-file", "/e/tls.key",
                  "--etcd-username", "ipam"});
  REQUIRE(o.ok());
  REQUIRE(o->store);
  const std::string text = ipoib::install::flat_file_text(*o->store);
  const auto doc = nlohmann::ordered_json::parse(text);
  std::vector<std::string> keys;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    keys.push_back(it.key());
  }
  CHECK(keys == std::vector<std::string>{"datastore", "etcd_host", "etcd_ca_cert_file",
                                         "etcd_cert_file", "etcd_key_file", "etcd_username"});
  CHECK(doc["datastore"] == "etcd");
  CHECK(doc["etcd_host"] == "https://a:2379,https://b:2379");
  CHECK(text == ipoib::install::flat_file_text(*o->store));  // equal specs, equal bytes
}

TEST_CASE("the memlock drop-in sets LimitMEMLOCK=infinity in [Service]") {
  const std::string text(ipoib::install::memlock_dropin_text());
  const auto service = text.find("\n[Service]\n");
  REQUIRE(service != std::string::npos);
  CHECK(text.find("\nLimitMEMLOCK=infinity\n", service) != std::string::npos);
  CHECK(ipoib::install::unit_of(Runtime::kCrio) == "crio.service");
}

TEST_CASE("run_install: install, up to date, uninstall, into a temporary root") {
  TempDir root;
  TempDir src_dir;
  const std::string src = src_dir.path + "/plugin";
  { std::ofstream(src) << "#!/bin/sh\nexit 0\n"; }
  REQUIRE(::chmod(src.c_str(), 0755) == 0);
  auto o = parse({"--root", root.path, "--source", src, "--store-dir", "/shared/ipam"});
  REQUIRE(o.ok());

  std::ostringstream out;
  REQUIRE(ipoib::install::run_install(*o, out).ok());
  const std::string bin = root.path + "/opt/cni/bin/ipoib";
  CHECK(slurp(bin) == slurp(src));
  struct stat st {};
  REQUIRE(::stat(bin.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  const std::string flat = root.path + "/etc/cni/net.d/whereabouts.d/whereabouts.conf";
  REQUIRE(::stat(flat.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);

  std::ostringstream again;
  REQUIRE(ipoib::install::run_install(*o, again).ok());
  CHECK_THAT(again.str(), Catch::Contains("up to date: " + bin));
  CHECK_THAT(again.str(), Catch::Contains("up to date: " + flat));

  auto other = parse({"--root", root.path, "--source", src, "--store-dir", "/elsewhere"});
  REQUIRE(other.ok());
  std::ostringstream refused;
  const auto r = ipoib::install::run_install(*other, refused);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().msg(), Catch::Contains("names a different store"));

  o->uninstall = true;
  std::ostringstream removed;
  REQUIRE(ipoib::install::run_install(*o, removed).ok());
  CHECK(::access(bin.c_str(), F_OK) != 0);
  CHECK(::access(flat.c_str(), F_OK) != 0);
}

TEST_CASE("run_install: a missing root or source is an error, not a crash") {
  auto o = parse({"--root", "/nonexistent-root-for-unit-install"});
  REQUIRE(o.ok());
  std::ostringstream out;
  CHECK_FALSE(ipoib::install::run_install(*o, out).ok());
  TempDir root;
  auto p = parse({"--root", root.path, "--source", root.path + "/none"});
  REQUIRE(p.ok());
  CHECK_FALSE(ipoib::install::run_install(*p, out).ok());
}
