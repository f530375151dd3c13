#include "ipoib/ipam/pool_text.h"

#include <charconv>
#include <cstdio>
#include <optional>
#include <vector>

#include "ipoib/base/strings.h"

namespace ipoib::ipam {
namespace {

constexpr std::string_view kMagic = "ipoib-ipam-pool";

std::string excluded_text(const std::vector<Interval>& ex, IpFamily fam) {
  if (ex.empty()) {
    return "-";
  }
  std::string s;
  for (const Interval& i : ex) {
    if (!s.empty()) {
      s += ',';
    }
    s += IpAddress(fam, i.lo).to_string() + "-" + IpAddress(fam, i.hi).to_string();
  }
  return s;
}

Error corrupt(std::string_view file, std::size_t line_no, std::string_view what) {
  return Error(ErrorCode::kStoreCorrupt,
               "store file " + std::string(file) + " is corrupt (line " + std::to_string(line_no) +
                   ": " + std::string(what) +
                   "); it was left untouched: inspect or restore it, then remove it to start "
                   "the pool empty");
}

// Splits on single spaces; no empty fields allowed.
std::vector<std::string_view> fields(std::string_view line) { return split(line, ' '); }

std::optional<IpAddress> ip_field(std::string_view s) {
  auto ip = IpAddress::parse(s);
  if (!ip) {
    return std::nullopt;
  }
  return *ip;
}

}  // namespace

std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char ch : bytes) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ULL;
  }
  return h;
}

Result<std::string> encode_pool(const PoolData& p) {
  std::string out;
  out.reserve(64 + p.reservations.size() * 160);
  out += std::string(kMagic) + " " + std::to_string(kPoolFormatVersion) + "\n";
  std::size_t lines = 1;
  const std::string net = p.network_name.empty() ? "-" : p.network_name;
  if (!is_storable_field(net)) {
    return Error(ErrorCode::kInternal, "pool: unstorable network name");
  }
  out += "network " + net + "\n";
  ++lines;
  for (const PoolRange& r : p.ranges) {
    if (!is_storable_field(r.key)) {
      return Error(ErrorCode::kInternal, "pool: unstorable range key");
    }
    out += "range " + r.key + " " + r.subnet.to_string() + " " + r.first.to_string() + " " +
           r.last.to_string() + " " + excluded_text(r.excluded, r.subnet.family()) + " " +
           (r.cursor ? r.cursor->to_string() : "-") + "\n";
    ++lines;
  }
  for (const Reservation& r : p.reservations) {
    const std::string pod = r.pod_ref.empty() ? "-" : r.pod_ref;
    for (std::string_view f :
         {std::string_view(r.range_key), std::string_view(r.cni_network),
          std::string_view(r.container_id), std::string_view(r.ifname), std::string_view(pod)}) {
      if (!is_storable_field(f)) {
        return Error(ErrorCode::kInternal,
                     "pool: unstorable reservation field \"" + std::string(f.substr(0, 64)) + "\"");
      }
    }
    out += "res ";
    out += r.ip.to_string();
    out += ' ';
    out += r.range_key;
    out += ' ';
    out += r.cni_network;
    out += ' ';
    out += r.container_id;
    out += ' ';
    out += r.ifname;
    out += ' ';
    out += pod;
    out += ' ';
    out += std::to_string(r.since_unix_s);
    out += '\n';
    ++lines;
  }
  char trailer[64];
  (void)std::snprintf(trailer, sizeof trailer, "end %zu %016llx\n", lines,
                      static_cast<unsigned long long>(fnv1a64(out)));
  out += trailer;
  return out;
}

