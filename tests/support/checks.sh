# tests/support/checks.sh — the checks the shell tests share; source it, then:
#   expect "what is true" COMMAND...          ok / FAIL line; a FAIL is counted, the test goes on
#   expect_fail "what must fail" COMMAND...   the command must exit non-zero (output discarded)
#   expect_status "what" STATUS COMMAND...    the command must exit exactly STATUS
#   pass "what" / bad "what"                  report one result directly
#   checks_done NAME                          prints NAME's failure count; its status is 0 only
#                                             when nothing failed (make it the script's last line)
# shellcheck shell=bash
failures=0
pass() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; failures=$((failures + 1)); }
expect() { local what=$1; shift; if "$@"; then pass "$what"; else bad "$what"; fi; }
expect_fail() { local what=$1; shift; if "$@" >/dev/null 2>&1; then bad "$what"; else pass "$what"; fi; }
expect_status() {
  local what=$1 want=$2 rc=0
  shift 2
  "$@" >/dev/null 2>&1 || rc=$?
  expect "$what (exit $rc)" test "$rc" = "$want"
}
checks_done() { echo "$1: $failures failure(s)"; ((failures == 0)); }
