#!/usr/bin/env bash
# The installed artefact is self-contained: no shared libraries, and it answers VERSION inside an
# empty chroot that holds only the binary (as under Multus' thick daemon on a foreign host).
# Usage: static_binary_test.sh <path-to-ipoib>
set -euo pipefail
bin=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. ldd: no dependencies at all.
ldd_out=$(ldd "$bin" 2>&1 || true)
echo "ldd: $ldd_out"
grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out" || fail "ldd lists dependencies"
if readelf -l "$bin" | grep -q 'INTERP'; then fail "binary has a program interpreter"; fi

# 2. --version names the project version and every CNI version.
ver=$("$bin" --version)
echo "$ver"
for v in 0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0; do
  grep -q "$v" <<<"$ver" || fail "--version lacks $v"
done

# 3. VERSION inside an empty chroot holding only the binary (needs root for chroot).
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: chroot needs root"; exit 77
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cp "$bin" "$root/ipoib"
chroot_bin=$(command -v chroot)
out=$(echo '{"cniVersion":"0.4.0"}' | env -i CNI_COMMAND=VERSION CNI_NETNS=dummy CNI_IFNAME=dummy \
  CNI_PATH=dummy "$chroot_bin" "$root" /ipoib)
echo "chroot VERSION: $out"
python3 - "$out" <<'PY'
import json, sys
doc = json.loads(sys.argv[1])
assert doc["cniVersion"] == "0.4.0", doc
assert doc["supportedVersions"] == ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"], doc
PY
[[ $(ls -A "$root") == ipoib ]] || fail "the binary wrote files into the chroot: $(ls -A "$root")"
echo "PASS"
