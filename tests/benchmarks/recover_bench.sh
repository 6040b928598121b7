#!/usr/bin/env bash
# Benchmark of recovery time (RTO): a systemd test host (Docker, host network, loopback only) with BENCH_MB (default
# 300) MB of mixed files, an SQLite database and a PostgreSQL database is backed up to a throwaway RGW
# (127.0.0.1:7495, mon 3395), then lost (its container removed). A new host under its name gets only the app's
# deployment (PostgreSQL and an empty database, not timed), then playbooks/recover.yml rebuilds it: the whole
# command is timed, and its restore task alone (profile_tasks). Side by side, on the same new host and the same
# snapshot, what a user would run instead: a bare `restic restore` of the snapshot, with and without --verify (the
# recovery verifies), into an empty directory. Goal: recovery <= 1.3 x the bare restore + 60 s of converge.
set -euo pipefail
HOST=keepdata-bench-recover
export KEEPDATA_RGW_DIR=/tmp/kd-rgw-bench-recover KEEPDATA_RGW_PORT=7495 KEEPDATA_MON_PORT=3395
source "$(dirname "$0")/backup_bench_lib.sh"
PASSWORD=bench-password-not-secret-0003

# The app's deployment, on the lost host and on the new one: PostgreSQL on its Unix socket only (the test hosts share
# the machine's network), an empty database.
deploy_app() {
  in_host "set -e; mkdir -p /etc/postgresql-common/createcluster.d
    echo \"listen_addresses = ''\" > /etc/postgresql-common/createcluster.d/keepdata-bench.conf
    for try in 1 2 3; do apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null && break; sleep 10; done
    for _ in \$(seq 1 60); do test -S /var/run/postgresql/.s.PGSQL.5432 && break; sleep 0.5; done
    runuser -u postgres -- createdb appdb"
}

bench_start
bench_make_data >/dev/null
kd_step "the app's databases: SQLite (100 000 rows) and PostgreSQL (100 000 rows)"
deploy_app
in_host "python3 -c \"import sqlite3; c = sqlite3.connect('/srv/bench/app.sqlite3'); c.execute('create table notes (body text)')
c.executemany('insert into notes values (?)', (('note %d' % n,) for n in range(100000))); c.commit()\"
  runuser -u postgres -- psql -q -d appdb -c \"create table notes (body text); insert into notes select 'note ' || n from generate_series(1, 100000) n\""

kd_step "install the job with playbooks/backup.yml, then back it up once"
bench_install_job bench-recover
# The job of bench_install_job, with the two databases.
sed -i 's|^        paths: \[/srv/bench\]$|&\n        databases: [{type: sqlite, name: app, path: /srv/bench/app.sqlite3}, {type: postgresql, name: appdb, database: appdb}]|' \
  "$W/inventory.yml"
ansible-playbook -i "$W/inventory.yml" "$KD_ROOT/playbooks/backup.yml" >"$W/converge.log" 2>&1 || { tail -n 30 "$W/converge.log"; kd_die "converge failed"; }
in_host "systemctl start keepdata-backup-bench.service"
data_bytes=$(in_host "du -sb /srv/bench | cut -f1")
lost=$(in_host "python3 -c \"import sqlite3; print(sqlite3.connect('/srv/bench/app.sqlite3').execute('select count(*) from notes').fetchone()[0])\";
  runuser -u postgres -- psql -Atq -d appdb -c 'select count(*) from notes'; cd /srv/bench && find . -type f ! -name 'app.sqlite3*' | sort | xargs sha256sum | sha256sum")

kd_step "the host is lost; a new one under its name, with the app's deployment only (not timed)"
docker rm -f "$HOST" >/dev/null
kd_start_host "$HOST" bench
kd_wait_systemd "$HOST"
deploy_app

kd_step "playbooks/recover.yml"
t0=$(now_ms)
ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks ansible-playbook -i "$W/inventory.yml" -e recover_hosts="$HOST" "$KD_ROOT/playbooks/recover.yml" \
  >"$W/recover.log" 2>&1 || { tail -n 30 "$W/recover.log"; kd_die "the recovery failed"; }
recover_ms=$(( $(now_ms) - t0 ))
restore_s=$(sed -n 's/^Restore every job .* \([0-9.]*\)s$/\1/p' "$W/recover.log" | tail -1)
restore_ms=$(awk -v s="$restore_s" 'BEGIN { printf "%d", s * 1000 }')
[ "$(in_host "python3 -c \"import sqlite3; print(sqlite3.connect('/srv/bench/app.sqlite3').execute('select count(*) from notes').fetchone()[0])\";
  runuser -u postgres -- psql -Atq -d appdb -c 'select count(*) from notes'; cd /srv/bench && find . -type f ! -name 'app.sqlite3*' | sort | xargs sha256sum | sha256sum")" = "$lost" ] \
  || kd_die "the recovered host differs from the lost one"

bare() {
  in_host "RESTIC_PASSWORD_FILE=/etc/keepdata/backup/repository.password AWS_SHARED_CREDENTIALS_FILE=/etc/keepdata/backup/s3.credentials \
    RESTIC_CACHE_DIR=/var/cache/keepdata-backup restic \$(python3 -c \"import json; c = json.load(open('/etc/keepdata/backup/jobs/bench.json')); \
    print(' '.join(c['restic_options']), '-r', c['repository'])\") $1"
}
kd_step "bare restic restore of the same snapshot on the new host, then with --verify (each into an empty directory)"
in_host "rm -rf /var/tmp/r-*; sync"
t0=$(now_ms); bare "restore --quiet latest --target /var/tmp/r-bare" >/dev/null; bare_ms=$(( $(now_ms) - t0 ))
in_host "rm -rf /var/tmp/r-*; sync"
t0=$(now_ms); bare "restore --quiet --verify latest --target /var/tmp/r-verify" >/dev/null; verify_ms=$(( $(now_ms) - t0 ))
in_host "rm -rf /var/tmp/r-*"

kd_step "results ($(( data_bytes / 1000000 )) MB of data, restic $(in_host 'restic version' | cut -d' ' -f2))"
printf '%-64s %10s\n' "" "time (s)"
printf '%-64s %10.2f\n' "playbooks/recover.yml, whole command (converge, restore, timers)" "$(div "$recover_ms" 1000)" \
  "  of which its restore task (files, SQLite and PostgreSQL imported)" "$(div "$restore_ms" 1000)" \
  "bare restic restore" "$(div "$bare_ms" 1000)" "bare restic restore --verify" "$(div "$verify_ms" 1000)"
goal_ms=$(( verify_ms * 13 / 10 + 60000 ))
echo "recovery / bare restic restore --verify: $(div "$recover_ms" "$verify_ms") (restore task alone: $(div "$restore_ms" "$verify_ms"));" \
  "goal: recovery <= 1.3 x bare --verify + 60 s = $(div "$goal_ms" 1000) s: $([ "$recover_ms" -le "$goal_ms" ] && echo met || echo NOT met)"
echo "the recovery's slowest tasks (profile_tasks):"
sed -n '/^PLAY RECAP/,$p' "$W/recover.log" | grep -E ' -+ [0-9.]+s$' | head -n 6 | sed 's/^/  /'
