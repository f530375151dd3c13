// Link requests, the link parser and link operations (see include/ipoib/netlink/link.h).
#include "ipoib/netlink/link.h"

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "wire.h"

namespace ipoib::netlink {
namespace {

using wire::make_ifinfo;
constexpr std::uint16_t kChangeFlags = NLM_F_REQUEST | NLM_F_ACK;
// The ipoib kind as iproute2 6.1 sends it: 5 bytes, no NUL (ip/iplink.c addattr_l(...,
// strlen(type))). The kernel copies it with nla_strscpy, which accepts both forms.
constexpr std::string_view kIpoibKind = "ipoib";
constexpr std::string_view kMacvlanKind = "macvlan";  // parsed: the test builds' stand-in kind

ByteView as_bytes(std::string_view s) {
  return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

Status validate_index(int ifindex, std::string_view what) {
  if (ifindex <= 0) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 std::string(what) + ": invalid interface index " + std::to_string(ifindex));
  }
  return ok_status();
}

Status validate_alias(std::string_view alias) {
  if (alias.size() > kMaxAliasLength) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "alias longer than " + std::to_string(kMaxAliasLength) + " bytes");
  }
  return ok_status();
}

void parse_linkinfo(ByteView nest, LinkInfo& out, bool& malformed) {
  wire::AttributeWalker walker(nest);
  std::uint16_t type = 0;
  ByteView payload;
  ByteView data;
  bool have_data = false;
  while (walker.next(type, payload)) {
    switch (type & NLA_TYPE_MASK) {
      case IFLA_INFO_KIND:
        out.kind = wire::read_string(payload);
        break;
      case IFLA_INFO_DATA:
        data = payload;
        have_data = true;
        break;
      default:
        break;
    }
  }
  malformed = malformed || walker.malformed();
  if (!have_data) {
    return;
  }
  wire::AttributeWalker dw(data);
  if (out.kind == kIpoibKind) {
    std::optional<std::uint16_t> pkey;
    std::optional<std::uint16_t> mode;
    std::optional<std::uint16_t> umcast;
    while (dw.next(type, payload)) {
      switch (type & NLA_TYPE_MASK) {
        case IFLA_IPOIB_PKEY:
          pkey = wire::read_u16(payload);
          break;
        case IFLA_IPOIB_MODE:
          mode = wire::read_u16(payload);
          break;
        case IFLA_IPOIB_UMCAST:
          umcast = wire::read_u16(payload);
          break;
        default:
          break;
      }
    }
    if (pkey && mode && umcast) {
      out.ipoib = IpoibParams{*pkey, *mode == 1 ? IpoibMode::kConnected : IpoibMode::kDatagram,
                              *umcast != 0 ? Umcast::kOn : Umcast::kOff};
    }
  } else if (out.kind == kMacvlanKind) {
    while (dw.next(type, payload)) {
      if ((type & NLA_TYPE_MASK) == IFLA_MACVLAN_MODE) {
        out.macvlan_mode = wire::read_u32(payload);
      }
    }
  }
  malformed = malformed || dw.malformed();
}

Result<std::optional<LinkInfo>> get_link(NetlinkSocket& sock, const Bytes& request,
                                         const std::string& what) {
  auto reply = sock.request_with_reply(request, what);
  if (!reply.ok()) {
    const auto err = kernel_errno(reply.error());
    if (err == ENODEV) {
      return std::optional<LinkInfo>();
    }
    return std::move(reply).error();
  }
  for (const Bytes& m : *reply) {
    auto header = read_header(m);
    if (header.ok() && header->type == RTM_NEWLINK) {
      IPOIB_TRY_ASSIGN(LinkInfo link, parse_link_message(m));
      return std::optional<LinkInfo>(std::move(link));
    }
  }
  return Error(ErrorCode::kNetlinkFailure, what + ": no link in the kernel's reply");
}

}  // namespace

namespace wire {

ifinfomsg make_ifinfo(int ifindex) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  return ifi;
}

