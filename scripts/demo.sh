#!/usr/bin/env bash
# The main job, as a demo on embedded defaults: a local Ceph RGW stands in for Clever Cloud Cellar and
# two local Docker containers stand in for app servers.
#   1. playbooks/cellar.yml declares buckets (policy presets, CORS, lifecycle rules) on the RGW; a --check --diff
#      preview of a new environment built task by task shows every change and writes nothing;
#      plain HTTP then shows the public bucket serving anonymously and a CORS preflight answered, and the
#      lifecycle rule removes the bucket's previews/ (the local RGW's lifecycle "day" lasts 10 s).
#      An append-only bucket (preset restic_append_only): the app server's own S3 user adds objects and
#      removes restic's locks, and is refused deleting anything else or suspending versioning.
#   2. playbooks/shared_storage.yml mounts one bucket with s3fs on both app servers;
#      a file written on one is read on the other; app2's s3fs daemon is killed and its health timer
#      remounts the bucket.
#   3. playbooks/backup.yml schedules encrypted restic backups of app1 to a bucket; the job runs once
#      through systemd and its snapshot is listed.
#   4. playbooks/backup_now.yml takes a pre-update snapshot; playbooks/restore.yml previews (--check), then
#      clones app1's app onto app2 from the same repository, moving app2's own files aside; the restore drill
#      passes; playbooks/export.yml writes a tar for someone without restic and prints its sha256; a wrong rm -rf
#      empties the shared storage: the next backup is suspect, retention keeps the last good snapshot, which is
#      restored. app1's container is then destroyed, and playbooks/recover.yml rebuilds it in one run: shared
#      storage, backup job (timers held until the data is back), files, SQLite rows and the app's service; its
#      first backup continues the lost server's snapshot series.
#   5. The backup role installs node_exporter on app1; a Prometheus on app2 gets the collection's alert rules
#      (playbooks/backup_monitoring.yml), scrapes app1 and knows when its job last succeeded.
#   6. playbooks/cellar.yml runs as an AWX job template would run it: ansible-runner, the keys from the
#      collection's credentials-file credential type, the answers of its survey; the secret is in no artifact.
# Set KEEPDATA_DEMO_KEEP=1 to leave the RGW and the containers running afterwards.
set -euo pipefail
source "$(dirname "$0")/common.sh"

"$KD_ROOT/scripts/bootstrap.sh" --hosts
kd_activate
cd "$KD_ROOT"
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False

DEMO_DIR="$KD_WORK/demo"
RGW_DIR="$DEMO_DIR/rgw"
HOSTS=(keepdata-demo-app1 keepdata-demo-app2)
mkdir -p "$DEMO_DIR"

