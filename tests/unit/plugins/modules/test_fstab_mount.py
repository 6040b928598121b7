# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""keepdata.storage.fstab_mount run in-process on a temporary fstab and config dir.

State "present" needs no systemd (nothing is mounted); the mounted and absent paths over real mounts are
proven by the Molecule scenarios on systemd hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.mounts import health, mount
from ansible_collections.keepdata.storage.plugins.modules import fstab_mount
from ansible_collections.keepdata.storage.tests.unit.plugins.compat import patch_module_args

FOREIGN = "# keep   me\ntmpfs   /mnt/foreign   tmpfs  defaults,size=1m   0  0\n"


def run(capsys, check_mode=False, diff=False, **args):
    args.setdefault("state", "present")
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit):
        fstab_mount.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def host(tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text(FOREIGN)
    cfg = tmp_path / "cfg"
    mnt = tmp_path / "mnt" / "backup-data"
    return {"fstab": fstab, "cfg": cfg, "mnt": mnt}


def args(host, **extra):
    base = {
        "path": str(host["mnt"]),
        "src": "u@h:/srv",
        "fstype": "fuse.sshfs",
        "opts": ["_netdev", "IdentityFile=%s/k.key" % host["cfg"]],
        "config_dir": str(host["cfg"]),
        "files": [{"path": "%s/k.key" % host["cfg"], "content": "SECRET-KEY-NOT-IN-OUTPUT\n"}],
        "fstab": str(host["fstab"]),
        "id_options": True,
    }
    base.update(extra)
    return base


def test_check_mode_changes_nothing(host, capsys):
    result = run(capsys, check_mode=True, diff=True, **args(host))
    assert result["changed"] is True
    assert host["fstab"].read_text() == FOREIGN
    assert not host["cfg"].exists() and not host["mnt"].exists()
    assert "fstab: None" in result["diff"]["before"]
    assert "SECRET-KEY" not in json.dumps(result)


def test_present_writes_line_files_and_mount_point_then_is_idempotent(host, capsys):
    result = run(capsys, **args(host, owner="root", mode="0750"))
    assert result["changed"] is True
    uid, gid = os.getuid(), os.getgid()
    line = "u@h:/srv %s fuse.sshfs _netdev,IdentityFile=%s/k.key,uid=%d,gid=%d 0 0" % (host["mnt"], host["cfg"], uid, gid)
    assert host["fstab"].read_text() == FOREIGN + line + "\n"
    key = host["cfg"] / "k.key"
    assert key.read_text() == "SECRET-KEY-NOT-IN-OUTPUT\n"
    assert oct(key.stat().st_mode & 0o777) == "0o600" and oct(host["cfg"].stat().st_mode & 0o777) == "0o700"
    assert oct(host["mnt"].stat().st_mode & 0o777) == "0o750"
    assert "SECRET-KEY" not in json.dumps(result)
    again = run(capsys, **args(host, owner="root", mode="0750"))
    assert again["changed"] is False and again["actions"] == []


def test_changed_options_rewrite_only_that_line(host, capsys):
    run(capsys, **args(host))
    result = run(capsys, diff=True, **args(host, opts=["_netdev", "ro"]))
    assert result["changed"] is True
    assert result["actions"] == ["update %s" % host["fstab"]]
    assert host["fstab"].read_text().startswith(FOREIGN)
    assert ",ro," in host["fstab"].read_text()
    assert "_netdev,ro" in result["diff"]["after"]


def test_legacy_files_removed_unless_another_line_names_them(host, capsys):
    host["cfg"].mkdir(mode=0o700)
    legacy = host["cfg"] / "mnt-backup%2ddata.key"
    shared = host["cfg"] / "bucket.passwd"
    legacy.write_text("old")
    shared.write_text("old")
    host["fstab"].write_text(FOREIGN + "other /mnt/other fuse.s3fs passwd_file=%s 0 0\n" % shared)
    result = run(capsys, **args(host, remove_files=[str(legacy), str(shared)]))
    assert not legacy.exists()
    assert shared.exists()
    assert "still uses it" in json.dumps(result.get("warnings"))


def test_refuses_to_mount_over_data_before_any_change(host, capsys):
    host["mnt"].mkdir(parents=True)
    (host["mnt"] / "precious.txt").write_text("x")
    result = run(capsys, **args(host, state="mounted"))
    assert result["failed"] is True
    assert "refusing to mount over" in result["msg"] and "precious.txt" in result["msg"]
    assert result["changed"] is False
    assert host["fstab"].read_text() == FOREIGN and not host["cfg"].exists()


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        ({"path": "/mnt/nl\n"}, "path must not contain control characters"),
        ({"src": "u@h:/srv\n"}, "src must not contain control characters"),
        ({"opts": ["ro\t"]}, "opts[0] must not contain control characters"),
        ({"opts": ["ro,rw"]}, "opts[0] must be one option"),
        ({"path": "/"}, 'path "/" must be an absolute path'),
        ({"mode": "999"}, 'mode "999" must be an octal string'),
        ({"files": [{"path": "/etc/elsewhere.key", "content": "x"}]}, "must be a file directly in config_dir"),
        ({"owner": "nobody-here-at-all"}, "unknown owner nobody-here-at-all"),
    ],
)
def test_bad_input_changes_nothing(host, capsys, extra, expect):
    result = run(capsys, **args(host, **extra))
    assert result["failed"] is True
    assert expect in result["msg"]
    assert host["fstab"].read_text() == FOREIGN and not host["cfg"].exists() and not host["mnt"].exists()


