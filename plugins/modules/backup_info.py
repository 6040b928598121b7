#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_info
short_description: The snapshots of a backup job and the state of its restic repository
version_added: "0.2.0"
description:
  - Lists the snapshots of one job of role C(keepdata.storage.backup) (those tagged with the job, of one host),
    oldest first, with their ID, time, host, tags and paths, and the restore size of the latest (or of all).
  - Reports the repository's ID, format version and number of locks; reading its configuration proves the password
    opens it.
  - With O(snapshot) or O(as_of), also the snapshot they choose (RV(selected)), as module
    C(keepdata.storage.backup_restore) would choose it.
  - Read-only (restic C(snapshots), C(ls), C(stats), C(cat config), C(list locks --no-lock)); a command that fails on
    a transient network error is tried three times.
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.read_only
  - keepdata.storage.backup_job
options:
  sizes:
    description: Whose restore size to compute (C(restic stats --mode restore-size), one repository read each).
    type: str
    choices: [none, latest, all]
    default: latest
  repository:
    description: Report RV(repository).
    type: bool
    default: true
notes:
  - Returns plain results, not C(ansible_facts), as Ansible asks of C(_info) modules; register them.
"""

EXAMPLES = r"""
- name: The snapshots of job app
  keepdata.storage.backup_info:
    job: app
  register: app_backups

- name: The snapshot a restore "as of yesterday 18:00" would use, from the old server's backups
  keepdata.storage.backup_info:
    job: app
    source_host: old-server
    as_of: yesterday 18:00
    sizes: none
  register: app_then
"""

RETURN = r"""
host:
  description: The restic host name whose snapshots are listed.
  returned: always
  type: str
  sample: app-1
snapshots:
  description: The job's snapshots of RV(host), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Full snapshot ID.
      type: str
    short_id:
      description: First 8 digits of the ID.
      type: str
    time:
      description: When the snapshot was taken, as restic writes it.
      type: str
    timestamp:
      description: The same in seconds since the epoch.
      type: float
    host:
      description: restic host name.
      type: str
    tags:
      description: Tags, C(keepdata-job=JOB) included.
      type: list
      elements: str
    paths:
      description: Paths backed up.
      type: list
      elements: str
    size:
      description: Bytes a restore writes (per O(sizes)), else null.
      type: int
latest:
  description: The newest snapshot (as in RV(snapshots)), null when there is none.
  returned: always
  type: dict
selected:
  description: The snapshot O(snapshot) or O(as_of) chooses, null when none was asked for.
  returned: always
  type: dict
count:
  description: Number of snapshots.
  returned: always
  type: int
repository:
  description: The repository's state, when O(repository) is true.
  returned: when O(repository)
  type: dict
  contains:
    id:
      description: Repository ID.
      type: str
    version:
      description: Repository format version.
      type: int
    locks:
      description: Locks held now (a lock older than 30 minutes is likely stale).
      type: int
"""

from ansible_collections.keepdata.storage.plugins.module_utils.backup.restore import (  # noqa: E402
    RestoreError,
    epoch_reader,
    open_job,
    pick_snapshot,
    selection_errors,
    snapshot_facts,
    sorted_snapshots,
)
from ansible_collections.keepdata.storage.plugins.module_utils.backup.selection import selection_module  # noqa: E402


def info(params, restic, config, epoch_of):
    host = params["source_host"] or config["host"]
    snapshots = sorted_snapshots(restic.snapshots(host))
    facts = [snapshot_facts(snap) for snap in snapshots]
    for fact in facts:
        fact["size"] = None
    if facts and params["sizes"] != "none":
        for fact in facts if params["sizes"] == "all" else facts[-1:]:
            fact["size"] = restic.restore_size(fact["id"])
    selected = None
    if params["snapshot"] != "latest" or params["as_of"]:
        as_of = epoch_of(params["as_of"]) if params["as_of"] else None
        chosen = pick_snapshot(snapshots, snapshot=params["snapshot"], as_of=as_of, where="job %s of host %s" % (config["name"], host))
        selected = next(fact for fact in facts if fact["id"] == chosen.get("id"))
    result = {"host": host, "snapshots": facts, "latest": facts[-1] if facts else None, "selected": selected, "count": len(facts)}
    if params["repository"]:
        result["repository"] = restic.repository()
    return result


def main():
    module = selection_module(
        "backup_info",
        selection_errors,
        sizes=dict(type="str", choices=["none", "latest", "all"], default="latest"),
        repository=dict(type="bool", default=True),
    )
    try:
        config, restic = open_job(module)
        result = info(module.params, restic, config, epoch_reader(module.run_command))
    except RestoreError as exc:
        module.fail_json(msg="keepdata.storage.backup_info: %s" % exc)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
