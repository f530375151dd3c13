#!/usr/bin/env bash
# Tests scripts/install into temporary roots (no privileges needed; nothing outside /tmp).
#
#   install-test.sh [BINARY]     # BINARY defaults to a stand-in built from /bin/true
#
# install, idempotent re-install, atomicity under concurrent exec, whereabouts refusal and
# --force, uninstall, dry-run changes nothing, --fix-memlock dry-run and real, --conf.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
install=$here/../../scripts/install
tmp=$(mktemp -d /tmp/scripts-install.XXXXXX)
loop_pid=
cleanup() { [[ -n $loop_pid ]] && kill "$loop_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

failures=0
pass() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; failures=$((failures + 1)); }
expect() { local what=$1; shift; if "$@"; then pass "$what"; else bad "$what"; fi; }
expect_fail() { local what=$1; shift; if "$@" >/dev/null 2>&1; then bad "$what"; else pass "$what"; fi; }
# tree DIR: every path with type, mode, link count and checksum — equal trees print equal text.
tree() { (cd "$1" && find . -printf '%p %y %m %n\n' | sort && find . -type f -exec md5sum {} + | sort); }

# Two different executables that both exit 0: the real binary (or /bin/true) and the same with
# 8 MiB of padding (ELF loaders ignore trailing bytes), so every install rewrites the file and a
# non-atomic copy would be caught half-written.
bin_a=$tmp/ipoib-a bin_b=$tmp/ipoib-b
cp "${1:-/bin/true}" "$bin_a"
cp "$bin_a" "$bin_b"; head -c 8388608 /dev/zero >>"$bin_b"
chmod 0755 "$bin_a" "$bin_b"
run_ok() { if [[ ${1:-} == --version || -z ${2:-} ]]; then "$@" >/dev/null 2>&1; else "$@"; fi; }

root=$tmp/root
mkdir -p "$root"
dest=$root/opt/cni/bin

# --- install, idempotent ------------------------------------------------------------------------
"$install" --binary "$bin_a" --root "$root" >"$tmp/out1"
expect "install: ipoib in /opt/cni/bin" cmp -s "$bin_a" "$dest/ipoib"
expect "install: mode 0755" test "$(stat -c %a "$dest/ipoib")" = 755
expect "install: no temporary file left" test -z "$(find "$dest" -name '.*tmp*')"
expect "install: no whereabouts without --whereabouts" test ! -e "$dest/whereabouts"
before=$(tree "$root"); ino=$(stat -c %i "$dest/ipoib")
"$install" --binary "$bin_a" --root "$root" >"$tmp/out2"
expect "re-install: tree unchanged" test "$before" = "$(tree "$root")"
expect "re-install: same inode (nothing rewritten)" test "$ino" = "$(stat -c %i "$dest/ipoib")"
expect "re-install: says up to date" grep -q "up to date: $dest/ipoib" "$tmp/out2"
chmod 0700 "$dest/ipoib"
"$install" --binary "$bin_a" --root "$root" >/dev/null
expect "re-install repairs the mode" test "$(stat -c %a "$dest/ipoib")" = 755
expect_fail "missing --binary file: error" "$install" --binary "$tmp/nonexistent" --root "$root"
expect_fail "unknown option: error" "$install" --root "$root" --bogus

# --- concurrent exec during repeated installs ----------------------------------------------------
# A runtime exec'ing the plugin while it is replaced must never fail (ETXTBSY, ENOEXEC, a
# truncated binary): run it in a tight loop while installing a and b alternately.
(
  fails=0 runs=0
  while [[ ! -e $tmp/stop ]]; do
    if "$dest/ipoib" >/dev/null 2>"$tmp/exec.err"; then :; else fails=$((fails + 1)); cat "$tmp/exec.err" >>"$tmp/exec.errs"; fi
    runs=$((runs + 1))
  done
  echo "$runs $fails" >"$tmp/loop.result"
) &
loop_pid=$!
install_fail=0
for i in $(seq 1 40); do
  b=$bin_a; ((i % 2)) && b=$bin_b
  "$install" --binary "$b" --root "$root" >/dev/null 2>>"$tmp/install.errs" || install_fail=$((install_fail + 1))
done
touch "$tmp/stop"; wait "$loop_pid"; loop_pid=
read -r runs fails <"$tmp/loop.result"
echo "    concurrent: $runs execs during 40 installs, $fails failed"
expect "concurrent: every install succeeded" test "$install_fail" = 0
expect "concurrent: the loop ran" test "$runs" -gt 0
expect "concurrent: no exec failed" test "$fails" = 0
expect "concurrent: no temporary file left" test -z "$(find "$dest" -name '.*tmp*')"
"$install" --binary "$bin_a" --root "$root" >/dev/null

