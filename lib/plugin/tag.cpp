#include "ipoib/plugin/tag.h"

#include <cstdint>
#include <vector>

#include "ipoib/cni/env.h"

namespace ipoib::plugin {
namespace {

std::vector<std::string_view> split_colons(std::string_view s) {
  std::vector<std::string_view> parts;
  for (;;) {
    const auto colon = s.find(':');
    parts.push_back(s.substr(0, colon));
    if (colon == std::string_view::npos) {
      return parts;
    }
    s.remove_prefix(colon + 1);
  }
}

}  // namespace

std::string child_tag(std::string_view network, std::string_view container_id,
                      std::string_view ifname) {
  std::string tag(kTagPrefix);
  tag.append(network).append(":").append(container_id).append(":").append(ifname);
  return tag;
}

std::optional<ChildOwner> parse_child_tag(std::string_view alias) {
  if (alias.substr(0, kTagPrefix.size()) != kTagPrefix) {
    return std::nullopt;
  }
  const auto parts = split_colons(alias.substr(kTagPrefix.size()));
  ChildOwner owner;
  std::string_view id;
  std::string_view ifname;
  if (parts.size() == 3) {
    if (!cni::is_valid_identifier(parts[0])) {
      return std::nullopt;
    }
    owner.network = std::string(parts[0]);
    id = parts[1];
    ifname = parts[2];
  } else if (parts.size() == 2) {
    id = parts[0];
    ifname = parts[1];
  } else {
    return std::nullopt;
  }
  if (!cni::is_valid_identifier(id) || !cni::is_valid_ifname(ifname)) {
    return std::nullopt;
  }
  owner.attachment = {std::string(id), std::string(ifname)};
  return owner;
}

bool is_plugin_tag(std::string_view alias) { return parse_child_tag(alias).has_value(); }

bool is_tagged_for_network(std::string_view alias, std::string_view network) {
  const auto owner = parse_child_tag(alias);
  return owner && owner->network && *owner->network == network;
}

bool is_tagged_for_attachment(std::string_view alias, std::string_view network,
                              const cni::Attachment& attachment) {
  const auto owner = parse_child_tag(alias);
  return owner && owner->attachment == attachment &&
         (!owner->network || *owner->network == network);
}

std::string temporary_child_name(std::string_view container_id, std::string_view ifname) {
  // FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3): tiny, stable, and 48 bits
  // make two live attachments of one node sharing a name vanishingly unlikely (and even then
  // the second ADD only fails with EEXIST: a stale child is deleted only when an intent names it).
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 0x100000001b3ULL;
  };
  for (char c : container_id) {
    mix(static_cast<unsigned char>(c));
  }
  mix(0);
  for (char c : ifname) {
    mix(static_cast<unsigned char>(c));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name(kTemporaryNamePrefix);
  for (int shift = 44; shift >= 0; shift -= 4) {
    name.push_back(kHex[(h >> shift) & 0xf]);
  }
  return name;
}

bool is_temporary_child_name(std::string_view name) {
  if (name.size() != kTemporaryNamePrefix.size() + 12 ||
      name.substr(0, kTemporaryNamePrefix.size()) != kTemporaryNamePrefix) {
    return false;
  }
  for (char c : name.substr(kTemporaryNamePrefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace ipoib::plugin
