// The rtnetlink socket: libnl's nl_sock for the socket's life cycle, sending and receiving; the
// replies are read here so that the kernel's exact errno and extended-ack text reach the caller
// (libnl's nl_wait_for_ack folds errnos into its own NLE_* codes, losing e.g. ENODEV vs ENOENT).
#include "ipoib/netlink/socket.h"

#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ipoib/base/errno_error.h"
#include "wire.h"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

namespace ipoib::netlink {
namespace {

constexpr int kMaxDumpRestarts = 5;

struct NlSockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }  // closes the fd
};

Error libnl_error(std::string_view operation, int nl_err) {
  return Error(ErrorCode::kNetlinkFailure, std::string(operation) + ": " + nl_geterror(nl_err));
}

// The text of NLMSGERR_ATTR_MSG in an NLMSG_ERROR, if the kernel attached one.
std::string extended_ack_text(ByteView message, const nlmsghdr& hdr) {
  if ((hdr.nlmsg_flags & NLM_F_ACK_TLVS) == 0) {
    return {};
  }
  std::size_t offset = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if ((hdr.nlmsg_flags & NLM_F_CAPPED) == 0) {
    // The whole request is echoed back after nlmsgerr; skip its payload too.
    nlmsgerr err{};
    std::memcpy(&err, message.data() + NLMSG_HDRLEN, sizeof err);
    offset += err.msg.nlmsg_len >= NLMSG_HDRLEN ? err.msg.nlmsg_len - NLMSG_HDRLEN : 0;
  }
  offset = wire::align4(offset);
  if (offset >= hdr.nlmsg_len) {
    return {};
  }
  wire::AttributeWalker walker(message.subspan(offset, hdr.nlmsg_len - offset));
  std::uint16_t type = 0;
  ByteView payload;
  while (walker.next(type, payload)) {
    if ((type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      return wire::read_string(payload);
    }
  }
  return {};
}

enum class Expect { kAck, kDump };

}  // namespace

struct NetlinkSocket::Impl {
  std::unique_ptr<nl_sock, NlSockDeleter> sock;
  std::uint32_t next_seq = 1;

  // Sends `message` with fresh seq/pid and the given extra flags; returns the seq used.
  Result<std::uint32_t> send(ByteView message, std::uint16_t extra_flags,
                             std::string_view operation) {
    IPOIB_TRY_ASSIGN(MessageHeader header, read_header(message));
    Bytes copy(message.begin(), message.begin() + header.length);
    nlmsghdr h{};
    std::memcpy(&h, copy.data(), sizeof h);
    h.nlmsg_seq = next_seq++;
    h.nlmsg_pid = nl_socket_get_local_port(sock.get());
    h.nlmsg_flags = static_cast<std::uint16_t>(h.nlmsg_flags | NLM_F_REQUEST | extra_flags);
    std::memcpy(copy.data(), &h, sizeof h);
    const int sent = nl_sendto(sock.get(), copy.data(), copy.size());
    if (sent < 0) {
      return libnl_error(operation, sent);
    }
    return h.nlmsg_seq;
  }

