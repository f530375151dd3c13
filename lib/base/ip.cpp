#include "ipoib/base/ip.h"

#include <arpa/inet.h>

#include <charconv>

namespace ipoib {
namespace {

u128 width_mask(IpFamily family) { return family == IpFamily::kV4 ? u128{0xffffffffU} : ~u128{0}; }

}  // namespace

u128 prefix_mask(int bits, int length) {
  if (length <= 0) {
    return 0;
  }
  const u128 all = bits == 32 ? u128{0xffffffffU} : ~u128{0};
  if (length >= bits) {
    return all;
  }
  return all & ~(all >> length);
}

IpAddress::IpAddress(IpFamily family, u128 value)
    : family_(family), value_(value & width_mask(family)) {}

Result<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton needs a NUL-terminated string; bound the copy so hostile input stays cheap.
  if (text.empty() || text.size() > 64) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "invalid IP address \"" + std::string(text.substr(0, 64)) + "\"");
  }
  const std::string s(text);
  std::uint8_t buf[16];
  if (s.find(':') == std::string::npos) {
    if (::inet_pton(AF_INET, s.c_str(), buf) == 1) {
      return from_bytes(IpFamily::kV4, buf);
    }
  } else if (::inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    return from_bytes(IpFamily::kV6, buf);
  }
  return Error(ErrorCode::kInvalidNetworkConfig, "invalid IP address \"" + s + "\"");
}

IpAddress IpAddress::from_bytes(IpFamily family, const std::uint8_t* bytes) {
  const int n = family == IpFamily::kV4 ? 4 : 16;
  u128 v = 0;
  for (int i = 0; i < n; ++i) {
    v = (v << 8) | bytes[i];
  }
  return {family, v};
}

std::array<std::uint8_t, 16> IpAddress::bytes() const {
  std::array<std::uint8_t, 16> out{};
  const int n = static_cast<int>(byte_length());
  u128 v = value_;
  for (int i = n - 1; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  const auto b = bytes();
  ::inet_ntop(is_v4() ? AF_INET : AF_INET6, b.data(), buf, sizeof buf);
  return buf;
}

IpAddress IpAddress::offset_by(u128 delta) const { return {family_, value_ + delta}; }

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "invalid CIDR \"" + std::string(text.substr(0, 64)) + "\": no prefix length");
  }
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "invalid CIDR \"" + std::string(text.substr(0, 64)) + "\": bad address");
  }
  const std::string_view len_text = text.substr(slash + 1);
  int length = -1;
  const auto [ptr, ec] =
      std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
  if (len_text.empty() || ec != std::errc() || ptr != len_text.data() + len_text.size() ||
      length < 0 || length > addr->bit_length() || (len_text.size() > 1 && len_text[0] == '0')) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "invalid CIDR \"" + std::string(text.substr(0, 64)) + "\": bad prefix length");
  }
  return IpPrefix(*addr, length);
}

IpPrefix IpPrefix::network() const {
  return {IpAddress(family(), address_.value() & prefix_mask(address_.bit_length(), length_)),
          length_};
}

IpAddress IpPrefix::last() const {
  const int bits = address_.bit_length();
  return {family(), address_.value() | ~prefix_mask(bits, length_)};
}

bool IpPrefix::contains(const IpAddress& a) const {
  if (a.family() != family()) {
    return false;
  }
  const u128 mask = prefix_mask(address_.bit_length(), length_);
  return (a.value() & mask) == (address_.value() & mask);
}

std::string IpPrefix::to_string() const {
  return address_.to_string() + "/" + std::to_string(length_);
}

}  // namespace ipoib
