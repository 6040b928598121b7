# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Lifecycle rules: option spec, validation, conversion to/from the S3 form and comparison (pure functions).

The module form of a rule is flat (``id``, ``status``, ``prefix`` and one key per action). Rules are compared by
meaning: every rule applies, so their order does not matter (they are sorted by id), and the shapes Ceph RGW gives
back for the same filter (``Prefix`` at the top, ``Filter: {Prefix}``, ``Filter: {And: {Prefix}}``) read the same.
What a rule holds beyond the module form (tag or size filters, dates, transitions, ...) is kept, as S3 gives it,
under ``unsupported``: such a rule never equals a wanted one, so it is replaced, and the diff shows it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

MAX_RULES = 1000
MAX_PREFIX = 1024
STATUSES = ["enabled", "disabled"]
DAY_ACTIONS = ("expiration_days", "noncurrent_version_expiration_days", "abort_incomplete_multipart_upload_days")
ACTIONS = DAY_ACTIONS + ("expired_object_delete_marker",)

# Sub-options of one rule; shared by cellar_lifecycle (rules) and cellar_bucket (lifecycle).
LIFECYCLE_RULE_SPEC = dict(
    id=dict(type="str", required=True),
    status=dict(type="str", default="enabled", choices=STATUSES),
    prefix=dict(type="str", default=""),
    expiration_days=dict(type="int"),
    expired_object_delete_marker=dict(type="bool"),
    noncurrent_version_expiration_days=dict(type="int"),
    abort_incomplete_multipart_upload_days=dict(type="int"),
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LifecycleError(ValueError):
    """The lifecycle rules given by the user are not valid."""


def validate_rules(rules, option="rules"):
    """Raise LifecycleError unless ``rules`` (module form) can be stored as a lifecycle configuration; messages name
    ``option``, the module option that holds them."""
    if not isinstance(rules, list) or not rules:
        raise LifecycleError("%s must be a non-empty list (use state=absent to remove the lifecycle configuration)" % option)
    if len(rules) > MAX_RULES:
        raise LifecycleError("%s: at most %d lifecycle rules are allowed (got %d)" % (option, MAX_RULES, len(rules)))
    ids = set()
    for index, rule in enumerate(rules):
        _validate_rule(rule, "%s[%d]" % (option, index))
        if rule["id"] in ids:
            raise LifecycleError("%s[%d] id %r is used twice" % (option, index, rule["id"]))
        ids.add(rule["id"])


def _validate_rule(rule, where):
    if not isinstance(rule, dict):
        raise LifecycleError("%s must be a dict" % where)
    unknown = set(rule) - set(LIFECYCLE_RULE_SPEC)
    if unknown:
        raise LifecycleError("%s has unknown keys: %s" % (where, ", ".join(sorted(unknown))))
    rule_id = rule.get("id")
    if not isinstance(rule_id, str) or not rule_id or len(rule_id) > 255 or _CONTROL.search(rule_id):
        raise LifecycleError("%s id must be 1 to 255 characters without control characters" % where)
    where = "%s (%s)" % (where, rule_id)
    status = rule.get("status")
    if status is not None and status not in STATUSES:
        raise LifecycleError("%s status must be one of %s" % (where, ", ".join(STATUSES)))
    prefix = rule.get("prefix")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > MAX_PREFIX or _CONTROL.search(prefix)):
        raise LifecycleError("%s prefix must be at most %d characters without control characters" % (where, MAX_PREFIX))
    for key in DAY_ACTIONS:
        days = rule.get(key)
        if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 1):
            raise LifecycleError("%s %s must be a whole number of days, at least 1" % (where, key))
    marker = rule.get("expired_object_delete_marker")
    if marker is not None and not isinstance(marker, bool):
        raise LifecycleError("%s expired_object_delete_marker must be true or false" % where)
    if marker and rule.get("expiration_days") is not None:
        # S3's Expiration holds one of Days and ExpiredObjectDeleteMarker, never both.
        raise LifecycleError("%s sets both expiration_days and expired_object_delete_marker: S3 takes one or the other per rule" % where)
    if not any(rule.get(key) for key in ACTIONS):
        raise LifecycleError("%s has no action: set one of %s" % (where, ", ".join(ACTIONS)))


def normalize_rules(rules):
    """Canonical module form: status and prefix always set, unset actions dropped, rules sorted by id."""
    normalized = []
    for rule in rules or []:
        out = {"id": rule["id"], "status": (rule.get("status") or "enabled").lower(), "prefix": rule.get("prefix") or ""}
        for key in DAY_ACTIONS:
            if rule.get(key) is not None:
                out[key] = rule[key]
        if rule.get("expired_object_delete_marker"):
            out["expired_object_delete_marker"] = True
        if rule.get("unsupported"):
            out["unsupported"] = rule["unsupported"]
        normalized.append(out)
    return sorted(normalized, key=lambda rule: rule["id"])