Result<PoolData> decode_pool(std::string_view text, std::string_view file) {
  // Trailer first: everything before the last line is covered by its checksum.
  if (text.empty() || text.back() != '\n') {
    return corrupt(file, 0, "truncated: no final newline");
  }
  const std::size_t body_end = text.rfind('\n', text.size() - 2);
  if (body_end == std::string_view::npos) {
    return corrupt(file, 1, "no trailer");
  }
  const std::string_view body = text.substr(0, body_end + 1);
  const std::string_view trailer = text.substr(body_end + 1, text.size() - body_end - 2);
  const auto tf = fields(trailer);
  std::size_t count = 0;
  std::uint64_t sum = 0;
  if (tf.size() != 3 || tf[0] != "end" ||
      std::from_chars(tf[1].data(), tf[1].data() + tf[1].size(), count).ec != std::errc() ||
      tf[2].size() != 16 ||
      std::from_chars(tf[2].data(), tf[2].data() + tf[2].size(), sum, 16).ec != std::errc()) {
    return corrupt(file, 0, "missing or malformed trailer (torn write?)");
  }
  if (sum != fnv1a64(body)) {
    return corrupt(file, 0, "checksum mismatch");
  }
  PoolData p;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  bool seen_network = false;
  while (pos < body.size()) {
    const std::size_t nl = body.find('\n', pos);
    const std::string_view line = body.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    const auto f = fields(line);
    if (line_no == 1) {
      if (f.size() != 2 || f[0] != kMagic) {
        return corrupt(file, line_no, "not an ipoib IPAM pool file");
      }
      if (f[1] != std::to_string(kPoolFormatVersion)) {
        return corrupt(file, line_no,
                       "format version " + std::string(f[1].substr(0, 16)) + " is not supported");
      }
      continue;
    }
    for (std::string_view x : f) {
      if (!is_storable_field(x)) {
        return corrupt(file, line_no, "malformed field");
      }
    }
    if (f[0] == "network" && f.size() == 2 && line_no == 2) {
      p.network_name = f[1] == "-" ? "" : std::string(f[1]);
      seen_network = true;
    } else if (f[0] == "range" && f.size() == 7 && seen_network && p.reservations.empty()) {
      PoolRange r;
      r.key = std::string(f[1]);
      auto subnet = IpPrefix::parse(f[2]);
      auto first = ip_field(f[3]);
      auto last = ip_field(f[4]);
      if (!subnet || !first || !last || first->family() != subnet->family() ||
          last->family() != subnet->family() || *last < *first) {
        return corrupt(file, line_no, "bad range");
      }
      r.subnet = *subnet;
      r.first = *first;
      r.last = *last;
      if (f[5] != "-") {
        for (std::string_view iv : split(f[5], ',')) {
          const auto dash = iv.find('-');
          if (dash == std::string_view::npos) {
            return corrupt(file, line_no, "bad excluded interval");
          }
          auto lo = ip_field(iv.substr(0, dash));
          auto hi = ip_field(iv.substr(dash + 1));
          if (!lo || !hi || lo->family() != subnet->family() || hi->family() != subnet->family() ||
              *hi < *lo) {
            return corrupt(file, line_no, "bad excluded interval");
          }
          r.excluded.push_back({lo->value(), hi->value()});
        }
      }
      if (f[6] != "-") {
        r.cursor = ip_field(f[6]);
        if (!r.cursor || r.cursor->family() != subnet->family()) {
          return corrupt(file, line_no, "bad cursor");
        }
      }
      if (p.find_range(r.key) != nullptr) {
        return corrupt(file, line_no, "duplicate range");
      }
      p.ranges.push_back(std::move(r));
    } else if (f[0] == "res" && f.size() == 8 && seen_network) {
      Reservation r;
      auto ip = ip_field(f[1]);
      std::int64_t since = 0;
      if (!ip || std::from_chars(f[7].data(), f[7].data() + f[7].size(), since).ec != std::errc()) {
        return corrupt(file, line_no, "bad reservation");
      }
      r.ip = *ip;
      r.range_key = std::string(f[2]);
      r.cni_network = std::string(f[3]);
      r.container_id = std::string(f[4]);
      r.ifname = std::string(f[5]);
      r.pod_ref = f[6] == "-" ? "" : std::string(f[6]);
      r.since_unix_s = since;
      if (!p.reservations.empty() && !(p.reservations.back().ip < r.ip)) {
        return corrupt(file, line_no, "reservations out of order or duplicated");
      }
      p.reservations.push_back(std::move(r));
    } else {
      return corrupt(file, line_no, "unexpected record");
    }
  }
  if (!seen_network) {
    return corrupt(file, line_no, "no network record");
  }
  if (line_no != count) {
    return corrupt(file, line_no, "record count mismatch");
  }
  return p;
}

}  // namespace ipoib::ipam