def test_absent_removes_line_and_files_and_keeps_local_files(host, capsys):
    run(capsys, **args(host))
    (host["mnt"] / "written-while-down.txt").write_text("local")
    result = run(
        capsys, state="absent", path=str(host["mnt"]), files=[{"path": "%s/k.key" % host["cfg"]}], config_dir=str(host["cfg"]), fstab=str(host["fstab"])
    )
    assert result["changed"] is True
    assert host["fstab"].read_text() == FOREIGN
    assert not (host["cfg"] / "k.key").exists()
    assert (host["mnt"] / "written-while-down.txt").read_text() == "local"
    assert result["kept_local_files"] == ["written-while-down.txt"]
    again = run(
        capsys, state="absent", path=str(host["mnt"]), files=[{"path": "%s/k.key" % host["cfg"]}], config_dir=str(host["cfg"]), fstab=str(host["fstab"])
    )
    assert again["changed"] is False


def test_absent_removes_an_empty_mount_point(host, capsys):
    run(capsys, **args(host))
    result = run(capsys, state="absent", path=str(host["mnt"]), fstab=str(host["fstab"]))
    assert result["changed"] is True and not host["mnt"].exists()


def test_check_mode_previews_the_mount_without_asking_systemd(host, capsys, monkeypatch):
    def no_systemctl(*args, **kwargs):
        raise AssertionError("check mode ran a command: %s" % (args,))

    monkeypatch.setattr(fstab_mount.AnsibleModule, "run_command", no_systemctl)
    result = run(capsys, check_mode=True, **args(host, state="mounted"))
    assert result["changed"] is True
    assert result["actions"][-1] == "start %s.mount" % result["unit"].rsplit(".", 1)[0]
    assert host["fstab"].read_text() == FOREIGN and not host["mnt"].exists()


# -- a mount that looks mounted: its FUSE daemon gone (healed), or its server silent (refused) ---------------
@pytest.fixture
def looks_mounted(host, monkeypatch):
    """The mount point is in mountinfo; what it answers and what healing does are recorded fakes."""
    host["mnt"].mkdir(parents=True)
    monkeypatch.setattr(mount, "read_mounts", lambda: {str(host["mnt"]): "u@h:/srv"})
    calls = {"heal": [], "commands": []}

    def heal(path, mount_unit, start_unit, run, timeout):
        calls["heal"].append((path, mount_unit, start_unit, timeout))
        return "", True

    def run_command(self, argv, **kwargs):
        calls["commands"].append(" ".join(argv))
        return 0, "", ""

    monkeypatch.setattr(mount, "heal", heal)
    monkeypatch.setattr(fstab_mount.AnsibleModule, "run_command", run_command)
    return calls


