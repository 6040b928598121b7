# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Retention from a trusted place (module backup_retention, issue 28 A): the runner's own rules run with the owner's
key from a private temporary directory, removed afterwards; check mode lists what would be forgotten and forgets
nothing. The fakes of test_runner answer for restic."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools
import json
import os
import stat

from test_runner import FakeRun, done, make_config, snapshot, watching

from ansible_collections.keepdata.storage.plugins.module_utils.backup import retention

OWNER_KEY = "OWNERKEY0001"
OWNER_SECRET = "owner/Secret+value=="  # noqa: S105 - a test value
PASSWORD = "repository-pass-42"  # noqa: S105 - a test value
DENIED = "Fatal: unable to remove snapshot: Access Denied.\n"


def plan_job(tmp_path, **overrides):
    """A job as the role's plan gives it (with the host's paths and the units' keys)."""
    job = dict(make_config(tmp_path, **overrides), enabled=True, schedule="daily", randomized_delay="30min")
    job.update(state_dir="/var/lib/keepdata/backup", metrics_dir="/var/lib/prometheus")
    return job


def snapshots_list():
    good = snapshot("aaaa1111", "2025-10-01T04:00:00Z", "keepdata-job=app1")
    suspects = [snapshot("%04x%04x" % (day, day), "2025-11-%02dT04:00:00Z" % day, "keepdata-job=app1", "keepdata-suspect") for day in range(1, 4)]
    return good, suspects


