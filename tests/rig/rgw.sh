#!/usr/bin/env bash
# Throwaway Ceph RADOS Gateway (the engine behind Clever Cloud Cellar) on 127.0.0.1.
#
#   tests/rig/rgw.sh up      start mon + memstore osd + radosgw, create two S3 users
#   tests/rig/rgw.sh down    stop every daemon of this instance and wipe its directory
#   tests/rig/rgw.sh status  exit 0 when this instance answers S3 requests
#   tests/rig/rgw.sh gateway-stop / gateway-start
#                            kill only radosgw (its data stays), start it again: the S3 server going away
#
# Settings (environment):
#   KEEPDATA_RGW_DIR    state directory          (default /tmp/keepdata-rgw)
#   KEEPDATA_RGW_PORT   S3 port on 127.0.0.1     (default 7480; "auto" picks a free one)
#   KEEPDATA_MON_PORT   monitor v2 port          (default 3300; "auto" picks a free one; v1 is not bound)
#   KEEPDATA_RGW_HTTPS_PORT  S3 over HTTPS on 127.0.0.1 (default "auto": a free one)
#
# On success it writes $KEEPDATA_RGW_DIR/rgw.env (shell) and rgw.json (0600) holding the endpoint and
# the key pairs of two users: "owner" and a second Cellar-style add-on user ("cellar_..."), so that
# cross-user grants are tested for real. Keys are random for every start.
# radosgw also serves S3 over HTTPS (KEEPDATA_RGW_HTTPS_ENDPOINT) with a self-signed certificate made for
# every start, valid for 127.0.0.1 and localhost; KEEPDATA_RGW_CA_BUNDLE is that certificate, for clients to trust.
#
# When "up" fails at any step (or is interrupted), it stops every daemon it started, removes
# $KEEPDATA_RGW_DIR, keeps the failed step's log as $KEEPDATA_RGW_DIR-failed.log and prints one ERROR line.
# A stale directory of an earlier start that never completed is cleaned up (daemons first) by "up".
set -euo pipefail
shopt -s inherit_errexit

D=${KEEPDATA_RGW_DIR:-/tmp/keepdata-rgw}
D=${D%/}
RGW_PORT=${KEEPDATA_RGW_PORT:-7480}
MON_PORT=${KEEPDATA_MON_PORT:-3300}
HTTPS_PORT=${KEEPDATA_RGW_HTTPS_PORT:-auto}
OWNER_UID=${KEEPDATA_RGW_OWNER_UID:-keepdata-owner}
ADDON_UID=${KEEPDATA_RGW_ADDON_UID:-cellar_addon0002}
CONF="$D/ceph.conf"
# Where a failed "up" keeps the failed step's log, since it removes $D.
FAILED_LOG="$D-failed.log"

die() { echo "ERROR: rgw.sh: $*" >&2; exit 1; }

# pgrep/pkill pattern for the processes of this instance only: a ceph daemon or ceph tool whose first
# arguments are "-c <this ceph.conf>" (not, say, a shell whose command line merely mentions the path).
conf_pattern() {
  printf -- '^([^ ]*/)?(python3[^ ]* [^ ]*/)?(ceph-mon|ceph-osd|radosgw|radosgw-admin|ceph) -c %s( |$)' \
    "$(printf '%s' "$CONF" | sed 's/[][\.*^$+?(){}|]/\\&/g')"
}

valid_port() {
  [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535))
}

# A port counts as busy only when something listens on it. With SO_REUSEADDR, as ceph-mon and radosgw
# bind, the TIME_WAIT connections a previous instance left behind don't count.
port_in_use() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(1)
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

# Prints "RGW_PORT MON_PORT HTTPS_PORT" with each "auto" replaced by a free port: never the same port twice.
pick_ports() {
  python3 - "$RGW_PORT" "$MON_PORT" "$HTTPS_PORT" <<'PY'
import socket, sys
wanted = sys.argv[1:]
fixed = {p for p in wanted if p != "auto"}
held, chosen = [], []
for p in wanted:
    while p == "auto":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)  # kept open until every port is chosen, so the kernel hands out distinct ones
        port = str(s.getsockname()[1])
        if port not in fixed and port not in chosen:
            p = port
    chosen.append(p)
print(*chosen)
PY
}

# True when pid $1 runs with this instance's ceph.conf (a stale pid file may name a reused pid).
is_ours() {
  local cmdline
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  grep -Eq -- "$(conf_pattern)" <<<"$cmdline"
}

