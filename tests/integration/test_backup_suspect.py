"""Suspect snapshots with real restic on the real RGW (issue 27, part B): a host whose data is emptied keeps backing
up, and retention must not let the last good snapshot go; a new host does not back up its empty sources over
snapshots it never restored.

Past days are seeded with ``restic backup --time``, tagged as the runner tags its snapshots (and its suspect ones);
the runner then runs as its units run it (test_backup_runner_failures.Job).
"""

from __future__ import annotations

import datetime
import json
import shutil

from test_backup_runner_failures import Job, s3_repository

DAY = datetime.timedelta(days=1)


def seed(job, when, *tags):
    """One snapshot of the job's data as the runner would have made it on ``when``."""
    args = ["backup", "--time", when.strftime("%Y-%m-%d %H:%M:%S"), "--host", "web1", "--tag", "keepdata-job=app"]
    for tag in tags:
        args += ["--tag", tag]
    proc = job.restic(*args, str(job.root / "data"))
    assert proc.returncode == 0, proc.stderr


def snapshots(job):
    proc = job.restic("snapshots", "--json", "--host", "web1", "--tag", "keepdata-job=app")
    assert proc.returncode == 0, proc.stderr
    return sorted(json.loads(proc.stdout), key=lambda snap: snap["time"])


def test_a_host_emptied_for_days_keeps_its_last_good_snapshot(tmp_path, rgw, bucket):
    job = Job(tmp_path, s3_repository(rgw, bucket), rgw.owner["access_key"], rgw.owner["secret_key"])
    assert job.restic("init").returncode == 0
    (tmp_path / "metrics").mkdir()
    # Three daily snapshots kept: without the last good rule, three suspect days push every good one out (a week of
    # them with the role's default of 7; fewer days here, as each restic call costs a second on the RGW).
    job.save(prune=True, retention={"keep_daily": 3}, metrics_dir=str(tmp_path / "metrics"))
    data = tmp_path / "data"
    for index in range(40):
        (data / ("upload-%02d.bin" % index)).write_bytes(bytes([index]) * 5000)
    today = datetime.datetime.now().replace(hour=4, minute=0, second=0, microsecond=0)
    for day in (5, 4):
        (data / "changes.txt").write_text("day -%d\n" % day)
        seed(job, today - day * DAY)
    shutil.rmtree(data)
    data.mkdir()
    for day in (3, 2, 1):
        seed(job, today - day * DAY, "keepdata-suspect")
    last_good = [snap for snap in snapshots(job) if "keepdata-suspect" not in snap["tags"]][-1]

    # A new host that took the name: its empty sources are not backed up over snapshots it never restored.
    proc, state, _seconds = job.run()
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1 and state["last_failure_cause"] == "not_restored", log
    assert "refused: the sources (%s) are empty, and the repository holds 5 snapshots of this job for host web1" % data in log, log
    assert "the last good one %s" % last_good["short_id"] in log, log
    assert len(snapshots(job)) == 5

    # The host that was emptied (it backed the job up before): the snapshot is made, kept, tagged suspect, and fails.
    (tmp_path / "state" / "app.state.json").write_text(json.dumps(dict(state, last_success=1)))
    proc, state, judged = job.run()
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1 and state["last_failure_cause"] == "suspect" and state["suspect"] == 1, log
    assert "no file in the sources" in log and "tagged keepdata-suspect" in log, log
    newest = snapshots(job)[-1]
    assert "keepdata-suspect" in newest["tags"] and len(snapshots(job)) == 6, newest
    metrics = (tmp_path / "metrics" / "keepdata_backup_app.prom").read_text()
    assert 'keepdata_backup_last_suspect{backup_job="app"} 1' in metrics, metrics

    # restic's own policy would forget the last good snapshot now; the retention run keeps it.
    selection = ["--host", "web1", "--tag", "keepdata-job=app", "--group-by", "host"]
    policy = job.restic("forget", *selection, "--keep-last", "1", "--keep-daily", "3", "--dry-run", "--json")
    assert last_good["id"] in [snap["id"] for group in json.loads(policy.stdout) for snap in group["remove"]], policy.stdout
    proc, state, kept = job.run("forget")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    left = snapshots(job)
    assert [snap["id"] for snap in left if "keepdata-suspect" not in snap["tags"]] == [last_good["id"]], left
    assert len(left) == 4, [snap["time"] for snap in left]
    assert "the latest snapshot is suspect: the last good one, %s" % last_good["short_id"] in log, log

    # The shrink was wanted: accepted once with the tag, that snapshot is the new last good one (the unit tests
    # follow the next runs).
    proc, state, _seconds = job.run("run", "--tag", "shrink-accepted")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and state["suspect"] == 0 and state["good_files"] == 0, log
    assert "accepted once (tag shrink-accepted): no file in the sources" in log, log
    print("judging a snapshot (run with a suspect verdict): %.1f s; retention keeping the last good one: %.1f s" % (judged, kept))
