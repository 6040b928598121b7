#!/usr/bin/env bash
# Benchmark of restores and drills of the backup role on one systemd test host (Docker, host network, loopback
# only), against what a user would run instead, on the same snapshot of a throwaway RGW (127.0.0.1:7499, mon 3399):
#   1. module keepdata.storage.backup_restore (through ansible-playbook; the task's own time from profile_tasks,
#      and the whole command) vs bare `restic restore`, with and without --verify (the module always verifies),
#      each into an empty directory, in an order that turns each round, medians printed;
#   2. one restore drill (backup_drill_sample 5 %, the repository read in 12 subsets): its time, the files and
#      bytes it restored, and the share of the repository it read.
# Data: BENCH_MB (default 300) MB of mixed files: compressible text, random binary, and many small files; with
# BENCH_SPARSE_MB (default 0) also a sparse disk image of that many MB holding 40 KiB of data, and the disk space each
# restore took is printed (the module restores sparse files sparse where restic can, 0.15 and later; a bare restore
# writes them out in full, as a user's plain restic restore would).
set -euo pipefail
HOST=keepdata-bench-restore
ROUNDS=${ROUNDS:-3}
export KEEPDATA_RGW_DIR=/tmp/kd-rgw-bench-restore KEEPDATA_RGW_PORT=7499 KEEPDATA_MON_PORT=3399
source "$(dirname "$0")/backup_bench_lib.sh"
PASSWORD=bench-password-not-secret-0002

BENCH_SPARSE_MB=${BENCH_SPARSE_MB:-0}
bench_start
bench_make_data >/dev/null
if [ "$BENCH_SPARSE_MB" -gt 0 ]; then
  kd_step "add a sparse disk image of $BENCH_SPARSE_MB MB holding 40 KiB of data"
  in_host "truncate -s ${BENCH_SPARSE_MB}M /srv/bench/disk.img && head -c 40960 /dev/urandom | dd of=/srv/bench/disk.img bs=4096 seek=1000 conv=notrunc status=none"
fi

kd_step "install the job with playbooks/backup.yml, then back it up once"
bench_install_job bench-restores "backup_drill_sample: \"5%\"" "backup_drill_check_subsets: 12"
in_host "systemctl start keepdata-backup-bench.service"
kd_step "restic on the host: $(in_host 'restic version' | cut -d' ' -f1-2)"
data_bytes=$(in_host "du -sb /srv/bench | cut -f1")

cat >"$W/restore.yml" <<'PLAY'
- name: Restore the bench job below a directory
  hosts: backup
  gather_facts: false
  tasks:
    - name: Restore with backup_restore
      keepdata.storage.backup_restore:
        job: bench
        target: "{{ bench_target }}"
PLAY
bare() {
  in_host "RESTIC_PASSWORD_FILE=/etc/keepdata/backup/repository.password AWS_SHARED_CREDENTIALS_FILE=/etc/keepdata/backup/s3.credentials \
    RESTIC_CACHE_DIR=/var/cache/keepdata-backup restic \$(python3 -c \"import json; c = json.load(open('/etc/keepdata/backup/jobs/bench.json')); \
    print(' '.join(c['restic_options']), '-r', c['repository'])\") $1"
}
module_ms=() playbook_ms=() bare_ms=() verify_ms=()
run_module() {
  local t0 task_s
  t0=$(now_ms)
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks ansible-playbook -i "$W/inventory.yml" -e bench_target=/var/tmp/r-module "$W/restore.yml" \
    >"$W/restore-$1.log" 2>&1 || { tail -n 30 "$W/restore-$1.log"; kd_die "the restore failed"; }
  playbook_ms+=($(( $(now_ms) - t0 )))
  task_s=$(sed -n 's/^Restore with backup_restore .* \([0-9.]*\)s$/\1/p' "$W/restore-$1.log" | tail -1)
  module_ms+=("$(awk -v s="$task_s" 'BEGIN { printf "%d", s * 1000 }')")
}
run_bare() { local t0; t0=$(now_ms); bare "restore --quiet latest --target /var/tmp/r-bare" >/dev/null; bare_ms+=($(( $(now_ms) - t0 ))); }
run_verify() { local t0; t0=$(now_ms); bare "restore --quiet --verify latest --target /var/tmp/r-verify" >/dev/null; verify_ms+=($(( $(now_ms) - t0 ))); }
# The order turns each round, so that no contender always runs first (or right after the others' files were deleted).
orders=("run_module run_bare run_verify" "run_bare run_verify run_module" "run_verify run_module run_bare")
for round in $(seq 1 "$ROUNDS"); do
  order=${orders[$(( (round - 1) % 3 ))]}
  kd_step "round $round: ${order//run_/} (each into an empty directory)"
  in_host "rm -rf /var/tmp/r-*; sync"
  for contender in $order; do "$contender" "$round"; in_host "sync"; done
  [ "$(in_host 'cd /var/tmp/r-module && find . -type f | sort | xargs sha256sum | sha256sum')" = \
    "$(in_host 'cd /var/tmp/r-bare && find . -type f | sort | xargs sha256sum | sha256sum')" ] || kd_die "the two restores differ"