Result<Bytes> build_child_request(int parent_ifindex, const std::string& name,
                                  std::string_view kind, std::optional<int> netns_fd,
                                  const std::function<void(MessageBuilder&)>& fill_data) {
  IPOIB_TRY(validate_index(parent_ifindex, "parent link"));
  IPOIB_TRY(validate_ifname(name));
  if (netns_fd && *netns_fd < 0) {
    return Error(ErrorCode::kInvalidNetworkConfig, "create link: invalid netns fd");
  }
  const ifinfomsg ifi = make_ifinfo(0);
  MessageBuilder b(RTM_NEWLINK, kCreateFlags, &ifi, sizeof ifi);
  b.put_u32(IFLA_LINK, static_cast<std::uint32_t>(parent_ifindex));
  b.put_string(IFLA_IFNAME, name);
  b.begin_nest(IFLA_LINKINFO);
  b.put_bytes(IFLA_INFO_KIND, as_bytes(kind));
  b.begin_nest(IFLA_INFO_DATA);
  fill_data(b);
  b.end_nest();
  b.end_nest();
  if (netns_fd) {
    // rtnl_newlink_create: rtnl_link_get_net(src_net, tb) picks the destination from
    // IFLA_NET_NS_FD, rtnl_create_link registers the device there, and ops->newlink still gets
    // the requesting socket's net for IFLA_LINK (ipoib_new_child_link(src_net, ...) and
    // macvlan_common_newlink do __dev_get_by_index(src_net, IFLA_LINK)).
    b.put_u32(IFLA_NET_NS_FD, static_cast<std::uint32_t>(*netns_fd));
  }
  return b.build();
}

Result<Bytes> build_setlink_request(int ifindex, std::string_view what,
                                    const std::function<void(MessageBuilder&)>& fill,
                                    unsigned change_flags, unsigned flags) {
  IPOIB_TRY(validate_index(ifindex, what));
  ifinfomsg ifi = make_ifinfo(ifindex);
  ifi.ifi_change = change_flags;
  ifi.ifi_flags = flags;
  // RTM_NEWLINK without NLM_F_CREATE on an existing index is rtnl_setlink's path as well
  // (rtnl_newlink → do_setlink), but RTM_SETLINK states the intent and never creates.
  MessageBuilder b(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, &ifi, sizeof ifi);
  fill(b);
  return b.build();
}

}  // namespace wire

std::string_view to_string(OperState state) {
  switch (state) {
    case OperState::kUnknown:
      return "unknown";
    case OperState::kNotPresent:
      return "notpresent";
    case OperState::kDown:
      return "down";
    case OperState::kLowerLayerDown:
      return "lowerlayerdown";
    case OperState::kTesting:
      return "testing";
    case OperState::kDormant:
      return "dormant";
    case OperState::kUp:
      return "up";
  }
  return "unknown";
}

AdminState LinkInfo::admin_state() const {
  return (flags & IFF_UP) != 0 ? AdminState::kUp : AdminState::kDown;
}

Status validate_ifname(std::string_view name) {
  auto bad = [&](std::string_view why) {
    return Error(ErrorCode::kInvalidNetworkConfig,
                 "interface name \"" + std::string(name) + "\": " + std::string(why));
  };
  if (name.empty() || name.size() > kMaxIfnameLength) {
    return bad("must be 1 to 15 bytes");
  }
  if (name == "." || name == "..") {
    return bad("must not be . or ..");
  }
  for (char c : name) {
    // dev_valid_name(): no '/', ':' or isspace().
    if (c == '/' || c == ':' || c == '\0' || std::isspace(static_cast<unsigned char>(c)) != 0) {
      return bad("must not contain '/', ':' or whitespace");
    }
  }
  return ok_status();
}

Result<Bytes> build_ipoib_child_request(const IpoibChildSpec& spec) {
  // ipoib_new_child_link: pkey 0 and 0x8000 (0 with the full-membership bit) are invalid.
  if ((spec.pkey & 0x7fff) == 0) {
    char text[16];
    (void)std::snprintf(text, sizeof text, "0x%04x", static_cast<unsigned>(spec.pkey));
    return Error(ErrorCode::kInvalidNetworkConfig,
                 std::string("pkey ") + text + ": 0 and 0x8000 are not valid");
  }
  return wire::build_child_request(
      spec.parent_ifindex, spec.name, kIpoibKind, spec.netns_fd, [&](wire::MessageBuilder& b) {
        // u16 in host byte order (ipoib_changelink: nla_get_u16).
        b.put_u16(IFLA_IPOIB_PKEY, spec.pkey);
        b.put_u16(IFLA_IPOIB_MODE, static_cast<std::uint16_t>(spec.mode));
        b.put_u16(IFLA_IPOIB_UMCAST, static_cast<std::uint16_t>(spec.umcast));
      });
}