# --- whereabouts ----------------------------------------------------------------------------------
"$install" --binary "$bin_a" --root "$root" --whereabouts >/dev/null
expect "whereabouts: hard link to ipoib" test "$dest/whereabouts" -ef "$dest/ipoib"
"$install" --binary "$bin_b" --root "$root" --whereabouts >/dev/null
expect "whereabouts: follows an upgraded ipoib" test "$dest/whereabouts" -ef "$dest/ipoib"
expect "whereabouts: upgraded content" cmp -s "$dest/whereabouts" "$bin_b"
"$install" --binary "$bin_a" --root "$root" >/dev/null
expect "whereabouts: kept in step by an install without --whereabouts" test "$dest/whereabouts" -ef "$dest/ipoib"
"$install" --binary "$bin_b" --root "$root" >/dev/null
# A foreign whereabouts (the upstream Go binary) is refused without --force.
rm -f "$dest/whereabouts"; printf '#!/bin/sh\necho upstream\n' >"$dest/whereabouts"; chmod 755 "$dest/whereabouts"
foreign=$(md5sum <"$dest/whereabouts")
expect_fail "whereabouts: foreign binary refused" "$install" --binary "$bin_b" --root "$root" --whereabouts
expect "whereabouts: foreign binary untouched after refusal" test "$foreign" = "$(md5sum <"$dest/whereabouts")"
"$install" --binary "$bin_b" --root "$root" --whereabouts --force >/dev/null
expect "whereabouts --force: replaced by ipoib" test "$dest/whereabouts" -ef "$dest/ipoib"
# A copy of ipoib (another filesystem, an older manual install) counts as ours.
rm -f "$dest/whereabouts"; cp "$bin_b" "$dest/whereabouts"
"$install" --binary "$bin_b" --root "$root" --whereabouts >/dev/null
expect "whereabouts: an identical copy is ours and becomes the link" test "$dest/whereabouts" -ef "$dest/ipoib"

# --- dry run --------------------------------------------------------------------------------------
before=$(tree "$root")
"$install" --binary "$bin_a" --root "$root" --whereabouts --conf --conf-src "$here/../../conf" \
  --fix-memlock --dry-run >"$tmp/dry"
expect "dry-run: tree unchanged" test "$before" = "$(tree "$root")"
expect "dry-run: says it would install ipoib" grep -q "would install $bin_a -> $dest/ipoib" "$tmp/dry"
expect "dry-run: shows the containerd drop-in" \
  grep -q "would write $root/etc/systemd/system/containerd.service.d/" "$tmp/dry"
expect "dry-run: shows LimitMEMLOCK=infinity" grep -q "LimitMEMLOCK=infinity" "$tmp/dry"
"$install" --binary "$bin_a" --root "$root" --uninstall --whereabouts --conf --fix-memlock --dry-run >"$tmp/dry2"
expect "dry-run uninstall: tree unchanged" test "$before" = "$(tree "$root")"
expect "dry-run uninstall: says it would remove ipoib" grep -q "would remove $dest/ipoib" "$tmp/dry2"

# --- fix-memlock ----------------------------------------------------------------------------------
"$install" --binary "$bin_a" --root "$root" --fix-memlock >"$tmp/memlock"
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
"$install" --binary "$bin_a" --root "$root" --fix-memlock >"$tmp/memlock2"
expect "fix-memlock again: tree unchanged" test "$before" = "$(tree "$root")"
expect "fix-memlock again: already in place" grep -q "already in place" "$tmp/memlock2"
r2=$tmp/root2; mkdir -p "$r2"
"$install" --binary "$bin_a" --root "$r2" --fix-memlock --runtime containerd >/dev/null
expect "fix-memlock --runtime containerd: only containerd" \
  test "$(cd "$r2/etc/systemd/system" && ls)" = "containerd.service.d"
expect_fail "fix-memlock --runtime bogus: error" "$install" --binary "$bin_a" --root "$r2" --fix-memlock --runtime bogus

# --- conf -----------------------------------------------------------------------------------------
"$install" --binary "$bin_a" --root "$root" --conf --conf-src "$here/../../conf" >/dev/null
cd_conf=$root/usr/local/share/ipoib-cni/conf
expect "conf: the seed NAD installed" cmp -s "$here/../../conf/nad/jarvice-ipoib.yaml" "$cd_conf/nad/jarvice-ipoib.yaml"
expect "conf: plain CNI configs installed" test -f "$cd_conf/cni/10-jarvice-ipoib.conf"
expect "conf: nothing written to /etc/cni/net.d" test ! -e "$root/etc/cni/net.d"

# --- uninstall ------------------------------------------------------------------------------------
"$install" --binary "$bin_a" --root "$root" --uninstall --whereabouts --conf --fix-memlock >/dev/null
expect "uninstall: ipoib removed" test ! -e "$dest/ipoib"
expect "uninstall: whereabouts (ours) removed" test ! -e "$dest/whereabouts"
expect "uninstall: drop-ins removed" test -z "$(find "$root/etc/systemd" -type f)"
expect "uninstall: examples removed" test ! -e "$cd_conf"
"$install" --binary "$bin_a" --root "$root" --uninstall >/dev/null
expect "uninstall again: succeeds" test $? = 0
printf '#!/bin/sh\n' >"$dest/whereabouts"; chmod 755 "$dest/whereabouts"
"$install" --binary "$bin_a" --root "$root" --uninstall --whereabouts >/dev/null
expect "uninstall: a foreign whereabouts is kept" test -f "$dest/whereabouts"

echo "install-test: $failures failure(s)"
((failures == 0))
