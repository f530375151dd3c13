// The plugin's decisions without root: ADD, DEL, CHECK and GC over the fake kernel
// (fake_kernel.h), with a real intent directory in a scratch dir.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include "fake_kernel.h"
#include "ipoib/cni/config.h"
#include "ipoib/plugin/intent.h"
#include "ipoib/plugin/ipoib_plugin.h"
#include "ipoib/plugin/tag.h"

using namespace ipoib;
using namespace ipoib::plugin;
using nlohmann::json;

namespace {

struct Fixture {
  fake::Kernel kernel;
  std::set<std::string> reserved;
  bool fail_ipam = false;
  std::string intent_dir;
  Logger log;
  std::unique_ptr<cni::Plugin> plugin;

  Fixture() {
    char tmpl[] = "/tmp/plugin-unit-intents-XXXXXX";
    intent_dir = ::mkdtemp(tmpl);
    log.set_level(LogLevel::kOff);
    PluginSeams seams;
    seams.kind = std::make_unique<fake::Kind>();
    seams.links = std::make_unique<fake::Ops>(kernel);
    seams.ipam = [this](const IpamSection&,
                        const cni::Request&) -> Result<std::unique_ptr<cni::Plugin>> {
      return std::unique_ptr<cni::Plugin>(std::make_unique<fake::Ipam>(reserved, fail_ipam));
    };
    seams.intent_dir = intent_dir;
    plugin = make_plugin(std::move(seams), log);
  }
  ~Fixture() { std::filesystem::remove_all(intent_dir); }

  static cni::Request request(cni::Command command, const std::string& container,
                              const std::string& ifname = "net1", json extra = json::object()) {
    json conf = {{"cniVersion", "1.1.0"},
                 {"name", "n"},
                 {"type", "ipoib"},
                 {"master", "m0"},
                 {"ipam", {{"type", "fake-ipam"}}}};
    for (const auto& [k, v] : extra.items()) {
      conf[k] = v;
    }
    cni::Request req;
    req.env.command = command;
    req.env.container_id = container;
    req.env.ifname = ifname;
    req.env.netns = "/proc/self/ns/net";  // opened, then ignored by the fake
    req.stdin_text = conf.dump();
    req.conf = *cni::parse_netconf(req.stdin_text, cni::PrevResult::kTolerate);
    return req;
  }

  [[nodiscard]] std::size_t intents_left() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(intent_dir)) {
      ++n;
    }
    return n;
  }
  [[nodiscard]] IntentDirectory intents() const { return IntentDirectory(intent_dir); }
};

}  // namespace

TEST_CASE("ADD creates, tags, renames and configures the child, leaving no intent") {
  Fixture f;
  auto r = f.plugin->add(Fixture::request(cni::Command::kAdd, "c1"));
  REQUIRE(r.ok());
  REQUIRE(f.kernel.pod.links.size() == 1);
  const auto& child = f.kernel.pod.links[0];
  CHECK(child.name == "net1");
  CHECK(child.alias == "ipoib-cni:n:c1:net1");
  CHECK(child.mtu == 1500);
  CHECK(child.admin_state() == netlink::AdminState::kUp);
  CHECK(f.kernel.pod.addresses.size() == 2);
  CHECK(f.kernel.pod.routes.size() == 1);
  CHECK(r->interfaces[0].name == "net1");
  CHECK(r->ips.size() == 2);
  CHECK(f.reserved.count("c1/net1") == 1);
  CHECK(f.intents_left() == 0);
}

TEST_CASE("a failure at each ADD step unwinds everything done before it") {
  for (const std::string step :
       {"create", "move", "alias", "rename", "ipam", "mtu", "ipv6", "address", "up", "route"}) {
    DYNAMIC_SECTION("step " << step) {
      Fixture f;
      if (step == "ipam") {
        f.fail_ipam = true;
      } else {
        f.kernel.fail_step = step;
      }
      auto r = f.plugin->add(Fixture::request(cni::Command::kAdd, "c1"));
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().msg().find("injected failure at step " + step) != std::string::npos);
      CHECK(f.kernel.pod.links.empty());  // the child is gone, whatever name it had
      CHECK(f.kernel.pod.addresses.empty());
      CHECK(f.reserved.empty());               // the reservation is released
      CHECK(f.intents_left() == 0);            // and the intent taken back
      CHECK(f.kernel.host.links.size() == 1);  // the master only
    }
  }
}

