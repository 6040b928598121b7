# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""keepdata.storage.backup_jobs run in-process on temporary config and unit directories, with a scripted systemctl
that keeps the timers' state and records every call (and whether the unit's file was there at that moment)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.keepdata.storage.plugins.module_utils.backup import runner, shared
from ansible_collections.keepdata.storage.plugins.module_utils.backup.shared import metrics_text
from ansible_collections.keepdata.storage.plugins.modules import backup_jobs
from ansible_collections.keepdata.storage.plugins.plugin_utils.backup_plan import backup_host_jobs, backup_plan
from ansible_collections.keepdata.storage.tests.unit.plugins.compat import patch_module_args

ROOT = Path(__file__).resolve().parents[4]
DEFAULTS = {k[len("backup_") :]: v for k, v in yaml.safe_load((ROOT / "roles/backup/defaults/main.yml").read_text()).items()}
PASSWORD = "main-Pass-word-42"  # noqa: S105 - test values, not passwords
ACCESS = "AKIAEXAMPLEKEY0001"
SECRET = "s3cretKeyValue/With+Slash=="  # noqa: S105 - test values, not passwords
SECRETS = (PASSWORD, ACCESS, SECRET)
QUERIES = ("is-enabled", "is-active")


class FakeSystemctl:
    """systemctl over a set of enabled and a set of active units; ``fail`` maps a verb to (rc, stderr)."""

    def __init__(self, units_dir, enabled=(), active=(), fail=None):
        self.units_dir = units_dir
        self.enabled, self.active = set(enabled), set(active)
        self.fail = dict(fail or {})
        self.calls = []

    def __call__(self, argv, **kwargs):
        assert argv[0] == "systemctl", argv
        verb, units = argv[1], [a for a in argv[2:] if not a.startswith("--")]
        self.calls.append({"argv": list(argv), "present": [(self.units_dir / u).exists() for u in units]})
        if verb in self.fail:
            rc, err = self.fail[verb]
            return rc, "", err
        if verb == "is-enabled":
            return (0, "enabled\n", "") if units[0] in self.enabled else (1, "disabled\n", "")
        if verb == "is-active":
            return (0, "active\n", "") if units[0] in self.active else (3, "inactive\n", "")
        if verb == "enable":
            assert "--now" in argv
            self.enabled.update(units)
            self.active.update(units)
        elif verb == "disable":
            assert "--now" in argv
            self.enabled.difference_update(units)
            self.active.difference_update(units)
        elif verb != "daemon-reload":
            raise AssertionError("unexpected systemctl call %s" % argv)
        return 0, "", ""

    def changes(self):
        """The calls that change something (anything but is-enabled and is-active)."""
        return [" ".join(c["argv"][1:]) for c in self.calls if c["argv"][1] not in QUERIES]


@pytest.fixture
def host(tmp_path, monkeypatch):
    units_dir = tmp_path / "units"
    units_dir.mkdir()
    fake = FakeSystemctl(units_dir)
    monkeypatch.setattr(backup_jobs.AnsibleModule, "run_command", fake)
    return {
        "cfg": tmp_path / "cfg",
        "units": units_dir,
        "systemctl": fake,
        "state": tmp_path / "state",
        "metrics": tmp_path / "metrics",
        "runner": tmp_path / "lib" / "backup_runner.py",
    }


def shared_program(host):
    """Where backup_jobs writes the runner's shared module: beside the runner."""
    return host["runner"].parent / runner.SHARED_PROGRAM


def plan(host, jobs=None, **settings):
    base = dict(
        DEFAULTS,
        password=PASSWORD,
        s3_bucket="kd-backups",
        s3_prefix="restic/web1",
        s3_endpoint="http://127.0.0.1:7496",
        s3_access_key=ACCESS,
        s3_secret_key=SECRET,
        host_name="web1",
        config_dir=str(host["cfg"]),
        state_dir=str(host["state"]),
        metrics_dir=str(host["metrics"]),
        jobs=jobs if jobs is not None else [{"name": "app1", "paths": ["/srv/app1"]}],
    )
    result = backup_plan(dict(base, **settings))
    assert result["errors"] == []
    # The runner goes where the test can look, not in this machine's /usr/local/lib.
    result["service"]["runner"] = str(host["runner"])
    return result


