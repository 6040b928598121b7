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

from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import paths_nest

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
