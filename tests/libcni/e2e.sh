#!/usr/bin/env bash
# End-to-end through libcni 1.1.2 (cni-driver) against real network namespaces.
#
#   e2e.sh debian      CNI_DRIVER            # Debian's macvlan + host-local: proves the harness
#   e2e.sh ipoib       CNI_DRIVER BINARY [ADMIN]  # our plugin (test build: macvlan child over a
#                                                 # veth); ADMIN = the full ipoib, for `ipam list`
#   e2e.sh whereabouts CNI_DRIVER BINARY     # Debian's macvlan + our binary named `whereabouts`
#
# For conflists at 0.3.1, 0.4.0 and 1.0.0 and for both of Multus' CNI_ARGS shapes (thick, and
# thin with every key twice), ifname net1: ADD -> the interface and address exist in the netns
# -> CHECK (refused by libcni below 0.4.0) -> DEL -> nothing left (no interface, no child on the
# host, no reservation, no cache entry) -> DEL again succeeds. Modes ipoib and whereabouts also
# run GC and STATUS the way libcni 1.3 does (cni-driver gc/status). Exit 77 when not root or
# when network namespaces cannot be created.
set -euo pipefail

mode=${1:?usage: $0 debian|ipoib|whereabouts CNI_DRIVER [BINARY]}
driver=${2:?missing CNI_DRIVER}
binary=${3:-}
admin=${4:-}
[[ $mode == debian || -n $binary ]] || { echo "e2e: mode $mode needs BINARY" >&2; exit 2; }

debian_cni=${DEBIAN_CNI_DIR:-/usr/lib/cni}
if [[ $(id -u) -ne 0 ]]; then echo "e2e: SKIP: needs root"; exit 77; fi
for p in macvlan host-local; do
  [[ -x $debian_cni/$p ]] || { echo "e2e: SKIP: $debian_cni/$p missing (containernetworking-plugins)"; exit 77; }
done

tag=scripts$$
ns1=${tag}a ns2=${tag}b host_if=${tag}h peer_if=${tag}p
tmp=$(mktemp -d /tmp/scripts-e2e.XXXXXX)
store_dir=/var/lib/cni/ipoib-ipam   # ipoib::ipam::kDefaultStoreDir: the seed config names none
store_existed=no
[[ -e $store_dir ]] && store_existed=yes

cleanup() {
  set +e
  ip netns del "$ns1" 2>/dev/null
  ip netns del "$ns2" 2>/dev/null
  ip link del "$host_if" 2>/dev/null
  # Our store directory only when this run created it (ctest serialises users via RESOURCE_LOCK).
  if [[ $mode != debian && $store_existed == no ]]; then
    rm -rf "$store_dir"
    rmdir "$(dirname "$store_dir")" 2>/dev/null   # /var/lib/cni, when empty (it was created for us)
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if ! ip netns add "$ns1" 2>/dev/null || ! ip netns add "$ns2" 2>/dev/null; then
  echo "e2e: SKIP: cannot create network namespaces"; exit 77
fi
ip link add "$host_if" type veth peer name "$peer_if"
ip link set "$host_if" up
ip link set "$peer_if" up

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../support/checks.sh"  # expect, pass, bad, checks_done
json_get() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(eval(sys.argv[2])))' "$1" "$2"; }

