// ipoib/base/ip.h — IPv4/IPv6 addresses and prefixes with full 128-bit arithmetic.
//
//   auto a = IpAddress::parse("10.0.0.5");          // Result<IpAddress>
//   auto p = IpPrefix::parse("fd00::1/64");          // keeps host bits: address fd00::1, len 64
//   p->network().to_string();                        // "fd00::/64"
//   a->offset_by(3).to_string();                     // "10.0.0.8"
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "ipoib/base/error.h"

namespace ipoib {

__extension__ using u128 = unsigned __int128;  // GCC and clang both provide it

enum class IpFamily : std::uint8_t { kV4 = 4, kV6 = 6 };

class IpAddress {
 public:
  IpAddress() = default;
  // From a 128-bit value; for kV4 only the low 32 bits are used.
  IpAddress(IpFamily family, u128 value);

  // Accepts dotted-quad IPv4 or any textual IPv6 (inet_pton rules). An IPv4-mapped IPv6
  // address stays IPv6. Errors are kInvalidNetworkConfig naming the text.
  static Result<IpAddress> parse(std::string_view text);
  // From network-order bytes: 4 for IPv4, 16 for IPv6.
  static IpAddress from_bytes(IpFamily family, const std::uint8_t* bytes);

  [[nodiscard]] IpFamily family() const { return family_; }
  [[nodiscard]] bool is_v4() const { return family_ == IpFamily::kV4; }
  [[nodiscard]] int bit_length() const { return is_v4() ? 32 : 128; }
  [[nodiscard]] u128 value() const { return value_; }
  // Network-order bytes; 4 or 16 of them are meaningful.
  [[nodiscard]] std::array<std::uint8_t, 16> bytes() const;
  [[nodiscard]] std::size_t byte_length() const { return is_v4() ? 4 : 16; }
  // Canonical text: "10.0.0.1", "fd00::1" (RFC 5952, as inet_ntop writes it).
  [[nodiscard]] std::string to_string() const;

  // Wraps within the family's width; callers check bounds against a range.
  [[nodiscard]] IpAddress offset_by(u128 delta) const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend std::strong_ordering operator<=>(const IpAddress& a, const IpAddress& b) {
    if (a.family_ != b.family_) {
      return a.family_ <=> b.family_;
    }
    return a.value_ == b.value_  ? std::strong_ordering::equal
           : a.value_ < b.value_ ? std::strong_ordering::less
                                 : std::strong_ordering::greater;
  }

 private:
  IpFamily family_ = IpFamily::kV4;
  u128 value_ = 0;
};

// An address with a prefix length; the address may carry host bits ("10.1.2.3/24").
class IpPrefix {
 public:
  IpPrefix() = default;
  IpPrefix(IpAddress address, int length) : address_(address), length_(length) {}

  // "a.b.c.d/n" or "x::y/n"; the length must fit the family. kInvalidNetworkConfig otherwise.
  static Result<IpPrefix> parse(std::string_view text);

  [[nodiscard]] const IpAddress& address() const { return address_; }
  [[nodiscard]] int length() const { return length_; }
  [[nodiscard]] IpFamily family() const { return address_.family(); }
  // The prefix with host bits cleared.
  [[nodiscard]] IpPrefix network() const;
  // The highest address of the prefix (all host bits set).
  [[nodiscard]] IpAddress last() const;
  [[nodiscard]] bool contains(const IpAddress& a) const;
  // "10.1.2.3/24" (host bits kept).
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;

 private:
  IpAddress address_;
  int length_ = 0;
};

// Mask with the top `length` bits of a `bits`-wide value set.
u128 prefix_mask(int bits, int length);

}  // namespace ipoib
