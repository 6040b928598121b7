# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""`ansible-builder create` makes a build context from the example execution-environment.yml.

The definition copies ``build/keepdata-storage-*.tar.gz`` (relative to itself) into the context. So that the test writes
nothing into the checkout, it runs on a copy of the definition and of the files it names, next to a tarball built into tmp.
"""

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASE_IMAGE = "keepdata/debian-base:bookworm"


def run(argv, cwd):
    proc = subprocess.run([str(arg) for arg in argv], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, "%s failed (rc=%s):\n%s\n%s" % (argv[0], proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def dev_pin(name):
    """The version requirements-dev.txt pins NAME to, e.g. 'ansible-core==2.19.14'."""
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        if re.match(re.escape(name) + r"\s*==", line):
            return line.split("#")[0].replace(" ", "")
    raise AssertionError("requirements-dev.txt pins no %s" % name)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    builder = BIN / "ansible-builder"
    if not builder.exists():
        pytest.fail("ansible-builder is not installed next to %s: install requirements-dev.txt into this venv" % sys.executable)
    project = tmp_path_factory.mktemp("ee-project")
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        shutil.copy2(ROOT / name, project / name)
    run([BIN / "ansible-galaxy", "collection", "build", "--output-path", project / "build", ROOT], cwd=project)
    run([builder, "create", "-f", project / "execution-environment.yml", "--context", project / "context", "--output-filename", "Containerfile"], cwd=project)
    return project / "context"


def ee_definition():
    return yaml.safe_load((ROOT / "execution-environment.yml").read_text())


def test_containerfile_builds_from_the_local_debian_image(context):
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="%s"' % BASE_IMAGE in containerfile
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert 'ARG PKGMGR="/usr/bin/apt-get"' in containerfile
    assert 'ARG ANSIBLE_INSTALL_REFS="%s %s"' % (dev_pin("ansible-core"), dev_pin("ansible-runner")) in containerfile
    # Debian has no ensurepip: pip comes from apt-get, and ansible-builder's ensurepip step is left out.
    assert "python3-pip python3-venv" in containerfile
    assert "scripts/pip_install" not in containerfile
    # The collection is installed, then its requirements are introspected and installed.
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile


def test_context_carries_the_collection_tarball_it_installs(context):
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert galaxy == ee_definition()["dependencies"]["galaxy"]
    [requirement] = galaxy["collections"]
    assert requirement["type"] == "file"
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    # The requirement names the tarball of galaxy.yml's version: a version bump must update execution-environment.yml.
    assert requirement["name"] == "collections/keepdata-storage-%s.tar.gz" % version
    tarball = context / "_build" / requirement["name"]
    assert tarball.is_file()
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        meta = yaml.safe_load(tar.extractfile("meta/execution-environment.yml").read())
    # ansible-builder reads the installed collection's dependencies from these files.
    assert {"MANIFEST.json", "meta/execution-environment.yml", "requirements.txt", "bindep.txt"} <= names
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}


def test_context_carries_python_and_system_requirements(context):
    assert (context / "_build" / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    assert (context / "_build" / "bindep.txt").read_text() == (ROOT / "bindep.txt").read_text()
    assert "boto3" in (context / "_build" / "requirements.txt").read_text()
    assert "python3 [platform:dpkg" in (context / "_build" / "bindep.txt").read_text()
