"""The real product binary driven as a CNI IPAM plugin (invoked as `whereabouts`) and as the
`ipoib ipam` admin tool, plus a test PKI made with the openssl CLI. Used by admin_test.py and
security_test.py next to etcd_harness.py.

    import cni_driver
    p = cni_driver.Plugin(binary, workdir)          # workdir/bin/whereabouts -> binary
    r = p.cni("ADD", conf_dict, "ctr-1", node="node-a", pod="ns/pod-1")
    r.rc, r.result (parsed stdout JSON), r.stderr; r.address (first IP, ADD only)
    p.admin("list", "--json", "--config", path)  # -> CompletedProcess
    pki = cni_driver.Pki(dir).make()   # ca.crt, server.{crt,key}, client.{crt,key}, other-ca.crt
    cni_driver.check(cond, "what", detail)     # prints ok:/FAIL:, remembers failures
    sys.exit(cni_driver.run_main("name", body))  # body(plugin, tmp): 77 without etcd, 1 on FAIL
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import etcd_harness  # noqa: E402

FAILURES = []


def check(cond, what, detail=""):
    if cond:
        print("ok: " + what)
    else:
        FAILURES.append(what)
        print("FAIL: %s %s" % (what, detail))


def run_main(name, body, needs_openssl=False):
    """The test's exit status: 77 when etcd/etcdctl (or openssl) are missing; else body(plugin,
    tmp) runs with the binary of argv[1] in a temporary directory (removed afterwards), and
    any failed check makes it 1."""
    if not etcd_harness.binaries_present() or (needs_openssl and not openssl_present()):
        print("SKIP: etcd/etcdctl%s not installed" % (" or openssl" if needs_openssl else ""),
              file=sys.stderr)
        return 77
    tmp = tempfile.mkdtemp(prefix="ipoib-etcd-%s-%d-" % (name, os.getpid()))
    try:
        body(Plugin(sys.argv[1], tmp), tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILURES:
        print("%d failed: %s" % (len(FAILURES), ", ".join(FAILURES)))
        return 1
    print(name + ": ok")
    return 0


class CniRun:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        try:
            self.result = json.loads(proc.stdout) if proc.stdout.strip() else None
        except ValueError:
            self.result = None

    @property
    def address(self):
        return self.result["ips"][0]["address"].split("/")[0]

    @property
    def code(self):
        """The CNI error code of a failed run (its JSON on stdout), else None."""
        return self.result.get("code") if isinstance(self.result, dict) else None

    def __repr__(self):
        return "rc=%s stdout=%s stderr=%s" % (self.rc, self.stdout.strip(), self.stderr.strip())


class Plugin:
    def __init__(self, binary, workdir):
        self.binary = os.path.realpath(binary)
        self.bin_dir = os.path.join(workdir, "bin")
        os.makedirs(self.bin_dir, exist_ok=True)
        self.whereabouts = os.path.join(self.bin_dir, "whereabouts")
        if not os.path.exists(self.whereabouts):
            os.symlink(self.binary, self.whereabouts)

    def cni(self, command, conf, container, node="node-a", ifname="net1", pod=None,
            timeout=60):
        env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=container,
                   CNI_NETNS="/proc/%d/ns/net" % os.getpid(), CNI_IFNAME=ifname,
                   CNI_PATH=self.bin_dir, NODENAME=node)
        env["CNI_ARGS"] = ("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s"
                           % tuple(pod.split("/", 1)) if pod else "")
        proc = subprocess.run([self.whereabouts], input=json.dumps(conf), env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        return CniRun(proc)

    def admin(self, *args, timeout=60):
        return subprocess.run([self.binary, "ipam"] + list(args), capture_output=True, text=True,
                              timeout=timeout, check=False)


def openssl_present():
    return shutil.which("openssl") is not None


class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate (CN=root) and an
    unrelated CA (other-ca.crt, what a wrong etcd_ca_cert_file names); EC P-256, keys mode
    0600, certificates 0644."""

    def __init__(self, directory):
        self.dir = directory

    def make(self):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        with open(os.path.join(self.dir, "ext-server"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        with open(os.path.join(self.dir, "ext-client"), "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        script = ";".join([
            "set -e", "umask 077",
            "openssl req -x509 %s -keyout ca.key -out ca.crt -days 2 -subj /CN=ipoib-test-ca" % key,
            "openssl req %s -keyout server.key -out server.csr -subj /CN=etcd-member" % key,
            "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
            " -out server.crt -days 2 -extfile ext-server",
            "openssl req %s -keyout client.key -out client.csr -subj /CN=root" % key,
            "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
            " -out client.crt -days 2 -extfile ext-client",
            # A second, unrelated CA: what a node with the wrong etcd_ca_cert_file trusts.
            "openssl req -x509 %s -keyout other-ca.key -out other-ca.crt -days 2"
            " -subj /CN=someone-else" % key,
            "chmod 644 ca.crt server.crt client.crt other-ca.crt"])
        subprocess.run(["sh", "-c", script], cwd=self.dir, check=True, capture_output=True)
        return self

    def path(self, name):
        return os.path.join(self.dir, name)
