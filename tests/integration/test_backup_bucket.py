# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup role's bucket check against a real Ceph RGW: cellar_bucket_info's lifecycle and versioning, judged by backup_bucket_problems.

RGW (Pacific) does not hand back every lifecycle rule in the shape it was given, and these tests pin what it returns:
an empty filter (``Filter: {}`` or ``Filter: {Prefix: ""}``) comes back as the old top-level ``Prefix: ""``;
``And`` with a prefix and one tag comes back as ``Filter: {Prefix, Tag}`` (no ``And``); with two tags as
``Filter: {Prefix, And: {Tags}}`` (the prefix outside ``And``, tags sorted by key); a size filter is silently dropped,
leaving a rule on the whole bucket.
"""

import pytest
from conftest import run_module

from ansible_collections.keepdata.storage.plugins.plugin_utils.backup_plan import backup_bucket_problems

pytestmark = pytest.mark.rgw

EXPIRE = {"Days": 1}
RESTIC_RULE = {"ID": "expire-restic", "Status": "Enabled", "Filter": {"Prefix": "restic/"}, "Expiration": EXPIRE}
NO_PROBLEM = {"errors": [], "warnings": []}


def bucket_info(rgw, bucket):
    """The bucket's entry from cellar_bucket_info with lifecycle and versioning, as the backup role reads it."""
    result = run_module("cellar_bucket_info", dict(rgw.connection_args(), name=bucket, lifecycle=True, versioning=True), check_mode=True)
    assert not result.get("failed"), result
    assert result["changed"] is False
    (entry,) = result["buckets"]
    assert entry["name"] == bucket
    return entry


def put_rules(rgw, bucket, *rules):
    rgw.client().put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)})


def test_an_expiring_rule_over_the_repository_is_refused(rgw, existing_bucket):
    put_rules(rgw, existing_bucket, RESTIC_RULE)
    entry = bucket_info(rgw, existing_bucket)
    # As S3 returns it: ID, Status, Filter/Prefix, Expiration, nothing added or renamed.
    assert entry["lifecycle"] == [RESTIC_RULE]
    assert entry["versioning"] == "disabled"

    result = backup_bucket_problems(entry, {"name": existing_bucket, "prefix": "restic/web1"})
    assert result["warnings"] == []
    (error,) = result["errors"]
    assert existing_bucket in error
    assert '"expire-restic"' in error
    assert '"restic/web1"' in error

    assert backup_bucket_problems(entry, {"name": existing_bucket, "prefix": "other/web1"}) == NO_PROBLEM


def by_id(rules):
    return {rule["ID"]: rule for rule in rules}


def test_whole_bucket_and_legacy_rules_are_refused(rgw, existing_bucket):
    put_rules(
        rgw,
        existing_bucket,
        {"ID": "whole-bucket", "Status": "Enabled", "Filter": {}, "Expiration": EXPIRE},
        {"ID": "legacy", "Status": "Enabled", "Prefix": "restic/", "Expiration": EXPIRE},
        # RGW drops the size filter: the rule then expires every object of the bucket.
        {"ID": "big", "Status": "Enabled", "Filter": {"ObjectSizeGreaterThan": 10}, "Expiration": EXPIRE},
    )
    entry = bucket_info(rgw, existing_bucket)
    assert by_id(entry["lifecycle"]) == {
        "whole-bucket": {"ID": "whole-bucket", "Status": "Enabled", "Prefix": "", "Expiration": EXPIRE},
        "legacy": {"ID": "legacy", "Status": "Enabled", "Prefix": "restic/", "Expiration": EXPIRE},
        "big": {"ID": "big", "Status": "Enabled", "Prefix": "", "Expiration": EXPIRE},
    }
    errors = backup_bucket_problems(entry, {"name": existing_bucket, "prefix": "restic/web1"})["errors"]
    assert sorted(error.split('"')[3] for error in errors) == ["big", "legacy", "whole-bucket"]


def test_a_bucket_without_lifecycle_or_versioning(rgw, existing_bucket):
    entry = bucket_info(rgw, existing_bucket)
    assert entry["lifecycle"] == []
    assert entry["versioning"] == "disabled"
    assert backup_bucket_problems(entry, {"name": existing_bucket, "prefix": "restic/web1"}) == NO_PROBLEM
    plain = run_module("cellar_bucket_info", dict(rgw.connection_args(), name=existing_bucket))
    assert "lifecycle" not in plain["buckets"][0]


