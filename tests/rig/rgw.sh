#!/usr/bin/env bash
# Throwaway Ceph RADOS Gateway (the engine behind Clever Cloud Cellar) on 127.0.0.1.
#
#   tests/rig/rgw.sh up      start mon + memstore osd + radosgw, create two S3 users
#   tests/rig/rgw.sh down    stop every daemon of this instance and wipe its directory
#   tests/rig/rgw.sh status  exit 0 when this instance answers S3 requests
#
# Settings (environment):
#   KEEPDATA_RGW_DIR    state directory          (default /tmp/keepdata-rgw)
#   KEEPDATA_RGW_PORT   S3 port on 127.0.0.1     (default 7480; "auto" picks a free one)
#   KEEPDATA_MON_PORT   monitor v2 port          (default 3300; "auto" picks a free one; v1 is not bound)
#
# On success it writes $KEEPDATA_RGW_DIR/rgw.env (shell) and rgw.json (0600) holding the endpoint and
# the key pairs of two users: "owner" and a second Cellar-style add-on user ("cellar_..."), so that
# cross-user grants are tested for real. Keys are random for every start.
set -euo pipefail

D=${KEEPDATA_RGW_DIR:-/tmp/keepdata-rgw}
RGW_PORT=${KEEPDATA_RGW_PORT:-7480}
MON_PORT=${KEEPDATA_MON_PORT:-3300}
OWNER_UID=${KEEPDATA_RGW_OWNER_UID:-keepdata-owner}
ADDON_UID=${KEEPDATA_RGW_ADDON_UID:-cellar_addon0002}
CONF="$D/ceph.conf"

die() { echo "rgw.sh: $*" >&2; exit 1; }

port_in_use() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Show the end of a daemon's log, then stop: one clear message instead of a cascade of errors.
fail_with_log() {
  local what=$1 log=$2
  echo "rgw.sh: $what" >&2
  [ -f "$log" ] && { echo "--- last lines of $log" >&2; tail -n 15 "$log" >&2; }
  stop_daemons
  exit 1
}

stop_daemons() {
  local n f p
  for n in client.rgw.a osd.0 mon.a; do
    f="$D/run/$n.pid"; [ -f "$f" ] || continue
    p=$(cat "$f")
    kill "$p" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$p" 2>/dev/null || true
  done
  # Anything still started with this instance's config (e.g. a daemon that never wrote its pid file).
  pkill -9 -f -- "-c $CONF" 2>/dev/null || true
}

s3_answers() {
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"
}

