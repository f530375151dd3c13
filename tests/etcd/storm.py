#!/usr/bin/env python3
"""tests/etcd/storm.py — ADD/DEL storms of simulated nodes against the IPAM (issue 12, Tests).

A node is a process of its own with its own node_name and its own store_dir; its worker threads
run the `ipoib` binary invoked as `whereabouts` the way a runtime does (CNI_* environment, config
on stdin). Every operation is logged with its start and end on CLOCK_MONOTONIC (one clock for
every process), and the checks run on those logs and on the store:

  duplicates  no address acknowledged to two attachments live at the same time. An attachment
              holds its address from the moment its ADD returned it until its DEL started
              (never a false positive: before the ack and after the DEL began, the store may
              legitimately hand the address to someone else).
  lost        every attachment live at the end is held by the ground truth (etcd records in
              per-address mode, each node's `ipoib ipam list --json` otherwise) and a repeated
              ADD returns the same address (CNI idempotency).
  leaks       after every DEL the ground truth holds nothing; per-address (and a shared local
              store): exactly `capacity` ADDs succeed, the next fails with code 102 (exhausted);
              node slices: each node's peak demand of the storm is served again; then every
              slice a node records is that node's in etcd, each node holds one slice (the
              return rule keeps one), and etcd claims no slice for a node that does not record
              it (a late or orphaned claim is adopted by the node's next claim, then returned).
              Slices are /29 (/125) so that nodes claim and return slices all through the storm.

Stores (--store):
  etcd          datastore etcd, per-address mode; 3-member cluster (tests/etcd/etcd_harness.py)
  slices        datastore etcd with node_slice_size
  local-shared  the local store, one store_dir for every node: must pass
  local-own     the local store, each node its own store_dir: the cross-node bug issue 12 fixes;
                with --expect-duplicates this is the harness's negative control (it passes only
                when both detectors, the intervals and the ground truth, see duplicates)

--faults (etcd stores): during the storm the etcd leader is killed -9 and restarted, the leader is
SIGSTOPped then continued, two members are SIGSTOPped for longer than lock_timeout_ms (no quorum:
ADDs fail with code 11, DELs are deferred on the node) then continued, and the leader is killed -9
for good (2 of 3 keep quorum); and ~8% of plugin processes are killed -9 at a random moment of
their run. The harness then behaves like a runtime: a killed or failed ADD is followed by DELs
until one succeeds, a killed DEL is retried. ADD may fail with code 11 only under --faults; DEL
must always succeed when not killed. After the storm each node runs one more operation (a DEL of
an unknown container), which applies the releases it deferred, before the ground truth is read.

Usage: storm.py --ipoib BIN --store STORE --family 4|6 [--range CIDR] [--nodes 8] [--ops 256]
                [--faults] [--expect-duplicates] [--seed N] [--keep]
Exit 0 pass, 1 fail, 77 when an etcd store is asked for and etcd/etcdctl are not installed.
Figures (ops, seconds, allocations/s, kills, code-11 ADDs) go to stdout; no timing is asserted.
"""

import argparse
import base64
import bisect
import concurrent.futures
import fcntl
import ipaddress
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import etcd_harness  # noqa: E402
from ipoib_testlib import sanitizer_report  # noqa: E402

# The per-address ground truth: every reservation record (a JSON object with "ip" and
# "container_id") under this prefix, whatever the layout below it (docs/ipam.md, key layout).
ETCD_PREFIX = "/ipoib/v1/"
CODE_TRY_AGAIN = 11
CODE_EXHAUSTED = 102  # ErrorCode::kIpamFailure: the range is exhausted (lib/ipam/plugin.cpp)
PLUGIN_TIMEOUT_S = 60.0
KILL_FRACTION = 0.08
THREADS_PER_NODE = 2
# Under --faults a no-quorum window outlasts this budget, so that ADDs fail with code 11 and DELs
# are deferred (docs/ipam.md: etcd unreachable).
FAULT_LOCK_TIMEOUT_MS = 1500
IFNAME = "net1"

RANGES = {  # (default range, slice size) per family
    4: ("10.90.0.0/24", "/29"),
    6: ("fd00:90::/120", "/125"),
}


