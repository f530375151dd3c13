#!/usr/bin/env bash
# The flat file `ipoib install` writes makes the seed's NAD, unchanged, cluster-wide: two "nodes"
# (each its own private mount namespace, where the node's installed /etc/cni/net.d/whereabouts.d
# and an empty /var/lib are mounted, and its own NODENAME) run the seed's IPAM section through the
# `whereabouts` name against one real etcd member; they get different addresses. Without the flat
# file, the same two nodes hand out the same address (the trap `ipoib doctor` FAILs).
#
#   install-etcd-test.sh IPOIB
#
# Root (unshare -m); exit 77 only when etcd/etcdctl or unshare are missing. The etcd member is
# the harness's (tests/etcd/etcd_harness.py, through with_etcd.py): run alone, the script starts
# itself again under it.
set -euo pipefail

ipoib=${1:?usage: install-etcd-test.sh IPOIB}
command -v unshare >/dev/null || { echo "install-etcd-test: unshare not installed: skipped"; exit 77; }
if [[ -z ${IPOIB_ETCD_ENDPOINTS:-} ]]; then
  exec python3 "$(dirname "$0")/with_etcd.py" bash "$0" "$@"
fi
url=$IPOIB_ETCD_ENDPOINTS
tmp=$(mktemp -d /tmp/scripts-install-etcd.$$.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../support/checks.sh"  # expect, pass, bad, checks_done

cp "$ipoib" "$tmp/whereabouts"
# The seed's IPAM section, verbatim (conf/nad/jarvice-ipoib.yaml), in a config for `whereabouts`.
net='{"cniVersion":"0.3.1","name":"jarvice-ipoib","type":"whereabouts","ipam":{"type":"whereabouts","range":"192.168.0.0/24"}}'

# add NODE ROOT CONTAINER: the seed's IPAM ADD on NODE, whose host files are under ROOT.
add() {
  local node=$1 root=$2 cid=$3
  mkdir -p "$root/etc/cni/net.d/whereabouts.d" "$root/var-lib"
  NODENAME=$node CNI_COMMAND=ADD CNI_CONTAINERID=$cid CNI_NETNS=/proc/self/ns/net CNI_IFNAME=net1 \
    CNI_PATH=$tmp unshare -m --propagation private sh -c '
      mount --bind "$1/etc/cni/net.d/whereabouts.d" /etc/cni/net.d/whereabouts.d 2>/dev/null ||
        { mount -t tmpfs none /etc/cni && mkdir -p /etc/cni/net.d/whereabouts.d &&
          cp -a "$1/etc/cni/net.d/whereabouts.d/." /etc/cni/net.d/whereabouts.d/; }
      mount --bind "$1/var-lib" /var/lib
      exec "$2/whereabouts"' _ "$root" "$tmp" <<<"$net"
}
ip_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][0]["address"])'; }

for node in a b; do
  mkdir -p "$tmp/$node"
  "$ipoib" install --root "$tmp/$node" --flat-file-only --etcd-endpoints "$url" >/dev/null
done
ip_a=$(add node-a "$tmp/a" pod-a | ip_of)
ip_b=$(add node-b "$tmp/b" pod-b | ip_of)
# The cluster store picks among the first free addresses after the range's cursor (docs/ipam.md).
in_range() { [[ $1 =~ ^192\.168\.0\.([0-9]+)/24$ ]] && (( BASH_REMATCH[1] >= 1 && BASH_REMATCH[1] <= 254 )); }
expect "node-a got an address from the range ($ip_a)" in_range "$ip_a"
expect "node-b got one from the range too ($ip_b)" in_range "$ip_b"
expect "node-b's differs from node-a's: one range for the cluster" test "$ip_a" != "$ip_b"
expect "the reservations are in etcd (/ipoib/v1/)" \
  bash -c '[[ $(etcdctl --endpoints "$0" get --prefix /ipoib/v1/ --keys-only | grep -c .) -ge 2 ]]' "$url"

# The trap, for contrast: no flat file, each node its own store.
ip_c=$(add node-c "$tmp/c" pod-c | ip_of)
ip_d=$(add node-d "$tmp/d" pod-d | ip_of)
expect "without the flat file two nodes hand out the same address ($ip_c, $ip_d)" \
  test "$ip_c" = "$ip_d"

checks_done install-etcd-test