def args(host, planned=None, **extra):
    planned = planned or plan(host)
    base = {
        "jobs": planned["jobs"],
        "service": planned["service"],
        "password": PASSWORD,
        "access_key": ACCESS,
        "secret_key": SECRET,
        "config_dir": str(host["cfg"]),
        "units_dir": str(host["units"]),
    }
    base.update(extra)
    return base


def run(capsys, module_args, check_mode=False, diff=False):
    module_args = dict(module_args)
    if check_mode:
        module_args["_ansible_check_mode"] = True
    if diff:
        module_args["_ansible_diff"] = True
    with patch_module_args(module_args), pytest.raises(SystemExit):
        backup_jobs.main()
    out = capsys.readouterr().out
    # AnsibleModule masks a no_log value it finds in the result: the mask itself would betray a leak.
    assert "********" not in out
    for secret in SECRETS:
        assert secret not in out
    return json.loads(out)


def mode(path):
    return oct(stat.S_IMODE(os.stat(path).st_mode))


UNITS_OF_APP1 = ["keepdata-backup-app1-forget.service", "keepdata-backup-app1-forget.timer", "keepdata-backup-app1-retry.timer"]
UNITS_OF_APP1 += ["keepdata-backup-app1.service", "keepdata-backup-app1.timer", "keepdata-backup-app1@.service"]
UNITS_OF_APP1 += ["keepdata-backup-app1-drill.service", "keepdata-backup-app1-drill.timer"]
TIMERS_OF_APP1 = ["keepdata-backup-app1-drill.timer", "keepdata-backup-app1-forget.timer", "keepdata-backup-app1.timer"]


def test_first_run_writes_everything_then_nothing_changes(host, capsys):
    result = run(capsys, args(host))
    cfg, units, systemctl = host["cfg"], host["units"], host["systemctl"]
    assert result["changed"] is True
    assert sorted(os.listdir(units)) == sorted(UNITS_OF_APP1 + ["keepdata-backup-failed@.service"])
    assert sorted(os.listdir(cfg)) == ["jobs", "repository.password", "s3.credentials"]
    assert os.listdir(cfg / "jobs") == ["app1.json"]
    assert (mode(cfg), mode(cfg / "jobs")) == ("0o700", "0o700")
    assert (cfg / "repository.password").read_text() == PASSWORD + "\n"
    assert (cfg / "s3.credentials").read_text() == "[default]\naws_access_key_id = `%s`\naws_secret_access_key = `%s`\n" % (ACCESS, SECRET)
    for secret_file in ("repository.password", "s3.credentials", "jobs/app1.json"):
        assert mode(cfg / secret_file) == "0o600", secret_file
    for unit in os.listdir(units):
        assert mode(units / unit) == "0o644", unit
        for secret in SECRETS:
            assert secret not in (units / unit).read_text()
    config = json.loads((cfg / "jobs/app1.json").read_text())
    assert config["password_file"] == "%s/repository.password" % cfg and "schedule" not in config
    for path in list(cfg.rglob("*")) + list(units.iterdir()):
        assert (path.stat().st_uid, path.stat().st_gid) == (0, 0)
    # No temporary file left behind.
    assert not list(cfg.rglob(".keepdata-*")) + list(units.glob(".keepdata-*"))
    assert systemctl.changes() == ["daemon-reload"] + ["enable --now " + timer for timer in TIMERS_OF_APP1]
    assert result["timers_started"] == TIMERS_OF_APP1
    assert result["timers_stopped"] == [] and result["removed"] == []
    assert sorted(result["written"]) == sorted(
        ["%s/%s" % (units, u) for u in UNITS_OF_APP1 + ["keepdata-backup-failed@.service"]]
        + ["%s/jobs/app1.json" % cfg, "%s/repository.password" % cfg, "%s/s3.credentials" % cfg]
        + ["%s/app1.state.json" % host["state"], "%s/keepdata_backup_app1.prom" % host["metrics"]]
        + [str(host["runner"]), str(shared_program(host))]
    )
    # The runner and the module it loads are the module's own copies of the collection's, side by side, readable by
    # all, written by root only.
    assert host["runner"].read_text() == Path(runner.__file__).read_text() and mode(host["runner"]) == "0o644"
    assert shared_program(host).read_text() == Path(shared.__file__).read_text() and mode(shared_program(host)) == "0o644"
    assert mode(host["runner"].parent) == "0o755"
    # The metrics exist before the first run: a job whose timer never fires is seen late, counted from its install.
    since = json.loads((host["state"] / "app1.state.json").read_text())["since"]
    assert abs(since - time.time()) < 60
    assert (mode(host["state"]), mode(host["state"] / "app1.state.json"), mode(host["metrics"] / "keepdata_backup_app1.prom")) == ("0o700", "0o600", "0o644")
    metrics = (host["metrics"] / "keepdata_backup_app1.prom").read_text()
    assert 'keepdata_backup_since_timestamp_seconds{backup_job="app1"} %d\n' % since in metrics
    assert 'keepdata_backup_last_run_timestamp_seconds{backup_job="app1"} 0\n' in metrics
    runner_dir = host["runner"].parent
    programs = ["write %s" % shared_program(host), "write %s" % host["runner"]]
    assert result["actions"][:5] == ["create %s" % runner_dir] + programs + ["create %s" % cfg, "create %s/jobs" % cfg]
    state_dir, metrics_dir = host["state"], host["metrics"]
    expected = ["create %s" % state_dir, "write %s/app1.state.json" % state_dir, "create %s" % metrics_dir, "write %s/keepdata_backup_app1.prom" % metrics_dir]
    assert result["actions"][-8:-4] == expected
    assert result["actions"][-4:] == ["systemctl daemon-reload"] + ["enable and start " + timer for timer in TIMERS_OF_APP1]
    assert "diff" not in result

    before = len(systemctl.calls)
    again = run(capsys, args(host))
    assert again["changed"] is False
    assert (again["actions"], again["written"], again["removed"], again["timers_started"], again["timers_stopped"]) == ([], [], [], [], [])
    assert all(c["argv"][1] in QUERIES for c in systemctl.calls[before:])