Result<LinkInfo> parse_link_message(ByteView message) {
  IPOIB_TRY_ASSIGN(wire::Decoded d, wire::decode(message, RTM_NEWLINK, sizeof(ifinfomsg), "link"));
  ifinfomsg ifi{};
  std::memcpy(&ifi, d.fixed.data(), sizeof ifi);
  LinkInfo out;
  out.ifindex = ifi.ifi_index;
  out.arphrd_type = ifi.ifi_type;
  out.flags = ifi.ifi_flags;
  bool malformed = false;
  wire::AttributeWalker walker(d.attributes);
  std::uint16_t type = 0;
  ByteView payload;
  while (walker.next(type, payload)) {
    switch (type & NLA_TYPE_MASK) {
      case IFLA_IFNAME:
        out.name = wire::read_string(payload);
        break;
      case IFLA_LINK:
        if (auto v = wire::read_u32(payload)) {
          out.parent_ifindex = static_cast<int>(*v);
        }
        break;
      case IFLA_LINK_NETNSID:
        if (auto v = wire::read_u32(payload)) {
          out.link_netnsid = static_cast<int>(*v);
        }
        break;
      case IFLA_LINKINFO:
        parse_linkinfo(payload, out, malformed);
        break;
      case IFLA_IFALIAS:
        out.alias = wire::read_string(payload);
        break;
      case IFLA_NET_NS_FD:
        if (auto v = wire::read_u32(payload)) {
          out.netns_fd = static_cast<int>(*v);
        }
        break;
      case IFLA_MTU:
        out.mtu = wire::read_u32(payload).value_or(0);
        break;
      case IFLA_OPERSTATE: {
        const std::uint8_t v = wire::read_u8(payload).value_or(0);
        out.operstate = v <= 6 ? static_cast<OperState>(v) : OperState::kUnknown;
        break;
      }
      case IFLA_CARRIER:
        if (auto v = wire::read_u8(payload)) {
          out.carrier = *v != 0 ? Carrier::kUp : Carrier::kDown;
        }
        break;
      case IFLA_ADDRESS:
        out.hw_address.assign(payload.begin(), payload.end());
        break;
      case IFLA_BROADCAST:
        out.broadcast.assign(payload.begin(), payload.end());
        break;
      default:
        break;
    }
  }
  if (malformed || walker.malformed()) {
    return Error(ErrorCode::kDecodeFailure, "link: malformed attribute");
  }
  return out;
}

Result<Bytes> build_get_link_by_index_request(int ifindex) {
  IPOIB_TRY(validate_index(ifindex, "get link"));
  const ifinfomsg ifi = make_ifinfo(ifindex);
  wire::MessageBuilder b(RTM_GETLINK, NLM_F_REQUEST, &ifi, sizeof ifi);
  return b.build();
}

Result<Bytes> build_get_link_by_name_request(std::string_view name) {
  IPOIB_TRY(validate_ifname(name));
  const ifinfomsg ifi = make_ifinfo(0);
  wire::MessageBuilder b(RTM_GETLINK, NLM_F_REQUEST, &ifi, sizeof ifi);
  b.put_string(IFLA_IFNAME, name);
  return b.build();
}

Bytes build_dump_links_request(std::string_view kind) {
  const ifinfomsg ifi = make_ifinfo(0);
  wire::MessageBuilder b(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &ifi, sizeof ifi);
  // rtnl_dump_ifinfo reads both without strict checking too (a kernel that does not know an
  // attribute ignores it there).
  b.put_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  if (!kind.empty()) {
    b.begin_nest(IFLA_LINKINFO);
    b.put_bytes(IFLA_INFO_KIND, as_bytes(kind));
    b.end_nest();
  }
  auto r = b.build();
  return r.ok() ? std::move(r).value() : Bytes();
}

Result<Bytes> build_delete_link_request(int ifindex) {
  IPOIB_TRY(validate_index(ifindex, "delete link"));
  const ifinfomsg ifi = make_ifinfo(ifindex);
  wire::MessageBuilder b(RTM_DELLINK, kChangeFlags, &ifi, sizeof ifi);
  return b.build();
}

Result<Bytes> build_rename_link_request(int ifindex, std::string_view new_name) {
  IPOIB_TRY(validate_ifname(new_name));
  return wire::build_setlink_request(ifindex, "rename link", [&](wire::MessageBuilder& b) {
    b.put_string(IFLA_IFNAME, new_name);
  });
}

