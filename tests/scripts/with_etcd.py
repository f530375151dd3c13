"""Runs a command beside one real etcd member (tests/etcd/etcd_harness.py): for the shell tests.

    with_etcd.py COMMAND [ARG...]

The command sees the member's client URL in IPOIB_ETCD_ENDPOINTS; its exit status is returned.
The member is SIGKILLed and its directory removed when the command ends, also when it fails.
Exit 77 (skipped) when etcd or etcdctl is not installed, the only reason to skip.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "etcd"))
import etcd_harness  # noqa: E402


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if not etcd_harness.binaries_present():
        print("SKIP: etcd or etcdctl not on PATH (Debian: etcd-server etcd-client)", file=sys.stderr)
        return 77
    with etcd_harness.Cluster(1) as c:
        env = dict(os.environ, IPOIB_ETCD_ENDPOINTS=c.endpoints_csv)
        return subprocess.run(argv[1:], env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
