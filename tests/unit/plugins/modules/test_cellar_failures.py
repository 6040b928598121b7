# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the modules report when a request fails: ``changed`` after a successful write, nothing deleted from a
non-empty bucket, the real cause of a 403, the rollback file written before the CORS write (scripted S3 client)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest
from botocore.exceptions import ClientError

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import bucket as bucket_logic
from ansible_collections.keepdata.storage.plugins.module_utils.cellar import ops
from ansible_collections.keepdata.storage.plugins.module_utils.cellar import rules_file as cellar_rules_file
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.policy import preset_policy
from ansible_collections.keepdata.storage.plugins.modules import cellar_bucket, cellar_cors, cellar_lifecycle
from ansible_collections.keepdata.storage.tests.unit.plugins.modules.cellar_fakes import FakeCellar, FakeS3, converge, entry


def client_error(code, status=400, operation="Op"):
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


NO_BUCKET = client_error("NoSuchBucket", 404)
ONE_VERSION = {"Versions": [{"Key": "keep.txt", "VersionId": "v1"}], "IsTruncated": False}
NO_VERSION = {"IsTruncated": False}
NO_UPLOAD = {"IsTruncated": False}
ONE_UPLOAD = {"Uploads": [{"Key": "big.bin", "UploadId": "u1"}], "IsTruncated": False}


# ---- item: a failure after a successful write reports changed -------------------------------------------------


def test_failure_after_create_reports_changed_and_names_the_writes():
    client = FakeS3(
        get_bucket_acl=NO_BUCKET,
        create_bucket={},
        put_bucket_versioning={},
        put_bucket_policy=client_error("MalformedPolicy"),
    )
    with pytest.raises(bucket_logic.BucketError) as raised:
        converge(client, acl="private", versioning="enabled", preset="public_read")
    assert raised.value.result["changed"] is True
    assert "refused the bucket policy" in str(raised.value)
    assert "already written before the failure: bucket, versioning" in str(raised.value)
    assert client.names() == ["get_bucket_acl", "create_bucket", "put_bucket_versioning", "put_bucket_policy"]


def test_failure_after_acl_write_on_existing_bucket_reports_changed():
    owner = {"Owner": {"ID": "me"}, "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": "me"}, "Permission": "FULL_CONTROL"}]}
    client = FakeS3(
        get_bucket_acl=owner,
        get_bucket_policy=client_error("NoSuchBucketPolicy", 404),
        put_bucket_acl={},
        put_bucket_policy=client_error("AccessDenied", 403),
    )
    with pytest.raises(bucket_logic.BucketError) as raised:
        converge(client, acl="public-read", preset="public_read")
    assert raised.value.result["changed"] is True
    assert "access denied" in str(raised.value) and "(already written before the failure: acl)" in str(raised.value)


def test_failure_before_any_write_reports_unchanged():
    client = FakeS3(get_bucket_acl=NO_BUCKET, create_bucket=client_error("BucketAlreadyExists", 409))
    with pytest.raises(bucket_logic.BucketError) as raised:
        converge(client, acl="private")
    assert raised.value.result["changed"] is False
    assert "already written" not in str(raised.value)


def test_force_delete_failing_half_way_reports_changed_and_the_count():
    pages = [{"Versions": [{"Key": "a", "VersionId": "1"}, {"Key": "b", "VersionId": "2"}], "IsTruncated": False}]
    client = FakeS3(
        head_bucket={},
        list_multipart_uploads=NO_UPLOAD,
        list_object_versions=pages + [NO_VERSION],
        delete_objects={},
        delete_bucket=client_error("AccessDenied", 403),
    )
    with pytest.raises(bucket_logic.BucketError) as raised:
        converge(client, state="absent", force=True)
    assert raised.value.result["changed"] is True
    assert raised.value.result["deleted_objects"] == 2
    assert "(2 object versions were deleted before the failure; running again completes the removal)" in str(raised.value)


def test_list_mode_carries_changed_of_a_partly_written_bucket():
    client = FakeS3(get_bucket_versioning=NO_BUCKET, create_bucket={}, put_bucket_versioning=client_error("AccessDenied", 403))
    params = entry(versioning="enabled")
    results, errors = bucket_logic.converge_many(FakeCellar(client), [(params, bucket_logic.desired_state(params))], 1)
    assert results[0]["changed"] is True and len(errors) == 1
    assert results[0]["name"] == "bkt" and results[0]["url"] == "https://s3.example.com/bkt"  # the partial result of the bucket
    assert results[0]["msg"] == errors[0]
    assert "access denied" in errors[0] and "(already written before the failure: bucket)" in errors[0]


