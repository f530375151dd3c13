// LinkOps over the real kernel: one rtnetlink socket per namespace, opened inside it.
#include <utility>

#include "ipoib/plugin/link_ops.h"

namespace ipoib::plugin {
namespace {

class KernelLinkSession final : public LinkSession {
 public:
  // A session borrowing the caller's handle, which outlives it; `host` is the namespace its
  // switches return to (the ops' cached handle, which outlives every session).
  static std::unique_ptr<LinkSession> borrowing(netlink::NetlinkSocket sock,
                                                const netns::NetnsHandle& borrowed,
                                                const netns::NetnsHandle& host) {
    auto s = std::unique_ptr<KernelLinkSession>(new KernelLinkSession(std::move(sock)));
    s->ns_ = &borrowed;
    s->host_ = &host;
    return s;
  }

  Status create_link(netlink::ByteView request) override {
    return netlink::send_create_request(sock_, request);
  }
  Status set_alias(int ifindex, std::string_view alias) override {
    return netlink::set_link_alias(sock_, ifindex, alias);
  }
  Status rename_link(int ifindex, std::string_view name) override {
    return netlink::rename_link(sock_, ifindex, name);
  }
  Status set_mtu(int ifindex, int mtu_bytes) override {
    return netlink::set_link_mtu(sock_, ifindex, static_cast<std::uint32_t>(mtu_bytes));
  }
  Status enable_ipv6(std::string_view ifname) override {
    // /proc/sys/net resolves against the opener's netns, so write from inside the namespace.
    return netns::run_in(*ns_, *host_, [&]() -> Status {
      IPOIB_TRY(netns::write_sysctl(netns::ipv6_conf_sysctl(ifname, "disable_ipv6"), "0"));
      // Addresses go in with IFA_F_NODAD; DAD on the link-local address would still hold the
      // interface "tentative" for a second after it comes up.
      IPOIB_TRY(netns::write_sysctl(netns::ipv6_conf_sysctl(ifname, "accept_dad"), "0"));
      return ok_status();
    });
  }
  Status add_address(int ifindex, const IpPrefix& prefix) override {
    return netlink::add_address(sock_, ifindex, prefix);
  }
  Status add_route(const netlink::RouteSpec& route) override {
    return netlink::add_route(sock_, route);
  }
  Status set_up(int ifindex) override {
    return netlink::set_link_admin_state(sock_, ifindex, netlink::AdminState::kUp);
  }
  Status enable_arp_notify(std::string_view ifname) override {
    return netns::run_in(*ns_, *host_, [&]() -> Status {
      return netns::write_sysctl(netns::ipv4_conf_sysctl(ifname, "arp_notify"), "1");
    });
  }
  Result<netlink::DeleteOutcome> delete_link(int ifindex) override {
    return netlink::delete_link(sock_, ifindex);
  }
  Result<std::optional<netlink::LinkInfo>> link_by_name(std::string_view name) override {
    return netlink::get_link_by_name(sock_, name);
  }
  Result<std::optional<netlink::LinkInfo>> link_by_index(int ifindex) override {
    return netlink::get_link_by_index(sock_, ifindex);
  }
  Result<std::vector<netlink::LinkInfo>> links_of_kind(std::string_view kind) override {
    return netlink::list_links(sock_, kind);
  }
  Result<std::vector<netlink::AddressInfo>> addresses(int ifindex) override {
    return netlink::list_addresses(sock_, ifindex, std::nullopt);
  }
  Result<std::vector<netlink::RouteInfo>> routes(IpFamily family) override {
    return netlink::list_routes(sock_, family, std::nullopt);
  }

 private:
  explicit KernelLinkSession(netlink::NetlinkSocket sock) : sock_(std::move(sock)) {}
  netlink::NetlinkSocket sock_;
  const netns::NetnsHandle* ns_ = nullptr;
  const netns::NetnsHandle* host_ = nullptr;  // the namespace the plugin runs in
};

class KernelLinkOps final : public LinkOps {
 public:
  Result<std::unique_ptr<LinkSession>> open_host() override {
    IPOIB_TRY_ASSIGN(const netns::NetnsHandle* host, host_netns());
    IPOIB_TRY_ASSIGN(netlink::NetlinkSocket sock, netlink::NetlinkSocket::open());
    return KernelLinkSession::borrowing(std::move(sock), *host, *host);
  }
  Result<std::unique_ptr<LinkSession>> open_netns(const netns::NetnsHandle& ns) override {
    IPOIB_TRY_ASSIGN(const netns::NetnsHandle* host, host_netns());
    // The socket is bound to the netns current at its creation (socket.h), so open it inside.
    IPOIB_TRY_ASSIGN(netlink::NetlinkSocket sock,
                     netns::run_in(ns, *host, [] { return netlink::NetlinkSocket::open(); }));
    return KernelLinkSession::borrowing(std::move(sock), ns, *host);
  }

 private:
  // The namespace the plugin runs in, opened once per process (every switch returns to it).
  Result<const netns::NetnsHandle*> host_netns() {
    if (!host_) {
      IPOIB_TRY_ASSIGN(netns::NetnsHandle self, netns::NetnsHandle::current());
      host_.emplace(std::move(self));
    }
    return &*host_;
  }
  std::optional<netns::NetnsHandle> host_;
};

}  // namespace

std::unique_ptr<LinkOps> make_kernel_link_ops() { return std::make_unique<KernelLinkOps>(); }

}  // namespace ipoib::plugin
