#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cellar_bucket_policy
short_description: Manage the policy of a Clever Cloud Cellar (or any S3-compatible) bucket
version_added: 0.1.0
description:
  - Set or remove a bucket policy, given as a document or as a preset that is known to work on Cellar.
  - The policy is validated (JSON, Version, Statement, Effect, Action, Principal, Resource pointing at this bucket)
    before any request.
  - Policies are compared by meaning, so statement or list order, a single value instead of a one-element list,
    a bare V(*) principal instead of the same inside an C(AWS) list, or a missing Version never report a change.
  - One read request when nothing changes (three with O(preset=restic_append_only), which also reads the bucket's
    owner and versioning state before any write).
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.cellar
  - keepdata.storage.cellar_existing_bucket
attributes:
  check_mode:
    support: full
    description:
      - Nothing is written to the server in check mode.
      - A bucket that does not exist yet (an earlier task of the play would create it) is previewed as a new, empty
        bucket, with a warning; a real run fails on a missing bucket.
  diff_mode:
    support: full
    description: Shows the normalised policy before and after.
options:
  state:
    description:
      - V(present) sets the policy, V(absent) removes any policy.
    type: str
    choices: [present, absent]
    default: present
  policy:
    description:
      - Policy document, as a dict or a JSON string. Every Resource must be C(arn:aws:s3:::BUCKET) or
        C(arn:aws:s3:::BUCKET/...).
      - Version may be C(2012-10-17) (the default when missing) or C(2008-10-17). Action, Resource and Principal
        lists must not be empty, and each Condition operator must map to an object of condition keys.
      - A bare user id in an C(AWS) principal (V(cellar_xxx)) is written as V(arn:aws:iam:::user/cellar_xxx), the
        form that grants access on Ceph RGW (see O(preset)); ARNs and V(*) are written as given.
      - S3 action names are compared ignoring case (V(s3:getobject) is V(s3:GetObject)).
      - One of O(policy) or O(preset) is required with O(state=present).
    type: raw
  preset:
    description:
      - V(public_read) lets anyone read objects anonymously (C(s3:GetObject) on C(arn:aws:s3:::BUCKET/*), principal
        C(*) in an C(AWS) list).
      - V(read_only) lets O(principals) list the bucket (C(s3:ListBucket)) and read its objects (C(s3:GetObject)),
        and nothing else.
      - V(restic_append_only) makes the restic repository at O(repository_prefix) append-only for O(principals),
        the S3 users of the hosts that back up into it (on Cellar, a second add-on's id; the bucket's owner keeps
        every right and runs retention). They may list the bucket (C(s3:ListBucket) on the whole bucket, since Ceph RGW
        asks for it without a prefix when restic checks the bucket and when it looks for an object not written yet),
        read the bucket's location and versioning state (C(s3:GetBucketLocation), C(s3:GetBucketVersioning)),
        read and write objects below the prefix (C(s3:GetObject), C(s3:PutObject)), and delete objects below
        C(<prefix>locks/) only (C(s3:DeleteObject)), which are restic's lock files, removed by every run.
      - With V(restic_append_only), two Deny statements for the same principals hold even where an ACL grants
        more, since a Deny wins over any grant on S3 and Ceph RGW. They deny C(s3:DeleteObject) of every object outside
        C(<prefix>locks/); C(s3:DeleteObjectVersion) anywhere; and the changes of the bucket's settings and
        history, C(s3:DeleteBucket), C(s3:DeleteBucketPolicy), C(s3:PutBucketAcl), C(s3:PutBucketCORS),
        C(s3:PutBucketPolicy), C(s3:PutBucketVersioning), C(s3:PutLifecycleConfiguration), C(s3:PutObjectAcl),
        C(s3:PutObjectVersionAcl). So C(restic forget) and C(restic prune) fail with AccessDenied for them.
      - With V(restic_append_only), the bucket's owner (read from the bucket's ACL before any write; in a check-mode
        preview of a bucket not created yet, the user of these credentials) may read every object and object version
        below the prefix (C(s3:GetObject), C(s3:GetObjectVersion)). An object belongs to the user who wrote it, and
        Ceph RGW lets the bucket's owner delete the host's objects but not read them, which retention, C(restic check)
        and a rollback with the owner's key need.
      - S3 has no right to create an object without overwriting one, so V(restic_append_only) needs a versioned
        bucket, where an overwrite keeps the previous version for the owner. The module reads the bucket's
        versioning and fails before any write unless it is C(enabled) (in check mode it warns instead, as an
        earlier task of the play may enable it). It fails when a principal is the bucket's owner, whom no policy
        can restrict.
      - Principals are written as C(arn:aws:iam:::user/UID). On Ceph RGW 16.2, which Cellar runs, that form grants
        access, while the form C(arn:aws:iam::UID) shown in the Cellar documentation is stored but grants nothing;
        that form is refused with a message naming the working one.
    type: str
    choices: [public_read, read_only, restic_append_only]
  principals:
    description:
      - Users granted by O(preset=read_only) or O(preset=restic_append_only) (required with both), as add-on ids
        (V(cellar_xxx)) or ARNs (V(arn:aws:iam:::user/cellar_xxx)).
    type: list
    elements: str
  repository_prefix:
    description:
      - With O(preset=restic_append_only), the path of the restic repository inside the bucket, as in restic's
        repository C(s3:ENDPOINT/BUCKET/PREFIX) (V(hosts/web1) or V(hosts/web1/)); omitted or empty, the repository
        is at the bucket's root.
      - Must be a string (a list or a number is refused by name) of path segments made of letters, digits, C(.),
        C(_) and C(-), separated by C(/), with no leading C(/), no empty, C(.) or C(..) segment, no control character,
        no wildcard (C(*), C(?)) or policy variable (C($)), at most 512 characters. It is written with one trailing C(/).
      - Taken with O(preset=restic_append_only) only.
    type: raw
"""

EXAMPLES = r"""
- name: Let anyone download the objects of a bucket
  keepdata.storage.cellar_bucket_policy:
    bucket: assets-prod
    preset: public_read

- name: Let another add-on read and list a bucket
  keepdata.storage.cellar_bucket_policy:
    bucket: backups-prod
    preset: read_only
    principals:
      - cellar_abc123

- name: Let the host's own S3 user add backups to its restic repository, and delete nothing but restic's locks
  keepdata.storage.cellar_bucket_policy:
    bucket: backups-prod  # versioned (cellar_bucket, versioning: enabled)
    preset: restic_append_only
    principals:
      - cellar_def456
    repository_prefix: hosts/web1

- name: Custom policy
  keepdata.storage.cellar_bucket_policy:
    bucket: assets-prod
    policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Principal: "*"
          Action: s3:GetObject
          Resource: arn:aws:s3:::assets-prod/public/*

- name: Remove the policy
  keepdata.storage.cellar_bucket_policy:
    bucket: assets-prod
    state: absent
"""

RETURN = r"""
policy:
  description: Normalised policy after the run; null when there is none.
  returned: always
  type: dict
  sample: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"],
           "Resource": ["arn:aws:s3:::assets-prod/*"], "Sid": "PublicRead"}]}
previous_policy:
  description: Normalised policy before the run (for rollback); null when there was none.
  returned: always
  type: dict
"""

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import ops  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import CellarModule, validate_bucket_name  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.policy import (  # noqa: E402
    PRESETS,
    PolicyError,
    append_only_versioning_problem,
    desired_policy,
)

ARGUMENT_SPEC = dict(
    bucket=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    policy=dict(type="raw"),
    preset=dict(type="str", choices=list(PRESETS)),
    principals=dict(type="list", elements="str"),
    # raw, not str: Ansible would turn a list into its text; the policy code refuses anything but a string by name.
    repository_prefix=dict(type="raw"),
)


def desired_from_params(params, bucket_owner=None):
    """Validated normalised policy wanted (None for absent); raise ValueError/PolicyError on bad input.

    ``bucket_owner``: the owner's user id, which preset restic_append_only grants reading the host's objects; without
    it that preset's inputs are checked and the document lacks the owner's statement."""
    problem = validate_bucket_name(params["bucket"])
    if problem:
        raise ValueError(problem)
    if params["state"] == "absent":
        if params["policy"] is not None or params["preset"] or params["principals"] or params["repository_prefix"] is not None:
            raise ValueError("state=absent takes no policy, preset, principals or repository_prefix")
        return None
    if params["policy"] in (None, "", {}) and not params["preset"]:
        raise ValueError("state=present needs policy or preset")
    return desired_policy(
        params["bucket"], params["policy"], params["preset"], params["principals"], repository_prefix=params["repository_prefix"], bucket_owner=bucket_owner
    )


def append_only_policy_of_bucket(cellar, client, params):
    """Preset restic_append_only: the policy naming the bucket's owner, read from the bucket. Fails before any write
    when the bucket cannot be protected: a writer that owns it, versioning not enabled (a warning in check mode,
    where an earlier task of the play may enable it)."""
    bucket = params["bucket"]
    try:
        desired = desired_from_params(params, ops.get_owner(client, bucket))
    except PolicyError as exc:
        cellar.fail(str(exc), changed=False)
    problem = append_only_versioning_problem(ops.get_versioning(client, bucket))
    if problem and cellar.check_mode:
        cellar.module.warn(problem + "; a real run fails unless an earlier task enables it")
    elif problem:
        cellar.fail(problem, changed=False)
    return desired


def preview_of_new_bucket(cellar, client, params):
    """Preset restic_append_only in a preview of a bucket an earlier task would create with these credentials: the
    policy naming their user as the owner (ListBuckets shows it)."""
    try:
        return desired_from_params(params, ops.caller_id(client))
    except PolicyError as exc:
        cellar.fail(str(exc), changed=False)
    except ops.S3CallError as exc:
        cellar.fail_s3(exc, changed=False)
    return None


def main():
    cellar = CellarModule(ARGUMENT_SPEC, supports_check_mode=True, mutually_exclusive=[["policy", "preset"]])
    params = cellar.params
    bucket = params["bucket"]
    append_only = params["state"] == "present" and params["preset"] == "restic_append_only"
    try:
        desired = desired_from_params(params)  # every input checked before the first request
    except (ValueError, PolicyError) as exc:
        cellar.fail(str(exc), changed=False)
    client = cellar.client(bucket)
    try:
        if append_only:
            desired = append_only_policy_of_bucket(cellar, client, params)
        changed, before = ops.converge_policy(client, bucket, desired, cellar.check_mode)
    except ops.S3CallError as exc:
        cellar.preview_of_missing_bucket(exc, bucket)
        if append_only:
            desired = preview_of_new_bucket(cellar, client, params)
        # A preview of a bucket an earlier task would create: compared with a new bucket's (no policy).
        changed, before = ops.converge_policy(None, bucket, desired, True, current=None, read=False)
    cellar.exit(changed=changed, policy=desired, previous_policy=before, diff=dict(before={"policy": before}, after={"policy": desired}))


if __name__ == "__main__":
    main()
