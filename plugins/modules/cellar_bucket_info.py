#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cellar_bucket_info
short_description: List Clever Cloud Cellar (or any S3-compatible) buckets and, on request, their configuration
version_added: 0.1.0
description:
  - Lists the buckets of the account, all of them or by O(name) or O(prefix).
  - Per-bucket details (policy, CORS, ACL grants, versioning, website) are read only when asked, with a bounded
    number of requests in flight.
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.cellar
attributes:
  check_mode:
    support: full
    description:
      - The module only reads.
      - In check mode, a O(name) that is not found warns that the bucket does not exist yet (an earlier task of the
        play would create it).
  diff_mode:
    support: none
    description: Nothing changes.
options:
  name:
    description:
      - Only this bucket.
    type: str
  prefix:
    description:
      - Only buckets whose name starts with this.
    type: str
  policy:
    description: Read each bucket's policy (normalised, null when none).
    type: bool
    default: false
  cors:
    description: Read each bucket's CORS rules (empty list when none).
    type: bool
    default: false
  acl:
    description: Read each bucket's ACL grants and the canned ACL they match.
    type: bool
    default: false
  versioning:
    description: Read each bucket's versioning state.
    type: bool
    default: false
  website:
    description: Read each bucket's static website configuration (null when none).
    type: bool
    default: false
  lifecycle:
    description:
      - Read each bucket's lifecycle rules (empty list when none), as S3 returns them (RV(buckets[].lifecycle)) and in
        the form M(keepdata.storage.cellar_lifecycle) takes (RV(buckets[].lifecycle_rules)). One request per bucket.
    type: bool
    default: false
  workers:
    description: Detail requests in flight at once.
    type: int
    default: 8
"""

EXAMPLES = r"""
- name: Names of all buckets
  keepdata.storage.cellar_bucket_info:
  register: cellar

- name: Policy and CORS of the assets buckets
  keepdata.storage.cellar_bucket_info:
    prefix: assets-
    policy: true
    cors: true
"""

RETURN = r"""
buckets:
  description: Buckets found, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Bucket name.
      type: str
      returned: always
    creation_date:
      description: Creation date (ISO 8601).
      type: str
      returned: always
    url:
      description: Bucket URL.
      type: str
      returned: always
    policy:
      description: Normalised policy, null when none.
      type: dict
      returned: when O(policy=true)
    cors:
      description: Normalised CORS rules.
      type: list
      elements: dict
      returned: when O(cors=true)
    acl:
      description: Canned ACL matching the grants, or V(custom).
      type: str
      returned: when O(acl=true)
    grants:
      description: ACL grants (grantee and permission).
      type: list
      elements: dict
      returned: when O(acl=true)
    versioning:
      description: V(enabled), V(suspended) or V(disabled).
      type: str
      returned: when O(versioning=true)
    website:
      description: Website configuration, null when none.
      type: dict
      returned: when O(website=true)
    lifecycle:
      description: Lifecycle rules (C(ID), C(Status), C(Filter) or C(Prefix), C(Expiration), ...), empty when none.
      type: list
      elements: dict
      returned: when O(lifecycle=true)
    lifecycle_rules:
      description:
        - The same rules normalised, sorted by id, in the form M(keepdata.storage.cellar_lifecycle) takes; what that
          module does not manage is under C(unsupported).
      type: list
      elements: dict
      returned: when O(lifecycle=true)
"""

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import ops  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import CellarModule, validate_workers  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.lifecycle import rules_from_s3 as lifecycle_from_s3  # noqa: E402

ARGUMENT_SPEC = dict(
    name=dict(type="str"),
    prefix=dict(type="str"),
    policy=dict(type="bool", default=False),
    cors=dict(type="bool", default=False),
    acl=dict(type="bool", default=False),
    versioning=dict(type="bool", default=False),
    website=dict(type="bool", default=False),
    lifecycle=dict(type="bool", default=False),
    workers=dict(type="int", default=8),
)


# The details read with one request each, by the option that asks for them and names them in the result.
ONE_READ_DETAILS = (("policy", ops.get_policy), ("cors", ops.get_cors), ("versioning", ops.get_versioning), ("website", ops.get_website))


def select_buckets(buckets, name=None, prefix=None):
    """Buckets matching ``name`` / ``prefix``, sorted by name, as small dicts."""
    selected = []
    for bucket in buckets:
        if name and bucket["Name"] != name:
            continue
        if prefix and not bucket["Name"].startswith(prefix):
            continue
        created = bucket.get("CreationDate")
        selected.append({"name": bucket["Name"], "creation_date": created.isoformat() if hasattr(created, "isoformat") else created})
    return sorted(selected, key=lambda b: b["name"])


def bucket_details(cellar, entry, params):
    """Add the requested details of one bucket to ``entry``."""
    name = entry["name"]
    client = cellar.client(name)
    entry["url"] = cellar.url(name)
    for option, read in ONE_READ_DETAILS:
        if params[option]:
            entry[option] = read(client, name)
    if params["acl"]:
        response = ops.call("get bucket ACL", client.get_bucket_acl, name, Bucket=name)
        entry["acl"] = ops.canned_acl_from_grants(response)
        entry["grants"] = ops.get_acl_grants_from(response)
    if params["lifecycle"]:
        entry["lifecycle"] = ops.get_lifecycle(client, name)
        entry["lifecycle_rules"] = lifecycle_from_s3(entry["lifecycle"])
    return entry


def main():
    cellar = CellarModule(ARGUMENT_SPEC, supports_check_mode=True, mutually_exclusive=[["name", "prefix"]])
    params = cellar.params
    problem = validate_workers(params["workers"])
    if problem:
        cellar.fail(problem)
    try:
        selected = select_buckets(ops.list_buckets(cellar.client()), params["name"], params["prefix"])
        buckets = ops.parallel_map(lambda entry: bucket_details(cellar, entry, params), selected, params["workers"])
    except ops.S3CallError as exc:
        cellar.fail_s3(exc)
    if params["name"] and not buckets and cellar.check_mode:
        # In a --check preview, the bucket an earlier task would create is not there yet.
        cellar.module.warn("bucket %r not found: in this preview it does not exist yet, so nothing is listed (an earlier task creates it)" % params["name"])
    cellar.exit(changed=False, buckets=buckets)


if __name__ == "__main__":
    main()
