# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup runner (role keepdata.storage.backup) against a scripted restic: the command lines it builds, what
each restic answer means, where the secrets go (paths only), the state and metrics it leaves, and the failure
handler. Hooks run for real with /bin/sh; SQLite dumps run for real with the stdlib."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import fcntl
import io
import itertools
import json
import os
import random
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.backup import runner as br
from ansible_collections.keepdata.storage.plugins.module_utils.backup import shared
from ansible_collections.keepdata.storage.plugins.module_utils.common.programs import program_source

VERSION_014 = "restic 0.14.0 compiled with go1.19.8 on linux/amd64\n"
VERSION_016 = "restic 0.16.4 compiled with go1.21.6 on linux/amd64\n"
S3 = "s3:http://127.0.0.1:7495/backups/restic"
PASSWORD_FILE = "/etc/keepdata/backup/repository.password"  # noqa: S105 - a path, not a password
S3_FILE = "/etc/keepdata/backup/s3.credentials"
SUMMARY = {
    "message_type": "summary",
    "files_new": 12,
    "files_changed": 3,
    "files_unmodified": 40,
    "dirs_new": 1,
    "data_added": 1258291,
    "total_files_processed": 55,
    "total_bytes_processed": 9000000,
    "total_duration": 4.1,
    "snapshot_id": "1a2b3c4d5e6f7a8b",
}
# What a host that backed the job up before knows of its last good snapshot (SUMMARY's figures).
GOOD = {"good_snapshot": "aaaa1111", "good_files": 55, "good_bytes": 9000000, "good_time": 1690000000}
# A first backup on a host with no such record compares with the newest good snapshot in the repository.
FIRST_COMPARISON = ["snapshots", "stats"]
RESTIC_SUBCOMMANDS = ("version", "cat", "unlock", "backup", "snapshots", "forget", "prune", "ls", "restore", "check", "stats", "tag")
REPOSITORY_CONFIG = '{"version": 2, "id": "5b0c", "chunker_polynomial": "3a1b"}\n'
LOCKED = "Fatal: unable to create lock in backend: repository is already locked by PID 4711 on web2 by root (UID 0, GID 0)\n"


def backup_output(*errors, summary=True):
    lines = [{"message_type": "status", "percent_done": 0.5, "total_files": 10}]
    lines += [{"message_type": "error", "error": {}, "during": "archival", "item": item} for item in errors]
    if summary:
        lines.append(SUMMARY)
    return "".join(json.dumps(line) + "\n" for line in lines)


def snapshot(short_id, time, *tags):
    snap = {"time": time, "tree": "t", "paths": ["/srv/app1"], "hostname": "web1", "id": short_id * 8, "short_id": short_id}
    if tags:
        snap["tags"] = list(tags)
    return snap


def done(returncode=0, stdout="", stderr=""):
    return subprocess.CompletedProcess([], returncode, stdout, stderr)


def command_key(argv):
    if argv[0] == "restic":
        return next(arg for arg in argv[1:] if arg in RESTIC_SUBCOMMANDS)
    if argv[0] == "runuser":
        return argv[argv.index("--") + 1]
    return os.path.basename(argv[0])


class FakeRun:
    """subprocess.run for the runner: restic and the system tools answer from a table (a list answers in turn,
    a callable sees argv and kwargs); /bin/sh hooks and notify commands really run."""

    def __init__(self, **answers):
        self.calls = []
        self.answers = {
            "version": done(stdout=VERSION_014),
            "cat": done(stdout=REPOSITORY_CONFIG),
            "unlock": done(),
            "backup": done(stdout=backup_output()),
            "snapshots": done(stdout=json.dumps([snapshot("aaaa1111", "2026-11-30T04:00:00.123456789+00:00", "keepdata-job=app1")])),
            "forget": done(),
            "prune": done(),
            # The last good snapshot's size (restore-size mode): what a new backup is compared with on a new host.
            "stats": done(stdout='{"total_size": 9000000, "total_file_count": 70, "snapshots_count": 1}\n'),
            "tag": done(stdout="modified tags on 1 snapshots\n"),
            "systemctl": done(),
            "journalctl": done(stdout="line one\nline two\n"),
        }
        self.answers.update(answers)

    def __call__(self, argv, **kwargs):
        argv = list(argv)
        self.calls.append((argv, kwargs))
        assert kwargs.pop("check") is False
        # A live lock (another host's restic) must never be broken: only restic's own stale-lock judgement runs.
        assert "--remove-all" not in argv
        if argv[0] == "/bin/sh":
            return subprocess.run(argv, check=False, **kwargs)
        answer = self.answers[command_key(argv)]
        if isinstance(answer, list):
            answer = answer.pop(0)
        if callable(answer):
            answer = answer(argv, kwargs)
        return answer

    def keys(self):
        """The commands run, hooks (/bin/sh) left out: the tests see those by their effects."""
        return [command_key(argv) for argv, _kwargs in self.calls if argv[0] != "/bin/sh"]

    def argvs(self, key):
        return [argv for argv, _kwargs in self.calls if command_key(argv) == key]


def make_config(tmp_path, **overrides):
    # The job's data is there: an empty source on a host that never backed up the job is refused (see
    # test_empty_sources_on_a_host_that_never_restored_are_refused).
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "upload.bin").write_bytes(b"upload")
    config = {
        "name": "app1",
        "repository": S3,
        "repository_id": "3f2a9c1b0d4e",
        "restic_options": ["-o", "s3.bucket-lookup=path"],
        "host": "web1",
        "mount_point": "",
        "paths": [str(tmp_path / "data")],
        "excludes": ["*.tmp"],
        "tags": ["app1"],
        "limit_upload": 0,
        "compression": "auto",
        "pre_hooks": [],
        "post_hooks": [],
        "on_failure_hooks": [],
        "hook_timeout": 60,
        "databases": [],
        "dump_dir": str(tmp_path / "dumps"),
        "retention": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 0, "keep_yearly": 0, "keep_within": ""},
        "tag_rules": [{"tag": "pre-update", "within": "21d"}],
        "prune": True,
        "retry_attempts": 3,
        "notify_command": "",
        "metrics_dir": str(tmp_path / "metrics"),
        "state_dir": str(tmp_path / "state"),
        "cache_dir": "/var/cache/keepdata-backup",
        "password_file": PASSWORD_FILE,
        "s3_credentials_file": S3_FILE,
    }
    config.update(overrides)
    return shared.with_defaults(config)


def watching(run):
    """A Context's watch over a fake run: the stderr lines reach on_line once the fake has answered (or timed out)."""

    def watch(argv, on_line, **kwargs):
        try:
            proc = run(argv, capture_output=True, encoding="utf-8", errors="replace", **kwargs)
        except subprocess.TimeoutExpired as exc:
            said = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            for line in said.splitlines():
                on_line(line)
            raise
        for line in (proc.stderr or "").splitlines():
            on_line(line)
        return proc

    return watch


