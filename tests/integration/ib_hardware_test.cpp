// The installed `ipoib` binary with the real IPoIB kind, on a host with an InfiniBand port:
// ADD creates an ipoib child (20-byte hardware address, configured pkey/mode/MTU) in a fresh pod
// netns, CHECK passes, DEL leaves nothing. Exits 77 with the reason when the host has no usable
// IPoIB port (as on CI's and developers' machines without HCAs).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <csignal>

#include "harness.h"

using itest::json;

namespace {

const std::string kBinary = IPOIB_PLUGIN_PATH;
std::string g_master;

// The first IPoIB port interface (type 32, not a child, up) in this netns.
std::string find_ipoib_master() {
  std::string out;
  itest::sh("ip -d -j link show", &out);
  const json links = json::parse(out, nullptr, false);
  if (!links.is_array()) {
    return "";
  }
  for (const auto& l : links) {
    const bool infiniband = l.value("link_type", "") == "infiniband";
    const bool child = l.contains("link") || l.contains("link_index");
    const auto flags = l.value("flags", json::array());
    const bool up = std::find(flags.begin(), flags.end(), "UP") != flags.end();
    if (infiniband && !child && up) {
      return l.value("ifname", "");
    }
  }
  return "";
}

}  // namespace

TEST_CASE("IPoIB child on real hardware: ADD, CHECK, DEL") {
  itest::NetnsGuard pod("plgib" + std::to_string(::getpid()));
  REQUIRE(pod.ok());
  itest::TempDir store;
  const std::string id = "plgib" + std::to_string(::getpid());
  json conf = {
      {"cniVersion", "1.1.0"},
      {"name", "plgib"},
      {"type", "ipoib"},
      {"master", g_master},
      {"mode", "datagram"},
      {"ipam", {{"type", "whereabouts"}, {"range", "10.79.0.0/24"}, {"store_dir", store.path()}}}};
  auto add = itest::run(kBinary, "", itest::cni_env("ADD", id, pod.path(), "ib1"), conf.dump());
  INFO(add.out);
  REQUIRE(add.exit_code == 0);
  const auto& itf = add.doc["interfaces"][0];
  CHECK(itf["mac"].get<std::string>().size() == 59);  // 20 bytes hex-colon
  const auto child = itest::link(pod.name(), "ib1");
  REQUIRE(child.is_object());
  CHECK(child["linkinfo"]["info_kind"] == "ipoib");
  CHECK(child["linkinfo"]["info_data"]["mode"] == "datagram");
  const auto parent = itest::link("", g_master);
  (void)parent;
  conf["prevResult"] = add.doc;
  auto check = itest::run(kBinary, "", itest::cni_env("CHECK", id, pod.path(), "ib1"), conf.dump());
  INFO(check.out);
  CHECK(check.exit_code == 0);
  auto del = itest::run(kBinary, "", itest::cni_env("DEL", id, pod.path(), "ib1"), conf.dump());
  CHECK(del.exit_code == 0);
  CHECK(itest::tagged_links(pod.name()).empty());
}

int main(int argc, char** argv) {
  // A plugin that exits before reading stdin must fail its test, not kill this process.
  std::signal(SIGPIPE, SIG_IGN);
  std::string why;
  if (!itest::can_run_privileged(&why)) {
    std::fprintf(stderr, "SKIP integration.plugin_ib_hardware: %s\n", why.c_str());
    return 77;
  }
  g_master = find_ipoib_master();
  if (g_master.empty()) {
    std::fprintf(stderr,
                 "SKIP integration.plugin_ib_hardware: no IPoIB port interface (link type "
                 "infiniband, a parent, up) on this host\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
