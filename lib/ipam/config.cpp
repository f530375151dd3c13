#include "ipoib/ipam/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>

#include "ipoib/base/errno_error.h"
#include "ipoib/base/fd.h"
#include "ipoib/base/file.h"
#include "ipoib/base/strings.h"
#include "ipoib/cni/config.h"
#include "ipoib/ipam/pool.h"

namespace ipoib::ipam {
namespace {

using nlohmann::json;

constexpr std::string_view kDefaultStoreDirText = "/var/lib/cni/ipoib-ipam";
constexpr std::size_t kMaxFlatFileBytes = 1 << 20;

Error bad(const std::string& key, const std::string& msg) {
  return Error(ErrorCode::kInvalidNetworkConfig, key + ": " + msg);
}

// Reads an optional string key; a present non-string is an error naming the key.
Result<std::string> get_string(const json& obj, const std::string& key,
                               const std::string& display) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::string();
  }
  if (!it->is_string()) {
    return bad(display, "must be a string");
  }
  return it->get<std::string>();
}

Result<std::vector<std::string>> get_string_list(const json& obj, const std::string& key,
                                                 const std::string& display) {
  std::vector<std::string> out;
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return out;
  }
  if (!it->is_array()) {
    return bad(display, "must be a list of strings");
  }
  for (std::size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    if (!e.is_string()) {
      return bad(display + "[" + std::to_string(i) + "]", "must be a string");
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

Result<RangeSpec> read_range_spec(const json& obj, const std::string& prefix,
                                  const std::string& gateway) {
  RangeSpec s;
  IPOIB_TRY_ASSIGN(s.range, get_string(obj, "range", prefix + "range"));
  IPOIB_TRY_ASSIGN(s.range_start, get_string(obj, "range_start", prefix + "range_start"));
  IPOIB_TRY_ASSIGN(s.range_end, get_string(obj, "range_end", prefix + "range_end"));
  IPOIB_TRY_ASSIGN(s.exclude, get_string_list(obj, "exclude", prefix + "exclude"));
  s.gateway = gateway;
  return s;
}

// Reads a whole small regular file; nullopt when it does not exist. Never blocks: a FIFO, socket
// or device is refused at once (base/file.h open_checked).
Result<std::optional<std::string>> read_small_file(const std::string& path) {
  auto text = read_file_if_exists(AT_FDCWD, path, kMaxFlatFileBytes,
                                  ErrorCode::kInvalidNetworkConfig, FollowSymlinks::kYes);
  if (!text) {
    return Error(ErrorCode::kInvalidNetworkConfig, "flat file " + text.error().msg());
  }
  return text;
}

struct Merged {
  json ipam;
  std::string flat_file;
};

// The inline `ipam` object with the flat file's keys filling what it leaves unset.
Result<Merged> merge_flat_file(const json& ipam, const ConfigSources& src) {
  if (!ipam.is_object()) {
    return bad("ipam", "must be an object");
  }
  Merged m{ipam, {}};
  std::vector<std::string> paths;
  IPOIB_TRY_ASSIGN(std::string configured,
                   get_string(ipam, "configuration_path", "configuration_path"));
  if (!configured.empty()) {
    paths.push_back(configured);
  }
  paths.insert(paths.end(), src.flat_file_paths.begin(), src.flat_file_paths.end());
  for (const std::string& path : paths) {
    IPOIB_TRY_ASSIGN(std::optional<std::string> text, read_small_file(path));
    if (!text) {
      continue;
    }
    auto doc = cni::parse_json(*text, "flat file " + path);
    if (!doc) {
      return Error(ErrorCode::kInvalidNetworkConfig, doc.error().msg());
    }
    json flat = std::move(doc).value();
    if (flat.is_object() && flat.contains("ipam") && flat["ipam"].is_object()) {
      flat = flat["ipam"];
    }
    if (!flat.is_object()) {
      return Error(ErrorCode::kInvalidNetworkConfig,
                   "flat file " + path + ": must be a JSON object");
    }
    for (auto it = flat.begin(); it != flat.end(); ++it) {
      if (!m.ipam.contains(it.key())) {
        m.ipam[it.key()] = it.value();
      }
    }
    m.flat_file = path;
    break;  // whereabouts uses the first flat file it finds
  }
  return m;
}

// `node_name` as configured ("" when unset).
Result<std::string> configured_node_name(const json& ipam) {
  return get_string(ipam, "node_name", "node_name");
}

// "/26" or "26" (whereabouts' form) as a prefix length; 0 when unset.
Result<int> read_node_slice_prefix(const json& ipam) {
  const auto it = ipam.find("node_slice_size");
  if (it == ipam.end() || it->is_null()) {
    return 0;
  }
  if (!it->is_string() && !it->is_number_integer()) {
    return bad("node_slice_size", "must be a prefix length such as \"/26\" or \"26\"");
  }
  std::string text = it->is_string() ? it->get<std::string>() : std::to_string(it->get<long>());
  if (!text.empty() && text[0] == '/') {
    text.erase(0, 1);
  }
  const auto n = parse_uint(text, 8);
  if (!n || *n < 1 || *n > 128) {
    return bad("node_slice_size",
               "\"" + text.substr(0, 32) + "\" is not a prefix length between 1 and 128 (\"/26\")");
  }
  return static_cast<int>(*n);
}

// `datastore` and the cluster store's keys.
Status read_datastore(const json& ipam, StoreLocation& loc) {
  IPOIB_TRY_ASSIGN(std::string datastore, get_string(ipam, "datastore", "datastore"));
  IPOIB_TRY_ASSIGN(loc.cluster.node_slice_prefix, read_node_slice_prefix(ipam));
  if (datastore.empty() || datastore == "kubernetes") {
    loc.datastore = Datastore::kLocal;
    if (loc.cluster.node_slice_prefix != 0) {
      return bad("node_slice_size",
                 "needs \"datastore\": \"etcd\": the cluster store hands slices of a range to "
                 "nodes; the local store (store_dir) is one node's or one shared directory's");
    }
    return ok_status();
  }
  if (datastore != "etcd") {
    return bad("datastore", "\"" + datastore.substr(0, 32) +
                                "\" is not \"etcd\" (the cluster store) or \"kubernetes\" "
                                "(whereabouts' default: here the local store in store_dir)");
  }
  loc.datastore = Datastore::kEtcd;
  etcd::ConfigKeys& k = loc.cluster.etcd;
  const std::pair<const char*, std::string*> fields[] = {
      {"etcd_host", &k.etcd_host},
      {"etcd_username", &k.etcd_username},
      {"etcd_password", &k.etcd_password},
      {"etcd_password_file", &k.etcd_password_file},
      {"etcd_cert_file", &k.etcd_cert_file},
      {"etcd_key_file", &k.etcd_key_file},
      {"etcd_ca_cert_file", &k.etcd_ca_cert_file}};
  for (const auto& [key, value] : fields) {
    IPOIB_TRY_ASSIGN(*value, get_string(ipam, key, key));
  }
  if (k.etcd_host.empty()) {
    return bad("etcd_host",
               "missing: \"datastore\": \"etcd\" needs the endpoints, e.g. "
               "\"https://10.0.0.1:2379,https://10.0.0.2:2379\"");
  }
  if (auto endpoints = etcd::parse_endpoints(k.etcd_host); !endpoints) {
    return std::move(endpoints).error();
  }
  return ok_status();
}

Result<StoreLocation> location_from(const json& ipam) {
  StoreLocation loc;
  IPOIB_TRY_ASSIGN(loc.store_dir, get_string(ipam, "store_dir", "store_dir"));
  if (loc.store_dir.empty()) {
    loc.store_dir = std::string(kDefaultStoreDirText);
  }
  IPOIB_TRY(validate_store_dir(loc.store_dir, "store_dir"));
  IPOIB_TRY_ASSIGN(loc.network_name, get_string(ipam, "network_name", "network_name"));
  if (!loc.network_name.empty() && !is_valid_network_name(loc.network_name)) {
    return bad("network_name",
               "\"" + loc.network_name.substr(0, 64) +
                   "\" must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$ (at most 128 bytes)");
  }
  if (const auto it = ipam.find("lock_timeout_ms"); it != ipam.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 1 ||
        it->get<std::int64_t>() > 600000) {
      return bad("lock_timeout_ms", "must be an integer between 1 and 600000");
    }
    loc.lock_timeout_ms = it->get<std::int64_t>();
  }
  IPOIB_TRY(read_datastore(ipam, loc));
  return loc;
}

// whereabouts' keys for its own machinery (the Kubernetes API store, its leader election, its
// reconciler): accepted and ignored.
bool is_ignored_key(const std::string& key) {
  static const char* const kIgnored[] = {"kubernetes", "sleep_for_race",
                                         "reconciler_cron_expression"};
  return std::any_of(std::begin(kIgnored), std::end(kIgnored),
                     [&](const char* k) { return key == k; }) ||
         starts_with(key, "leader_");
}

bool is_known_key(const std::string& key) {
  static const char* const kKnown[] = {"type",
                                       "range",
                                       "range_start",
                                       "range_end",
                                       "exclude",
                                       "ipRanges",
                                       "gateway",
                                       "network_name",
                                       "routes",
                                       "dns",
                                       "addresses",
                                       "enable_overlapping_ranges",
                                       "log_file",
                                       "log_level",
                                       "configuration_path",
                                       "store_dir",
                                       "allocation",
                                       "lock_timeout_ms",
                                       "node_slice_size",
                                       "node_name",
                                       "datastore",
                                       "etcd_host",
                                       "etcd_username",
                                       "etcd_password",
                                       "etcd_password_file",
                                       "etcd_key_file",
                                       "etcd_cert_file",
                                       "etcd_ca_cert_file"};
  return std::any_of(std::begin(kKnown), std::end(kKnown), [&](const char* k) { return key == k; });
}

Result<std::optional<IpAddress>> parse_optional_ip(const json& obj, const std::string& key,
                                                   const std::string& display) {
  IPOIB_TRY_ASSIGN(std::string text, get_string(obj, key, display));
  if (text.empty()) {
    return std::optional<IpAddress>();
  }
  auto ip = IpAddress::parse(text);
  if (!ip) {
    return bad(display, ip.error().msg());
  }
  return std::optional<IpAddress>(*ip);
}

// A list of {PREFIX_KEY: "CIDR", IP_KEY: "IP"} objects, the IP optional and of the prefix's
// family (routes' {dst, gw}, addresses' {address, gateway}); `keep` takes each pair in order.
struct PrefixList {
  const char* list;          // "routes"
  const char* prefix;        // "dst"
  const char* ip;            // "gw"
  const char* shape;         // "{dst, gw}"
  const char* other_family;  // "family differs from dst"
};
Status read_prefix_list(
    const json& ipam, const PrefixList& l,
    const std::function<void(const IpPrefix&, std::optional<IpAddress>)>& keep) {
  const auto it = ipam.find(l.list);
  if (it == ipam.end() || it->is_null()) {
    return ok_status();
  }
  if (!it->is_array()) {
    return bad(l.list, std::string("must be a list of ") + l.shape);
  }
  for (std::size_t i = 0; i < it->size(); ++i) {
    const std::string key = std::string(l.list) + "[" + std::to_string(i) + "]";
    const json& e = (*it)[i];
    if (!e.is_object()) {
      return bad(key, std::string("must be an object ") + l.shape);
    }
    const std::string prefix_key = key + "." + l.prefix;
    IPOIB_TRY_ASSIGN(std::string text, get_string(e, l.prefix, prefix_key));
    auto p = IpPrefix::parse(text);
    if (!p) {
      return bad(prefix_key, p.error().msg());
    }
    const std::string ip_key = key + "." + l.ip;
    IPOIB_TRY_ASSIGN(std::optional<IpAddress> ip, parse_optional_ip(e, l.ip, ip_key));
    if (ip && ip->family() != p->family()) {
      return bad(ip_key, l.other_family);
    }
    keep(*p, ip);
  }
  return ok_status();
}

Status read_routes(const json& ipam, IpamConfig& c) {
  return read_prefix_list(ipam, {"routes", "dst", "gw", "{dst, gw}", "family differs from dst"},
                          [&](const IpPrefix& dst, std::optional<IpAddress> gw) {
                            cni::Route r;
                            r.dst = dst;
                            r.gw = gw;
                            c.routes.push_back(r);
                          });
}

Status read_dns(const json& ipam, IpamConfig& c) {
  const auto it = ipam.find("dns");
  if (it == ipam.end() || it->is_null()) {
    return ok_status();
  }
  if (!it->is_object()) {
    return bad("dns", "must be an object");
  }
  IPOIB_TRY_ASSIGN(c.dns.nameservers, get_string_list(*it, "nameservers", "dns.nameservers"));
  IPOIB_TRY_ASSIGN(c.dns.domain, get_string(*it, "domain", "dns.domain"));
  IPOIB_TRY_ASSIGN(c.dns.search, get_string_list(*it, "search", "dns.search"));
  IPOIB_TRY_ASSIGN(c.dns.options, get_string_list(*it, "options", "dns.options"));
  return ok_status();
}

// Every range must split into slices of node_slice_size: longer than the range's prefix, at most
// the family's width, and at most 2^16 slices (a node's claim reads the slice table).
Status check_node_slices(const IpamConfig& c) {
  const int slice = c.location.cluster.node_slice_prefix;
  if (slice == 0) {
    return ok_status();
  }
  for (std::size_t i = 0; i < c.ranges.size(); ++i) {
    const IpPrefix& subnet = c.ranges[i].subnet;
    const int width = subnet.family() == IpFamily::kV4 ? 32 : 128;
    if (slice <= subnet.length() || slice > width || slice - subnet.length() > 16) {
      return bad("node_slice_size", "/" + std::to_string(slice) + " does not split range " +
                                        c.range_keys[i] + " into slices: it must be longer than /" +
                                        std::to_string(subnet.length()) + ", at most /" +
                                        std::to_string(width) + " and give at most 65536 slices");
    }
  }
  return ok_status();
}

Status read_addresses(const json& ipam, IpamConfig& c) {
  return read_prefix_list(
      ipam,
      {"addresses", "address", "gateway", "{address, gateway}", "family differs from the address"},
      [&](const IpPrefix& address, std::optional<IpAddress> gateway) {
        c.addresses.push_back(StaticAddress{address, gateway});
      });
}

}  // namespace

