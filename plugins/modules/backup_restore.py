#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_restore
short_description: Restore a snapshot of a backup job, never over data that is there
version_added: "0.2.0"
description:
  - Restores a snapshot of one job of role C(keepdata.storage.backup) (the latest, one by ID, or the newest at or
    before a time), whole or some of its paths, to the original paths or below another directory, from this host's
    snapshots or, with O(source_host), from another host's (clone or migrate through the same repository).
  - Never loses what is there. Every check runs first; a destination that is not empty fails the module unless
    O(move_aside), and then its content is renamed to C(DEST.keepdata-moved-TIME) (RV(moved_aside)), never deleted.
    A destination directory that holds only directories and symbolic links (no file, no mount point, nothing unreadable,
    such as the links into the shared storage that roles C(keepdata.storage.s3fs) and C(keepdata.storage.mounts) make
    in a rebuilt host's app directory) holds no data and is replaced; a file at a destination is data.
  - Either completes or changes nothing at the destinations. The paths are restored into a staging directory beside
    their destinations (same file system) and checked with restic's C(--verify); only when every path is staged are
    the current contents renamed aside and the staged trees renamed into place. The whole snapshot is staged by one
    restic restore (much faster than selecting files); chosen O(paths) are staged one by one.
  - Sparse files stay sparse where the host's restic can restore them so (C(restic restore --sparse), restic 0.15 and
    later, Debian 13); restic 0.14 (Debian 12) writes their holes out as zeros, so they take their full size.
  - To the original paths, stops the job's C(services) that are running before the first change and starts them
    again afterwards, also when the restore failed; then re-imports the job's database dumps from the snapshot
    (SQLite replaces the file; PostgreSQL and MySQL first save the current database aside as a dump under the
    role's state directory, then load the snapshot's dump).
  - A restore to the original paths is noted in the job's state once its data is back, before any service starts
    (with the snapshot when the whole job came back - every path, every database).
  - A destination that is a mount point is refused (it cannot be renamed aside); restore below another directory, or
    leave it out with O(keep_mounted) when it holds data.
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.backup_job
options:
  paths:
    description: Paths to restore, each one of the snapshot's paths or a path below one. Default every path of the snapshot.
    type: list
    elements: str
    default: []
  target:
    description:
      - Restore below this directory (C(TARGET/srv/app) for C(/srv/app)) instead of to the original paths. Services
        are then left alone and databases are not imported (their dumps land as files below O(target)).
    type: path
    default: ""
  move_aside:
    description: Move the current content of a destination that is not empty aside (renamed, never deleted) instead of failing.
    type: bool
    default: false
  databases:
    description: Re-import the job's databases from their dumps after the files (only to the original paths).
    type: bool
    default: true
  stop_services:
    description: Stop the job's running C(services) during a restore to the original paths, and start them afterwards.
    type: bool
    default: true
  keep_mounted:
    description:
      - Leave out a destination that is a mount point holding data, instead of failing (a mount point cannot be moved
        aside). On a rebuilt host the shared storage that C(playbooks/recover.yml) mounted again holds its data; the
        snapshot's copy of it is not restored over it. An empty mount point (nothing but C(lost+found)) is still
        refused.
    type: bool
    default: false
  skip_restored:
    description:
      - Do nothing when this host's last restore of the whole job (every path, every database, to the original paths)
        was the chosen snapshot and the job has not backed up since - a retried run meets its own earlier effect
        instead of a destination with data (RV(restored_already)). With O(start_services), the job's services that
        are not running are started then (C(changed) only if one was). C(playbooks/recover.yml) sets it.
    type: bool
    default: false
  start_services:
    description:
      - Once every path is restored and every database imported, start all of the job's C(services), also those that
        were not running (a rebuilt host whose app waits for its data; C(playbooks/recover.yml) sets it). When the
        restore fails, only the services it stopped are started again.
    type: bool
    default: false
  verify:
    description: Have restic read every restored file back and compare it with the snapshot (C(restore --verify)).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Chooses the snapshot, checks every destination and returns RV(plan) of what would be restored where; changes nothing.
  diff_mode:
    support: full
    description: The plan, and what moves aside, as the diff's after text.
  platform:
    support: full
    description: Debian-family hosts with systemd.
    platforms: posix
"""

EXAMPLES = r"""
- name: Restore job app as of yesterday 18:00, moving what is there now aside
  keepdata.storage.backup_restore:
    job: app
    as_of: yesterday 18:00
    move_aside: true

- name: Clone the app of old-server onto this host
  keepdata.storage.backup_restore:
    job: app
    source_host: old-server

- name: One directory of the latest snapshot, below /var/tmp/inspect
  keepdata.storage.backup_restore:
    job: app
    paths: [/srv/app/uploads]
    target: /var/tmp/inspect
