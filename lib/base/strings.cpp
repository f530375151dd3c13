#include "ipoib/base/strings.h"

#include <cctype>
#include <charconv>

namespace ipoib {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const auto pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && is_space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_space(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

namespace {

// "\"<at most 32 bytes of text>\"", built by appending: the equivalent `"\"" + std::string(t)`
// makes GCC 12 at -O3 report a false -Wrestrict inside basic_string::_M_replace (GCC bugs
// 105329, 105651; the top-level CMakeLists.txt turns the warning off for GCC 12 everywhere).
std::string quoted_prefix(std::string_view text) {
  std::string out;
  const std::string_view shown = text.substr(0, 32);
  out.reserve(shown.size() + 2);
  out += '"';
  out.append(shown);
  out += '"';
  return out;
}

}  // namespace

Result<std::uint64_t> parse_uint(std::string_view text, int bits) {
  int base = 10;
  std::string_view digits = text;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  }
  std::uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size()) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 quoted_prefix(text) + " is not an unsigned number");
  }
  if (bits < 64 && value >> bits != 0) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 quoted_prefix(text) + " does not fit in " + std::to_string(bits) + " bits");
  }
  return value;
}

}  // namespace ipoib
