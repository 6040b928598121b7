# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore drills with real restic on the real RGW (issue 32, item 8): a share of the bytes as the sample
(``backup_drill_sample: "5%"``), and a drill that fails on its sample alone, in a job whose drill reads no
repository data (only the repository's first job runs ``restic check``): the damage is found by restoring, not
by a check. The runner runs as its units run it (test_backup_runner_failures.Job)."""

from __future__ import annotations

import os

from conftest import damage_largest_pack
from test_backup_runner_failures import Job, s3_repository

FILES = 40


def backed_up(tmp_path, rgw, bucket, drill):
    """A job of FILES files of 1 to FILES KiB of random bytes (restic cannot compress them: its data packs hold
    them, not its cached tree packs), with the drill settings ``drill``, backed up once: (job, sizes)."""
    job = Job(tmp_path, s3_repository(rgw, bucket), rgw.owner["access_key"], rgw.owner["secret_key"])
    assert job.restic("init").returncode == 0
    (tmp_path / "data" / "file.txt").unlink()
    sizes = {}
    for index in range(1, FILES + 1):
        path = tmp_path / "data" / ("upload-%02d.bin" % index)
        path.write_bytes(os.urandom(index * 1024))
        sizes[str(path)] = index * 1024
    job.save(drill=drill)
    proc, state, _seconds = job.run()
    assert proc.returncode == 0 and state["last_exit_status"] == 0, proc.stdout + proc.stderr
    return job, sizes


def test_a_drill_of_five_percent_restores_files_until_their_bytes_reach_five_percent(tmp_path, rgw, bucket):
    job, sizes = backed_up(tmp_path, rgw, bucket, {"sample_files": 0, "sample_percent": 5, "check_subsets": 0})
    proc, state, _seconds = job.run("drill")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and state["drill_exit_status"] == 0, log
    total, wanted = sum(sizes.values()), sum(sizes.values()) * 5 / 100
    files, size = state["drill_files_checked"], state["drill_bytes_checked"]
    # Files drawn at random until their bytes reach 5 % of all: at least that share, and no file more than needed.
    assert wanted <= size < wanted + max(sizes.values()), (files, size, total)
    assert 1 <= files < FILES, (files, size)
    assert "restoring %d sampled files" % files in log and "%d files restored, verified by restic" % files in log, log
    assert "no repository check in this job's drill" in log, log


def test_a_drill_fails_on_its_sample_alone_when_a_pack_is_damaged(tmp_path, rgw, bucket):
    # Every file in the sample, and no repository check in this job's drill: only the restore can find the damage.
    job, _sizes = backed_up(tmp_path, rgw, bucket, {"sample_files": FILES, "sample_percent": 0, "check_subsets": 0})
    damage_largest_pack(rgw.client(), bucket, "restic/web1")

    proc, state, _seconds = job.run("drill")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1 and state["drill_exit_status"] == 1 and state["drill_consecutive_failures"] == 1, log
    assert "drill app: error: restic restore --verify failed" in log, log
    assert "no repository check in this job's drill" not in log and "restic check" not in log, log
    # The backup's own state is untouched by the failed drill; the next drill starts from a clean work directory.
    assert state["last_exit_status"] == 0 and state["drill_files_checked"] == 0, state
    assert not list((tmp_path / "state").glob(".drill-*")), "the drill left its work directory"
