#!/usr/bin/env python3
"""Runs the hostile-input corpus (tests/hardening/corpus/*.json) against the real binaries.

Every case describes one hostile input: a change to the base network configuration, raw stdin,
or changed environment variables, optionally planted files (symlinks / hard links into a victim
file). It runs, for each of its targets,
  ipoib        the plugin (`ipoib-testkind`, inside a throwaway node netns with a veth parent;
               needs root)
  whereabouts  the built-in IPAM plugin (the `ipoib` binary invoked under that name; no root)
in a fresh temporary tree per case and target, and asserts:
  - exit status non-zero, and not a signal (no crash);
  - stdout holds exactly one JSON document with an integer `code` and a string `msg`;
  - `msg` contains the case's keyword (case-insensitive) and `code` is one of the case's codes;
  - no sanitizer report on stderr (the ASan+UBSan build);
  - nothing outside the store directory changed: a snapshot of the temporary tree (names, types,
    modes, sizes, contents, link targets) before equals the one after, and the victim file is
    unchanged;
  - (ipoib) no interface left in the pod or the node netns.

Case file format (JSON):
  {"description": "...",
   "targets": ["ipoib", "whereabouts"],          default both
   "command": "ADD",                              default ADD
   "patch": {...},        RFC 7386 merge patch onto the base config (null deletes a key)
   "stdin": "...",        raw stdin instead of the config (a string; \\uXXXX for bytes < 256
                          with "stdin_latin1": true to send them as single raw bytes)
   "env": {"CNI_IFNAME": "../x"},                 overrides; null removes the variable
   "plant": [{"path": "store/pool-_default", "symlink": "victim"} |
             {"path": "store/lock", "hardlink": "victim"} |
             {"path": "store", "dir": true[, "mode": "0775"]} |
             {"path": "fifo", "fifo": true}],
   "keyword": "network name" (or a list: any of them), "codes": [7],
   "expect": "accepted", "reservations": 1,   instead of keyword/codes: an input deliberately
                          tolerated (an informational field); the ADD must succeed, the store
                          keep exactly that many well-formed reservations, and DEL succeed
   "expect": "succeeds",  instead of keyword/codes: a verb that must succeed in spite of the input
                          (DEL): exit 0, nothing on stdout
   "max_processes": 1,    run in a fresh pids cgroup (needs root) and fail when more processes
                          than this were ever in it at once (pids.peak): no delegate was spawned.
                          The cgroup's pids.max bounds a runaway chain meanwhile
   "known_bug": "file, function: what is wrong"}   a case failing for a reported defect: it
                          still fails (never disabled) and prints this line
Generated values (so the corpus stays small): {"$repeat": "ab", "count": N} -> a string;
{"$array": ELEM, "count": N, "last": ELEM2} -> a list; {"$nest": "[", "depth": N} -> a string of
N nested arrays (or objects with "{"), to be used inside "stdin" via "@NEST@" or as a raw value
with "$raw". Placeholders in every string: @STORE@ @TMP@ @MASTER@ @NETNS@ @VICTIM@ @PLUGIN@ (the binary
under test, e.g. as a symlink target: {"path": "bin/ipoib", "symlink": "@PLUGIN@"}).
The ipoib target's intent directory (IPOIB_TEST_INTENT_DIR) is outside the case's tree and must
be empty after every case.

Exit: 0 all cases passed, 1 a case failed, 77 no target can run here (ipoib only, not root).
  hostile_inputs.py --testkind BIN --ipoib BIN [--targets ipoib,whereabouts] [CASE...]
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ipoib_testlib import enter_netns, sanitizer_report  # noqa: E402

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
TEMP_CHILD = re.compile(r"^ipt[0-9a-f]{12}$")
HANG_SECONDS = 10
VICTIM_TEXT = "root:x:0:0:root:/root:/bin/bash\nvictim:x:1000:1000::/home/victim:/bin/sh\n"


def base_config():
    return {"cniVersion": "1.0.0", "name": "n", "type": "ipoib", "master": "@MASTER@",
            "ipam": {"type": "whereabouts", "range": "10.9.0.0/16", "store_dir": "@STORE@"}}


def expand(value):
    """Generated values ($repeat, $array, $nest)."""
    if isinstance(value, dict):
        if "$repeat" in value:
            return value["$repeat"] * value["count"]
        if "$array" in value:
            items = [expand(value["$array"])] * value["count"]
            if "last" in value:
                items[-1] = expand(value["last"])
            return items
        if "$nest" in value:
            depth, closed = value["depth"], value.get("closed", True)
            if value["$nest"] == "{":  # {"a":{"a":...{}...}}
                return '{"a":' * (depth - 1) + "{" + "}" * (depth if closed else 0)
            return "[" * depth + "]" * (depth if closed else 0)
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def substitute(value, subst):
    if isinstance(value, str):
        for k, v in subst.items():
            value = value.replace(k, v)
        return value
    if isinstance(value, dict):
        return {substitute(k, subst): substitute(v, subst) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, subst) for v in value]
    return value


def snapshot(root, skip):
    """Everything under `root` except the subtree `skip`: path -> description."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if os.path.abspath(dirpath) == os.path.abspath(skip):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.abspath(path) == os.path.abspath(skip):
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                desc = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    desc = ("file", oct(st.st_mode), st.st_size, hashlib.sha256(f.read()).hexdigest())
            else:
                desc = ("other", oct(st.st_mode))
            seen[os.path.relpath(path, root)] = desc
    return seen


