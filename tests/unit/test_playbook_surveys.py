# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The playbooks run as AWX job templates: extra vars only, a host pattern with a default, a clear failure when a
variable is missing or wrong, and survey specs (extensions/awx/surveys) that ask exactly what the playbooks take.

A playbook that runs tasks of its own checks its variables first (ansible.builtin.validate_argument_spec); a playbook
that only applies a role relies on the role's argument spec. The surveys are checked against AWX's rules for a survey
spec and against the playbook's own argument spec, so the two cannot drift apart.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import MAX_WORKERS

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))
SURVEYS = sorted((ROOT / "extensions" / "awx" / "surveys").glob("*.json"))
QUESTION_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
QUESTION_KEYS = {"question_name", "question_description", "required", "type", "variable", "default", "choices", "min", "max", "new_question"}
VARIABLE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
HOSTS = re.compile(r"^\{\{ (\w+) \| default\('(\w+)'\) \}\}$")


def plays(path):
    return yaml.safe_load(path.read_text())


def argument_spec(path):
    """The spec of the playbook's first task, which must be ansible.builtin.validate_argument_spec."""
    first = plays(path)[0]["tasks"][0]
    assert "ansible.builtin.validate_argument_spec" in first, "%s: the first task must check the variables" % path.name
    return first["ansible.builtin.validate_argument_spec"]["argument_spec"]


@pytest.mark.parametrize("path", PLAYBOOKS, ids=lambda p: p.name)
def test_every_playbook_runs_unattended_on_a_host_pattern_with_a_safe_default(path):
    for play in plays(path):
        if "import_playbook" in play or "ansible.builtin.import_playbook" in play:
            continue
        assert "vars_prompt" not in play, "%s: a job template cannot answer a prompt" % path.name
        hosts = play["hosts"]
        if hosts == "localhost":
            assert play.get("connection") == "local"
            continue
        match = HOSTS.match(hosts)
        assert match, "%s: hosts must be a variable with a default group, not %r" % (path.name, hosts)
        # The default is a group the user puts hosts in, never every host of the inventory.
        assert match.group(2) not in ("all", "ungrouped")
        assert match.group(1).endswith("_hosts")


@pytest.mark.parametrize("path", PLAYBOOKS, ids=lambda p: p.name)
def test_every_playbook_checks_its_variables_before_anything_else(path):
    for play in plays(path):
        if play.get("roles"):
            # The role's meta/argument_specs.yml is checked when the role starts, before its first task.
            assert not play.get("tasks") and not play.get("pre_tasks"), path.name
            for role in play["roles"]:
                name = role["role"] if isinstance(role, dict) else role
                assert (ROOT / "roles" / name.split(".")[-1] / "meta" / "argument_specs.yml").is_file(), name
        else:
            spec = argument_spec(path)
            assert spec, path.name
            hosts = HOSTS.match(play["hosts"])
            if hosts:
                assert spec[hosts.group(1)]["default"] == hosts.group(2), "%s: the spec's default host pattern differs" % path.name
            for name, option in spec.items():
                assert option.get("description"), "%s: %s has no description" % (path.name, name)
                defaulted = option.get("required") or "default" in option or name == "cellar_endpoint"
                assert defaulted, "%s: %s is neither required nor defaulted" % (path.name, name)


# --- the survey specs, by AWX's rules (POST /api/v2/job_templates/N/survey_spec/) ---


def check_question(question):
    unknown = set(question) - QUESTION_KEYS
    assert not unknown, "unknown keys %s" % unknown
    assert question["type"] in QUESTION_TYPES
    assert VARIABLE.match(question["variable"])
    assert isinstance(question["required"], bool)
    assert question["question_name"] and question["question_description"]
    default = question.get("default", "")
    if question["type"] in ("multiplechoice", "multiselect"):
        choices = question["choices"]
        assert isinstance(choices, list) and choices and all(isinstance(c, str) and c for c in choices)
        assert len(set(choices)) == len(choices)
        assert default in choices or (default == "" and not question["required"])
    elif question["type"] == "integer":
        assert isinstance(default, int)
        assert question["min"] <= default <= question["max"]
    else:
        assert isinstance(default, str)
        assert question.get("min", 0) <= len(default) <= question.get("max", 1024) or (default == "" and question["required"])


