#!/usr/bin/env bash
# Install everything the demo and the tests need on a fresh Debian 12 machine (run as root):
#   - Debian packages: Ceph RGW (the local S3 server), Docker engine, debootstrap, FUSE tools, restic
#   - the pinned Python toolchain (requirements-dev.txt) in a cached venv
#   - with --hosts: a running Docker engine and the locally built test-host images
# Safe to run again: every step checks first and does nothing when already done.
set -euo pipefail
source "$(dirname "$0")/common.sh"

want_hosts=0
for a in "$@"; do
  case "$a" in
    --hosts) want_hosts=1 ;;
    *) kd_die "usage: $0 [--hosts]" ;;
  esac
done

[ "$(id -u)" = 0 ] || kd_die "bootstrap installs Debian packages and runs Docker: run it as root"

APT_PACKAGES=(
  radosgw ceph-mon ceph-osd ceph-common   # local S3 server (Ceph RGW, what Cellar runs)
  curl ca-certificates python3-venv rsync zstd git shellcheck
  procps iproute2 make                    # pgrep/pkill (rig scripts), ss (rig tests), the Makefile shortcuts
  docker.io debootstrap                   # test hosts without a registry
  sshfs s3fs restic fuse3                 # the real tools the roles drive
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  kd_step "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$KD_WORK/apt.log" 2>&1 || { tail -20 "$KD_WORK/apt.log"; kd_die "apt-get update failed (see above)"; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$KD_WORK/apt.log" 2>&1 \
    || { tail -20 "$KD_WORK/apt.log"; kd_die "apt-get install ${missing[*]} failed (see above)"; }
fi

# The venv is rebuilt only when requirements-dev.txt changes.
req_hash=$(sha256sum "$KD_ROOT/requirements-dev.txt" | cut -c1-16)
if [ "$(cat "$KD_VENV/.req-hash" 2>/dev/null)" != "$req_hash" ]; then
  kd_step "python toolchain into $KD_VENV"
  mkdir -p "$(dirname "$KD_VENV")"
  rm -rf "$KD_VENV"
  python3 -m venv "$KD_VENV"
  "$KD_VENV/bin/pip" install -q --disable-pip-version-check --no-compile -r "$KD_ROOT/requirements-dev.txt" \
    >"$KD_WORK/pip.log" 2>&1 || { grep -v 'is ignored' "$KD_WORK/pip.log" | tail -20; kd_die "pip install -r requirements-dev.txt failed (see above)"; }
  echo "$req_hash" >"$KD_VENV/.req-hash"
fi
kd_link_collection
# The oldest ansible-core the collection claims (meta/runtime.yml), for sanity-oldest, unit-oldest and
# tests/integration/test_ansible_core_range.py; rebuilt only when tests/requirements-oldest.txt changes.
oldest_venv=$(kd_extra_venv oldest "$KD_ROOT/tests/requirements-oldest.txt")

# unpack_deb PACKAGE DIR BINARY: Debian's PACKAGE unpacked into DIR (not installed: its service would start on
# this machine), unless DIR/BINARY is already there.
unpack_deb() {
  local package=$1 dir=$2 binary=$3 log="$KD_WORK/apt-$1.log"
  [ -x "$dir/$binary" ] && return 0
  kd_step "$binary from Debian's $package package"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  (cd "$dir.tmp" && apt-get download "$package" >"$log" 2>&1) \
    || { apt-get update -qq >>"$log" 2>&1 && (cd "$dir.tmp" && apt-get download "$package" >>"$log" 2>&1); } \
    || { tail -20 "$log"; kd_die "apt-get download $package failed (see above)"; }
  dpkg-deb -x "$dir.tmp/${package}"_*.deb "$dir.tmp/root"
  rm -rf "$dir"; mv "$dir.tmp/root" "$dir"; rm -rf "$dir.tmp"
}

# promtool (checks and unit-tests the alert rules) and the Prometheus server (tests/integration/test_backup_alerts.py
# fires the alerts from real runs) come out of Debian's prometheus package; node_exporter, which serves the runner's
# textfiles to that Prometheus in the same test, out of prometheus-node-exporter.
promtool_dir="$KD_CACHE/prometheus-tools"
unpack_deb prometheus "$promtool_dir" usr/bin/promtool
unpack_deb prometheus-node-exporter "$KD_CACHE/node-exporter" usr/bin/prometheus-node-exporter
ln -sfn "$promtool_dir/usr/bin/promtool" "$KD_VENV/bin/promtool"

# ansible-test --venv downloads a pip bootstrap script from a host that is not reachable here; it uses a
# copy saved in its cache instead, so put our offline equivalent there (for the pip version that each
# toolchain's ansible-test wants: they differ between ansible-core versions).
mkdir -p "$HOME/.ansible/test/cache"
for venv in "$KD_VENV" "$oldest_venv"; do
  get_pip=$(cat "$venv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | kd_get_pip_name) \
    || kd_die "cannot tell which pip version the ansible-test of $venv bootstraps"
  install -m 0644 "$KD_ROOT/tests/rig/ansible_test_get_pip.py" "$HOME/.ansible/test/cache/$get_pip"
done

if [ $want_hosts = 1 ]; then
  "$KD_ROOT/tests/rig/hosts.sh" images
fi
kd_step "bootstrap done"
