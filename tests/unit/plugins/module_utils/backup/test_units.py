# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup role's files (keepdata.storage backup_units): job configurations, secrets and systemd units, rendered
from real plans; checked line by line and, when systemd-analyze is installed, by systemd itself."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.keepdata.storage.plugins.module_utils.backup.units import (
    FAILED_UNIT,
    UNIT_ONLY,
    desired_files,
    failed_unit,
    is_managed_unit,
    job_config,
    s3_credentials,
    timers,
    unit_names,
)
from ansible_collections.keepdata.storage.plugins.plugin_utils.backup_plan import backup_plan

ROOT = Path(__file__).resolve().parents[5]
DEFAULTS = {k[len("backup_") :]: v for k, v in yaml.safe_load((ROOT / "roles/backup/defaults/main.yml").read_text()).items()}
PASSWORD = "main-Pass-word-42"  # noqa: S105 - test values, not passwords
ACCESS = "AKIAEXAMPLEKEY0001"
SECRET = "s3cretKeyValue/With+Slash=="  # noqa: S105 - test values, not passwords
CFG, UNITS = "/etc/keepdata/backup", "/etc/systemd/system"
RUNNER = "/usr/local/lib/keepdata/backup_runner.py"
S3_SETTINGS = dict(
    DEFAULTS,
    password=PASSWORD,
    s3_bucket="kd-backups",
    s3_prefix="restic/web1",
    s3_endpoint="http://127.0.0.1:7496",
    s3_access_key=ACCESS,
    s3_secret_key=SECRET,
    host_name="web1",
    jobs=[{"name": "app1", "paths": ["/srv/app1"], "pre_hooks": ["systemctl stop app1"]}],
)
PATH_SETTINGS = dict(
    DEFAULTS,
    password=PASSWORD,
    target="path",
    path="/mnt/backup/restic",
    host_name="web1",
    jobs=[
        {"name": "app2", "paths": ["/srv/app2"], "schedule": "*-*-* 03:00", "randomized_delay": "0"},
        {"name": "off", "paths": ["/srv/off"], "enabled": False},
    ],
)


def planned(settings, **extra):
    plan = backup_plan(dict(settings, **extra))
    assert plan["errors"] == []
    return plan


def units(body):
    """{section: [(key, value), ...]} of a unit file (comments and blank lines left out)."""
    sections, current = {}, None
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _sep, value = line.partition("=")
        current.append((key, value))
    return sections


def values(body, section, key):
    return [v for k, v in units(body).get(section, []) if k == key]


@pytest.fixture
def s3():
    plan = planned(S3_SETTINGS)
    return plan, desired_files(plan["jobs"], plan["service"], CFG, UNITS, password=PASSWORD, access_key=ACCESS, secret_key=SECRET)


@pytest.fixture
def path():
    plan = planned(PATH_SETTINGS)
    return plan, desired_files(plan["jobs"], plan["service"], CFG, UNITS, password=PASSWORD)


def test_s3_job_files_modes_and_secrets(s3):
    plan, files = s3
    assert sorted(files) == sorted(
        [
            CFG + "/repository.password",
            CFG + "/s3.credentials",
            CFG + "/jobs/app1.json",
            UNITS + "/" + FAILED_UNIT,
            UNITS + "/keepdata-backup-app1.service",
            UNITS + "/keepdata-backup-app1.timer",
            UNITS + "/keepdata-backup-app1@.service",
            UNITS + "/keepdata-backup-app1-forget.service",
            UNITS + "/keepdata-backup-app1-forget.timer",
            UNITS + "/keepdata-backup-app1-retry.timer",
            UNITS + "/keepdata-backup-app1-drill.service",
            UNITS + "/keepdata-backup-app1-drill.timer",
        ]
    )
    assert files[CFG + "/repository.password"] == (PASSWORD + "\n", "0600", True)
    assert files[CFG + "/s3.credentials"] == ("[default]\naws_access_key_id = `%s`\naws_secret_access_key = `%s`\n" % (ACCESS, SECRET), "0600", True)
    assert files[CFG + "/jobs/app1.json"][1:] == ("0600", False)
    for name, (content, mode, secret) in files.items():
        if name.startswith(UNITS + "/"):
            assert (mode, secret) == ("0644", False)
            assert content.startswith("# Managed by Ansible") and content.endswith("\n")
        if not secret:
            for value in (PASSWORD, ACCESS, SECRET):
                assert value not in content, name
    assert json.loads(files[CFG + "/jobs/app1.json"][0])["repository"] == plan["jobs"][0]["repository"]


