#include "ipoib/cni/version.h"

#include <catch2/catch.hpp>

using namespace ipoib;
using namespace ipoib::cni;

TEST_CASE("parse_version accepts exactly the seven supported versions", "[cni][version]") {
  const std::vector<std::pair<std::string, CniVersion>> table = {
      {"0.1.0", CniVersion::k0_1_0}, {"0.2.0", CniVersion::k0_2_0}, {"0.3.0", CniVersion::k0_3_0},
      {"0.3.1", CniVersion::k0_3_1}, {"0.4.0", CniVersion::k0_4_0}, {"1.0.0", CniVersion::k1_0_0},
      {"1.1.0", CniVersion::k1_1_0}};
  for (const auto& [text, version] : table) {
    INFO(text);
    const auto v = parse_version(text);
    REQUIRE(v.ok());
    CHECK(*v == version);
    CHECK(to_string(version) == text);
  }
}

TEST_CASE("parse_version rejects anything else with code 1 listing the supported versions",
          "[cni][version]") {
  for (const std::string text :
       {"", "1.2.0", "0.3", "1.0", "v1.0.0", " 1.0.0", "1.0.0 ", "2.0.0", "0.0.1", "1.1.0-rc1"}) {
    INFO("\"" << text << "\"");
    const auto v = parse_version(text);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error().code() == ErrorCode::kIncompatibleVersion);
    CHECK(v.error().details() == "0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
  }
}

TEST_CASE("versions compare in spec order", "[cni][version]") {
  CHECK(CniVersion::k0_3_1 < CniVersion::k0_4_0);
  CHECK(CniVersion::k0_4_0 < CniVersion::k1_0_0);
  CHECK(CniVersion::k1_0_0 < CniVersion::k1_1_0);
  CHECK(kLatestVersion == CniVersion::k1_1_0);
  CHECK(supported_versions_text() == "0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
}
