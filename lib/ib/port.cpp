#include "ipoib/ib/port.h"

#include <algorithm>
#include <cstdio>

#include "ipoib/base/strings.h"
#include "ipoib/ib/netdev.h"
#include "ipoib/ib/sysfs_file.h"

namespace ipoib::ib {
namespace {

// "4: ACTIVE" -> 4; nullopt when there is no leading number.
std::optional<int> leading_number(std::string_view text) {
  const auto colon = text.find(':');
  const std::string_view digits = trim(text.substr(0, colon));
  auto value = parse_uint(digits, 8);
  if (!value.ok()) {
    return std::nullopt;
  }
  return static_cast<int>(*value);
}

std::string port_dir(const SysfsRoot& root, std::string_view device, int port_num) {
  return root.join("sys/class/infiniband/" + std::string(device) + "/ports/" +
                   std::to_string(port_num));
}

Result<std::uint16_t> read_u16(const std::string& path) {
  IPOIB_TRY_ASSIGN(std::string text, read_trimmed(path));
  auto value = parse_uint(text, 16);
  if (!value.ok()) {
    return Error(ErrorCode::kIoFailure, path + ": not a 16-bit number: '" + text + "'");
  }
  return static_cast<std::uint16_t>(*value);
}

std::string hex16(std::uint16_t v) {
  char buf[8];
  (void)std::snprintf(buf, sizeof buf, "0x%04x", v);
  return buf;
}

std::string port_name(const IbPort& port) {
  return port.device + " port " + std::to_string(port.port_num);
}

// Pkeys as sysfs lists them: files named by table index, sorted numerically.
Result<std::vector<std::uint16_t>> read_pkeys(const std::string& dir) {
  IPOIB_TRY_ASSIGN(std::vector<std::string> names, list_directory(dir));
  std::vector<std::pair<std::uint64_t, std::uint16_t>> indexed;
  for (const std::string& name : names) {
    auto index = parse_uint(name, 16);
    if (!index.ok()) {
      continue;
    }
    std::string path = dir;
    path += "/";
    path += name;
    IPOIB_TRY_ASSIGN(std::uint16_t pkey, read_u16(path));
    indexed.emplace_back(*index, pkey);
  }
  std::sort(indexed.begin(), indexed.end());
  std::vector<std::uint16_t> pkeys;
  pkeys.reserve(indexed.size());
  for (const auto& [index, pkey] : indexed) {
    pkeys.push_back(pkey);
  }
  return pkeys;
}

}  // namespace

std::string SysfsRoot::join(std::string_view relative) const {
  while (!relative.empty() && relative.front() == '/') {
    relative.remove_prefix(1);
  }
  std::string out = path.empty() ? std::string("/") : path;
  if (out.back() != '/') {
    out.push_back('/');
  }
  out.append(relative);
  return out;
}

PortState parse_port_state(std::string_view sysfs_text) {
  const auto n = leading_number(sysfs_text);
  if (!n || *n < 0 || *n > 5) {
    return PortState::kUnknown;
  }
  return static_cast<PortState>(*n);
}

PhysState parse_phys_state(std::string_view sysfs_text) {
  const auto n = leading_number(sysfs_text);
  if (!n || *n < 1 || *n > 7) {
    return PhysState::kUnknown;
  }
  return static_cast<PhysState>(*n);
}

std::string_view to_string(PortState state) {
  switch (state) {
    case PortState::kNop:
      return "NOP";
    case PortState::kDown:
      return "DOWN";
    case PortState::kInit:
      return "INIT";
    case PortState::kArmed:
      return "ARMED";
    case PortState::kActive:
      return "ACTIVE";
    case PortState::kActiveDefer:
      return "ACTIVE_DEFER";
    case PortState::kUnknown:
      break;
  }
  return "UNKNOWN";
}

std::string_view to_string(PhysState state) {
  switch (state) {
    case PhysState::kSleep:
      return "Sleep";
    case PhysState::kPolling:
      return "Polling";
    case PhysState::kDisabled:
      return "Disabled";
    case PhysState::kPortConfigurationTraining:
      return "PortConfigurationTraining";
    case PhysState::kLinkUp:
      return "LinkUp";
    case PhysState::kLinkErrorRecovery:
      return "LinkErrorRecovery";
    case PhysState::kPhyTest:
      return "PhyTest";
    case PhysState::kUnknown:
      break;
  }
  return "Unknown";
}

std::optional<std::array<std::uint8_t, 16>> parse_gid(std::string_view text) {
  const auto groups = split(trim(text), ':');
  if (groups.size() != 8) {
    return std::nullopt;
  }
  std::array<std::uint8_t, 16> gid{};
  for (std::size_t i = 0; i < 8; ++i) {
    if (groups[i].empty() || groups[i].size() > 4) {
      return std::nullopt;
    }
    auto value = parse_uint("0x" + std::string(groups[i]), 16);
    if (!value.ok()) {
      return std::nullopt;
    }
    gid[2 * i] = static_cast<std::uint8_t>(*value >> 8);
    gid[2 * i + 1] = static_cast<std::uint8_t>(*value & 0xff);
  }
  return gid;
}

std::string format_gid(const std::array<std::uint8_t, 16>& gid) {
  std::string out;
  char buf[8];
  for (std::size_t i = 0; i < 16; i += 2) {
    (void)std::snprintf(buf, sizeof buf, "%s%02x%02x", i == 0 ? "" : ":", gid[i], gid[i + 1]);
    out += buf;
  }
  return out;
}

Result<IbPort> read_port(const SysfsRoot& root, std::string_view device, int port_num) {
  const std::string dir = port_dir(root, device, port_num);
  if (path_kind(dir) != PathKind::kDirectory) {
    return Error(ErrorCode::kNotAvailable, "InfiniBand device " + std::string(device) +
                                               " has no port " + std::to_string(port_num) + " (" +
                                               dir + " missing)");
  }
  IbPort port;
  port.device = std::string(device);
  port.port_num = port_num;
  port.source = QuerySource::kSysfs;
  IPOIB_TRY_ASSIGN(port.state_text, read_trimmed(dir + "/state"));
  port.state = parse_port_state(port.state_text);
  if (port.state == PortState::kUnknown) {
    return Error(ErrorCode::kIoFailure, dir + "/state: unrecognised '" + port.state_text + "'");
  }
  if (auto phys = read_trimmed(dir + "/phys_state"); phys.ok()) {
    port.phys_state_text = *phys;
    port.phys_state = parse_phys_state(*phys);
  }
  if (auto layer = read_trimmed(dir + "/link_layer"); layer.ok()) {
    port.link_layer = *layer;
  }
  if (auto lid = read_u16(dir + "/lid"); lid.ok()) {
    port.lid = *lid;
  }
  if (auto sm_lid = read_u16(dir + "/sm_lid"); sm_lid.ok()) {
    port.sm_lid = *sm_lid;
  }
  if (path_kind(dir + "/pkeys") == PathKind::kDirectory) {
    IPOIB_TRY_ASSIGN(port.pkeys, read_pkeys(dir + "/pkeys"));
  }
  if (auto gid = read_trimmed(dir + "/gids/0"); gid.ok()) {
    port.gid0 = parse_gid(*gid);
  }
  if (auto rate = read_trimmed(dir + "/rate"); rate.ok()) {
    port.rate = *rate;
  }
  return port;
}

Result<IbPort> find_port_for_netdev(const SysfsRoot& root, std::string_view ifname) {
  IPOIB_TRY_ASSIGN(NetdevInfo netdev, read_netdev(root, ifname));
  const std::string name(ifname);
  if (!netdev.is_ipoib()) {
    return Error(ErrorCode::kNotAvailable, name + " is not an IPoIB interface (type " +
                                               std::to_string(netdev.type) + ", IPoIB is 32)");
  }
  if (!netdev.ib_device) {
    return Error(ErrorCode::kNotAvailable,
                 name + " has no InfiniBand device (" +
                     root.join("sys/class/net/" + name + "/device/infiniband") + " missing)");
  }
  const std::string& device = *netdev.ib_device;
  // The port is dev_port + 1 (ipoib_add_port sets dev_port = port - 1).
  auto port = read_port(root, device, netdev.dev_port + 1);
  if (!port.ok()) {
    return std::move(port).error().with_context(name);
  }
  port->netdev = name;
  if (netdev.address.size() != 20 || !port->gid0) {
    return port;
  }
  std::array<std::uint8_t, 16> addr_gid{};
  std::copy(netdev.address.begin() + 4, netdev.address.end(), addr_gid.begin());
  if (*port->gid0 == addr_gid) {
    return port;
  }
  // dev_port may be absent or stale on old drivers: look for the port whose GID matches.
  if (auto ports = list_directory(root.join("sys/class/infiniband/" + device + "/ports"));
      ports.ok()) {
    for (const std::string& entry : *ports) {
      auto num = parse_uint(entry, 8);
      if (!num.ok() || static_cast<int>(*num) == port->port_num) {
        continue;
      }
      auto other = read_port(root, device, static_cast<int>(*num));
      if (other.ok() && other->gid0 == addr_gid) {
        other->netdev = name;
        return other;
      }
    }
  }
  return Error(ErrorCode::kNotAvailable, name + ": address GID " + format_gid(addr_gid) +
                                             " does not match " + port_name(*port) + " gids/0 " +
                                             format_gid(*port->gid0) + " nor any other port of " +
                                             device);
}

PkeyMembership pkey_in_table(const IbPort& port, std::uint16_t pkey) {
  const std::uint16_t wanted = pkey & 0x7fff;
  PkeyMembership found = PkeyMembership::kAbsent;
  if (wanted == 0) {
    return found;  // 0 and 0x8000 are invalid pkeys (empty table slots)
  }
  for (const std::uint16_t entry : port.pkeys) {
    if ((entry & 0x7fff) != wanted) {
      continue;
    }
    if ((entry & 0x8000) != 0) {
      return PkeyMembership::kFull;
    }
    found = PkeyMembership::kLimited;
  }
  return found;
}

bool port_usable(const IbPort& port) {
  return port.state == PortState::kActive && port.phys_state == PhysState::kLinkUp &&
         (port.link_layer.empty() || port.link_layer == "InfiniBand");
}

std::string explain_port(const IbPort& port) {
  std::vector<std::string> problems;
  if (!port.link_layer.empty() && port.link_layer != "InfiniBand") {
    problems.push_back("link layer is " + port.link_layer + ", not InfiniBand");
  }
  if (port.state != PortState::kActive) {
    problems.push_back(
        "state is " +
        (port.state_text.empty() ? std::string(to_string(port.state)) : port.state_text) +
        ", not 4: ACTIVE");
  }
  if (port.phys_state != PhysState::kLinkUp) {
    problems.push_back("physical state is " +
                       (port.phys_state_text.empty() ? std::string(to_string(port.phys_state))
                                                     : port.phys_state_text) +
                       ", not 5: LinkUp (cable, switch port or peer down)");
  }
  if (port.sm_lid == 0) {
    problems.push_back("no subnet manager (sm_lid 0): start opensm or enable the switch SM");
  }
  if (problems.empty()) {
    return {};
  }
  std::string out = port_name(port) + ": ";
  for (std::size_t i = 0; i < problems.size(); ++i) {
    out += (i == 0 ? "" : "; ") + problems[i];
  }
  return out;
}

std::string explain_carrier_down(const IbPort& port, std::optional<std::uint16_t> pkey) {
  std::string out = explain_port(port);
  if (pkey && pkey_in_table(port, *pkey) == PkeyMembership::kAbsent) {
    // ipoib_pkey_dev_check_presence(): carrier stays off until the SM adds the pkey.
    const std::string what = "pkey " + hex16(static_cast<std::uint16_t>(*pkey | 0x8000)) +
                             " is not in the pkey table of " + port_name(port) +
                             " (the subnet manager has not added this partition)";
    out += out.empty() ? what : "; " + what;
  }
  return out;
}

namespace {

class SysfsPortQuery final : public PortQuery {
 public:
  explicit SysfsPortQuery(SysfsRoot root) : root_(std::move(root)) {}
  [[nodiscard]] Result<IbPort> port_for_netdev(std::string_view ifname) const override {
    return find_port_for_netdev(root_, ifname);
  }

 private:
  SysfsRoot root_;
};

}  // namespace

std::unique_ptr<PortQuery> make_sysfs_port_query(SysfsRoot root) {
  return std::make_unique<SysfsPortQuery>(std::move(root));
}

}  // namespace ipoib::ib
