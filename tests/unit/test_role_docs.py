# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""`ansible-doc -t role` shows every variable of every role: its defaults and its required variables."""

import json
import pathlib
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if (path / "meta" / "argument_specs.yml").exists())


def documented_options(role):
    proc = subprocess.run(["ansible-doc", "-t", "role", "--json", "keepdata.storage." + role], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["keepdata.storage." + role]["entry_points"]["main"]["options"]


def test_every_role_is_documented():
    assert ROLES == sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir())
    assert "backup" in ROLES


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_shows_every_default_and_nothing_else(role):
    options = documented_options(role)
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    required = {name for name, spec in options.items() if spec.get("required")}
    # Every default is documented; every documented variable has a default or is required (no stale entries).
    assert set(defaults) - set(options) == set()
    assert set(options) - set(defaults) == required
    for name, spec in options.items():
        assert spec.get("description"), "%s: %s has no description" % (role, name)


def test_the_backup_password_is_hidden_and_may_come_from_a_file():
    options = documented_options("backup")
    # Required by the plan (backup_password or backup_password_file), so not by the argument spec.
    assert options["backup_password"]["default"] == ""
    assert options["backup_password_file"]["default"] == ""
    for secret in ("backup_password", "backup_recovery_password", "backup_s3_secret_key"):
        assert options[secret].get("no_log") is True, secret
