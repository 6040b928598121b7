#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: shared_links
short_description: Move app directories into a shared storage and replace them by symlinks
version_added: "0.2.0"
description:
  - For each path of O(links), makes C(<app_root>/<path>) a symlink to C(<storage>/<path>). What the app directory
    holds is moved into the shared storage first; the emptied directory is then replaced by the link.
  - Directories merge. A file or symlink may only land where nothing is, or where an identical copy already is (left
    by an interrupted earlier run, or put there by another server); anything else is a clash, and then the module
    fails having moved nothing. Nothing is ever overwritten or deleted, except emptied directories and app files
    already present identically in the storage.
  - Also fails, having changed nothing, when an app path cannot become the link (a symlink elsewhere, a file, or a
    file or symlink on the way to it), or when O(owner) or O(group) is unknown on the host.
  - A move across filesystems copies each file to a temporary name next to its destination, then renames it, so an
    interrupted run can be run again and completes the work. File owners are not kept across filesystems (the
    shared storage decides them); modes and times are.
  - Used by the role C(keepdata.storage.s3fs), one host at a time.
author:
  - keepdata.storage maintainers (@keepdata)
attributes:
  check_mode:
    support: full
    description: Reports what would change and refuses what would be refused, touching nothing.
  diff_mode:
    support: full
    description: One line per link, its state before and its target after.
options:
  app_root:
    description:
      - Absolute directory of the app; O(links) are relative to it. It may itself be a symlink to a directory.
    type: path
    required: true
  storage:
    description:
      - Absolute directory of the shared storage, already mounted (the module does not check that it is a mount
        point). Links point at C(<storage>/<path>).
      - It must exist, except in check mode. It must not contain O(app_root), nor be inside it.
    type: path
    required: true
  links:
    description:
      - App-relative paths to turn into links, such as C(public/uploads). No C(..), no duplicates, none inside
        another.
    type: list
    elements: str
    required: true
  owner:
    description: User owning the links, a name or a numeric id (resolved on the host).
    type: str
    default: root
  group:
    description: Group owning the links, a name or a numeric id (resolved on the host).
    type: str
    default: root
  timeout:
    description:
      - Seconds a mounted O(storage) has to answer before anything else touches it. A storage whose FUSE daemon is
        gone, or that does not answer in time, makes the module fail, having changed nothing, with what to do; in
        check mode it only warns, since an earlier task of the run (module C(keepdata.storage.fstab_mount)) would heal it.
    type: int
    default: 10
notes:
  - Links already in place with the right owner are left alone, so a second run changes nothing.
"""

EXAMPLES = r"""
- name: Keep uploads in the shared storage
  keepdata.storage.shared_links:
    app_root: /srv/app
    storage: /storage
    links:
      - public/uploads
      - var/exports
    owner: www-data
    group: www-data

- name: Only check that the move would work (fails on clashes, changes nothing)
  keepdata.storage.shared_links:
    app_root: /srv/app
    storage: /storage
    links: [public/uploads]
  check_mode: true
  changed_when: false
"""

RETURN = r"""
done:
  description:
    - App paths changed (moved, linked or given a new owner), in check mode those that would be. On a failure
      halfway, those already changed.
  returned: always
  type: list
  elements: str
  sample: ["public/uploads"]
clashes:
  description:
    - For each app path that could not move, the names (relative to it, directories ending in C(/)) that would have
      been overwritten in the storage. Empty when there was none.
  returned: always
  type: dict
  sample: {"public/uploads": ["avatars/1.png", "cache/"]}
links:
  description:
    - What each app path was before the run. C(state) is C(ok) (the link is in place), C(absent), C(dir) (a
      directory to move), C(not_dir), C(link_other) (with C(target)) or C(parent_not_dir) (with C(parent)); C(ids)
      is the link's C([uid, gid]), C(entries) the names in a directory, C(clashes) what it would overwrite,
      C(target_missing) whether a link in place points at nothing.
  returned: always
  type: dict
  sample:
    public/uploads: {"state": "dir", "entries": ["a.png"], "clashes": [], "ids": [], "target_missing": false}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.mounts.shared_links import converge_links  # noqa: E402

ARGUMENT_SPEC = dict(
    app_root=dict(type="path", required=True),
    storage=dict(type="path", required=True),
    links=dict(type="list", elements="str", required=True),
    owner=dict(type="str", default="root"),
    group=dict(type="str", default="root"),
    timeout=dict(type="int", default=10),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result, failure = converge_links(module.params, module.check_mode, warn=module.warn)
    if not module._diff:
        result.pop("diff", None)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
