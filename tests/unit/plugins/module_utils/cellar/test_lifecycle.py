# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lifecycle rule validation, normalisation, S3 conversion and comparison by meaning."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.cellar.lifecycle import (
    LifecycleError,
    normalize_rules,
    prefix_overlaps,
    rules_from_s3,
    rules_to_s3,
    s3_rule_prefix,
    s3_rule_removes_current_objects,
    validate_rules,
)

TMP = {"id": "tmp", "prefix": "tmp/", "expiration_days": 1}
OLD = {"id": "old-versions", "noncurrent_version_expiration_days": 30, "expired_object_delete_marker": True}
UPLOADS = {"id": "uploads", "abort_incomplete_multipart_upload_days": 2, "status": "disabled"}


def test_normalize_fills_defaults_drops_unset_and_sorts_by_id():
    given = [dict(TMP, status=None, noncurrent_version_expiration_days=None, expired_object_delete_marker=False), OLD]
    assert normalize_rules(given) == [
        {"id": "old-versions", "status": "enabled", "prefix": "", "noncurrent_version_expiration_days": 30, "expired_object_delete_marker": True},
        {"id": "tmp", "status": "enabled", "prefix": "tmp/", "expiration_days": 1},
    ]


def test_s3_form_sent():
    assert rules_to_s3([UPLOADS, TMP, OLD]) == [
        {
            "ID": "old-versions",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        },
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}},
        {"ID": "uploads", "Status": "Disabled", "Filter": {"Prefix": ""}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
    ]


def test_round_trip_and_rule_order_does_not_matter():
    assert rules_from_s3(rules_to_s3([TMP, OLD, UPLOADS])) == normalize_rules([UPLOADS, OLD, TMP])


def test_the_shapes_rgw_answers_with_read_the_same():
    """RGW gives an empty filter back as the old top-level Prefix, and sorts rules by id (tests/integration pins it)."""
    wanted = normalize_rules([{"id": "all", "abort_incomplete_multipart_upload_days": 3}, TMP])
    answered = [
        {"Expiration": {"Days": 1}, "ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled"},
        {"ID": "all", "Prefix": "", "Status": "Enabled", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}},
    ]
    assert rules_from_s3(answered) == wanted
    assert rules_from_s3([{"ID": "tmp", "Status": "Enabled", "Filter": {"And": {"Prefix": "tmp/"}}, "Expiration": {"Days": 1}}]) == normalize_rules([TMP])
    assert rules_from_s3([{"ID": "tmp", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}]) == normalize_rules([dict(TMP, prefix="")])


@pytest.mark.parametrize(
    "changed",
    [
        dict(TMP, prefix="tmp"),
        dict(TMP, expiration_days=2),
        dict(TMP, status="disabled"),
        dict(TMP, id="tmp2"),
        dict(TMP, abort_incomplete_multipart_upload_days=1),
    ],
)
def test_any_difference_in_meaning_is_a_change(changed):
    assert rules_from_s3(rules_to_s3([TMP])) != normalize_rules([changed])


def test_what_the_module_does_not_manage_is_kept_under_unsupported_and_never_equals_a_wanted_rule():
    date = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)
    answered = [
        {"ID": "tagged", "Status": "Enabled", "Filter": {"Prefix": "tmp/", "Tag": {"Key": "k", "Value": "v"}}, "Expiration": {"Days": 1}},
        {"ID": "dated", "Status": "Enabled", "Prefix": "", "Expiration": {"Date": date}},
        {"ID": "cold", "Status": "Enabled", "Filter": {"Prefix": "a/"}, "Transitions": [{"Days": 3, "StorageClass": "COLD"}]},
    ]
    rules = {rule["id"]: rule for rule in rules_from_s3(answered)}
    assert rules["tagged"] == {
        "id": "tagged",
        "status": "enabled",
        "prefix": "",
        "expiration_days": 1,
        "unsupported": {"Filter": {"Prefix": "tmp/", "Tag": {"Key": "k", "Value": "v"}}},
    }
    assert rules["dated"]["unsupported"] == {"Expiration": {"Date": "2027-01-01T00:00:00+00:00"}}
    assert "expiration_days" not in rules["dated"]
    assert rules["cold"]["unsupported"] == {"Transitions": [{"Days": 3, "StorageClass": "COLD"}]}
    assert rules["cold"]["prefix"] == "a/"
    without = [dict((k, v) for k, v in rule.items() if k != "unsupported") for rule in rules.values()]
    assert rules_from_s3(answered) != normalize_rules(without)