def test_metrics_follow_the_thresholds_and_keep_the_state_of_the_runs(host, capsys):
    planned = plan(host)
    gaps = {"schedule_gaps": {"daily": 86400, planned["service"]["drill_schedule"]: 604800}}
    jobs = backup_host_jobs(planned["jobs"], planned["service"], gaps)
    assert run(capsys, args(host, jobs=jobs))["changed"] is True
    prom = host["metrics"] / "keepdata_backup_app1.prom"
    # daily: 24 h + 30 min delay + 3 retries after 15, 30 and 60 min + 1 h grace; drill: a week + 30 min + 1 h.
    assert 'keepdata_backup_max_age_seconds{backup_job="app1"} 98100\n' in prom.read_text()
    assert 'keepdata_backup_drill_max_age_seconds{backup_job="app1"} 610200\n' in prom.read_text()
    assert run(capsys, args(host, jobs=jobs))["changed"] is False
    # A run of the job rewrote its state and metrics: the role leaves them as they are.
    state_file = host["state"] / "app1.state.json"
    state = dict(json.loads(state_file.read_text()), last_run=1700000000, last_success=1700000000)
    state_file.write_text(json.dumps(state))
    prom.write_text(metrics_text("app1", state, jobs[0]))
    assert run(capsys, args(host, jobs=jobs))["changed"] is False
    # A new schedule changes the threshold at once, not at the next run.
    weekly = backup_host_jobs(planned["jobs"], dict(planned["service"], alert_grace="2h"), gaps)
    result = run(capsys, args(host, jobs=weekly), diff=True)
    assert result["written"] == ["%s/jobs/app1.json" % host["cfg"], str(prom)]
    assert 'keepdata_backup_max_age_seconds{backup_job="app1"} 101700\n' in prom.read_text()
    assert 'keepdata_backup_last_success_timestamp_seconds{backup_job="app1"} 1700000000\n' in prom.read_text()
    assert json.loads(state_file.read_text())["last_success"] == 1700000000


