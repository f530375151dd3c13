// ipoib/base/strings.h — small string helpers shared by the parsers.
//
//   split("a;b;;c", ';')        -> {"a", "b", "", "c"}
//   iequals("TRUE", "true")     -> true
//   parse_uint("0x8001", 16)    -> 0x8001 (decimal or 0x-hex; Result, no overflow)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"

namespace ipoib {

std::vector<std::string_view> split(std::string_view s, char sep);
bool iequals(std::string_view a, std::string_view b);
std::string_view trim(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);

// Decimal, or hexadecimal with a 0x/0X prefix; rejects signs, spaces, empty input and values
// that do not fit in `bits` bits. Errors are kInvalidNetworkConfig with a generic message; the
// caller adds the key as context.
Result<std::uint64_t> parse_uint(std::string_view text, int bits);

}  // namespace ipoib
