#include "ipoib/base/error.h"

#include <catch2/catch.hpp>

using ipoib::Error;
using ipoib::ErrorCode;
using ipoib::Result;
using ipoib::Status;

namespace {

Result<int> half(int v) {
  if (v % 2 != 0) {
    return Error(ErrorCode::kInvalidNetworkConfig, "odd");
  }
  return v / 2;
}

Result<int> quarter(int v) {
  IPOIB_TRY_ASSIGN(int h, half(v));
  IPOIB_TRY_ASSIGN(int q, half(h));
  return q;
}

Status check_even(int v) {
  IPOIB_TRY_CTX(half(v), "check " + std::to_string(v));
  return {};
}

}  // namespace

TEST_CASE("TRY propagates errors and values") {
  CHECK(*quarter(8) == 2);
  auto r = quarter(6);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg() == "odd");
  CHECK(check_even(4).ok());
  auto s = check_even(3);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().msg() == "check 3: odd");
  CHECK(s.error().code() == ErrorCode::kInvalidNetworkConfig);
}