def rules_to_s3(rules):
    """Module form to the Rules list of put_bucket_lifecycle_configuration."""
    converted = []
    for rule in normalize_rules(rules):
        s3_rule = {"ID": rule["id"], "Status": rule["status"].capitalize(), "Filter": {"Prefix": rule["prefix"]}}
        if "expiration_days" in rule:
            s3_rule["Expiration"] = {"Days": rule["expiration_days"]}
        elif rule.get("expired_object_delete_marker"):
            s3_rule["Expiration"] = {"ExpiredObjectDeleteMarker": True}
        if "noncurrent_version_expiration_days" in rule:
            s3_rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["noncurrent_version_expiration_days"]}
        if "abort_incomplete_multipart_upload_days" in rule:
            s3_rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": rule["abort_incomplete_multipart_upload_days"]}
        converted.append(s3_rule)
    return converted


def rules_from_s3(s3_rules):
    """Rules of get_bucket_lifecycle_configuration to the normalised module form (see ``unsupported`` above)."""
    return normalize_rules([_rule_from_s3(rule) for rule in s3_rules or []])


def _rule_from_s3(s3_rule):
    rule = {"id": _text(s3_rule.get("ID")), "status": _text(s3_rule.get("Status")).lower()}
    unsupported = {}
    prefix = s3_rule_prefix(s3_rule)
    if prefix is None or _filter_beyond_prefix(s3_rule.get("Filter") or {}):
        unsupported["Filter"] = _plain(s3_rule.get("Filter"))
    rule["prefix"] = prefix or ""
    for key, value in s3_rule.items():
        if key in ("ID", "Status", "Prefix", "Filter"):
            continue
        if key == "Expiration" and set(value) <= {"Days", "ExpiredObjectDeleteMarker"}:
            if value.get("Days") is not None:
                rule["expiration_days"] = value["Days"]
            if value.get("ExpiredObjectDeleteMarker"):
                rule["expired_object_delete_marker"] = True
        elif key == "NoncurrentVersionExpiration" and set(value) == {"NoncurrentDays"}:
            rule["noncurrent_version_expiration_days"] = value["NoncurrentDays"]
        elif key == "AbortIncompleteMultipartUpload" and set(value) == {"DaysAfterInitiation"}:
            rule["abort_incomplete_multipart_upload_days"] = value["DaysAfterInitiation"]
        else:
            unsupported[key] = _plain(value)
    if unsupported:
        rule["unsupported"] = unsupported
    return rule


def _filter_beyond_prefix(rule_filter):
    """True when a filter holds more than a prefix (tags, object sizes)."""
    inner = dict(rule_filter.get("And") or {}, **dict((k, v) for k, v in rule_filter.items() if k != "And"))
    return bool(set(inner) - {"Prefix"})


def _plain(value):
    """S3 values made JSON-safe (dates as ISO 8601 text)."""
    if isinstance(value, dict):
        return dict((key, _plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _text(value):
    return "" if value is None else str(value)


# ---- what a rule does, on the S3 form (also read by the backup role's bucket check) ---------------------------


def s3_rule_prefix(s3_rule):
    """The key prefix a lifecycle rule (S3 form) applies to ("" = the whole bucket), or None when it needs a tag.

    Ceph RGW answers with the old top-level ``Prefix``, ``Filter: {Prefix}``, ``Filter: {Prefix, Tag}`` or
    ``Filter: {Prefix, And: {Tags}}`` for what was sent in other shapes; all are read here. A size filter is
    dropped by RGW (the rule then applies to the whole bucket), so it does not narrow the prefix.
    """
    if "Prefix" in s3_rule:
        return _text(s3_rule.get("Prefix"))
    rule_filter = s3_rule.get("Filter") or {}
    if "And" in rule_filter:
        if rule_filter["And"].get("Tags"):
            return None
        return _text(rule_filter["And"].get("Prefix") or rule_filter.get("Prefix"))
    if "Tag" in rule_filter:
        return None
    return _text(rule_filter.get("Prefix"))


def s3_rule_removes_current_objects(s3_rule):
    """An enabled expiration by age or date, or a transition (another storage class may not be readable at once).

    NoncurrentVersionExpiration and ExpiredObjectDeleteMarker only touch old versions and delete markers, and
    AbortIncompleteMultipartUpload only unfinished uploads.
    """
    if _text(s3_rule.get("Status")) != "Enabled":
        return False
    expiration = s3_rule.get("Expiration") or {}
    return bool(expiration.get("Days") or expiration.get("Date") or s3_rule.get("Transitions") or s3_rule.get("Transition"))


def prefix_overlaps(rule_prefix, prefix):
    """True when objects under ``prefix`` (no leading or trailing '/', "" = whole bucket) may match ``rule_prefix``."""
    return prefix.startswith(rule_prefix) or rule_prefix.startswith(prefix + "/" if prefix else "")
