#!/usr/bin/env bash
# Checks that cni-driver invokes plugins with the shape real runtimes use, against
# record-plugin (no privileges, no namespaces: libcni 1.1.2 does not open the netns itself).
#
#   driver-harness.sh CNI_DRIVER
#
# ADD/CHECK/DEL: Multus' CNI_ARGS (thin mode, duplicated keys) passed through verbatim, the
# list's name/cniVersion injected, runtimeConfig filtered by declared capabilities, the cached
# ADD result as CHECK's and DEL's prevResult. GC/STATUS: as libcni 1.3 sends them — the other
# five CNI_* variables present and empty, both attachment keys. The cnitool personality reads
# NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS and CAP_ARGS.
set -euo pipefail

driver=${1:?usage: $0 CNI_DRIVER}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d /tmp/scripts-harness.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../support/checks.sh"  # expect, pass, bad, checks_done

mkdir -p "$tmp/bin" "$tmp/rec" "$tmp/cache" "$tmp/net.d"
cp "$here/record-plugin" "$tmp/bin/recorder"
export RECORD_DIR=$tmp/rec

cat >"$tmp/net.conflist" <<'JSON'
{ "cniVersion": "1.0.0", "name": "harness-net",
  "plugins": [ { "type": "recorder", "capabilities": {"mac": true},
                 "someKey": "kept" } ] }
JSON
sed 's/"1.0.0"/"1.1.0"/' "$tmp/net.conflist" >"$tmp/net11.conflist"

thin='IgnoreUnknown=true;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=cid1;K8S_POD_UID=uid1;IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=cid1;K8S_POD_UID=uid1'
common=(--conflist "$tmp/net.conflist" --cni-path "$tmp/bin" --netns /run/netns/harness
        --container-id cid1 --ifname net1 --args "$thin" --cache-dir "$tmp/cache"
        --cap-args '{"mac":"02:11:22:33:44:55","portMappings":[]}')

