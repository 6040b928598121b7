# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""App directories moved into a shared storage and replaced by symlinks (module keepdata.storage.shared_links).

How app content merges into the shared storage: directories merge; a file (or link) may only land where nothing
is, or where an identical copy already is (an interrupted earlier move); anything else is a clash, reported by its
path relative to the app link, and then nothing moves. Nothing is ever overwritten; only emptied directories and
app files already present identically in the storage are removed.

A move across filesystems copies each file to a temporary name next to its destination, then renames it, so an
interrupted run leaves no half-written file under a real name and can simply be run again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import filecmp
import hashlib
import os
import shutil

from ansible_collections.keepdata.storage.plugins.module_utils.common.host_state import MOUNTINFO, resolve_id
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import paths_nest
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.health import (
    DEAD,
    HEALTHY,
    HUNG,
    dead_message,
    hung_message,
    is_fuse,
    look,
    read_mount_types,
)

# How many clashing names the message shows per link.
CLASH_NAMES_SHOWN = 5


class SharedLinksError(Exception):
    """A refusal already phrased for the user (raised before the change it guards)."""


def is_dir(p):
    """A real directory (not a symlink to one)."""
    return os.path.isdir(p) and not os.path.islink(p)


def same(s, d):
    """Identical regular files, or two symlinks with the same target."""
    if os.path.islink(s) or os.path.islink(d):
        return os.path.islink(s) and os.path.islink(d) and os.readlink(s) == os.readlink(d)
    return os.path.isfile(s) and os.path.isfile(d) and filecmp.cmp(s, d, shallow=False)


def clashes(src, dst, rel=""):
    """Paths (relative to src, directories with a trailing /) that moving src's content into dst would overwrite."""
    out = []
    for name in sorted(os.listdir(src)):
        s, d, r = os.path.join(src, name), os.path.join(dst, name), os.path.join(rel, name)
        if not os.path.lexists(d):
            continue
        if is_dir(s) and is_dir(d):
            out += clashes(s, d, r)
        elif is_dir(s) or is_dir(d) or not same(s, d):
            out.append(r + "/" if is_dir(s) else r)
    return out


def link_clashes(app, shared):
    """What moving the app directory into its shared counterpart would overwrite."""
    if not os.path.lexists(shared):
        return []
    return clashes(app, shared) if is_dir(shared) else [shared + " (not a directory)"]


