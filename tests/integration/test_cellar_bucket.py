# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cellar_bucket against a real Ceph RGW: check mode, apply, idempotence, absent, force, dotted names."""

import json
import uuid

import pytest
from conftest import delete_bucket_quietly, http_request, run_module, server_snapshot

pytestmark = pytest.mark.rgw

CORS = [
    {"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET", "PUT"], "allowed_headers": ["*"], "max_age_seconds": 600},
    {"allowed_origins": ["https://*.example.org"], "allowed_methods": ["GET"], "expose_headers": ["ETag"], "id": "org"},
]


def converge(rgw, args, expect_changed):
    """Check mode leaves the server alone, apply changes it, re-apply is unchanged."""
    name = args["name"]
    before = server_snapshot(rgw, name)
    check = run_module("cellar_bucket", dict(rgw.connection_args(), **args), check_mode=True, diff=True)
    assert not check.get("failed"), check
    assert check["changed"] is expect_changed
    assert server_snapshot(rgw, name) == before
    applied = run_module("cellar_bucket", dict(rgw.connection_args(), **args), diff=True)
    assert not applied.get("failed"), applied
    assert applied["changed"] is expect_changed
    again = run_module("cellar_bucket", dict(rgw.connection_args(), **args), diff=True)
    assert not again.get("failed"), again
    assert again["changed"] is False, again["diff"]
    return applied


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"acl": "private"},
        {"acl": "public-read"},
        {"acl": "authenticated-read"},
        {"versioning": "enabled"},
        {"versioning": "suspended"},
        {"preset": "public_read"},
        {"preset": "read_only", "principals": ["cellar_addon0002"]},
        {"cors": CORS},
        {"acl": "private", "versioning": "enabled", "preset": "public_read", "cors": CORS},
    ],
    ids=lambda o: "-".join(sorted(o)) or "bare",
)
def test_create_then_absent(rgw, cellar_bucket, options):
    args = dict(options, name=cellar_bucket)
    result = converge(rgw, args, expect_changed=True)
    assert result["diff"]["before"] == {"name": cellar_bucket, "exists": False}
    snap = server_snapshot(rgw, cellar_bucket)
    assert cellar_bucket in snap["buckets"]
    if "versioning" in options:
        assert snap["versioning"] == ("Enabled" if options["versioning"] == "enabled" else None)
    if "preset" in options:
        assert json.loads(snap["policy"])["Statement"]
    if "cors" in options:
        assert len(snap["cors"]) == 2
    absent = dict(name=cellar_bucket, state="absent")
    check = run_module("cellar_bucket", dict(rgw.connection_args(), **absent), check_mode=True)
    assert check["changed"] is True
    assert cellar_bucket in server_snapshot(rgw)["buckets"]
    assert run_module("cellar_bucket", dict(rgw.connection_args(), **absent))["changed"] is True
    assert cellar_bucket not in server_snapshot(rgw)["buckets"]
    assert run_module("cellar_bucket", dict(rgw.connection_args(), **absent))["changed"] is False


def test_update_each_subresource(rgw, cellar_bucket):
    converge(rgw, {"name": cellar_bucket, "acl": "private", "versioning": "enabled", "preset": "public_read", "cors": CORS}, True)
    converge(rgw, {"name": cellar_bucket, "acl": "public-read"}, True)
    converge(rgw, {"name": cellar_bucket, "versioning": "suspended"}, True)
    assert server_snapshot(rgw, cellar_bucket)["versioning"] == "Suspended"
    converge(rgw, {"name": cellar_bucket, "preset": "read_only", "principals": ["cellar_addon0002"]}, True)
    converge(rgw, {"name": cellar_bucket, "cors": CORS[:1]}, True)
    converge(rgw, {"name": cellar_bucket, "policy": {}}, True)
    converge(rgw, {"name": cellar_bucket, "cors": []}, True)
    snap = server_snapshot(rgw, cellar_bucket)
    assert snap["policy"] is None
    assert snap["cors"] is None
    # Unmanaged sub-resources are left alone.
    assert server_snapshot(rgw, cellar_bucket)["versioning"] == "Suspended"


def test_public_acl_and_policy_really_open_the_bucket(rgw, cellar_bucket):
    converge(rgw, {"name": cellar_bucket, "preset": "public_read"}, True)
    rgw.client().put_object(Bucket=cellar_bucket, Key="hello.txt", Body=b"hello")
    status, _headers, body = http_request("%s/%s/hello.txt" % (rgw.endpoint, cellar_bucket))
    assert (status, body) == (200, b"hello")
    converge(rgw, {"name": cellar_bucket, "policy": ""}, True)
    assert http_request("%s/%s/hello.txt" % (rgw.endpoint, cellar_bucket))[0] == 403


def test_dotted_bucket_end_to_end(rgw):
    name = "kd-%s.example.com" % uuid.uuid4().hex[:8]
    try:
        result = converge(rgw, {"name": name, "acl": "private", "versioning": "enabled", "preset": "public_read", "cors": CORS}, True)
        assert result["url"] == "%s/%s" % (rgw.endpoint, name)
        rgw.client().put_object(Bucket=name, Key="a.txt", Body=b"dotted")
        assert http_request("%s/%s/a.txt" % (rgw.endpoint, name))[2] == b"dotted"
        gone = run_module("cellar_bucket", dict(rgw.connection_args(), name=name, state="absent", force=True))
        assert gone["changed"] is True
        assert gone["deleted_objects"] == 1
        assert name not in server_snapshot(rgw)["buckets"]
    finally:
        delete_bucket_quietly(rgw, name)