"""

RETURN = r"""
snapshot:
  description: The snapshot restored (see module M(keepdata.storage.backup_info) for its keys).
  returned: always
  type: dict
plan:
  description: What is (or in check mode would be) restored where, one line each.
  returned: always
  type: list
  elements: str
restored:
  description: The paths restored, with their destination, files and bytes.
  returned: always
  type: list
  elements: dict
kept_mounted:
  description: The destinations left as they are (O(keep_mounted)).
  returned: always
  type: list
  elements: str
moved_aside:
  description: Where the previous content went (C(path), C(moved_to)); empty when nothing was there.
  returned: always
  type: list
  elements: dict
databases:
  description: The databases re-imported.
  returned: always
  type: list
  elements: str
services_stopped:
  description: The services stopped for the restore.
  returned: always
  type: list
  elements: str
services_started:
  description: The services started again (with O(start_services), every service of the job).
  returned: always
  type: list
  elements: str
cause:
  description:
    - On failure, C(no_snapshot) when the repository holds no snapshot of the job for the host (the message names the
      hosts whose snapshots of the job it holds), C(not_installed) when the job's configuration is not on the host,
      C(not_empty) when a destination holds data and O(move_aside) is not set (nothing was changed); empty for any
      other failure.
  returned: failure
  type: str
restored_already:
  description: True when O(skip_restored) found the job restored already from the chosen snapshot.
  returned: when O(skip_restored) found it so
  type: bool
"""

import time  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.backup.restore import (  # noqa: E402
    Restore,
    RestoreError,
    chosen_snapshot,
    describe_plan,
    open_job,
    record_restore,
    restored_already,
    selection_errors,
)
from ansible_collections.keepdata.storage.plugins.module_utils.backup.selection import selection_module  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import abs_path_error, data_path_error  # noqa: E402


def input_errors(params):
    errors = selection_errors(params)
    for index, path in enumerate(params["paths"]):
        problem = data_path_error("paths[%d]" % index, path)
        if problem:
            errors.append(problem)
    if params["target"]:
        problem = abs_path_error("target", params["target"].rstrip("/"))
        if problem:
            errors.append(problem)
    return errors


def result_of(restore, changed):
    done = restore.done
    return dict(
        changed=changed,
        snapshot=restore.facts,
        plan=restore.plan_lines,
        restored=[
            {"source": item["source"], "destination": item["destination"], "files": item["files"], "bytes": item["bytes"]}
            for item in restore.items
            if item["destination"] in done["restored"]
        ],
        moved_aside=done["moved_aside"],
        kept_mounted=restore.kept_mounts,
        databases=done["imported"],
        services_stopped=done["stopped"],
        services_started=done["started"],
    )


def main():
    module = selection_module(
        "backup_restore",
        input_errors,
        paths=dict(type="list", elements="str", default=[]),
        target=dict(type="path", default=""),
        move_aside=dict(type="bool", default=False),
        databases=dict(type="bool", default=True),
        stop_services=dict(type="bool", default=True),
        start_services=dict(type="bool", default=False),
        keep_mounted=dict(type="bool", default=False),
        skip_restored=dict(type="bool", default=False),
        verify=dict(type="bool", default=True),
    )
    restore = None
    try:
        config, restic = open_job(module)
        snapshot = chosen_snapshot(module, restic, config)
        restore = Restore(restic, config, snapshot, module.params)
        if module.params["skip_restored"] and restore.whole_job() and restored_already(config, snapshot):
            restore.plan_lines = describe_plan(restore.facts, [], [], []) + ["restored already on this host, no backup since: nothing to do"]
            started = []
            if module.params["start_services"] and not module.check_mode:
                started = restore.start_stopped_services()
                restore.plan_lines += ["started: %s" % ", ".join(started)] if started else []
            module.exit_json(restored_already=True, **result_of(restore, bool(started)))
        restore.plan(count=module.check_mode)
        diff = {"before": "", "after": "\n".join(restore.plan_lines) + "\n"}
        if module.check_mode:
            module.exit_json(diff=diff, **result_of(restore, True))
        # Noted once the data is back, before the services start: the snapshot only when the whole job came back.
        noted = None if module.params["target"] else lambda: record_restore(config, time.time(), snapshot["id"] if restore.whole_job() else "")
        restore.apply(data_back=noted)
    except (RestoreError, OSError) as exc:
        extra = {"cause": getattr(exc, "cause", "")}
        if restore is not None and restore.plan_lines is not None:
            done = restore.done
            changed = bool(done["moved_aside"] or done["restored"] or done["imported"] or done["stopped"] or done["created_dirs"])
            extra.update(result_of(restore, changed))
        module.fail_json(msg="keepdata.storage.backup_restore: %s" % exc, **extra)
    module.exit_json(diff=diff, **result_of(restore, True))


if __name__ == "__main__":
    main()
