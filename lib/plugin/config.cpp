#include "ipoib/plugin/config.h"

#include <cstdio>

#include "ipoib/base/strings.h"
#include "ipoib/cni/env.h"
#include "ipoib/ipam/config.h"
#include "ipoib/ipam/ipam.h"

namespace ipoib::plugin {
namespace {

Error config_error(std::string_view key, std::string_view what) {
  return Error(ErrorCode::kInvalidNetworkConfig, std::string(key) + ": " + std::string(what));
}

std::string hex16(std::uint64_t v) {
  char buf[24];
  (void)std::snprintf(buf, sizeof buf, "0x%04llx", static_cast<unsigned long long>(v));
  return buf;
}

Result<std::uint16_t> parse_pkey(const nlohmann::json& v) {
  std::uint64_t value = 0;
  if (v.is_number_unsigned()) {
    value = v.get<std::uint64_t>();
  } else if (v.is_number_integer()) {
    return config_error("pkey", "must not be negative");
  } else if (v.is_string()) {
    // "0x8001" is hexadecimal, anything else decimal (the same rule as ip-link's "pkey").
    auto parsed = parse_uint(trim(v.get_ref<const std::string&>()), 64);
    if (!parsed) {
      return config_error("pkey", parsed.error().msg());
    }
    value = *parsed;
  } else {
    return config_error("pkey", "must be a number or a hex string such as \"0x8001\"");
  }
  if (value > 0xffff) {
    return config_error("pkey", hex16(value) + " does not fit in 16 bits");
  }
  // ipoib_new_child_link() refuses both with EINVAL: neither names a partition.
  if (value == 0 || value == kFullMembershipBit) {
    return config_error("pkey", hex16(value) + " is not a valid partition key");
  }
  return static_cast<std::uint16_t>(value);
}

Result<int> parse_mtu(const nlohmann::json& v) {
  if (!v.is_number_integer() && !v.is_number_unsigned()) {
    return config_error("mtu", "must be an integer");
  }
  if (v.is_number_integer() && v.get<std::int64_t>() < 0) {
    return config_error("mtu", "must not be negative");
  }
  const std::uint64_t mtu = v.get<std::uint64_t>();
  if (mtu < static_cast<std::uint64_t>(kDatagramMinMtu) ||
      mtu > static_cast<std::uint64_t>(kConnectedMaxMtu)) {
    return config_error("mtu", std::to_string(mtu) + " is outside " +
                                   std::to_string(kDatagramMinMtu) + ".." +
                                   std::to_string(kConnectedMaxMtu));
  }
  return static_cast<int>(mtu);
}

// Checks `mtu` against the mode and, in datagram mode, against the port's IB MTU.
Status check_mtu_for_mode(int mtu, IpoibMode mode, std::optional<int> port_ib_mtu) {
  if (mode == IpoibMode::kDatagram) {
    int max = kDatagramMaxMtu;
    std::string why = "datagram mode";
    // ipoib_change_mtu(): datagram MTU must fit IPOIB_UD_MTU(max_ib_mtu) = IB MTU - 4.
    if (port_ib_mtu && *port_ib_mtu - kIpoibEncapBytes < max) {
      max = *port_ib_mtu - kIpoibEncapBytes;
      why = "datagram mode on a port with IB MTU " + std::to_string(*port_ib_mtu);
    }
    if (mtu < kDatagramMinMtu || mtu > max) {
      return config_error("mtu", std::to_string(mtu) + " is outside " +
                                     std::to_string(kDatagramMinMtu) + ".." + std::to_string(max) +
                                     " allowed in " + why);
    }
    return ok_status();
  }
  if (mtu < kDatagramMinMtu || mtu > kConnectedMaxMtu) {
    return config_error("mtu", std::to_string(mtu) + " is outside " +
                                   std::to_string(kDatagramMinMtu) + ".." +
                                   std::to_string(kConnectedMaxMtu) + " allowed in connected mode");
  }
  return ok_status();
}

}  // namespace

std::string format_pkey(std::uint16_t pkey) { return hex16(pkey); }

std::string_view to_string(IpoibMode mode) {
  return mode == IpoibMode::kConnected ? "connected" : "datagram";
}

Result<IpamSection> parse_ipam_section(const nlohmann::json& raw) {
  IpamSection out;
  if (!raw.is_object()) {
    return out;
  }
  const auto it = raw.find("ipam");
  if (it == raw.end() || it->is_null()) {
    return out;
  }
  if (!it->is_object()) {
    return config_error("ipam", "must be an object");
  }
  const auto type = it->find("type");
  if (type == it->end()) {
    // "ipam": {} is how network attachment definitions say "layer 2 only".
    if (it->empty()) {
      return out;
    }
    return config_error("ipam.type", "missing");
  }
  if (!type->is_string() || type->get_ref<const std::string&>().empty()) {
    return config_error("ipam.type", "must be a non-empty string");
  }
  out.type = type->get<std::string>();
  // The type names a file in CNI_PATH: a path or a name with '/' would escape it.
  if (!cni::is_valid_identifier(out.type)) {
    return config_error("ipam.type", "\"" + out.type + "\" is not a plugin name");
  }
  out.kind = ipam::is_builtin_type(out.type) ? IpamKind::kBuiltin : IpamKind::kDelegated;
  return out;
}

namespace {

// Every key's problem, not just the first: an operator fixes a config in one round.
class ConfigErrors {
 public:
  template <class T>
  void take(Result<T> r, std::optional<T>& into) {
    if (r.ok()) {
      into = std::move(*r);
    } else {
      add(std::move(r).error());
    }
  }
  void add(Status s) {
    if (!s.ok()) {
      add(std::move(s).error());
    }
  }
  void add(const Error& e) {
    if (!text_.empty()) {
      text_ += "; ";
    }
    text_ += e.msg();
  }
  [[nodiscard]] bool empty() const { return text_.empty(); }
  [[nodiscard]] Error error() const { return Error(ErrorCode::kInvalidNetworkConfig, text_); }