class NodeNetns:
    """Node netns with a veth parent and a pod netns; this process joins the node netns so every
    plugin it starts sees the parent as a host would."""

    def __init__(self):
        pid = os.getpid()
        self.node, self.pod, self.master = f"hostile-node-{pid}", f"hostile-pod-{pid}", f"hh{pid}"
        self.created = []

    def __enter__(self):
        for ns in (self.node, self.pod):
            subprocess.run(["ip", "netns", "add", ns], check=True, stderr=subprocess.PIPE)
            self.created.append(ns)
        subprocess.run(["ip", "-n", self.node, "link", "add", self.master, "type", "veth", "peer",
                        "name", self.master + "p"], check=True)
        subprocess.run(["ip", "-n", self.node, "link", "set", self.master, "up"], check=True)
        enter_netns(f"/run/netns/{self.node}")
        return self

    def __exit__(self, *exc):
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)

    def leftovers(self):
        left = []
        for cmd, where in ((["ip", "-j", "link", "show"], "node"),
                           (["ip", "-n", self.pod, "-j", "link", "show"], "pod")):
            for link in json.loads(subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout):
                alias = link.get("ifalias", "")
                name = link["ifname"]
                if where == "pod" and name != "lo" or where == "node" and (
                        alias.startswith("ipoib-cni:") or TEMP_CHILD.match(name)):
                    left.append(f"{where} netns: link {name} alias {alias!r}")
                    subprocess.run(["ip", "-n", self.pod if where == "pod" else self.node, "link",
                                    "del", name], stderr=subprocess.DEVNULL)
        return left


def one_document(out):
    """The single JSON document on stdout, or raises ValueError."""
    text = out.strip()
    doc, end = json.JSONDecoder().raw_decode(text)
    if text[end:].strip():
        raise ValueError(f"more than one JSON document on stdout: {out[:300]!r}")
    return doc


def check_refused(case, r, out):
    """The contract for a hostile input: a clear CNI error, no crash."""
    problems = []
    if r.returncode < 0:
        problems.append(f"killed by signal {-r.returncode}")
    elif r.returncode == 0:
        problems.append("exit 0: the hostile input was accepted")
    try:
        doc = one_document(out)
    except ValueError as e:
        return problems + [f"stdout is not exactly one JSON document ({e}): {out[:300]!r}"]
    if not isinstance(doc, dict) or type(doc.get("code")) is not int or \
            not isinstance(doc.get("msg"), str):
        return problems + [f"no integer code / string msg: {out[:300]!r}"]
    keywords = case["keyword"] if isinstance(case["keyword"], list) else [case["keyword"]]
    if not any(kw.lower() in doc["msg"].lower() for kw in keywords):
        problems.append(f"msg does not name the problem ({keywords!r}): code {doc['code']} "
                        f"msg {doc['msg'][:300]!r} details {str(doc.get('details'))[:200]!r}")
    if "codes" in case and doc["code"] not in case["codes"]:
        problems.append(f"code {doc['code']} not in {case['codes']}: msg {doc['msg'][:300]!r}")
    return problems


