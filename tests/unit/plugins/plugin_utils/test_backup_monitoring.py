# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup_monitoring role's plan (keepdata.storage.backup_monitoring_plan) with the role's defaults."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from pathlib import Path

import pytest
import yaml

from ansible_collections.keepdata.storage.plugins.filter.storage_plans import FilterModule
from ansible_collections.keepdata.storage.plugins.plugin_utils.backup_monitoring import DASHBOARD_FILE, RULES_FILE, backup_monitoring_plan, rules_file_problem

ROOT = Path(__file__).resolve().parents[4]
PREFIX = "backup_monitoring_"
DEFAULTS = {k[len(PREFIX) :]: v for k, v in yaml.safe_load((ROOT / "roles/backup_monitoring/defaults/main.yml").read_text()).items()}


def plan(**settings):
    return backup_monitoring_plan(dict(DEFAULTS, **settings))


def errors(**settings):
    return plan(**settings)["errors"]


def test_the_defaults():
    assert plan() == {
        "errors": [],
        "rules_dir": "/etc/prometheus/rules",
        "rules_parent": "/etc/prometheus",
        "rules_path": "/etc/prometheus/rules/keepdata_backup.rules.yml",
        "prometheus_config": "/etc/prometheus/prometheus.yml",
        "service": "prometheus.service",
        "dashboard_dir": "",
        "dashboard_path": "",
        "preflight": [
            {
                "path": "/etc/prometheus",
                "missing": 'backup_monitoring_rules_dir "/etc/prometheus/rules": its parent /etc/prometheus does not exist'
                " (is Prometheus installed on this host?)",
            },
            {
                "path": "/etc/prometheus/prometheus.yml",
                "missing": 'backup_monitoring_prometheus_config "/etc/prometheus/prometheus.yml" does not exist (set it to "" to skip the check)',
            },
        ],
    }


def test_the_role_ships_the_files_the_plan_names():
    assert (ROOT / "roles/backup_monitoring/files" / RULES_FILE).is_file()
    assert (ROOT / "roles/backup_monitoring/files" / DASHBOARD_FILE).is_file()
    # The usual rule_files glob, and the one the role's failure message suggests, is "<dir>/*.yml".
    assert RULES_FILE.endswith(".yml")


def test_it_is_the_collections_filter():
    assert FilterModule().filters()["backup_monitoring_plan"] is backup_monitoring_plan


def test_a_dashboard_directory_and_no_check_nor_reload():
    result = plan(dashboard_dir="/var/lib/grafana/dashboards/", prometheus_config="", prometheus_service="")
    assert result["errors"] == []
    assert result["dashboard_dir"] == "/var/lib/grafana/dashboards"
    assert result["dashboard_path"] == "/var/lib/grafana/dashboards/keepdata_backup_dashboard.json"
    assert (result["prometheus_config"], result["service"]) == ("", "")
    assert [item["path"] for item in result["preflight"]] == ["/etc/prometheus", "/var/lib/grafana/dashboards"]
    assert "create it and point a Grafana dashboard provider at it" in result["preflight"][1]["missing"]


def test_a_rules_directory_at_the_top_and_a_trailing_slash():
    result = plan(rules_dir="/rules/", prometheus_config=None)
    assert result["errors"] == []
    assert (result["rules_dir"], result["rules_parent"], result["rules_path"]) == ("/rules", "/", "/rules/keepdata_backup.rules.yml")
    assert result["prometheus_config"] == ""


