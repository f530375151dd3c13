#include "ipoib/ipam/whereabouts_import.h"

#include <nlohmann/json.hpp>

#include "ipoib/cni/config.h"

namespace ipoib::ipam {
namespace {

using nlohmann::json;

constexpr std::string_view kPoolKind = "IPPool";
constexpr std::string_view kReservationKind = "OverlappingRangeIPReservation";

// A string member, "" when absent; false when present and not a string.
bool string_member(const json& obj, const char* key, std::string& out) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    out.clear();
    return true;
  }
  if (!it->is_string()) {
    return false;
  }
  out = it->get<std::string>();
  return true;
}

std::string object_label(const json& obj) {
  std::string ns;
  std::string name;
  if (const auto meta = obj.find("metadata"); meta != obj.end() && meta->is_object()) {
    (void)string_member(*meta, "namespace", ns);
    (void)string_member(*meta, "name", name);
  }
  return ns.empty() ? name : ns + "/" + name;
}

// A decimal offset as whereabouts writes it (fmt "%d"): digits only, no sign, no leading "+".
bool parse_offset(std::string_view s, u128& out) {
  if (s.empty() || s.size() > 39) {
    return false;
  }
  u128 v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
    const u128 next = v * 10 + static_cast<unsigned>(c - '0');
    if (next / 10 != v) {
      return false;  // beyond 2^128
    }
    v = next;
  }
  out = v;
  return true;
}

// The fields every allocation has, read from `obj` with the member names its kind uses.
bool read_owner(const json& obj, const char* container_key, ImportedAllocation& a) {
  return obj.is_object() && string_member(obj, container_key, a.container_id) &&
         string_member(obj, "podref", a.pod_ref) && string_member(obj, "ifname", a.ifname);
}

void decode_pool(const json& obj, WhereaboutsRecords& out) {
  const std::string label = "IPPool " + object_label(obj);
  const auto spec = obj.find("spec");
  if (spec == obj.end() || !spec->is_object()) {
    out.problems.push_back(label + ": no spec object");
    return;
  }
  std::string range_text;
  if (!string_member(*spec, "range", range_text) || range_text.empty()) {
    out.problems.push_back(label + ": spec.range missing or not a string");
    return;
  }
  auto range = IpPrefix::parse(range_text);
  if (!range) {
    out.problems.push_back(label + ": spec.range \"" + range_text + "\" is not a CIDR");
    return;
  }
  const auto allocs = spec->find("allocations");
  if (allocs == spec->end() || allocs->is_null()) {
    return;  // an empty pool
  }
  if (!allocs->is_object()) {
    out.problems.push_back(label + ": spec.allocations is not an object");
    return;
  }
  const IpAddress base = range->address();
  const u128 width_max = base.is_v4() ? u128{0xffffffffU} : ~u128{0};
  for (const auto& [key, value] : allocs->items()) {
    std::string where = label;
    where.append(" offset ").append(key);
    u128 offset = 0;
    if (!parse_offset(key, offset)) {
      out.problems.push_back(where + ": the key is not a decimal offset");
      continue;
    }
    if (offset > width_max - base.value()) {
      out.problems.push_back(where + ": beyond the last address of the family");
      continue;
    }
    ImportedAllocation a;
    a.ip = base.offset_by(offset);
    if (!range->contains(a.ip)) {
      out.problems.push_back(where + ": " + a.ip.to_string());
      out.problems.back().append(" is outside spec.range ").append(range_text);
      continue;
    }
    if (!read_owner(value, "id", a)) {
      out.problems.push_back(where + ": not an object with string id, podref and ifname");
      continue;
    }
    a.source = where;
    a.pool_range = range_text;
    (void)string_member(obj["metadata"], "name", a.object_name);
    out.allocations.push_back(std::move(a));
  }
}