TEST_CASE("ADD confirms the name the kernel gave: a template is refused and rolled back") {
  Fixture f;
  // (cni::read_environment refuses '%' already; this is the plugin's own check behind it.)
  auto r = f.plugin->add(Fixture::request(cni::Command::kAdd, "c1", "net%d"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == ErrorCode::kInvalidEnvironment);
  CHECK(r.error().msg() == "CNI_IFNAME: the kernel named the interface net0, not net%d");
  CHECK(f.kernel.pod.links.empty());
  CHECK(f.reserved.empty());
}

TEST_CASE("a retried ADD replaces its own stale child only when its intent proves it") {
  Fixture f;
  const std::string tmp = temporary_child_name("c1", "net1");
  SECTION("with the intent of the interrupted ADD: replaced") {
    f.kernel.plant(f.kernel.pod, tmp, "");
    REQUIRE(f.intents().record(tmp, {"n", {"c1", "net1"}}).ok());
    REQUIRE(f.plugin->add(Fixture::request(cni::Command::kAdd, "c1")).ok());
    CHECK(f.kernel.deleted == std::vector<std::string>{tmp});
    CHECK(f.kernel.pod.links.size() == 1);
    CHECK(f.kernel.pod.links[0].name == "net1");
  }
  SECTION("tagged for the attachment (killed before the rename): replaced") {
    f.kernel.plant(f.kernel.pod, tmp, "ipoib-cni:n:c1:net1");
    REQUIRE(f.plugin->add(Fixture::request(cni::Command::kAdd, "c1")).ok());
    CHECK(f.kernel.deleted == std::vector<std::string>{tmp});
  }
  SECTION("without an intent (hand-made, or another network's): left alone, ADD fails") {
    f.kernel.plant(f.kernel.pod, tmp, "");
    REQUIRE(f.intents().record(tmp, {"other", {"c1", "net1"}}).ok());
    auto r = f.plugin->add(Fixture::request(cni::Command::kAdd, "c1"));
    REQUIRE_FALSE(r.ok());
    CHECK(f.kernel.deleted.empty());
    REQUIRE(f.kernel.pod.links.size() == 1);
    CHECK(f.kernel.pod.links[0].name == tmp);
    CHECK(f.reserved.empty());
  }
}

TEST_CASE("DEL deletes what the tag or an intent proves is the attachment's, nothing else") {
  Fixture f;
  const std::string tmp = temporary_child_name("c1", "net1");
  f.kernel.plant(f.kernel.pod, "net1", "ipoib-cni:n:c1:net1");       // ours
  f.kernel.plant(f.kernel.host, "dev7", "ipoib-cni:c1:net1");        // legacy, same attachment
  f.kernel.plant(f.kernel.host, "dev8", "ipoib-cni:other:c1:net1");  // another network's
  f.kernel.plant(f.kernel.host, "dev9", "ipoib-cni:n:c2:net1");      // another attachment
  f.kernel.plant(f.kernel.host, "net1", "");                         // untagged
  f.kernel.plant(f.kernel.host, tmp, "", "veth");                    // not the child kind
  f.reserved.insert("c1/net1");
  SECTION("without an intent, the untagged temporary-named link stays") {
    f.kernel.plant(f.kernel.pod, tmp, "");
    REQUIRE(f.plugin->del(Fixture::request(cni::Command::kDel, "c1")).ok());
    CHECK(f.kernel.deleted == std::vector<std::string>{"net1", "dev7"});
    CHECK(f.kernel.pod.by_name(tmp) != nullptr);
  }
  SECTION("with the intent, it goes, and so does the intent") {
    f.kernel.plant(f.kernel.pod, tmp, "");
    REQUIRE(f.intents().record(tmp, {"n", {"c1", "net1"}}).ok());
    REQUIRE(f.plugin->del(Fixture::request(cni::Command::kDel, "c1")).ok());
    CHECK(f.kernel.deleted == std::vector<std::string>{"net1", tmp, "dev7"});
    CHECK(f.intents_left() == 0);
  }
  CHECK(f.reserved.empty());
  CHECK(f.kernel.host.by_name("dev8") != nullptr);
  CHECK(f.kernel.host.by_name("dev9") != nullptr);
  CHECK(f.kernel.host.by_name("net1") != nullptr);
  CHECK(f.kernel.host.by_name(tmp) != nullptr);
}

TEST_CASE("GC deletes only this network's children of invalid attachments") {
  Fixture f;
  const std::string dead_tmp = temporary_child_name("dead2", "net1");
  f.kernel.plant(f.kernel.host, "dev1", "ipoib-cni:n:dead:net1");
  f.kernel.plant(f.kernel.host, "dev2", "ipoib-cni:n:live:net1");
  f.kernel.plant(f.kernel.host, "dev3", "ipoib-cni:other:dead:net1");
  f.kernel.plant(f.kernel.host, "dev4", "ipoib-cni:dead:net1");  // legacy: network unknown
  f.kernel.plant(f.kernel.host, dead_tmp, "");
  REQUIRE(f.intents().record(dead_tmp, {"n", {"dead2", "net1"}}).ok());
  f.kernel.plant(f.kernel.host, temporary_child_name("shape", "net1"), "");  // no intent
  const std::vector<cni::Attachment> valid = {{"live", "net1"}};
  REQUIRE(f.plugin->gc(Fixture::request(cni::Command::kGc, ""), valid).ok());
  CHECK(f.kernel.deleted == std::vector<std::string>{"dev1", dead_tmp});
  CHECK(f.intents_left() == 0);
  // Without a valid list nothing is deleted.
  f.kernel.deleted.clear();
  REQUIRE(f.plugin->gc(Fixture::request(cni::Command::kGc, ""), std::nullopt).ok());
  CHECK(f.kernel.deleted.empty());
}

TEST_CASE("CHECK: no cached result is explained; a legacy tag still passes") {
  Fixture f;
  auto missing = f.plugin->check(Fixture::request(cni::Command::kCheck, "c1"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == ErrorCode::kCheckFailed);
  CHECK(missing.error().msg().find("no cached result for attachment c1/net1 of network n") !=
        std::string::npos);

  auto added = f.plugin->add(Fixture::request(cni::Command::kAdd, "c1"));
  REQUIRE(added.ok());
  auto prev = json::parse(cni::encode_result(*added, cni::kLatestVersion)->dump());
  auto req = Fixture::request(cni::Command::kCheck, "c1", "net1", {{"prevResult", prev}});
  CHECK(f.plugin->check(req).ok());
  f.kernel.pod.by_name("net1")->alias = "ipoib-cni:c1:net1";  // made by the previous release
  CHECK(f.plugin->check(req).ok());
  f.kernel.pod.by_name("net1")->alias = "ipoib-cni:other:c1:net1";
  auto foreign = f.plugin->check(req);
  REQUIRE_FALSE(foreign.ok());
  CHECK(foreign.error().msg().find("was not created by this plugin") != std::string::npos);
}

TEST_CASE("a tag too long for the kernel fails ADD before anything, never DEL") {
  Fixture f;
  const std::string long_id(250, 'c');
  auto added = f.plugin->add(Fixture::request(cni::Command::kAdd, long_id));
  REQUIRE_FALSE(added.ok());
  CHECK(added.error().code() == ErrorCode::kInvalidEnvironment);
  CHECK(added.error().msg().find("too long to tag") != std::string::npos);
  CHECK(f.kernel.pod.links.empty());
  CHECK(f.intents_left() == 0);
  CHECK(f.plugin->del(Fixture::request(cni::Command::kDel, long_id)).ok());
}

TEST_CASE("a MAC or an InfiniBand GUID, which an IPoIB child cannot honour, is refused") {
  Fixture f;
  auto with_args = Fixture::request(cni::Command::kAdd, "c1");
  with_args.env.args = *cni::parse_cni_args("MAC=02:00:00:00:00:01");
  auto mac = f.plugin->add(with_args);
  REQUIRE_FALSE(mac.ok());
  CHECK(mac.error().code() == ErrorCode::kInvalidEnvironment);
  CHECK_THAT(mac.error().msg(), Catch::Contains("CNI_ARGS MAC") && Catch::Contains("20-byte"));

  auto guid = f.plugin->add(
      Fixture::request(cni::Command::kAdd, "c2", "net1",
                       {{"capabilities", {{"infinibandGUID", true}}},
                        {"runtimeConfig", {{"infinibandGUID", "c2:11:22:33:44:55:66:77"}}}}));
  REQUIRE_FALSE(guid.ok());
  CHECK(guid.error().code() == ErrorCode::kInvalidNetworkConfig);
  CHECK_THAT(guid.error().msg(), Catch::Contains("runtimeConfig.infinibandGUID"));

  auto args_mac = f.plugin->add(Fixture::request(
      cni::Command::kAdd, "c3", "net1", {{"args", {{"cni", {{"mac", "02:00:00:00:00:03"}}}}}}));
  REQUIRE_FALSE(args_mac.ok());
  CHECK_THAT(args_mac.error().msg(), Catch::Contains("args.cni.mac"));
  // Nothing was created or reserved on the way.
  CHECK(f.kernel.pod.links.empty());
  CHECK(f.reserved.empty());
  CHECK(f.intents_left() == 0);
}
