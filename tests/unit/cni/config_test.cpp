#include "ipoib/cni/config.h"

#include <catch2/catch.hpp>

using namespace ipoib;
using namespace ipoib::cni;
using nlohmann::json;

namespace {

std::string conf_with(const json& extra) {
  json doc = {{"cniVersion", "1.0.0"}, {"name", "ib-net"}, {"type", "ipoib"}};
  doc.update(extra);
  return doc.dump();
}

}  // namespace

TEST_CASE("config: cniVersion negotiation", "[cni][config]") {
  struct Case {
    std::string text;
    CniVersion version;
    std::string version_text;
  };
  const std::vector<Case> table = {
      {R"({"cniVersion":"0.1.0","name":"n"})", CniVersion::k0_1_0, "0.1.0"},
      {R"({"cniVersion":"0.2.0","name":"n"})", CniVersion::k0_2_0, "0.2.0"},
      {R"({"cniVersion":"0.3.0","name":"n"})", CniVersion::k0_3_0, "0.3.0"},
      {R"({"cniVersion":"0.3.1","name":"n"})", CniVersion::k0_3_1, "0.3.1"},
      {R"({"cniVersion":"0.4.0","name":"n"})", CniVersion::k0_4_0, "0.4.0"},
      {R"({"cniVersion":"1.0.0","name":"n"})", CniVersion::k1_0_0, "1.0.0"},
      {R"({"cniVersion":"1.1.0","name":"n"})", CniVersion::k1_1_0, "1.1.0"},
      // SPEC.md: no cniVersion means 0.1.0; libcni treats "" the same.
      {R"({"name":"n"})", CniVersion::k0_1_0, ""},
      {R"({"cniVersion":"","name":"n"})", CniVersion::k0_1_0, ""},
      {R"({"cniVersion":null,"name":"n"})", CniVersion::k0_1_0, ""},
      // cniVersions: the highest entry both sides support.
      {R"({"cniVersions":["0.3.1","1.0.0","9.9.9"],"name":"n"})", CniVersion::k1_0_0, ""},
      {R"({"cniVersions":["1.1.0","0.4.0"],"name":"n"})", CniVersion::k1_1_0, ""},
      // An explicit cniVersion wins over the list.
      {R"({"cniVersion":"0.4.0","cniVersions":["1.1.0"],"name":"n"})", CniVersion::k0_4_0, "0.4.0"},
  };
  for (const auto& c : table) {
    INFO(c.text);
    const auto conf = parse_netconf(c.text);
    REQUIRE(conf.ok());
    CHECK(conf->version == c.version);
    CHECK(conf->version_text == c.version_text);
  }
}

TEST_CASE("config: errors carry the checklist's codes", "[cni][config]") {
  struct Case {
    std::string text;
    ErrorCode code;
    std::string msg_part;
  };
  const std::vector<Case> table = {
      {"", ErrorCode::kDecodeFailure, "invalid JSON"},
      {"not json", ErrorCode::kDecodeFailure, "invalid JSON"},
      {R"({"name":"n"} {"name":"m"})", ErrorCode::kDecodeFailure, "invalid JSON"},
      {"[1,2]", ErrorCode::kDecodeFailure, "must be a JSON object"},
      {R"("text")", ErrorCode::kDecodeFailure, "must be a JSON object"},
      {R"({"cniVersion":"1.0.0"})", ErrorCode::kInvalidNetworkConfig, "missing network name"},
      {R"({"cniVersion":"1.0.0","name":""})", ErrorCode::kInvalidNetworkConfig,
       "missing network name"},
      {R"({"cniVersion":"1.0.0","name":"bad name"})", ErrorCode::kInvalidNetworkConfig,
       "invalid characters found in network name"},
      {R"({"cniVersion":"1.0.0","name":"-x"})", ErrorCode::kInvalidNetworkConfig,
       "invalid characters found in network name"},
      {R"({"cniVersion":"1.0.0","name":7})", ErrorCode::kDecodeFailure, "name: must be a string"},
      {R"({"cniVersion":"0.9.9","name":"n"})", ErrorCode::kIncompatibleVersion,
       "config is \"0.9.9\""},
      {R"({"cniVersion":100,"name":"n"})", ErrorCode::kDecodeFailure,
       "cniVersion: must be a string"},
      {R"({"cniVersions":["2.0.0"],"name":"n"})", ErrorCode::kIncompatibleVersion,
       "no entry of cniVersions is supported"},
      {R"({"cniVersions":"1.0.0","name":"n"})", ErrorCode::kDecodeFailure, "cniVersions"},
      {R"({"cniVersion":"1.0.0","name":"n","type":1})", ErrorCode::kDecodeFailure, "type"},
      {R"({"cniVersion":"1.0.0","name":"n","capabilities":[]})", ErrorCode::kDecodeFailure,
       "capabilities: must be an object"},
      {R"({"cniVersion":"1.0.0","name":"n","capabilities":{"ips":"yes"}})",
       ErrorCode::kDecodeFailure, "capabilities.ips"},
      {R"({"cniVersion":"1.0.0","name":"n","runtimeConfig":1})", ErrorCode::kDecodeFailure,
       "runtimeConfig"},
      {R"({"cniVersion":"1.0.0","name":"n","args":{"cni":[]}})", ErrorCode::kDecodeFailure,
       "args.cni"},
      {R"({"cniVersion":"1.0.0","name":"n","prevResult":[]})", ErrorCode::kDecodeFailure,
       "prevResult"},
      {R"({"cniVersion":"1.0.0","name":"n","prevResult":{"ips":[{"address":"10.0.0.5"}]}})",
       ErrorCode::kDecodeFailure, "prevResult: result: ips[0].address"},
  };
  for (const auto& c : table) {
    INFO(c.text);
    const auto conf = parse_netconf(c.text);
    REQUIRE_FALSE(conf.ok());
    CHECK(conf.error().code() == c.code);
    CHECK_THAT(conf.error().msg(), Catch::Contains(c.msg_part));
  }
}