def test_s3_backup_and_forget_services(s3):
    _plan, files = s3
    run, forget = files[UNITS + "/keepdata-backup-app1.service"][0], files[UNITS + "/keepdata-backup-app1-forget.service"][0]
    assert units(run) == {
        "Unit": [
            ("Description", "keepdata backup job app1: backup"),
            ("Wants", "network-online.target"),
            ("After", "network-online.target"),
            ("OnFailure", "keepdata-backup-failed@app1:backup.service"),
        ],
        "Service": [
            ("Type", "oneshot"),
            ("ExecStart", "/usr/bin/python3 -I %s run app1" % RUNNER),
            ("LoadCredential", "restic-password:%s/repository.password" % CFG),
            ("LoadCredential", "s3-credentials:%s/s3.credentials" % CFG),
            ("Nice", "15"),
            ("IOSchedulingClass", "idle"),
            ("CPUSchedulingPolicy", "batch"),
            ("MemoryMax", "2G"),
            ("TimeoutStartSec", "12h"),
            ("CacheDirectory", "keepdata-backup"),
            ("CacheDirectoryMode", "0700"),
            ("UMask", "0077"),
            ("PrivateTmp", "true"),
            ("SyslogIdentifier", "keepdata-backup-app1"),
        ],
    }
    assert values(forget, "Unit", "Description") == ["keepdata backup job app1: retention (forget, prune)"]
    assert values(forget, "Unit", "OnFailure") == ["keepdata-backup-failed@app1:forget.service"]
    assert values(forget, "Service", "ExecStart") == ["/usr/bin/python3 -I %s forget app1" % RUNNER]
    assert values(forget, "Service", "LoadCredential") == values(run, "Service", "LoadCredential")
    # An S3 repository waits for no mount.
    assert "RequiresMountsFor" not in run and ".mount" not in run


def test_timers(s3):
    _plan, files = s3
    timer = files[UNITS + "/keepdata-backup-app1.timer"][0]
    assert units(timer) == {
        "Unit": [("Description", "keepdata backup job app1: schedule")],
        "Timer": [("OnCalendar", "daily"), ("Persistent", "true"), ("RandomizedDelaySec", "30min"), ("Unit", "keepdata-backup-app1.service")],
        "Install": [("WantedBy", "timers.target")],
    }
    forget = files[UNITS + "/keepdata-backup-app1-forget.timer"][0]
    assert units(forget)["Timer"] == [
        ("OnCalendar", "*-*-* 05:00"),
        ("Persistent", "true"),
        ("RandomizedDelaySec", "30min"),
        ("Unit", "keepdata-backup-app1-forget.service"),
    ]
    assert units(forget)["Install"] == [("WantedBy", "timers.target")]
    # The retry timer is armed by the failure handler only: no calendar, no [Install].
    retry = files[UNITS + "/keepdata-backup-app1-retry.timer"][0]
    assert units(retry) == {
        "Unit": [("Description", "keepdata backup job app1: retry after a failure")],
        "Timer": [("OnActiveSec", "15min"), ("AccuracySec", "1s"), ("Unit", "keepdata-backup-app1.service")],
    }


def test_failed_handler_template(s3):
    _plan, files = s3
    body = files[UNITS + "/keepdata-backup-failed@.service"][0]
    assert body == failed_unit({"runner": RUNNER})
    assert units(body) == {
        "Unit": [("Description", "keepdata backup failure handler for %i")],
        "Service": [
            ("Type", "oneshot"),
            ("ExecStart", "/usr/bin/python3 -I %s failed %%i" % RUNNER),
            ("TimeoutStartSec", "5min"),
            ("SyslogIdentifier", "keepdata-backup-failed"),
        ],
    }


