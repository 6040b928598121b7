# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each role once on the oldest ansible-core the collection claims (meta/runtime.yml: requires_ansible), on a systemd
test host, against the test RGW.

The toolchain is tests/requirements-oldest.txt (venv made by kd_extra_venv in scripts/common.sh): its own
ansible-playbook, with community.docker (the connection) and ansible.posix taken from the main venv's ``ansible``
package, which both claim ansible-core >= 2.15. One host (container keepdata-oldest, started with kd_start_host) gets:
an NFS line in fstab (role mounts, state present: no server needed), an s3fs mount of a new bucket (role s3fs), a restic
repository in another new bucket with one job, backed up once through playbooks/backup_now.yml (role backup), and the
alert rules checked by promtool (role backup_monitoring, no Prometheus running). Then the same roles again: nothing
may change.
"""

import json
import os
import re
import subprocess
import time
import uuid

import pytest
from conftest import ROOT, delete_bucket_quietly, pinned_version, tail

pytestmark = pytest.mark.rgw

HOST = "keepdata-oldest"
PASSWORD = "kd-oldest-password-2718"  # noqa: S105 - the test repository's password

PLAYBOOK = """\
---
- name: Prepare the test host
  hosts: all
  gather_facts: false
  tasks:
    - name: The run is the oldest ansible-core
      ansible.builtin.assert:
        that: ansible_version.full == oldest_version
        quiet: true

    - name: Wait for systemd to finish booting
      ansible.builtin.command: systemctl is-system-running --wait
      register: oldest_boot
      changed_when: false
      failed_when: oldest_boot.stdout not in ['running', 'degraded']

    - name: Directories of the app data and of Prometheus
      ansible.builtin.file:
        path: "{{ item }}"
        state: directory
        mode: "0755"
      loop: [/srv/app/data, /etc/prometheus]

    - name: App data to back up
      ansible.builtin.copy:
        dest: /srv/app/data/note.txt
        content: "kept by restic\\n"
        mode: "0644"

    - name: Prometheus configuration that loads the rules directory (no server runs)
      ansible.builtin.copy:
        dest: /etc/prometheus/prometheus.yml
        content: |
          rule_files:
            - /etc/prometheus/rules/*.yml
        mode: "0644"

- name: Apply each role of keepdata.storage once
  hosts: all
  gather_facts: false
  roles:
    - role: keepdata.storage.mounts
      vars:
        mounts_list:
          - {type: nfs, state: present, server: 127.0.0.1, export: /exports/data, path: /mnt/nfs, preflight: false}
    - role: keepdata.storage.s3fs
      vars:
        s3fs_bucket: "{{ oldest_s3fs_bucket }}"
        s3fs_create_bucket: true
        s3fs_endpoint: "{{ oldest_endpoint }}"
        s3fs_access_key: "{{ oldest_access_key }}"
        s3fs_secret_key: "{{ oldest_secret_key }}"
        s3fs_path: /storage
        s3fs_stat_cache_expire: 1
    - role: keepdata.storage.backup
      vars:
        backup_password: "{{ oldest_password }}"
        backup_s3_bucket: "{{ oldest_backup_bucket }}"
        backup_s3_endpoint: "{{ oldest_endpoint }}"
        backup_s3_access_key: "{{ oldest_access_key }}"
        backup_s3_secret_key: "{{ oldest_secret_key }}"
        backup_create_bucket: true
        backup_jobs:
          - {name: app, paths: [/srv/app/data]}
    - role: keepdata.storage.backup_monitoring
      vars:
        backup_monitoring_prometheus_service: ""
"""


def shell(script, timeout):
    """Run ``script`` in bash with scripts/common.sh sourced; its stdout (fails the test when it fails)."""
    proc = subprocess.run(
        ["bash", "-c", 'set -euo pipefail; source "$1/scripts/common.sh"; ' + script, "bash", str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{tail(proc.stdout + proc.stderr, lines=60)}"
    return proc.stdout


def on_host(*command, timeout=60):
    """A command in the test host: (exit code, stdout + stderr)."""
    proc = subprocess.run(["docker", "exec", HOST, *command], capture_output=True, text=True, check=False, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def recap(output):
    match = re.search(HOST + r"\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, f"no play recap for {HOST}:\n{tail(output, lines=60)}"
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


@pytest.fixture(scope="module")
def oldest(tmp_path_factory):
    """The oldest toolchain, the main venv's collections, and the test host (removed at the end)."""
    # kd_extra_venv prints the venv (made or remade when tests/requirements-oldest.txt changed).
    venv, main_venv, collections = shell(
        'kd_extra_venv oldest "$KD_ROOT/tests/requirements-oldest.txt"; kd_link_collection; echo "$KD_VENV"; echo "$KD_COLLECTIONS"', timeout=900
    ).split()
    main_collections = shell(f"dirname {main_venv}/lib/python3*/site-packages/ansible_collections", timeout=30).strip()
    shell("$KD_ROOT/tests/rig/hosts.sh images >&2", timeout=900)
    shell(f"kd_start_host {HOST} oldest", timeout=120)
    try:
        # promtool, for role backup_monitoring: the static binary scripts/bootstrap.sh unpacked from Debian's prometheus
        # package (installing that package on the host would start a Prometheus server).
        promtool = shell('readlink -f "$KD_CACHE/prometheus-tools/usr/bin/promtool"', timeout=30).strip()
        subprocess.run(["docker", "cp", promtool, f"{HOST}:/usr/local/bin/promtool"], check=True, timeout=60)
        # This checkout's collection first (kd_activate's link), then community.docker and ansible.posix.
        yield {"venv": venv, "collections": f"{collections}:{main_collections}", "base": tmp_path_factory.mktemp("oldest")}
    finally:
        subprocess.run(["docker", "rm", "-f", HOST], capture_output=True, check=False, timeout=120)


