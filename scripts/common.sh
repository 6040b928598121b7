# shellcheck shell=bash
# Shared settings for the project's scripts: source it, don't run it.
# Everything is derived from the checkout location, so several checkouts can live side by side.

KD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Caches that survive between runs (venv, debootstrap tarball) live outside the checkout.
KD_CACHE=${KEEPDATA_CACHE:-/var/cache/keepdata}
# Scratch space of this checkout (collection link, ansible-test copy, logs): one per checkout path,
# so two clones never point Ansible at each other's code.
KD_WORK=${KEEPDATA_WORK:-/tmp/keepdata-work-$(echo "$KD_ROOT" | sha256sum | cut -c1-8)}
KD_VENV=${KEEPDATA_VENV:-$KD_CACHE/venv}
KD_COLLECTIONS=$KD_WORK/collections
mkdir -p "$KD_WORK"

kd_step_t0=${kd_step_t0:-$SECONDS}
kd_step() { echo "=== [$((SECONDS - kd_step_t0))s] $*"; }
kd_die() { echo "ERROR: $*" >&2; exit 1; }

# The Debian release of the test hosts (tests/rig/hosts.sh builds its images): bookworm (Debian 12) or trixie
# (Debian 13). Molecule's platforms, the demo and kd_start_host run KEEPDATA_SYSTEMD_IMAGE.
export KEEPDATA_PLATFORM=${KEEPDATA_PLATFORM:-bookworm}
case "$KEEPDATA_PLATFORM" in
  bookworm | trixie) ;;
  *) kd_die "KEEPDATA_PLATFORM must be bookworm (Debian 12) or trixie (Debian 13), not '$KEEPDATA_PLATFORM'" ;;
esac
# Our own images follow the platform even when an earlier source of this file exported the other one (a shell that
# sourced it for bookworm, then ran KEEPDATA_PLATFORM=trixie tests/rig/hosts.sh images, built trixie under the
# bookworm tag); an image of the user's own naming is kept as given.
case "${KEEPDATA_SYSTEMD_IMAGE:-}" in
  "" | keepdata/debian-systemd:bookworm | keepdata/debian-systemd:trixie) KEEPDATA_SYSTEMD_IMAGE=keepdata/debian-systemd:$KEEPDATA_PLATFORM ;;
esac
export KEEPDATA_SYSTEMD_IMAGE

# systemd's .automount units need the kernel's autofs (/dev/autofs). Some kernels are built without it: their
# test hosts get /dev/fuse a second time instead (Molecule's device list needs an entry; docker takes a device
# twice), and the automount tests then check that the mounts role refuses an automount there.
if [ -e /dev/autofs ]; then
  export KEEPDATA_AUTOFS_DEVICE=/dev/autofs
else
  export KEEPDATA_AUTOFS_DEVICE=/dev/fuse
fi

# kd_start_host NAME LABEL: a systemd test host (replacing one of that name) on the host network, with FUSE
# and automount units allowed, as Molecule's platforms in .config/molecule/config.yml run them.
kd_start_host() {
  docker rm -f "$1" >/dev/null 2>&1 || true
  docker run -d --name "$1" --hostname "$1" --label "keepdata.test=$2" --network host \
    --cap-add SYS_ADMIN --device /dev/fuse --device "$KEEPDATA_AUTOFS_DEVICE" --security-opt apparmor=unconfined --cgroupns host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:ro -v /sys/fs/cgroup/systemd:/sys/fs/cgroup/systemd:rw \
    -v /sys/fs/cgroup/unified:/sys/fs/cgroup/unified:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    "$KEEPDATA_SYSTEMD_IMAGE" /lib/systemd/systemd >/dev/null
}

# kd_wait_systemd NAME: until the test host's systemd has booted (running, or degraded); right after the
# container starts, systemctl cannot even reach it ("Failed to connect to bus"), and --wait does not wait for that.
kd_wait_systemd() {
  local state
  for _ in $(seq 1 120); do
    state=$(docker exec "$1" systemctl is-system-running --wait 2>/dev/null) || true
    case $state in running | degraded) return 0 ;; esac
    sleep 0.5
  done
  kd_die "the systemd of test host $1 did not finish booting (state: ${state:-unreachable})"
}

