# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module cellar_bucket's logic: the buckets requested, read, compared, written and deleted, one or many at once.

``desired_state`` validates and normalises a bucket's options before any request; ``converge_bucket`` reads what is
there, writes only what differs (nothing in check mode) and deletes with ``force`` only; ``converge_many`` runs a
list in parallel, and the result and failure helpers shape what the module returns.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import ops
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import validate_bucket_name, validate_workers
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.cors import CorsError, normalize_rules, validate_rules
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.lifecycle import LifecycleError
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.lifecycle import normalize_rules as normalize_lifecycle
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.lifecycle import validate_rules as validate_lifecycle
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.policy import PolicyError, desired_policy, same_policy

# Options that describe a bucket's content; a bucket being deleted has none.
MANAGED_OPTIONS = ("acl", "versioning", "policy", "preset", "principals", "cors", "lifecycle")
# The options of one bucket (the module's BUCKET_SPEC, also each entry of ``buckets``).
BUCKET_OPTIONS = ("name", "state") + MANAGED_OPTIONS + ("force",)
NOT_EMPTY = "bucket %r is not empty: set force=true to delete every object and version with it (nothing was deleted)"
UNFINISHED_UPLOADS = "bucket %r holds unfinished multipart uploads: set force=true to abort them and delete the bucket (nothing was deleted)"


class BucketError(Exception):
    """A bucket could not be converged: the message is ready for the user, ``result`` is the bucket's partial result."""

    def __init__(self, message, result):
        super(BucketError, self).__init__(message)
        self.result = result


def desired_state(params):
    """The managed sub-resources requested, validated and normalised; raise ValueError on bad input."""
    problem = validate_bucket_name(params["name"])
    if problem:
        raise ValueError(problem)
    desired = {}
    if params["state"] == "absent":
        stray = [key for key in MANAGED_OPTIONS if params[key] is not None]
        if stray:
            raise ValueError("state=absent deletes the bucket and takes no %s" % ", ".join(stray))
        return desired
    if params["acl"]:
        desired["acl"] = params["acl"]
    if params["versioning"]:
        desired["versioning"] = params["versioning"]
    if params["policy"] is not None or params["preset"] or params["principals"]:
        desired["policy"] = desired_policy(params["name"], params["policy"], params["preset"], params["principals"])
    if params["cors"] is not None:
        if params["cors"]:
            validate_rules(params["cors"])
        desired["cors"] = normalize_rules(params["cors"])
    if params["lifecycle"] is not None:
        if params["lifecycle"]:
            validate_lifecycle(params["lifecycle"], "lifecycle")
        desired["lifecycle"] = normalize_lifecycle(params["lifecycle"])
    return desired


def bucket_requests(params):
    """Per-bucket option sets (one, or the ``buckets`` list), each validated with its desired state, before any request."""
    problem = validate_workers(params["workers"])
    if problem:
        raise ValueError(problem)
    if params["buckets"] is None:
        entries = [dict((key, params[key]) for key in BUCKET_OPTIONS)]
    else:
        stray = [key for key in MANAGED_OPTIONS if params[key] is not None]
        if stray or params["force"] or params["state"] != "present":
            raise ValueError("with buckets, set %s inside each entry" % ", ".join(stray or ["state", "force"]))
        entries = params["buckets"]
        names = [entry["name"] for entry in entries]
        duplicates = sorted(set(n for n in names if names.count(n) > 1))
        if duplicates:
            raise ValueError("buckets: %s listed more than once" % ", ".join(duplicates))
    requests = []
    for index, entry in enumerate(entries):
        try:
            requests.append((entry, desired_state(entry)))
        except (ValueError, PolicyError, CorsError, LifecycleError) as exc:
            prefix = "" if params["buckets"] is None else "buckets[%d] (%s): " % (index, entry["name"])
            raise ValueError(prefix + str(exc)) from None
    return requests


def read_current(client, name, managed):
    """Current value of each managed sub-resource, or None when the bucket does not exist (first read tells)."""
    readers = [
        ("acl", ops.get_acl),
        ("versioning", ops.get_versioning),
        ("policy", ops.get_policy),
        ("cors", ops.get_cors),
        ("lifecycle", ops.get_lifecycle_rules),
    ]
    readers = [(key, reader) for key, reader in readers if key in managed]
    if not readers:
        return {} if ops.bucket_exists(client, name) else None
    current = {}
    for index, (key, reader) in enumerate(readers):
        try:
            current[key] = reader(client, name)
        except ops.S3CallError as exc:
            if index == 0 and exc.code in ops.NOT_FOUND_CODES:
                return None
            raise
    return current


def differs(key, current, desired):
    if key == "versioning":
        return not ops.versioning_satisfied(current, desired)
    if key == "policy":
        return not same_policy(current, desired)
    return current != desired


def planned_writes(desired, current):
    """Writes needed, in order: the bucket when missing (with its ACL), then each sub-resource to set or fix."""
    if current is None:
        extra = [key for key in ("policy", "cors", "lifecycle") if desired.get(key)]
        return ["bucket"] + (["versioning"] if desired.get("versioning") == "enabled" else []) + extra
    return [key for key in ("acl", "versioning", "policy", "cors", "lifecycle") if key in desired and differs(key, current[key], desired[key])]


