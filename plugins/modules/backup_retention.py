#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_retention
short_description: Run the retention of backup jobs from a trusted place, with the bucket owner's key
version_added: "0.3.0"
description:
  - Runs the retention (forget, the structure check, prune) of jobs of role C(keepdata.storage.backup) where the
    bucket owner's S3 key is, such as the controller or AWX; C(playbooks/backup_retention.yml) uses it. In the role's
    append-only mode (C(backup_append_only)) the host's own S3 user may add to the
    repository but delete nothing, so the host gets no retention timer and its snapshots are forgotten from here.
  - The rules are those of the host's retention timer, run by the same code (the job runner's C(forget)) - the job's
    latest snapshot is always kept, so is its newest snapshot not tagged C(keepdata-suspect), the keep counts,
    C(keep_within) and the tag rules apply per job and host, the repository's first job checks its structure before
    prune, and the snapshot the host recorded as its last good one (O(recorded_good)) is kept as the host's timer keeps it.
  - The password and the S3 keys reach restic only as files in a private temporary directory (C(0700), files
    C(0600)), with the runner's lock, cache and state, removed after the run.
  - Needs C(restic) on C(PATH) where it runs (the controller by default, in the playbook).
author:
  - keepdata.storage maintainers (@keepdata)
options:
  jobs:
    description:
      - The jobs, as the plan of role C(keepdata.storage.backup) gives them (C(_backup_plan.jobs)) - each with at least
        C(name), C(repository), C(repository_id) and C(host), and its C(restic_options), C(retention), C(tag_rules),
        C(prune) and C(check_structure).
      - The host's local paths of a job (its files, cache, state and metrics) are not used.
    type: list
    elements: dict
    required: true
  password:
    description: The repository password.
    type: str
    required: true
  access_key:
    description: The bucket owner's S3 access key (required for an C(s3:) repository).
    type: str
    default: ""
  secret_key:
    description: The bucket owner's S3 secret key (required for an C(s3:) repository).
    type: str
    default: ""
  recorded_good:
    description:
      - The snapshot each job's host recorded as its last good one (the C(good_snapshot) of its state file), a mapping
        of job names to snapshot IDs (8 to 64 lowercase hex digits); C(playbooks/backup_retention.yml) reads it on the
        host with the filter C(keepdata.storage.backup_recorded_good).
      - The host's own retention keeps that snapshot when a suspect one could not be tagged C(keepdata-suspect) (the
        repository then cannot tell which is good); given here, this retention keeps it too. A host can only ask that a
        snapshot be kept, never that one be forgotten.
      - Each name must be one of O(jobs); a value that is not a snapshot ID (a list, a number, a short or upper-case
        ID) is refused before anything runs. An empty string is no record.
    type: raw
    default: {}
attributes:
  check_mode:
    support: full
    description:
      - Lists what each job's retention would forget (C(restic forget --dry-run) for the policy, the tag rules by ID);
        forgets, prunes and checks nothing.
  diff_mode:
    support: none
    description: The result lists the snapshots forgotten (RV(jobs[].forgotten)).
"""

EXAMPLES = r"""
- name: Forget and prune the snapshots of a host's jobs, with the bucket owner's key
  keepdata.storage.backup_retention:
    jobs: "{{ _backup_plan.jobs }}"
    password: "{{ vault_backup_password }}"
    access_key: "{{ vault_backup_owner_access_key }}"
    secret_key: "{{ vault_backup_owner_secret_key }}"
  delegate_to: localhost
"""

RETURN = r"""
jobs:
  description: Each job's retention run, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The job.
      type: str
    host:
      description: The restic host name whose snapshots were looked at.
      type: str
    recorded_good:
      description: The snapshot ID the host recorded as the job's last good one, kept; empty when there was none.
      type: str
    ok:
      description: Whether the run succeeded.
      type: bool
    cause:
      description: Why it failed (C(denied), C(unreachable), C(wrong_password), C(locked), C(damaged), C(failed)); empty when it did not.
      type: str
    cause_text:
      description: The cause in words.
      type: str
    snapshots_before:
      description: The job's snapshots before.
      type: int
    forgotten:
      description: The IDs of the snapshots forgotten (in check mode, those that would be).
      type: list
      elements: str
    snapshots_after:
      description: The job's snapshots after (none in check mode or when they could not be listed).
      type: int
    structure_check:
      description: Whether C(restic check) found the repository sound (none when it did not run).
      type: bool
    log:
      description: The runner's lines.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.backup.retention import failure_message, job_problems, run_retention  # noqa: E402

ARGUMENT_SPEC = dict(
    jobs=dict(type="list", elements="dict", required=True),
    password=dict(type="str", required=True, no_log=True),
    access_key=dict(type="str", default="", no_log=True),
    secret_key=dict(type="str", default="", no_log=True),
    recorded_good=dict(type="raw", default={}),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    problems = job_problems(params["jobs"], params["access_key"], params["secret_key"], params["recorded_good"])
    if problems:
        module.fail_json(msg="keepdata.storage.backup_retention: " + "; ".join(problems))
    results = run_retention(
        params["jobs"], params["password"], params["access_key"], params["secret_key"], recorded_good=params["recorded_good"], dry_run=module.check_mode
    )
    changed = any(result["forgotten"] for result in results)
    failed = failure_message(results)
    if failed:
        module.fail_json(msg="keepdata.storage.backup_retention: retention failed: " + failed, changed=changed, jobs=results)
    module.exit_json(changed=changed, jobs=results)


if __name__ == "__main__":
    main()
