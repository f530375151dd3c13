#!/usr/bin/env python3
"""bench/harness.py — the measuring half of scripts/bench (which builds, sets up and cleans up).

Runs whole plugin processes as a runtime does (environment + config on stdin, result on stdout),
timed with time.monotonic_ns() around os.posix_spawn() .. os.wait4(). wait4's rusage gives the
CPU time (user + system) of the process and of the children it reaped — what GNU time prints as
%U + %S — so a Go plugin that execs its IPAM plugin is charged for both. Peak RSS comes from
separate runs under GNU time (%M); see spawn() for why. Every process is checked: a non-zero
exit, a missing IP or a missing interface stops the run (a figure that could not be measured is
an error; a missed target is not).

Usage (root; scripts/bench creates the node netns, the harness enters it before any thread):
  harness.py --node-netns NAME --parent IF --ours-plugin P --ours-ipam W --peer-dir D
             --floor F --exec-floor E --work DIR --pod-prefix PFX [--product P] [--top DIR]
             [--etcd-floor F] [--cluster-only]
             [--quick] [--iterations N] [--out F] [--json F]
"""

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "support"))
import ipoib_testlib as testlib  # noqa: E402
import cluster  # noqa: E402  (bench/cluster.py: the cluster store on etcd, issue 12)

CNI_VERSION = "1.0.0"
PLUGIN_TIMEOUT_S = 30.0
GNU_TIME = "/usr/bin/time"


class BenchError(Exception):
    """A measurement that could not be taken."""


# ---------------------------------------------------------------------------------------------
# Processes


class Watchdog:
    """Kills a spawned process that runs longer than PLUGIN_TIMEOUT_S, so a hung plugin fails the
    run instead of hanging CI. One thread for all spawns keeps the timed path free of it."""

    def __init__(self):
        self._deadlines = {}
        self._lock = threading.Lock()
        self.killed = set()
        threading.Thread(target=self._run, daemon=True).start()

    def watch(self, pid):
        with self._lock:
            self._deadlines[pid] = time.monotonic() + PLUGIN_TIMEOUT_S

    def done(self, pid):
        with self._lock:
            self._deadlines.pop(pid, None)

    def _run(self):
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            with self._lock:
                late = [p for p, d in self._deadlines.items() if d < now]
                for p in late:
                    self._deadlines.pop(p)
                    self.killed.add(p)
            for p in late:
                try:
                    os.kill(p, 9)
                except ProcessLookupError:
                    pass


WATCHDOG = None


class Run:
    __slots__ = ("argv", "status", "wall_ns", "cpu_ns", "maxrss_kb", "stdout", "stderr")

    def ok(self):
        return os.WIFEXITED(self.status) and os.WEXITSTATUS(self.status) == 0

    def describe(self):
        how = (f"exit {os.WEXITSTATUS(self.status)}" if os.WIFEXITED(self.status)
               else f"signal {os.WTERMSIG(self.status)}")
        return (f"{' '.join(self.argv)}: {how}\n  stdout: {self.stdout.strip()[:600]}\n"
                f"  stderr: {self.stderr.strip()[:600]}")


def spawn(argv, env, stdin_path, scratch, rss=False):
    """Runs argv[0] with stdin from stdin_path; stdout/stderr go to files under `scratch` (one per
    thread). Returns a Run. The clock covers spawn, the whole process life and the reap.

    Peak RSS needs a small parent: posix_spawn shares the harness's memory until exec, and the
    kernel carries that mm's high-water mark into the child's ru_maxrss (exec_mmap ->
    setmax_mm_hiwater_rss), so every child would report the Python interpreter's size. With
    rss=True the process runs under GNU time (`-f %M`) and maxrss_kb is what GNU time prints;
    wall and CPU of such a run include GNU time and are not used."""
    out_path = f"{scratch}.out"
    err_path = f"{scratch}.err"
    rss_path = f"{scratch}.rss"
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, stdin_path, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    args = list(argv)
    if rss:
        args = [GNU_TIME, "-f", "%M", "-o", rss_path, "--"] + args
    t0 = time.monotonic_ns()
    pid = os.posix_spawn(args[0], args, env, file_actions=actions)
    WATCHDOG.watch(pid)
    _, status, ru = os.wait4(pid, 0)
    t1 = time.monotonic_ns()
    WATCHDOG.done(pid)
    r = Run()
    r.argv = list(argv)
    r.status = status
    r.wall_ns = t1 - t0
    r.cpu_ns = int((ru.ru_utime + ru.ru_stime) * 1e9)
    r.maxrss_kb = None
    with open(out_path, encoding="utf-8", errors="replace") as f:
        r.stdout = f.read()
    with open(err_path, encoding="utf-8", errors="replace") as f:
        r.stderr = f.read()
    if pid in WATCHDOG.killed:
        raise BenchError(f"timed out after {PLUGIN_TIMEOUT_S}s: {r.describe()}")
    if rss and r.ok():
        with open(rss_path, encoding="ascii") as f:
            r.maxrss_kb = int(f.read().split()[-1])
    return r


