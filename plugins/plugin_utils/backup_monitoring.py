# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plan of role keepdata.storage.backup_monitoring: where the alert rules and the dashboard go on the Prometheus server.

``backup_monitoring_plan(settings)`` returns ``{"errors", "rules_dir", "rules_parent", "rules_path", "prometheus_config",
"service", "dashboard_dir", "dashboard_path", "preflight"}``; ``preflight`` lists the paths that must exist on the
Prometheus server before the role writes anything, each with the message to show when it does not. ``settings`` are
the role's variables without their ``backup_monitoring_`` prefix. Paths follow the other roles' rules (storage_rules),
unit names the backup role's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import posixpath

from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import abs_path_error, full, has_control_chars
from ansible_collections.keepdata.storage.plugins.plugin_utils.backup_plan import UNIT_NAME, systemd_unit

# The role's files/ names them; the rules file must end in .yml for the usual rule_files glob "<dir>/*.yml".
RULES_FILE = "keepdata_backup.rules.yml"
DASHBOARD_FILE = "keepdata_backup_dashboard.json"
OPTION = "backup_monitoring_"


def _string(settings, key, errors):
    """The option as text ("" when unset), or None after an error: never echoed when it holds a control character."""
    value = settings.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.append("%s%s must be a string" % (OPTION, key))
        return None
    if has_control_chars(value):
        errors.append("%s%s must not contain control characters (newline, tab, ...)" % (OPTION, key))
        return None
    return value


def _path(settings, key, errors, required):
    """An absolute path without its trailing "/", "" when optional and unset, None after an error."""
    value = _string(settings, key, errors)
    if value is None:
        return None
    if not value and not required:
        return ""
    value = value.rstrip("/") if value != "/" else value
    problem = abs_path_error(OPTION + key, value)
    if problem:
        errors.append(problem)
        return None
    return value


def _service(settings, errors):
    """The service unit Prometheus runs as ("" for none), as systemctl names it: ".service" added when missing."""
    value = _string(settings, "prometheus_service", errors)
    if not value:
        return value
    option = OPTION + "prometheus_service"
    if not full(UNIT_NAME, value):
        errors.append('%s "%s" must be a systemd unit name (letters, digits and : _ . @ -)' % (option, value))
        return None
    unit, problem = systemd_unit(option, value)
    if problem:
        errors.append(problem)
        return None
    if not unit.endswith(".service"):
        errors.append('%s "%s" must be a service, reloaded with systemctl reload' % (option, value))
        return None
    return unit


def backup_monitoring_plan(settings):
    """Where the rules and the dashboard are written, what is checked and reloaded; every error at once."""
    settings = settings or {}
    errors = []
    rules_dir = _path(settings, "rules_dir", errors, required=True)
    config = _path(settings, "prometheus_config", errors, required=False)
    service = _service(settings, errors)
    dashboard_dir = _path(settings, "dashboard_dir", errors, required=False)
    if errors:
        return {
            "errors": errors,
            "rules_dir": "",
            "rules_parent": "",
            "rules_path": "",
            "prometheus_config": "",
            "service": "",
            "dashboard_dir": "",
            "dashboard_path": "",
            "preflight": [],
        }
    rules_parent = rules_dir.rsplit("/", 1)[0] or "/"
    preflight = [
        {
            "path": rules_parent,
            "missing": '%srules_dir "%s": its parent %s does not exist (is Prometheus installed on this host?)' % (OPTION, rules_dir, rules_parent),
        }
    ]
    if config:
        preflight.append({"path": config, "missing": '%sprometheus_config "%s" does not exist (set it to "" to skip the check)' % (OPTION, config)})
    if dashboard_dir:
        preflight.append(
            {
                "path": dashboard_dir,
                "missing": '%sdashboard_dir "%s" does not exist: create it and point a Grafana dashboard provider at it' % (OPTION, dashboard_dir),
            }
        )
    return {
        "errors": [],
        "rules_dir": rules_dir,
        # The role creates the rules directory, not Prometheus's own.
        "rules_parent": rules_parent,
        "rules_path": rules_dir + "/" + RULES_FILE,
        "prometheus_config": config,
        "service": service,
        "dashboard_dir": dashboard_dir,
        "dashboard_path": dashboard_dir + "/" + DASHBOARD_FILE if dashboard_dir else "",
        "preflight": preflight,
    }


def _glob_matches(pattern, path):
    """Whether Go's filepath.Match, as Prometheus applies rule_files globs, matches ``path``: one segment per "/",
    "*" and "?" never cross a "/", "[^...]" negates."""
    pattern_parts, path_parts = pattern.split("/"), path.split("/")
    if len(pattern_parts) != len(path_parts):
        return False
    return all(fnmatch.fnmatchcase(part, glob.replace("[^", "[!")) for glob, part in zip(pattern_parts, path_parts))


def rules_file_problem(config_text, config_path, rules_path):
    """ "" when the Prometheus configuration ``config_text`` (read from ``config_path``) lists ``rules_path`` under
    rule_files: (relative globs count from the configuration's directory), else what is wrong, naming the option.

    Asked before the rules are written, so that a role run that cannot work changes nothing."""
    import yaml  # noqa: PLC0415 - on the controller (PyYAML comes with Ansible); module_utils import nothing outside the standard library at load time

    option = OPTION + "prometheus_config"
    try:
        config = yaml.safe_load(config_text or "") or {}
    except yaml.YAMLError:
        return '%s "%s" is not valid YAML' % (option, config_path)
    if not isinstance(config, dict):
        return '%s "%s" is not a Prometheus configuration (a mapping)' % (option, config_path)
    globs = config.get("rule_files") or []
    if not isinstance(globs, list) or not all(isinstance(glob, str) for glob in globs):
        return '%s "%s": rule_files must be a list of file globs' % (option, config_path)
    base = posixpath.dirname(config_path)
    for glob in globs:
        if _glob_matches(posixpath.normpath(posixpath.join(base, glob)), rules_path):
            return ""
    return '%s "%s" does not load %s: add "%s/*.yml" to its rule_files: (then reload Prometheus)' % (
        option,
        config_path,
        rules_path,
        posixpath.dirname(rules_path),
    )
