# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Module backup_restore with real restic on the real RGW (issue 32, items 3 and 4): its preview changes nothing on
the host, and a restore whose staged copy fails restic's verification (a data pack silently damaged in the bucket)
leaves every destination as it was, with no staging directory and nothing moved aside. The module runs as Ansible
runs it (conftest.run_module) on a job that the runner backed up (test_backup_runner_failures.Job)."""

from __future__ import annotations

import hashlib
import os

from conftest import damage_largest_pack, run_module
from test_backup_runner_failures import Job, s3_repository


def listing(root, leave_out=()):
    """Every entry below ``root`` (names, types, modes, sizes, sha256 of files), ``leave_out`` directories skipped."""
    entries = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(name for name in dirs if os.path.join(directory, name) not in leave_out)
        for name in dirs + sorted(files):
            path = os.path.join(directory, name)
            info = os.lstat(path)
            digest = ""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            entries.append((os.path.relpath(path, root), oct(info.st_mode), info.st_size, digest))
    return entries


def backed_up_job(tmp_path, rgw, bucket):
    """A job of 30 files of random bytes backed up once by the runner; its secrets as the files the module reads."""
    job = Job(tmp_path, s3_repository(rgw, bucket), rgw.owner["access_key"], rgw.owner["secret_key"])
    assert job.restic("init").returncode == 0
    for index in range(1, 31):
        (tmp_path / "data" / ("upload-%02d.bin" % index)).write_bytes(os.urandom(index * 2048))
    job.save(password_file=str(job.credentials / "restic-password"), s3_credentials_file=str(job.credentials / "s3-credentials"))
    proc, state, _seconds = job.run()
    assert proc.returncode == 0 and state["last_exit_status"] == 0, proc.stdout + proc.stderr
    return job


def restore(job, **options):
    args = {"job": "app", "config_dir": str(job.root), "move_aside": True, **options}
    check_mode = args.pop("check_mode", False)
    return run_module("backup_restore", args, check_mode=check_mode, env=dict(os.environ, HOME=str(job.root)))


def test_a_preview_changes_nothing_and_a_restore_that_fails_verification_leaves_every_destination(tmp_path, rgw, bucket):
    job = backed_up_job(tmp_path, rgw, bucket)
    # Today's data differs from the snapshot: a restore would move it aside.
    (tmp_path / "data" / "upload-01.bin").write_bytes(b"changed since the backup\n")
    (tmp_path / "data" / "new-today.txt").write_text("written after the backup\n")
    cache = str(tmp_path / "cache")  # restic's own cache, which any restic command may refresh
    before = listing(tmp_path, leave_out=(cache,))

    preview = restore(job, check_mode=True)
    assert not preview.get("failed") and preview["changed"] is True, preview
    assert listing(tmp_path, leave_out=(cache,)) == before, "the preview changed the host"

    damage_largest_pack(rgw.client(), bucket, "restic/web1")

    result = restore(job)
    assert result.get("failed") is True, result
    assert "restic restore" in result["msg"] and "ciphertext verification failed" in result["msg"], result["msg"]
    # Every destination as it was: today's data in place, nothing staged or moved aside beside it.
    assert listing(tmp_path, leave_out=(cache,)) == before, "the failed restore changed the host"
    assert result.get("moved_aside", []) == [] and result.get("restored", []) == [], result
