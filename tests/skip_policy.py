# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A pytest plugin: a skipped or xfailed test fails the session unless tests/skips.yml lists it with a reason.

A gate that passes by skipping proves nothing, and a skip is easy to miss among hundreds of passes. Loaded for the
unit and the integration suites alike by tests/conftest.py (and with ``-p skip_policy`` where that conftest is not
in reach). The list is read from ``--skips-file`` (default: tests/skips.yml beside this file); each entry is a test's
node id as pytest prints it (``tests/unit/test_x.py::test_y``, without parameters to cover every parameter set, or a
whole module) and the reason it may be skipped there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

DEFAULT_SKIPS_FILE = Path(__file__).resolve().parent / "skips.yml"


class SkipPolicyError(Exception):
    """tests/skips.yml is not a list of entries each with a test and a reason."""


def load_skips(path):
    """The entries of the skips file ``path``: a dict of node id to reason. An entry without a reason is refused."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("skips") or [], list):
        raise SkipPolicyError("%s: expected a mapping with a list 'skips'" % path)
    allowed = {}
    for number, entry in enumerate(data.get("skips") or [], start=1):
        if not isinstance(entry, dict) or set(entry) != {"test", "reason"}:
            raise SkipPolicyError("%s: entry %d must have exactly the keys test and reason" % (path, number))
        test, reason = entry["test"], entry["reason"]
        if not isinstance(test, str) or not test.strip() or not isinstance(reason, str) or not reason.strip():
            raise SkipPolicyError("%s: entry %d needs a test (node id) and a reason, both non-empty text" % (path, number))
        if test in allowed:
            raise SkipPolicyError("%s: %s is listed twice" % (path, test))
        allowed[test] = reason
    return allowed


def is_listed(nodeid, allowed):
    """Whether ``nodeid`` is covered by an entry: the node itself, the test without its parameters, or its module."""
    without_params = re.sub(r"\[.*\]$", "", nodeid)
    return any(candidate in allowed for candidate in (nodeid, without_params, nodeid.split("::", 1)[0]))


def skip_reason(report):
    """The reason pytest gives for a skip or an xfail of ``report``."""
    if getattr(report, "wasxfail", None) is not None:
        return "xfail: %s" % (report.wasxfail or "no reason given")
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
        return text[len("Skipped: ") :] if text.startswith("Skipped: ") else text
    return str(longrepr or "no reason given")


class SkipPolicy:
    def __init__(self, skips_file, rootpath):
        self.allowed = load_skips(skips_file)
        self.unlisted = {}
        # The file to edit, named as from the checkout when it is in it (tests/skips.yml).
        path = Path(skips_file).resolve()
        try:
            self.skips_file = str(path.relative_to(Path(rootpath).resolve()))
        except ValueError:
            self.skips_file = str(path)

    def _check(self, report):
        # An xpass (a non-strict xfail that passed) is an xfail mark all the same: listed, or it fails the gate.
        xfail = getattr(report, "wasxfail", None) is not None
        if (report.skipped or xfail) and not is_listed(report.nodeid, self.allowed):
            self.unlisted.setdefault(report.nodeid, skip_reason(report))

    def pytest_collectreport(self, report):
        if report.skipped:  # a whole module skipped (importorskip or pytest.skip at module level)
            self._check(report)

    def pytest_runtest_logreport(self, report):
        self._check(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session):
        if self.unlisted and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.unlisted:
            return
        terminalreporter.section("skip policy", sep="=", red=True, bold=True)
        terminalreporter.line(
            "%d test(s) skipped or xfailed without being listed in %s: make each one run, or list it there with the reason it may be skipped."
            % (len(self.unlisted), self.skips_file),
            red=True,
        )
        for nodeid, reason in sorted(self.unlisted.items()):
            terminalreporter.line("UNLISTED SKIP %s (%s): add it to %s or make it run" % (nodeid, reason, self.skips_file), red=True)


def pytest_addoption(parser):
    parser.addoption("--skips-file", default=str(DEFAULT_SKIPS_FILE), help="the tests that may be skipped or xfailed, with why (default: %(default)s)")


def pytest_configure(config):
    try:
        policy = SkipPolicy(config.getoption("--skips-file"), config.rootpath)
    except (OSError, SkipPolicyError, yaml.YAMLError) as exc:
        raise pytest.UsageError("skip policy: %s" % exc) from exc
    config.pluginmanager.register(policy, "keepdata-skip-policy")