def test_path_jobs_wait_for_the_repository(path):
    plan, files = path
    assert CFG + "/s3.credentials" not in files
    run = files[UNITS + "/keepdata-backup-app2.service"][0]
    assert values(run, "Unit", "RequiresMountsFor") == ["/mnt/backup/restic"]
    assert values(run, "Unit", "Wants") == ["network-online.target"]
    assert values(run, "Service", "LoadCredential") == ["restic-password:%s/repository.password" % CFG]
    assert "s3-credentials" not in run
    assert values(files[UNITS + "/keepdata-backup-app2.timer"][0], "Timer", "OnCalendar") == ["*-*-* 03:00"]
    assert values(files[UNITS + "/keepdata-backup-app2.timer"][0], "Timer", "RandomizedDelaySec") == ["0"]
    assert json.loads(files[CFG + "/jobs/app2.json"][0])["s3_credentials_file"] == ""
    for name, (content, _mode, secret) in files.items():
        assert secret or PASSWORD not in content, name


@pytest.mark.parametrize(("mount_point", "unit"), [("/mnt/backup", "mnt-backup.mount"), ("/mnt/my-backup/", "mnt-my\\x2dbackup.mount")])
def test_a_job_on_a_mount_wants_the_mount_unit(path, mount_point, unit):
    plan, _files = path
    jobs = [dict(job, mount_point=mount_point) for job in plan["jobs"]]
    run = desired_files(jobs, plan["service"], CFG, UNITS, password=PASSWORD)[UNITS + "/keepdata-backup-app2.service"][0]
    # Wants= and After=, not RequiresMountsFor=: a mount that does not come up must fail the unit (OnFailure=).
    assert values(run, "Unit", "Wants") == ["network-online.target", unit]
    assert values(run, "Unit", "After") == ["network-online.target", unit]
    assert "RequiresMountsFor" not in run
    assert json.loads(desired_files(jobs, plan["service"], CFG, UNITS, password=PASSWORD)[CFG + "/jobs/app2.json"][0])["mount_point"] == mount_point


def test_a_disabled_job_has_no_schedule_timer(path):
    plan, files = path
    assert UNITS + "/keepdata-backup-off.timer" not in files
    for unit in ("keepdata-backup-off.service", "keepdata-backup-off-forget.service", "keepdata-backup-off-forget.timer", "keepdata-backup-off-retry.timer"):
        assert UNITS + "/" + unit in files
    # A disabled job's snapshots are still drilled, and it can still be backed up now with a tag.
    for unit in ("keepdata-backup-off-drill.service", "keepdata-backup-off-drill.timer", "keepdata-backup-off@.service"):
        assert UNITS + "/" + unit in files
    assert CFG + "/jobs/off.json" in files
    assert timers(plan["jobs"], plan["service"]) == {
        "keepdata-backup-app2.timer": True,
        "keepdata-backup-app2-forget.timer": True,
        "keepdata-backup-app2-drill.timer": True,
        "keepdata-backup-off.timer": False,
        "keepdata-backup-off-forget.timer": True,
        "keepdata-backup-off-drill.timer": True,
    }
    assert timers([], plan["service"]) == {}


def test_without_jobs_only_the_password_and_the_handler():
    plan = planned(S3_SETTINGS)
    files = desired_files([], plan["service"], CFG, UNITS, password=PASSWORD, access_key=ACCESS, secret_key=SECRET)
    assert sorted(files) == [CFG + "/repository.password", UNITS + "/" + FAILED_UNIT]


def test_job_config_leaves_out_unit_only_keys_and_is_stable():
    plan = planned(S3_SETTINGS)
    job = plan["jobs"][0]
    text = job_config(job)
    config = json.loads(text)
    assert set(UNIT_ONLY) == {"enabled", "schedule", "randomized_delay"}
    assert not set(UNIT_ONLY) & set(config)
    assert config == {k: v for k, v in job.items() if k not in UNIT_ONLY}
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert list(config) == sorted(config)
    # Same job, other key order, other schedule: same text (a schedule change is not a change of what the job does).
    reordered = dict(reversed(list(job.items())), schedule="weekly", enabled=False, randomized_delay="1h")
    assert job_config(reordered) == text
    assert job_config(dict(job)) == text
    assert job_config(dict(job, paths=["/srv/other"])) != text
    for value in (PASSWORD, ACCESS, SECRET):
        assert value not in text