def test_a_long_list_of_failures_names_every_bucket_and_spells_out_the_first_errors():
    results = [{"name": "b%d" % i, "changed": False, "msg": "error %d" % i} for i in range(5)] + [{"name": "fine", "changed": True}]
    errors = [r["msg"] for r in results if "msg" in r]
    assert bucket_logic.failures_message(results, errors) == (
        "5 of 6 buckets failed (b0, b1, b2, b3, b4); the first errors: error 0; error 1; error 2 (every failed bucket's error is in its buckets[].msg)"
    )
    assert bucket_logic.failures_message(results[3:], errors[3:]) == "2 of 3 buckets failed: error 3; error 4"


def test_list_result_has_one_diff_of_the_changed_buckets():
    results = [
        {"name": "one-b", "changed": True, "diff": {"before": {"exists": False}, "after": {"exists": True}}},
        {"name": "two-b", "changed": False, "diff": {"before": {"exists": True}, "after": {"exists": True}}},
        {"name": "three-b", "changed": True},  # failed after a write: no diff of its own
    ]
    result = bucket_logic.list_result(results)
    assert result["changed"] is True
    assert result["diff"] == {"before": {"one-b": {"exists": False}, "three-b": None}, "after": {"one-b": {"exists": True}, "three-b": None}}
    assert [sorted(entry) for entry in result["buckets"]] == [["changed", "name"]] * 3
    assert bucket_logic.list_result([{"name": "two-b", "changed": False}])["changed"] is False


# ---- item: a non-empty bucket fails clearly and nothing is deleted -------------------------------------------


@pytest.mark.parametrize("check_mode", [False, True])
def test_non_empty_bucket_without_force_is_detected_before_any_delete(check_mode):
    client = FakeS3(head_bucket={}, list_object_versions=ONE_VERSION)  # no delete_* answer: a delete fails the test
    cellar = FakeCellar(client)
    cellar.check_mode = check_mode
    params = entry(state="absent")
    with pytest.raises(bucket_logic.BucketError) as raised:
        bucket_logic.converge_bucket(cellar, params, {}, 1)
    assert raised.value.result["changed"] is False
    assert "diff" not in raised.value.result
    assert str(raised.value) == "bucket 'bkt' is not empty: set force=true to delete every object and version with it (nothing was deleted)"
    assert client.names() == ["head_bucket", "list_object_versions"]


def test_bucket_filled_between_check_and_delete_reports_unchanged():
    client = FakeS3(head_bucket={}, list_object_versions=NO_VERSION, list_multipart_uploads=NO_UPLOAD, delete_bucket=client_error("BucketNotEmpty", 409))
    with pytest.raises(bucket_logic.BucketError) as raised:
        converge(client, state="absent")
    assert raised.value.result["changed"] is False
    assert "is not empty: set force=true" in str(raised.value)


def test_empty_bucket_without_force_is_deleted():
    client = FakeS3(head_bucket={}, list_object_versions=NO_VERSION, list_multipart_uploads=NO_UPLOAD, delete_bucket={})
    result = converge(client, state="absent")
    assert result["changed"] is True and result["deleted_objects"] == 0


@pytest.mark.parametrize("check_mode", [False, True])
def test_bucket_with_only_unfinished_uploads_without_force_is_refused(check_mode):
    """Ceph RGW would delete it and keep the uploaded parts for good."""
    client = FakeS3(head_bucket={}, list_object_versions=NO_VERSION, list_multipart_uploads=ONE_UPLOAD)  # no delete_* answer
    cellar = FakeCellar(client)
    cellar.check_mode = check_mode
    with pytest.raises(bucket_logic.BucketError) as raised:
        bucket_logic.converge_bucket(cellar, entry(state="absent"), {}, 1)
    assert raised.value.result["changed"] is False
    assert str(raised.value) == "bucket 'bkt' holds unfinished multipart uploads: set force=true to abort them and delete the bucket (nothing was deleted)"
    assert client.names() == ["head_bucket", "list_object_versions", "list_multipart_uploads"]


