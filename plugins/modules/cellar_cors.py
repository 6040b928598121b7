#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cellar_cors
short_description: Manage the CORS configuration of a Clever Cloud Cellar (or any S3-compatible) bucket
version_added: 0.1.0
description:
  - Replace the whole CORS configuration of a bucket with O(rules), as Cellar does it, or remove it.
  - Always returns the rules that were there before (RV(previous_rules)) so a change can be rolled back, and can save
    them to a file.
  - Rules are compared after normalisation (list order and duplicates inside a rule do not matter; rule order does,
    since the first matching rule wins). One read request when nothing changes.
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.cellar
  - keepdata.storage.cellar_existing_bucket
  - keepdata.storage.cellar_rules
options:
  rules:
    description:
      - CORS rules, required with O(state=present). At most 100.
    type: list
    elements: dict
    suboptions:
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
"""

EXAMPLES = r"""
- name: Let the web app upload and download directly
  keepdata.storage.cellar_cors:
    bucket: assets-prod
    rules:
      - id: app
        allowed_origins: ["https://app.example.com"]
        allowed_methods: [GET, PUT, HEAD]
        allowed_headers: ["*"]
        expose_headers: [ETag]
        max_age_seconds: 3600
    previous_rules_file: /var/backups/assets-prod-cors.json
  register: cors

- name: Roll back
  keepdata.storage.cellar_cors:
    bucket: assets-prod
    rules: "{{ cors.previous_rules }}"
  when: cors.previous_rules | length > 0

- name: Remove CORS
  keepdata.storage.cellar_cors:
    bucket: assets-prod
    state: absent
"""

RETURN = r"""
rules:
  description: Normalised rules after the run (empty when there is no configuration).
  returned: always
  type: list
  elements: dict
  sample: [{"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET", "HEAD"], "max_age_seconds": 3600}]
previous_rules:
  description: Normalised rules before the run, in the form O(rules) takes (empty when there was no configuration).
  returned: always
  type: list
  elements: dict
  sample: []
"""

from ansible_collections.keepdata.storage.plugins.module_utils.cellar.rules_file import CORS_RULES  # noqa: E402

ARGUMENT_SPEC = CORS_RULES.argument_spec()


def main():
    CORS_RULES.run_module()


if __name__ == "__main__":
    main()
