#!/usr/bin/env bash
# Benchmark of the mounts and s3fs roles on 3 systemd test hosts (Docker, host network, loopback only).
#
#   tests/benchmarks/roles_bench.sh
#
# For each role: a --check --diff preview on the fresh hosts, a first converge and an idempotent re-run
# through the collection's playbooks (playbooks/mounts.yml, playbooks/shared_storage.yml) driven by inventory
# variables. Prints the wall time and the number of tasks that ran (ok + changed) and were skipped per host,
# and fails if the preview changed a host, the re-run or a --check run on the converged hosts changed anything,
# or a normal run printed a warning. Uses an sshd on 127.0.0.1:22271 (in host 1), stand-in TCP listeners for the
# fstab-only CIFS/NFS lines, and its own RGW on 127.0.0.1:7497 (mon 3397).
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
kd_activate

HOSTS=(keepdata-bench-1 keepdata-bench-2 keepdata-bench-3)
SSHD_PORT=22271
export KEEPDATA_RGW_DIR=/tmp/kd-rgw-bench KEEPDATA_RGW_PORT=7497 KEEPDATA_MON_PORT=3397
W=$(mktemp -d "$KD_WORK/bench.XXXXXX")
export ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=default

cleanup() {
  docker rm -f "${HOSTS[@]}" >/dev/null 2>&1 || true
  "$KD_ROOT/tests/rig/rgw.sh" down >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

kd_step "start ${#HOSTS[@]} systemd hosts"
for h in "${HOSTS[@]}"; do
  kd_start_host "$h" bench
done

kd_step "start the RGW"
"$KD_ROOT/tests/rig/rgw.sh" down >/dev/null 2>&1 || true
"$KD_ROOT/tests/rig/rgw.sh" up
# boto3 comes with the project's venv.
"$KD_VENV/bin/python" - "$KEEPDATA_RGW_DIR/rgw.env" <<'PY'
import sys, boto3
env = dict(l.split("=", 1) for l in open(sys.argv[1]).read().split())
boto3.client("s3", endpoint_url=env["KEEPDATA_RGW_ENDPOINT"], region_name="us-east-1",
             aws_access_key_id=env["KEEPDATA_RGW_OWNER_ACCESS_KEY"],
             aws_secret_access_key=env["KEEPDATA_RGW_OWNER_SECRET_KEY"]).create_bucket(Bucket="bench-storage")
PY

kd_step "prepare the hosts (sshd and stand-in listeners on host 1, app content everywhere)"
ssh-keygen -q -t ed25519 -N '' -C bench -f "$W/id_bench"
cat >"$W/inventory.yml" <<INV
all:
  vars:
    ansible_connection: community.docker.docker
  children:
    mounts:
      hosts: {keepdata-bench-1: {}, keepdata-bench-2: {}, keepdata-bench-3: {}}
    shared_storage:
      hosts: {keepdata-bench-1: {}, keepdata-bench-2: {}, keepdata-bench-3: {}}
INV
cat >"$W/prepare.yml" <<YML
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: systemctl is-system-running --wait
      register: boot
      changed_when: false
      failed_when: boot.stdout not in ['running', 'degraded']
    - ansible.builtin.shell: mkdir -p /srv/app/public/system && echo old > /srv/app/public/system/old-{{ inventory_hostname }}.txt
- hosts: keepdata-bench-1
  gather_facts: false
  tasks:
    - ansible.builtin.shell: |
        ssh-keygen -A && mkdir -p /srv/share /run/sshd /root/.ssh && chmod 700 /root/.ssh
        echo '$(cat "$W/id_bench.pub")' >> /root/.ssh/authorized_keys
        systemd-run --unit bench-sshd /usr/sbin/sshd -D -p $SSHD_PORT -o ListenAddress=127.0.0.1 -o UsePAM=no
        for p in 22475 22079; do
          systemd-run --unit bench-listen-\$p /usr/bin/python3 -c "import socket; s=socket.create_server(('127.0.0.1', \$p)); [s.accept()[0].close() for _ in iter(int, 1)]"
        done
    - ansible.builtin.wait_for: {host: 127.0.0.1, port: "{{ item }}"}
      loop: [$SSHD_PORT, 22475, 22079]
    - ansible.builtin.command: ssh-keygen -l -E sha256 -f /etc/ssh/ssh_host_ed25519_key.pub
      register: fp
    - ansible.builtin.copy:
        dest: "$W/fingerprint"
        content: "{{ fp.stdout.split()[1] }}"
        mode: "0600"
      delegate_to: localhost
YML
ansible-playbook -i "$W/inventory.yml" "$W/prepare.yml" >"$W/prepare.log" 2>&1 || { tail -30 "$W/prepare.log"; exit 1; }

mkdir -p "$W/group_vars"
python3 - "$W" "$SSHD_PORT" "$KEEPDATA_RGW_DIR" <<'PY'
import json, sys
w, port = sys.argv[1], int(sys.argv[2])
mounts = {
    "mounts_app_id": "app_bench",
    "mounts_list": [
        {"type": "sshfs", "server": "127.0.0.1", "port": port, "user": "root", "remote_path": "/srv/share",
         "path": "/mnt/share", "identity": open(w + "/id_bench").read(),
         "host_key_fingerprint": open(w + "/fingerprint").read().strip()},
        {"type": "cifs", "state": "present", "server": "127.0.0.1", "port": 22475, "share": "team",
         "user": "bench", "password": "bench-password", "path": "/mnt/cifs"},
        {"type": "nfs", "state": "present", "server": "127.0.0.1", "port": 22079, "export": "/data", "path": "/mnt/nfs"},
        {"type": "fsbucket", "state": "present", "spec": "/uploads:127.0.0.1", "port": 22079},
    ],
}
env = dict(l.split("=", 1) for l in open(sys.argv[3] + "/rgw.env").read().split())
s3 = {
    "s3fs_bucket": "bench-storage", "s3fs_endpoint": env["KEEPDATA_RGW_ENDPOINT"],
    "s3fs_access_key": env["KEEPDATA_RGW_OWNER_ACCESS_KEY"], "s3fs_secret_key": env["KEEPDATA_RGW_OWNER_SECRET_KEY"],
    "s3fs_app_root": "/srv/app", "s3fs_symlinks": ["public/system", "wp-content/uploads"],
}
json.dump(mounts, open(w + "/group_vars/mounts.json", "w"))
json.dump(s3, open(w + "/group_vars/shared_storage.json", "w"))
PY

# run NAME PLAYBOOK [ARGS...]: prints wall time and per-host recap numbers; sets CHANGED to the sum of changed=.
run() {
  local name=$1 pb=$2 t0 t1 log="$W/$1.log"
  shift 2
  t0=$(date +%s.%N)
  if ! ansible-playbook -i "$W/inventory.yml" "$@" "$KD_ROOT/playbooks/$pb" >"$log" 2>&1; then
    cp "$log" "$KD_WORK/bench-failed.log"
    grep -A5 -E '^fatal|^failed' "$log" | cut -c1-2000 >&2
    kd_die "$name failed: full log in $KD_WORK/bench-failed.log"
  fi
  t1=$(date +%s.%N)
  CHANGED=$(awk '/ : ok=/{for(i=1;i<=NF;i++) if($i ~ /^changed=/){split($i,a,"="); s+=a[2]}} END{print s+0}' "$log")
  printf '%-24s wall %6.1fs  ' "$name" "$(awk "BEGIN{print $t1 - $t0}")"
  awk '/ : ok=/{for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]} printf "%s: ran=%s changed=%s skipped=%s  ", $1, v["ok"], v["changed"], v["skipped"]} END{print ""}' "$log"
}

# expect_no_change NAME: the run NAME (just done) changed nothing. The scratch dir goes away on exit, so a
# changed run's log is kept where the message points.
expect_no_change() {
  [ "$CHANGED" = 0 ] && return 0
  cp "$W/$1.log" "$KD_WORK/bench-failed.log"
  kd_die "$1 changed $CHANGED task(s): see $KD_WORK/bench-failed.log"
}

# host_state: what a check-mode run must leave as it was, on every host.
host_state() {
  for h in "${HOSTS[@]}"; do
    docker exec "$h" sh -c 'sha256sum /etc/fstab; ls -la /etc/keepdata /mnt /storage 2>&1; ls -laR /srv/app; findmnt -rn -o TARGET' 2>&1
  done
}

# expect_warning_free NAME: a normal run prints no warning (users would read it as ours).
expect_warning_free() {
  ! grep -q WARNING "$W/$1.log" && return 0
  cp "$W/$1.log" "$KD_WORK/bench-failed.log"
  kd_die "$1 printed a warning: see $KD_WORK/bench-failed.log"
}

echo
echo "== keepdata.storage roles on ${#HOSTS[@]} hosts (ran = ok incl. changed, per host)"
before=$(host_state)
run "mounts check (fresh)" mounts.yml --check --diff
run "s3fs check (fresh)" shared_storage.yml --check --diff
[ "$(host_state)" = "$before" ] || kd_die "a --check run changed the hosts"
run "mounts first converge" mounts.yml
expect_warning_free "mounts first converge"
run "mounts re-run" mounts.yml
expect_no_change "mounts re-run"
expect_warning_free "mounts re-run"
run "mounts check (converged)" mounts.yml --check --diff
expect_no_change "mounts check (converged)"
run "s3fs first converge" shared_storage.yml
expect_warning_free "s3fs first converge"
run "s3fs re-run" shared_storage.yml
expect_no_change "s3fs re-run"
expect_warning_free "s3fs re-run"
run "s3fs check (converged)" shared_storage.yml --check --diff
expect_no_change "s3fs check (converged)"
docker exec keepdata-bench-3 sh -c 'ls /srv/app/public/system/; findmnt -n -o TARGET,FSTYPE -T /storage; findmnt -n -o TARGET,FSTYPE -T /mnt/share'
