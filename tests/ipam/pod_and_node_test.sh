#!/bin/bash
# The IPAM's cross-attachment rules through the real executable invoked as `whereabouts`:
#  1. "same pod and ifname -> same address" never hands one address to two live attachments:
#     the earlier attachment is alive while its recorded netns still is a network namespace
#     (real namespaces from `ip netns add`); a gone one (kubelet after a reboot) is taken over.
#  2. two "nodes" (processes with different NODENAME) share one store_dir: GC of one node
#     releases only its own reservations, so the other node's live address is never reused.
# Runs inside private network + mount namespaces (unshare): the host is never touched. Exit 77
# when it cannot run.
# usage: pod_and_node_test.sh <binary serving `whereabouts` (argv[0]) and `ipam list`>
set -u
bin=${1:?binary}

. "$(dirname "$0")/private_ns.sh"
enter_private_ns "$0" "$@"

set -e
tmp=$(mktemp -d /tmp/ipam-podnode-XXXXXX)
ns=ipampn$$
cleanup() {
  for n in a b c; do ip netns del "$ns$n" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$tmp/bin"
ln -s "$(readlink -f "$bin")" "$tmp/bin/whereabouts"
for n in a b c; do ip netns add "$ns$n"; done

conf() {  # conf <cniVersion> [extra ipam keys]
  echo "{\"cniVersion\": \"$1\", \"name\": \"podnode\", \"type\": \"macvlan\",
         \"ipam\": {\"type\": \"whereabouts\", \"range\": \"10.78.0.0/24\",
                    \"store_dir\": \"$tmp/store\" ${2:-}}}"
}
export CNI_PATH=$tmp/bin CNI_IFNAME=net1
pod="IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod"
# add <container> <netns name> <CNI_ARGS> -> the address
add() {
  local out
  out=$(CNI_COMMAND=ADD CNI_CONTAINERID=$1 CNI_NETNS=/run/netns/$2 CNI_ARGS=$3 \
        "$tmp/bin/whereabouts" <<<"$(conf 1.0.0)") || fail "ADD $1: $out"
  echo "$out" | py 'print(d["ips"][0]["address"])'
}
py() { python3 -c "import json, sys; d = json.load(sys.stdin); $1"; }
reservations() {  # every reservation as JSON lines
  "$bin" ipam list --json --store-dir "$tmp/store" |
    py 'print("\n".join(json.dumps(r) for p in d["pools"] for r in p["reservations"]))'
}
field_of() {  # field_of <match field> <value> <wanted field>
  reservations | python3 -c "import json, sys
for l in sys.stdin:
    r = json.loads(l)
    if r['$1'] == '$2': print(r['$3'])"
}
holder() { field_of ip "${1%/*}" container_id; }

# 1. Two live containers with one pod reference: two addresses.
a=$(add ctr-a "${ns}a" "$pod")
b=$(add ctr-b "${ns}b" "$pod")
echo "pod ns/pod: ctr-a $a, ctr-b $b"
[ "$a" != "$b" ] || fail "two live attachments of one pod reference got one address $a"
[ "$(holder "$a")" = ctr-a ] && [ "$(holder "$b")" = ctr-b ] || fail "holders changed"
# podman passes its container name as both namespace and name: the same rule applies.
pm="IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_INFRA_CONTAINER_ID=x;K8S_POD_NAME=web"
p1=$(add pm-1 "${ns}a" "$pm")
p2=$(add pm-2 "${ns}b" "$pm")
[ "$p1" != "$p2" ] || fail "podman-style containers in two live netns share $p1"
# The same namespace again with a new container ID (a runtime retrying): taken over.
b2=$(add ctr-b2 "${ns}b" "$pod")
[ "$b2" = "$b" ] || fail "re-ADD in the same netns moved $b -> $b2"
[ "$(holder "$b")" = ctr-b2 ] || fail "ctr-b2 does not hold $b"
# The kubelet after a reboot: the old sandbox's netns is gone -> its address is taken over.
ip netns del "${ns}a"
c=$(add ctr-c "${ns}c" "$pod")
[ "$c" = "$a" ] || fail "re-ADD after the old netns vanished got $c, not ctr-a's $a"
[ "$(holder "$a")" = ctr-c ] || fail "ctr-c does not hold $a"
n=$(reservations | wc -l)
[ "$n" = 4 ] || fail "expected 4 reservations, got $n"
rm -rf "$tmp/store"

# 2. Two nodes, one store_dir.
nadd() {  # nadd <node> <container>
  local out
  out=$(NODENAME=$1 CNI_COMMAND=ADD CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/${ns}b CNI_ARGS= \
        "$tmp/bin/whereabouts" <<<"$(conf 1.1.0)") || fail "ADD $2 on $1: $out"
  echo "$out" | py 'print(d["ips"][0]["address"])'
}
a1=$(nadd node-a a1)
b1=$(nadd node-b b1)
nodes=$(reservations | python3 -c "import json, sys; print(','.join(json.loads(l)['node'] for l in sys.stdin))")
[ "$nodes" = "node-a,node-b" ] || fail "nodes not recorded: $nodes"
# node-a's runtime knows none of node-a's attachments any more: GC.
gc=$(conf 1.1.0)
gc="${gc%\}*}, \"cni.dev/valid-attachments\": []}"
out=$(NODENAME=node-a CNI_COMMAND=GC "$tmp/bin/whereabouts" <<<"$gc") || fail "GC on node-a: $out"
[ -z "$(holder "$a1")" ] || fail "node-a's GC kept its own stale $a1"
[ "$(holder "$b1")" = b1 ] || fail "node-a's GC released node-b's live $b1"
a2=$(nadd node-a a2)
[ "$a2" != "$b1" ] || fail "node-a's next ADD got node-b's live address $b1"
# node_name in the config wins over NODENAME.
out=$(NODENAME=node-a CNI_COMMAND=ADD CNI_CONTAINERID=cfg1 CNI_NETNS=/run/netns/${ns}b CNI_ARGS= \
      "$tmp/bin/whereabouts" <<<"$(conf 1.1.0 ', "node_name": "node-cfg"')") || fail "ADD cfg1: $out"
node=$(field_of container_id cfg1 node)
[ "$node" = node-cfg ] || fail "node_name not recorded: $node"
echo "ok"
