# Sourced by the privileged IPAM shell tests: re-executes the calling script inside private
# network and mount namespaces (so the host is never touched and everything created disappears
# with the process), with /run/netns a private tmpfs; exits 77 when that cannot be done.
#   . "$(dirname "$0")/private_ns.sh"; enter_private_ns "$0" "$@"
enter_private_ns() {
  if [ "${IPAM_TEST_INNER:-}" = 1 ]; then
    mkdir -p /run/netns
    mount -t tmpfs tmpfs /run/netns   # private to this mount namespace
    return 0
  fi
  [ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
  command -v unshare >/dev/null && command -v ip >/dev/null || { echo "SKIP: no unshare/ip"; exit 77; }
  unshare --net --mount true 2>/dev/null || { echo "SKIP: cannot unshare"; exit 77; }
  IPAM_TEST_INNER=1 exec unshare --net --mount --propagation private "$@"
}