class Seen:
    """What restic was handed: the files behind its environment's paths, read while it ran."""

    def __init__(self, answers):
        self.files, self.work = {}, None
        self.fake = FakeRun(**answers)

    def __call__(self, argv, **kwargs):
        env = kwargs.get("env") or {}
        for key in ("RESTIC_PASSWORD_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            if env.get(key):
                path = env[key]
                self.work = os.path.dirname(path)
                self.files[key] = (open(path).read(), stat.S_IMODE(os.stat(path).st_mode), stat.S_IMODE(os.stat(self.work).st_mode))
        return self.fake(argv, **kwargs)


def run(jobs, seen, dry_run=False, recorded_good=None):
    clock = itertools.count(1764892800.0, 1)
    return retention.run_retention(
        jobs,
        PASSWORD,
        OWNER_KEY,
        OWNER_SECRET,
        recorded_good=recorded_good,
        dry_run=dry_run,
        environ={"PATH": os.environ["PATH"]},
        run=seen,
        watch=watching(seen),
        clock=lambda: next(clock),
    )


def test_the_runners_rules_run_with_the_owners_key_from_a_private_directory_removed_afterwards(tmp_path):
    good, suspects = snapshots_list()
    before, after = [good] + suspects, [good, suspects[-1]]
    would = [{"keep": after, "remove": suspects[:-1]}]
    seen = Seen({"snapshots": [done(stdout=json.dumps(before)), done(stdout=json.dumps(after))], "forget": [done(stdout=json.dumps(would)), done()]})
    [result] = run([plan_job(tmp_path, check_structure=False)], seen)
    assert result["ok"] is True and result["cause"] == "", result
    assert result["snapshots_before"] == 4 and result["snapshots_after"] == 2
    assert result["forgotten"] == [snap["id"] for snap in suspects[:-1]]
    # The latest is suspect: the last good one is kept by the runner's rule (a dry run, then forget by ID).
    forgets = seen.fake.argvs("forget")
    assert forgets[0][-2:] == ["--dry-run", "--json"] and good["id"] not in forgets[1]
    assert seen.fake.keys()[-1] == "snapshots" and "prune" in seen.fake.keys()
    # The secrets were files in a 0700 directory, 0600 each, never arguments; the directory is gone.
    password, mode, dir_mode = seen.files["RESTIC_PASSWORD_FILE"]
    assert (password, mode, dir_mode) == (PASSWORD + "\n", 0o600, 0o700)
    credentials, mode, _dir_mode = seen.files["AWS_SHARED_CREDENTIALS_FILE"]
    assert "`%s`" % OWNER_KEY in credentials and "`%s`" % OWNER_SECRET in credentials and mode == 0o600
    assert not os.path.exists(seen.work)
    assert all(secret not in " ".join(argv) for argv, _kwargs in seen.fake.calls for secret in (PASSWORD, OWNER_KEY, OWNER_SECRET))
    # Nothing of the host's paths is touched here: the state lived in the private directory too.
    assert not (tmp_path / "state").exists() and not (tmp_path / "metrics").exists()


def test_check_mode_lists_what_would_be_forgotten_and_forgets_nothing(tmp_path):
    good, suspects = snapshots_list()
    tagged = snapshot("bbbb2222", "2025-09-01T04:00:00Z", "keepdata-job=app1", "pre-update")
    before = [tagged, good] + suspects
    would = [{"keep": [good, suspects[-1]], "remove": suspects[:-1]}]
    seen = Seen({"snapshots": done(stdout=json.dumps(before)), "forget": done(stdout=json.dumps(would))})
    [result] = run([plan_job(tmp_path)], seen, dry_run=True)
    assert result["ok"] is True, result
    # The policy's dry run, then the expired pre-update snapshot by its tag rule; no prune, no check, no forget by ID.
    assert result["forgotten"] == [snap["id"] for snap in suspects[:-1]] + [tagged["id"]]
    assert seen.fake.keys().count("forget") == 1 and "prune" not in seen.fake.keys() and "check" not in seen.fake.keys()
    assert seen.fake.argvs("forget")[0][-2:] == ["--dry-run", "--json"]
    assert result["snapshots_after"] is None
    assert any("would forget" in line for line in result["log"])


def test_the_snapshot_the_host_recorded_as_good_is_kept(tmp_path):
    # The host's last good snapshot, then three it found suspect but could not tag: the repository cannot tell them
    # from good ones, only the host's record can. keep_last 1 would forget the recorded one; given, it stays.
    recorded = snapshot("cccc3333", "2025-10-01T04:00:00Z", "keepdata-job=app1")
    untagged = [snapshot("dddd000%d" % day, "2025-11-%02dT04:00:00Z" % day, "keepdata-job=app1") for day in range(1, 4)]
    would = [{"keep": [untagged[-1]], "remove": [recorded] + untagged[:-1]}]
    after = [recorded, untagged[-1]]

    def answers():  # restic's answers, each list consumed by a run
        listings = [done(stdout=json.dumps([recorded] + untagged)), done(stdout=json.dumps(after))]
        return {"snapshots": listings, "forget": [done(stdout=json.dumps(would)), done()]}

    seen = Seen(answers())
    [result] = run([plan_job(tmp_path, check_structure=False, retention={"keep_last": 1})], seen, recorded_good={"app1": "cccc3333"})
    assert result["ok"] is True and result["recorded_good"] == "cccc3333", result
    by_id = seen.fake.argvs("forget")[1]
    assert recorded["id"] not in by_id and all(snap["id"] in by_id for snap in untagged[:-1]), by_id
    assert result["forgotten"] == [snap["id"] for snap in untagged[:-1]]
    # Without the record, the policy's own forget runs alone: restic lets the recorded one go.
    seen = Seen(answers())
    [result] = run([plan_job(tmp_path, check_structure=False, retention={"keep_last": 1})], seen)
    [policy] = seen.fake.argvs("forget")
    assert "--keep-last" in policy and "--dry-run" not in policy and result["recorded_good"] == "", policy


def test_a_recorded_good_snapshot_must_be_an_id_of_a_job_given(tmp_path):
    job = plan_job(tmp_path)
    assert retention.job_problems([job], OWNER_KEY, OWNER_SECRET, {"app1": "cccc3333"}) == []
    assert retention.job_problems([job], OWNER_KEY, OWNER_SECRET, {"app1": ""}) == []
    assert retention.job_problems([job], OWNER_KEY, OWNER_SECRET, {"app1": ["cccc3333"]}) == ["recorded_good.app1 must be a snapshot ID (a string), not a list"]
    assert retention.job_problems([job], OWNER_KEY, OWNER_SECRET, {"app1": "CCCC3333"}) == [
        "recorded_good.app1 must be a snapshot ID (8 to 64 lowercase hex digits)"
    ]
    assert retention.job_problems([job], OWNER_KEY, OWNER_SECRET, {"app1": "cccc3333\n"}) == [
        "recorded_good.app1 must be a snapshot ID (8 to 64 lowercase hex digits)"
    ]
    assert retention.job_problems([job], OWNER_KEY, OWNER_SECRET, {"db": "cccc3333"}) == ["recorded_good names job 'db', which is not one of jobs"]
    assert retention.job_problems([job], OWNER_KEY, OWNER_SECRET, ["cccc3333"]) == ["recorded_good must be a mapping of job names to snapshot IDs, not a list"]


def test_refused_by_the_bucket_policy_is_a_failure_named_denied(tmp_path):
    good, suspects = snapshots_list()
    seen = Seen({"snapshots": done(stdout=json.dumps([good, suspects[0]])), "forget": done(1, stderr=DENIED)})
    results = run([plan_job(tmp_path, check_structure=False)], seen)
    assert results[0]["ok"] is False and results[0]["cause"] == "denied"
    message = retention.failure_message(results)
    assert message.startswith("job app1 (host web1): the S3 keys or the file permissions are refused - ")
    assert "Access Denied" in message
    assert not os.path.exists(seen.work)


def test_inputs_are_checked_before_anything_runs(tmp_path):
    job = plan_job(tmp_path)
    assert retention.job_problems([job], OWNER_KEY, OWNER_SECRET) == []
    assert retention.job_problems([], OWNER_KEY, OWNER_SECRET) == [
        "jobs must be a non-empty list of the jobs of role keepdata.storage.backup (its plan's jobs)"
    ]
    assert retention.job_problems([job, job], OWNER_KEY, OWNER_SECRET) == ['jobs[1].name "app1" is given twice']
    assert retention.job_problems([{"name": "app1"}, "x"], OWNER_KEY, OWNER_SECRET) == [
        "jobs[0] lacks repository, repository_id, host",
        "jobs[1] must be a mapping (a job of the role's plan)",
    ]
    assert retention.job_problems([dict(job, name="Bad!")], OWNER_KEY, OWNER_SECRET) == ["jobs[0].name is not a job name"]
    assert retention.job_problems([job], "", OWNER_SECRET) == ["access_key must be a non-empty string"]
    assert retention.job_problems([job], OWNER_KEY, "a\nb") == ["secret_key must not contain control characters (newline, tab, ...)"]


def test_the_trusted_config_keeps_the_rules_and_drops_the_hosts_files(tmp_path):
    job = plan_job(tmp_path)
    work = str(tmp_path / "work")
    config = retention.trusted_config(job, work)
    for key in ("name", "repository", "repository_id", "host", "restic_options", "retention", "tag_rules", "prune", "check_structure"):
        assert config[key] == job[key], key
    assert (config["password_file"], config["s3_credentials_file"]) == (work + "/repository.password", work + "/s3.credentials")
    assert (config["state_dir"], config["cache_dir"], config["metrics_dir"], config["mount_point"]) == (work + "/state", work + "/cache", "", "")
