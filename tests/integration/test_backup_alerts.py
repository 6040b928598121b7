# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup alerts fire in a real Prometheus from metrics the runner really wrote (issue 32, item 7).

Six hosts, each a job of the real runner with real restic on the real RGW (test_backup_runner_failures.Job) and a real
node_exporter serving only its textfile directory; one real Prometheus scrapes them every second and evaluates
roles/backup_monitoring/files/keepdata_backup.rules.yml, the file itself, every second. Each host's job is brought
to one situation by real runs, and time passes for real: the jobs' thresholds (max_age, drill_max_age), which the
role derives from their schedules and writes in their configuration, are AGE seconds there, as for a schedule of
a few seconds:

- stopped: one good backup, then nothing for AGE seconds: KeepdataBackupLate and KeepdataBackupNotRunning.
- failing: one good backup, then a run that fails (its S3 key revoked) before AGE is over: late but still running,
  so KeepdataBackupLate and KeepdataBackupFailed, not KeepdataBackupNotRunning.
- partial: a snapshot that misses a directory restic cannot enter: a FUSE mount of another user (as a user's sshfs
  or gvfs mount under /home), which the kernel refuses to root itself; restic exits 3: KeepdataBackupPartial.
- retention: a backup, then a retention run that fails because a ``restic mount`` of the repository, left running
  to browse the snapshots, holds a live lock that forget's exclusive lock cannot pass (backups pass it):
  KeepdataBackupRetentionFailed.
- drill: a good backup and a good restore drill, then no drill for AGE seconds: KeepdataBackupDrillTooOld.
- healthy: a good backup, and beside its metrics a textfile of another tool caught half-written, which node_exporter
  cannot parse (node_textfile_scrape_error): KeepdataBackupMetricsUnreadable. The runner itself cannot cause it: it
  writes its file under another name and renames it into place, so node_exporter never sees it half-written.

KeepdataBackupPartial and KeepdataBackupRetentionFailed have no ``for:`` and must be firing. Late, NotRunning,
Failed, DrillTooOld and MetricsUnreadable wait 5 minutes (``for: 5m``) before they fire, longer than this test
waits: they are asserted pending, and their rules' 5 minutes asserted to be what holds them. That proves their
expression true on the real metrics; that they then fire is Prometheus's ``for:``, not proven here. Every host's
alerts are asserted exactly: none missing, none more.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT, tail
from test_backup_runner_failures import Job, closed_port, s3_repository

from ansible_collections.keepdata.storage.plugins.module_utils.backup.units import s3_credentials

CACHE = Path(os.environ.get("KEEPDATA_CACHE") or "/var/cache/keepdata")
PROMETHEUS = CACHE / "prometheus-tools" / "usr" / "bin" / "prometheus"
NODE_EXPORTER = CACHE / "node-exporter" / "usr" / "bin" / "prometheus-node-exporter"
RULES = ROOT / "roles" / "backup_monitoring" / "files" / "keepdata_backup.rules.yml"
# The jobs' thresholds in seconds (the least the test waits): the failing job's good run is that old before its
# failed run is (it fails once the others' runs are done, some 10 s), so it looks running all along.
AGE = 20
# Seconds for Prometheus to scrape a change and evaluate the rules on it (each every second), with room to spare.
MARGIN = 5
HOSTS = ("stopped", "failing", "partial", "retention", "drill", "healthy")
EXPECTED = {
    ("stopped", "KeepdataBackupLate", "pending"),
    ("stopped", "KeepdataBackupNotRunning", "pending"),
    ("failing", "KeepdataBackupLate", "pending"),
    ("failing", "KeepdataBackupFailed", "pending"),
    ("partial", "KeepdataBackupPartial", "firing"),
    ("retention", "KeepdataBackupRetentionFailed", "firing"),
    ("drill", "KeepdataBackupDrillTooOld", "pending"),
    ("healthy", "KeepdataBackupMetricsUnreadable", "pending"),
}
# What another tool's textfile looks like when node_exporter reads it while it is being written (no rename).
HALF_WRITTEN = '# HELP cron_rotate_last_success_timestamp_seconds Last log rotation.\ncron_rotate_last_success_timestamp_seconds{job="rot'


def http_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http://127.0.0.1 only
        return json.load(response)