def test_a_removed_job_loses_its_metrics_file_not_its_state(host, capsys):
    two = plan(host, jobs=[{"name": "app1", "paths": ["/srv/app1"]}, {"name": "logs", "paths": ["/srv/logs"]}])
    run(capsys, args(host, two, metrics_dir=str(host["metrics"])))
    (host["metrics"] / "node_other.prom").write_text("other 1\n")  # another exporter's file is not ours
    assert sorted(os.listdir(host["metrics"])) == ["keepdata_backup_app1.prom", "keepdata_backup_logs.prom", "node_other.prom"]
    preview = run(capsys, args(host, plan(host), metrics_dir=str(host["metrics"])), check_mode=True)
    assert "remove %s/keepdata_backup_logs.prom" % host["metrics"] in preview["actions"]
    assert os.path.exists(host["metrics"] / "keepdata_backup_logs.prom")
    result = run(capsys, args(host, plan(host), metrics_dir=str(host["metrics"])))
    assert "%s/keepdata_backup_logs.prom" % host["metrics"] in result["removed"]
    assert sorted(os.listdir(host["metrics"])) == ["keepdata_backup_app1.prom", "node_other.prom"]
    assert os.path.exists(host["state"] / "logs.state.json")


def test_an_unreadable_state_fails_and_says_what_was_done(host, capsys):
    host["state"].mkdir()
    (host["state"] / "app1.state.json").write_text("{not json")
    result = run(capsys, args(host))
    assert result["failed"] is True
    assert "is not valid JSON" in result["msg"] and "done before: create" in result["msg"]
    assert not (host["metrics"] / "keepdata_backup_app1.prom").exists()


def test_check_mode_writes_nothing_and_changes_no_unit(host, capsys):
    result = run(capsys, args(host), check_mode=True, diff=True)
    assert result["changed"] is True
    assert not host["cfg"].exists() and os.listdir(host["units"]) == []
    assert host["systemctl"].changes() == []
    # The runner and its shared module first, before any unit that starts it; then the secrets' directory.
    programs = ["write %s" % shared_program(host), "write %s" % host["runner"]]
    assert result["actions"][:4] == ["create %s" % host["runner"].parent] + programs + ["create %s" % host["cfg"]]
    assert not host["runner"].parent.exists()
    assert "%s: program of " % host["runner"] in result["diff"]["after"] and "%s: (absent)" % host["runner"] in result["diff"]["before"]
    assert "systemctl daemon-reload" in result["actions"]
    assert result["timers_started"] == TIMERS_OF_APP1
    assert "%s/repository.password: (hidden)" % host["cfg"] in result["diff"]["after"]
    assert "%s/repository.password: (absent)" % host["cfg"] in result["diff"]["before"]

    # On a converged host, check mode finds nothing to do.
    run(capsys, args(host))
    assert run(capsys, args(host), check_mode=True)["changed"] is False


def test_check_mode_previews_a_removal_without_doing_it(host, capsys):
    run(capsys, args(host))
    before = sorted(os.listdir(host["units"]))
    result = run(capsys, args(host, plan(host, jobs=[])), check_mode=True)
    assert result["changed"] is True
    assert sorted(result["timers_stopped"]) == TIMERS_OF_APP1
    assert sorted(os.listdir(host["units"])) == before
    assert (host["cfg"] / "s3.credentials").exists()
    assert host["systemctl"].changes() == ["daemon-reload"] + ["enable --now " + timer for timer in TIMERS_OF_APP1]


