#include "ipoib/ipam/requested_ips.h"

#include <algorithm>

namespace ipoib::ipam {
namespace {

struct Source {
  std::string name;
  ErrorCode code;
  std::vector<std::string> texts;
};

Error source_error(const Source& s, const std::string& what) {
  return Error(s.code, s.name + ": " + what);
}

// A JSON array of strings at conf[key...]; nullopt when absent.
Result<std::optional<std::vector<std::string>>> string_list(const nlohmann::json* v,
                                                            const std::string& name) {
  if (v == nullptr || v->is_null()) {
    return std::optional<std::vector<std::string>>{};
  }
  if (!v->is_array()) {
    return Error(ErrorCode::kInvalidNetworkConfig, name + ": must be a list of addresses");
  }
  std::vector<std::string> out;
  for (const auto& e : *v) {
    if (!e.is_string()) {
      return Error(ErrorCode::kInvalidNetworkConfig, name + ": must be a list of address strings");
    }
    out.push_back(e.get<std::string>());
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

const nlohmann::json* member(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) {
    return nullptr;
  }
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

Result<RequestedIp> parse_one(const Source& s, const std::string& text) {
  RequestedIp r;
  r.text = text;
  if (text.find('/') != std::string::npos) {
    auto p = IpPrefix::parse(text);
    if (!p) {
      return source_error(s, "\"" + text + "\" is not an address or address/prefix");
    }
    r.ip = p->address();
    r.prefix_length = p->length();
  } else {
    auto a = IpAddress::parse(text);
    if (!a) {
      return source_error(s, "\"" + text + "\" is not an address");
    }
    r.ip = *a;
  }
  return r;
}

}  // namespace

Result<RequestedIps> requested_ips(const cni::NetConf& conf, const cni::CniArgs& args) {
  std::vector<Source> sources;
  IPOIB_TRY_ASSIGN(auto runtime_ips,
                   string_list(member(conf.runtime_config, "ips"), "runtimeConfig.ips"));
  if (runtime_ips) {
    sources.push_back({"runtimeConfig.ips", ErrorCode::kInvalidNetworkConfig, *runtime_ips});
  }
  const nlohmann::json* cni_args = member(conf.raw, "args");
  cni_args = cni_args != nullptr ? member(*cni_args, "cni") : nullptr;
  IPOIB_TRY_ASSIGN(
      auto arg_ips,
      string_list(cni_args != nullptr ? member(*cni_args, "ips") : nullptr, "args.cni.ips"));
  if (arg_ips) {
    sources.push_back({"args.cni.ips", ErrorCode::kInvalidNetworkConfig, *arg_ips});
  }
  if (auto ip_arg = args.get("IP"); ip_arg && !ip_arg->empty()) {
    Source s{"CNI_ARGS IP", ErrorCode::kInvalidEnvironment, {}};
    std::string_view rest = *ip_arg;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      while (!item.empty() && item.front() == ' ') {
        item.remove_prefix(1);
      }
      while (!item.empty() && item.back() == ' ') {
        item.remove_suffix(1);
      }
      if (item.empty()) {
        return source_error(s, "an empty element in \"" + *ip_arg + "\"");
      }
      s.texts.emplace_back(item);
    }
    sources.push_back(std::move(s));
  }
  // Precedence: the first source that names any address wins.
  RequestedIps out;
  const Source* chosen = nullptr;
  for (const Source& s : sources) {
    if (s.texts.empty()) {
      continue;
    }
    if (chosen == nullptr) {
      chosen = &s;
    } else {
      out.ignored_sources.push_back(s.name);
    }
  }
  if (chosen == nullptr) {
    return out;
  }
  out.source = chosen->name;
  for (const std::string& t : chosen->texts) {
    IPOIB_TRY_ASSIGN(RequestedIp r, parse_one(*chosen, t));
    if (std::any_of(out.ips.begin(), out.ips.end(),
                    [&](const RequestedIp& o) { return o.ip == r.ip; })) {
      return source_error(*chosen, r.ip.to_string() + " is requested twice");
    }
    out.ips.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<std::optional<IpAddress>>> assign_requested(
    const RequestedIps& req, const std::vector<Range>& ranges,
    const std::vector<std::string>& keys) {
  const ErrorCode code = req.source == "CNI_ARGS IP" ? ErrorCode::kInvalidEnvironment
                                                     : ErrorCode::kInvalidNetworkConfig;
  auto fail = [&](const RequestedIp& r, const std::string& why) {
    return Error(code, req.source + ": requested address " + r.text + " " + why);
  };
  std::vector<std::optional<IpAddress>> per_range(ranges.size());
  for (const RequestedIp& r : req.ips) {
    std::size_t match = ranges.size();
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      if (ranges[i].contains(r.ip)) {
        match = i;
        break;
      }
    }
    if (match == ranges.size()) {
      std::string list;
      for (std::size_t i = 0; i < ranges.size(); ++i) {
        list += (i ? ", " : "") + ranges[i].first.to_string() + "-" + ranges[i].last.to_string();
      }
      return fail(
          r, "is outside every range of the network (" + list + "), or is excluded or the gateway");
    }
    if (r.prefix_length && *r.prefix_length != ranges[match].subnet.length()) {
      return fail(r, "has prefix length /" + std::to_string(*r.prefix_length) + " but range " +
                         keys[match] + " is /" + std::to_string(ranges[match].subnet.length()));
    }
    if (per_range[match]) {
      return fail(r, "and " + per_range[match]->to_string() + " are both in range " + keys[match] +
                         ", which gives an attachment one address");
    }
    per_range[match] = r.ip;
  }
  return per_range;
}

Status reserve_requested(PoolTxn& txn, const IpAddress& ip, Reservation r,
                         const std::string& source) {
  IPOIB_TRY_ASSIGN(std::vector<Reservation> held, txn.reservations({.ip = ip}));
  if (!held.empty()) {
    const Reservation& h = held.front();
    if (h.container_id == r.container_id && h.ifname == r.ifname) {
      return ok_status();
    }
    return Error(ErrorCode::kIpamFailure,
                 source + ": requested address " + ip.to_string() + " is held by container " +
                     h.container_id + " ifname " + h.ifname +
                     (h.pod_ref.empty() ? "" : " (pod " + h.pod_ref + ")") +
                     "; free it with `ipoib ipam release --ip " + ip.to_string() +
                     "` if that attachment is gone");
  }
  IPOIB_TRY_ASSIGN(std::optional<Reservation> own,
                   txn.find_attachment(r.range_key, r.container_id, r.ifname));
  if (own) {
    IPOIB_TRY(txn.release(own->ip));
  }
  r.ip = ip;
  return txn.reserve(std::move(r));
}

}  // namespace ipoib::ipam
