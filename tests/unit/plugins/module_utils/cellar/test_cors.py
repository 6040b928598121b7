# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CORS rule validation, normalisation and S3 conversion."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.cellar.cors import (
    CorsError,
    normalize_rules,
    rules_from_s3,
    rules_to_s3,
    validate_rules,
)

RULE = {"allowed_origins": ["https://b.example", "https://a.example"], "allowed_methods": ["PUT", "GET"], "max_age_seconds": 60}


def test_normalize_drops_unset_and_sorts():
    rule = dict(RULE, allowed_headers=None, expose_headers=[], id=None)
    expected = {"allowed_origins": ["https://a.example", "https://b.example"], "allowed_methods": ["GET", "PUT"], "max_age_seconds": 60}
    assert normalize_rules([rule]) == [expected]


def test_round_trip_s3():
    s3 = rules_to_s3([dict(RULE, id="r1")])
    assert s3 == [{"ID": "r1", "AllowedOrigins": ["https://a.example", "https://b.example"], "AllowedMethods": ["GET", "PUT"], "MaxAgeSeconds": 60}]
    assert rules_from_s3(s3) == normalize_rules([dict(RULE, id="r1")])


def _stored_as(rules):
    """What the modules compare with the rules wanted: the rules as read back from S3."""
    return rules_from_s3(rules_to_s3(rules))


def test_rule_order_matters_inner_order_does_not():
    other = {"allowed_origins": ["*"], "allowed_methods": ["GET"]}
    assert _stored_as([RULE, other]) == normalize_rules([dict(RULE, allowed_methods=["GET", "PUT"]), other])
    assert _stored_as([RULE, other]) != normalize_rules([other, RULE])


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([], "non-empty"),
        ([{"allowed_methods": ["GET"]}], "allowed_origins"),
        ([{"allowed_origins": ["*"], "allowed_methods": []}], "allowed_methods"),
        ([{"allowed_origins": ["*"], "allowed_methods": ["PATCH"]}], "PATCH"),
        ([{"allowed_origins": ["https://*.*.example"], "allowed_methods": ["GET"]}], "at most one"),
        ([{"allowed_origins": ["*"], "allowed_methods": ["GET"], "max_age_seconds": -1}], "non-negative"),
        ([{"allowed_origins": ["*"], "allowed_methods": ["GET"], "allowed_headers": ["bad header"]}], "header name"),
        ([{"allowed_origins": ["*"], "allowed_methods": ["GET"], "id": "x" * 256}], "1 to 255"),
        ([{"allowed_origins": ["*"], "allowed_methods": ["GET"], "id": "a"}] * 2, "used twice"),
        ([{"allowed_origins": ["*"], "allowed_methods": ["GET"]}] * 101, "at most 100"),
        ([{"allowed_origins": ["*"], "allowed_methods": ["GET"], "origin": "x"}], "unknown keys"),
    ],
)
def test_invalid_rules(rules, message):
    with pytest.raises(CorsError, match=message):
        validate_rules(rules)
