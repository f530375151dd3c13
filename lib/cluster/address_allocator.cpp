// Per-address allocation on etcd (ipoib/cluster/address_allocator.h).
#include "ipoib/cluster/address_allocator.h"

#include <time.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <random>

namespace ipoib::cluster {
namespace {

using nlohmann::json;

constexpr std::string_view kHexDigits = "0123456789abcdef";

Error corrupt(const std::string& key, std::string_view why) {
  return {ErrorCode::kStoreCorrupt, "cluster store: key " + key + ": " + std::string(why)};
}

std::string now_rfc3339() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  ::gmtime_r(&ts.tv_sec, &t);
  char buf[32];
  (void)std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &t);
  return buf;
}

// The address a key under <prefix>ip/ names, from its fixed-width hex suffix.
std::optional<IpAddress> address_of_key(std::string_view key, IpFamily family) {
  const std::size_t digits = family == IpFamily::kV4 ? 8 : 32;
  if (key.size() < digits) {
    return std::nullopt;
  }
  u128 v = 0;
  for (char c : key.substr(key.size() - digits)) {
    auto d = kHexDigits.find(c);
    if (d == std::string_view::npos) {
      return std::nullopt;
    }
    v = (v << 4) | static_cast<u128>(d);
  }
  return IpAddress(family, v);
}

struct Owner {
  std::string container_id;
  std::string ifname;
};

Result<Owner> owner_of(const std::string& key, const std::string& record) {
  json doc = json::parse(record, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("container_id") || !doc["container_id"].is_string() ||
      !doc.contains("ifname") || !doc["ifname"].is_string()) {
    return corrupt(key, "not a reservation record");
  }
  return Owner{doc["container_id"].get<std::string>(), doc["ifname"].get<std::string>()};
}

}  // namespace