@pytest.mark.parametrize("path", SURVEYS, ids=lambda p: p.name)
def test_each_survey_is_a_valid_awx_survey_spec(path):
    survey = json.loads(path.read_text())
    assert set(survey) == {"name", "description", "spec"}
    assert survey["name"] and survey["description"]
    variables = [question["variable"] for question in survey["spec"]]
    assert len(variables) == len(set(variables)), "a variable asked twice"
    for question in survey["spec"]:
        check_question(question)


def test_a_survey_ships_for_every_playbook_that_takes_answers():
    assert {p.stem for p in SURVEYS} == {"restore", "backup_now", "export", "cellar", "recover", "backup_retention"}
    for path in PLAYBOOKS:
        if all(not play.get("roles") for play in plays(path)):
            assert (ROOT / "extensions" / "awx" / "surveys" / (path.stem + ".json")).is_file(), path.name


def survey_default(option):
    """What the survey's default must be for this option of the playbook's spec."""
    default = option.get("default", "")
    if option["type"] == "bool":
        return "true" if default else "false"
    if option["type"] == "raw" and default == []:
        return ""
    return default


@pytest.mark.parametrize("path", SURVEYS, ids=lambda p: p.name)
def test_each_survey_asks_exactly_what_its_playbook_takes(path):
    spec = argument_spec(ROOT / "playbooks" / (path.stem + ".yml"))
    questions = {q["variable"]: q for q in json.loads(path.read_text())["spec"]}
    assert set(questions) == set(spec), "the survey and the playbook's argument spec name different variables"
    for name, option in spec.items():
        question = questions[name]
        if option.get("required"):
            assert question["required"], "%s is required by the playbook" % name
        assert question["default"] == survey_default(option), name
        if option["type"] == "bool":
            assert (question["type"], question["choices"]) == ("multiplechoice", ["true", "false"]), name
        elif option.get("choices"):
            assert (question["type"], question["choices"]) == ("multiplechoice", option["choices"]), name
        elif option["type"] == "int":
            assert question["type"] == "integer", name
        elif option["type"] == "raw":
            assert question["type"] == "textarea", name  # a list, one item per line or as YAML
        else:
            assert question["type"] in ("text", "password"), name


def test_the_workers_question_has_the_module_s_bounds():
    cellar = {q["variable"]: q for q in json.loads((ROOT / "extensions" / "awx" / "surveys" / "cellar.json").read_text())["spec"]}
    assert (cellar["cellar_workers"]["min"], cellar["cellar_workers"]["max"]) == (1, MAX_WORKERS)


# --- what a job template's user sees when a variable is missing or wrong: the check fails, nothing else runs ---


def run_playbook(name, *extra):
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", str(ROOT / "playbooks" / name)]
    for item in extra:
        argv += ["-e", item]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.parametrize(
    ("playbook", "extra", "message"),
    [
        ("restore.yml", ["restore_hosts=all"], "missing required arguments: restore_job"),
        ("restore.yml", ["restore_hosts=all", "restore_job=app", "restore_move_aside=perhaps"], "restore_move_aside"),
        ("backup_now.yml", ["backup_now_hosts=all"], "missing required arguments: backup_now_job"),
        ("export.yml", ["export_hosts=all", "export_job=app"], "missing required arguments: export_dest"),
        ("export.yml", ["export_hosts=all", "export_job=app", "export_dest=/tmp/a.tar", "export_compress=gzip"], "export_compress must be one of: none, zstd"),
        ("cellar.yml", ["cellar_workers=many"], "cellar_workers"),
        ("recover.yml", ["recover_hosts=all", "recover_partial=perhaps"], "recover_partial"),
    ],
)
def test_a_missing_or_wrong_variable_fails_first_and_named(playbook, extra, message):
    proc = run_playbook(playbook, *extra)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Validation of arguments failed" in out and message in out, out
    # The check is the first task: nothing ran before it, nothing after.
    assert re.search(r"localhost +: ok=0 +changed=0 +unreachable=0 +failed=1 +skipped=0", out), out
