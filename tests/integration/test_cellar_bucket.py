# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cellar_bucket against a real Ceph RGW: check mode, apply, idempotence, absent, force, dotted names."""

import json
import socket
import uuid

import pytest
from botocore.exceptions import ClientError
from conftest import RecordingProxy, delete_bucket_quietly, http_request, run_module, server_snapshot

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
        {"acl": "public-read-write"},
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
    if "acl" in options:
        assert acl_grants(snap) == EXPECTED_GRANTS[options["acl"]]
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


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
EXPECTED_GRANTS = {
    "private": set(),
    "public-read": {(ALL_USERS, "READ")},
    "public-read-write": {(ALL_USERS, "READ"), (ALL_USERS, "WRITE")},
    "authenticated-read": {(AUTH_USERS, "READ")},
}


def acl_grants(snap):
    """Grants of a snapshot beyond the owner's FULL_CONTROL, as (grantee, permission)."""
    return {(g["Grantee"].get("URI") or g["Grantee"].get("ID"), g["Permission"]) for g in snap["acl"] if g["Permission"] != "FULL_CONTROL"}


def test_public_read_write_acl_lets_anonymous_write_and_private_stops_it(rgw, cellar_bucket):
    converge(rgw, {"name": cellar_bucket, "acl": "public-read-write"}, True)
    url = "%s/%s/anonymous.txt" % (rgw.endpoint, cellar_bucket)
    assert http_request(url, method="PUT")[0] == 200
    assert server_snapshot(rgw, cellar_bucket)["keys"] == ["anonymous.txt"]
    converge(rgw, {"name": cellar_bucket, "acl": "private"}, True)
    assert http_request(url, method="PUT")[0] == 403