def test_force_aborts_unfinished_uploads_before_deleting_the_bucket():
    client = FakeS3(head_bucket={}, list_multipart_uploads=ONE_UPLOAD, abort_multipart_upload={}, list_object_versions=NO_VERSION, delete_bucket={})
    result = converge(client, state="absent", force=True)
    assert result["changed"] is True and result["deleted_objects"] == 0
    assert client.names() == ["head_bucket", "list_multipart_uploads", "abort_multipart_upload", "list_object_versions", "delete_bucket"]


# ---- item: state=absent refuses options it would ignore ------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"acl": "private"}, "acl"),
        ({"versioning": "enabled"}, "versioning"),
        ({"policy": {}}, "policy"),
        ({"preset": "public_read"}, "preset"),
        ({"preset": "read_only", "principals": ["cellar_x"]}, "preset, principals"),
        ({"cors": []}, "cors"),
    ],
)
def test_absent_refuses_content_options(options, named):
    with pytest.raises(ValueError, match="^state=absent deletes the bucket and takes no %s$" % named):
        bucket_logic.desired_state(entry(state="absent", **options))


def test_absent_in_a_list_entry_is_refused_with_its_index():
    params = {key: None for key in cellar_bucket.ARGUMENT_SPEC}
    params.update(state="present", force=False, workers=4, buckets=[entry(name="one-b"), entry(name="two-b", state="absent", acl="private")])
    with pytest.raises(ValueError, match=r"^buckets\[1\] \(two-b\): state=absent deletes the bucket and takes no acl$"):
        bucket_logic.bucket_requests(params)


# ---- item: policies that differ only by action case are no change ---------------------------------------------


def test_policy_with_other_action_case_is_not_rewritten():
    stored = preset_policy("public_read", "bkt")
    stored["Statement"][0]["Action"] = ["s3:getobject"]
    client = FakeS3(get_bucket_policy={"Policy": json.dumps(stored)})  # no put_bucket_policy answer
    result = converge(client, preset="public_read")
    assert result["changed"] is False


# ---- item: multipart uploads are aborted page after page ------------------------------------------------------


def test_abort_multipart_uploads_pages_past_the_first_listing():
    first = {"Uploads": [{"Key": "a", "UploadId": "1"}, {"Key": "b", "UploadId": "2"}], "IsTruncated": True, "NextKeyMarker": "b", "NextUploadIdMarker": "2"}
    second = {"Uploads": [{"Key": "c", "UploadId": "3"}], "IsTruncated": False}
    client = FakeS3(list_multipart_uploads=[first, second], abort_multipart_upload={})
    assert ops.abort_multipart_uploads(client, "bkt") == 3
    listings = [kwargs for method, kwargs in client.calls if method == "list_multipart_uploads"]
    assert listings == [{"Bucket": "bkt"}, {"Bucket": "bkt", "KeyMarker": "b", "UploadIdMarker": "2"}]
    assert [kwargs["UploadId"] for method, kwargs in client.calls if method == "abort_multipart_upload"] == ["1", "2", "3"]


# ---- item: a 403 on HEAD keeps its real cause when ListBuckets is denied too -----------------------------------


@pytest.mark.parametrize(
    ("list_answer", "code", "action"),
    [
        (client_error("AccessDenied", 403), "403", "head bucket"),  # user may not list: the bucket's 403 is the cause
        ({"Buckets": []}, "403", "head bucket"),  # credentials fine: the bucket is denied
        (client_error("InvalidAccessKeyId", 403), "InvalidAccessKeyId", "list buckets"),  # credentials rejected
    ],
)
def test_head_403_is_explained(list_answer, code, action):
    client = FakeS3(head_bucket=client_error("403", 403, "HeadBucket"), list_buckets=list_answer)
    with pytest.raises(ops.S3CallError) as raised:
        ops.bucket_exists(client, "bkt")
    assert (raised.value.code, raised.value.action) == (code, action)


# ---- item: the CORS rollback file is written first, atomically, mode 0600 -------------------------------------

RULES = [{"allowed_origins": ["https://a.example"], "allowed_methods": ["GET"]}]
OLD_S3 = {"CORSRules": [{"AllowedOrigins": ["https://old.example"], "AllowedMethods": ["PUT"]}]}
OLD = [{"allowed_methods": ["PUT"], "allowed_origins": ["https://old.example"]}]


