#!/usr/bin/env bash
# Feeds every CNI configuration in conf/ through the plugin's own validation
# (`ipoib validate-config FILE`: no kernel access), checks that it shows each network's ranges
# and its store (local, shared or delegated), and that `ipoib doctor --config FILE` accepts and
# refuses every one of these files exactly as validate-config does, with the same message.
#
#   conf_validate.sh IPOIB CONF_DIR EXTRACTED_DIR
#
# EXTRACTED_DIR is conf_test.py's output (every NAD spec.config, .conf and .conflist as a file);
# the NAD YAML files are also given to validate-config as they are. A known-bad config must be
# rejected, so a validator that accepts everything fails this test.
set -euo pipefail

ipoib=${1:?usage: $0 IPOIB CONF_DIR EXTRACTED_DIR}
conf_dir=${2:?missing CONF_DIR}
extracted=${3:?missing EXTRACTED_DIR}
tmp=$(mktemp -d /tmp/scripts-validate.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/empty"

failures=0 checked=0
fail() {
  echo "FAIL - $*"
  failures=$((failures + 1))
}

# The doctor on this file: the same flat-file lookup as validate-config (--etc-root stays /), no
# node to check (empty sysfs/procfs). Exit 2 with "ipoib doctor: --config FILE: MSG" when it
# refuses the config.
doctor_agrees() {  # doctor_agrees FILE VALIDATE_RC
  local rc=0 message
  "$ipoib" doctor --config "$1" --sysfs-root "$tmp/empty" --procfs-root "$tmp/empty" \
    --no-verbs --json >"$tmp/doctor.out" 2>"$tmp/doctor.err" || rc=$?
  if [[ $2 == 0 ]]; then
    [[ $rc != 2 ]] || fail "validate-config accepts $1, doctor refuses it: $(cat "$tmp/doctor.err")"
    return
  fi
  message=$(sed -n 's/^invalid: \(.*\) (code [0-9]*)$/\1/p' "$tmp/out")
  [[ $rc == 2 ]] || { fail "validate-config refuses $1, doctor exits $rc"; return; }
  grep -qxF "ipoib doctor: --config $1: $message" "$tmp/doctor.err" ||
    fail "doctor's message differs for $1: $(cat "$tmp/doctor.err") vs $message"
}

# What validate-config shows under each network: ranges and store.
shows_ranges_and_store() {  # shows_ranges_and_store FILE
  local ipam
  ipam=$(sed -n 's/^ok: .* ipam \([^ ]*\) (\(built in\|delegated\|layer 2\))$/\2/p' "$tmp/out" | head -1)
  case $ipam in
    "built in")
      grep -qE '^  range [0-9a-f.:]+/[0-9]+: [0-9a-f.:]+-[0-9a-f.:]+, [0-9]+ addresses' "$tmp/out" ||
        fail "no range line for $1: $(cat "$tmp/out")"
      grep -qE '^  store (local|shared): /[^ ]+ \(pool-' "$tmp/out" ||
        fail "no store line for $1: $(cat "$tmp/out")" ;;
    delegated)
      grep -q '^  store delegated: ' "$tmp/out" || fail "no delegated store line for $1" ;;
  esac
}

validate() {  # validate FILE EXPECTATION(valid|invalid)
  local rc=0
  "$ipoib" validate-config "$1" >"$tmp/out" 2>&1 || rc=$?
  checked=$((checked + 1))
  if [[ $2 == valid && $rc == 0 ]] || [[ $2 == invalid && $rc == 1 ]]; then
    echo "ok   - $2: ${1#"$conf_dir"/} ($(head -c 200 "$tmp/out" | tr '\n' ' '))"
  else
    fail "expected $2, exit $rc: $1: $(cat "$tmp/out")"
  fi
  [[ $rc == 0 ]] && shows_ranges_and_store "$1"
  doctor_agrees "$1" "$rc"
}

