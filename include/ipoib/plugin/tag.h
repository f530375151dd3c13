// ipoib/plugin/tag.h — the alias tag that marks a child interface as this plugin's, so DEL and GC
// find it again wherever it is — including after the kernel refunded it to the host netns as
// dev<N> when a pod netns was destroyed without DEL (IPoIB sets netns_refund).
//
//   attachment_tag("4f2a...", "net1")           -> "ipoib-cni:4f2a...:net1"  (IFLA_IFALIAS)
//   parse_attachment_tag("ipoib-cni:4f2a:net1") -> Attachment{"4f2a", "net1"}
//
// The prefix is a contract with the doctor (which reports leaked tagged children).
//
// The temporary name a child has between its creation and its rename is derived from the
// attachment too, because the kernel cannot tag a child in the creating request (rtnl_create_link
// ignores IFLA_IFALIAS): a process killed between create and tag leaves an untagged child, and
// DEL/GC/a retried ADD find it again by that name.
//   temporary_child_name("4f2a...", "net1")     -> "ipt" + 12 hex digits, always the same
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

inline constexpr std::string_view kTemporaryNamePrefix = "ipt";

// "ipt" + the low 48 bits of FNV-1a-64 over containerID, a NUL and ifname, as 12 lowercase hex
// digits: 15 bytes (IFNAMSIZ - 1). Deterministic across processes and releases (changing it
// would orphan the children of killed ADDs made by the previous release).
std::string temporary_child_name(std::string_view container_id, std::string_view ifname);

// Whether `name` has the shape of a temporary child name ("ipt" + 12 lowercase hex digits).
bool is_temporary_child_name(std::string_view name);

}  // namespace ipoib::plugin