cleanup() {
  [ "${KEEPDATA_DEMO_KEEP:-0}" = 1 ] && { echo "kept: RGW in $RGW_DIR, containers ${HOSTS[*]}"; return; }
  docker rm -f "${HOSTS[@]}" >/dev/null 2>&1 || true
  KEEPDATA_RGW_DIR="$RGW_DIR" "$KD_ROOT/tests/rig/rgw.sh" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

kd_step "start the local Cellar stand-in (Ceph RGW on 127.0.0.1)"
KEEPDATA_RGW_DIR="$RGW_DIR" "$KD_ROOT/tests/rig/rgw.sh" down >/dev/null 2>&1 || true
KEEPDATA_RGW_DIR="$RGW_DIR" KEEPDATA_RGW_PORT=auto KEEPDATA_MON_PORT=auto "$KD_ROOT/tests/rig/rgw.sh" up
# shellcheck source=/dev/null
source "$RGW_DIR/rgw.env"
# The collection reads the same variables a Clever Cloud app gets from its Cellar add-on.
export CELLAR_ADDON_HOST="$KEEPDATA_RGW_ENDPOINT"
export CELLAR_ADDON_KEY_ID="$KEEPDATA_RGW_OWNER_ACCESS_KEY"
export CELLAR_ADDON_KEY_SECRET="$KEEPDATA_RGW_OWNER_SECRET_KEY"

kd_step "declare buckets with playbooks/cellar.yml"
cat >"$DEMO_DIR/cellar-vars.yml" <<VARS
cellar_buckets:
  - name: demo-public-assets
    preset: public_read
    cors:
      - allowed_origins: [https://app.example.com]
        allowed_methods: [GET, HEAD]
        allowed_headers: ["*"]
        max_age_seconds: 600
    lifecycle:
      - {id: previews, prefix: previews/, expiration_days: 1}
  - name: demo-private-data
    versioning: enabled
    preset: read_only
    principals: [$KEEPDATA_RGW_ADDON_UID]
  - name: demo-shared-storage
    lifecycle:
      - {id: unfinished-uploads, abort_incomplete_multipart_upload_days: 2}
VARS
ansible-playbook playbooks/cellar.yml -e "@$DEMO_DIR/cellar-vars.yml" 2>&1 | tee "$DEMO_DIR/first-run.log"

kd_step "run it again: nothing to change"
ansible-playbook playbooks/cellar.yml -e "@$DEMO_DIR/cellar-vars.yml" 2>&1 | tee "$DEMO_DIR/second-run.log" | tail -n 3
grep -qE 'localhost +: ok=[0-9]+ +changed=0 ' "$DEMO_DIR/second-run.log" || kd_die "the second run reported changes"

kd_step "preview a new environment built task by task (--check --diff): every change shown, nothing written"
cat >"$DEMO_DIR/new-environment.yml" <<'PLAY'
- name: A new environment, task by task
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: The bucket
      keepdata.storage.cellar_bucket: {name: demo-next-release, versioning: enabled}
    - name: Its policy
      keepdata.storage.cellar_bucket_policy: {bucket: demo-next-release, preset: public_read}
    - name: Its CORS rules
      keepdata.storage.cellar_cors:
        bucket: demo-next-release
        rules: [{allowed_origins: ["https://app.example.com"], allowed_methods: [GET]}]
    - name: Its lifecycle rules
      keepdata.storage.cellar_lifecycle:
        bucket: demo-next-release
        rules: [{id: drafts, prefix: drafts/, expiration_days: 30}, {id: old-versions, noncurrent_version_expiration_days: 60}]
PLAY
ansible-playbook --check --diff "$DEMO_DIR/new-environment.yml" >"$DEMO_DIR/new-environment.log" 2>&1 \
  || { tail -n 20 "$DEMO_DIR/new-environment.log"; kd_die "the preview of a new environment failed"; }
grep -E 'localhost +: ok=|does not exist yet' "$DEMO_DIR/new-environment.log"
grep -qE 'localhost +: ok=4 +changed=4 +unreachable=0 +failed=0' "$DEMO_DIR/new-environment.log" || kd_die "the preview did not show four changes"

kd_step "what the declarations do, seen with plain HTTP"
python3 - <<PY
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url="$KEEPDATA_RGW_ENDPOINT", region_name="us-east-1",
                  aws_access_key_id="$KEEPDATA_RGW_OWNER_ACCESS_KEY", aws_secret_access_key="$KEEPDATA_RGW_OWNER_SECRET_KEY",
                  config=Config(s3={"addressing_style": "path"}))
s3.put_object(Bucket="demo-public-assets", Key="hello.txt", Body=b"hello from a public Cellar bucket\n")
s3.put_object(Bucket="demo-public-assets", Key="previews/hello.png", Body=b"a preview the lifecycle rule removes\n")
s3.put_object(Bucket="demo-private-data", Key="report.txt", Body=b"private\n")
PY
show() { printf '  %-62s -> %s\n' "$1" "$2"; }
code=$(curl -s -o "$DEMO_DIR/hello.txt" -w '%{http_code}' "$KEEPDATA_RGW_ENDPOINT/demo-public-assets/hello.txt")
show "anonymous GET demo-public-assets/hello.txt" "HTTP $code: $(cat "$DEMO_DIR/hello.txt")"
[ "$code" = 200 ] || kd_die "the public bucket did not serve anonymously"
code=$(curl -s -o /dev/null -w '%{http_code}' "$KEEPDATA_RGW_ENDPOINT/demo-private-data/report.txt")
show "anonymous GET demo-private-data/report.txt" "HTTP $code (private stays private)"
[ "$code" = 403 ] || kd_die "the private bucket answered an anonymous request with $code"
allow=$(curl -s -o /dev/null -D - -X OPTIONS -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: GET' \
  "$KEEPDATA_RGW_ENDPOINT/demo-public-assets/hello.txt" | tr -d '\r' | sed -n 's/^[Aa]ccess-[Cc]ontrol-[Aa]llow-[Oo]rigin: //p')
show "CORS preflight from https://app.example.com" "Access-Control-Allow-Origin: ${allow:-<none>}"
[ "$allow" = https://app.example.com ] || kd_die "the CORS preflight was not answered for the allowed origin"
code=$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS -H 'Origin: https://evil.example.net' -H 'Access-Control-Request-Method: GET' \
  "$KEEPDATA_RGW_ENDPOINT/demo-public-assets/hello.txt")
show "CORS preflight from https://evil.example.net" "HTTP $code (refused)"
# The lifecycle rule "previews" expires previews/ after 1 day; on the local RGW a day lasts 10 s.
waited=$(python3 - <<PY
import time
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url="$KEEPDATA_RGW_ENDPOINT", region_name="us-east-1",
                  aws_access_key_id="$KEEPDATA_RGW_OWNER_ACCESS_KEY", aws_secret_access_key="$KEEPDATA_RGW_OWNER_SECRET_KEY",
                  config=Config(s3={"addressing_style": "path"}))
left = lambda: s3.list_objects_v2(Bucket="demo-public-assets", Prefix="previews/").get("KeyCount")
start = time.monotonic()
while left() and time.monotonic() - start < 120:
    time.sleep(2)
print(-1 if left() else round(time.monotonic() - start))
PY
)
[ "$waited" != -1 ] || kd_die "the lifecycle rule did not expire previews/hello.png within 120 s"
show "lifecycle rule 'previews' (1 day = 10 s here)" "previews/hello.png expired, ${waited} s after this step began"
code=$(curl -s -o /dev/null -w '%{http_code}' "$KEEPDATA_RGW_ENDPOINT/demo-public-assets/hello.txt")
show "the same bucket's hello.txt, outside previews/" "HTTP $code (kept)"
[ "$code" = 200 ] || kd_die "the lifecycle rule removed more than previews/"

kd_step "an append-only bucket: an app server's own S3 user adds backups and cannot delete them"
cat >"$DEMO_DIR/append-only.yml" <<PLAY
- name: A versioned bucket whose writer deletes nothing but restic's locks
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: The bucket, versioned (an overwrite keeps the previous version)
      keepdata.storage.cellar_bucket: {name: demo-backups-append-only, versioning: enabled}
    - name: The app server's user may list, read and add; delete only under app1/locks/
      keepdata.storage.cellar_bucket_policy:
        bucket: demo-backups-append-only
        preset: restic_append_only
        principals: [$KEEPDATA_RGW_ADDON_UID]
        repository_prefix: app1
PLAY
ansible-playbook "$DEMO_DIR/append-only.yml" >"$DEMO_DIR/append-only.log" 2>&1 \
  || { tail -n 20 "$DEMO_DIR/append-only.log"; kd_die "the append-only bucket could not be declared"; }
grep -E 'localhost +: ok=' "$DEMO_DIR/append-only.log"
python3 - <<PY || kd_die "the append-only bucket did not hold"
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
host = boto3.client("s3", endpoint_url="$KEEPDATA_RGW_ENDPOINT", region_name="us-east-1",
                    aws_access_key_id="$KEEPDATA_RGW_ADDON_ACCESS_KEY", aws_secret_access_key="$KEEPDATA_RGW_ADDON_SECRET_KEY",
                    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
bucket = "demo-backups-append-only"
def answer(call, **kwargs):
    try:
        call(Bucket=bucket, **kwargs)
        return "done"
    except ClientError as exc:
        return exc.response["Error"]["Code"]
seen = [
    ("the host's key writes app1/data/pack-1", answer(host.put_object, Key="app1/data/pack-1", Body=b"pack\n"), "done"),
    ("the host's key writes and deletes a lock, app1/locks/1", answer(host.put_object, Key="app1/locks/1", Body=b"lock\n")
     + ", " + answer(host.delete_object, Key="app1/locks/1"), "done, done"),
    ("the host's key deletes app1/data/pack-1", answer(host.delete_object, Key="app1/data/pack-1"), "AccessDenied"),
    ("the host's key suspends versioning", answer(host.put_bucket_versioning, VersioningConfiguration={"Status": "Suspended"}), "AccessDenied"),
]
for what, got, expected in seen:
    print("  %-62s -> %s" % (what, got))
raise SystemExit(0 if all(got == expected for _what, got, expected in seen) else 1)
PY

kd_step "start two app servers (systemd containers on the host network, FUSE allowed)"
for h in "${HOSTS[@]}"; do
  kd_start_host "$h" demo
done
cat >"$DEMO_DIR/inventory.yml" <<INV
shared_storage:
  hosts:
    ${HOSTS[0]}:
    ${HOSTS[1]}:
  vars:
    ansible_connection: community.docker.docker
    s3fs_bucket: demo-shared-storage
    s3fs_from_cellar_env: true
    s3fs_path: /storage
    s3fs_app_root: /srv/app
    # As Scalingo's SCALINGO_SHAREDFS_SYMLINKS holds them, copied as they are.
    s3fs_symlinks: "public/uploads:tmp/cache"
    # Short metadata cache so the other server sees new files within a second or two.
    s3fs_stat_cache_expire: 1
INV
for h in "${HOSTS[@]}"; do
  kd_wait_systemd "$h"
done
# The app, as its own deployment installs it: a service that needs its SQLite database (it will not start without it).
deploy_app() {
  docker exec -i "$1" sh -c 'cat > /etc/systemd/system/demo-app.service && systemctl daemon-reload && systemctl enable -q demo-app.service' <<'UNIT'
[Unit]
Description=The demo app (reads its notes from SQLite)
[Service]
ExecStartPre=/usr/bin/python3 -c "import sqlite3; sqlite3.connect('file:/srv/app/db/notes.sqlite3?mode=ro', uri=True).execute('select 1 from notes')"
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
UNIT
}
notes() {
  docker exec "$1" python3 -c "import sqlite3; print(sqlite3.connect('file:/srv/app/db/notes.sqlite3?mode=ro', uri=True).execute('select count(*) from notes').fetchone()[0])"
}
for h in "${HOSTS[@]}"; do
  deploy_app "$h"
  docker exec "$h" python3 -c "import os, sqlite3; os.makedirs('/srv/app/db', exist_ok=True); db = sqlite3.connect('/srv/app/db/notes.sqlite3')
db.execute('create table notes (text)'); db.executemany('insert into notes values (?)', [('note %d of $h' % n,) for n in range(100)]); db.commit()"
  docker exec "$h" systemctl start demo-app.service
done
# An app that already has uploads before the shared storage arrives: they must not be lost.
docker exec "${HOSTS[0]}" sh -c 'mkdir -p /srv/app/public/uploads/photos && echo "uploaded before the migration" > /srv/app/public/uploads/old.txt
  for n in $(seq 1 30); do head -c 16384 /dev/urandom > /srv/app/public/uploads/photos/$n.jpg; done'

kd_step "mount the shared bucket on both servers with playbooks/shared_storage.yml"
ansible-playbook -i "$DEMO_DIR/inventory.yml" playbooks/shared_storage.yml 2>&1 | tee "$DEMO_DIR/first-mount-run.log"

kd_step "run it again: nothing to change"
ansible-playbook -i "$DEMO_DIR/inventory.yml" playbooks/shared_storage.yml 2>&1 | tee "$DEMO_DIR/second-mount-run.log" | tail -n 4
[ "$(grep -cE '^keepdata-demo-app[12] +: ok=[0-9]+ +changed=0 ' "$DEMO_DIR/second-mount-run.log")" = 2 ] \
  || kd_die "the second shared-storage run reported changes"
! grep -h WARNING "$DEMO_DIR/first-mount-run.log" "$DEMO_DIR/second-mount-run.log" || kd_die "a normal run printed a warning"

kd_step "a file written on one server is read on the other"
docker exec "${HOSTS[0]}" sh -c 'echo "written on app1 at $(date -u +%T)" > /srv/app/public/uploads/hello.txt'
for _ in $(seq 1 20); do
  docker exec "${HOSTS[1]}" test -f /srv/app/public/uploads/hello.txt && break
  sleep 1
done
show "${HOSTS[1]}: /srv/app/public/uploads/hello.txt" "$(docker exec "${HOSTS[1]}" cat /srv/app/public/uploads/hello.txt)"
show "${HOSTS[1]}: /srv/app/public/uploads/old.txt" "$(docker exec "${HOSTS[1]}" cat /srv/app/public/uploads/old.txt)"
show "${HOSTS[1]}: /srv/app/public/uploads is" "$(docker exec "${HOSTS[1]}" readlink /srv/app/public/uploads) (a symlink)"
show "${HOSTS[1]}: /srv/app/tmp/cache is" "$(docker exec "${HOSTS[1]}" readlink /srv/app/tmp/cache) (a symlink)"
docker exec "${HOSTS[1]}" grep -q 'written on app1' /srv/app/public/uploads/hello.txt || kd_die "the file did not cross between the servers"
docker exec "${HOSTS[1]}" grep -q 'before the migration' /srv/app/public/uploads/old.txt || kd_die "the upload made before the migration was not kept"

kd_step "the s3fs daemon on app2 dies (kill -9): its health timer remounts /storage, no Ansible run needed"
since=$(docker exec "${HOSTS[1]}" date '+%Y-%m-%d %H:%M:%S')
docker exec "${HOSTS[1]}" pkill -9 -x s3fs
sleep 0.5
show "${HOSTS[1]}: /storage right after (mountinfo still says mounted)" \
  "$(docker exec "${HOSTS[1]}" python3 /usr/local/lib/keepdata/mount_health.py look /storage || true)"
healed=""
for second in $(seq 1 45); do
  # Mounted again and answering (the bare directory answers too, between the healer's unmount and remount).
  if [ "$(docker exec "${HOSTS[1]}" findmnt -rn -o FSTYPE -M /storage | tail -n 1)" = fuse.s3fs ] \
    && docker exec "${HOSTS[1]}" python3 /usr/local/lib/keepdata/mount_health.py look /storage >/dev/null; then
    healed=$second
    break
  fi
  sleep 1
done
[ -n "$healed" ] || kd_die "the health timer did not remount /storage within 45 s"
show "${HOSTS[1]}: healed after" "${healed} s (the timer checks every 30 s)"
show "${HOSTS[1]}: journalctl -t keepdata-mount-health" \
  "$(docker exec "${HOSTS[1]}" journalctl -t keepdata-mount-health --since "$since" -o cat --no-pager)"
docker exec "${HOSTS[1]}" grep -q 'before the migration' /srv/app/public/uploads/old.txt || kd_die "the file is not readable after the healing"
kd_step "schedule encrypted backups of app1 to the RGW with playbooks/backup.yml"
cat >"$DEMO_DIR/backup-vars.yml" <<VARS
# A demo password; a real one comes from a vault and is kept away from the host as well.
backup_password: demo-only-password-change-me
backup_from_cellar_env: true
backup_s3_bucket: demo-backups
backup_create_bucket: true
backup_jobs:
  - name: app
    paths: [/srv/app, /storage]
    schedule: "*-*-* 03:00"
    # Dumped consistently at each backup, imported by a restore (the service stopped meanwhile).
    databases: [{type: sqlite, name: notes, path: /srv/app/db/notes.sqlite3}]
    services: [demo-app.service]
VARS
ansible-playbook -i "$DEMO_DIR/inventory.yml" -e backup_hosts="${HOSTS[0]}" -e "@$DEMO_DIR/backup-vars.yml" playbooks/backup.yml 2>&1 \
  | tee "$DEMO_DIR/backup-run.log" | tail -n 3
! grep -h WARNING "$DEMO_DIR/backup-run.log" || kd_die "the backup run printed a warning"

kd_step "run the job as its timer would, then list the snapshot"
docker exec "${HOSTS[0]}" systemctl start keepdata-backup-app.service
docker exec "${HOSTS[0]}" systemctl list-timers --no-pager keepdata-backup-app.timer | sed -n 1,2p
docker exec "${HOSTS[0]}" python3 -I /usr/local/lib/keepdata/backup_runner.py restic app snapshots
docker exec "${HOSTS[0]}" python3 -I /usr/local/lib/keepdata/backup_runner.py restic app ls latest \
  | grep '^/storage/.*uploads/old.txt$' >/dev/null || kd_die "the snapshot does not hold the app's uploads"
show "metrics: last exit status" "$(docker exec "${HOSTS[0]}" grep -h '^keepdata_backup_last_exit_status' /var/lib/prometheus/node-exporter/keepdata_backup_app.prom)"

kd_step "a pre-update snapshot with playbooks/backup_now.yml"
ansible-playbook -i "$DEMO_DIR/inventory.yml" -e backup_now_hosts="${HOSTS[0]}" -e backup_now_job=app -e backup_now_tag=pre-update \
  playbooks/backup_now.yml 2>&1 | tee "$DEMO_DIR/backup-now.log" | grep -o 'snapshot [0-9a-f]* of job app tagged.*bytes' \
  || { tail -n 20 "$DEMO_DIR/backup-now.log"; kd_die "backup_now.yml failed"; }

kd_step "clone app1's app onto app2: the same repository, app1's snapshots (preview, then the restore)"
ansible-playbook -i "$DEMO_DIR/inventory.yml" -e backup_hosts="${HOSTS[1]}" -e "@$DEMO_DIR/backup-vars.yml" playbooks/backup.yml \
  >"$DEMO_DIR/backup-run-app2.log" 2>&1 || { tail -n 20 "$DEMO_DIR/backup-run-app2.log"; kd_die "the backup role failed on app2"; }
docker exec "${HOSTS[1]}" sh -c 'echo "app2 before the clone" > /srv/app/app2-only.txt'
restore_args=(-i "$DEMO_DIR/inventory.yml" -e restore_hosts="${HOSTS[1]}" -e restore_job=app -e restore_source_host="${HOSTS[0]}"
  -e '{"restore_paths": ["/srv/app"], "restore_move_aside": true}' playbooks/restore.yml)
ansible-playbook --check "${restore_args[@]}" 2>&1 | tee "$DEMO_DIR/restore-check.log" | grep -E '"(snapshot [0-9a-f]{8} of|restore /)' \
  || { tail -n 20 "$DEMO_DIR/restore-check.log"; kd_die "the restore preview failed"; }
ansible-playbook "${restore_args[@]}" 2>&1 | tee "$DEMO_DIR/restore.log" | grep -E '"(restore /|previous content kept)' \
  || { tail -n 20 "$DEMO_DIR/restore.log"; kd_die "the restore failed"; }
show "${HOSTS[1]}: app2's own file, moved aside" "$(docker exec "${HOSTS[1]}" sh -c 'cat /srv/app.keepdata-moved-*/app2-only.txt')"
docker exec "${HOSTS[1]}" test ! -e /srv/app/app2-only.txt || kd_die "the clone did not replace app2's /srv/app"

kd_step "a restore drill on app1 (a sample restored and checked, a share of the repository read)"
docker exec "${HOSTS[0]}" systemctl start keepdata-backup-app-drill.service
show "metrics: drill result, files checked" "$(docker exec "${HOSTS[0]}" grep -hE '^keepdata_backup_drill_(last_result|files_checked)' \
  /var/lib/prometheus/node-exporter/keepdata_backup_app.prom | tr '\n' ' ')"

kd_step "export the latest snapshot as a tar.zst with playbooks/export.yml"
docker exec "${HOSTS[0]}" sh -c 'command -v zstd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd >/dev/null 2>&1'
ansible-playbook -i "$DEMO_DIR/inventory.yml" -e export_hosts="${HOSTS[0]}" -e export_job=app -e export_dest=/var/tmp/app-export.tar.zst \
  -e export_compress=zstd playbooks/export.yml 2>&1 | tee "$DEMO_DIR/export.log" | grep -o '/var/tmp/app-export.tar.zst: .*sha256 [0-9a-f]*' \
  || { tail -n 20 "$DEMO_DIR/export.log"; kd_die "export.yml failed"; }
docker exec "${HOSTS[0]}" sh -c 'tar --zstd -tf /var/tmp/app-export.tar.zst | grep -c .' >/dev/null || kd_die "the export is not a readable tar"
kd_step "a wrong rm -rf empties the shared storage: the next backup is suspect, retention keeps the last good snapshot, it comes back"
runner=(docker exec "${HOSTS[0]}" python3 -I /usr/local/lib/keepdata/backup_runner.py)
docker exec "${HOSTS[0]}" sh -c 'rm -rf /storage/*'
! docker exec "${HOSTS[0]}" systemctl start keepdata-backup-app.service 2>/dev/null || kd_die "the emptied storage was backed up as a good snapshot"
show "the job's verdict (the unit failed, no retry armed)" \
  "$(docker exec "${HOSTS[0]}" journalctl -u keepdata-backup-app.service -o cat -n 30 | grep -o 'suspect snapshot [0-9a-f]*: [^;]*' | tail -n 1)"
show "metrics: the last snapshot is suspect" "$(docker exec "${HOSTS[0]}" grep -h '^keepdata_backup_last_suspect' \
  /var/lib/prometheus/node-exporter/keepdata_backup_app.prom)"
docker exec "${HOSTS[0]}" systemctl start keepdata-backup-app-forget.service
# The newest snapshot without the suspect tag, still there after the retention run.
good=$("${runner[@]}" restic app snapshots --json | python3 -c 'import json, sys
good = [s for s in json.load(sys.stdin) if "keepdata-suspect" not in (s.get("tags") or [])]
print(max(good, key=lambda s: s["time"])["short_id"] if good else "")')
[ -n "$good" ] || kd_die "retention forgot every good snapshot"
show "after the retention run, the last good snapshot" "$good (the latest is suspect)"
# /storage is a mount point: restored below a target, then copied back.
ansible-playbook -i "$DEMO_DIR/inventory.yml" -e restore_hosts="${HOSTS[0]}" -e restore_job=app -e restore_snapshot="$good" \
  -e '{"restore_paths": ["/storage"]}' -e restore_target=/var/tmp/recovered playbooks/restore.yml >"$DEMO_DIR/restore-good.log" 2>&1 \
  || { tail -n 20 "$DEMO_DIR/restore-good.log"; kd_die "the restore of the last good snapshot failed"; }
# What is in it, not the directory itself (the s3fs mount's root takes no times).
docker exec "${HOSTS[0]}" sh -c 'cp -a /var/tmp/recovered/storage/* /storage/ && rm -rf /var/tmp/recovered'
docker exec "${HOSTS[0]}" systemctl start keepdata-backup-app.service || kd_die "the backup of the recovered storage failed"
show "the uploads are back, and the next backup" "$(docker exec "${HOSTS[0]}" cat /srv/app/public/uploads/old.txt); $(docker exec "${HOSTS[0]}" \
  journalctl -u keepdata-backup-app.service -o cat -n 30 | grep -o 'not suspect.*' | tail -n 1)"

kd_step "app1 is lost (its container removed); a new app1 is rebuilt with one command: playbooks/recover.yml"
docker exec "${HOSTS[0]}" python3 -c "import sqlite3; db = sqlite3.connect('/srv/app/db/notes.sqlite3'); db.execute(\"insert into notes values ('the last note')\"); db.commit()"
docker exec "${HOSTS[0]}" systemctl start keepdata-backup-app.service
lost_notes=$(notes "${HOSTS[0]}")
lost_snapshot=$("${runner[@]}" restic app snapshots --json --latest 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)[-1]["short_id"])')
docker rm -f "${HOSTS[0]}" >/dev/null
kd_start_host "${HOSTS[0]}" demo
kd_wait_systemd "${HOSTS[0]}"
# The new server gets the app's deployment (its service, waiting for its data), nothing else.
deploy_app "${HOSTS[0]}"
started=$(date +%s)
ansible-playbook -i "$DEMO_DIR/inventory.yml" -e recover_hosts="${HOSTS[0]}" -e backup_hosts="${HOSTS[0]}" -e "@$DEMO_DIR/backup-vars.yml" \
  playbooks/recover.yml 2>&1 | tee "$DEMO_DIR/recover.log" | grep -E '"job app: ' \
  || { tail -n 30 "$DEMO_DIR/recover.log"; kd_die "recover.yml failed"; }
show "rebuilt in" "$(($(date +%s) - started)) s (shared storage mounted, backup job installed, snapshot $lost_snapshot restored, timers armed)"
show "${HOSTS[0]}: SQLite notes" "$(notes "${HOSTS[0]}") rows (the lost server had $lost_notes)"
show "${HOSTS[0]}: demo-app.service" "$(docker exec "${HOSTS[0]}" systemctl is-active demo-app.service)"
show "${HOSTS[0]}: /srv/app/public/uploads/old.txt" "$(docker exec "${HOSTS[0]}" cat /srv/app/public/uploads/old.txt)"
show "${HOSTS[0]}: keepdata-backup-app.timer" "$(docker exec "${HOSTS[0]}" systemctl is-active keepdata-backup-app.timer), next run $(docker exec "${HOSTS[0]}" \
  systemctl list-timers --no-pager keepdata-backup-app.timer | awk 'NR == 2 { print $2, $3 }')"
[ "$(notes "${HOSTS[0]}")" = "$lost_notes" ] || kd_die "the SQLite rows did not come back"
docker exec "${HOSTS[0]}" systemctl is-active -q demo-app.service || kd_die "the app's service did not start"
docker exec "${HOSTS[0]}" systemctl is-active -q keepdata-backup-app.timer || kd_die "the backup timer was not armed"
! grep -h WARNING "$DEMO_DIR/recover.log" || kd_die "the recovery printed a warning"
# The new app1's first backup continues the lost one's series: restic finds its last snapshot as the parent.
docker exec "${HOSTS[0]}" systemctl start keepdata-backup-app.service || kd_die "the first backup after the recovery failed"
next_parent=$("${runner[@]}" restic app snapshots --json --latest 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)[-1].get("parent", "")[:8])')
show "the new app1's first backup" "parent $next_parent, $(docker exec "${HOSTS[0]}" grep -h '^keepdata_backup_last_bytes_added' \
  /var/lib/prometheus/node-exporter/keepdata_backup_app.prom | cut -d' ' -f2) bytes added"
[ "$next_parent" = "$lost_snapshot" ] || kd_die "the first backup after the recovery did not continue the lost host's series"

kd_step "monitoring: app1 serves its backup metrics with node_exporter (backup_node_exporter=install)"
ansible-playbook -i "$DEMO_DIR/inventory.yml" -e backup_hosts="${HOSTS[0]}" -e "@$DEMO_DIR/backup-vars.yml" -e backup_node_exporter=install \
  -e backup_node_exporter_listen_address=127.0.0.1:9101 playbooks/backup.yml >"$DEMO_DIR/backup-exporter.log" 2>&1 \
  || { tail -n 20 "$DEMO_DIR/backup-exporter.log"; kd_die "the backup role failed to install node_exporter"; }
show "node_exporter on app1 serves" "$(curl -fsS http://127.0.0.1:9101/metrics | grep -E '^keepdata_backup_(last_success_timestamp|max_age)_seconds' | tr '\n' ' ')"

kd_step "a Prometheus on app2 (what an admin already has) gets the collection's alert rules with playbooks/backup_monitoring.yml"
# Loopback only, scraping app1 every 5 s; its settings are in place before the package starts it.
docker exec "${HOSTS[1]}" sh -c 'mkdir -p /etc/prometheus/rules
  echo "ARGS=\"--web.listen-address=127.0.0.1:9491\"" > /etc/default/prometheus
  printf "global: {scrape_interval: 5s, evaluation_interval: 5s}\nrule_files: [/etc/prometheus/rules/*.yml]\nscrape_configs:\n  - job_name: node\n    static_configs: [{targets: [\"127.0.0.1:9101\"], labels: {instance: app1}}]\n" > /etc/prometheus/prometheus.yml
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold prometheus >/dev/null 2>&1' \
  || kd_die "could not install Prometheus on app2"
ansible-playbook -i "$DEMO_DIR/inventory.yml" -e backup_monitoring_hosts="${HOSTS[1]}" playbooks/backup_monitoring.yml 2>&1 \
  | tee "$DEMO_DIR/monitoring.log" | tail -n 3
query() { curl -fsS --get http://127.0.0.1:9491/api/v1/query --data-urlencode "query=$1"; }
for _ in $(seq 1 30); do
  query 'keepdata_backup_last_success_timestamp_seconds{backup_job="app"}' >"$DEMO_DIR/prom-last-success.json" 2>/dev/null \
    && grep -q '"instance":"app1"' "$DEMO_DIR/prom-last-success.json" && break
  sleep 2
done
grep -q '"instance":"app1"' "$DEMO_DIR/prom-last-success.json" || kd_die "Prometheus did not scrape app1's backup metrics"
show "Prometheus: app1's job last succeeded" "$(python3 -c 'import json, sys, time
value = float(json.load(sys.stdin)["data"]["result"][0]["value"][1])
print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value)), "(%d s ago)" % (time.time() - value))' <"$DEMO_DIR/prom-last-success.json")"
show "Prometheus: backup alert rules loaded" "$(curl -fsS http://127.0.0.1:9491/api/v1/rules | python3 -c 'import json, sys
groups = [g for g in json.load(sys.stdin)["data"]["groups"] if g["name"] == "keepdata-backup"]
print(", ".join(r["name"] for g in groups for r in g["rules"]))')"
show "Prometheus: firing or pending" "$(curl -fsS http://127.0.0.1:9491/api/v1/alerts | python3 -c 'import json, sys
print(len(json.load(sys.stdin)["data"]["alerts"]), "alerts (a late, failed or partial backup, a failed drill or check would be listed)")')"