@pytest.mark.parametrize(
    "rules, message",
    [
        ([], "non-empty list"),
        ([dict(TMP, id="")], r"rules\[0\] id must be 1 to 255"),
        ([dict(TMP, id="a\nb")], "without control characters"),
        ([dict(TMP, id="x" * 256)], "1 to 255"),
        ([TMP, dict(OLD, id="tmp")], r"rules\[1\] id 'tmp' is used twice"),
        ([dict(TMP, prefix="tmp/\x00")], r"rules\[0\] \(tmp\) prefix must be at most 1024 characters without control"),
        ([dict(TMP, prefix="p" * 1025)], "at most 1024"),
        ([dict(TMP, expiration_days=0)], r"\(tmp\) expiration_days must be a whole number of days, at least 1"),
        ([dict(TMP, expiration_days=True)], "whole number"),
        ([dict(OLD, noncurrent_version_expiration_days=-3)], "noncurrent_version_expiration_days must be"),
        ([dict(TMP, expired_object_delete_marker=True)], "both expiration_days and expired_object_delete_marker"),
        ([{"id": "nothing", "prefix": "a/"}], r"\(nothing\) has no action: set one of expiration_days"),
        ([{"id": "nothing", "expired_object_delete_marker": False}], "has no action"),
        ([dict(TMP, status="on")], "status must be one of enabled, disabled"),
        ([dict(TMP, tags={"a": "b"})], "unknown keys: tags"),
        ([TMP] * 1001, "at most 1000"),
    ],
)
def test_bad_rules_are_refused_with_the_rule_named(rules, message):
    with pytest.raises(LifecycleError, match=message):
        validate_rules(rules)


def test_good_rules_pass():
    validate_rules([TMP, OLD, UPLOADS])


# ---- what a rule does to a prefix (the backup role's check reads these) ----------------------------------------


@pytest.mark.parametrize(
    "rule, prefix",
    [
        ({"Prefix": "restic/"}, "restic/"),
        ({"Filter": {"Prefix": "a/"}}, "a/"),
        ({"Filter": {}}, ""),
        ({"Filter": {"And": {"Prefix": "a/", "ObjectSizeGreaterThan": 5}}}, "a/"),
        ({"Filter": {"Prefix": "a/", "And": {"Tags": [{"Key": "k", "Value": "v"}]}}}, None),
        ({"Filter": {"Tag": {"Key": "k", "Value": "v"}}}, None),
    ],
)
def test_s3_rule_prefix(rule, prefix):
    assert s3_rule_prefix(rule) == prefix


def test_removes_current_objects_only_when_enabled_and_expiring_or_moving_them():
    assert s3_rule_removes_current_objects({"Status": "Enabled", "Expiration": {"Days": 3}})
    assert s3_rule_removes_current_objects({"Status": "Enabled", "Transitions": [{"Days": 3}]})
    assert not s3_rule_removes_current_objects({"Status": "Disabled", "Expiration": {"Days": 3}})
    assert not s3_rule_removes_current_objects({"Status": "Enabled", "Expiration": {"ExpiredObjectDeleteMarker": True}})
    assert not s3_rule_removes_current_objects({"Status": "Enabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 1}})
    assert not s3_rule_removes_current_objects({"Status": "Enabled", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}})


@pytest.mark.parametrize(
    "rule_prefix, prefix, overlaps",
    [
        ("", "restic/web1", True),
        ("restic/", "restic/web1", True),
        ("restic/web1/data", "restic/web1", True),
        ("restic/web10", "restic/web1", False),
        ("other/", "restic", False),
        ("x", "", True),
    ],
)
def test_prefix_overlaps(rule_prefix, prefix, overlaps):
    assert prefix_overlaps(rule_prefix, prefix) is overlaps
