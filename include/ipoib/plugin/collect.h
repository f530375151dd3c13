// ipoib/plugin/collect.h — which links DEL and GC delete: pure functions of what the kernel
// reported, the intents found (intent.h) and the attachments, so every decision is unit-tested
// without a kernel. Nothing is ever chosen for its name's shape alone.
//
//   auto doomed = links_to_delete_for(links, {"ibnet", {"4f2a", "net1"}}, intent);  // DEL
//   auto garbage = select_gc_deletions({links, master.ifindex, "ibnet", valid, intents});
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipoib/cni/skel.h"
#include "ipoib/netlink/link.h"
#include "ipoib/plugin/tag.h"

namespace ipoib::plugin {

// One attachment of one network.
struct AttachmentRef {
  std::string network;
  cni::Attachment attachment;
};

// Whether `link` is the untagged child an ADD of `owner` was creating: it has no alias, carries
// the attachment's temporary name, and `intent` (the intent recorded under that name) names the
// same network and attachment.
bool is_intended_untagged_child(const netlink::LinkInfo& link, const AttachmentRef& owner,
                                const std::optional<ChildOwner>& intent);

// DEL of `owner`, among the links of the child kind of one netns: those tagged for the
// attachment (current tag of this network, or the legacy tag of the same attachment), and its
// untagged temporary child when `intent` proves it (is_intended_untagged_child).
std::vector<netlink::LinkInfo> links_to_delete_for(const std::vector<netlink::LinkInfo>& links,
                                                   const AttachmentRef& owner,
                                                   const std::optional<ChildOwner>& intent);

struct GcInputs {
  const std::vector<netlink::LinkInfo>& links;  // the host netns' links of the child kind
  int master_ifindex = 0;                       // this network's master there
  std::string_view network;                     // this network's name
  const std::vector<cni::Attachment>& valid;    // the runtime's valid attachments
  // The intents found for the untagged links' names (temporary name -> owner).
  const std::map<std::string, ChildOwner, std::less<>>& intents;
};

// GC: the children of the master that this network owns and no valid attachment uses —
// tagged for this network (current format) with an attachment not in `valid`, or untagged with
// an intent of this network naming an attachment not in `valid` under exactly that temporary
// name. Never another network's child, a legacy-tagged child (its network is unknown), or an
// untagged link without an intent.
std::vector<netlink::LinkInfo> select_gc_deletions(const GcInputs& in);

}  // namespace ipoib::plugin
