#!/bin/sh
# Captures the RTM_NEWLINK request iproute2 sends for
#   ip link add link ib0 name ib0.8001 type ipoib pkey 0x8001 mode datagram umcast 0
# with ib0 = ifindex 4, and prints it as hex (16 bytes a line, '#' lines are comments).
#
# Runs in a throwaway network namespace (unshare -n): its links vanish with the process, so
# nothing is left behind. In that namespace lo is ifindex 1 and `ip link add ... index 4`
# pins ib0 to index 4 (a veth stands in for the IPoIB parent: the request iproute2 builds does
# not depend on the parent's type). The kernel refuses the ipoib kind when ib_ipoib is absent
# ("Unknown device type"), but strace shows the bytes that were sent.
#
# Usage: capture_iproute2.sh > golden/iproute2_newlink_ipoib.hex     (needs root, strace, ip)
# Exit: 0 captured; 77 when the tools or privileges are missing; 1 when nothing was captured.
set -eu

for tool in ip strace unshare; do
  command -v "$tool" >/dev/null 2>&1 || { echo "capture: $tool not found" >&2; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "capture: needs root" >&2; exit 77; }

trace=$(mktemp)
trap 'rm -f "$trace"' EXIT

# The inner shell owns the namespace; strace's own exit status is ip's (2: refused kind).
unshare -n sh -c '
  set -e
  ip link set lo up
  ip link add ib0 index 4 type veth peer name nlcappeer
  strace -f -o "$1" -e trace=sendmsg -e write=all -xx \
    ip link add link ib0 name ib0.8001 type ipoib pkey 0x8001 mode datagram umcast 0 \
    >/dev/null 2>&1 || true
' capture "$trace" || { echo "capture: cannot create a network namespace" >&2; exit 77; }

version=$(ip -V 2>/dev/null | head -n 1)
# strace prints the decoded call, then " * N bytes in buffer 0" and a hexdump whose hex columns
# are the 49 characters after the offset of each " | 00000  xx xx ..." line (the ASCII column
# follows, and may itself look like hex, so it is cut off by position).
hex=$(awk '
  /^[0-9]* *sendmsg\(/ { grab = ($0 ~ /nlmsg_type=RTM_NEWLINK/); next }
  grab && /^ *\| [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]  / {
    sub(/^[0-9]* *\| [0-9a-f]+  /, "");
    line = substr($0, 1, 49);
    n = split(line, parts, " ");
    out = "";
    for (i = 1; i <= n; i++) if (parts[i] ~ /^[0-9a-f][0-9a-f]$/) out = out parts[i] " ";
    print out;
    next
  }
  { if ($0 !~ /^ *\* [0-9]+ bytes/) grab = 0 }
' "$trace")

[ -n "$hex" ] || { echo "capture: no RTM_NEWLINK in the strace output" >&2; cat "$trace" >&2; exit 1; }
echo "# RTM_NEWLINK sent by: $version"
echo "# command: ip link add link ib0 name ib0.8001 type ipoib pkey 0x8001 mode datagram umcast 0"
echo "# ib0 = ifindex 4; bytes 8..15 (nlmsg_seq, nlmsg_pid) vary from run to run."
echo "# captured by tests/unit/netlink/capture_iproute2.sh (strace -e write=all -xx)"
printf '%s\n' "$hex" | sed 's/ *$//'