# Stops every process of this instance; fails when one is still there after that.
stop_daemons() {
  local n f p pattern alive pids=()
  pattern=$(conf_pattern)
  for n in client.rgw.a osd.0 mon.a; do
    f="$D/run/$n.pid"
    [ -f "$f" ] || continue
    p=$(cat "$f" 2>/dev/null || true)
    if [[ $p =~ ^[0-9]+$ ]] && is_ours "$p"; then pids+=("$p"); fi
  done
  # Also what never wrote its pid file (a daemon still starting, a ceph client waiting for the mon).
  mapfile -t -O "${#pids[@]}" pids < <(pgrep -f -- "$pattern" || true)
  ((${#pids[@]})) || return 0
  kill "${pids[@]}" 2>/dev/null || true
  # The osd is memstore: nothing on disk to save. radosgw takes ~10 s to exit on SIGTERM, so whatever
  # is still there after 3 s gets SIGKILL.
  for _ in $(seq 1 12); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.25
  done
  pkill -9 -f -- "$pattern" 2>/dev/null || true
  for _ in $(seq 1 20); do
    pgrep -f -- "$pattern" >/dev/null || return 0
    sleep 0.25
  done
  return 1
}

# Stops this instance's daemons, then removes its directory; says which daemons would not stop.
remove_instance() {
  stop_daemons || die "daemons of $D are still running: $(pgrep -af -- "$(conf_pattern)" | tr '\n' ';')"
  rm -rf "$D"
}

s3_answers() {
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"
}

# True when S3 answers over HTTPS on port $1 with a certificate that the instance's own one verifies.
https_answers() {
  curl -s -o /dev/null --max-time 2 --cacert "$D/tls/cert.pem" "https://127.0.0.1:$1/"
}

# A self-signed certificate (its own CA) for 127.0.0.1 and localhost, and its key: openssl when installed,
# else Python's cryptography (which ansible-core needs anyway).
make_certificate() {
  local cert=$1 key=$2
  if command -v openssl >/dev/null; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 -subj "/CN=keepdata test RGW" \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "keyUsage=critical,digitalSignature,keyCertSign" \
      -addext "extendedKeyUsage=serverAuth" -keyout "$key" -out "$cert"
    return
  fi
  python3 - "$cert" "$key" <<'PY'
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keepdata test RGW")])
now = datetime.datetime.now(datetime.timezone.utc)
ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "crl_sign", "encipher_only", "decipher_only"), False)
cert = (
    x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=365))
    .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, **usage), critical=True)
    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    .add_extension(ski, critical=False)
    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    .sign(key, hashes.SHA256())
)
with open(sys.argv[2], "wb") as out:
    out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
with open(sys.argv[1], "wb") as out:
    out.write(cert.public_bytes(serialization.Encoding.PEM))
PY
}

# ---- "up" reports a failure once, whatever step it happens in ------------------------------------------
# Each step names itself and its log (step WHAT LOG), and its commands write their output there, not to
# the terminal. When a command fails (set -e), a wait times out (fail REASON) or "up" is interrupted, the
# EXIT trap shows the end of that log, stops every daemon started so far, removes $D (keeping the log as
# $FAILED_LOG) and prints one ERROR line naming the step and the log.
UP_STEP="" UP_LOG="" UP_REASON=""

step() { UP_STEP=$1; UP_LOG=$2; }

fail() { UP_REASON=$1; exit 1; }

up_exit() {
  local rc=$? reason where="no log was written"
  trap - EXIT INT TERM
  [ "$rc" = 0 ] && return 0
  reason=${UP_REASON:-"step '$UP_STEP' failed (exit $rc)"}
  if [ -z "$UP_REASON" ] && [ "$rc" -ge 128 ]; then reason="interrupted during step '$UP_STEP'"; fi
  if [ -s "$UP_LOG" ] && cp "$UP_LOG" "$FAILED_LOG" 2>/dev/null; then
    where="log: $FAILED_LOG"
    echo "--- last lines of $FAILED_LOG (the log of step '$UP_STEP')" >&2
    tail -n 15 "$FAILED_LOG" >&2
    echo "---" >&2
  fi
  if stop_daemons; then
    rm -rf "$D"
    echo "ERROR: rgw.sh: $reason; the daemons it started are stopped and $D is removed ($where)" >&2
  else
    echo "ERROR: rgw.sh: $reason; these daemons of $D did not stop: $(pgrep -af -- "$(conf_pattern)" | tr '\n' ';') ($where)" >&2
  fi
  exit "$rc"
}