Result<Bytes> build_set_mtu_request(int ifindex, std::uint32_t mtu_bytes) {
  return wire::build_setlink_request(
      ifindex, "set mtu", [&](wire::MessageBuilder& b) { b.put_u32(IFLA_MTU, mtu_bytes); });
}

Result<Bytes> build_set_admin_state_request(int ifindex, AdminState state) {
  // ifi_change selects the bits of ifi_flags to apply (dev_change_flags via do_setlink).
  return wire::build_setlink_request(
      ifindex, "set link state", [](wire::MessageBuilder&) {}, IFF_UP,
      state == AdminState::kUp ? static_cast<unsigned>(IFF_UP) : 0U);
}

Result<Bytes> build_set_alias_request(int ifindex, std::string_view alias) {
  IPOIB_TRY(validate_alias(alias));
  return wire::build_setlink_request(ifindex, "set alias", [&](wire::MessageBuilder& b) {
    // An empty IFLA_IFALIAS clears the alias (dev_set_alias with len 0).
    b.put_bytes(IFLA_IFALIAS, as_bytes(alias));
  });
}

Status send_create_request(NetlinkSocket& sock, ByteView newlink_request) {
  IPOIB_TRY_ASSIGN(LinkInfo wanted, parse_link_message(newlink_request));
  return sock.request(newlink_request, "create link " + wanted.name);
}

Result<std::optional<LinkInfo>> get_link_by_index(NetlinkSocket& sock, int ifindex) {
  IPOIB_TRY_ASSIGN(Bytes req, build_get_link_by_index_request(ifindex));
  return get_link(sock, req, "get link " + std::to_string(ifindex));
}

Result<std::optional<LinkInfo>> get_link_by_name(NetlinkSocket& sock, std::string_view name) {
  IPOIB_TRY_ASSIGN(Bytes req, build_get_link_by_name_request(name));
  return get_link(sock, req, "get link " + std::string(name));
}

Result<std::vector<LinkInfo>> list_links(NetlinkSocket& sock, std::string_view kind) {
  IPOIB_TRY_ASSIGN(std::vector<Bytes> messages,
                   sock.dump(build_dump_links_request(kind), "list links"));
  std::vector<LinkInfo> out;
  out.reserve(messages.size());
  for (const Bytes& m : messages) {
    IPOIB_TRY_CTX(read_header(m), "list links");
    if (read_header(m)->type != RTM_NEWLINK) {
      continue;
    }
    IPOIB_TRY_ASSIGN(LinkInfo link, parse_link_message(m));
    if (kind.empty() || link.kind == kind) {
      out.push_back(std::move(link));
    }
  }
  return out;
}

Result<DeleteOutcome> delete_link(NetlinkSocket& sock, int ifindex) {
  IPOIB_TRY_ASSIGN(Bytes req, build_delete_link_request(ifindex));
  Status s = sock.request(req, "delete link " + std::to_string(ifindex));
  if (!s.ok()) {
    if (kernel_errno(s.error()) == ENODEV) {
      return DeleteOutcome::kAbsent;
    }
    return std::move(s).error();
  }
  return DeleteOutcome::kDeleted;
}

Status rename_link(NetlinkSocket& sock, int ifindex, std::string_view new_name) {
  IPOIB_TRY_ASSIGN(Bytes req, build_rename_link_request(ifindex, new_name));
  return sock.request(req,
                      "rename link " + std::to_string(ifindex) + " to " + std::string(new_name));
}

Status set_link_mtu(NetlinkSocket& sock, int ifindex, std::uint32_t mtu_bytes) {
  IPOIB_TRY_ASSIGN(Bytes req, build_set_mtu_request(ifindex, mtu_bytes));
  return sock.request(
      req, "set mtu " + std::to_string(mtu_bytes) + " on link " + std::to_string(ifindex));
}

Status set_link_admin_state(NetlinkSocket& sock, int ifindex, AdminState state) {
  IPOIB_TRY_ASSIGN(Bytes req, build_set_admin_state_request(ifindex, state));
  return sock.request(req, std::string(state == AdminState::kUp ? "set up" : "set down") +
                               " link " + std::to_string(ifindex));
}

Status set_link_alias(NetlinkSocket& sock, int ifindex, std::string_view alias) {
  IPOIB_TRY_ASSIGN(Bytes req, build_set_alias_request(ifindex, alias));
  return sock.request(req, "set alias on link " + std::to_string(ifindex));
}

}  // namespace ipoib::netlink
