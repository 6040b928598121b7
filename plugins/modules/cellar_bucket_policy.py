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
  - One read request when nothing changes.
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.cellar
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
  bucket:
    description:
      - Bucket name. The bucket must exist.
    type: str
    required: true
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
      - Principals are written as C(arn:aws:iam:::user/UID). On Ceph RGW 16.2, which Cellar runs, that form grants
        access, while the form C(arn:aws:iam::UID) shown in the Cellar documentation is stored but grants nothing;
        that form is refused with a message naming the working one.
    type: str
    choices: [public_read, read_only]
  principals:
    description:
      - Users granted by O(preset=read_only), as add-on ids (V(cellar_xxx)) or ARNs (V(arn:aws:iam:::user/cellar_xxx)).
    type: list
    elements: str
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
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.policy import PolicyError, desired_policy  # noqa: E402

ARGUMENT_SPEC = dict(
    bucket=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    policy=dict(type="raw"),
    preset=dict(type="str", choices=["public_read", "read_only"]),
    principals=dict(type="list", elements="str"),
)


def desired_from_params(params):
    """Validated normalised policy wanted (None for absent); raise ValueError/PolicyError on bad input."""
    problem = validate_bucket_name(params["bucket"])
    if problem:
        raise ValueError(problem)
    if params["state"] == "absent":
        if params["policy"] is not None or params["preset"] or params["principals"]:
            raise ValueError("state=absent takes no policy, preset or principals")
        return None
    if params["policy"] in (None, "", {}) and not params["preset"]:
        raise ValueError("state=present needs policy or preset")
    return desired_policy(params["bucket"], params["policy"], params["preset"], params["principals"])


def main():
    cellar = CellarModule(ARGUMENT_SPEC, supports_check_mode=True, mutually_exclusive=[["policy", "preset"]])
    params = cellar.params
    bucket = params["bucket"]
    try:
        desired = desired_from_params(params)
    except (ValueError, PolicyError) as exc:
        cellar.fail(str(exc), changed=False)
    try:
        changed, before = ops.converge_policy(cellar.client(bucket), bucket, desired, cellar.check_mode)
    except ops.S3CallError as exc:
        cellar.preview_of_missing_bucket(exc, bucket)
        # A preview of a bucket an earlier task would create: compared with a new bucket's (no policy).
        changed, before = ops.converge_policy(None, bucket, desired, True, current=None, read=False)
    cellar.exit(changed=changed, policy=desired, previous_policy=before, diff=dict(before={"policy": before}, after={"policy": desired}))


if __name__ == "__main__":
    main()
