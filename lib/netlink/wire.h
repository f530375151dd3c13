// Private to lib/netlink: building requests on libnl's nl_msg and reading messages back.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ipoib/base/error.h"
#include "ipoib/base/ip.h"
#include "ipoib/netlink/message.h"

struct nl_msg;
struct nlattr;

namespace ipoib::netlink::wire {

// One request under construction. Every put* returns false when the message would exceed its
// buffer (a page), which requests of this module never do; build() turns that into kInternal.
class MessageBuilder {
 public:
  // Header with type/flags, seq 0, pid 0, followed by `header_len` bytes of `fixed_header`.
  MessageBuilder(std::uint16_t type, std::uint16_t flags, const void* fixed_header,
                 std::size_t header_len);
  ~MessageBuilder();
  MessageBuilder(const MessageBuilder&) = delete;
  MessageBuilder& operator=(const MessageBuilder&) = delete;

  void put_u32(int type, std::uint32_t value);
  void put_u16(int type, std::uint16_t value);
  void put_u8(int type, std::uint8_t value);
  void put_s32(int type, std::int32_t value);
  // Bytes exactly as given (no NUL added).
  void put_bytes(int type, ByteView bytes);
  // The string followed by its NUL (nla_put_string), as IFLA_IFNAME is sent by iproute2.
  void put_string(int type, std::string_view text);
  // Raw bytes at the current position, 4-byte aligned (a family header inside a nest).
  void append_raw(const void* data, std::size_t len);
  // Opens a nest without NLA_F_NESTED (iproute2's addattr_nest does not set it).
  void begin_nest(int type);
  void end_nest();

  Result<Bytes> build();

 private:
  nl_msg* msg_ = nullptr;
  nlattr* nests_[8] = {};
  int depth_ = 0;
  bool failed_ = false;
};

// A decoded message: header, the fixed family header and the attribute run after it.
struct Decoded {
  MessageHeader header;
  ByteView fixed;       // exactly the requested fixed header size
  ByteView attributes;  // the rest (aligned start)
};
// Checks type (when expected_type != 0) and that the fixed header fits.
Result<Decoded> decode(ByteView message, std::uint16_t expected_type, std::size_t fixed_len,
                       std::string_view what);

// Walks attributes without copying; returns false at the end, sets `bad` on malformed input.
class AttributeWalker {
 public:
  explicit AttributeWalker(ByteView bytes) : rest_(bytes) {}
  bool next(std::uint16_t& type, ByteView& payload);
  [[nodiscard]] bool malformed() const { return malformed_; }

 private:
  ByteView rest_;
  bool malformed_ = false;
};

// An RTM_GET* dump request (REQUEST|DUMP) with only its fixed header: every address, route...
Bytes build_dump_request(std::uint16_t type, const void* fixed_header, std::size_t header_len);

std::optional<std::uint32_t> read_u32(ByteView payload);
std::optional<std::uint16_t> read_u16(ByteView payload);
std::optional<std::uint8_t> read_u8(ByteView payload);
// A string attribute with or without its NUL; stops at the first NUL.
std::string read_string(ByteView payload);

// AF_INET / AF_INET6 for a family.
std::uint8_t address_family(IpFamily family);
// The family of an ifaddrmsg/rtmsg family byte; kDecodeFailure "<what>: unsupported family N".
Result<IpFamily> ip_family(std::uint8_t af, std::string_view what);
// An address attribute's payload: 4 or 16 network-order bytes, viewing `storage`.
ByteView address_payload(const IpAddress& a, std::array<std::uint8_t, 16>& storage);
// An address attribute of `family`; nullopt when the payload is too short.
std::optional<IpAddress> read_address(ByteView payload, IpFamily family);

// The request skeletons link.cpp builds on (also used by the test-only builders in
// tests/support/netlink_testing.cpp, which is why they are declared here).
// RTM_NEWLINK create request (REQUEST|CREATE|EXCL|ACK, ifinfomsg zero): IFLA_LINK, IFLA_IFNAME,
// IFLA_LINKINFO {IFLA_INFO_KIND `kind` (no NUL), IFLA_INFO_DATA {fill_data}}, then IFLA_NET_NS_FD
// if set. kInvalidNetworkConfig for parent_ifindex <= 0, an invalid name or a negative fd.
Result<Bytes> build_child_request(int parent_ifindex, const std::string& name,
                                  std::string_view kind, std::optional<int> netns_fd,
                                  const std::function<void(MessageBuilder&)>& fill_data);
// RTM_SETLINK (REQUEST|ACK) for `ifindex` with ifi_change/ifi_flags, attributes from `fill`;
// kInvalidNetworkConfig "<what>: invalid interface index N" for ifindex <= 0.
Result<Bytes> build_setlink_request(int ifindex, std::string_view what,
                                    const std::function<void(MessageBuilder&)>& fill,
                                    unsigned change_flags = 0, unsigned flags = 0);
// The ifinfomsg of a request about `ifindex` (0: a new link): AF_UNSPEC, everything else zero.
ifinfomsg make_ifinfo(int ifindex);
// NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK.
inline constexpr std::uint16_t kCreateFlags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;

// Aligns to NLA_ALIGNTO / NLMSG_ALIGNTO (both 4).
constexpr std::size_t align4(std::size_t n) { return (n + 3U) & ~std::size_t{3}; }

}  // namespace ipoib::netlink::wire
