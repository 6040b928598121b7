# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""mount_health: the look at a mount point (a real child process), healing and the timer's program.

A real dead or hung FUSE mount needs FUSE and systemd: the Molecule scenarios mounts and s3fs kill the daemons
and pause the servers. Here the child's answer is replaced (errno numbers, a sleep) and systemd is a fake.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import time

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.mounts import health as mh


def child_answering(monkeypatch, number):
    """The child reports ``number`` as the error of its stat, as it would on a broken mount."""
    monkeypatch.setattr(mh, "_LOOK", "import os, sys\nprint(%d, os.strerror(%d))\nsys.exit(3)\n" % (number, number))


def test_a_directory_answers(tmp_path):
    assert mh.look(str(tmp_path), 5) == (mh.HEALTHY, "")


def test_a_missing_path_is_an_error_not_a_dead_mount(tmp_path):
    state, detail = mh.look(str(tmp_path / "nothing"), 5)
    assert state == "error" and "No such file" in detail


def test_enotconn_is_dead(tmp_path, monkeypatch):
    child_answering(monkeypatch, errno.ENOTCONN)
    assert mh.look(str(tmp_path), 5) == (mh.DEAD, "Transport endpoint is not connected")


def test_econnaborted_is_dead(tmp_path, monkeypatch):
    child_answering(monkeypatch, errno.ECONNABORTED)
    assert mh.look(str(tmp_path), 5)[0] == mh.DEAD


def test_eio_is_not_dead(tmp_path, monkeypatch):
    """s3fs answers EIO while its server is down: remounting then would unmount a mount that recovers by itself."""
    child_answering(monkeypatch, errno.EIO)
    assert mh.look(str(tmp_path), 5) == ("error", "Input/output error")


def test_a_child_that_never_answers_is_hung_and_not_waited_for(tmp_path, monkeypatch):
    monkeypatch.setattr(mh, "_LOOK", "import time\ntime.sleep(30)\n")
    started = time.monotonic()
    assert mh.look(str(tmp_path), 1) == (mh.HUNG, "no answer within 1 s")
    assert time.monotonic() - started < 5


