# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bucket policies: presets, validation before any request, and comparison by meaning (pure functions)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

POLICY_VERSION = "2012-10-17"
# The policy language versions that S3 and Ceph RGW accept; a missing Version means 2012-10-17.
POLICY_VERSIONS = ("2012-10-17", "2008-10-17")
PRESETS = ("public_read", "read_only", "restic_append_only")
# The presets that grant named users, and so take ``principals``.
PRESETS_WITH_PRINCIPALS = ("read_only", "restic_append_only")
_EFFECTS = ("Allow", "Deny")
_STATEMENT_KEYS = ("Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition")
# Cellar add-on users (and RGW users in general): letters, digits, '_', '-', '.', '@'; optional "tenant$".
_UID = re.compile(r"^(?:[A-Za-z0-9_-]+\$)?[A-Za-z0-9_.@-]+$")
# Action names are case-insensitive: ``s3:getobject`` is ``s3:GetObject``.
_ACTION = re.compile(r"^(?:\*|s3:[A-Za-z*]+)$", re.IGNORECASE)
_ACTION_KEYS = ("Action", "NotAction")


class PolicyError(ValueError):
    """The policy or preset given by the user is not valid."""


def principal_arn(principal):
    """ARN that really grants access to an RGW user.

    Ceph RGW 16.2 (Cellar) matches ``arn:aws:iam:::user/UID`` (empty account, ``user/`` prefix). The form
    ``arn:aws:iam::UID`` shown in the Cellar documentation is stored but grants nothing, so it is refused.
    """
    if not isinstance(principal, str) or not principal.strip():
        raise PolicyError("principals must be non-empty strings (add-on ids like cellar_xxx or arn:aws:iam:::user/cellar_xxx)")
    principal = principal.strip()
    if principal.startswith("arn:"):
        match = re.match(r"^arn:aws:iam::([^:]*):(user|role)/(.+)$", principal)
        if match and _UID.match(match.group(3)):
            return principal
        short = re.match(r"^arn:aws:iam::([A-Za-z0-9_.@-]+)$", principal)
        if short:
            raise PolicyError(
                "principal %r grants nothing on Cellar (Ceph RGW): use %r or just %r" % (principal, "arn:aws:iam:::user/" + short.group(1), short.group(1))
            )
        raise PolicyError("principal %r is not an IAM user ARN of the form arn:aws:iam:::user/UID" % principal)
    if not _UID.match(principal):
        raise PolicyError("principal %r is not a valid user id (letters, digits, '_', '-', '.', '@')" % principal)
    return "arn:aws:iam:::user/" + principal


def preset_policy(preset, bucket, principals=None, repository_prefix=None, bucket_owner=None):
    """The policy document of a preset, in the form that works on Cellar (``repository_prefix`` and ``bucket_owner``:
    see :func:`append_only_policy`)."""
    if repository_prefix is not None and preset != "restic_append_only":
        raise PolicyError("repository_prefix is only used with preset=restic_append_only")
    objects = "arn:aws:s3:::%s/*" % bucket
    if preset == "public_read":
        if principals:
            raise PolicyError("preset public_read takes no principals (it grants everyone)")
        return {
            "Version": POLICY_VERSION,
            "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"], "Resource": [objects]}],
        }
    if preset == "read_only":
        if not principals:
            raise PolicyError("preset read_only needs principals (add-on ids like cellar_xxx)")
        arns = sorted(set(principal_arn(p) for p in principals))
        return {
            "Version": POLICY_VERSION,
            "Statement": [
                {"Sid": "ReadOnlyList", "Effect": "Allow", "Principal": {"AWS": arns}, "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::%s" % bucket]},
                {"Sid": "ReadOnlyGet", "Effect": "Allow", "Principal": {"AWS": arns}, "Action": ["s3:GetObject"], "Resource": [objects]},
            ],
        }
    if preset == "restic_append_only":
        return append_only_policy(bucket, principals, repository_prefix, bucket_owner)
    raise PolicyError("unknown preset %r (choose from %s)" % (preset, ", ".join(PRESETS)))


