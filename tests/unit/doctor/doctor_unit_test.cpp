// unit.doctor: the doctor's parsers (proc limits, systemd units, dockerd arguments, NAD YAML,
// --config) in isolation.
#include <catch2/catch.hpp>

#include "ipoib/doctor/doctor.h"
#include "lib/doctor/internal.h"
#include "tests/fixtures/fixture_tree.h"

using namespace ipoib;
using namespace ipoib::doctor::detail;
using ipoib::testing::FixtureTree;

TEST_CASE("Max locked memory parses from /proc/<pid>/limits", "[doctor]") {
  const auto limited = parse_proc_limits(ipoib::testing::proc_limits("65536", "8388608"));
  REQUIRE(limited);
  CHECK(limited->soft_bytes == 65536U);
  CHECK(limited->hard_bytes == 8388608U);
  CHECK_FALSE(limited->unlimited());

  const auto unlimited = parse_proc_limits(ipoib::testing::proc_limits("unlimited", "unlimited"));
  REQUIRE(unlimited);
  CHECK(unlimited->unlimited());

  const auto mixed = parse_proc_limits(ipoib::testing::proc_limits("65536", "unlimited"));
  REQUIRE(mixed);
  CHECK_FALSE(mixed->unlimited());
  CHECK_FALSE(mixed->hard_bytes);

  CHECK_FALSE(parse_proc_limits("Limit  Soft Limit  Hard Limit  Units\n"));
  CHECK_FALSE(parse_proc_limits("Max locked memory         lots  bytes\n"));
}

TEST_CASE("systemd unit files: main file, drop-ins, continuations, resets", "[doctor]") {
  FixtureTree tree;
  tree.file("lib/systemd/system/containerd.service",
            "[Unit]\nLimitMEMLOCK=ignored-outside-service\n[Service]\n"
            "ExecStart=/usr/bin/containerd \\\n  --config /etc/containerd/config.toml\n"
            "LimitMEMLOCK=65536\n");
  auto unit = read_unit(tree.path(), "containerd.service");
  REQUIRE(unit.found());
  CHECK(unit.limit_memlock == "65536");
  CHECK(unit.exec_start == "/usr/bin/containerd  --config /etc/containerd/config.toml");

  // /etc overrides /lib for the main file; drop-ins apply in file-name order; an /etc drop-in
  // masks the /lib one with the same name; an empty assignment resets.
  tree.file("etc/systemd/system/containerd.service", "[Service]\nExecStart=/opt/containerd\n");
  tree.file("lib/systemd/system/containerd.service.d/10-limit.conf",
            "[Service]\nLimitMEMLOCK=1024\n");
  tree.file("etc/systemd/system/containerd.service.d/10-limit.conf",
            "[Service]\nLimitMEMLOCK=infinity\n");
  tree.file("etc/systemd/system/containerd.service.d/README", "LimitMEMLOCK=0\n");
  unit = read_unit(tree.path(), "containerd.service");
  CHECK(unit.files.size() == 2);
  CHECK(unit.exec_start == "/opt/containerd");
  CHECK(unit.limit_memlock == "infinity");

  tree.file("run/systemd/system/containerd.service.d/20-reset.conf", "[Service]\nLimitMEMLOCK=\n");
  unit = read_unit(tree.path(), "containerd.service");
  CHECK_FALSE(unit.limit_memlock);

  CHECK_FALSE(read_unit(tree.path(), "crio.service").found());
}

TEST_CASE("memlock spellings", "[doctor]") {
  CHECK(memlock_value_unlimited("infinity"));
  CHECK(memlock_value_unlimited(" infinity:infinity "));
  CHECK_FALSE(memlock_value_unlimited("65536"));
  CHECK_FALSE(memlock_value_unlimited("infinity:65536"));

  CHECK(docker_args_memlock_unlimited("/usr/bin/dockerd -H fd:// --default-ulimit memlock=-1:-1"));
  CHECK(docker_args_memlock_unlimited("dockerd --default-ulimit=memlock=unlimited --debug"));
  CHECK_FALSE(docker_args_memlock_unlimited("dockerd --default-ulimit memlock=-1:65536"));
  CHECK_FALSE(docker_args_memlock_unlimited("dockerd --default-ulimit nofile=-1:-1"));
  CHECK_FALSE(docker_args_memlock_unlimited("dockerd memlock=-1:-1"));
}

