#include "ipoib/plugin/tag.h"

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

}  // namespace ipoib::plugin
