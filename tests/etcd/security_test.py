"""The cluster store's security at the plugin level: the real binary invoked as `whereabouts`
against real etcd members (etcd_harness.py).

 1. TLS with client certificates made here with the openssl CLI (the member requires them:
    --client-cert-auth): ADD and DEL work; the reservation is in etcd and gone after DEL.
    A wrong CA (etcd_ca_cert_file naming an unrelated CA) fails with code 7 naming
    etcd_ca_cert_file; no client certificate is refused by the member; a key file with mode 0644
    is refused before any connection, naming the file and `chmod 600` (code 7); a CA, certificate
    or key file that is missing or a directory is refused naming the key, the path and the OS's
    reason ("No such file or directory"), one that is not PEM naming the key and the path.
 2. etcd user/password authentication (etcdctl user add, auth enable, a user whose role may
    read and write /ipoib/ only): ADD/DEL work with the right password inline (etcd_password)
    and from etcd_password_file; a wrong password fails with code 7 naming authentication and
    never echoes the password; a password file with mode 0644 is refused naming it and
    `chmod 600` (code 7); no credentials at all fail with code 7 too.
In every failure nothing is reserved. Exit 77 only when etcd/etcdctl or openssl are missing.
usage: security_test.py <the ipoib binary>
"""

import os
import shutil
import itertools
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cni_driver  # noqa: E402
import etcd_harness  # noqa: E402

NET = "sec%d" % os.getpid()
check = cni_driver.check
REFUSALS = itertools.count()


def conf(store_dir, **keys):
    ipam = {"type": "whereabouts", "range": "10.61.0.0/28", "network_name": NET,
            "datastore": "etcd", "store_dir": store_dir, "lock_timeout_ms": 3000}
    ipam.update(keys)
    return {"cniVersion": "1.0.0", "name": "secnet", "type": "macvlan", "ipam": ipam}


def address_keys(cluster, *auth):
    r = cluster.etcdctl(*auth, "get", "--prefix", "--keys-only", "/ipoib/v1/net/%s/ip4/" % NET)
    assert r.returncode == 0, r.stderr
    return [k for k in r.stdout.split() if k]


def expect_refused(plugin, cluster, cfg, what, code, words, auth=(), secret=None):
    r = plugin.cni("ADD", cfg, "refused-%d" % next(REFUSALS), pod="ns/refused")
    text = r.stdout + r.stderr
    check(r.rc != 0 and r.code == code, what + ": ADD fails with code %s" % code, repr(r))
    for w in words:
        check(w in text, what + ": the message names %r" % w, repr(r))
    if secret:
        check(secret not in text, what + ": the password is not echoed", repr(r))
    check(address_keys(cluster, *auth) == [], what + ": nothing reserved")


def add_del(plugin, cluster, cfg, what, auth=()):
    r = plugin.cni("ADD", cfg, "ctr-" + what, pod="ns/" + what)
    check(r.rc == 0 and r.result and r.result.get("ips"), what + ": ADD works", repr(r))
    if r.rc != 0:
        return
    keys = address_keys(cluster, *auth)
    hex_ip = "".join("%02x" % int(o) for o in r.address.split("."))
    check(len(keys) == 1 and keys[0].endswith("/ip4/" + hex_ip),
          what + ": the reservation is one key in etcd, at the address ADD returned",
          "%s %s" % (r.address, keys))
    d = plugin.cni("DEL", cfg, "ctr-" + what, pod="ns/" + what)
    check(d.rc == 0, what + ": DEL works", repr(d))
    check(address_keys(cluster, *auth) == [], what + ": DEL removed it from etcd")


