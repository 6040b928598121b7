# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each role once at both ends of the ansible-core range the collection claims (meta/runtime.yml: requires_ansible),
on a systemd test host, against the test RGW.

- oldest: tests/requirements-oldest.txt (venv made by kd_extra_venv in scripts/common.sh), on this machine, with a
  test host of the default platform (Debian 12 unless KEEPDATA_PLATFORM says otherwise).
- newest: tests/requirements-newest.txt, which needs Python 3.12 or later: ansible-playbook runs in the image
  keepdata/controller:trixie (Debian 13's Python 3.13, tests/rig/hosts.sh controller), with this machine's docker CLI
  and socket, against a Debian 13 test host: the newest controller on the newest platform.

Both take community.docker (the connection) and ansible.posix from the main venv's ``ansible`` package, which both
claim ansible-core >= 2.15. One host (container keepdata-<end>) gets: an NFS line in fstab (role mounts, state present:
no server needed), an s3fs mount of a new bucket (role s3fs), a restic repository in another new bucket with one job,
backed up once through playbooks/backup_now.yml (role backup), and the alert rules checked by promtool (role
backup_monitoring, no Prometheus running). Then the same roles again: nothing may change.
"""

import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
from conftest import ROOT, delete_bucket_quietly, pinned_version, tail

pytestmark = pytest.mark.rgw

NEWEST_CONTROLLER = "keepdata-newest-controller"
PASSWORD = "kd-range-password-2718"  # noqa: S105 - the test repository's password

# Role backup's entry in a play's roles, the same in both playbooks below.
BACKUP_ROLE = """\
    - role: keepdata.storage.backup
      vars:
        backup_password: "{{ range_password }}"
        backup_s3_bucket: "{{ range_backup_bucket }}"
        backup_s3_endpoint: "{{ range_endpoint }}"
        backup_s3_access_key: "{{ range_access_key }}"
        backup_s3_secret_key: "{{ range_secret_key }}"
        backup_create_bucket: true
        backup_jobs:
          - {name: app, paths: [/srv/app/data]}
"""

PLAYBOOK = (
    """\
---
- name: Prepare the test host
  hosts: all
  gather_facts: false
  tasks:
    - name: The run is the ansible-core this test pins
      ansible.builtin.assert:
        that: ansible_version.full == range_version
        quiet: true

    - name: Wait for systemd to finish booting
      ansible.builtin.command: systemctl is-system-running --wait
      register: range_boot
      changed_when: false
      failed_when: range_boot.stdout not in ['running', 'degraded']

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
        s3fs_bucket: "{{ range_s3fs_bucket }}"
        s3fs_create_bucket: true
        s3fs_endpoint: "{{ range_endpoint }}"
        s3fs_access_key: "{{ range_access_key }}"
        s3fs_secret_key: "{{ range_secret_key }}"
        s3fs_path: /storage
        s3fs_stat_cache_expire: 1
"""
    + BACKUP_ROLE
    + """\
    - role: keepdata.storage.backup_monitoring
      vars:
        backup_monitoring_prometheus_service: ""
"""
)


# Role backup alone, for the run with a wrong password (issue 32: it must fail before any job file is written).
BACKUP_ONLY_PLAYBOOK = (
    """\
---
- name: Apply role keepdata.storage.backup with the password of the vars
  hosts: all
  gather_facts: false
  roles:
"""
    + BACKUP_ROLE
)

# What role backup writes on a host: its programs, secrets, job configurations and units (sha256, mode, owner).
BACKUP_FILES = (
    "find /usr/local/lib/keepdata /etc/keepdata /etc/systemd/system -xdev -type f "
    "\\( -path '/usr/local/lib/keepdata/*' -o -path '/etc/keepdata/*' -o -name 'keepdata-backup*' \\) "
    "-printf '%p %m %U:%G\\n' -exec sha256sum {} + | sort"
)


def shell(script, timeout, platform=None):
    """Run ``script`` in bash with scripts/common.sh sourced (for the Debian release ``platform``, default the
    caller's); its stdout (fails the test when it fails)."""
    env = dict(os.environ)
    if platform:
        env["KEEPDATA_PLATFORM"] = platform
    proc = subprocess.run(
        ["bash", "-c", 'set -euo pipefail; source "$1/scripts/common.sh"; ' + script, "bash", str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{tail(proc.stdout + proc.stderr, lines=60)}"
    return proc.stdout


def on_host(host, *command, timeout=60):
    """A command in the test host: (exit code, stdout + stderr)."""
    proc = subprocess.run(["docker", "exec", host, *command], capture_output=True, text=True, check=False, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def recap(host, output):
    match = re.search(re.escape(host) + r"\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, f"no play recap for {host}:\n{tail(output, lines=60)}"
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def start_host(host, platform):
    """The systemd test host ``host`` of ``platform`` (its images built when missing), with promtool for role
    backup_monitoring: the static binary scripts/bootstrap.sh unpacked from Debian's prometheus package (installing
    that package on the host would start a Prometheus server)."""
    shell("$KD_ROOT/tests/rig/hosts.sh images >&2", timeout=900, platform=platform)
    shell(f"kd_start_host {host} ansible-core-range", timeout=120, platform=platform)
    promtool = shell('readlink -f "$KD_CACHE/prometheus-tools/usr/bin/promtool"', timeout=30).strip()
    subprocess.run(["docker", "cp", promtool, f"{host}:/usr/local/bin/promtool"], check=True, timeout=60)


def oldest_toolchain(base, main_collections):
    """The oldest venv's bin directory, on this machine, with this checkout's collection first (kd_activate's link),
    then the main venv's community.docker and ansible.posix."""
    # kd_extra_venv prints the venv (made or remade when tests/requirements-oldest.txt changed).
    venv, collections = shell('kd_extra_venv oldest "$KD_ROOT/tests/requirements-oldest.txt"; kd_link_collection; echo "$KD_COLLECTIONS"', timeout=900).split()
    return {"bin": f"{venv}/bin", "collections": f"{collections}:{main_collections}", "controller": None}


def newest_toolchain(base, main_collections):
    """A container of keepdata/controller:trixie on the host network that reaches the test host through this
    machine's docker CLI and socket; this checkout and the main venv's collections are mounted read-only, ``base``
    (inventory, playbook, vars, ANSIBLE_HOME) at its own path."""
    shell("$KD_ROOT/tests/rig/hosts.sh controller >&2", timeout=900, platform="trixie")
    subprocess.run(["docker", "rm", "-f", NEWEST_CONTROLLER], capture_output=True, check=False, timeout=120)
    # fmt: off
    subprocess.run(
        ["docker", "run", "-d", "--name", NEWEST_CONTROLLER, "--label", "keepdata.test=ansible-core-range", "--network", "host",
         "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{shutil.which('docker')}:/usr/local/bin/docker:ro",
         "-v", f"{ROOT}:/opt/collections/ansible_collections/keepdata/storage:ro",
         "-v", f"{main_collections}/ansible_collections:/opt/main-collections/ansible_collections:ro",
         "-v", f"{base}:{base}", "keepdata/controller:trixie", "sleep", "infinity"],
        check=True, capture_output=True, timeout=120,
    )
    # fmt: on
    return {"bin": "/opt/keepdata/venv/bin", "collections": "/opt/collections:/opt/main-collections", "controller": NEWEST_CONTROLLER}


# Each end of the range: (its requirements file, its test host, that host's platform (None: the caller's), its toolchain)
ENDS = {
    "oldest": ("tests/requirements-oldest.txt", "keepdata-oldest", None, oldest_toolchain),
    "newest": ("tests/requirements-newest.txt", "keepdata-newest", "trixie", newest_toolchain),
}


@contextlib.contextmanager
def end_of_range(name, tmp_path_factory):
    """One end of the range: its toolchain and its test host (containers removed at the end)."""
    requirements, host, platform, toolchain = ENDS[name]
    base = tmp_path_factory.mktemp(name)
    main_venv = shell('echo "$KD_VENV"', timeout=30).strip()
    main_collections = shell(f"dirname {main_venv}/lib/python3*/site-packages/ansible_collections", timeout=30).strip()
    try:
        start_host(host, platform)
        yield dict(toolchain(base, main_collections), name=name, requirements=requirements, host=host, base=base)
    finally:
        for container in (host, NEWEST_CONTROLLER if toolchain is newest_toolchain else None):
            if container:
                subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False, timeout=120)


def ansible(end, program, *args, timeout):
    """``program`` (ansible-playbook...) of the end's toolchain, with the test's Ansible settings: (exit code, output)."""
    base = end["base"]
    settings = {
        "ANSIBLE_COLLECTIONS_PATH": end["collections"],
        "ANSIBLE_HOME": str(base / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
    if end["controller"]:
        # docker exec passes only what -e names (Ansible settings, never a secret: those are in the vars file).
        command = ["docker", "exec", "-w", str(base), *(f"-e{key}={value}" for key, value in settings.items()), end["controller"]]
        env = None
    else:
        command, env = [], dict(os.environ, PATH=f"{end['bin']}:/usr/local/bin:/usr/bin:/bin", **settings)
    command += [f"{end['bin']}/{program}", *args]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout, env=env, cwd=base)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"{program} {' '.join(args)} did not finish in {timeout} s:\n{tail(output, lines=60, secrets=(PASSWORD,))}")
    return proc.returncode, proc.stdout + proc.stderr


def ansible_playbook(end, playbook, extra_vars, timeout):
    """``ansible-playbook`` of the end's toolchain on its test host: (exit code, output)."""
    base = end["base"]
    (base / "inventory").write_text(f"{end['host']} ansible_connection=community.docker.docker\n")
    vars_file = base / "vars.json"
    vars_file.write_text(json.dumps(extra_vars))
    vars_file.chmod(0o600)
    rc, output = ansible(end, "ansible-playbook", "-i", str(base / "inventory"), "-e", f"@{vars_file}", str(playbook), timeout=timeout)
    # Each run's whole output stays beside the playbook (pytest's temporary directory), for a look after a failure.
    runs = len(list(base.glob("run-*.log")))
    (base / f"run-{runs + 1}.log").write_text(output)
    return rc, output


def test_each_role_at_both_ends_of_the_ansible_core_range_at_once(rgw, tmp_path_factory):
    """Both ends at the same time, each with its own host, buckets and toolchain: most of each end's time is waiting
    on its host and the RGW, so running them together saves about the time of one (some 150 s of the gate). Each
    end's failure is reported with its name; one end failing does not stop the other."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(ENDS)) as pool:
        runs = {name: pool.submit(exercise_end, name, rgw, tmp_path_factory) for name in sorted(ENDS, reverse=True)}
    # A pytest.fail() in a worker thread is an exception like any other there (Failed derives from BaseException,
    # which the future keeps).
    failures = ["%s end: %s" % (name, run.exception()) for name, run in runs.items() if run.exception() is not None]
    assert not failures, "\n\n".join(failures)
    for run in runs.values():
        print(run.result())


def wrong_password_changes_nothing(end, extra_vars, secrets):
    """Role backup with a password that does not open the host's existing repository: it fails at the repository's
    opening, names the cause, and leaves every file it writes (runner, secrets, jobs, units) as it was. Its seconds."""
    host, started = end["host"], time.monotonic()
    rc, before = on_host(host, "sh", "-c", BACKUP_FILES)
    assert rc == 0 and "/etc/keepdata/backup/jobs/app.json" in before and "backup_runner.py" in before, before
    playbook = end["base"] / "backup-only.yml"
    playbook.write_text(BACKUP_ONLY_PLAYBOOK)
    wrong = "not the repository password 1414"  # noqa: S105 - a wrong password, on purpose
    rc, out = ansible_playbook(end, playbook, dict(extra_vars, range_password=wrong), timeout=300)
    shown = tail(out, secrets=secrets + (wrong,), lines=60)
    assert rc != 0 and recap(host, out)["failed"] == 1, shown
    failed_task = re.findall(r"^TASK \[([^\]]*)\][^\n]*\n(?:(?!TASK \[).*\n)*?fatal: ", out, re.M)
    assert failed_task == ["keepdata.storage.backup : Open the repository, or initialise it when there is none"], shown
    assert "exists but the password does not open it" in out, shown
    assert wrong not in out and PASSWORD not in out, "a password reached the output"
    rc, after = on_host(host, "sh", "-c", BACKUP_FILES)
    assert rc == 0 and after == before, "role backup changed files before failing:\n%s" % "\n".join(sorted(set(after.splitlines()) ^ set(before.splitlines())))
    return time.monotonic() - started


def exercise_end(name, rgw, tmp_path_factory):
    """Every role once at the end ``name`` of the range, a backup run, then every role again with nothing changed;
    the timings line."""
    with end_of_range(name, tmp_path_factory) as end:
        return exercise(end, rgw)


def exercise(end, rgw):
    host = end["host"]
    version = pinned_version(end["requirements"])
    rc, out = ansible(end, "ansible-playbook", "--version", timeout=60)
    assert rc == 0 and f"[core {version}]" in out, out

    suffix = uuid.uuid4().hex[:10]
    s3fs_bucket, backup_bucket = f"kd-{end['name']}-fs-{suffix}", f"kd-{end['name']}-bk-{suffix}"
    extra_vars = {
        "range_version": version,
        "range_endpoint": rgw.endpoint,
        "range_access_key": rgw.owner["access_key"],
        "range_secret_key": rgw.owner["secret_key"],
        "range_password": PASSWORD,
        "range_s3fs_bucket": s3fs_bucket,
        "range_backup_bucket": backup_bucket,
    }
    secrets = (PASSWORD, rgw.owner["secret_key"])
    playbook = end["base"] / "roles.yml"
    playbook.write_text(PLAYBOOK)
    timings = {}
    try:
        started = time.monotonic()
        rc, out = ansible_playbook(end, playbook, extra_vars, timeout=420)
        timings["roles"] = time.monotonic() - started
        assert rc == 0 and recap(host, out)["failed"] == 0 and recap(host, out)["unreachable"] == 0, tail(out, secrets=secrets, lines=60)
        # No deprecation or other warning from the collection's own code on this ansible-core.
        assert "[WARNING]" not in out and "[DEPRECATION WARNING]" not in out, tail(out, secrets=secrets, lines=120)

        # mounts: the fstab line (state present: written, not mounted).
        rc, fstab = on_host(host, "cat", "/etc/fstab")
        assert re.search(r"^127\.0\.0\.1:/exports/data /mnt/nfs nfs \S*vers=4\.2\S* 0 0$", fstab, re.M), fstab

        # s3fs: a FUSE mount of the bucket that shows an object written to the bucket.
        rc, fstype = on_host(host, "findmnt", "-n", "-o", "FSTYPE", "/storage")
        assert (rc, fstype.strip()) == (0, "fuse.s3fs"), fstype
        rgw.client().put_object(Bucket=s3fs_bucket, Key="from-s3.txt", Body=b"written through S3\n")
        deadline = time.monotonic() + 20
        while True:
            rc, content = on_host(host, "cat", "/storage/from-s3.txt")
            if rc == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert (rc, content) == (0, "written through S3\n")

        # backup_monitoring: the rules file, checked by promtool when written.
        rc, listing = on_host(host, "ls", "/etc/prometheus/rules")
        assert rc == 0 and "keepdata_backup.rules.yml" in listing.split(), listing

        # backup: one run now, through the job's unit; then its snapshot is in the bucket.
        started = time.monotonic()
        now_vars = dict(extra_vars, backup_now_job="app", backup_now_hosts=host)
        rc, out = ansible_playbook(end, "keepdata.storage.backup_now", now_vars, timeout=240)
        timings["backup_now"] = time.monotonic() - started
        assert rc == 0 and recap(host, out)["failed"] == 0, tail(out, secrets=secrets, lines=60)
        keys = [o["Key"] for o in rgw.client().list_objects_v2(Bucket=backup_bucket).get("Contents", [])]
        assert [k for k in keys if "/snapshots/" in k], keys

        started = time.monotonic()
        rc, out = ansible_playbook(end, playbook, extra_vars, timeout=300)
        timings["again"] = time.monotonic() - started
        assert rc == 0 and recap(host, out)["failed"] == 0, tail(out, secrets=secrets, lines=60)
        assert recap(host, out)["changed"] == 0, f"second run not idempotent:\n{tail(out, 120, secrets=secrets)}"
        if end["name"] == "oldest":
            # One end is enough: the order of the role's tasks is the same on every ansible-core.
            timings["wrong password"] = wrong_password_changes_nothing(end, extra_vars, secrets)
        return "ansible-core %s (%s end): %s" % (version, end["name"], ", ".join(f"{name} {seconds:.0f}s" for name, seconds in timings.items()))
    finally:
        on_host(host, "umount", "-l", "/storage")
        delete_bucket_quietly(rgw, s3fs_bucket)
        delete_bucket_quietly(rgw, backup_bucket)