def context(tmp_path, run, ismount=None, start=1700000000.0):
    clock = itertools.count(start, 2.5)
    return br.Context(
        run=run,
        watch=watching(run),
        clock=lambda: next(clock),
        environ={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        lock_dir=str(tmp_path / "lock"),
        runtime_units_dir=str(tmp_path / "run-units"),
        ismount=ismount or (lambda path: True),
        out=io.StringIO(),
        err=io.StringIO(),
    )


def read_state(config):
    with open(shared.state_path(config), encoding="utf-8") as handle:
        return json.load(handle)


def metric_lines(config):
    with open(shared.metrics_path(config), encoding="utf-8") as handle:
        return [line for line in handle.read().splitlines() if not line.startswith("#")]


def write_state(config, **values):
    shared.atomic_write(shared.state_path(config), json.dumps(dict(shared.STATE_DEFAULTS, **values)), 0o600)


def lock_is_held(tmp_path):
    """Whether this host's repository lock (flock) is held by someone else right now."""
    fd = os.open(str(tmp_path / "lock" / "keepdata-backup-3f2a9c1b0d4e.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


# --- pure functions --------------------------------------------------------------------------------------------


def test_backup_command(tmp_path):
    config = make_config(tmp_path, excludes=["*.tmp", "/srv/app1/cache"], tags=["app1", "nightly"], limit_upload=2048)
    expected = "restic -o s3.bucket-lookup=path backup --json --host web1 --tag keepdata-job=app1 --tag app1 --tag nightly"
    expected += " --exclude *.tmp --exclude /srv/app1/cache --limit-upload 2048 --compression auto --"
    assert br.backup_command(config) == expected.split() + [str(tmp_path / "data")]
    config = make_config(tmp_path, tags=[], excludes=[], compression="", restic_options=[], databases=[{"type": "sqlite", "name": "app", "path": "/x"}])
    expected = "restic backup --retry-lock 5m --json --host web1 --tag keepdata-job=app1 --"
    assert br.backup_command(config, ["--retry-lock", "5m"]) == expected.split() + [str(tmp_path / "data"), str(tmp_path / "dumps")]


def test_parse_backup_output_reads_summary_and_errors_from_both_streams():
    stdout = backup_output("/srv/app1/locked") + "not json\n[1, 2]\n"
    stderr = json.dumps({"message_type": "error", "error": {"message": "permission denied"}, "during": "scan", "item": "/srv/app1/x"}) + "\n"
    stderr += "Warning: at least one source file could not be read\n"
    parsed = br.parse_backup_output(stdout, stderr)
    assert parsed["summary"] == SUMMARY
    assert parsed["errors"] == ["/srv/app1/locked (during archival)", "/srv/app1/x: permission denied (during scan)"]
    assert parsed["messages"] == ["Warning: at least one source file could not be read"]
    assert br.parse_backup_output("", "") == {"summary": None, "errors": [], "messages": []}
    assert br.snapshot_line(SUMMARY) == "snapshot 1a2b3c4d: 12 new, 3 changed files, 1.2 MiB added, 4.1 s"
    assert br.snapshot_line(None) == "snapshot saved (restic printed no summary)"


def test_exit_codes():
    assert [br.backup_status(code) for code in (0, 3, 1, -9, 10, 12)] == [0, 3, 1, 1, 1, 1]
    assert shared.describe_exit(-9) == "killed by signal 9"
    assert shared.describe_exit(1) == "exit status 1"


# restic 0.14's own words (stderr) for each failure cause, as measured against the RGW, a path repository and a full disk.
RESTIC_014_FAILURES = {
    "missing_repository": (
        "Fatal: unable to open config file: Stat: The specified key does not exist.\n"
        "Is there a repository at the following location?\ns3:http://127.0.0.1:45187/rx-probe/repo-none\n"
    ),
    "wrong_password": "Fatal: wrong password or no key found\n",
    "denied": (
        "Fatal: unable to open config file: Stat: The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.\nIs there a repository at the following location?\ns3:http://127.0.0.1:45187/rx-probe/repo\n"
    ),
    "unreachable": (
        'Fatal: unable to open config file: Stat: Get "http://127.0.0.1:1/rx-probe/?location=": dial tcp 127.0.0.1:1: connect: connection refused\n'
        "Is there a repository at the following location?\ns3:http://127.0.0.1:1/rx-probe/repo\n"
    ),
    "locked": (
        "unable to create lock in backend: repository is already locked exclusively by PID 17113 on vm by root (UID 0, GID 0)\n"
        "lock was created at 2026-12-06 02:38:53 (3.418085642s ago)\nstorage ID fbbd9fb9\nthe `unlock` command can be used to remove stale locks\n"
    ),
    "disk_full": "Fatal: unable to save snapshot: write /srv/backup/repo/data/0d/0dba8b-tmp-3876646388: no space left on device\n",
}


def test_restic_018_json_exit_error_is_read():
    parsed = br.parse_backup_output('{"message_type":"exit_error","code":1,"message":"Fatal: wrong password or no key found"}\n', "")
    assert parsed["messages"] == ["Fatal: wrong password or no key found"]


NOW = shared.snapshot_time("2026-12-01T00:00:00Z")


def test_forget_commands_keep_latest_and_tag_rules(tmp_path):
    config = make_config(
        tmp_path,
        retention={"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 0, "keep_yearly": 2, "keep_within": "1m"},
        tag_rules=[{"tag": "pre-update", "within": "21d"}, {"tag": "release", "within": "1y"}],
    )
    snapshots = [
        snapshot("aaaa1111", "2026-11-28T04:00:00.1+00:00", "keepdata-job=app1", "release"),
        snapshot("bbbb2222", "2026-11-30T04:00:00.123456789+00:00", "keepdata-job=app1", "app1", "pre-update"),
        snapshot("cccc3333", "2026-11-29T04:00:00+00:00", "keepdata-job=app1"),
        # 61 days old: past the pre-update rule's 21 days, counted from now (not from the newest tagged snapshot).
        snapshot("dddd4444", "2026-10-01T04:00:00Z", "keepdata-job=app1", "pre-update"),
        # 18 months old: past the release rule's year.
        snapshot("eeee5555", "2025-06-01T04:00:00Z", "keepdata-job=app1", "release"),
    ]
    restic = "restic -o s3.bucket-lookup=path "
    assert br.forget_commands(config, snapshots, now=NOW) == [
        (
            restic + "forget --host web1 --tag keepdata-job=app1 --group-by host --keep-last 1 --keep-daily 7 --keep-weekly 4 --keep-yearly 2"
            " --keep-within 1m --keep-tag pre-update --keep-tag release"
        ).split(),
        (restic + "forget " + "dddd4444" * 8).split(),
        (restic + "forget " + "eeee5555" * 8).split(),
        (restic + "prune").split(),
    ]
    # Nothing expired yet: no tag pass at all.
    assert len(br.forget_commands(config, snapshots[:3], now=NOW)) == 2


def test_forget_commands_latest_by_time_not_order(tmp_path):
    config = make_config(tmp_path, restic_options=[], prune=False)
    # The pre-update snapshot is listed last, but 05:00+02:00 is 03:00 UTC: the untagged one is the latest.
    snapshots = [
        snapshot("aaaa1111", "2026-10-01T04:00:00Z", "keepdata-job=app1"),
        snapshot("bbbb2222", "2026-10-01T05:00:00.5+02:00", "keepdata-job=app1", "pre-update"),
    ]
    assert shared.latest_snapshot(snapshots)["short_id"] == "aaaa1111"
    commands = br.forget_commands(config, snapshots, ["--retry-lock", "5m"], now=NOW)
    policy = "restic forget --retry-lock 5m --host web1 --tag keepdata-job=app1 --group-by host --keep-last 1 --keep-daily 7 --keep-weekly 4"
    assert commands == [(policy + " --keep-tag pre-update").split(), ["restic", "forget", "--retry-lock", "5m", "bbbb2222" * 8]]
    # When the expired pre-update snapshot is the job's latest, it stays: the latest is kept whatever the policy.
    latest_tagged = snapshots + [snapshot("cccc3333", "2026-10-02T04:00:00Z", "keepdata-job=app1", "pre-update")]
    assert br.forget_commands(config, latest_tagged, now=NOW)[1] == ["restic", "forget", "bbbb2222" * 8]
    only_tagged = [snapshot("cccc3333", "2026-10-02T04:00:00Z", "keepdata-job=app1", "pre-update")]
    assert len(br.forget_commands(config, only_tagged, now=NOW)) == 1
    # No snapshot at all yet: the policy pass alone.
    assert len(br.forget_commands(config, [], now=NOW)) == 1
    assert shared.snapshot_time("2026-11-30T05:00:00.5+02:00") == shared.snapshot_time("2026-11-30T03:00:00.5Z")
    assert shared.snapshot_time("yesterday") is None


def test_duration_seconds():
    assert br.duration_seconds("21d") == 21 * 86400
    assert br.duration_seconds("1y6m2h") == 365 * 86400 + 180 * 86400 + 7200
    for bad in ("", "21", "d", "3 days", "21d ", "-1d", None):
        assert br.duration_seconds(bad) is None


def test_metrics_text_exact():
    state = br.backup_state({"last_forget": 1699990000, "snapshots": 9}, 1700000000.7, 1700000004.8, 3, summary=SUMMARY, snapshots=14)
    assert shared.metrics_text("app1", state, {"max_age": 94500, "drill_max_age": 0}) == (
        "# HELP keepdata_backup_last_run_timestamp_seconds Unix time when the last backup run started.\n"
        "# TYPE keepdata_backup_last_run_timestamp_seconds gauge\n"
        'keepdata_backup_last_run_timestamp_seconds{backup_job="app1"} 1700000000\n'
        "# HELP keepdata_backup_last_success_timestamp_seconds Unix time when the last successful (or partial) backup started, 0 if never.\n"
        "# TYPE keepdata_backup_last_success_timestamp_seconds gauge\n"
        'keepdata_backup_last_success_timestamp_seconds{backup_job="app1"} 1700000000\n'
        "# HELP keepdata_backup_last_duration_seconds Duration of the last backup run in seconds.\n"
        "# TYPE keepdata_backup_last_duration_seconds gauge\n"
        'keepdata_backup_last_duration_seconds{backup_job="app1"} 4.1\n'
        "# HELP keepdata_backup_last_exit_status Outcome of the last backup run: 0 ok, 3 partial (some files unreadable), 1 failure.\n"
        "# TYPE keepdata_backup_last_exit_status gauge\n"
        'keepdata_backup_last_exit_status{backup_job="app1"} 3\n'
        "# HELP keepdata_backup_last_partial 1 if the last backup snapshot missed unreadable files, else 0.\n"
        "# TYPE keepdata_backup_last_partial gauge\n"
        'keepdata_backup_last_partial{backup_job="app1"} 1\n'
        "# HELP keepdata_backup_last_bytes_added Bytes added to the repository by the last backup run.\n"
        "# TYPE keepdata_backup_last_bytes_added gauge\n"
        'keepdata_backup_last_bytes_added{backup_job="app1"} 1258291\n'
        "# HELP keepdata_backup_last_files_new New files in the last backup snapshot.\n"
        "# TYPE keepdata_backup_last_files_new gauge\n"
        'keepdata_backup_last_files_new{backup_job="app1"} 12\n'
        "# HELP keepdata_backup_last_files_changed Changed files in the last backup snapshot.\n"
        "# TYPE keepdata_backup_last_files_changed gauge\n"
        'keepdata_backup_last_files_changed{backup_job="app1"} 3\n'
        "# HELP keepdata_backup_snapshots Snapshots of this job on this host in the repository.\n"
        "# TYPE keepdata_backup_snapshots gauge\n"
        'keepdata_backup_snapshots{backup_job="app1"} 14\n'
        "# HELP keepdata_backup_consecutive_failures Backup runs failed in a row since the last success.\n"
        "# TYPE keepdata_backup_consecutive_failures gauge\n"
        'keepdata_backup_consecutive_failures{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_last_forget_timestamp_seconds Unix time when the retention policy last ran successfully, 0 if never.\n"
        "# TYPE keepdata_backup_last_forget_timestamp_seconds gauge\n"
        'keepdata_backup_last_forget_timestamp_seconds{backup_job="app1"} 1699990000\n'
        "# HELP keepdata_backup_drill_last_timestamp_seconds Unix time when the last restore drill started, 0 if never.\n"
        "# TYPE keepdata_backup_drill_last_timestamp_seconds gauge\n"
        'keepdata_backup_drill_last_timestamp_seconds{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_drill_last_success_timestamp_seconds Unix time when the last successful restore drill started, 0 if never.\n"
        "# TYPE keepdata_backup_drill_last_success_timestamp_seconds gauge\n"
        'keepdata_backup_drill_last_success_timestamp_seconds{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_drill_last_result Outcome of the last restore drill: 0 ok, 1 failed.\n"
        "# TYPE keepdata_backup_drill_last_result gauge\n"
        'keepdata_backup_drill_last_result{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_drill_files_checked Files restored and verified by the last restore drill.\n"
        "# TYPE keepdata_backup_drill_files_checked gauge\n"
        'keepdata_backup_drill_files_checked{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_drill_bytes_checked Bytes restored and verified by the last restore drill.\n"
        "# TYPE keepdata_backup_drill_bytes_checked gauge\n"
        'keepdata_backup_drill_bytes_checked{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_drill_duration_seconds Duration of the last restore drill in seconds.\n"
        "# TYPE keepdata_backup_drill_duration_seconds gauge\n"
        'keepdata_backup_drill_duration_seconds{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_drill_consecutive_failures Restore drills failed in a row since the last success.\n"
        "# TYPE keepdata_backup_drill_consecutive_failures gauge\n"
        'keepdata_backup_drill_consecutive_failures{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_forget_last_result Outcome of the last retention run (forget, prune): 0 ok, 1 failed.\n"
        "# TYPE keepdata_backup_forget_last_result gauge\n"
        'keepdata_backup_forget_last_result{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_forget_consecutive_failures Retention runs failed in a row since the last success.\n"
        "# TYPE keepdata_backup_forget_consecutive_failures gauge\n"
        'keepdata_backup_forget_consecutive_failures{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_check_last_timestamp_seconds Unix time when the last repository check (restic check --read-data-subset) started, 0 if never.\n"
        "# TYPE keepdata_backup_check_last_timestamp_seconds gauge\n"
        'keepdata_backup_check_last_timestamp_seconds{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_check_last_success_timestamp_seconds Unix time when the last successful repository check started, 0 if never.\n"
        "# TYPE keepdata_backup_check_last_success_timestamp_seconds gauge\n"
        'keepdata_backup_check_last_success_timestamp_seconds{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_check_last_result Outcome of the last repository check: 0 ok (or never run), 1 failed.\n"
        "# TYPE keepdata_backup_check_last_result gauge\n"
        'keepdata_backup_check_last_result{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_structure_check_last_timestamp_seconds Unix time when the retention run of the last structural repository check"
        " (restic check, no data read) to reach a verdict started, 0 if never.\n"
        "# TYPE keepdata_backup_structure_check_last_timestamp_seconds gauge\n"
        'keepdata_backup_structure_check_last_timestamp_seconds{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_structure_check_last_success_timestamp_seconds Unix time when the retention run of the last structural"
        " repository check that found no damage started, 0 if never.\n"
        "# TYPE keepdata_backup_structure_check_last_success_timestamp_seconds gauge\n"
        'keepdata_backup_structure_check_last_success_timestamp_seconds{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_structure_check_last_result Outcome of the last structural repository check: 0 ok or never run, 1 failed.\n"
        "# TYPE keepdata_backup_structure_check_last_result gauge\n"
        'keepdata_backup_structure_check_last_result{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_last_suspect 1 if the last backup's snapshot is suspect (its sources were empty, or shrank by more than"
        " suspect_shrink percent since the last good one), else 0.\n"
        "# TYPE keepdata_backup_last_suspect gauge\n"
        'keepdata_backup_last_suspect{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_last_good_timestamp_seconds Unix time of the newest snapshot of this job that was not suspect, as this host"
        " knows it, 0 if none.\n"
        "# TYPE keepdata_backup_last_good_timestamp_seconds gauge\n"
        'keepdata_backup_last_good_timestamp_seconds{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_since_timestamp_seconds Unix time when the job was installed on this host (lateness of a job that never ran counts from it).\n"
        "# TYPE keepdata_backup_since_timestamp_seconds gauge\n"
        'keepdata_backup_since_timestamp_seconds{backup_job="app1"} 0\n'
        "# HELP keepdata_backup_max_age_seconds Seconds without a successful backup after which the job is late (from its schedule), 0 for no limit.\n"
        "# TYPE keepdata_backup_max_age_seconds gauge\n"
        'keepdata_backup_max_age_seconds{backup_job="app1"} 94500\n'
        "# HELP keepdata_backup_drill_max_age_seconds Seconds without a successful restore drill after which it is late (from its schedule), 0 for no limit.\n"
        "# TYPE keepdata_backup_drill_max_age_seconds gauge\n"
        'keepdata_backup_drill_max_age_seconds{backup_job="app1"} 0\n'
    )


def test_drill_state_records_the_repository_check():
    never = br.drill_state({}, 1000.0, 1001.0, True)
    assert (never["last_check"], never["check_exit_status"], never["last_check_success"]) == (0, 0, 0)
    passed = br.drill_state(never, 2000.0, 2001.0, True, subset=1, subsets=4, check=True)
    assert (passed["last_check"], passed["check_exit_status"], passed["last_check_success"]) == (2000, 0, 2000)
    failed = br.drill_state(passed, 3000.0, 3001.0, False, check=False)
    assert (failed["last_check"], failed["check_exit_status"], failed["last_check_success"]) == (3000, 1, 2000)
    # A drill that failed before its check leaves the check's outcome as it was.
    early = br.drill_state(failed, 4000.0, 4001.0, False)
    assert (early["last_check"], early["check_exit_status"]) == (3000, 1)
    text = shared.metrics_text("app1", failed)
    assert 'keepdata_backup_check_last_result{backup_job="app1"} 1\n' in text
    assert 'keepdata_backup_check_last_success_timestamp_seconds{backup_job="app1"} 2000\n' in text


def test_backup_state_carries_last_success_and_counts_failures():
    first = br.backup_state({}, 1000.0, 1010.0, 0, summary=SUMMARY, snapshots=5)
    assert (first["last_success"], first["consecutive_failures"], first["snapshots"], first["partial"]) == (1000, 0, 5, 0)
    second = br.backup_state(first, 2000.0, 2001.0, 1)
    third = br.backup_state(second, 3000.0, 3001.0, 1)
    assert (third["last_run"], third["last_success"], third["consecutive_failures"], third["last_exit_status"]) == (3000, 1000, 2, 1)
    assert (third["snapshots"], third["bytes_added"], third["files_new"]) == (5, 0, 0)
    assert br.backup_state(third, 4000.0, 4002.0, 3)["consecutive_failures"] == 0
    forgotten = br.forget_state(third, 5000.0, True, 4)
    assert (forgotten["last_forget"], forgotten["snapshots"], forgotten["consecutive_failures"]) == (5000, 4, 2)
    failed = br.forget_state(forgotten, 6000.0, False)
    assert (failed["last_forget"], failed["forget_consecutive_failures"], failed["last_forget_exit_status"]) == (5000, 1, 1)


def test_atomic_write_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "new" / "dir" / "keepdata_backup_app1.prom"
    shared.atomic_write(str(target), "first\n", 0o644)
    shared.atomic_write(str(target), "second\n", 0o600)
    assert target.read_text() == "second\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(target.parent) == ["keepdata_backup_app1.prom"]

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(br.os, "replace", broken_replace)
    with pytest.raises(OSError):
        shared.atomic_write(str(target), "third\n", 0o644)
    assert target.read_text() == "second\n"
    assert os.listdir(target.parent) == ["keepdata_backup_app1.prom"]


def test_config_problems_and_failed_target():
    assert shared.config_problems({"name": "app2", "repository": "/r", "repository_id": "1", "host": "h", "state_dir": "/s"}, "app1") == [
        "name is 'app2', not 'app1'"
    ]
    assert shared.config_problems({"name": "app1", "databases": [{}]}, "app1") == [
        "repository is missing",
        "repository_id is missing",
        "host is missing",
        "state_dir is missing",
        "dump_dir is missing (the job has databases)",
    ]
    assert br.parse_failed_target("app-1:backup") == ("app-1", "backup")
    assert br.parse_failed_target("app1:forget") == ("app1", "forget")
    assert br.parse_failed_target("app1:drill") == ("app1", "drill")
    for bad in ("app1", "app1:restore", "../x:backup", ":backup", "app1\n:backup", "app1:drill\n", "App1:drill"):
        with pytest.raises(shared.JobError):
            br.parse_failed_target(bad)
    assert shared.unit_name("app1", "forget") == "keepdata-backup-app1-forget.service"
    assert shared.unit_name("app1", "drill") == "keepdata-backup-app1-drill.service"
    assert shared.unit_name("app1", "backup") == "keepdata-backup-app1.service"
    assert [br.retry_left(failures, 3) for failures in (0, 1, 3, 4)] == [False, True, True, False]
    assert shared.lock_path("/run/lock", "3f2a/../x") == "/run/lock/keepdata-backup-3f2a____x.lock"


# --- the backup run --------------------------------------------------------------------------------------------


def test_successful_run(tmp_path):
    config = make_config(tmp_path)
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 0
    # No earlier restic was interrupted and no command met a lock: no restic unlock at all.
    assert fake.keys() == ["version", "cat", "backup", "snapshots"] + FIRST_COMPARISON
    assert fake.argvs("backup") == [br.backup_command(config)]
    # The count, then the newest good snapshot to compare with (none recorded on this host yet).
    assert fake.argvs("snapshots") == [["restic", "-o", "s3.bucket-lookup=path", "snapshots", "--json", "--host", "web1", "--tag", "keepdata-job=app1"]] * 2
    for argv, kwargs in fake.calls:
        assert kwargs["env"]["RESTIC_PASSWORD_FILE"] == PASSWORD_FILE
        assert kwargs["stdin"] == subprocess.DEVNULL
        assert not any("password" in arg.lower() for arg in argv)
    out = ctx.out.getvalue()
    assert "backup app1: snapshot 1a2b3c4d: 12 new, 3 changed files, 1.2 MiB added, 4.1 s\n" in out
    assert "backup app1: 1 snapshots of this job for host web1\n" in out
    assert ctx.err.getvalue() == ""
    state = read_state(config)
    assert state["last_run"] == state["last_success"] == 1700000000
    assert (state["last_exit_status"], state["consecutive_failures"], state["snapshots"], state["last_duration"]) == (0, 0, 1, 2.5)
    assert (state["bytes_added"], state["files_new"], state["files_changed"], state["partial"]) == (1258291, 12, 3, 0)
    assert state["snapshots_known"] is True
    assert not os.path.exists(shared.unclean_path(config))
    assert stat.S_IMODE(os.stat(shared.state_path(config)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(shared.metrics_path(config)).st_mode) == 0o644
    assert 'keepdata_backup_last_exit_status{backup_job="app1"} 0' in metric_lines(config)
    assert os.path.exists(tmp_path / "lock" / "keepdata-backup-3f2a9c1b0d4e.lock")


def test_restic_016_gets_retry_lock_and_unlock_failure_is_not_fatal(tmp_path):
    config = make_config(tmp_path, metrics_dir="")
    os.makedirs(config["state_dir"])
    open(shared.unclean_path(config), "w").close()  # an interrupted restic before: this run starts with restic unlock
    fake = FakeRun(version=done(stdout=VERSION_016), unlock=done(1, stderr="Fatal: unable to open repository\n"))
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 0
    assert fake.keys() == ["unlock", "version", "cat", "backup", "snapshots"] + FIRST_COMPARISON
    assert fake.argvs("backup")[0][3:6] == ["backup", "--retry-lock", "5m"]
    assert "--retry-lock" not in fake.argvs("unlock")[0] + fake.argvs("snapshots")[0]
    assert "backup app1: warning: restic unlock failed (exit status 1): Fatal: unable to open repository" in ctx.err.getvalue()
    # The marker goes anyway: a lock still in the way shows up as a lock error, which unlocks and retries once.
    assert not os.path.exists(shared.unclean_path(config))
    assert not os.path.exists(tmp_path / "metrics")


def test_state_keeps_last_success_across_a_failure(tmp_path):
    config = make_config(tmp_path)
    ctx = context(tmp_path, FakeRun())
    assert br.cmd_run(ctx, config) == 0
    assert read_state(config)["last_failure_cause"] == ""
    ctx = context(tmp_path, FakeRun(backup=done(1, stderr="Fatal: wrong password or no key found\n")), start=1700086400.0)
    assert br.cmd_run(ctx, config) == 1
    # Why it failed, for the failure handler's notice.
    assert read_state(config)["last_failure_cause"] == "wrong_password"
    assert (
        "backup app1: error: restic backup failed (exit status 1): wrong_password (wrong repository password): Fatal: wrong password or no key found"
        in ctx.err.getvalue()
    )
    state = read_state(config)
    assert (state["last_run"], state["last_success"], state["consecutive_failures"], state["last_exit_status"]) == (1700086400, 1700000000, 1, 1)
    assert state["snapshots"] == 1  # the count of the last successful run stays
    lines = metric_lines(config)
    assert 'keepdata_backup_last_success_timestamp_seconds{backup_job="app1"} 1700000000' in lines
    assert 'keepdata_backup_last_run_timestamp_seconds{backup_job="app1"} 1700086400' in lines
    assert 'keepdata_backup_consecutive_failures{backup_job="app1"} 1' in lines
    assert 'keepdata_backup_last_bytes_added{backup_job="app1"} 0' in lines


def test_partial_backup_is_a_success_with_a_warning(tmp_path):
    config = make_config(tmp_path)
    items = ["/srv/app1/locked%02d" % number for number in range(12)]
    fake = FakeRun(backup=done(3, stdout=backup_output(*items[:6]), stderr=backup_output(*items[6:], summary=False)))
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 0
    warning = [line for line in ctx.err.getvalue().splitlines() if "partial snapshot" in line]
    assert len(warning) == 1
    assert "/srv/app1/locked09 (during archival); and 2 more" in warning[0]
    assert "locked10" not in warning[0]
    state = read_state(config)
    assert (state["last_exit_status"], state["partial"], state["consecutive_failures"], state["last_success"]) == (3, 1, 0, 1700000000)
    assert 'keepdata_backup_last_partial{backup_job="app1"} 1' in metric_lines(config)


def test_backup_killed_by_a_signal_fails_and_runs_on_failure_hooks(tmp_path):
    marker = tmp_path / "on-failure-ran"
    config = make_config(tmp_path, on_failure_hooks=['echo "$KEEPDATA_BACKUP_JOB" > %s' % marker, "exit 4"])
    fake = FakeRun(backup=done(-9, stdout=backup_output(summary=False)))
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert marker.read_text() == "app1\n"
    err = ctx.err.getvalue()
    assert "restic backup failed (killed by signal 9)" in err
    assert "on-failure hook 2 of 2 failed (exit status 4)" in err
    assert "snapshots" not in fake.keys()
    assert read_state(config)["last_exit_status"] == 1


def test_pre_hook_failure_aborts_before_dumps_and_backup(tmp_path):
    db = tmp_path / "app.db"
    sqlite3.connect(str(db)).close()
    first, third, failed = tmp_path / "first", tmp_path / "third", tmp_path / "failed"
    config = make_config(
        tmp_path,
        pre_hooks=['test "$KEEPDATA_BACKUP_JOB" = app1 && touch %s' % first, "exit 7 # token=SECRET-HOOK-TEXT", "touch %s" % third],
        on_failure_hooks=["touch %s" % failed],
        databases=[{"type": "sqlite", "name": "app", "path": str(db)}],
    )
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert first.exists() and failed.exists() and not third.exists()
    assert "backup" not in fake.keys() and "snapshots" not in fake.keys()
    assert not (tmp_path / "dumps").exists()
    err = ctx.err.getvalue()
    assert "backup app1: error: pre-hook 2 of 3 failed (exit status 7)" in err
    assert "SECRET-HOOK-TEXT" not in err + ctx.out.getvalue()
    assert read_state(config)["consecutive_failures"] == 1


def test_hook_timeout(tmp_path):
    config = make_config(tmp_path, pre_hooks=["exec sleep 5"], hook_timeout=0.3)
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert "pre-hook 1 of 1 timed out after 0.3 s" in ctx.err.getvalue()
    assert "backup" not in fake.keys()


def test_a_repository_that_does_not_answer_in_time_fails_unreachable_before_any_hook(tmp_path):
    # restic 0.18 retrying an unreachable S3 server for 15 minutes, seen as subprocess.run's timeout: the job gives
    # up after repository_timeout with the last line restic printed, before its pre-hook stops the app.
    hook_ran = tmp_path / "pre-hook-ran"
    config = make_config(tmp_path, repository_timeout=42, pre_hooks=["touch %s" % hook_ran])
    retrying = (
        b'Load(<config/0000000000>, 0, 0) returned error, retrying after 7.3s: Get "http://127.0.0.1:1/b/config": '
        b"dial tcp 127.0.0.1:1: connect: connection refused\n"
    )

    def hangs(argv, kwargs):
        assert kwargs["timeout"] == 42 and "--no-lock" in argv
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"], output=b"", stderr=retrying)

    fake = FakeRun(cat=hangs)
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert fake.keys() == ["version", "cat"] and not hook_ran.exists()
    assert "opening the repository (it has 42s to answer)" in ctx.out.getvalue()
    err = ctx.err.getvalue()
    assert "error: the repository did not answer within 42s (restic cat config stopped): unreachable (" in err, err
    assert "connect: connection refused" in err
    # restic's own retry line went to the journal as a warning of its own (live, with the real run_watching).
    assert "backup app1: warning: restic is retrying: Load(<config/0000000000>, 0, 0) returned error, retrying after 7.3s: " in err, err
    assert read_state(config)["last_failure_cause"] == "unreachable"


def test_a_repository_that_cannot_be_opened_fails_with_restics_cause_before_any_hook(tmp_path):
    hook_ran = tmp_path / "pre-hook-ran"
    config = make_config(tmp_path, pre_hooks=["touch %s" % hook_ran])
    fake = FakeRun(cat=done(1, stderr="Fatal: wrong password or no key found\n"))
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert fake.keys() == ["version", "cat"] and not hook_ran.exists()
    assert "error: restic cat config failed (exit status 1): wrong_password (" in ctx.err.getvalue()
    assert read_state(config)["last_failure_cause"] == "wrong_password"
    # The default bound: five minutes, not restic's fifteen.
    assert fake.calls[1][1]["timeout"] == shared.DEFAULT_REPOSITORY_TIMEOUT == 300


def test_a_repository_that_does_not_answer_fails_the_retention_run_and_the_drill_too(tmp_path):
    config = make_config(tmp_path, repository_timeout=5)

    def hangs(argv, kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    for command in (br.cmd_forget, br.cmd_drill):
        fake = FakeRun(cat=hangs)
        ctx = context(tmp_path, fake)
        assert command(ctx, config) == 1
        assert fake.keys() == ["version", "cat"]
        assert "the repository did not answer within 5s (restic cat config stopped)\n" in ctx.err.getvalue()


def test_post_hook_failure_keeps_the_snapshot_but_fails_the_job(tmp_path):
    ran = tmp_path / "post-hook-ran"
    config = make_config(tmp_path, post_hooks=["touch %s" % ran, "exit 2"])
    counted_before_post_hooks = []

    def snapshots(argv, kwargs):
        counted_before_post_hooks.append(not ran.exists())
        return done(stdout=json.dumps([snapshot("aaaa1111", "2026-11-30T04:00:00Z", "keepdata-job=app1")]))

    fake = FakeRun(snapshots=snapshots)
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert fake.keys() == ["version", "cat", "backup", "snapshots"] + FIRST_COMPARISON
    # Counted, then compared with the last good snapshot, both before the post-hooks.
    assert counted_before_post_hooks == [True, True]
    assert ran.exists()
    assert "post-hook 2 of 2 failed (exit status 2)" in ctx.err.getvalue()
    state = read_state(config)
    assert (state["last_exit_status"], state["consecutive_failures"], state["last_success"], state["snapshots"], state["files_new"]) == (1, 1, 0, 1, 12)


def test_snapshot_count_failure_is_not_fatal(tmp_path):
    config = make_config(tmp_path)
    ctx = context(tmp_path, FakeRun(snapshots=done(1, stderr="Fatal: boom\n")))
    assert br.cmd_run(ctx, config) == 0
    assert "warning: cannot count the snapshots: restic snapshots failed (exit status 1): Fatal: boom" in ctx.err.getvalue()
    assert read_state(config)["snapshots"] == 0
    assert "snapshots_known" not in read_state(config)  # so the next run counts again


# --- stale restic locks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returncode", "stderr", "marker_kept"),
    [(0, "", False), (1, "Fatal: wrong password or no key found\n", False), (3, "", False), (-9, "", True)],
)
def test_the_unclean_marker_lives_while_restic_backup_runs(tmp_path, returncode, stderr, marker_kept):
    config = make_config(tmp_path)
    marker = shared.unclean_path(config)
    present = []

    def backup(argv, kwargs):
        present.append(os.path.exists(marker))
        return done(returncode, stdout=backup_output(summary=returncode in (0, 3)), stderr=stderr)

    fake = FakeRun(backup=backup)
    assert br.cmd_run(context(tmp_path, fake), config) == (0 if returncode in (0, 3) else 1)
    assert present == [True]
    # Ended by itself, restic released its lock: the marker goes. Killed by a signal, its lock may be left.
    assert os.path.exists(marker) is marker_kept
    assert "unlock" not in fake.keys()


def test_after_a_killed_restic_the_next_run_unlocks_first_under_the_host_lock(tmp_path):
    config = make_config(tmp_path)
    marker = shared.unclean_path(config)
    assert br.cmd_run(context(tmp_path, FakeRun(backup=done(-9))), config) == 1
    assert os.path.exists(marker)
    held = []

    def unlock(argv, kwargs):
        held.append(lock_is_held(tmp_path))
        return done()

    fake = FakeRun(unlock=unlock)
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 0
    assert fake.keys() == ["unlock", "version", "cat", "backup", "snapshots"] + FIRST_COMPARISON
    assert fake.argvs("unlock") == [["restic", "-o", "s3.bucket-lookup=path", "unlock"]]
    assert held == [True]
    assert not os.path.exists(marker)
    assert "backup app1: an earlier restic of this repository was interrupted: removing its stale locks\n" in ctx.out.getvalue()
    # Clean now: the run after that unlocks nothing.
    fake = FakeRun()
    assert br.cmd_run(context(tmp_path, fake), config) == 0
    assert "unlock" not in fake.keys()


def test_forget_unlocks_only_after_an_interrupted_restic(tmp_path):
    config = make_config(tmp_path)
    fake = FakeRun()
    assert br.cmd_forget(context(tmp_path, fake), config) == 0
    assert "unlock" not in fake.keys()
    assert br.cmd_run(context(tmp_path, FakeRun(backup=done(-15))), config) == 1
    fake = FakeRun()
    assert br.cmd_forget(context(tmp_path, fake), config) == 0
    assert fake.keys()[:2] == ["unlock", "version"]
    assert fake.keys().count("unlock") == 1
    assert not os.path.exists(shared.unclean_path(config))


def test_a_lock_error_on_backup_unlocks_and_retries_once(tmp_path):
    config = make_config(tmp_path)
    fake = FakeRun(backup=[done(1, stderr=LOCKED), done(stdout=backup_output())])
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 0
    assert fake.keys() == ["version", "cat", "backup", "unlock", "backup", "snapshots"] + FIRST_COMPARISON
    assert fake.argvs("backup") == [br.backup_command(config)] * 2
    assert fake.argvs("unlock") == [["restic", "-o", "s3.bucket-lookup=path", "unlock"]]
    assert "backup app1: the repository is locked: removing stale locks (restic unlock), then trying again\n" in ctx.out.getvalue()
    assert ctx.err.getvalue() == ""
    state = read_state(config)
    assert (state["last_exit_status"], state["consecutive_failures"], state["snapshots"]) == (0, 0, 1)
    assert not os.path.exists(shared.unclean_path(config))


def test_a_lock_error_twice_fails_the_backup(tmp_path):
    config = make_config(tmp_path, on_failure_hooks=["true"])
    fake = FakeRun(backup=[done(1, stderr=LOCKED), done(1, stderr=LOCKED)])
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    # One unlock, one retry, then the failure: restic's lock belongs to a live process (web2) and stays.
    assert fake.keys() == ["version", "cat", "backup", "unlock", "backup"]
    assert (
        "backup app1: error: restic backup failed (exit status 1): locked (the repository is locked by another restic): "
        "Fatal: unable to create lock in backend: repository is already locked" in (ctx.err.getvalue())
    )
    state = read_state(config)
    assert (state["last_exit_status"], state["consecutive_failures"]) == (1, 1)
    assert not os.path.exists(shared.unclean_path(config))  # restic ended by itself: nothing stale to clear next time


def test_other_restic_failures_neither_unlock_nor_retry(tmp_path):
    config = make_config(tmp_path)
    fake = FakeRun(backup=done(1, stderr="Fatal: wrong password or no key found\n"))
    assert br.cmd_run(context(tmp_path, fake), config) == 1
    assert fake.keys() == ["version", "cat", "backup"]
    before = [snapshot("aaaa1111", "2023-11-13T04:00:00Z", "keepdata-job=app1")]
    fake = FakeRun(snapshots=done(stdout=json.dumps(before)), prune=done(1, stderr="Fatal: pack file is damaged\n"))
    assert br.cmd_forget(context(tmp_path, fake), config) == 1
    assert fake.keys() == ["version", "cat", "snapshots", "forget", "prune"]


def test_a_lock_error_on_prune_unlocks_and_retries(tmp_path):
    config = make_config(tmp_path)
    before = [snapshot("aaaa1111", "2023-11-13T04:00:00Z", "keepdata-job=app1")]
    fake = FakeRun(snapshots=done(stdout=json.dumps(before)), prune=[done(1, stderr=LOCKED), done()])
    assert br.cmd_forget(context(tmp_path, fake), config) == 0
    assert fake.keys() == ["version", "cat", "snapshots", "forget", "prune", "unlock", "prune", "snapshots"]


def test_no_command_ever_removes_a_live_lock(tmp_path):
    """restic unlock --remove-all would break another host's running backup: never used, whatever happens."""
    config = make_config(tmp_path)
    os.makedirs(config["state_dir"])
    open(shared.unclean_path(config), "w").close()
    before = [snapshot("aaaa1111", "2023-11-13T04:00:00Z", "keepdata-job=app1")]
    runs = [
        (br.cmd_run, FakeRun(backup=[done(1, stderr=LOCKED), done(1, stderr=LOCKED)])),
        (br.cmd_run, FakeRun(backup=done(-9))),
        (br.cmd_forget, FakeRun(snapshots=done(stdout=json.dumps(before)), forget=[done(1, stderr=LOCKED), done(1, stderr=LOCKED)])),
        (br.cmd_forget, FakeRun(snapshots=done(stdout=json.dumps(before)), prune=[done(1, stderr=LOCKED), done()])),
    ]
    unlocks = []
    for command, fake in runs:
        command(context(tmp_path, fake), config)
        unlocks += fake.argvs("unlock")
        assert all("--remove-all" not in argv for argv, _kwargs in fake.calls)
    assert len(unlocks) == 5  # marker, lock error; (killed: no lock error); marker, lock error; lock error
    assert all(argv == ["restic", "-o", "s3.bucket-lookup=path", "unlock"] for argv in unlocks)


# --- the snapshot count ----------------------------------------------------------------------------------------


def test_without_a_state_the_count_comes_from_restic_snapshots(tmp_path):
    config = make_config(tmp_path)
    three = [snapshot(short, "2026-11-30T04:00:00Z", "keepdata-job=app1") for short in ("aaaa1111", "bbbb2222", "cccc3333")]
    fake = FakeRun(snapshots=done(stdout=json.dumps(three)))
    assert br.cmd_run(context(tmp_path, fake), config) == 0
    assert fake.keys() == ["version", "cat", "backup", "snapshots"] + FIRST_COMPARISON
    state = read_state(config)
    assert (state["snapshots"], state["snapshots_known"]) == (3, True)


def test_a_known_count_is_counted_on_without_restic_snapshots(tmp_path):
    config = make_config(tmp_path)
    write_state(config, snapshots=4, snapshots_known=True, last_success=1690000000, **GOOD)
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 0
    assert fake.keys() == ["version", "cat", "backup"]
    assert read_state(config)["snapshots"] == 5
    assert 'keepdata_backup_snapshots{backup_job="app1"} 5' in metric_lines(config)
    # A partial snapshot is a snapshot too.
    fake = FakeRun(backup=done(3, stdout=backup_output("/srv/app1/locked")))
    assert br.cmd_run(context(tmp_path, fake), config) == 0
    assert "snapshots" not in fake.keys()
    assert 'keepdata_backup_snapshots{backup_job="app1"} 6' in metric_lines(config)


def test_a_count_not_marked_known_is_taken_again(tmp_path):
    config = make_config(tmp_path)
    write_state(config, snapshots=4)  # a state file from before snapshots_known
    fake = FakeRun()
    assert br.cmd_run(context(tmp_path, fake), config) == 0
    assert fake.keys() == ["version", "cat", "backup", "snapshots"] + FIRST_COMPARISON
    assert read_state(config)["snapshots"] == 1


def test_a_failed_run_does_not_change_the_count(tmp_path):
    config = make_config(tmp_path)
    write_state(config, snapshots=4, snapshots_known=True, **GOOD)
    for fake in (FakeRun(backup=done(1, stderr="Fatal: boom\n")), FakeRun(backup=done(-9)), FakeRun(backup=[done(1, stderr=LOCKED)] * 2)):
        assert br.cmd_run(context(tmp_path, fake), config) == 1
        assert "snapshots" not in fake.keys()
        state = read_state(config)
        assert (state["snapshots"], state["snapshots_known"]) == (4, True)
        assert 'keepdata_backup_snapshots{backup_job="app1"} 4' in metric_lines(config)
    fake = FakeRun()
    assert br.cmd_run(context(tmp_path, fake), config) == 0
    assert "snapshots" not in fake.keys()
    assert read_state(config)["snapshots"] == 5


def test_forget_makes_the_count_exact_again(tmp_path):
    config = make_config(tmp_path)
    write_state(config, snapshots=40, snapshots_known=True, **GOOD)
    before = [snapshot("aaaa1111", "2023-11-13T04:00:00Z", "keepdata-job=app1"), snapshot("bbbb2222", "2023-11-12T04:00:00Z", "keepdata-job=app1")]
    fake = FakeRun(snapshots=[done(stdout=json.dumps(before)), done(stdout=json.dumps(before))])
    assert br.cmd_forget(context(tmp_path, fake), config) == 0
    assert read_state(config)["snapshots"] == 2
    fake = FakeRun()
    assert br.cmd_run(context(tmp_path, fake), config) == 0
    assert "snapshots" not in fake.keys()
    assert read_state(config)["snapshots"] == 3


def test_mount_point_not_mounted_fails_before_any_restic_call(tmp_path):
    config = make_config(tmp_path, mount_point="/mnt/backup-disk")
    seen = []
    fake = FakeRun()
    ctx = context(tmp_path, fake, ismount=lambda path: seen.append(path) or False)
    assert br.cmd_run(ctx, config) == 1
    assert seen == ["/mnt/backup-disk"]
    assert fake.calls == []
    assert "/mnt/backup-disk is not mounted: refusing to write the backup into the bare mount point" in ctx.err.getvalue()
    assert read_state(config)["last_exit_status"] == 1
    ctx = context(tmp_path, FakeRun(), ismount=lambda path: True)
    assert br.cmd_run(ctx, config) == 0


def test_the_repository_lock_is_held_while_restic_runs(tmp_path):
    config = make_config(tmp_path)
    lock = tmp_path / "lock" / "keepdata-backup-3f2a9c1b0d4e.lock"
    held = []

    def backup(argv, kwargs):
        held.append(lock_is_held(tmp_path))
        return done(stdout=backup_output())

    assert br.cmd_run(context(tmp_path, FakeRun(backup=backup)), config) == 0
    assert held == [True]
    # Released at the end: it can be taken at once.
    fd = os.open(str(lock), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)


def test_the_repository_lock_waits_for_another_job(tmp_path):
    config = make_config(tmp_path)
    ctx = context(tmp_path, FakeRun())
    job = br.Job(ctx, "backup", config)
    (tmp_path / "lock").mkdir()
    holder = os.open(str(tmp_path / "lock" / "keepdata-backup-3f2a9c1b0d4e.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    timer = threading.Timer(0.3, os.close, [holder])
    timer.start()
    try:
        with br.repository_lock(job) as path:
            assert path.endswith("keepdata-backup-3f2a9c1b0d4e.lock")
    finally:
        timer.join()
    assert "backup app1: waiting for %s: another job of this repository is running\n" % path in ctx.out.getvalue()


# --- database dumps --------------------------------------------------------------------------------------------


def test_sqlite_dump_for_real(tmp_path):
    db = tmp_path / "app.db"
    source = sqlite3.connect(str(db))
    source.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('one'), ('two');")
    source.commit()
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "stale.sql").write_text("old dump")
    (dumps / "old-dir").mkdir()
    config = make_config(tmp_path, databases=[{"type": "sqlite", "name": "app", "path": str(db)}])
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    try:
        assert br.cmd_run(ctx, config) == 0  # the source stays open (and writable) meanwhile, as a live app's
    finally:
        source.close()
    assert sorted(os.listdir(dumps)) == ["app.sqlite3"]
    assert stat.S_IMODE(dumps.stat().st_mode) == 0o700
    copy = sqlite3.connect(str(dumps / "app.sqlite3"))
    try:
        assert copy.execute("SELECT body FROM notes ORDER BY id").fetchall() == [("one",), ("two",)]
    finally:
        copy.close()
    assert fake.argvs("backup")[0][-2:] == [str(tmp_path / "data"), str(dumps)]
    assert "backup app1: dumped sqlite database app (" in ctx.out.getvalue()


def test_sqlite_missing_source_fails_and_creates_nothing(tmp_path):
    missing = tmp_path / "nowhere.db"
    config = make_config(tmp_path, databases=[{"type": "sqlite", "name": "app", "path": str(missing)}])
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert not missing.exists()
    assert os.listdir(tmp_path / "dumps") == []
    assert "backup" not in fake.keys()
    assert "sqlite database %s does not exist" % missing in ctx.err.getvalue()
    with pytest.raises(shared.JobError, match="does not exist"):
        br.sqlite_dump(str(missing), str(tmp_path / "out.sqlite3"))
    assert not missing.exists() and not (tmp_path / "out.sqlite3").exists()


def test_postgresql_and_mysql_dumps_go_through_a_temp_file(tmp_path):
    databases = [
        {"type": "postgresql", "name": "pg", "database": "appdb", "user": "postgres", "options": []},
        {"type": "mysql", "name": "my", "database": "appdb", "defaults_file": "/root/.my.cnf", "options": []},
    ]
    config = make_config(tmp_path, databases=databases)
    seen = []

    def dumper(argv, kwargs):
        seen.append(kwargs["stdout"].name)
        kwargs["stdout"].write(("dump of %s\n" % argv[0]).encode())
        return subprocess.CompletedProcess(argv, 0, None, b"")

    fake = FakeRun(pg_dump=dumper, mysqldump=dumper)
    assert br.cmd_run(context(tmp_path, fake), config) == 0
    dumps = tmp_path / "dumps"
    assert seen == [str(dumps / "pg.pgdump.tmp"), str(dumps / "my.sql.tmp")]
    assert sorted(os.listdir(dumps)) == ["my.sql", "pg.pgdump"]
    assert (dumps / "pg.pgdump").read_text() == "dump of runuser\n"
    assert stat.S_IMODE((dumps / "my.sql").stat().st_mode) == 0o600
    assert fake.keys() == ["version", "cat", "pg_dump", "mysqldump", "backup", "snapshots"] + FIRST_COMPARISON


def test_dump_failure_means_no_snapshot(tmp_path):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "pg.pgdump").write_text("yesterday's dump")
    config = make_config(tmp_path, databases=[{"type": "postgresql", "name": "pg", "database": "appdb", "user": "postgres", "options": []}])

    def failing(argv, kwargs):
        kwargs["stdout"].write(b"half a dump")
        return subprocess.CompletedProcess(argv, 1, None, b'pg_dump: error: connection to server failed: FATAL:  role "x" does not exist\n')

    fake = FakeRun(pg_dump=failing)
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert os.listdir(dumps) == []
    assert "backup" not in fake.keys()
    assert 'dump of postgresql database pg failed (exit status 1): pg_dump: error: connection to server failed: FATAL:  role "x" does not exist' in (
        ctx.err.getvalue()
    )


# --- forget ----------------------------------------------------------------------------------------------------


def test_forget_runs_the_plan_and_records_it(tmp_path):
    config = make_config(tmp_path)
    # The clock of context() starts at 1700000000 (2023-11-14): the pre-update snapshot is 45 days older.
    before = [
        snapshot("aaaa1111", "2023-11-13T04:00:00Z", "keepdata-job=app1"),
        snapshot("bbbb2222", "2023-09-30T04:00:00Z", "keepdata-job=app1", "pre-update"),
    ]
    fake = FakeRun(snapshots=[done(stdout=json.dumps(before)), done(stdout=json.dumps(before[:1]))])
    ctx = context(tmp_path, fake)
    assert br.cmd_forget(ctx, config) == 0
    assert fake.keys() == ["version", "cat", "snapshots", "forget", "forget", "prune", "snapshots"]
    assert fake.argvs("forget") + fake.argvs("prune") == br.forget_commands(config, before, now=1700000000)
    assert fake.argvs("forget")[1][-1] == "bbbb2222" * 8
    state = read_state(config)
    assert (state["last_forget"], state["snapshots"], state["last_forget_exit_status"]) == (1700000000, 1, 0)
    assert state["snapshots_known"] is True
    lines = metric_lines(config)
    assert 'keepdata_backup_last_forget_timestamp_seconds{backup_job="app1"} 1700000000' in lines
    assert 'keepdata_backup_snapshots{backup_job="app1"} 1' in lines
    assert "forget app1: 2 snapshots of this job for host web1 before forget\n" in ctx.out.getvalue()


def test_the_first_jobs_retention_run_then_checks_the_repository_structure(tmp_path):
    config = make_config(tmp_path, check_structure=True)
    fake = FakeRun(check=done(stdout="no errors were found\n"))
    ctx = context(tmp_path, fake)
    assert br.cmd_forget(ctx, config) == 0
    # After forget, before prune: a plain check, which reads no data.
    assert fake.keys() == ["version", "cat", "snapshots", "forget", "check", "prune", "snapshots"]
    # With the job's cache, not a new one in the unit's private /tmp.
    assert fake.argvs("check") == [["restic", "-o", "s3.bucket-lookup=path", "check", "--with-cache"]]
    assert not os.path.exists(shared.damaged_path(config))
    state = read_state(config)
    assert (state["last_structure_check"], state["last_structure_check_success"], state["structure_check_exit_status"]) == (1700000000, 1700000000, 0)
    assert (state["last_forget_exit_status"], state["forget_failure_cause"]) == (0, "")
    assert 'keepdata_backup_structure_check_last_result{backup_job="app1"} 0' in metric_lines(config)
    assert "the repository's structure is sound (no data read)" in ctx.out.getvalue()


def test_a_damaged_repository_fails_the_retention_run_with_restics_own_findings(tmp_path):
    config = make_config(tmp_path, check_structure=True)
    # What restic 0.14 prints when a data pack is gone from the bucket.
    found = "pack 5fd0b8f1a7e3c2d4b6a8f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1: does not exist\nFatal: repository contains errors\n"
    fake = FakeRun(check=done(1, stdout="load indexes\ncheck all packs\n", stderr=found))
    ctx = context(tmp_path, fake)
    assert br.cmd_forget(ctx, config) == 1
    err = ctx.err.getvalue()
    assert "forget app1: error: restic check reported: pack 5fd0b8f1a7e3c2d4b6a8f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1: does not exist" in err
    assert (
        "forget app1: error: restic check failed (exit status 1): damaged (restic check found damage in the repository): "
        "Fatal: repository contains errors\n" in err
    )
    assert "forget app1: error: restic check found the repository damaged: retention run failed, nothing pruned\n" in err
    # A damaged repository is not pruned.
    assert fake.keys() == ["version", "cat", "snapshots", "forget", "check"]
    state = read_state(config)
    # The run failed, with its cause; the check has its own outcome.
    assert (state["last_forget_exit_status"], state["forget_consecutive_failures"], state["forget_failure_cause"]) == (1, 1, "damaged")
    assert (state["structure_check_exit_status"], state["last_structure_check"], state["last_structure_check_success"]) == (1, 1700000000, 0)
    assert 'keepdata_backup_structure_check_last_result{backup_job="app1"} 1' in metric_lines(config)


def test_a_failed_forget_leaves_the_structure_check_as_it_was(tmp_path):
    config = make_config(tmp_path, check_structure=True)
    os.makedirs(config["state_dir"])
    write_state(config, last_structure_check=1600000000, structure_check_exit_status=1)
    fake = FakeRun(forget=done(1, stderr="Fatal: unable to create lock in backend: repository is already locked\n"), unlock=done())
    ctx = context(tmp_path, fake)
    assert br.cmd_forget(ctx, config) == 1
    assert "check" not in fake.keys() and "prune" not in fake.keys()
    state = read_state(config)
    assert (state["structure_check_exit_status"], state["last_structure_check"]) == (1, 1600000000)
    assert state["forget_failure_cause"] == "locked"


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        (done(1, stderr=LOCKED), "locked"),
        (done(-9), "failed"),  # killed (the OOM killer under MemoryMax, say): no verdict
        (done(1, stderr="Fatal: unable to create temporary directory for cache: no space left on device\n"), "disk_full"),
        (done(1, stderr="Fatal: something restic says without a known cause\n"), "failed"),
    ],
)
def test_a_check_that_reaches_no_verdict_is_no_finding(tmp_path, answer, cause):
    config = make_config(tmp_path, check_structure=True)
    os.makedirs(config["state_dir"])
    write_state(config, last_structure_check=1600000000, last_structure_check_success=1600000000)
    fake = FakeRun(check=answer)
    ctx = context(tmp_path, fake)
    assert br.cmd_forget(ctx, config) == 1
    assert "prune" not in fake.keys()
    state = read_state(config)
    # The retention run failed with its cause; the structure's outcome is untouched (no damage alert).
    assert (state["last_forget_exit_status"], state["forget_failure_cause"]) == (1, cause)
    assert (state["structure_check_exit_status"], state["last_structure_check"]) == (0, 1600000000)
    assert not os.path.exists(shared.damaged_path(config))
    assert "found the repository damaged" not in ctx.err.getvalue()


def test_another_jobs_finding_keeps_this_job_from_pruning_until_a_check_passes(tmp_path):
    damaged = "pack 5fd0b8f1: does not exist\nFatal: repository contains errors\n"
    first = make_config(tmp_path, check_structure=True)
    assert br.cmd_forget(context(tmp_path, FakeRun(check=done(1, stderr=damaged))), first) == 1
    assert os.path.exists(shared.damaged_path(first))
    # The repository's second job (same repository, same host): its forget passes run, its prune does not.
    second = dict(first, name="app2", check_structure=False)
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.cmd_forget(ctx, second) == 0
    assert fake.keys() == ["version", "cat", "snapshots", "forget", "snapshots"]
    assert "forget app2: warning: not pruned: the last structural check of this repository found it damaged" in ctx.err.getvalue()
    # Once the first job's check finds the repository sound again, every job prunes again.
    assert br.cmd_forget(context(tmp_path, FakeRun(check=done())), first) == 0
    assert not os.path.exists(shared.damaged_path(first))
    fake = FakeRun()
    assert br.cmd_forget(context(tmp_path, fake), second) == 0
    assert "prune" in fake.keys()


def test_a_job_that_no_longer_checks_drops_its_old_finding(tmp_path):
    config = make_config(tmp_path, check_structure=False)
    os.makedirs(config["state_dir"])
    write_state(config, last_structure_check=1600000000, structure_check_exit_status=1)
    assert br.cmd_forget(context(tmp_path, FakeRun()), config) == 0
    state = read_state(config)
    assert (state["structure_check_exit_status"], state["last_structure_check"], state["last_structure_check_success"]) == (0, 0, 0)


def test_without_prune_the_check_ends_the_retention_run(tmp_path):
    config = make_config(tmp_path, check_structure=True, prune=False)
    fake = FakeRun(check=done())
    assert br.cmd_forget(context(tmp_path, fake), config) == 0
    assert fake.keys() == ["version", "cat", "snapshots", "forget", "check", "snapshots"]
    assert read_state(config)["last_structure_check_success"] == 1700000000


def test_forget_failure(tmp_path):
    config = make_config(tmp_path)
    before = [
        snapshot("aaaa1111", "2023-11-13T04:00:00Z", "keepdata-job=app1"),
        snapshot("bbbb2222", "2023-09-30T04:00:00Z", "keepdata-job=app1", "pre-update"),
    ]
    # The policy pass succeeds; the tag pass meets a lock, restic unlock cannot remove it (a live lock), and the
    # one retry meets it again: the run fails there, with no third try and no prune.
    fake = FakeRun(snapshots=[done(stdout=json.dumps(before))], forget=[done(), done(1, stderr=LOCKED), done(1, stderr=LOCKED)])
    ctx = context(tmp_path, fake)
    assert br.cmd_forget(ctx, config) == 1
    assert fake.keys() == ["version", "cat", "snapshots", "forget", "forget", "unlock", "forget"]
    tag_pass = ["restic", "-o", "s3.bucket-lookup=path", "forget", "bbbb2222" * 8]
    assert fake.argvs("forget")[1:] == [tag_pass, tag_pass]
    assert fake.argvs("unlock") == [["restic", "-o", "s3.bucket-lookup=path", "unlock"]]
    assert "forget app1: the repository is locked: removing stale locks (restic unlock), then trying again\n" in ctx.out.getvalue()
    assert (
        "forget app1: error: restic tag pre-update older than 21d failed (exit status 1): locked (the repository is locked by another restic): "
        "Fatal: unable to create lock" in ctx.err.getvalue()
    )
    state = read_state(config)
    assert (state["last_forget"], state["forget_consecutive_failures"], state["last_forget_exit_status"]) == (0, 1, 1)
    assert 'keepdata_backup_last_forget_timestamp_seconds{backup_job="app1"} 0' in metric_lines(config)


def test_restic_passthrough_uses_the_job_environment(tmp_path):
    config = make_config(tmp_path)
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.cmd_restic(ctx, config, ["snapshots", "--json"]) == 0
    argv, kwargs = fake.calls[-1]
    assert argv == ["restic", "-o", "s3.bucket-lookup=path", "snapshots", "--json"]
    assert kwargs["env"]["RESTIC_PASSWORD_FILE"] == config["password_file"]
    assert br.cmd_restic(ctx, config, []) == 2


# --- the failure handler ---------------------------------------------------------------------------------------


def write_job(tmp_path, config, failures):
    jobs = tmp_path / "jobs"
    jobs.mkdir(exist_ok=True)
    (jobs / "app1.json").write_text(json.dumps(config))
    shared.atomic_write(shared.state_path(config), json.dumps(dict(shared.STATE_DEFAULTS, consecutive_failures=failures, forget_consecutive_failures=1)), 0o600)
    return str(jobs)


def test_failed_arms_the_retry_timer_and_feeds_the_log_to_notify(tmp_path):
    got_log, got_vars = tmp_path / "log.txt", tmp_path / "vars.txt"
    notify = 'cat > %s; echo "$KEEPDATA_BACKUP_JOB $KEEPDATA_BACKUP_UNIT $KEEPDATA_BACKUP_KIND $KEEPDATA_BACKUP_FAILURES $KEEPDATA_BACKUP_CAUSE" > %s' % (
        got_log,
        got_vars,
    )
    config = make_config(tmp_path, notify_command=notify, retry_delay=900)
    jobs = write_job(tmp_path, config, failures=2)
    state_file = tmp_path / "state" / "app1.state.json"
    state_file.write_text(json.dumps(dict(json.loads(state_file.read_text()), last_failure_cause="unreachable")))
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.main(["failed", "app1:backup", "--config-dir", jobs], ctx=ctx) == 0
    # The backup's log, with its runs tagged by hand (keepdata-backup-app1@TAG.service report here too).
    assert fake.argvs("journalctl") == [
        ["journalctl", "-u", "keepdata-backup-app1.service", "-u", "keepdata-backup-app1@*.service", "-n", "30", "--no-pager", "-o", "cat"]
    ]
    # The second retry waits twice the first one's delay: a runtime drop-in, then the timer restarted.
    drop_in = tmp_path / "run-units" / "keepdata-backup-app1-retry.timer.d" / "50-keepdata-backoff.conf"
    assert drop_in.read_text().splitlines()[1:] == ["[Timer]", "OnActiveSec=", "OnActiveSec=1800s"]
    assert fake.argvs("systemctl") == [["systemctl", "daemon-reload"], ["systemctl", "restart", "keepdata-backup-app1-retry.timer"]]
    out = ctx.out.getvalue()
    assert "failed app1:backup: keepdata-backup-app1.service failed (2 failures in a row), cause: unreachable\n" in out
    assert "failed app1:backup: retry 2 of 3 in 30min (keepdata-backup-app1-retry.timer)\n" in out
    assert got_log.read_text() == "line one\nline two\n"
    assert got_vars.read_text() == "app1 keepdata-backup-app1.service backup 2 unreachable\n"
    notify_call = [kwargs for argv, kwargs in fake.calls if argv[0] == "/bin/sh"][0]
    assert notify_call["timeout"] == 120


def test_a_notify_command_given_as_a_list_runs_without_a_shell(tmp_path):
    got = tmp_path / "got.txt"
    script = tmp_path / "notify.py"
    script.write_text("import os, sys\nopen(sys.argv[1], 'w').write(repr(sys.argv[2:]) + ' ' + os.environ['KEEPDATA_BACKUP_CAUSE'] + ' ' + sys.stdin.read())\n")
    argv = [sys.executable, str(script), str(got), "-s", "backup failed; $HOME `id`"]
    config = make_config(tmp_path, notify_command=argv, retry_attempts=0)
    jobs = write_job(tmp_path, config, failures=1)
    ran = []

    def real(argv, kwargs):
        ran.append(argv)
        return subprocess.run(argv, check=False, **kwargs)

    fake = FakeRun(**{os.path.basename(sys.executable): real})
    assert br.main(["failed", "app1:backup", "--config-dir", jobs], ctx=context(tmp_path, fake)) == 0
    # Every word reached the program as it was: no shell split it or expanded $HOME and `id`.
    assert ran == [argv]
    assert got.read_text() == "['-s', 'backup failed; $HOME `id`'] unknown line one\nline two\n"


def test_failed_without_retry_left(tmp_path):
    config = make_config(tmp_path)
    jobs = write_job(tmp_path, config, failures=4)
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.main(["failed", "app1:backup", "--config-dir", jobs], ctx=ctx) == 0
    assert fake.keys() == ["journalctl"]
    assert "failed app1:backup: no retry left (4 failures in a row, 3 retries allowed)\n" in ctx.out.getvalue()
    # retry_attempts 0: never a retry, even after the first failure.
    jobs = write_job(tmp_path, dict(config, retry_attempts=0), failures=1)
    fake = FakeRun()
    assert br.main(["failed", "app1:backup", "--config-dir", jobs], ctx=context(tmp_path, fake)) == 0
    assert "systemctl" not in fake.keys()


def test_failed_forget_never_retries_and_a_failing_notify_fails_the_handler(tmp_path):
    config = make_config(tmp_path, notify_command="cat > /dev/null; exit 2")
    jobs = write_job(tmp_path, config, failures=1)
    fake = FakeRun(journalctl=done(1, stderr="No journal files were found.\n"))
    ctx = context(tmp_path, fake)
    assert br.main(["failed", "app1:forget", "--config-dir", jobs], ctx=ctx) == 1
    assert fake.argvs("journalctl")[0][:4] == ["journalctl", "-u", "keepdata-backup-app1-forget.service", "-n"]
    assert "systemctl" not in fake.keys()
    err = ctx.err.getvalue()
    assert "failed app1:forget: warning: journalctl failed (exit status 1)" in err
    assert "failed app1:forget: error: notify command failed (exit status 2)" in err


def test_failed_retry_timer_failure_is_reported(tmp_path):
    config = make_config(tmp_path)
    jobs = write_job(tmp_path, config, failures=1)
    ctx = context(tmp_path, FakeRun(systemctl=done(5, stderr="Unit keepdata-backup-app1-retry.timer not found.\n")))
    assert br.main(["failed", "app1:backup", "--config-dir", jobs], ctx=ctx) == 1
    assert "Unit keepdata-backup-app1-retry.timer not found." in ctx.err.getvalue()


# --- the command line ------------------------------------------------------------------------------------------


def test_main_reads_the_job_config(tmp_path):
    config = make_config(tmp_path)
    jobs = write_job(tmp_path, config, failures=0)
    fake = FakeRun()
    assert br.main(["run", "app1", "--config-dir", jobs], ctx=context(tmp_path, fake)) == 0
    assert "backup" in fake.keys()
    assert br.main(["forget", "app1", "--config-dir", jobs], ctx=context(tmp_path, FakeRun())) == 0

    ctx = context(tmp_path, FakeRun())
    assert br.main(["run", "App/1", "--config-dir", jobs], ctx=ctx) == 1
    assert "invalid job name 'App/1'" in ctx.err.getvalue()
    ctx = context(tmp_path, FakeRun())
    assert br.main(["run", "app2", "--config-dir", jobs], ctx=ctx) == 1
    assert "cannot read the job config %s/app2.json: No such file or directory" % jobs in ctx.err.getvalue()
    (tmp_path / "jobs" / "app3.json").write_text(json.dumps(dict(config, name="app1")))
    ctx = context(tmp_path, FakeRun())
    assert br.main(["run", "app3", "--config-dir", jobs], ctx=ctx) == 1
    assert "name is 'app1', not 'app3'" in ctx.err.getvalue()
    ctx = context(tmp_path, FakeRun())
    assert br.main(["failed", "app1", "--config-dir", jobs], ctx=ctx) == 1
    assert "expected JOB:backup, JOB:forget or JOB:drill, got 'app1'" in ctx.err.getvalue()
    # A trailing newline is not a job name ("$" of the old pattern let it through).
    ctx = context(tmp_path, FakeRun())
    assert br.main(["run", "app1\n", "--config-dir", jobs], ctx=ctx) == 1
    assert "invalid job name 'app1\\n'" in ctx.err.getvalue()
    with pytest.raises(SystemExit):
        br.main(["restore", "app1"], ctx=ctx)


def test_the_runner_and_its_shared_module_run_alone_with_the_standard_library(tmp_path):
    for module in (br, shared):
        with open(module.__file__, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        if hasattr(sys, "stdlib_module_names"):  # Python 3.10+
            assert imported - {"__future__", "ansible_collections"} <= set(sys.stdlib_module_names)
        # The one import of the collection: the runner's of its shared module, which it loads from beside itself.
        assert [name for name in imported if name.startswith("ansible")] == (["ansible_collections"] if module is br else [])
    # As backup_jobs installs them and the units run them: side by side outside the collection, in isolated mode.
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "backup_runner.py").write_text(program_source(br), encoding="utf-8")
    (lib / br.SHARED_PROGRAM).write_text(program_source(shared), encoding="utf-8")
    argv = [sys.executable, "-I", str(lib / "backup_runner.py"), "run", "app1", "--config-dir", str(tmp_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == "backup app1: error: cannot read the job config %s/app1.json: No such file or directory\n" % tmp_path


def test_a_retention_run_that_fails_part_way_makes_the_next_backup_count_again():
    # The policy pass may have removed snapshots before a later pass failed: the old count is no longer known.
    state = br.forget_state({"snapshots": 40, "snapshots_known": True}, 1700000000, False, None)
    assert state["snapshots_known"] is False
    assert br.forget_state(state, 1700000100, True, 12)["snapshots_known"] is True


# --- backup now with a tag -------------------------------------------------------------------------------------


def test_backup_command_with_a_hand_tag(tmp_path):
    config = make_config(tmp_path, tags=["app1"])
    argv = br.backup_command(config, tag="pre-update")
    assert argv[argv.index("--tag") : argv.index("--exclude")] == ["--tag", "keepdata-job=app1", "--tag", "app1", "--tag", "pre-update"]
    assert br.backup_command(config, tag="") == br.backup_command(config)


def test_run_with_a_tag_from_the_template_unit(tmp_path):
    config = make_config(tmp_path)
    jobs = write_job(tmp_path, config, failures=0)
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    # ExecStart=... run app1 --tag %i of keepdata-backup-app1@pre\x2dupdate.service
    assert br.main(["run", "app1", "--tag", "pre\\x2dupdate", "--config-dir", jobs], ctx=ctx) == 0
    [argv] = fake.argvs("backup")
    assert argv == br.backup_command(config, tag="pre-update")
    assert "backup app1: backup now, tagged pre-update\n" in ctx.out.getvalue()
    state = read_state(config)
    assert (state["last_exit_status"], state["consecutive_failures"]) == (0, 0)
    # Without --tag, no extra tag.
    fake = FakeRun()
    assert br.main(["run", "app1", "--config-dir", jobs], ctx=context(tmp_path, fake)) == 0
    assert "pre-update" not in fake.argvs("backup")[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "app1", "--tag", "pre\\x20update"], "backup app1: error: invalid --tag 'pre update': a tag is 1 to 64 letters"),
        (["run", "app1", "--tag", "keepdata-job=app2"], "backup app1: error: invalid --tag 'keepdata-job=app2': keepdata-job=... is the tag of a job"),
        (["run", "app1", "--tag", "a", "--tag", "b"], "backup app1: error: give --tag once"),
        (["forget", "app1", "--tag", "a"], "forget app1: error: --tag is an option of run only"),
        (["drill", "app1", "--tag", "a"], "drill app1: error: --tag is an option of run only"),
    ],
)
def test_a_bad_tag_fails_before_anything_runs(tmp_path, argv, message):
    config = make_config(tmp_path)
    jobs = write_job(tmp_path, config, failures=0)
    before = read_state(config)
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.main(argv + ["--config-dir", jobs], ctx=ctx) == 1
    assert message in ctx.err.getvalue()
    assert fake.calls == []
    assert read_state(config) == before  # not a failed backup: nothing ran


# --- restore drills: the pure part -----------------------------------------------------------------------------

# restic 0.14's ls --json, as measured: the snapshot first, then the nodes (struct_type); later versions say
# message_type instead. A name that is not UTF-8 comes out with U+FFFD.
LS_SNAPSHOT = {"time": "2026-11-30T04:00:00Z", "tree": "t", "paths": ["/srv/app1"], "hostname": "web1", "id": "aaaa1111" * 8, "struct_type": "snapshot"}


def ls_node(path, kind="file", size=None, key="struct_type"):
    node = {"name": path.rsplit("/", 1)[-1], "type": kind, "path": path, "uid": 0, "gid": 0, "mode": 420, key: "node"}
    if size is not None:
        node["size"] = size
    return node


def ls_text(*nodes, snapshot=True):
    lines = ([LS_SNAPSHOT] if snapshot else []) + list(nodes)
    return "".join(json.dumps(line) + "\n" for line in lines)


def test_read_ls_listing_keeps_regular_files_with_their_sizes():
    text = ls_text(
        ls_node("/srv", "dir"),
        ls_node("/srv/app1", "dir"),
        ls_node("/srv/app1/a.txt", size=12),
        ls_node("/srv/app1/empty", size=0),
        ls_node("/srv/app1/no-size-key"),
        ls_node("/srv/app1/link", "symlink"),
        ls_node("/srv/app1/fifo", "fifo"),
        ls_node("/srv/app1/bad\ufffd.txt", size=1),
        ls_node("/srv/app1/new-style", size=5, key="message_type"),
        ls_node("/srv/app1/st*r [1].txt", size=3),
        ls_node("/srv/app1/nl\nline", size=2),
    )
    files, unnamed = br.read_ls_listing(io.StringIO(text))
    assert files == [
        ("/srv/app1/a.txt", 12),
        ("/srv/app1/empty", 0),
        ("/srv/app1/no-size-key", 0),
        ("/srv/app1/new-style", 5),
        ("/srv/app1/st*r [1].txt", 3),
        ("/srv/app1/nl\nline", 2),
    ]
    assert unnamed == 1
    assert br.read_ls_listing(io.StringIO(ls_text())) == ([], 0)
    assert br.read_ls_listing(io.StringIO("\n\n")) == ([], 0)
    # The snapshot line never counts as a file, even one that looks like it.
    assert br.parse_ls_line(json.dumps(dict(LS_SNAPSHOT, type="file", path="/x", size=1))) is None
    with pytest.raises(shared.JobError, match="restic ls printed a line that is not JSON"):
        br.read_ls_listing(io.StringIO(ls_text(ls_node("/srv/a", size=1)) + "Warning: something\n"))


FILES = [("/srv/app1/f%03d" % number, 100) for number in range(200)]


def seeded(seed):
    return random.Random(seed)  # noqa: S311 - a repeatable sample in tests, not a secret


def test_sample_by_count():
    sample = br.choose_sample(FILES, 20, 0, seeded(1))
    assert len(sample) == 20 and len(set(sample)) == 20
    assert set(sample) <= set(FILES)
    assert sample == sorted(sample, key=FILES.index)  # the listing's order
    assert br.choose_sample(FILES, 20, 0, seeded(1)) == sample  # seeded: the same sample
    assert br.choose_sample(FILES, 20, 0, seeded(2)) != sample
    # More asked than there are: all of them.
    assert br.choose_sample(FILES[:5], 20, 0, seeded(1)) == FILES[:5]
    assert br.choose_sample([], 20, 0, seeded(1)) == []
    assert br.choose_sample(FILES, 0, 0, seeded(1)) == []


def test_samples_differ_from_drill_to_drill():
    seen = {tuple(br.choose_sample(FILES, 3, 0, seeded(seed))) for seed in range(20)}
    assert len(seen) > 15
    # The runner's own randomness, when no test gives one.
    assert isinstance(br.Context().rng, random.SystemRandom)
    assert len(br.choose_sample(FILES, 3)) == 3


def test_sample_by_share_of_bytes():
    # 200 files of 100 bytes: 5% is 1000 bytes, 10 files.
    sample = br.choose_sample(FILES, 0, 5, seeded(3))
    assert len(sample) == 10 and sum(size for _path, size in sample) == 1000
    # 5.5% is 1100 bytes: 11 files; a share that falls inside a file takes that file (reached, not approached).
    assert len(br.choose_sample(FILES, 0, 5.5, seeded(3))) == 11
    assert len(br.choose_sample(FILES, 0, 5.2, seeded(3))) == 11
    assert br.choose_sample(FILES, 0, 100, seeded(3)) == FILES
    # A tiny share: still one file. Only empty files: one file.
    assert len(br.choose_sample(FILES, 0, 0.001, seeded(3))) == 1
    assert len(br.choose_sample([("/e1", 0), ("/e2", 0)], 0, 50, seeded(3))) == 1
    # Sizes differ: the sample's bytes reach the share, and without its last pick they would not.
    mixed = [("/m%d" % n, size) for n, size in enumerate([5000, 10, 10, 10, 3000, 7, 1, 900, 80, 20] * 3)]
    total = sum(size for _path, size in mixed)
    for seed in range(30):
        rng = seeded(seed)
        sample = br.choose_sample(mixed, 0, 20, rng)
        picked = sum(size for _path, size in sample)
        assert picked >= total * 0.2
        order = seeded(seed).sample(range(len(mixed)), len(mixed))
        chosen = [mixed[i] for i in order[: len(sample)]]
        assert sorted(chosen, key=mixed.index) == sample
        assert sum(size for _path, size in chosen[:-1]) < total * 0.2
    # The share wins over the count when both are given (the plan gives one of them).
    assert len(br.choose_sample(FILES, 150, 1, seeded(3))) == 2


def test_sample_is_capped_at_1000_files():
    many = [("/srv/f%05d" % number, 1) for number in range(5000)]
    assert br.MAX_DRILL_FILES == 1000
    assert len(br.choose_sample(many, 100000, 0, seeded(1))) == 1000
    assert len(br.choose_sample(many, 0, 100, seeded(1))) == 1000
    assert len(br.choose_sample(many, 0, 50, seeded(1), limit=7)) == 7


def test_include_batches_keep_the_command_line_short():
    paths = ["/srv/app1/%s" % ("x" * 90 + "%03d" % number) for number in range(100)]
    assert br.include_batches(paths) == [paths]
    cost = len("--include") + len(paths[0]) + 2
    batches = br.include_batches(paths, budget=cost * 30)
    assert [len(batch) for batch in batches] == [30, 30, 30, 10]
    assert [path for batch in batches for path in batch] == paths
    # A path longer than the budget still goes, alone.
    assert br.include_batches(["/" + "y" * 500, "/z"], budget=100) == [["/" + "y" * 500], ["/z"]]
    assert br.include_batches([]) == []


def test_restore_and_check_commands(tmp_path):
    config = make_config(tmp_path)
    sid = "aaaa1111" * 8
    assert shared.ls_command(config, sid) == ["restic", "-o", "s3.bucket-lookup=path", "ls", "--json", sid]
    assert shared.restore_command(config, sid, "/var/lib/kd/.drill-app1.x/restore", ["/srv/a b", "/srv/q?[1]"], ["--retry-lock", "5m"]) == [
        "restic",
        "-o",
        "s3.bucket-lookup=path",
        "restore",
        "--retry-lock",
        "5m",
        sid,
        "--target",
        "/var/lib/kd/.drill-app1.x/restore",
        "--verify",
        "--include",
        "/srv/a b",
        "--include",
        "/srv/q\\?\\[1]",
    ]
    assert br.check_command(config, 3, 12) == ["restic", "-o", "s3.bucket-lookup=path", "check", "--read-data-subset=3/12"]
    assert br.check_command(make_config(tmp_path, restic_options=[]), 12, 12, ["--retry-lock", "5m"]) == [
        "restic",
        "check",
        "--retry-lock",
        "5m",
        "--read-data-subset=12/12",
    ]


def test_restored_problems_look_at_each_file(tmp_path):
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "ok").write_bytes(b"12345")
    (tmp_path / "srv" / "short").write_bytes(b"12")
    (tmp_path / "srv" / "dir").mkdir()
    os.symlink("ok", str(tmp_path / "srv" / "link"))
    sample = [("/srv/ok", 5), ("/srv/short", 5), ("/srv/missing", 1), ("/srv/dir", 0), ("/srv/link", 5)]
    assert br.restored_problems(str(tmp_path), sample) == [
        "/srv/short: 2 bytes restored, 5 in the snapshot",
        "/srv/missing: missing after the restore",
        "/srv/dir: not a regular file after the restore",
        "/srv/link: not a regular file after the restore",
    ]
    assert br.restored_problems(str(tmp_path), [("/srv/ok", 5)]) == []


def test_subset_rotation_and_drill_state():
    assert [br.next_subset({"drill_next_subset": k}, 12) for k in (1, 5, 12)] == [1, 5, 12]
    # Out of range (N was lowered, or nonsense in the state): back to 1.
    assert [br.next_subset(state, 12) for state in ({}, None, {"drill_next_subset": 13}, {"drill_next_subset": 0}, {"drill_next_subset": "x"})] == [1] * 5
    first = br.drill_state({}, 1000.0, 1030.5, True, files=20, size=4096, subset=1, subsets=3)
    assert (first["last_drill"], first["last_drill_success"], first["drill_exit_status"], first["drill_duration"]) == (1000, 1000, 0, 30.5)
    assert (first["drill_files_checked"], first["drill_bytes_checked"], first["drill_subset_checked"], first["drill_next_subset"]) == (20, 4096, 1, 2)
    second = br.drill_state(first, 2000.0, 2001.0, True, subset=2, subsets=3)
    third = br.drill_state(second, 3000.0, 3001.0, True, subset=3, subsets=3)
    assert (second["drill_next_subset"], third["drill_next_subset"], third["drill_subset_checked"]) == (3, 1, 3)
    # A failure: counted, last success kept, and the rotation stays where it is.
    failed = br.drill_state(third, 4000.0, 4002.0, False, files=3, size=10)
    again = br.drill_state(failed, 5000.0, 5002.0, False)
    assert (again["last_drill"], again["last_drill_success"], again["drill_exit_status"], again["drill_consecutive_failures"]) == (5000, 3000, 1, 2)
    assert (again["drill_next_subset"], again["drill_subset_checked"]) == (1, 3)
    assert (failed["drill_files_checked"], again["drill_files_checked"]) == (3, 0)
    assert br.drill_state(again, 6000.0, 6001.0, True)["drill_consecutive_failures"] == 0
    # A drill that checks nothing leaves the rotation alone; the backup's own keys are untouched.
    assert br.drill_state({"drill_next_subset": 4, "consecutive_failures": 2}, 1.0, 2.0, True) == dict(
        shared.STATE_DEFAULTS, drill_next_subset=4, consecutive_failures=2, last_drill=1, last_drill_success=1, drill_duration=1.0
    )


# --- restore drills: a run ---------------------------------------------------------------------------------------


class FakeRestic:
    """restic ls and restore of one snapshot ({path: content}): ls writes the listing where the runner asks, and
    restore makes the included files under --target, as restic does; ``damage`` changes what it restores."""

    def __init__(self, files, damage=None):
        self.files = dict(files)
        self.damage = dict(damage or {})
        self.targets, self.modes, self.listings = [], [], []

    def ls(self, argv, kwargs):
        nodes = [ls_node("/srv", "dir")] + [ls_node(path, size=len(body)) for path, body in self.files.items()]
        kwargs["stdout"].write(ls_text(*nodes).encode())
        self.listings.append((kwargs["stdout"].name, stat.S_IMODE(os.fstat(kwargs["stdout"].fileno()).st_mode)))
        return done(stderr="")

    def restore(self, argv, kwargs):
        target = argv[argv.index("--target") + 1]
        self.targets.append(target)
        self.modes.append(stat.S_IMODE(os.stat(os.path.dirname(target)).st_mode))
        for index, arg in enumerate(argv):
            if arg == "--include":
                path = re.sub(r"\\(.)", r"\1", argv[index + 1])
                body = self.damage.get(path, self.files[path])
                if body is None:
                    continue
                full = os.path.join(target, path.lstrip("/"))
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as handle:
                    handle.write(body)
        return done(stdout="restoring <Snapshot aaaa1111 of [/srv/app1]> to %s\nverifying files in %s\n" % (target, target))


SNAPSHOT_FILES = {"/srv/app1/f%02d [x]*.txt" % number: b"x" * (number + 1) for number in range(30)}


def drill_config(tmp_path, **drill):
    settings = {"sample_files": 5, "sample_percent": 0, "check_subsets": 3}
    settings.update(drill)
    return make_config(tmp_path, drill=settings)


def drill_run(restic=None, **answers):
    restic = restic or FakeRestic(SNAPSHOT_FILES)
    answers.setdefault("ls", restic.ls)
    answers.setdefault("restore", restic.restore)
    answers.setdefault("check", done(stdout="no errors were found\n"))
    return restic, FakeRun(**answers)


def drill_context(tmp_path, fake, seed=7):
    ctx = context(tmp_path, fake)
    ctx.rng = seeded(seed)
    return ctx


def drill_dirs(config):
    return [entry for entry in os.listdir(config["state_dir"]) if entry.startswith(".drill-")]


def test_a_drill_restores_a_sample_verifies_it_and_checks_a_subset(tmp_path):
    config = drill_config(tmp_path)
    restic, fake = drill_run()
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 0
    assert fake.keys() == ["version", "cat", "snapshots", "ls", "restore", "check"]
    sid = "aaaa1111" * 8
    assert fake.argvs("snapshots") == [br.snapshots_command(config)]
    assert fake.argvs("ls") == [shared.ls_command(config, sid)]
    sample = br.choose_sample([(path, len(body)) for path, body in SNAPSHOT_FILES.items()], 5, 0, seeded(7))
    [target] = restic.targets
    assert os.path.dirname(os.path.dirname(target)) == config["state_dir"]
    assert os.path.basename(os.path.dirname(target)).startswith(".drill-app1.") and os.path.basename(target) == "restore"
    assert fake.argvs("restore") == [shared.restore_command(config, sid, target, [path for path, _size in sample])]
    includes = [argv[index + 1] for argv in fake.argvs("restore") for index, arg in enumerate(argv) if arg == "--include"]
    assert len(includes) == 5 and all(arg.endswith(" \\[x]\\*.txt") for arg in includes)
    assert fake.argvs("check") == [["restic", "-o", "s3.bucket-lookup=path", "check", "--read-data-subset=1/3"]]
    # A private directory while restic works in it, gone afterwards; the listing was a private file in it.
    assert restic.modes == [0o700]
    assert drill_dirs(config) == []
    assert [(os.path.dirname(name), mode) for name, mode in restic.listings] == [(os.path.dirname(target), 0o600)]
    for _argv, kwargs in fake.calls:
        assert kwargs["env"]["RESTIC_PASSWORD_FILE"] == PASSWORD_FILE
        assert kwargs["stdin"] == subprocess.DEVNULL
    size = sum(size for _path, size in sample)
    out = ctx.out.getvalue()
    assert "drill app1: snapshot aaaa1111 of 2026-11-30T04:00:00.123456789+00:00: 30 files, 465 B\n" in out
    assert "drill app1: restoring 5 sampled files (%d B) with --verify\n" % size in out
    assert "drill app1: 5 files restored, verified by restic and found with their recorded sizes (%d B)\n" % size in out
    assert "drill app1: restic check --read-data-subset=1/3 done (the repository's data is read in 3 drills)\n" in out
    assert ctx.err.getvalue() == ""
    state = read_state(config)
    assert (state["last_drill"], state["last_drill_success"], state["drill_exit_status"]) == (1700000000, 1700000000, 0)
    assert (state["drill_files_checked"], state["drill_bytes_checked"], state["drill_duration"]) == (5, size, 2.5)
    assert (state["drill_subset_checked"], state["drill_next_subset"], state["drill_consecutive_failures"]) == (1, 2, 0)
    lines = metric_lines(config)
    assert 'keepdata_backup_drill_last_result{backup_job="app1"} 0' in lines
    assert 'keepdata_backup_drill_files_checked{backup_job="app1"} 5' in lines
    assert 'keepdata_backup_drill_bytes_checked{backup_job="app1"} %d' % size in lines
    assert 'keepdata_backup_drill_last_success_timestamp_seconds{backup_job="app1"} 1700000000' in lines
    # The backup's metrics stay in the same file.
    assert 'keepdata_backup_last_exit_status{backup_job="app1"} 0' in lines
    assert not any("subset" in line for line in lines)


def test_the_drill_takes_the_latest_snapshot_and_holds_the_host_lock(tmp_path):
    config = drill_config(tmp_path, check_subsets=0)
    snapshots = [
        snapshot("bbbb2222", "2026-11-29T04:00:00Z", "keepdata-job=app1"),
        snapshot("cccc3333", "2026-11-30T05:00:00+00:00", "keepdata-job=app1"),
        snapshot("dddd4444", "2026-11-30T06:00:00+02:00", "keepdata-job=app1"),
    ]
    held = []
    restic = FakeRestic(SNAPSHOT_FILES)

    def restore(argv, kwargs):
        held.append(lock_is_held(tmp_path))
        return restic.restore(argv, kwargs)

    _restic, fake = drill_run(restic, restore=restore, snapshots=done(stdout=json.dumps(snapshots)))
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 0
    assert fake.argvs("ls")[0][-1] == "cccc3333" * 8
    assert fake.argvs("restore")[0][4] == "cccc3333" * 8
    assert held == [True]
    # No check for this job: the repository's first job reads the data.
    assert "check" not in fake.keys()
    assert "drill app1: no repository check in this job's drill (the repository's first job reads its data)\n" in ctx.out.getvalue()
    state = read_state(config)
    assert (state["drill_next_subset"], state["drill_subset_checked"]) == (1, 0)


def test_subsets_rotate_one_per_drill_and_only_after_a_check_that_passed(tmp_path):
    config = drill_config(tmp_path, check_subsets=3)
    checked = []
    for answer in (done(), done(), done(1, stderr="Pack ID does not match\nFatal: repository contains errors\n"), done(), done(), done()):
        _restic, fake = drill_run(check=answer)
        status = br.cmd_drill(drill_context(tmp_path, fake), config)
        checked.append((fake.argvs("check")[0][-1], status, read_state(config)["drill_next_subset"]))
    assert checked == [
        ("--read-data-subset=1/3", 0, 2),
        ("--read-data-subset=2/3", 0, 3),
        ("--read-data-subset=3/3", 1, 3),  # failed: subset 3 again next time
        ("--read-data-subset=3/3", 0, 1),
        ("--read-data-subset=1/3", 0, 2),
        ("--read-data-subset=2/3", 0, 3),
    ]
    state = read_state(config)
    assert (state["check_exit_status"], state["last_check_success"]) == (0, state["last_check"])
    # N lowered below the next K: start again at 1.
    _restic, fake = drill_run()
    assert br.cmd_drill(drill_context(tmp_path, fake), drill_config(tmp_path, check_subsets=2)) == 0
    assert fake.argvs("check")[0][-1] == "--read-data-subset=1/2"


def test_a_failed_check_fails_the_drill_and_says_what_restic_found(tmp_path):
    config = drill_config(tmp_path)
    stderr = "Pack ID does not match, want 14e8cf87, got fbe4c906\nFatal: repository contains errors\n"
    _restic, fake = drill_run(check=done(1, stdout="read group #1 of 2 data packs\n", stderr=stderr))
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 1
    err = ctx.err.getvalue()
    assert "drill app1: error: restic check reported: Pack ID does not match, want 14e8cf87, got fbe4c906\n" in err
    assert (
        "drill app1: error: restic check --read-data-subset=1/3 failed (exit status 1): damaged (restic check found damage in the repository): "
        "Fatal: repository contains errors\n" in err
    )
    assert "drill app1: error: drill failed after 2.5 s (1 failures in a row)\n" in err
    state = read_state(config)
    # The sample was restored and verified: that much was checked.
    assert (state["drill_exit_status"], state["drill_consecutive_failures"], state["last_drill_success"], state["drill_files_checked"]) == (1, 1, 0, 5)
    assert 'keepdata_backup_drill_last_result{backup_job="app1"} 1' in metric_lines(config)
    assert 'keepdata_backup_drill_consecutive_failures{backup_job="app1"} 1' in metric_lines(config)
    # The repository check has its own outcome (its own alert).
    assert (state["check_exit_status"], state["last_check"], state["last_check_success"]) == (1, int(state["last_drill"]), 0)
    assert 'keepdata_backup_check_last_result{backup_job="app1"} 1' in metric_lines(config)


def test_a_damaged_pack_fails_the_restore_and_names_the_files(tmp_path):
    config = drill_config(tmp_path)
    stderr = "".join("ignoring error for /srv/app1/f%02d: ciphertext verification failed\n" % n for n in range(12)) + "Fatal: There were 12 errors\n"
    restic, fake = drill_run(restore=done(1, stderr=stderr))
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 1
    # The drill's share of the repository is read all the same: here it finds nothing, and the drill still fails.
    assert fake.keys()[-2:] == ["restore", "check"]
    err = ctx.err.getvalue()
    assert (
        "drill app1: error: restic restore --verify failed (exit status 1): Fatal: There were 12 errors; /srv/app1/f00: ciphertext verification failed;" in err
    )
    assert "/srv/app1/f09: ciphertext verification failed; and 2 more\n" in err
    assert "f10" not in err
    assert "drill app1: error: the sample did not restore as recorded, though restic check found no damage in the data it read\n" in err
    assert drill_dirs(config) == []
    state = read_state(config)
    assert (state["drill_exit_status"], state["drill_files_checked"], state["drill_bytes_checked"]) == (1, 0, 0)
    assert (state["check_exit_status"], state["drill_next_subset"]) == (0, 2)


def test_a_sample_that_does_not_restore_and_a_check_that_finds_damage_both_say_so(tmp_path):
    config = drill_config(tmp_path)
    stderr = "ignoring error for /srv/app1/f00: ciphertext verification failed\nFatal: There were 1 errors\n"
    found = "Pack ID does not match, want 14e8cf87, got fbe4c906\nFatal: repository contains errors\n"
    _restic, fake = drill_run(restore=done(1, stderr=stderr), check=done(1, stderr=found))
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 1
    err = ctx.err.getvalue()
    assert "drill app1: error: restic restore --verify failed (exit status 1): Fatal: There were 1 errors" in err
    assert "drill app1: error: restic check --read-data-subset=1/3 failed (exit status 1): damaged (restic check found damage in the repository)" in err
    state = read_state(config)
    assert (state["drill_exit_status"], state["check_exit_status"], state["drill_failure_cause"], state["drill_next_subset"]) == (1, 1, "damaged", 1)


def test_a_sample_that_cannot_be_reached_reads_no_data(tmp_path):
    config = drill_config(tmp_path)
    _restic, fake = drill_run(restore=done(1, stderr="Fatal: unable to open config file: connect: connection refused\n"))
    assert br.cmd_drill(drill_context(tmp_path, fake), config) == 1
    assert "check" not in fake.keys()
    assert read_state(config)["drill_failure_cause"] == "unreachable"


def test_verify_finding_a_difference_fails_the_drill(tmp_path):
    config = drill_config(tmp_path)
    restic = FakeRestic(SNAPSHOT_FILES)

    def restore(argv, kwargs):
        restic.restore(argv, kwargs)
        target = argv[argv.index("--target") + 1]
        return done(
            1,
            stderr="ignoring error for %s/srv/app1/f03: Unexpected content in %s/srv/app1/f03, starting at offset 0\nFatal: There were 1 errors\n"
            % (target, target),
        )

    _restic, fake = drill_run(restic, restore=restore)
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 1
    assert "Fatal: There were 1 errors; /srv/app1/f03: Unexpected content in /srv/app1/f03, starting at offset 0\n" in ctx.err.getvalue()
    assert ".drill-" not in ctx.err.getvalue()
    assert drill_dirs(config) == []


def test_a_file_missing_or_of_another_size_after_the_restore_fails_the_drill(tmp_path):
    config = drill_config(tmp_path, sample_files=30)
    damage = {path: None for path in list(SNAPSHOT_FILES)[:11]}
    damage[list(SNAPSHOT_FILES)[20]] = b"short"
    restic, fake = drill_run(FakeRestic(SNAPSHOT_FILES, damage=damage))
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 1
    [line] = [line for line in ctx.err.getvalue().splitlines() if "restored files" in line]
    assert line.startswith(
        "drill app1: error: 12 of 30 restored files are not as the snapshot recorded them: /srv/app1/f00 [x]*.txt: missing after the restore;"
    )
    assert line.endswith("; and 2 more")
    assert "/srv/app1/f20 [x]*.txt: 5 bytes restored, 21 in the snapshot" not in line  # the 12th problem: past the ten named
    assert fake.keys()[-1] == "check"
    assert drill_dirs(config) == []
    assert read_state(config)["drill_exit_status"] == 1


def test_a_sample_by_share_and_several_restores(tmp_path, monkeypatch):
    config = drill_config(tmp_path, sample_files=0, sample_percent=50, check_subsets=0)
    cost = len("--include") + len(shared.include_pattern(list(SNAPSHOT_FILES)[0])) + 2
    monkeypatch.setattr(br, "INCLUDE_BUDGET", cost * 4)
    restic, fake = drill_run()
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 0
    restores = fake.argvs("restore")
    included = [arg for argv in restores for arg in argv if arg.startswith("/srv/")]
    assert len(restores) == -(-len(included) // 4) > 1
    assert len(set(restic.targets)) == 1
    state = read_state(config)
    assert state["drill_bytes_checked"] >= sum(len(body) for body in SNAPSHOT_FILES.values()) / 2
    assert state["drill_files_checked"] == len(included)
    assert "drill app1: restoring %d sampled files" % len(included) in ctx.out.getvalue()
    assert " with --verify in %d restores\n" % len(restores) in ctx.out.getvalue()


def test_no_snapshot_to_drill(tmp_path):
    config = drill_config(tmp_path)
    _restic, fake = drill_run(snapshots=done(stdout="[]"))
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 1
    assert fake.keys() == ["version", "cat", "snapshots"]
    assert "drill app1: error: no snapshot of this job to drill\n" in ctx.err.getvalue()
    assert read_state(config)["drill_consecutive_failures"] == 1
    assert drill_dirs(config) == []


def test_an_empty_snapshot_passes_with_nothing_restored(tmp_path):
    config = drill_config(tmp_path)
    restic, fake = drill_run(FakeRestic({}))
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 0
    assert fake.keys() == ["version", "cat", "snapshots", "ls", "check"]
    assert "drill app1: warning: the snapshot holds no regular file: nothing to restore (0 files checked)\n" in ctx.err.getvalue()
    state = read_state(config)
    assert (state["drill_exit_status"], state["drill_files_checked"], state["drill_next_subset"]) == (0, 0, 2)


def test_names_restic_cannot_print_are_left_out_of_the_sample(tmp_path):
    config = drill_config(tmp_path, sample_files=1000, check_subsets=0)
    restic = FakeRestic({"/srv/app1/ok": b"1", "/srv/app1/bad\ufffd": b"2"})
    _restic, fake = drill_run(restic)
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 0
    assert [arg for arg in fake.argvs("restore")[0] if arg.startswith("/srv/")] == ["/srv/app1/ok"]
    assert "drill app1: warning: 1 files are left out of the sample: restic does not print their names exactly (not UTF-8)\n" in ctx.err.getvalue()


def test_a_failing_ls_fails_the_drill(tmp_path):
    config = drill_config(tmp_path)
    _restic, fake = drill_run(ls=done(1, stderr="Fatal: wrong password or no key found\n"))
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 1
    assert (
        "drill app1: error: restic ls failed (exit status 1): wrong_password (wrong repository password): Fatal: wrong password or no key found\n"
        in ctx.err.getvalue()
    )
    assert drill_dirs(config) == []


def test_a_drill_stopped_by_systemd_still_removes_its_directory(tmp_path):
    config = drill_config(tmp_path)
    restic = FakeRestic(SNAPSHOT_FILES)

    def restore(argv, kwargs):
        restic.restore(argv, kwargs)
        raise br.Terminated("stopped by signal 15 (unit stopped or timed out)")

    _restic, fake = drill_run(restic, restore=restore)
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 1
    assert not os.path.exists(restic.targets[0])
    assert drill_dirs(config) == []
    assert "drill app1: error: stopped by signal 15" in ctx.err.getvalue()
    assert read_state(config)["drill_exit_status"] == 1


def test_what_an_interrupted_drill_left_is_removed_first(tmp_path):
    config = drill_config(tmp_path)
    os.makedirs(config["state_dir"])
    left = os.path.join(config["state_dir"], ".drill-app1.k3j4l5")
    os.makedirs(os.path.join(left, "restore", "srv", "locked"))
    os.chmod(os.path.join(left, "restore", "srv", "locked"), 0o500)
    os.chmod(os.path.join(left, "restore", "srv"), 0o500)
    other = os.path.join(config["state_dir"], ".drill-app10.a1b2c3")  # job app10's
    os.makedirs(other)
    _restic, fake = drill_run()
    ctx = drill_context(tmp_path, fake)
    assert br.cmd_drill(ctx, config) == 0
    assert not os.path.exists(left) and os.path.isdir(other)
    assert "drill app1: removing .drill-app1.k3j4l5, left by an interrupted drill\n" in ctx.out.getvalue()


def test_a_drill_after_a_killed_restic_unlocks_first_and_marks_its_own_restic_runs(tmp_path):
    config = drill_config(tmp_path)
    os.makedirs(config["state_dir"])
    open(shared.unclean_path(config), "w").close()
    present = []
    restic = FakeRestic(SNAPSHOT_FILES)

    def restore(argv, kwargs):
        present.append(os.path.exists(shared.unclean_path(config)))
        return restic.restore(argv, kwargs)

    _restic, fake = drill_run(restic, restore=restore, check=done(-9))
    assert br.cmd_drill(drill_context(tmp_path, fake), config) == 1
    assert fake.keys()[:2] == ["unlock", "version"]
    assert present == [True]
    # check killed by a signal: its lock may be left, so the marker stays for the next run.
    assert os.path.exists(shared.unclean_path(config))


def test_a_lock_error_on_restore_or_check_unlocks_and_retries_once(tmp_path):
    config = drill_config(tmp_path)
    restic = FakeRestic(SNAPSHOT_FILES)
    _restic, fake = drill_run(restic, restore=[done(1, stderr=LOCKED), restic.restore], check=[done(1, stderr=LOCKED), done()])
    assert br.cmd_drill(drill_context(tmp_path, fake), config) == 0
    assert fake.keys() == ["version", "cat", "snapshots", "ls", "restore", "unlock", "restore", "check", "unlock", "check"]


def test_restic_016_gets_retry_lock_on_restore_and_check_and_restores_the_sample_sparse(tmp_path):
    config = drill_config(tmp_path)
    _restic, fake = drill_run(version=done(stdout=VERSION_016))
    assert br.cmd_drill(drill_context(tmp_path, fake), config) == 0
    assert fake.argvs("restore")[0][3:7] == ["restore", "--retry-lock", "5m", "--sparse"]
    assert "--sparse" not in fake.argvs("check")[0]
    assert fake.argvs("check")[0][3:6] == ["check", "--retry-lock", "5m"]
    assert "--retry-lock" not in fake.argvs("ls")[0] + fake.argvs("snapshots")[0]


def test_drill_from_the_command_line_and_a_job_config_without_drill_settings(tmp_path):
    config = make_config(tmp_path)
    del config["drill"]
    jobs = write_job(tmp_path, config, failures=0)
    _restic, fake = drill_run()
    ctx = drill_context(tmp_path, fake)
    assert br.main(["drill", "app1", "--config-dir", jobs], ctx=ctx) == 0
    # The defaults: 20 files, no check.
    assert len([arg for arg in fake.argvs("restore")[0] if arg == "--include"]) == 20
    assert "check" not in fake.keys()
    ctx = context(tmp_path, FakeRun())
    assert br.main(["drill", "app2", "--config-dir", jobs], ctx=ctx) == 1
    assert "drill app2: error: cannot read the job config" in ctx.err.getvalue()
    assert shared.with_defaults({})["services"] == []


def test_a_failed_drill_notifies_and_never_arms_the_retry_timer(tmp_path):
    got_log, got_vars = tmp_path / "log.txt", tmp_path / "vars.txt"
    notify = 'cat > %s; echo "$KEEPDATA_BACKUP_JOB $KEEPDATA_BACKUP_UNIT $KEEPDATA_BACKUP_KIND $KEEPDATA_BACKUP_FAILURES" > %s' % (got_log, got_vars)
    config = make_config(tmp_path, notify_command=notify)
    jobs = write_job(tmp_path, config, failures=1)  # the backup failed once too: its count is not the drill's
    write_state(config, consecutive_failures=1, drill_consecutive_failures=2)
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.main(["failed", "app1:drill", "--config-dir", jobs], ctx=ctx) == 0
    assert fake.argvs("journalctl") == [["journalctl", "-u", "keepdata-backup-app1-drill.service", "-n", "30", "--no-pager", "-o", "cat"]]
    assert "systemctl" not in fake.keys()
    assert "failed app1:drill: keepdata-backup-app1-drill.service failed (2 failures in a row), cause: unknown\n" in ctx.out.getvalue()
    assert got_log.read_text() == "line one\nline two\n"
    assert got_vars.read_text() == "app1 keepdata-backup-app1-drill.service drill 2\n"


# --- run_watching: restic's stderr lines handed over while it runs -----------------------------------------------

SPEAKER = """
import sys, time
sys.stdout.write("out\\n"); sys.stdout.flush()
sys.stderr.write("first\\n"); sys.stderr.flush()
time.sleep(float(sys.argv[1]))
sys.stderr.write("second\\n"); sys.stderr.flush()
sys.exit(int(sys.argv[2]))
"""


def test_run_watching_hands_each_stderr_line_over_while_the_command_runs():
    seen = []
    started = time.monotonic()
    proc = br.run_watching([sys.executable, "-c", SPEAKER, "1.5", "3"], lambda line: seen.append((line, time.monotonic() - started)))
    assert proc.returncode == 3 and proc.stdout == "out\n" and proc.stderr == "first\nsecond\n"
    assert [line for line, _at in seen] == ["first", "second"]
    # The first line came before the command's wait, not when it ended.
    assert seen[0][1] < 1.0 <= seen[1][1], seen


def test_run_watching_past_its_timeout_kills_the_command_and_keeps_what_it_said():
    seen = []
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        br.run_watching([sys.executable, "-c", SPEAKER, "30", "0"], seen.append, timeout=1)
    assert time.monotonic() - started < 10
    assert raised.value.stderr == "first\n" and raised.value.output == "out\n" and seen == ["first"]


def test_run_watching_check_raises_on_failure_like_subprocess_run():
    with pytest.raises(subprocess.CalledProcessError):
        br.run_watching([sys.executable, "-c", "raise SystemExit(2)"], lambda line: None, check=True)


def test_run_watching_stopped_by_a_signal_kills_the_command(tmp_path):
    # The runner's SIGTERM handler raises Terminated inside the wait: restic must not outlive the runner.
    pid_file = tmp_path / "pid"
    script = "import os, time; open(%r, 'w').write(str(os.getpid())); time.sleep(30)" % str(pid_file)

    def on_line(line):
        pass

    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGUSR1))
    previous = signal.signal(signal.SIGUSR1, br._terminate)
    try:
        timer.start()
        with pytest.raises(br.Terminated):
            br.run_watching([sys.executable, "-c", script], on_line)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_restic_retry_line_reaches_the_journal_before_restic_ends(tmp_path):
    # The real run_watching, a stand-in restic that retries for a while: the journal has restic's line at once.
    config = make_config(tmp_path)
    retry = "Load(<config/0000000000>, 0, 0) returned error, retrying after 1.1s: dial tcp 127.0.0.1:1: connect: connection refused"
    script = "import sys, time; sys.stderr.write(%r + '\\n'); sys.stderr.flush(); time.sleep(1.5)" % retry
    out, err = io.StringIO(), io.StringIO()

    class Stamped(io.StringIO):
        def write(self, text):
            err.write("%.2f %s" % (time.monotonic() - started, text) if text.strip() else text)
            return len(text)

    ctx = br.Context(environ={"PATH": os.environ["PATH"]}, out=out, err=Stamped())
    job = br.Job(ctx, "backup", config)
    started = time.monotonic()
    proc = br.restic(job, dict(os.environ), [sys.executable, "-c", script])
    assert proc.returncode == 0 and time.monotonic() - started >= 1.5
    (line,) = [line for line in err.getvalue().splitlines() if "restic is retrying" in line]
    at, text = line.split(" ", 1)
    assert float(at) < 1.0 and text == "backup app1: warning: restic is retrying: " + retry, line
