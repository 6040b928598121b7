#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_jobs
short_description: Install restic backup jobs as systemd services and timers, with their secrets
version_added: "0.2.0"
description:
  - Writes the job runner the units start at the C(runner) path of O(service), and beside it C(backup_shared.py), the
    module the runner loads (root, C(0644); their directory created C(0755) when missing), from the module's own copies
    of the collection's C(plugins/module_utils/backup/runner.py) and C(shared.py), so that the runner always matches
    the units and configurations this module writes; the diff names each by size and digest.
  - Writes, for every job planned by the role C(keepdata.storage.backup), its configuration (JSON read by the job
    runner), a C(Type=oneshot) backup service and its timer, a C(keepdata-backup-NAME@.service) template that makes
    a snapshot tagged with its instance, a retention service and its timer, a retry timer armed by the failure
    handler and, when drills are on, a restore drill service and its timer; writes the repository password and the
    S3 keys into root-only C(0600) files that the units hand to the runner with C(LoadCredential=).
  - Writes each job's node_exporter metrics (its C(metrics_dir)) as soon as the job is installed, with the alert
    thresholds of its configuration (C(max_age), C(drill_max_age)); a job new on the host gets a state file that
    records when it was installed, from which a job that never ran is seen late.
  - Removes the units and configuration of jobs that are no longer listed (their timers are stopped first; a run in
    progress is not interrupted); snapshots in the repository are never touched.
  - Reloads systemd when a unit changed, then enables and starts the schedule timers; with C(arm_timers) false in
    O(service), stops and disables every timer of the listed jobs instead (retry timers too), so that the jobs are
    installed and no backup runs before their data is restored.
  - No secret value is written to a unit, a job configuration, the diff or the module's result.
author:
  - keepdata.storage maintainers (@keepdata)
options:
  jobs:
    description:
      - The jobs, as planned by the filter C(keepdata.storage.backup_plan) (its C(jobs) list).
      - Each job holds at least C(name), C(repository), C(enabled), C(schedule), C(randomized_delay) and
        C(s3_credentials_file); the rest is passed to the runner as it is.
    type: list
    elements: dict
    required: true
  service:
    description:
      - Settings shared by every unit, as planned by C(keepdata.storage.backup_plan) (its C(service) mapping).
      - C(runner) (the absolute path of the job runner on the host), C(nice), C(io_class), C(cpu_policy),
        C(memory_max), C(timeout), C(retry_delay), C(forget_schedule), C(drill_enabled), C(drill_schedule); optional
        C(arm_timers) (default true, see the description) and C(host_retention) (default true; false installs no
        retention service nor timer, and removes those of an earlier run - the role's append-only mode, whose
        retention runs from a trusted place with C(keepdata.storage.backup_retention)).
    type: dict
    required: true
  password:
    description: The repository password, written to C(config_dir/repository.password) (root, C(0600)).
    type: str
    required: true
  access_key:
    description: S3 access key of the repository, written with O(secret_key) to C(config_dir/s3.credentials) when a job uses S3.
    type: str
    default: ""
  secret_key:
    description: S3 secret key of the repository.
    type: str
    default: ""
  config_dir:
    description: Directory (root, C(0700)) of the secrets and of the jobs' configurations (C(jobs/NAME.json)).
    type: path
    default: /etc/keepdata/backup
  units_dir:
    description: Directory of the systemd units.
    type: path
    default: /etc/systemd/system
  metrics_dir:
    description:
      - The jobs' node_exporter textfile directory; the metrics files of jobs no longer listed are removed from it
        (left there, they would look like a job that stopped running). Empty to leave it alone.
    type: path
    default: ""
attributes:
  check_mode:
    description: Reports what would be written, removed, reloaded and started, and does none of it.
    support: full
  diff_mode:
    description: Shows each unit and job configuration before and after; secret files are shown as hidden.
    support: full
  platform:
    description: Debian-family hosts with systemd.
    support: full
    platforms: posix
notes:
  - Secrets travel as module arguments (hidden with C(no_log)) and land only in the C(0600) files.
"""

EXAMPLES = r"""
- name: Install the backup jobs
  keepdata.storage.backup_jobs:
    jobs: "{{ plan.jobs }}"
    service: "{{ plan.service }}"
    password: "{{ secrets.password }}"
    access_key: "{{ secrets.access_key }}"
    secret_key: "{{ secrets.secret_key }}"
"""

RETURN = r"""
written:
  description: Files written (created or changed).
  type: list
  elements: str
  returned: always
removed:
  description: Files removed (jobs no longer listed).
  type: list
  elements: str
  returned: always
timers_started:
  description: Schedule timers enabled and started by this run.
  type: list
  elements: str
  returned: always
timers_stopped:
  description: Timers stopped and disabled because their job left the list or was disabled, or held (C(arm_timers) false).
  type: list
  elements: str
  returned: always
actions:
  description: What was done, in order (what would be done, in check mode).
  type: list
  elements: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.backup.jobs import Jobs, input_errors  # noqa: E402

ARGUMENT_SPEC = dict(
    jobs=dict(type="list", elements="dict", required=True),
    service=dict(type="dict", required=True),
    password=dict(type="str", required=True, no_log=True),
    access_key=dict(type="str", default="", no_log=True),
    secret_key=dict(type="str", default="", no_log=True),
    config_dir=dict(type="path", default="/etc/keepdata/backup"),
    units_dir=dict(type="path", default="/etc/systemd/system"),
    metrics_dir=dict(type="path", default=""),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    errors = input_errors(module.params)
    if errors:
        module.fail_json(msg="invalid input, nothing was changed: " + "; ".join(errors))
    jobs = Jobs(module)
    changed = jobs.run()
    result = dict(changed=changed, written=jobs.written, removed=jobs.removed, timers_started=jobs.started, timers_stopped=jobs.stopped, actions=jobs.actions)
    if module._diff and changed:
        result["diff"] = {"before": "\n".join(jobs.before) + "\n", "after": "\n".join(jobs.after) + "\n"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
