#!/usr/bin/env bash
# Tests `ipoib install` (the C++ installer) and its wrapper scripts/install, into temporary roots
# (no privileges needed; nothing outside /tmp).
#
#   install-test.sh IPOIB     # IPOIB = the built ipoib executable
#
# install, idempotent re-install, atomicity under concurrent exec, whereabouts refusal and
# --force, uninstall (only what is ours), dry-run changes nothing, --fix-memlock dry-run and real,
# --conf, the flat file naming the store (0600, refused over a different one), `ipoib sleep`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ipoib=${1:?usage: install-test.sh IPOIB}
wrapper=$here/../../scripts/install
tmp=$(mktemp -d /tmp/scripts-install.XXXXXX)
loop_pid=
cleanup() { [[ -n $loop_pid ]] && kill "$loop_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../support/checks.sh"  # expect, pass, bad, checks_done
# tree DIR: every path with type, mode, link count and checksum — equal trees print equal text.
tree() { (cd "$1" && find . -printf '%p %y %m %n\n' | sort && find . -type f -exec md5sum {} + | sort); }

# Two different builds of ipoib: a copy, and the same with 8 MiB of padding (ELF loaders ignore
# trailing bytes), so every install rewrites the file and a non-atomic copy would be caught
# half-written. Each installs itself (/proc/self/exe).
bin_a=$tmp/ipoib-a bin_b=$tmp/ipoib-b
cp "$ipoib" "$bin_a"
cp "$bin_a" "$bin_b"; head -c 8388608 /dev/zero >>"$bin_b"
chmod 0755 "$bin_a" "$bin_b"
expect "padded build runs" bash -c '"$0" --version >/dev/null' "$bin_b"

root=$tmp/root
mkdir -p "$root"
dest=$root/opt/cni/bin

# --- install, idempotent ------------------------------------------------------------------------
"$bin_a" install --root "$root" >"$tmp/out1"
expect "install: ipoib in /opt/cni/bin" cmp -s "$bin_a" "$dest/ipoib"
expect "install: mode 0755" test "$(stat -c %a "$dest/ipoib")" = 755
expect "install: no temporary file left" test -z "$(find "$dest" -name '.*tmp*')"
expect "install: no whereabouts without --whereabouts" test ! -e "$dest/whereabouts"
before=$(tree "$root"); ino=$(stat -c %i "$dest/ipoib")
"$bin_a" install --root "$root" >"$tmp/out2"
expect "re-install: tree unchanged" test "$before" = "$(tree "$root")"
expect "re-install: same inode (nothing rewritten)" test "$ino" = "$(stat -c %i "$dest/ipoib")"
expect "re-install: says up to date" grep -q "up to date: $dest/ipoib" "$tmp/out2"
chmod 0700 "$dest/ipoib"
"$bin_a" install --root "$root" >/dev/null
expect "re-install repairs the mode" test "$(stat -c %a "$dest/ipoib")" = 755
expect_status "unknown option: usage error" 2 "$bin_a" install --root "$root" --bogus
expect_status "option without its value: usage error" 2 "$bin_a" install --root
expect_status "relative --bin-dir: usage error" 2 "$bin_a" install --root "$root" --bin-dir opt/cni
expect_status "missing --root directory: error" 1 "$bin_a" install --root "$tmp/nonexistent"
expect_fail "wrapper: missing --binary file: error" "$wrapper" --binary "$tmp/nonexistent" --root "$root"
r0=$tmp/root0; mkdir -p "$r0"
"$wrapper" --binary "$bin_a" --root "$r0" --bin-dir /opt/cni/bin >/dev/null
expect "wrapper: installs through ipoib install" cmp -s "$bin_a" "$r0/opt/cni/bin/ipoib"
cp /bin/true "$tmp/other-build"
"$bin_a" install --root "$r0" --source "$tmp/other-build" >/dev/null
expect "--source FILE: installs FILE instead of this executable" cmp -s "$tmp/other-build" "$r0/opt/cni/bin/ipoib"
"$bin_a" install --root "$r0" --source "$tmp/other-build" --uninstall >/dev/null
expect "--source FILE --uninstall: FILE's bytes are ours" test ! -e "$r0/opt/cni/bin/ipoib"

# --- concurrent exec during repeated installs ----------------------------------------------------
# A runtime exec'ing the plugin while it is replaced must never fail (ETXTBSY, ENOEXEC, a
# truncated binary): run it in a tight loop while installing a and b alternately.
(
  fails=0 runs=0
  while [[ ! -e $tmp/stop ]]; do
    if "$dest/ipoib" --version >/dev/null 2>"$tmp/exec.err"; then :; else fails=$((fails + 1)); cat "$tmp/exec.err" >>"$tmp/exec.errs"; fi
    runs=$((runs + 1))
    ((runs == 1000)) && touch "$tmp/enough"
  done
  echo "$runs $fails" >"$tmp/loop.result"
) &
loop_pid=$!
# At least 40 installs, and on until the loop has exec'd 1000 times (bounded).
install_fail=0 i=0
while ((i < 40)) || { [[ ! -e $tmp/enough ]] && ((i < 4000)); }; do
  i=$((i + 1))
  b=$bin_a; ((i % 2)) && b=$bin_b
  "$b" install --root "$root" >/dev/null 2>>"$tmp/install.errs" || install_fail=$((install_fail + 1))
done
touch "$tmp/stop"; wait "$loop_pid"; loop_pid=
read -r runs fails <"$tmp/loop.result"
echo "    concurrent: $runs execs during $i installs, $fails failed"
expect "concurrent: every install succeeded" test "$install_fail" = 0
expect "concurrent: the loop ran 1000 times" test "$runs" -ge 1000
expect "concurrent: no exec failed" test "$fails" = 0
expect "concurrent: no temporary file left" test -z "$(find "$dest" -name '.*tmp*')"
"$bin_a" install --root "$root" >/dev/null

# --- whereabouts ----------------------------------------------------------------------------------
"$bin_a" install --root "$root" --whereabouts >/dev/null
expect "whereabouts: hard link to ipoib" test "$dest/whereabouts" -ef "$dest/ipoib"
"$bin_b" install --root "$root" --whereabouts >/dev/null
expect "whereabouts: follows an upgraded ipoib" test "$dest/whereabouts" -ef "$dest/ipoib"
expect "whereabouts: upgraded content" cmp -s "$dest/whereabouts" "$bin_b"
"$bin_a" install --root "$root" >/dev/null
expect "whereabouts: kept in step by an install without --whereabouts" test "$dest/whereabouts" -ef "$dest/ipoib"
"$bin_b" install --root "$root" >/dev/null
# A foreign whereabouts (the upstream Go binary) is refused without --force.
rm -f "$dest/whereabouts"; printf '#!/bin/sh\necho upstream\n' >"$dest/whereabouts"; chmod 755 "$dest/whereabouts"
foreign=$(md5sum <"$dest/whereabouts")
expect_fail "whereabouts: foreign binary refused" "$bin_b" install --root "$root" --whereabouts
expect "whereabouts: foreign binary untouched after refusal" test "$foreign" = "$(md5sum <"$dest/whereabouts")"
"$bin_b" install --root "$root" --whereabouts --force >/dev/null
expect "whereabouts --force: replaced by ipoib" test "$dest/whereabouts" -ef "$dest/ipoib"
# A copy of ipoib (another filesystem, an older manual install) counts as ours.
rm -f "$dest/whereabouts"; cp "$bin_b" "$dest/whereabouts"
"$bin_b" install --root "$root" --whereabouts >/dev/null
expect "whereabouts: an identical copy is ours and becomes the link" test "$dest/whereabouts" -ef "$dest/ipoib"

# --- dry run --------------------------------------------------------------------------------------
before=$(tree "$root")
"$bin_a" install --root "$root" --whereabouts --conf --conf-src "$here/../../conf" \
  --fix-memlock --store-dir /shared/ipam --dry-run >"$tmp/dry"
expect "dry-run: tree unchanged" test "$before" = "$(tree "$root")"
expect "dry-run: says it would install ipoib" grep -q "would install $bin_a -> $dest/ipoib" "$tmp/dry"
expect "dry-run: shows the containerd drop-in" \
  grep -q "would write $root/etc/systemd/system/containerd.service.d/" "$tmp/dry"
expect "dry-run: shows LimitMEMLOCK=infinity" grep -q "LimitMEMLOCK=infinity" "$tmp/dry"
expect "dry-run: shows the flat file" grep -q "would write $root/etc/cni/net.d/whereabouts.d/whereabouts.conf (mode 0600)" "$tmp/dry"
"$bin_a" install --root "$root" --uninstall --whereabouts --conf --conf-src "$here/../../conf" --fix-memlock --dry-run >"$tmp/dry2"
expect "dry-run uninstall: tree unchanged" test "$before" = "$(tree "$root")"
expect "dry-run uninstall: says it would remove ipoib" grep -q "would remove $dest/ipoib" "$tmp/dry2"

# --- fix-memlock ----------------------------------------------------------------------------------
"$bin_a" install --root "$root" --fix-memlock >"$tmp/memlock"
for unit in containerd docker crio; do
  f=$root/etc/systemd/system/$unit.service.d/50-ipoib-cni-memlock.conf
  expect "fix-memlock: $unit drop-in written" test -f "$f"
  expect "fix-memlock: $unit drop-in sets LimitMEMLOCK=infinity in [Service]" \
    bash -c 'sed -n "/^\[Service\]/,\$p" "$0" | grep -qx "LimitMEMLOCK=infinity"' "$f"
done
expect "fix-memlock: no daemon-reload under --root" grep -q "not reloading systemd" "$tmp/memlock"
expect "fix-memlock: tells the admin to restart, never restarts" grep -q "systemctl restart containerd.service" "$tmp/memlock"
expect "fix-memlock: mentions docker's --default-ulimit" grep -q -- "--default-ulimit memlock=-1:-1" "$tmp/memlock"
before=$(tree "$root")
"$bin_a" install --root "$root" --fix-memlock >"$tmp/memlock2"
expect "fix-memlock again: tree unchanged" test "$before" = "$(tree "$root")"
expect "fix-memlock again: already in place" grep -q "already in place" "$tmp/memlock2"
r2=$tmp/root2; mkdir -p "$r2"
"$bin_a" install --root "$r2" --fix-memlock --runtime containerd >/dev/null
expect "fix-memlock --runtime containerd: only containerd" \
  test "$(cd "$r2/etc/systemd/system" && ls)" = "containerd.service.d"
expect_fail "fix-memlock --runtime bogus: error" "$bin_a" install --root "$r2" --fix-memlock --runtime bogus

# --- conf -----------------------------------------------------------------------------------------
"$bin_a" install --root "$root" --conf --conf-src "$here/../../conf" >/dev/null
cd_conf=$root/usr/local/share/ipoib-cni/conf
expect "conf: the seed NAD installed" cmp -s "$here/../../conf/nad/jarvice-ipoib.yaml" "$cd_conf/nad/jarvice-ipoib.yaml"
expect "conf: plain CNI configs installed" test -f "$cd_conf/cni/10-jarvice-ipoib.conf"
expect "conf: nothing written to /etc/cni/net.d" test ! -e "$root/etc/cni/net.d"

# --- uninstall ------------------------------------------------------------------------------------
"$bin_a" install --root "$root" --uninstall --whereabouts --conf --conf-src "$here/../../conf" --fix-memlock >/dev/null
expect "uninstall: ipoib removed" test ! -e "$dest/ipoib"
expect "uninstall: whereabouts (ours) removed" test ! -e "$dest/whereabouts"
expect "uninstall: drop-ins removed" test -z "$(find "$root/etc/systemd" -type f)"
expect "uninstall: examples removed" test ! -e "$cd_conf"
"$bin_a" install --root "$root" --uninstall >/dev/null
expect "uninstall again: succeeds" test $? = 0
printf '#!/bin/sh\n' >"$dest/whereabouts"; chmod 755 "$dest/whereabouts"
"$bin_a" install --root "$root" --uninstall --whereabouts >/dev/null
expect "uninstall: a foreign whereabouts is kept" test -f "$dest/whereabouts"

# --- uninstall removes only what is ours ---------------------------------------------------------
r3=$tmp/root3; d3=$r3/opt/cni/bin; mkdir -p "$d3"
printf '#!/bin/sh\necho mellanox\n' >"$d3/ipoib"; chmod 755 "$d3/ipoib"
printf 'other plugin\n' >"$d3/macvlan"
mkdir -p "$r3/etc/systemd/system/containerd.service.d"
printf '[Service]\nLimitMEMLOCK=1G\n' >"$r3/etc/systemd/system/containerd.service.d/50-ipoib-cni-memlock.conf"
before=$(tree "$r3")
"$bin_a" install --root "$r3" --uninstall --whereabouts --fix-memlock --runtime containerd >"$tmp/un3"
expect "uninstall: a foreign ipoib, a foreign drop-in and other plugins are untouched" test "$before" = "$(tree "$r3")"
expect "uninstall: says why the foreign ipoib is kept" grep -q "kept $d3/ipoib: it is not an ipoib-cni build" "$tmp/un3"
# An older build of ours (different bytes, same project marker) is ours.
cp "$bin_b" "$d3/ipoib"
"$bin_a" install --root "$r3" --uninstall >/dev/null
expect "uninstall: another build of ipoib (the project's marker) is ours" test ! -e "$d3/ipoib"
expect "uninstall: other plugins untouched" test -f "$d3/macvlan"
"$bin_a" install --root "$r3" --uninstall --fix-memlock --runtime containerd --force >/dev/null
expect "uninstall --force: removes the foreign drop-in" \
  test ! -e "$r3/etc/systemd/system/containerd.service.d/50-ipoib-cni-memlock.conf"

# --- the flat file naming the cluster store -------------------------------------------------------
r4=$tmp/root4; mkdir -p "$r4"; flat=$r4/etc/cni/net.d/whereabouts.d/whereabouts.conf
"$bin_a" install --root "$r4" --store-dir /shared/ipam --flat-file-only >/dev/null
expect "flat file: written" test -f "$flat"
expect "flat file: mode 0600" test "$(stat -c %a "$flat")" = 600
expect "flat file: only the flat file (--flat-file-only)" test ! -e "$r4/opt"
expect "flat file: names store_dir" python3 -c 'import json,sys; assert json.load(open(sys.argv[1])) == {"store_dir": "/shared/ipam"}' "$flat"
# The IPAM reads it: an ADD through the `whereabouts` name whose config points at the flat file
# (configuration_path) reserves in the store directory the flat file names.
fstore=$tmp/flat-store
"$bin_a" install --root "$r4" --store-dir "$fstore" --flat-file-only --force >/dev/null
ln "$bin_a" "$tmp/whereabouts"
printf '{"cniVersion":"1.0.0","name":"n","type":"whereabouts","ipam":{"type":"whereabouts","range":"10.9.0.0/24","configuration_path":"%s"}}' "$flat" >"$tmp/flat-net.conf"
CNI_COMMAND=ADD CNI_CONTAINERID=flat1 CNI_NETNS=/proc/self/ns/net CNI_IFNAME=net1 CNI_PATH=$tmp \
  "$tmp/whereabouts" <"$tmp/flat-net.conf" >"$tmp/flat-add.json" 2>&1 || true
expect "flat file: the IPAM allocates from the store it names" grep -q '"10.9.0.1/24"' "$tmp/flat-add.json"
expect "flat file: the reservation is in that store" bash -c '"$0" ipam list --store-dir "$1" | grep -q "10.9.0.1 .*flat1"' "$bin_a" "$fstore"
"$bin_a" install --root "$r4" --store-dir /shared/ipam --flat-file-only --force >/dev/null
before=$(tree "$r4")
"$bin_a" install --root "$r4" --store-dir /shared/ipam --flat-file-only >"$tmp/flat2"
expect "flat file: re-run is up to date" grep -q "up to date: $flat" "$tmp/flat2"
expect "flat file: re-run changes nothing" test "$before" = "$(tree "$r4")"
expect_status "flat file: a different existing one is refused" 1 \
  "$bin_a" install --root "$r4" --store-dir /other/ipam --flat-file-only
expect_fail "flat file: refused also with the binary install" "$bin_a" install --root "$r4" --store-dir /other/ipam
expect "flat file: the refusals changed nothing (no binary installed either)" test "$before" = "$(tree "$r4")"
"$bin_a" install --root "$r4" --etcd-endpoints https://10.0.0.1:2379,https://10.0.0.2:2379 \
  --etcd-ca-file /etc/ipoib/etcd/ca.crt --etcd-cert-file /etc/ipoib/etcd/tls.crt \
  --etcd-key-file /etc/ipoib/etcd/tls.key --flat-file-only --force --dry-run >"$tmp/flat-dry"
expect "flat file: --force --dry-run over a different one changes nothing" test "$before" = "$(tree "$r4")"
expect "flat file: --force --dry-run shows the new text" grep -q '"etcd_host": "https://10.0.0.1:2379,https://10.0.0.2:2379"' "$tmp/flat-dry"
"$bin_a" install --root "$r4" --etcd-endpoints https://10.0.0.1:2379,https://10.0.0.2:2379 \
  --etcd-ca-file /etc/ipoib/etcd/ca.crt --etcd-cert-file /etc/ipoib/etcd/tls.crt \
  --etcd-key-file /etc/ipoib/etcd/tls.key --flat-file-only --force >/dev/null
expect "flat file --force: etcd keys as whereabouts names them" python3 -c '
import json, sys
assert json.load(open(sys.argv[1])) == {"datastore": "etcd",
  "etcd_host": "https://10.0.0.1:2379,https://10.0.0.2:2379", "etcd_ca_cert_file": "/etc/ipoib/etcd/ca.crt",
  "etcd_cert_file": "/etc/ipoib/etcd/tls.crt", "etcd_key_file": "/etc/ipoib/etcd/tls.key"}' "$flat"
expect "flat file --force: still mode 0600" test "$(stat -c %a "$flat")" = 600
expect "flat file: no temporary file left" test -z "$(find "$r4" -name '.*tmp*')"
expect_status "flat file: --store-dir with --etcd-endpoints is a usage error" 2 \
  "$bin_a" install --root "$r4" --store-dir /a --etcd-endpoints http://h:2379
expect_status "flat file: a non-URL endpoint is a usage error" 2 \
  "$bin_a" install --root "$r4" --etcd-endpoints 10.0.0.1:2379
"$bin_a" install --root "$r4" --store-dir /shared/ipam --flat-file-only --uninstall >/dev/null
expect "flat file: uninstall keeps one these options did not write" test -f "$flat"
"$bin_a" install --root "$r4" --etcd-endpoints https://10.0.0.1:2379,https://10.0.0.2:2379 \
  --etcd-ca-file /etc/ipoib/etcd/ca.crt --etcd-cert-file /etc/ipoib/etcd/tls.crt \
  --etcd-key-file /etc/ipoib/etcd/tls.key --flat-file-only --uninstall >/dev/null
expect "flat file: uninstall removes the one these options wrote" test ! -e "$flat"

# --- etcd client certificates from a mounted Secret ----------------------------------------------
# A Secret volume as the kubelet lays it out: the names are symlinks into a timestamped directory.
secret=$tmp/secret; mkdir -p "$secret/..2026_12_01_00_00_00.1"
ln -s ..2026_12_01_00_00_00.1 "$secret/..data"
for f in ca.crt tls.crt tls.key; do
  echo "test $f" >"$secret/..data/$f"; ln -s "..data/$f" "$secret/$f"
done
r5=$tmp/root5; mkdir -p "$r5"; flat5=$r5/etc/cni/net.d/whereabouts.d/whereabouts.conf
etcd_args=(--etcd-endpoints https://10.0.0.1:2379 --etcd-tls-dir "$secret" --flat-file-only)
# A Secret at Kubernetes' default mode 0644: the key is refused (the etcd client's rule), nothing
# is written; at defaultMode 0600 it is copied.
chmod 0644 "$secret/..data/"*
"$bin_a" install --root "$r5" "${etcd_args[@]}" >"$tmp/tls-0644" 2>&1 || true
expect "etcd tls: a key others can read is refused, naming defaultMode" grep -q "tls.key.*defaultMode: 0600" "$tmp/tls-0644"
expect "etcd tls: the refusal wrote nothing" test ! -e "$r5/etc"
chmod 0600 "$secret/..data/"*
"$bin_a" install --root "$r5" "${etcd_args[@]}" >/dev/null
for f in ca.crt tls.crt tls.key; do
  copy=$r5/etc/cni/net.d/whereabouts.d/etcd/$f
  expect "etcd tls: $f copied to the node" cmp -s "$secret/$f" "$copy"
  expect "etcd tls: $f mode 0600" test "$(stat -c %a "$copy" 2>/dev/null)" = 600
done
expect "etcd tls: the flat file names the node's copies" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
base = "/etc/cni/net.d/whereabouts.d/etcd/"
assert (d["etcd_ca_cert_file"], d["etcd_cert_file"], d["etcd_key_file"]) == (base + "ca.crt", base + "tls.crt", base + "tls.key"), d' "$flat5"
before=$(tree "$r5")
"$bin_a" install --root "$r5" "${etcd_args[@]}" >/dev/null
expect "etcd tls: re-run changes nothing" test "$before" = "$(tree "$r5")"
echo rotated >"$secret/..data/tls.crt"
"$bin_a" install --root "$r5" "${etcd_args[@]}" >/dev/null
expect "etcd tls: a rotated certificate is copied again" cmp -s "$secret/tls.crt" "$r5/etc/cni/net.d/whereabouts.d/etcd/tls.crt"
expect_status "etcd tls: with --etcd-cert-file is a usage error" 2 "$bin_a" install --root "$r5" "${etcd_args[@]}" --etcd-cert-file /x
rm "$secret/tls.key"
expect_status "etcd tls: tls.crt without tls.key is refused" 1 "$bin_a" install --root "$r5" "${etcd_args[@]}"
ln -s ..data/tls.key "$secret/tls.key"
"$bin_a" install --root "$r5" "${etcd_args[@]}" --uninstall >/dev/null
expect "etcd tls: uninstall removes the copies and the flat file" test -z "$(find "$r5/etc/cni/net.d/whereabouts.d" -type f)"

# --- ipoib sleep (the DaemonSet's main container) ------------------------------------------------
"$bin_a" sleep & sleep_pid=$!
sleep 0.2
expect "sleep: still running" kill -0 "$sleep_pid"
kill -TERM "$sleep_pid"; rc=0; wait "$sleep_pid" || rc=$?
expect "sleep: SIGTERM ends it with status 0 (got $rc)" test "$rc" = 0

checks_done install-test