def answers(monkeypatch, state, detail=""):
    monkeypatch.setattr(mount, "look", lambda path, timeout: (state, detail))


def test_dead_mount_is_remounted_and_reported(host, capsys, monkeypatch, looks_mounted):
    run(capsys, **args(host))  # line and files first, as a converged host has them
    answers(monkeypatch, "dead", "Transport endpoint is not connected")
    result = run(capsys, diff=True, **args(host, state="mounted", health_timeout=7))
    assert result["changed"] is True and result["healed"] == "Transport endpoint is not connected"
    assert result["actions"] == ["remount %s: its FUSE daemon was gone (Transport endpoint is not connected)" % host["mnt"]]
    unit = result["unit"].rsplit(".", 1)[0]
    assert looks_mounted["heal"] == [(str(host["mnt"]), unit + ".mount", unit + ".mount", 7)]
    assert "is mounted but its FUSE daemon is gone (Transport endpoint is not connected); remounting it" in json.dumps(result.get("warnings"))
    assert "mounted, dead (Transport endpoint is not connected)" in result["diff"]["before"] and "mounted\n" in result["diff"]["after"]


def test_dead_automount_starts_the_automount_unit(host, capsys, monkeypatch, looks_mounted):
    answers(monkeypatch, "dead", "Transport endpoint is not connected")
    result = run(capsys, **args(host, state="mounted", automount=True))
    assert looks_mounted["heal"][0][2].endswith(".automount") and result["unit"].endswith(".automount")


def test_dead_mount_in_check_mode_is_reported_not_healed(host, capsys, monkeypatch, looks_mounted):
    run(capsys, **args(host))
    answers(monkeypatch, "dead", "Transport endpoint is not connected")
    result = run(capsys, check_mode=True, **args(host, state="mounted"))
    assert result["changed"] is True and result["healed"]
    assert result["actions"][0].startswith("remount ") and looks_mounted["heal"] == []
    assert "it would be remounted" in json.dumps(result.get("warnings"))


def test_failed_healing_after_the_unmount_is_a_change(host, capsys, monkeypatch, looks_mounted):
    run(capsys, **args(host))  # a converged host: nothing else to change
    answers(monkeypatch, "dead", "Transport endpoint is not connected")
    monkeypatch.setattr(mount, "heal", lambda *a: ("systemctl start x.mount failed: no server", True))
    result = run(capsys, **args(host, state="mounted"))
    assert result["failed"] is True and "systemctl start x.mount failed: no server" in result["msg"]
    assert "left unmounted until the next run or its health check mounts it" in result["msg"]
    assert result["changed"] is True and result["actions"] == ["unmount the dead mount %s" % host["mnt"]]


def test_failed_healing_before_the_unmount_changed_nothing(host, capsys, monkeypatch, looks_mounted):
    run(capsys, **args(host))
    answers(monkeypatch, "dead", "Transport endpoint is not connected")
    monkeypatch.setattr(mount, "heal", lambda *a: ("cannot unmount x: busy", False))
    result = run(capsys, **args(host, state="mounted"))
    assert result["failed"] is True and "cannot unmount x: busy" in result["msg"] and "nothing was changed" in result["msg"]
    assert result["changed"] is False


def test_kernel_mounts_are_not_asked(host, capsys, monkeypatch, looks_mounted):
    monkeypatch.setattr(mount, "look", lambda path, timeout: pytest.fail("asked an NFS mount"))
    result = run(capsys, **args(host, state="mounted", fstype="nfs", opts=["_netdev"], files=[], id_options=False))
    assert result["healed"] == ""


@pytest.mark.parametrize(
    "case",
    [("hung", "no answer within 10 s", "does not answer (no answer within 10 s)"), ("error", "Input/output error", "answers an error (Input/output error)")],
)
def test_silent_or_failing_mount_fails_before_any_change(host, capsys, monkeypatch, looks_mounted, case):
    state, detail, expect = case
    answers(monkeypatch, state, detail)
    result = run(capsys, **args(host, state="mounted"))
    assert result["failed"] is True and expect in result["msg"] and result["msg"].endswith("nothing was changed")
    assert result["changed"] is False and host["fstab"].read_text() == FOREIGN and not host["cfg"].exists()
    assert looks_mounted["heal"] == [] and looks_mounted["commands"] == []