TEST_CASE("memlock fix quotes both remedies for every runtime", "[doctor]") {
  for (const char* runtime : {"containerd", "dockerd", "crio"}) {
    const std::string fix = memlock_fix(runtime);
    CHECK_THAT(fix, Catch::Contains("Remedy 1"));
    CHECK_THAT(fix, Catch::Contains("Remedy 2"));
    CHECK_THAT(fix, Catch::Contains("scripts/install --fix-memlock"));
    CHECK_THAT(fix, Catch::Contains("JARVICE_APP_ALLOW_ROOT_INIT"));
  }
  CHECK_THAT(memlock_fix("dockerd"), Catch::Contains("`ExecStart=/usr/bin/dockerd` line"));
}

TEST_CASE("--config reads a network config, a conflist or a NAD", "[doctor]") {
  FixtureTree tree;
  SECTION("plain config; explicit options win") {
    tree.file("c.conf",
              R"({"cniVersion":"1.0.0","name":"n","type":"ipoib","master":"ib1","pkey":32769,)"
              R"("mode":"connected","mtu":65520,"ipam":{"type":"whereabouts",)"
              R"("range":"10.0.0.0/24","store_dir":"/s","network_name":"blue"}})");
    doctor::DoctorOptions options;
    options.master = "ib0";
    REQUIRE(doctor::apply_config_file(tree.abs("c.conf"), options).ok());
    CHECK(options.master == "ib0");
    CHECK(options.pkey == 0x8001);
    CHECK(options.mode == "connected");
    CHECK(options.mtu == 65520);
    CHECK(options.store_dir == "/s");
    CHECK(options.network_name == "blue");
  }
  SECTION("conflist") {
    tree.file("c.conflist", R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"tuning"},)"
                            R"({"type":"ipoib","master":"ib2","pkey":"0x7fff"}]})");
    doctor::DoctorOptions options;
    REQUIRE(doctor::apply_config_file(tree.abs("c.conflist"), options).ok());
    CHECK(options.master == "ib2");
    CHECK(options.pkey == 0x7fff);
  }
  SECTION("NAD as JSON") {
    tree.file(
        "nad.json",
        R"({"kind":"NetworkAttachmentDefinition","spec":{"config":"{\"name\":\"n\",\"type\":\"ipoib\",\"master\":\"ib3\"}"}})");
    doctor::DoctorOptions options;
    REQUIRE(doctor::apply_config_file(tree.abs("nad.json"), options).ok());
    CHECK(options.master == "ib3");
  }
  SECTION("errors") {
    doctor::DoctorOptions options;
    tree.file("macvlan.conf", R"({"name":"n","type":"macvlan"})");
    auto none = doctor::apply_config_file(tree.abs("macvlan.conf"), options);
    REQUIRE_FALSE(none.ok());
    CHECK_THAT(none.error().msg(), Catch::Contains("no plugin of type \"ipoib\""));
    tree.file("bad-pkey.conf", R"({"name":"n","type":"ipoib","master":"ib0","pkey":"0x1ffff"})");
    auto bad = doctor::apply_config_file(tree.abs("bad-pkey.conf"), options);
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.error().msg(), Catch::Contains("bad-pkey.conf: pkey: "));
    // What the old doctor re-parse accepted and ADD refuses: no range for the built-in IPAM.
    tree.file("no-range.conf",
              R"({"name":"n","type":"ipoib","master":"ib0","ipam":{"type":"whereabouts"}})");
    auto no_range = doctor::apply_config_file(tree.abs("no-range.conf"), options);
    REQUIRE_FALSE(no_range.ok());
    CHECK_THAT(no_range.error().msg(), Catch::Contains("ipam.range: missing"));
    tree.file("junk.txt", "not: [json");
    CHECK_FALSE(doctor::apply_config_file(tree.abs("junk.txt"), options).ok());
    CHECK_FALSE(doctor::apply_config_file(tree.abs("absent"), options).ok());
  }
}
