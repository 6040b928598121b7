# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Grafana dashboard: valid, importable and provisionable, over the backup metrics only, and every expression
returns data for a host where a job ran once and a drill ran once (checked offline with promtool; the Molecule
scenario checks it against a real Prometheus with molecule/backup/files/dashboard_queries.py, tested here too)."""

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.keepdata.storage.plugins.module_utils.backup.shared import METRICS as RUNNER_METRICS

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "roles/backup_monitoring/files/keepdata_backup_dashboard.json"
QUERIES = ROOT / "molecule/backup/files/dashboard_queries.py"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# The contract with the runner: the metrics every job's textfile holds, as declared once (METRICS of backup/shared.py).
METRICS = {"keepdata_backup_" + suffix for suffix, _key, _help in RUNNER_METRICS}
# node_exporter's and Prometheus's own series a panel may use.
BUILTIN_METRICS = {"up", "node_textfile_scrape_error", "node_textfile_mtime_seconds"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"}

# A host where job "app" ran once (at 10 min) and its drill (with the repository check) once (at 15 min); job "logs"
# is disabled and never ran. Every metric exists, zero where nothing happened: what the Molecule scenario scrapes.
RAN_ONCE = {
    "app": {
        "since_timestamp_seconds": 60,
        "last_run_timestamp_seconds": 600,
        "last_success_timestamp_seconds": 600,
        "last_duration_seconds": 12,
        "last_bytes_added": 123456,
        "last_files_new": 40,
        "snapshots": 1,
        "drill_last_timestamp_seconds": 900,
        "drill_last_success_timestamp_seconds": 900,
        "drill_files_checked": 20,
        "drill_bytes_checked": 4096,
        "drill_duration_seconds": 3,
        "check_last_timestamp_seconds": 900,
        "check_last_success_timestamp_seconds": 900,
        "structure_check_last_timestamp_seconds": 960,
        "structure_check_last_success_timestamp_seconds": 960,
        "max_age_seconds": 90240,
        "drill_max_age_seconds": 608700,
    },
    "logs": {"since_timestamp_seconds": 60, "drill_max_age_seconds": 608700},
}


def load_queries_module():
    spec = importlib.util.spec_from_file_location("dashboard_queries", QUERIES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DQ = load_queries_module()


def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(data=None):
    def walk(items):
        for panel in items or []:
            yield panel
            yield from walk(panel.get("panels"))

    return list(walk((data or dashboard())["panels"]))


def exprs():
    return DQ.panel_expressions(dashboard())


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def metric_names(expr):
    """The series an expression reads: identifiers that are not functions, keywords, labels of by/on (...) or
    matchers, durations or variables."""
    text = strip_strings(expr)
    text = re.sub(r"\$\{?\w+(?::\w+)?\}?", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        if not match.group(2) and match.group(1) not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


def test_dashboard_is_valid_and_importable():
    data = dashboard()
    assert data["uid"] == "keepdata-backup"
    assert data["title"] == "keepdata backups"
    assert data["schemaVersion"] >= 36
    # A fixed id would clash with an existing dashboard on import; provisioning ignores it.
    assert data.get("id") is None
    assert panels(data)


def test_template_variables():
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    instance, job = variables["instance"], variables["backup_job"]
    assert instance["query"] == "label_values(keepdata_backup_last_run_timestamp_seconds, instance)"
    assert job["query"] == 'label_values(keepdata_backup_last_run_timestamp_seconds{instance=~"$instance"}, backup_job)'
    for variable in (instance, job):
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE
        assert variable["multi"] is True and variable["includeAll"] is True and variable["allValue"] == ".*"
    assert list(variables) == ["datasource", "instance", "backup_job"]


def test_every_panel_has_a_unique_id_the_datasource_variable_and_a_query():
    ids = [panel.get("id") for panel in panels()]
    assert all(isinstance(panel_id, int) for panel_id in ids), ids
    assert len(ids) == len(set(ids)), ids
    for panel in panels():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        targets = panel.get("targets") or []
        assert any((target.get("expr") or "").strip() for target in targets), panel["title"]
        for target in targets:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
        refs = [target["refId"] for target in targets]
        assert len(refs) == len(set(refs)), panel["title"]


def test_the_panels_cover_what_admins_look_at():
    names = set().union(*(metric_names(expr) for expr in exprs()))
    for metric in (
        "keepdata_backup_last_success_timestamp_seconds",
        "keepdata_backup_max_age_seconds",
        "keepdata_backup_last_exit_status",
        "keepdata_backup_consecutive_failures",
        "keepdata_backup_last_duration_seconds",
        "keepdata_backup_last_bytes_added",
        "keepdata_backup_last_files_new",
        "keepdata_backup_last_files_changed",
        "keepdata_backup_snapshots",
        "keepdata_backup_drill_last_result",
        "keepdata_backup_drill_files_checked",
        "keepdata_backup_drill_bytes_checked",
        "keepdata_backup_drill_last_success_timestamp_seconds",
        "keepdata_backup_check_last_result",
        "keepdata_backup_structure_check_last_result",
        "keepdata_backup_structure_check_last_success_timestamp_seconds",
    ):
        assert metric in names, metric
    types = {panel["type"] for panel in panels()}
    assert "timeseries" in types and types & {"table", "stat"}


def test_metric_names_are_found():
    assert metric_names('max by (instance, backup_job) (time() - keepdata_backup_x{instance=~"$instance"}[5m] > bool 0)') == {"keepdata_backup_x"}
    assert metric_names("sum(rate(up[$__rate_interval])) or vector(0) * on(job) group_left node_textfile_scrape_error") == {
        "up",
        "node_textfile_scrape_error",
    }


@pytest.mark.parametrize("expr", exprs())
def test_every_metric_is_in_the_contract(expr):
    assert metric_names(expr), expr
    assert metric_names(expr) - METRICS - BUILTIN_METRICS == set(), expr


@pytest.mark.parametrize("expr", exprs())
def test_every_backup_series_is_filtered_by_the_variables(expr):
    selectors = re.findall(r"\b(keepdata_backup_\w+)(\{[^}]*\})?", expr)
    assert selectors, expr
    for metric, matchers in selectors:
        assert 'instance=~"$instance"' in matchers and 'backup_job=~"$backup_job"' in matchers, "%s in %s" % (metric, expr)


@pytest.mark.parametrize("expr", exprs())
def test_no_comparison_filters_series_out(expr):
    # "x > 0" drops the series whose value is 0 (a job that is fine): a panel would show nothing. A comparison
    # must be a "bool" one, or the left side of an "or" that brings the series back, inside its parentheses.
    text = strip_strings(re.sub(r"\{[^}]*\}", "{}", expr))
    for match in re.finditer(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)", text):
        depth, start = 0, 0
        for index in range(match.start() - 1, -1, -1):
            if text[index] == ")":
                depth += 1
            elif text[index] == "(":
                if depth == 0:
                    start = index
                    break
                depth -= 1
        end = text.find(")", match.end())
        assert " or " in text[start : end if end >= 0 else len(text)], "a filtering comparison in: " + expr


def test_every_expression_returns_data_for_a_host_that_ran_once(tmp_path):
    """promtool evaluates absent(EXPR) for every expression of the dashboard, with the variables set to "All",
    over the series of a host where a job ran once: no alert may fire, so every expression returns data."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH: it comes from Debian's prometheus package (run scripts/bootstrap.sh, then kd_activate)")
    queries = [DQ.substitute(expr) for expr in exprs()]
    rules = [{"alert": "Empty%d" % index, "expr": "absent(%s)" % query} for index, query in enumerate(queries)]
    series = [{"series": 'node_textfile_scrape_error{job="node",instance="host1"}', "values": "0x120"}]
    for job, values in RAN_ONCE.items():
        for metric in sorted(METRICS):
            value = values.get(metric[len("keepdata_backup_") :], 0)
            series.append({"series": '%s{job="node",instance="host1",backup_job="%s"}' % (metric, job), "values": "%sx120" % value})
    cases = [{"eval_time": "1h", "alertname": "Empty%d" % index, "exp_alerts": []} for index in range(len(queries))]
    # And the check itself: an expression that filters everything out is caught.
    rules.append({"alert": "Filtered", "expr": "absent(keepdata_backup_consecutive_failures > 0)"})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    cases.append({"eval_time": "1h", "alertname": "Filtered", "exp_alerts": [{"exp_labels": {}}]})
    suite = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(suite))
    proc = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, "\n".join("Empty%d: %s" % item for item in enumerate(queries)) + "\n" + proc.stdout + proc.stderr


