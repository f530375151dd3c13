// ipoib/plugin/tag.h — the alias tag that marks a child interface as this plugin's, so DEL and GC
// find it again wherever it is — including after the kernel refunded it to the host netns as
// dev<N> when a pod netns was destroyed without DEL (IPoIB sets netns_refund).
//
//   attachment_tag("4f2a...", "net1")           -> "ipoib-cni:4f2a...:net1"  (IFLA_IFALIAS)
//   parse_attachment_tag("ipoib-cni:4f2a:net1") -> Attachment{"4f2a", "net1"}
//
// The prefix is a contract with the doctor (which reports leaked tagged children).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ipoib/cni/skel.h"

namespace ipoib::plugin {

inline constexpr std::string_view kTagPrefix = "ipoib-cni:";

// "ipoib-cni:<containerID>:<ifname>".
std::string attachment_tag(std::string_view container_id, std::string_view ifname);

// The attachment a tag names; nullopt when `alias` is not a well-formed tag. Container IDs never
// contain ':' (cni::is_valid_identifier) and ifnames never do either, so the split is unique.
std::optional<cni::Attachment> parse_attachment_tag(std::string_view alias);

}  // namespace ipoib::plugin