def test_drill_service_is_the_backup_service_running_drill(path):
    plan, files = path
    run, drill = files[UNITS + "/keepdata-backup-app2.service"][0], files[UNITS + "/keepdata-backup-app2-drill.service"][0]
    assert values(drill, "Unit", "Description") == ["keepdata backup job app2: restore drill (a sample restored and verified, the repository checked)"]
    assert values(drill, "Unit", "OnFailure") == ["keepdata-backup-failed@app2:drill.service"]
    assert values(drill, "Service", "ExecStart") == ["/usr/bin/python3 -I %s drill app2" % RUNNER]
    # Everything else as the backup service: resources, credentials, the repository's mount.
    differ = {"Description", "OnFailure", "ExecStart"}
    for section in ("Unit", "Service"):
        assert [kv for kv in units(drill)[section] if kv[0] not in differ] == [kv for kv in units(run)[section] if kv[0] not in differ]
    assert values(drill, "Unit", "RequiresMountsFor") == ["/mnt/backup/restic"]
    assert values(drill, "Service", "LoadCredential") == ["restic-password:%s/repository.password" % CFG]
    assert (values(drill, "Service", "Type"), values(drill, "Service", "MemoryMax")) == (["oneshot"], ["2G"])
    # On a mount: the drill wants the mount unit as the backup does.
    jobs = [dict(job, mount_point="/mnt/backup") for job in plan["jobs"]]
    mounted = desired_files(jobs, plan["service"], CFG, UNITS, password=PASSWORD)[UNITS + "/keepdata-backup-app2-drill.service"][0]
    assert values(mounted, "Unit", "Wants") == ["network-online.target", "mnt-backup.mount"]


def test_drill_timer_uses_the_drill_schedule_and_the_jobs_delay(path):
    _plan, files = path
    assert units(files[UNITS + "/keepdata-backup-app2-drill.timer"][0]) == {
        "Unit": [("Description", "keepdata backup job app2: restore drill schedule")],
        "Timer": [("OnCalendar", "Sun *-*-* 06:00"), ("Persistent", "true"), ("RandomizedDelaySec", "0"), ("Unit", "keepdata-backup-app2-drill.service")],
        "Install": [("WantedBy", "timers.target")],
    }
    off = files[UNITS + "/keepdata-backup-off-drill.timer"][0]
    assert values(off, "Timer", "RandomizedDelaySec") == ["30min"]
    plan = planned(PATH_SETTINGS, drill_schedule="*-*-01 02:00")
    timer = desired_files(plan["jobs"], plan["service"], CFG, UNITS, password=PASSWORD)[UNITS + "/keepdata-backup-app2-drill.timer"][0]
    assert values(timer, "Timer", "OnCalendar") == ["*-*-01 02:00"]


def test_drills_off_means_no_drill_units_nor_timers():
    plan = planned(PATH_SETTINGS, drill_enabled=False)
    assert (plan["service"]["drill_enabled"], plan["service"]["drill_schedule"]) == (False, "")
    files = desired_files(plan["jobs"], plan["service"], CFG, UNITS, password=PASSWORD)
    assert not [name for name in files if "-drill." in name]
    assert timers(plan["jobs"], plan["service"]) == {
        "keepdata-backup-app2.timer": True,
        "keepdata-backup-app2-forget.timer": True,
        "keepdata-backup-off.timer": False,
        "keepdata-backup-off-forget.timer": True,
    }
    # The tagged template does not depend on the drills.
    assert UNITS + "/keepdata-backup-app2@.service" in files


def test_append_only_hosts_get_no_retention_units(s3):
    """backup_append_only: the host's S3 user may delete nothing, so no forget service nor timer; backups, the
    tagged template, retries and drills stay (retention runs from a trusted place, module backup_retention)."""
    plan = planned(S3_SETTINGS, append_only=True, append_only_user="cellar_host1", s3_owner_access_key="OWNERKEY", s3_owner_secret_key="owner-secret")  # noqa: S106
    assert plan["service"]["host_retention"] is False
    files = desired_files(plan["jobs"], plan["service"], CFG, UNITS, password=PASSWORD, access_key=ACCESS, secret_key=SECRET)
    _normal_plan, normal = s3
    assert sorted(set(normal) - set(files)) == [UNITS + "/keepdata-backup-app1-forget.service", UNITS + "/keepdata-backup-app1-forget.timer"]
    assert set(files) <= set(normal)
    assert timers(plan["jobs"], plan["service"]) == {"keepdata-backup-app1.timer": True, "keepdata-backup-app1-drill.timer": True}
    # The host's credentials file holds the host's key, never the owner's.
    credentials = files[CFG + "/s3.credentials"][0]
    assert ACCESS in credentials and "OWNERKEY" not in credentials and "owner-secret" not in credentials


