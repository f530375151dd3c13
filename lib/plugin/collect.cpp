#include "ipoib/plugin/collect.h"

#include <algorithm>
#include <set>
#include <utility>

namespace ipoib::plugin {
namespace {

using AttachmentKey = std::pair<std::string_view, std::string_view>;

AttachmentKey key_of(const cni::Attachment& a) { return {a.container_id, a.ifname}; }

}  // namespace

bool is_intended_untagged_child(const netlink::LinkInfo& link, const AttachmentRef& owner,
                                const std::optional<ChildOwner>& intent) {
  return link.alias.empty() && intent && intent->network == owner.network &&
         intent->attachment == owner.attachment &&
         link.name == temporary_child_name(owner.attachment.container_id, owner.attachment.ifname);
}

std::vector<netlink::LinkInfo> links_to_delete_for(const std::vector<netlink::LinkInfo>& links,
                                                   const AttachmentRef& owner,
                                                   const std::optional<ChildOwner>& intent) {
  std::vector<netlink::LinkInfo> out;
  for (const netlink::LinkInfo& link : links) {
    if (is_tagged_for_attachment(link.alias, owner.network, owner.attachment) ||
        is_intended_untagged_child(link, owner, intent)) {
      out.push_back(link);
    }
  }
  return out;
}

std::vector<netlink::LinkInfo> select_gc_deletions(const GcInputs& in) {
  // n log n: the valid list may hold tens of thousands of attachments.
  std::set<AttachmentKey> valid;
  for (const cni::Attachment& a : in.valid) {
    valid.insert(key_of(a));
  }
  std::vector<netlink::LinkInfo> out;
  for (const netlink::LinkInfo& link : in.links) {
    if (!link.parent_ifindex || *link.parent_ifindex != in.master_ifindex) {
      continue;  // another master's child: another network's GC owns it
    }
    std::optional<ChildOwner> owner;
    if (link.alias.empty()) {
      const auto intent = in.intents.find(link.name);
      if (intent == in.intents.end()) {
        continue;  // nothing proves an untagged link ours, whatever its name
      }
      if (!is_intended_untagged_child(link, {std::string(in.network), intent->second.attachment},
                                      intent->second)) {
        continue;
      }
      owner = intent->second;
    } else {
      owner = parse_child_tag(link.alias);
      if (!owner || !owner->network || *owner->network != in.network) {
        continue;  // not ours, another network's, or a legacy tag naming no network
      }
    }
    if (valid.count(key_of(owner->attachment)) == 0) {
      out.push_back(link);
    }
  }
  return out;
}

}  // namespace ipoib::plugin
