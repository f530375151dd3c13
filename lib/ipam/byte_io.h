// lib/ipam/byte_io.h (private to the store) — little-endian byte writer and bounds-checked reader
// of the store's binary records (record_codec.h, journal.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ipoib/base/ip.h"

namespace ipoib::ipam::wire {

inline constexpr std::uint8_t kFamilyV4 = 4;
inline constexpr std::uint8_t kFamilyV6 = 6;

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v));
    u8(static_cast<std::uint8_t>(v >> 8));
  }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
      u8(static_cast<std::uint8_t>(v >> (8 * i)));
    }
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      u8(static_cast<std::uint8_t>(v >> (8 * i)));
    }
  }
  void u128v(u128 v, int bytes) {
    for (int i = 0; i < bytes; ++i) {
      u8(static_cast<std::uint8_t>(v >> (8 * i)));
    }
  }
  void ip(const IpAddress& a) {
    u8(a.is_v4() ? kFamilyV4 : kFamilyV6);
    u128v(a.value(), a.is_v4() ? 4 : 16);
  }
  void str(std::string_view s) {
    u8(static_cast<std::uint8_t>(s.size()));
    out_.append(s);
  }
  void str16(std::string_view s) {
    u16(static_cast<std::uint16_t>(s.size()));
    out_.append(s);
  }
  std::string& out() { return out_; }

 private:
  std::string& out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in)
      : p_(reinterpret_cast<const unsigned char*>(in.data())), n_(in.size()) {}
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] bool done() const { return n_ == 0; }
  [[nodiscard]] std::size_t left() const { return n_; }
  [[nodiscard]] const char* data() const { return reinterpret_cast<const char*>(p_); }
  void skip(std::size_t k) {
    if (need(k)) {
      p_ += k;
      n_ -= k;
    }
  }
  std::uint8_t u8() {
    if (!need(1)) {
      return 0;
    }
    --n_;
    return *p_++;
  }
  std::uint32_t u32() { return static_cast<std::uint32_t>(le(4)); }
  std::uint64_t u64() { return static_cast<std::uint64_t>(le(8)); }
  std::int64_t i64() { return static_cast<std::int64_t>(u64()); }
  std::optional<IpAddress> ip() {
    const std::uint8_t fam = u8();
    if (fam == kFamilyV4) {
      return IpAddress(IpFamily::kV4, le(4));
    }
    if (fam == kFamilyV6) {
      return IpAddress(IpFamily::kV6, le(16));
    }
    ok_ = false;
    return std::nullopt;
  }
  std::string_view str() {
    const std::size_t len = u8();
    if (!need(len)) {
      return {};
    }
    std::string_view s(reinterpret_cast<const char*>(p_), len);
    p_ += len;
    n_ -= len;
    return s;
  }

 private:
  bool need(std::size_t k) {
    if (!ok_ || n_ < k) {
      ok_ = false;
      return false;
    }
    return true;
  }
  u128 le(int bytes) {
    if (!need(static_cast<std::size_t>(bytes))) {
      return 0;
    }
    u128 v = 0;
    for (int i = 0; i < bytes; ++i) {
      v |= static_cast<u128>(p_[i]) << (8 * i);
    }
    p_ += bytes;
    n_ -= static_cast<std::size_t>(bytes);
    return v;
  }
  const unsigned char* p_;
  std::size_t n_;
  bool ok_ = true;
};

inline std::uint32_t load_u32(std::string_view b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + static_cast<std::size_t>(i)]))
         << (8 * i);
  }
  return v;
}

inline std::uint64_t load_u64(std::string_view b, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[at + static_cast<std::size_t>(i)]))
         << (8 * i);
  }
  return v;
}

}  // namespace ipoib::ipam::wire
