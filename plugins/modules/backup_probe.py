#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_probe
short_description: Check a host before backing it up with restic (read-only)
version_added: "0.2.0"
description:
  - One read-only look at the host for the role C(keepdata.storage.backup) at the paths to back up, the repository's
    disk, the schedules, the SQLite databases, missing packages and the repository's endpoint.
  - Fails, having changed nothing, when anything it was asked to check is wrong, and names every problem (with the
    option that holds it) in one message.
author:
  - keepdata.storage maintainers (@keepdata)
options:
  caller:
    description: Prefix of the failure message (the role using the probe).
    type: str
    default: keepdata.storage.backup_probe
  paths:
    description: Paths to back up; each must exist.
    type: list
    elements: dict
    default: []
    suboptions:
      option:
        description: The option that named the path, for the message.
        type: str
        required: true
      path:
        description: Absolute path.
        type: str
        required: true
  repository_path:
    description:
      - A repository on a local or mounted disk (empty for none). The backup paths must not be on its device
        (unless O(allow_same_device)), since one disk failure would then take the data and its backup.
      - While its fstab mount (RV(repository_mount)) is not mounted, the probe fails (a repository written there would
        land on the disk under the mount point and be hidden once the mount comes up), unless O(mount_repository) is set;
        the device check is then skipped with a warning.
    type: str
    default: ""
  mount_repository:
    description:
      - The caller mounts RV(repository_mount) (through RV(repository_mount_unit)) before it writes to the repository,
        so an fstab mount of O(repository_path) that is not mounted now is not a failure.
    type: bool
    default: false
    version_added: "0.3.0"
  mount_repository_option:
    description: The name the caller gives O(mount_repository), for the message.
    type: str
    default: mount_repository
    version_added: "0.3.0"
  allow_same_device:
    description: Accept backup paths on the same device as O(repository_path).
    type: bool
    default: false
  allow_same_device_option:
    description: The name the caller gives O(allow_same_device), for the message.
    type: str
    default: allow_same_device
  schedules:
    description:
      - systemd calendar expressions, each checked with C(systemd-analyze calendar) (skipped with a warning without it).
      - The longest time between two runs of each is returned in RV(schedule_gaps).
    type: list
    elements: dict
    default: []
    suboptions:
      option:
        description: The option that holds the expression, for the message.
        type: str
        required: true
      value:
        description: The calendar expression (such as C(*-*-* 03:00:00)).
        type: str
        required: true
  packages:
    description: Debian packages whose absence is reported in RV(missing).
    type: list
    elements: str
    default: []
  ports:
    description: C(host:port) addresses (C([v6]:port) for IPv6) that must accept a TCP connection.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for each port and each command.
    type: int
    default: 5
  sqlite_paths:
    description: SQLite database files to dump; each must exist and be a regular file.
    type: list
    elements: dict
    default: []
    suboptions:
      option:
        description: The option that named the file, for the message.
        type: str
        required: true
      path:
        description: Absolute path of the database file.
        type: str
        required: true
  textfile_dir:
    description:
      - The textfile directory of a node_exporter already running on the host (empty for none); it must exist, or the
        metrics written there would reach nobody.
    type: str
    default: ""
  textfile_dir_option:
    description: The name the caller gives O(textfile_dir), for the message.
    type: str
    default: textfile_dir
attributes:
  check_mode:
    support: full
    description: Read-only, so it runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
  platform:
    support: full
    description: Debian-family hosts with systemd.
    platforms: posix
notes:
  - Read-only; it runs in check mode as well, so a C(--check) run sees what a real run would check.
  - What it could not check (no C(systemd-analyze), a repository disk not mounted yet) is reported as a warning.
"""

EXAMPLES = r"""
- name: Check the host before installing the backup jobs
  keepdata.storage.backup_probe:
    caller: keepdata.storage.backup
    paths:
      - {option: "backup_jobs[0].paths", path: /srv/app1}
    repository_path: /mnt/backup/restic
    schedules:
      - {option: "backup_jobs[0].schedule", value: "*-*-* 03:00:00"}
    packages: [restic]
    ports: ["127.0.0.1:7480"]
    sqlite_paths:
      - {option: "backup_jobs[0].databases[0].path", path: /srv/app1/db.sqlite3}
  register: probe
"""

RETURN = r"""
restic_version:
  description: The version of restic on the host, empty when it is not installed.
  returned: always
  type: str
  sample: 0.14.0
missing:
  description: Packages of O(packages) that are not installed.
  returned: always
  type: list
  elements: str
  sample: ["restic"]
repository_mount:
  description: The mount point (other than C(/)) of the longest /etc/fstab entry holding O(repository_path), empty when none.
  returned: always
  type: str
  sample: /mnt/backup
repository_mounted:
  description: Whether RV(repository_mount) is mounted now.
  returned: always
  type: bool
  sample: true
repository_mount_unit:
  description: The systemd mount unit of RV(repository_mount) (empty when there is none).
  returned: always
  type: str
  sample: mnt-backup.mount
  version_added: 0.3.0
schedule_gaps:
  description:
    - For each calendar expression of O(schedules) that systemd accepts, the longest time in seconds between two of
      its next 16 elapses (0 when it elapses fewer than twice). The backup role derives its alert thresholds from it.
  returned: always
  type: dict
  sample: {"*-*-* 03:00": 86400, "Mon..Fri 02:00": 259200}
same_device:
  description: Backup paths on the same device as O(repository_path).
  returned: always
  type: list
  elements: str
  sample: []
"""

import os  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.backup.repository import parse_version  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.common.host_state import MOUNTINFO, read_mounts  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import systemd_escape_path  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.fstab import entry_path  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.probe import calendar_gap, missing_packages, port_error  # noqa: E402

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


def entry_spec():
    return dict(option=dict(type="str", required=True), path=dict(type="str", required=True))


ARGUMENT_SPEC = dict(
    caller=dict(type="str", default="keepdata.storage.backup_probe"),
    paths=dict(type="list", elements="dict", default=[], options=entry_spec()),
    repository_path=dict(type="str", default=""),
    allow_same_device=dict(type="bool", default=False),
    allow_same_device_option=dict(type="str", default="allow_same_device"),
    mount_repository=dict(type="bool", default=False),
    mount_repository_option=dict(type="str", default="mount_repository"),
    schedules=dict(type="list", elements="dict", default=[], options=dict(option=dict(type="str", required=True), value=dict(type="str", required=True))),
    packages=dict(type="list", elements="str", default=[]),
    ports=dict(type="list", elements="str", default=[]),
    timeout=dict(type="int", default=5),
    sqlite_paths=dict(type="list", elements="dict", default=[], options=entry_spec()),
    textfile_dir=dict(type="str", default=""),
    textfile_dir_option=dict(type="str", default="textfile_dir"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    facts, problems, warnings = probe(module.params)
    for warning in warnings:
        module.warn(warning)
    if problems:
        module.fail_json(msg="%s: %s" % (module.params["caller"], "; ".join(problems)), changed=False, **facts)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
