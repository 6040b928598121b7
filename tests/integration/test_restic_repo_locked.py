# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Modules restic_repo and backup_info look at a repository without taking a lock, with the real restic on the RGW.

Its look (``restic cat config --no-lock``) writes nothing, so a check-mode run sends no write, and it opens a
repository that another restic holds locked exclusively: the retention timer's ``restic check`` or ``prune``, which
once failed every run of the backup role's repository task while it lasted. backup_info, documented as read-only,
lists the snapshots and their sizes the same way: no lock object written, no failure under an exclusive lock.
"""

import contextlib
import json
import os
import subprocess
import tempfile
import time

import pytest
from conftest import WRITE_METHODS, RecordingProxy, owner_restic_env, restic_repo_args, run_module

pytestmark = pytest.mark.rgw

PASSWORD = "locked-repository-password"  # noqa: S105 - the test repository's password
RECOVERY = "locked-repository-recovery"  # noqa: S105 - the test recovery key's password


def repo_args(rgw, endpoint, bucket):
    return restic_repo_args(rgw, endpoint, bucket, PASSWORD, RECOVERY)


def test_a_repository_locked_exclusively_opens_and_check_mode_writes_nothing(rgw, recording_proxy, existing_bucket):
    bucket = existing_bucket
    assert run_module("restic_repo", repo_args(rgw, rgw.endpoint, bucket))["initialized"] is True

    result = run_module("restic_repo", repo_args(rgw, recording_proxy.url, bucket), check_mode=True)
    assert not result.get("failed") and result["changed"] is False, result
    requests = recording_proxy.take()
    assert requests and not [str(r) for r in requests if r.method in WRITE_METHODS], [str(r) for r in requests]

    with exclusive_lock(rgw, bucket):
        result = run_module("restic_repo", repo_args(rgw, rgw.endpoint, bucket))
        assert not result.get("failed") and result["changed"] is False, result


@contextlib.contextmanager
def exclusive_lock(rgw, bucket):
    """Another restic (check) holds the repository's exclusive lock: once its lock is written, its server stops
    answering, so it waits, holding the lock, until the block ends; the lock must be the only one throughout."""
    holder = RecordingProxy(rgw.endpoint)
    holder.go_away_after(lambda r: r.method == "PUT" and "/locks/" in r.path)
    with tempfile.TemporaryDirectory() as work:
        env = owner_restic_env(rgw, work, PASSWORD)
        argv = ["restic", "-o", "s3.bucket-lookup=path", "-r", "s3:%s/%s/repo" % (holder.url, bucket), "check"]
        check = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        try:
            seen = []
            deadline = time.monotonic() + 30
            while not [r for r in seen if r.method == "PUT" and "/locks/" in r.path] and time.monotonic() < deadline:
                seen += holder.take(at_least=1, wait=1)
            assert [r for r in seen if r.method == "PUT" and "/locks/" in r.path], [str(r) for r in seen]
            assert check.poll() is None, "restic check ended: no lock is held"
            yield
            listed = rgw.client().list_objects_v2(Bucket=bucket, Prefix="repo/locks/").get("KeyCount")
            assert listed == 1 and check.poll() is None, "the exclusive lock was not held throughout"
        finally:
            check.kill()
            check.wait(timeout=30)
            holder.close()


def test_backup_info_lists_a_repository_locked_exclusively_and_writes_no_lock(tmp_path, rgw, recording_proxy, existing_bucket):
    bucket = existing_bucket
    assert run_module("restic_repo", repo_args(rgw, rgw.endpoint, bucket))["initialized"] is True
    data = tmp_path / "data"
    data.mkdir()
    (data / "file.txt").write_text("some data\n")
    (tmp_path / "password").write_text(PASSWORD)
    (tmp_path / "s3").write_text("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (rgw.owner["access_key"], rgw.owner["secret_key"]))
    env = dict(
        os.environ,
        RESTIC_PASSWORD_FILE=str(tmp_path / "password"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "s3"),
        RESTIC_CACHE_DIR=str(tmp_path / "cache"),
    )
    repository = "s3:%s/%s/repo" % (rgw.endpoint, bucket)
    backup = ["restic", "-o", "s3.bucket-lookup=path", "-r", repository, "backup", "--host", "web1", "--tag", "keepdata-job=app", str(data)]
    assert subprocess.run(backup, env=env, capture_output=True, check=False, timeout=120).returncode == 0  # noqa: S603
    (tmp_path / "jobs").mkdir()
    job = {
        "name": "app",
        "repository": "s3:%s/%s/repo" % (recording_proxy.url, bucket),
        "repository_id": "0123456789ab",
        "restic_options": ["-o", "s3.bucket-lookup=path"],
        "host": "web1",
        "paths": [str(data)],
        "state_dir": str(tmp_path / "state"),
        "cache_dir": str(tmp_path / "cache"),
        "password_file": str(tmp_path / "password"),
        "s3_credentials_file": str(tmp_path / "s3"),
    }
    (tmp_path / "jobs" / "app.json").write_text(json.dumps(job))
    with exclusive_lock(rgw, bucket):
        result = run_module("backup_info", {"job": "app", "config_dir": str(tmp_path), "sizes": "all"})
    assert not result.get("failed") and len(result["snapshots"]) == 1 and result["snapshots"][0]["size"] > 0, result
    requests = recording_proxy.take()
    assert requests and not [str(r) for r in requests if r.method in WRITE_METHODS], [str(r) for r in requests]
