# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module backup_probe's checks, read-only: the paths, SQLite files, the repository's device and mount, the schedules,
the textfile directory, the ports, restic's version and the packages missing.

``probe`` runs every check and returns the facts, the problems (each naming its option) and the warnings; the module
fails on a problem before the role changes anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type
import os
import shutil
import stat
import subprocess

from ansible_collections.keepdata.storage.plugins.module_utils.backup.repository import parse_version
from ansible_collections.keepdata.storage.plugins.module_utils.common.host_state import MOUNTINFO, read_mounts
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import systemd_escape_path
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.fstab import entry_path
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.probe import calendar_gap, missing_packages, port_error

FSTAB = "/etc/fstab"
# Enough elapses to see a weekly pattern's longest gap (Mon..Fri: the weekend) in a schedule that runs a few times a day.
CALENDAR_ITERATIONS = 16


def fstab_mount_of(fstab_text, path):
    """The mount point (other than /) of the longest fstab entry holding ``path``, "" when none."""
    if not path:
        return ""
    path = os.path.normpath(path)
    best = ""
    for line in fstab_text.splitlines():
        point = entry_path(line)
        if not point or not point.startswith("/"):
            continue  # comments, blank lines, swap ("none")
        point = os.path.normpath(point)
        if point != "/" and (path == point or path.startswith(point + "/")) and len(point) > len(best):
            best = point
    return best


def existing_ancestor(path):
    """``path`` itself or its deepest existing parent."""
    path = os.path.normpath(path)
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return ""


def check_paths(request):
    return ['%s: "%s" does not exist' % (p["option"], p["path"]) for p in request.get("paths") or [] if not os.path.exists(p["path"])]


def check_sqlite(request):
    problems = []
    for entry in request.get("sqlite_paths") or []:
        try:
            mode = os.stat(entry["path"]).st_mode
        except OSError:
            problems.append('%s: SQLite database "%s" does not exist' % (entry["option"], entry["path"]))
            continue
        if not stat.S_ISREG(mode):
            problems.append('%s: SQLite database "%s" is not a regular file' % (entry["option"], entry["path"]))
    return problems


def check_same_device(request, facts, warnings):
    """Backup paths on the repository's device (the device of the deepest existing part of repository_path)."""
    repository = request.get("repository_path") or ""
    if not repository:
        return []
    if not os.path.isabs(repository):
        return ['repository_path "%s" must be an absolute path' % repository]
    if facts["repository_mount"] and not facts["repository_mounted"]:
        if not request.get("mount_repository"):
            return [
                'the repository "%s" is under the fstab mount point %s, which is not mounted: nothing is written there, since a repository '
                "created now would land on the disk under the mount point and be hidden once the mount comes up (mount it, for example with "
                "systemctl start %s, or set %s to mount it first)"
                % (repository, facts["repository_mount"], facts["repository_mount_unit"], request.get("mount_repository_option") or "mount_repository")
            ]
        warnings.append("the repository's disk %s is not mounted yet: whether the backup paths share its device is not checked" % facts["repository_mount"])
        return []
    device = os.stat(existing_ancestor(repository)).st_dev
    shared = [p for p in request.get("paths") or [] if os.path.exists(p["path"]) and os.stat(p["path"]).st_dev == device]
    facts["same_device"] = [p["path"] for p in shared]
    if not shared or request.get("allow_same_device"):
        return []
    return [
        '%s: "%s" is on the same device as the repository %s, so one disk failure would take both (%s accepts it)'
        % (p["option"], p["path"], repository, request.get("allow_same_device_option") or "allow_same_device")
        for p in shared
    ]


def check_schedules(request, warnings, run=subprocess.run, which=shutil.which, gaps=None):
    """Problems with the calendar expressions; ``gaps`` gets each accepted one's longest time between two runs."""
    gaps = {} if gaps is None else gaps
    schedules = request.get("schedules") or []
    if not schedules:
        return []
    analyze = which("systemd-analyze")
    if not analyze:
        warnings.append("systemd-analyze is not installed: the schedules are not checked")
        return []
    problems = []
    for entry in schedules:
        value = entry["value"]
        bad = any(ord(char) < 32 for char in value) or not value.strip()
        if not bad:
            try:
                argv = [analyze, "calendar", "--iterations=%d" % CALENDAR_ITERATIONS, "--", value]
                # subprocess, not run_command: systemd-analyze runs with a timeout: run_command has none.
                # pylint: disable-next=ansible-bad-function
                proc = run(argv, capture_output=True, text=True, timeout=request["timeout"], check=False)
                bad = proc.returncode != 0
                if not bad:
                    gaps[value] = calendar_gap(proc.stdout)
            except subprocess.TimeoutExpired:
                warnings.append('systemd-analyze did not answer within %d seconds: %s "%s" is not checked' % (request["timeout"], entry["option"], value))
        if bad:
            problems.append('%s "%s" is not a calendar expression systemd accepts' % (entry["option"], value))
    return problems


def check_textfile_dir(request):
    directory = request.get("textfile_dir") or ""
    if not directory or os.path.isdir(directory):
        return []
    return [
        '%s "%s" is not a directory: it must be the textfile directory of the node_exporter that runs on this host (or let the role install one)'
        % (request.get("textfile_dir_option") or "textfile_dir", directory)
    ]


def check_ports(request):
    unreachable = []
    for address in request.get("ports") or []:
        try:
            error = port_error(address, request["timeout"])
        except ValueError:
            error = "not host:port"
        if error:
            unreachable.append("%s (%s)" % (address, error))
    return ["not reachable: " + "; ".join(unreachable)] if unreachable else []


def restic_version(timeout, run=subprocess.run, which=shutil.which):
    binary = which("restic")
    if not binary:
        return ""
    try:
        # subprocess, not run_command: restic runs with a timeout: run_command has none.
        # pylint: disable-next=ansible-bad-function
        proc = run([binary, "version"], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return parse_version(proc.stdout) if proc.returncode == 0 else ""


def packages_missing(packages, warnings, run=subprocess.run):
    try:
        return missing_packages(packages, run=run)
    except OSError:
        warnings.append("dpkg-query is not available: the packages are reported missing without a check")
        return list(packages)


def probe(request, run=None, which=None, fstab=FSTAB, mountinfo=MOUNTINFO):
    """(facts, problems, warnings) for a request shaped like the module's options (``run``: subprocess.run, ``which``: shutil.which)."""
    run, which = run or subprocess.run, which or shutil.which
    warnings = []
    facts = {"restic_version": restic_version(request["timeout"], run, which), "missing": packages_missing(request.get("packages") or [], warnings, run)}
    facts["repository_mount"] = fstab_mount_of(read_text(fstab), request.get("repository_path") or "")
    facts["repository_mounted"] = bool(facts["repository_mount"]) and facts["repository_mount"] in read_mounts(mountinfo)
    facts["repository_mount_unit"] = systemd_escape_path(facts["repository_mount"]) + ".mount" if facts["repository_mount"] else ""
    facts["same_device"] = []
    problems = check_paths(request)
    problems += check_same_device(request, facts, warnings)
    facts["schedule_gaps"] = {}
    problems += check_schedules(request, warnings, run, which, facts["schedule_gaps"])
    problems += check_textfile_dir(request)
    problems += check_ports(request)
    problems += check_sqlite(request)
    return facts, problems, warnings
