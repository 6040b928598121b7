# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cellar_lifecycle and cellar_bucket's lifecycle option against a real Ceph RGW, which really runs the rules.

The rig's RGW has ``rgw lc debug interval = 10``: a lifecycle "day" lasts 10 s and the lifecycle worker runs every
10 s, so a 1-day rule removes objects within about half a minute.
"""

import json
import stat
import time
import uuid

import pytest
from conftest import delete_bucket_quietly, run_module, server_snapshot

pytestmark = pytest.mark.rgw

RULES = [
    {"id": "tmp-files", "prefix": "tmp/", "expiration_days": 7},
    {"id": "old-versions", "noncurrent_version_expiration_days": 30, "expired_object_delete_marker": True},
    {"id": "unfinished-uploads", "abort_incomplete_multipart_upload_days": 2, "status": "disabled"},
]
NORMALISED = [
    {"id": "old-versions", "status": "enabled", "prefix": "", "noncurrent_version_expiration_days": 30, "expired_object_delete_marker": True},
    {"id": "tmp-files", "status": "enabled", "prefix": "tmp/", "expiration_days": 7},
    {"id": "unfinished-uploads", "status": "disabled", "prefix": "", "abort_incomplete_multipart_upload_days": 2},
]


def test_apply_idempotent_absent_with_rollback_file(rgw, existing_bucket, tmp_path):
    args = dict(rgw.connection_args(), bucket=existing_bucket, rules=RULES, previous_rules_file=str(tmp_path / "prev.json"))
    check = run_module("cellar_lifecycle", args, check_mode=True, diff=True)
    assert check["changed"] is True and check["previous_rules"] == []
    assert check["diff"] == {"before": {"rules": []}, "after": {"rules": NORMALISED}}
    assert server_snapshot(rgw, existing_bucket)["lifecycle"] is None
    assert not (tmp_path / "prev.json").exists()

    applied = run_module("cellar_lifecycle", args, diff=True)
    assert applied["changed"] is True
    assert applied["rules"] == NORMALISED
    assert json.loads((tmp_path / "prev.json").read_text()) == []
    assert stat.S_IMODE((tmp_path / "prev.json").stat().st_mode) == 0o600
    stored = {rule["ID"]: rule for rule in server_snapshot(rgw, existing_bucket)["lifecycle"]}
    assert stored["tmp-files"]["Expiration"] == {"Days": 7}
    assert stored["old-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert stored["unfinished-uploads"]["Status"] == "Disabled"

    again = run_module("cellar_lifecycle", dict(args, rules=list(reversed(RULES))), diff=True)
    assert again["changed"] is False, again  # rule order does not matter
    assert again["previous_rules"] == NORMALISED

    changed = [dict(RULES[0], expiration_days=1)] + RULES[1:]
    replaced = run_module("cellar_lifecycle", dict(args, rules=changed), diff=True)
    assert replaced["changed"] is True
    assert replaced["previous_rules"] == NORMALISED
    assert json.loads((tmp_path / "prev.json").read_text()) == NORMALISED
    rollback = run_module("cellar_lifecycle", dict(rgw.connection_args(), bucket=existing_bucket, rules=replaced["previous_rules"]))
    assert rollback["changed"] is True
    assert run_module("cellar_lifecycle", args)["changed"] is False

    absent = dict(rgw.connection_args(), bucket=existing_bucket, state="absent")
    assert run_module("cellar_lifecycle", absent, check_mode=True)["changed"] is True
    assert server_snapshot(rgw, existing_bucket)["lifecycle"] is not None
    removed = run_module("cellar_lifecycle", absent)
    assert removed["changed"] is True
    assert removed["previous_rules"] == NORMALISED
    assert server_snapshot(rgw, existing_bucket)["lifecycle"] is None
    assert run_module("cellar_lifecycle", absent)["changed"] is False


def test_rules_set_in_other_shapes_compare_by_meaning(rgw, existing_bucket):
    """Rules written by another tool in the other shapes S3 allows for the same prefix are not a change."""
    rgw.client().put_bucket_lifecycle_configuration(
        Bucket=existing_bucket,
        LifecycleConfiguration={
            "Rules": [
                {"ID": "tmp-files", "Status": "Enabled", "Prefix": "tmp/", "Expiration": {"Days": 7}},
                {"ID": "everything", "Status": "Enabled", "Filter": {}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}},
            ]
        },
    )
    wanted = [{"id": "everything", "abort_incomplete_multipart_upload_days": 3}, {"id": "tmp-files", "prefix": "tmp/", "expiration_days": 7}]
    result = run_module("cellar_lifecycle", dict(rgw.connection_args(), bucket=existing_bucket, rules=wanted))
    assert result["changed"] is False, result


def test_a_rule_beyond_the_module_form_is_shown_and_replaced(rgw, existing_bucket):
    tagged = {"ID": "scratch", "Status": "Enabled", "Filter": {"Tag": {"Key": "tier", "Value": "scratch"}}, "Expiration": {"Days": 1}}
    rgw.client().put_bucket_lifecycle_configuration(Bucket=existing_bucket, LifecycleConfiguration={"Rules": [tagged]})
    info = run_module("cellar_bucket_info", dict(rgw.connection_args(), name=existing_bucket, lifecycle=True))
    (entry,) = info["buckets"]
    assert entry["lifecycle"] == [tagged]  # as S3 returns it
    assert entry["lifecycle_rules"] == [
        {"id": "scratch", "status": "enabled", "prefix": "", "expiration_days": 1, "unsupported": {"Filter": {"Tag": {"Key": "tier", "Value": "scratch"}}}}
    ]

    # The same id and action without the tag filter is another rule: it applies to the whole bucket.
    result = run_module("cellar_lifecycle", dict(rgw.connection_args(), bucket=existing_bucket, rules=[{"id": "scratch", "expiration_days": 1}]), diff=True)
    assert result["changed"] is True
    assert result["previous_rules"] == entry["lifecycle_rules"]
    assert "unsupported" in json.dumps(result["diff"]["before"])
    assert server_snapshot(rgw, existing_bucket)["lifecycle"] == [{"ID": "scratch", "Status": "Enabled", "Prefix": "", "Expiration": {"Days": 1}}]


def test_cellar_bucket_creates_a_bucket_with_its_rules_and_removes_them(rgw, cellar_bucket):
    args = dict(rgw.connection_args(), name=cellar_bucket, versioning="enabled", lifecycle=RULES)
    check = run_module("cellar_bucket", args, check_mode=True, diff=True)
    assert check["changed"] is True
    assert check["diff"]["after"]["lifecycle"] == NORMALISED
    assert cellar_bucket not in server_snapshot(rgw)["buckets"]

    created = run_module("cellar_bucket", args)
    assert created["changed"] is True
    assert created["lifecycle"] == NORMALISED
    assert len(server_snapshot(rgw, cellar_bucket)["lifecycle"]) == 3
    assert run_module("cellar_bucket", args)["changed"] is False
    info = run_module("cellar_bucket_info", dict(rgw.connection_args(), name=cellar_bucket, lifecycle=True))
    assert info["buckets"][0]["lifecycle_rules"] == NORMALISED

    emptied = run_module("cellar_bucket", dict(args, lifecycle=[]), diff=True)
    assert emptied["changed"] is True
    assert emptied["diff"]["before"]["lifecycle"] == NORMALISED
    assert server_snapshot(rgw, cellar_bucket)["lifecycle"] is None
    assert run_module("cellar_bucket", dict(args, lifecycle=[]))["changed"] is False


def _wait_for(condition, seconds):
    """Poll ``condition()`` every 2 s until it returns a true value or ``seconds`` pass; returns its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(2)


