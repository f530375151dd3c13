"""Real etcd members for Python and shell-driven tests (the C++ twin is etcd_cluster.h).

    import sys; sys.path.insert(0, "<repo>/tests/etcd")
    import etcd_harness
    if not etcd_harness.binaries_present():
        print("SKIP: etcd/etcdctl not installed", file=sys.stderr); sys.exit(77)
    with etcd_harness.Cluster(3) as c:          # free loopback ports, temp dir, healthy on entry
        c.endpoints_csv                          # "http://127.0.0.1:P1,..." (etcd_host)
        c.client_urls[i]; c.leader(); c.kill(i); c.signal(i, signal.SIGSTOP)
        c.restart(i)                             # a killed member rejoins with its data dir
        c.etcdctl("put", "k", "v")               # -> CompletedProcess (stdout text)
    # on exit (also on exceptions): members SIGKILLed and reaped, the directory removed

Ports are picked by binding port 0 and released just before etcd binds them; a start that loses
that race is retried on new ports. Members get heartbeat 50 ms / election 500 ms. Keyword
arguments: extra_args=[...] (etcd flags), tls=dict(cert=..., key=..., ca=..., client_cert_auth=
True, etcdctl_cert=..., etcdctl_key=...).
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def binaries_present():
    return shutil.which("etcd") is not None and shutil.which("etcdctl") is not None


def _die_with_parent():
    # PR_SET_PDEATHSIG (1) = SIGKILL: a member never outlives a test killed with -9.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Cluster:
    def __init__(self, members=1, extra_args=(), tls=None, start_timeout=30):
        self.n = members
        self.extra_args = list(extra_args)
        self.tls = tls or {}
        self.start_timeout = start_timeout
        self.dir = tempfile.mkdtemp(prefix="ipoib-etcd-py-%d-" % os.getpid())
        self.procs = []
        self.client_urls = []
        self._argv = []  # each member's command line, for restart()

    # -- lifecycle
    def __enter__(self):
        try:
            for attempt in range(3):
                if self._start_once(attempt):
                    return self
                self._stop_members()
            raise RuntimeError("etcd members did not become healthy: " + self._log_tails())
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self._stop_members()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_members(self):
        for p in self.procs:
            if p is not None and p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.kill()
                except ProcessLookupError:
                    pass
                p.wait()
        self.procs = []
        self._argv = []

    def _spawn(self, i):
        log = open("%s/m%d.log" % (self.dir, i), "ab")
        try:
            return subprocess.Popen(self._argv[i], stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=_die_with_parent)
        finally:
            log.close()

    def _start_once(self, attempt):
        ports = _free_ports(2 * self.n)
        scheme = "https" if self.tls else "http"
        self.client_urls = ["%s://127.0.0.1:%d" % (scheme, ports[2 * i]) for i in range(self.n)]
        peers = ["http://127.0.0.1:%d" % ports[2 * i + 1] for i in range(self.n)]
        initial = ",".join("m%d=%s" % (i, peers[i]) for i in range(self.n))
        for i in range(self.n):
            args = ["etcd", "--name=m%d" % i,
                    "--data-dir=%s/m%d-%d" % (self.dir, i, attempt),
                    "--listen-client-urls=" + self.client_urls[i],
                    "--advertise-client-urls=" + self.client_urls[i],
                    "--listen-peer-urls=" + peers[i],
                    "--initial-advertise-peer-urls=" + peers[i],
                    "--initial-cluster=" + initial, "--initial-cluster-state=new",
                    "--initial-cluster-token=ipoib-py-%d-%d" % (os.getpid(), attempt),
                    "--heartbeat-interval=50", "--election-timeout=500",
                    "--log-level=warn", "--logger=zap"]
            if self.tls:
                args += ["--cert-file=" + self.tls["cert"], "--key-file=" + self.tls["key"],
                         "--trusted-ca-file=" + self.tls["ca"]]
                if self.tls.get("client_cert_auth"):
                    args.append("--client-cert-auth")
            args += self.extra_args
            self._argv.append(args)
            self.procs.append(self._spawn(i))
        end = time.monotonic() + self.start_timeout
        while time.monotonic() < end:
            if any(p.poll() is not None for p in self.procs):
                return False
            if all(self.etcdctl("endpoint", "health", only=i).returncode == 0
                   for i in range(self.n)):
                return True
            time.sleep(0.1)
        return False

    def _log_tails(self):
        out = []
        for i in range(self.n):
            try:
                with open("%s/m%d.log" % (self.dir, i), "rb") as f:
                    out.append(f.read()[-400:].decode(errors="replace"))
            except OSError:
                pass
        return " | ".join(out)

    # -- use
    @property
    def endpoints_csv(self):
        return ",".join(self.client_urls)

    def etcdctl(self, *args, only=None):
        eps = self.client_urls[only] if only is not None else self.endpoints_csv
        cmd = ["etcdctl", "--dial-timeout=2s", "--command-timeout=5s", "--endpoints=" + eps]
        if self.tls:
            cmd.append("--cacert=" + self.tls["ca"])
            if self.tls.get("etcdctl_cert"):
                cmd += ["--cert=" + self.tls["etcdctl_cert"], "--key=" + self.tls["etcdctl_key"]]
        env = dict(os.environ, ETCDCTL_API="3")
        return subprocess.run(cmd + list(args), env=env, capture_output=True, text=True,
                              check=False)

    def leader(self):
        """Index of the current leader, or -1."""
        r = self.etcdctl("endpoint", "status", "-w", "json")
        try:
            for e in json.loads(r.stdout):
                st = e["Status"]
                if st.get("leader") and st["header"]["member_id"] == st["leader"]:
                    return self.client_urls.index(e["Endpoint"])
        except (ValueError, KeyError):
            pass
        return -1

    def kill(self, i):
        p = self.procs[i]
        if p.poll() is None:
            p.kill()
            p.wait()

    def restart(self, i, timeout=20):
        """Starts killed member i again on its ports and data dir (it rejoins the cluster);
        returns whether it answered `endpoint health` within `timeout` seconds. Call it from a
        thread that outlives the member (e.g. the main thread): PR_SET_PDEATHSIG fires when the
        starting *thread* exits, and would kill the member then."""
        self.kill(i)
        self.procs[i] = self._spawn(i)
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.procs[i].poll() is None:
            if self.etcdctl("endpoint", "health", only=i).returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def signal(self, i, sig):
        if self.procs[i].poll() is None:
            self.procs[i].send_signal(sig)


if __name__ == "__main__":
    # Self-check: python3 tests/etcd/etcd_harness.py (exit 77 without etcd).
    import sys
    if not binaries_present():
        print("SKIP: etcd/etcdctl not installed", file=sys.stderr)
        sys.exit(77)
    with Cluster(3) as c:
        assert c.etcdctl("put", "/harness/k", "v").returncode == 0
        leader = c.leader()
        assert leader >= 0, "no leader"
        c.kill(leader)
        deadline = time.monotonic() + 10
        while c.etcdctl("put", "/harness/k", "w").returncode != 0:
            assert time.monotonic() < deadline, "no re-election"
            time.sleep(0.1)
        assert c.restart(leader), "killed member did not rejoin: " + c._log_tails()
        assert c.etcdctl("get", "/harness/k", only=leader).stdout.split() == ["/harness/k", "w"]
        d = c.dir
    assert not os.path.exists(d), "directory left behind"
    print("etcd_harness: ok")
