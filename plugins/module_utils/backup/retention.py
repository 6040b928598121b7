# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module backup_retention's logic: the retention of role keepdata.storage.backup's jobs, run from a trusted place.

In the role's append-only mode (backup_append_only) the host's S3 user may add to the repository but delete nothing,
so its own retention timer is not installed; retention runs where the bucket owner's key is (the controller, AWX,
a designated host). The rules are the runner's (``runner.retention_run``: the latest snapshot always kept, the last
good one never removed, the tag rules, prune, the structure check): this module only gives the runner what the host's
units give it, in a private temporary directory (mode 0700) removed afterwards: the password and the owner's S3 keys
as files (0600), the job's configuration as the plan made it, the lock, cache and state directories.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import shutil
import tempfile

from ansible_collections.keepdata.storage.plugins.module_utils.backup import runner
from ansible_collections.keepdata.storage.plugins.module_utils.backup.shared import (
    CAUSE_TEXTS,
    JOB_NAME,
    SNAPSHOT_ID,
    private_opener,
    state_path,
    with_defaults,
)
from ansible_collections.keepdata.storage.plugins.module_utils.backup.units import s3_credentials, s3_key_problem

# What a job handed to the module must hold: the runner needs these to find the job's snapshots and rules.
JOB_KEYS = ("name", "repository", "repository_id", "host")
# What the trusted place keeps of the host's job: the repository, the selection and the rules; not the host's
# files, hooks or metrics.
LOCAL_KEYS = ("password_file", "s3_credentials_file", "state_dir", "cache_dir", "metrics_dir", "mount_point", "dump_dir")


def job_problems(jobs, access_key, secret_key, recorded_good=None):
    """Why ``jobs`` cannot be run (each named by its index or name), before any file is written."""
    problems = []
    if not isinstance(jobs, list) or not jobs:
        return ["jobs must be a non-empty list of the jobs of role keepdata.storage.backup (its plan's jobs)"]
    names = set()
    for index, job in enumerate(jobs):
        where = "jobs[%d]" % index
        if not isinstance(job, dict):
            problems.append("%s must be a mapping (a job of the role's plan)" % where)
            continue
        missing = [key for key in JOB_KEYS if not job.get(key)]
        if missing:
            problems.append("%s lacks %s" % (where, ", ".join(missing)))
            continue
        if not isinstance(job["name"], str) or not JOB_NAME.fullmatch(job["name"]):
            problems.append("%s.name is not a job name" % where)
        elif job["name"] in names:
            problems.append('%s.name "%s" is given twice' % (where, job["name"]))
        names.add(job.get("name"))
    if any(str(job.get("repository", "")).startswith("s3:") for job in jobs if isinstance(job, dict)):
        problems += [problem for problem in (s3_key_problem("access_key", access_key), s3_key_problem("secret_key", secret_key)) if problem]
    return problems + recorded_good_problems(recorded_good, names)


def recorded_good_problems(recorded_good, names):
    """Why ``recorded_good`` ({job name: snapshot ID}, what the hosts recorded) cannot be used: a job not given, a
    value that is not a snapshot ID (a list where a string belongs is named as such)."""
    if recorded_good in (None, ""):
        return []
    if not isinstance(recorded_good, dict):
        return ["recorded_good must be a mapping of job names to snapshot IDs, not a %s" % type(recorded_good).__name__]
    problems = []
    for name in sorted(recorded_good, key=str):
        value = recorded_good[name]
        if name not in names:
            problems.append("recorded_good names job %r, which is not one of jobs" % str(name)[:40])
        elif not isinstance(value, str):
            problems.append("recorded_good.%s must be a snapshot ID (a string), not a %s" % (name, type(value).__name__))
        elif value and not SNAPSHOT_ID.fullmatch(value):
            problems.append("recorded_good.%s must be a snapshot ID (8 to 64 lowercase hex digits)" % name)
    return problems


def _write(path, text):
    with open(path, "w", encoding="utf-8", opener=private_opener) as handle:
        handle.write(text)


def trusted_config(job, work):
    """The runner's configuration of ``job`` at the trusted place: the host's rules, the local files under ``work``."""
    config = {key: value for key, value in job.items() if key not in LOCAL_KEYS}
    config.update(
        password_file=os.path.join(work, "repository.password"),
        s3_credentials_file=os.path.join(work, "s3.credentials") if str(job["repository"]).startswith("s3:") else "",
        state_dir=os.path.join(work, "state"),
        cache_dir=os.path.join(work, "cache"),
        metrics_dir="",
        mount_point="",
        dump_dir="",
    )
    return with_defaults(config)


def record_good(config, snapshot_id):
    """The host's record of its last good snapshot where the runner reads it (its state file at the trusted place):
    the runner's retention then keeps it as the host's own timer would."""
    if snapshot_id:
        os.makedirs(config["state_dir"], mode=0o700, exist_ok=True)
        _write(state_path(config), json.dumps({"good_snapshot": snapshot_id}))


def _result(job, outcome, lines, recorded):
    cause = outcome.get("cause") or ""
    return {
        "name": job["name"],
        "host": job["host"],
        "recorded_good": recorded,
        "ok": bool(outcome.get("ok")),
        "cause": "" if outcome.get("ok") else cause or "failed",
        "cause_text": "" if outcome.get("ok") else CAUSE_TEXTS.get(cause, ""),
        "snapshots_before": len(outcome.get("before") or []),
        "forgotten": list(outcome.get("forgotten") or []),
        "snapshots_after": outcome.get("snapshots"),
        "structure_check": outcome.get("structure_check"),
        "log": lines,
    }


def run_retention(jobs, password, access_key="", secret_key="", *, recorded_good=None, dry_run=False, environ=None, run=None, watch=None, clock=None):
    """[result of each job] (see _result), every job run by ``runner.retention_run`` in order; the temporary
    directory holding the secrets is removed whatever happens. ``recorded_good``: {job name: the snapshot ID its host
    recorded as its last good one}, kept like the latest and the newest good one. ``run``, ``watch`` and ``clock``:
    the runner's Context fakes, for tests."""
    recorded_good = recorded_good or {}
    environ = dict(os.environ if environ is None else environ)
    work = tempfile.mkdtemp(prefix="keepdata-retention-")  # mode 0700
    try:
        _write(os.path.join(work, "repository.password"), password + "\n")
        _write(os.path.join(work, "s3.credentials"), s3_credentials(access_key, secret_key))
        # restic's environment: PATH and LANG of this place, HOME in the private directory; no systemd credentials.
        env = {key: environ[key] for key in ("PATH", "LANG") if environ.get(key)}
        env["HOME"] = work
        results = []
        for job in jobs:
            out = io.StringIO()
            ctx = runner.Context(run=run, watch=watch, clock=clock, environ=env, lock_dir=os.path.join(work, "lock"), out=out, err=out)
            config = trusted_config(job, work)
            recorded = recorded_good.get(job["name"]) or ""
            record_good(config, recorded)
            outcome = runner.retention_run(ctx, config, dry_run=dry_run)
            results.append(_result(job, outcome, out.getvalue().splitlines(), recorded))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def failure_message(results):
    """One line per failed job: its name, its cause and the runner's last error line."""
    failed = []
    for result in results:
        if result["ok"]:
            continue
        errors = [line for line in result["log"] if ": error: " in line]
        what = result["cause_text"] or result["cause"]
        failed.append("job %s (host %s): %s%s" % (result["name"], result["host"], what, " - " + errors[0] if errors else ""))
    return "; ".join(failed)