cmd_up() {
  local b
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl python3 pgrep pkill; do
    command -v "$b" >/dev/null || die "'$b' is not installed: run 'scripts/bootstrap.sh' (Debian packages radosgw ceph-mon ceph-osd ceph-common curl procps)"
  done
  command -v openssl >/dev/null || python3 -c 'import cryptography' 2>/dev/null \
    || die "neither openssl nor Python's cryptography is installed: one is needed for the HTTPS certificate (Debian package openssl)"
  # The daemons' admin sockets live in $D/run: a unix socket path must fit in 107 bytes.
  [ ${#D} -le 80 ] || die "KEEPDATA_RGW_DIR is too long (${#D} characters, at most 80): the daemons' sockets in it would not fit"
  if [ -f "$D/rgw.env" ] && s3_answers "$(sed -n 's/^KEEPDATA_RGW_PORT=//p' "$D/rgw.env")"; then
    die "an instance is already running from $D: run 'tests/rig/rgw.sh down' first or set KEEPDATA_RGW_DIR"
  fi
  # What an earlier start from this directory left (killed, or not answering any more): its daemons are
  # stopped before their files are removed.
  [ ! -e "$D" ] || remove_instance

  [ "$RGW_PORT" = auto ] || valid_port "$RGW_PORT" || die "KEEPDATA_RGW_PORT='$RGW_PORT' is neither a port number (1-65535) nor 'auto'"
  [ "$MON_PORT" = auto ] || valid_port "$MON_PORT" || die "KEEPDATA_MON_PORT='$MON_PORT' is neither a port number (1-65535) nor 'auto'"
  [ "$HTTPS_PORT" = auto ] || valid_port "$HTTPS_PORT" || die "KEEPDATA_RGW_HTTPS_PORT='$HTTPS_PORT' is neither a port number (1-65535) nor 'auto'"
  [ "$RGW_PORT" = auto ] || [ "$RGW_PORT" != "$MON_PORT" ] \
    || die "KEEPDATA_RGW_PORT and KEEPDATA_MON_PORT are both $RGW_PORT: they must differ"
  [ "$HTTPS_PORT" = auto ] || [ "$HTTPS_PORT" != "$RGW_PORT" ] \
    || die "KEEPDATA_RGW_HTTPS_PORT and KEEPDATA_RGW_PORT are both $HTTPS_PORT: they must differ"
  [ "$HTTPS_PORT" = auto ] || [ "$HTTPS_PORT" != "$MON_PORT" ] \
    || die "KEEPDATA_RGW_HTTPS_PORT and KEEPDATA_MON_PORT are both $HTTPS_PORT: they must differ"
  local ports
  ports=$(pick_ports) || die "could not pick free ports on 127.0.0.1"
  read -r RGW_PORT MON_PORT HTTPS_PORT <<<"$ports"
  port_in_use "$RGW_PORT" && die "port $RGW_PORT on 127.0.0.1 is already in use: set KEEPDATA_RGW_PORT to a free port (or 'auto')"
  port_in_use "$MON_PORT" && die "port $MON_PORT on 127.0.0.1 is already in use: set KEEPDATA_MON_PORT to a free port (or 'auto')"
  port_in_use "$HTTPS_PORT" && die "port $HTTPS_PORT on 127.0.0.1 is already in use: set KEEPDATA_RGW_HTTPS_PORT to a free port (or 'auto')"

  local t0 fsid osd_uuid osd_key ok L="$D/log"
  t0=$(date +%s%N)
  rm -f "$FAILED_LOG"
  trap up_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  step "create $D" ""
  mkdir -p "$D"/{run,log,mon.a,osd.0,rgw,crash,tls}
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
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT ssl_endpoint=127.0.0.1:$HTTPS_PORT ssl_certificate=$D/tls/cert.pem ssl_private_key=$D/tls/key.pem
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

  step "create the HTTPS certificate" "$L/tls.out"
  (umask 077 && make_certificate "$D/tls/cert.pem" "$D/tls/key.pem") >"$L/tls.out" 2>&1

  step "create the keyrings and the monitor map" "$L/keyrings.out"
  {
    ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *'
    ceph-authtool "$D/keyring" --gen-key -n client.admin \
      --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap"
  } >"$L/keyrings.out" 2>&1

  step "ceph-mon --mkfs" "$L/mon-mkfs.out"
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" >"$L/mon-mkfs.out" 2>&1
  step "start ceph-mon" "$D/log/mon.a.log"
  ceph-mon -c "$CONF" -i a >>"$D/log/mon-start.out" 2>&1
  ok=0
  for _ in $(seq 1 60); do timeout 5 ceph -c "$CONF" -s >/dev/null 2>&1 && { ok=1; break; }; sleep 0.5; done
  [ $ok = 1 ] || fail "ceph-mon did not answer on 127.0.0.1:$MON_PORT within 30 s"

  step "register osd.0 (ceph osd new)" "$L/osd-new.out"
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  osd_key=$(ceph-authtool --gen-print-key 2>"$L/osd-new.out")
  echo "{\"cephx_secret\": \"$osd_key\"}" >"$D/osd.0/new.json"
  ceph -c "$CONF" osd new "$osd_uuid" -i "$D/osd.0/new.json" >>"$L/osd-new.out" 2>&1
  ceph-authtool --create-keyring "$D/osd.0/keyring" --name osd.0 --add-key "$osd_key" >>"$L/osd-new.out" 2>&1
  step "ceph-osd --mkfs" "$D/log/osd-mkfs.out"
  ceph-osd -c "$CONF" -i 0 --mkfs --key "$osd_key" --osd-uuid "$osd_uuid" --keyring "$D/osd.0/keyring" \
    >"$D/log/osd-mkfs.out" 2>&1
  step "start ceph-osd" "$D/log/osd.0.log"
  ceph-osd -c "$CONF" -i 0 --keyring "$D/osd.0/keyring" >>"$D/log/osd-start.out" 2>&1
  ok=0
  for _ in $(seq 1 120); do ceph -c "$CONF" osd dump 2>/dev/null | grep -q '^osd.0 up' && { ok=1; break; }; sleep 0.5; done
  [ $ok = 1 ] || fail "osd.0 did not come up within 60 s"

  step "create the radosgw key (ceph auth get-or-create)" "$L/rgw-key.out"
  ceph -c "$CONF" auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' \
    -o "$D/rgw/keyring" >"$L/rgw-key.out" 2>&1
  step "start radosgw" "$D/log/client.rgw.a.log"
  radosgw -c "$CONF" -n client.rgw.a >>"$D/log/rgw-start.out" 2>&1
  ok=0
  for _ in $(seq 1 240); do s3_answers "$RGW_PORT" && { ok=1; break; }; sleep 0.5; done
  [ $ok = 1 ] || fail "radosgw did not answer on 127.0.0.1:$RGW_PORT within 120 s"
  ok=0
  for _ in $(seq 1 20); do https_answers "$HTTPS_PORT" && { ok=1; break; }; sleep 0.25; done
  [ $ok = 1 ] || fail "radosgw answers on 127.0.0.1:$RGW_PORT but not over HTTPS on 127.0.0.1:$HTTPS_PORT with the certificate $D/tls/cert.pem"

  step "create the S3 users (radosgw-admin user create)" "$L/users.out"
  local owner_ak owner_sk addon_ak addon_sk
  owner_ak=$(rand_key 20 upper); owner_sk=$(rand_key 40 mixed)
  addon_ak=$(rand_key 20 upper); addon_sk=$(rand_key 40 mixed)
  radosgw-admin -c "$CONF" user create --uid="$OWNER_UID" --display-name="keepdata test owner" \
    --access-key="$owner_ak" --secret-key="$owner_sk" >"$L/users.out" 2>&1
  radosgw-admin -c "$CONF" user create --uid="$ADDON_UID" --display-name="keepdata test add-on" \
    --access-key="$addon_ak" --secret-key="$addon_sk" >>"$L/users.out" 2>&1

  step "write $D/rgw.env and rgw.json" ""
  umask 077
  cat >"$D/rgw.json" <<JSON
{
  "endpoint": "http://127.0.0.1:$RGW_PORT",
  "port": $RGW_PORT,
  "https_endpoint": "https://127.0.0.1:$HTTPS_PORT",
  "https_port": $HTTPS_PORT,
  "ca_bundle": "$D/tls/cert.pem",
  "owner": {"uid": "$OWNER_UID", "access_key": "$owner_ak", "secret_key": "$owner_sk"},
  "addon": {"uid": "$ADDON_UID", "access_key": "$addon_ak", "secret_key": "$addon_sk"}
}
JSON
  cat >"$D/rgw.env.tmp" <<ENV
KEEPDATA_RGW_ENDPOINT=http://127.0.0.1:$RGW_PORT
KEEPDATA_RGW_PORT=$RGW_PORT
KEEPDATA_RGW_HTTPS_ENDPOINT=https://127.0.0.1:$HTTPS_PORT
KEEPDATA_RGW_HTTPS_PORT=$HTTPS_PORT
KEEPDATA_RGW_CA_BUNDLE=$D/tls/cert.pem
KEEPDATA_RGW_OWNER_UID=$OWNER_UID
KEEPDATA_RGW_OWNER_ACCESS_KEY=$owner_ak
KEEPDATA_RGW_OWNER_SECRET_KEY=$owner_sk
KEEPDATA_RGW_ADDON_UID=$ADDON_UID
KEEPDATA_RGW_ADDON_ACCESS_KEY=$addon_ak
KEEPDATA_RGW_ADDON_SECRET_KEY=$addon_sk
KEEPDATA_RGW_CONF=$CONF
ENV
  # rgw.env comes last, in one rename: when it exists, the instance is complete.
  mv "$D/rgw.env.tmp" "$D/rgw.env"
  trap - EXIT INT TERM
  echo "radosgw up on http://127.0.0.1:$RGW_PORT (HTTPS on 127.0.0.1:$HTTPS_PORT) in $(( ($(date +%s%N) - t0) / 1000000 )) ms; credentials in $D/rgw.env"
}

rand_key() {
  python3 -c 'import secrets, string, sys
n, kind = int(sys.argv[1]), sys.argv[2]
abc = string.ascii_uppercase + string.digits + ("" if kind == "upper" else string.ascii_lowercase)
print("".join(secrets.choice(abc) for _ in range(n)))' "$1" "$2"
}

cmd_down() {
  [ -d "$D" ] || { echo "rgw.sh: nothing to stop in $D"; return 0; }
  remove_instance
  echo "radosgw stopped; $D removed"
}

cmd_status() {
  [ -f "$D/rgw.env" ] || die "no instance in $D"
  local port
  port=$(sed -n 's/^KEEPDATA_RGW_PORT=//p' "$D/rgw.env")
  s3_answers "$port" || die "instance in $D does not answer on 127.0.0.1:$port"
  echo "radosgw answers on http://127.0.0.1:$port"
}

# Fault tests: the S3 server goes away (radosgw killed; the cluster and its data stay), then comes back.
cmd_gateway_stop() {
  [ -f "$D/rgw.env" ] || die "no instance in $D"
  local p
  p=$(cat "$D/run/client.rgw.a.pid" 2>/dev/null || true)
  { [[ $p =~ ^[0-9]+$ ]] && is_ours "$p"; } || die "radosgw of $D is not running"
  kill -9 "$p"
  for _ in $(seq 1 40); do
    kill -0 "$p" 2>/dev/null || { echo "radosgw of $D stopped"; return 0; }
    sleep 0.25
  done
  die "radosgw ($p) of $D did not stop"
}

cmd_gateway_start() {
  [ -f "$D/rgw.env" ] || die "no instance in $D"
  local port https_port t0
  port=$(sed -n 's/^KEEPDATA_RGW_PORT=//p' "$D/rgw.env")
  # Empty for an instance started before rgw.sh served HTTPS.
  https_port=$(sed -n 's/^KEEPDATA_RGW_HTTPS_PORT=//p' "$D/rgw.env")
  t0=$(date +%s%N)
  radosgw -c "$CONF" -n client.rgw.a >>"$D/log/rgw-start.out" 2>&1
  for _ in $(seq 1 240); do
    if s3_answers "$port" && { [ -z "$https_port" ] || https_answers "$https_port"; }; then
      echo "radosgw of $D answers again in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
      return 0
    fi
    sleep 0.5
  done
  die "radosgw of $D did not answer on 127.0.0.1:$port within 120 s"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  gateway-stop) cmd_gateway_stop ;;
  gateway-start) cmd_gateway_start ;;
  *) echo "usage: $0 up|down|status|gateway-stop|gateway-start" >&2; exit 2 ;;
esac
