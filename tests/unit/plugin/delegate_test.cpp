#include "ipoib/plugin/delegate.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "ipoib/cni/config.h"
#include "temp_dir.h"

using namespace ipoib;
using namespace ipoib::plugin;

namespace {

struct ScratchDir {
  ipoib::testing::TempDir dir{"plugin-unit"};  // tests/support/temp_dir.h
  std::string path = dir.path();
  void write(const std::string& name, const std::string& text, mode_t mode) const {
    std::ofstream(path + "/" + name) << text;
    ::chmod((path + "/" + name).c_str(), mode);
  }
  std::string read(const std::string& name) const {
    std::ifstream in(path + "/" + name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

// A fake IPAM plugin: records its stdin and environment per verb, answers per verb.
void write_fake_ipam(const ScratchDir& dir) {
  dir.write("fake-ipam",
            "#!/bin/sh\n"
            "cat > '" +
                dir.path +
                "'/stdin.$CNI_COMMAND\n"
                "env > '" +
                dir.path +
                "'/env.$CNI_COMMAND\n"
                "echo \"fake-ipam $CNI_COMMAND\" >&2\n"
                "case \"$CNI_COMMAND\" in\n"
                "  ADD) printf '%s' '{\"cniVersion\":\"0.4.0\",\"ips\":[{\"version\":\"4\","
                "\"address\":\"10.1.2.3/24\",\"gateway\":\"10.1.2.1\"}],"
                "\"routes\":[{\"dst\":\"0.0.0.0/0\"}]}' ;;\n"
                "  DEL) exit 0 ;;\n"
                "  CHECK) printf '%s' '{\"code\":11,\"msg\":\"busy\",\"details\":\"try later\"}'; "
                "exit 1 ;;\n"
                "  GC) echo not-json; exit 3 ;;\n"
                "  STATUS) exit 0 ;;\n"
                "esac\n",
            0755);
}

cni::Request request(const ScratchDir& dir) {
  cni::Request req;
  req.env.path = {"/nonexistent", dir.path};
  req.env.container_id = "c1";
  req.env.ifname = "net1";
  req.stdin_text =
      R"({"cniVersion":"0.4.0","name":"n","type":"ipoib","ipam":{"type":"fake-ipam"}})";
  req.conf = *cni::parse_netconf(req.stdin_text);
  return req;
}

}  // namespace

TEST_CASE("find_plugin searches CNI_PATH for an executable file") {
  ScratchDir dir;
  dir.write("exe", "#!/bin/sh\n", 0755);
  dir.write("plain", "", 0644);
  ::mkdir((dir.path + "/adir").c_str(), 0755);
  CHECK(*find_plugin("exe", {"/nonexistent", dir.path}) == dir.path + "/exe");
  CHECK_FALSE(find_plugin("plain", {dir.path}).ok());
  CHECK_FALSE(find_plugin("adir", {dir.path}).ok());
  auto missing = find_plugin("nope", {"/a", "/b"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().msg().find("/a:/b") != std::string::npos);
  CHECK_FALSE(find_plugin("../exe", {dir.path}).ok());
  CHECK_FALSE(find_plugin("", {dir.path}).ok());
}

TEST_CASE("a delegated IPAM gets the whole config, the environment and its own verb") {
  ScratchDir dir;
  write_fake_ipam(dir);
  auto req = request(dir);
  auto ipam = make_delegated_ipam("fake-ipam", {"FOO=bar", "CNI_COMMAND=VERSION"}, real_exec());

  auto added = ipam->add(req);
  REQUIRE(added.ok());
  REQUIRE(added->ips.size() == 1);
  CHECK(added->ips[0].address.to_string() == "10.1.2.3/24");
  CHECK(added->ips[0].gateway->to_string() == "10.1.2.1");
  CHECK_FALSE(added->ips[0].interface);
  CHECK(added->routes.size() == 1);
  CHECK(dir.read("stdin.ADD") == req.stdin_text);
  const auto env = dir.read("env.ADD");
  CHECK(env.find("FOO=bar\n") != std::string::npos);
  CHECK(env.find("CNI_COMMAND=ADD\n") != std::string::npos);
  CHECK(env.find("CNI_COMMAND=VERSION") == std::string::npos);

  // The rollback of an ADD runs as DEL.
  CHECK(ipam->del(req).ok());
  CHECK(dir.read("env.DEL").find("CNI_COMMAND=DEL\n") != std::string::npos);
  CHECK(ipam->status(req).ok());
}

TEST_CASE("a delegate's error keeps its code; garbage becomes an IPAM failure") {
  ScratchDir dir;
  write_fake_ipam(dir);
  auto req = request(dir);
  auto ipam = make_delegated_ipam("fake-ipam", {}, real_exec());
  auto checked = ipam->check(req);
  REQUIRE_FALSE(checked.ok());
  CHECK(checked.error().code() == ErrorCode::kTryAgainLater);
  CHECK(checked.error().msg().find("busy") != std::string::npos);
  CHECK(checked.error().details() == "try later");
  auto gc = ipam->gc(req, std::nullopt);
  REQUIRE_FALSE(gc.ok());
  CHECK(gc.error().code() == ErrorCode::kIpamFailure);
  CHECK(gc.error().msg().find("status 3") != std::string::npos);
  // Not in CNI_PATH.
  auto absent = make_delegated_ipam("absent-ipam", {}, real_exec());
  CHECK(absent->del(req).error().code() == ErrorCode::kInvalidNetworkConfig);
}

TEST_CASE("real_exec: bounded output, a delegate that ignores stdin, a signal") {
  ScratchDir dir;
  dir.write("flood", "#!/bin/sh\nhead -c 3000000 /dev/zero\n", 0755);
  auto flood = real_exec()(dir.path + "/flood", {}, "");
  REQUIRE_FALSE(flood.ok());
  CHECK(flood.error().msg().find("more than") != std::string::npos);

  dir.write("deaf", "#!/bin/sh\necho done\nexit 4\n", 0755);
  const std::string big(4 << 20, 'x');  // far beyond the socket buffer
  auto deaf = real_exec()(dir.path + "/deaf", {}, big);
  REQUIRE(deaf.ok());
  CHECK(deaf->exit_status == 4);
  CHECK(deaf->stdout_text == "done\n");

  // Both directions at once, each beyond a pipe/socket buffer: no deadlock.
  dir.write("echo", "#!/bin/sh\ncat\n", 0755);
  const std::string medium(768 << 10, 'y');
  auto echo = real_exec()(dir.path + "/echo", {}, medium);
  REQUIRE(echo.ok());
  CHECK(echo->exit_status == 0);
  CHECK(echo->stdout_text == medium);

  dir.write("killed", "#!/bin/sh\nkill -9 $$\n", 0755);
  auto killed = real_exec()(dir.path + "/killed", {}, "");
  REQUIRE(killed.ok());
  CHECK(killed->exit_status == 128 + 9);

  CHECK_FALSE(real_exec()(dir.path + "/missing", {}, "").ok());
}

TEST_CASE("a delegate that is this executable is refused, by device and inode") {
  ScratchDir dir;
  write_fake_ipam(dir);
  const std::string self = dir.path + "/fake-ipam";  // stands for /proc/self/exe
  ::symlink(self.c_str(), (dir.path + "/ipoib").c_str());
  ::link(self.c_str(), (dir.path + "/hard").c_str());
  dir.write("other", "#!/bin/sh\n", 0755);
  for (const std::string name : {"fake-ipam", "ipoib", "hard"}) {
    INFO(name);
    auto r = resolve_delegate(name, {dir.path}, {}, self);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == ErrorCode::kInvalidNetworkConfig);
    CHECK(r.error().msg().rfind("ipam.type: \"" + name + "\" is this plugin itself", 0) == 0);
  }
  CHECK(resolve_delegate("other", {dir.path}, {}, self).ok());

  // Through the delegated IPAM: ADD, CHECK, GC, STATUS fail without running it; DEL succeeds
  // without running it.
  auto req = request(dir);
  auto ipam = make_delegated_ipam("ipoib", {}, real_exec(), self);
  CHECK(ipam->add(req).error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK(ipam->status(req).error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK(ipam->gc(req, std::nullopt).error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK(ipam->del(req).ok());
  CHECK(dir.read("env.ADD").empty());  // never executed
  CHECK(dir.read("env.DEL").empty());
}

TEST_CASE("delegation depth is passed on, one higher, and bounded") {
  ScratchDir dir;
  write_fake_ipam(dir);
  auto req = request(dir);
  CHECK(delegation_depth({}) == 0);
  CHECK(delegation_depth({"IPOIB_CNI_DELEGATION_DEPTH=2"}) == 2);
  CHECK(delegation_depth({"IPOIB_CNI_DELEGATION_DEPTH=junk"}) == 0);
  CHECK(delegation_depth({"IPOIB_CNI_DELEGATION_DEPTHX=2"}) == 0);

  auto first = make_delegated_ipam("fake-ipam", {"FOO=1"}, real_exec());
  REQUIRE(first->add(req).ok());
  CHECK(dir.read("env.ADD").find("IPOIB_CNI_DELEGATION_DEPTH=1\n") != std::string::npos);
  auto nested = make_delegated_ipam("fake-ipam", {"IPOIB_CNI_DELEGATION_DEPTH=2"}, real_exec());
  REQUIRE(nested->add(req).ok());
  const auto env = dir.read("env.ADD");
  CHECK(env.find("IPOIB_CNI_DELEGATION_DEPTH=3\n") != std::string::npos);
  CHECK(env.find("IPOIB_CNI_DELEGATION_DEPTH=2") == std::string::npos);

  auto too_deep = make_delegated_ipam("fake-ipam", {"IPOIB_CNI_DELEGATION_DEPTH=3"}, real_exec());
  auto refused = too_deep->add(req);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK(refused.error().msg().find("delegation is already 3 deep") != std::string::npos);
  CHECK(too_deep->del(req).ok());
  CHECK_FALSE(resolve_delegate("fake-ipam", {dir.path}, {"IPOIB_CNI_DELEGATION_DEPTH=7"}).ok());
}
