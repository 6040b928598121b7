# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The AWX credential types of extensions/awx: AWX would accept them, and they inject what the modules read.

Uses tests/integration/awx_injectors.py (AWX's validation and injection, redone); no RGW, no ansible-runner.
"""

import configparser
import copy
import importlib.util
import os
import re
import stat
from pathlib import Path

import botocore.session
import pytest
import yaml

from ansible_collections.keepdata.storage.plugins.plugin_utils.backup_plan import backup_plan, backup_secrets

ROOT = Path(__file__).resolve().parents[2]
TYPES = ROOT / "extensions" / "awx" / "credential_types"

_spec = importlib.util.spec_from_file_location("awx_injectors", ROOT / "tests" / "integration" / "awx_injectors.py")
awx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(awx)

INPUTS = {"host": "https://cellar.example.com", "key_id": "KEYID0123456789", "key_secret": "s3cr3t/with+chars=="}


def field(ctype, field_id):
    return next(f for f in ctype["inputs"]["fields"] if f["id"] == field_id)


@pytest.fixture(params=["cellar.json", "cellar_file.json"])
def shipped(request):
    return awx.load(TYPES / request.param)


def test_shipped_types_are_valid(shipped):
    awx.validate(shipped)
    assert shipped["kind"] == "cloud"
    assert sorted(shipped["inputs"]["required"]) == ["host", "key_id", "key_secret"]
    assert "cellar-c2.services.clever-cloud.com" in field(shipped, "host")["help_text"]
    assert field(shipped, "host")["label"] == "Cellar host"


def test_only_the_secret_input_is_secret(shipped):
    assert field(shipped, "key_secret")["secret"] is True
    assert not field(shipped, "host").get("secret") and not field(shipped, "key_id").get("secret")


def test_the_two_types_have_the_same_inputs():
    assert awx.load(TYPES / "cellar.json")["inputs"] == awx.load(TYPES / "cellar_file.json")["inputs"]


def _env(name, value="{{ host }}"):
    def change(ctype):
        ctype["injectors"]["env"][name] = value

    return change


def _file(key, value):
    def change(ctype):
        ctype["injectors"]["file"][key] = value

    return change


def _field(**keys):
    def change(ctype):
        ctype["inputs"]["fields"][0].update(keys)

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_env("1CELLAR"), "not a valid variable name"),
        (_env("CELLAR-HOST"), "not a valid variable name"),
        (_env("ANSIBLE_CELLAR_HOST"), "reserved"),
        (_env("PATH"), "reserved"),
        (_env("AWX_HOST"), "reserved"),
        (_env("CELLAR_REGION", "r\u00e9gion"), "ASCII"),
        (_env("CELLAR_REGION", "{{ region }}"), "'region' is undefined"),
        (_env("CELLAR_CONFIG", "{{ tower.filename.other }}"), "has no attribute 'other'"),
        (_file("template.other", "x"), "cannot be mixed"),
        (_file("templates", "x"), "keys are template or template.<name>"),
        (_file("template", "{{ key_id }} {{ password }}"), "'password' is undefined"),
        (_field(type="integer"), "type must be string or boolean"),
        (_field(placeholder="x"), "unknown keys placeholder"),
        (_field(id="key-id"), "not a valid name"),
        (_field(secret="yes"), "secret must be true or false"),  # noqa: S106 - not a password
        (lambda ctype: ctype["inputs"]["required"].append("region"), "undefined inputs: region"),
        (lambda ctype: ctype.update(kind="ssh"), "kind must be cloud or net"),
        (lambda ctype: ctype["injectors"].update(files={}), "injectors holds only"),
    ],
)
def test_validate_rejects(change, message):
    ctype = copy.deepcopy(awx.load(TYPES / "cellar_file.json"))
    change(ctype)
    with pytest.raises(ValueError, match=re.escape(message)):
        awx.validate(ctype)


def test_validate_rejects_tower_filename_without_a_template():
    ctype = copy.deepcopy(awx.load(TYPES / "cellar.json"))
    ctype["injectors"]["env"]["AWS_SHARED_CREDENTIALS_FILE"] = "{{ tower.filename }}"
    with pytest.raises(ValueError, match="has no attribute 'filename'"):
        awx.validate(ctype)
    ctype["injectors"]["file"] = {"template": "[default]"}
    awx.validate(ctype)


def test_validate_accepts_named_templates():
    ctype = copy.deepcopy(awx.load(TYPES / "cellar_file.json"))
    ctype["injectors"]["file"] = {"template.credentials": "[x]", "template.config": "[y]"}
    ctype["injectors"]["env"]["AWS_SHARED_CREDENTIALS_FILE"] = "{{ tower.filename.credentials }}"
    ctype["injectors"]["env"]["AWS_CONFIG_FILE"] = "{{ tower.filename.config }}"
    awx.validate(ctype)


def _files_under(path):
    return sorted(p for p in Path(path).rglob("*") if p.is_file())


def test_render_the_environment_type(tmp_path):
    env, extra_vars, paths = awx.render(awx.load(TYPES / "cellar.json"), INPUTS, tmp_path)
    assert env == {"CELLAR_ADDON_HOST": INPUTS["host"], "CELLAR_ADDON_KEY_ID": INPUTS["key_id"], "CELLAR_ADDON_KEY_SECRET": INPUTS["key_secret"]}
    assert extra_vars == {} and paths == [] and _files_under(tmp_path) == []


def test_render_the_file_type_keeps_the_secret_in_a_0600_file(tmp_path, monkeypatch):
    env, extra_vars, paths = awx.render(awx.load(TYPES / "cellar_file.json"), INPUTS, tmp_path)
    assert extra_vars == {}
    assert len(paths) == 1 and _files_under(tmp_path) == [Path(paths[0])]
    credentials = Path(paths[0])
    assert credentials.parent == tmp_path / "env"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert credentials.read_text() == "[keepdata]\naws_access_key_id = %s\naws_secret_access_key = %s" % (INPUTS["key_id"], INPUTS["key_secret"])
    assert env == {"AWS_SHARED_CREDENTIALS_FILE": paths[0], "AWS_PROFILE": "keepdata", "CELLAR_ADDON_HOST": INPUTS["host"]}
    assert not any(INPUTS["key_secret"] in value for value in env.values())
    assert not any(INPUTS["key_id"] in value for value in env.values())

    parser = configparser.ConfigParser()
    parser.read(credentials)
    assert dict(parser["keepdata"]) == {"aws_access_key_id": INPUTS["key_id"], "aws_secret_access_key": INPUTS["key_secret"]}
    # The AWS SDK's own reader finds the keys through exactly these two variables.
    # botocore is pinned by every toolchain the unit gates run (requirements-dev.txt, tests/requirements-*.txt).
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE"):
        monkeypatch.setenv(name, env[name])
    found = botocore.session.Session().get_credentials()
    assert (found.access_key, found.secret_key) == (INPUTS["key_id"], INPUTS["key_secret"])


def test_render_named_templates_and_extra_vars(tmp_path):
    ctype = {
        "name": "example",
        "kind": "cloud",
        "inputs": {"fields": [{"id": "token", "label": "Token", "secret": True}, {"id": "region", "label": "Region"}], "required": ["token"]},
        "injectors": {
            "file": {"template.token": "{{ token }}", "template.config": "region={{ region }}\n"},
            "env": {"TOKEN_FILE": "{{ tower.filename.token }}", "CONFIG_FILE": "{{ tower.filename.config }}"},
            "extra_vars": {"example_region": "{{ region }}"},
        },
    }
    env, extra_vars, paths = awx.render(ctype, {"token": "t0k"}, tmp_path)
    assert [Path(p).read_text() for p in paths] == ["t0k", "region="]  # no region: it renders empty
    assert env == {"TOKEN_FILE": paths[0], "CONFIG_FILE": paths[1]}
    assert extra_vars == {"example_region": ""}
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in paths)


def test_render_needs_the_required_inputs_and_only_defined_ones(tmp_path):
    ctype = awx.load(TYPES / "cellar_file.json")
    with pytest.raises(ValueError, match="missing required inputs: key_secret"):
        awx.render(ctype, dict(INPUTS, key_secret=""), tmp_path)
    with pytest.raises(ValueError, match="undefined inputs: region"):
        awx.render(ctype, dict(INPUTS, region="x"), tmp_path)
    assert _files_under(tmp_path) == []


BACKUP_INPUTS = {"password": "repo-Pass-word-42", "recovery_password": "Recovery-phrase-77"}


def test_the_backup_repository_type_is_valid_and_hides_both_passwords():
    ctype = awx.load(TYPES / "backup_repository.json")
    awx.validate(ctype)
    assert ctype["inputs"]["required"] == ["password"]
    assert field(ctype, "password")["secret"] is True and field(ctype, "recovery_password")["secret"] is True
    # Only the files' paths are injected: nothing reaches the environment, where ansible-runner records it.
    assert "env" not in ctype["injectors"]


@pytest.mark.parametrize("inputs", [BACKUP_INPUTS, {"password": BACKUP_INPUTS["password"]}])
def test_the_backup_role_reads_what_the_backup_repository_type_injects(tmp_path, inputs):
    env, extra_vars, paths = awx.render(awx.load(TYPES / "backup_repository.json"), inputs, tmp_path)
    assert env == {}
    assert extra_vars == {"backup_password_file": paths[0], "backup_recovery_password_file": paths[1]}
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 and Path(p).parent == tmp_path / "env" for p in paths)
    assert not any(secret in value for secret in BACKUP_INPUTS.values() for value in extra_vars.values())
    # The role's settings as roles/backup/vars/main.yml builds them from these extra vars.
    defaults = yaml.safe_load((ROOT / "roles" / "backup" / "defaults" / "main.yml").read_text())
    settings = {name[len("backup_") :]: value for name, value in defaults.items()}
    settings.update(
        password_file=extra_vars["backup_password_file"],
        recovery_password_file=extra_vars["backup_recovery_password_file"],
        target="path",
        path="/mnt/backup/restic",
        host_name="web1",
        jobs=[{"name": "app1", "paths": ["/srv/app1"]}],
    )
    assert backup_plan(settings)["errors"] == []
    secrets = backup_secrets(settings)
    assert (secrets["password"], secrets["recovery_password"]) == (inputs["password"], inputs.get("recovery_password", ""))
