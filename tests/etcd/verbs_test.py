"""The CNI verbs GC, STATUS and ADD after a range edit on the cluster store (issue 12, "Semantics
that hold across nodes"), through the real binary invoked as `whereabouts` by two simulated
nodes (NODENAME, own store_dir each) against a real etcd member (etcd_harness.py).

 1. GC, per-address and node slices: a node's GC releases only the reservations that node made
    in its own CNI network and that its valid-attachments list omits. The other node's
    reservations, and those of another CNI network sharing the pool (same network_name), stay.
 2. STATUS: 0 while etcd answers; 50 saying "exhausted" once the range is (an ADD cannot be
    served; the attachments that exist are fine, so not 51); 50 naming the endpoint once etcd is
    gone.
 3. A range edited under a reservation: the attachment's next ADD moves it into the new range
    and the old address leaves etcd; its DEL then frees the new one.
Exit 77 only when etcd/etcdctl are missing.
usage: verbs_test.py <the ipoib binary>
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cni_driver  # noqa: E402
import etcd_harness  # noqa: E402

check = cni_driver.check
TAG = "vrb%d" % os.getpid()


def conf(endpoints, tmp, node, net, subnet, name="verbsnet", **extra):
    ipam = {"type": "whereabouts", "range": subnet, "network_name": net, "datastore": "etcd",
            "etcd_host": endpoints, "store_dir": os.path.join(tmp, node, net),
            "lock_timeout_ms": 2000}
    ipam.update(extra)
    return {"cniVersion": "1.1.0", "name": name, "type": "macvlan", "ipam": ipam}


def held(cluster, net):
    """container_id -> address of every reservation record of network_name `net` in etcd."""
    r = cluster.etcdctl("get", "--prefix", "/ipoib/v1/net/%s/ip" % net, "--print-value-only")
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["container_id"]] = rec["ip"]
    return out


def listed(plugin, cfg_path):
    """container_id -> address, as `ipoib ipam list --json --config` shows them (node slices:
    the reservations live in each node's store_dir, so this lists that node's store)."""
    r = plugin.admin("list", "--json", "--config", cfg_path)
    assert r.returncode == 0, "list: " + r.stderr
    doc = json.loads(r.stdout)
    return {res["container_id"]: res["ip"] for p in doc["pools"] for res in p["reservations"]}


def gc_conf(base, valid):
    c = dict(base)
    c["cni.dev/valid-attachments"] = [{"containerID": cid, "ifname": "net1"} for cid in valid]
    return c


def add(plugin, cfg, cid, node):
    r = plugin.cni("ADD", cfg, cid, node=node, pod="ns/pod-" + cid)
    assert r.rc == 0, "ADD %s on %s: %r" % (cid, node, r)
    return r.address


def gc_case(plugin, c, tmp, mode, extra):
    net = "%s-gc-%s" % (TAG, mode)
    subnet = "10.64.0.0/24" if mode == "per-address" else "10.65.0.0/24"
    a = conf(c.endpoints_csv, tmp, "node-a", net, subnet, **extra)
    b = conf(c.endpoints_csv, tmp, "node-b", net, subnet, **extra)
    other = conf(c.endpoints_csv, tmp, "node-a", net, subnet, name="othernet", **extra)
    addrs = {cid: add(plugin, cfg, cid, node) for cid, cfg, node in (
        ("a1", a, "node-a"), ("a2", a, "node-a"), ("b1", b, "node-b"), ("o1", other, "node-a"))}
    check(len(set(addrs.values())) == 4, mode + ": four distinct addresses", str(addrs))

    def now():
        if mode == "per-address":
            return held(c, net)
        out = {}
        for node in ("node-a", "node-b"):
            path = os.path.join(tmp, "%s-%s.json" % (net, node))
            with open(path, "w") as f:
                json.dump(conf(c.endpoints_csv, tmp, node, net, subnet, **extra), f)
            out.update(listed(plugin, path))
        return out

    before = now()
    check(before == addrs, mode + ": the store holds the four", str(before))
    # node-a's runtime knows only a1: a2 goes; b1 (node-b's) and o1 (othernet's) stay.
    r = plugin.cni("GC", gc_conf(a, ["a1"]), "", node="node-a")
    check(r.rc == 0, mode + ": GC on node-a succeeds", repr(r))
    after = now()
    check(sorted(after) == ["a1", "b1", "o1"], mode + ": node-a's GC released only a2", str(after))
    # node-b's runtime knows nothing of this network: b1 goes, node-a's stay.
    r = plugin.cni("GC", gc_conf(b, []), "", node="node-b")
    check(r.rc == 0, mode + ": GC on node-b succeeds", repr(r))
    after = now()
    check(sorted(after) == ["a1", "o1"], mode + ": node-b's GC released only b1", str(after))
    # The released addresses are free again: node-b gets one of them back (the pool is empty
    # but for a1 and o1 in per-address mode; node slices: b's slice is its own).
    got = add(plugin, b, "b2", "node-b")
    check(got not in (addrs["a1"], addrs["o1"]), mode + ": a new ADD avoids the live ones", got)
    for cid, cfg, node in (("a1", a, "node-a"), ("o1", other, "node-a"), ("b2", b, "node-b")):
        r = plugin.cni("DEL", cfg, cid, node=node)
        check(r.rc == 0, "%s: DEL %s" % (mode, cid), repr(r))
    check(now() == {}, mode + ": nothing left after the DELs", str(now()))


def status_case(plugin, c, tmp):
    net = TAG + "-status"
    # 10.66.0.0/30: two usable addresses (.1 and .2).
    cfg = conf(c.endpoints_csv, tmp, "node-a", net, "10.66.0.0/30")
    r = plugin.cni("STATUS", cfg, "")
    check(r.rc == 0, "STATUS 0 while etcd answers and the range has room", repr(r))
    add(plugin, cfg, "s1", "node-a")
    add(plugin, cfg, "s2", "node-a")
    r = plugin.cni("ADD", cfg, "s3", node="node-a")
    check(r.rc != 0 and r.code == 102, "ADD into the exhausted range: code 102", repr(r))
    r = plugin.cni("STATUS", cfg, "")
    check(r.rc != 0 and r.code == 50 and "exhausted" in r.stdout,
          "STATUS 50 once the range is exhausted, saying so", repr(r))
    for cid in ("s1", "s2"):
        r = plugin.cni("DEL", cfg, cid)
        check(r.rc == 0, "DEL " + cid, repr(r))
    r = plugin.cni("STATUS", cfg, "")
    check(r.rc == 0, "STATUS 0 again after the DELs", repr(r))


def range_edit_case(plugin, c, tmp):
    net = TAG + "-edit"
    old = conf(c.endpoints_csv, tmp, "node-a", net, "10.67.0.0/28")
    new = conf(c.endpoints_csv, tmp, "node-a", net, "10.67.1.0/28")
    first = add(plugin, old, "e1", "node-a")
    check(first.startswith("10.67.0."), "ADD in the old range", first)
    moved = add(plugin, new, "e1", "node-a")
    check(moved.startswith("10.67.1."), "re-ADD after the edit moves into the new range", moved)
    now = held(c, net)
    check(now == {"e1": moved}, "the old address left etcd; the attachment holds one", str(now))
    r = plugin.cni("DEL", new, "e1")
    check(r.rc == 0 and held(c, net) == {}, "DEL after the edit frees the new address",
          repr(r) + str(held(c, net)))


def body(plugin, tmp):
    with etcd_harness.Cluster(1) as c:
        gc_case(plugin, c, tmp, "per-address", {})
        gc_case(plugin, c, tmp, "node-slices", {"node_slice_size": "/28"})
        status_case(plugin, c, tmp)
        range_edit_case(plugin, c, tmp)
        # Last: etcd gone. STATUS says 50 and names the endpoint.
        cfg = conf(c.endpoints_csv, tmp, "node-a", TAG + "-status", "10.66.0.0/30")
        c.close()
        r = plugin.cni("STATUS", cfg, "")
        check(r.rc != 0 and r.code == 50 and "127.0.0.1" in (r.stdout + r.stderr),
              "STATUS 50 naming the endpoint once etcd is gone", repr(r))


if __name__ == "__main__":
    sys.exit(cni_driver.run_main("verbs_test", body))
