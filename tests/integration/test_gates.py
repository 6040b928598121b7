# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/test.sh itself: a gate that would test nothing fails, run on throwaway copies of the checkout."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout():
    """A copy of the files git would ship, with its own scratch directory (KEEPDATA_WORK) beside it.

    A short path under /tmp: the RGW's sockets live in the scratch directory and a socket path is short.
    """
    base = Path(tempfile.mkdtemp(prefix="kdg-"))
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    copy = base / "checkout"
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    yield copy
    shutil.rmtree(base, ignore_errors=True)


def run_gates(copy, *gates, **env):
    run_env = dict(os.environ, KEEPDATA_WORK=str(copy.parent / "work"), PYTEST_ADDOPTS="--collect-only", **env)
    proc = subprocess.run(["scripts/test.sh", *gates], cwd=copy, env=run_env, capture_output=True, text=True, timeout=900, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_missing_scenarios_fail_the_molecule_gate(checkout):
    # Every scenario folder gone: the loop over what is found would run nothing; the expected list still fails.
    shutil.rmtree(checkout / "molecule")
    rc, out = run_gates(checkout, "molecule")
    assert rc != 0, out
    for scenario in ("backup", "mounts", "s3fs", "smoke"):
        assert "FAIL molecule-%s" % scenario in out
        assert "scenario %s: molecule/%s/molecule.yml is missing" % (scenario, scenario) in out
    assert "gates: 0 passed, 4 failed" in out


def test_a_scenario_without_verify_fails_before_running(checkout):
    for scenario in ("backup", "mounts", "s3fs"):
        shutil.rmtree(checkout / "molecule" / scenario)
    (checkout / "molecule" / "smoke" / "verify.yml").unlink()
    rc, out = run_gates(checkout, "molecule")
    assert rc != 0, out
    assert "scenario smoke: molecule/smoke/verify.yml is missing" in out


def test_a_unit_gate_without_tests_fails_even_with_collect_only_asked(checkout):
    # PYTEST_ADDOPTS=--collect-only is set by run_gates: the gate clears it, so the tests run and pass. One test
    # file stands in for the suite (the whole suite, twice with unit-oldest, took 2 minutes of this gate); it
    # fails if the variable reached it.
    shutil.rmtree(checkout / "tests" / "unit")
    (checkout / "tests" / "unit").mkdir()
    (checkout / "tests" / "unit" / "test_stand_in.py").write_text(
        "import os\n\n\ndef test_the_gate_cleared_pytest_addopts():\n    assert 'PYTEST_ADDOPTS' not in os.environ\n"
    )
    rc, out = run_gates(checkout, "unit")
    assert rc == 0, out
    for gate in ("unit", "unit-oldest"):
        log = (checkout.parent / "work" / "logs" / ("%s.log" % gate)).read_text()
        assert "1 passed in " in log and "collected" not in log.splitlines()[-1], log
    # ...and with no test left, pytest's "no tests ran" (exit 5) is a failed gate.
    shutil.rmtree(checkout / "tests" / "unit")
    rc, out = run_gates(checkout, "unit")
    assert rc != 0 and "FAIL unit" in out, out


def test_an_integration_gate_without_tests_fails(checkout):
    for test in (checkout / "tests" / "integration").glob("test_*.py"):
        test.unlink()
    rc, out = run_gates(checkout, "integration", KEEPDATA_RGW_PORT="auto", KEEPDATA_MON_PORT="auto")
    assert rc != 0, out
    assert "FAIL integration" in out
    assert "pytest collected no test" in out, (checkout.parent / "work" / "logs" / "integration.log").read_text()


SKIPPING_TEST = "import pytest\n\n\ndef test_runs():\n    assert True\n\n\ndef test_needs_a_widget():\n    pytest.skip('no widget on this machine')\n"


def test_an_unlisted_skip_fails_the_unit_gates_and_a_listed_one_passes(checkout):
    # tests/conftest.py (tests/skip_policy.py) is shared by every pytest gate: a skip not in tests/skips.yml fails it.
    shutil.rmtree(checkout / "tests" / "unit")
    (checkout / "tests" / "unit").mkdir()
    (checkout / "tests" / "unit" / "test_stand_in.py").write_text(SKIPPING_TEST)
    rc, out = run_gates(checkout, "unit")
    assert rc != 0 and "FAIL unit" in out and "FAIL unit-oldest" in out, out
    for gate in ("unit", "unit-oldest"):
        log = (checkout.parent / "work" / "logs" / ("%s.log" % gate)).read_text()
        assert "UNLISTED SKIP tests/unit/test_stand_in.py::test_needs_a_widget (no widget on this machine): add it to tests/skips.yml" in log, log
    (checkout / "tests" / "skips.yml").write_text(
        "---\nskips:\n  - test: tests/unit/test_stand_in.py::test_needs_a_widget\n    reason: a stand-in that skips on purpose\n"
    )
    rc, out = run_gates(checkout, "unit")
    assert rc == 0, out
    assert "gates: 2 passed, 0 failed" in out, out


def test_an_unlisted_skip_fails_the_integration_gate(checkout):
    for test in (checkout / "tests" / "integration").glob("test_*.py"):
        test.unlink()
    (checkout / "tests" / "integration" / "test_stand_in.py").write_text(SKIPPING_TEST)
    rc, out = run_gates(checkout, "integration", KEEPDATA_RGW_PORT="auto", KEEPDATA_MON_PORT="auto")
    assert rc != 0 and "FAIL integration" in out, out
    log = (checkout.parent / "work" / "logs" / "integration.log").read_text()
    assert "UNLISTED SKIP tests/integration/test_stand_in.py::test_needs_a_widget (no widget on this machine)" in log, log
