# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/test.sh's where_it_failed: the summary at the end of a run (what CI's excerpt shows) names the task that
really failed a gate, not a verify's expected failures that come first in its log."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def where_it_failed(tmp_path, log):
    (tmp_path / "gate.log").write_text(log)
    script = 'eval "$(sed -n "/^where_it_failed()/,/^}/p" scripts/test.sh)"; where_it_failed "$1" molecule-s3fs'
    proc = subprocess.run(["bash", "-c", script, "bash", str(tmp_path / "gate.log")], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30)
    return proc.stdout


def test_the_last_failure_before_the_recap_not_the_expected_ones(tmp_path):
    log = """TASK [Refusals | run the role | bad endpoint] ****
fatal: [host-1]: FAILED! => {"msg": "expected: endpoint refused"}

TASK [Ignored | a probe] ****
fatal: [host-1]: FAILED! => {"msg": "ignored"}
...ignoring

TASK [Healing | each host healed within the interval plus 10 s] ****
fatal: [host-2]: FAILED! => {"msg": "healed after 47 s"}

TASK [Ignored | another probe on the host left] ****
fatal: [host-1]: FAILED! => {"msg": "ignored too"}
...ignoring

PLAY RECAP *********************************************************************
host-1                     : ok=133  changed=13   unreachable=0    failed=0    skipped=0    rescued=40   ignored=2
host-2                     : ok=120  changed=13   unreachable=0    failed=1    skipped=0    rescued=0    ignored=0
"""
    assert where_it_failed(tmp_path, log).splitlines() == [
        "--- molecule-s3fs failed at:",
        "TASK [Healing | each host healed within the interval plus 10 s] ****",
        'fatal: [host-2]: FAILED! => {"msg": "healed after 47 s"}',
    ]


def test_an_idempotence_verdict_and_a_long_failure_cut(tmp_path):
    log = "PLAY RECAP ***\nh : ok=3 changed=1 failed=0\nCRITICAL Idempotence test failed because of the following tasks:\n* [h] => role : Write x\n"
    assert where_it_failed(tmp_path, log) == (
        "--- molecule-s3fs failed at:\nCRITICAL Idempotence test failed because of the following tasks:\n* [h] => role : Write x\n"
    )
    long = "TASK [t] ***\nfatal: [h]: FAILED! => {" + "x" * 5000 + "}\nPLAY RECAP ***\nh : ok=1 changed=0 failed=1\n"
    out = where_it_failed(tmp_path, long)
    assert out.startswith("--- molecule-s3fs failed at:\nTASK [t] ***\nfatal: [h]") and len(out) < 1600, out
    # A passing play, or a log without Ansible in it (pytest's), names nothing.
    assert where_it_failed(tmp_path, "PLAY RECAP ***\nh : ok=1 changed=0 failed=0\n") == ""
    assert where_it_failed(tmp_path, "FAILED tests/x.py::test_y - boom\n") == ""