def test_the_rules_really_remove_what_they_name_and_nothing_else(rgw):
    """A 1-day rule on tmp/ removes tmp/ objects only; old versions and unfinished uploads go too (a day is 10 s)."""
    suffix = uuid.uuid4().hex[:8]
    plain, versioned = "kd-lc-plain-%s" % suffix, "kd-lc-versioned-%s" % suffix
    client = rgw.client()
    try:
        result = run_module(
            "cellar_bucket",
            dict(
                rgw.connection_args(),
                buckets=[
                    {
                        "name": plain,
                        "lifecycle": [{"id": "tmp", "prefix": "tmp/", "expiration_days": 1}, {"id": "uploads", "abort_incomplete_multipart_upload_days": 1}],
                    },
                    {"name": versioned, "versioning": "enabled"},
                ],
            ),
        )
        assert result["changed"] is True, result
        result = run_module("cellar_lifecycle", dict(rgw.connection_args(), bucket=versioned, rules=[{"id": "old", "noncurrent_version_expiration_days": 1}]))
        assert result["changed"] is True, result

        for key in ("tmp/a.txt", "tmp/deep/b.txt", "keep/c.txt", "tmpfile.txt", "top.txt"):
            client.put_object(Bucket=plain, Key=key, Body=key.encode())
        upload = client.create_multipart_upload(Bucket=plain, Key="big/video.mp4")
        client.upload_part(Bucket=plain, Key="big/video.mp4", UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024)
        for generation in range(3):
            client.put_object(Bucket=versioned, Key="doc.txt", Body=b"generation %d" % generation)

        def keys():
            return sorted(o["Key"] for o in client.list_objects_v2(Bucket=plain).get("Contents", []))

        def uploads():
            return client.list_multipart_uploads(Bucket=plain).get("Uploads", [])

        def versions():
            return client.list_object_versions(Bucket=versioned).get("Versions", [])

        assert "tmp/a.txt" in keys() and len(uploads()) == 1 and len(versions()) == 3  # nothing went at once
        done = _wait_for(lambda: "tmp/a.txt" not in keys() and not uploads() and len(versions()) == 1, 120)
        assert done, "after 120 s: keys %s, uploads %s, versions %d" % (keys(), uploads(), len(versions()))
        # Same age, other prefixes ("tmpfile.txt" starts with "tmp" but not "tmp/"): kept.
        assert keys() == ["keep/c.txt", "tmpfile.txt", "top.txt"]
        (current,) = versions()
        assert current["IsLatest"] is True
        assert client.get_object(Bucket=versioned, Key="doc.txt")["Body"].read() == b"generation 2"
    finally:
        delete_bucket_quietly(rgw, plain)
        delete_bucket_quietly(rgw, versioned)