def capacity(args):
    # Every address but the network and the all-ones one (lib/ipam/range.cpp).
    return ipaddress.ip_network(args.range).num_addresses - 2


# ---------------------------------------------------------------------------------------------
# One plugin process


class Outcome:
    def __init__(self, rc, out, err, t0, t1, killed_mid):
        self.rc, self.t0, self.t1, self.killed_mid = rc, t0, t1, killed_mid
        self.err = err
        self.code, self.address, self.msg = None, None, out.strip()[-300:]
        try:
            doc = json.loads(out)
            self.code = doc.get("code")
            self.msg = doc.get("msg", self.msg)
            ips = doc.get("ips") or []
            if ips:
                self.address = str(ipaddress.ip_interface(ips[0]["address"]).ip)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass

    @property
    def killed(self):
        return self.rc == -signal.SIGKILL

    @property
    def ok(self):
        return self.rc == 0


def run_plugin(exe, command, cid, conf_bytes, kill_after_s=None):
    """Runs one CNI operation; with kill_after_s, SIGKILLs it after that delay (if still running).
    killed_mid: the plugin had read its config when killed (it was inside the operation)."""
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/proc/self/ns/net",
           "CNI_IFNAME": IFNAME, "CNI_PATH": os.path.dirname(exe), "PATH": "/usr/bin:/bin"}
    rfd, wfd = os.pipe()
    os.write(wfd, conf_bytes)
    os.close(wfd)
    t0 = time.monotonic()
    try:
        p = subprocess.Popen([exe], stdin=rfd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env)
        killed_mid = False
        timeout = PLUGIN_TIMEOUT_S if kill_after_s is None else kill_after_s
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The config still sitting in the pipe: the plugin had not started its work.
            unread = int.from_bytes(fcntl.ioctl(rfd, termios.FIONREAD, b"\0\0\0\0"), "little")
            killed_mid = unread < len(conf_bytes)
            p.kill()
        out, err = p.communicate()
    finally:
        os.close(rfd)
    t1 = time.monotonic()
    return Outcome(p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), t0, t1,
                   killed_mid and p.returncode == -signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# Configuration


def node_name(i):
    return "storm-node-%d" % i


def node_config(args, work, i, endpoints):
    slice_size = RANGES[args.family][1]
    ipam = {"type": "whereabouts", "range": args.range, "node_name": node_name(i),
            "store_dir": os.path.join(work, "store-shared" if args.store == "local-shared"
                                      else "store-%d" % i),
            "lock_timeout_ms": FAULT_LOCK_TIMEOUT_MS if args.faults else 10000}
    if args.store in ("etcd", "slices"):
        ipam.update({"datastore": "etcd", "etcd_host": endpoints})
    if args.store == "slices":
        ipam["node_slice_size"] = slice_size
    return json.dumps({"cniVersion": "1.0.0", "name": "storm", "type": "ipoib",
                       "ipam": ipam}).encode()


