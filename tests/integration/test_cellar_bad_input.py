# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Invalid argument sets across the five modules: each fails with a clear message and writes nothing."""

import json

import pytest
from conftest import delete_bucket_quietly, run_module, server_snapshot

pytestmark = pytest.mark.rgw

EXISTING = "__existing__"  # replaced by the name of an existing bucket
NEW = "__new__"  # replaced by the name of a bucket that does not exist


def policy(resource="arn:aws:s3:::__existing__/*", **statement):
    base = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": resource}
    base.update(statement)
    return {"Version": "2012-10-17", "Statement": [base]}


GOOD_RULE = {"allowed_origins": ["https://a.example"], "allowed_methods": ["GET"]}

CASES = [
    # cellar_bucket: names
    ("cellar_bucket", {"name": "ab"}, "3 to 63"),
    ("cellar_bucket", {"name": "a" * 64}, "3 to 63"),
    ("cellar_bucket", {"name": "my_bucket"}, "'_'"),
    ("cellar_bucket", {"name": "MyBucket"}, "lowercase"),
    ("cellar_bucket", {"name": "-leading-dash"}, "start and end"),
    ("cellar_bucket", {"name": "trailing-dot."}, "start and end"),
    ("cellar_bucket", {"name": "double..dot"}, "'..'"),
    ("cellar_bucket", {"name": "10.0.0.1"}, "IP address"),
    ("cellar_bucket", {"name": "with space"}, "may only hold"),
    # cellar_bucket: other options
    ("cellar_bucket", {"name": NEW, "acl": "public"}, "value of acl must be one of"),
    ("cellar_bucket", {"name": NEW, "versioning": "on"}, "value of versioning must be one of"),
    ("cellar_bucket", {"name": NEW, "preset": "read_only"}, "needs principals"),
    ("cellar_bucket", {"name": NEW, "preset": "public_read", "policy": policy()}, "mutually exclusive"),
    ("cellar_bucket", {"name": NEW, "cors": [{"allowed_origins": ["*"], "allowed_methods": ["PATCH"]}]}, "PATCH"),
    ("cellar_bucket", {"name": NEW, "workers": 0}, "workers must be between 1 and 32"),
    ("cellar_bucket", {"name": EXISTING, "policy": policy(resource="arn:aws:s3:::other-bucket/*")}, "must be arn:aws:s3:::"),
    ("cellar_bucket", {"name": EXISTING, "state": "absent", "acl": "private"}, "state=absent deletes the bucket and takes no acl"),
    ("cellar_bucket", {"name": EXISTING, "state": "absent", "cors": [], "policy": {}}, "state=absent deletes the bucket and takes no policy, cors"),
    ("cellar_bucket", {"name": EXISTING, "state": "absent", "force": True, "versioning": "enabled"}, "takes no versioning"),
    # cellar_bucket_policy
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": "{not json"}, "not valid JSON"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": "[1, 2]"}, "JSON object"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": {"Version": "2012-10-17"}}, "Statement"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": policy(Effect="Permit")}, "Statement[0] Effect must be Allow or Deny (got 'Permit')"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": policy(Action="GetObject")}, "S3 action"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": policy(resource="*")}, "must be arn:aws:s3:::"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": dict(policy(), Version="2099-01-01")}, "Version must be 2012-10-17 or 2008-10-17 (got '2099"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": policy(Principal={"AWS": "arn:aws:iam::cellar_x"})}, "grants nothing"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": policy(Condition={"StringEquals": "x"})}, "Condition operator 'StringEquals' must map to"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": policy(Action=[])}, "Statement[0] Action must not be an empty list"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": policy(resource=[])}, "Statement[0] Resource must not be an empty list"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "policy": policy(Principal={"AWS": []})}, "Statement[0] Principal AWS must not be an empty list"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "preset": "read_only", "principals": ["not a user"]}, "not a valid user id"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "preset": "public_read", "principals": ["cellar_x"]}, "only used with preset=read_only"),
    ("cellar_bucket_policy", {"bucket": EXISTING}, "needs policy or preset"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "state": "absent", "preset": "public_read"}, "takes no policy"),
    ("cellar_bucket_policy", {"bucket": NEW, "preset": "public_read"}, "does not exist"),
    ("cellar_bucket_policy", {"bucket": "Bad_Bucket", "preset": "public_read"}, "'_'"),
    # cellar_cors
    ("cellar_cors", {"bucket": EXISTING}, "missing: rules"),
    ("cellar_cors", {"bucket": EXISTING, "rules": []}, "non-empty"),
    ("cellar_cors", {"bucket": EXISTING, "rules": [{"allowed_methods": ["GET"]}]}, "allowed_origins"),
    ("cellar_cors", {"bucket": EXISTING, "rules": [dict(GOOD_RULE, allowed_methods=["OPTIONS"])]}, "allowed_methods"),
    ("cellar_cors", {"bucket": EXISTING, "rules": [dict(GOOD_RULE, allowed_origins=["https://*.*.x"])]}, "at most one"),
    ("cellar_cors", {"bucket": EXISTING, "rules": [dict(GOOD_RULE, max_age_seconds=-5)]}, "non-negative"),
    ("cellar_cors", {"bucket": EXISTING, "rules": [dict(GOOD_RULE, id="same"), dict(GOOD_RULE, id="same")]}, "used twice"),
    ("cellar_cors", {"bucket": EXISTING, "rules": [dict(GOOD_RULE, allowed_headers=["has space"])]}, "header name"),
    ("cellar_cors", {"bucket": EXISTING, "rules": [dict(GOOD_RULE, color="red")]}, "Unsupported parameters for (basic.py) module: rules.color"),
    ("cellar_cors", {"bucket": EXISTING, "state": "absent", "rules": [GOOD_RULE]}, "takes no rules"),
    ("cellar_cors", {"bucket": NEW, "rules": [GOOD_RULE]}, "does not exist"),
    # cellar_lifecycle
    ("cellar_lifecycle", {"bucket": EXISTING}, "missing: rules"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": []}, "non-empty"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": [{"prefix": "tmp/", "expiration_days": 1}]}, "missing required arguments: id found in rules"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": [{"id": "tmp", "prefix": "tmp/"}]}, "rules[0] (tmp) has no action"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": [{"id": "tmp", "expiration_days": 0}]}, "expiration_days must be a whole number of days, at least 1"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": [{"id": "t", "expiration_days": 1, "expired_object_delete_marker": True}]}, "one or the other"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": [{"id": "a\tb", "expiration_days": 1}]}, "without control characters"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": [{"id": "t", "prefix": "a\nb", "expiration_days": 1}]}, "prefix must be"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": [{"id": "t", "expiration_days": 1}, {"id": "t", "expiration_days": 2}]}, "used twice"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": [{"id": "t", "status": "on", "expiration_days": 1}]}, "value of status must be one of"),
    ("cellar_lifecycle", {"bucket": EXISTING, "state": "absent", "rules": [{"id": "t", "expiration_days": 1}]}, "takes no rules"),
    ("cellar_lifecycle", {"bucket": NEW, "rules": [{"id": "t", "expiration_days": 1}]}, "does not exist"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": [{"id": "t", "expiration_days": 1}], "secret_key": "wrong"}, "credentials rejected"),
    ("cellar_bucket", {"name": NEW, "lifecycle": [{"id": "t"}]}, "lifecycle[0] (t) has no action"),
    ("cellar_bucket", {"name": EXISTING, "state": "absent", "lifecycle": []}, "takes no lifecycle"),
    # cellar_bucket_info
    ("cellar_bucket_info", {"name": "a", "prefix": "b"}, "mutually exclusive"),
    ("cellar_bucket_info", {"workers": 100}, "workers must be between 1 and 32"),
    # credentials and endpoints (every module)
    ("cellar_bucket", {"name": NEW, "secret_key": "wrong-secret-value"}, "credentials rejected by http://127.0.0.1"),
    ("cellar_bucket", {"name": NEW, "access_key": "NOSUCHKEY0000000000"}, "credentials rejected"),
    ("cellar_bucket_policy", {"bucket": EXISTING, "preset": "public_read", "secret_key": "wrong"}, "credentials rejected"),
    ("cellar_cors", {"bucket": EXISTING, "rules": [GOOD_RULE], "access_key": "NOSUCHKEY0000000000"}, "credentials rejected"),
    ("cellar_bucket_info", {"secret_key": "wrong"}, "credentials rejected"),
    ("cellar_bucket", {"name": NEW, "access_key": None, "secret_key": None}, "no credentials for http://127.0.0.1"),
    ("cellar_bucket_info", {"access_key": None, "secret_key": None}, "CELLAR_ADDON_KEY_SECRET (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"),
    ("cellar_bucket", {"name": NEW, "endpoint": "ftp://127.0.0.1:7480"}, "scheme must be http or https"),
    ("cellar_bucket", {"name": NEW, "endpoint": "http://127.0.0.1:notaport"}, "the port is not a number between 0 and 65535"),
    ("cellar_bucket", {"name": NEW, "endpoint": "http://127.0.0.1:7480/some/path"}, "without path"),
    ("cellar_bucket", {"name": NEW, "endpoint": ""}, "must not be empty"),
    ("cellar_bucket", {"name": NEW, "endpoint": "http://127.0.0.1:9"}, "cannot reach"),
    ("cellar_bucket_info", {"endpoint": "http://"}, "no host"),
    ("cellar_bucket_info", {"timeout": 0}, "timeout must be between 1 and 3600 seconds"),
    ("cellar_lifecycle", {"bucket": EXISTING, "rules": [{"id": "t", "expiration_days": 1}], "timeout": 3601}, "timeout must be between 1 and 3600"),
]