cmd_up() {
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl; do
    command -v "$b" >/dev/null || die "'$b' is not installed: run 'scripts/bootstrap.sh' (Debian packages radosgw ceph-mon ceph-osd ceph-common curl)"
  done
  if [ -f "$D/rgw.env" ] && s3_answers "$(sed -n 's/^KEEPDATA_RGW_PORT=//p' "$D/rgw.env")"; then
    die "an instance is already running from $D: run 'tests/rig/rgw.sh down' first or set KEEPDATA_RGW_DIR"
  fi
  [ "$RGW_PORT" = auto ] && RGW_PORT=$(free_port)
  [ "$MON_PORT" = auto ] && MON_PORT=$(free_port)
  port_in_use "$RGW_PORT" && die "port $RGW_PORT on 127.0.0.1 is already in use: set KEEPDATA_RGW_PORT to a free port (or 'auto')"
  port_in_use "$MON_PORT" && die "port $MON_PORT on 127.0.0.1 is already in use: set KEEPDATA_MON_PORT to a free port (or 'auto')"

  local t0 fsid osd_uuid osd_key
  t0=$(date +%s%N)
  rm -rf "$D"; mkdir -p "$D"/{run,log,mon.a,osd.0,rgw,crash}
  chmod 0700 "$D"
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$CONF" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $D/keyring
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
crash dir = $D/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
auth allow insecure global id reclaim = false
[mon]
mon data = $D/mon.\$id
mon data avail warn = 1
mon data avail crit = 1
[osd]
osd data = $D/osd.\$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd memory target = 939524096
osd max object size = 134217728
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $D/rgw
rgw dns name = localhost
rgw enable usage log = true
rgw enable static website = true
rgw dns s3website name = s3-website.localhost
rgw thread pool size = 64
rgw lc debug interval = 10
keyring = $D/rgw/keyring
CONF
  export CEPH_CONF="$CONF"

  ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$D/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap" >/dev/null

  ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" >"$D/log/mon-mkfs.out" 2>&1 \
    || fail_with_log "ceph-mon --mkfs failed" "$D/log/mon-mkfs.out"
  ceph-mon -c "$CONF" -i a || fail_with_log "ceph-mon did not start" "$D/log/mon.a.log"
  local ok=0
  for _ in $(seq 1 60); do timeout 5 ceph -c "$CONF" -s >/dev/null 2>&1 && { ok=1; break; }; sleep 0.5; done
  [ $ok = 1 ] || fail_with_log "ceph-mon did not answer within 30 s" "$D/log/mon.a.log"

  osd_uuid=$(cat /proc/sys/kernel/random/uuid); osd_key=$(ceph-authtool --gen-print-key)
  echo "{\"cephx_secret\": \"$osd_key\"}" >"$D/osd.0/new.json"
  ceph -c "$CONF" osd new "$osd_uuid" -i "$D/osd.0/new.json" >/dev/null
  ceph-authtool --create-keyring "$D/osd.0/keyring" --name osd.0 --add-key "$osd_key" >/dev/null
  ceph-osd -c "$CONF" -i 0 --mkfs --key "$osd_key" --osd-uuid "$osd_uuid" --keyring "$D/osd.0/keyring" \
    >"$D/log/osd-mkfs.out" 2>&1 || fail_with_log "ceph-osd --mkfs failed" "$D/log/osd-mkfs.out"
  ceph-osd -c "$CONF" -i 0 --keyring "$D/osd.0/keyring" 2>>"$D/log/osd-start.out" || fail_with_log "ceph-osd did not start" "$D/log/osd.0.log"
  ok=0
  for _ in $(seq 1 120); do ceph -c "$CONF" osd dump 2>/dev/null | grep -q '^osd.0 up' && { ok=1; break; }; sleep 0.5; done
  [ $ok = 1 ] || fail_with_log "osd.0 did not come up within 60 s" "$D/log/osd.0.log"

  ceph -c "$CONF" auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' -o "$D/rgw/keyring"
  radosgw -c "$CONF" -n client.rgw.a || fail_with_log "radosgw did not start" "$D/log/client.rgw.a.log"
  ok=0
  for _ in $(seq 1 240); do s3_answers "$RGW_PORT" && { ok=1; break; }; sleep 0.5; done
  [ $ok = 1 ] || fail_with_log "radosgw did not answer on 127.0.0.1:$RGW_PORT within 120 s" "$D/log/client.rgw.a.log"

  local owner_ak owner_sk addon_ak addon_sk
  owner_ak=$(rand_key 20 upper); owner_sk=$(rand_key 40 mixed)
  addon_ak=$(rand_key 20 upper); addon_sk=$(rand_key 40 mixed)
  radosgw-admin -c "$CONF" user create --uid="$OWNER_UID" --display-name="keepdata test owner" \
    --access-key="$owner_ak" --secret-key="$owner_sk" >/dev/null
  radosgw-admin -c "$CONF" user create --uid="$ADDON_UID" --display-name="keepdata test add-on" \
    --access-key="$addon_ak" --secret-key="$addon_sk" >/dev/null

  umask 077
  cat >"$D/rgw.env" <<ENV
KEEPDATA_RGW_ENDPOINT=http://127.0.0.1:$RGW_PORT
KEEPDATA_RGW_PORT=$RGW_PORT
KEEPDATA_RGW_OWNER_UID=$OWNER_UID
KEEPDATA_RGW_OWNER_ACCESS_KEY=$owner_ak
KEEPDATA_RGW_OWNER_SECRET_KEY=$owner_sk
KEEPDATA_RGW_ADDON_UID=$ADDON_UID
KEEPDATA_RGW_ADDON_ACCESS_KEY=$addon_ak
KEEPDATA_RGW_ADDON_SECRET_KEY=$addon_sk
ENV
  cat >"$D/rgw.json" <<JSON
{
  "endpoint": "http://127.0.0.1:$RGW_PORT",
  "port": $RGW_PORT,
  "owner": {"uid": "$OWNER_UID", "access_key": "$owner_ak", "secret_key": "$owner_sk"},
  "addon": {"uid": "$ADDON_UID", "access_key": "$addon_ak", "secret_key": "$addon_sk"}
}
JSON
  echo "radosgw up on http://127.0.0.1:$RGW_PORT in $(( ($(date +%s%N) - t0) / 1000000 )) ms; credentials in $D/rgw.env"
}

rand_key() {
  python3 -c 'import secrets, string, sys
n, kind = int(sys.argv[1]), sys.argv[2]
abc = string.ascii_uppercase + string.digits + ("" if kind == "upper" else string.ascii_lowercase)
print("".join(secrets.choice(abc) for _ in range(n)))' "$1" "$2"
}

cmd_down() {
  [ -d "$D" ] || { echo "rgw.sh: nothing to stop in $D"; return 0; }
  stop_daemons
  if pgrep -f -- "-c $CONF" >/dev/null; then
    die "daemons of $D are still running: $(pgrep -af -- "-c $CONF" | tr '\n' ';')"
  fi
  rm -rf "$D"
  echo "radosgw stopped; $D removed"
}

cmd_status() {
  [ -f "$D/rgw.env" ] || die "no instance in $D"
  local port
  port=$(sed -n 's/^KEEPDATA_RGW_PORT=//p' "$D/rgw.env")
  s3_answers "$port" || die "instance in $D does not answer on 127.0.0.1:$port"
  echo "radosgw answers on http://127.0.0.1:$port"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
