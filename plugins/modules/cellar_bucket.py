#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cellar_bucket
short_description: Manage a Clever Cloud Cellar (or any S3-compatible) bucket and its whole state in one task
version_added: 0.1.0
description:
  - Create or delete a bucket and converge its canned ACL, versioning, bucket policy, CORS and lifecycle rules in one
    task.
  - Only the sub-resources given are read and managed; an idempotent run of a bucket with ACL, versioning, policy and
    CORS makes four read requests (five with lifecycle rules).
  - Taking O(policy)/O(preset), O(cors) and O(lifecycle) here lets one task converge a whole bucket, and O(buckets)
    converges a whole list in one module run with a bounded number of requests in flight. The policy, CORS and
    lifecycle logic is shared with M(keepdata.storage.cellar_bucket_policy), M(keepdata.storage.cellar_cors) and
    M(keepdata.storage.cellar_lifecycle).
  - The bucket name is validated before any request.
  - When a request fails after an earlier write of the same run succeeded (for example the bucket was created, then
    its policy was refused), the module fails with C(changed=true) and its message names the writes already done.
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.cellar
attributes:
  check_mode:
    support: full
    description: Nothing is written to the server in check mode.
  diff_mode:
    support: full
    description: Shows the normalised managed state before and after.
options:
  name:
    description:
      - Bucket name. 3 to 63 characters, lowercase letters, digits, C(-) and C(.); starts and ends with a letter or digit;
        no C(_), no C(..), not an IP address.
      - Names with dots (custom domains) are addressed path style.
      - One of O(name) or O(buckets) is required.
    type: str
  state:
    description:
      - V(present) creates the bucket when missing and converges the given sub-resources; V(absent) deletes it.
      - V(absent) takes none of O(acl), O(versioning), O(policy), O(preset), O(principals), O(cors) and O(lifecycle);
        the module fails before any request when one is set.
    type: str
    choices: [present, absent]
    default: present
  acl:
    description:
      - Canned ACL of the bucket. Not managed when unset.
    type: str
    choices: [private, public-read, public-read-write, authenticated-read]
  versioning:
    description:
      - Versioning state. Not managed when unset.
      - V(suspended) is also satisfied by a bucket that never had versioning.
    type: str
    choices: [enabled, suspended]
  policy:
    description:
      - Bucket policy as a dict or a JSON string, see M(keepdata.storage.cellar_bucket_policy). Not managed when unset.
      - An empty value (V({}) or V("")) removes the policy.
      - A bare user id in an C(AWS) principal (V(cellar_xxx)) is written as V(arn:aws:iam:::user/cellar_xxx), the form
        that grants access on Ceph RGW.
      - Mutually exclusive with O(preset).
    type: raw
  preset:
    description:
      - Policy preset, see M(keepdata.storage.cellar_bucket_policy) for what each one writes.
    type: str
    choices: [public_read, read_only]
  principals:
    description:
      - Users granted by O(preset=read_only), as add-on ids (V(cellar_xxx)) or ARNs (V(arn:aws:iam:::user/cellar_xxx)).
    type: list
    elements: str
  cors:
    description:
      - CORS rules replacing the whole CORS configuration, see M(keepdata.storage.cellar_cors). Not managed when unset.
      - An empty list removes the CORS configuration.
    type: list
    elements: dict
    suboptions: &cors_rule
      allowed_origins:
        description: Origins allowed, for example V(https://app.example.com); at most one C(*) each.
        type: list
        elements: str
        required: true
      allowed_methods:
        description: HTTP methods allowed.
        type: list
        elements: str
        required: true
        choices: [GET, PUT, POST, DELETE, HEAD]
      allowed_headers:
        description: Request headers allowed in a preflight.
        type: list
        elements: str
      expose_headers:
        description: Response headers exposed to the browser.
        type: list
        elements: str
      max_age_seconds:
        description: How long browsers may cache the preflight answer.
        type: int
      id:
        description: Rule identifier.
        type: str
  lifecycle:
    description:
      - Lifecycle rules replacing the whole lifecycle configuration, see M(keepdata.storage.cellar_lifecycle). Not
        managed when unset.
      - An empty list removes the lifecycle configuration.
    type: list
    elements: dict
    suboptions: &lifecycle_rule
      id:
        description: Rule identifier, unique in the bucket.
        type: str
        required: true
      status:
        description: A V(disabled) rule is kept but does nothing.
        type: str
        choices: [enabled, disabled]
        default: enabled
      prefix:
        description: The rule applies to object keys starting with this; the empty default means the whole bucket.
        type: str
        default: ""
      expiration_days:
        description: Delete objects this many days after they were written.
        type: int
      expired_object_delete_marker:
        description: On a versioned bucket, remove delete markers that no longer hide any version.
        type: bool
      noncurrent_version_expiration_days:
        description: On a versioned bucket, delete old versions this many days after they stopped being current.
        type: int
      abort_incomplete_multipart_upload_days:
        description: Abort multipart uploads still unfinished this many days after they started.
        type: int
  force:
    description:
      - With O(state=absent), abort unfinished multipart uploads, delete every object, every version and delete marker
        (in batches of up to 1000 keys), then the bucket.
      - Without it, a non-empty bucket is detected before any delete (one listing request) and the module fails
        without deleting anything, in check mode too.
      - A bucket holding no object but unfinished multipart uploads (found by one more listing request) is refused the
        same way, since Ceph RGW would delete it and keep the uploaded parts in the cluster for good.
    type: bool
    default: false
  buckets:
    description:
      - Converge a list of buckets in one module run instead of one bucket, up to O(workers) buckets at a time.
      - Each entry takes the per-bucket options of this module (O(name) required). Every entry is validated before
        any request; a failing bucket does not stop the others, and the module fails listing every failure.
      - One module run avoids paying the module start (Python, boto3, client set-up) once per bucket, which is most
        of the time of an idempotent run; C(playbooks/cellar.yml) uses it.
      - Mutually exclusive with O(name).
    type: list
    elements: dict
    suboptions:
      name:
        description: Bucket name.
        type: str
        required: true
      state:
        description: V(present) or V(absent).
        type: str
        choices: [present, absent]
        default: present
      acl:
        description: Canned ACL, not managed when unset.
        type: str
        choices: [private, public-read, public-read-write, authenticated-read]
      versioning:
        description: Versioning state, not managed when unset.
        type: str
        choices: [enabled, suspended]
      policy:
        description: Bucket policy (dict or JSON string); empty removes it; not managed when unset.
        type: raw
      preset:
        description: Policy preset.
        type: str
        choices: [public_read, read_only]
      principals:
        description: Users granted by O(buckets[].preset=read_only).
        type: list
        elements: str
      cors:
        description: CORS rules replacing the whole configuration; an empty list removes it; not managed when unset.
        type: list
        elements: dict
        suboptions: *cors_rule
      lifecycle:
        description: Lifecycle rules replacing the whole configuration; an empty list removes it; not managed when unset.
        type: list
        elements: dict
        suboptions: *lifecycle_rule
      force:
        description: With O(buckets[].state=absent), abort unfinished multipart uploads and delete every object and version first.
        type: bool
        default: false
  workers:
    description:
      - Requests in flight at once, between 1 and 32. Delete batches when O(force=true) for one bucket; buckets
        converged at once with O(buckets).
    type: int
    default: 4
"""

EXAMPLES = r"""
- name: Private, versioned bucket
  keepdata.storage.cellar_bucket:
    name: backups-prod
    acl: private
    versioning: enabled

- name: Public assets, readable anonymously, usable from the web app
  keepdata.storage.cellar_bucket:
    name: assets-prod
    preset: public_read
    cors:
      - allowed_origins: ["https://app.example.com"]
        allowed_methods: [GET, HEAD]
        max_age_seconds: 3600

- name: Converge a list of buckets in one run, connection set once
  module_defaults:
    group/keepdata.storage.cellar:
      endpoint: cellar-c2.services.clever-cloud.com
  keepdata.storage.cellar_bucket:
    buckets:
      - name: assets-prod
        preset: public_read
      - name: backups-prod
        versioning: enabled
        preset: read_only
        principals: [cellar_abc123]

- name: Delete a bucket with all its objects and versions
  keepdata.storage.cellar_bucket:
    name: old-bucket
    state: absent
    force: true
"""

RETURN = r"""
name:
  description: Bucket name.
  returned: with O(name)
  type: str
  sample: assets-prod
url:
  description: Bucket URL; virtual-host style for plain names, path style for dotted names.
  returned: with O(name)
  type: str
  sample: https://assets-prod.cellar-c2.services.clever-cloud.com/
acl:
  description: Canned ACL after the run.
  returned: when O(acl) is set and O(state=present)
  type: str
  sample: private
versioning:
  description: Versioning after the run.
  returned: when O(versioning) is set and O(state=present)
  type: str
  sample: enabled
policy:
  description: Normalised bucket policy after the run (null when none).
  returned: when O(policy) or O(preset) is set and O(state=present)
  type: dict
cors:
  description: Normalised CORS rules after the run.
  returned: when O(cors) is set and O(state=present)
  type: list
  elements: dict
lifecycle:
  description: Normalised lifecycle rules after the run, sorted by id.
  returned: when O(lifecycle) is set and O(state=present)
  type: list
  elements: dict
deleted_objects:
  description:
    - Object versions and delete markers deleted by O(force=true).
    - When a forced delete fails half-way, the number deleted before the failure (the result is then changed).
  returned: when the bucket was deleted, or when a forced delete failed after deleting objects
  type: int
  sample: 20000
buckets:
  description:
    - One result per entry of O(buckets), with the keys returned for a single bucket (name, url, changed, ...).
    - A bucket that failed has its error message as C(msg); its C(changed) tells whether something was written to it
      before the failure.
  returned: with O(buckets)
  type: list
  elements: dict
"""

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import ops  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.bucket import (  # noqa: E402
    BucketError,
    bucket_requests,
    converge_bucket,
    converge_many,
    failures_message,
    list_result,
)
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import CellarModule  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.cors import CORS_RULE_SPEC  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.lifecycle import LIFECYCLE_RULE_SPEC  # noqa: E402

# Options describing one bucket; also the sub-options of each entry of ``buckets``.
BUCKET_SPEC = dict(
    name=dict(type="str"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    acl=dict(type="str", choices=ops.CANNED_ACLS),
    versioning=dict(type="str", choices=ops.VERSIONING),
    policy=dict(type="raw"),
    preset=dict(type="str", choices=["public_read", "read_only"]),
    principals=dict(type="list", elements="str"),
    cors=dict(type="list", elements="dict", options=CORS_RULE_SPEC),
    lifecycle=dict(type="list", elements="dict", options=LIFECYCLE_RULE_SPEC),
    force=dict(type="bool", default=False),
)
ARGUMENT_SPEC = dict(
    BUCKET_SPEC,
    buckets=dict(type="list", elements="dict", options=dict(BUCKET_SPEC, name=dict(type="str", required=True))),
    workers=dict(type="int", default=4),
)


def main():
    cellar = CellarModule(
        ARGUMENT_SPEC,
        supports_check_mode=True,
        mutually_exclusive=[["policy", "preset"], ["name", "buckets"]],
        required_one_of=[["name", "buckets"]],
    )
    params = cellar.params
    try:
        requests = bucket_requests(params)
    except ValueError as exc:
        cellar.fail(str(exc), changed=False)
    if params["buckets"] is None:
        try:
            result = converge_bucket(cellar, requests[0][0], requests[0][1], params["workers"])
        except BucketError as exc:
            cellar.fail(str(exc), **exc.result)
    else:
        results, errors = converge_many(cellar, requests, params["workers"])
        result = list_result(results)
        if errors:
            cellar.fail(failures_message(results, errors), **result)
    cellar.exit(**result)


if __name__ == "__main__":
    main()