def _fill(value, existing, new):
    if value == EXISTING:
        return existing
    if value == NEW:
        return new
    if isinstance(value, str):
        return value.replace(EXISTING, existing)
    if isinstance(value, dict):
        return {k: _fill(v, existing, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, existing, new) for v in value]
    return value


@pytest.fixture(scope="module")
def reference_bucket(rgw):
    """One existing bucket with known state that no bad call may change."""
    name = "kd-bad-input-ref"
    client = rgw.client()
    delete_bucket_quietly(rgw, name)
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="keep.txt", Body=b"keep")
    client.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["https://ref"], "AllowedMethods": ["GET"]}]})
    yield name
    delete_bucket_quietly(rgw, name)


@pytest.mark.parametrize("case", CASES, ids=["%02d-%s" % (i, c[0]) for i, c in enumerate(CASES)])
def test_bad_input_fails_clearly_and_writes_nothing(rgw, reference_bucket, bucket_name, case):
    module, args, message = case
    args = _fill(args, reference_bucket, bucket_name)
    full = dict(rgw.connection_args(), **args)
    full = {k: v for k, v in full.items() if v is not None}
    before = server_snapshot(rgw, reference_bucket)
    result = run_module(module, full)
    assert result.get("failed") is True, result
    assert message in result["msg"], result["msg"]
    assert result.get("changed") is not True, result
    # Neither the owner's real secret nor a wrong one the case passed in may show anywhere in the result. Ansible
    # masks no_log values it knows as "********", so a message holding the secret given would show that mask.
    shown = json.dumps(result)
    assert rgw.owner["secret_key"] not in shown
    assert "********" not in result["msg"]
    if args.get("secret_key"):
        assert args["secret_key"] not in shown
    assert server_snapshot(rgw, reference_bucket) == before
    assert bucket_name not in server_snapshot(rgw)["buckets"]
