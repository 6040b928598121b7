# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restores of playbooks/recover.yml, decided from hand-made previews (backup_restore's check-mode results)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.backup import restore as backup_restore
from ansible_collections.keepdata.storage.plugins.plugin_utils.recover_plan import NO_SNAPSHOT, NOT_EMPTY, NOT_INSTALLED, recover_plan, wanted_jobs


def ok(job, snapshot_id):
    return {
        "item": job,
        "changed": True,
        "snapshot": {"id": snapshot_id},
        "plan": ["snapshot %s of web1" % snapshot_id[:8], "restore /srv/%s -> /srv/%s" % (job, job)],
    }


def failed(job, cause, msg):
    # As registered with failed_when false: "failed" is false, the module's own result is there.
    return {"item": job, "failed": False, "failed_when_result": False, "cause": cause, "msg": "keepdata.storage.backup_restore: " + msg}


def test_the_causes_are_the_restore_module_s_documented_ones():
    # recover_plan reads backup_restore's own names; their values are the module's documented RETURN cause.
    assert (NO_SNAPSHOT, NOT_INSTALLED, NOT_EMPTY) == (backup_restore.NO_SNAPSHOT, backup_restore.NOT_INSTALLED, backup_restore.NOT_EMPTY)
    assert (NO_SNAPSHOT, NOT_INSTALLED, NOT_EMPTY) == ("no_snapshot", "not_installed", "not_empty")


def test_every_job_restored_pinned_to_the_snapshot_its_preview_chose():
    plan = recover_plan([ok("app", "a" * 64), ok("db", "b" * 64)], ["app", "db"])
    assert plan["errors"] == [] and plan["skipped"] == []
    assert plan["restore"] == [{"job": "app", "snapshot": "a" * 64}, {"job": "db", "snapshot": "b" * 64}]
    assert plan["lines"][0] == "job app: snapshot aaaaaaaa of web1" and plan["lines"][-1] == "job db: restore /srv/db -> /srv/db"


def test_a_job_without_snapshot_stops_the_run_unless_partial():
    previews = [ok("app", "a" * 64), failed("db", NO_SNAPSHOT, "no snapshot of job db of host web1: the repository holds job db's snapshots of host old")]
    plan = recover_plan(previews, ["app", "db"])
    assert plan["restore"] == [] and plan["lines"][-1] == plan["errors"][0]
    assert plan["errors"] == [
        "job db: no snapshot of job db of host web1: the repository holds job db's snapshots of host old; nothing was restored "
        "(set recover_partial to restore the other jobs)"
    ]
    plan = recover_plan(previews, ["app", "db"], partial=True)
    assert plan["errors"] == [] and plan["restore"] == [{"job": "app", "snapshot": "a" * 64}]
    assert plan["skipped"] == [{"job": "db", "why": "no snapshot of job db of host web1: the repository holds job db's snapshots of host old"}]


def test_nothing_to_restore_at_all_is_an_error_even_when_partial():
    plan = recover_plan(
        [failed("app", NO_SNAPSHOT, "no snapshot of job app of host web9: the repository holds job app's snapshots of host web1")], ["app"], partial=True
    )
    assert plan["restore"] == [] and plan["errors"][0].startswith("no job of this host has a snapshot to restore: no snapshot of job app of host web9")


def test_a_destination_with_data_stops_the_run_even_when_partial():
    previews = [ok("app", "a" * 64), failed("db", "", "not empty: /srv/db. Nothing was changed; set move_aside ...")]
    plan = recover_plan(previews, ["app", "db"], partial=True)
    assert plan["restore"] == [] and plan["errors"] == ["job db: not empty: /srv/db. Nothing was changed; set move_aside ..."]


def test_check_mode_on_a_fresh_host_says_the_job_is_installed_then_restored():
    previews = [failed("app", NOT_INSTALLED, "job app: no configuration (is role keepdata.storage.backup applied to this host?)")]
    plan = recover_plan(previews, ["app"], check_mode=True)
    assert plan["errors"] == [] and plan["restore"] == []
    assert plan["lines"] == ["job app: installed by this run, then its snapshot restored (a --check cannot read the repository before)"]
    # Outside check mode the role has just installed the job: its absence is an error.
    assert recover_plan(previews, ["app"])["errors"][0].startswith("job app: job app: no configuration")


@pytest.mark.parametrize(
    ("wanted", "names", "errors"),
    [
        (None, ["app", "db"], []),
        ("", ["app", "db"], []),
        ([], ["app", "db"], []),
        ("db\n\n app \n", ["db", "app"], []),
        (["db", "db"], ["db"], []),
        (["web"], [], ['recover_jobs[0] "web" is not a backup job of this host (its jobs: app, db)']),
        (["app\n"], [], ["recover_jobs[0] must not contain control characters"]),
        ([["app"]], [], ["recover_jobs[0] must be a job name (a string), not list"]),
        ({"app": 1}, [], ["recover_jobs must be a list of job names or one name per line, not dict"]),
    ],
)
def test_recover_jobs_is_a_list_or_lines_of_declared_jobs(wanted, names, errors):
    assert wanted_jobs(wanted, ["app", "db"]) == (names, errors)


def test_a_module_that_crashed_is_a_failed_preview():
    crashed = {"item": "app", "failed": False, "msg": "MODULE FAILURE\nSee stdout/stderr for the exact error", "module_stderr": "Traceback", "rc": 1}
    assert recover_plan([crashed], ["app"], partial=True)["errors"] == ["job app: MODULE FAILURE\nSee stdout/stderr for the exact error"]


def test_only_the_wanted_jobs_are_restored():
    plan = recover_plan([ok("app", "a" * 64), ok("db", "b" * 64)], ["app", "db"], wanted=["db"])
    assert plan["restore"] == [{"job": "db", "snapshot": "b" * 64}]
    assert recover_plan([ok("app", "a" * 64)], ["app", "db"], wanted=["db"])["errors"] == ["job db: no preview of its restore"]


def test_a_job_left_out_whose_data_is_not_back_holds_the_timers():
    # recover_jobs: [app]; db's preview would restore it: its paths are empty, its data is not back.
    plan = recover_plan([ok("app", "a" * 64), ok("db", "b" * 64)], ["app", "db"], wanted=["app"])
    assert plan["restore"] == [{"job": "app", "snapshot": "a" * 64}]
    assert plan["held"] == ["db"] and plan["arm"] is False
    assert "job db: left out (recover_jobs) and its data is not back: the backup timers of this host stay held" in plan["lines"]
    assert plan["after"] == [
        "the backup timers of this host stay held: the data of job db is not back; run this playbook for it (or playbooks/backup.yml to arm them as they are)"
    ]


@pytest.mark.parametrize(
    "left_out",
    [
        dict(ok("db", "b" * 64), changed=False, restored_already=True),
        failed("db", NOT_EMPTY, "not empty: /srv/db. Nothing was changed"),
        failed("db", NO_SNAPSHOT, "the repository holds no snapshot of job db"),
    ],
    ids=["restored-already", "holds-data", "no-snapshot"],
)
def test_a_job_left_out_that_is_back_or_has_nothing_to_restore_lets_the_timers_be_armed(left_out):
    plan = recover_plan([ok("app", "a" * 64), left_out], ["app", "db"], wanted=["app"])
    assert plan["errors"] == [] and plan["held"] == [] and plan["arm"] is True and plan["after"] == []


def test_every_job_wanted_arms_the_timers():
    plan = recover_plan([ok("app", "a" * 64), ok("db", "b" * 64)], ["app", "db"])
    assert plan["held"] == [] and plan["arm"] is True