class Daemons:
    """Processes started for one test, each stopped by its own id when the test ends."""

    def __init__(self):
        self.running = []

    def start(self, name, argv, log, ready, env=None):
        """Start ``argv`` (output to ``log``, environment ``env``, default this one's) and wait until ``ready()`` is
        true; fails when it exits before."""
        with open(log, "w", encoding="utf-8") as handle:
            proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self.running.append(proc)
        deadline = time.monotonic() + 30
        while not ready():
            if proc.poll() is not None:
                pytest.fail("%s exited with status %d:\n%s" % (name, proc.returncode, tail(Path(log).read_text(errors="replace"), 20)))
            if time.monotonic() > deadline:
                pytest.fail("%s was not ready after 30 s:\n%s" % (name, tail(Path(log).read_text(errors="replace"), 20)))
            time.sleep(0.1)
        return proc

    def stop(self):
        for proc in reversed(self.running):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def answers(url):
    def ready():
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - http://127.0.0.1 only
                return True
        except OSError:
            return False

    return ready


@pytest.fixture
def daemons():
    running = Daemons()
    try:
        yield running
    finally:
        running.stop()


def mounted(path):
    """Whether ``path`` is a mount point (from the mount table: a FUSE mount of another user cannot be stat'ed)."""
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        return any(line.split()[1] == str(path) for line in handle)


@pytest.fixture
def fuse_mounts(daemons, tmp_path):
    """mount(name, argv, path, env=None): the FUSE daemon ``argv`` started, until it has mounted ``path``."""
    points = []

    def mount(name, argv, path, env=None):
        path.mkdir()
        points.append(path)
        log = tmp_path / ("%s-%d.log" % (name.replace(" ", "-"), len(points)))
        daemons.start(name, argv, log, lambda: mounted(path), env=env)

    try:
        yield mount
    finally:
        # Unmounted before the daemons stop: a FUSE daemon then exits by itself (restic mount leaves its mount
        # behind when it is terminated).
        for path in points:
            if mounted(path):
                subprocess.run(["umount", str(path)], check=False, timeout=30)
            if mounted(path):
                # A daemon that died leaves its mount unable to answer: detached all the same.
                subprocess.run(["umount", "--lazy", str(path)], check=False, timeout=30)


def mount_as_another_user(fuse_mounts, rgw, bucket, path, work):
    """An s3fs mount of the test bucket at ``path`` that belongs to user nobody, without allow_other.

    /dev/fuse is root's only on this machine, so nobody cannot mount it himself: s3fs keeps root's effective uid and
    runs with nobody's real uid, which libfuse hands the kernel as the mount's owner. The mount is then what a
    user's own sshfs or gvfs mount is, which the kernel refuses to every other user, root included. Its keys file
    goes in ``work``."""
    nobody = pwd.getpwnam("nobody")
    passwords = work / "s3fs-passwd"
    passwords.write_text("%s:%s\n" % (rgw.owner["access_key"], rgw.owner["secret_key"]))
    passwords.chmod(0o600)
    s3fs = ["/usr/bin/s3fs", bucket, str(path), "-f", "-o", "url=%s,use_path_request_style,passwd_file=%s" % (rgw.endpoint, passwords)]
    fuse_mounts("s3fs", ["/usr/bin/setpriv", "--ruid=%d" % nobody.pw_uid, "--rgid=%d" % nobody.pw_gid, "--clear-groups", *s3fs], path)


