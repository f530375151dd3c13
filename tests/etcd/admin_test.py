"""`ipoib ipam list|release|import --config NETCONF` against the cluster store on a real etcd
member (etcd_harness.py), with reservations made by the real binary invoked as `whereabouts` on
two simulated nodes (NODENAME).

 1. list --config opens the etcd store NETCONF's IPAM names (also from a NAD in JSON): every
    reservation with its node and pod; --node filters by the node that made it.
 2. release --config: by --ip (the address and its index keys leave etcd), by --container, and
    --node alone (a node removed from the cluster); --store-dir still opens a local store.
 3. import into etcd from whereabouts lists: --dry-run writes nothing (no key changes), the
    import writes every allocation with its pod reference (list --config shows them), a second
    run is idempotent (no key changes), a conflicting list is reported with exit 1 and nothing
    is overwritten, and the next ADD never gets an imported address.
 4. etcd unreachable: list fails with exit 1 naming the endpoint, within lock_timeout_ms.
Exit 77 only when etcd/etcdctl are missing.
usage: admin_test.py <the ipoib binary>
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cni_driver  # noqa: E402
import etcd_harness  # noqa: E402

NET = "adm%d" % os.getpid()
check = cni_driver.check


def netconf(endpoints, store_dir, **extra):
    ipam = {"type": "whereabouts", "range": "10.62.0.0/28", "network_name": NET,
            "datastore": "etcd", "etcd_host": endpoints, "store_dir": store_dir}
    ipam.update(extra)
    return {"cniVersion": "1.0.0", "name": "admnet",
            "plugins": [{"type": "ipoib", "master": "ib0", "ipam": ipam}, {"type": "tuning"}]}


def plugin_conf(conflist):
    p = dict(conflist["plugins"][0])
    p.update(cniVersion=conflist["cniVersion"], name=conflist["name"], type="macvlan")
    return p


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def listed(plugin, config, *extra):
    r = plugin.admin("list", "--json", "--config", config, *extra)
    assert r.returncode == 0, "list: " + r.stderr
    doc = json.loads(r.stdout)
    return doc, [res for p in doc["pools"] for res in p["reservations"]]


def snapshot(cluster):
    """Every key under this test's network with its mod revision: what changed."""
    r = cluster.etcdctl("get", "--prefix", "/ipoib/v1/net/%s/" % NET, "-w", "json")
    assert r.returncode == 0, r.stderr
    return {kv["key"]: kv["mod_revision"] for kv in json.loads(r.stdout).get("kvs", [])}


def key_names(cluster, part):
    """Keys under /ipoib/v1/net/NET/<part>/, without DEL's tombstones (att/.../~released, on a
    lease: docs/ipam.md)."""
    r = cluster.etcdctl("get", "--prefix", "--keys-only", "/ipoib/v1/net/%s/%s/" % (NET, part))
    return [k for k in r.stdout.split() if k and not k.endswith("/~released")]