# --- the plugin directory and the network under test ------------------------------------------
bin=$tmp/bin
mkdir -p "$bin"
net=jarvice-ipoib
case $mode in
  debian)
    ln -s "$debian_cni/macvlan" "$bin/macvlan"
    ln -s "$debian_cni/host-local" "$bin/host-local"
    net=scripts-e2e
    template='{"cniVersion":"@V@","type":"macvlan","name":"scripts-e2e","master":"@M@",
      "ipam":{"type":"host-local","subnet":"192.168.0.0/24","dataDir":"@D@"}}'
    ;;
  ipoib)
    cp "$binary" "$bin/ipoib"
    [[ -n $admin ]] && cp "$admin" "$tmp/ipoib-admin"
    # The seed's NetworkAttachmentDefinition config, verbatim apart from master (and cniVersion).
    template='{
  "cniVersion": "@V@",
  "type": "ipoib",
  "name": "jarvice-ipoib",
  "master": "@M@",
  "ipam": {
    "type": "whereabouts",
    "range": "192.168.0.0/24"
  }
}'
    ;;
  whereabouts)
    ln -s "$debian_cni/macvlan" "$bin/macvlan"
    cp "$binary" "$bin/ipoib"
    ln "$bin/ipoib" "$bin/whereabouts"
    ln "$bin/ipoib" "$tmp/ipoib-admin"
    template='{"cniVersion":"@V@","type":"macvlan","name":"jarvice-ipoib","master":"@M@",
      "ipam":{"type":"whereabouts","range":"192.168.0.0/24"}}'
    ;;
  *) echo "e2e: unknown mode $mode" >&2; exit 2 ;;
