#include "ipoib/ib/netdev.h"

#include "ipoib/base/strings.h"
#include "ipoib/ib/sysfs_file.h"

namespace ipoib::ib {
namespace {

std::optional<std::uint64_t> read_number(const std::string& path, int bits) {
  auto text = read_trimmed(path);
  if (!text.ok()) {
    return std::nullopt;
  }
  auto value = parse_uint(*text, bits);
  if (!value.ok()) {
    return std::nullopt;
  }
  return *value;
}

}  // namespace

std::optional<std::vector<std::uint8_t>> parse_hw_address(std::string_view text) {
  std::vector<std::uint8_t> bytes;
  text = trim(text);
  if (text.empty()) {
    return bytes;
  }
  for (std::string_view part : split(text, ':')) {
    if (part.empty() || part.size() > 2) {
      return std::nullopt;
    }
    auto value = parse_uint("0x" + std::string(part), 8);
    if (!value.ok()) {
      return std::nullopt;
    }
    bytes.push_back(static_cast<std::uint8_t>(*value));
  }
  return bytes;
}

Result<NetdevInfo> read_netdev(const SysfsRoot& root, std::string_view ifname) {
  const std::string name(ifname);
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return Error(ErrorCode::kInvalidNetworkConfig, "invalid interface name '" + name + "'");
  }
  const std::string dir = root.join("sys/class/net/" + name);
  if (path_kind(dir) != PathKind::kDirectory) {
    return Error(ErrorCode::kNotAvailable,
                 "interface " + name + " not found (" + dir + " missing)");
  }
  NetdevInfo info;
  info.name = name;
  const auto type = read_number(dir + "/type", 16);
  const auto ifindex = read_number(dir + "/ifindex", 31);
  if (!type || !ifindex) {
    return Error(ErrorCode::kIoFailure, dir + ": type or ifindex unreadable");
  }
  info.type = static_cast<int>(*type);
  info.ifindex = static_cast<int>(*ifindex);
  info.iflink = static_cast<int>(read_number(dir + "/iflink", 31).value_or(0));
  info.dev_port = static_cast<int>(read_number(dir + "/dev_port", 16).value_or(0));
  info.mtu = static_cast<int>(read_number(dir + "/mtu", 31).value_or(0));
  info.flags = static_cast<unsigned>(read_number(dir + "/flags", 32).value_or(0));
  if (auto address = read_trimmed(dir + "/address"); address.ok()) {
    info.address = parse_hw_address(*address).value_or(std::vector<std::uint8_t>{});
  }
  if (auto operstate = read_trimmed(dir + "/operstate"); operstate.ok()) {
    info.operstate = *operstate;
  }
  // carrier reads fail with EINVAL while the interface is administratively down.
  if (auto carrier = read_number(dir + "/carrier", 1)) {
    info.carrier = *carrier == 1;
  }
  if (auto mode = read_trimmed(dir + "/mode"); mode.ok()) {
    info.mode = *mode;
  }
  if (auto pkey = read_number(dir + "/pkey", 16)) {
    info.pkey = static_cast<std::uint16_t>(*pkey);
  }
  if (auto parent = read_trimmed(dir + "/parent"); parent.ok()) {
    info.parent = *parent;
  }
  if (auto alias = read_trimmed(dir + "/ifalias"); alias.ok()) {
    info.ifalias = *alias;
  }
  if (auto devices = list_directory(dir + "/device/infiniband");
      devices.ok() && !devices->empty()) {
    info.ib_device = devices->front();
  }
  return info;
}

Result<std::vector<std::string>> list_netdevs(const SysfsRoot& root) {
  return list_directory(root.join("sys/class/net"));
}

}  // namespace ipoib::ib