def test_backup_now_with_a_tag_template(s3):
    _plan, files = s3
    run, tagged = files[UNITS + "/keepdata-backup-app1.service"][0], files[UNITS + "/keepdata-backup-app1@.service"][0]
    assert values(tagged, "Unit", "Description") == ["keepdata backup job app1: backup now, tagged %i"]
    # %i, not %I: the instance keeps systemd's escapes (pre\x2dupdate), which the runner undoes.
    assert values(tagged, "Service", "ExecStart") == ["/usr/bin/python3 -I %s run app1 --tag %%i" % RUNNER]
    # A failed tagged backup is a failed backup: the same handler, the same retry.
    assert values(tagged, "Unit", "OnFailure") == ["keepdata-backup-failed@app1:backup.service"]
    assert tagged.replace("backup now, tagged %i", "backup").replace(" --tag %i", "") == run
    assert is_managed_unit("keepdata-backup-app1@.service")
    assert "keepdata-backup-app1@.service" not in timers(_plan["jobs"], _plan["service"])


def test_unit_names_and_managed_units():
    assert unit_names("app1") == {
        "service": "keepdata-backup-app1.service",
        "timer": "keepdata-backup-app1.timer",
        "tagged_service": "keepdata-backup-app1@.service",
        "forget_service": "keepdata-backup-app1-forget.service",
        "forget_timer": "keepdata-backup-app1-forget.timer",
        "retry_timer": "keepdata-backup-app1-retry.timer",
        "drill_service": "keepdata-backup-app1-drill.service",
        "drill_timer": "keepdata-backup-app1-drill.timer",
    }
    for name in list(unit_names("app1").values()) + [FAILED_UNIT, "keepdata-backup-x_y.timer"]:
        assert is_managed_unit(name), name
    for name in (
        "keepdata-backup-app1.service.d",
        "keepdata-backup-app1.mount",
        "keepdata-backup-app1.json",
        "keepdata-app1.service",
        "restic-backup.timer",
        "timers.target.wants",
        "xkeepdata-backup-app1.service",
    ):
        assert not is_managed_unit(name), name


def test_s3_credentials_file():
    assert s3_credentials("AK", "S/K+") == "[default]\naws_access_key_id = `AK`\naws_secret_access_key = `S/K+`\n"
    # Any printable character is carried between the backquotes (go-ini takes them as they are).
    assert s3_credentials("AK=1", "a#b;c\"d'e\\f`g h") == "[default]\naws_access_key_id = `AK=1`\naws_secret_access_key = `a#b;c\"d'e\\f`g h`\n"


# systemd-analyze is on every machine a unit gate runs on (Debian 12 and the newest gate's Debian 13 container).
def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    s3_plan, path_plan = planned(S3_SETTINGS), planned(PATH_SETTINGS)
    jobs = s3_plan["jobs"] + [dict(job, mount_point="/mnt/backup") if job["name"] == "app2" else job for job in path_plan["jobs"]]
    jobs = [dict(job, s3_credentials_file="%s/s3.credentials" % tmp_path) if job["s3_credentials_file"] else job for job in jobs]
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    files = desired_files(jobs, s3_plan["service"], str(tmp_path), str(unit_dir), password=PASSWORD, access_key=ACCESS, secret_key=SECRET)
    rendered = []
    for name, (content, _mode, _secret) in files.items():
        if name.startswith(str(unit_dir) + "/"):
            Path(name).write_text(content)
            rendered.append(name)
    assert len(rendered) == 1 + 8 + 8 + 7  # the handler, app1, app2, off (no schedule timer)
    env = dict(os.environ, SYSTEMD_UNIT_PATH="%s:" % unit_dir, SYSTEMD_LOG_COLOR="0")
    proc = subprocess.run(["systemd-analyze", "verify"] + sorted(rendered), capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    # systemd-analyze only warns (exit 0) about keys it ignores: any line naming one of these units is a defect.
    assert [line for line in proc.stderr.splitlines() if str(unit_dir) in line or "keepdata-backup" in line] == []