bool is_valid_network_name(const std::string& name) {
  if (name.empty() || name.size() > 128) {
    return false;
  }
  auto alnum = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
  };
  if (!alnum(name[0])) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [&](char ch) { return alnum(ch) || ch == '_' || ch == '.' || ch == '-'; });
}

Status validate_store_dir(const std::string& dir, const std::string& key) {
  if (dir.empty() || dir[0] != '/') {
    return bad(key, "\"" + dir.substr(0, 256) + "\" must be an absolute path");
  }
  if (dir.size() > 1024 || dir.find('\0') != std::string::npos) {
    return bad(key, "path too long or contains NUL");
  }
  for (std::string_view part : split(std::string_view(dir).substr(1), '/')) {
    if (part == "." || part == "..") {
      return bad(key, "\"" + dir + "\" must not contain \".\" or \"..\" components");
    }
  }
  return ok_status();
}

Result<std::string> resolve_node_name(const std::string& configured, const ConfigSources& src) {
  auto storable = [](const std::string& name, ErrorCode code, const std::string& key) -> Status {
    if (!is_storable_field(name)) {
      return Error(code, key + ": \"" + name.substr(0, 64) +
                             "\" cannot be a node name (1..253 printable ASCII bytes, no spaces)");
    }
    return ok_status();
  };
  if (!configured.empty()) {
    IPOIB_TRY(storable(configured, ErrorCode::kInvalidNetworkConfig, "node_name"));
    return configured;
  }
  std::optional<std::string> env;
  if (src.getenv) {
    env = src.getenv("NODENAME");
  } else if (const char* v = ::getenv("NODENAME")) {  // NOLINT(concurrency-mt-unsafe)
    env = v;
  }
  if (env && !env->empty()) {
    IPOIB_TRY(storable(*env, ErrorCode::kInvalidEnvironment, "NODENAME"));
    return *env;
  }
  std::string host;
  if (src.hostname) {
    host = src.hostname();
  } else {
    struct utsname u {};
    if (::uname(&u) == 0) {
      host = u.nodename;
    }
  }
  if (host.empty()) {
    return Error(ErrorCode::kInternal,
                 "the host has no name: set node_name in the IPAM config "
                 "or $NODENAME");
  }
  IPOIB_TRY(storable(host, ErrorCode::kInternal, "host name"));
  return host;
}

