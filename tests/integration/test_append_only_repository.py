# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An append-only restic repository on the RGW (issue 28 A), with the real restic and the host's own S3 user.

The owner makes a versioned bucket and gives the second S3 user ("addon", the host) preset restic_append_only
with the collection's modules. With the host's keys: the repository is initialised (by module restic_repo, as the
backup role does on the host), backed up twice, listed, checked, restored, and a stale lock is removed. Then the
host plays the intruder: ``restic forget --prune``, deleting a pack, a snapshot or an object version, and changing
the bucket's settings all fail with AccessDenied, even after the owner granted the host WRITE in the bucket's ACL;
overwriting an index file succeeds (S3 has no "create only" right) and leaves the previous version in the bucket,
which the owner puts back, and the repository passes ``restic check --read-data`` with the owner's key. Retention
with the owner's key still works.

A second test measures one backup in append-only mode (versioned bucket, preset, the host's key) against the normal
mode (a bucket without policy, the owner's key) on the same data, and prints the requests and times side by side
(run pytest with ``-s`` to see them).
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from conftest import RecordingProxy, delete_bucket_quietly, owner_restic_env, restic_repo_args, run_module, run_playbook, server_snapshot, tail

pytestmark = pytest.mark.rgw

PASSWORD = "append-only-repository-password"  # noqa: S105 - the test repository's password
RECOVERY = "append-only-repository-recovery"  # noqa: S105 - the test recovery key's password
PREFIX = "repo"


def host_restic_env(rgw, work):
    """restic's environment with the host's keys (the second S3 user, the one the preset names)."""
    env = owner_restic_env(rgw, work, PASSWORD)
    env.update(AWS_ACCESS_KEY_ID=rgw.addon["access_key"], AWS_SECRET_ACCESS_KEY=rgw.addon["secret_key"], RESTIC_CACHE_DIR=os.path.join(work, "host-cache"))
    return env


def restic(env, endpoint, bucket, *args, stdin=None):
    argv = ["restic", "-o", "s3.bucket-lookup=path", "-r", "s3:%s/%s/%s" % (endpoint, bucket, PREFIX), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False, stdin=stdin)


def ok(proc, what):
    assert proc.returncode == 0, "%s failed (%d): %s" % (what, proc.returncode, tail(proc.stdout + proc.stderr))
    return proc


def denied(call, **kwargs):
    """The S3 error code of ``call(**kwargs)``; the call must fail."""
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"]


def snapshot_ids(env, endpoint, bucket):
    """The repository's snapshot ids, oldest first."""
    proc = ok(restic(env, endpoint, bucket, "snapshots", "--json", "--no-lock"), "restic snapshots")
    return [snapshot["id"] for snapshot in sorted(json.loads(proc.stdout), key=lambda snapshot: snapshot["time"])]


def keys_below(client, bucket, folder):
    listed = client.list_objects_v2(Bucket=bucket, Prefix="%s/%s/" % (PREFIX, folder)).get("Contents", [])
    return sorted(entry["Key"] for entry in listed)


def make_append_only_bucket(rgw, bucket):
    """The owner's part, with the collection's modules: a versioned bucket and the preset for the host's user."""
    created = run_module("cellar_bucket", dict(rgw.connection_args(), name=bucket, versioning="enabled"))
    assert not created.get("failed") and created["changed"] is True, created
    args = dict(rgw.connection_args(), bucket=bucket, preset="restic_append_only", principals=[rgw.addon["uid"]], repository_prefix=PREFIX)
    applied = run_module("cellar_bucket_policy", args)
    assert not applied.get("failed") and applied["changed"] is True, applied
    # What the RGW stores and answers means the same as the preset: a second run changes nothing.
    again = run_module("cellar_bucket_policy", args)
    assert not again.get("failed") and again["changed"] is False, again


def write_data(folder, big_files=1, big_size=2 * 1024 * 1024, small_files=50, seed=b""):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(big_files):
        (folder / ("big-%d.bin" % index)).write_bytes(os.urandom(big_size))
    for index in range(small_files):
        (folder / ("small-%03d.txt" % index)).write_bytes(seed + (b"line %d\n" % index) * (index + 1))


def stale_lock_left_by_a_killed_restic(rgw, env, bucket):
    """A host's restic killed while it holds its lock (a backup waiting for stdin): its lock object stays behind."""
    backup = subprocess.Popen(  # noqa: S603
        ["restic", "-o", "s3.bucket-lookup=path", "-r", "s3:%s/%s/%s" % (rgw.endpoint, bucket, PREFIX), "backup", "--stdin", "--stdin-filename", "stuck"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not keys_below(rgw.client(), bucket, "locks") and time.monotonic() < deadline and backup.poll() is None:
            time.sleep(0.2)
    finally:
        backup.kill()
        backup.wait(timeout=30)
        backup.stdin.close()
    return keys_below(rgw.client(), bucket, "locks")


def test_bad_input_and_an_unprotectable_bucket_are_refused_before_any_change(rgw, existing_bucket):
    bucket = existing_bucket
    preset = dict(rgw.connection_args(), bucket=bucket, preset="restic_append_only", principals=[rgw.addon["uid"]], repository_prefix=PREFIX)
    before = server_snapshot(rgw, bucket)
    unversioned = run_module("cellar_bucket_policy", preset)
    assert unversioned["failed"] is True and "needs a versioned bucket (versioning is disabled)" in unversioned["msg"], unversioned
    preview = run_module("cellar_bucket_policy", preset, check_mode=True)
    assert not preview.get("failed") and preview["changed"] is True, preview
    assert "a real run fails unless an earlier task enables it" in json.dumps(preview.get("warnings")), preview
    assert server_snapshot(rgw, bucket) == before

    rgw.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    before = server_snapshot(rgw, bucket)
    for bad, message in (
        ({"principals": [rgw.owner["uid"]]}, "principals name the bucket's owner %r" % rgw.owner["uid"]),
        ({"principals": [rgw.addon["uid"], "arn:aws:iam:::user/" + rgw.owner["uid"]]}, "principals name the bucket's owner"),
        ({"principals": []}, "restic_append_only needs principals"),
        ({"repository_prefix": [PREFIX]}, "repository_prefix must be a string like hosts/web1, not list"),
        ({"repository_prefix": "repo/*"}, "repository_prefix 'repo/*' must be a path inside the bucket"),
        ({"repository_prefix": "../other"}, "must be a path inside the bucket"),
        ({"preset": "read_only"}, "repository_prefix is only used with preset=restic_append_only"),
    ):
        for check_mode in (True, False):
            result = run_module("cellar_bucket_policy", dict(preset, **bad), check_mode=check_mode)
            assert result.get("failed") is True and message in result["msg"], (bad, result)
    assert server_snapshot(rgw, bucket) == before
    assert before["policy"] is None


class Repository:
    """The append-only repository of one test: its bucket, both S3 clients, restic's environment for each key."""

    def __init__(self, rgw, bucket, work):
        self.rgw, self.bucket = rgw, bucket
        self.owner, self.host = rgw.client(), rgw.client("addon")
        self.host_env = host_restic_env(rgw, work)
        self.owner_env = owner_restic_env(rgw, work, PASSWORD)
        self.owner_cache = os.path.join(work, "cache")

    def as_host(self, *args):
        return restic(self.host_env, self.rgw.endpoint, self.bucket, *args)

    def as_owner(self, *args):
        return restic(self.owner_env, self.rgw.endpoint, self.bucket, *args)

    def snapshots(self):
        return snapshot_ids(self.owner_env, self.rgw.endpoint, self.bucket)


def test_the_host_adds_backups_and_cannot_destroy_them(tmp_path, rgw, cellar_bucket):
    make_append_only_bucket(rgw, cellar_bucket)
    repo = Repository(rgw, cellar_bucket, str(tmp_path))
    data = tmp_path / "data"
    first, second = host_backs_up_checks_and_restores(repo, data, tmp_path / "restored")
    host_removes_a_stale_lock(repo)
    intruder_cannot_forget_or_delete(repo, [first, second])
    overwritten_index_is_rolled_back_by_the_owner(repo)
    # Retention runs with the owner's key (from the controller): forget and prune work there.
    ok(repo.as_owner("forget", "--keep-last", "1", "--prune"), "retention with the owner's key")
    assert repo.snapshots() == [second]
    ok(repo.as_host("backup", str(data)), "a backup with the host's key after the owner's prune")
    assert len(repo.snapshots()) == 2


def host_backs_up_checks_and_restores(repo, data, target):
    """The host's own work with its key: init (module restic_repo, as the backup role's repository step does on the
    host: this mode needs no owner key there), two backups, snapshots, check, restore; no lock left behind."""
    init_args = dict(restic_repo_args(repo.rgw, repo.rgw.endpoint, repo.bucket, PASSWORD, RECOVERY))
    init_args.update(access_key=repo.rgw.addon["access_key"], secret_key=repo.rgw.addon["secret_key"])
    initialised = run_module("restic_repo", init_args)
    assert not initialised.get("failed") and initialised["initialized"] is True, initialised
    assert initialised["recovery_key_added"] is True, initialised
    write_data(data)
    ok(repo.as_host("backup", str(data)), "first backup with the host's key")
    (data / "small-000.txt").write_bytes(b"changed after the first backup\n")
    ok(repo.as_host("backup", str(data)), "second backup with the host's key")
    snapshots = snapshot_ids(repo.host_env, repo.rgw.endpoint, repo.bucket)
    assert len(snapshots) == 2, snapshots
    ok(repo.as_host("check"), "restic check with the host's key")
    ok(repo.as_host("restore", "latest", "--target", str(target)), "restore with the host's key")
    restored = target / str(data).lstrip("/")
    assert sorted(p.name for p in restored.iterdir()) == sorted(p.name for p in data.iterdir())
    assert all((restored / p.name).read_bytes() == p.read_bytes() for p in data.iterdir())
    assert keys_below(repo.owner, repo.bucket, "locks") == [], "the host's runs left locks behind: deleting locks/ was refused"
    # The owner reads what the host wrote (the preset's owner statement): the same two snapshots.
    assert repo.snapshots() == snapshots
    return snapshots


def host_removes_a_stale_lock(repo):
    """A stale lock (its restic killed) is removed with the host's key: restic unlock deletes below locks/."""
    assert len(stale_lock_left_by_a_killed_restic(repo.rgw, repo.host_env, repo.bucket)) == 1
    ok(repo.as_host("unlock"), "restic unlock of a stale lock with the host's key")
    assert keys_below(repo.owner, repo.bucket, "locks") == []


def intruder_cannot_forget_or_delete(repo, snapshots):
    """The host's key in an intruder's hands: forget, deletes of packs, snapshots and versions, settings changes
    all fail with AccessDenied, also once the owner granted the host WRITE in the bucket's ACL."""
    bucket, owner, host = repo.bucket, repo.owner, repo.host
    forget = repo.as_host("forget", "--keep-last", "1", "--prune")
    assert forget.returncode != 0, tail(forget.stdout + forget.stderr)
    assert "Access Denied" in forget.stdout + forget.stderr, tail(forget.stdout + forget.stderr)
    assert repo.snapshots() == snapshots, "restic forget removed a snapshot"

    pack = keys_below(owner, bucket, "data")[0]
    snapshot_file = "%s/snapshots/%s" % (PREFIX, snapshots[0])
    pack_version = owner.list_object_versions(Bucket=bucket, Prefix=pack)["Versions"][0]["VersionId"]
    for attempt in range(2):
        if attempt:
            # The Deny statements hold where an ACL grants more: with WRITE on the bucket the host could otherwise
            # delete anything, object versions included (Ceph RGW 16.2 lets an ACL grant through when no statement denies).
            owner.put_bucket_acl(Bucket=bucket, GrantFullControl="id=" + repo.rgw.owner["uid"], GrantWrite="id=" + repo.rgw.addon["uid"])
        assert denied(host.delete_object, Bucket=bucket, Key=pack) == "AccessDenied"
        assert denied(host.delete_object, Bucket=bucket, Key=snapshot_file) == "AccessDenied"
        assert denied(host.delete_objects, Bucket=bucket, Delete={"Objects": [{"Key": pack}, {"Key": snapshot_file}]}) == "AccessDenied"
        assert denied(host.delete_object, Bucket=bucket, Key=pack, VersionId=pack_version) == "AccessDenied"
        assert denied(host.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}) == "AccessDenied"
        assert denied(host.delete_bucket_policy, Bucket=bucket) == "AccessDenied"
        assert denied(host.put_bucket_lifecycle_configuration, Bucket=bucket, LifecycleConfiguration={"Rules": [expire_everything()]}) == "AccessDenied"
    owner.put_bucket_acl(Bucket=bucket, ACL="private")
    # Nothing was deleted, not even hidden behind a delete marker.
    assert [(v["Key"], v["IsLatest"]) for v in owner.list_object_versions(Bucket=bucket, Prefix=pack)["Versions"]] == [(pack, True)]
    markers = owner.list_object_versions(Bucket=bucket, Prefix=PREFIX + "/").get("DeleteMarkers", [])
    assert [m["Key"] for m in markers if "/locks/" not in m["Key"]] == []
    assert owner.head_object(Bucket=bucket, Key=snapshot_file)["ContentLength"] > 0
    assert repo.snapshots() == snapshots


def overwritten_index_is_rolled_back_by_the_owner(repo):
    """An overwrite cannot be refused on S3; the bucket's versioning keeps the index file's previous version, which
    the owner makes current again; then the repository passes ``restic check --read-data`` with the owner's key."""
    bucket, owner = repo.bucket, repo.owner
    index_file = keys_below(owner, bucket, "index")[0]
    original = owner.get_object(Bucket=bucket, Key=index_file)["Body"].read()
    repo.host.put_object(Bucket=bucket, Key=index_file, Body=b"overwritten by the intruder")
    versions = [v for v in owner.list_object_versions(Bucket=bucket, Prefix=index_file)["Versions"] if v["Key"] == index_file]
    assert len(versions) == 2, versions
    newest, previous = sorted(versions, key=lambda v: not v["IsLatest"])
    assert owner.get_object(Bucket=bucket, Key=index_file, VersionId=previous["VersionId"])["Body"].read() == original
    # Honest about what the rollback needs: the repository is damaged until the owner puts the previous version back.
    damaged = repo.as_owner("check", "--read-data")
    assert damaged.returncode != 0, "restic check passed over an overwritten index: " + tail(damaged.stdout + damaged.stderr)
    # The rollback of this one object: the owner deletes the intruder's version, the previous one is current again.
    owner.delete_object(Bucket=bucket, Key=index_file, VersionId=newest["VersionId"])
    assert owner.get_object(Bucket=bucket, Key=index_file)["Body"].read() == original
    shutil.rmtree(repo.owner_cache, ignore_errors=True)  # the owner's cache holds the damaged index
    ok(repo.as_owner("check", "--read-data"), "restic check --read-data with the owner's key after the rollback")


# ---- retention from a trusted place (module backup_retention, playbooks/backup_retention.yml) ----------------------


def seed(repo, data, when, *tags):
    """One snapshot with the host's key, as the runner would have made it on ``when`` (test_backup_suspect.seed)."""
    args = ["backup", "--time", when.strftime("%Y-%m-%d %H:%M:%S"), "--host", "web1", "--tag", "keepdata-job=app"]
    for tag in tags:
        args += ["--tag", tag]
    ok(repo.as_host(*args, str(data)), "a snapshot seeded with the host's key")


def retention_job(repo):
    """Job app of host web1 as the role's plan gives it (only what module backup_retention reads)."""
    url = "s3:%s/%s/%s" % (repo.rgw.endpoint, repo.bucket, PREFIX)
    return {
        "name": "app",
        "repository": url,
        "repository_id": "append0only01",
        "restic_options": ["-o", "s3.bucket-lookup=path"],
        "host": "web1",
        "retention": {"keep_daily": 2, "keep_weekly": 0, "keep_monthly": 0, "keep_yearly": 0, "keep_within": ""},
        "tag_rules": [],
        "prune": True,
        "check_structure": True,
    }


PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "backup_retention.yml"


def playbook_vars(rgw, bucket, state_dir):
    """Host web1's variables of role keepdata.storage.backup in append-only mode (job app, two daily snapshots kept),
    its state files in ``state_dir``."""
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        # The playbook reads the host's state file with become; here the host is this machine and the test is root.
        "ansible_become": False,
        "backup_state_dir": str(state_dir),
        "backup_retention_hosts": "web1",
        "backup_password": PASSWORD,
        "backup_s3_bucket": bucket,
        "backup_s3_prefix": PREFIX,
        "backup_s3_endpoint": rgw.endpoint,
        "backup_s3_path_style": "true",
        "backup_s3_access_key": rgw.addon["access_key"],
        "backup_s3_secret_key": rgw.addon["secret_key"],
        "backup_append_only": True,
        "backup_append_only_user": rgw.addon["uid"],
        "backup_s3_owner_access_key": rgw.owner["access_key"],
        "backup_s3_owner_secret_key": rgw.owner["secret_key"],
        "backup_host_name": "web1",
        "backup_keep_daily": 2,
        "backup_keep_weekly": 0,
        "backup_jobs": [{"name": "app", "paths": ["/srv/app"]}],
    }


def test_retention_runs_with_the_owners_key_and_is_refused_with_the_hosts(tmp_path, rgw, cellar_bucket):
    """Snapshots seeded with the host's key over five days, the last three suspect (the last tagged by restic tag with
    the host's key, which leaves an untagged twin). The retention module with the owner's keys keeps what the runner's
    rules keep (the latest, the last good one, the daily ones) and forgets the rest, after a check-mode preview that
    forgets nothing; with the host's keys it fails, named denied."""
    make_append_only_bucket(rgw, cellar_bucket)
    repo = Repository(rgw, cellar_bucket, str(tmp_path))
    init_args = dict(restic_repo_args(rgw, rgw.endpoint, cellar_bucket, PASSWORD, RECOVERY))
    init_args.update(access_key=rgw.addon["access_key"], secret_key=rgw.addon["secret_key"])
    assert run_module("restic_repo", init_args)["initialized"] is True
    data = tmp_path / "data"
    write_data(data, big_files=0, small_files=5)
    today = datetime.datetime.now().replace(hour=4, minute=0, second=0, microsecond=0)
    for day in (5, 4, 3, 2, 1):
        seed(repo, data, today - day * datetime.timedelta(days=1), *(["keepdata-suspect"] if day in (3, 2) else []))
    day5, day4, day3, day2, day1 = repo.snapshots()
    # Day 1 made suspect as the runner tags it, with the host's key: restic writes the tagged copy and cannot delete
    # the original (restic 0.14 warns and exits 0), so both stay; the untagged twin is no good snapshot.
    ok(repo.as_host("tag", "--add", "keepdata-suspect", day1), "restic tag with the host's key")
    twins = [snap for snap in repo.snapshots() if snap not in (day5, day4, day3, day2)]
    assert day1 in twins and len(twins) == 2, twins
    [tagged] = [snap for snap in twins if snap != day1]
    everything = [day5, day4, day3, day2] + twins
    args = {"jobs": [retention_job(repo)], "password": PASSWORD}

    # The host's keys: the forget is refused by the bucket policy, the cause named, nothing forgotten.
    refused = run_module("backup_retention", dict(args, access_key=rgw.addon["access_key"], secret_key=rgw.addon["secret_key"]))
    assert refused.get("failed") is True, refused
    assert "job app (host web1): the S3 keys or the file permissions are refused" in refused["msg"], refused["msg"]
    assert refused["jobs"][0]["cause"] == "denied" and rgw.addon["secret_key"] not in json.dumps(refused)
    assert sorted(repo.snapshots()) == sorted(everything)

    owner = dict(args, access_key=rgw.owner["access_key"], secret_key=rgw.owner["secret_key"])
    # Check mode: what would be forgotten - the untagged original of day 1 first (its tagged copy is the same
    # snapshot), then what the policy lets go: keep_daily 2 keeps days 2 and 1, the rule of the last good snapshot day 4.
    preview = run_module("backup_retention", owner, check_mode=True)
    assert not preview.get("failed") and preview["changed"] is True, preview
    assert set(preview["jobs"][0]["forgotten"]) == {day1, day5, day3}, preview["jobs"][0]["log"]
    assert sorted(repo.snapshots()) == sorted(everything)
    # The playbook, in check mode: the host's jobs planned from its variables as the role plans them, the module run
    # on the controller with the owner's keys; the same two snapshots would go.
    state_dir = tmp_path / "host-state"
    proc = run_playbook(rgw, PLAYBOOK, playbook_vars(rgw, cellar_bucket, state_dir), "-i", "web1,", "--check", connection_env=False)
    assert proc.returncode == 0, tail(proc.stdout + proc.stderr)
    assert day5 in proc.stdout and day3 in proc.stdout and day4 not in proc.stdout and day2 not in proc.stdout, tail(proc.stdout)
    assert '"app": ""' in proc.stdout, tail(proc.stdout)  # no state file on the host: no record
    # The host recorded day 5 as its last good snapshot (as it does when the suspect ones after it could not be
    # tagged): the playbook reads that record on the host and the retention keeps day 5 as the host's timer would.
    state_dir.mkdir()
    (state_dir / "app.state.json").write_text(json.dumps({"good_snapshot": day5[:8], "suspect": 1}))
    proc = run_playbook(rgw, PLAYBOOK, playbook_vars(rgw, cellar_bucket, state_dir), "-i", "web1,", "--check", connection_env=False)
    assert proc.returncode == 0, tail(proc.stdout + proc.stderr)
    assert '"app": "%s"' % day5[:8] in proc.stdout, tail(proc.stdout)
    assert day5 not in proc.stdout and day3 in proc.stdout and day4 not in proc.stdout and day2 not in proc.stdout, tail(proc.stdout)
    assert rgw.owner["secret_key"] not in proc.stdout + proc.stderr
    assert sorted(repo.snapshots()) == sorted(everything)

    done = run_module("backup_retention", owner)
    assert not done.get("failed") and done["changed"] is True, done
    [job] = done["jobs"]
    assert set(job["forgotten"]) == {day1, day5, day3} and job["snapshots_after"] == 3, job["log"]
    assert job["structure_check"] is True, job["log"]
    # The last good snapshot (day 4) is kept, not taken over by the untagged twin of day 1.
    left = repo.snapshots()
    assert left == [day4, day2, tagged], left
    again = run_module("backup_retention", owner)
    assert not again.get("failed") and again["changed"] is False and again["jobs"][0]["forgotten"] == [], again
    # The host still backs up after the owner's prune.
    ok(repo.as_host("backup", "--host", "web1", "--tag", "keepdata-job=app", str(data)), "a backup with the host's key after the retention")


def expire_everything():
    return {"ID": "expire-everything", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}


# ---- figures: one backup in append-only mode against the normal mode --------------------------------------------


def measured_backup(rgw, env, bucket, data):
    """Requests (by method, and any refused) and seconds of one ``restic backup`` of ``data``, through a recording proxy."""
    proxy = RecordingProxy(rgw.endpoint)
    try:
        started = time.monotonic()
        ok(restic(env, proxy.url, bucket, "backup", str(data)), "measured backup")
        seconds = time.monotonic() - started
        requests = proxy.take()
    finally:
        proxy.close()
    return {"seconds": seconds, "requests": requests, "by_method": Counter(r.method for r in requests)}


@pytest.fixture
def normal_bucket(rgw):
    """A second bucket, as buckets are today: no versioning, no policy."""
    name = "kd-test-normal-%s" % uuid.uuid4().hex[:8]
    rgw.client().create_bucket(Bucket=name)
    yield name
    delete_bucket_quietly(rgw, name)


def test_backup_requests_and_time_append_only_vs_normal(tmp_path, rgw, cellar_bucket, normal_bucket):
    append_only_bucket = cellar_bucket
    make_append_only_bucket(rgw, append_only_bucket)
    work = {mode: tmp_path / mode for mode in ("append-only", "normal")}
    for folder in work.values():
        folder.mkdir()
    envs = {"append-only": host_restic_env(rgw, str(work["append-only"])), "normal": owner_restic_env(rgw, str(work["normal"]), PASSWORD)}
    buckets = {"append-only": append_only_bucket, "normal": normal_bucket}
    for mode, env in envs.items():
        ok(restic(env, rgw.endpoint, buckets[mode], "init"), "init (%s)" % mode)
    data = tmp_path / "data"
    write_data(data, big_files=3, big_size=4 * 1024 * 1024, small_files=300)

    figures = {}
    for run in ("first", "second"):
        if run == "second":
            (data / "small-000.txt").write_bytes(b"changed before the second backup\n")
        for mode in ("append-only", "normal"):
            figures[(run, mode)] = measured_backup(rgw, envs[mode], buckets[mode], data)

    for (run, mode), measured in figures.items():
        refused = [str(r) for r in measured["requests"] if r.status >= 400]
        assert not refused, "%s backup (%s) met refusals: %s" % (run, mode, refused)
        deletes = [r.path for r in measured["requests"] if r.method == "DELETE"]
        assert deletes and all("/%s/locks/" % PREFIX in path for path in deletes), (run, mode, deletes)
    rows = ["", "one restic backup, %s of data: append-only (versioned bucket, preset, host key) vs normal (owner key)" % du(data)]
    rows.append("%-7s %-12s %8s %6s %6s %6s %6s %7s" % ("backup", "mode", "requests", "GET", "HEAD", "PUT", "DELETE", "seconds"))
    for (run, mode), measured in figures.items():
        by_method = measured["by_method"]
        rows.append(
            "%-7s %-12s %8d %6d %6d %6d %6d %7.2f"
            % (run, mode, len(measured["requests"]), by_method["GET"], by_method["HEAD"], by_method["PUT"], by_method["DELETE"], measured["seconds"])
        )
    print("\n".join(rows))


def du(folder):
    size = sum(p.stat().st_size for p in folder.iterdir())
    return "%.1f MiB in %d files" % (size / 1024.0 / 1024.0, len(list(folder.iterdir())))