def test_removing_a_job_stops_its_timers_then_removes_its_files(host, capsys):
    two = plan(host, jobs=[{"name": "app1", "paths": ["/srv/app1"]}, {"name": "app2", "paths": ["/srv/app2"]}])
    run(capsys, args(host, two))
    systemctl = host["systemctl"]
    systemctl.active.add("keepdata-backup-app2-retry.timer")  # armed by a failure
    before = len(systemctl.calls)
    result = run(capsys, args(host, plan(host)), diff=True)
    assert result["changed"] is True
    app2 = [u.replace("app1", "app2") for u in UNITS_OF_APP1]
    assert sorted(result["removed"]) == sorted(["%s/%s" % (host["units"], u) for u in app2] + ["%s/jobs/app2.json" % host["cfg"]])
    assert sorted(os.listdir(host["units"])) == sorted(UNITS_OF_APP1 + ["keepdata-backup-failed@.service"])
    assert os.listdir(host["cfg"] / "jobs") == ["app1.json"]
    assert result["written"] == []
    stopped = ["keepdata-backup-app2-drill.timer", "keepdata-backup-app2-forget.timer", "keepdata-backup-app2-retry.timer", "keepdata-backup-app2.timer"]
    assert result["timers_stopped"] == stopped
    changes = [c for c in systemctl.calls[before:] if c["argv"][1] not in QUERIES]
    assert [" ".join(c["argv"][1:]) for c in changes] == ["disable --now " + timer for timer in stopped] + ["daemon-reload"]
    # Each timer stopped while its file was still there; the files went before the reload.
    assert [c["present"] for c in changes[:4]] == [[True], [True], [True], [True]]
    assert result["actions"].index("remove %s/keepdata-backup-app2.timer" % host["units"]) > result["actions"].index(
        "stop and disable keepdata-backup-app2.timer"
    )
    assert result["actions"][-1] == "systemctl daemon-reload"
    assert not systemctl.enabled & set(app2) and not systemctl.active & set(app2)
    assert "%s/keepdata-backup-app2.service: (absent)" % host["units"] in result["diff"]["after"]
    assert run(capsys, args(host, plan(host)))["changed"] is False


def test_disabling_a_job_removes_its_timer_after_stopping_it(host, capsys):
    run(capsys, args(host))
    systemctl = host["systemctl"]
    before = len(systemctl.calls)
    result = run(capsys, args(host, plan(host, jobs=[{"name": "app1", "paths": ["/srv/app1"], "enabled": False}])))
    assert result["changed"] is True
    assert result["timers_stopped"] == ["keepdata-backup-app1.timer"]
    assert result["removed"] == ["%s/keepdata-backup-app1.timer" % host["units"]]
    assert not (host["units"] / "keepdata-backup-app1.timer").exists()
    assert (host["units"] / "keepdata-backup-app1.service").exists() and (host["units"] / "keepdata-backup-app1-forget.timer").exists()
    changes = [c for c in systemctl.calls[before:] if c["argv"][1] not in QUERIES]
    assert [(" ".join(c["argv"][1:]), c["present"]) for c in changes] == [
        ("disable --now keepdata-backup-app1.timer", [True]),
        ("daemon-reload", []),
    ]
    assert "keepdata-backup-app1.timer" not in systemctl.enabled and "keepdata-backup-app1-forget.timer" in systemctl.enabled
    # The job configuration leaves out the schedule: it is not rewritten.
    assert result["written"] == []

    # Enabled again: the timer comes back and starts.
    result = run(capsys, args(host))
    assert result["written"] == ["%s/keepdata-backup-app1.timer" % host["units"]]
    assert result["timers_started"] == ["keepdata-backup-app1.timer"]


def test_a_timer_stopped_by_hand_is_started_again(host, capsys):
    run(capsys, args(host))
    host["systemctl"].active.discard("keepdata-backup-app1.timer")
    result = run(capsys, args(host))
    assert result["changed"] is True and result["written"] == []
    assert result["actions"] == ["enable and start keepdata-backup-app1.timer"]


