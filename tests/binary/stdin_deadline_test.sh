#!/usr/bin/env bash
# A runtime that never closes stdin does not hang the plugin (cni::kStdinDeadlineMs, 30 s):
# ADD ends with a CNI error (code 5) naming stdin, VERSION answers with the latest version.
# The writer is this shell, holding the FIFO open read-write on fd 3 and never writing.
# Usage: stdin_deadline_test.sh <path-to-ipoib>
set -euo pipefail
bin=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v jq >/dev/null || { echo "SKIP: jq is not installed"; exit 77; }
dir=$(mktemp -d /tmp/ipoib-stdin-deadline-XXXXXX)
trap 'exec 3>&-; rm -rf "$dir"' EXIT
mkfifo "$dir/stdin"
exec 3<>"$dir/stdin"  # an open writer: the plugin's reads never see end of file
printf '{"cniVersion":"1.0.0","name":"n","type":"whereabouts"' >&3  # and an unfinished config

env_common=(CNI_CONTAINERID=deadline-$$ CNI_NETNS=/proc/self/ns/net CNI_IFNAME=net1
            CNI_PATH=/nonexistent)
start=$SECONDS
env -i CNI_COMMAND=ADD "${env_common[@]}" timeout 60 "$bin" <"$dir/stdin" >"$dir/add.out" 3>&- &
add_pid=$!
env -i CNI_COMMAND=VERSION "${env_common[@]}" timeout 60 "$bin" <"$dir/stdin" >"$dir/ver.out" 3>&- &
ver_pid=$!
add_rc=0; wait "$add_pid" || add_rc=$?
ver_rc=0; wait "$ver_pid" || ver_rc=$?
elapsed=$((SECONDS - start))
echo "ADD exit $add_rc: $(cat "$dir/add.out")"
echo "VERSION exit $ver_rc: $(cat "$dir/ver.out")"
echo "both returned after ${elapsed} s"

[[ $add_rc -ne 124 && $ver_rc -ne 124 ]] || fail "a plugin hung until timeout(1) killed it"
[[ $add_rc -eq 1 ]] || fail "ADD exit $add_rc, expected 1"
[[ $(jq -r .code "$dir/add.out") == 5 ]] || fail "ADD error code is not 5"
jq -r .msg "$dir/add.out" | grep -q "stdin was not closed within 30 s" || fail "ADD msg does not name stdin"
[[ $ver_rc -eq 0 ]] || fail "VERSION exit $ver_rc, expected 0"
[[ $(jq -r .cniVersion "$dir/ver.out") == 1.1.0 ]] || fail "VERSION did not answer the latest version"
# The deadline is the documented 30 s, not shorter (a slow runtime must still be served).
[[ $elapsed -ge 29 ]] || fail "returned after ${elapsed} s, before the 30 s deadline"
echo "ok"
