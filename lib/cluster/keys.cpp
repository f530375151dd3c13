// The cluster store's key layout (ipoib/cluster/keys.h).
#include "ipoib/cluster/keys.h"

#include "ipoib/etcd/wire.h"

namespace ipoib::cluster::keys {
namespace {

constexpr std::string_view kHexDigits = "0123456789abcdef";

std::string net_component(std::string_view net) { return net.empty() ? "_" : escape(net); }

}  // namespace

std::string escape(std::string_view component) {
  std::string out;
  out.reserve(component.size());
  for (char c : component) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || c == '.' ||
        c == '_' || c == '-') {
      out += c;
    } else {
      constexpr std::string_view kUpper = "0123456789ABCDEF";  // RFC 3986 section 2.1
      out += '%';
      out += kUpper[u >> 4];
      out += kUpper[u & 15];
    }
  }
  return out;
}

std::string unescape(std::string_view component) {
  auto digit = [](char c) -> int {
    const auto d = std::string_view("0123456789ABCDEF").find(c);
    return d == std::string_view::npos ? -1 : static_cast<int>(d);
  };
  std::string out;
  out.reserve(component.size());
  for (std::size_t i = 0; i < component.size(); ++i) {
    if (component[i] == '%' && i + 2 < component.size() && digit(component[i + 1]) >= 0 &&
        digit(component[i + 2]) >= 0) {
      out += static_cast<char>(digit(component[i + 1]) * 16 + digit(component[i + 2]));
      i += 2;
    } else {
      out += component[i];
    }
  }
  return out;
}

std::string address_hex(const IpAddress& ip) {
  const int digits = ip.is_v4() ? 8 : 32;
  std::string out(static_cast<std::size_t>(digits), '0');
  u128 v = ip.value();
  for (int i = digits - 1; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = kHexDigits[static_cast<std::size_t>(v & 15)];
    v >>= 4;
  }
  return out;
}

std::string network(std::string_view net) {
  std::string out(kRoot);
  out += "net/";
  out += net_component(net);
  out += '/';
  return out;
}

std::string address_prefix(std::string_view net, IpFamily family) {
  return network(net) + (family == IpFamily::kV4 ? "ip4/" : "ip6/");
}

std::string address(std::string_view net, const IpAddress& ip) {
  return address_prefix(net, ip.family()) + address_hex(ip);
}

std::optional<IpAddress> address_of(std::string_view key) {
  const std::size_t slash = key.rfind('/');
  if (slash == std::string_view::npos || slash < 4) {
    return std::nullopt;
  }
  const std::string_view kind = key.substr(slash - 3, 3);
  const std::string_view hex = key.substr(slash + 1);
  IpFamily family = IpFamily::kV4;
  if (kind == "ip4" && hex.size() == 8) {
    family = IpFamily::kV4;
  } else if (kind == "ip6" && hex.size() == 32) {
    family = IpFamily::kV6;
  } else {
    return std::nullopt;
  }
  u128 v = 0;
  for (char c : hex) {
    const auto d = kHexDigits.find(c);
    if (d == std::string_view::npos) {
      return std::nullopt;
    }
    v = (v << 4) | static_cast<u128>(d);
  }
  return IpAddress(family, v);
}

std::string attachment_prefix(std::string_view net, std::string_view container_id,
                              std::string_view ifname) {
  return network(net) + "att/" + escape(container_id) + "/" + escape(ifname) + "/";
}

std::string attachment(std::string_view net, std::string_view container_id, std::string_view ifname,
                       std::string_view range_key) {
  return attachment_prefix(net, container_id, ifname) + escape(range_key);
}

std::string pod_prefix(std::string_view net, std::string_view pod_ref, std::string_view ifname,
                       std::string_view range_key) {
  return network(net) + "pod/" + escape(pod_ref) + "/" + escape(ifname) + "/" + escape(range_key) +
         "/";
}

std::string pod(std::string_view net, std::string_view pod_ref, std::string_view ifname,
                std::string_view range_key, std::string_view container_id) {
  return pod_prefix(net, pod_ref, ifname, range_key) + escape(container_id);
}

std::string ranges_prefix(std::string_view net) { return network(net) + "range/"; }

std::string range_state(std::string_view net, std::string_view range_key) {
  return ranges_prefix(net) + escape(range_key) + "/state";
}

std::string slice_prefix(std::string_view net, std::string_view range_key) {
  return ranges_prefix(net) + escape(range_key) + "/slice/";
}

std::string slice(std::string_view net, std::string_view range_key, const IpAddress& first) {
  return slice_prefix(net, range_key) + address_hex(first);
}

std::string prefix_end(std::string_view prefix) { return etcd::prefix_range_end(prefix); }

}  // namespace ipoib::cluster::keys
