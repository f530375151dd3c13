// Message building on libnl's nl_msg, and the byte-level readers shared by the parsers.
#include "ipoib/netlink/message.h"

#include <netlink/attr.h>
#include <netlink/msg.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "ipoib/base/errno_error.h"
#include "wire.h"

namespace ipoib::netlink {
namespace wire {

MessageBuilder::MessageBuilder(std::uint16_t type, std::uint16_t flags, const void* fixed_header,
                               std::size_t header_len)
    : msg_(nlmsg_alloc_simple(type, flags)) {
  if (msg_ == nullptr) {
    failed_ = true;
    return;
  }
  if (header_len > 0 &&
      nlmsg_append(msg_, const_cast<void*>(fixed_header), header_len, NLMSG_ALIGNTO) < 0) {
    failed_ = true;
  }
}

MessageBuilder::~MessageBuilder() {
  if (msg_ != nullptr) {
    nlmsg_free(msg_);
  }
}

void MessageBuilder::put_bytes(int type, ByteView bytes) {
  if (failed_) {
    return;
  }
  // nla_put copies the data and zeroes the padding (lib/attr.c nla_reserve).
  if (nla_put(msg_, type, static_cast<int>(bytes.size()), bytes.data()) < 0) {
    failed_ = true;
  }
}

void MessageBuilder::put_u32(int type, std::uint32_t value) {
  std::uint8_t b[4];
  std::memcpy(b, &value, sizeof b);
  put_bytes(type, ByteView(b, sizeof b));
}

void MessageBuilder::put_s32(int type, std::int32_t value) {
  std::uint8_t b[4];
  std::memcpy(b, &value, sizeof b);
  put_bytes(type, ByteView(b, sizeof b));
}

void MessageBuilder::put_u16(int type, std::uint16_t value) {
  std::uint8_t b[2];
  std::memcpy(b, &value, sizeof b);
  put_bytes(type, ByteView(b, sizeof b));
}

void MessageBuilder::put_u8(int type, std::uint8_t value) { put_bytes(type, ByteView(&value, 1)); }

void MessageBuilder::put_string(int type, std::string_view text) {
  std::string with_nul(text);
  with_nul.push_back('\0');
  put_bytes(type,
            ByteView(reinterpret_cast<const std::uint8_t*>(with_nul.data()), with_nul.size()));
}

void MessageBuilder::append_raw(const void* data, std::size_t len) {
  if (failed_) {
    return;
  }
  if (nlmsg_append(msg_, const_cast<void*>(data), len, NLMSG_ALIGNTO) < 0) {
    failed_ = true;
  }
}

void MessageBuilder::begin_nest(int type) {
  if (failed_) {
    return;
  }
  if (depth_ >= static_cast<int>(sizeof nests_ / sizeof nests_[0])) {
    failed_ = true;
    return;
  }
  nlattr* start = nla_nest_start(msg_, type);
  if (start == nullptr) {
    failed_ = true;
    return;
  }
  // Some libnl releases set NLA_F_NESTED here; iproute2 6.1 does not, and the byte comparison
  // with it is part of the contract (the kernel accepts both for IFLA_LINKINFO).
  start->nla_type = static_cast<std::uint16_t>(start->nla_type & ~NLA_F_NESTED);
  nests_[depth_++] = start;
}

void MessageBuilder::end_nest() {
  if (failed_) {
    return;
  }
  if (depth_ == 0) {
    failed_ = true;
    return;
  }
  if (nla_nest_end(msg_, nests_[--depth_]) < 0) {
    failed_ = true;
  }
}

Result<Bytes> MessageBuilder::build() {
  if (failed_ || depth_ != 0) {
    return Error(ErrorCode::kInternal, "netlink: request does not fit its buffer");
  }
  const nlmsghdr* hdr = nlmsg_hdr(msg_);
  const auto* begin = reinterpret_cast<const std::uint8_t*>(hdr);
  return Bytes(begin, begin + hdr->nlmsg_len);
}

Result<Decoded> decode(ByteView message, std::uint16_t expected_type, std::size_t fixed_len,
                       std::string_view what) {
  IPOIB_TRY_ASSIGN(MessageHeader header, read_header(message));
  if (expected_type != 0 && header.type != expected_type) {
    return Error(ErrorCode::kDecodeFailure,
                 std::string(what) + ": unexpected message type " + std::to_string(header.type));
  }
  const std::size_t body = NLMSG_HDRLEN;
  if (header.length < body + fixed_len) {
    return Error(ErrorCode::kDecodeFailure, std::string(what) + ": message truncated");
  }
  Decoded d;
  d.header = header;
  d.fixed = message.subspan(body, fixed_len);
  const std::size_t attrs_at = body + align4(fixed_len);
  d.attributes =
      attrs_at <= header.length ? message.subspan(attrs_at, header.length - attrs_at) : ByteView();
  return d;
}

bool AttributeWalker::next(std::uint16_t& type, ByteView& payload) {
  if (rest_.size() < NLA_HDRLEN) {
    // Fewer than 4 bytes left: only zero padding is acceptable.
    for (std::uint8_t b : rest_) {
      if (b != 0) {
        malformed_ = true;
      }
    }
    rest_ = {};
    return false;
  }
  std::uint16_t len = 0;
  std::memcpy(&len, rest_.data(), 2);
  std::memcpy(&type, rest_.data() + 2, 2);
  if (len < NLA_HDRLEN || len > rest_.size()) {
    malformed_ = true;
    rest_ = {};
    return false;
  }
  payload = rest_.subspan(NLA_HDRLEN, len - NLA_HDRLEN);
  const std::size_t step = align4(len);
  rest_ = step >= rest_.size() ? ByteView() : rest_.subspan(step);
  return true;
}

namespace {

// A native-endian integer attribute; nullopt when the payload is shorter.
template <class T>
std::optional<T> read_native(ByteView p) {
  if (p.size() < sizeof(T)) {
    return std::nullopt;
  }
  T v = 0;
  std::memcpy(&v, p.data(), sizeof(T));
  return v;
}

}  // namespace

std::optional<std::uint32_t> read_u32(ByteView p) { return read_native<std::uint32_t>(p); }

std::optional<std::uint16_t> read_u16(ByteView p) { return read_native<std::uint16_t>(p); }

Bytes build_dump_request(std::uint16_t type, const void* fixed_header, std::size_t header_len) {
  MessageBuilder b(type, NLM_F_REQUEST | NLM_F_DUMP, fixed_header, header_len);
  auto r = b.build();
  return r.ok() ? std::move(r).value() : Bytes();
}

std::optional<std::uint8_t> read_u8(ByteView p) {
  if (p.empty()) {
    return std::nullopt;
  }
  return p[0];
}

std::string read_string(ByteView p) {
  std::size_t n = 0;
  while (n < p.size() && p[n] != 0) {
    ++n;
  }
  return std::string(reinterpret_cast<const char*>(p.data()), n);
}

std::uint8_t address_family(IpFamily family) {
  return family == IpFamily::kV4 ? AF_INET : AF_INET6;
}

Result<IpFamily> ip_family(std::uint8_t af, std::string_view what) {
  if (af == AF_INET) {
    return IpFamily::kV4;
  }
  if (af == AF_INET6) {
    return IpFamily::kV6;
  }
  return Error(ErrorCode::kDecodeFailure,
               std::string(what) + ": unsupported family " + std::to_string(af));
}

ByteView address_payload(const IpAddress& a, std::array<std::uint8_t, 16>& storage) {
  storage = a.bytes();
  return ByteView(storage.data(), a.byte_length());
}

std::optional<IpAddress> read_address(ByteView payload, IpFamily family) {
  if (payload.size() < (family == IpFamily::kV4 ? 4U : 16U)) {
    return std::nullopt;
  }
  return IpAddress::from_bytes(family, payload.data());
}

}  // namespace wire

Result<std::vector<Attribute>> split_attributes(ByteView bytes) {
  std::vector<Attribute> out;
  wire::AttributeWalker walker(bytes);
  std::uint16_t type = 0;
  ByteView payload;
  while (walker.next(type, payload)) {
    Attribute a;
    a.type = static_cast<std::uint16_t>(type & NLA_TYPE_MASK);
    a.nested_flag = (type & NLA_F_NESTED) != 0;
    a.net_byteorder_flag = (type & NLA_F_NET_BYTEORDER) != 0;
    a.payload.assign(payload.begin(), payload.end());
    out.push_back(std::move(a));
  }
  if (walker.malformed()) {
    return Error(ErrorCode::kDecodeFailure, "netlink: malformed attribute");
  }
  return out;
}

Result<MessageHeader> read_header(ByteView bytes) {
  if (bytes.size() < NLMSG_HDRLEN) {
    return Error(ErrorCode::kDecodeFailure, "netlink: message shorter than its header");
  }
  nlmsghdr h{};
  std::memcpy(&h, bytes.data(), sizeof h);
  if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > bytes.size()) {
    return Error(ErrorCode::kDecodeFailure,
                 "netlink: bad message length " + std::to_string(h.nlmsg_len));
  }
  return MessageHeader{h.nlmsg_len, h.nlmsg_type, h.nlmsg_flags, h.nlmsg_seq, h.nlmsg_pid};
}