done

# Disk space the last round's restores took (allocated blocks, not apparent sizes).
module_kb=$(in_host "du -sk /var/tmp/r-module | cut -f1"); bare_kb=$(in_host "du -sk /var/tmp/r-bare | cut -f1")
kd_step "one restore drill (5 % sampled, 1 of 12 subsets of the repository read)"
t0=$(now_ms); in_host "systemctl start keepdata-backup-bench-drill.service"; drill_ms=$(( $(now_ms) - t0 ))
metric() { in_host "sed -n 's/^$1{backup_job=\"bench\"} //p' /var/lib/keepdata/metrics/keepdata_backup_bench.prom"; }
drill_files=$(metric keepdata_backup_drill_files_checked)
drill_bytes=$(metric keepdata_backup_drill_bytes_checked)
repo_bytes=$(bare "stats --json --mode raw-data" | python3 -c "import json, sys; print(json.load(sys.stdin)['total_size'])")

module_med=$(median "${module_ms[@]}"); playbook_med=$(median "${playbook_ms[@]}")
bare_med=$(median "${bare_ms[@]}"); verify_med=$(median "${verify_ms[@]}")
kd_step "results ($(( data_bytes / 1000000 )) MB of data, repository $(( repo_bytes / 1000000 )) MB)"
printf '%-64s %10s %10s\n' "restore of the latest snapshot" "time (s)" "MB/s"
for row in "backup_restore task (profile_tasks; ${module_ms[*]} ms):$module_med" "ansible-playbook, whole command (${playbook_ms[*]} ms):$playbook_med" \
  "bare restic restore (${bare_ms[*]} ms):$bare_med" "bare restic restore --verify (${verify_ms[*]} ms):$verify_med"; do
  printf '%-64s %10.2f %10.1f\n' "${row%:*}" "$(div "${row##*:}" 1000)" "$(div "$data_bytes" "$(( ${row##*:} * 1000 ))" 1)"
done
echo "time ratio backup_restore task / bare restic restore --verify: $(div "$module_med" "$verify_med" 3) (goal <= 1.05); / bare restic restore: $(div "$module_med" "$bare_med" 3)"
echo "disk space taken by the restored tree: backup_restore $(( module_kb / 1024 )) MB, bare restic restore $(( bare_kb / 1024 )) MB (data: $(( data_bytes / 1000000 )) MB apparent)"
echo "drill: $(div "$drill_ms" 1000) s, $drill_files files ($(( drill_bytes / 1000000 )) MB) restored and checked;" \
  "repository data read by check: about $(div 100 12 1) % (1 of 12 subsets); with the sample: $(div "$(( 100 * drill_bytes ))" "$repo_bytes" 1) % + $(div 100 12 1) % of $(( repo_bytes / 1000000 )) MB"
