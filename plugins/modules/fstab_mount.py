#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: fstab_mount
short_description: One /etc/fstab mount with its own files, mounted through its systemd unit
version_added: "0.2.0"
description:
  - Declares one mount point in /etc/fstab (every other line is kept byte for byte), writes the files that belong to
    it (credentials, keys, pinned host keys; root-only, 0600, in a 0700 directory), and mounts it through the unit
    C(systemd-fstab-generator) makes from the line, exactly as at boot.
  - With O(state=absent) the removal is whole or nothing. The mount is unmounted first (if that fails, nothing has
    changed and the message says why), then the line and the files go. Files that sat under the mount point, on the
    local disk, are kept; the mount point itself is removed only when empty.
  - Every check (input, owner and group, the mount point not hiding data) runs before the first change. Shared by the
    roles C(keepdata.storage.mounts) and C(keepdata.storage.s3fs).
  - A FUSE mount (O(fstype) C(fuse.*)) that mountinfo and its unit call mounted is also asked directly, with a time
    limit (O(health_timeout)). When its FUSE daemon is gone, O(state=mounted) heals it (unmount, lazily if something
    still holds it, then start the unit again) and reports C(changed) with the reason in RV(healed); in check mode
    it reports that it would. When it does not answer in time, or answers another error (its server failing), the
    module fails without changing anything.
author:
  - keepdata.storage maintainers (@keepdata)