def test_held_timers_install_the_jobs_without_a_running_timer_then_arm_them(host, capsys):
    """backup_arm_timers false (playbooks/recover.yml): the jobs are written, no timer runs, one armed by an earlier
    failure (the retry) or by an earlier run of the role is stopped; armed afterwards, every schedule timer starts."""
    held = plan(host, arm_timers=False)
    assert held["service"]["arm_timers"] is False
    result = run(capsys, args(host, held))
    assert result["changed"] is True and result["timers_started"] == [] and result["timers_stopped"] == []
    assert (host["units"] / "keepdata-backup-app1.timer").exists() and (host["cfg"] / "jobs" / "app1.json").exists()
    assert not host["systemctl"].enabled and not host["systemctl"].active
    assert run(capsys, args(host, held))["changed"] is False

    armed = run(capsys, args(host))
    assert sorted(armed["timers_started"]) == TIMERS_OF_APP1 and armed["written"] == []
    host["systemctl"].active.add("keepdata-backup-app1-retry.timer")
    result = run(capsys, args(host, held), check_mode=True)
    assert result["changed"] is True and host["systemctl"].active >= set(TIMERS_OF_APP1)
    result = run(capsys, args(host, held))
    assert result["timers_stopped"] == sorted(TIMERS_OF_APP1 + ["keepdata-backup-app1-retry.timer"])
    assert result["written"] == [] and not host["systemctl"].enabled and not host["systemctl"].active


def test_arm_timers_must_be_a_boolean(host, capsys):
    service = dict(plan(host)["service"], arm_timers="false")
    result = run(capsys, args(host, service=service))
    assert result["failed"] is True and "service.arm_timers must be true or false" in result["msg"]
    assert not host["cfg"].exists()


def test_diff_hides_the_secrets(host, capsys):
    result = run(capsys, args(host), diff=True)
    cfg, units = host["cfg"], host["units"]
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert "%s/repository.password: (hidden)" % cfg in after and "%s/s3.credentials: (hidden)" % cfg in after
    assert "%s/keepdata-backup-app1.timer: (absent)" % units in before
    assert "%s/keepdata-backup-app1.timer: # Managed by Ansible" % units in after and "OnCalendar=daily" in after
    assert '"repository": "s3:http://127.0.0.1:7496/kd-backups/restic/web1"' in after

    # New secrets: rewritten, still hidden on both sides; nothing else changes.
    result = run(capsys, args(host, password="other-Pass-word-43", secret_key="other-Secret-Key"), diff=True)  # noqa: S106 - test values
    assert sorted(result["written"]) == ["%s/repository.password" % cfg, "%s/s3.credentials" % cfg]
    assert result["diff"]["before"] == "%s/repository.password: (hidden)\n%s/s3.credentials: (hidden)\n" % (cfg, cfg)
    assert result["diff"]["after"] == result["diff"]["before"]
    assert "other-" not in json.dumps(result)
    assert (cfg / "repository.password").read_text() == "other-Pass-word-43\n"
    assert host["systemctl"].changes().count("daemon-reload") == 1


def test_a_changed_unit_or_mode_is_put_back(host, capsys):
    run(capsys, args(host))
    timer = host["units"] / "keepdata-backup-app1.timer"
    expected = timer.read_text()
    timer.write_text(expected.replace("daily", "hourly"))
    os.chmod(host["cfg"] / "repository.password", 0o644)
    result = run(capsys, args(host))
    assert sorted(result["written"]) == sorted([str(timer), "%s/repository.password" % host["cfg"]])
    assert timer.read_text() == expected
    assert mode(host["cfg"] / "repository.password") == "0o600"
    assert host["systemctl"].changes()[-1] == "daemon-reload"


def test_a_path_repository_removes_the_s3_keys(host, capsys):
    run(capsys, args(host))
    path_plan = plan(host, target="path", path="/mnt/backup/restic")
    result = run(capsys, args(host, path_plan, access_key="", secret_key=""))
    assert result["removed"] == ["%s/s3.credentials" % host["cfg"]]
    assert not (host["cfg"] / "s3.credentials").exists()
    unit = (host["units"] / "keepdata-backup-app1.service").read_text()
    assert "RequiresMountsFor=/mnt/backup/restic" in unit and "s3-credentials" not in unit
    # The role adds the mount point the probe found: the unit then wants the mount unit.
    mounted = [dict(job, mount_point="/mnt/backup") for job in path_plan["jobs"]]
    run(capsys, args(host, path_plan, jobs=mounted, access_key="", secret_key=""))
    unit = (host["units"] / "keepdata-backup-app1.service").read_text()
    assert "Wants=mnt-backup.mount\nAfter=mnt-backup.mount\n" in unit and "RequiresMountsFor" not in unit
    assert json.loads((host["cfg"] / "jobs/app1.json").read_text())["mount_point"] == "/mnt/backup"


