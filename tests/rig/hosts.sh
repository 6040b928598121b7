#!/usr/bin/env bash
# Docker test hosts without a container registry.
#
#   tests/rig/hosts.sh engine   make sure a Docker engine answers (installs docker.io, starts dockerd)
#   tests/rig/hosts.sh images   engine + build the base image (debootstrap -> docker import) and the
#                               systemd image FROM it; both cached by a hash of their recipe
#   tests/rig/hosts.sh rootfs   only the cached debootstrap tarball of the base image (no engine needed)
#   tests/rig/hosts.sh controller   engine + base image + keepdata/controller:PLATFORM, a controller with the newest
#                               ansible-core (tests/requirements-newest.txt) on the platform's Python (trixie only:
#                               ansible-core 2.21 wants Python 3.12 or later); cached by a hash of its recipe
#   tests/rig/hosts.sh clean    remove leftover test containers (label keepdata.test)
#
# KEEPDATA_PLATFORM: the Debian release of the test hosts, bookworm (Debian 12, the default) or trixie (Debian 13);
# the images are keepdata/debian-base:PLATFORM and keepdata/debian-systemd:PLATFORM.
# KEEPDATA_DEBIAN_MIRROR overrides the mirror (default: the one apt uses on this machine).
# KEEPDATA_DOCKERD_WAIT: seconds to wait for a dockerd to answer (default 60).
#
# dockerd runs with no bridge and no iptables rules: only "host" and "none" networks exist, so test
# containers share the loopback with the RGW and cannot reach any other address by accident.
set -euo pipefail
# set -e also inside $(...): a failure there stops the script instead of yielding a half-made result.
shopt -s inherit_errexit
source "$(dirname "$0")/../../scripts/common.sh"

SUITE=$KEEPDATA_PLATFORM
BASE_IMAGE=${KEEPDATA_BASE_IMAGE:-keepdata/debian-base:$SUITE}
SYSTEMD_IMAGE=$KEEPDATA_SYSTEMD_IMAGE
BASE_PACKAGES=python3,python3-apt,openssh-server,openssh-client,sudo,ca-certificates,procps
RECIPE_DIR="$KD_ROOT/tests/rig/images"
DOCKERD_WAIT=${KEEPDATA_DOCKERD_WAIT:-60}

mirror() {
  local m=${KEEPDATA_DEBIAN_MIRROR:-}
  [ -n "$m" ] && { echo "$m"; return; }
  m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$m" ] || kd_die "no Debian mirror found in the apt sources: set KEEPDATA_DEBIAN_MIRROR"
  echo "$m"
}

# Show the end of a log on stderr (then the caller stops with one ERROR line naming it).
show_log() {
  echo "--- last lines of $1" >&2
  tail -n "${2:-15}" "$1" >&2
}

# True when docker talks to the socket a dockerd with default settings serves (the one this script
# starts): only then is an already running dockerd the engine we are waiting for.
default_socket() {
  case "${DOCKER_HOST:-}" in
    "" | unix:///var/run/docker.sock | unix:///run/docker.sock) return 0 ;;
    *) return 1 ;;
  esac
}

running_dockerd() {
  local pids
  pids=$(pgrep -x dockerd || true)
  echo "${pids//$'\n'/ }"
}

