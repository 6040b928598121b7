#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mount_probe
short_description: Check a host before mounting on it (read-only)
version_added: "0.2.0"
description:
  - One read-only look at the host, shared by the roles C(keepdata.storage.mounts) and C(keepdata.storage.s3fs),
    at mount points, owners and groups, missing client packages, server ports, SSH host keys and app paths that
    are to become symlinks into a shared storage.
  - Fails, having changed nothing, when anything it was asked to check would make a later change unsafe, and
    names every problem in one message.
author:
  - keepdata.storage maintainers (@keepdata)
extends_documentation_fragment:
  - keepdata.storage.read_only
options:
  caller:
    description: Prefix of the failure message (the role using the probe).
    type: str
    default: keepdata.storage.mount_probe
  timeout:
    description: Seconds to wait for each server port, for C(ssh-keyscan), and for a mounted mount point to answer.
    type: int
    default: 5
  mount_points:
    description:
      - Mount points to look at. One that exists and is not a directory, or is a non-empty directory that is not mounted
        (unless O(mount_points[].allow_non_empty)), is a problem, since mounting there would hide data.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute mount point.
        type: str
        required: true
      allow_non_empty:
        description: Accept a non-empty directory (never a file).
        type: bool
        default: false
  non_empty_hint:
    description: What the user can do about a non-empty mount point, added to that problem.
    type: str
    default: ""
  ports:
    description: C(host:port) addresses (C([v6]:port) for IPv6) that must accept a TCP connection.
    type: list
    elements: str
    default: []
  port_label:
    description: What the addresses in O(ports) are, in the message (such as C(server) or C(S3 endpoint)).
    type: str
    default: server
  port_hint:
    description: How to skip the port check, added to that problem.
    type: str
    default: ""
  ids:
    description: Users and groups that must exist on the host.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name or numeric id.
        type: str
        required: true
      kind:
        description: Whether O(ids[].name) is a user or a group.
        type: str
        choices: [user, group]
        required: true
      option:
        description: The option that named it, used as the key of RV(ids) and in the message.
        type: str
        required: true
  packages:
    description: Debian packages whose absence is reported in RV(missing).
    type: list
    elements: str
    default: []
  host_keys:
    description: SSH host keys to pin; the known_hosts line of each is returned in RV(known_hosts).
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: Key of the result in RV(known_hosts).
        type: str
        required: true
      path:
        description: Mount point, for the message.
        type: str
        required: true
      address:
        description: C(host:port) of the SSH server.
        type: str
        required: true
      name:
        description: Host name as known_hosts writes it (C(host) on port 22, else C([host]:port)).
        type: str
        required: true
      value:
        description: The expected key (C(type base64)); when O(host_keys[].scan) is set the server must offer it.
        type: str
        default: ""
      fingerprint:
        description: The expected C(SHA256:) fingerprint; the scanned key that matches it is pinned.
        type: str
        default: ""
      scan:
        description: Ask the server for its keys with C(ssh-keyscan).
        type: bool
        default: true
  automounts:
    description:
      - Mount points to be mounted on first access (systemd C(.automount) units). The host's kernel must offer autofs
        (C(/dev/autofs)), else they are a problem.
    type: list
    elements: str
    default: []
  links:
    description: App paths that are to become symlinks into a shared storage.
    type: dict
    suboptions:
      app_root:
        description: Directory the paths are relative to.
        type: str
        required: true
      storage:
        description: Shared storage directory (a mount point).
        type: str
        required: true
      paths:
        description: App-relative paths.
        type: list
        elements: str
        default: []
      owner:
        description: Owner the symlinks must have.
        type: str
        default: root
      group:
        description: Group the symlinks must have.
        type: str
        default: root
notes:
  - Read-only; it runs in check mode as well, so a C(--check) run sees what a real run would check.
