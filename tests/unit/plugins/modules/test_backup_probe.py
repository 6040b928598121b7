# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The read-only preflight of the backup role (keepdata.storage.backup_probe): each check on temporary directories,
loopback ports and scripted commands (systemd-analyze, dpkg-query, restic version)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import subprocess

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.backup import probe as probe_logic
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import systemd_escape_path
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.probe import calendar_gap
from ansible_collections.keepdata.storage.plugins.modules import backup_probe as bp
from ansible_collections.keepdata.storage.tests.unit.plugins.compat import patch_module_args

FSTAB = """# /etc/fstab
UUID=1111 / ext4 errors=remount-ro 0 1
UUID=2222 /srv ext4 defaults 0 2
UUID=3333 none swap sw 0 0
nas:/export /mnt/backup nfs _netdev 0 0
nas:/deep /mnt/backup/restic/deep nfs _netdev 0 0
#nas:/old /mnt/backup/restic nfs _netdev 0 0
//nas/with\\040space /mnt/with\\040space cifs _netdev 0 0
"""


# What systemd-analyze calendar --iterations printed on a Debian 12 host (shortened to three elapses), in UTC and in
# a zone with daylight saving time (where the "(in UTC)" lines count).
ELAPSES = {
    "daily": """  Original form: daily
Normalized form: *-*-* 00:00:00
    Next elapse: Thu 2026-12-03 00:00:00 UTC
       From now: 22h left
       Iter. #2: Fri 2026-12-04 00:00:00 UTC
       From now: 1 day 22h left
       Iter. #3: Sat 2026-12-05 00:00:00 UTC
       From now: 2 days left
""",
    "Mon..Fri 02:00": """  Original form: Mon..Fri 02:00
Normalized form: Mon..Fri *-*-* 02:00:00
    Next elapse: Thu 2026-12-03 02:00:00 UTC
       From now: 24h left
       Iter. #2: Fri 2026-12-04 02:00:00 UTC
       From now: 2 days left
       Iter. #3: Mon 2026-12-07 02:00:00 UTC
       From now: 5 days left
""",
    "*-*-* 03:00:00": """  Original form: *-*-* 03:00:00
Normalized form: *-*-* 03:00:00
    Next elapse: Sat 2027-03-27 03:00:00 CET
       (in UTC): Sat 2027-03-27 02:00:00 UTC
       From now: 3 months left
       Iter. #2: Sun 2027-03-28 03:00:00 CEST
       (in UTC): Sun 2027-03-28 01:00:00 UTC
       From now: 3 months left
""",
}


class FakeCommands:
    """Answers systemd-analyze (a set of accepted expressions), dpkg-query (installed packages) and restic version."""

    def __init__(
        self, calendars=("daily", "*-*-* 03:00:00", "Mon..Fri 02:00"), installed=("restic",), version="restic 0.14.0 compiled with go1.19.8 on linux/amd64"
    ):
        self.calendars, self.installed, self.version = set(calendars), set(installed), version
        self.calls = []

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        name = os.path.basename(argv[0])
        if name == "systemd-analyze":
            assert argv[1:4] == ["calendar", "--iterations=16", "--"]
            ok = argv[4] in self.calendars
            return subprocess.CompletedProcess(
                argv, 0 if ok else 1, ELAPSES.get(argv[4], "") if ok else "", "" if ok else "Failed to parse calendar specification"
            )
        if name == "dpkg-query":
            lines = ["%s %s" % (p, "ii " if p in self.installed else "un ") for p in argv[3:]]
            return subprocess.CompletedProcess(argv, 0, "\n".join(lines) + "\n", "")
        if name == "restic":
            return subprocess.CompletedProcess(argv, 0, self.version + "\n", "")
        raise AssertionError("unexpected command %s" % argv)


def which_all(name):
    return "/usr/bin/" + name


def request(**extra):
    base = {
        "caller": "keepdata.storage.backup",
        "paths": [],
        "repository_path": "",
        "allow_same_device": False,
        "schedules": [],
        "packages": [],
        "ports": [],
        "timeout": 2,
        "sqlite_paths": [],
    }
    base.update(extra)
    return base


