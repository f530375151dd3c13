#!/usr/bin/env bash
# End-to-end through a real container runtime: Debian's podman 4.3 with its CNI backend runs
# containers on the seed's network (type ipoib, whereabouts IPAM) with the test child kind
# (ipoib-testkind: a macvlan child of a veth this test creates; no IPoIB in this kernel).
#
#   podman-e2e.sh TESTKIND IPOIB      # IPOIB = the full binary, for `ipoib ipam list`
#
# Checks: the address from our IPAM inside the container; after `podman run --rm` exits, no
# interface left on the host (no tagged or temporary child) and no reservation in the store;
# 20 containers in parallel get distinct addresses and leave nothing. Everything podman keeps
# (storage, run state, containers.conf, the CNI plugin and config dirs, the IPAM store) is
# test-local. Exit 77 (with the reason) only when podman cannot run a container here at all.
set -euo pipefail

testkind=${1:?usage: podman-e2e.sh TESTKIND IPOIB}
admin=${2:?missing IPOIB}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=podman-env.sh
source "$here/podman-env.sh"

tmp=$(mktemp -d /tmp/podman-e2e.XXXXXX)
tag=pm$$
host_if=${tag}h peer_if=${tag}p
net=jarvice-ipoib-$$
image=localhost/busybox-e2e:$$
store=$tmp/store
# podman's CNI backend keeps libcni's result cache in /var/lib/cni/results (not configurable):
# removed afterwards when this run created it and it is empty again.
cni_cache_existed=no cni_lib_existed=no
[[ -e /var/lib/cni/results ]] && cni_cache_existed=yes
[[ -e /var/lib/cni ]] && cni_lib_existed=yes
cleanup() {
  set +e
  pm_teardown
  ip link del "$host_if" 2>/dev/null
  [[ $cni_cache_existed == no ]] && rmdir /var/lib/cni/results 2>/dev/null
  [[ $cni_lib_existed == no ]] && rmdir /var/lib/cni 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../support/checks.sh"  # expect, pass, bad, checks_done

pm_setup "$tmp"
netns_before=$(ls /run/netns 2>/dev/null | sort)
pm_import_busybox "$image"
pm_pick_runtime "$image" /bin/true

# --- the network: the seed's NAD config as a podman CNI conflist --------------------------------
ip link add "$host_if" type veth peer name "$peer_if"
ip link set "$host_if" up
ip link set "$peer_if" up
cp "$testkind" "$pm_dir/cni-bin/ipoib"
cat >"$pm_dir/net.d/$net.conflist" <<CONF
{
  "cniVersion": "1.0.0",
  "name": "$net",
  "plugins": [
    {
      "type": "ipoib",
      "master": "$host_if",
      "ipam": {
        "type": "whereabouts",
        "range": "192.168.0.0/24",
        "store_dir": "$store"
      }
    }
  ]
}
CONF
expect "podman lists the network" bash -c '"$@" network ls --format "{{.Name}}" | grep -qx "'"$net"'"' _ "${pm[@]}"

# Reservations as "IP CONTAINER" lines, read back by the tool that owns the store (the pools'
# reservations in `ipoib ipam list --json`, docs/ipam.md); fails loudly when it cannot be read.
reservations() {
  local listing
  listing=$("$admin" ipam list --json --store-dir "$store") || { echo "__ipam_list_failed__"; return; }
  python3 -c '
import json, sys
for pool in json.load(sys.stdin).get("pools", []):
    for r in pool["reservations"]:
        print(r["ip"], r["container_id"])' <<<"$listing" || echo "__ipam_list_unparsable__"
}
# Children of the veth left on the host: tagged or temporary-named, any name.
host_children() { ip -o link show | grep "@$host_if:" | grep -vc ": $peer_if@" || true; }

# --- one container ------------------------------------------------------------------------------
if ! "${pm[@]}" run --rm --network "$net" "$image" /bin/ip -o -4 addr show dev eth0 \
    >"$tmp/one.out" 2>"$tmp/one.err"; then
  bad "podman run on $net: $(cat "$tmp/one.err")"
fi
cat "$tmp/one.out"
expect "one: eth0 has an address from the range (192.168.0.0/24)" \
  grep -qE 'inet 192\.168\.0\.([1-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-4])/24' "$tmp/one.out"
expect "one: the first address of the range (192.168.0.1)" grep -q 'inet 192.168.0.1/24' "$tmp/one.out"
expect "one: no child left on the host" test "$(host_children)" = 0
expect "one: no reservation left in the store" test -z "$(reservations)"
expect "one: the store was used (pool file exists)" test -n "$(find "$store" -name 'pool-*' 2>/dev/null)"

# --- a container that stays up: the reservation exists while it runs ------------------------------
"${pm[@]}" run -d --name "$tag-up" --network "$net" "$image" /bin/sleep 600 >/dev/null
up_ip=$("${pm[@]}" exec "$tag-up" /bin/ip -o -4 addr show dev eth0 | sed -nE 's/.*inet ([0-9.]+)\/.*/\1/p')
cid=$("${pm[@]}" inspect --format '{{.Id}}' "$tag-up")
reservations >"$tmp/up.res"
expect "running: the reservation of $up_ip names the container" grep -qx "$up_ip $cid" "$tmp/up.res"
"${pm[@]}" rm -f -t 0 "$tag-up" >/dev/null
expect "removed: no reservation left" test -z "$(reservations)"
expect "removed: no child left on the host" test "$(host_children)" = 0

# --- 20 containers in parallel -------------------------------------------------------------------
# Each writes its address into a shared directory and holds it until all 20 have one, so the
# addresses are checked for distinctness among 20 live attachments (not reuse after a release).
shared=$tmp/barrier
mkdir -p "$shared"
pids=()
for i in $(seq 1 20); do
  "${pm[@]}" run --rm --network "$net" -v "$shared:/s" "$image" /bin/sh -c \
    "ip -o -4 addr show dev eth0 >/s/addr.$i; while [ ! -e /s/go ]; do sleep 0.2; done" \
    >"$tmp/par.$i.out" 2>"$tmp/par.$i.err" &
  pids+=($!)
done
for _ in $(seq 1 600); do   # at most 120 s
  (($(find "$shared" -name 'addr.*' -size +0 | wc -l) == 20)) && break
  jobs -rp | grep -q . || break   # every run already ended (failed)
  sleep 0.2
done
addrs=$(cat "$shared"/addr.* 2>/dev/null | sed -nE 's/.*inet (192\.168\.0\.[0-9]+)\/24.*/\1/p' | sort)
expect "parallel: 20 live containers have an address ($(grep -c . <<<"$addrs"))" test "$(grep -c . <<<"$addrs")" = 20
expect "parallel: all distinct" test "$(sort -u <<<"$addrs" | grep -c .)" = 20
expect "parallel: 20 reservations while they run" test "$(reservations | grep -c .)" = 20
touch "$shared/go"
run_fail=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { run_fail=$((run_fail + 1)); echo "    run $((i + 1)): $(tail -2 "$tmp/par.$((i + 1)).err")"; }
done
expect "parallel: all 20 runs succeeded ($run_fail failed)" test "$run_fail" = 0
expect "parallel: no child left on the host" test "$(host_children)" = 0
expect "parallel: no reservation left in the store" test -z "$(reservations)"
expect "parallel: no container left" test -z "$("${pm[@]}" ps -aq)"
expect "no libcni cache entry left by podman" \
  test -z "$(find /var/lib/cni/results -name "$net-*" 2>/dev/null)"
expect "no network namespace left by podman" \
  test -z "$(comm -13 <(echo "$netns_before") <(ls /run/netns 2>/dev/null | sort) | grep '^cni-' || true)"

checks_done podman-e2e