def job_with(host, **changes):
    job = dict(plan(host)["jobs"][0], **changes)
    return [job]


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (lambda h: {"jobs": job_with(h, name="App1")}, "jobs[0].name must be 1 to 40 lowercase letters, digits, _ or -"),
        (lambda h: {"jobs": job_with(h, name="../x")}, "jobs[0].name must be 1 to 40"),
        (lambda h: {"jobs": job_with(h) + job_with(h)}, "jobs[app1] is listed twice"),
        (lambda h: {"jobs": [{k: v for k, v in job_with(h)[0].items() if k != "schedule"}]}, "jobs[app1] lacks schedule"),
        (lambda h: {"jobs": job_with(h, schedule="daily\nExecStartPre=/bin/sh")}, "jobs[app1] must not hold control characters"),
        (lambda h: {"jobs": job_with(h, pre_hooks=["ok", "a\nb"])}, "jobs[app1] must not hold control characters"),
        (lambda h: {"service": dict(plan(h)["service"], memory_max="2G\n[Service]")}, "service must not hold control characters"),
        (lambda h: {"service": {k: v for k, v in plan(h)["service"].items() if k != "runner"}}, "service lacks runner"),
        (lambda h: {"service": dict(plan(h)["service"], runner="backup_runner.py")}, "service.runner must be an absolute path"),
        (lambda h: {"service": dict(plan(h)["service"], runner=["/usr/local/lib/keepdata/backup_runner.py"])}, "service.runner must be an absolute path"),
        (lambda h: {"service": {k: v for k, v in plan(h)["service"].items() if k != "drill_schedule"}}, "service lacks drill_schedule"),
        (lambda h: {"service": dict(plan(h)["service"], drill_enabled="yes")}, "service.drill_enabled must be true or false"),
        (lambda h: {"service": dict(plan(h)["service"], drill_schedule="")}, "service.drill_schedule is required when drills are enabled"),
        (lambda h: {"jobs": job_with(h, name="app1\n")}, "jobs[0].name must be 1 to 40"),
        (lambda h: {"password": PASSWORD + "\n"}, "password must be a non-empty line"),
        (lambda h: {"password": ""}, "password must be a non-empty line"),
        (lambda h: {"secret_key": ""}, "access_key and secret_key are required when a job uses an S3 repository"),
        (lambda h: {"secret_key": SECRET + "\naws_session_token = x"}, "secret_key must be one line (no control characters)"),
        (lambda h: {"access_key": ACCESS + "\r"}, "access_key must be one line (no control characters)"),
        (lambda h: {"config_dir": "relative/cfg"}, "config_dir must be an absolute path"),
        (lambda h: {"units_dir": "/"}, "units_dir must be an absolute path"),
    ],
)
def test_invalid_input_fails_before_any_write(host, capsys, change, expect):
    result = run(capsys, args(host, **change(host)))
    assert result["failed"] is True
    assert result["msg"].startswith("invalid input, nothing was changed: ")
    assert expect in result["msg"]
    assert not host["cfg"].exists() and os.listdir(host["units"]) == []
    assert host["systemctl"].calls == []


def test_a_failing_systemctl_after_writes_reports_what_was_done(host, capsys):
    host["systemctl"].fail["daemon-reload"] = (1, "Failed to reload daemon: Access denied")
    result = run(capsys, args(host))
    assert result["failed"] is True and result["changed"] is True
    assert result["msg"].startswith(
        "systemctl daemon-reload failed (Failed to reload daemon: Access denied); done before: create %s, write %s, write %s, create %s, "
        % (host["runner"].parent, shared_program(host), host["runner"], host["cfg"])
    )
    assert result["actions"][3:5] == ["create %s" % host["cfg"], "create %s/jobs" % host["cfg"]]
    assert "write %s/keepdata-backup-app1.timer" % host["units"] in result["actions"]
    assert "systemctl daemon-reload" not in result["actions"]
    assert (host["units"] / "keepdata-backup-app1.timer").exists()
    assert host["systemctl"].changes() == ["daemon-reload"]


