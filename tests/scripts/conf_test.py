#!/usr/bin/env python3
"""Parses every YAML and JSON file in conf/ and extracts every CNI configuration in it.

    conf_test.py CONF_DIR OUT_DIR

Each NetworkAttachmentDefinition's spec.config, each .conf and each .conflist is checked (valid
JSON, a CNI network name, a cniVersion, a type or plugins with types) and written to
OUT_DIR/<source>.<n>.json for the plugin's validation (conf_validate.sh). Also checks that the
seed NAD is verbatim, that NAD and config names agree, that the plain configs describe the same
networks as the NADs, and the DaemonSet's shape. Exit 1 on any failure.
"""
import json
import os
import re
import sys

import yaml

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # libcni's network name rule
VERSIONS = {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

# The seed document's NetworkAttachmentDefinition config (ipoib-mpi-howto.md, step 4), verbatim.
SEED_CONFIG = """{
  "cniVersion": "0.3.1",
  "type": "ipoib",
  "name": "jarvice-ipoib",
  "master": "ib0",
  "ipam": {
    "type": "whereabouts",
    "range": "192.168.0.0/24"
  }
}"""

failures = []


def fail(where, msg):
    failures.append(f"{where}: {msg}")
    print(f"FAIL - {where}: {msg}")


def check_config(where, doc):
    """Checks one CNI config or conflist document; returns the networks' (name, plugin) pairs."""
    if not isinstance(doc, dict):
        fail(where, "not a JSON object")
        return []
    name = doc.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        fail(where, f"bad network name {name!r}")
    if doc.get("cniVersion") not in VERSIONS:
        fail(where, f"bad cniVersion {doc.get('cniVersion')!r}")
    for v in doc.get("cniVersions", []):
        if v not in VERSIONS:
            fail(where, f"bad cniVersions entry {v!r}")
    plugins = doc["plugins"] if "plugins" in doc else [doc]
    if not isinstance(plugins, list) or not plugins:
        fail(where, "plugins must be a non-empty list")
        return []
    out = []
    for i, p in enumerate(plugins):
        if not isinstance(p, dict) or not isinstance(p.get("type"), str) or not p["type"]:
            fail(where, f"plugin {i} has no type")
            continue
        out.append((name, p))
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    conf_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        if f.endswith(".json"):
            os.remove(os.path.join(out_dir, f))

    nad_networks, plain_networks = {}, {}
    files = 0
    extracted = 0
    saw_daemonset = False
    for dirpath, _, names in sorted(os.walk(conf_dir)):
        for fname in sorted(names):
            path = os.path.join(dirpath, fname)
            rel = os.path.relpath(path, conf_dir)
            stem = rel.replace(os.sep, "_")
            if fname.endswith((".yaml", ".yml")):
                files += 1
                try:
                    with open(path) as fh:
                        docs = [d for d in yaml.safe_load_all(fh) if d is not None]
                except yaml.YAMLError as e:
                    fail(rel, f"YAML: {e}")
                    continue
                if not docs:
                    fail(rel, "no YAML document")
                for n, d in enumerate(docs):
                    kind = d.get("kind") if isinstance(d, dict) else None
                    if kind == "NetworkAttachmentDefinition":
                        if d.get("apiVersion") != "k8s.cni.cncf.io/v1":
                            fail(rel, f"apiVersion {d.get('apiVersion')!r}")
                        text = (d.get("spec") or {}).get("config")
                        if not isinstance(text, str):
                            fail(rel, "spec.config must be a string")
                            continue
                        try:
                            cfg = json.loads(text)
                        except json.JSONDecodeError as e:
                            fail(rel, f"spec.config is not JSON: {e}")
                            continue
                        pairs = check_config(rel, cfg)
                        meta = (d.get("metadata") or {}).get("name")
                        if cfg.get("name") != meta:
                            fail(rel, f"metadata.name {meta!r} != config name {cfg.get('name')!r}")
                        for name, plugin in pairs:
                            nad_networks[name] = plugin
                        # YAML folds the single-quoted scalar's line breaks, so "verbatim" is
                        # checked on the file's text and the parsed value separately.
                        if meta == "jarvice-ipoib":
                            with open(path) as fh:
                                raw = fh.read()
                            if f"  config: '{SEED_CONFIG}'" not in raw:
                                fail(rel, "the seed NAD's config text is not verbatim")
                            if cfg != json.loads(SEED_CONFIG):
                                fail(rel, "the seed NAD's config differs from the seed")
                        out = os.path.join(out_dir, f"{stem}.{n}.json")
                        with open(out, "w") as fh:
                            fh.write(text)
                        extracted += 1
                    elif kind == "DaemonSet":
                        saw_daemonset = True
                        check_daemonset(rel, d)
                    else:
                        fail(rel, f"unexpected document kind {kind!r}")
            elif fname.endswith((".json", ".conf", ".conflist")):
                files += 1
                try:
                    with open(path) as fh:
                        cfg = json.load(fh)
                except json.JSONDecodeError as e:
                    fail(rel, f"JSON: {e}")
                    continue
                if fname.endswith(".json") and not ("plugins" in cfg or "type" in cfg):
                    continue  # some other JSON file: parsed, not a CNI config
                if fname.endswith(".conflist") and "plugins" not in cfg:
                    fail(rel, ".conflist without plugins")
                for name, plugin in check_config(rel, cfg):
                    plain_networks[name] = plugin
                with open(os.path.join(out_dir, f"{stem}.json"), "w") as fh:
                    json.dump(cfg, fh, indent=2)
                extracted += 1

    if "jarvice-ipoib" not in nad_networks:
        fail("conf", "the seed NAD (jarvice-ipoib) is missing")
    if not saw_daemonset:
        fail("conf", "no DaemonSet")
    # The plain configs for cnitool describe the same networks as the NADs.
    for name, plugin in nad_networks.items():
        if name not in plain_networks:
            fail("conf", f"NAD network {name} has no plain CNI config")
        elif plugin_keys(plain_networks[name]) != plugin_keys(plugin):
            fail("conf", f"NAD network {name} and its plain config differ: "
                 f"{plugin_keys(plugin)} vs {plain_networks[name]}")
    want = {"pkey": False, "dualstack": False, "shared": False, "hostlocal": False}
    for plugin in nad_networks.values():
        ipam = plugin.get("ipam", {})
        want["pkey"] |= "pkey" in plugin
        want["dualstack"] |= any(":" in r.get("range", "") for r in ipam.get("ipRanges", []))
        want["shared"] |= "store_dir" in ipam
        want["hostlocal"] |= ipam.get("type") == "host-local"
    for variant, present in want.items():
        if not present:
            fail("conf", f"no NAD variant for {variant}")
    if not os.path.isfile(os.path.join(conf_dir, "Containerfile")):
        fail("conf", "no Containerfile")
    print(f"conf_test: {files} files parsed, {extracted} CNI configs extracted to {out_dir}, "
          f"{len(failures)} failure(s)")
    return 1 if failures else 0


def plugin_keys(plugin):
    """The plugin object without cniVersion/name (a .conf carries them at the same level)."""
    return {k: v for k, v in plugin.items() if k not in ("cniVersion", "name")}


def check_daemonset(rel, d):
    spec = d.get("spec", {}).get("template", {}).get("spec", {})
    inits = spec.get("initContainers") or []
    if not inits:
        fail(rel, "DaemonSet has no init container")
        return
    # The image's entrypoint is /ipoib (conf/Containerfile): args start with the subcommand.
    cmd = (inits[0].get("command") or []) + (inits[0].get("args") or [])
    if cmd[:1] != ["install"]:
        fail(rel, f"init container does not run `ipoib install`: {cmd}")
    if not any(c.startswith("--root") for c in cmd):
        fail(rel, "init container does not pass --root")
    if spec.get("automountServiceAccountToken") is not False:
        fail(rel, "the service account token is mounted (the DaemonSet needs no API rights)")
    mains = [(c.get("command") or []) + (c.get("args") or []) for c in spec.get("containers", [])]
    if mains != [["sleep"]]:
        fail(rel, f"main container is not `ipoib sleep` (the image has no shell): {mains}")
    paths = [v.get("hostPath", {}).get("path") for v in spec.get("volumes", [])]
    if "/opt/cni/bin" not in paths:
        fail(rel, f"no hostPath /opt/cni/bin volume: {paths}")
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        fail(rel, "names a ServiceAccount: the installer needs no Kubernetes API rights")
    check_cluster_store(rel, spec, inits[0], cmd)


def check_cluster_store(rel, spec, init, cmd):
    """The init container writes the flat file naming etcd, with the client's files from a Secret
    that only its owner can read (the etcd client refuses a key or password others can read)."""
    opts = dict(a[2:].split("=", 1) for a in cmd if a.startswith("--") and "=" in a)
    endpoints = opts.get("etcd-endpoints", "")
    if not endpoints or not all(re.match(r"^https?://[^/\s]+:\d+$", e) for e in endpoints.split(",")):
        fail(rel, f"--etcd-endpoints missing or not http(s)://host:port,...: {endpoints!r}")
    if not endpoints.startswith("https://"):
        fail(rel, "the etcd endpoints are not https: the client certificate would not be used")
    mounts = {m["mountPath"]: m["name"] for m in init.get("volumeMounts", [])}
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    flat_dir = "/host/etc/cni/net.d/whereabouts.d"
    hp = vols.get(mounts.get(flat_dir, ""), {}).get("hostPath", {}).get("path")
    if hp != "/etc/cni/net.d/whereabouts.d":
        fail(rel, f"{flat_dir} is not the node's /etc/cni/net.d/whereabouts.d (got {hp!r})")
    tls_dir = opts.get("etcd-tls-dir")
    if not tls_dir:
        fail(rel, "no --etcd-tls-dir: the client certificate is not taken from a Secret")
        return
    secret = vols.get(mounts.get(tls_dir, ""), {}).get("secret")
    if not secret:
        fail(rel, f"--etcd-tls-dir {tls_dir} is not a mounted Secret")
        return
    mode = secret.get("defaultMode")
    # 0600 in YAML 1.1 (what Kubernetes reads) is the octal 384; a decimal 600 is 0o1130.
    if not isinstance(mode, int) or mode & 0o077 or not mode & 0o400 or mode > 0o777:
        fail(rel, f"the Secret's defaultMode is {mode!r} ({oct(mode) if isinstance(mode, int) else '?'}): "
             "it must be 0600 or 0400 so the etcd client accepts the key and password files")
    for item in secret.get("items", []):
        if "mode" in item and item["mode"] & 0o077:
            fail(rel, f"Secret item {item.get('key')} has mode {oct(item['mode'])}")


if __name__ == "__main__":
    sys.exit(main())