"""

EXAMPLES = r"""
- name: Check mount points, ports and host keys before changing anything
  keepdata.storage.mount_probe:
    caller: my.role
    mount_points:
      - path: /mnt/backup
    ports: ["nas.example.com:22"]
    ids:
      - {name: www-data, kind: user, option: owner}
    packages: [sshfs, fuse3]
    host_keys:
      - id: mnt-backup
        path: /mnt/backup
        address: nas.example.com:22
        name: nas.example.com
        fingerprint: SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s
  register: probe
"""

RETURN = r"""
mount_points:
  description:
    - For each mount point, whether it exists, is a directory, is mounted (and from which source), and its entries when not mounted.
    - C(health) of a mounted one, asked of the mount point itself within O(timeout) (empty when not mounted) is one of
      C(healthy), C(dead) (its FUSE daemon is gone; module M(keepdata.storage.fstab_mount) remounts it), C(hung)
      (no answer in time, a problem that fails the probe) or C(error); C(health_detail) says what it answered.
  returned: always
  type: dict
  sample: {"/mnt/backup": {"exists": true, "is_dir": true, "mounted": false, "source": "", "entries": [], "health": "", "health_detail": ""}}
ports:
  description: For each address, "" when it answered, else the error.
  returned: always
  type: dict
  sample: {"nas.example.com:22": ""}
ids:
  description: Numeric id for each O(ids[].option), null when unknown.
  returned: always
  type: dict
  sample: {"owner": 33}
missing:
  description: Packages of O(packages) that are not installed.
  returned: always
  type: list
  elements: str
  sample: ["sshfs"]
known_hosts:
  description: The known_hosts line to pin for each O(host_keys[].id).
  returned: always
  type: dict
  sample: {"mnt-backup": "nas.example.com ssh-ed25519 AAAAC3Nza..."}
links:
  description: State of each app path (C(ok), C(absent), C(dir), C(not_dir), C(link_other), C(parent_not_dir)) and what the move would meet.
  returned: always
  type: dict
links_todo:
  description: App paths that still need work (not linked, link owner wrong, or link target missing).
  returned: always
  type: list
  elements: str
autofs:
  description: Whether the host's kernel offers autofs (C(/dev/autofs) exists), which O(automounts) need.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.mounts.probe import probe  # noqa: E402

ARGUMENT_SPEC = dict(
    caller=dict(type="str", default="keepdata.storage.mount_probe"),
    timeout=dict(type="int", default=5),
    mount_points=dict(
        type="list", elements="dict", default=[], options=dict(path=dict(type="str", required=True), allow_non_empty=dict(type="bool", default=False))
    ),
    non_empty_hint=dict(type="str", default=""),
    ports=dict(type="list", elements="str", default=[]),
    port_label=dict(type="str", default="server"),
    port_hint=dict(type="str", default=""),
    ids=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            name=dict(type="str", required=True), kind=dict(type="str", choices=["user", "group"], required=True), option=dict(type="str", required=True)
        ),
    ),
    packages=dict(type="list", elements="str", default=[]),
    host_keys=dict(
        type="list",
        elements="dict",
        default=[],
        no_log=False,
        options=dict(
            id=dict(type="str", required=True),
            path=dict(type="str", required=True),
            address=dict(type="str", required=True),
            name=dict(type="str", required=True),
            value=dict(type="str", default=""),
            fingerprint=dict(type="str", default=""),
            scan=dict(type="bool", default=True),
        ),
    ),
    automounts=dict(type="list", elements="str", default=[]),
    links=dict(
        type="dict",
        options=dict(
            app_root=dict(type="str", required=True),
            storage=dict(type="str", required=True),
            paths=dict(type="list", elements="str", default=[]),
            owner=dict(type="str", default="root"),
            group=dict(type="str", default="root"),
        ),
    ),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    facts, problems = probe(module.params)
    if problems:
        module.fail_json(msg="%s: %s" % (module.params["caller"], " | ".join(problems)), changed=False, **facts)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
