#!/usr/bin/env bash
# Docker test hosts without a container registry.
#
#   tests/rig/hosts.sh engine   make sure a Docker engine answers (installs docker.io, starts dockerd)
#   tests/rig/hosts.sh images   engine + build the base image (debootstrap -> docker import) and the
#                               systemd image FROM it; both cached by a hash of their recipe
#   tests/rig/hosts.sh rootfs   only the cached debootstrap tarball of the base image (no engine needed)
#   tests/rig/hosts.sh clean    remove leftover test containers (label keepdata.test)
#
# KEEPDATA_DEBIAN_MIRROR overrides the mirror (default: the one apt uses on this machine).
#
# dockerd runs with no bridge and no iptables rules: only "host" and "none" networks exist, so test
# containers share the loopback with the RGW and cannot reach any other address by accident.
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"

BASE_IMAGE=${KEEPDATA_BASE_IMAGE:-keepdata/debian-base:bookworm}
SYSTEMD_IMAGE=${KEEPDATA_SYSTEMD_IMAGE:-keepdata/debian-systemd:bookworm}
BASE_PACKAGES=python3,python3-apt,openssh-server,openssh-client,sudo,ca-certificates,procps
RECIPE_DIR="$KD_ROOT/tests/rig/images"

mirror() {
  local m=${KEEPDATA_DEBIAN_MIRROR:-}
  [ -n "$m" ] && { echo "$m"; return; }
  m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$m" ] || kd_die "no Debian mirror found in the apt sources: set KEEPDATA_DEBIAN_MIRROR"
  echo "$m"
}

ensure_engine() {
  docker info >/dev/null 2>&1 && return 0
  if ! command -v dockerd >/dev/null; then
    kd_step "apt-get install docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >"$KD_WORK/apt-docker.log" 2>&1 \
      || { tail -20 "$KD_WORK/apt-docker.log"; kd_die "could not install docker.io (see above)"; }
  fi
  kd_step "start dockerd (no bridge, no iptables: host and none networks only)"
  # A dockerd killed without cleanup (e.g. when a CI machine's session ended) leaves its pid file behind,
  # and a new dockerd refuses to start while it exists.
  if ! pgrep -x dockerd >/dev/null && [ -f /var/run/docker.pid ]; then
    rm -f /var/run/docker.pid
  fi
  setsid dockerd --bridge=none --iptables=false --ip6tables=false >"$KD_WORK/dockerd.log" 2>&1 &
  local dockerd_pid=$!
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    kill -0 "$dockerd_pid" 2>/dev/null || break   # it exited: no point in waiting
    sleep 1
  done
  echo "--- last lines of $KD_WORK/dockerd.log" >&2
  tail -n 15 "$KD_WORK/dockerd.log" >&2
  kd_die "dockerd did not start (log above: $KD_WORK/dockerd.log)"
}

recipe_key() {
  local m
  m=$(mirror)
  echo "bookworm minbase $BASE_PACKAGES $m" | sha256sum | cut -c1-16
}

# The debootstrapped root filesystem, as a tarball cached by recipe; prints its path.
ensure_rootfs() {
  local m key tarball rootfs
  m=$(mirror)
  key=$(recipe_key)
  tarball="$KD_CACHE/rootfs-bookworm-$key.tar.zst"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || kd_die "debootstrap is not installed: run 'scripts/bootstrap.sh'"
    mkdir -p "$KD_CACHE"
    kd_step "debootstrap bookworm from $m (about a minute)" >&2
    rootfs="$KD_WORK/rootfs"
    rm -rf "$rootfs"
    if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$m" >"$KD_WORK/debootstrap.log" 2>&1; then
      echo "--- last lines of $KD_WORK/debootstrap.log" >&2
      tail -n 5 "$KD_WORK/debootstrap.log" >&2
      rm -rf "$rootfs"
      kd_die "debootstrap of bookworm from $m failed (log above: $KD_WORK/debootstrap.log)"
    fi
    tar -C "$rootfs" -c . | zstd -q -T0 -o "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  echo "$tarball"
}

ensure_base_image() {
  local key tarball
  key=$(recipe_key)
  # docker import cannot label an image, so the recipe hash is part of a second tag.
  if docker image inspect "$BASE_IMAGE-$key" >/dev/null 2>&1; then
    docker tag "$BASE_IMAGE-$key" "$BASE_IMAGE"; return 0
  fi
  tarball=$(ensure_rootfs)
  kd_step "docker import $BASE_IMAGE"
  zstd -dc "$tarball" | docker import -c 'CMD ["sleep", "infinity"]' - "$BASE_IMAGE-$key" >/dev/null
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
    >"$KD_WORK/docker-build.log" 2>&1 || { tail -20 "$KD_WORK/docker-build.log"; kd_die "docker build of $SYSTEMD_IMAGE failed (see above)"; }
}

case "${1:-}" in
  engine) ensure_engine ;;
  images) ensure_engine; ensure_base_image; ensure_systemd_image; kd_step "test images ready: $BASE_IMAGE, $SYSTEMD_IMAGE" ;;
  rootfs) ensure_rootfs ;;
  clean) docker ps -aq --filter label=keepdata.test | xargs -r docker rm -f >/dev/null; echo "test containers removed" ;;
  *) echo "usage: $0 engine|images|rootfs|clean" >&2; exit 2 ;;
esac
