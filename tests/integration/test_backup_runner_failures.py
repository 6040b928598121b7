"""The backup runner with real restic against the real RGW (and a real full disk): a failure names its cause and
restic's own error line, in the log (what the journal and the failure notice carry) and in the job's state; S3 keys
with any printable character work through the credentials file the role writes.

The runner runs as its units run it (``python3 -I backup_runner.py run JOB``), with its secrets handed over as
systemd's LoadCredential= does (``$CREDENTIALS_DIRECTORY``); only systemd itself is not there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

from conftest import ROOT

from ansible_collections.keepdata.storage.plugins.module_utils.backup.runner import SHARED_PROGRAM
from ansible_collections.keepdata.storage.plugins.module_utils.backup.units import s3_credentials

PROGRAMS = ROOT / "plugins" / "module_utils" / "backup"
PASSWORD = "correct horse battery staple 7"  # noqa: S105 - the test repositories' password


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Job:
    """One job's configuration, secrets and state in a temporary directory, run by the real runner."""

    def __init__(self, root, repository, access_key="", secret_key="", password=PASSWORD):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.credentials = root / "credentials"
        self.credentials.mkdir(mode=0o700)
        (self.credentials / "restic-password").write_text(password + "\n")
        if access_key:
            (self.credentials / "s3-credentials").write_text(s3_credentials(access_key, secret_key))
        for name in ("jobs", "state", "cache", "data", "lib"):
            (root / name).mkdir()
        # The runner and its shared module side by side, as backup_jobs installs them on a host.
        self.runner = root / "lib" / "backup_runner.py"
        shutil.copyfile(PROGRAMS / "runner.py", self.runner)
        shutil.copyfile(PROGRAMS / "shared.py", root / "lib" / SHARED_PROGRAM)
        (root / "data" / "file.txt").write_text("some data\n")
        self.config = {
            "name": "app",
            "repository": repository,
            "repository_id": uuid.uuid4().hex[:12],
            "restic_options": ["-o", "s3.bucket-lookup=path"] if repository.startswith("s3:") else [],
            "host": "web1",
            "paths": [str(root / "data")],
            "state_dir": str(root / "state"),
            "cache_dir": str(root / "cache"),
            "password_file": str(root / "none"),
            "s3_credentials_file": str(root / "none") if access_key else "",
        }
        (root / "jobs" / "app.json").write_text(json.dumps(self.config))

    def restic(self, *args):
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root),
            "RESTIC_PASSWORD_FILE": str(self.credentials / "restic-password"),
            "RESTIC_CACHE_DIR": str(self.root / "cache"),
        }
        if (self.credentials / "s3-credentials").exists():
            env["AWS_SHARED_CREDENTIALS_FILE"] = str(self.credentials / "s3-credentials")
        return subprocess.run(
            ["restic", "-r", self.config["repository"], *self.config["restic_options"], *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def save(self, **settings):
        """The job's configuration file again, with ``settings`` changed."""
        self.config.update(settings)
        (self.root / "jobs" / "app.json").write_text(json.dumps(self.config))

    def run(self, command="run", *args):
        """The runner's ``command`` (run: a backup; forget: a retention run) on this job, with ``args`` (such as
        --tag TAG): (process, state, seconds)."""
        env = {"PATH": os.environ["PATH"], "HOME": str(self.root), "CREDENTIALS_DIRECTORY": str(self.credentials)}
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-I", str(self.runner), command, "app", *args, "--config-dir", str(self.root / "jobs")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        state = json.loads((self.root / "state" / "app.state.json").read_text())
        return proc, state, time.monotonic() - started


def s3_repository(rgw, bucket, prefix="restic/web1", endpoint=None):
    return "s3:%s/%s/%s" % (endpoint or rgw.endpoint, bucket, prefix)


def initialised(tmp_path, rgw, bucket, prefix="restic/web1"):
    job = Job(tmp_path, s3_repository(rgw, bucket, prefix), rgw.owner["access_key"], rgw.owner["secret_key"])
    init = job.restic("init")
    assert init.returncode == 0, init.stderr
    return job


def assert_failed_with(proc, state, cause, restic_words, step="restic cat config"):
    """The run failed at ``step`` (opening the repository, before any hook, unless named); its log names the cause
    and carries restic's own line; the state keeps the cause."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("backup app: error: %s failed" % step)]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("backup app: error: %s failed (exit status 1): %s (" % (step, cause)), errors[0]
    assert restic_words in errors[0], errors[0]
    assert state["last_failure_cause"] == cause
    assert state["consecutive_failures"] == 1 and state["last_exit_status"] == 1


def test_unreachable_server_is_named_with_restics_own_error(tmp_path, rgw, bucket):
    # The case: the S3 endpoint is down (connection refused). Not "no restic repository".
    job = Job(tmp_path, s3_repository(rgw, bucket, endpoint="http://127.0.0.1:%d" % closed_port()), rgw.owner["access_key"], rgw.owner["secret_key"])
    proc, state, _seconds = job.run()
    assert_failed_with(proc, state, "unreachable", "connect: connection refused")
    assert "no restic repository" not in proc.stderr


def test_a_server_that_never_answers_fails_the_job_after_its_repository_timeout(tmp_path, rgw, bucket):
    # A server that takes connections and never answers (hung, or a middlebox): restic itself would wait as long
    # as the unit lets it (restic 0.18 does the same for 15 minutes on a refused connection). The job gives up
    # after repository_timeout, as unreachable, and leaves no restic behind.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshakes; nobody ever reads or answers
        endpoint = "http://127.0.0.1:%d" % silent.getsockname()[1]
        job = Job(tmp_path, s3_repository(rgw, bucket, endpoint=endpoint), rgw.owner["access_key"], rgw.owner["secret_key"])
        job.config["repository_timeout"] = 5
        (tmp_path / "jobs" / "app.json").write_text(json.dumps(job.config))
        proc, state, seconds = job.run()
    assert proc.returncode == 1, proc.stderr
    assert "backup app: opening the repository (it has 5s to answer)" in proc.stdout, proc.stdout
    assert "backup app: error: the repository did not answer within 5s (restic cat config stopped)" in proc.stderr, proc.stderr
    assert state["last_failure_cause"] == "unreachable"
    assert 5 <= seconds < 20, seconds
    assert subprocess.run(["pgrep", "-f", "restic.*%s" % endpoint], capture_output=True, check=False).returncode == 1


def test_refused_keys_are_named_denied(tmp_path, rgw, bucket):
    initialised(tmp_path / "init", rgw, bucket)
    job = Job(tmp_path / "job", s3_repository(rgw, bucket), rgw.owner["access_key"], "not-the-secret-key")
    proc, state, _seconds = job.run()
    assert_failed_with(proc, state, "denied", "signature we calculated does not match")


def test_wrong_password_is_named(tmp_path, rgw, bucket):
    initialised(tmp_path / "init", rgw, bucket)
    job = Job(tmp_path / "job", s3_repository(rgw, bucket), rgw.owner["access_key"], rgw.owner["secret_key"], password="another password 99")  # noqa: S106
    proc, state, _seconds = job.run()
    assert_failed_with(proc, state, "wrong_password", "Fatal: wrong password or no key found")


def test_missing_repository_is_named(tmp_path, rgw, bucket):
    job = Job(tmp_path, s3_repository(rgw, bucket, "restic/never-initialised"), rgw.owner["access_key"], rgw.owner["secret_key"])
    proc, state, _seconds = job.run()
    assert_failed_with(proc, state, "missing_repository", "The specified key does not exist")


def test_a_live_lock_is_named_locked(tmp_path, rgw, bucket):
    job = initialised(tmp_path, rgw, bucket)
    # restic key passwd takes the repository's exclusive lock, then waits to read the new password from a FIFO that
    # nobody writes: a live lock of another restic on this host, which restic unlock must leave alone.
    fifo = tmp_path / "new-password"
    os.mkfifo(fifo)
    holder = subprocess.Popen(
        ["restic", "-r", job.config["repository"], "-o", "s3.bucket-lookup=path", "key", "passwd", "--new-password-file", str(fifo)],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "RESTIC_PASSWORD_FILE": str(job.credentials / "restic-password"),
            "AWS_SHARED_CREDENTIALS_FILE": str(job.credentials / "s3-credentials"),
            "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not job.restic("list", "locks", "--no-lock").stdout.strip():
            time.sleep(0.2)
        assert job.restic("list", "locks", "--no-lock").stdout.strip(), "restic key passwd took no lock"
        proc, state, _seconds = job.run()
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    # Opening the repository takes no lock: the backup is what meets the live lock.
    assert_failed_with(proc, state, "locked", "repository is already locked exclusively", step="restic backup")


def test_a_full_disk_is_named_disk_full(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True, timeout=30)
    try:
        job = Job(tmp_path / "job", str(disk / "repo"))
        init = job.restic("init")
        assert init.returncode == 0, init.stderr
        # 6 MiB that does not compress, into a 2 MiB disk.
        (tmp_path / "job" / "data" / "big.bin").write_bytes(os.urandom(6 * 1024 * 1024))
        proc, state, _seconds = job.run()
    finally:
        subprocess.run(["umount", str(disk)], check=True, timeout=30)
    assert_failed_with(proc, state, "disk_full", "no space left on device", step="restic backup")


def test_keys_with_quotes_hashes_blanks_and_backquotes_back_up(tmp_path, rgw, bucket):
    # A real RGW user's keys, which boto3 takes: go-ini would cut them at # or ; and strip quotes unless quoted.
    access_key = "KD=odd:%s#1" % uuid.uuid4().hex[:8]
    secret_key = "sp ace`x=y\"z'w\\v#u;t%s" % uuid.uuid4().hex[:8]
    assert rgw.conf, "the RGW's rgw.env names no KEEPDATA_RGW_CONF"
    added = subprocess.run(
        [
            "radosgw-admin",
            "-c",
            rgw.conf,
            "key",
            "create",
            "--uid",
            rgw.owner["uid"],
            "--key-type",
            "s3",
            "--access-key",
            access_key,
            "--secret-key",
            secret_key,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    job = Job(tmp_path, s3_repository(rgw, bucket), access_key, secret_key)
    init = job.restic("init")
    assert init.returncode == 0, init.stderr
    proc, state, _seconds = job.run()
    assert proc.returncode == 0, proc.stderr
    assert state["last_failure_cause"] == "" and state["last_exit_status"] == 0
    snapshots = json.loads(job.restic("snapshots", "--json").stdout)
    assert [s["paths"] for s in snapshots] == [[str(tmp_path / "data")]]
    # The same file with one character of the secret changed is refused: the quoting carries the key as it is.
    (job.credentials / "s3-credentials").write_text(s3_credentials(access_key, secret_key[:-1] + "x"))
    assert "signature we calculated does not match" in job.restic("snapshots").stderr


def test_paths_with_blanks_and_other_alphabets_back_up(tmp_path, rgw, bucket):
    job = initialised(tmp_path, rgw, bucket)
    odd = tmp_path / "data" / "my uploads" / "été 'quoted' $HOME"
    odd.mkdir(parents=True)
    (odd / "photo 1.jpg").write_bytes(b"jpeg")
    job.config["paths"] = [str(tmp_path / "data" / "my uploads")]
    (tmp_path / "jobs" / "app.json").write_text(json.dumps(job.config))
    proc, _state, _seconds = job.run()
    assert proc.returncode == 0, proc.stderr
    listing = job.restic("ls", "latest").stdout.splitlines()
    assert str(odd / "photo 1.jpg") in listing


def test_a_data_pack_deleted_from_the_bucket_is_found_by_the_next_retention_run(tmp_path, rgw, bucket, recording_proxy):
    """Backups deduplicate against restic's index, so they never notice a pack gone from the bucket; the structural
    check in the repository's first job's retention run does, that same day: the run fails with restic's own line
    naming the pack, before prune, and the state and metrics say so. Through a recording proxy, to tell what the
    check costs a retention run."""
    job = Job(tmp_path, s3_repository(rgw, bucket, endpoint=recording_proxy.url), rgw.owner["access_key"], rgw.owner["secret_key"])
    assert job.restic("init").returncode == 0
    job.save(prune=True, retention={"keep_daily": 7}, metrics_dir=str(tmp_path / "metrics"))
    (tmp_path / "metrics").mkdir()
    for index in range(3):
        (tmp_path / "data" / ("blob-%d.bin" % index)).write_bytes(os.urandom(300_000))
    proc, state, _seconds = job.run()
    assert proc.returncode == 0 and state["last_exit_status"] == 0, proc.stderr

    # The same retention run without the check, then with it: what the check adds.
    recording_proxy.take()
    proc, state, plain = job.run("forget")
    assert proc.returncode == 0 and state["last_structure_check"] == 0, proc.stderr
    plain_requests = len(recording_proxy.take())
    job.save(check_structure=True)
    proc, state, sound = job.run("forget")
    assert proc.returncode == 0, proc.stderr
    checked_requests = len(recording_proxy.take())
    assert state["structure_check_exit_status"] == 0 and state["last_structure_check_success"] > 0, state
    assert "restic check done" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

    client = rgw.client()
    packs = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="restic/web1/data/").get("Contents", [])]
    assert packs, "the backup wrote no data pack"
    biggest = max(packs, key=lambda key: client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    client.delete_object(Bucket=bucket, Key=biggest)
    pack_id = biggest.rsplit("/", 1)[1]

    # What the next backup of unchanged data says: nothing wrong (the blind spot the check closes).
    proc, state, _seconds = job.run()
    assert proc.returncode == 0 and state["last_exit_status"] == 0, proc.stderr

    proc, state, damaged = job.run("forget")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log
    assert state["structure_check_exit_status"] == 1 and state["last_structure_check_success"] < state["last_structure_check"], state
    assert state["forget_failure_cause"] == "damaged", state
    assert pack_id[:8] in log, log
    assert "forget app: error: restic check failed (exit status 1): damaged (restic check found damage in the repository)" in log, log
    # A damaged repository is not pruned.
    assert "prune done" not in log, log
    metrics = (tmp_path / "metrics" / "keepdata_backup_app.prom").read_text()
    assert 'keepdata_backup_structure_check_last_result{backup_job="app"} 1' in metrics, metrics
    print(
        "retention run of a %d-pack repository: %.1f s and %d requests without the check, %.1f s and %d with it; %.1f s when damaged"
        % (len(packs), plain, plain_requests, sound, checked_requests, damaged)
    )