# --- molecule/backup/files/dashboard_queries.py ---------------------------------------------------------------


def test_the_script_finds_every_expression_once_in_order_with_rows():
    data = {
        "panels": [
            {"targets": [{"expr": "a"}, {"expr": " "}, {"refId": "B"}]},
            {"type": "row", "panels": [{"targets": [{"expr": "b"}, {"expr": "a"}]}]},
            {"type": "text"},
        ]
    }
    assert DQ.panel_expressions(data) == ["a", "b"]
    assert DQ.panel_expressions(dashboard()) == exprs()
    assert len(exprs()) == sum(1 for panel in panels() for target in panel["targets"] if target.get("expr"))


def test_the_script_substitutes_the_variables_as_all():
    assert DQ.substitute('x{instance=~"$instance", backup_job=~"${backup_job}"}') == 'x{instance=~".*", backup_job=~".*"}'
    assert DQ.substitute('rate(x{instance=~"${instance:regex}"}[$__rate_interval])') == 'rate(x{instance=~".*"}[5m])'
    assert DQ.substitute("increase(x[$__range]) / $__interval") == "increase(x[5m]) / 5m"
    assert DQ.substitute("x") == "x"
    with pytest.raises(ValueError, match=r"\$datasource"):
        DQ.substitute('x{a="$datasource"}')
    for expr in exprs():
        assert "$" not in DQ.substitute(expr)


