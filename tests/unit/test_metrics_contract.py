# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup metrics are declared once, in METRICS of backup/shared.py (the runner writes from it); every other file that names one must name a
declared one (issue 31).

The alert rules, their promtool tests, the dashboard, the docs, the Molecule checks, the demo and the benchmarks
type the names by hand. A metric renamed in the runner, or a typo in a rule (which would never fire: PromQL finds
no series and says nothing), fails here, with the file and the name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.backup.shared import METRICS

ROOT = Path(__file__).resolve().parents[2]
DECLARED = {"keepdata_backup_" + suffix for suffix, _key, _help in METRICS}
NAME = re.compile(r"keepdata_backup_[a-z0-9_]*")
# Not metrics: the textfile (keepdata_backup_<job>.prom), the rules and dashboard files, and prefixes in patterns.
FILE_SUFFIX = re.compile(r"\.(prom|json|rules|yml)\b")
# Files that only tell the history, and this test.
LEFT_OUT = {"CHANGELOG.rst", "changelogs/changelog.yaml", "tests/unit/test_metrics_contract.py"}
# Names that are not metrics of ours on purpose: the dashboard test's PromQL parser is tested on a made-up one.
NOT_METRICS = {"tests/unit/test_grafana_dashboard.py": {"keepdata_backup_x"}}
ROLE_README = ROOT / "roles/backup/README.md"


def tracked_files():
    """The collection's files, relative to ROOT: walked, not asked of git (the newest gate runs on a copy without
    git); hidden directories, caches and ansible-test's output left out."""
    names = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs if not d.startswith(".") and d != "__pycache__"]
        relative = os.path.relpath(directory, ROOT)
        if relative == os.path.join("tests", "output"):
            subdirs[:] = []
            continue
        names += [os.path.normpath(os.path.join(relative, f)) for f in files]
    return [name for name in names if name not in LEFT_OUT and not name.startswith("changelogs/fragments/")]


def named_metrics():
    """{file: {metric names it uses}} over every tracked text file."""
    found = {}
    for name in tracked_files():
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        names = set()
        for match in NAME.finditer(text):
            word = match.group(0)
            if word.endswith("_") or FILE_SUFFIX.match(text, match.end()):
                continue
            names.add(word)
        if names:
            found[name] = names
    return found


def test_the_runner_declares_each_metric_once_with_its_help():
    suffixes = [suffix for suffix, _key, _help in METRICS]
    assert len(suffixes) == len(set(suffixes))
    assert all(help_text.strip() and "\n" not in help_text for _suffix, _key, help_text in METRICS)


def test_the_contract_reaches_the_files_that_use_metrics():
    # The files the contract exists for: if one stops naming metrics (moved, renamed), this test must follow it.
    files = named_metrics()
    for name in (
        "roles/backup_monitoring/files/keepdata_backup.rules.yml",
        "roles/backup_monitoring/files/keepdata_backup_dashboard.json",
        "tests/prometheus/keepdata_backup.test.yml",
        "README.md",
        "roles/backup/README.md",
        "molecule/backup/verify_backup.yml",
    ):
        assert name in files, name


@pytest.mark.parametrize("name", sorted(named_metrics()))
def test_every_metric_a_file_names_is_declared_by_the_runner(name):
    unknown = sorted(named_metrics()[name] - DECLARED - NOT_METRICS.get(name, set()))
    assert not unknown, "%s names metrics the runner does not write: %s" % (name, ", ".join(unknown))


def test_the_role_readme_lists_every_metric_with_the_runners_help_in_its_order():
    rows = re.findall(r"^\| `(keepdata_backup_[a-z0-9_]+)` \| (.*) \|$", ROLE_README.read_text(encoding="utf-8"), re.M)
    assert rows == [("keepdata_backup_" + suffix, help_text.replace("|", "\\|")) for suffix, _key, help_text in METRICS]