# env_of FILE VAR -> "set VALUE" or "unset"
env_of() { sed -n "s/^$2 //p" "$1"; }
# json_get FILE PYTHON-EXPR(d) -> prints the expression's value as JSON
json_get() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(eval(sys.argv[2])))' "$1" "$2"; }
last() { ls "$RECORD_DIR"/*-"$1".stdin | tail -n1 | sed 's/\.stdin$//'; }

# --- ADD ---------------------------------------------------------------------------------------
"$driver" "${common[@]}" add >"$tmp/add.out"
a=$(last ADD)
expect "ADD: CNI_COMMAND" test "$(env_of "$a.env" CNI_COMMAND)" = "set ADD"
expect "ADD: CNI_CONTAINERID" test "$(env_of "$a.env" CNI_CONTAINERID)" = "set cid1"
expect "ADD: CNI_NETNS" test "$(env_of "$a.env" CNI_NETNS)" = "set /run/netns/harness"
expect "ADD: CNI_IFNAME" test "$(env_of "$a.env" CNI_IFNAME)" = "set net1"
expect "ADD: CNI_ARGS verbatim, duplicated keys kept" test "$(env_of "$a.env" CNI_ARGS)" = "set $thin"
expect "ADD: CNI_PATH" test "$(env_of "$a.env" CNI_PATH)" = "set $tmp/bin"
expect "ADD: name injected" test "$(json_get "$a.stdin" 'd["name"]')" = '"harness-net"'
expect "ADD: cniVersion injected" test "$(json_get "$a.stdin" 'd["cniVersion"]')" = '"1.0.0"'
expect "ADD: plugin keys kept" test "$(json_get "$a.stdin" 'd["someKey"]')" = '"kept"'
expect "ADD: runtimeConfig has declared capabilities only" \
  test "$(json_get "$a.stdin" 'd["runtimeConfig"]')" = '{"mac": "02:11:22:33:44:55"}'
expect "ADD: no prevResult on the first plugin" test "$(json_get "$a.stdin" '"prevResult" in d')" = false
expect "ADD: result printed" test "$(json_get "$tmp/add.out" 'd["ips"][0]["address"]')" = '"10.99.0.2/24"'
expect "ADD: result cached" test -f "$tmp/cache/results/harness-net-cid1-net1"
"$driver" "${common[@]}" cached >"$tmp/cached.out"
expect "cached: prints the cached result" test "$(json_get "$tmp/cached.out" 'd["interfaces"][0]["name"]')" = '"net1"'

# --- CHECK -------------------------------------------------------------------------------------
"$driver" "${common[@]}" check >"$tmp/check.out"
c=$(last CHECK)
expect "CHECK: silent on success" test ! -s "$tmp/check.out"
expect "CHECK: prevResult is the cached ADD result" \
  test "$(json_get "$c.stdin" 'd["prevResult"]["ips"][0]["address"]')" = '"10.99.0.2/24"'
expect "CHECK: CNI_ARGS verbatim" test "$(env_of "$c.env" CNI_ARGS)" = "set $thin"

# --- DEL ---------------------------------------------------------------------------------------
"$driver" "${common[@]}" del
d=$(last DEL)
expect "DEL: prevResult is the cached ADD result" \
  test "$(json_get "$d.stdin" 'd["prevResult"]["interfaces"][0]["sandbox"]')" = '"/run/netns/harness"'
expect "DEL: cache entry removed" test ! -e "$tmp/cache/results/harness-net-cid1-net1"

# --- GC ----------------------------------------------------------------------------------------
gc=(--conflist "$tmp/net11.conflist" --cni-path "$tmp/bin" --cache-dir "$tmp/cache")
"$driver" "${gc[@]}" --valid-attachment cidA/net1 --valid-attachment cidB/eth0 gc >"$tmp/gc.out"
g=$(last GC)
expect "GC: silent on success" test ! -s "$tmp/gc.out"
expect "GC: CNI_COMMAND" test "$(env_of "$g.env" CNI_COMMAND)" = "set GC"
for v in CNI_CONTAINERID CNI_NETNS CNI_IFNAME CNI_ARGS; do
  expect "GC: $v present and empty" test "$(env_of "$g.env" "$v")" = "set "
done
expect "GC: CNI_PATH" test "$(env_of "$g.env" CNI_PATH)" = "set $tmp/bin"
want='[{"containerID": "cidA", "ifname": "net1"}, {"containerID": "cidB", "ifname": "eth0"}]'
expect "GC: cni.dev/valid-attachments" test "$(json_get "$g.stdin" 'd["cni.dev/valid-attachments"]')" = "$want"
expect "GC: legacy cni.dev/attachments" test "$(json_get "$g.stdin" 'd["cni.dev/attachments"]')" = "$want"
expect "GC: no runtimeConfig, no prevResult" \
  test "$(json_get "$g.stdin" '"runtimeConfig" in d or "prevResult" in d')" = false
"$driver" "${gc[@]}" gc
g=$(last GC)
expect "GC: empty list sent as []" test "$(json_get "$g.stdin" 'd["cni.dev/valid-attachments"]')" = '[]'
"$driver" "${gc[@]}" --no-attachments gc
g=$(last GC)
expect "GC --no-attachments: neither key" \
  test "$(json_get "$g.stdin" '"cni.dev/valid-attachments" in d or "cni.dev/attachments" in d')" = false
expect "GC at 1.0.0: refused like libcni 1.3" \
  bash -c '! "$0" --conflist "$1" --cni-path "$2" gc 2>/dev/null' "$driver" "$tmp/net.conflist" "$tmp/bin"

python3 - "$tmp/net.conflist" "$tmp/negotiated.conflist" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d["cniVersions"] = ["0.4.0", "1.1.0", "1.0.0"]
json.dump(d, open(sys.argv[2], "w"))
PY
"$driver" --conflist "$tmp/negotiated.conflist" --cni-path "$tmp/bin" gc
expect "GC: cniVersion negotiated from cniVersions like libcni 1.3" \
  test "$(json_get "$(last GC).stdin" 'd["cniVersion"]')" = '"1.1.0"'

# --- GC --gc-cached-del: libcni 1.3's first phase ----------------------------------------------
for cid in keep drop; do
  "$driver" "${common[@]/cid1/$cid}" --container-id "$cid" add >/dev/null
done
"$driver" "${gc[@]}" --gc-cached-del --valid-attachment keep/net1 gc
d=$(last DEL)
expect "GC --gc-cached-del: DEL of the unlisted cached attachment" \
  test "$(env_of "$d.env" CNI_CONTAINERID)" = "set drop"
expect "GC --gc-cached-del: listed attachment kept in the cache" test -f "$tmp/cache/results/harness-net-keep-net1"
expect "GC --gc-cached-del: unlisted attachment gone from the cache" \
  test ! -e "$tmp/cache/results/harness-net-drop-net1"

# --- STATUS ------------------------------------------------------------------------------------
"$driver" --conflist "$tmp/net11.conflist" --cni-path "$tmp/bin" status >"$tmp/status.out"
s=$(last STATUS)
expect "STATUS: silent on success" test ! -s "$tmp/status.out"
expect "STATUS: CNI_COMMAND" test "$(env_of "$s.env" CNI_COMMAND)" = "set STATUS"
for v in CNI_CONTAINERID CNI_NETNS CNI_IFNAME CNI_ARGS; do
  expect "STATUS: $v present and empty" test "$(env_of "$s.env" "$v")" = "set "
done
rc=0
RECORD_STATUS_CODE=50 "$driver" --conflist "$tmp/net11.conflist" --cni-path "$tmp/bin" status \
  >"$tmp/status50.out" 2>/dev/null || rc=$?
expect "STATUS failure: exit 1" test "$rc" = 1
expect "STATUS failure: the plugin's code 50 on stdout" test "$(json_get "$tmp/status50.out" 'd["code"]')" = 50

# --- cnitool personality -----------------------------------------------------------------------
ln -f "$driver" "$tmp/cnitool"
cp "$tmp/net.conflist" "$tmp/net.d/10-harness.conflist"
NETCONFPATH=$tmp/net.d CNI_PATH=$tmp/bin CNI_IFNAME=net7 CNI_ARGS='IgnoreUnknown=1;K8S_POD_NAME=p' \
  CAP_ARGS='{"mac":"02:aa:bb:cc:dd:ee"}' CNI_CACHE_DIR=$tmp/cache \
  "$tmp/cnitool" add harness-net /run/netns/tool >"$tmp/tool.out"
a=$(last ADD)
expect "cnitool add: CNI_IFNAME from the environment" test "$(env_of "$a.env" CNI_IFNAME)" = "set net7"
expect "cnitool add: CNI_ARGS from the environment" test "$(env_of "$a.env" CNI_ARGS)" = "set IgnoreUnknown=1;K8S_POD_NAME=p"
expect "cnitool add: CAP_ARGS become runtimeConfig" \
  test "$(json_get "$a.stdin" 'd["runtimeConfig"]["mac"]')" = '"02:aa:bb:cc:dd:ee"'
expect "cnitool add: container ID derived from the netns path" \
  bash -c '[[ $(sed -n "s/^CNI_CONTAINERID set //p" "$0") == cnitool-* ]]' "$a.env"
NETCONFPATH=$tmp/net.d CNI_PATH=$tmp/bin CNI_IFNAME=net7 CNI_CACHE_DIR=$tmp/cache \
  "$tmp/cnitool" del harness-net /run/netns/tool
expect "cnitool del: DEL sent" test "$(env_of "$(last DEL).env" CNI_IFNAME)" = "set net7"

checks_done driver-harness