ensure_engine() {
  docker info >/dev/null 2>&1 && return 0
  if ! command -v dockerd >/dev/null; then
    kd_step "apt-get install docker.io"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io; } \
      >"$KD_WORK/apt-docker.log" 2>&1 \
      || { show_log "$KD_WORK/apt-docker.log" 20; kd_die "could not install docker.io (log above: $KD_WORK/apt-docker.log)"; }
  fi
  # A dockerd that is still starting (another run, the system's service) does not answer yet: wait for
  # it rather than start a second one, which would fight it over the pid file and the socket.
  local pids i
  pids=$(running_dockerd)
  if [ -n "$pids" ] && default_socket; then
    kd_step "a dockerd is running (pid $pids) but does not answer yet: waiting up to $DOCKERD_WAIT s"
    for ((i = 0; i < DOCKERD_WAIT; i++)); do
      docker info >/dev/null 2>&1 && return 0
      [ -n "$(running_dockerd)" ] || break   # it exited: start one below
      sleep 1
    done
    docker info >/dev/null 2>&1 && return 0
    pids=$(running_dockerd)
    [ -z "$pids" ] || kd_die "a dockerd is running (pid $pids) but did not answer within $DOCKERD_WAIT s: stop it or find out why it hangs (its log: 'journalctl -u docker', or dockerd.log in the work directory of the run that started it), then run again"
  fi
  kd_step "start dockerd (no bridge, no iptables: host and none networks only)"
  # A dockerd killed without cleanup (e.g. when a CI machine's session ended) leaves its pid file behind,
  # and a new dockerd refuses to start while it exists.
  if [ -z "$(running_dockerd)" ] && [ -f /var/run/docker.pid ]; then
    rm -f /var/run/docker.pid
  fi
  setsid dockerd --bridge=none --iptables=false --ip6tables=false >"$KD_WORK/dockerd.log" 2>&1 &
  local dockerd_pid=$!
  for ((i = 0; i < DOCKERD_WAIT; i++)); do
    docker info >/dev/null 2>&1 && return 0
    # Ours exited: no point in waiting, unless another dockerd (started meanwhile) is serving our socket.
    if ! kill -0 "$dockerd_pid" 2>/dev/null && { ! default_socket || [ -z "$(running_dockerd)" ]; }; then
      break
    fi
    sleep 1
  done
  docker info >/dev/null 2>&1 && return 0
  show_log "$KD_WORK/dockerd.log"
  kd_die "dockerd did not start (log above: $KD_WORK/dockerd.log)"
}

recipe_key() {
  local m
  m=$(mirror) || exit 1
  echo "$SUITE minbase $BASE_PACKAGES $m" | sha256sum | cut -c1-16
}

# The debootstrapped root filesystem, as a tarball cached by recipe; prints its path. The tarball is
# written under a temporary name and renamed only once complete and verified, and a cached one is
# verified before it is trusted, so a broken tarball is never used.
ensure_rootfs() {
  local m key tarball rootfs tmp
  m=$(mirror) || exit 1
  key=$(recipe_key) || exit 1
  tarball="$KD_CACHE/rootfs-$SUITE-$key.tar.zst"
  if [ -s "$tarball" ]; then
    if zstd -q -t "$tarball" 2>/dev/null; then
      echo "$tarball"
      return 0
    fi
    kd_step "the cached $tarball is damaged: building it again" >&2
    rm -f "$tarball"
  fi
  command -v debootstrap >/dev/null || kd_die "debootstrap is not installed: run 'scripts/bootstrap.sh'"
  mkdir -p "$KD_CACHE"
  kd_step "debootstrap $SUITE from $m (about a minute)" >&2
  rootfs="$KD_WORK/rootfs"
  rm -rf "$rootfs"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$m" >"$KD_WORK/debootstrap.log" 2>&1; then
    show_log "$KD_WORK/debootstrap.log" 5
    rm -rf "$rootfs"
    kd_die "debootstrap of $SUITE from $m failed (log above: $KD_WORK/debootstrap.log)"
  fi
  tmp="$tarball.tmp.$$"
  if ! { tar -C "$rootfs" -c . | zstd -q -f -T0 -o "$tmp"; } 2>"$KD_WORK/rootfs-pack.log" \
    || ! zstd -q -t "$tmp" 2>>"$KD_WORK/rootfs-pack.log"; then
    rm -f "$tmp"
    rm -rf "$rootfs"
    show_log "$KD_WORK/rootfs-pack.log"
    kd_die "could not pack the root filesystem into $tarball (log above: $KD_WORK/rootfs-pack.log)"
  fi
  mv "$tmp" "$tarball"
  rm -rf "$rootfs"
  echo "$tarball"
}