def must(run, what):
    if not run.ok():
        raise BenchError(f"{what} failed: {run.describe()}")
    return run


def sh(*argv):
    """An untimed helper command (ip netns add ...); failure is fatal."""
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: {p.stderr.strip()}")
    return p.stdout


def enter_netns(name):
    try:
        testlib.enter_netns(f"/run/netns/{name}")
    except OSError as e:
        raise BenchError(str(e))


# ---------------------------------------------------------------------------------------------
# CNI invocations


class Cni:
    """One plugin as a runtime invokes it: config file on stdin, CNI_* in the environment."""

    def __init__(self, label, binary, config, cni_path, work):
        self.label = label
        self.binary = binary
        self.cni_path = cni_path
        self.config_path = os.path.join(work, f"{label}.conf")
        with open(self.config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)

    def env(self, command, container_id, netns, pod):
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": "net1",
            "CNI_PATH": self.cni_path,
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={pod}",
        }

    def run(self, command, container_id, netns, pod, scratch, rss=False):
        return spawn([self.binary], self.env(command, container_id, netns, pod), self.config_path,
                     scratch, rss)


def result_ip(run, what):
    try:
        doc = json.loads(run.stdout)
        return doc["ips"][0]["address"].split("/")[0]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise BenchError(f"{what}: no IP in the result ({e}): {run.describe()}") from e


# ---------------------------------------------------------------------------------------------
# Statistics


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def ms(ns):
    return ns / 1e6


# ---------------------------------------------------------------------------------------------
# Measurements