namespace keys {

std::string escape(std::string_view component) {
  std::string out;
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

std::string range_prefix(std::string_view network, std::string_view range_key) {
  return std::string(kRoot) + "net/" + escape(network) + "/range/" + escape(range_key) + "/";
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

std::string address(std::string_view network, std::string_view range_key, const IpAddress& ip) {
  return range_prefix(network, range_key) + "ip/" + address_hex(ip);
}

std::string attachment(std::string_view network, std::string_view range_key,
                       std::string_view container_id, std::string_view ifname) {
  return range_prefix(network, range_key) + "att/" + escape(container_id) + "/" + escape(ifname);
}

std::string cursor(std::string_view network, std::string_view range_key) {
  return range_prefix(network, range_key) + "cursor";
}

}  // namespace keys

AddressAllocator::AddressAllocator(etcd::Client& client, std::string network, std::string range_key,
                                   AddressRange range, AllocatorOptions options)
    : client_(client),
      network_(std::move(network)),
      range_key_(std::move(range_key)),
      range_(std::move(range)),
      options_(options) {}

bool AddressAllocator::excluded(const IpAddress& ip, IpAddress* skip_to) const {
  for (const auto& p : range_.exclude) {
    if (p.family() == ip.family() && p.contains(ip)) {
      *skip_to = p.last();
      return true;
    }
  }
  return false;
}

// A free address after the cursor (wrapping once), found with bounded keys-only reads; on a
// retry a random one of the first few, so that concurrent writers stop colliding.
Result<std::optional<IpAddress>> AddressAllocator::choose(KvTxn& txn) {
  const IpFamily fam = range_.first.family();
  const std::size_t want =
      txn.attempt() == 1
          ? 4
          : std::min<std::size_t>(4 + 8 * static_cast<std::size_t>(txn.attempt()), 128);
  IPOIB_TRY_ASSIGN(auto cur, txn.peek(keys::cursor(network_, range_key_)));
  IpAddress start = range_.first;
  if (cur) {
    auto c = IpAddress::parse(*cur);
    if (c.ok() && c->family() == fam && *c >= range_.first && *c < range_.last) {
      start = c->offset_by(1);
    }
  }
  std::vector<IpAddress> candidates;
  auto add_free = [&](IpAddress lo, const IpAddress& hi) {
    while (lo <= hi && candidates.size() < want) {
      IpAddress skip;
      if (excluded(lo, &skip)) {
        if (skip >= hi) {
          return;
        }
        lo = skip.offset_by(1);
        continue;
      }
      candidates.push_back(lo);
      if (lo == hi) {
        return;
      }
      lo = lo.offset_by(1);
    }
  };
  std::vector<std::pair<IpAddress, IpAddress>> segments = {{start, range_.last}};
  if (start > range_.first) {
    segments.emplace_back(range_.first, start.offset_by(~u128{0}));  // start - 1
  }
  // Seeded per call: a static generator would repeat its sequence in every forked process.
  std::mt19937 rng(
      static_cast<std::uint32_t>(::getpid()) * 2654435761U ^
      static_cast<std::uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  for (const auto& [seg_first, seg_last] : segments) {
    IpAddress pos = seg_first;
    bool done = false;
    while (!done && candidates.size() < want) {
      const std::string end = keys::address(network_, range_key_, seg_last) + std::string(1, '\0');
      IPOIB_TRY_ASSIGN(auto taken, txn.scan_keys(keys::address(network_, range_key_, pos), end,
                                                 options_.page_keys));
      for (const auto& key : taken) {
        auto t = address_of_key(key, fam);
        if (!t) {
          return corrupt(key, "not an address key");
        }
        if (*t > pos) {
          add_free(pos, t->offset_by(~u128{0}));
        }
        if (*t == seg_last) {
          done = true;
          break;
        }
        pos = t->offset_by(1);
      }
      if (!done && static_cast<std::int64_t>(taken.size()) < options_.page_keys) {
        add_free(pos, seg_last);
        done = true;
      }
    }
    if (candidates.size() >= want) {
      break;
    }
  }
  if (candidates.empty()) {
    return std::optional<IpAddress>();
  }
  // The first free address; on a retry (it was taken under us) a random one of those seen.
  // The commit's create-if-absent compare on its key decides, so no read is needed here.
  std::size_t pick = 0;
  if (txn.attempt() > 1) {
    pick = std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(rng);
  }
  return std::optional<IpAddress>(candidates[pick]);
}

Result<Allocation> AddressAllocator::add(const Attachment& a) {
  Allocation out;
  const std::string att_key = keys::attachment(network_, range_key_, a.container_id, a.ifname);
  auto stats = run_transaction(client_, options_.budget, [&](KvTxn& txn) -> Status {
    out.existing = false;
    IPOIB_TRY_ASSIGN(auto held, txn.get(att_key));
    if (held) {
      auto ip = IpAddress::parse(*held);
      if (!ip.ok()) {
        return corrupt(att_key, "not an address");
      }
      const std::string addr_key = keys::address(network_, range_key_, *ip);
      IPOIB_TRY_ASSIGN(auto record, txn.get(addr_key));
      if (!record) {
        return corrupt(att_key, "names " + *held + ", which is not reserved");
      }
      IPOIB_TRY_ASSIGN(Owner owner, owner_of(addr_key, *record));
      if (owner.container_id != a.container_id || owner.ifname != a.ifname) {
        return corrupt(att_key, "names " + *held + ", which another attachment holds");
      }
      out.ip = *ip;
      out.existing = true;
      return ok_status();
    }
    IPOIB_TRY_ASSIGN(auto chosen, choose(txn));
    if (!chosen) {
      return Error(ErrorCode::kIpamFailure, "no free address in range " + range_key_ +
                                                " of network " + network_ + " (cluster store)");
    }
    const IpAddress ip = *chosen;
    json record = {{"ip", ip.to_string()}, {"container_id", a.container_id},
                   {"ifname", a.ifname},   {"pod_ref", a.pod_ref},
                   {"node", a.node},       {"time", now_rfc3339()}};
    IPOIB_TRY(txn.create(keys::address(network_, range_key_, ip),
                         record.dump(-1, ' ', false, json::error_handler_t::replace)));
    IPOIB_TRY(txn.put(att_key, ip.to_string()));  // read as absent above
    txn.put_hint(keys::cursor(network_, range_key_), ip.to_string());
    out.ip = ip;
    return ok_status();
  });
  if (!stats.ok()) {
    return std::move(stats).error();
  }
  out.attempts = stats->attempts;
  return out;
}

Result<bool> AddressAllocator::release(std::string_view container_id, std::string_view ifname) {
  const std::string att_key = keys::attachment(network_, range_key_, container_id, ifname);
  bool released = false;
  auto stats = run_transaction(client_, options_.budget, [&](KvTxn& txn) -> Status {
    released = false;
    IPOIB_TRY_ASSIGN(auto held, txn.get(att_key));
    if (!held) {
      return ok_status();
    }
    IPOIB_TRY(txn.del(att_key));
    auto ip = IpAddress::parse(*held);
    if (!ip.ok()) {
      return ok_status();  // a bad index entry: dropping it is all there is to do
    }
    const std::string addr_key = keys::address(network_, range_key_, *ip);
    IPOIB_TRY_ASSIGN(auto record, txn.get(addr_key));
    if (record) {
      auto owner = owner_of(addr_key, *record);
      if (owner.ok() && owner->container_id == container_id && owner->ifname == ifname) {
        IPOIB_TRY(txn.del(addr_key));
        released = true;
      }
    }
    return ok_status();
  });
  if (!stats.ok()) {
    return std::move(stats).error();
  }
  return released;
}

Result<std::vector<std::pair<IpAddress, std::string>>> AddressAllocator::list() {
  std::vector<std::pair<IpAddress, std::string>> out;
  const std::string prefix = keys::range_prefix(network_, range_key_) + "ip/";
  etcd::RangeRequest r = etcd::RangeRequest::prefix(prefix);
  r.limit = 512;
  for (;;) {
    IPOIB_TRY_ASSIGN(etcd::RangeResponse page, client_.range(r));
    for (auto& kv : page.kvs) {
      auto ip = address_of_key(kv.key, range_.first.family());
      if (!ip) {
        return corrupt(kv.key, "not an address key");
      }
      out.emplace_back(*ip, std::move(kv.value));
    }
    if (!page.more || page.kvs.empty()) {
      return out;
    }
    r.key = keys::address(network_, range_key_, out.back().first) + std::string(1, '\0');
    r.revision = page.header.revision;  // one consistent snapshot across pages
  }
}

}  // namespace ipoib::cluster
