// ipoib/plugin/tag.h — how a child interface is recognised as this plugin's, and by which
// network and attachment: the alias tag, and the temporary name a child has before it is tagged.
//
//   child_tag("ibnet", "4f2a...", "net1")        -> "ipoib-cni:ibnet:4f2a...:net1"  (IFLA_IFALIAS)
//   parse_child_tag("ipoib-cni:ibnet:4f2a:net1") -> ChildOwner{"ibnet", {"4f2a", "net1"}}
//   parse_child_tag("ipoib-cni:4f2a:net1")       -> ChildOwner{nullopt, {"4f2a", "net1"}} (legacy)
//   is_tagged_for_network(alias, "ibnet")        -> the child is ibnet's (GC considers only these)
//
// The tag names the network and the attachment, so that GC of one network never takes another
// network's child on the same master. Tags written before the network was part of them
// (`ipoib-cni:<containerID>:<ifname>`, the legacy format) name only the attachment: DEL of that
// exact attachment still removes them (a container has one netns and an ifname names one
// interface in it), GC never does (nothing proves which network made them; `ipoib doctor`
// reports them).
//
// The kernel cannot tag a child in the creating request (rtnl_create_link ignores IFLA_IFALIAS),
// so between its creation and its tag a child carries only its temporary name, derived from the
// attachment. That name's shape proves nothing (anyone can name a link ipt0123456789ab): an
// untagged child is ours only when an intent recorded before its creation names it (intent.h).
//   temporary_child_name("4f2a...", "net1")      -> "ipt" + 12 hex digits, always the same
//
// These are the contracts the doctor uses to tell leaked children from foreign links.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ipoib/cni/skel.h"

namespace ipoib::plugin {

inline constexpr std::string_view kTagPrefix = "ipoib-cni:";

// Who a tag says a child belongs to.
struct ChildOwner {
  std::optional<std::string> network;  // nullopt: a legacy tag, which does not name it
  cni::Attachment attachment;
  friend bool operator==(const ChildOwner&, const ChildOwner&) = default;
};

// "ipoib-cni:<network>:<containerID>:<ifname>". Network names and container IDs are
// cni::is_valid_identifier and ifnames never contain ':', so the split is unique.
std::string child_tag(std::string_view network, std::string_view container_id,
                      std::string_view ifname);

// The owner a tag names, in either format; nullopt when `alias` is not a well-formed tag.
std::optional<ChildOwner> parse_child_tag(std::string_view alias);

// Whether `alias` is a well-formed tag of this plugin, in either format (a child the plugin made).
bool is_plugin_tag(std::string_view alias);

// Whether `alias` is a current-format tag naming `network`: the only children GC of `network`
// may consider.
bool is_tagged_for_network(std::string_view alias, std::string_view network);

// Whether `alias` tags the child of `attachment` of `network`: the current tag, or the legacy
// tag of the same attachment (which DEL of that attachment removes).
bool is_tagged_for_attachment(std::string_view alias, std::string_view network,
                              const cni::Attachment& attachment);

inline constexpr std::string_view kTemporaryNamePrefix = "ipt";

// "ipt" + the low 48 bits of FNV-1a-64 over containerID, a NUL and ifname, as 12 lowercase hex
// digits: 15 bytes (IFNAMSIZ - 1). Deterministic across processes and releases (changing it
// would orphan the children of killed ADDs made by the previous release).
std::string temporary_child_name(std::string_view container_id, std::string_view ifname);

// Whether `name` has the shape of a temporary child name ("ipt" + 12 lowercase hex digits).
// A hint for reports only: never a reason to delete a link (see intent.h).
bool is_temporary_child_name(std::string_view name);

}  // namespace ipoib::plugin
