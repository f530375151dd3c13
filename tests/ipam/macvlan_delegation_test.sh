#!/bin/bash
# Standalone use: Debian's macvlan plugin (containernetworking-plugins) delegates its IPAM to our
# executable installed as `whereabouts` in CNI_PATH, in a real network namespace.
# Runs inside private network + mount namespaces (unshare), so the host is never touched and
# everything created disappears with the process. Exit 77 when it cannot run.
# usage: macvlan_delegation_test.sh <binary serving `whereabouts` (argv[0]) and `ipam list`>
set -u
bin=${1:?binary}
macvlan=/usr/lib/cni/macvlan

[ -x "$macvlan" ] || { echo "SKIP: $macvlan missing (containernetworking-plugins)"; exit 77; }
. "$(dirname "$0")/private_ns.sh"
enter_private_ns "$0" "$@"

set -e
tmp=$(mktemp -d /tmp/ipam-macvlan-XXXXXX)
master=ipamm$$
master=${master:0:15}
netns=ipamc$$
cleanup() {
  ip netns del "$netns" 2>/dev/null || true
  ip link del "$master" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$tmp/bin"
ln -s "$macvlan" "$tmp/bin/macvlan"
ln -s "$(readlink -f "$bin")" "$tmp/bin/whereabouts"
ip link add "$master" type veth peer name "${master}p"
ip link set "$master" up
ip netns add "$netns"

conf=$(cat <<JSON
{"cniVersion": "1.0.0", "name": "ipam-macvlan", "type": "macvlan", "master": "$master",
 "ipam": {"type": "whereabouts", "range": "10.77.0.0/24", "gateway": "10.77.0.1",
          "store_dir": "$tmp/store"}}
JSON
)
export CNI_PATH=$tmp/bin CNI_NETNS=/run/netns/$netns CNI_IFNAME=net1 CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod"

run() { CNI_COMMAND=$1 CNI_CONTAINERID=$2 "$tmp/bin/macvlan" <<<"$conf"; }

out=$(run ADD ctr1) || fail "ADD: $out"
echo "ADD result: $out"
echo "$out" | grep -q '"address": *"10.77.0.2/24"' || fail "expected 10.77.0.2/24 (.1 is the gateway)"
ip -n "$netns" -4 addr show dev net1 | grep -q "10.77.0.2/24" || fail "address not on net1"

# CHECK with prevResult, as CRI-O runs it right after ADD: macvlan CHECKs the delegated IPAM.
check_conf="${conf%\}*}, \"prevResult\": $out}"
res=$(CNI_COMMAND=CHECK CNI_CONTAINERID=ctr1 "$tmp/bin/macvlan" <<<"$check_conf") || fail "CHECK after ADD: $res"

# A second container (own netns) gets the next address; the store shows both.
ip netns add "${netns}b"
out2=$(CNI_NETNS=/run/netns/${netns}b CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod2" run ADD ctr2) || fail "ADD ctr2: $out2"
echo "$out2" | grep -q '"address": *"10.77.0.3/24"' || fail "expected 10.77.0.3/24 for ctr2: $out2"
list=$("$bin" ipam list --store-dir "$tmp/store") || fail "ipam list failed"
echo "$list"
echo "$list" | grep -q "ctr1" && echo "$list" | grep -q "ctr2" && echo "$list" | grep -q "ns/pod2" || fail "ipam list misses a reservation"

out=$(run DEL ctr1) || fail "DEL: $out"
ip -n "$netns" link show net1 >/dev/null 2>&1 && fail "net1 still present after DEL"
res=$(CNI_COMMAND=CHECK CNI_CONTAINERID=ctr1 "$tmp/bin/whereabouts" <<<"$check_conf") && fail "IPAM CHECK after DEL must fail"
echo "$res" | grep -q "no reservation" || fail "IPAM CHECK after DEL: unclear error: $res"
json=$("$bin" ipam list --json --store-dir "$tmp/store")
echo "$json" | grep -q '"ctr1"' && fail "ctr1 reservation left after DEL"
echo "$json" | grep -q '"ctr2"' || fail "ctr2 reservation lost"
out=$(run DEL ctr1) || fail "second DEL: $out"
out=$(CNI_NETNS=/run/netns/${netns}b run DEL ctr2) || fail "DEL ctr2: $out"
"$bin" ipam list --json --store-dir "$tmp/store" | grep -q '"container_id"' && fail "reservations left"
ip netns del "${netns}b"
echo "ok"
