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
  - keepdata.storage.cellar_rules
options:
  state:
    description:
      - V(present) replaces the configuration with O(rules); V(absent) removes it, and reports a change only if a
        configuration existed.
    type: str
    choices: [present, absent]
    default: present
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

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import ops  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.cors import CORS_RULE_SPEC, CorsError, normalize_rules, validate_rules  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.rules_file import desired_rules, replace_rules, rules_argument_spec, run_rules_module  # noqa: E402

ARGUMENT_SPEC = rules_argument_spec(CORS_RULE_SPEC)


def desired_from_params(params):
    """Normalised rules wanted ([] for absent); raise ValueError/CorsError on bad input."""
    return desired_rules(params, validate_rules, normalize_rules)


def converge(client, bucket, desired, check_mode, rules_file=None):
    """Read the rules, save them to ``rules_file`` when they will change, then write. Returns (changed, before)."""
    return replace_rules(
        lambda: ops.get_cors(client, bucket),
        lambda _before: ops.write_cors(client, bucket, desired),
        desired,
        check_mode=check_mode,
        rules_file=rules_file,
        what="CORS configuration",
    )


def main():
    run_rules_module(
        ARGUMENT_SPEC,
        CorsError,
        desired_from_params,
        converge,
        lambda desired: ops.converge_cors(None, None, desired, True, current=[], read=False),
    )


if __name__ == "__main__":
    main()
