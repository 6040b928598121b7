#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_probe
short_description: Check a host before backing it up with restic (read-only)
version_added: "0.2.0"
description:
  - One read-only look at the host for the role C(keepdata.storage.backup) at the paths to back up, the repository's
    disk, the schedules, the SQLite databases, missing packages and the repository's endpoint.
  - Fails, having changed nothing, when anything it was asked to check is wrong, and names every problem (with the
    option that holds it) in one message.
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.read_only
options:
  caller:
    description: Prefix of the failure message (the role using the probe).
    type: str
    default: keepdata.storage.backup_probe
  paths:
    description: Paths to back up; each must exist.
    type: list
    elements: dict
    default: []
    suboptions:
      option:
        description: The option that named the path, for the message.
        type: str
        required: true
      path:
        description: Absolute path.
        type: str
        required: true
  repository_path:
    description:
      - A repository on a local or mounted disk (empty for none). The backup paths must not be on its device
        (unless O(allow_same_device)), since one disk failure would then take the data and its backup.
      - While its fstab mount (RV(repository_mount)) is not mounted, the probe fails (a repository written there would
        land on the disk under the mount point and be hidden once the mount comes up), unless O(mount_repository) is set;
        the device check is then skipped with a warning.
    type: str
    default: ""
  mount_repository:
    description:
      - The caller mounts RV(repository_mount) (through RV(repository_mount_unit)) before it writes to the repository,
        so an fstab mount of O(repository_path) that is not mounted now is not a failure.
    type: bool
    default: false
    version_added: "0.3.0"
  mount_repository_option:
    description: The name the caller gives O(mount_repository), for the message.
    type: str
    default: mount_repository
    version_added: "0.3.0"
  allow_same_device:
    description: Accept backup paths on the same device as O(repository_path).
    type: bool
    default: false
  allow_same_device_option:
    description: The name the caller gives O(allow_same_device), for the message.
    type: str
    default: allow_same_device
  schedules:
    description:
      - systemd calendar expressions, each checked with C(systemd-analyze calendar) (skipped with a warning without it).
      - The longest time between two runs of each is returned in RV(schedule_gaps).
    type: list
    elements: dict
    default: []
    suboptions:
      option:
        description: The option that holds the expression, for the message.
        type: str
        required: true
      value:
        description: The calendar expression (such as C(*-*-* 03:00:00)).
        type: str
        required: true
  packages:
    description: Debian packages whose absence is reported in RV(missing).
    type: list
    elements: str
    default: []
  ports:
    description: C(host:port) addresses (C([v6]:port) for IPv6) that must accept a TCP connection.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for each port and each command.
    type: int
    default: 5
  sqlite_paths:
    description: SQLite database files to dump; each must exist and be a regular file.
    type: list
    elements: dict
    default: []
    suboptions:
      option:
        description: The option that named the file, for the message.
        type: str
        required: true
      path:
        description: Absolute path of the database file.
        type: str
        required: true
  textfile_dir:
    description:
      - The textfile directory of a node_exporter already running on the host (empty for none); it must exist, or the
        metrics written there would reach nobody.
    type: str
    default: ""
  textfile_dir_option:
    description: The name the caller gives O(textfile_dir), for the message.
    type: str
    default: textfile_dir
notes:
  - Read-only; it runs in check mode as well, so a C(--check) run sees what a real run would check.
  - What it could not check (no C(systemd-analyze), a repository disk not mounted yet) is reported as a warning.
"""

EXAMPLES = r"""
- name: Check the host before installing the backup jobs
  keepdata.storage.backup_probe:
    caller: keepdata.storage.backup
    paths:
      - {option: "backup_jobs[0].paths", path: /srv/app1}
    repository_path: /mnt/backup/restic
    schedules:
      - {option: "backup_jobs[0].schedule", value: "*-*-* 03:00:00"}
    packages: [restic]
    ports: ["127.0.0.1:7480"]
    sqlite_paths:
      - {option: "backup_jobs[0].databases[0].path", path: /srv/app1/db.sqlite3}
  register: probe
"""

RETURN = r"""
restic_version:
  description: The version of restic on the host, empty when it is not installed.
  returned: always
  type: str
  sample: 0.14.0
missing:
  description: Packages of O(packages) that are not installed.
  returned: always
  type: list
  elements: str
  sample: ["restic"]
repository_mount:
  description: The mount point (other than C(/)) of the longest /etc/fstab entry holding O(repository_path), empty when none.
  returned: always
  type: str
  sample: /mnt/backup
repository_mounted:
  description: Whether RV(repository_mount) is mounted now.
  returned: always
  type: bool
  sample: true
repository_mount_unit:
  description: The systemd mount unit of RV(repository_mount) (empty when there is none).
  returned: always
  type: str
  sample: mnt-backup.mount
  version_added: 0.3.0
schedule_gaps:
  description:
    - For each calendar expression of O(schedules) that systemd accepts, the longest time in seconds between two of
      its next 16 elapses (0 when it elapses fewer than twice). The backup role derives its alert thresholds from it.
  returned: always
  type: dict
  sample: {"*-*-* 03:00": 86400, "Mon..Fri 02:00": 259200}
same_device:
  description: Backup paths on the same device as O(repository_path).
  returned: always
  type: list
  elements: str
  sample: []
"""


from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.backup.probe import probe  # noqa: E402


def entry_spec():
    return dict(option=dict(type="str", required=True), path=dict(type="str", required=True))


ARGUMENT_SPEC = dict(
    caller=dict(type="str", default="keepdata.storage.backup_probe"),
    paths=dict(type="list", elements="dict", default=[], options=entry_spec()),
    repository_path=dict(type="str", default=""),
    allow_same_device=dict(type="bool", default=False),
    allow_same_device_option=dict(type="str", default="allow_same_device"),
    mount_repository=dict(type="bool", default=False),
    mount_repository_option=dict(type="str", default="mount_repository"),
    schedules=dict(type="list", elements="dict", default=[], options=dict(option=dict(type="str", required=True), value=dict(type="str", required=True))),
    packages=dict(type="list", elements="str", default=[]),
    ports=dict(type="list", elements="str", default=[]),
    timeout=dict(type="int", default=5),
    sqlite_paths=dict(type="list", elements="dict", default=[], options=entry_spec()),
    textfile_dir=dict(type="str", default=""),
    textfile_dir_option=dict(type="str", default="textfile_dir"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    facts, problems, warnings = probe(module.params)
    for warning in warnings:
        module.warn(warning)
    if problems:
        module.fail_json(msg="%s: %s" % (module.params["caller"], "; ".join(problems)), changed=False, **facts)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
