# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One way in for a role variable: through the plan.

Each role's vars/main.yml maps its variables, as they are, into the settings its plan filter takes; the tasks read
the plan. A variable declared in defaults/main.yml (and the argument spec) that the mapping forgets would never
reach the plan, and a task that reads a role variable itself re-derives what the plan decides. No task or template
reads a role variable (issue 31 emptied the list below): a new direct read fails here.
"""

import re
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.keepdata.storage.plugins.plugin_utils.mounts_plan import mounts_plan

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import role_settings  # noqa: E402 - the script that writes the mappings, imported from scripts/

ROLES = {"backup": "backup_", "mounts": "mounts_", "s3fs": "s3fs_", "backup_monitoring": "backup_monitoring_"}
# Keys whose string is a bare Jinja expression; elsewhere only {{ ... }} and {% ... %} are read.
EXPRESSION_KEYS = {"when", "that", "changed_when", "failed_when", "until", "loop"}
# Lookups of the controller's environment in a settings mapping (where a Clever Cloud app's variables are).
ENV_LOOKUP = re.compile(r"\{\{ lookup\('ansible\.builtin\.env', '[A-Z_]+'\) \}\}")

# Role variables the tasks or templates read themselves, not through the plan: {variable: files}. None left.
DIRECT_READS = {
    "backup": {},
    "mounts": {},
    "s3fs": {},
    "backup_monitoring": {},
}


def load(path):
    return yaml.safe_load(path.read_text()) or {}


def expressions(node, key=None):
    """The Jinja expressions of a task file: bare ones under EXPRESSION_KEYS, templated ones anywhere."""
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from expressions(child, child_key)
    elif isinstance(node, list):
        for child in node:
            yield from expressions(child, key)
    elif isinstance(node, str):
        if key in EXPRESSION_KEYS:
            yield node
        else:
            yield from re.findall(r"\{\{.*?\}\}|\{%.*?%\}", node, re.S)


def options(role):
    return load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


def settings(role):
    """{settings key: the role variable it reads} of vars/main.yml, the environment lookups left out."""
    ((name, mapping),) = load(ROOT / "roles" / role / "vars" / "main.yml").items()
    assert name == "_%s_settings" % role
    plain = re.compile(r"\{\{ (%s[a-z0-9_]+)(?: \| default\('[^']*'\))? \}\}" % ROLES[role])
    found = {}
    for key, value in mapping.items():
        if key == "env":
            assert all(ENV_LOOKUP.fullmatch(text) for text in value.values()), value
            continue
        match = plain.fullmatch(str(value))
        assert match, "%s: settings key %s must read one role variable as it is, not %r" % (role, key, value)
        found[key] = match.group(1)
    return found


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_role_variable_reaches_the_plan_or_is_a_listed_direct_read(role):
    mapped = set(settings(role).values())
    declared = set(load(ROOT / "roles" / role / "defaults" / "main.yml"))
    assert declared == set(options(role)), "defaults/main.yml and the argument spec declare different variables"
    assert mapped <= declared, "the settings read undeclared variables: %s" % sorted(mapped - declared)
    unmapped = declared - mapped
    assert unmapped <= set(DIRECT_READS[role]), "declared, but neither in the settings nor read by a task: %s" % sorted(unmapped - set(DIRECT_READS[role]))


@pytest.mark.parametrize("role", sorted(ROLES))
def test_tasks_read_role_variables_only_where_listed(role):
    declared = set(options(role))
    reads = {}
    role_dir = ROOT / "roles" / role
    texts = [(path.name, list(expressions(load(path)))) for path in sorted((role_dir / "tasks").glob("*.yml")) + sorted((role_dir / "handlers").glob("*.yml"))]
    texts += [(path.name, [path.read_text()]) for path in sorted((role_dir / "templates").glob("*"))]
    for name, found in texts:
        for text in found:
            for variable in re.findall(r"\b(%s[a-z0-9_]+)\b" % ROLES[role], text):
                if variable in declared:
                    reads.setdefault(variable, set()).add(name)
    assert reads == DIRECT_READS[role]


def test_every_settings_mapping_is_what_the_argument_spec_gives():
    # vars/main.yml is written by scripts/role_settings.py; a hand edit, or a spec changed without running it, fails.
    assert role_settings.main(["--check"]) == 0


def test_a_new_role_variable_reaches_its_plan_with_one_declaration():
    # A variable declared in the argument spec only (its default there) gets its settings key from the script, and
    # the plan filter receives it with the value Ansible would give.
    spec = dict(options("mounts"), mounts_example_new={"type": "str", "default": "declared once", "description": "A test fixture."})
    mapping = yaml.safe_load(role_settings.mapping_text("mounts", list(spec)))["_mounts_settings"]
    assert mapping["example_new"] == "{{ mounts_example_new }}"
    variables = {name: option.get("default") for name, option in spec.items()}
    settings = {key: variables[re.fullmatch(r"\{\{ (\w+) \}\}", value).group(1)] for key, value in mapping.items()}
    assert settings["example_new"] == "declared once"
    assert mounts_plan(settings)["errors"] == []