options:
  path:
    description: Absolute mount point, not C(/) (letters, digits and C(. _ - @ + =)).
    type: str
    required: true
  state:
    description:
      - C(mounted) declares the line, writes the files and mounts (a changed line on a live mount restarts its unit).
      - C(present) declares the line and writes the files only.
      - C(absent) unmounts, removes the line, O(files) and O(remove_files), and the mount point when it is empty.
    type: str
    choices: [mounted, present, absent]
    default: mounted
  src:
    description: The device field (C(//server/share), C(server:/export), C(user@host:path), a bucket name). Required unless O(state=absent).
    type: str
  fstype:
    description: Filesystem type (C(cifs), C(nfs), C(fuse.sshfs), C(fuse.s3fs), ...). Required unless O(state=absent).
    type: str
  opts:
    description: Mount options, one per item (no comma or blank inside one).
    type: list
    elements: str
    default: []
  id_options:
    description: Add C(uid=) and C(gid=) of O(owner) and O(group) (resolved on the host) to the options.
    type: bool
    default: false
  automount:
    description: The line has C(x-systemd.automount); the C(.automount) unit is started instead of the C(.mount) unit.
    type: bool
    default: false
  owner:
    description: Owner of the mount point (name or id), set only while nothing is mounted there.
    type: str
    default: root
  group:
    description: Group of the mount point (name or id), set only while nothing is mounted there.
    type: str
    default: root
  mode:
    description: Mode of the mount point (octal string), set only while nothing is mounted there.
    type: str
    default: "0755"
  allow_non_empty:
    description: Mount even over a non-empty directory (its content is hidden while mounted). A file is always refused.
    type: bool
    default: false
  files:
    description:
      - Files of this mount, written root-only (0600) in O(config_dir); their content is never shown.
      - With O(state=absent) only O(files[].path) is used, to remove them.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path, inside O(config_dir).
        type: str
        required: true
      content:
        description: Content (required unless O(state=absent)).
        type: str
  remove_files:
    description: Files to remove in every state, such as the names an earlier release gave this mount's files.
    type: list
    elements: str
    default: []
  config_dir:
    description: Root-only (0700) directory holding O(files), created when a file is written.
    type: str
    default: /etc/keepdata
  fuse_allow_other:
    description: Turn on C(user_allow_other) in /etc/fuse.conf (needed for C(allow_other) on FUSE mounts).
    type: bool
    default: false
  health_check:
    description:
      - With O(state=mounted), a systemd timer on the host (C(keepdata-mount-health-<unit>.timer)) checks the mount
        point every O(health_interval). When the mount's FUSE daemon is gone (the mount answers "Transport endpoint
        is not connected"), it unmounts the dead mount and starts the unit again, and says so in one journal line.
      - The module writes the program the check runs at O(health_program), from the collection it comes from.
        With O(state=present) or O(state=absent), or when false, the timer and its service are removed (the program
        stays, as other mounts may use it).
    type: bool
    default: false
  health_interval:
    description: How often the timer checks the mount (a systemd time span of at least 10 seconds, such as C(30s) or C(1min)).
    type: str
    default: 30s
  health_timeout:
    description:
      - Seconds a mounted FUSE mount point has to answer, here and in the timer's check. A mount that does not
        answer in time (its server stopped answering) makes the module fail, having changed nothing.
    type: int
    default: 10
  health_program:
    description:
      - Where the health check program goes on the host (root, C(0644); its directory is created C(0755) when missing).
      - The module writes it there, from its own copy of the collection's C(plugins/module_utils/mounts/health.py),
        whenever O(health_check) is on and the file differs.
    type: path
    default: /usr/local/lib/keepdata/mount_health.py
  units_dir:
    description: Directory of the health check's systemd units.
    type: path
    default: /etc/systemd/system
  backup:
    description: Keep a timestamped copy of the fstab before changing it.
    type: bool
    default: false
  fstab:
    description: The fstab file.
    type: path
    default: /etc/fstab
attributes:
  check_mode:
    support: full
    description: Reports every action it would take (files, fstab line, unit start, unmount) and changes nothing.
  diff_mode:
    support: full
    description: Shows the fstab line and the state of the mount's files and mount point before and after; never file contents.
notes:
  - The fstab line ends with C(0 0) (no dump, no fsck), as network and FUSE mounts should.
  - Needs systemd as the host's init system for O(state=mounted) and for unmounting.
"""

EXAMPLES = r"""
- name: An SSHFS mount with its key and pinned host key
  keepdata.storage.fstab_mount:
    path: /mnt/backup-data
    src: backup@nas.example.com:/srv/backup
    fstype: fuse.sshfs
    opts: [_netdev, reconnect, IdentityFile=/etc/keepdata/mounts/mnt-backup_2ddata.key, allow_other, nofail]
    id_options: true
    owner: www-data
    group: www-data
    fuse_allow_other: true
    config_dir: /etc/keepdata/mounts
    files:
      - path: /etc/keepdata/mounts/mnt-backup_2ddata.key
        content: "{{ backup_ssh_key }}"

- name: Remove it (unmounted first; the files go with it)
  keepdata.storage.fstab_mount:
    path: /mnt/backup-data
    state: absent
    files:
      - path: /etc/keepdata/mounts/mnt-backup_2ddata.key
"""

RETURN = r"""
line:
  description: The fstab line of the mount point after the run (null when absent).
  returned: always
  type: str
  sample: "backup@nas.example.com:/srv/backup /mnt/backup-data fuse.sshfs _netdev,reconnect,uid=33,gid=33 0 0"
unit:
  description: The systemd unit of the mount point.
  returned: always
  type: str
  sample: mnt-backup\x2ddata.mount
actions:
  description: What was done (or, in check mode, would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/keepdata/mounts/mnt-backup_2ddata.key", "update /etc/fstab", "start mnt-backup\\x2ddata.mount"]
healed:
  description: Why the mount was remounted (its FUSE daemon was gone), or would be in check mode; empty when it was healthy.
  returned: always
  type: str
  sample: "Transport endpoint is not connected"
health_units:
  description: The health check's service and timer (file names in O(units_dir)), when O(health_check) installs them.
  returned: always
  type: list
  elements: str
  sample: ["keepdata-mount-health-mnt-backup\\x2ddata.service", "keepdata-mount-health-mnt-backup\\x2ddata.timer"]
kept_local_files:
  description: With O(state=absent), what was found under the mount point once unmounted; it is kept.
  returned: when state is absent
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.mounts.mount import Mount  # noqa: E402

ARGUMENT_SPEC = dict(
    path=dict(type="str", required=True),
    state=dict(type="str", choices=["mounted", "present", "absent"], default="mounted"),
    src=dict(type="str"),
    fstype=dict(type="str"),
    opts=dict(type="list", elements="str", default=[]),
    id_options=dict(type="bool", default=False),
    automount=dict(type="bool", default=False),
    owner=dict(type="str", default="root"),
    group=dict(type="str", default="root"),
    mode=dict(type="str", default="0755"),
    allow_non_empty=dict(type="bool", default=False),
    files=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(path=dict(type="str", required=True), content=dict(type="str", no_log=True)),
    ),
    remove_files=dict(type="list", elements="str", default=[]),
    config_dir=dict(type="str", default="/etc/keepdata"),
    fuse_allow_other=dict(type="bool", default=False),
    health_check=dict(type="bool", default=False),
    health_interval=dict(type="str", default="30s"),
    health_timeout=dict(type="int", default=10),
    health_program=dict(type="path", default="/usr/local/lib/keepdata/mount_health.py"),
    units_dir=dict(type="path", default="/etc/systemd/system"),
    backup=dict(type="bool", default=False),
    fstab=dict(type="path", default="/etc/fstab"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, required_if=[("state", "mounted", ("src", "fstype"))])
    Mount(module).run()


if __name__ == "__main__":
    main()
