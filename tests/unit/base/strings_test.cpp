#include "ipoib/base/strings.h"

#include <catch2/catch.hpp>

TEST_CASE("split keeps empty fields") {
  auto parts = ipoib::split("a;b;;c", ';');
  REQUIRE(parts.size() == 4);
  CHECK(parts[2].empty());
  CHECK(ipoib::split("", ';').size() == 1);
}

TEST_CASE("parse_uint accepts decimal and hex within the width") {
  CHECK(*ipoib::parse_uint("0x8001", 16) == 0x8001);
  CHECK(*ipoib::parse_uint("32769", 16) == 32769);
  CHECK_FALSE(ipoib::parse_uint("0x10000", 16).ok());
  CHECK_FALSE(ipoib::parse_uint("-1", 16).ok());
  CHECK_FALSE(ipoib::parse_uint("", 16).ok());
  CHECK_FALSE(ipoib::parse_uint("0x", 16).ok());
  CHECK_FALSE(ipoib::parse_uint("12 ", 16).ok());
  CHECK_FALSE(ipoib::parse_uint("99999999999999999999999", 64).ok());
}

TEST_CASE("iequals and trim") {
  CHECK(ipoib::iequals("TrUe", "true"));
  CHECK_FALSE(ipoib::iequals("true1", "true"));
  CHECK(ipoib::trim("  x y \n") == "x y");
}
