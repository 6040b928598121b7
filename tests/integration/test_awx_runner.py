# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/cellar.yml run by ansible-runner as an AWX job would run it, with each credential type of extensions/awx.

The credential is injected by awx_injectors.render (AWX's injection, redone) into a private data dir; the job's
environment holds nothing else that could connect to the RGW. Then every artifact is searched for the secret key:
the environment type leaves it in artifacts/<ident>/command (what extensions/awx/README.md warns about), the
credentials file type nowhere.
"""

import json
import os
import re
import shutil
import sys
from pathlib import Path

import ansible_runner
import pytest
from awx_injectors import load, render
from awx_job import CONNECTION_ENV, artifacts_holding
from conftest import ROOT, delete_bucket_quietly, server_snapshot

pytestmark = pytest.mark.rgw

TYPES = ROOT / "extensions" / "awx" / "credential_types"
PLAYBOOK = ROOT / "playbooks" / "cellar.yml"
SURVEY = ROOT / "extensions" / "awx" / "surveys" / "cellar.json"


def private_data_dir(tmp_path, env):
    """An AWX-like private data dir: the playbook in project/, localhost in inventory/; returns the job's env."""
    text = PLAYBOOK.read_text()
    # A copy runs like the original only while the playbook includes nothing by a relative path.
    assert not re.search(r"^\s*-?\s*(include|import)_\w+:|^\s*vars_files:|^\s*roles:|lookup\(\s*'(ansible\.builtin\.)?(file|template)'", text, re.M)
    (tmp_path / "project").mkdir()
    shutil.copy(PLAYBOOK, tmp_path / "project" / "cellar.yml")
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts").write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    collections = os.environ.get("ANSIBLE_COLLECTIONS_PATH")
    if not collections:
        pytest.fail("ANSIBLE_COLLECTIONS_PATH is not set: run the tests after 'source scripts/common.sh && kd_activate'")
    envvars = dict(
        env,
        ANSIBLE_COLLECTIONS_PATH=collections,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    return envvars


def job_extra_vars(type_file, bucket):
    """The job's extra vars: a list, as a template's extra variables give it; for the file type, the answers of
    extensions/awx/surveys/cellar.json instead (the buckets as YAML text, every other answer a string or a number)."""
    if type_file == "cellar.json":
        return {"cellar_buckets": [{"name": bucket, "versioning": "enabled"}]}
    survey = json.loads(SURVEY.read_text())
    answers = {question["variable"]: question["default"] for question in survey["spec"]}
    answers["cellar_buckets"] = "- name: %s\n  versioning: enabled\n" % bucket
    assert answers == {"cellar_buckets": answers["cellar_buckets"], "cellar_endpoint": "", "cellar_path_style": "false", "cellar_workers": 8}
    return answers


def run_job(pdd, ident, envvars, extravars):
    job = ansible_runner.run(private_data_dir=str(pdd), playbook="cellar.yml", ident=ident, envvars=envvars, extravars=extravars, quiet=True, timeout=120)
    stdout = job.stdout.read()
    assert (job.rc, job.status) == (0, "successful"), stdout
    return job, stdout


@pytest.mark.parametrize("type_file", ["cellar.json", "cellar_file.json"])
def test_cellar_playbook_under_ansible_runner(rgw, bucket_name, tmp_path, monkeypatch, type_file):
    secret = rgw.owner["secret_key"]
    for name in CONNECTION_ENV:
        monkeypatch.delenv(name, raising=False)
    # ansible-runner copies this process's whole environment into the job's (and into artifacts/<ident>/command).
    assert not [name for name, value in os.environ.items() if secret in value]
    env, extra_vars, files = render(load(TYPES / type_file), {"host": rgw.endpoint, "key_id": rgw.owner["access_key"], "key_secret": secret}, tmp_path)
    assert extra_vars == {}
    envvars = private_data_dir(tmp_path, env)
    extravars = job_extra_vars(type_file, bucket_name)
    try:
        first, out = run_job(tmp_path, "first", envvars, extravars)
        assert first.stats["changed"] == {"localhost": 1}, out
        snapshot = server_snapshot(rgw, bucket_name)
        assert bucket_name in snapshot["buckets"] and snapshot["versioning"] == "Enabled"

        second, out2 = run_job(tmp_path, "second", envvars, extravars)
        assert second.stats["changed"] == {}, out2  # ansible-runner lists only the hosts with changes
        assert second.stats["ok"] == {"localhost": 3}, out2  # the variables' check, the buckets, their URLs
    finally:
        delete_bucket_quietly(rgw, bucket_name)

    if type_file == "cellar.json":
        # The measured leak: the secret, injected as CELLAR_ADDON_KEY_SECRET, is in clear in the job's command file.
        assert env["CELLAR_ADDON_KEY_SECRET"] == secret
        for ident in ("first", "second"):
            assert "%s/command" % ident in artifacts_holding(tmp_path, [secret])
    else:
        assert not [value for value in env.values() if secret in value]
        assert [Path(p).parent for p in files] == [tmp_path / "env"]
        assert artifacts_holding(tmp_path, [files[0]]) == ["first/command", "second/command"]  # only the file's name
        assert artifacts_holding(tmp_path, [secret]) == []
        assert secret not in out and secret not in out2