def tls_cases(plugin, tmp, pki):
    tls = dict(cert=pki.path("server.crt"), key=pki.path("server.key"), ca=pki.path("ca.crt"),
               client_cert_auth=True, etcdctl_cert=pki.path("client.crt"),
               etcdctl_key=pki.path("client.key"))
    with etcd_harness.Cluster(1, tls=tls) as c:
        store = os.path.join(tmp, "node-tls")
        good = dict(etcd_host=c.endpoints_csv, etcd_ca_cert_file=pki.path("ca.crt"),
                    etcd_cert_file=pki.path("client.crt"), etcd_key_file=pki.path("client.key"))
        add_del(plugin, c, conf(store, **good), "tls-client-cert")

        wrong_ca = dict(good, etcd_ca_cert_file=pki.path("other-ca.crt"))
        expect_refused(plugin, c, conf(store, **wrong_ca), "tls-wrong-ca", 7,
                       ["etcd_ca_cert_file", "certificate"])

        # The member demands a client certificate: without one the handshake is refused.
        no_cert = dict(etcd_host=c.endpoints_csv, etcd_ca_cert_file=pki.path("ca.crt"))
        r = plugin.cni("ADD", conf(store, **no_cert), "ctr-nocert", pod="ns/nocert")
        check(r.rc != 0 and r.code in (7, 11), "tls-no-client-cert: ADD refused", repr(r))
        check(address_keys(c) == [], "tls-no-client-cert: nothing reserved")

        # A TLS file that is not there, or not a file, is refused before any connection with
        # the key, the path and the OS's reason (not OpenSSL's bare "asio.ssl error").
        for key in ("etcd_ca_cert_file", "etcd_cert_file", "etcd_key_file"):
            missing = os.path.join(tmp, "missing-" + key + ".pem")
            expect_refused(plugin, c, conf(store, **dict(good, **{key: missing})),
                           "tls-missing-" + key, 7, [key, missing, "No such file or directory"])
            expect_refused(plugin, c, conf(store, **dict(good, **{key: tmp})),
                           "tls-directory-" + key, 7, [key, tmp, "directory"])
        not_pem = os.path.join(tmp, "not-pem.crt")
        with open(not_pem, "w") as f:
            f.write("not a certificate\n")
        for key in ("etcd_ca_cert_file", "etcd_cert_file"):
            expect_refused(plugin, c, conf(store, **dict(good, **{key: not_pem})),
                           "tls-not-pem-" + key, 7, [key, not_pem])

        loose_key = os.path.join(tmp, "loose-client.key")
        shutil.copyfile(pki.path("client.key"), loose_key)
        os.chmod(loose_key, 0o644)
        expect_refused(plugin, c, conf(store, **dict(good, etcd_key_file=loose_key)),
                       "tls-key-0644", 7, [loose_key, "chmod 600"])
        # DEL with the same configuration cannot connect either: it must say so, not claim
        # a release it never made (DEL defers only when etcd is unreachable).
        r = plugin.cni("DEL", conf(store, **dict(good, etcd_key_file=loose_key)), "ctr-x")
        check(r.rc != 0 and r.code == 7 and "chmod 600" in r.stdout + r.stderr,
              "tls-key-0644: DEL refused too, naming chmod 600", repr(r))


def auth_cases(plugin, tmp):
    with etcd_harness.Cluster(1) as c:
        root = ("--user=root:root-%d" % os.getpid(),)
        setup = [
            ("user", "add", "root", "--new-user-password=root-%d" % os.getpid(),
             "--interactive=false"),
            ("role", "add", "ipam"),
            ("role", "grant-permission", "ipam", "--prefix=true", "readwrite", "/ipoib/"),
            ("user", "add", "ipam", "--new-user-password=right-pw-%d" % os.getpid(),
             "--interactive=false"),
            ("user", "grant-role", "ipam", "ipam"),
            ("auth", "enable"),
        ]
        for cmd in setup:
            r = c.etcdctl(*cmd)
            assert r.returncode == 0, "etcdctl %s: %s" % (" ".join(cmd), r.stderr)
        # Authentication is really on: an anonymous read is refused.
        assert c.etcdctl("get", "/ipoib/x").returncode != 0, "auth not enabled"

        store = os.path.join(tmp, "node-auth")
        right = "right-pw-%d" % os.getpid()
        base = dict(etcd_host=c.endpoints_csv, etcd_username="ipam")
        add_del(plugin, c, conf(store, **dict(base, etcd_password=right)), "auth-inline", root)

        pw_file = os.path.join(tmp, "etcd-password")
        with open(pw_file, "w") as f:
            f.write(right + "\n")
        os.chmod(pw_file, 0o600)
        add_del(plugin, c, conf(store, **dict(base, etcd_password_file=pw_file)), "auth-file",
                root)

        wrong = "wrong-pw-%d" % os.getpid()
        expect_refused(plugin, c, conf(store, **dict(base, etcd_password=wrong)),
                       "auth-wrong-password", 7, ["authentication", "ipam"], root, wrong)

        loose = os.path.join(tmp, "loose-password")
        shutil.copyfile(pw_file, loose)
        os.chmod(loose, 0o644)
        check(stat.S_IMODE(os.stat(loose).st_mode) == 0o644, "auth-file-0644: planted 0644")
        expect_refused(plugin, c, conf(store, **dict(base, etcd_password_file=loose)),
                       "auth-file-0644", 7, [loose, "chmod 600"], root, right)

        expect_refused(plugin, c, conf(store, etcd_host=c.endpoints_csv),
                       "auth-no-credentials", 7, ["authentication"], root)


def body(plugin, tmp):
    tls_cases(plugin, tmp, cni_driver.Pki(os.path.join(tmp, "pki")).make())
    auth_cases(plugin, tmp)


if __name__ == "__main__":
    sys.exit(cni_driver.run_main("security_test", body, needs_openssl=True))
