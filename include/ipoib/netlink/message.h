// ipoib/netlink/message.h — the vocabulary shared by every rtnetlink request of this module:
// raw message bytes, a read-only attribute walker, and recognising the kernel's errno in an
// Error.
//
// Messages are built and parsed as plain bytes (no kernel, no socket) so that tests can build a
// request, read it back and compare it byte for byte with what iproute2 sends; sending lives in
// socket.h and the *_ops functions.
//
//   IPOIB_TRY_ASSIGN(netlink::Bytes req, netlink::build_ipoib_child_request(spec));
//   IPOIB_TRY_ASSIGN(auto attrs, netlink::split_attributes(payload_after_ifinfomsg));
//   for (const auto& a : attrs) { /* a.type, a.nested, a.payload */ }
//
//   Status created = netlink::send_create_request(sock, req);
//   if (!created.ok() && netlink::kernel_errno(created.error()) == EEXIST) { ... }
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"

namespace ipoib::netlink {

// One complete netlink message (nlmsghdr included), or a stream of them.
using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

// One attribute as found in a message. `type` has NLA_F_NESTED / NLA_F_NET_BYTEORDER stripped;
// `nested` tells whether NLA_F_NESTED was set (iproute2 does not set it; the kernel accepts both).
struct Attribute {
  std::uint16_t type = 0;
  bool nested_flag = false;
  bool net_byteorder_flag = false;
  Bytes payload;  // nla_len - 4 bytes, without padding

  friend bool operator==(const Attribute&, const Attribute&) = default;
};

// Splits a run of attributes (e.g. the bytes after ifinfomsg, or a nest's payload). Trailing
// padding is allowed; a truncated or overlong attribute is kDecodeFailure. Never reads out of
// bounds — fuzzed by tests/fuzz/fuzz_netlink_messages.cpp.
Result<std::vector<Attribute>> split_attributes(ByteView bytes);

// The header fields of one message, for tests and callers that dispatch on type.
struct MessageHeader {
  std::uint32_t length = 0;
  std::uint16_t type = 0;
  std::uint16_t flags = 0;
  std::uint32_t sequence = 0;
  std::uint32_t port_id = 0;
};
// Reads the nlmsghdr at the start of `bytes`; kDecodeFailure when shorter than 16 bytes or when
// nlmsg_len is below 16 or beyond the buffer.
Result<MessageHeader> read_header(ByteView bytes);

// Errors produced by the kernel's refusal of a request carry its errno. Those Errors have code
// kNetlinkFailure, a message "<operation>: <strerror>[: <extended ack text>]" and details
// "netlink errno <n> (<NAME>)". Returns the errno of such an Error, std::nullopt for any other.
std::optional<int> kernel_errno(const Error& error);

// Turns an errno returned by the kernel into such an Error (exposed for the plugin's fakes so
// that a simulated refusal is indistinguishable from a real one).
Error kernel_error(std::string_view operation, int err, std::string_view extended_ack = {});

// The outcome of deleting something that may already be gone: DEL must be idempotent (CNI
// SPEC.md "DEL"), so "absent" is a success the caller can still tell apart.
enum class DeleteOutcome { kDeleted, kAbsent };

}  // namespace ipoib::netlink
