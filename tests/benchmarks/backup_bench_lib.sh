#!/usr/bin/env bash
# Shared by backup_bench.sh and restore_bench.sh (sourced): one systemd test host HOST beside a throwaway RGW
# (KEEPDATA_RGW_DIR/PORT/MON_PORT set by the caller), a work directory W, and the mixed test data.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
kd_activate

BENCH_MB=${BENCH_MB:-300}
W=$(mktemp -d "$KD_WORK/bench-$HOST.XXXXXX")
export ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=default

bench_cleanup() {
  docker rm -f "$HOST" >/dev/null 2>&1 || true
  "$KD_ROOT/tests/rig/rgw.sh" down >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap bench_cleanup EXIT

in_host() { docker exec "$HOST" bash -c "$1"; }
# now_ms: wall clock in milliseconds.
now_ms() { date +%s%3N; }
# div A B [DECIMALS]: A / B as a decimal number.
div() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { printf "%.*f", d, a / b }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# bench_start: the RGW (its keys exported, for the Python uploads of the callers) and the systemd host.
bench_start() {
  kd_step "start the RGW and a systemd host"
  "$KD_ROOT/tests/rig/rgw.sh" down >/dev/null 2>&1 || true
  "$KD_ROOT/tests/rig/rgw.sh" up >/dev/null
  set -a
  # shellcheck source=/dev/null
  source "$KEEPDATA_RGW_DIR/rgw.env"
  set +a
  kd_start_host "$HOST" bench
  kd_wait_systemd "$HOST"
}

# bench_make_data: BENCH_MB MB in /srv/bench: 40 % compressible text, 40 % random binary, 20 % in 4 KiB files.
bench_make_data() {
  kd_step "make $BENCH_MB MB of mixed data (40% text, 40% random, 20% in 4 KiB files)"
  in_host "set -e; mkdir -p /srv/bench/text /srv/bench/bin /srv/bench/small/d
    text_mb=\$(( $BENCH_MB * 4 / 10 )); bin_mb=\$(( $BENCH_MB * 4 / 10 )); small_n=\$(( $BENCH_MB * 1024 / 5 / 4 ))
    for i in \$(seq 1 \$(( text_mb / 10 ))); do head -c 7500000 /dev/urandom | base64 -w 120 | head -c 10000000 > /srv/bench/text/t\$i.txt; done
    for i in \$(seq 1 \$(( bin_mb / 10 ))); do head -c 10000000 /dev/urandom > /srv/bench/bin/b\$i.bin; done
    head -c \$(( small_n * 4096 )) /dev/urandom | split -b 4096 -a 5 - /srv/bench/small/d/f
    du -sm /srv/bench | cut -f1"
}

# bench_install_job BUCKET [VAR: VALUE ...]: job "bench" (/srv/bench) into BUCKET with playbooks/backup.yml, through
# an inventory at $W/inventory.yml; the extra arguments are more role variables, one YAML line each.
bench_install_job() {
  local bucket=$1 var
  shift
  {
    printf 'backup:\n  hosts:\n    %s:\n  vars:\n' "$HOST"
    printf '    %s\n' "ansible_connection: community.docker.docker" "backup_password: $PASSWORD" "backup_s3_bucket: $bucket" \
      "backup_s3_endpoint: $KEEPDATA_RGW_ENDPOINT" "backup_s3_access_key: $KEEPDATA_RGW_OWNER_ACCESS_KEY" \
      "backup_s3_secret_key: $KEEPDATA_RGW_OWNER_SECRET_KEY" "backup_create_bucket: true" "backup_metrics_dir: /var/lib/keepdata/metrics"
    for var in "$@"; do printf '    %s\n' "$var"; done
    printf '    backup_jobs:\n      - name: bench\n        paths: [/srv/bench]\n'
  } >"$W/inventory.yml"
  ansible-playbook -i "$W/inventory.yml" "$KD_ROOT/playbooks/backup.yml" >"$W/converge.log" 2>&1 || { tail -n 30 "$W/converge.log"; kd_die "converge failed"; }
}
