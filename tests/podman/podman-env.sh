# shellcheck shell=bash
# podman-env.sh — sourced by tests/image and tests/podman: a podman whose every piece of state
# is test-local, so nothing touches the host's podman storage, networks or runtime state.
#
#   source tests/podman/podman-env.sh
#   pm_setup "$tmp"                         # containers.conf, storage, run dirs under $tmp
#   "${pm[@]}" build ...                    # podman with --root/--runroot under $tmp
#   pm_pick_runtime IMAGE CMD...            # a runtime that can run IMAGE here, else exit 77
#
# containers.conf (CONTAINERS_CONF): default_ulimits for nofile/nproc (a VM without
# CAP_SYS_RESOURCE cannot raise them to podman's defaults), cgroupfs and a file events logger
# (no systemd needed), the CNI network backend with test-local plugin and config directories,
# and engine tmp_dir under $tmp (podman's own lock and state files otherwise live in /run/libpod).

pm=()
pm_setup() {
  local dir=$1
  command -v podman >/dev/null || { echo "SKIP: podman is not installed"; exit 77; }
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (rootful podman with test-local storage)"; exit 77; }
  pm_dir=$dir/podman
  mkdir -p "$pm_dir/root" "$pm_dir/runroot" "$pm_dir/tmp" "$pm_dir/cni-bin" "$pm_dir/net.d"
  export CONTAINERS_CONF=$pm_dir/containers.conf
  export CONTAINERS_REGISTRIES_CONF=$pm_dir/registries.conf   # no registry is ever consulted
  : >"$CONTAINERS_REGISTRIES_CONF"
  cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$pm_dir/events.log"
tmp_dir = "$pm_dir/tmp"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$pm_dir/cni-bin"]
network_config_dir = "$pm_dir/net.d"
CONF
  pm=(podman --root "$pm_dir/root" --runroot "$pm_dir/runroot" --storage-driver vfs)
}

# Removes every container and image of the test-local storage, then the storage itself.
pm_teardown() {
  [[ ${#pm[@]} -gt 0 && -d ${pm_dir:-} ]] || return 0
  "${pm[@]}" rm -af -t 0 >/dev/null 2>&1 || true
  "${pm[@]}" rmi -af >/dev/null 2>&1 || true
  rm -rf "$pm_dir"
}

# The OCI runtime: the default (crun in Debian 12) when it can run IMAGE, else runc — crun 1.8
# refuses a cgroup v1/v2 hybrid host with controllers on the v2 side. Exits 77 with both errors
# when neither can run a container at all.
pm_pick_runtime() {
  local out why=""
  for rt in "" runc; do
    if [[ -n $rt ]] && ! command -v "$rt" >/dev/null; then why+=" [$rt: not installed]"; continue; fi
    local args=("${pm[@]}")
    [[ -n $rt ]] && args+=(--runtime "$rt")
    if out=$("${args[@]}" run --rm --network none "$@" 2>&1); then
      pm=("${args[@]}")
      echo "podman runtime: ${rt:-default}"
      return 0
    fi
    why+=" [${rt:-default}: $(tail -1 <<<"$out")]"
  done
  echo "SKIP: podman cannot run a container here:$why"
  exit 77
}

# Imports Debian's busybox-static as IMAGE (a rootfs of /bin/busybox and its applet links): the
# probe for pm_pick_runtime, and the container image of the runtime tests. Exits 77 without it.
pm_import_busybox() {
  local image=$1 rootfs=$pm_dir/busybox-rootfs bb=${BUSYBOX:-/bin/busybox}
  if [[ ! -x $bb ]] || ldd "$bb" >/dev/null 2>&1; then
    echo "SKIP: $bb (Debian's busybox-static) is missing or not static"; exit 77
  fi
  mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc" "$rootfs/tmp"
  cp "$bb" "$rootfs/bin/busybox"
  local applet
  for applet in sh ip cat sleep ls true; do ln -sf busybox "$rootfs/bin/$applet"; done
  if ! tar -C "$rootfs" -c . | "${pm[@]}" import - "$image" >"$pm_dir/import.out" 2>&1; then
    cat "$pm_dir/import.out"; echo "FAIL - podman import of $bb"; exit 1
  fi
  rm -rf "$rootfs"
}
