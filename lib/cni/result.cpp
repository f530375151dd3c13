#include "ipoib/cni/result.h"

#include <limits>
#include <string>

namespace ipoib::cni {
namespace {

using nlohmann::json;

Error decode_error(const std::string& field, std::string_view problem) {
  return Error(ErrorCode::kDecodeFailure, "result: " + field + ": " + std::string(problem));
}

// --- decoding helpers: absent and null are the same thing, as for Go's encoding/json ---

const json* member(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

Result<std::string> get_string(const json& obj, const char* key, const std::string& field) {
  const json* v = member(obj, key);
  if (v == nullptr) {
    return std::string();
  }
  if (!v->is_string()) {
    return decode_error(field + "." + key, "must be a string");
  }
  return v->get<std::string>();
}

Result<std::optional<int>> get_int(const json& obj, const char* key, const std::string& field) {
  const json* v = member(obj, key);
  if (v == nullptr) {
    return std::optional<int>();
  }
  if (v->is_number_unsigned()) {
    const auto u = v->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
      return decode_error(field + "." + key, "out of range");
    }
    return std::optional<int>(static_cast<int>(u));
  }
  if (v->is_number_integer()) {
    const auto i = v->get<std::int64_t>();
    if (i < std::numeric_limits<int>::min() || i > std::numeric_limits<int>::max()) {
      return decode_error(field + "." + key, "out of range");
    }
    return std::optional<int>(static_cast<int>(i));
  }
  return decode_error(field + "." + key, "must be an integer");
}

// Go's `int` fields with omitempty: 0 means "not set", so it decodes as absent.
Result<std::optional<int>> get_nonzero_int(const json& obj, const char* key,
                                           const std::string& field) {
  IPOIB_TRY_ASSIGN(std::optional<int> v, get_int(obj, key, field));
  if (v && *v == 0) {
    v.reset();
  }
  return v;
}

Result<std::vector<std::string>> get_strings(const json& obj, const char* key,
                                             const std::string& field) {
  std::vector<std::string> out;
  const json* v = member(obj, key);
  if (v == nullptr) {
    return out;
  }
  if (!v->is_array()) {
    return decode_error(field + "." + key, "must be an array of strings");
  }
  for (const auto& e : *v) {
    if (!e.is_string()) {
      return decode_error(field + "." + key, "must be an array of strings");
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

Result<IpPrefix> get_cidr(const json& obj, const char* key, const std::string& field) {
  const json* v = member(obj, key);
  if (v == nullptr) {
    return decode_error(field + "." + key, "missing");
  }
  if (!v->is_string()) {
    return decode_error(field + "." + key, "must be a CIDR string");
  }
  auto p = IpPrefix::parse(v->get<std::string>());
  if (!p.ok()) {
    return decode_error(field + "." + key, p.error().msg());
  }
  return *p;
}

Result<std::optional<IpAddress>> get_ip(const json& obj, const char* key,
                                        const std::string& field) {
  IPOIB_TRY_ASSIGN(std::string text, get_string(obj, key, field));
  if (text.empty()) {
    return std::optional<IpAddress>();  // Go's net.IP unmarshals "" as nil
  }
  auto a = IpAddress::parse(text);
  if (!a.ok()) {
    return decode_error(field + "." + key, a.error().msg());
  }
  return std::optional<IpAddress>(*a);
}

Result<const json*> get_array(const json& obj, const char* key) {
  const json* v = member(obj, key);
  if (v != nullptr && !v->is_array()) {
    return decode_error(key, "must be an array");
  }
  return v;
}

std::string at(const char* key, std::size_t i) {
  return std::string(key) + "[" + std::to_string(i) + "]";
}

Result<Interface> decode_interface(const json& j, const std::string& field) {
  if (!j.is_object()) {
    return decode_error(field, "must be an object");
  }
  Interface itf;
  IPOIB_TRY_ASSIGN(itf.name, get_string(j, "name", field));
  IPOIB_TRY_ASSIGN(itf.mac, get_string(j, "mac", field));
  IPOIB_TRY_ASSIGN(itf.mtu, get_nonzero_int(j, "mtu", field));
  IPOIB_TRY_ASSIGN(itf.sandbox, get_string(j, "sandbox", field));
  IPOIB_TRY_ASSIGN(itf.socket_path, get_string(j, "socketPath", field));
  IPOIB_TRY_ASSIGN(itf.pci_id, get_string(j, "pciID", field));
  return itf;
}

// One entry of "ips"; its "interface" must index one of the `interfaces` decoded before it.
Result<IpConfig> decode_ip(const json& j, const std::string& field, std::size_t interfaces) {
  if (!j.is_object()) {
    return decode_error(field, "must be an object");
  }
  IpConfig ip;
  IPOIB_TRY_ASSIGN(ip.address, get_cidr(j, "address", field));
  IPOIB_TRY_ASSIGN(ip.gateway, get_ip(j, "gateway", field));
  IPOIB_TRY_ASSIGN(ip.interface, get_int(j, "interface", field));
  if (ip.interface &&
      (*ip.interface < 0 || static_cast<std::size_t>(*ip.interface) >= interfaces)) {
    return decode_error(field + ".interface", "indexes no interface");
  }
  // "version" (0.3.x/0.4.0) is implied by the address; a contradicting one is ignored.
  return ip;
}

Result<Route> decode_route(const json& j, const std::string& field) {
  if (!j.is_object()) {
    return decode_error(field, "must be an object");
  }
  Route r;
  IPOIB_TRY_ASSIGN(r.dst, get_cidr(j, "dst", field));
  IPOIB_TRY_ASSIGN(r.gw, get_ip(j, "gw", field));
  IPOIB_TRY_ASSIGN(r.mtu, get_nonzero_int(j, "mtu", field));
  IPOIB_TRY_ASSIGN(r.advmss, get_nonzero_int(j, "advmss", field));
  IPOIB_TRY_ASSIGN(r.priority, get_nonzero_int(j, "priority", field));
  IPOIB_TRY_ASSIGN(r.table, get_int(j, "table", field));
  IPOIB_TRY_ASSIGN(r.scope, get_int(j, "scope", field));
  return r;
}

// 0.1.0/0.2.0 "ip4"/"ip6": {"ip": CIDR, "gateway": IP, "routes": [...]}.
Status decode_legacy_ip(const json& doc, const char* key, IpFamily family, CniResult& out) {
  const json* v = member(doc, key);
  if (v == nullptr) {
    return {};
  }
  const std::string field = key;
  if (!v->is_object()) {
    return decode_error(field, "must be an object");
  }
  IpConfig ip;
  IPOIB_TRY_ASSIGN(ip.address, get_cidr(*v, "ip", field));
  if (ip.address.family() != family) {
    return decode_error(field + ".ip", "wrong address family");
  }
  IPOIB_TRY_ASSIGN(ip.gateway, get_ip(*v, "gateway", field));
  out.ips.push_back(ip);
  const json* routes = member(*v, "routes");
  if (routes == nullptr) {
    return {};
  }
  if (!routes->is_array()) {
    return decode_error(field + ".routes", "must be an array");
  }
  for (std::size_t i = 0; i < routes->size(); ++i) {
    IPOIB_TRY_ASSIGN(Route r, decode_route((*routes)[i], field + "." + at("routes", i)));
    out.routes.push_back(r);
  }
  return {};
}

// --- encoding ---

json encode_dns(const Dns& d) {
  json o = json::object();
  if (!d.nameservers.empty()) {
    o["nameservers"] = d.nameservers;
  }
  if (!d.domain.empty()) {
    o["domain"] = d.domain;
  }
  if (!d.search.empty()) {
    o["search"] = d.search;
  }
  if (!d.options.empty()) {
    o["options"] = d.options;
  }
  return o;
}

json encode_route(const Route& r, CniVersion version) {
  json o = {{"dst", r.dst.to_string()}};
  if (r.gw) {
    o["gw"] = r.gw->to_string();
  }
  if (version >= CniVersion::k1_1_0) {
    // Go's types/110: MTU, AdvMSS and Priority are `int,omitempty` (0 = unset); Table and
    // Scope are *int (0 is a real value).
    if (r.mtu && *r.mtu != 0) {
      o["mtu"] = *r.mtu;
    }
    if (r.advmss && *r.advmss != 0) {
      o["advmss"] = *r.advmss;
    }
    if (r.priority && *r.priority != 0) {
      o["priority"] = *r.priority;
    }
    if (r.table) {
      o["table"] = *r.table;
    }
    if (r.scope) {
      o["scope"] = *r.scope;
    }
  }
  return o;
}

json encode_legacy_ip(const IpConfig& ip, const std::vector<Route>& routes) {
  json o = {{"ip", ip.address.to_string()}};
  if (ip.gateway) {
    o["gateway"] = ip.gateway->to_string();
  }
  json rs = json::array();
  for (const auto& r : routes) {
    if (r.dst.family() == ip.address.family()) {
      rs.push_back(encode_route(r, CniVersion::k0_2_0));
    }
  }
  if (!rs.empty()) {
    o["routes"] = std::move(rs);
  }
  return o;
}

}  // namespace

Result<nlohmann::json> encode_result(const CniResult& r, CniVersion version) {
  for (std::size_t i = 0; i < r.ips.size(); ++i) {
    const auto& idx = r.ips[i].interface;
    // go-cni (containerd) indexes interfaces with this value without a bounds check.
    if (idx && (*idx < 0 || static_cast<std::size_t>(*idx) >= r.interfaces.size())) {
      return Error(ErrorCode::kInternal, "result: ips[" + std::to_string(i) + "].interface " +
                                             std::to_string(*idx) + " indexes no interface");
    }
  }
  json doc = {{"cniVersion", std::string(to_string(version))}};

  if (version <= CniVersion::k0_2_0) {
    // types/020: the first address of each family, routes of that family; the rest is lost.
    const IpConfig* ip4 = nullptr;
    const IpConfig* ip6 = nullptr;
    for (const auto& ip : r.ips) {
      if (ip.address.family() == IpFamily::kV4 && ip4 == nullptr) {
        ip4 = &ip;
      } else if (ip.address.family() == IpFamily::kV6 && ip6 == nullptr) {
        ip6 = &ip;
      }
    }
    if (ip4 == nullptr && ip6 == nullptr) {
      return Error(
          ErrorCode::kIncompatibleVersion,
          "cannot express a result without IP addresses in CNI " + std::string(to_string(version)),
          supported_versions_text());
    }
    if (ip4 != nullptr) {
      doc["ip4"] = encode_legacy_ip(*ip4, r.routes);
    }
    if (ip6 != nullptr) {
      doc["ip6"] = encode_legacy_ip(*ip6, r.routes);
    }
  } else {
    if (!r.interfaces.empty()) {
      json ifs = json::array();
      for (const auto& i : r.interfaces) {
        json o = {{"name", i.name}};
        if (!i.mac.empty()) {
          o["mac"] = i.mac;
        }
        if (!i.sandbox.empty()) {
          o["sandbox"] = i.sandbox;
        }
        if (version >= CniVersion::k1_1_0) {
          if (i.mtu && *i.mtu != 0) {
            o["mtu"] = *i.mtu;
          }
          if (!i.socket_path.empty()) {
            o["socketPath"] = i.socket_path;
          }
          if (!i.pci_id.empty()) {
            o["pciID"] = i.pci_id;
          }
        }
        ifs.push_back(std::move(o));
      }
      doc["interfaces"] = std::move(ifs);
    }
    if (!r.ips.empty()) {
      json ips = json::array();
      for (const auto& ip : r.ips) {
        json o = {{"address", ip.address.to_string()}};
        if (version < CniVersion::k1_0_0) {
          o["version"] = ip.address.family() == IpFamily::kV4 ? "4" : "6";
        }
        if (ip.gateway) {
          o["gateway"] = ip.gateway->to_string();
        }
        if (ip.interface) {
          o["interface"] = *ip.interface;
        }
        ips.push_back(std::move(o));
      }
      doc["ips"] = std::move(ips);
    }
    if (!r.routes.empty()) {
      json routes = json::array();
      for (const auto& route : r.routes) {
        routes.push_back(encode_route(route, version));
      }
      doc["routes"] = std::move(routes);
    }
  }
  if (!r.dns.empty()) {
    doc["dns"] = encode_dns(r.dns);
  }
  return doc;
}

Result<CniResult> decode_result(const nlohmann::json& doc, CniVersion fallback) {
  if (!doc.is_object()) {
    return decode_error("document", "must be an object");
  }
  // The shape is recognised by its keys, not trusted from cniVersion: delegated IPAMs and
  // runtimes have been seen to label results inconsistently, and both shapes are unambiguous.
  // An unreadable cniVersion falls back to the caller's version (used for nothing else today).
  (void)fallback;
  CniResult out;

  IPOIB_TRY_ASSIGN(const json* interfaces, get_array(doc, "interfaces"));
  if (interfaces != nullptr) {
    for (std::size_t i = 0; i < interfaces->size(); ++i) {
      IPOIB_TRY_ASSIGN(Interface itf, decode_interface((*interfaces)[i], at("interfaces", i)));
      out.interfaces.push_back(std::move(itf));
    }
  }

  IPOIB_TRY_ASSIGN(const json* ips, get_array(doc, "ips"));
  if (ips != nullptr) {
    for (std::size_t i = 0; i < ips->size(); ++i) {
      IPOIB_TRY_ASSIGN(IpConfig ip, decode_ip((*ips)[i], at("ips", i), out.interfaces.size()));
      out.ips.push_back(ip);
    }
  }

  IPOIB_TRY_ASSIGN(const json* routes, get_array(doc, "routes"));
  if (routes != nullptr) {
    for (std::size_t i = 0; i < routes->size(); ++i) {
      IPOIB_TRY_ASSIGN(Route r, decode_route((*routes)[i], at("routes", i)));
      out.routes.push_back(r);
    }
  }

  IPOIB_TRY(decode_legacy_ip(doc, "ip4", IpFamily::kV4, out));
  IPOIB_TRY(decode_legacy_ip(doc, "ip6", IpFamily::kV6, out));

  if (const json* dns = member(doc, "dns"); dns != nullptr) {
    if (!dns->is_object()) {
      return decode_error("dns", "must be an object");
    }
    IPOIB_TRY_ASSIGN(out.dns.nameservers, get_strings(*dns, "nameservers", "dns"));
    IPOIB_TRY_ASSIGN(out.dns.domain, get_string(*dns, "domain", "dns"));
    IPOIB_TRY_ASSIGN(out.dns.search, get_strings(*dns, "search", "dns"));
    IPOIB_TRY_ASSIGN(out.dns.options, get_strings(*dns, "options", "dns"));
  }
  return out;
}

}  // namespace ipoib::cni