@pytest.mark.parametrize(
    ("service", "unit"),
    [("prometheus", "prometheus.service"), ("prometheus.service", "prometheus.service"), ("prometheus@main", "prometheus@main.service"), ("", "")],
)
def test_service_names(service, unit):
    assert plan(prometheus_service=service)["service"] == unit


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rules_dir": "etc/prometheus/rules"}, 'backup_monitoring_rules_dir "etc/prometheus/rules" must be an absolute path'),
        ({"rules_dir": "/"}, 'backup_monitoring_rules_dir "/" must be an absolute path other than /'),
        ({"rules_dir": ""}, 'backup_monitoring_rules_dir "" must be an absolute path'),
        ({"rules_dir": None}, 'backup_monitoring_rules_dir "" must be an absolute path'),
        ({"rules_dir": "/etc/prometheus/../rules"}, "backup_monitoring_rules_dir"),
        ({"rules_dir": "/etc/prom etheus"}, "backup_monitoring_rules_dir"),
        ({"rules_dir": ["/etc/prometheus/rules"]}, "backup_monitoring_rules_dir must be a string"),
        ({"prometheus_config": "prometheus.yml"}, 'backup_monitoring_prometheus_config "prometheus.yml" must be an absolute path'),
        ({"prometheus_config": 3}, "backup_monitoring_prometheus_config must be a string"),
        ({"dashboard_dir": "grafana"}, 'backup_monitoring_dashboard_dir "grafana" must be an absolute path'),
        ({"prometheus_service": "prometheus.timer"}, 'backup_monitoring_prometheus_service "prometheus.timer" must be a service'),
        ({"prometheus_service": "prom etheus"}, 'backup_monitoring_prometheus_service "prom etheus" must be a systemd unit name'),
        ({"prometheus_service": "prometheus;reboot"}, "must be a systemd unit name"),
        ({"prometheus_service": "prometheus@"}, "is a template"),
        ({"prometheus_service": "prometheus@.service"}, "is a template"),
        ({"prometheus_service": "p" * 250}, "at most 255 characters"),
        ({"prometheus_service": True}, "backup_monitoring_prometheus_service must be a string"),
    ],
)
def test_invalid_settings(settings, message):
    result = plan(**settings)
    assert len(result["errors"]) == 1, result["errors"]
    assert message in result["errors"][0]
    # Nothing is planned from invalid input: no task can run with half a plan.
    assert result["rules_path"] == "" and result["preflight"] == [] and result["service"] == ""


def test_control_characters_are_refused_and_never_echoed():
    result = plan(rules_dir="/etc/prometheus/rules\n- evil", prometheus_config="/etc/p\tx", prometheus_service="prometheus\r", dashboard_dir="/g\x1b[2J")
    assert result["errors"] == [
        "backup_monitoring_rules_dir must not contain control characters (newline, tab, ...)",
        "backup_monitoring_prometheus_config must not contain control characters (newline, tab, ...)",
        "backup_monitoring_prometheus_service must not contain control characters (newline, tab, ...)",
        "backup_monitoring_dashboard_dir must not contain control characters (newline, tab, ...)",
    ]


def test_every_error_at_once():
    assert len(errors(rules_dir="x", prometheus_config="y", prometheus_service="z.socket", dashboard_dir="w")) == 4


def test_no_settings_at_all():
    assert backup_monitoring_plan(None)["errors"] == [
        'backup_monitoring_rules_dir "" must be an absolute path other than / (letters, digits and . _ - @ + = only)'
    ]


CONFIG = "/etc/prometheus/prometheus.yml"
RULES = "/etc/prometheus/rules/keepdata_backup.rules.yml"


@pytest.mark.parametrize(
    "rule_files",
    [
        ["/etc/prometheus/rules/*.yml"],
        ["rules/*.yml"],  # relative to the configuration's directory
        ["first.yml", "/etc/prometheus/*/keepdata_*.yml"],
        ["/etc/prometheus/rules/keepdata_backup.rules.yml"],
        ["/etc/prometheus/rules/[^x]*.yml"],  # Go's negated class
        ["./rules/../rules/*.yml"],
    ],
)
def test_rule_files_that_load_the_rules(rule_files):
    config = yaml.safe_dump({"global": {"scrape_interval": "15s"}, "rule_files": rule_files})
    assert rules_file_problem(config, CONFIG, RULES) == ""


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("global: {scrape_interval: 15s}\n", 'does not load %s: add "/etc/prometheus/rules/*.yml" to its rule_files:' % RULES),
        ("rule_files: ['*.yml']\n", "does not load"),  # "*" never crosses a "/"
        ("rule_files: ['/etc/prometheus/*.yml']\n", "does not load"),
        ("rule_files: ['/etc/prometheus/rules/*.yaml']\n", "does not load"),
        ("rule_files: ['/etc/prometheus/rules/[^k]*.yml']\n", "does not load"),
        ("rule_files: /etc/prometheus/rules/*.yml\n", "rule_files must be a list of file globs"),
        ("rule_files: [: \n", 'backup_monitoring_prometheus_config "%s" is not valid YAML' % CONFIG),
        ("- just a list\n", "is not a Prometheus configuration"),
        ("", "does not load"),
    ],
)
def test_rule_files_that_do_not(config, problem):
    message = rules_file_problem(config, CONFIG, RULES)
    assert message.startswith('backup_monitoring_prometheus_config "%s"' % CONFIG)
    assert problem in message
