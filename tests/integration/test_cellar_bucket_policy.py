# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cellar_bucket_policy against a real Ceph RGW, with the grants checked for real."""

import json

import pytest
from botocore.exceptions import ClientError
from conftest import http_request, run_module, server_snapshot

pytestmark = pytest.mark.rgw


def cycle(rgw, bucket, args):
    """check mode (no write) -> apply -> re-apply unchanged; returns the apply result."""
    full = dict(rgw.connection_args(), bucket=bucket, **args)
    before = server_snapshot(rgw, bucket)
    check = run_module("cellar_bucket_policy", full, check_mode=True, diff=True)
    assert check["changed"] is True, check
    assert server_snapshot(rgw, bucket) == before
    applied = run_module("cellar_bucket_policy", full, diff=True)
    assert applied["changed"] is True, applied
    again = run_module("cellar_bucket_policy", full, diff=True)
    assert again["changed"] is False, again
    assert again["previous_policy"] == applied["policy"]
    return applied


def remove(rgw, bucket):
    absent = dict(rgw.connection_args(), bucket=bucket, state="absent")
    check = run_module("cellar_bucket_policy", absent, check_mode=True)
    assert check["changed"] is True
    assert server_snapshot(rgw, bucket)["policy"] is not None
    assert run_module("cellar_bucket_policy", absent)["changed"] is True
    assert server_snapshot(rgw, bucket)["policy"] is None
    assert run_module("cellar_bucket_policy", absent)["changed"] is False


def test_public_read_lets_anonymous_get_through_and_removal_blocks_it(rgw, existing_bucket):
    rgw.client().put_object(Bucket=existing_bucket, Key="index.html", Body=b"<h1>hi</h1>")
    url = "%s/%s/index.html" % (rgw.endpoint, existing_bucket)
    assert http_request(url)[0] == 403
    cycle(rgw, existing_bucket, {"preset": "public_read"})
    status, _headers, body = http_request(url)
    assert (status, body) == (200, b"<h1>hi</h1>")
    # Anonymous listing is not part of public_read.
    assert http_request("%s/%s" % (rgw.endpoint, existing_bucket))[0] == 403
    remove(rgw, existing_bucket)
    assert http_request(url)[0] == 403


def test_read_only_lets_the_addon_read_and_list_but_not_write(rgw, existing_bucket):
    rgw.client().put_object(Bucket=existing_bucket, Key="data.txt", Body=b"data")
    addon = rgw.client("addon")
    with pytest.raises(ClientError):
        addon.get_object(Bucket=existing_bucket, Key="data.txt")
    result = cycle(rgw, existing_bucket, {"preset": "read_only", "principals": [rgw.addon["uid"]]})
    principals = {p for s in result["policy"]["Statement"] for p in s["Principal"]["AWS"]}
    assert principals == {"arn:aws:iam:::user/%s" % rgw.addon["uid"]}
    assert addon.get_object(Bucket=existing_bucket, Key="data.txt")["Body"].read() == b"data"
    assert [o["Key"] for o in addon.list_objects_v2(Bucket=existing_bucket)["Contents"]] == ["data.txt"]
    with pytest.raises(ClientError) as denied:
        addon.put_object(Bucket=existing_bucket, Key="evil.txt", Body=b"x")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    remove(rgw, existing_bucket)
    with pytest.raises(ClientError):
        addon.get_object(Bucket=existing_bucket, Key="data.txt")


def test_documented_cellar_principal_form_is_refused_before_any_request(rgw, existing_bucket):
    args = dict(rgw.connection_args(), bucket=existing_bucket, preset="read_only", principals=["arn:aws:iam::cellar_addon0002"])
    result = run_module("cellar_bucket_policy", args)
    assert result["failed"] is True
    assert "arn:aws:iam:::user/cellar_addon0002" in result["msg"]
    assert server_snapshot(rgw, existing_bucket)["policy"] is None


def test_policy_compared_by_meaning(rgw, existing_bucket):
    resource = "arn:aws:s3:::%s/*" % existing_bucket
    written = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "b", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": resource},
            {
                "Sid": "a",
                "Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam:::user/cellar_addon0002"]},
                "Action": ["s3:ListBucket"],
                "Resource": ["arn:aws:s3:::" + existing_bucket],
            },
        ],
    }
    cycle(rgw, existing_bucket, {"policy": written})
    same = {
        "Statement": [
            {
                "Sid": "a",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam:::user/cellar_addon0002"},
                "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::" + existing_bucket,
            },
            {"Sid": "b", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["s3:GetObject"], "Resource": [resource]},
        ],
    }
    for form in (same, json.dumps(same)):
        result = run_module("cellar_bucket_policy", dict(rgw.connection_args(), bucket=existing_bucket, policy=form))
        assert result["changed"] is False, result


def test_json_string_policy_and_switch_preset(rgw, existing_bucket):
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::%s/public/*" % existing_bucket}],
    }
    cycle(rgw, existing_bucket, {"policy": json.dumps(doc)})
    result = cycle(rgw, existing_bucket, {"preset": "public_read"})
    assert result["previous_policy"]["Statement"][0]["Resource"] == ["arn:aws:s3:::%s/public/*" % existing_bucket]
    assert result["diff"]["before"]["policy"] == result["previous_policy"]


def test_missing_bucket_is_clear(rgw, bucket_name):
    result = run_module("cellar_bucket_policy", dict(rgw.connection_args(), bucket=bucket_name, preset="public_read"))
    assert result["failed"] is True
    assert "does not exist" in result["msg"]


def test_version_2008_condition_and_action_case(rgw, existing_bucket):
    """RGW takes Version 2008-10-17 and conditions; an action spelled in another case is no change."""
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:getobject",
        "Resource": "arn:aws:s3:::%s/*" % existing_bucket,
        "Condition": {"StringEquals": {"aws:UserAgent": "kd-agent"}},
    }
    applied = cycle(rgw, existing_bucket, {"policy": {"Version": "2008-10-17", "Statement": [statement]}})
    assert applied["policy"]["Version"] == "2008-10-17"
    assert json.loads(server_snapshot(rgw, existing_bucket)["policy"])["Version"] == "2008-10-17"
    other_case = {"Version": "2008-10-17", "Statement": [dict(statement, Action=["S3:GetObject"])]}
    assert run_module("cellar_bucket_policy", dict(rgw.connection_args(), bucket=existing_bucket, policy=other_case))["changed"] is False
    rgw.client().put_object(Bucket=existing_bucket, Key="a.txt", Body=b"a")
    url = "%s/%s/a.txt" % (rgw.endpoint, existing_bucket)
    assert http_request(url, headers={"User-Agent": "kd-agent"})[0] == 200
    assert http_request(url, headers={"User-Agent": "someone-else"})[0] == 403
    remove(rgw, existing_bucket)