def browse_with_restic_mount(fuse_mounts, job, path):
    """``restic mount`` of the job's repository at ``path``, as someone browsing its snapshots: it holds a restic lock
    (not exclusive) as long as it runs."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(job.root),
        "RESTIC_PASSWORD_FILE": str(job.credentials / "restic-password"),
        "RESTIC_CACHE_DIR": str(job.root / "cache"),
        "AWS_SHARED_CREDENTIALS_FILE": str(job.credentials / "s3-credentials"),
    }
    fuse_mounts("restic mount", ["restic", "-r", job.config["repository"], *job.config["restic_options"], "mount", str(path)], path, env=env)


class Prometheus:
    """A Prometheus on loopback scraping ``targets`` (address: host) and evaluating RULES, every second."""

    def __init__(self, daemons, work, targets):
        self.targets = targets
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "node", "static_configs": [{"targets": sorted(targets)}]}],
        }
        (work / "prometheus.yml").write_text(json.dumps(config))
        self.url = "http://127.0.0.1:%d" % closed_port()
        argv = [
            str(PROMETHEUS),
            "--config.file=%s" % (work / "prometheus.yml"),
            "--storage.tsdb.path=%s" % (work / "tsdb"),
            "--web.listen-address=%s" % self.url[len("http://") :],
        ]
        daemons.start("prometheus", argv, work / "prometheus.log", answers(self.url + "/-/ready"))

    def alerts(self):
        """{(host, alertname, state)} of every alert pending or firing, and the alerts as the API gives them."""
        listed = http_json(self.url + "/api/v1/alerts")["data"]["alerts"]
        return {(self.targets[a["labels"]["instance"]], a["labels"]["alertname"], a["state"]) for a in listed}, listed

    def waits(self):
        """{alertname: its rule's ``for:`` in seconds} of the rules Prometheus loaded."""
        groups = http_json(self.url + "/api/v1/rules?type=alert")["data"]["groups"]
        return {rule["name"]: rule["duration"] for group in groups for rule in group["rules"]}

    def values(self, query):
        """{host: value} of the instant vector ``query``."""
        found = http_json(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": query}))["data"]["result"]
        return {self.targets[series["metric"]["instance"]]: float(series["value"][1]) for series in found}


@pytest.fixture
def monitoring(daemons, tmp_path):
    """({host: its textfile directory}, Prometheus): a node_exporter per host, with its textfile collector alone."""
    for program in (PROMETHEUS, NODE_EXPORTER):
        if not program.is_file():
            pytest.fail("%s is missing: run scripts/bootstrap.sh, which unpacks it from Debian's packages" % program)
    directories, targets = {}, {}
    for host in HOSTS:
        directories[host] = tmp_path / "textfiles" / host
        directories[host].mkdir(parents=True)
        address = "127.0.0.1:%d" % closed_port()
        argv = [
            str(NODE_EXPORTER),
            "--collector.disable-defaults",
            "--collector.textfile",
            "--collector.textfile.directory=%s" % directories[host],
            "--web.listen-address=%s" % address,
        ]
        daemons.start("node_exporter of %s" % host, argv, tmp_path / ("node-exporter-%s.log" % host), answers("http://%s/metrics" % address))
        targets[address] = host
    return directories, Prometheus(daemons, tmp_path, targets)


def ran(job, command="run", status=0):
    """The runner's ``command`` on ``job``, which must exit with ``status``; its state."""
    proc, state, _seconds = job.run(command)
    assert proc.returncode == status, "%s %s: %s" % (command, job.root.name, proc.stdout + proc.stderr)
    return state


class Situations:
    """The hosts' jobs, each brought to its situation by real runs (the module's docstring says which)."""

    def __init__(self, tmp_path, rgw, bucket, directories, fuse_mounts):
        self.tmp_path, self.rgw, self.bucket, self.fuse_mounts = tmp_path, rgw, bucket, fuse_mounts
        self.jobs = {}
        for host in HOSTS:
            self.jobs[host] = Job(tmp_path / host, s3_repository(rgw, bucket, "restic/" + host), rgw.owner["access_key"], rgw.owner["secret_key"])
            self.jobs[host].save(metrics_dir=str(directories[host]))
        self.jobs["stopped"].save(max_age=AGE)
        self.jobs["failing"].save(max_age=AGE)
        self.jobs["drill"].save(drill_max_age=AGE)
        self.jobs["healthy"].save(max_age=3600)
        (directories["healthy"] / "cron_rotate.prom").write_text(HALF_WRITTEN)
        self.states = {}
        self.others_done = threading.Event()

    def stopped(self):
        self.states["stopped"] = ran(self.jobs["stopped"])

    def failing(self):
        job = self.jobs["failing"]
        ran(job)
        # It fails once every other host's runs are done, and a margin later: their alerts are then all due while
        # this job still looks running (its last run less than AGE old), and it is late once its success is.
        self.others_done.wait(timeout=600)
        time.sleep(MARGIN)
        (job.credentials / "s3-credentials").write_text(s3_credentials(self.rgw.owner["access_key"], "revoked-" + self.rgw.owner["secret_key"]))
        self.states["failing"] = ran(job, status=1)

    def partial(self):
        mount = self.tmp_path / "partial" / "data" / "user-mount"
        mount_as_another_user(self.fuse_mounts, self.rgw, self.bucket, mount, self.tmp_path)
        proc, self.states["partial"], _seconds = self.jobs["partial"].run()
        log = proc.stdout + proc.stderr
        # A success for the schedule, whose log names what is missing (restic 0.14's JSON drops why: "error": {}).
        assert proc.returncode == 0 and "partial snapshot, some files could not be read: %s (during scan)" % mount in log, log

    def retention(self):
        ran(self.jobs["retention"])
        browse_with_restic_mount(self.fuse_mounts, self.jobs["retention"], self.tmp_path / "retention" / "browsed")
        self.states["retention"] = ran(self.jobs["retention"], "forget", status=1)

    def drill(self):
        ran(self.jobs["drill"])
        self.states["drill"] = ran(self.jobs["drill"], "drill")

    def healthy(self):
        self.states["healthy"] = ran(self.jobs["healthy"])

    def _initialised(self, step):
        assert self.jobs[step.__name__].restic("init").returncode == 0
        step()

    def brought_about(self):
        """Every host's runs beside the others', as on six machines; {host: its job's state}."""
        with ThreadPoolExecutor(max_workers=len(HOSTS)) as pool:
            failed = pool.submit(self._initialised, self.failing)
            try:
                for future in [pool.submit(self._initialised, step) for step in (self.stopped, self.partial, self.retention, self.drill, self.healthy)]:
                    future.result()
            finally:
                self.others_done.set()
            failed.result()
        return self.states


def test_every_alert_from_real_runs(tmp_path, rgw, bucket, monitoring, fuse_mounts):
    directories, prometheus = monitoring
    states = Situations(tmp_path, rgw, bucket, directories, fuse_mounts).brought_about()

    # The runs are what each situation says.
    assert states["failing"]["last_failure_cause"] == "denied" and states["failing"]["consecutive_failures"] == 1, states["failing"]
    assert states["retention"]["forget_failure_cause"] == "locked", states["retention"]
    assert states["partial"]["last_exit_status"] == 3 and states["partial"]["partial"] == 1, states["partial"]
    assert states["retention"]["last_forget_exit_status"] == 1 and states["retention"]["last_exit_status"] == 0, states["retention"]
    assert states["drill"]["drill_exit_status"] == 0 and states["drill"]["last_drill_success"] > 0, states["drill"]

    # Until the failing job's last run is AGE old (then it is "not running" too), every alert must come.
    deadline = states["failing"]["last_run"] + AGE - 1
    seen, listed = prometheus.alerts()
    while seen != EXPECTED and time.time() < deadline:
        time.sleep(0.5)
        seen, listed = prometheus.alerts()
    assert seen == EXPECTED, "missing: %s; unexpected: %s" % (sorted(EXPECTED - seen), sorted(seen - EXPECTED))
    print("every alert as expected %.1f s before the failing job would look stopped" % (deadline + 1 - time.time()))

    # Pending exactly where the rule waits 5 minutes (for:) before it fires, firing where it does not wait.
    waits = prometheus.waits()
    assert {(host, name, "pending" if waits[name] else "firing") for host, name, _state in EXPECTED} == EXPECTED, waits
    assert {waits[name] for _host, name, state in EXPECTED if state == "pending"} == {300}, waits
    # The backup alerts carry their job; MetricsUnreadable is node_exporter's own and has none.
    for alert in listed:
        expected_job = None if alert["labels"]["alertname"] == "KeepdataBackupMetricsUnreadable" else "app"
        assert alert["labels"].get("backup_job") == expected_job, alert
    # Prometheus holds what the runner wrote: the same times as the jobs' states, the broken file notwithstanding.
    last_success = prometheus.values("keepdata_backup_last_success_timestamp_seconds")
    assert last_success == {host: float(state["last_success"]) for host, state in states.items()}, last_success
    assert prometheus.values("node_textfile_scrape_error") == {host: (1.0 if host == "healthy" else 0.0) for host in HOSTS}
    # The ages the alerts give are past the jobs' AGE.
    ages = {(prometheus.targets[alert["labels"]["instance"]], alert["labels"]["alertname"]): float(alert["value"]) for alert in listed}
    aged = [("stopped", "KeepdataBackupLate"), ("stopped", "KeepdataBackupNotRunning"), ("failing", "KeepdataBackupLate")]
    aged.append(("drill", "KeepdataBackupDrillTooOld"))
    assert all(ages[key] > AGE for key in aged), ages
