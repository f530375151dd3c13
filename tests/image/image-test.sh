#!/usr/bin/env bash
# Builds conf/Containerfile from the built binary with podman (test-local storage, no registry),
# runs the image to install into a temporary host root, checks the result, prints the image size
# and removes everything.
#
#   image-test.sh IPOIB CONTAINERFILE [DAEMONSET]
#
# With DAEMONSET (conf/deploy/daemonset.yaml), its init and main containers' args run in the
# image as the DaemonSet runs them: read-only root filesystem, their users, their mounts.
#
# Exit 77 (with the reason) only when podman cannot run a container here at all (probed with
# Debian's busybox-static, so a broken image FAILs rather than skips).
set -euo pipefail

ipoib=${1:?usage: image-test.sh IPOIB CONTAINERFILE}
containerfile=${2:?missing CONTAINERFILE}
daemonset=${3:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../podman/podman-env.sh
source "$here/../podman/podman-env.sh"

tmp=$(mktemp -d /tmp/image-test.XXXXXX)
tag=localhost/ipoib-cni-test:$$
cleanup() { set +e; pm_teardown; rm -rf "$tmp"; }
trap cleanup EXIT

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../support/checks.sh"  # expect, pass, bad, checks_done

if ldd "$ipoib" >/dev/null 2>&1; then
  echo "FAIL - $ipoib is a dynamic executable: the FROM scratch image cannot run it"; exit 1
fi
pm_setup "$tmp"
pm_import_busybox localhost/busybox-probe:$$
pm_pick_runtime localhost/busybox-probe:$$ /bin/true
"${pm[@]}" rmi localhost/busybox-probe:$$ >/dev/null

# --- build: the context is a directory holding only the binary ---------------------------------
ctx=$tmp/context
mkdir -p "$ctx"
cp "$ipoib" "$ctx/ipoib"
if ! "${pm[@]}" build --quiet --network none -f "$containerfile" -t "$tag" "$ctx" >"$tmp/build.out" 2>&1; then
  cat "$tmp/build.out"; echo "FAIL - podman build"; exit 1
fi
pass "podman build from the local binary"
size=$("${pm[@]}" image inspect --format '{{.Size}}' "$tag")
echo "    image size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB); binary: $(stat -c %s "$ipoib") bytes"
expect "image: one layer" test "$("${pm[@]}" image inspect --format '{{len .RootFS.Layers}}' "$tag")" = 1
"${pm[@]}" create --name "ipoib-image-test-$$" "$tag" >/dev/null
files=$("${pm[@]}" export "ipoib-image-test-$$" | tar -t | grep -v '/$' | sort | tr '\n' ' ')
"${pm[@]}" rm "ipoib-image-test-$$" >/dev/null
expect "image: holds only the binary (got: $files)" test "$files" = "ipoib "
expect "image: entrypoint is the binary" test "$("${pm[@]}" image inspect --format '{{json .Config.Entrypoint}}' "$tag")" = '["/ipoib"]'

# --- run: install into a temporary host root (the DaemonSet's init container) --------------------
host=$tmp/host
mkdir -p "$host/opt/cni/bin" "$host/etc/cni/net.d"
run() { "${pm[@]}" run --rm --network none "$@"; }
run -v "$host/opt/cni/bin:/host/opt/cni/bin" "$tag" >"$tmp/run1" 2>&1 || { cat "$tmp/run1"; bad "run: default command"; }
cat "$tmp/run1"
installed=$host/opt/cni/bin/ipoib
expect "run: the default command (install --root /host) installed ipoib" test -f "$installed"
expect "run: same bytes as the built binary" cmp -s "$ipoib" "$installed"
expect "run: mode 0755" test "$(stat -c %a "$installed")" = 755
expect "run: no temporary file left" test -z "$(find "$host" -name '.*tmp*')"
want=$("$ipoib" --version | head -1)
expect "installed binary answers CNI VERSION" bash -c 'CNI_COMMAND=VERSION "$0" </dev/null | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert \"1.0.0\" in d[\"supportedVersions\"], d"' "$installed"
expect "installed binary's --version is the build's" test "$("$installed" --version | head -1)" = "$want"
run -v "$host/opt/cni/bin:/host/opt/cni/bin" "$tag" >"$tmp/run2" 2>&1 || true
expect "run again: up to date" grep -q "up to date: /host/opt/cni/bin/ipoib" "$tmp/run2"
run -v "$host/opt/cni/bin:/host/opt/cni/bin" -v "$host/etc/cni/net.d:/host/etc/cni/net.d" "$tag" \
  install --root /host --whereabouts --store-dir /shared/ipam >"$tmp/run3" 2>&1 || { cat "$tmp/run3"; bad "run: install --whereabouts --store-dir"; }
expect "run: whereabouts is a hard link to ipoib" test "$host/opt/cni/bin/whereabouts" -ef "$installed"
flat=$host/etc/cni/net.d/whereabouts.d/whereabouts.conf
expect "run: the flat file, mode 0600" test "$(stat -c %a "$flat" 2>/dev/null)" = 600
expect "run: the flat file names the store" grep -q '"store_dir": "/shared/ipam"' "$flat"

# --- the main container: `ipoib sleep` stops promptly on SIGTERM, as PID 1 ------------------------
name=ipoib-sleep-$$
"${pm[@]}" run -d --name "$name" --network none "$tag" sleep >/dev/null
start=$(date +%s)
"${pm[@]}" stop -t 20 "$name" >/dev/null
elapsed=$(( $(date +%s) - start ))
code=$("${pm[@]}" inspect --format '{{.State.ExitCode}}' "$name")
"${pm[@]}" rm "$name" >/dev/null
expect "sleep: stopped by SIGTERM, not killed after the grace period (${elapsed}s)" test "$elapsed" -lt 15
expect "sleep: exit status 0 (got $code)" test "$code" = 0

# --- the DaemonSet's containers, as it specifies them ----------------------------------------------
if [[ -n $daemonset ]]; then
  # One line per container: NAME, USER, ARGS (JSON), then the mount paths.
  python3 - "$daemonset" >"$tmp/ds" <<'PY'
import json, sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))["spec"]["template"]["spec"]
assert spec.get("automountServiceAccountToken") is False, "the service account token is mounted"
vols = {v["name"]: v for v in spec.get("volumes", [])}
for c in spec.get("initContainers", []) + spec["containers"]:
    sc = c.get("securityContext", {})
    # hostPath volumes as HOSTPATH:MOUNT; a Secret as secret=MODE:MOUNT (MODE its defaultMode).
    mounts = [(vols[m["name"]]["hostPath"]["path"] if "hostPath" in vols[m["name"]]
               else "secret=%o" % vols[m["name"]]["secret"].get("defaultMode", 0o644))
              + ":" + m["mountPath"] for m in c.get("volumeMounts", [])]
    print(c["name"], sc.get("runAsUser", 0), json.dumps(c.get("args", []), separators=(",", ":")), " ".join(mounts))