def test_non_empty_without_force_fails_and_deletes_nothing(rgw, existing_bucket):
    rgw.client().put_object(Bucket=existing_bucket, Key="keep.txt", Body=b"x")
    before = server_snapshot(rgw, existing_bucket)
    for check_mode in (True, False):
        result = run_module("cellar_bucket", dict(rgw.connection_args(), name=existing_bucket, state="absent"), check_mode=check_mode)
        assert result["failed"] is True
        assert "not empty" in result["msg"] and "force=true" in result["msg"]
        assert server_snapshot(rgw, existing_bucket) == before


def count_versions(client, bucket):
    pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket)
    return sum(len(p.get("Versions", [])) + len(p.get("DeleteMarkers", [])) for p in pages)


def test_force_delete_versioned_bucket_removes_every_version(rgw, existing_bucket):
    client = rgw.client()
    client.put_bucket_versioning(Bucket=existing_bucket, VersioningConfiguration={"Status": "Enabled"})
    for i in range(1203):  # more than one 1000-key batch
        client.put_object(Bucket=existing_bucket, Key="obj-%04d" % (i % 700), Body=b"v")
    client.delete_object(Bucket=existing_bucket, Key="obj-0001")  # a delete marker
    args = dict(rgw.connection_args(), name=existing_bucket, state="absent", force=True)
    check = run_module("cellar_bucket", args, check_mode=True)
    assert check["changed"] is True
    assert count_versions(client, existing_bucket) == 1204
    result = run_module("cellar_bucket", args)
    assert result["changed"] is True
    assert result["deleted_objects"] == 1204
    assert existing_bucket not in server_snapshot(rgw)["buckets"]
    assert run_module("cellar_bucket", args)["changed"] is False


def test_url_virtual_host_for_plain_names(rgw, cellar_bucket):
    args = dict(rgw.connection_args(), name=cellar_bucket)
    args["endpoint"] = rgw.endpoint.replace("127.0.0.1", "localhost")
    result = run_module("cellar_bucket", dict(args, path_style=True), check_mode=True)
    assert result["url"].endswith("/" + cellar_bucket)


def test_list_of_buckets_in_one_run(rgw):
    names = ["kd-list-%s-%d" % (uuid.uuid4().hex[:6], i) for i in range(5)] + ["kd-list-%s.example.com" % uuid.uuid4().hex[:6]]
    entries = [{"name": n, "acl": "private", "versioning": "enabled", "preset": "public_read", "cors": CORS} for n in names]
    args = dict(rgw.connection_args(), buckets=entries, workers=3)
    try:
        before = server_snapshot(rgw)
        check = run_module("cellar_bucket", args, check_mode=True, diff=True)
        assert check["changed"] is True and set(check["diff"]["before"]) == set(names)
        assert server_snapshot(rgw) == before
        applied = run_module("cellar_bucket", args, diff=True)
        assert applied["changed"] is True
        assert [b["name"] for b in applied["buckets"]] == names
        assert all(b["changed"] for b in applied["buckets"])
        assert set(names) <= set(server_snapshot(rgw)["buckets"])
        again = run_module("cellar_bucket", args, diff=True)
        assert again["changed"] is False, again["diff"]
        assert again["diff"] == {"before": {}, "after": {}}
        one_changed = [dict(e, acl="public-read") if e["name"] == names[2] else e for e in entries]
        partly = run_module("cellar_bucket", dict(args, buckets=one_changed), diff=True)
        assert [b["name"] for b in partly["buckets"] if b["changed"]] == [names[2]]
        assert partly["diff"]["before"][names[2]]["acl"] == "private"
        gone = dict(args, buckets=[{"name": n, "state": "absent", "force": True} for n in names])
        assert run_module("cellar_bucket", gone)["changed"] is True
        assert not set(names) & set(server_snapshot(rgw)["buckets"])
        assert run_module("cellar_bucket", gone)["changed"] is False
    finally:
        for name in names:
            delete_bucket_quietly(rgw, name)


def test_list_reports_every_failing_bucket(rgw, existing_bucket):
    rgw.client().put_object(Bucket=existing_bucket, Key="k", Body=b"x")
    fresh = "kd-list-ok-%s" % uuid.uuid4().hex[:6]
    try:
        args = dict(rgw.connection_args(), buckets=[{"name": existing_bucket, "state": "absent"}, {"name": fresh}])
        result = run_module("cellar_bucket", args)
        assert result["failed"] is True
        assert "1 of 2 buckets failed" in result["msg"] and "not empty" in result["msg"]
        assert existing_bucket in server_snapshot(rgw)["buckets"]
        assert fresh in server_snapshot(rgw)["buckets"]
    finally:
        delete_bucket_quietly(rgw, fresh)


def test_bucket_of_another_account(rgw, existing_bucket):
    before = server_snapshot(rgw, existing_bucket)
    result = run_module("cellar_bucket", dict(rgw.connection_args("addon"), name=existing_bucket, acl="public-read"))
    assert result["failed"] is True
    assert "another account" in result["msg"]
    assert server_snapshot(rgw, existing_bucket) == before