def test_the_script_counts_series_and_reports_errors():
    assert DQ.series_count({"status": "success", "data": {"resultType": "vector", "result": [{}, {}]}}) == 2
    assert DQ.series_count({"status": "success", "data": {"resultType": "vector", "result": []}}) == 0
    assert DQ.series_count({"status": "success", "data": {"resultType": "matrix", "result": [{}]}}) == 1
    assert DQ.series_count({"status": "success", "data": {"resultType": "scalar", "result": [1, "0"]}}) == 1
    with pytest.raises(ValueError, match="parse error"):
        DQ.series_count({"status": "error", "errorType": "bad_data", "error": "parse error"})


def test_the_script_prints_one_line_per_expression_and_fails_on_empty_or_error(monkeypatch):
    answers = {
        "good": {"status": "success", "data": {"resultType": "vector", "result": [{}, {}]}},
        "empty": {"status": "success", "data": {"resultType": "vector", "result": []}},
        "bad": {"status": "error", "error": "parse error"},
    }
    monkeypatch.setattr(DQ, "query", lambda url, expr: answers[expr])
    lines, failures = DQ.check(["good", "empty", "bad", 'x{a=~"$nope"}'], "http://127.0.0.1:9")
    assert lines == ["ok 2 series: good", "EMPTY: empty", "ERROR: bad: parse error", 'ERROR: x{a=~"$nope"}: unknown variable(s): $nope']
    assert failures == 3
    assert DQ.check(["good"], "http://127.0.0.1:9") == (["ok 2 series: good"], 0)


def test_the_script_exits_1_when_prometheus_does_not_answer(tmp_path, capsys):
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps({"panels": [{"targets": [{"expr": "up"}]}]}))
    # Port 9 (discard) on loopback: nothing listens there in the test environment.
    assert DQ.main([str(path), "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().out.startswith("ERROR: up: ")
    path.write_text(json.dumps({"panels": []}))
    assert DQ.main([str(path), "http://127.0.0.1:9"]) == 1
    assert DQ.main([str(path)]) == 2
    path.write_text(json.dumps({"panels": [{"targets": [{"expr": "up"}]}]}))
    assert DQ.main([str(path), "file:///etc/passwd"]) == 1
    assert "must start with http:// or https://" in capsys.readouterr().out


def test_the_script_is_plain_standard_library_python():
    text = QUERIES.read_text()
    assert not text.startswith("#!")
    imports = set(re.findall(r"^(?:import|from) (\w+)", text, re.MULTILINE))
    assert imports <= {"json", "re", "sys", "urllib"}, imports
