#!/usr/bin/env bash
# Feeds every CNI configuration in conf/ through the plugin's own validation
# (`ipoib validate-config FILE`: no kernel access).
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

failures=0 checked=0
validate() {  # validate FILE EXPECTATION(valid|invalid)
  local rc=0
  "$ipoib" validate-config "$1" >"$tmp/out" 2>&1 || rc=$?
  checked=$((checked + 1))
  if [[ $2 == valid && $rc == 0 ]] || [[ $2 == invalid && $rc == 1 ]]; then
    echo "ok   - $2: ${1#"$conf_dir"/} ($(head -c 200 "$tmp/out" | tr '\n' ' '))"
  else
    echo "FAIL - expected $2, exit $rc: $1: $(cat "$tmp/out")"
    failures=$((failures + 1))
  fi
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

echo "conf_validate: $checked checked, $failures failure(s)"
((failures == 0))
