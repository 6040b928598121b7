#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_export
short_description: A snapshot of a backup job as a portable tar archive
version_added: "0.2.0"
description:
  - Writes a snapshot of one job of role C(keepdata.storage.backup) as a tar archive (C(restic dump SNAPSHOT /)),
    optionally compressed with zstd, for a person who has no restic. Plain C(tar -xf) (C(tar --zstd -xf)) gives
    the snapshot's regular files, directories and symbolic links with their modes and owners; modification times
    are rounded to the second; each hard link comes back as a separate copy of the file; extended attributes are in
    the archive but GNU tar restores them only when asked (C(tar --xattrs --xattrs-include='*' -xf)).
  - C(restic dump) leaves FIFOs and device files out of the archive (restic 0.14 to 0.18; restic keeps no sockets
    in a snapshot). The module lists the snapshot first, names each such entry in RV(left_out) and warns, also in
    check mode; the archive is still written, since what it lacks can be recreated by hand (C(mkfifo), C(mknod)).
  - The archive is written to a temporary file beside O(dest) (C(0600), root only, since it holds the data unencrypted),
    then renamed, so O(dest) is either the whole archive or not there. Its sha256 is returned.
  - An existing O(dest) is never replaced unless O(force).
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.backup_job
options:
  dest:
    description: The archive's path; its directory must exist.
    type: path
    required: true
  compress:
    description: C(zstd) compresses the archive (needs the C(zstd) command).
    type: str
    choices: [none, zstd]
    default: none
  force:
    description: Replace an existing O(dest).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Chooses the snapshot and checks O(dest); writes nothing.
  diff_mode:
    support: none
    description: The archive is new content; RV(sha256) identifies it.
  platform:
    support: full
    description: Debian-family hosts with systemd.
    platforms: posix
"""

EXAMPLES = r"""
- name: The latest snapshot of job app as a zstd tar for the customer
  keepdata.storage.backup_export:
    job: app
    dest: /var/tmp/app-export.tar.zst
    compress: zstd
  register: app_export

- name: Its checksum
  ansible.builtin.debug:
    msg: "sha256 {{ app_export.sha256 }}"
"""

RETURN = r"""
dest:
  description: The archive written.
  returned: always
  type: str
sha256:
  description: The archive's sha256 (empty in check mode).
  returned: always
  type: str
size:
  description: The archive's size in bytes (0 in check mode).
  returned: always
  type: int
snapshot:
  description: The snapshot exported (see module M(keepdata.storage.backup_info) for its keys).
  returned: always
  type: dict
left_out:
  description: The snapshot's entries the archive does not hold (FIFOs, devices), each with its C(path) and its
    C(type) as restic names it (C(fifo), C(dev), C(chardev)); empty when the archive holds the whole tree.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/srv/app/run/queue", "type": "fifo"}]
"""

import os  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.backup.restore import (  # noqa: E402
    RestoreError,
    chosen_snapshot,
    export,
    left_out_warning,
    open_job,
    selection_errors,
    snapshot_facts,
)
from ansible_collections.keepdata.storage.plugins.module_utils.backup.selection import selection_module  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import abs_path_error  # noqa: E402


def input_errors(params):
    errors = selection_errors(params)
    problem = abs_path_error("dest", params["dest"])
    if problem:
        errors.append(problem)
    elif not os.path.isdir(os.path.dirname(params["dest"])):
        errors.append("dest: the directory %s does not exist" % os.path.dirname(params["dest"]))
    elif os.path.isdir(params["dest"]):
        errors.append("dest %s is a directory: name the archive file" % params["dest"])
    elif os.path.lexists(params["dest"]) and not params["force"]:
        errors.append("dest %s exists: set force to replace it" % params["dest"])
    return errors


def main():
    module = selection_module(
        "backup_export",
        input_errors,
        dest=dict(type="path", required=True),
        compress=dict(type="str", choices=["none", "zstd"], default="none"),
        force=dict(type="bool", default=False),
    )
    try:
        config, restic = open_job(module)
        snapshot = chosen_snapshot(module, restic, config)
        facts = snapshot_facts(snapshot)
        left_out = restic.left_out_of_archive(facts["id"])
        if left_out:
            module.warn(left_out_warning(left_out))
        if module.check_mode:
            module.exit_json(changed=True, dest=module.params["dest"], sha256="", size=0, snapshot=facts, left_out=left_out)
        digest, size = export(restic, config, facts["id"], module.params["dest"], compress=module.params["compress"])
    except (RestoreError, OSError) as exc:
        module.fail_json(msg="keepdata.storage.backup_export: %s" % exc)
    module.exit_json(changed=True, dest=module.params["dest"], sha256=digest, size=size, snapshot=facts, left_out=left_out)


if __name__ == "__main__":
    main()