# A repository prefix: path segments of letters, digits, '.', '_' and '-' (never '.' or '..'), each ending with '/'
# once written. No '*', '?' or '$': in a policy's Resource or s3:prefix they would be wildcards or variables and
# widen the grant beyond the repository.
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_PREFIX_MAX = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What the writer of an append-only repository is refused even if an ACL or another statement granted it: deleting
# any object outside restic's locks, any object version, and every change to the bucket's own settings.
APPEND_ONLY_DENIED_BUCKET_ACTIONS = (
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketAcl",
    "s3:PutBucketCORS",
    "s3:PutBucketPolicy",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
)
APPEND_ONLY_DENIED_OBJECT_ACTIONS = ("s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutObjectVersionAcl")


def repository_prefix_path(repository_prefix):
    """The repository's key prefix inside the bucket, ending with '/' (``""`` for a repository at the bucket's root).

    ``hosts/web1`` and ``hosts/web1/`` both give ``hosts/web1/``; anything but such a path is refused by name.
    """
    if repository_prefix is None or repository_prefix == "":
        return ""
    if not isinstance(repository_prefix, str):
        raise PolicyError("repository_prefix must be a string like hosts/web1, not %s" % type(repository_prefix).__name__)
    if _CONTROL.search(repository_prefix):
        raise PolicyError("repository_prefix %r contains a control character" % repository_prefix)
    if len(repository_prefix) > _PREFIX_MAX:
        raise PolicyError("repository_prefix is longer than %d characters" % _PREFIX_MAX)
    segments = repository_prefix[:-1].split("/") if repository_prefix.endswith("/") else repository_prefix.split("/")
    if not all(_PREFIX_SEGMENT.match(segment) and segment not in (".", "..") for segment in segments):
        raise PolicyError(
            "repository_prefix %r must be a path inside the bucket like hosts/web1: segments of letters, digits, '.', '_' and '-' "
            "separated by '/', no leading '/', no empty, '.' or '..' segment, no wildcard" % repository_prefix
        )
    return "/".join(segments) + "/"


def principal_user_id(arn):
    """The RGW user id an ARN written by :func:`principal_arn` names: ``tenant$uid`` or ``uid``, as S3 shows an owner."""
    match = re.match(r"^arn:aws:iam::([^:]*):(?:user|role)/(.+)$", arn)
    if not match:
        return arn
    return "%s$%s" % (match.group(1), match.group(2)) if match.group(1) else match.group(2)


def append_only_policy(bucket, principals, repository_prefix=None, bucket_owner=None):
    """The policy of preset restic_append_only: ``principals`` (the host's S3 users) may add to a restic repository
    at ``repository_prefix`` of ``bucket`` and read it, and delete nothing but restic's lock files.

    Granted: list the bucket, read the bucket's location and versioning state, read and write objects below the
    prefix, delete objects below ``<prefix>locks/``. Denied outright, whatever an ACL says: any other object delete,
    deleting an object version, and changes to the bucket's policy, ACLs, versioning, lifecycle and CORS rules. A
    write over an existing object is allowed (S3 has no "create only" right): the bucket's versioning keeps the
    previous version for the owner.

    ``bucket_owner`` (the owner's user id as S3 shows it) is granted reading every object and object version below
    the prefix: an object belongs to the user who wrote it, and Ceph RGW lets the bucket's owner delete the host's
    objects but not read them, which retention and ``restic check`` with the owner's key need. Without it (None) the
    inputs are checked and the document lacks that statement: the module builds the final one once it has read the
    owner. A writer that is the owner is refused: an owner keeps every right whatever the policy says.
    """
    if isinstance(principals, str) or not isinstance(principals, (list, tuple)) or not principals:
        raise PolicyError("preset restic_append_only needs principals: a list of the writers' user ids (add-on ids like cellar_xxx)")
    prefix = repository_prefix_path(repository_prefix)
    arns = sorted(set(principal_arn(p) for p in principals))
    problem = writer_is_owner_problem(arns, bucket_owner)
    if problem:
        raise PolicyError(problem)
    writers = {"AWS": arns}
    bucket_arn = "arn:aws:s3:::%s" % bucket
    locks = "%s/%slocks/*" % (bucket_arn, prefix)
    owner_reads = []
    if bucket_owner:
        owner_reads.append(
            {
                "Sid": "AppendOnlyOwnerReads",
                "Effect": "Allow",
                "Principal": {"AWS": [owner_arn(bucket_owner)]},
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": ["%s/%s*" % (bucket_arn, prefix)],
            }
        )
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "AppendOnlyBucket",
                "Effect": "Allow",
                "Principal": writers,
                "Action": ["s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:ListBucket"],
                "Resource": [bucket_arn],
            },
            {
                "Sid": "AppendOnlyReadWrite",
                "Effect": "Allow",
                "Principal": writers,
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": ["%s/%s*" % (bucket_arn, prefix)],
            },
            {"Sid": "AppendOnlyLocks", "Effect": "Allow", "Principal": writers, "Action": ["s3:DeleteObject"], "Resource": [locks]},
            {
                "Sid": "AppendOnlyNoOtherDelete",
                "Effect": "Deny",
                "Principal": writers,
                "Action": ["s3:DeleteObject"],
                "NotResource": [locks],
            },
            {
                "Sid": "AppendOnlyNoHistoryOrSettingsChange",
                "Effect": "Deny",
                "Principal": writers,
                "Action": list(APPEND_ONLY_DENIED_BUCKET_ACTIONS + APPEND_ONLY_DENIED_OBJECT_ACTIONS),
                "Resource": [bucket_arn, bucket_arn + "/*"],
            },
        ]
        + owner_reads,
    }