def test_healthy_mount_is_left_alone(host, capsys, monkeypatch, looks_mounted):
    run(capsys, **args(host))
    answers(monkeypatch, "healthy")
    result = run(capsys, **args(host, state="mounted"))
    assert result["changed"] is False and result["healed"] == "" and looks_mounted["commands"] == []


# -- the health timer ----------------------------------------------------------------------------------------
def health_args(host, tmp_units, **extra):
    program = host["cfg"].parent / "programs" / "mount_health.py"
    settings = dict(state="mounted", health_check=True, health_interval="45s", health_program=str(program), units_dir=str(tmp_units))
    settings.update(extra)
    return args(host, **settings)


def test_health_timer_written_enabled_then_left_alone(host, capsys, monkeypatch, looks_mounted, tmp_path):
    answers(monkeypatch, "healthy")
    units = tmp_path / "units"
    units.mkdir()
    result = run(capsys, **health_args(host, units))
    service, timer = ["keepdata-mount-health-%s.%s" % (result["unit"].rsplit(".", 1)[0], ext) for ext in ("service", "timer")]
    assert result["health_units"] == [service, timer]
    assert "OnUnitActiveSec=45s\n" in (units / timer).read_text()
    assert "heal --timeout 10 %s\n" % host["mnt"] in (units / service).read_text()
    assert "systemctl enable %s" % timer in looks_mounted["commands"] and "systemctl restart %s" % timer in looks_mounted["commands"]
    looks_mounted["commands"].clear()
    again = run(capsys, **health_args(host, units))
    assert again["changed"] is False
    assert looks_mounted["commands"] == ["systemctl is-enabled %s" % timer, "systemctl is-active %s" % timer]


def test_health_timer_removed_when_turned_off(host, capsys, monkeypatch, looks_mounted, tmp_path):
    answers(monkeypatch, "healthy")
    units = tmp_path / "units"
    units.mkdir()
    run(capsys, **health_args(host, units))
    result = run(capsys, **health_args(host, units, health_check=False))
    assert result["changed"] is True and os.listdir(str(units)) == [] and result["health_units"] == []
    assert any(action.startswith("stop and disable keepdata-mount-health-") for action in result["actions"])


def test_the_module_writes_the_health_program_from_its_own_copy(host, capsys, monkeypatch, looks_mounted, tmp_path):
    answers(monkeypatch, "healthy")
    units = tmp_path / "units"
    units.mkdir()
    program = host["cfg"].parent / "programs" / "mount_health.py"
    source = Path(health.__file__).read_text()
    result = run(capsys, **health_args(host, units))
    assert result["changed"] is True and "write %s" % program in result["actions"]
    assert program.read_text() == source and stat.S_IMODE(program.stat().st_mode) == 0o644
    assert stat.S_IMODE(program.parent.stat().st_mode) == 0o755
    # A program changed on the host (an older release's, or edited by hand) is written again; nothing else changes.
    program.write_text("# an older program\n")
    again = run(capsys, **health_args(host, units))
    assert again["changed"] is True and again["actions"] == ["write %s" % program] and program.read_text() == source
    assert run(capsys, **health_args(host, units))["changed"] is False


def test_check_mode_reports_the_health_program_and_writes_nothing(host, capsys, monkeypatch, looks_mounted, tmp_path):
    answers(monkeypatch, "healthy")
    units = tmp_path / "units"
    units.mkdir()
    program = host["cfg"].parent / "programs" / "mount_health.py"
    result = run(capsys, check_mode=True, diff=True, **health_args(host, units))
    assert "write %s" % program in result["actions"] and not program.exists()
    assert "health check program %s: program of " % program in result["diff"]["after"]


@pytest.mark.parametrize("interval", ["0s", "9s", "soon", "30s\n", ""])
def test_bad_health_interval_is_refused(host, capsys, interval):
    result = run(capsys, **args(host, health_interval=interval))
    assert result["failed"] is True and "health_interval" in result["msg"] and host["fstab"].read_text() == FOREIGN
