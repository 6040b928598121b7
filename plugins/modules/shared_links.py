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

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.common.host_state import MOUNTINFO, resolve_id  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.health import (  # noqa: E402
    DEAD,
    HEALTHY,
    HUNG,
    dead_message,
    hung_message,
    is_fuse,
    look,
    read_mount_types,
)
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.shared_links import (  # noqa: E402
    SharedLinksError,
    apply_links,
    check_links,
    clash_message,
    find_clashes,
    link_problem,
    link_status,
    links_todo,
)

ARGUMENT_SPEC = dict(
    app_root=dict(type="path", required=True),
    storage=dict(type="path", required=True),
    links=dict(type="list", elements="str", required=True),
    owner=dict(type="str", default="root"),
    group=dict(type="str", default="root"),
    timeout=dict(type="int", default=10),
)


def normalize(params):
    """(app_root, storage, links) without trailing slashes."""
    app_root = params["app_root"].rstrip("/") or params["app_root"]
    storage = params["storage"].rstrip("/") or params["storage"]
    return app_root, storage, [rel.rstrip("/") or rel for rel in params["links"]]


def resolve_owner(owner, group):
    """(uid, gid); SharedLinksError naming every unknown one."""
    uid, gid = resolve_id(owner, "user"), resolve_id(group, "group")
    unknown = ["%s=%s" % pair for pair, value in ((("owner", owner), uid), (("group", group), gid)) if value is None]
    if unknown:
        raise SharedLinksError("unknown user or group on this host: " + ", ".join(unknown))
    return uid, gid


def survey(app_root, storage, links, uid, gid, *, check_mode):
    """(statuses, todo) of the request; SharedLinksError when it is refused whatever the storage holds."""
    errors = check_links(app_root, storage, links)
    if errors:
        raise SharedLinksError("; ".join(errors))
    storage_there = os.path.isdir(storage)
    if not storage_there and not check_mode:
        raise SharedLinksError("storage %s is not a directory: mount the shared storage first" % storage)
    statuses = dict((rel, link_status(app_root, storage, rel, storage_there)) for rel in links)
    problems = [problem for problem in (link_problem(app_root, rel, statuses[rel]) for rel in links) if problem]
    if problems:
        raise SharedLinksError("cannot symlink into the shared storage: " + "; ".join(problems))
    return statuses, links_todo(statuses, uid, gid)


def describe(status, uid, gid):
    """One line of the diff's "before" side."""
    text = status["state"]
    if status["state"] == "ok" and status["target_missing"]:
        text += ", target missing"
    if status["state"] == "ok" and list(status["ids"]) != [uid, gid]:
        text += ", owner %s:%s" % tuple(status["ids"])
    return text


def make_diff(storage, statuses, uid, gid):
    before = "".join("%s: %s\n" % (rel, describe(statuses[rel], uid, gid)) for rel in sorted(statuses))
    after = "".join("%s -> %s\n" % (rel, os.path.join(storage, rel)) for rel in sorted(statuses))
    return dict(before=before, after=after)


def move(app_root, storage, todo, ids, result):
    """Apply ``todo`` with links owned by ``ids`` ([uid, gid]), updating ``result``; the failure message or None."""
    progress = dict(changed=False, done=[])
    try:
        outcome = apply_links(app_root, storage, todo, ids[0], ids[1], progress=progress)
    except (OSError, SharedLinksError) as exc:
        result.update(changed=progress["changed"], done=progress["done"])
        if not progress["changed"]:
            return "nothing was changed: %s" % exc
        return "stopped halfway (changed so far: %s), running again completes the work once the cause is fixed: %s" % (", ".join(progress["done"]), exc)
    result.update(changed=bool(outcome["done"]), done=outcome["done"], clashes=outcome["clashes"])
    return clash_message(app_root, storage, outcome["clashes"]) if outcome["clashes"] else None


def storage_problem(storage, timeout, mountinfo=None):
    """Why a mounted storage cannot be touched (its FUSE daemon gone, or no answer in time), or None.

    Asked in a child process with a time limit before anything here reads the storage: a dead mount would raise
    ENOTCONN halfway, a hung one would hang the play.
    """
    # One read of mountinfo: not mounted, or only an automount's autofs placeholder, is no FUSE type either.
    if not is_fuse(read_mount_types(mountinfo or MOUNTINFO).get(storage, "")):
        return None
    state, detail = look(storage, timeout)
    if state == HEALTHY:
        return None
    if state == HUNG:
        return "the shared storage " + hung_message(storage, detail)
    if state == DEAD:
        return "the shared storage: %s; run the role again (it remounts it) or restart its mount unit" % dead_message(storage, detail)
    return "cannot read the shared storage %s (%s)" % (storage, detail)


def look_over(params, app_root, storage, links, result, *, check_mode):
    """(todo, uid, gid), filling ``result`` (links, diff, clashes); SharedLinksError when refused. Only reads."""
    try:
        uid, gid = resolve_owner(params["owner"], params["group"])
        result["links"], todo = survey(app_root, storage, links, uid, gid, check_mode=check_mode)
        result["diff"] = make_diff(storage, result["links"], uid, gid)
        if os.path.isdir(storage):
            result["clashes"] = find_clashes(app_root, storage, todo)
    except OSError as exc:
        # A path that went away, or a storage that stopped answering meanwhile.
        raise SharedLinksError("cannot read %s: %s; nothing was changed" % (exc.filename or storage, exc.strerror or exc)) from exc
    return todo, uid, gid


def run(params, check_mode, warn=None):
    """(result, failure message or None) for the module's parameters."""
    result = dict(changed=False, done=[], clashes={}, links={})
    app_root, storage, links = normalize(params)
    problem = storage_problem(storage, params["timeout"])
    if problem and check_mode and warn:
        # A check-mode run of the role: the mount task before this one reports that it would heal the storage.
        warn(problem + ": the links cannot be previewed until it answers again")
        return result, None
    try:
        if problem:
            raise SharedLinksError(problem + "; nothing was changed")
        todo, uid, gid = look_over(params, app_root, storage, links, result, check_mode=check_mode)
    except SharedLinksError as exc:
        return result, str(exc)
    if result["clashes"]:
        return result, clash_message(app_root, storage, result["clashes"])
    if check_mode:
        result.update(changed=bool(todo), done=todo)
        return result, None
    return result, move(app_root, storage, todo, [uid, gid], result)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result, failure = run(module.params, module.check_mode, warn=module.warn)
    if not module._diff:
        result.pop("diff", None)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