def test_custom_policy_dict_apply_reapply_remove(rgw, cellar_bucket):
    """A custom policy with a bare user id as principal grants that user for real (written as its ARN)."""
    policy = {
        "Statement": [
            {
                "Sid": "AddonReadsReports",
                "Effect": "Allow",
                "Principal": {"AWS": rgw.addon["uid"]},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::%s/reports/*" % cellar_bucket,
            }
        ],
    }
    applied = converge(rgw, {"name": cellar_bucket, "policy": policy}, True)
    assert applied["policy"]["Statement"][0]["Principal"] == {"AWS": ["arn:aws:iam:::user/%s" % rgw.addon["uid"]]}
    stored = json.loads(server_snapshot(rgw, cellar_bucket)["policy"])
    assert stored["Statement"][0]["Principal"] == {"AWS": ["arn:aws:iam:::user/%s" % rgw.addon["uid"]]}
    owner, addon = rgw.client(), rgw.client("addon")
    owner.put_object(Bucket=cellar_bucket, Key="reports/q1.txt", Body=b"q1")
    owner.put_object(Bucket=cellar_bucket, Key="private/keys.txt", Body=b"k")
    assert addon.get_object(Bucket=cellar_bucket, Key="reports/q1.txt")["Body"].read() == b"q1"
    with pytest.raises(ClientError):
        addon.get_object(Bucket=cellar_bucket, Key="private/keys.txt")
    # The same policy with other action case, a JSON string and the ARN spelled out is no change.
    arn = "arn:aws:iam:::user/%s" % rgw.addon["uid"]
    same = json.dumps(dict(policy, Statement=[dict(policy["Statement"][0], Action=["s3:getobject"], Principal={"AWS": [arn]})]))
    assert run_module("cellar_bucket", dict(rgw.connection_args(), name=cellar_bucket, policy=same))["changed"] is False
    converge(rgw, {"name": cellar_bucket, "policy": {}}, True)
    assert server_snapshot(rgw, cellar_bucket)["policy"] is None
    with pytest.raises(ClientError):
        addon.get_object(Bucket=cellar_bucket, Key="reports/q1.txt")
    absent = dict(rgw.connection_args(), name=cellar_bucket, state="absent", force=True)
    assert run_module("cellar_bucket", absent)["changed"] is True
    assert run_module("cellar_bucket", absent)["changed"] is False


def test_failure_after_a_successful_write_reports_changed(rgw, cellar_bucket):
    """The bucket is created, then RGW refuses the policy (it knows no s3:NoSuchAction): failed, and changed."""
    policy = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:NoSuchAction", "Resource": "arn:aws:s3:::%s/*" % cellar_bucket}]}
    result = run_module("cellar_bucket", dict(rgw.connection_args(), name=cellar_bucket, versioning="enabled", policy=policy))
    assert result["failed"] is True
    assert result["changed"] is True
    assert "put bucket policy on bucket %r failed" % cellar_bucket in result["msg"]
    assert "(already written before the failure: bucket, versioning)" in result["msg"]
    snap = server_snapshot(rgw, cellar_bucket)
    assert cellar_bucket in snap["buckets"] and snap["versioning"] == "Enabled" and snap["policy"] is None


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
    expected = "bucket %r is not empty: set force=true to delete every object and version with it (nothing was deleted)" % existing_bucket
    single = dict(rgw.connection_args(), name=existing_bucket, state="absent")
    listed = dict(rgw.connection_args(), buckets=[{"name": existing_bucket, "state": "absent"}])
    for args in (single, listed):
        for check_mode in (True, False):
            result = run_module("cellar_bucket", args, check_mode=check_mode, diff=True)
            assert result["failed"] is True
            assert result["changed"] is False, result
            assert expected in result["msg"]
            assert not result.get("diff", {}).get("before"), result
            assert server_snapshot(rgw, existing_bucket) == before


def test_versioned_bucket_with_only_delete_markers_is_not_empty(rgw, existing_bucket):
    client = rgw.client()
    client.put_bucket_versioning(Bucket=existing_bucket, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=existing_bucket, Key="gone.txt", Body=b"x")
    client.delete_object(Bucket=existing_bucket, Key="gone.txt")  # no current object left, two versions remain
    result = run_module("cellar_bucket", dict(rgw.connection_args(), name=existing_bucket, state="absent"))
    assert result["failed"] is True and result["changed"] is False
    assert "is not empty" in result["msg"]
    assert existing_bucket in server_snapshot(rgw)["buckets"]


def start_multipart_upload(rgw, bucket, key="big.bin"):
    """An unfinished multipart upload holding one part; returns its upload id."""
    client = rgw.client()
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"part one")
    return upload_id


def test_unfinished_multipart_upload_without_force_fails_and_deletes_nothing(rgw, existing_bucket):
    upload_id = start_multipart_upload(rgw, existing_bucket)
    expected = "bucket %r holds unfinished multipart uploads: set force=true to abort them and delete the bucket (nothing was deleted)" % existing_bucket
    args = dict(rgw.connection_args(), name=existing_bucket, state="absent")
    for check_mode in (True, False):
        result = run_module("cellar_bucket", args, check_mode=check_mode)
        assert result.get("failed") is True, result
        assert result["changed"] is False
        assert expected in result["msg"]
        assert existing_bucket in server_snapshot(rgw)["buckets"]
        uploads = rgw.client().list_multipart_uploads(Bucket=existing_bucket).get("Uploads", [])
        assert [(u["Key"], u["UploadId"]) for u in uploads] == [("big.bin", upload_id)]


def test_force_aborts_unfinished_multipart_uploads_then_deletes_the_bucket(rgw, existing_bucket, recording_proxy):
    upload_id = start_multipart_upload(rgw, existing_bucket)
    rgw.client().put_object(Bucket=existing_bucket, Key="small.txt", Body=b"x")
    result = run_module("cellar_bucket", dict(rgw.connection_args(), endpoint=recording_proxy.url, name=existing_bucket, state="absent", force=True))
    assert not result.get("failed"), result
    assert result["changed"] is True and result["deleted_objects"] == 1
    assert existing_bucket not in server_snapshot(rgw)["buckets"]
    with pytest.raises(ClientError) as gone:
        rgw.client().list_multipart_uploads(Bucket=existing_bucket)
    assert gone.value.response["Error"]["Code"] == "NoSuchBucket"
    # A deleted bucket's uploads can no longer be listed, and RGW deletes a bucket that still holds some (their
    # parts then stay in the cluster for good): the server must have confirmed the abort before the bucket went.
    requests = recording_proxy.take()
    done = [(r.method, r.path, r.query.get("uploadId"), r.status) for r in requests]
    abort = ("DELETE", "/%s/big.bin" % existing_bucket, upload_id, 204)
    assert abort in done, [str(r) for r in requests]
    assert done.index(abort) < done.index(("DELETE", "/" + existing_bucket, None, 204)), [str(r) for r in requests]


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


def test_localhost_endpoint_is_addressed_path_style(rgw, cellar_bucket):
    """On a ``localhost`` endpoint (``bucket.localhost`` names do not resolve) requests and the URL are path style,
    with or without path_style. The virtual-host URL of plain names on a named endpoint is a unit test."""
    endpoint = rgw.endpoint.replace("127.0.0.1", "localhost")
    for path_style in (False, True):
        args = dict(rgw.connection_args(), endpoint=endpoint, name=cellar_bucket, path_style=path_style, acl="private")
        result = run_module("cellar_bucket", args)
        assert not result.get("failed"), result
        assert result["url"] == "%s/%s" % (endpoint, cellar_bucket)
    assert cellar_bucket in server_snapshot(rgw)["buckets"]


def named_local_address():
    """This machine's name and the address it resolves to, when that address is the machine's own (it can listen
    there): the name is neither an IP nor localhost, so the modules would address it virtual-host style unless
    path_style is set. A stock Debian 12 resolves its name to 127.0.1.1 (/etc/hosts), where the RGW does not listen:
    the test puts a proxy there, which passes each request on to the RGW unchanged and records it."""
    name = socket.gethostname()
    assert name and name != "localhost", "this machine has no host name of its own (%r): nothing to address by name" % name
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)})
    except OSError as exc:
        raise AssertionError("this machine's host name %r does not resolve (%s): give it an address in /etc/hosts" % (name, exc)) from exc
    for address in addresses:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, 0))
            except OSError:
                continue
        return name, address
    raise AssertionError("this machine's host name %r resolves to %s, none of them an address of this machine" % (name, ", ".join(addresses)))


def test_path_style_true_applied_for_real_on_a_named_endpoint(rgw, cellar_bucket):
    name, address = named_local_address()
    proxy = RecordingProxy(rgw.endpoint, listen=address)
    try:
        endpoint = "http://%s:%d" % (name, proxy.port)
        args = dict(rgw.connection_args(), endpoint=endpoint, path_style=True, name=cellar_bucket, acl="public-read", versioning="enabled", cors=CORS)
        check = run_module("cellar_bucket", args, check_mode=True)
        assert check["changed"] is True and check["url"] == "%s/%s" % (endpoint, cellar_bucket)
        assert cellar_bucket not in server_snapshot(rgw)["buckets"]
        applied = run_module("cellar_bucket", args)
        assert applied["changed"] is True, applied
        snap = server_snapshot(rgw, cellar_bucket)
        assert snap["versioning"] == "Enabled" and acl_grants(snap) == EXPECTED_GRANTS["public-read"] and len(snap["cors"]) == 2
        assert run_module("cellar_bucket", args)["changed"] is False
        absent = dict(rgw.connection_args(), endpoint=endpoint, path_style=True, name=cellar_bucket, state="absent")
        assert run_module("cellar_bucket", absent)["changed"] is True
        assert cellar_bucket not in server_snapshot(rgw)["buckets"]
        # Every request went to the named endpoint, path style: the bucket in the path, never in the Host header.
        requests = proxy.take()
        assert requests, "no request reached the named endpoint"
        assert {request.host for request in requests} == {"%s:%d" % (name, proxy.port)}, [str(r) for r in requests]
        assert all(request.path.split("/")[1] == cellar_bucket for request in requests), [str(r) for r in requests]
    finally:
        proxy.close()


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
        assert result["changed"] is True  # the fresh bucket was created
        assert [(b["name"], b["changed"]) for b in result["buckets"]] == [(existing_bucket, False), (fresh, True)]
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