def check_accepted(case, r, out, store, binaries, exe, stdin, env_bytes):
    """Inputs the plugin deliberately tolerates (informational fields): the ADD succeeds, the
    store stays well-formed with exactly the expected reservations, and DEL undoes it."""
    problems = []
    if r.returncode != 0:
        problems.append(f"exit {r.returncode}, expected success: {out[:300]!r}")
    try:
        one_document(out)
    except ValueError as e:
        problems.append(f"stdout is not exactly one JSON document ({e})")
    listing = subprocess.run([binaries["ipoib"], "ipam", "list", "--json", "--store-dir", store],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if listing.returncode != 0:
        problems.append(f"the store no longer loads: {listing.stderr.strip()}")
    else:
        count = sum(len(p["reservations"]) for p in json.loads(listing.stdout)["pools"])
        if count != case.get("reservations", 1):
            problems.append(f"{count} reservations in the store, expected "
                            f"{case.get('reservations', 1)}: {listing.stdout[:400]}")
    env_del = dict(env_bytes)
    env_del[b"CNI_COMMAND"] = b"DEL"
    d = subprocess.run([exe], input=stdin, env=env_del, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=HANG_SECONDS, cwd=os.path.dirname(store))
    if d.returncode != 0:
        problems.append(f"DEL after the accepted ADD: exit {d.returncode}: {d.stdout[:300]!r}")
    return problems


def run_case(case_name, case, target, binaries, node, workroot):
    tmp = tempfile.mkdtemp(prefix=f"{target}-", dir=workroot)
    store = os.path.join(tmp, "store")
    victim = os.path.join(tmp, "victim")
    with open(victim, "w") as f:
        f.write(VICTIM_TEXT)
    os.chmod(victim, 0o644)
    exe_under_test = binaries["testkind"] if target == "ipoib" else binaries["ipoib"]
    subst = {"@STORE@": store, "@TMP@": tmp, "@VICTIM@": victim,
             "@MASTER@": node.master if node else "ib0",
             "@NETNS@": f"/run/netns/{node.pod}" if node else "/run/netns/none",
             "@PLUGIN@": exe_under_test}
    for p in case.get("plant", []):
        path = os.path.join(tmp, p["path"])
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        if p.get("dir"):
            os.makedirs(path, mode=0o700, exist_ok=True)
            if "mode" in p:
                os.chmod(path, int(p["mode"], 8))
        elif "symlink" in p:
            # An absolute target (after substitution) stays absolute.
            os.symlink(os.path.join(tmp, substitute(p["symlink"], subst)), path)
        elif "hardlink" in p:
            os.link(os.path.join(tmp, p["hardlink"]), path)
        elif p.get("fifo"):
            os.mkfifo(path, 0o600)
    # The ipoib target runs `ipoib-testkind`; whereabouts runs the real ipoib binary under the
    # name whereabouts (a symlink made before the snapshot, so it is part of the baseline).
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir, exist_ok=True)
    if target == "whereabouts":
        exe = os.path.join(bindir, "whereabouts")
        os.symlink(binaries["ipoib"], exe)
    else:
        exe = binaries["testkind"]

    if "stdin" in case:
        text = substitute(expand(case["stdin"]), subst)
        if isinstance(text, list):
            text = "".join(text)
        if "@NEST@" in text:
            text = text.replace("@NEST@", expand(case["nest"]))
        stdin = text.encode("latin-1") if case.get("stdin_latin1") else text.encode()
    else:
        conf = substitute(merge_patch(base_config(), expand(case.get("patch", {}))), subst)
        if target == "whereabouts" and "type" not in case.get("patch", {}):
            conf["type"] = "whereabouts"
        stdin = json.dumps(conf).encode()
        if "raw_suffix" in case:
            # Appended inside the top-level object: duplicate keys, raw numbers like 1e309.
            suffix = substitute(case["raw_suffix"], subst)
            if "@NEST@" in suffix:
                suffix = suffix.replace("@NEST@", expand(case["nest"]))
            stdin = stdin[:-1] + b", " + suffix.encode("latin-1") + b"}"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": case.get("command", "ADD"),
           "CNI_CONTAINERID": "hostile-1", "CNI_NETNS": subst["@NETNS@"], "CNI_IFNAME": "net1",
           "CNI_PATH": bindir, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    if "max_processes" in case:
        # pids.peak counts tasks: LeakSanitizer's exit-time tracer (ASan build) would be one more.
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
    intents = os.path.join(workroot, "intents")
    if target == "ipoib":
        env["IPOIB_TEST_INTENT_DIR"] = intents
    env_bytes = {k.encode(): v.encode() for k, v in env.items()}
    for k, v in case.get("env", {}).items():
        if v is None:
            env_bytes.pop(k.encode(), None)
        else:
            v = substitute(expand(v), subst)
            env_bytes[k.encode()] = v.encode("latin-1") if case.get("env_latin1") else v.encode()

    before = snapshot(tmp, store)
    group = PidsCgroup(f"hostile-{os.getpid()}-{case_name}-{target}", 16) \
        if "max_processes" in case else None
    try:
        # cwd: the case's tree, so relative paths resolve the same under ctest and by hand.
        r = subprocess.run([exe], input=stdin, env=env_bytes, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=HANG_SECONDS, cwd=tmp,
                           preexec_fn=group.join if group else None)
    except subprocess.TimeoutExpired:
        problems = [f"hung: no exit within {HANG_SECONDS} s (killed)"]
        if group:
            group.remove()
        if node is not None and target == "ipoib":
            node.leftovers()  # what the killed ADD had created is not this case's finding
        shutil.rmtree(tmp, ignore_errors=True)
        return problems
    after = snapshot(tmp, store)
    out = r.stdout.decode("utf-8", errors="replace")
    err = r.stderr.decode("utf-8", errors="replace")

    problems = []
    if group:
        peak = group.peak()
        group.remove()
        if peak > case["max_processes"]:
            problems.append(f"{peak} processes at once, at most {case['max_processes']} allowed "
                            "(a delegate was spawned)")
    if case.get("expect") == "accepted":
        problems += check_accepted(case, r, out, store, binaries, exe, stdin, env_bytes)
    elif case.get("expect") == "succeeds":
        if r.returncode != 0 or out.strip():
            problems.append(f"exit {r.returncode}, expected success with nothing on stdout: "
                            f"{out[:300]!r}")
    else:
        problems += check_refused(case, r, out)
    if sanitizer_report(err):
        problems.append(f"sanitizer report on stderr: {err[-3000:]}")
    if before != after:
        changed = sorted(set(before.items()) ^ set(after.items()))
        problems.append(f"written outside the store: {changed[:6]}")
    with open(victim) as f:
        if f.read() != VICTIM_TEXT:
            problems.append("the victim file was modified")
    if node is not None and target == "ipoib":
        problems += node.leftovers()
    if os.path.isdir(intents):
        left = os.listdir(intents)
        if left:
            problems.append(f"intents left behind: {left}")
        shutil.rmtree(intents, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return problems


class PidsCgroup:
    """A cgroup-v1 pids group: pids.peak counts the most processes ever in it at once."""

    def __init__(self, name, max_processes):
        self.path = f"/sys/fs/cgroup/pids/{name}"
        os.mkdir(self.path)
        with open(os.path.join(self.path, "pids.max"), "w") as f:
            f.write(str(max_processes))

    def join(self):
        """In the child between fork and exec."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def peak(self):
        with open(os.path.join(self.path, "pids.peak")) as f:
            return int(f.read())

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description="hostile-input corpus runner")
    ap.add_argument("--testkind", required=True)
    ap.add_argument("--ipoib", required=True)
    ap.add_argument("--targets", default="ipoib,whereabouts")
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus"))
    ap.add_argument("cases", nargs="*", help="case names (file names without .json)")
    args = ap.parse_args()
    targets = [t for t in args.targets.split(",") if t]

    files = sorted(glob.glob(os.path.join(args.corpus, "*.json")))
    if args.cases:
        files = [f for f in files if os.path.basename(f)[:-5] in args.cases]
    cases = []
    for path in files:
        with open(path) as f:
            cases.append((os.path.basename(path)[:-5], json.load(f)))

    node = None
    if "ipoib" in targets:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            print("hostile_inputs: the ipoib target needs root and iproute2; skipped",
                  file=sys.stderr)
            return SKIP
    binaries = {"testkind": os.path.abspath(args.testkind), "ipoib": os.path.abspath(args.ipoib)}
    workroot = tempfile.mkdtemp(prefix="ipoib-hostile-")
    os.chmod(workroot, 0o755)
    runs = failed = 0
    try:
        if "ipoib" in targets:
            try:
                node = NodeNetns().__enter__()
            except (subprocess.CalledProcessError, OSError) as e:
                print(f"hostile_inputs: no network namespaces here ({e}); skipped", file=sys.stderr)
                return SKIP
        for name, case in cases:
            for target in case.get("targets", ["ipoib", "whereabouts"]):
                if target not in targets:
                    continue
                runs += 1
                problems = run_case(name, case, target, binaries, node, workroot)
                if problems:
                    failed += 1
                    print(f"FAIL {name} [{target}]: {case.get('description', '')}")
                    if "known_bug" in case:
                        print(f"    KNOWN BUG, reported to the owner: {case['known_bug']}")
                    for p in problems:
                        print(f"    {p}")
                else:
                    print(f"ok   {name} [{target}]")
    finally:
        if node is not None:
            node.__exit__(None, None, None)
        shutil.rmtree(workroot, ignore_errors=True)
    print(f"hostile_inputs: {len(cases)} cases, {runs} runs, {runs - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
