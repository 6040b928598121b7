# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cellar_cors against a real Ceph RGW, with real preflight requests."""

import json
import stat

import pytest
from conftest import http_request, run_module, server_snapshot

pytestmark = pytest.mark.rgw

RULES = [
    {
        "id": "app",
        "allowed_origins": ["https://app.example.com"],
        "allowed_methods": ["GET", "PUT"],
        "allowed_headers": ["*"],
        "expose_headers": ["ETag"],
        "max_age_seconds": 600,
    },
]


def preflight(rgw, bucket, origin, method="GET"):
    return http_request(
        "%s/%s/some/key" % (rgw.endpoint, bucket),
        method="OPTIONS",
        headers={"Origin": origin, "Access-Control-Request-Method": method},
    )


def test_apply_idempotent_absent_with_real_preflight(rgw, existing_bucket, tmp_path):
    args = dict(rgw.connection_args(), bucket=existing_bucket, rules=RULES, previous_rules_file=str(tmp_path / "prev.json"))
    assert preflight(rgw, existing_bucket, "https://app.example.com")[0] == 403
    check = run_module("cellar_cors", args, check_mode=True, diff=True)
    assert check["changed"] is True and check["previous_rules"] == []
    assert server_snapshot(rgw, existing_bucket)["cors"] is None
    assert not (tmp_path / "prev.json").exists()
    applied = run_module("cellar_cors", args, diff=True)
    assert applied["changed"] is True
    assert applied["previous_rules"] == []
    assert json.loads((tmp_path / "prev.json").read_text()) == []
    assert stat.S_IMODE((tmp_path / "prev.json").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["prev.json"]  # no temporary file left
    again = run_module("cellar_cors", args)
    assert again["changed"] is False
    assert again["previous_rules"] == applied["rules"]

    status, headers, _body = preflight(rgw, existing_bucket, "https://app.example.com", "PUT")
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert "PUT" in headers["access-control-allow-methods"]
    assert preflight(rgw, existing_bucket, "https://evil.example.net")[0] == 403
    assert preflight(rgw, existing_bucket, "https://app.example.com", "DELETE")[0] == 403

    absent = dict(rgw.connection_args(), bucket=existing_bucket, state="absent")
    check = run_module("cellar_cors", absent, check_mode=True)
    assert check["changed"] is True
    assert server_snapshot(rgw, existing_bucket)["cors"] is not None
    removed = run_module("cellar_cors", absent)
    assert removed["changed"] is True
    assert removed["previous_rules"] == applied["rules"]
    assert preflight(rgw, existing_bucket, "https://app.example.com")[0] == 403
    assert run_module("cellar_cors", absent)["changed"] is False


def test_replace_whole_document_and_rollback(rgw, existing_bucket):
    first = run_module("cellar_cors", dict(rgw.connection_args(), bucket=existing_bucket, rules=RULES))
    other = [{"allowed_origins": ["*"], "allowed_methods": ["HEAD"]}, {"allowed_origins": ["https://x.example"], "allowed_methods": ["POST"]}]
    replaced = run_module("cellar_cors", dict(rgw.connection_args(), bucket=existing_bucket, rules=other), diff=True)
    assert replaced["changed"] is True
    assert replaced["previous_rules"] == first["rules"]
    assert len(server_snapshot(rgw, existing_bucket)["cors"]) == 2
    rollback = run_module("cellar_cors", dict(rgw.connection_args(), bucket=existing_bucket, rules=replaced["previous_rules"]))
    assert rollback["changed"] is True
    assert run_module("cellar_cors", dict(rgw.connection_args(), bucket=existing_bucket, rules=RULES))["changed"] is False


def test_reordered_lists_are_not_a_change(rgw, existing_bucket):
    run_module("cellar_cors", dict(rgw.connection_args(), bucket=existing_bucket, rules=RULES))
    shuffled = [dict(RULES[0], allowed_methods=["PUT", "GET", "GET"])]
    assert run_module("cellar_cors", dict(rgw.connection_args(), bucket=existing_bucket, rules=shuffled))["changed"] is False


def test_rollback_file_is_saved_before_the_write(rgw, existing_bucket, tmp_path):
    """The previous rules are saved first: when they cannot be, the server keeps its rules."""
    run_module("cellar_cors", dict(rgw.connection_args(), bucket=existing_bucket, rules=RULES))
    before = server_snapshot(rgw, existing_bucket)
    other = [{"allowed_origins": ["*"], "allowed_methods": ["HEAD"]}]
    unwritable = str(tmp_path / "no-such-dir" / "prev.json")
    failed = run_module("cellar_cors", dict(rgw.connection_args(), bucket=existing_bucket, rules=other, previous_rules_file=unwritable))
    assert failed["failed"] is True and failed["changed"] is False
    assert "previous_rules_file %s could not be written" % unwritable in failed["msg"]
    assert "the CORS configuration was left unchanged" in failed["msg"]
    assert server_snapshot(rgw, existing_bucket) == before
    saved = tmp_path / "prev.json"
    replaced = run_module("cellar_cors", dict(rgw.connection_args(), bucket=existing_bucket, rules=other, previous_rules_file=str(saved)))
    assert replaced["changed"] is True
    assert json.loads(saved.read_text()) == replaced["previous_rules"]
    rollback = run_module("cellar_cors", dict(rgw.connection_args(), bucket=existing_bucket, rules=json.loads(saved.read_text())))
    assert rollback["changed"] is True
    assert server_snapshot(rgw, existing_bucket) == before