Result<StoreLocation> load_store_location(const nlohmann::json& ipam, const ConfigSources& src) {
  IPOIB_TRY_ASSIGN(Merged m, merge_flat_file(ipam, src));
  IPOIB_TRY_ASSIGN(StoreLocation loc, location_from(m.ipam));
  IPOIB_TRY_ASSIGN(std::string configured, configured_node_name(m.ipam));
  if (auto node = resolve_node_name(configured, src)) {
    loc.node_name = std::move(node).value();
  } else {
    loc.node_error = node.error().msg();
  }
  return loc;
}

Result<IpamConfig> load_ipam_config(const nlohmann::json& ipam_inline, const ConfigSources& src) {
  IPOIB_TRY_ASSIGN(Merged m, merge_flat_file(ipam_inline, src));
  const json& ipam = m.ipam;
  IpamConfig c;
  c.flat_file = m.flat_file;
  if (!m.flat_file.empty()) {
    c.notes.push_back("merged flat file " + m.flat_file);
  }
  IPOIB_TRY_ASSIGN(c.location, location_from(ipam));
  IPOIB_TRY_ASSIGN(std::string node, configured_node_name(ipam));
  IPOIB_TRY_ASSIGN(c.location.node_name, resolve_node_name(node, src));

  if (ipam.contains("datastore") && ipam["datastore"] == "kubernetes") {
    c.notes.push_back(
        "ignoring \"datastore\": \"kubernetes\" (whereabouts' Kubernetes API store): the "
        "reservations are in the local store in store_dir; \"datastore\": \"etcd\" makes them "
        "cluster-wide");
  }
  for (auto it = ipam.begin(); it != ipam.end(); ++it) {
    if (is_ignored_key(it.key())) {
      c.notes.push_back("ignoring \"" + it.key() +
                        "\": it configures whereabouts' Kubernetes API store or its leader "
                        "election, which this IPAM does not use");
    } else if (starts_with(it.key(), "etcd_") && c.location.datastore != Datastore::kEtcd) {
      c.notes.push_back("ignoring \"" + it.key() + "\": datastore is not \"etcd\"");
    } else if (!is_known_key(it.key())) {
      c.notes.push_back("ignoring unknown ipam key \"" + it.key() + "\"");
    }
  }

  IPOIB_TRY_ASSIGN(std::string gateway, get_string(ipam, "gateway", "gateway"));
  if (!gateway.empty()) {
    auto gw = IpAddress::parse(gateway);
    if (!gw) {
      return bad("gateway", gw.error().msg());
    }
  }
  std::vector<std::pair<std::string, RangeSpec>> specs;  // (key prefix for errors, spec)
  if (ipam.contains("range") && !ipam["range"].is_null()) {
    IPOIB_TRY_ASSIGN(RangeSpec s, read_range_spec(ipam, "", gateway));
    if (!s.range.empty()) {
      specs.emplace_back("", std::move(s));
    }
  } else {
    for (const char* key : {"range_start", "range_end", "exclude"}) {
      if (ipam.contains(key) && !ipam[key].is_null()) {
        return bad(key, "given without \"range\"");
      }
    }
  }
  if (const auto it = ipam.find("ipRanges"); it != ipam.end() && !it->is_null()) {
    if (!it->is_array()) {
      return bad("ipRanges", "must be a list of {range, range_start, range_end, exclude}");
    }
    for (std::size_t i = 0; i < it->size(); ++i) {
      const std::string prefix = "ipRanges[" + std::to_string(i) + "].";
      if (!(*it)[i].is_object()) {
        return bad("ipRanges[" + std::to_string(i) + "]", "must be an object");
      }
      IPOIB_TRY_ASSIGN(RangeSpec s, read_range_spec((*it)[i], prefix, gateway));
      if (s.range.empty()) {
        return bad(prefix + "range", "missing");
      }
      specs.emplace_back(prefix, std::move(s));
    }
  }
  if (specs.empty()) {
    return bad("range", "missing: give \"range\" or \"ipRanges\"");
  }
  std::map<std::string, int> seen;
  for (const auto& [prefix, spec] : specs) {
    auto r = parse_range(spec);
    if (!r) {
      return Error(ErrorCode::kInvalidNetworkConfig, prefix + r.error().msg());
    }
    const std::string cidr = r->subnet.to_string();
    const int n = seen[cidr]++;
    c.range_keys.push_back(n == 0 ? cidr : cidr + "#" + std::to_string(n));
    c.ranges.push_back(std::move(r).value());
  }

  IPOIB_TRY(check_node_slices(c));
  IPOIB_TRY(read_routes(ipam, c));
  IPOIB_TRY(read_dns(ipam, c));
  IPOIB_TRY(read_addresses(ipam, c));

  if (const auto it = ipam.find("enable_overlapping_ranges"); it != ipam.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      return bad("enable_overlapping_ranges", "must be true or false");
    }
    c.enable_overlapping_ranges = it->get<bool>();
    if (!c.enable_overlapping_ranges) {
      c.notes.push_back(
          "enable_overlapping_ranges=false: addresses stay unique within the network_name "
          "anyway (the built-in store never hands out one address twice)");
    }
  }
  IPOIB_TRY_ASSIGN(std::string level, get_string(ipam, "log_level", "log_level"));
  if (!level.empty()) {
    // An unknown level is ignored with a warning, as whereabouts does and as the top-level
    // logLevel is: a logging knob never fails an ADD.
    c.log_level = parse_log_level(level);
    if (!c.log_level) {
      c.warnings.push_back("log_level: ignoring \"" + level.substr(0, 64) +
                           "\" (not debug, verbose, info, warning, error or panic)");
    }
  }
  IPOIB_TRY_ASSIGN(c.log_file, get_string(ipam, "log_file", "log_file"));
  if (!c.log_file.empty() && c.log_file[0] != '/') {
    return bad("log_file", "must be an absolute path");
  }
  IPOIB_TRY_ASSIGN(std::string allocation, get_string(ipam, "allocation", "allocation"));
  if (allocation.empty() || allocation == "lowest-free") {
    c.allocation = AllocationPolicy::kLowestFree;
  } else if (allocation == "round-robin") {
    c.allocation = AllocationPolicy::kRoundRobin;
  } else {
    return bad("allocation", "\"" + allocation + "\" is not lowest-free or round-robin");
  }
  return c;
}

}  // namespace ipoib::ipam
