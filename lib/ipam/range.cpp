#include "ipoib/ipam/range.h"

#include <algorithm>

namespace ipoib::ipam {
namespace {

Error config_error(const std::string& key, const std::string& msg) {
  return Error(ErrorCode::kInvalidNetworkConfig, key + ": " + msg);
}

// Sorts and merges overlapping or adjacent intervals.
std::vector<Interval> merge(std::vector<Interval> v) {
  std::sort(v.begin(), v.end(), [](const Interval& a, const Interval& b) { return a.lo < b.lo; });
  std::vector<Interval> out;
  for (const Interval& i : v) {
    // hi + 1 cannot overflow here: an interval ending at the family's all-ones address is
    // never kept (the all-ones address is outside every usable range).
    if (!out.empty() && i.lo <= out.back().hi + 1) {
      out.back().hi = std::max(out.back().hi, i.hi);
    } else {
      out.push_back(i);
    }
  }
  return out;
}

// Index of the first excluded interval whose hi >= v.
std::size_t first_excluded_at_or_after(const Range& r, u128 v) {
  const auto it = std::lower_bound(r.excluded.begin(), r.excluded.end(), v,
                                   [](const Interval& i, u128 x) { return i.hi < x; });
  return static_cast<std::size_t>(it - r.excluded.begin());
}

}  // namespace

bool Range::contains(const IpAddress& ip) const {
  if (ip.family() != family() || ip.value() < first.value() || ip.value() > last.value()) {
    return false;
  }
  const std::size_t i = first_excluded_at_or_after(*this, ip.value());
  return i == excluded.size() || excluded[i].lo > ip.value();
}

u128 Range::usable_count() const {
  u128 n = last.value() - first.value() + 1;
  for (const Interval& i : excluded) {
    n -= i.hi - i.lo + 1;
  }
  return n;
}

namespace {

// Special-purpose blocks (RFC 6890) whose addresses are never an interface's unicast address: a
// range overlapping one would hand them out (0.0.0.0/0 would give 0.0.0.1, ::/0 would give ::1).
struct SpecialBlock {
  const char* cidr;
  const char* what;
};
constexpr SpecialBlock kSpecialBlocks[] = {
    {"0.0.0.0/8", "\"this network\""},
    {"127.0.0.0/8", "loopback"},
    {"224.0.0.0/4", "multicast"},
    {"240.0.0.0/4", "reserved and limited broadcast"},
    {"::/96", "unspecified, loopback and IPv4-compatible"},
    {"::ffff:0:0/96", "IPv4-mapped"},
    {"ff00::/8", "multicast"},
};

}  // namespace

Result<Range> parse_range(const RangeSpec& spec) {
  if (spec.range.empty()) {
    return config_error("range", "missing");
  }
  std::string cidr = spec.range;
  std::string start_text = spec.range_start;
  std::string end_text = spec.range_end;
  std::string start_key = "range_start";
  std::string end_key = "range_end";
  // "first-last/prefix": the right side is the last address plus the prefix length.
  if (const auto dash = cidr.find('-'); dash != std::string::npos) {
    const auto slash = cidr.find('/', dash);
    if (slash == std::string::npos) {
      return config_error("range", "\"" + spec.range + "\": expected first-last/prefix");
    }
    if (start_text.empty()) {
      start_text = cidr.substr(0, dash);
      start_key = "range";
    }
    if (end_text.empty()) {
      end_text = cidr.substr(dash + 1, slash - dash - 1);
      end_key = "range";
    }
    cidr = cidr.substr(dash + 1);
  }
  auto prefix = IpPrefix::parse(cidr);
  if (!prefix) {
    return config_error("range", prefix.error().msg());
  }
  Range r;
  r.subnet = prefix->network();
  const int bits = r.subnet.address().bit_length();
  if (bits - r.subnet.length() < 2) {
    return config_error("range", "\"" + spec.range +
                                     "\" has no usable address (the network and all-ones "
                                     "addresses are never handed out)");
  }
  for (const SpecialBlock& block : kSpecialBlocks) {
    const IpPrefix special = *IpPrefix::parse(block.cidr);
    if (special.family() == r.subnet.family() &&
        (special.contains(r.subnet.address()) || r.subnet.contains(special.address()))) {
      return config_error("range", "\"" + spec.range + "\" overlaps " + block.cidr + " (" +
                                       block.what +
                                       "), whose addresses cannot be given to an "
                                       "interface");
    }
  }
  const IpFamily fam = r.subnet.family();
  const IpAddress usable_lo = r.subnet.address().offset_by(1);
  const IpAddress usable_hi(fam, r.subnet.last().value() - 1);
  r.first = usable_lo;
  r.last = usable_hi;

  auto parse_bound = [&](const std::string& key, const std::string& text,
                         IpAddress& out) -> Status {
    if (text.empty()) {
      return ok_status();
    }
    auto ip = IpAddress::parse(text);
    if (!ip) {
      return config_error(key, ip.error().msg());
    }
    if (ip->family() != fam) {
      return config_error(key, text + " is not of the family of range " + r.subnet.to_string());
    }
    if (*ip < usable_lo || *ip > usable_hi) {
      return config_error(key, text + " is outside the usable addresses of " +
                                   r.subnet.to_string() + " (" + usable_lo.to_string() + " - " +
                                   usable_hi.to_string() + ")");
    }
    out = *ip;
    return ok_status();
  };
  IPOIB_TRY(parse_bound(start_key, start_text, r.first));
  IPOIB_TRY(parse_bound(end_key, end_text, r.last));
  if (r.last < r.first) {
    return config_error(end_key,
                        r.last.to_string() + " is below range start " + r.first.to_string());
  }

  std::vector<Interval> ex;
  for (std::size_t i = 0; i < spec.exclude.size(); ++i) {
    const std::string key = "exclude[" + std::to_string(i) + "]";
    const std::string& text = spec.exclude[i];
    IpPrefix p;
    if (text.find('/') == std::string::npos) {
      auto ip = IpAddress::parse(text);
      if (!ip) {
        return config_error(key, ip.error().msg());
      }
      p = IpPrefix(*ip, ip->bit_length());
    } else {
      auto parsed = IpPrefix::parse(text);
      if (!parsed) {
        return config_error(key, parsed.error().msg());
      }
      p = *parsed;
    }
    if (p.family() != fam) {
      return config_error(key, text + " is not of the family of range " + r.subnet.to_string());
    }
    const u128 lo = std::max(p.network().address().value(), r.first.value());
    const u128 hi = std::min(p.last().value(), r.last.value());
    if (lo > hi) {
      return config_error(key, text + " does not overlap the range " + r.first.to_string() + " - " +
                                   r.last.to_string());
    }
    ex.push_back({lo, hi});
  }
  if (!spec.gateway.empty()) {
    auto gw = IpAddress::parse(spec.gateway);
    if (!gw) {
      return config_error("gateway", gw.error().msg());
    }
    r.gateway = *gw;
    if (gw->family() == fam && *gw >= r.first && *gw <= r.last) {
      ex.push_back({gw->value(), gw->value()});
    }
  }
  r.excluded = merge(std::move(ex));
  if (r.usable_count() == 0) {
    return config_error("exclude", "every address of range " + r.first.to_string() + " - " +
                                       r.last.to_string() + " is excluded");
  }
  return r;
}

std::optional<IpAddress> lowest_free(const Range& r, const std::vector<u128>& taken,
                                     const IpAddress& from) {
  if (from.family() != r.family()) {
    return std::nullopt;
  }
  u128 cand = std::max(from.value(), r.first.value());
  const u128 last = r.last.value();
  if (cand > last) {
    return std::nullopt;
  }
  // Merge-walk two sorted sequences of blocked points/intervals starting at `cand`. A run of
  // consecutive taken addresses is crossed in one binary search (the addresses are unique, so
  // taken[i] - taken[j] == i - j exactly when no address between them is free): a pool filled
  // from the bottom costs O(log n) per allocation, not a walk over every reservation.
  std::size_t ei = first_excluded_at_or_after(r, cand);
  std::size_t ti =
      static_cast<std::size_t>(std::lower_bound(taken.begin(), taken.end(), cand) - taken.begin());
  while (cand <= last) {
    bool moved = false;
    if (ei < r.excluded.size() && r.excluded[ei].lo <= cand) {
      if (r.excluded[ei].hi >= last) {
        return std::nullopt;
      }
      cand = r.excluded[ei].hi + 1;
      ++ei;
      moved = true;
    }
    ti = static_cast<std::size_t>(
        std::lower_bound(taken.begin() + static_cast<std::ptrdiff_t>(ti), taken.end(), cand) -
        taken.begin());
    if (ti < taken.size() && taken[ti] == cand) {
      std::size_t lo = ti;  // taken[lo] ends a run starting at taken[ti]
      std::size_t hi = taken.size();
      while (hi - lo > 1) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (taken[mid] - cand == mid - ti) {
          lo = mid;
        } else {
          hi = mid;
        }
      }
      if (taken[lo] >= last) {
        return std::nullopt;
      }
      cand = taken[lo] + 1;
      ti = lo + 1;
      while (ei < r.excluded.size() && r.excluded[ei].hi < cand) {
        ++ei;  // intervals inside the run
      }
      moved = true;
    }
    if (!moved) {
      return IpAddress(r.family(), cand);
    }
  }
  return std::nullopt;
}

std::optional<IpAddress> allocate(const Range& r, const std::vector<u128>& taken,
                                  AllocationPolicy policy, const std::optional<IpAddress>& cursor) {
  if (policy == AllocationPolicy::kRoundRobin && cursor && cursor->family() == r.family() &&
      *cursor >= r.first && *cursor < r.last) {
    if (auto ip = lowest_free(r, taken, cursor->offset_by(1))) {
      return ip;
    }
  }
  return lowest_free(r, taken, r.first);
}

u128 free_count(const Range& r, const std::vector<u128>& taken) {
  u128 n = r.usable_count();
  auto it = std::lower_bound(taken.begin(), taken.end(), r.first.value());
  for (; it != taken.end() && *it <= r.last.value(); ++it) {
    if (r.contains(IpAddress(r.family(), *it))) {
      --n;
    }
  }
  return n;
}

std::string u128_to_string(u128 v) {
  if (v == 0) {
    return "0";
  }
  std::string s;
  while (v != 0) {
    s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

}  // namespace ipoib::ipam