def owner_arn(owner):
    """The ARN of a bucket owner shown by S3 as ``uid`` or ``tenant$uid`` (the inverse of :func:`principal_user_id`)."""
    tenant, _sep, uid = owner.rpartition("$")
    arn = "arn:aws:iam::%s:user/%s" % (tenant, uid)
    principal_arn(arn)  # refuses an id that is not a user id
    return arn


def writer_is_owner_problem(principals, owner):
    """Why preset restic_append_only cannot protect a bucket whose owner is one of its writers (an owner keeps every
    right whatever the policy says), or None. ``owner`` is the owner's user id as S3 shows it (``tenant$uid`` or ``uid``)."""
    writers = set(principal_user_id(principal_arn(p)) for p in principals or ())
    if owner and owner in writers:
        return (
            "principals name the bucket's owner %r: an owner keeps every right whatever the policy says, so the writer must be another S3 user "
            "(on Cellar, a second add-on's id)" % owner
        )
    return None


def append_only_versioning_problem(versioning):
    """Why preset restic_append_only cannot protect a bucket whose ``versioning`` (``enabled``, ``suspended`` or
    ``disabled``) is not ``enabled``, or None: the writer may overwrite objects, and only versioning keeps what it replaced."""
    if versioning == "enabled":
        return None
    return (
        "preset restic_append_only needs a versioned bucket (versioning is %s): without it an overwrite by the writer destroys the only copy; "
        "enable it first (module cellar_bucket, versioning: enabled)" % versioning
    )


def load_policy(policy):
    """A dict from a dict or a JSON string."""
    if isinstance(policy, dict):
        return policy
    if isinstance(policy, str):
        try:
            loaded = json.loads(policy)
        except ValueError as exc:
            raise PolicyError("policy is not valid JSON: %s" % exc) from None
        if not isinstance(loaded, dict):
            raise PolicyError("policy must be a JSON object, not %s" % type(loaded).__name__)
        return loaded
    raise PolicyError("policy must be a dict or a JSON string, not %s" % type(policy).__name__)


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _non_empty_list(value, what):
    """``value`` as a list; raise PolicyError when it is an empty list (S3 would grant or deny nothing)."""
    values = _as_list(value)
    if not values:
        raise PolicyError("%s must not be an empty list" % what)
    return values


