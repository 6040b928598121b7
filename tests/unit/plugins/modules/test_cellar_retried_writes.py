# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Writes safe to retry (issue 30): an "already done" answer to a write botocore retried is success with an honest
``changed``; the same answer on the first try is reported as before; a create never adopts a bucket that is not in
our own ListBuckets. Scripted S3 client; the real thing is tests/integration/test_cellar_lost_answers.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from botocore.exceptions import ClientError

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import bucket as bucket_logic
from ansible_collections.keepdata.storage.plugins.module_utils.cellar import ops
from ansible_collections.keepdata.storage.tests.unit.plugins.modules.cellar_fakes import FakeS3, converge


def client_error(code, status, retries):
    """A ClientError as botocore raises it after ``retries`` retries (ResponseMetadata.RetryAttempts)."""
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries}}, "Op")


@pytest.mark.parametrize(
    "write, code, retries, done",
    [
        ("delete_bucket", "NoSuchBucket", 1, True),
        ("delete_bucket", "NoSuchBucket", 0, False),  # first try: someone else deleted it, reported as before
        ("delete_bucket", "BucketNotEmpty", 2, False),
        ("create_bucket", "BucketAlreadyOwnedByYou", 1, True),
        ("create_bucket", "BucketAlreadyExists", 4, True),
        ("create_bucket", "BucketAlreadyExists", 0, False),
        ("delete_policy", "NoSuchBucketPolicy", 1, True),
        ("delete_cors", "NoSuchCORSConfiguration", 1, True),
        ("delete_lifecycle", "NoSuchLifecycleConfiguration", 1, True),
        ("delete_lifecycle", "NoSuchBucket", 1, False),  # the bucket gone is not "no lifecycle configuration"
        ("delete_object", "NoSuchVersion", 1, True),
        ("delete_object", "AccessDenied", 1, False),
        ("abort_upload", "NoSuchUpload", 1, True),
        ("abort_upload", "NoSuchUpload", 0, False),
    ],
)
def test_already_done_only_for_its_own_codes_on_a_retry(write, code, retries, done):
    assert ops.already_done(write, code, retries) is done


HEAD_OK = {}
EMPTY = {"IsTruncated": False}


def test_retried_delete_that_finds_no_bucket_is_a_change():
    client = FakeS3(head_bucket=HEAD_OK, list_object_versions=EMPTY, list_multipart_uploads=EMPTY, delete_bucket=client_error("NoSuchBucket", 404, 1))
    result = converge(client, state="absent")
    assert result["changed"] is True and result["deleted_objects"] == 0
    assert result["diff"]["after"] == {"name": "bkt", "exists": False}


def test_forced_delete_retried_everywhere_counts_what_its_first_tries_did():
    versions = {"Versions": [{"Key": "a", "VersionId": "1"}, {"Key": "b", "VersionId": "2"}], "IsTruncated": False}
    # The retried batch: its first try deleted both; this server reports "b" gone instead of plain success.
    batch = {"Errors": [{"Key": "b", "VersionId": "2", "Code": "NoSuchVersion"}], "ResponseMetadata": {"RetryAttempts": 1}}
    client = FakeS3(
        head_bucket=HEAD_OK,
        list_multipart_uploads={"Uploads": [{"Key": "big", "UploadId": "u1"}], "IsTruncated": False},
        abort_multipart_upload=client_error("NoSuchUpload", 404, 1),
        list_object_versions=[versions, EMPTY],
        delete_objects=batch,
        delete_bucket=client_error("NoSuchBucket", 404, 1),
    )
    result = converge(client, state="absent", force=True)
    assert result["changed"] is True and result["deleted_objects"] == 2
    assert client.names() == [
        "head_bucket",
        "list_multipart_uploads",
        "abort_multipart_upload",
        "list_object_versions",
        "delete_objects",
        "list_object_versions",
        "delete_bucket",
    ]


def test_first_try_that_finds_no_bucket_still_fails_unchanged():
    client = FakeS3(head_bucket=HEAD_OK, list_object_versions=EMPTY, list_multipart_uploads=EMPTY, delete_bucket=client_error("NoSuchBucket", 404, 0))
    with pytest.raises(bucket_logic.BucketError) as raised:
        converge(client, state="absent")
    assert raised.value.result["changed"] is False
    assert "does not exist" in str(raised.value)


def test_first_try_delete_objects_error_still_fails():
    batch = {"Errors": [{"Key": "b", "VersionId": "2", "Code": "NoSuchVersion"}], "ResponseMetadata": {"RetryAttempts": 0}}
    with pytest.raises(ops.S3CallError) as raised:
        ops.delete_objects(FakeS3(delete_objects=batch), "bkt", [{"Key": "b", "VersionId": "2"}])
    assert raised.value.code == "NoSuchVersion"


@pytest.mark.parametrize("code", ["BucketAlreadyExists", "BucketAlreadyOwnedByYou"])
def test_retried_create_adopts_a_bucket_listed_as_ours_and_sets_its_acl(code):
    client = FakeS3(
        get_bucket_acl=client_error("NoSuchBucket", 404, 0),
        create_bucket=client_error(code, 409, 1),
        list_buckets={"Buckets": [{"Name": "other"}, {"Name": "bkt"}]},
        put_bucket_acl={},
    )
    result = converge(client, acl="public-read")
    assert result["changed"] is True and result["acl"] == "public-read"
    assert client.names() == ["get_bucket_acl", "create_bucket", "list_buckets", "put_bucket_acl"]


def test_retried_create_never_adopts_a_bucket_that_is_not_ours():
    client = FakeS3(
        get_bucket_versioning=client_error("NoSuchBucket", 404, 0),
        create_bucket=client_error("BucketAlreadyExists", 409, 1),
        list_buckets={"Buckets": [{"Name": "other"}]},
    )
    with pytest.raises(bucket_logic.BucketError) as raised:
        converge(client, versioning="enabled")  # no put_bucket_versioning answer: a write would fail the test
    assert raised.value.result["changed"] is False
    assert "is already taken by another account" in str(raised.value)
    assert client.names() == ["get_bucket_versioning", "create_bucket", "list_buckets"]


def test_retried_create_whose_ownership_read_fails_reports_the_create_error():
    client = FakeS3(
        get_bucket_versioning=client_error("NoSuchBucket", 404, 0),
        create_bucket=client_error("BucketAlreadyExists", 409, 1),
        list_buckets=client_error("AccessDenied", 403, 0),
    )
    with pytest.raises(bucket_logic.BucketError) as raised:
        converge(client, versioning="enabled")
    assert "is already taken by another account" in str(raised.value)


def test_first_try_create_conflict_fails_without_an_ownership_read():
    client = FakeS3(get_bucket_acl=client_error("NoSuchBucket", 404, 0), create_bucket=client_error("BucketAlreadyOwnedByYou", 409, 0))
    with pytest.raises(bucket_logic.BucketError) as raised:
        converge(client, acl="private")
    assert raised.value.result["changed"] is False
    assert client.names() == ["get_bucket_acl", "create_bucket"]