PY
  expect "daemonset: parsed, no service account token" test -s "$tmp/ds"
  ds_host=$tmp/ds-host
  while read -r cname user args mounts; do
    vols=()
    for m in $mounts; do
      if [[ $m == secret=* ]]; then
        # The Secret as the kubelet would project it: the client's files at its defaultMode.
        secret=$tmp/secret-$cname
        mkdir -p "$secret"
        for f in ca.crt tls.crt tls.key; do echo "test $f" >"$secret/$f"; done
        mode=${m%%:*}
        chmod "${mode#secret=}" "$secret"/*
        vols+=(-v "$secret:${m#*:}:ro")
        continue
      fi
      mkdir -p "$ds_host${m%%:*}"
      vols+=(-v "$ds_host${m%%:*}:${m#*:}")
    done
    mapfile -t argv < <(python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$args")
    if [[ ${argv[0]:-} == sleep ]]; then
      "${pm[@]}" run -d --name "ipoib-ds-$$-$cname" --network none --read-only --user "$user" --cap-drop all \
        "${vols[@]}" "$tag" "${argv[@]}" >/dev/null
      sleep 0.5
      state=$("${pm[@]}" inspect --format '{{.State.Status}}' "ipoib-ds-$$-$cname")
      "${pm[@]}" stop -t 10 "ipoib-ds-$$-$cname" >/dev/null
      code=$("${pm[@]}" inspect --format '{{.State.ExitCode}}' "ipoib-ds-$$-$cname")
      "${pm[@]}" rm "ipoib-ds-$$-$cname" >/dev/null
      expect "daemonset $cname: runs as user $user (state $state), stops with 0 (got $code)" \
        test "$state:$code" = "running:0"
    else
      out=$("${pm[@]}" run --rm --network none --read-only --user "$user" "${vols[@]}" "$tag" "${argv[@]}" 2>&1) || bad "daemonset $cname: $out"
      expect "daemonset $cname: installed ipoib through its mounts" cmp -s "$ipoib" "$ds_host/opt/cni/bin/ipoib"
      flat=$ds_host/etc/cni/net.d/whereabouts.d/whereabouts.conf
      if [[ " ${argv[*]} " == *" --etcd-endpoints="* ]]; then
        expect "daemonset $cname: the flat file names etcd and the Secret's copies" \
          python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not (d["datastore"] == "etcd" and d["etcd_key_file"] == "/etc/cni/net.d/whereabouts.d/etcd/tls.key"))' "$flat"
        expect "daemonset $cname: the key copied to the node, mode 0600" \
          test "$(stat -c %a "$ds_host/etc/cni/net.d/whereabouts.d/etcd/tls.key")" = 600
      fi
    fi
  done <"$tmp/ds"
fi

"${pm[@]}" rmi "$tag" >/dev/null
expect "image removed" bash -c '! "$@" image exists "'"$tag"'"' _ "${pm[@]}"
checks_done image-test
