"""Helpers the Python harnesses share (tests/hardening/*.py, bench/harness.py).

    import os, sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../support"))
    from ipoib_testlib import enter_netns, sanitizer_report

    enter_netns("/run/netns/node-123")         # this thread (and every child it starts) joins it
    if sanitizer_report(proc.stderr): ...      # an ASan/UBSan/LSan report in a plugin's stderr
"""
import ctypes
import os

CLONE_NEWNET = 0x40000000  # include/uapi/linux/sched.h

_SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                      "SUMMARY: UndefinedBehaviorSanitizer")


def enter_netns(path):
    """setns(2) into the network namespace at `path` (e.g. /run/netns/<name>); raises OSError
    with errno on failure. Processes started afterwards inherit the namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def sanitizer_report(text):
    """Whether `text` (a process's stderr) holds a sanitizer report."""
    return any(m in text for m in _SANITIZER_MARKERS)