@pytest.fixture
def host(tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text(FSTAB)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    return {"tmp": tmp_path, "fstab": str(fstab), "mountinfo": str(mountinfo)}


def probe(host, fake=None, which=which_all, **extra):
    return probe_logic.probe(request(**extra), run=fake or FakeCommands(), which=which, fstab=host["fstab"], mountinfo=host["mountinfo"])


@pytest.mark.parametrize(
    ("path", "mount"),
    [
        ("/mnt/backup/restic", "/mnt/backup"),
        ("/mnt/backup", "/mnt/backup"),
        ("/mnt/backup/", "/mnt/backup"),
        ("/mnt/backup/restic/deep/x", "/mnt/backup/restic/deep"),
        ("/mnt/backupx/restic", ""),  # a prefix of the name is not a parent
        ("/srv/backups", "/srv"),
        ("/var/backups", ""),  # only / holds it, and / does not count
        ("/mnt/with space/r", "/mnt/with space"),
        ("", ""),
    ],
)
def test_fstab_longest_match(path, mount):
    assert probe_logic.fstab_mount_of(FSTAB, path) == mount


def test_nothing_asked_nothing_wrong(host):
    facts, problems, warnings = probe(host)
    assert facts == {
        "restic_version": "0.14.0",
        "missing": [],
        "repository_mount": "",
        "repository_mounted": False,
        "repository_mount_unit": "",
        "same_device": [],
        "schedule_gaps": {},
    }
    assert problems == [] and warnings == []


def test_restic_absent_and_missing_packages(host):
    fake = FakeCommands(installed=("fuse3",))
    facts, problems, _warnings = probe(host, fake, which=lambda name: None if name == "restic" else "/usr/bin/" + name, packages=["restic", "fuse3"])
    assert facts["restic_version"] == "" and facts["missing"] == ["restic"]
    assert problems == []
    assert not any(os.path.basename(argv[0]) == "restic" for argv in fake.calls)


def test_missing_backup_path_and_sqlite_files(host):
    tmp = host["tmp"]
    (tmp / "data").mkdir()
    (tmp / "app.sqlite3").write_text("")
    facts, problems, _warnings = probe(
        host,
        paths=[{"option": "backup_paths", "path": str(tmp / "data")}, {"option": "backup_jobs[1].paths", "path": str(tmp / "gone")}],
        sqlite_paths=[
            {"option": "db[0].path", "path": str(tmp / "app.sqlite3")},
            {"option": "db[1].path", "path": str(tmp / "none.sqlite3")},
            {"option": "db[2].path", "path": str(tmp / "data")},
        ],
    )
    assert problems == [
        'backup_jobs[1].paths: "%s" does not exist' % (tmp / "gone"),
        'db[1].path: SQLite database "%s" does not exist' % (tmp / "none.sqlite3"),
        'db[2].path: SQLite database "%s" is not a regular file' % (tmp / "data"),
    ]


def test_same_device_is_a_problem_unless_allowed(host):
    tmp = host["tmp"]
    (tmp / "data").mkdir()
    repository = str(tmp / "repo" / "not" / "yet")  # the deepest existing part (tmp) gives the device
    paths = [{"option": "backup_paths", "path": str(tmp / "data")}]
    facts, problems, _warnings = probe(host, paths=paths, repository_path=repository)
    assert facts["same_device"] == [str(tmp / "data")]
    assert problems == [
        'backup_paths: "%s" is on the same device as the repository %s, so one disk failure would take both (allow_same_device accepts it)'
        % (tmp / "data", repository)
    ]
    facts, problems, _warnings = probe(host, paths=paths, repository_path=repository, allow_same_device=True)
    assert facts["same_device"] == [str(tmp / "data")] and problems == []


def test_other_device_is_fine(host):
    tmp = host["tmp"]
    (tmp / "data").mkdir()
    assert os.stat("/proc").st_dev != os.stat(str(tmp)).st_dev
    facts, problems, _warnings = probe(host, paths=[{"option": "p", "path": str(tmp / "data")}], repository_path="/proc/keepdata-none/restic")
    assert facts["same_device"] == [] and problems == []


def unmounted_repository(host, fstab_options):
    """(mount point, paths): a backup path, and an fstab mount (with ``fstab_options``) that is not mounted."""
    tmp = host["tmp"]
    (tmp / "data").mkdir()
    mount = tmp / "mnt"
    (tmp / "fstab").write_text(FSTAB + "nas:/x %s nfs %s 0 0\n" % (mount, fstab_options))
    return mount, [{"option": "p", "path": str(tmp / "data")}]


def test_a_repository_under_an_unmounted_fstab_mount_point_is_refused(host):
    mount, paths = unmounted_repository(host, "_netdev,noauto")
    facts, problems, warnings = probe(host, paths=paths, repository_path=str(mount / "restic"), mount_repository_option="backup_mount_repository")
    assert facts["repository_mount"] == str(mount) and facts["repository_mounted"] is False
    unit = systemd_escape_path(str(mount)) + ".mount"
    assert facts["repository_mount_unit"] == unit
    # Nothing may be written under the bare mount point: the probe fails, naming the mount and the way out.
    assert problems == [
        'the repository "%s/restic" is under the fstab mount point %s, which is not mounted: nothing is written there, since a repository '
        "created now would land on the disk under the mount point and be hidden once the mount comes up (mount it, for example with "
        "systemctl start %s, or set backup_mount_repository to mount it first)" % (mount, mount, unit)
    ]
    assert warnings == []


def test_unmounted_repository_disk_the_caller_mounts_skips_the_device_check(host):
    mount, paths = unmounted_repository(host, "_netdev")
    facts, problems, warnings = probe(host, paths=paths, repository_path=str(mount / "restic"), mount_repository=True)
    assert facts["repository_mount"] == str(mount) and facts["repository_mounted"] is False
    assert problems == [] and facts["same_device"] == []
    assert warnings == ["the repository's disk %s is not mounted yet: whether the backup paths share its device is not checked" % mount]
    # Once mounted (here: listed in mountinfo, on tmp's device), the check runs.
    with open(host["mountinfo"], "a") as handle:
        handle.write("40 22 0:50 / %s rw - nfs nas:/x rw\n" % mount)
    facts, problems, warnings = probe(host, paths=paths, repository_path=str(mount / "restic"))
    assert facts["repository_mounted"] is True and warnings == []
    assert facts["same_device"] == [str(host["tmp"] / "data")] and len(problems) == 1


def test_relative_repository_path(host):
    _facts, problems, _warnings = probe(host, repository_path="backups/restic")
    assert problems == ['repository_path "backups/restic" must be an absolute path']


def test_schedules(host):
    fake = FakeCommands()
    schedules = [
        {"option": "backup_schedule", "value": "daily"},
        {"option": "backup_jobs[0].schedule", "value": "every tuesday-ish"},
        {"option": "backup_forget_schedule", "value": "daily\n"},
    ]
    facts, problems, warnings = probe(host, fake, schedules=schedules)
    assert problems == [
        'backup_jobs[0].schedule "every tuesday-ish" is not a calendar expression systemd accepts',
        'backup_forget_schedule "daily\n" is not a calendar expression systemd accepts',
    ]
    assert warnings == []
    assert ["/usr/bin/systemd-analyze", "calendar", "--iterations=16", "--", "daily"] in fake.calls
    assert facts["schedule_gaps"] == {"daily": 86400}
    assert len([c for c in fake.calls if "calendar" in c]) == 2  # the control character is refused without a call


def test_schedule_gaps_are_the_longest_time_between_two_runs(host):
    schedules = [{"option": "a", "value": "Mon..Fri 02:00"}, {"option": "b", "value": "*-*-* 03:00:00"}]
    facts, problems, _warnings = probe(host, schedules=schedules)
    assert problems == []
    # The weekend of a weekday schedule; a daily run on the night the clocks go forward is 23 h after the last.
    assert facts["schedule_gaps"] == {"Mon..Fri 02:00": 3 * 86400, "*-*-* 03:00:00": 23 * 3600}


@pytest.mark.parametrize(
    ("output", "gap"),
    [("", 0), (ELAPSES["daily"].split("       Iter. #2", maxsplit=1)[0], 0), (ELAPSES["daily"], 86400), ("garbage\nIter. #2: soon\n", 0)],
)
def test_calendar_gap_needs_two_elapses(output, gap):
    assert calendar_gap(output) == gap


def as_systemd_257(output):
    """What systemd 257 (Debian 13) prints for the same question: the same lines, but "Iteration #K:" where systemd 252
    printed "Iter. #K:" (seen on Debian 13 test hosts, in UTC and in Europe/Paris). Read as no gap, every job's alert
    threshold was 0, which means no lateness alert at all."""
    return output.replace("       Iter. #", "   Iteration #")


@pytest.mark.parametrize(("schedule", "gap"), [("daily", 86400), ("Mon..Fri 02:00", 3 * 86400), ("*-*-* 03:00:00", 23 * 3600)])
def test_calendar_gap_reads_systemd_257(schedule, gap):
    output = as_systemd_257(ELAPSES[schedule])
    assert "Iteration #2: " in output
    assert calendar_gap(output) == gap


def test_textfile_dir_of_an_existing_node_exporter_must_exist(host):
    there = host["tmp"] / "textfile"
    there.mkdir()
    assert probe(host, textfile_dir=str(there), textfile_dir_option="backup_metrics_dir")[1] == []
    _facts, problems, _warnings = probe(host, textfile_dir=str(host["tmp"] / "absent"), textfile_dir_option="backup_metrics_dir")
    assert problems == [
        'backup_metrics_dir "%s" is not a directory: it must be the textfile directory of the node_exporter that runs on this host '
        "(or let the role install one)" % (host["tmp"] / "absent")
    ]


def test_schedules_skipped_without_systemd_analyze(host):
    fake = FakeCommands()
    _facts, problems, warnings = probe(
        host, fake, which=lambda name: None if name == "systemd-analyze" else "/usr/bin/" + name, schedules=[{"option": "s", "value": "nonsense"}]
    )
    assert problems == []
    assert warnings == ["systemd-analyze is not installed: the schedules are not checked"]


def test_ports_on_loopback(host):
    server = socket.create_server(("127.0.0.1", 0))
    open_port = server.getsockname()[1]
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        _facts, problems, _warnings = probe(host, ports=["127.0.0.1:%d" % open_port, "127.0.0.1:%d" % closed_port, "no-port"])
    finally:
        server.close()
    assert len(problems) == 1
    assert problems[0].startswith("not reachable: 127.0.0.1:%d (" % closed_port)
    assert problems[0].endswith("; no-port (not host:port)")


def test_module_lists_every_problem_in_one_message(tmp_path, capsys, monkeypatch):
    fake = FakeCommands()
    monkeypatch.setattr(probe_logic.subprocess, "run", fake)
    monkeypatch.setattr(probe_logic.shutil, "which", which_all)
    args = request(
        paths=[{"option": "backup_paths", "path": str(tmp_path / "gone")}],
        schedules=[{"option": "backup_schedule", "value": "never"}],
        packages=["restic", "sqlite3"],
        _ansible_check_mode=True,
    )
    with patch_module_args(args), pytest.raises(SystemExit):
        bp.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True and result["changed"] is False
    assert result[
        "msg"
    ] == 'keepdata.storage.backup: backup_paths: "%s" does not exist; backup_schedule "never" is not a calendar expression systemd accepts' % (
        tmp_path / "gone"
    )
    assert result["missing"] == ["sqlite3"] and result["restic_version"] == "0.14.0"


def test_module_passes_and_warns(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(probe_logic.subprocess, "run", FakeCommands())
    monkeypatch.setattr(probe_logic.shutil, "which", lambda name: None)
    args = request(paths=[{"option": "backup_paths", "path": str(tmp_path)}], schedules=[{"option": "s", "value": "daily"}])
    with patch_module_args(args), pytest.raises(SystemExit):
        bp.main()
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is False and "failed" not in result
    assert result["restic_version"] == "" and result["same_device"] == []
    assert "systemd-analyze is not installed: the schedules are not checked" in json.dumps(result["warnings"])