kd_step "playbooks/cellar.yml as an AWX job: ansible-runner, the credentials-file credential type, the survey's answers"
# The credential's inputs go through stdin (printf is a shell builtin: no secret on a command line); the job's own
# environment gets no CELLAR_ADDON_* of this shell (tests/integration/awx_job.py drops them).
printf '{"cellar_file.json": {"host": "%s", "key_id": "%s", "key_secret": "%s"}}' \
  "$KEEPDATA_RGW_ENDPOINT" "$KEEPDATA_RGW_OWNER_ACCESS_KEY" "$KEEPDATA_RGW_OWNER_SECRET_KEY" \
  | python3 tests/integration/awx_job.py --dir "$DEMO_DIR/awx-job" --playbook cellar.yml --hosts localhost --connection local \
    --type cellar_file.json --extra-vars '{"cellar_buckets": "- name: demo-from-awx\n  versioning: enabled\n", "cellar_endpoint": "",
    "cellar_path_style": "false", "cellar_workers": 8}' >"$DEMO_DIR/awx-job.json" \
  || kd_die "the AWX-style job could not be run"
python3 - "$DEMO_DIR/awx-job.json" <<'PY' || kd_die "the AWX-style job failed or left the secret in its artifacts"
import json, sys
job = json.load(open(sys.argv[1]))
print("  job %s (rc %s), changed: %s; injected: %s; the secret in the artifacts: %s" % (
    job["status"], job["rc"], sorted(job["stats"]["changed"]) or "nothing", ", ".join(job["env_names"]),
    ", ".join(job["secret_in_artifacts"]) or "nowhere"))
sys.exit(0 if job["rc"] == 0 and not job["secret_in_artifacts"] and not job["secret_in_stdout"] else 1)
PY

# No step may print a warning: Ansible's [WARNING] or a Python one (a newcomer's first run was full of
# "CryptographyDeprecationWarning: DSA is deprecated" until the toolchain pinned cryptography). The one expected:
# the preview of a new environment says which bucket an earlier task must create.
warned=$(grep -HE '\[WARNING\]|WARNING:|[a-z]Warning: ' "$DEMO_DIR"/*.log \
  | grep -vE "^$DEMO_DIR/new-environment.log:\[WARNING\]: bucket '[a-z0-9.-]+' does not exist yet: ") \
  && kd_die "a step printed a warning: $warned"

kd_step "demo done"