def test_the_look_asks_for_a_name_no_cache_can_hold(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(mh, "_LOOK", "import sys\nprint(sys.argv[2])\nsys.exit(3)\n")

    class Recorder(mh.subprocess.Popen):
        def __init__(self, argv, **kwargs):
            seen.append(argv[-1])
            super().__init__(argv, **kwargs)

    monkeypatch.setattr(mh.subprocess, "Popen", Recorder)
    mh.look(str(tmp_path), 5)
    mh.look(str(tmp_path), 5)
    assert seen[0] != seen[1]
    assert all(os.path.dirname(name) == str(tmp_path) and os.path.basename(name).startswith(".keepdata-health-") for name in seen)


def mountinfo(tmp_path, *points):
    lines = ["36 35 0:30 / %s rw,relatime shared:1 - %s %s rw\n" % (point, fstype, source) for point, fstype, source in points]
    path = tmp_path / "mountinfo"
    path.write_text("".join(lines))
    return str(path)


class FakeSystem:
    """systemctl and umount: each call recorded; ``on`` maps a command to (rc, side effect)."""

    def __init__(self, info, point):
        self.info, self.point, self.calls, self.on = info, point, [], {}
        with open(info) as handle:
            self.mounted_text = handle.read()

    def unmount(self):
        with open(self.info, "w") as handle:
            handle.write("")

    def mount(self):
        with open(self.info, "w") as handle:
            handle.write(self.mounted_text)

    def __call__(self, argv):
        self.calls.append(" ".join(argv))
        key = " ".join(argv[:2])
        rc, effect = self.on.get(key, (0, None))
        if effect:
            effect()
        if argv[:2] == ["systemctl", "is-active"]:
            return (self.on.get(key, (3, None))[0], "", "")
        if argv[0] == "systemd-escape":
            return (0, "srv-data.mount\n", "")
        return (rc, "", "refused" if rc else "")


@pytest.fixture
def markers(tmp_path, monkeypatch):
    folder = tmp_path / "markers"
    monkeypatch.setattr(mh, "MARKER_DIR", str(folder))
    return folder


@pytest.fixture
def dead(tmp_path, monkeypatch, markers):
    """A mount whose daemon is gone; starting its unit mounts a file system that answers again."""
    point = tmp_path / "data"
    point.mkdir()
    info = mountinfo(tmp_path, (str(point), "fuse.sshfs", "u@h:/srv"))
    system = FakeSystem(info, str(point))
    child_answering(monkeypatch, errno.ENOTCONN)

    def remount():
        system.mount()
        monkeypatch.setattr(mh, "_LOOK", "pass\n")

    system.on["systemctl stop"] = (0, system.unmount)
    system.on["systemctl start"] = (0, remount)
    return point, info, system


def heal(dead, start_unit="srv-data.mount"):
    point, info, system = dead
    return mh.heal(str(point), "srv-data.mount", start_unit, system, 5, settle=0.5, mountinfo=info)


def test_heal_stops_the_unit_then_starts_it(dead):
    assert heal(dead) == ("", True)
    assert dead[2].calls == ["systemctl stop srv-data.mount", "systemctl is-active srv-data.mount", "systemctl start srv-data.mount"]


def test_heal_detaches_lazily_what_the_unit_could_not_unmount(dead):
    point, _info, system = dead
    system.on["systemctl stop"] = (1, None)
    system.on["umount -l"] = (0, system.unmount)
    assert heal(dead, "srv-data.automount") == ("", True)
    assert system.calls[1] == "umount -l %s" % point and system.calls[-1] == "systemctl start srv-data.automount"


def test_heal_leaves_a_mount_that_answers_again_alone(dead, monkeypatch):
    """Another healer (the timer, or a playbook run) got there first: nothing is stopped."""
    monkeypatch.setattr(mh, "_LOOK", "pass\n")
    assert heal(dead) == ("", False) and dead[2].calls == []


def test_heal_leaves_a_hung_mount_alone(dead, monkeypatch):
    monkeypatch.setattr(mh, "_LOOK", "import time\ntime.sleep(30)\n")
    problem, detached = mh.heal(str(dead[0]), "srv-data.mount", "srv-data.mount", dead[2], 1, mountinfo=dead[1])
    assert "is not dead but hung now" in problem and detached is False and dead[2].calls == []


def test_heal_says_why_it_could_not_unmount(dead):
    point, _info, system = dead
    system.on["systemctl stop"] = (1, None)
    system.on["umount -l"] = (32, None)
    assert heal(dead) == ("cannot unmount %s: refused" % point, False)
    assert not any(call.startswith("systemctl start") for call in system.calls)


def test_heal_does_not_start_while_systemd_still_sees_the_mount(dead):
    dead[2].on["systemctl is-active"] = (0, None)
    problem, detached = heal(dead)
    assert problem == "systemd still sees srv-data.mount active 0 s after the unmount" and detached is True
    assert not any(call.startswith("systemctl start") for call in dead[2].calls)


def test_heal_reports_a_failed_start(dead):
    dead[2].on["systemctl start"] = (1, None)
    assert heal(dead) == ("systemctl start srv-data.mount failed: refused", True)


def test_heal_wants_a_file_system_mounted_not_a_bare_directory_answering(dead, monkeypatch):
    dead[2].on["systemctl start"] = (0, lambda: monkeypatch.setattr(mh, "_LOOK", "pass\n"))
    assert heal(dead) == ("nothing is mounted at %s after systemctl start srv-data.mount" % dead[0], True)


def test_heal_checks_the_mount_answers_afterwards(dead):
    dead[2].on["systemctl start"] = (0, dead[2].mount)
    problem, detached = heal(dead)
    assert "still not answering after the remount" in problem and detached is True


def test_timer_leaves_a_healthy_mount_alone_and_says_nothing(dead, monkeypatch):
    point, info, system = dead
    monkeypatch.setattr(mh, "_LOOK", "pass\n")
    logged = []
    assert mh.heal_command(str(point), 5, run=system, log=logged.append, mountinfo=info) == 0
    assert logged == [] and system.calls == ["systemd-escape --path --suffix=mount %s" % point]


def test_timer_leaves_an_unmounted_mount_point_alone(tmp_path, markers):
    system = FakeSystem(mountinfo(tmp_path), str(tmp_path))
    logged = []
    assert mh.heal_command(str(tmp_path), 5, run=system, log=logged.append, mountinfo=system.info) == 0
    assert logged == [] and len(system.calls) == 1


def test_timer_heals_a_dead_mount_with_one_journal_line(dead, markers):
    point, info, system = dead
    logged = []
    assert mh.heal_command(str(point), 5, run=system, log=logged.append, mountinfo=info) == 0
    assert logged == ["keepdata-mount-health: %s was dead: Transport endpoint is not connected; remounted by srv-data.mount, answering again" % point]
    assert sorted(os.listdir(str(markers))) == ["srv-data.mount.lock"]


def test_timer_tries_again_after_a_failed_healing(dead, markers):
    point, info, system = dead
    logged = []
    start = system.on["systemctl start"]
    system.on["systemctl start"] = (1, None)
    assert mh.heal_command(str(point), 5, run=system, log=logged.append, mountinfo=info) == 1
    assert "healing failed (the next check tries again): systemctl start srv-data.mount failed" in logged[0]
    assert "srv-data.mount" in os.listdir(str(markers))
    # Next check: nothing mounted any more, but this check unmounted it, so it starts it again.
    system.on["systemctl start"] = start
    assert mh.heal_command(str(point), 5, run=system, log=logged.append, mountinfo=info) == 0
    assert logged[1].endswith("was not mounted since an earlier healing; remounted by srv-data.mount, answering again")
    assert "srv-data.mount" not in os.listdir(str(markers))


def test_timer_leaves_a_hung_mount_mounted_and_fails(dead, monkeypatch):
    point, info, system = dead
    logged = []
    monkeypatch.setattr(mh, "_LOOK", "import time\ntime.sleep(30)\n")
    assert mh.heal_command(str(point), 1, run=system, log=logged.append, mountinfo=info) == 1
    assert "does not answer (no answer within 1 s)" in logged[0] and "umount -l" not in logged[0]
    assert len(system.calls) == 1


def test_timer_leaves_an_erroring_mount_mounted(dead, monkeypatch):
    point, info, system = dead
    logged = []
    child_answering(monkeypatch, errno.EIO)
    assert mh.heal_command(str(point), 5, run=system, log=logged.append, mountinfo=info) == 1
    assert logged == ["keepdata-mount-health: %s: Input/output error; left as it is" % point]


def test_only_fuse_mounts_have_a_daemon_to_lose():
    assert mh.is_fuse("fuse.s3fs") and mh.is_fuse("fuse.sshfs") and mh.is_fuse("fuse")
    assert not mh.is_fuse("nfs4") and not mh.is_fuse("cifs") and not mh.is_fuse("autofs")


def test_an_automount_placeholder_is_not_a_mounted_file_system(tmp_path):
    info = mountinfo(tmp_path, ("/srv/data", "autofs", "systemd-1"))
    assert not mh.fs_mounted("/srv/data", info)
    info = mountinfo(tmp_path, ("/srv/data", "autofs", "systemd-1"), ("/srv/data", "fuse.sshfs", "u@h:/"))
    assert mh.fs_mounted("/srv/data", info)


def test_units_check_every_interval_with_one_second_accuracy():
    units = mh.health_units("/srv/backup-data", "srv-backup\\x2ddata", "30s", 5, automount=True)
    service, timer = mh.health_unit_names("srv-backup\\x2ddata")
    assert sorted(units) == [service, timer] == ["keepdata-mount-health-srv-backup\\x2ddata.service", "keepdata-mount-health-srv-backup\\x2ddata.timer"]
    assert "ExecStart=/usr/bin/python3 -I /usr/local/lib/keepdata/mount_health.py heal --timeout 5 --automount /srv/backup-data\n" in units[service]
    assert "Type=oneshot\n" in units[service] and "KillMode=process\n" in units[service]
    for line in ("OnActiveSec=30s", "OnUnitActiveSec=30s", "AccuracySec=1s", "WantedBy=timers.target"):
        assert line + "\n" in units[timer]


def test_command_line(tmp_path, capsys, monkeypatch):
    """look: a file system must be mounted there and answer (here: / of the machine running the tests)."""
    assert mh.main(["look", "--timeout", "5", "/"]) == 0
    assert capsys.readouterr().out == "healthy\n"
    assert mh.main(["look", str(tmp_path)]) == 1
    assert capsys.readouterr().out == "not-mounted\n"