def validate_policy(policy, bucket):
    """Raise PolicyError unless ``policy`` is a well-formed bucket policy about ``bucket``."""
    if not isinstance(policy, dict) or not policy:
        raise PolicyError("policy must be a non-empty JSON object")
    unknown = set(policy) - {"Version", "Statement", "Id"}
    if unknown:
        raise PolicyError("policy has unknown top-level keys: %s" % ", ".join(sorted(unknown)))
    if "Version" in policy and policy["Version"] not in POLICY_VERSIONS:
        raise PolicyError("policy Version must be %s (got %r)" % (" or ".join(POLICY_VERSIONS), policy["Version"]))
    statements = policy.get("Statement")
    if not statements or not isinstance(statements, (list, dict)):
        raise PolicyError("policy needs a Statement (an object or a non-empty list)")
    for index, statement in enumerate(_as_list(statements)):
        _validate_statement(statement, "Statement[%d]" % index, bucket)


def _exactly_one(statement, key, where):
    if (key in statement) == ("Not" + key in statement):
        raise PolicyError("%s needs exactly one of %s or Not%s" % (where, key, key))
    return statement.get(key, statement.get("Not" + key))


def _validate_statement(statement, where, bucket):
    if not isinstance(statement, dict):
        raise PolicyError("%s must be an object" % where)
    unknown = set(statement) - set(_STATEMENT_KEYS)
    if unknown:
        raise PolicyError("%s has unknown keys: %s" % (where, ", ".join(sorted(unknown))))
    if statement.get("Effect") not in _EFFECTS:
        raise PolicyError("%s Effect must be Allow or Deny (got %r)" % (where, statement.get("Effect")))
    _validate_principal(_exactly_one(statement, "Principal", where), where)
    for action in _non_empty_list(_exactly_one(statement, "Action", where), where + " Action"):
        if not isinstance(action, str) or not _ACTION.match(action):
            raise PolicyError("%s action %r is not an S3 action like s3:GetObject" % (where, action))
    for resource in _non_empty_list(_exactly_one(statement, "Resource", where), where + " Resource"):
        if not isinstance(resource, str) or not (resource == "arn:aws:s3:::" + bucket or resource.startswith("arn:aws:s3:::%s/" % bucket)):
            raise PolicyError("%s resource %r must be arn:aws:s3:::%s or arn:aws:s3:::%s/..." % (where, resource, bucket, bucket))
    if "Condition" in statement:
        _validate_condition(statement["Condition"], where)


def _validate_condition(condition, where):
    """``{operator: {key: value or non-empty list of values}}``, values being strings, numbers or booleans."""
    if not isinstance(condition, dict) or not condition:
        raise PolicyError('%s Condition must be a non-empty object like {"StringEquals": {"aws:UserAgent": "backup"}}' % where)
    for operator, body in condition.items():
        if not isinstance(body, dict) or not body:
            raise PolicyError("%s Condition operator %r must map to a non-empty object of condition keys and values, not %r" % (where, operator, body))
        for key, values in body.items():
            for value in _non_empty_list(values, "%s Condition %s %s" % (where, operator, key)):
                if not isinstance(value, (str, int, float, bool)):
                    raise PolicyError("%s Condition %s %s values must be strings, numbers or booleans" % (where, operator, key))


def _validate_principal(principal, where):
    if principal == "*":
        return
    if not isinstance(principal, dict) or not principal:
        raise PolicyError('%s Principal must be "*" or an object like {"AWS": [...]}' % where)
    for kind, values in principal.items():
        if kind not in ("AWS", "CanonicalUser", "Federated", "Service"):
            raise PolicyError("%s Principal type %r is not known" % (where, kind))
        for value in _non_empty_list(values, "%s Principal %s" % (where, kind)):
            if not isinstance(value, str) or not value:
                raise PolicyError("%s Principal values must be non-empty strings" % where)
            if kind == "AWS" and value != "*":
                principal_arn(value)


def resolve_principals(policy):
    """Copy of a validated ``policy`` with every bare user id of an AWS principal written as its ARN.

    ``{"AWS": "cellar_x"}`` becomes ``{"AWS": ["arn:aws:iam:::user/cellar_x"]}``, the form that grants access on
    Ceph RGW (see :func:`principal_arn`); ``*`` and ARNs are kept as given.
    """
    resolved = dict(policy)
    resolved["Statement"] = [_resolve_statement(statement) for statement in _as_list(policy["Statement"])]
    return resolved