void decode_reservation(const json& obj, std::string_view network_name, WhereaboutsRecords& out) {
  const std::string label = "OverlappingRangeIPReservation " + object_label(obj);
  std::string name;
  if (const auto meta = obj.find("metadata");
      meta == obj.end() || !meta->is_object() || !string_member(*meta, "name", name)) {
    out.problems.push_back(label + ": metadata.name missing or not a string");
    return;
  }
  auto ip = decode_reservation_name(name, network_name);
  if (!ip) {
    out.problems.push_back(label + ": " + ip.error().msg());
    return;
  }
  ImportedAllocation a;
  a.ip = *ip;
  const auto spec = obj.find("spec");
  if (spec == obj.end() || !read_owner(*spec, "containerid", a)) {
    out.problems.push_back(label +
                           ": spec is not an object with string containerid, podref "
                           "and ifname");
    return;
  }
  a.source = label;
  a.object_name = name;
  out.allocations.push_back(std::move(a));
}

void decode_object(const json& obj, std::string_view network_name, WhereaboutsRecords& out) {
  std::string kind;
  if (!obj.is_object() || !string_member(obj, "kind", kind)) {
    out.problems.push_back("an item that is not an object with a string kind");
    return;
  }
  if (kind == kPoolKind) {
    decode_pool(obj, out);
  } else if (kind == kReservationKind) {
    decode_reservation(obj, network_name, out);
  } else {
    out.problems.push_back("a " + (kind.empty() ? std::string("kind-less") : kind) + " object " +
                           object_label(obj) + " (neither IPPool nor " +
                           std::string(kReservationKind) + ")");
  }
}

}  // namespace

Result<IpAddress> decode_reservation_name(std::string_view name, std::string_view network_name) {
  std::string_view rest = name;
  if (!network_name.empty()) {
    if (rest.size() <= network_name.size() + 1 ||
        rest.substr(0, network_name.size()) != network_name || rest[network_name.size()] != '-') {
      return Error(ErrorCode::kDecodeFailure, "name \"" + std::string(name) +
                                                  "\" does not start with the network_name \"" +
                                                  std::string(network_name) + "-\"");
    }
    rest.remove_prefix(network_name.size() + 1);
  }
  if (auto v4 = IpAddress::parse(rest); v4 && v4->is_v4()) {
    return *v4;
  }
  std::string text(rest);
  for (char& c : text) {
    if (c == '-') {
      c = ':';
    }
  }
  auto v6 = IpAddress::parse(text);
  if (!v6 || v6->is_v4()) {
    return Error(ErrorCode::kDecodeFailure,
                 "name \"" + std::string(name) + "\" is not an IP address" +
                     (network_name.empty() ? std::string()
                                           : " (with or without the network_name prefix \"" +
                                                 std::string(network_name) + "-\")"));
  }
  return *v6;
}

std::string whereabouts_pool_name(std::string_view range, std::string_view network_name) {
  std::string out(range);
  if (!out.empty() && out.back() == ':') {
    out += '0';
  }
  for (char& c : out) {
    if (c == ':' || c == '/') {
      c = '-';
    }
  }
  return network_name.empty() ? out : std::string(network_name) + "-" + out;
}

Result<WhereaboutsRecords> decode_whereabouts(std::string_view text, std::string_view file_name,
                                              std::string_view network_name) {
  IPOIB_TRY_ASSIGN(const json doc, cni::parse_json(text, file_name));
  if (!doc.is_object()) {
    return Error(ErrorCode::kDecodeFailure, std::string(file_name) + ": not a JSON object");
  }
  WhereaboutsRecords out;
  std::string kind;
  (void)string_member(doc, "kind", kind);
  const auto items = doc.find("items");
  if (kind.size() >= 4 && kind.compare(kind.size() - 4, 4, "List") == 0) {
    if (items == doc.end() || !items->is_array()) {
      return Error(ErrorCode::kDecodeFailure,
                   std::string(file_name) + ": a " + kind + " without an items array");
    }
    for (const json& item : *items) {
      decode_object(item, network_name, out);
    }
    return out;
  }
  if (kind != kPoolKind && kind != kReservationKind) {
    return Error(ErrorCode::kDecodeFailure,
                 std::string(file_name) + ": neither a List nor an IPPool or " +
                     std::string(kReservationKind) + " object (kind \"" + kind + "\")");
  }
  decode_object(doc, network_name, out);
  return out;
}

}  // namespace ipoib::ipam
