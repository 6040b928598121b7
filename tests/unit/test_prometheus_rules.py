# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup alert rules: promtool checks them and runs their unit tests, and every alert is tested both ways.

promtool comes from Debian's prometheus package (scripts/bootstrap.sh puts it in the venv): without it these tests
fail, they never skip.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "roles/backup_monitoring/files/keepdata_backup.rules.yml"
TESTS = ROOT / "tests/prometheus/keepdata_backup.test.yml"
# The names the README, the role's documentation and the Molecule scenario use.
ALERTS = {
    "KeepdataBackupFailed",
    "KeepdataBackupLate",
    "KeepdataBackupNotRunning",
    "KeepdataBackupPartial",
    "KeepdataBackupSuspect",
    "KeepdataBackupDrillFailed",
    "KeepdataBackupDrillTooOld",
    "KeepdataBackupRepositoryCheckFailed",
    "KeepdataBackupRepositoryDamaged",
    "KeepdataBackupRetentionFailed",
    "KeepdataBackupMetricsUnreadable",
}


def promtool(*args):
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not on PATH: it comes from Debian's prometheus package (run scripts/bootstrap.sh, then kd_activate)")
    return subprocess.run([path, *args], capture_output=True, text=True, check=False, timeout=300)


def rules():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_tests():
    """(test name, alertname, eval_time, expected alerts) of every alert_rule_test."""
    suite = yaml.safe_load(TESTS.read_text())
    return [(test["name"], case["alertname"], case["eval_time"], case.get("exp_alerts")) for test in suite["tests"] for case in test["alert_rule_test"]]


def test_promtool_check_rules():
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: %d rules found" % len(ALERTS) in proc.stdout, proc.stdout


def test_promtool_unit_tests_pass():
    proc = promtool("test", "rules", str(TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout, proc.stdout


def test_the_unit_tests_load_the_shipped_rules():
    suite = yaml.safe_load(TESTS.read_text())
    assert [(TESTS.parent / path).resolve() for path in suite["rule_files"]] == [RULES.resolve()]


def test_one_group_with_the_documented_alerts():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert [group["name"] for group in groups] == ["keepdata-backup"]
    names = [rule.get("alert") for rule in rules()]
    assert sorted(names) == sorted(ALERTS), "every rule is one of the documented alerts, each once"


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule.get("alert"))
def test_every_alert_has_a_severity_a_summary_and_a_description(rule):
    assert rule["labels"]["severity"] in ("critical", "warning")
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    for text in (annotations["summary"], annotations["description"]):
        assert "{{ $labels.instance }}" in text
        # The textfile alert is about the whole node_exporter: its series has no backup_job label.
        if rule["alert"] != "KeepdataBackupMetricsUnreadable":
            assert "{{ $labels.backup_job }}" in text


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule.get("alert"))
def test_every_alert_is_tested_firing_and_not_firing(rule):
    cases = [case for case in alert_tests() if case[1] == rule["alert"]]
    firing = [case for case in cases if case[3]]
    quiet = [case for case in cases if case[3] == []]
    assert firing, "no test expects %s to fire" % rule["alert"]
    assert quiet, "no exp_alerts: [] test for %s" % rule["alert"]
    # A firing case names the labels the rule adds, so a changed severity fails the test.
    for _name, _alert, _time, expected in firing:
        for alert in expected:
            assert alert["exp_labels"]["severity"] == rule["labels"]["severity"]
            assert alert["exp_labels"]["instance"]


def test_the_tests_name_only_existing_alerts():
    # promtool finds no alert of an unknown name, so "exp_alerts: []" would pass for a typo.
    assert {case[1] for case in alert_tests()} - ALERTS == set()


def test_thresholds_are_per_job_never_a_global_number():
    exprs = {rule["alert"]: " ".join(rule["expr"].split()) for rule in rules()}
    for alert, max_age in (
        ("KeepdataBackupLate", "keepdata_backup_max_age_seconds"),
        ("KeepdataBackupNotRunning", "keepdata_backup_max_age_seconds"),
        ("KeepdataBackupDrillTooOld", "keepdata_backup_drill_max_age_seconds"),
    ):
        assert "> %s and %s > 0" % (max_age, max_age) in exprs[alert], exprs[alert]
        assert "or keepdata_backup_since_timestamp_seconds" in exprs[alert], exprs[alert]
