#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cellar_lifecycle
short_description: Manage the lifecycle rules of a Clever Cloud Cellar (or any S3-compatible) bucket
version_added: 0.1.0
description:
  - Replace the whole lifecycle configuration of a bucket with O(rules), as S3 does it, or remove it. The server
    then deletes, once a day, what the rules name. Objects under a prefix after some days, old versions of objects,
    delete markers left alone, and unfinished multipart uploads (whose parts otherwise fill a bucket for good).
  - Always returns the rules that were there before (RV(previous_rules)) so a change can be rolled back, and can save
    them to a file.
  - Rules are compared by meaning, not text. Their order does not matter (every rule applies), and the shapes the
    server may answer with for the same prefix read the same. One read request when nothing changes.
  - A rule set by another tool with what this module does not manage (tag or size filters, dates, transitions to
    another storage class) is returned with an C(unsupported) key holding those parts as S3 gives them, and is
    replaced by O(rules) like any rule that differs.
  - The M(keepdata.storage.cellar_bucket) option O(keepdata.storage.cellar_bucket#module:lifecycle) takes the same
    rules. The backup role refuses a bucket whose rules would expire its restic repository.
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.cellar
  - keepdata.storage.cellar_existing_bucket
  - keepdata.storage.cellar_rules
options:
  rules:
    description:
      - Lifecycle rules, required with O(state=present). At most 1000. Each rule needs at least one action.
    type: list
    elements: dict
    suboptions:
      id:
        description:
          - Rule identifier, unique in the bucket; required, so that a re-run compares each rule with itself.
        type: str
        required: true
      status:
        description: A V(disabled) rule is kept but does nothing.
        type: str
        choices: [enabled, disabled]
        default: enabled
      prefix:
        description:
          - The rule applies to object keys starting with this, for example V(tmp/); the empty default means the whole
            bucket.
        type: str
        default: ""
      expiration_days:
        description:
          - Delete objects this many days after they were written. On a versioned bucket, the object is hidden
            behind a delete marker and its data becomes an old version (see O(rules[].noncurrent_version_expiration_days)).
          - Mutually exclusive with O(rules[].expired_object_delete_marker).
        type: int
      expired_object_delete_marker:
        description:
          - On a versioned bucket, remove delete markers that no longer hide any version.
        type: bool
      noncurrent_version_expiration_days:
        description:
          - On a versioned bucket, delete old versions of objects this many days after they stopped being the current one.
        type: int
      abort_incomplete_multipart_upload_days:
        description:
          - Abort multipart uploads still unfinished this many days after they started, and free their parts.
        type: int
notes:
  - Ceph RGW (Cellar) runs lifecycle rules once a day, so objects go some time after the day count is reached, not
    to the minute.
"""

EXAMPLES = r"""
- name: Keep temporary files a week, old versions a month, and never keep unfinished uploads
  keepdata.storage.cellar_lifecycle:
    bucket: uploads-prod
    rules:
      - id: tmp-files
        prefix: tmp/
        expiration_days: 7
      - id: old-versions
        noncurrent_version_expiration_days: 30
        expired_object_delete_marker: true
      - id: unfinished-uploads
        abort_incomplete_multipart_upload_days: 2
    previous_rules_file: /var/backups/uploads-prod-lifecycle.json
  register: lifecycle

- name: Roll back
  keepdata.storage.cellar_lifecycle:
    bucket: uploads-prod
    rules: "{{ lifecycle.previous_rules }}"
  when: lifecycle.previous_rules | length > 0

- name: Remove every lifecycle rule
  keepdata.storage.cellar_lifecycle:
    bucket: uploads-prod
    state: absent
"""

RETURN = r"""
rules:
  description: Normalised rules after the run, sorted by id (empty when there is no configuration).
  returned: always
  type: list
  elements: dict
  sample: [{"id": "tmp-files", "status": "enabled", "prefix": "tmp/", "expiration_days": 7}]
previous_rules:
  description:
    - Normalised rules before the run, sorted by id, in the form O(rules) takes (empty when there was no configuration).
    - A rule holding what this module does not manage has an C(unsupported) key (the S3 form of those parts); such a
      rule cannot be given back as it is.
  returned: always
  type: list
  elements: dict
  sample: []
"""

from ansible_collections.keepdata.storage.plugins.module_utils.cellar.rules_file import LIFECYCLE_RULES  # noqa: E402

ARGUMENT_SPEC = LIFECYCLE_RULES.argument_spec()


def main():
    LIFECYCLE_RULES.run_module()


if __name__ == "__main__":
    main()
