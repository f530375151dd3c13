// ipoib/ipam/attachment_liveness.h — whether an earlier attachment of the same pod still lives,
// for ADD's "same pod and ifname → same address" rule.
//
// A reservation records the CNI_NETNS path of the ADD that made it. When a later ADD names the
// same pod and ifname with another container ID, the earlier attachment is alive when that path
// still is a network namespace, and not the namespace of the new ADD:
//  * kubelet after a node reboot: the old sandbox's netns is gone → not alive → the new sandbox
//    takes the address over (the point of the rule);
//  * two live containers claiming one pod reference (podman, cnitool with a fixed CNI_ARGS): the
//    old netns still exists → alive → the new one gets a new address, never the same;
//  * the same namespace again (a runtime retrying with a new container ID): one ifname in one
//    namespace is one interface → not another live attachment → taken over.
// A record without a netns (written before netns was recorded) counts as not alive: the rule
// behaves as it did before.
//
//   bool alive = other_live_netns("/var/run/netns/cni-1234", req.env.netns);
#pragma once

#include <string>

namespace ipoib::ipam {

// Whether `recorded` names a network namespace (nsfs, of type CLONE_NEWNET) other than the one
// `current` names. Never blocks and never enters a namespace: the path is opened O_PATH (no
// open side effects on a FIFO or device), checked with fstatfs/fstat, and reopened through
// /proc/self/fd only once it is known to be an nsfs file. Any failure means "not alive".
bool other_live_netns(const std::string& recorded, const std::string& current);

}  // namespace ipoib::ipam