def _resolve_statement(statement):
    out = dict(statement)
    for key in ("Principal", "NotPrincipal"):
        principal = statement.get(key)
        if isinstance(principal, dict) and "AWS" in principal:
            out[key] = dict(principal, AWS=[value if value == "*" else principal_arn(value) for value in _as_list(principal["AWS"])])
    return out


def _sort_key(value):
    return json.dumps(value, sort_keys=True)


def _sorted_unique(values):
    return sorted(set(_as_list(values)), key=_sort_key)


def _sorted_unique_actions(values):
    """Actions de-duplicated and sorted ignoring case (the first spelling of each is kept)."""
    unique = {}
    for action in _as_list(values):
        unique.setdefault(action.lower() if isinstance(action, str) else action, action)
    return [unique[key] for key in sorted(unique, key=_sort_key)]


def _normalize_value(key, raw):
    if key in ("Principal", "NotPrincipal"):
        return {"AWS": ["*"]} if raw == "*" else dict((kind, _sorted_unique(v)) for kind, v in raw.items())
    if key in _ACTION_KEYS:
        return _sorted_unique_actions(raw)
    if key in ("Resource", "NotResource"):
        return _sorted_unique(raw)
    if key == "Condition":
        return dict((op, dict((k, _sorted_unique(v)) for k, v in body.items()) if isinstance(body, dict) else body) for op, body in raw.items())
    return raw


def normalize_policy(policy):
    """Canonical form: Version set, lists everywhere, sorted values and statements, ``"*"`` as ``{"AWS": ["*"]}``.

    Action names keep their spelling; compare with :func:`same_policy`, which ignores their case.
    """
    if policy is None:
        return None
    statements = [dict(sorted((key, _normalize_value(key, raw)) for key, raw in statement.items())) for statement in _as_list(policy.get("Statement", []))]
    statements.sort(key=_sort_key)
    normalized = {"Version": policy.get("Version") or POLICY_VERSION, "Statement": statements}
    if policy.get("Id"):
        normalized["Id"] = policy["Id"]
    return normalized


def _folded(normalized):
    """A normalised policy with action names lower-cased and statements sorted again: the comparison key."""
    if not isinstance(normalized, dict) or not isinstance(normalized.get("Statement"), list):
        return normalized
    statements = []
    for statement in normalized["Statement"]:
        folded = dict(statement)
        for key in _ACTION_KEYS:
            if isinstance(folded.get(key), list):
                folded[key] = sorted(set(a.lower() if isinstance(a, str) else a for a in folded[key]), key=_sort_key)
        statements.append(folded)
    return dict(normalized, Statement=sorted(statements, key=_sort_key))


def same_policy(left, right):
    """Whether two normalised policies (or None) mean the same; S3 action names are compared ignoring case."""
    return left == right or _folded(left) == _folded(right)


def desired_policy(bucket, policy=None, preset=None, principals=None, *, repository_prefix=None, bucket_owner=None):
    """Validated, normalised desired policy from the module options; raise PolicyError otherwise.

    ``bucket_owner`` is used by preset restic_append_only only (see :func:`append_only_policy`).

    An empty ``policy`` ({} or "") means "no policy". Bare user ids in AWS principals are written as
    ``arn:aws:iam:::user/UID`` (see :func:`resolve_principals`).
    """
    if preset and policy not in (None, "", {}):
        raise PolicyError("policy and preset are mutually exclusive")
    if principals and preset not in PRESETS_WITH_PRINCIPALS:
        raise PolicyError("principals are only used with preset=%s" % " or preset=".join(PRESETS_WITH_PRINCIPALS))
    if repository_prefix not in (None, "") and preset != "restic_append_only":
        raise PolicyError("repository_prefix is only used with preset=restic_append_only")
    if preset:
        document = preset_policy(preset, bucket, principals, repository_prefix or None, bucket_owner if preset == "restic_append_only" else None)
    else:
        if policy in ("", {}):
            return None
        document = load_policy(policy)
    validate_policy(document, bucket)
    return normalize_policy(resolve_principals(document))


def policy_json(policy):
    return json.dumps(policy, sort_keys=True, separators=(",", ":"))
