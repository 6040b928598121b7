# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The programs systemd runs are written by the modules from their own copy: from a checkout's file, and from a zip
as Ansible's module upload (AnsiballZ) imports module_utils."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import os
import sys
import zipfile
from pathlib import Path

from ansible_collections.keepdata.storage.plugins.module_utils.backup import runner
from ansible_collections.keepdata.storage.plugins.module_utils.common.programs import program_source, program_state, program_summary
from ansible_collections.keepdata.storage.plugins.module_utils.mounts import health


def test_the_source_of_a_program_read_from_a_checkout():
    assert program_source(runner) == Path(runner.__file__).read_text(encoding="utf-8")
    assert program_source(health) == Path(health.__file__).read_text(encoding="utf-8")


def test_the_source_of_a_program_read_from_a_zip_as_a_module_upload_imports_it(tmp_path, monkeypatch):
    source = Path(health.__file__).read_text(encoding="utf-8")
    archive = tmp_path / "payload.zip"
    with zipfile.ZipFile(str(archive), "w") as payload:
        payload.writestr("kd_zip_programs/__init__.py", "")
        payload.writestr("kd_zip_programs/health.py", source)
    monkeypatch.syspath_prepend(str(archive))
    try:
        zipped = importlib.import_module("kd_zip_programs.health")
        assert ".zip" in zipped.__spec__.origin
        assert program_source(zipped) == source
    finally:
        for name in ("kd_zip_programs.health", "kd_zip_programs"):
            sys.modules.pop(name, None)


def test_a_program_is_named_by_size_and_digest_in_a_diff():
    summary = program_summary("print('hi')\n")
    assert summary.startswith("program of 12 bytes, sha256 ") and len(summary.split()[-1]) == 16
    assert program_summary("print('hi')\n") == summary != program_summary("print('ho')\n")


def test_a_program_file_is_current_only_with_its_text_root_and_its_mode(tmp_path):
    path = tmp_path / "program.py"
    assert program_state(str(path), "print('hi')\n") == "absent"
    path.write_text("print('hi')\n")
    os.chown(str(path), 0, 0)
    path.chmod(0o644)
    assert program_state(str(path), "print('hi')\n") == ""
    assert program_state(str(path), "print('ho')\n") == "different"
    path.chmod(0o755)
    assert program_state(str(path), "print('hi')\n") == "different"