def list_and_release(plugin, c, tmp, config):
    conflist = json.load(open(config))
    addrs = {}
    for node, cid in (("node-a", "a1"), ("node-b", "b1"), ("node-a", "a2")):
        node_conf = netconf(c.endpoints_csv, os.path.join(tmp, node))
        r = plugin.cni("ADD", plugin_conf(node_conf), cid, node=node, pod="ns/pod-" + cid)
        assert r.rc == 0, "ADD %s on %s: %r" % (cid, node, r)
        addrs[cid] = r.address

    doc, res = listed(plugin, config)
    check(doc["datastore"] == "etcd" and doc["store"].startswith("etcd http://127.0.0.1"),
          "list --config opens the etcd store", json.dumps(doc)[:300])
    by_cid = {r["container_id"]: r for r in res}
    check(sorted(by_cid) == ["a1", "a2", "b1"], "list shows every node's reservations",
          str(sorted(by_cid)))
    check(all(by_cid[c_]["node"] == n for c_, n in (("a1", "node-a"), ("b1", "node-b"),
                                                     ("a2", "node-a"))),
          "list --json names the node of every reservation", str(res))
    check(by_cid.get("b1", {}).get("pod") == "ns/pod-b1" and
          by_cid["b1"]["ip"] == addrs["b1"], "list shows pod and address", str(res))
    _, only_b = listed(plugin, config, "--node", "node-b")
    check([r["container_id"] for r in only_b] == ["b1"], "list --node node-b", str(only_b))
    table = plugin.admin("list", "--config", config, "--node", "node-a")
    # The reservation rows (IP, CONTAINER, ...), not the range line, whose bounds may be either
    # address: the cluster store picks at random among free addresses.
    rows = [l.split() for l in table.stdout.splitlines()]
    cids = [r[1] for r in rows if len(r) >= 6 and r[0] not in ("IP", "range", "pool")]
    check(table.returncode == 0 and "a1" in cids and "a2" in cids and "b1" not in cids and
          "node-a" in table.stdout, "list table with --node", table.stdout)

    # A NetworkAttachmentDefinition as `kubectl get net-attach-def -o json` prints it.
    nad = write_json(os.path.join(tmp, "nad.json"), {
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "admnet"}, "spec": {"config": json.dumps(conflist)}})
    _, via_nad = listed(plugin, nad)
    check(len(via_nad) == 3, "list --config NAD.json reads its spec.config", str(via_nad))

    # release by address: the reservation and its index keys leave etcd.
    att_before = len(key_names(c, "att"))
    check(any(k.endswith("/b1") for k in key_names(c, "pod")), "b1 has a pod index key")
    r = plugin.admin("release", "--config", config, "--ip", addrs["b1"])
    check(r.returncode == 0 and ("released " + addrs["b1"]) in r.stdout and "node node-b" in
          r.stdout, "release --config --ip", r.stdout + r.stderr)
    check(len(key_names(c, "att")) == att_before - 1, "release removed the attachment index")
    check(not any(k.endswith("/b1") for k in key_names(c, "pod")), "release removed the pod index")
    r = plugin.admin("release", "--config", config, "--ip", addrs["b1"])
    check(r.returncode == 1 and "no reservation matched" in r.stderr, "release again: no match",
          r.stderr)
    # --node narrows: a1 is node-a's, so naming node-b frees nothing.
    r = plugin.admin("release", "--config", config, "--container", "a1", "--node", "node-b")
    check(r.returncode == 1, "release --container of another --node frees nothing", r.stdout)
    # --node alone: everything node-a made.
    r = plugin.admin("release", "--config", config, "--node", "node-a")
    check(r.returncode == 0 and addrs["a1"] in r.stdout and addrs["a2"] in r.stdout,
          "release --node node-a frees everything node-a made", r.stdout + r.stderr)
    _, res = listed(plugin, config)
    check(res == [], "the pool is empty", str(res))
    check(key_names(c, "ip4") == [] and key_names(c, "att") == [] and key_names(c, "pod") == [],
          "no reservation or index key is left in etcd")
    # --store-dir still means a local store (empty here), not the cluster's.
    r = plugin.admin("list", "--json", "--store-dir", os.path.join(tmp, "local-only"))
    check(r.returncode == 0 and json.loads(r.stdout)["datastore"] == "local",
          "list --store-dir still opens a local store", r.stdout + r.stderr)


def whereabouts_lists(tmp):
    """IPPools and overlapping-range reservations as kubectl prints them (import_test.cpp's
    shapes), for this network's prefix."""
    pools = {"apiVersion": "v1", "kind": "List", "items": [
        {"kind": "IPPool", "metadata": {"name": NET + "-10.62.0.0-28",
                                        "namespace": "kube-system"},
         "spec": {"range": "10.62.0.0/28", "allocations": {
             "1": {"id": "wa-c1", "podref": "default/mpi-0", "ifname": "net1"},
             "2": {"id": "wa-c2", "podref": "default/mpi-1"},
             "5": {"id": "wa-c5", "podref": "hpc/rank-5", "ifname": "net1"}}}},
        {"kind": "IPPool", "metadata": {"name": "other-10.62.0.0-28"},
         "spec": {"range": "10.62.0.0/28", "allocations": {"9": {"id": "x9", "podref": "x/y"}}}},
    ]}
    reservations = {"kind": "List", "items": [
        {"kind": "OverlappingRangeIPReservation", "metadata": {"name": NET + "-10.62.0.1"},
         "spec": {"containerid": "wa-c1", "podref": "default/mpi-0", "ifname": "net1"}},
        {"kind": "OverlappingRangeIPReservation", "metadata": {"name": NET + "-10.62.0.7"},
         "spec": {"containerid": "wa-c7", "podref": "default/mpi-7", "ifname": "net1"}},
    ]}
    conflicting = {"kind": "IPPool", "metadata": {"name": NET + "-10.62.0.0-28"},
                   "spec": {"range": "10.62.0.0/28", "allocations": {
                       "5": {"id": "intruder", "podref": "evil/pod", "ifname": "net1"}}}}
    return (write_json(os.path.join(tmp, "pools.json"), pools),
            write_json(os.path.join(tmp, "reservations.json"), reservations),
            write_json(os.path.join(tmp, "conflicting.json"), conflicting))


