# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tests/skip_policy.py: a skip or an xfail fails the session unless tests/skips.yml lists it with a reason.

Each case runs pytest on a throwaway suite of its own, with the plugin and a skips file of the case's choosing."""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))
from skip_policy import DEFAULT_SKIPS_FILE, is_listed, load_skips  # noqa: E402

SUITE = """
import pytest


def test_runs():
    assert True


def test_skipped_inside():
    pytest.skip("no widget here")


@pytest.mark.skipif(True, reason="never on this machine")
def test_skipped_by_mark():
    assert True


@pytest.mark.xfail(reason="known to fail")
def test_xfailed():
    assert False


@pytest.mark.xfail(reason="expected to fail, passes")
def test_xpassed():
    assert True


@pytest.mark.parametrize("n", [1, 2])
def test_params(n):
    if n == 2:
        pytest.skip("two is not supported")
"""

ALL_SKIPS = [
    "test_suite.py::test_skipped_inside",
    "test_suite.py::test_skipped_by_mark",
    "test_suite.py::test_xfailed",
    "test_suite.py::test_xpassed",
    "test_suite.py::test_params",
]


def run_suite(tmp_path, skips, files=None):
    """pytest with the plugin on ``files`` (name: source; default the SUITE) in ``tmp_path``, ``skips`` as its list."""
    for name, source in (files or {"test_suite.py": SUITE}).items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    skips_file = tmp_path / "skips.yml"
    skips_file.write_text(yaml.safe_dump({"skips": skips}) if isinstance(skips, list) else skips)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "skip_policy", "-p", "no:cacheprovider", "--skips-file", str(skips_file), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def listed(*tests):
    return [{"test": test, "reason": "a reason for %s" % test} for test in tests]


def test_every_skip_and_xfail_listed_passes(tmp_path):
    rc, out = run_suite(tmp_path, listed(*ALL_SKIPS))
    assert rc == 0, out
    assert "UNLISTED SKIP" not in out and "skip policy" not in out, out


def test_an_unlisted_skip_fails_the_session_naming_the_test_and_the_file_to_edit(tmp_path):
    rc, out = run_suite(tmp_path, listed(*[t for t in ALL_SKIPS if not t.endswith("test_skipped_inside")]))
    assert rc == 1, out
    assert "UNLISTED SKIP test_suite.py::test_skipped_inside (no widget here): add it to skips.yml or make it run" in out, out
    assert out.count("UNLISTED SKIP") == 1, out


def test_nothing_listed_every_kind_of_skip_is_named(tmp_path):
    rc, out = run_suite(tmp_path, [])
    assert rc == 1, out
    for expected in (
        "test_suite.py::test_skipped_inside (no widget here)",
        "test_suite.py::test_skipped_by_mark (never on this machine)",
        "test_suite.py::test_xfailed (xfail: known to fail)",
        "test_suite.py::test_xpassed (xfail: expected to fail, passes)",
        "test_suite.py::test_params[2] (two is not supported)",
    ):
        assert "UNLISTED SKIP " + expected in out, out
    assert out.count("UNLISTED SKIP") == 5, out  # test_runs and test_params[1] ran


def test_a_skipped_module_is_listed_by_its_path(tmp_path):
    module = {"test_needs_widget.py": 'import pytest\n\npytest.importorskip("kd_no_such_widget")\n\n\ndef test_widget():\n    assert True\n'}
    rc, out = run_suite(tmp_path, [], files=module)
    assert rc == 1, out
    assert "UNLISTED SKIP test_needs_widget.py (" in out and "kd_no_such_widget" in out, out
    # Listed, the module's skip is allowed (a test beside it runs: a session where nothing ran is pytest's exit 5).
    rc, out = run_suite(tmp_path, listed("test_needs_widget.py"), files={**module, "test_other.py": "def test_other():\n    assert True\n"})
    assert rc == 0, out


def test_a_failure_stays_a_failure(tmp_path):
    rc, out = run_suite(tmp_path, listed(*ALL_SKIPS), files={"test_suite.py": SUITE, "test_fails.py": "def test_fails():\n    assert False\n"})
    assert rc == 1 and "1 failed" in out, out


@pytest.mark.parametrize(
    "skips, message",
    [
        ("skips:\n  - test: test_suite.py::test_runs\n", "entry 1 must have exactly the keys test and reason"),
        ("skips:\n  - test: test_suite.py::test_runs\n    reason: '  '\n", "entry 1 needs a test (node id) and a reason"),
        ("skips: test_suite.py::test_runs\n", "expected a mapping with a list 'skips'"),
        (yaml.safe_dump({"skips": listed("a.py::t") + listed("a.py::t")}), "a.py::t is listed twice"),
    ],
)
def test_a_list_without_reasons_stops_the_run_before_any_test(tmp_path, skips, message):
    rc, out = run_suite(tmp_path, skips)
    assert rc == pytest.ExitCode.USAGE_ERROR, out
    assert "skip policy: " in out and message in out, out
    assert "test_runs" not in out.split("skip policy")[1], out


def test_listed_names_cover_parameters_and_modules():
    allowed = {"tests/a.py::test_b": "why", "tests/c.py": "why"}
    assert is_listed("tests/a.py::test_b", allowed) and is_listed("tests/a.py::test_b[x-1]", allowed)
    assert is_listed("tests/c.py::test_any[1]", allowed) and is_listed("tests/c.py", allowed)
    assert not is_listed("tests/a.py::test_bc", allowed) and not is_listed("tests/a.py", allowed)


def test_the_collection_skips_file_names_tests_that_exist_each_with_a_reason():
    """Every entry of tests/skips.yml is a test of this checkout (a renamed test leaves no stale permission behind)."""
    allowed = load_skips(DEFAULT_SKIPS_FILE)
    assert DEFAULT_SKIPS_FILE == TESTS / "skips.yml"
    for nodeid in allowed:
        path, _sep, name = nodeid.partition("::")
        assert (ROOT / path).is_file(), "%s names no file of the checkout" % nodeid
        if name:
            functions = {node.name for node in ast.walk(ast.parse((ROOT / path).read_text())) if isinstance(node, ast.FunctionDef)}
            assert name.split("::")[-1].split("[")[0] in functions, "%s names no test of %s" % (nodeid, path)


def test_this_session_applies_the_policy(request):
    # tests/conftest.py sits above both suites: the unit and integration gates (and unit-oldest, newest) load it.
    assert request.config.pluginmanager.get_plugin("keepdata-skip-policy") is not None
