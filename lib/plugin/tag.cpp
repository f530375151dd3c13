#include "ipoib/plugin/tag.h"

#include <cstdint>

#include "ipoib/cni/env.h"

namespace ipoib::plugin {

std::string attachment_tag(std::string_view container_id, std::string_view ifname) {
  std::string tag(kTagPrefix);
  tag.append(container_id).append(":").append(ifname);
  return tag;
}

std::optional<cni::Attachment> parse_attachment_tag(std::string_view alias) {
  if (alias.substr(0, kTagPrefix.size()) != kTagPrefix) {
    return std::nullopt;
  }
  alias.remove_prefix(kTagPrefix.size());
  const auto colon = alias.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  const auto id = alias.substr(0, colon);
  const auto ifname = alias.substr(colon + 1);
  if (!cni::is_valid_identifier(id) || !cni::is_valid_ifname(ifname)) {
    return std::nullopt;
  }
  return cni::Attachment{std::string(id), std::string(ifname)};
}

std::string temporary_child_name(std::string_view container_id, std::string_view ifname) {
  // FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3): tiny, stable, and 48 bits
  // make two live attachments of one node sharing a name vanishingly unlikely (and even then
  // the second ADD only fails with EEXIST: a stale child is deleted only when untagged or ours).
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