def test_a_failing_timer_start_reports_what_was_done(host, capsys):
    run(capsys, args(host))
    systemctl = host["systemctl"]
    systemctl.enabled.clear()
    systemctl.active.clear()
    systemctl.fail["enable"] = (1, "")
    result = run(capsys, args(host))
    assert result["failed"] is True and result["changed"] is False
    timer = "keepdata-backup-app1-drill.timer"
    assert result["msg"] == "enable and start %s failed (systemctl enable --now %s exited with 1); nothing was changed" % (timer, timer)
    assert result["actions"] == []


def test_a_failure_before_any_change_says_so(host, capsys):
    two = plan(host, jobs=[{"name": "app1", "paths": ["/srv/app1"]}, {"name": "app2", "paths": ["/srv/app2"]}])
    run(capsys, args(host, two))
    host["systemctl"].fail["disable"] = (1, "Failed to disable unit: Access denied")
    result = run(capsys, args(host))
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"] == "stop and disable keepdata-backup-app2-drill.timer failed (Failed to disable unit: Access denied); nothing was changed"
    assert (host["units"] / "keepdata-backup-app2.timer").exists() and (host["cfg"] / "jobs/app2.json").exists()


def test_a_config_dir_open_to_others_is_made_root_only(host, capsys):
    host["cfg"].mkdir()
    os.chmod(host["cfg"], 0o755)  # noqa: S103 - the mistake under test
    result = run(capsys, args(host))
    assert "make %s root-only (0700)" % host["cfg"] in result["actions"]
    assert mode(host["cfg"]) == "0o700"
    # Once fixed, nothing more to do.
    assert run(capsys, args(host))["changed"] is False


def test_switching_drills_off_stops_and_removes_the_drill_units_and_back_on(host, capsys):
    run(capsys, args(host))
    systemctl = host["systemctl"]
    before = len(systemctl.calls)
    result = run(capsys, args(host, plan(host, drill_enabled=False)))
    drill = ["keepdata-backup-app1-drill.service", "keepdata-backup-app1-drill.timer"]
    assert result["timers_stopped"] == ["keepdata-backup-app1-drill.timer"]
    assert sorted(result["removed"]) == ["%s/%s" % (host["units"], unit) for unit in drill]
    assert sorted(os.listdir(host["units"])) == sorted(set(UNITS_OF_APP1 + ["keepdata-backup-failed@.service"]) - set(drill))
    changes = [c for c in systemctl.calls[before:] if c["argv"][1] not in QUERIES]
    assert [(" ".join(c["argv"][1:]), c["present"]) for c in changes] == [("disable --now keepdata-backup-app1-drill.timer", [True]), ("daemon-reload", [])]
    # The job's configuration still says how a drill by hand samples: not rewritten.
    assert result["written"] == []
    # On again: written and started.
    result = run(capsys, args(host))
    assert sorted(result["written"]) == ["%s/%s" % (host["units"], unit) for unit in drill]
    assert result["timers_started"] == ["keepdata-backup-app1-drill.timer"]


def test_the_tagged_template_is_kept_and_removed_with_its_job(host, capsys):
    two = plan(host, jobs=[{"name": "app1", "paths": ["/srv/app1"]}, {"name": "app2", "paths": ["/srv/app2"]}])
    run(capsys, args(host, two))
    template = host["units"] / "keepdata-backup-app2@.service"
    assert "ExecStart=/usr/bin/python3 -I %s run app2 --tag %%i\n" % host["runner"] in template.read_text()
    # A drop-in directory or an instance link of an operator is not the role's: left alone.
    (host["units"] / "keepdata-backup-app2@.service.d").mkdir()
    result = run(capsys, args(host))
    assert "%s/keepdata-backup-app2@.service" % host["units"] in result["removed"]
    assert not template.exists() and (host["units"] / "keepdata-backup-app2@.service.d").is_dir()
    assert (host["units"] / "keepdata-backup-app1@.service").exists()
