#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: restic_repo
short_description: Make sure a restic repository exists and opens with its password
version_added: "0.2.0"
description:
  - Looks at the repository with C(restic cat config --no-lock), which writes nothing, so it also opens a repository
    that another restic holds locked (a check or a prune). A missing repository is initialised (unless
    O(initialize=false)); one that exists but does not open with O(password) is a failure, so the module never
    initialises over an existing repository.
  - With O(recovery_password), makes sure that password opens the repository too, adding it as a second key
    when it does not.
  - Secrets reach restic only through files (C(RESTIC_PASSWORD_FILE), C(AWS_SHARED_CREDENTIALS_FILE)) in a private
    temporary directory (C(0700), files C(0600)) removed after the run; never through the command line. Passwords
    and keys that restic inherited from the environment are removed from the command's environment.
  - A read-only look that fails on a transient network error (connection refused, timeout) is tried three times,
    one then two seconds apart.
  - Used by the role C(keepdata.storage.backup).
author:
  - keepdata.storage maintainers (@keepdata)
options:
  repository:
    description: The repository, C(s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]) or an absolute path.
    type: str
    required: true
  options:
    description: Extended options, each passed as C(-o NAME=VALUE) (such as C(s3.bucket-lookup=path)).
    type: list
    elements: str
    default: []
  password:
    description: The repository password.
    type: str
    required: true
  recovery_password:
    description: A second password that must open the repository, added as a new key when it does not.
    type: str
    default: ""
  access_key:
    description: S3 access key; required with O(secret_key) for an C(s3:) repository.
    type: str
    default: ""
  secret_key:
    description:
      - S3 secret key; required with O(access_key) for an C(s3:) repository.
      - Any printable characters (the credentials file handed to restic quotes both keys); no control character.
    type: str
    default: ""
  initialize:
    description: Initialise the repository when it does not exist. When false, a missing repository is a failure.
    type: bool
    default: true
  timeout:
    description: Seconds each restic command may take.
    type: int
    default: 120
  restic:
    description: The restic binary (a name looked up on C(PATH), or a path).
    type: str
    default: restic
  cache_dir:
    description: restic's cache directory; empty for a temporary one, removed after the run.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    description: Looks at the repository and reports whether it would be initialised or get the recovery key; runs neither.
  diff_mode:
    support: full
    description: Shows whether the repository and the recovery key are absent or present, before and after; never a secret.
  platform:
    support: full
    description: Hosts with restic (0.14 or later).
    platforms: posix
notes:
  - When restic is not installed yet, check mode reports a change (nothing can be looked at) and a real run fails.
"""

EXAMPLES = r"""
- name: An S3 repository with a recovery key
  keepdata.storage.restic_repo:
    repository: s3:http://127.0.0.1:7480/backups/restic
    options: [s3.bucket-lookup=path]
    password: "{{ restic_password }}"
    recovery_password: "{{ restic_recovery_password }}"
    access_key: "{{ s3_access_key }}"
    secret_key: "{{ s3_secret_key }}"

- name: A repository on a mounted disk that must already exist
  keepdata.storage.restic_repo:
    repository: /mnt/backup/restic
    password: "{{ restic_password }}"
    initialize: false
"""

RETURN = r"""
initialized:
  description: Whether the repository was initialised by this run (in check mode, would be).
  returned: always
  type: bool
  sample: true
recovery_key_added:
  description: Whether the recovery password was added as a key by this run (in check mode, would be).
  returned: always
  type: bool
  sample: false
restic_version:
  description: The version of restic on the host, empty when it is not installed.
  returned: always
  type: str
  sample: 0.14.0
repository:
  description: The repository (O(repository)).
  returned: always
  type: str
  sample: s3:http://127.0.0.1:7480/backups/restic
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.backup.repository import ResticRepoError, ensure  # noqa: E402

ARGUMENT_SPEC = dict(
    repository=dict(type="str", required=True),
    options=dict(type="list", elements="str", default=[]),
    password=dict(type="str", required=True, no_log=True),
    recovery_password=dict(type="str", default="", no_log=True),
    access_key=dict(type="str", default="", no_log=True),
    secret_key=dict(type="str", default="", no_log=True),
    initialize=dict(type="bool", default=True),
    timeout=dict(type="int", default=120),
    restic=dict(type="str", default="restic"),
    cache_dir=dict(type="str", default=""),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = ensure(module.params, module.check_mode, want_diff=module._diff)
    except ResticRepoError as exc:
        module.fail_json(msg=exc.msg, **exc.facts)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