def _write_policy(client, name, policy):
    if policy is None:
        ops.delete_policy(client, name)
    else:
        ops.put_policy(client, name, policy)


WRITERS = dict(
    bucket=lambda client, name, desired: ops.create_bucket(client, name, desired.get("acl")),
    acl=lambda client, name, desired: ops.put_acl(client, name, desired["acl"]),
    versioning=lambda client, name, desired: ops.put_versioning(client, name, desired["versioning"]),
    policy=lambda client, name, desired: _write_policy(client, name, desired["policy"]),
    cors=lambda client, name, desired: ops.write_cors(client, name, desired["cors"]),
    lifecycle=lambda client, name, desired: ops.write_lifecycle(client, name, desired["lifecycle"]),
)


def apply_present(client, name, desired, current, *, check_mode, tally):
    """Create the bucket or fix the differing sub-resources; returns the keys to write, records those written."""
    keys = planned_writes(desired, current)
    if not check_mode:
        for key in keys:
            WRITERS[key](client, name, desired)
            tally.written.append(key)
    return keys


def after_state(desired, current):
    after = dict(current or {})
    for key, value in desired.items():
        if key != "versioning" or differs(key, after.get(key), value):
            after[key] = value
    return after


def delete(client, entry, result, *, check_mode, workers, tally):
    """Delete the bucket; without force, a non-empty bucket (or one with unfinished uploads) fails before any write."""
    name = entry["name"]
    if not ops.bucket_exists(client, name):
        return result
    if not entry["force"]:
        if not ops.is_empty(client, name):
            raise BucketError(NOT_EMPTY % name, result)
        if ops.has_multipart_uploads(client, name):
            raise BucketError(UNFINISHED_UPLOADS % name, result)
    if not check_mode:
        if entry["force"]:
            result["deleted_objects"] = ops.delete_bucket_forced(client, name, workers, tally)
        else:
            ops.delete_bucket(client, name)
            tally.written.append("bucket")
            result["deleted_objects"] = 0
    result["changed"] = True
    result["diff"] = dict(before={"name": name, "exists": True}, after={"name": name, "exists": False})
    return result


def failure(message, result, tally):
    """BucketError for the user with the partial result: ``changed`` when a write succeeded before the failure."""
    result["changed"] = tally.changed
    if tally.deleted:
        result["deleted_objects"] = tally.deleted
        message += " (%d object versions were deleted before the failure; running again completes the removal)" % tally.deleted
    if tally.written:
        message += " (already written before the failure: %s)" % ", ".join(tally.written)
    return BucketError(message, result)


def converge_bucket(cellar, entry, desired, workers):
    """Converge one bucket; returns its result, raises BucketError (message for the user, with the partial result)."""
    name = entry["name"]
    client = cellar.client(name)
    result = dict(changed=False, name=name, url=cellar.url(name))
    tally = ops.Tally()
    try:
        if entry["state"] == "absent":
            return delete(client, entry, result, check_mode=cellar.check_mode, workers=workers, tally=tally)
        current = read_current(client, name, desired)
        written = apply_present(client, name, desired, current, check_mode=cellar.check_mode, tally=tally)
    except ops.S3CallError as exc:
        raise failure(cellar.describe(exc), result, tally) from None
    except BucketError as exc:
        raise failure(str(exc), result, tally) from None
    after = after_state(desired, current)
    result.update(after)
    result["changed"] = bool(written)
    before = dict(current, name=name, exists=True) if current is not None else {"name": name, "exists": False}
    result["diff"] = dict(before=before, after=dict(after, name=name, exists=True))
    return result


def converge_many(cellar, requests, workers):
    """Converge every bucket, ``workers`` at a time; returns (results, error messages). A failed bucket's result
    carries its message as ``msg``."""

    def one(request):
        try:
            return converge_bucket(cellar, request[0], request[1], 1), None
        except BucketError as exc:
            return dict(exc.result, msg=str(exc)), str(exc)

    outcomes = ops.parallel_map(one, requests, workers)
    return [result for result, _error in outcomes], [error for _result, error in outcomes if error]


# Failures of a ``buckets`` run spelled out in the message; beyond that, names only (each error is in its result).
MESSAGES_SHOWN = 3


def failures_message(results, errors):
    """The message of a ``buckets`` run where some buckets failed: how many, which, and why."""
    head = "%d of %d buckets failed" % (len(errors), len(results))
    if len(errors) <= MESSAGES_SHOWN:
        return "%s: %s" % (head, "; ".join(errors))
    names = [result["name"] for result in results if "msg" in result]
    return "%s (%s); the first errors: %s (every failed bucket's error is in its buckets[].msg)" % (
        head,
        ", ".join(names),
        "; ".join(errors[:MESSAGES_SHOWN]),
    )


def list_result(results):
    """Result of a ``buckets`` run: every bucket's result without its diff, and one diff of the changed buckets by name."""
    changed = [r for r in results if r["changed"]]
    diff = dict(
        before=dict((r["name"], r.get("diff", {}).get("before")) for r in changed),
        after=dict((r["name"], r.get("diff", {}).get("after")) for r in changed),
    )
    for entry in results:
        entry.pop("diff", None)
    return dict(changed=bool(changed), buckets=results, diff=diff)