# The collection is found by Ansible through a link named ansible_collections/keepdata/storage.
kd_link_collection() {
  mkdir -p "$KD_COLLECTIONS/ansible_collections/keepdata"
  ln -sfn "$KD_ROOT" "$KD_COLLECTIONS/ansible_collections/keepdata/storage"
}

# kd_copy_collection DEST: DEST (.../ansible_collections/keepdata/storage) made a fresh copy of what git would
# ship (tracked files and untracked ones that are not ignored), keeping DEST/tests/output, where ansible-test caches
# its per-test venvs. ansible-test needs that path and resolves symlinks, hence a copy.
kd_copy_collection() {
  local dest=$1
  mkdir -p "$dest/tests"
  find "$dest" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
  find "$dest/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
  # A file deleted but not yet committed is still listed by git: skipped.
  (cd "$KD_ROOT" && git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done) \
    | rsync -a --from0 --files-from=- "$KD_ROOT/" "$dest/"
}

# kd_get_pip_name: the file name (get_pip_X_Y.py) under which ansible-test --venv looks in ~/.ansible/test/cache for
# the bootstrap of the pip version it pins; reads that ansible-test's _internal/python_requirements.py on stdin. Fails
# when it names no pip version.
kd_get_pip_name() {
  local version
  version=$(sed -n "s/.*pip='\([0-9.]*\)'.*/\1/p" | head -n 1)
  [ -n "$version" ] || return 1
  echo "get_pip_${version//./_}.py"
}

# kd_extra_venv NAME REQUIREMENTS: a second pinned toolchain in $KD_CACHE/venv-NAME (say, docs tools or an
# older ansible-core), kept apart from the main one and rebuilt only when its requirements file changes.
# Prints the venv's path.
kd_extra_venv() {
  local venv="$KD_CACHE/venv-$1" req=$2 hash log
  hash=$(sha256sum "$req" | cut -c1-16)
  if [ "$(cat "$venv/.req-hash" 2>/dev/null)" != "$hash" ]; then
    log="$KD_WORK/pip-$1.log"
    kd_step "python toolchain $1 into $venv" >&2
    mkdir -p "$KD_CACHE"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check --no-compile -r "$req" >"$log" 2>&1 \
      || { grep -v 'is ignored' "$log" | tail -20 >&2; kd_die "pip install -r $req failed (see above)"; }
    echo "$hash" >"$venv/.req-hash"
  fi
  echo "$venv"
}

# Put the pinned toolchain first on PATH and point Ansible at this checkout's collection.
kd_activate() {
  [ -x "$KD_VENV/bin/ansible-playbook" ] || kd_die "no toolchain in $KD_VENV: run 'scripts/bootstrap.sh' first"
  kd_link_collection
  export PATH="$KD_VENV/bin:$PATH"
  export ANSIBLE_COLLECTIONS_PATH="$KD_COLLECTIONS"
  # Lets pytest and "python -m" import ansible_collections.keepdata.storage from this checkout.
  export PYTHONPATH="$KD_COLLECTIONS${PYTHONPATH:+:$PYTHONPATH}"
  # Galaxy is not reachable here: make any accidental Galaxy call fail at once, on loopback.
  export ANSIBLE_GALAXY_SERVER=http://127.0.0.1:9/
  export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1
  export ANSIBLE_HOST_KEY_CHECKING=False
  export ANSIBLE_PYTHON_INTERPRETER=auto_silent
  export KEEPDATA_ROOT="$KD_ROOT"
  # A per-checkout Ansible home: ansible-lint puts $ANSIBLE_HOME/collections first on the collection path,
  # so a keepdata.storage installed in ~/.ansible would otherwise be linted instead of this checkout.
  export ANSIBLE_HOME="$KD_WORK/ansible-home"
}
