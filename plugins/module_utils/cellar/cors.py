# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""CORS rules: option spec, validation, conversion to/from the S3 form and comparison (pure functions)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

CORS_METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD"]
MAX_RULES = 100

# Sub-options of one rule; shared by cellar_cors (rules) and cellar_bucket (cors).
CORS_RULE_SPEC = dict(
    allowed_origins=dict(type="list", elements="str", required=True),
    allowed_methods=dict(type="list", elements="str", required=True, choices=CORS_METHODS),
    allowed_headers=dict(type="list", elements="str", no_log=False),
    expose_headers=dict(type="list", elements="str", no_log=False),
    max_age_seconds=dict(type="int"),
    id=dict(type="str"),
)

_FIELDS = (
    ("id", "ID"),
    ("allowed_origins", "AllowedOrigins"),
    ("allowed_methods", "AllowedMethods"),
    ("allowed_headers", "AllowedHeaders"),
    ("expose_headers", "ExposeHeaders"),
    ("max_age_seconds", "MaxAgeSeconds"),
)
_LISTS = ("allowed_origins", "allowed_methods", "allowed_headers", "expose_headers")


class CorsError(ValueError):
    """The CORS rules given by the user are not valid."""


def validate_rules(rules):
    """Raise CorsError unless ``rules`` (module form) can be stored as a CORS configuration."""
    if not isinstance(rules, list) or not rules:
        raise CorsError("rules must be a non-empty list (use state=absent to remove the CORS configuration)")
    if len(rules) > MAX_RULES:
        raise CorsError("at most %d CORS rules are allowed (got %d)" % (MAX_RULES, len(rules)))
    ids = set()
    for index, rule in enumerate(rules):
        _validate_rule(rule, "rules[%d]" % index)
        rule_id = rule.get("id")
        if rule_id is not None:
            if rule_id in ids:
                raise CorsError("rules[%d] id %r is used twice" % (index, rule_id))
            ids.add(rule_id)


def _validate_rule(rule, where):
    if not isinstance(rule, dict):
        raise CorsError("%s must be a dict" % where)
    unknown = set(rule) - {field for field, _s3_key in _FIELDS}
    if unknown:
        raise CorsError("%s has unknown keys: %s" % (where, ", ".join(sorted(unknown))))
    origins = rule.get("allowed_origins") or []
    if not origins:
        raise CorsError("%s needs at least one allowed_origins entry" % where)
    for origin in origins:
        if not isinstance(origin, str) or not origin.strip() or origin.count("*") > 1 or " " in origin:
            raise CorsError("%s origin %r must be a non-empty origin with at most one '*'" % (where, origin))
    methods = rule.get("allowed_methods") or []
    if not methods:
        raise CorsError("%s needs at least one allowed_methods entry" % where)
    bad = [m for m in methods if m not in CORS_METHODS]
    if bad:
        raise CorsError("%s method %r is not one of %s" % (where, bad[0], ", ".join(CORS_METHODS)))
    for key in ("allowed_headers", "expose_headers"):
        for header in rule.get(key) or []:
            if not isinstance(header, str) or not header.strip() or " " in header.strip():
                raise CorsError("%s %s entry %r is not a header name" % (where, key, header))
    max_age = rule.get("max_age_seconds")
    if max_age is not None and (not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0):
        raise CorsError("%s max_age_seconds must be a non-negative integer" % where)
    rule_id = rule.get("id")
    if rule_id is not None and (not isinstance(rule_id, str) or not rule_id or len(rule_id) > 255):
        raise CorsError("%s id must be 1 to 255 characters" % where)


def normalize_rules(rules):
    """Canonical module form: unset keys dropped, lists de-duplicated and sorted, methods upper-case. Rule order is kept
    (the first matching rule wins)."""
    if not rules:
        return []
    normalized = []
    for rule in rules:
        out = {}
        for key, _s3_key in _FIELDS:
            value = rule.get(key)
            if value is None or value == []:
                continue
            if key in _LISTS:
                value = sorted(set(v.strip().upper() if key == "allowed_methods" else v.strip() for v in value))
            out[key] = value
        normalized.append(out)
    return normalized


def rules_to_s3(rules):
    """Module form to the CORSRules list of put_bucket_cors."""
    return [dict((s3_key, rule[key]) for key, s3_key in _FIELDS if key in rule) for rule in normalize_rules(rules)]


def rules_from_s3(cors_rules):
    """CORSRules of get_bucket_cors to the normalised module form."""
    converted = []
    for rule in cors_rules or []:
        converted.append(dict((key, rule[s3_key]) for key, s3_key in _FIELDS if rule.get(s3_key) not in (None, [], "")))
    return normalize_rules(converted)
