#!/usr/bin/env bash
# Benchmark of the backup role's job on one systemd test host (Docker, host network, loopback only), against
# what a user would run instead, side by side on the same data and the same bucket of a throwaway RGW
# (127.0.0.1:7498, mon 3398):
#   1. the role's job (systemctl start keepdata-backup-bench.service: runner, lock, unlock, backup, metrics)
#      vs bare `restic backup` with the same repository options, each a first backup into an empty repository;
#   2. a second run of the role's job on unchanged data: bytes added (from the job's metrics) and duration;
#   3. `tar | zstd -3` of the same data streamed into the same bucket (one object) vs the restic repository:
#      time and stored size.
# Data: BENCH_MB (default 300) MB of mixed files: compressible text, random binary, and many small files.
# Runs are interleaved (role, bare, role, bare) and the page cache is warmed first; the medians are printed.
set -euo pipefail
HOST=keepdata-bench-backup
export KEEPDATA_RGW_DIR=/tmp/kd-rgw-bench-backup KEEPDATA_RGW_PORT=7498 KEEPDATA_MON_PORT=3398
source "$(dirname "$0")/backup_bench_lib.sh"
PASSWORD=bench-password-not-secret-0001

bench_start
bench_make_data

kd_step "install the job with playbooks/backup.yml"
bench_install_job bench-backups "backup_s3_prefix: restic/role"
in_host "apt-get install -y -qq zstd >/dev/null"

# The bare restic a user would run by hand: the same repository options, the same secret files.
bare_repo() { echo "s3:$KEEPDATA_RGW_ENDPOINT/bench-backups/restic/bare-$1"; }
# bare_restic REPO-SUFFIX "ARGS" [WRAPPER]: restic as a user would type it (WRAPPER such as nice in front).
bare_restic() {
  in_host "RESTIC_PASSWORD_FILE=/etc/keepdata/backup/repository.password AWS_SHARED_CREDENTIALS_FILE=/etc/keepdata/backup/s3.credentials \
    RESTIC_CACHE_DIR=/var/cache/bench-restic ${3:-} restic -o s3.bucket-lookup=path -o s3.connections=5 -r $(bare_repo "$1") $2"
}
# role_repo_reset N: a new empty repository for the role's job (its prefix changed in the job's config).
role_repo_reset() {
  in_host "python3 - <<'PY'
import json
p = '/etc/keepdata/backup/jobs/bench.json'
c = json.load(open(p))
c['repository'] = c['repository'].rsplit('/', 1)[0] + '/role-$1'
json.dump(c, open(p, 'w'))
PY
RESTIC_PASSWORD_FILE=/etc/keepdata/backup/repository.password AWS_SHARED_CREDENTIALS_FILE=/etc/keepdata/backup/s3.credentials \
  restic -o s3.bucket-lookup=path -r \$(python3 -c \"import json; print(json.load(open('/etc/keepdata/backup/jobs/bench.json'))['repository'])\") init >/dev/null"
}
metric() { in_host "sed -n 's/^$1{backup_job=\"bench\"} //p' /var/lib/keepdata/metrics/keepdata_backup_bench.prom"; }

in_host "find /srv/bench -type f -exec cat {} + > /dev/null"
role_ms=() bare_ms=() nice_ms=()
# Bare restic twice: as a user runs it, and under the job's own scheduling (nice 15, idle I/O, batch CPU), so
# that the wrapper's cost is told apart from the cost of running politely.
POLITE="nice -n 15 ionice -c 3 chrt -b 0"
for round in 1 2 3; do
  kd_step "round $round: the role's job, bare restic, bare restic under the job's scheduling (each into an empty repository)"
  role_repo_reset "$round"
  t0=$(now_ms); in_host "systemctl start keepdata-backup-bench.service"; role_ms+=($(( $(now_ms) - t0 )))
  bare_restic "$round" "init" >/dev/null
  t0=$(now_ms); bare_restic "$round" "backup --quiet --host $HOST /srv/bench" >/dev/null; bare_ms+=($(( $(now_ms) - t0 )))
  bare_restic "nice-$round" "init" >/dev/null
  t0=$(now_ms); bare_restic "nice-$round" "backup --quiet --host $HOST /srv/bench" "$POLITE" >/dev/null; nice_ms+=($(( $(now_ms) - t0 )))
done

kd_step "second run of the role's job on unchanged data"
t0=$(now_ms); in_host "systemctl start keepdata-backup-bench.service"; second_ms=$(( $(now_ms) - t0 ))
second_added=$(metric keepdata_backup_last_bytes_added)
data_bytes=$(in_host "du -sb /srv/bench | cut -f1")

kd_step "tar | zstd -3 of the same data, streamed into the same bucket"
cat >"$W/upload.py" <<'PY'
import os, sys
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=os.environ["KEEPDATA_RGW_OWNER_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["KEEPDATA_RGW_OWNER_SECRET_KEY"], config=Config(s3={"addressing_style": "path"}))
s3.upload_fileobj(sys.stdin.buffer, "bench-backups", "tar/bench.tar.zst")
PY
t0=$(now_ms)
docker exec "$HOST" bash -c "tar -C /srv -cf - bench | zstd -q -3 -T2" | python3 "$W/upload.py" "$KEEPDATA_RGW_ENDPOINT"
tar_ms=$(( $(now_ms) - t0 ))

sizes=$(python3 - "$KEEPDATA_RGW_ENDPOINT" <<'PY'
import os, sys
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=os.environ["KEEPDATA_RGW_OWNER_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["KEEPDATA_RGW_OWNER_SECRET_KEY"], config=Config(s3={"addressing_style": "path"}))
def size(prefix):
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench-backups", Prefix=prefix):
        total += sum(o["Size"] for o in page.get("Contents", []))
    return total
print(size("restic/role-1/"), size("restic/bare-1/"), size("tar/"))
PY
)
read -r role_size bare_size tar_size <<<"$sizes"

role_med=$(median "${role_ms[@]}"); bare_med=$(median "${bare_ms[@]}"); nice_med=$(median "${nice_ms[@]}")
kd_step "results ($(( data_bytes / 1000000 )) MB of data)"
printf '%-52s %12s %14s\n' "run" "time (s)" "stored (MB)"
printf '%-52s %12.2f %14.1f\n' "role's job, first backup (median of ${#role_ms[@]}: ${role_ms[*]} ms)" "$(div "$role_med" 1000)" "$(div "$role_size" 1000000)"
printf '%-52s %12.2f %14.1f\n' "bare restic backup, first backup (median of ${#bare_ms[@]}: ${bare_ms[*]} ms)" "$(div "$bare_med" 1000)" "$(div "$bare_size" 1000000)"
printf '%-52s %12.2f %14s\n' "bare restic, nice 15 + idle I/O + batch (${nice_ms[*]} ms)" "$(div "$nice_med" 1000)" "-"
printf '%-52s %12.2f %14.1f\n' "tar | zstd -3 into the bucket" "$(div "$tar_ms" 1000)" "$(div "$tar_size" 1000000)"
printf '%-52s %12.2f %14s\n' "role's job, second run on unchanged data" "$(div "$second_ms" 1000)" "-"
echo "time ratio role/bare restic: $(div "$role_med" "$bare_med" 3) (goal <= 1.05); role/bare restic under the same scheduling: $(div "$role_med" "$nice_med" 3)"
echo "second run: $second_added bytes added = $(div "$(( 100 * second_added ))" "$data_bytes" 4) % of the data (goal < 1 %)"