esac
write_conf() {  # write_conf VERSION FILE [TYPE-OVERRIDE]
  local t=${template//@V@/$1}
  t=${t//@M@/$host_if}
  t=${t//@D@/$tmp/host-local}
  [[ -n ${3:-} ]] && t=$(sed -E "0,/\"type\": *\"[a-z-]+\"/s//\"type\": \"$3\"/" <<<"$t")
  printf '%s\n' "$t" >"$2"
}

# Reservations, read back through the tool that owns them.
ipam_list_works=yes
reservations() {
  [[ $ipam_list_works == no ]] && { echo "__unavailable__"; return; }
  case $mode in
    debian) find "$tmp/host-local/$net" -type f ! -name lock ! -name 'last_reserved_ip.*' -printf '%f\n' 2>/dev/null || true ;;
    # Every object with an "ip" key in the listing, as "IP CONTAINER-ID" lines: exact matches,
    # not substrings of range bounds.
    *) "$tmp/ipoib-admin" ipam list --json 2>/dev/null | python3 -c '
import json, sys
def walk(v):
    if isinstance(v, dict):
        if isinstance(v.get("ip"), str):
            print(v["ip"].split("/")[0], v.get("container_id", v.get("containerID", "")))
        for x in v.values(): walk(x)
    elif isinstance(v, list):
        for x in v: walk(x)
walk(json.load(sys.stdin))' 2>/dev/null || echo "__unavailable__" ;;
  esac
}
if [[ $mode != debian ]] && ! "$tmp/ipoib-admin" ipam list --json >/dev/null 2>&1; then
  ipam_list_works=no
  echo "note: no working 'ipoib ipam list --json'; reservation checks rely on CHECK only"
fi
host_children() { ip -o link show | grep "@$host_if:" | grep -vc ": $peer_if@" || true; }

# --- ADD -> show -> CHECK -> DEL ---------------------------------------------------------------
# K8S_POD_NAME differs per container: whereabouts-style IPAM treats a second ADD of the same pod
# and ifname as the same attachment (re-ADD after a node reboot).
thick() { echo "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-$1;K8S_POD_INFRA_CONTAINER_ID=$1;K8S_POD_UID=0b9f0c1e-7a3c-4c2e-9a39-$2"; }
cycle() {  # cycle VERSION SHAPE
  local v=$1 shape=$2 cid=${tag}-$1-$2 conf=$tmp/$1.conf args
  write_conf "$v" "$conf"
  args=$(thick "$cid" 000000000001)
  [[ $shape == thin ]] && args="$args;$(thick "$cid" 000000000001 | sed 's/IgnoreUnknown=true/IgnoreUnknown=1/')"
  local d=("$driver" --conflist "$conf" --cni-path "$bin" --netns "/run/netns/$ns1"
           --container-id "$cid" --ifname net1 --args "$args" --cache-dir "$tmp/cache")
  local what="$mode $v $shape"

  if ! "${d[@]}" add >"$tmp/add.json" 2>"$tmp/add.err"; then
    bad "$what: ADD: $(cat "$tmp/add.err" "$tmp/add.json")"; return
  fi
  pass "$what: ADD"
  expect "$what: result cniVersion" test "$(json_get "$tmp/add.json" 'd["cniVersion"]')" = "\"$v\""
  expect "$what: result interface net1 in the sandbox" test "$(json_get "$tmp/add.json" \
    '[i["name"] for i in d["interfaces"] if i.get("sandbox")]')" = "[\"net1\"]"
  expect "$what: result sandbox is CNI_NETNS" test "$(json_get "$tmp/add.json" \
    '[i["sandbox"] for i in d["interfaces"] if i.get("sandbox")]')" = "[\"/run/netns/$ns1\"]"
  local addr
  addr=$(json_get "$tmp/add.json" 'd["ips"][0]["address"]' | tr -d '"')
  expect "$what: address $addr in 192.168.0.0/24" bash -c '[[ $0 == 192.168.0.*/24 ]]' "$addr"
  expect "$what: ips[0].interface indexes net1" test "$(json_get "$tmp/add.json" \
    'd["interfaces"][d["ips"][0]["interface"]]["name"]')" = '"net1"'
  if [[ $v == 1.0.0 ]]; then
    expect "$what: no ips[].version at 1.0.0" test "$(json_get "$tmp/add.json" '"version" in d["ips"][0]')" = false
  else
    expect "$what: ips[].version at $v" test "$(json_get "$tmp/add.json" 'd["ips"][0]["version"]')" = '"4"'
  fi
  # show
  echo "    netns $ns1: $(ip -n "$ns1" -o -4 addr show dev net1 2>&1 | awk '{print $2, $4}')"
  expect "$what: net1 has $addr in the netns" bash -c 'ip -n "$0" -o addr show dev net1 | grep -qF " $1 "' "$ns1" "$addr"
  expect "$what: reservation recorded" bash -c '[[ $2 == no ]] || grep -q "^${0%/*}\( \|$\)" <<<"$1"' "$addr" "$(reservations)" "$ipam_list_works"
  # CHECK
  if [[ $v == 0.3.1 ]]; then
    expect "$what: CHECK refused by libcni below 0.4.0" bash -c '! "$@" check 2>/dev/null' "${d[@]}"
  elif "${d[@]}" check >"$tmp/check.out" 2>&1; then
    pass "$what: CHECK"
  else
    bad "$what: CHECK: $(cat "$tmp/check.out")"
  fi
  # DEL
  if "${d[@]}" del >"$tmp/del.out" 2>&1; then pass "$what: DEL"; else bad "$what: DEL: $(cat "$tmp/del.out")"; fi
  expect "$what: no net1 in the netns after DEL" bash -c '! ip -n "$0" link show net1 >/dev/null 2>&1' "$ns1"
  expect "$what: no child of $host_if on the host after DEL" test "$(host_children)" = 0
  [[ $ipam_list_works == yes ]] &&
  expect "$what: no reservation after DEL" bash -c '! grep -q "^${0%/*}\( \|$\)" <<<"$1"' "$addr" "$(reservations)"
  expect "$what: no libcni cache entry after DEL" test ! -e "$tmp/cache/results/$net-$cid-net1"
  if "${d[@]}" del >"$tmp/del.out" 2>&1; then pass "$what: second DEL"; else bad "$what: second DEL: $(cat "$tmp/del.out")"; fi
}

for v in 0.3.1 0.4.0 1.0.0; do
  for shape in thick thin; do cycle "$v" "$shape"; done
done

# --- GC and STATUS, as libcni 1.3 sends them ----------------------------------------------------
if [[ $mode != debian ]]; then
  write_conf 1.0.0 "$tmp/gc10.conf"
  # GC/STATUS go to the binary that owns the reservations: the plugin itself, or in whereabouts
  # mode the IPAM as a delegating plugin would exec it (whole config on stdin).
  if [[ $mode == ipoib ]]; then write_conf 1.1.0 "$tmp/gc11.conf"; else write_conf 1.1.0 "$tmp/gc11.conf" whereabouts; fi
  gc_d() {  # gc_d CID NETNS VERB
    "$driver" --conflist "$tmp/gc10.conf" --cni-path "$bin" --netns "/run/netns/$2" --container-id "$1" \
      --ifname net1 --args "$(thick "$1" 000000000002)" --cache-dir "$tmp/cache" "$3"
  }
  keep=${tag}-gc-keep drop=${tag}-gc-drop
  if gc_d "$keep" "$ns1" add >"$tmp/keep.json" && gc_d "$drop" "$ns2" add >"$tmp/drop.json"; then
    keep_ip=$(json_get "$tmp/keep.json" 'd["ips"][0]["address"]' | tr -d '"'); keep_ip=${keep_ip%/*}
    drop_ip=$(json_get "$tmp/drop.json" 'd["ips"][0]["address"]' | tr -d '"'); drop_ip=${drop_ip%/*}
    gc=("$driver" --conflist "$tmp/gc11.conf" --cni-path "$bin" --cache-dir "$tmp/cache")

    expect "GC at 1.0.0 refused (1.1.0 verb)" bash -c '! "$0" --conflist "$1" --cni-path "$2" gc 2>/dev/null' \
      "$driver" "$tmp/gc10.conf" "$bin"
    out=$("${gc[@]}" --no-attachments gc 2>&1) && pass "GC without attachment keys: exit 0" || bad "GC without keys: $out"
    expect "GC without attachment keys: silent" test -z "$out"
    expect "GC without attachment keys destroys nothing: CHECK keep" gc_d "$keep" "$ns1" check
    expect "GC without attachment keys destroys nothing: CHECK drop" gc_d "$drop" "$ns2" check

    out=$("${gc[@]}" --valid-attachment "$keep/net1" gc 2>&1) && pass "GC keep-only: exit 0" || bad "GC keep-only: $out"
    expect "GC keep-only: silent" test -z "$out"
    expect "GC keep-only: listed attachment still passes CHECK" gc_d "$keep" "$ns1" check
    expect "GC keep-only: unlisted attachment fails CHECK (reservation released)" \
      bash -c '! "$0" "$1" "$2" check >/dev/null 2>&1' gc_d "$drop" "$ns2"
    if [[ $ipam_list_works == yes ]]; then
      list=$(reservations)
      expect "GC keep-only: $keep_ip still reserved" grep -q "^$keep_ip " <<<"$list"
      expect "GC keep-only: $drop_ip released" bash -c '! grep -q "^$0 " <<<"$1"' "$drop_ip" "$list"
    fi

    out=$("${gc[@]}" status 2>&1) && pass "STATUS: exit 0" || bad "STATUS: $out"
    expect "STATUS: silent" test -z "$out"
    expect "STATUS at 1.0.0 refused (1.1.0 verb)" \
      bash -c '! "$0" --conflist "$1" --cni-path "$2" status 2>/dev/null' "$driver" "$tmp/gc10.conf" "$bin"

    expect "DEL keep after GC" gc_d "$keep" "$ns1" del
    expect "DEL drop after GC (already released)" gc_d "$drop" "$ns2" del
    expect "after GC test: no child of $host_if on the host" test "$(host_children)" = 0
    expect "after GC test: no net1 left in either netns" \
      bash -c '! ip -n "$0" link show net1 2>/dev/null && ! ip -n "$1" link show net1 2>/dev/null' "$ns1" "$ns2"
    expect "after GC test: no reservation" \
      bash -c '[[ $0 == no ]] || ! grep -q "^192\.168\.0\." <<<"$1"' "$ipam_list_works" "$(reservations)"
  else
    bad "GC setup: ADD failed"
  fi
fi

checks_done "e2e $mode"
