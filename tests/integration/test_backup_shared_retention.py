# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Retention in a repository that two hosts and two jobs share, with real restic on the real RGW (issue 32, item 2).

Snapshots of past days are seeded with ``restic backup --time``, tagged as the runner tags them, for job app of
host web1, job db of the same host and job app of host web2. The runner's retention of web1's app (its units' run)
then keeps exactly what an independent computation of restic's rules keeps (each rule keeps the newest snapshot of
each of its last N periods; a snapshot is kept when any rule keeps it), and never touches the other job's or the
other host's snapshots.
"""

from __future__ import annotations

import datetime
import json
import re

from test_backup_runner_failures import Job, s3_repository

DAY = datetime.timedelta(days=1)
FRIDAY = 4  # datetime.weekday()
RULES = {"keep_last": 1, "keep_daily": 3, "keep_weekly": 2}


def seed(job, when, host, name):
    """One snapshot of the job's data as the runner of job ``name`` on ``host`` would have made it on ``when``."""
    proc = job.restic("backup", "--time", when.strftime("%Y-%m-%d %H:%M:%S"), "--host", host, "--tag", "keepdata-job=" + name, str(job.root / "data"))
    assert proc.returncode == 0, proc.stderr


def snapshots(job, host, name):
    proc = job.restic("snapshots", "--json", "--host", host, "--tag", "keepdata-job=" + name)
    assert proc.returncode == 0, proc.stderr
    return {snap["id"]: snap for snap in json.loads(proc.stdout)}


def kept_by_restics_rules(snaps, rules):
    """The IDs restic's forget keeps under ``rules`` (keep_last, keep_daily, keep_weekly), computed here, not by
    restic: newest first, each rule keeps a snapshot whose period differs from the last one it kept, while it has
    some of its count left."""
    periods = {
        "keep_last": lambda when, index: index,
        "keep_daily": lambda when, index: when.date(),
        "keep_weekly": lambda when, index: when.isocalendar()[:2],
    }
    left, last, kept = dict(rules), {}, set()
    ordered = sorted(snaps.values(), key=lambda snap: snap["time"], reverse=True)
    for index, snap in enumerate(ordered):
        # restic's time in its own zone offset, which is where restic counts days and weeks (nanoseconds dropped).
        when = datetime.datetime.fromisoformat(re.sub(r"\.[0-9]+", "", snap["time"]).replace("Z", "+00:00"))
        for rule, count in left.items():
            period = periods[rule](when, index)
            if count > 0 and last.get(rule) != period:
                kept.add(snap["id"])
                last[rule] = period
                left[rule] = count - 1
    return kept


def test_one_hosts_retention_keeps_what_restics_rules_keep_and_nothing_of_the_others(tmp_path, rgw, bucket):
    job = Job(tmp_path, s3_repository(rgw, bucket), rgw.owner["access_key"], rgw.owner["secret_key"])
    assert job.restic("init").returncode == 0
    job.save(retention=dict(RULES))
    # Days counted back from the last Friday, not from today: from a Tuesday or a Wednesday the three daily ones
    # span two weeks and the weekly rule keeps nothing more (the test then failed on a Tuesday's CI run).
    now = datetime.datetime.now().replace(hour=4, minute=0, second=0, microsecond=0)
    today = now - ((now.weekday() - FRIDAY) % 7) * DAY
    # web1's app: one a day for 10 days, and a second one yesterday (a day's newest is the one kept).
    for day in range(10, 0, -1):
        (tmp_path / "data" / "file.txt").write_text("day -%d\n" % day)
        seed(job, today - day * DAY, "web1", "app")
    seed(job, today - DAY + datetime.timedelta(hours=2), "web1", "app")
    # web1's other job, and web2's app, on the same days: none of them is web1's app.
    for day in range(10, 6, -1):
        seed(job, today - day * DAY, "web1", "db")
        seed(job, today - day * DAY, "web2", "app")
    ours, other_job, other_host = snapshots(job, "web1", "app"), snapshots(job, "web1", "db"), snapshots(job, "web2", "app")
    assert (len(ours), len(other_job), len(other_host)) == (11, 4, 4)
    expected = kept_by_restics_rules(ours, RULES)
    # keep_last and keep_daily keep Thursday's second one, Wednesday's and Tuesday's; keep_weekly adds the Sunday
    # before: four kept, seven forgotten.
    assert len(expected) == 4, expected

    proc, state, _seconds = job.run("forget")
    assert proc.returncode == 0 and state["last_forget_exit_status"] == 0, proc.stdout + proc.stderr
    assert set(snapshots(job, "web1", "app")) == expected
    assert snapshots(job, "web1", "db") == other_job and snapshots(job, "web2", "app") == other_host