def ansible_playbook(oldest, playbook, extra_vars, timeout):
    """``ansible-playbook`` of the oldest venv on the test host: (exit code, output)."""
    base = oldest["base"]
    (base / "inventory").write_text(f"{HOST} ansible_connection=community.docker.docker\n")
    vars_file = base / "vars.json"
    vars_file.write_text(json.dumps(extra_vars))
    vars_file.chmod(0o600)
    env = dict(
        os.environ,
        PATH=f"{oldest['venv']}/bin:/usr/local/bin:/usr/bin:/bin",
        ANSIBLE_COLLECTIONS_PATH=oldest["collections"],
        ANSIBLE_HOME=str(base / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_PYTHON_INTERPRETER="auto_silent",
        ANSIBLE_LOCALHOST_WARNING="false",
    )
    command = [f"{oldest['venv']}/bin/ansible-playbook", "-i", str(base / "inventory"), "-e", f"@{vars_file}", str(playbook)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout, env=env, cwd=base)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"ansible-playbook {playbook} did not finish in {timeout} s:\n{tail(output, lines=60, secrets=(PASSWORD,))}")
    output = proc.stdout + proc.stderr
    # Each run's whole output stays beside the playbook (pytest's temporary directory), for a look after a failure.
    runs = len(list(base.glob("run-*.log")))
    (base / f"run-{runs + 1}.log").write_text(output)
    return proc.returncode, output


def test_each_role_on_the_oldest_ansible_core(oldest, rgw):
    version = pinned_version("tests/requirements-oldest.txt")
    out = subprocess.run([f"{oldest['venv']}/bin/ansible-playbook", "--version"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert f"[core {version}]" in out, out

    suffix = uuid.uuid4().hex[:10]
    s3fs_bucket, backup_bucket = f"kd-oldest-fs-{suffix}", f"kd-oldest-bk-{suffix}"
    extra_vars = {
        "oldest_version": version,
        "oldest_endpoint": rgw.endpoint,
        "oldest_access_key": rgw.owner["access_key"],
        "oldest_secret_key": rgw.owner["secret_key"],
        "oldest_password": PASSWORD,
        "oldest_s3fs_bucket": s3fs_bucket,
        "oldest_backup_bucket": backup_bucket,
    }
    secrets = (PASSWORD, rgw.owner["secret_key"])
    playbook = oldest["base"] / "roles.yml"
    playbook.write_text(PLAYBOOK)
    timings = {}
    try:
        started = time.monotonic()
        rc, out = ansible_playbook(oldest, playbook, extra_vars, timeout=420)
        timings["roles"] = time.monotonic() - started
        assert rc == 0 and recap(out)["failed"] == 0 and recap(out)["unreachable"] == 0, tail(out, secrets=secrets, lines=60)

        # mounts: the fstab line (state present: written, not mounted).
        rc, fstab = on_host("cat", "/etc/fstab")
        assert re.search(r"^127\.0\.0\.1:/exports/data /mnt/nfs nfs \S*vers=4\.2\S* 0 0$", fstab, re.M), fstab

        # s3fs: a FUSE mount of the bucket that shows an object written to the bucket.
        rc, fstype = on_host("findmnt", "-n", "-o", "FSTYPE", "/storage")
        assert (rc, fstype.strip()) == (0, "fuse.s3fs"), fstype
        rgw.client().put_object(Bucket=s3fs_bucket, Key="from-s3.txt", Body=b"written through S3\n")
        deadline = time.monotonic() + 20
        while True:
            rc, content = on_host("cat", "/storage/from-s3.txt")
            if rc == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert (rc, content) == (0, "written through S3\n")

        # backup_monitoring: the rules file, checked by promtool when written.
        rc, listing = on_host("ls", "/etc/prometheus/rules")
        assert rc == 0 and "keepdata_backup.rules.yml" in listing.split(), listing

        # backup: one run now, through the job's unit; then its snapshot is in the bucket.
        started = time.monotonic()
        now_vars = dict(extra_vars, backup_now_job="app", backup_now_hosts=HOST)
        rc, out = ansible_playbook(oldest, "keepdata.storage.backup_now", now_vars, timeout=240)
        timings["backup_now"] = time.monotonic() - started
        assert rc == 0 and recap(out)["failed"] == 0, tail(out, secrets=secrets, lines=60)
        keys = [o["Key"] for o in rgw.client().list_objects_v2(Bucket=backup_bucket).get("Contents", [])]
        assert [k for k in keys if "/snapshots/" in k], keys

        started = time.monotonic()
        rc, out = ansible_playbook(oldest, playbook, extra_vars, timeout=300)
        timings["again"] = time.monotonic() - started
        assert rc == 0 and recap(out)["failed"] == 0, tail(out, secrets=secrets, lines=60)
        assert recap(out)["changed"] == 0, f"second run not idempotent:\n{tail(out, 120, secrets=secrets)}"
        print("ansible-core %s: %s" % (version, ", ".join(f"{name} {seconds:.0f}s" for name, seconds in timings.items())))
    finally:
        on_host("umount", "-l", "/storage")
        delete_bucket_quietly(rgw, s3fs_bucket)
        delete_bucket_quietly(rgw, backup_bucket)
