// ipoib/ib/netdev.h — what sysfs says about a network interface (/sys/class/net/<if>).
//
// For preflight and diagnostics (the doctor), which must work from fixture trees; the plugin reads
// live link state over netlink instead, because sysfs does not follow setns().
//
//   IPOIB_TRY_ASSIGN(ib::NetdevInfo ib0, ib::read_netdev(root, "ib0"));
//   if (!ib0.is_ipoib()) ...;   if (ib0.is_child()) ...;   if (!ib0.admin_up()) ...
//   for (const std::string& name : ib::list_netdevs(root).value()) ...
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/base/error.h"
#include "ipoib/ib/port.h"

namespace ipoib::ib {

inline constexpr int kArphrdInfiniband = 32;  // include/uapi/linux/if_arp.h ARPHRD_INFINIBAND

struct NetdevInfo {
  std::string name;
  int ifindex = 0;
  int iflink = 0;    // ipoib_get_iflink(): the parent's ifindex for a child, own for a parent
  int type = 0;      // ARPHRD_*
  int dev_port = 0;  // HCA port - 1
  std::vector<std::uint8_t> address;  // 20 bytes on IPoIB: flags+QPN, then the port GID
  int mtu = 0;
  unsigned flags = 0;                    // IFF_* (hex in sysfs)
  std::string operstate;                 // "up", "down", "lowerlayerdown", ...
  std::optional<bool> carrier;           // unreadable (EINVAL) while administratively down
  std::optional<std::string> mode;       // "datagram" / "connected"; absent on netlink children
  std::optional<std::uint16_t> pkey;     // absent on netlink children
  std::optional<std::string> parent;     // `parent` attribute of sysfs-created children
  std::string ifalias;                   // IFLA_IFALIAS ("" when unset)
  std::optional<std::string> ib_device;  // device/infiniband/<dev>

  [[nodiscard]] bool is_ipoib() const { return type == kArphrdInfiniband; }
  // A child has a `parent` attribute or an iflink naming another interface (ipoib_get_iflink).
  [[nodiscard]] bool is_child() const {
    return parent.has_value() || (iflink != 0 && ifindex != 0 && iflink != ifindex);
  }
  [[nodiscard]] bool admin_up() const { return (flags & 0x1U) != 0; }  // IFF_UP
};

// Reads /sys/class/net/<ifname>. Missing interface -> kNotAvailable; optional attributes that
// are absent stay empty; `type` and `ifindex` are required (kIoFailure when unreadable).
Result<NetdevInfo> read_netdev(const SysfsRoot& root, std::string_view ifname);

// Names under /sys/class/net, sorted. Missing directory -> kNotAvailable.
Result<std::vector<std::string>> list_netdevs(const SysfsRoot& root);

// "80:00:00:48:fe:80:..." -> bytes; nullopt when malformed.
std::optional<std::vector<std::uint8_t>> parse_hw_address(std::string_view text);

}  // namespace ipoib::ib