ensure_base_image() {
  local key tarball
  key=$(recipe_key)
  # docker import cannot label an image, so the recipe hash is part of a second tag.
  if docker image inspect "$BASE_IMAGE-$key" >/dev/null 2>&1; then
    docker tag "$BASE_IMAGE-$key" "$BASE_IMAGE"; return 0
  fi
  tarball=$(ensure_rootfs) || exit 1
  kd_step "docker import $BASE_IMAGE"
  zstd -dc "$tarball" 2>"$KD_WORK/docker-import.log" \
    | docker import -c 'CMD ["sleep", "infinity"]' - "$BASE_IMAGE-$key" >/dev/null 2>>"$KD_WORK/docker-import.log" \
    || { show_log "$KD_WORK/docker-import.log"; kd_die "docker import of $tarball failed (log above: $KD_WORK/docker-import.log)"; }
  docker tag "$BASE_IMAGE-$key" "$BASE_IMAGE"
}

ensure_systemd_image() {
  local h
  h=$( (docker image inspect -f '{{.Id}}' "$BASE_IMAGE"; cat "$RECIPE_DIR/Dockerfile.systemd") | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{index .Config.Labels "keepdata.recipe"}}' "$SYSTEMD_IMAGE" 2>/dev/null)" = "$h" ]; then
    return 0
  fi
  kd_step "docker build $SYSTEMD_IMAGE"
  DOCKER_BUILDKIT=0 docker build -q --network host --label "keepdata.recipe=$h" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$SYSTEMD_IMAGE" -f "$RECIPE_DIR/Dockerfile.systemd" "$RECIPE_DIR" \
    >"$KD_WORK/docker-build.log" 2>&1 \
    || { show_log "$KD_WORK/docker-build.log" 20; kd_die "docker build of $SYSTEMD_IMAGE failed (log above: $KD_WORK/docker-build.log)"; }
}

# The controller image: its recipe is the base image, Dockerfile.controller, the requirements and this machine's
# CA bundle (copied in, so that pip in the image trusts what the machine's pip trusts).
ensure_controller_image() {
  local image="keepdata/controller:$SUITE" h context="$KD_WORK/controller-image"
  local requirements="$KD_ROOT/tests/requirements-newest.txt" ca=/etc/ssl/certs/ca-certificates.crt
  [ "$SUITE" = trixie ] || kd_die "the controller image needs Python 3.12 or later: KEEPDATA_PLATFORM=trixie (not $SUITE)"
  h=$( (docker image inspect -f '{{.Id}}' "$BASE_IMAGE"; cat "$RECIPE_DIR/Dockerfile.controller" "$requirements" "$ca") | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{index .Config.Labels "keepdata.recipe"}}' "$image" 2>/dev/null)" = "$h" ]; then
    return 0
  fi
  kd_step "docker build $image ($(grep -m1 '^ansible-core==' "$requirements"))"
  rm -rf "$context"; mkdir -p "$context"
  cp "$RECIPE_DIR/Dockerfile.controller" "$context/Dockerfile"
  cp "$requirements" "$context/requirements.txt"
  cp "$ca" "$context/ca-certificates.crt"
  DOCKER_BUILDKIT=0 docker build -q --network host --label "keepdata.recipe=$h" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$image" "$context" >"$KD_WORK/docker-build-controller.log" 2>&1 \
    || { show_log "$KD_WORK/docker-build-controller.log" 20; kd_die "docker build of $image failed (log above: $KD_WORK/docker-build-controller.log)"; }
  rm -rf "$context"
}

# One build per platform at a time: two gates that want the same images (Molecule lanes, the newest gate) wait for
# each other here, and the second finds them built. The lock is machine-wide, as image tags are, and stays out of
# the cache, which holds only finished tarballs.
lock_platform() {
  exec 9>"${TMPDIR:-/tmp}/keepdata-hosts-$SUITE.lock"
  flock 9
}

case "${1:-}" in
  engine) ensure_engine ;;
  images) ensure_engine; lock_platform; ensure_base_image; ensure_systemd_image; kd_step "test images ready: $BASE_IMAGE, $SYSTEMD_IMAGE" ;;
  rootfs) lock_platform; ensure_rootfs ;;
  controller) ensure_engine; lock_platform; ensure_base_image; ensure_controller_image; kd_step "controller image ready: keepdata/controller:$SUITE" ;;
  clean) docker ps -aq --filter label=keepdata.test | xargs -r docker rm -f >/dev/null; echo "test containers removed" ;;
  *) echo "usage: $0 engine|images|rootfs|controller|clean" >&2; exit 2 ;;
esac