 private:
  std::string text_;
};

Result<std::string> parse_master(const nlohmann::json& raw) {
  const auto master = raw.find("master");
  if (master == raw.end() || master->is_null()) {
    return config_error("master", "required (the IPoIB parent interface, e.g. \"ib0\")");
  }
  if (!master->is_string()) {
    return config_error("master", "must be a string");
  }
  std::string name = master->get<std::string>();
  if (!cni::is_valid_ifname(name)) {
    return config_error("master", "\"" + name + "\" is not a valid interface name");
  }
  return name;
}

Result<IpoibMode> parse_mode(const nlohmann::json& mode) {
  if (!mode.is_string()) {
    return config_error("mode", "must be \"datagram\" or \"connected\"");
  }
  const auto& text = mode.get_ref<const std::string&>();
  if (iequals(text, "datagram")) {
    return IpoibMode::kDatagram;
  }
  if (iequals(text, "connected")) {
    return IpoibMode::kConnected;
  }
  return config_error("mode", "\"" + text + "\" is not \"datagram\" or \"connected\"");
}

Result<Umcast> parse_umcast(const nlohmann::json& umcast) {
  if (!umcast.is_boolean()) {
    return config_error("umcast", "must be true or false");
  }
  return umcast.get<bool>() ? Umcast::kOn : Umcast::kOff;
}

// The value of `key` when present and not null.
const nlohmann::json* present(const nlohmann::json& raw, const char* key) {
  const auto it = raw.find(key);
  return it == raw.end() || it->is_null() ? nullptr : &*it;
}

}  // namespace

Result<IpoibConfig> parse_ipoib_config(const cni::NetConf& conf) {
  const nlohmann::json& raw = conf.raw;
  if (!raw.is_object()) {
    return Error(ErrorCode::kInvalidNetworkConfig, "network configuration is not an object");
  }
  IpoibConfig out;
  ConfigErrors errors;
  std::optional<std::string> master;
  errors.take(parse_master(raw), master);
  out.master = master.value_or("");
  if (const auto* pkey = present(raw, "pkey")) {
    errors.take(parse_pkey(*pkey), out.pkey);
  }
  if (const auto* mode = present(raw, "mode")) {
    errors.take(parse_mode(*mode), out.mode);
  }
  if (const auto* umcast = present(raw, "umcast")) {
    std::optional<Umcast> value;
    errors.take(parse_umcast(*umcast), value);
    out.umcast = value.value_or(Umcast::kOff);
  }
  if (const auto* mtu = present(raw, "mtu")) {
    errors.take(parse_mtu(*mtu), out.mtu_bytes);
    if (out.mtu_bytes && out.mode) {
      errors.add(check_mtu_for_mode(*out.mtu_bytes, *out.mode, std::nullopt));
    }
  }
  std::optional<IpamSection> ipam;
  errors.take(parse_ipam_section(raw), ipam);
  out.ipam = ipam.value_or(IpamSection{});
  if (!errors.empty()) {
    return errors.error();
  }
  return out;
}

Result<IpoibConfig> validate_network_config(const cni::NetConf& conf,
                                            const ipam::ConfigSources& sources) {
  auto parsed = parse_ipoib_config(conf);
  ConfigErrors errors;
  if (!parsed.ok()) {
    errors.add(parsed.error());
  }
  // The built-in IPAM's section, by its own parser, even when the plugin keys failed.
  auto section = parse_ipam_section(conf.raw);
  if (section.ok() && section->kind == IpamKind::kBuiltin) {
    auto ipam_config = ipam::load_ipam_config(conf.raw["ipam"], sources);
    if (!ipam_config.ok()) {
      errors.add(Error(ErrorCode::kInvalidNetworkConfig, "ipam." + ipam_config.error().msg()));
    }
  }
  if (!errors.empty()) {
    return errors.error();
  }
  return parsed;
}

Result<ChildSpec> resolve_child_spec(const IpoibConfig& config, const ParentFacts& parent) {
  ChildSpec spec;
  spec.parent_ifindex = parent.ifindex;
  spec.pkey = config.pkey.value_or(parent.pkey);
  spec.mode = config.mode.value_or(parent.mode);
  spec.umcast = config.umcast;
  if (config.mtu_bytes) {
    spec.mtu_bytes = *config.mtu_bytes;
    IPOIB_TRY(check_mtu_for_mode(spec.mtu_bytes, spec.mode, parent.port_ib_mtu_bytes));
  } else {
    // The parent's configured MTU, not the port maximum a new child starts with (the known
    // complaint: host ib0 at 1496, pod interface at 2044).
    spec.mtu_bytes = parent.mtu_bytes;
    if (spec.mode == IpoibMode::kDatagram && parent.port_ib_mtu_bytes &&
        spec.mtu_bytes > *parent.port_ib_mtu_bytes - kIpoibEncapBytes) {
      spec.mtu_bytes = *parent.port_ib_mtu_bytes - kIpoibEncapBytes;
    }
    if (spec.mode == IpoibMode::kDatagram && spec.mtu_bytes > kDatagramMaxMtu) {
      // A connected-mode parent's 65520 does not fit a datagram child.
      spec.mtu_bytes = kDatagramMaxMtu;
    }
  }
  return spec;
}

}  // namespace ipoib::plugin