  // Receives until the ack (kAck) or NLMSG_DONE (kDump) of `seq`, collecting other messages.
  // Sets `interrupted` when a dump message carried NLM_F_DUMP_INTR. Not const although it
  // changes no member: it consumes the socket's queue.
  // NOLINTNEXTLINE(readability-make-member-function-const)
  Result<std::vector<Bytes>> receive(std::uint32_t seq, Expect expect, std::string_view operation,
                                     bool& interrupted) {
    std::vector<Bytes> collected;
    interrupted = false;
    for (;;) {
      sockaddr_nl peer{};
      unsigned char* raw = nullptr;
      const int n = nl_recv(sock.get(), &peer, &raw, nullptr);
      if (n <= 0) {
        std::free(raw);
        if (n == 0) {
          return Error(ErrorCode::kNetlinkFailure,
                       std::string(operation) + ": netlink socket closed");
        }
        return libnl_error(operation, n);
      }
      Bytes buffer(raw, raw + n);
      std::free(raw);
      if (peer.nl_pid != 0) {
        continue;  // only the kernel talks to us
      }
      ByteView rest(buffer);
      while (rest.size() >= NLMSG_HDRLEN) {
        nlmsghdr h{};
        std::memcpy(&h, rest.data(), sizeof h);
        if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > rest.size()) {
          return Error(ErrorCode::kNetlinkFailure,
                       std::string(operation) + ": truncated reply from the kernel");
        }
        ByteView one = rest.subspan(0, h.nlmsg_len);
        const std::size_t step = NLMSG_ALIGN(h.nlmsg_len);
        rest = step >= rest.size() ? ByteView() : rest.subspan(step);
        if (h.nlmsg_seq != seq) {
          continue;  // a stale reply to an earlier, abandoned request
        }
        if ((h.nlmsg_flags & NLM_F_DUMP_INTR) != 0) {
          interrupted = true;
        }
        if (h.nlmsg_type == NLMSG_ERROR) {
          if (h.nlmsg_len < NLMSG_HDRLEN + sizeof(nlmsgerr)) {
            return Error(ErrorCode::kNetlinkFailure,
                         std::string(operation) + ": truncated error from the kernel");
          }
          nlmsgerr err{};
          std::memcpy(&err, one.data() + NLMSG_HDRLEN, sizeof err);
          if (err.error == 0) {
            if (expect == Expect::kAck) {
              return collected;
            }
            continue;
          }
          return kernel_error(operation, -err.error, extended_ack_text(one, h));
        }
        if (h.nlmsg_type == NLMSG_DONE) {
          if (h.nlmsg_len >= NLMSG_HDRLEN + sizeof(int)) {
            int status = 0;
            std::memcpy(&status, one.data() + NLMSG_HDRLEN, sizeof status);
            if (status < 0) {
              return kernel_error(operation, -status, extended_ack_text(one, h));
            }
          }
          if (expect == Expect::kDump) {
            return collected;
          }
          continue;
        }
        if (h.nlmsg_type == NLMSG_NOOP || h.nlmsg_type == NLMSG_OVERRUN) {
          continue;
        }
        collected.emplace_back(one.begin(), one.end());
      }
    }
  }
};

NetlinkSocket::NetlinkSocket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NetlinkSocket::NetlinkSocket(NetlinkSocket&&) noexcept = default;
NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&&) noexcept = default;
NetlinkSocket::~NetlinkSocket() = default;

Result<NetlinkSocket> NetlinkSocket::open() {
  auto impl = std::make_unique<Impl>();
  impl->sock.reset(nl_socket_alloc());
  if (!impl->sock) {
    return Error(ErrorCode::kNetlinkFailure, "netlink socket: out of memory");
  }
  // Replies are matched by seq in Impl::receive; libnl's own checks would reject them first.
  nl_socket_disable_seq_check(impl->sock.get());
  // Let nl_recv size its buffer to the message (MSG_PEEK|MSG_TRUNC): large dumps stay whole.
  nl_socket_enable_msg_peek(impl->sock.get());
  // libnl 3.7 creates the socket with SOCK_CLOEXEC (lib/nl.c nl_connect).
  const int rc = nl_connect(impl->sock.get(), NETLINK_ROUTE);
  if (rc < 0) {
    return libnl_error("netlink socket: connect", rc);
  }
  const int fd = nl_socket_get_fd(impl->sock.get());
  const int one = 1;
  // Best effort: kernels without them just send bare errors.
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  return NetlinkSocket(std::move(impl));
}

Status NetlinkSocket::request(ByteView message, std::string_view operation) {
  IPOIB_TRY(request_with_reply(message, operation));
  return ok_status();
}

Result<std::vector<Bytes>> NetlinkSocket::request_with_reply(ByteView message,
                                                             std::string_view operation) {
  IPOIB_TRY_ASSIGN(std::uint32_t seq, impl_->send(message, NLM_F_ACK, operation));
  bool interrupted = false;
  return impl_->receive(seq, Expect::kAck, operation, interrupted);
}

Result<std::vector<Bytes>> NetlinkSocket::dump(ByteView message, std::string_view operation) {
  for (int attempt = 0;; ++attempt) {
    IPOIB_TRY_ASSIGN(std::uint32_t seq, impl_->send(message, NLM_F_DUMP, operation));
    bool interrupted = false;
    IPOIB_TRY_ASSIGN(std::vector<Bytes> messages,
                     impl_->receive(seq, Expect::kDump, operation, interrupted));
    if (!interrupted) {
      return messages;
    }
    if (attempt + 1 >= kMaxDumpRestarts) {
      return Error(ErrorCode::kNetlinkFailure,
                   std::string(operation) + ": dump kept changing under us (NLM_F_DUMP_INTR)");
    }
  }
}

}  // namespace ipoib::netlink