def test_versioning_warns_about_prune(rgw, existing_bucket):
    rgw.client().put_bucket_versioning(Bucket=existing_bucket, VersioningConfiguration={"Status": "Enabled"})
    entry = bucket_info(rgw, existing_bucket)
    assert entry["versioning"] == "enabled"
    assert entry["lifecycle"] == []
    result = backup_bucket_problems(entry, {"name": existing_bucket, "prefix": "restic/web1"})
    assert result["errors"] == []
    (warning,) = result["warnings"]
    assert existing_bucket in warning
    assert "versioning" in warning
    assert "prune" in warning


def test_a_rule_that_only_aborts_multipart_uploads_is_no_problem(rgw, existing_bucket):
    put_rules(
        rgw,
        existing_bucket,
        {"ID": "abort-uploads", "Status": "Enabled", "Filter": {"Prefix": ""}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
    )
    entry = bucket_info(rgw, existing_bucket)
    assert entry["lifecycle"] == [{"ID": "abort-uploads", "Status": "Enabled", "Prefix": "", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}]
    assert backup_bucket_problems(entry, {"name": existing_bucket, "prefix": "restic/web1"}) == NO_PROBLEM


TAG = {"Key": "tier", "Value": "scratch"}
TAG2 = {"Key": "owner", "Value": "ci"}


def test_rules_that_leave_current_untagged_objects_alone_are_no_problem(rgw, existing_bucket):
    """Disabled rules; rules that need a tag (restic never tags its objects), whatever shape RGW gives their filter;
    rules on old versions and delete markers only (what frees space on a versioned bucket)."""
    client = rgw.client()
    client.put_bucket_versioning(Bucket=existing_bucket, VersioningConfiguration={"Status": "Enabled"})
    expire = {"Status": "Enabled", "Expiration": EXPIRE}
    put_rules(
        rgw,
        existing_bucket,
        dict(RESTIC_RULE, ID="disabled", Status="Disabled"),
        dict(expire, ID="tag", Filter={"Tag": TAG}),
        dict(expire, ID="prefix-one-tag", Filter={"And": {"Prefix": "restic/", "Tags": [TAG]}}),
        dict(expire, ID="prefix-two-tags", Filter={"And": {"Prefix": "restic/", "Tags": [TAG, TAG2]}}),
        dict(expire, ID="two-tags", Filter={"And": {"Tags": [TAG, TAG2]}}),
        {"ID": "noncurrent", "Status": "Enabled", "Filter": {"Prefix": "restic/"}, "NoncurrentVersionExpiration": {"NoncurrentDays": 3}},
        {"ID": "delete-markers", "Status": "Enabled", "Filter": {"Prefix": "restic/"}, "Expiration": {"ExpiredObjectDeleteMarker": True}},
    )
    entry = bucket_info(rgw, existing_bucket)
    returned = by_id(entry["lifecycle"])
    assert len(returned) == 7
    assert returned["disabled"] == dict(RESTIC_RULE, ID="disabled", Status="Disabled")
    # RGW drops And around a prefix and one tag, moves the prefix out of And with two tags, and sorts tags by key.
    assert returned["tag"]["Filter"] == {"Tag": TAG}
    assert returned["prefix-one-tag"]["Filter"] == {"Prefix": "restic/", "Tag": TAG}
    assert returned["prefix-two-tags"]["Filter"] == {"Prefix": "restic/", "And": {"Tags": [TAG2, TAG]}}
    assert returned["two-tags"]["Filter"] == {"And": {"Tags": [TAG2, TAG]}}
    assert returned["noncurrent"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 3}
    assert "Expiration" not in returned["noncurrent"]
    assert returned["delete-markers"]["Expiration"] == {"ExpiredObjectDeleteMarker": True}

    result = backup_bucket_problems(entry, {"name": existing_bucket, "prefix": "restic/web1"})
    assert result["errors"] == []
    assert len(result["warnings"]) == 1  # versioning, not a rule