TEST_CASE("config: an unknown cniVersion lists the supported versions", "[cni][config]") {
  const auto conf = parse_netconf(R"({"cniVersion":"1.2.0","name":"n"})");
  REQUIRE_FALSE(conf.ok());
  CHECK(conf.error().code() == ErrorCode::kIncompatibleVersion);
  CHECK(conf.error().details() == "0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
}

TEST_CASE("config: name, type, unknown keys (Multus deviceID, pciBusID) ignored", "[cni][config]") {
  const auto conf = parse_netconf(conf_with({{"deviceID", "0000:3b:00.1"},
                                             {"pciBusID", "0000:3b:00.1"},
                                             {"master", "ib0"},
                                             {"ipam", {{"type", "ipoib-ipam"}}}}));
  REQUIRE(conf.ok());
  CHECK(conf->name == "ib-net");
  CHECK(conf->type == "ipoib");
  CHECK(conf->raw.value("master", "") == "ib0");
  CHECK(conf->raw.at("deviceID") == "0000:3b:00.1");
  CHECK_FALSE(conf->prev_result.has_value());
  CHECK(conf->args_cni == json::object());
  CHECK(conf->runtime_config == json::object());
}

TEST_CASE("config: runtimeConfig keeps only capabilities declared true", "[cni][config]") {
  const auto conf = parse_netconf(
      conf_with({{"capabilities", {{"ips", true}, {"mac", false}, {"infinibandGUID", true}}},
                 {"runtimeConfig",
                  {{"ips", {"10.0.0.5/24"}},
                   {"mac", "80:00:00:48"},
                   {"portMappings", json::array()},
                   {"infinibandGUID", "c2:11:22:33:44:55:66:77"}}}}));
  REQUIRE(conf.ok());
  CHECK(conf->runtime_config ==
        json({{"ips", {"10.0.0.5/24"}}, {"infinibandGUID", "c2:11:22:33:44:55:66:77"}}));
  // libcni does not strip capabilities: the plugin still sees them.
  CHECK(conf->capabilities.at("mac") == false);
}

TEST_CASE("config: args.cni from Multus cni-args", "[cni][config]") {
  const auto conf =
      parse_netconf(conf_with({{"args", {{"cni", {{"ips", {"10.0.0.9/24"}}, {"x", 1}}}}}}));
  REQUIRE(conf.ok());
  CHECK(conf->args_cni == json({{"ips", {"10.0.0.9/24"}}, {"x", 1}}));
  // "args" without "cni" is fine too.
  const auto other = parse_netconf(conf_with({{"args", {{"labels", json::array()}}}}));
  REQUIRE(other.ok());
  CHECK(other->args_cni == json::object());
}

TEST_CASE("config: prevResult in every shape", "[cni][config]") {
  const IpPrefix v4 = *IpPrefix::parse("10.56.217.5/16");
  const IpPrefix v6 = *IpPrefix::parse("fd00:56::5/64");
  struct Case {
    std::string name;
    json prev;
    std::size_t interfaces, ips, routes;
  };
  const std::vector<Case> table = {
      {"1.0.0 result with dns {}",
       {{"cniVersion", "1.0.0"},
        {"interfaces", {{{"name", "net1"}, {"sandbox", "/var/run/netns/x"}}}},
        {"ips", {{{"address", "10.56.217.5/16"}, {"interface", 0}}}},
        {"dns", json::object()}},
       1,
       1,
       0},
      {"0.4.0 result with ips[].version",
       {{"cniVersion", "0.4.0"},
        {"ips", {{{"version", "4"}, {"address", "10.56.217.5/16"}, {"gateway", "10.56.0.1"}}}},
        {"routes", {{{"dst", "0.0.0.0/0"}}}}},
       0,
       1,
       1},
      {"0.2.0 result with ip4 and ip6",
       {{"cniVersion", "0.2.0"},
        {"ip4", {{"ip", "10.56.217.5/16"}, {"routes", {{{"dst", "0.0.0.0/0"}}}}}},
        {"ip6", {{"ip", "fd00:56::5/64"}, {"gateway", "fd00:56::1"}}},
        {"dns", json::object()}},
       0,
       2,
       1},
      {"delegated IPAM output without cniVersion or interfaces",
       {{"ips", {{{"address", "10.56.217.5/16"}, {"gateway", ""}}}}},
       0,
       1,
       0},
      {"empty result", json::object(), 0, 0, 0},
      {"null fields", {{"interfaces", nullptr}, {"ips", nullptr}, {"dns", nullptr}}, 0, 0, 0},
  };
  for (const auto& c : table) {
    INFO(c.name);
    const auto conf = parse_netconf(conf_with({{"prevResult", c.prev}}));
    REQUIRE(conf.ok());
    REQUIRE(conf->prev_result.has_value());
    CHECK(conf->prev_result->interfaces.size() == c.interfaces);
    CHECK(conf->prev_result->ips.size() == c.ips);
    CHECK(conf->prev_result->routes.size() == c.routes);
    if (c.ips > 0) {
      CHECK(conf->prev_result->ips[0].address == v4);
    }
    if (c.ips > 1) {
      CHECK(conf->prev_result->ips[1].address == v6);
      CHECK(conf->prev_result->ips[1].gateway == IpAddress::parse("fd00:56::1").value());
    }
  }
}

TEST_CASE("config: hostile nesting is refused without recursion", "[cni][config]") {
  for (const std::size_t depth : {65U, 1000U, 200000U}) {
    INFO(depth);
    const std::string deep =
        R"({"name":"n","x":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
    const auto conf = parse_netconf(deep);
    REQUIRE_FALSE(conf.ok());
    CHECK(conf.error().code() == ErrorCode::kDecodeFailure);
    CHECK_THAT(conf.error().msg(), Catch::Contains("nested deeper than 64"));
  }
  // Unbalanced and inside strings: brackets in strings do not count.
  CHECK(parse_netconf(R"({"name":"n","x":")" + std::string(5000, '[') + R"("})").ok());
  CHECK_FALSE(parse_netconf(std::string(100000, '{')).ok());
  // 64 levels in total are fine.
  const std::string ok = R"({"name":"n","x":)" + std::string(63, '[') + std::string(63, ']') + "}";
  CHECK(parse_netconf(ok).ok());
}

TEST_CASE("sniff_version finds a usable version or nothing", "[cni][config]") {
  CHECK(sniff_version(R"({"cniVersion":"0.3.1"})") == CniVersion::k0_3_1);
  CHECK(sniff_version(R"({"cniVersion":"1.1.0","name":"bad name"})") == CniVersion::k1_1_0);
  CHECK(sniff_version(R"({"cniVersions":["0.4.0","1.0.0"]})") == CniVersion::k1_0_0);
  CHECK_FALSE(sniff_version("").has_value());
  CHECK_FALSE(sniff_version("{").has_value());
  CHECK_FALSE(sniff_version("[]").has_value());
  CHECK_FALSE(sniff_version(R"({"cniVersion":"7.0.0"})").has_value());
  CHECK_FALSE(sniff_version(R"({"cniVersion":1})").has_value());
  CHECK_FALSE(sniff_version(R"({"name":"n"})").has_value());
}

TEST_CASE("parse_json never throws and names what it parsed", "[cni][config]") {
  const auto bad = parse_json("{\"a\":\xff}", "delegate output");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code() == ErrorCode::kDecodeFailure);
  CHECK_THAT(bad.error().msg(), Catch::StartsWith("delegate output: invalid JSON"));
  const auto good = parse_json(R"({"a":[1,{"b":null}]})", "x");
  REQUIRE(good.ok());
  CHECK(good->at("a").at(1).at("b").is_null());
}