class Bench:
    def __init__(self, a):
        self.a = a
        self.quick = a.quick
        self.work = a.work
        self.node_ns_path = f"/run/netns/{a.node_netns}"
        self.pod_seq = 0
        self.results = {}
        # Sample counts: --quick only proves the script works; the defaults are for the README.
        self.n_cycles = a.iterations or (5 if self.quick else 40)
        self.n_exec = 20 if self.quick else 200
        self.n_ipam = a.iterations or (5 if self.quick else 40)
        self.levels = [0, 200, 1000] if self.quick else [0, 1000, 10000]
        self.n_concurrent = 200 if self.quick else 2000
        self.clients = 8
        self.n_rss = 3 if self.quick else 10  # runs under GNU time, for peak RSS only

    # -- pod netns ---------------------------------------------------------------------------
    def new_pod(self):
        self.pod_seq += 1
        name = f"{self.a.pod_prefix}{self.pod_seq}"
        sh("ip", "netns", "add", name)
        return name

    def del_pod(self, name):
        sh("ip", "netns", "del", name)

    def pod_has(self, pod, ip):
        out = sh("ip", "-n", pod, "-o", "-4", "addr", "show", "dev", "net1")
        return ip is None or f" {ip}/" in out

    def pod_link_gone(self, pod):
        p = subprocess.run(["ip", "-n", pod, "link", "show", "dev", "net1"], capture_output=True)
        return p.returncode != 0

    # -- 1, 2, 3, 6, 7: ADD + DEL cycles into a fresh netns ------------------------------------
    def cycles(self):
        a = self.a
        ours = Cni("ours", a.ours_plugin, {
            "cniVersion": CNI_VERSION, "name": "ipbench", "type": "ipoib", "master": a.parent,
            "ipam": {"type": "whereabouts", "range": "10.77.0.0/16",
                     "store_dir": os.path.join(self.work, "ours-store")},
        }, os.path.dirname(a.ours_plugin), self.work)
        peer = Cni("peer", os.path.join(a.peer_dir, "macvlan"), {
            "cniVersion": CNI_VERSION, "name": "ipbench", "type": "macvlan", "master": a.parent,
            "mode": "bridge",
            "ipam": {"type": "host-local", "subnet": "10.78.0.0/16",
                     "dataDir": os.path.join(self.work, "peer-store")},
        }, a.peer_dir, self.work)
        scratch = os.path.join(self.work, "cycle")
        samples = {k: {"add": [], "del": [], "cpu": [], "rss_add": [], "rss_del": []}
                   for k in ("ours", "peer", "floor", "floor-move")}
        warmup = 2
        floor_ip = ipaddress.ip_address("10.79.0.2")
        for i in range(warmup + self.n_cycles + self.n_rss):
            # Warm-up, then timed cycles, then cycles under GNU time for peak RSS only.
            rss = i >= warmup + self.n_cycles
            # Rotate the order so no variant always runs right after the same neighbour.
            order = ["ours", "peer", "floor", "floor-move"]
            order = order[i % 4:] + order[:i % 4]
            for who in order:
                pod = self.new_pod()
                netns = f"/run/netns/{pod}"
                cid = f"bench{os.getpid()}c{self.pod_seq}"
                if who.startswith("floor"):
                    ip = str(floor_ip + i)
                    mode = "add" if who == "floor" else "add-move"
                    add = must(spawn([a.floor, mode, a.parent, netns, f"bt{self.pod_seq}",
                                      "net1", f"{ip}/16"], {}, "/dev/null", scratch, rss),
                               f"floor {mode}")
                else:
                    cni = ours if who == "ours" else peer
                    add = must(cni.run("ADD", cid, netns, pod, scratch, rss), f"{who} ADD")
                    ip = result_ip(add, f"{who} ADD")
                if not self.pod_has(pod, ip):
                    raise BenchError(f"{who} ADD: net1 with {ip} not found in {pod}")
                if who.startswith("floor"):
                    dele = must(spawn([a.floor, "del", netns, "net1"], {}, "/dev/null", scratch,
                                      rss), "floor del")
                else:
                    dele = must(cni.run("DEL", cid, netns, pod, scratch, rss), f"{who} DEL")
                if not self.pod_link_gone(pod):
                    raise BenchError(f"{who} DEL: net1 still present in {pod}")
                self.del_pod(pod)
                s = samples[who]
                if rss:
                    s["rss_add"].append(add.maxrss_kb)
                    s["rss_del"].append(dele.maxrss_kb)
                elif i >= warmup:
                    s["add"].append(add.wall_ns)
                    s["del"].append(dele.wall_ns)
                    s["cpu"].append(add.cpu_ns + dele.cpu_ns)
        self.results["cycles"] = samples

    def exec_floor(self):
        scratch = os.path.join(self.work, "exec")
        xs, cpu = [], []
        for k in range(5 + self.n_exec):
            r = must(spawn([self.a.exec_floor], {}, "/dev/null", scratch), "exec floor")
            if k >= 5:
                xs.append(r.wall_ns)
                cpu.append(r.cpu_ns)
        rss = [must(spawn([self.a.exec_floor], {}, "/dev/null", scratch, rss=True),
                    "exec floor").maxrss_kb for _ in range(self.n_rss)]
        self.results["exec"] = {"wall": xs, "rss": rss, "cpu": cpu}

    # -- 4: IPAM ADD latency against the number of reservations ---------------------------------
    def ipam_plugins(self, tag):
        a = self.a
        ours = Cni(f"ours-ipam-{tag}", a.ours_ipam, {
            "cniVersion": CNI_VERSION, "name": f"ipam{tag}", "type": "ipoib",
            "ipam": {"type": "whereabouts", "range": "10.80.0.0/16",
                     "store_dir": os.path.join(self.work, f"ipam-{tag}-ours")},
        }, os.path.dirname(a.ours_ipam), self.work)
        peer_data = os.path.join(self.work, f"ipam-{tag}-peer")
        peer = Cni(f"peer-ipam-{tag}", os.path.join(a.peer_dir, "host-local"), {
            "cniVersion": CNI_VERSION, "name": f"ipam{tag}", "type": "macvlan",
            "ipam": {"type": "host-local", "subnet": "10.80.0.0/16", "dataDir": peer_data},
        }, a.peer_dir, self.work)
        return ours, peer, os.path.join(peer_data, f"ipam{tag}")

    def populate_ours(self, cni, start, count):
        """Real ADDs, 8 at a time (the store is what is measured, not how it got filled)."""
        ips = self.parallel_adds(cni, count, f"fill{start}-")
        if len(set(ips)) != len(ips):
            raise BenchError(f"{cni.label}: duplicate IPs while populating")

    @staticmethod
    def populate_host_local(net_dir, start, count):
        """host-local's own store format: one file per IP named by the IP, content
        "<containerID>\\r\\n<ifname>", plus last_reserved_ip.0 (plugins/ipam/host-local/backend/
        disk). Addresses from .2 up: .1 is the gateway host-local skips."""
        os.makedirs(net_dir, exist_ok=True)
        base = ipaddress.ip_address("10.80.0.2")
        ip = base
        for k in range(start, start + count):
            ip = base + k
            with open(os.path.join(net_dir, str(ip)), "w", encoding="ascii") as f:
                f.write(f"prefill{k}\r\nnet1")
        if count:
            with open(os.path.join(net_dir, "last_reserved_ip.0"), "w", encoding="ascii") as f:
                f.write(str(ip))

    def ipam_scaling(self):
        ours, peer, peer_net_dir = self.ipam_plugins("scale")
        scratch = os.path.join(self.work, "ipam")
        node = self.node_ns_path
        out = {}
        have = 0
        for level in self.levels:
            self.populate_ours(ours, have, level - have)
            self.populate_host_local(peer_net_dir, have, level - have)
            have = level
            got = {"ours": [], "peer": [], "ours_rss": [], "peer_rss": [], "ours_cpu": [],
                   "peer_cpu": []}
            for i in range(2 + self.n_ipam + self.n_rss):
                rss = i >= 2 + self.n_ipam
                for who, cni in (("ours", ours), ("peer", peer))[::(1 if i % 2 else -1)]:
                    cid = f"scale{level}x{i}{who}"
                    pod = f"scale-{level}-{i}"
                    add = must(cni.run("ADD", cid, node, pod, scratch, rss), f"{who} IPAM ADD")
                    result_ip(add, f"{who} IPAM ADD")
                    # Release at once (untimed) so the store stays at `level` reservations.
                    must(cni.run("DEL", cid, node, pod, scratch), f"{who} IPAM DEL")
                    if rss:
                        got[f"{who}_rss"].append(add.maxrss_kb)
                    elif i >= 2:
                        got[who].append(add.wall_ns)
                        got[f"{who}_cpu"].append(add.cpu_ns)
            out[level] = got
        self.results["ipam"] = out

    # -- 5: concurrent allocation -----------------------------------------------------------------
    def parallel_adds(self, cni, count, prefix, per_client=None):
        """`count` ADDs by self.clients threads; returns every IP handed out. per_client: one Cni
        per thread instead of `cni` for all (bench/cluster.py: a node each)."""
        ips = []
        errors = []
        lock = threading.Lock()
        next_k = [0]

        def client(c):
            scratch = os.path.join(self.work, f"client{c}")
            while True:
                with lock:
                    if next_k[0] >= count or errors:
                        return
                    k = next_k[0]
                    next_k[0] += 1
                who = per_client[c] if per_client else cni
                try:
                    r = must(who.run("ADD", f"{prefix}{k}", self.node_ns_path, f"{prefix}{k}",
                                     scratch), f"{who.label} ADD")
                    ip = result_ip(r, f"{who.label} ADD")
                except BenchError as e:
                    with lock:
                        errors.append(str(e))
                    return
                with lock:
                    ips.append(ip)

        # Daemon threads: Ctrl-C in join() must end the run, not wait for the remaining ADDs.
        threads = [threading.Thread(target=client, args=(c,), daemon=True)
                   for c in range(len(per_client) if per_client else self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise BenchError(errors[0])
        return ips

    def concurrency(self):
        ours, peer, _ = self.ipam_plugins("conc")
        out = {}
        for who, cni in (("ours", ours), ("peer", peer)):
            t0 = time.monotonic_ns()
            ips = self.parallel_adds(cni, self.n_concurrent, f"conc{who}")
            wall = time.monotonic_ns() - t0
            out[who] = {"allocations": len(ips), "wall_ns": wall,
                        "per_s": len(ips) / (wall / 1e9),
                        "duplicates": len(ips) - len(set(ips))}
        self.results["concurrency"] = out

    # -- 6: binary sizes --------------------------------------------------------------------------
    def sizes(self):
        a = self.a
        out = {}
        for label, path in (("ipoib (installed product)", a.product),
                            ("ipoib-testkind (measured)", a.ours_plugin),
                            ("macvlan (Go)", os.path.join(a.peer_dir, "macvlan")),
                            ("host-local (Go)", os.path.join(a.peer_dir, "host-local")),
                            ("floor", a.floor)):
            if not path or not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            stripped = os.path.join(self.work, "stripped")
            sh("strip", "-o", stripped, path)  # debug info is not what a node loads
            out[label] = {"file": os.path.getsize(path), "stripped": os.path.getsize(stripped)}
            os.unlink(stripped)
        self.results["sizes"] = out


# ---------------------------------------------------------------------------------------------
# Targets: data, evaluated from the results; the report only prints them.


def _cycle_ms(b, who, key):
    return ms(median(b.results["cycles"][who][key]))


def _ipam_ms(b, level, who):
    return ms(median(b.results["ipam"][level][who]))


def _ratio(o, p, unit="ms", scale=1.0, digits=2):
    return o / p, f"{o / p:.2f}× ({o / scale:.{digits}f} vs {p / scale:.{digits}f} {unit})"


# (name, measure(bench) -> (value, text), limit, kind): kind "max" is met when value <= limit,
# "min" when value >= limit. Names may use {top} (the largest IPAM level measured).
TARGETS = [
    ("1. ADD ≤ 0.3× peer", 0.3, "max",
     lambda b: _ratio(_cycle_ms(b, "ours", "add"), _cycle_ms(b, "peer", "add"))),
    ("2. DEL ≤ 1.1× floor DEL", 1.1, "max",
     lambda b: _ratio(_cycle_ms(b, "ours", "del"), _cycle_ms(b, "floor", "del"))),
    ("3. CPU per ADD+DEL ≤ 0.25× peer", 0.25, "max",
     lambda b: _ratio(_cycle_ms(b, "ours", "cpu"), _cycle_ms(b, "peer", "cpu"))),
    ("4a. IPAM ADD at {top:,} ≤ 1.5× at 0", 1.5, "max",
     lambda b: _ratio(_ipam_ms(b, b.levels[-1], "ours"), _ipam_ms(b, 0, "ours"))),
    ("4b. IPAM ADD at {top:,} ≤ 0.1× host-local", 0.1, "max",
     lambda b: _ratio(_ipam_ms(b, b.levels[-1], "ours"), _ipam_ms(b, b.levels[-1], "peer"))),
    ("5. ≥ 1,000 allocations/s", 1000, "min",
     lambda b: (b.results["concurrency"]["ours"]["per_s"],
                f"{b.results['concurrency']['ours']['per_s']:.0f}/s")),
    ("5. zero duplicate allocations", 0, "max",
     lambda b: (b.results["concurrency"]["ours"]["duplicates"],
                f"{b.results['concurrency']['ours']['duplicates']} duplicates")),
    ("6a. peak RSS of ADD ≤ ⅓ macvlan(+host-local)", 1 / 3, "max",
     lambda b: _ratio(median(b.results["cycles"]["ours"]["rss_add"]),
                      median(b.results["cycles"]["peer"]["rss_add"]), "MiB", 1024, 1)),
    ("6b. peak RSS of IPAM ADD ≤ ⅓ host-local", 1 / 3, "max",
     lambda b: _ratio(median(b.results["ipam"][0]["ours_rss"]),
                      median(b.results["ipam"][0]["peer_rss"]), "MiB", 1024, 1)),
]


def evaluate_targets(b, targets=None):
    """[(name, measured text, met)] for every entry of `targets` (TARGETS and cluster.TARGETS);
    pure over b.results. met is None for a figure that is not available."""
    out = []
    for name, limit, kind, measure in TARGETS + cluster.TARGETS if targets is None else targets:
        try:
            value, text = measure(b)
        except cluster.Unavailable as e:
            out.append((name, str(e), None))
            continue
        met = value <= limit if kind == "max" else value >= limit
        out.append((name.format(top=b.levels[-1]), text, met))
    return out


# ---------------------------------------------------------------------------------------------
# Report


class Report:
    def __init__(self, bench):
        self.b = bench
        self.r = bench.results
        self.lines = []

    def emit(self, s=""):
        self.lines.append(s)

    def table(self, header, rows):
        self.emit("| " + " | ".join(header) + " |")
        self.emit("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.emit("| " + " | ".join(row) + " |")
        self.emit()

    def targets(self, targets=None):
        self.emit("### Targets (reported, never asserted)")
        self.emit()
        verdict = {True: "MET", False: "MISSED", None: "—"}
        self.table(["target", "measured", ""],
                   [[n, v, verdict[m]] for n, v, m in evaluate_targets(self.b, targets)])

    def build(self):
        b, r = self.b, self.r
        if b.a.cluster_only:
            cluster.render(self)
            self.targets(cluster.TARGETS)
            return "\n".join(self.lines)
        c = r["cycles"]
        ex = r["exec"]
        exec_ms = ms(median(ex["wall"]))
        fa = ms(median(c["floor"]["add"]))

        def x(v, base):
            return f"{v / base:.2f}×" if base else "n/a"

        self.emit(f"Samples: {b.n_cycles} ADD+DEL cycles per variant (after 2 warm-up), "
                  f"{b.n_exec} exec-floor runs, {b.n_ipam} IPAM ADDs per level, "
                  f"{b.n_concurrent} concurrent allocations by {b.clients} clients; peak RSS "
                  f"from {b.n_rss} further runs each under GNU time (%M). All figures are "
                  f"medians.")
        self.emit()
        self.emit("### Plugin ADD / DEL into a fresh netns "
                  "(ours: ipoib-testkind + built-in IPAM; peer: macvlan + host-local)")
        self.emit()
        rows = []
        for key, label in (("add", "ADD latency (ms)"), ("del", "DEL latency (ms)"),
                           ("cpu", "CPU user+sys per ADD+DEL (ms)")):
            o, p, f = (ms(median(c[w][key])) for w in ("ours", "peer", "floor"))
            rows.append([label, f"{o:.2f}", f"{p:.2f}", f"{f:.2f}", x(o, p), x(o, f), x(p, f),
                         x(o, exec_ms)])
        for key, label in (("rss_add", "peak RSS, ADD (MiB)"), ("rss_del", "peak RSS, DEL (MiB)")):
            o, p, f = (median(c[w][key]) / 1024 for w in ("ours", "peer", "floor"))
            rows.append([label, f"{o:.1f}", f"{p:.1f}", f"{f:.1f}", x(o, p), x(o, f), x(p, f),
                         "—"])
        self.table(["measure", "ours", "peer", "floor", "ours/peer", "ours/floor", "peer/floor",
                    "ours/exec floor"], rows)
        fm = ms(median(c["floor-move"]["add"]))
        self.emit(f"Floor ADD with create and move as two requests (`floor add-move`): "
                  f"{fm:.2f} ms = {x(fm, fa)} the one-request floor; the difference is the "
                  f"synchronize_net() a separate move waits for. Ours is "
                  f"{x(ms(median(c['ours']['add'])), fm)} of it.")
        self.emit()
        self.emit(f"Exec floor (spawn + reap a static no-op): {exec_ms:.2f} ms, "
                  f"CPU {ms(median(ex['cpu'])):.2f} ms, RSS {median(ex['rss']) / 1024:.1f} MiB.")
        self.emit()

        ip = r["ipam"]
        lv = b.levels
        self.emit("### IPAM ADD latency by existing reservations in one /16 "
                  "(ours: `whereabouts` = ipoib binary; peer: host-local)")
        self.emit()
        rows = []
        for level in lv:
            g = ip[level]
            o, p = ms(median(g["ours"])), ms(median(g["peer"]))
            rows.append([f"{level:,}", f"{o:.2f}", f"{p:.2f}", x(o, p), x(o, ms(median(ip[0]["ours"]))),
                         x(o, exec_ms), x(p, exec_ms),
                         f"{median(g['ours_rss']) / 1024:.1f} / {median(g['peer_rss']) / 1024:.1f}"])
        self.table(["reservations", "ours (ms)", "host-local (ms)", "ours/peer", "ours/ours@0",
                    "ours/exec floor", "peer/exec floor", "peak RSS MiB ours / peer"], rows)
        cc = r["concurrency"]
        self.emit(f"### Concurrent allocation ({b.clients} clients, {b.n_concurrent} ADDs, "
                  f"one /16, fresh store)")
        self.emit()
        self.table(["plugin", "allocations/s", "wall (s)", "duplicates",
                    "wall per allocation / exec floor"],
                   [[w, f"{cc[k]['per_s']:.0f}", f"{cc[k]['wall_ns'] / 1e9:.2f}",
                     str(cc[k]["duplicates"]), x(1e3 / cc[k]["per_s"], exec_ms)]
                    for k, w in (("ours", "ours (whereabouts)"), ("peer", "host-local"))])
        self.emit("### Binary size")
        self.emit()
        self.table(["binary", "file (KiB)", "stripped (KiB)"],
                   [[k, f"{v['file'] / 1024:.0f}", f"{v['stripped'] / 1024:.0f}"]
                    for k, v in r["sizes"].items()])

        cluster.render(self)
        self.targets()
        return "\n".join(self.lines)


def loadavg():
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


def machine_header(top, work):
    """What a reader needs to judge the figures: the machine, the code, and how busy it was."""
    with open("/proc/meminfo", encoding="ascii") as f:
        mem_kb = int(f.readline().split()[1])
    git = subprocess.run(["git", "-C", top, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", top, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        git += " (working tree has uncommitted changes)"
    store_fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", work], capture_output=True,
                              text=True).stdout.strip()
    return [
        f"machine: {os.cpu_count()} CPUs, {mem_kb / 1024 / 1024:.0f} GiB RAM, "
        f"kernel {os.uname().release}",
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {git}",
        f"stores (IPAM store_dir, host-local dataDir) on {store_fs} ({work})",
        f"load average at start: {loadavg()}",
    ]


def main():
    p = argparse.ArgumentParser()
    for name in ("node-netns", "parent", "ours-plugin", "ours-ipam", "peer-dir", "floor",
                 "exec-floor", "work", "pod-prefix"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--product", default="")
    p.add_argument("--etcd-floor", default="")
    p.add_argument("--top", default=".")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cluster-only", action="store_true")
    p.add_argument("--iterations", type=int, default=0)
    p.add_argument("--out", default="")
    p.add_argument("--json", default="")
    a = p.parse_args()

    global WATCHDOG
    enter_netns(a.node_netns)  # before any thread: children inherit the spawning thread's netns
    WATCHDOG = Watchdog()
    b = Bench(a)
    header = machine_header(a.top, a.work)
    print("\n".join(header), file=sys.stderr, flush=True)
    steps = (("exec floor", b.exec_floor), ("ADD/DEL cycles", b.cycles),
             ("IPAM scaling", b.ipam_scaling), ("concurrent allocation", b.concurrency),
             ("cluster store on etcd", cluster.ClusterBench(b, sys.modules[__name__]).run),
             ("binary sizes", b.sizes))
    if a.cluster_only:
        steps = tuple(s for s in steps if s[0] == "cluster store on etcd")
    try:
        for name, step in steps:
            t0 = time.monotonic()
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            step()
            print(f"bench: {name} done in {time.monotonic() - t0:.1f}s", file=sys.stderr,
                  flush=True)
    except BenchError as e:
        print(f"bench: measurement failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    header.append(f"load average at end: {loadavg()}")
    text = "\n".join(f"- {h}" for h in header) + "\n\n" + Report(b).build()
    print(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(b.results, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
