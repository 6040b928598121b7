# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Policy presets, validation and comparison by meaning."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.cellar.policy import (
    PolicyError,
    desired_policy,
    normalize_policy,
    preset_policy,
    principal_arn,
    same_policy,
    validate_policy,
)

B = "bkt"


def _doc(**statement):
    base = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bkt/*"}
    base.update(statement)
    return {"Version": "2012-10-17", "Statement": [base]}


def policies_equal(wanted, stored):
    """How the modules compare: the policy wanted (validated, normalised) with the one read back (normalised)."""
    return same_policy(desired_policy(B, wanted), normalize_policy(stored))


def test_principal_forms():
    assert principal_arn("cellar_abc123") == "arn:aws:iam:::user/cellar_abc123"
    assert principal_arn("arn:aws:iam:::user/cellar_abc123") == "arn:aws:iam:::user/cellar_abc123"
    with pytest.raises(PolicyError, match="grants nothing"):
        principal_arn("arn:aws:iam::cellar_abc123")
    with pytest.raises(PolicyError):
        principal_arn("bad user")


def test_presets():
    public = preset_policy("public_read", B)
    assert public["Statement"][0]["Resource"] == ["arn:aws:s3:::bkt/*"]
    assert public["Statement"][0]["Action"] == ["s3:GetObject"]
    read_only = preset_policy("read_only", B, ["cellar_x", "cellar_x"])
    actions = sorted(a for s in read_only["Statement"] for a in s["Action"])
    assert actions == ["s3:GetObject", "s3:ListBucket"]
    assert all(s["Principal"] == {"AWS": ["arn:aws:iam:::user/cellar_x"]} for s in read_only["Statement"])
    validate_policy(public, B)
    validate_policy(read_only, B)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (_doc(), _doc(Principal={"AWS": "*"})),
        (_doc(), _doc(Principal={"AWS": ["*"]}, Action=["s3:GetObject"], Resource=["arn:aws:s3:::bkt/*"])),
        (_doc(Action=["s3:GetObject", "s3:ListBucket"]), _doc(Action=["s3:ListBucket", "s3:GetObject"])),
        ({"Statement": _doc()["Statement"]}, _doc()),
        (
            {"Version": "2012-10-17", "Statement": [_doc(Sid="a")["Statement"][0], _doc(Sid="b")["Statement"][0]]},
            {"Version": "2012-10-17", "Statement": [_doc(Sid="b")["Statement"][0], _doc(Sid="a")["Statement"][0]]},
        ),
        ({"Version": "2012-10-17", "Statement": _doc()["Statement"][0]}, _doc()),
    ],
)
def test_equal_by_meaning(left, right):
    assert policies_equal(left, right)


@pytest.mark.parametrize(
    "other",
    [_doc(Effect="Deny"), _doc(Action="s3:PutObject"), _doc(Resource="arn:aws:s3:::bkt/x/*"), _doc(Principal={"AWS": "arn:aws:iam:::user/u"})],
)
def test_different(other):
    assert not policies_equal(_doc(), other)


def test_desired_policy_from_json_string():
    assert desired_policy(B, json.dumps(_doc())) == normalize_policy(_doc())
    assert desired_policy(B, "") is None
    assert desired_policy(B, {}) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "{not json"}, "not valid JSON"),
        ({"policy": "[]"}, "JSON object"),
        ({"policy": 5}, "dict or a JSON string"),
        ({"policy": {"Statement": []}}, "Statement"),
        ({"policy": _doc(Effect="Maybe")}, "Effect"),
        ({"policy": _doc(Action="GetObject")}, "S3 action"),
        ({"policy": _doc(Resource="arn:aws:s3:::other/*")}, "must be arn:aws:s3:::bkt"),
        ({"policy": _doc(Resource="arn:aws:s3:::bkt2/*")}, "must be arn:aws:s3:::bkt"),
        ({"policy": dict(_doc(), Version="2020-01-01")}, "Version must be 2012-10-17 or 2008-10-17"),
        ({"policy": dict(_doc(), Extra=1)}, "unknown top-level"),
        ({"policy": _doc(Principal=None)}, "Principal"),
        ({"policy": _doc(Principal={"AWS": "arn:aws:iam::cellar_x"})}, "grants nothing"),
        ({"policy": _doc(Bogus=1)}, "unknown keys"),
        ({"preset": "read_only"}, "needs principals"),
        ({"preset": "public_read", "principals": ["cellar_x"]}, "only used with preset=read_only"),
        ({"principals": ["cellar_x"]}, "only used with preset=read_only"),
        ({"preset": "nope"}, "unknown preset"),
        ({"preset": "public_read", "policy": _doc()}, "mutually exclusive"),
    ],
)
def test_invalid(kwargs, message):
    with pytest.raises(PolicyError, match=message):
        desired_policy(B, **kwargs)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (_doc(Condition={"StringEquals": "x"}), "Condition operator 'StringEquals' must map to a non-empty object"),
        (_doc(Condition={"StringEquals": {}}), "Condition operator 'StringEquals' must map to a non-empty object"),
        (_doc(Condition="aws:SecureTransport"), "Condition must be a non-empty object"),
        (_doc(Condition={"StringEquals": {"aws:UserAgent": []}}), "Condition StringEquals aws:UserAgent must not be an empty list"),
        (_doc(Condition={"StringEquals": {"aws:UserAgent": [{"a": 1}]}}), "values must be strings, numbers or booleans"),
        (_doc(Action=[]), "Statement[0] Action must not be an empty list"),
        (_doc(Action=None, NotAction=[]), "Statement[0] Action must not be an empty list"),
        (_doc(Resource=[]), "Statement[0] Resource must not be an empty list"),
        (_doc(Principal={"AWS": []}), "Statement[0] Principal AWS must not be an empty list"),
        (_doc(Principal={}), 'Principal must be "*" or an object'),
        (dict(_doc(), Version="2020-01-01"), "policy Version must be 2012-10-17 or 2008-10-17 (got '2020-01-01')"),
    ],
)
def test_invalid_shapes_are_refused_before_normalisation(policy, message):
    policy["Statement"][0] = {k: v for k, v in policy["Statement"][0].items() if v is not None}
    with pytest.raises(PolicyError) as raised:
        desired_policy(B, policy)
    assert message in str(raised.value)


def test_condition_is_normalised():
    condition = {"StringEquals": {"aws:UserAgent": ["b", "a", "a"]}, "Bool": {"aws:SecureTransport": True}}
    result = desired_policy(B, _doc(Condition=condition))
    assert result["Statement"][0]["Condition"] == {"StringEquals": {"aws:UserAgent": ["a", "b"]}, "Bool": {"aws:SecureTransport": [True]}}


def test_version_2008_is_accepted_and_kept():
    assert desired_policy(B, dict(_doc(), Version="2008-10-17"))["Version"] == "2008-10-17"


def test_bare_user_id_in_custom_principal_is_written_as_the_arn_that_grants_access():
    result = desired_policy(B, _doc(Principal={"AWS": "cellar_x"}))
    assert result["Statement"][0]["Principal"] == {"AWS": ["arn:aws:iam:::user/cellar_x"]}
    same = desired_policy(B, _doc(Principal={"AWS": ["arn:aws:iam:::user/cellar_x", "cellar_x"]}))
    assert same == result
    mixed = desired_policy(B, _doc(Principal={"AWS": ["*", "cellar_y"]}))
    assert mixed["Statement"][0]["Principal"] == {"AWS": ["*", "arn:aws:iam:::user/cellar_y"]}


def test_action_names_compared_ignoring_case():
    assert policies_equal(_doc(Action="s3:getobject"), _doc(Action="s3:GetObject"))
    assert policies_equal(_doc(Action=["S3:GetObject", "s3:listbucket"]), _doc(Action=["s3:ListBucket", "s3:GetObject"]))
    assert not policies_equal(_doc(Action="s3:getobject"), _doc(Action="s3:PutObject"))
    lower = desired_policy(B, _doc(Action=["s3:getobject", "s3:GetObject"]))
    assert lower["Statement"][0]["Action"] == ["s3:getobject"]  # one entry, the first spelling kept
    assert same_policy(lower, desired_policy(B, _doc()))
    assert not same_policy(lower, None)
    assert same_policy(None, None)