def import_cases(plugin, c, tmp, config):
    pools, reservations, conflicting = whereabouts_lists(tmp)
    args = ["import", "--whereabouts", pools, "--whereabouts", reservations, "--config", config]
    before = snapshot(c)
    r = plugin.admin(*(args + ["--dry-run"]))
    check(r.returncode == 0 and "dry run: 4 to reserve, 0 already present" in r.stdout,
          "import --dry-run says what it would write", r.stdout + r.stderr)
    check(snapshot(c) == before, "import --dry-run changes no key in etcd")

    r = plugin.admin(*args)
    check(r.returncode == 0 and "4 reserved, 0 already present, 0 conflicting" in r.stdout and
          "etcd http://127.0.0.1" in r.stdout, "import into etcd", r.stdout + r.stderr)
    check("skip 10.62.0.9" in r.stdout, "another network_name's pool is skipped", r.stdout)
    _, res = listed(plugin, config)
    pods = {x["ip"]: (x["container_id"], x["pod"], x["node"]) for x in res}
    check(pods == {"10.62.0.1": ("wa-c1", "default/mpi-0", ""),
                   "10.62.0.2": ("wa-c2", "default/mpi-1", ""),
                   "10.62.0.5": ("wa-c5", "hpc/rank-5", ""),
                   "10.62.0.7": ("wa-c7", "default/mpi-7", "")},
          "list --config shows the imported reservations with their pods", str(pods))

    after_import = snapshot(c)
    r = plugin.admin(*args)
    check(r.returncode == 0 and "0 reserved, 4 already present, 0 conflicting" in r.stdout,
          "a second import is idempotent", r.stdout + r.stderr)
    changed = {k for k, rev in snapshot(c).items() if after_import.get(k) != rev}
    check(not any("/ip4/" in k or "/att/" in k or "/pod/" in k for k in changed),
          "the second import rewrote no reservation key", str(changed))

    r = plugin.admin("import", "--whereabouts", conflicting, "--config", config)
    check(r.returncode == 1 and "conflict 10.62.0.5: held by container wa-c5" in r.stderr and
          "not overwritten" in r.stderr, "a conflict is reported with exit 1", r.stdout + r.stderr)
    _, res = listed(plugin, config)
    held = {x["ip"]: x["container_id"] for x in res}
    check(held.get("10.62.0.5") == "wa-c5" and "intruder" not in held.values(),
          "the conflict overwrote nothing", str(held))

    # The next pods never get an imported address.
    node_conf = netconf(c.endpoints_csv, os.path.join(tmp, "node-a"))
    got = []
    for i in range(3):
        r = plugin.cni("ADD", plugin_conf(node_conf), "new-%d" % i, pod="ns/new-%d" % i)
        assert r.rc == 0, repr(r)
        got.append(r.address)
    check(not set(got) & set(pods), "ADD after the import skips imported addresses", str(got))
    # The pod's DEL releases an imported reservation (container ID + ifname as recorded).
    r = plugin.cni("DEL", plugin_conf(node_conf), "wa-c2", pod="default/mpi-1")
    _, res = listed(plugin, config)
    check(r.rc == 0 and "10.62.0.2" not in {x["ip"] for x in res},
          "the pod's DEL releases its imported address", repr(r))


def unreachable_case(plugin, tmp):
    dead = etcd_harness._free_ports(1)[0]
    config = write_json(os.path.join(tmp, "dead.conflist"),
                        netconf("http://127.0.0.1:%d" % dead, os.path.join(tmp, "node-dead"),
                                lock_timeout_ms=1500))
    start = time.monotonic()
    r = plugin.admin("list", "--config", config)
    took = time.monotonic() - start
    check(r.returncode == 1 and "127.0.0.1:%d" % dead in r.stderr,
          "list with etcd unreachable fails naming the endpoint", r.stderr)
    check(took < 10, "and returns within its time-out (%.1f s)" % took)


def body(plugin, tmp):
    with etcd_harness.Cluster(1) as c:
        config = write_json(os.path.join(tmp, "10-adm.conflist"),
                            netconf(c.endpoints_csv, os.path.join(tmp, "admin-host")))
        list_and_release(plugin, c, tmp, config)
        import_cases(plugin, c, tmp, config)
    unreachable_case(plugin, tmp)


if __name__ == "__main__":
    sys.exit(cni_driver.run_main("admin_test", body))