namespace {

constexpr std::string_view kErrnoDetailPrefix = "netlink errno ";

// The symbolic name for the details field ("EIO"); glibc >= 2.32 has the complete table
// (strerrorname_np, Debian 12: 2.36), NULL for numbers it does not know.
const char* errno_name(int err) {
  const char* name = ::strerrorname_np(err);
  return name != nullptr ? name : "?";
}

}  // namespace

Error kernel_error(std::string_view operation, int err, std::string_view extended_ack) {
  std::string msg = std::string(operation) + ": " + errno_string(err);
  if (!extended_ack.empty()) {
    msg += ": ";
    msg += extended_ack;
  }
  return Error(
      ErrorCode::kNetlinkFailure, std::move(msg),
      std::string(kErrnoDetailPrefix) + std::to_string(err) + " (" + errno_name(err) + ")");
}

std::optional<int> kernel_errno(const Error& error) {
  if (error.code() != ErrorCode::kNetlinkFailure) {
    return std::nullopt;
  }
  std::string_view d = error.details();
  if (d.substr(0, kErrnoDetailPrefix.size()) != kErrnoDetailPrefix) {
    return std::nullopt;
  }
  d.remove_prefix(kErrnoDetailPrefix.size());
  int value = 0;
  std::size_t digits = 0;
  while (digits < d.size() && d[digits] >= '0' && d[digits] <= '9' && digits < 6) {
    value = value * 10 + (d[digits] - '0');
    ++digits;
  }
  if (digits == 0) {
    return std::nullopt;
  }
  return value;
}

}  // namespace ipoib::netlink
