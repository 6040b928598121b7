# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The request counts the cellar_* modules' documentation states, counted on the wire: each module runs against a
recording proxy in front of the real RGW (see ``RecordingProxy`` in conftest.py)."""

import pytest
from conftest import run_module

pytestmark = pytest.mark.rgw

CORS = [{"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET", "PUT"], "allowed_headers": ["*"], "max_age_seconds": 600}]


def sent(proxy):
    """The requests the proxy passed on since the last look, as sorted "METHOD /path?query-keys -> status" lines
    (the status shows a refused or retried request for what it is)."""
    return sorted(str(r) for r in proxy.take())


def run(proxy, rgw, module, args):
    """Run ``module`` through the proxy; returns its result."""
    return run_module(module, dict(rgw.connection_args(), endpoint=proxy.url, **args))


def test_cellar_bucket_reads_only_the_sub_resources_given(rgw, recording_proxy, cellar_bucket):
    """'An idempotent run of a bucket with ACL, versioning, policy and CORS makes four read requests', and 'only the
    sub-resources given are read'."""
    whole = {"name": cellar_bucket, "acl": "private", "versioning": "enabled", "preset": "public_read", "cors": CORS}
    assert run(recording_proxy, rgw, "cellar_bucket", whole)["changed"] is True
    recording_proxy.take()

    assert run(recording_proxy, rgw, "cellar_bucket", whole)["changed"] is False
    reads = ["GET /%s?%s -> 200" % (cellar_bucket, sub) for sub in ("acl", "cors", "policy", "versioning")]
    assert sent(recording_proxy) == reads

    assert run(recording_proxy, rgw, "cellar_bucket", {"name": cellar_bucket, "cors": CORS})["changed"] is False
    assert sent(recording_proxy) == ["GET /%s?cors -> 200" % cellar_bucket]
    assert run(recording_proxy, rgw, "cellar_bucket", {"name": cellar_bucket})["changed"] is False
    assert sent(recording_proxy) == ["HEAD /%s -> 200" % cellar_bucket]


def test_policy_and_cors_modules_make_one_read_request_when_nothing_changes(rgw, recording_proxy, existing_bucket):
    policy = {"bucket": existing_bucket, "preset": "public_read"}
    cors = {"bucket": existing_bucket, "rules": CORS}
    assert run(recording_proxy, rgw, "cellar_bucket_policy", policy)["changed"] is True
    assert run(recording_proxy, rgw, "cellar_cors", cors)["changed"] is True
    recording_proxy.take()

    assert run(recording_proxy, rgw, "cellar_bucket_policy", policy)["changed"] is False
    assert sent(recording_proxy) == ["GET /%s?policy -> 200" % existing_bucket]
    assert run(recording_proxy, rgw, "cellar_cors", cors)["changed"] is False
    assert sent(recording_proxy) == ["GET /%s?cors -> 200" % existing_bucket]


def test_non_empty_bucket_is_detected_with_one_listing_request_before_any_delete(rgw, recording_proxy, existing_bucket):
    rgw.client().put_object(Bucket=existing_bucket, Key="keep.txt", Body=b"keep")
    result = run(recording_proxy, rgw, "cellar_bucket", {"name": existing_bucket, "state": "absent"})
    assert result["failed"] is True and "is not empty" in result["msg"], result
    requests = recording_proxy.take()
    assert [r.method for r in requests] == ["HEAD", "GET"], [str(r) for r in requests]
    assert "versions" in requests[1].query, str(requests[1])  # list object versions: no DELETE, PUT or POST


def test_bucket_info_reads_details_only_when_asked(rgw, recording_proxy, existing_bucket):
    assert [b["name"] for b in run(recording_proxy, rgw, "cellar_bucket_info", {"name": existing_bucket})["buckets"]] == [existing_bucket]
    assert sent(recording_proxy) == ["GET / -> 200"]
    assert run(recording_proxy, rgw, "cellar_bucket_info", {"name": existing_bucket, "cors": True})["buckets"][0]["cors"] == []
    assert sent(recording_proxy) == ["GET / -> 200", "GET /%s?cors -> 404" % existing_bucket]  # 404: it has no CORS configuration


OTHER_BUCKET_POLICY = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other-bucket/*"}]}


# (module, options for an existing bucket's name, part of the message)
BAD_INPUT = {
    "name": ("cellar_bucket", lambda b: {"name": "Bad_Name"}, "must not contain '_'"),
    "absent-with-acl": ("cellar_bucket", lambda b: {"name": b, "state": "absent", "acl": "private"}, "state=absent deletes the bucket and takes no acl"),
    "one-bad-entry-of-a-list": ("cellar_bucket", lambda b: {"buckets": [{"name": b, "acl": "private"}, {"name": "Bad_Name"}]}, "buckets[1] (Bad_Name)"),
    "policy": ("cellar_bucket_policy", lambda b: {"bucket": b, "policy": OTHER_BUCKET_POLICY}, "must be arn:aws:s3:::"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_refused_before_any_request(rgw, recording_proxy, existing_bucket, case):
    """'Validated before any request' (names, policies, every entry of a list) and 'fails before any request'."""
    module, args, message = BAD_INPUT[case]
    result = run(recording_proxy, rgw, module, args(existing_bucket))
    assert result["failed"] is True and message in result["msg"], result
    assert sent(recording_proxy) == []


LIFECYCLE = [{"id": "tmp", "prefix": "tmp/", "expiration_days": 7}, {"id": "uploads", "abort_incomplete_multipart_upload_days": 2}]


def test_lifecycle_makes_one_read_request_per_bucket_when_nothing_changes(rgw, recording_proxy, existing_bucket):
    """cellar_lifecycle: 'One read request when nothing changes'; cellar_bucket reads the lifecycle only when given."""
    assert run(recording_proxy, rgw, "cellar_lifecycle", {"bucket": existing_bucket, "rules": LIFECYCLE})["changed"] is True
    assert sent(recording_proxy) == ["GET /%s?lifecycle -> 404" % existing_bucket, "PUT /%s?lifecycle -> 200" % existing_bucket]

    assert run(recording_proxy, rgw, "cellar_lifecycle", {"bucket": existing_bucket, "rules": list(reversed(LIFECYCLE))})["changed"] is False
    assert sent(recording_proxy) == ["GET /%s?lifecycle -> 200" % existing_bucket]
    assert run(recording_proxy, rgw, "cellar_bucket", {"name": existing_bucket, "lifecycle": LIFECYCLE})["changed"] is False
    assert sent(recording_proxy) == ["GET /%s?lifecycle -> 200" % existing_bucket]
    assert run(recording_proxy, rgw, "cellar_bucket", {"name": existing_bucket, "versioning": "suspended"})["changed"] is False
    assert sent(recording_proxy) == ["GET /%s?versioning -> 200" % existing_bucket]
