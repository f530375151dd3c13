#include "ipoib/base/ip.h"

#include <catch2/catch.hpp>

using ipoib::IpAddress;
using ipoib::IpFamily;
using ipoib::IpPrefix;
using ipoib::u128;

TEST_CASE("IPv4 addresses parse and format") {
  auto a = IpAddress::parse("10.1.2.3");
  REQUIRE(a.ok());
  CHECK(a->is_v4());
  CHECK(a->value() == 0x0a010203U);
  CHECK(a->to_string() == "10.1.2.3");
  CHECK(a->offset_by(253).to_string() == "10.1.3.0");
}

TEST_CASE("IPv6 addresses use 128-bit values") {
  auto a = IpAddress::parse("fd00::1");
  REQUIRE(a.ok());
  CHECK_FALSE(a->is_v4());
  CHECK((a->value() >> 112) == 0xfd00);
  CHECK(a->offset_by(u128{1} << 64).to_string() == "fd00:0:0:1::1");
  // An offset at or above 2^63 (where whereabouts loses addresses) is an ordinary value here.
  CHECK(a->offset_by(u128{1} << 63).to_string() == "fd00::8000:0:0:1");
}

TEST_CASE("bad addresses are errors naming the text") {
  for (const char* bad : {"", "1.2.3", "1.2.3.256", "fd00::g", "10.0.0.1/24", " 10.0.0.1"}) {
    auto a = IpAddress::parse(bad);
    CHECK_FALSE(a.ok());
  }
  auto a = IpAddress::parse("nonsense");
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().code() == ipoib::ErrorCode::kInvalidNetworkConfig);
  CHECK(a.error().msg().find("nonsense") != std::string::npos);
}

TEST_CASE("prefixes keep host bits and compute network and last") {
  auto p = IpPrefix::parse("192.168.2.225/28");
  REQUIRE(p.ok());
  CHECK(p->to_string() == "192.168.2.225/28");
  CHECK(p->network().to_string() == "192.168.2.224/28");
  CHECK(p->last().to_string() == "192.168.2.239");
  CHECK(p->contains(*IpAddress::parse("192.168.2.230")));
  CHECK_FALSE(p->contains(*IpAddress::parse("192.168.2.240")));
  CHECK_FALSE(p->contains(*IpAddress::parse("::1")));

  auto v6 = IpPrefix::parse("fd00:1:2::5/48");
  REQUIRE(v6.ok());
  CHECK(v6->network().to_string() == "fd00:1:2::/48");
  CHECK(v6->last().to_string() == "fd00:1:2:ffff:ffff:ffff:ffff:ffff");

  CHECK(IpPrefix::parse("0.0.0.0/0")->last().to_string() == "255.255.255.255");
  CHECK(IpPrefix::parse("::/0")->last().to_string() == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}

TEST_CASE("bad prefixes are rejected") {
  for (const char* bad : {"10.0.0.0", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "fd00::/129",
                          "10.0.0.0/08", "10.0.0.0/2x", "/24"}) {
    INFO(bad);
    CHECK_FALSE(IpPrefix::parse(bad).ok());
  }
}