def test_rollback_file_is_written_before_the_cors_write(tmp_path):
    target = tmp_path / "prev.json"
    seen = []

    def refuse_write(**_kwargs):
        seen.append(target.exists())
        raise client_error("AccessDenied", 403)

    client = FakeS3(get_bucket_cors=OLD_S3, put_bucket_cors=refuse_write)
    with pytest.raises(ops.S3CallError):
        cellar_cors.CORS_RULES.converge(client, "bkt", RULES, False, str(target))
    assert seen == [True]  # the file existed when the write was sent
    assert json.loads(target.read_text()) == OLD
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_rollback_file_failure_leaves_the_server_alone(tmp_path):
    client = FakeS3(get_bucket_cors=OLD_S3)  # no put_bucket_cors answer: a write fails the test
    with pytest.raises(cellar_rules_file.SaveError, match="could not be written .*the CORS configuration was left unchanged"):
        cellar_cors.CORS_RULES.converge(client, "bkt", RULES, False, str(tmp_path / "missing" / "prev.json"))
    assert client.names() == ["get_bucket_cors"]


def test_rollback_file_not_written_in_check_mode_nor_without_change(tmp_path):
    target = tmp_path / "prev.json"
    assert cellar_cors.CORS_RULES.converge(FakeS3(get_bucket_cors=OLD_S3), "bkt", RULES, True, str(target)) == (True, OLD)
    assert cellar_cors.CORS_RULES.converge(FakeS3(get_bucket_cors=OLD_S3), "bkt", OLD, False, str(target)) == (False, OLD)
    assert not target.exists()


def test_save_rules_replaces_atomically_and_cleans_its_temporary_file(tmp_path):
    target = tmp_path / "prev.json"
    target.write_text("old content")
    os.chmod(target, 0o644)
    cellar_rules_file.save_rules(str(target), OLD)
    assert json.loads(target.read_text()) == OLD
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    with pytest.raises(TypeError):
        cellar_rules_file.save_rules(str(target), [object()])
    assert json.loads(target.read_text()) == OLD  # the previous file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prev.json"]  # no temporary file left


# ---- the lifecycle module shares the rollback file: written first, the server left alone when it cannot be -------

LIFECYCLE = [{"id": "tmp", "status": "enabled", "prefix": "tmp/", "expiration_days": 1}]
OLD_LIFECYCLE_S3 = {"Rules": [{"ID": "old", "Status": "Enabled", "Prefix": "", "NoncurrentVersionExpiration": {"NoncurrentDays": 9}}]}
OLD_LIFECYCLE = [{"id": "old", "status": "enabled", "prefix": "", "noncurrent_version_expiration_days": 9}]


def test_lifecycle_rollback_file_is_written_before_the_write(tmp_path):
    target = tmp_path / "prev.json"
    seen = []

    def record_write(**kwargs):
        seen.append((target.exists(), kwargs["LifecycleConfiguration"]["Rules"]))
        return {}

    client = FakeS3(get_bucket_lifecycle_configuration=OLD_LIFECYCLE_S3, put_bucket_lifecycle_configuration=record_write)
    assert cellar_lifecycle.LIFECYCLE_RULES.converge(client, "bkt", LIFECYCLE, False, str(target)) == (True, OLD_LIFECYCLE)
    assert seen == [(True, [{"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}])]
    assert json.loads(target.read_text()) == OLD_LIFECYCLE


def test_lifecycle_rollback_file_failure_leaves_the_server_alone(tmp_path):
    client = FakeS3(get_bucket_lifecycle_configuration=OLD_LIFECYCLE_S3)  # a write would fail the test
    with pytest.raises(cellar_rules_file.SaveError, match="the lifecycle configuration was left unchanged"):
        cellar_lifecycle.LIFECYCLE_RULES.converge(client, "bkt", LIFECYCLE, False, str(tmp_path / "missing" / "prev.json"))
    assert client.names() == ["get_bucket_lifecycle_configuration"]


def test_lifecycle_absent_deletes_and_a_missing_configuration_is_no_change():
    no_config = client_error("NoSuchLifecycleConfiguration", 404)
    client = FakeS3(get_bucket_lifecycle_configuration=OLD_LIFECYCLE_S3, delete_bucket_lifecycle={})
    assert cellar_lifecycle.LIFECYCLE_RULES.converge(client, "bkt", [], False) == (True, OLD_LIFECYCLE)
    assert client.names() == ["get_bucket_lifecycle_configuration", "delete_bucket_lifecycle"]
    assert cellar_lifecycle.LIFECYCLE_RULES.converge(FakeS3(get_bucket_lifecycle_configuration=no_config), "bkt", [], False) == (False, [])