def _part_name(d):
    """Fixed temporary name next to ``d`` (same length whatever the name, so never too long)."""
    digest = hashlib.sha256(os.path.basename(d).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(os.path.dirname(d), ".keepdata-move-%s.part" % digest)


def _appeared(d):
    return SharedLinksError("%s appeared in the shared storage while moving, nothing overwritten" % d)


def _move_entry(s, d):
    """Move a file or symlink ``s`` to ``d`` (which did not exist), across filesystems through a temporary name."""
    try:
        os.rename(s, d)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    part = _part_name(d)
    if os.path.lexists(part):  # left by an interrupted earlier move of the same name
        os.remove(part)
    if os.path.islink(s):
        os.symlink(os.readlink(s), part)
    else:
        shutil.copy2(s, part)
    if os.path.lexists(d):
        os.remove(part)
        if not same(s, d):
            raise _appeared(d)
    else:
        os.rename(part, d)
    os.remove(s)


def _move_dir(s, d):
    """Move directory ``s`` to ``d`` (which did not exist): a rename, or a merge file by file across filesystems."""
    try:
        os.rename(s, d)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        merge(s, d)


def merge(src, dst):
    """Move src's content into dst, never overwriting (clashes() must be empty), then remove the emptied src.

    Directories merge; a file or link already in dst identically (an interrupted earlier move) is not moved again:
    the src copy is removed. Anything else already in dst raises SharedLinksError, having overwritten nothing.
    """
    if os.path.lexists(dst) and not is_dir(dst):
        raise SharedLinksError("%s is not a directory, nothing overwritten" % dst)
    if os.path.lexists(dst) and os.path.samefile(src, dst):
        raise SharedLinksError("%s and %s are the same directory, nothing moved" % (src, dst))
    created = not os.path.lexists(dst)
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if is_dir(s) and is_dir(d):
            merge(s, d)
        elif os.path.lexists(d):
            if not same(s, d):
                raise _appeared(d)
            os.remove(s)
        elif is_dir(s):
            _move_dir(s, d)
        else:
            _move_entry(s, d)
    if created:
        shutil.copystat(src, dst)
    os.rmdir(src)


def _bad_parent(app_root, rel):
    """The first existing path between app_root and the app path that is a file or a symlink (app_root: not a directory)."""
    if os.path.lexists(app_root) and not os.path.isdir(app_root):
        return app_root
    current = app_root
    for part in rel.split("/")[:-1]:
        current = os.path.join(current, part)
        if not os.path.lexists(current):
            return None
        if os.path.islink(current) or not os.path.isdir(current):
            return current
    return None


def link_status(app_root, storage, rel, storage_mounted):
    """What is at ``app_root/rel`` now, and (once the storage is mounted) what moving it would meet.

    ``state``: ``ok`` (a symlink to exactly storage/rel), ``absent``, ``dir`` (a real directory to move),
    ``not_dir`` (a file or another non-directory), ``link_other`` (a symlink elsewhere, see ``target``) or
    ``parent_not_dir`` (a path between app_root and it is a file or a symlink, see ``parent``; app_root itself
    may be a symlink to a directory). ``ids`` is [uid, gid] of a symlink there, ``entries`` the names in a ``dir``,
    ``clashes`` what a ``dir`` would overwrite in the storage, ``target_missing`` whether an ``ok`` link points at
    nothing (both only known when the storage is mounted).
    """
    app, shared = os.path.join(app_root, rel), os.path.join(storage, rel)
    status = {"state": "absent", "entries": [], "target_missing": False, "ids": [], "clashes": []}
    parent = _bad_parent(app_root, rel)
    if parent:
        status.update(state="parent_not_dir", parent=parent)
    elif os.path.islink(app):
        target = os.readlink(app)
        info = os.lstat(app)
        status["ids"] = [info.st_uid, info.st_gid]
        if target == shared:
            status["state"] = "ok"
            status["target_missing"] = bool(storage_mounted) and not os.path.isdir(shared)
        else:
            status.update(state="link_other", target=target)
    elif os.path.isdir(app):
        status["state"] = "dir"
        status["entries"] = sorted(os.listdir(app))
        if storage_mounted:
            status["clashes"] = link_clashes(app, shared)
    elif os.path.lexists(app):
        status["state"] = "not_dir"
    return status


def link_problem(app_root, rel, status):
    """Why ``app_root/rel`` cannot become the link (None when it can)."""
    path = "%s/%s" % (app_root.rstrip("/"), rel)
    if status["state"] == "link_other":
        return "%s (is a link to %s)" % (path, status["target"])
    if status["state"] == "not_dir":
        return "%s (is not a directory)" % path
    if status["state"] == "parent_not_dir":
        return "%s (%s is not a directory)" % (path, status["parent"])
    return None


def links_todo(statuses, uid, gid):
    """Sorted app paths that need work: not linked yet, link target missing, or link owner not [uid, gid]."""
    return sorted(rel for rel, status in statuses.items() if status["state"] != "ok" or status["target_missing"] or list(status["ids"]) != [uid, gid])


def find_clashes(app_root, storage, rels):
    """{rel: [names]} that moving ``rels`` into the storage would overwrite (only rels with clashes)."""
    found = {}
    for rel in rels:
        app, shared = os.path.join(app_root, rel), os.path.join(storage, rel)
        if is_dir(app):
            names = link_clashes(app, shared)
        elif os.path.lexists(shared) and not os.path.isdir(shared):
            names = [shared + " (not a directory)"]
        else:
            names = []
        if names:
            found[rel] = names
    return found


def clash_message(app_root, storage, found):
    """The refusal for ``found`` ({rel: [names]}): the first names of each link, then what to do."""
    app_root, storage = app_root.rstrip("/"), storage.rstrip("/")
    parts = []
    for rel in sorted(found):
        names = found[rel]
        more = " ..." if len(names) > CLASH_NAMES_SHOWN else ""
        parts.append("%s/%s and %s/%s both hold %s%s" % (app_root, rel, storage, rel, ", ".join(names[:CLASH_NAMES_SHOWN]), more))
    return "would overwrite files in the shared storage, nothing was moved: %s (identical files are fine; move or rename the others first)" % "; ".join(parts)


def check_links(app_root, storage, rels):
    """Problems with the request itself (not the host): absolute paths, ``..``, duplicates, nested links."""
    errors = []
    if not os.path.isabs(app_root) or app_root.rstrip("/") == "":
        errors.append("app_root %s must be an absolute path other than /" % app_root)
    if not os.path.isabs(storage) or storage.rstrip("/") == "":
        errors.append("storage %s must be an absolute path other than /" % storage)
    if paths_nest(app_root, storage):
        errors.append("app_root %s and storage %s must not contain one another" % (app_root, storage))
    seen = []
    for rel in rels:
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(part in ("", ".", "..") for part in parts):
            errors.append('link "%s" must be a relative path under app_root, without "." or ".." (such as public/uploads)' % rel)
            continue
        if rel in seen:
            errors.append('link "%s" is listed twice' % rel)
            continue
        for other in seen:
            if paths_nest(rel, other):
                errors.append('links "%s" and "%s" clash: one is inside the other' % (other, rel))
        seen.append(rel)
    return errors


def apply_links(app_root, storage, rels, uid, gid, *, progress=None):
    """Move each app path of ``rels`` into the storage and link it there: {"clashes": {...}, "done": [...]}.

    Checks again first (another host may have moved the same names meanwhile): a problem raises SharedLinksError,
    clashes are returned with nothing done. Then, for each rel: the storage directory is created, an app directory
    merged into it, the parents of the link and the link created (nothing else replaced), the link's owner set.
    ``done`` lists the rels where something changed. ``progress`` (a dict, optional) is kept up to date as it goes
    (``changed``, ``done``), for an honest report when an OSError stops it halfway; running again completes the work.
    """
    progress = {} if progress is None else progress
    progress.setdefault("changed", False)
    done = progress.setdefault("done", [])

    def changing(rel):
        progress["changed"] = True
        if rel not in done:
            done.append(rel)

    problems = [link_problem(app_root, rel, link_status(app_root, storage, rel, False)) for rel in rels]
    problems = [problem for problem in problems if problem]
    if problems:
        raise SharedLinksError("cannot symlink into the shared storage: " + "; ".join(problems))
    found = find_clashes(app_root, storage, rels)
    if found:
        return {"clashes": found, "done": []}
    for rel in rels:
        app, shared = os.path.join(app_root, rel), os.path.join(storage, rel)
        if not os.path.isdir(shared):
            changing(rel)
            os.makedirs(shared, exist_ok=True)
        if not os.path.islink(app):
            if is_dir(app):
                changing(rel)
                merge(app, shared)
            if not os.path.isdir(os.path.dirname(app)):
                changing(rel)
                os.makedirs(os.path.dirname(app), exist_ok=True)
            changing(rel)
            os.symlink(shared, app)
        info = os.lstat(app)
        if [info.st_uid, info.st_gid] != [uid, gid]:
            changing(rel)
            os.lchown(app, uid, gid)
    return {"clashes": {}, "done": list(done)}


# Module shared_links' own steps, from its parameters: look, refuse or preview, then move and link.
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


def converge_links(params, check_mode, warn=None):
    """(result, failure message or None) of module shared_links for its parameters."""
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