shopt -s nullglob
files=("$extracted"/*.json)
((${#files[@]})) || { echo "FAIL - nothing extracted in $extracted (run conf_test.py first)"; exit 1; }
for f in "${files[@]}"; do validate "$f" valid; done
while IFS= read -r f; do validate "$f" valid; done < <(find "$conf_dir/nad" -name '*.yaml' | sort)

# Negative controls: the seed config with a pkey the kernel rejects, and without master.
python3 - "$extracted/nad_jarvice-ipoib.yaml.0.json" "$tmp" <<'PY'
import json, sys
seed = json.load(open(sys.argv[1]))
bad = dict(seed, pkey="0x8000"); json.dump(bad, open(sys.argv[2] + "/bad-pkey.json", "w"))
bad = {k: v for k, v in seed.items() if k != "master"}; json.dump(bad, open(sys.argv[2] + "/no-master.json", "w"))
PY
validate "$tmp/bad-pkey.json" invalid
validate "$tmp/no-master.json" invalid

# The NAD YAML files as they are, and hostile variants of the seed NAD: a decoy `config:` in a
# comment and in metadata (accepted: only spec.config counts), a YAML mapping instead of a string,
# an unterminated quote, no kind (refused). Both readers must agree on each.
seed_yaml=$conf_dir/nad/jarvice-ipoib.yaml
{ echo "# config: '{broken'"; cat "$seed_yaml"; } >"$tmp/decoy-comment.yaml"
sed 's/^  name: jarvice-ipoib$/  name: jarvice-ipoib\n  annotations:\n    config: "not json"/' \
  "$seed_yaml" >"$tmp/decoy-annotation.yaml"
sed 's/\r*$/\r/' "$seed_yaml" >"$tmp/crlf.yaml"
python3 - "$seed_yaml" "$tmp" <<'PY'
import sys
text = open(sys.argv[1]).read()
d = sys.argv[2]
open(d + "/mapping.yaml", "w").write(text.replace("config: '{", "config: {").replace("}'", "}"))
open(d + "/unterminated.yaml", "w").write(text.rstrip().rstrip("'") + "\n")
open(d + "/no-kind.yaml", "w").write(text.replace("kind: NetworkAttachmentDefinition\n", ""))
PY
for f in decoy-comment decoy-annotation crlf; do validate "$tmp/$f.yaml" valid; done
for f in mapping unterminated no-kind; do validate "$tmp/$f.yaml" invalid; done

# The shared-store example names its store_dir; on this machine nothing shared is mounted there
# unless the line says shared.
"$ipoib" validate-config "$conf_dir/nad/jarvice-ipoib-shared-store.yaml" >"$tmp/out"
grep -qE '^  store (local|shared): /shared/cni/ipoib-ipam \(pool-_default; ' "$tmp/out" ||
  fail "shared-store example: $(cat "$tmp/out")"

# A file that is not a regular file (a FIFO with no writer) is refused at once, exit 2 and named:
# never a read that waits for a writer.
mkfifo "$tmp/fifo"
rc=0
timeout 10 "$ipoib" validate-config "$tmp/fifo" >"$tmp/out" 2>&1 || rc=$?
if [[ $rc == 2 ]] && grep -q "cannot read $tmp/fifo: .*FIFO" "$tmp/out"; then
  echo "ok   - a FIFO is refused: $(cat "$tmp/out")"
else
  fail "validate-config on a FIFO: exit $rc (124: it blocked): $(cat "$tmp/out")"
fi
checked=$((checked + 1))
# stdin ("-") is read whole.
rc=0
"$ipoib" validate-config - <"$extracted/nad_jarvice-ipoib.yaml.0.json" >"$tmp/out" 2>&1 || rc=$?
[[ $rc == 0 ]] && grep -q '^ok: ' "$tmp/out" || fail "validate-config - (stdin): exit $rc: $(cat "$tmp/out")"
checked=$((checked + 1))

echo "conf_validate: $checked checked, $failures failure(s)"
((failures == 0))