def max_live_per_node(args):
    # Slices: 12 needs two /29 (or /125) slices per node, often three while they fragment, of
    # the 32 of a /24: nodes claim and return slices all through the storm. Otherwise at most 3/4 of the range is live (8 nodes x 24 = 192 of 254), never exhausted.
    if args.store == "slices":
        return 12
    return max(THREADS_PER_NODE, min(24, capacity(args) * 3 // 4 // args.nodes))


# ---------------------------------------------------------------------------------------------
# The node process


class Node:
    """One simulated node: THREADS_PER_NODE runtimes sharing the node's config and event log."""

    def __init__(self, args, exe, conf, index, counter, faults_done):
        self.args, self.exe, self.conf, self.index = args, exe, conf, index
        self.counter, self.faults_done = counter, faults_done
        self.lock = threading.Lock()
        self.events = []  # dicts, see record()
        self.live = 0
        self.peak = 0
        self.typical_s = 0.01  # median-ish duration, for the kill delays

    def record(self, **e):
        with self.lock:
            self.events.append(e)

    def op(self, rng, command, cid):
        kill_after = None
        if self.args.faults and rng.random() < KILL_FRACTION:
            kill_after = rng.uniform(0.0, 2 * self.typical_s)
        o = run_plugin(self.exe, command, cid, self.conf, kill_after)
        if not o.killed:
            self.typical_s = 0.9 * self.typical_s + 0.1 * (o.t1 - o.t0)
        with self.counter.get_lock():
            self.counter.value += 1
        if sanitizer_report(o.err):
            self.record(kind="error", what="sanitizer report in %s %s: %s" % (command, cid,
                                                                              o.err[-2000:]))
        return o

    def delete(self, rng, cid):
        """DEL until one succeeds (a runtime retries a failed or killed DEL); returns the start
        of the first attempt (when the runtime stopped counting on the address)."""
        first = None
        for attempt in range(200):
            o = self.op(rng, "DEL", cid)
            first = o.t0 if first is None else first
            # A DEL that could not reach etcd says on stderr that it deferred the release.
            self.record(kind="del", cid=cid, t0=o.t0, t1=o.t1, rc=o.rc, code=o.code,
                        killed=o.killed, mid=o.killed_mid, attempt=attempt,
                        deferred=o.ok and "defer" in o.err.lower())
            if o.ok:
                return first
            if not o.killed:
                self.record(kind="error", what="DEL %s failed (exit %s, code %s): %s" %
                            (cid, o.rc, o.code, o.msg))
                time.sleep(0.05)
        self.record(kind="error", what="DEL %s never succeeded" % cid)
        return first

    def add(self, rng, cid, repeat_of=None):
        """One ADD (a new attachment, or a repeat of a live one); returns the address on an ack.
        A killed or failed ADD is followed by DEL, as a runtime does."""
        o = self.op(rng, "ADD", cid)
        ack = o.ok and o.address is not None
        self.record(kind="add", cid=cid, t0=o.t0, t1=o.t1, rc=o.rc, code=o.code, addr=o.address,
                    killed=o.killed, mid=o.killed_mid, repeat=repeat_of is not None)
        if ack:
            if repeat_of is not None and o.address != repeat_of:
                self.record(kind="error", what="repeated ADD of %s returned %s, first %s" %
                            (cid, o.address, repeat_of))
            return o.address
        if o.ok:
            self.record(kind="error", what="ADD %s succeeded without an address: %s" % (cid, o.msg))
        elif not o.killed and not (self.args.faults and o.code == CODE_TRY_AGAIN):
            self.record(kind="error", what="ADD %s failed (exit %s, code %s): %s" %
                        (cid, o.rc, o.code, o.msg))
        return None

    def worker(self, t):
        rng = random.Random("%d-%d-%d" % (self.args.seed, self.index, t))
        ops = self.args.ops // THREADS_PER_NODE
        cap = max_live_per_node(self.args) // THREADS_PER_NODE
        live = {}  # cid -> address
        serial = 0
        done = 0
        # Under --faults the storm lasts until the last fault was injected.
        while done < ops or not self.faults_done.is_set():
            n = len(live)
            r = rng.random()
            if n and r < 0.1:  # a runtime repeating an ADD it already got an answer for
                cid = rng.choice(sorted(live))
                if self.add(rng, cid, repeat_of=live[cid]) is None:
                    self.end(rng, cid, live)
            elif n < cap and (n < cap // 2 or r < 0.55):
                cid = "n%d-t%d-%d" % (self.index, t, serial)
                serial += 1
                addr = self.add(rng, cid)
                if addr is None:
                    self.delete(rng, cid)
                else:
                    live[cid] = addr
                    with self.lock:
                        self.live += 1
                        self.peak = max(self.peak, self.live)
            elif n:
                self.end(rng, rng.choice(sorted(live)), live)
            done += 1
        self.record(kind="live", items=sorted(live.items()))

    def end(self, rng, cid, live):
        live.pop(cid)
        with self.lock:
            self.live -= 1
        self.delete(rng, cid)

    def run(self, path):
        threads = [threading.Thread(target=self.worker, args=(t,)) for t in range(THREADS_PER_NODE)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.record(kind="peak", value=self.peak)
        with open(path, "w") as f:
            json.dump(self.events, f)


def node_main(args, exe, conf, index, counter, faults_done, path):
    Node(args, exe, conf, index, counter, faults_done).run(path)


# ---------------------------------------------------------------------------------------------
# Ground truth


def etcd_reservations(cluster, details=None):
    """{address: [container_id, ...]} from every reservation record under ETCD_PREFIX; `details`
    (a dict) gets each address's record and revisions, for a failure's report."""
    r = cluster.etcdctl("get", "--prefix", ETCD_PREFIX, "-w", "json")
    if r.returncode != 0:
        raise RuntimeError("etcdctl get %s: %s" % (ETCD_PREFIX, r.stderr.strip()))
    held = {}
    for kv in json.loads(r.stdout).get("kvs", []):
        try:
            rec = json.loads(base64.b64decode(kv.get("value", "")))
        except ValueError:
            continue
        if isinstance(rec, dict) and "ip" in rec and "container_id" in rec:
            ip = str(ipaddress.ip_address(rec["ip"]))
            held.setdefault(ip, []).append(rec["container_id"])
            if details is not None:
                details[ip] = "record %s create_revision %s mod_revision %s" % (
                    json.dumps(rec, sort_keys=True), kv.get("create_revision"),
                    kv.get("mod_revision"))
    return held


def etcd_slices(cluster):
    """{(range_key, slice): node} from every node-slice key (.../range/<range_key>/slice/<hex>)."""
    r = cluster.etcdctl("get", "--prefix", ETCD_PREFIX, "-w", "json")
    if r.returncode != 0:
        raise RuntimeError("etcdctl get %s: %s" % (ETCD_PREFIX, r.stderr.strip()))
    out = {}
    for kv in json.loads(r.stdout).get("kvs", []):
        key = base64.b64decode(kv["key"]).decode()
        parts = key.split("/")
        if len(parts) >= 3 and parts[-2] == "slice" and parts[-4] == "range":
            rec = json.loads(base64.b64decode(kv.get("value", "")))
            # Key components are percent-encoded (lib/cluster/keys.cpp); the record's are not.
            out[(urllib.parse.unquote(parts[-3]), rec["slice"])] = rec["node"]
    return out


def local_slices(store_dir):
    """{(range_key, slice)} from a node's slice records (<store_dir>/node-slices/slices-*)."""
    d = os.path.join(store_dir, "node-slices")
    out = set()
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.startswith("slices-"):
            with open(os.path.join(d, name)) as f:
                for range_key, slices in json.load(f).get("slices", {}).items():
                    out.update((range_key, s) for s in slices)
    return out


def local_reservations(ipoib, store_dirs):
    held = {}
    for d in sorted(set(store_dirs)):
        if not os.path.isdir(d):
            continue
        r = subprocess.run([ipoib, "ipam", "list", "--json", "--store-dir", d],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise RuntimeError("ipam list --store-dir %s: exit %d: %s%s" %
                               (d, r.returncode, r.stdout[-300:], r.stderr[-300:]))
        for pool in json.loads(r.stdout).get("pools", []):
            for res in pool.get("reservations", []):
                held.setdefault(str(ipaddress.ip_address(res["ip"])), []).append(
                    res["container_id"])
    return held


# ---------------------------------------------------------------------------------------------
# Checks on the event logs


def intervals(events):
    """(address, ack, end, cid) per acknowledged ADD of a new attachment: from its ack to the
    start of the attachment's first DEL after it (inf while live)."""
    dels = {}
    for e in events:
        if e["kind"] == "del":
            dels.setdefault(e["cid"], []).append(e["t0"])
    for ts in dels.values():
        ts.sort()
    out = []
    for e in events:
        if e["kind"] == "add" and e["rc"] == 0 and e["addr"] and not e["repeat"]:
            ts = dels.get(e["cid"], [])
            k = bisect.bisect_left(ts, e["t1"])
            out.append((e["addr"], e["t1"], ts[k] if k < len(ts) else float("inf"), e["cid"]))
    return out


def overlapping(ivs):
    """Pairs of attachments holding one address at the same time."""
    by_addr = {}
    for iv in ivs:
        by_addr.setdefault(iv[0], []).append(iv)
    dups = []
    for addr, lst in by_addr.items():
        lst.sort(key=lambda iv: iv[1])
        latest = None  # the interval ending last so far
        for iv in lst:
            if latest is not None and iv[1] < latest[2]:
                dups.append((addr, latest[3], iv[3]))
            if latest is None or iv[2] > latest[2]:
                latest = iv
    return dups


# ---------------------------------------------------------------------------------------------
# The coordinator


class Storm:
    def __init__(self, args):
        self.args = args
        self.failures = []
        self.figures = []
        self.work = tempfile.mkdtemp(prefix="ipoib-storm-%d-" % os.getpid())
        self.exe = os.path.join(self.work, "whereabouts")
        os.symlink(os.path.abspath(args.ipoib), self.exe)
        self.cluster = None
        self.confs = []
        self.fault_log = []
        self.events = []
        self.details = {}  # address -> its etcd record, for reports
        self.t0 = 0.0

    def fail(self, msg):
        self.failures.append(msg)
        print("FAIL: " + msg, file=sys.stderr)

    def store_dirs(self):
        return [json.loads(c)["ipam"]["store_dir"] for c in self.confs]

    def ground_truth(self):
        if self.args.store == "etcd":
            return etcd_reservations(self.cluster, self.details)
        return local_reservations(self.args.ipoib, self.store_dirs())

    def history(self, cid):
        """What the nodes did with attachment `cid`, on the storm's clock, with the faults."""
        out = ["%.2f-%.2f s %s%s exit %s code %s%s%s" %
               (e["t0"] - self.t0, e["t1"] - self.t0, e["kind"].upper(),
                " (repeat)" if e.get("repeat") else "", e["rc"], e["code"],
                " killed" + (" mid-operation" if e["mid"] else "") if e["killed"] else "",
                " deferred" if e.get("deferred") else "")
               for e in self.events if e.get("cid") == cid]
        out += ["fault at %.2f s: %s" % (t - self.t0, what) for t, what in self.fault_log]
        return "history of %s: %s" % (cid, "; ".join(out))

    def parallel(self, jobs, fn):
        with concurrent.futures.ThreadPoolExecutor(max_workers=2 * THREADS_PER_NODE) as ex:
            return list(ex.map(fn, jobs))

    # -- faults (the coordinator's main thread, while the nodes storm)
    def leader(self, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            i = self.cluster.leader()
            if i >= 0:
                return i
            time.sleep(0.1)
        raise RuntimeError("no etcd leader within %d s" % timeout)

    def faults(self, counter, total, nodes_gone, done):
        try:
            self.inject(counter, total, nodes_gone)
        except RuntimeError as e:
            self.fail("faults: %s" % e)
        finally:
            done.set()

    def inject(self, counter, total, nodes_gone):
        c = self.cluster

        def at(fraction):
            while counter.value < fraction * total and not nodes_gone():
                time.sleep(0.02)
            return not nodes_gone()

        def note(what):
            self.fault_log.append((time.monotonic(), "%s (after %d ops)" % (what, counter.value)))

        if not at(0.15):
            return
        i = self.leader()
        c.kill(i)
        note("kill -9 leader m%d" % i)
        time.sleep(1.0)
        if not c.restart(i):
            self.fail("etcd member m%d did not rejoin after a restart" % i)
        note("m%d restarted" % i)
        if not at(0.45):
            return
        j = self.leader()
        c.signal(j, signal.SIGSTOP)
        note("SIGSTOP leader m%d" % j)
        time.sleep(1.5)
        c.signal(j, signal.SIGCONT)
        note("SIGCONT m%d" % j)
        if not at(0.6):
            return
        # No quorum for longer than lock_timeout_ms: ADDs fail with 11, DELs are deferred.
        pair = [m for m in range(c.n) if m != self.leader()]
        for m in pair:
            c.signal(m, signal.SIGSTOP)
        note("SIGSTOP m%d and m%d: no quorum" % tuple(pair))
        time.sleep(2.5 * FAULT_LOCK_TIMEOUT_MS / 1000)
        for m in pair:
            c.signal(m, signal.SIGCONT)
        note("SIGCONT m%d and m%d" % tuple(pair))
        if not at(0.8):
            return
        k = self.leader()
        c.kill(k)
        note("kill -9 leader m%d, not restarted (2 of 3 keep quorum)" % k)
        time.sleep(1.0)  # the storm goes on through the election and on 2 members

    # -- phases
    def storm(self):
        a = self.args
        ctx = multiprocessing.get_context("fork")
        counter = ctx.Value("l", 0)
        faults_done = ctx.Event()
        if not a.faults:
            faults_done.set()
        paths = [os.path.join(self.work, "events-%d.json" % i) for i in range(a.nodes)]
        procs = [ctx.Process(target=node_main, args=(a, self.exe, self.confs[i], i, counter,
                                                     faults_done, paths[i])) for i in range(a.nodes)]
        t0 = self.t0 = time.monotonic()
        for p in procs:
            p.start()
        if a.faults:
            # In this (the main) thread: a restarted member dies with the thread that started it
            # (etcd_harness.Cluster.restart).
            self.faults(counter, a.nodes * a.ops, lambda: not any(p.is_alive() for p in procs),
                        faults_done)
        for p in procs:
            p.join()
        seconds = time.monotonic() - t0
        events, live, peaks = self.events, {}, []
        for i, (p, path) in enumerate(zip(procs, paths)):
            if p.exitcode != 0:
                self.fail("node %d exited with %s" % (i, p.exitcode))
                continue
            with open(path) as f:
                for e in json.load(f):
                    e["node"] = i
                    events.append(e)
        for when, what in self.fault_log:
            self.figures.append("fault at %.1f s: %s" % (when - t0, what))
        for e in events:
            if e["kind"] == "error":
                self.fail("node %d: %s" % (e["node"], e["what"]))
            elif e["kind"] == "live":
                for cid, addr in e["items"]:
                    live[cid] = (e["node"], addr)
            elif e["kind"] == "peak":
                peaks.append((e["node"], e["value"]))
        adds = [e for e in events if e["kind"] == "add"]
        dels = [e for e in events if e["kind"] == "del"]
        acked = [e for e in adds if e["rc"] == 0 and not e["repeat"]]
        kills = [e for e in adds + dels if e["killed"]]
        busy = [e for e in adds if e["code"] == CODE_TRY_AGAIN]
        durations = sorted((e["t1"] - e["t0"]) * 1000 for e in adds if e["rc"] == 0)
        median = durations[len(durations) // 2] if durations else 0.0
        self.figures.append(
            "storm: %d nodes, %d ops (%d ADD, %d DEL) in %.1f s: %.0f allocations/s, %.0f ops/s; "
            "median ADD %.1f ms; %d plugin processes killed (%d mid-operation); %d ADDs code 11; "
            "%d DELs deferred" % (a.nodes, len(adds) + len(dels), len(adds), len(dels), seconds,
                                  len(acked) / seconds, (len(adds) + len(dels)) / seconds, median,
                                  len(kills), sum(1 for e in kills if e["mid"]), len(busy),
                                  sum(1 for e in dels if e["deferred"])))
        dups = overlapping(intervals(events))
        return live, dict(peaks), dups

    def check_live(self, live, dups):
        """Duplicates and lost reservations at the end of the storm; returns ground-truth dups."""
        held = self.ground_truth()
        truth_dups = {ip: cids for ip, cids in held.items() if len(cids) > 1}
        if not self.args.expect_duplicates:
            for addr, first, second in dups[:10]:
                self.fail("duplicate: %s acknowledged to %s and %s while both were live" %
                          (addr, first, second))
            for ip, cids in sorted(truth_dups.items())[:10]:
                self.fail("duplicate in the store: %s held by %s" % (ip, ", ".join(cids)))
        lost = [(cid, addr) for cid, (_, addr) in live.items() if cid not in held.get(addr, [])]
        stale = sorted((ip, c) for ip, cids in held.items() for c in cids if c not in live)
        for cid, addr in lost[:10]:
            self.fail("lost: %s acknowledged %s and is live, the store does not hold it" %
                      (cid, addr))
        for ip, c in stale[:10]:
            self.fail("leak: %s held by %s, which is not live; %s; %s" %
                      (ip, c, self.details.get(ip, ""), self.history(c)))

        # CNI idempotency: each live attachment's node repeats its ADD.
        def repeat(item):
            cid, (node, addr) = item
            o = run_plugin(self.exe, "ADD", cid, self.confs[node])
            return cid, addr, o

        for cid, addr, o in self.parallel(sorted(live.items()), repeat):
            if o.address != addr:
                self.fail("repeated ADD of live %s returned %s (exit %s, code %s: %s), first %s" %
                          (cid, o.address, o.rc, o.code, o.msg if not o.ok else "", addr))
        self.figures.append("end of storm: %d live attachments, %d duplicate pairs (intervals), "
                            "%d addresses held twice (store), %d lost, %d stale" %
                            (len(live), len(dups), len(truth_dups), len(lost), len(stale)))
        return truth_dups

    def delete_all(self, items):
        """items: [(node, cid)]; every DEL must succeed."""
        def one(item):
            node, cid = item
            return cid, run_plugin(self.exe, "DEL", cid, self.confs[node])

        for cid, o in self.parallel(items, one):
            if not o.ok:
                self.fail("DEL %s failed (exit %s, code %s): %s" % (cid, o.rc, o.code, o.msg))

    def flush(self):
        """One operation per node (a DEL of an attachment that never existed): a node applies
        the releases it deferred while etcd was unreachable at its next operation."""
        self.delete_all([(i, "flush-%d" % i) for i in range(self.args.nodes)])

    def expect_empty(self, when):
        held = self.ground_truth()
        if held:
            self.fail("%s: the store still holds %d addresses, e.g. %s" %
                      (when, len(held), sorted(held.items())[:5]))

    def check_slices(self, when, settled):
        """Node slices: every slice in a node's record is that node's in etcd (else two nodes
        could allocate in it). settled (every attachment deleted and the nodes' demand served
        once more, so every node claimed again): each node holds one slice (the return rule) and
        etcd names no node for a slice that node does not record (a claim applied after its
        plugin gave up or died, or a return that did not reach etcd, adopted at the next
        claim and returned by the rule)."""
        claims = etcd_slices(self.cluster)
        recorded = {}
        for i, d in enumerate(self.store_dirs()):
            for rs in local_slices(d):
                recorded[rs] = i
                owner = claims.get(rs)
                if owner != node_name(i):
                    self.fail("%s: slice %s (range %s) is in node %d's record, etcd names %s" %
                              (when, rs[1], rs[0], i, owner))
        orphans = sorted((rs, n) for rs, n in claims.items() if rs not in recorded)
        self.figures.append("%s: %d slices claimed in etcd, %d recorded by their nodes, %d "
                            "claimed for a node that does not record them" %
                            (when, len(claims), len(recorded), len(orphans)))
        if not settled:
            return
        for rs, n in orphans[:10]:
            self.fail("%s: slice %s (range %s) is claimed for %s, which does not record it" %
                      (when, rs[1], rs[0], n))
        per_node = {}
        for rs, i in recorded.items():
            per_node.setdefault(i, []).append(rs[1])
        for i, slices in sorted(per_node.items()):
            if len(slices) > 1:
                self.fail("%s: node %d still holds %d slices (%s), the return rule keeps one" %
                          (when, i, len(slices), ", ".join(sorted(slices))))

    def refill(self, demand, when):
        """ADDs of `demand` [(node, count)] spread over the nodes; returns the acks [(node, cid,
        addr)] after checking they are pairwise distinct."""
        # A container ID is 1..253 printable bytes without spaces: the phase's name with dashes.
        tag = when.replace(" ", "-")
        jobs = [(node, "%s-%d-%d" % (tag, node, k)) for node, n in demand for k in range(n)]
        random.Random(self.args.seed).shuffle(jobs)

        def one(job):
            node, cid = job
            return node, cid, run_plugin(self.exe, "ADD", cid, self.confs[node])

        t0 = time.monotonic()
        acks = []
        for node, cid, o in self.parallel(jobs, one):
            if o.ok and o.address:
                acks.append((node, cid, o.address))
            else:
                self.fail("%s: ADD %s on node %d failed (exit %s, code %s): %s" %
                          (when, cid, node, o.rc, o.code, o.msg))
        seconds = time.monotonic() - t0
        addrs = [a for _, _, a in acks]
        if len(set(addrs)) != len(addrs):
            self.fail("%s: %d of %d addresses handed out twice" %
                      (when, len(addrs) - len(set(addrs)), len(addrs)))
        self.figures.append("%s: %d ADDs in %.1f s (%.0f allocations/s)" %
                            (when, len(jobs), seconds, len(jobs) / seconds))
        return acks

    def capacity_check(self):
        """Per-address: the whole range again, exactly its capacity."""
        n = self.args.nodes
        cap = capacity(self.args)
        demand = [(i, cap // n + (1 if i < cap % n else 0)) for i in range(n)]
        acks = self.refill(demand, "capacity")
        o = run_plugin(self.exe, "ADD", "one-more", self.confs[0])
        if o.code != CODE_EXHAUSTED:
            self.fail("ADD beyond the capacity (%d): expected code %d (exhausted), got exit %s "
                      "code %s address %s: %s" % (cap, CODE_EXHAUSTED, o.rc, o.code, o.address,
                                                  o.msg))
        return acks + [(0, "one-more", None)]

    def run(self):
        a = self.args
        endpoints = ""
        if a.store in ("etcd", "slices"):
            self.cluster = etcd_harness.Cluster(3).__enter__()
            endpoints = self.cluster.endpoints_csv
        self.confs = [node_config(a, self.work, i, endpoints) for i in range(a.nodes)]
        for d in self.store_dirs():
            os.makedirs(d, mode=0o700, exist_ok=True)
        t0 = time.monotonic()
        live, peaks, dups = self.storm()
        held = self.ground_truth()
        self.figures.append("before the flush: %d addresses held by attachments no longer live "
                            "(releases deferred while etcd was unreachable)" %
                            sum(1 for cids in held.values() for c in cids if c not in live))
        self.flush()
        truth_dups = self.check_live(live, dups)
        if a.expect_duplicates:
            # The negative control: both detectors must see the cross-node duplicates.
            if not dups:
                self.fail("negative control: the interval check found no duplicate")
            if not truth_dups:
                self.fail("negative control: the store listing found no duplicate")
            return
        self.delete_all(sorted((node, cid) for cid, (node, _) in live.items()))
        self.flush()
        self.expect_empty("after every DEL")
        if a.store == "slices":
            self.check_slices("after every DEL", settled=False)
            acks = self.refill(sorted(peaks.items()), "same per-node demand")
        else:
            acks = self.capacity_check()
        self.delete_all([(node, cid) for node, cid, _ in acks])
        self.flush()
        self.expect_empty("after the last DELs")
        if a.store == "slices":
            self.check_slices("after the last DELs", settled=True)
        self.figures.append("total %.1f s" % (time.monotonic() - t0))

    def close(self):
        if self.cluster is not None:
            self.cluster.close()
        if self.args.keep:
            print("kept " + self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ipoib", required=True)
    ap.add_argument("--store", required=True, choices=["etcd", "slices", "local-shared",
                                                       "local-own"])
    ap.add_argument("--family", type=int, choices=[4, 6], default=4)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--ops", type=int, default=256, help="operations per node")
    ap.add_argument("--range", help="the IPAM range (default 10.90.0.0/24, fd00:90::/120); "
                    "node slices keep the default (16 slices for 8 nodes)")
    ap.add_argument("--faults", action="store_true")
    ap.add_argument("--expect-duplicates", action="store_true")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("STORM_SEED", "0")) or
                    random.SystemRandom().randrange(1, 1 << 30))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    a.range = a.range or RANGES[a.family][0]
    if a.store in ("etcd", "slices") and not etcd_harness.binaries_present():
        print("SKIP: etcd/etcdctl not installed", file=sys.stderr)
        return 77
    if a.faults and a.store not in ("etcd", "slices"):
        ap.error("--faults needs an etcd store")
    label = "%s IPv%d%s%s seed %d" % (a.store, a.family, " faults" if a.faults else "",
                                       " (negative control)" if a.expect_duplicates else "", a.seed)
    print("storm: " + label + " (replay: STORM_SEED=%d)" % a.seed)
    s = Storm(a)
    try:
        s.run()
    except RuntimeError as e:  # etcd or the listing did not answer: a failure, with the figures
        s.fail(str(e))
    finally:
        s.close()
    for f in s.figures:
        print("  " + f)
    if s.failures:
        print("storm %s: FAIL (%d problems)" % (label, len(s.failures)))
        return 1
    print("storm %s: ok" % label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
