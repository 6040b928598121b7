# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic of the modules, and the shared converge steps against moto (no server needed)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

import boto3
import pytest
from moto import mock_aws

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import bucket as bucket_logic
from ansible_collections.keepdata.storage.plugins.module_utils.cellar import ops
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import MAX_WORKERS
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.policy import normalize_policy, preset_policy
from ansible_collections.keepdata.storage.plugins.modules import cellar_bucket, cellar_bucket_info, cellar_bucket_policy, cellar_cors
from ansible_collections.keepdata.storage.tests.unit.plugins.compat import patch_module_args


def _params(**kwargs):
    params = {key: None for key in cellar_bucket.ARGUMENT_SPEC}
    params.update(state="present", force=False, workers=4, name="bkt", buckets=None)
    params.update(kwargs)
    return params


def test_desired_state_only_managed_keys():
    assert bucket_logic.desired_state(_params()) == {}
    desired = bucket_logic.desired_state(_params(acl="private", versioning="enabled", preset="public_read", cors=[]))
    assert set(desired) == {"acl", "versioning", "policy", "cors"}
    assert desired["cors"] == []
    assert bucket_logic.desired_state(_params(policy={}))["policy"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad_Name"}, "'_'"),
        ({"workers": 0}, "workers"),
        ({"preset": "read_only"}, "needs principals"),
        ({"name": None, "buckets": [{"name": "ok-one"}, {"name": "ok-one"}]}, "more than once"),
        ({"name": None, "acl": "private", "buckets": [{"name": "ok-one"}]}, "inside each entry"),
        ({"name": None, "buckets": [{"name": "ok-one"}, {"name": "x"}]}, "buckets[1] (x)"),
    ],
)
def test_bucket_requests_rejects(kwargs, message):
    params = _params(**kwargs)
    if params["buckets"]:
        params["buckets"] = [dict(_params(name=None), **entry) for entry in params["buckets"]]
    with pytest.raises(ValueError, match=re.escape(message)):
        bucket_logic.bucket_requests(params)


@pytest.mark.parametrize(("module", "args"), [(cellar_bucket, {"name": "bkt"}), (cellar_bucket_info, {})])
def test_modules_share_one_workers_limit(module, args, capsys):
    """Both modules refuse more than MAX_WORKERS with the same message, before any request."""
    args = {**args, "endpoint": "https://s3.example.com", "access_key": "AKIDEXAMPLE", "secret_key": "secret", "workers": MAX_WORKERS + 1}
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True
    assert result["msg"] == "workers must be between 1 and %d" % MAX_WORKERS
    assert "between 1 and %d" % MAX_WORKERS in cellar_bucket.DOCUMENTATION


def test_bucket_requests_list():
    params = _params(name=None, buckets=[dict(_params(), name="one-b"), dict(_params(), name="two-b", versioning="enabled")])
    requests = bucket_logic.bucket_requests(params)
    assert [(entry["name"], desired) for entry, desired in requests] == [("one-b", {}), ("two-b", {"versioning": "enabled"})]


def test_canned_acl_from_grants():
    owner = {"Type": "CanonicalUser", "ID": "me"}
    full = {"Grantee": owner, "Permission": "FULL_CONTROL"}
    public = {"Grantee": {"Type": "Group", "URI": ops.ALL_USERS}, "Permission": "READ"}
    assert ops.canned_acl_from_grants({"Owner": {"ID": "me"}, "Grants": [full]}) == "private"
    assert ops.canned_acl_from_grants({"Owner": {"ID": "me"}, "Grants": [full, public]}) == "public-read"
    assert ops.canned_acl_from_grants({"Owner": {"ID": "me"}, "Grants": [public]}) == "custom"


def test_versioning_satisfied():
    assert ops.versioning_satisfied("disabled", "suspended")
    assert not ops.versioning_satisfied("disabled", "enabled")
    assert not ops.versioning_satisfied("enabled", "suspended")


def test_policy_and_cors_module_inputs():
    no_policy = {"policy": None, "preset": None, "principals": None, "repository_prefix": None}
    assert cellar_bucket_policy.desired_from_params(dict(no_policy, bucket="bkt", state="absent")) is None
    with pytest.raises(ValueError, match="needs policy or preset"):
        cellar_bucket_policy.desired_from_params(dict(no_policy, bucket="bkt", state="present"))
    assert cellar_cors.CORS_RULES.desired_from_params({"bucket": "bkt", "state": "absent", "rules": None}) == []
    with pytest.raises(ValueError, match="takes no rules"):
        cellar_cors.CORS_RULES.desired_from_params({"bucket": "bkt", "state": "absent", "rules": [{"allowed_origins": ["*"], "allowed_methods": ["GET"]}]})


def test_select_buckets():
    listed = [{"Name": "b-two"}, {"Name": "a-one"}, {"Name": "b-one"}]
    assert [b["name"] for b in cellar_bucket_info.select_buckets(listed)] == ["a-one", "b-one", "b-two"]
    assert [b["name"] for b in cellar_bucket_info.select_buckets(listed, prefix="b-")] == ["b-one", "b-two"]
    assert [b["name"] for b in cellar_bucket_info.select_buckets(listed, name="a-one")] == ["a-one"]


@pytest.fixture
def s3(monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def test_converge_steps_idempotent(s3):
    s3.create_bucket(Bucket="bkt")
    policy = preset_policy("public_read", "bkt")
    wanted = normalize_policy(policy)
    assert ops.converge_policy(s3, "bkt", wanted, check_mode=True) == (True, None)
    assert ops.get_policy(s3, "bkt") is None
    assert ops.converge_policy(s3, "bkt", wanted, check_mode=False) == (True, None)
    assert ops.converge_policy(s3, "bkt", wanted, check_mode=False) == (False, wanted)
    rules = [{"allowed_origins": ["*"], "allowed_methods": ["GET"]}]
    assert ops.converge_cors(s3, "bkt", rules, check_mode=False) == (True, [])
    assert ops.converge_cors(s3, "bkt", rules, check_mode=False) == (False, rules)
    assert ops.converge_cors(s3, "bkt", [], check_mode=False) == (True, rules)
    assert ops.get_cors(s3, "bkt") == []


def test_read_current_missing_bucket(s3):
    assert bucket_logic.read_current(s3, "nope", {"acl": "private"}) is None
    assert bucket_logic.read_current(s3, "nope", {}) is None


def test_force_delete_removes_every_version(s3):
    s3.create_bucket(Bucket="bkt")
    s3.put_bucket_versioning(Bucket="bkt", VersioningConfiguration={"Status": "Enabled"})
    for i in range(30):
        s3.put_object(Bucket="bkt", Key="k%02d" % i, Body=b"1")
        s3.put_object(Bucket="bkt", Key="k%02d" % i, Body=b"2")
    s3.delete_object(Bucket="bkt", Key="k00")
    # One worker: moto's in-memory backend is not thread-safe (the parallel path runs against RGW in integration).
    assert ops.delete_bucket_forced_batch(s3, "bkt", workers=1, batch=7) == 61
    assert not ops.bucket_exists(s3, "bkt")


def test_the_logic_reads_every_option_of_one_bucket_that_the_module_takes():
    assert bucket_logic.BUCKET_OPTIONS == tuple(cellar_bucket.BUCKET_SPEC)
