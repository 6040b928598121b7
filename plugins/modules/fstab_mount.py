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
      - Needs O(health_program) on the host (the roles install it). With O(state=present) or O(state=absent), or
        when false, the timer and its service are removed.
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
    description: The health check program on the host (the collection's C(plugins/module_utils/mounts/health.py)).
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

import os  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.keepdata.storage.plugins.module_utils.common.host_changes import HostChanges  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.common.host_state import read_mounts, resolve_id  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import (  # noqa: E402
    OCTAL_MODE,
    abs_path_error,
    control_char_errors,
    full,
    systemd_escape_path,
    timespan_error,
)
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.fstab import find_line, fuse_conf_allowing_other, render_line, set_line  # noqa: E402
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.health import (  # noqa: E402
    AUTOFS_SOURCE,
    DEAD,
    HEALTHY,
    HUNG,
    MARKER_DIR,
    dead_message,
    heal,
    health_unit_names,
    health_units,
    hung_message,
    is_fuse,
    look,
)

FUSE_CONF = "/etc/fuse.conf"
HEALTH_STRINGS = ("health_interval", "health_program", "units_dir")


def input_errors(p):
    """Every problem with the options, before anything is read or written on the host."""
    errors = control_char_errors({k: p[k] for k in ("path", "src", "fstype", "opts", "owner", "group", "mode", "remove_files", "config_dir") + HEALTH_STRINGS})
    errors += control_char_errors({"files[%d].path" % i: f["path"] for i, f in enumerate(p["files"])})
    if errors:
        return errors
    if p["path"] == "/" or abs_path_error("path", p["path"]):
        errors.append('path "%s" must be an absolute path other than / (letters, digits and . _ - @ + = only)' % p["path"])
    if p["state"] != "absent":
        for key in ("src", "fstype"):
            if not p[key] or any(c in p[key] for c in " ,\"'"):
                errors.append("%s is required and must hold no blank, comma or quote" % key)
        errors += ["opts[%d] must be one option (no comma, blank or quote)" % i for i, o in enumerate(p["opts"]) if not o or any(c in o for c in " ,\"'")]
        errors += ["files[%d].content is required" % i for i, f in enumerate(p["files"]) if f["content"] is None]
    if timespan_error("health_interval", p["health_interval"], minimum=10):
        errors.append(timespan_error("health_interval", p["health_interval"], minimum=10))
    if not 1 <= p["health_timeout"] <= 600:
        errors.append("health_timeout must be between 1 and 600 seconds")
    errors += [abs_path_error(key, p[key]) for key in ("health_program", "units_dir") if abs_path_error(key, p[key])]
    if not full(OCTAL_MODE, p["mode"]):
        errors.append('mode "%s" must be an octal string such as "0755"' % p["mode"])
    config_dir = p["config_dir"].rstrip("/")
    for index, f in enumerate(p["files"]):
        if os.path.dirname(f["path"]) != config_dir or abs_path_error("files[%d].path" % index, f["path"]):
            errors.append("files[%d].path must be a file directly in config_dir (%s)" % (index, config_dir))
    errors += [
        "remove_files[%d] must be an absolute path without .." % i for i, f in enumerate(p["remove_files"]) if not os.path.isabs(f) or ".." in f.split("/")
    ]
    return errors


class Mount(HostChanges):
    """One run of the module: looks first, then changes, recording each change so a failure reports it."""

    def __init__(self, module):
        super(Mount, self).__init__(module, module.params["path"])
        self.p = module.params
        self.unit_stem = systemd_escape_path(self.p["path"])
        self.unit = self.unit_stem + ".mount"
        self.diff = {"before": "", "after": ""}
        # Why the mount is dead (its FUSE daemon gone), found before any change; "" when it is not.
        self.dead = ""
        self.health_files = []

    # -- helpers ------------------------------------------------------------------------------------------
    def fail(self, msg, **extra):
        super(Mount, self).fail(msg, unit=self.unit, **extra)

    def read(self, path, default=""):
        try:
            with open(path) as handle:
                return handle.read()
        except (IOError, OSError):
            return default

    def write(self, path, text, mode, uid=0, gid=0):
        directory = os.path.dirname(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".keepdata-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.chmod(tmp, mode)
            os.chown(tmp, uid, gid)
            os.rename(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def file_needs_write(self, path, content):
        try:
            st = os.stat(path)
        except OSError:
            return "absent"
        if (st.st_mode & 0o7777, st.st_uid, st.st_gid) != (0o600, 0, 0) or self.read(path, None) != content:
            return "different"
        return ""

    # -- the run -----------------------------------------------------------------------------------------
    def ids(self):
        uid, gid = resolve_id(self.p["owner"], "user"), resolve_id(self.p["group"], "group")
        unknown = ["owner %s" % self.p["owner"]] * (uid is None) + ["group %s" % self.p["group"]] * (gid is None)
        if unknown:
            self.fail("%s: unknown %s on this host; nothing was changed" % (self.p["path"], " and ".join(unknown)))
        return uid, gid

    def present(self):
        p = self.p
        uid, gid = self.ids()
        opts = list(p["opts"]) + (["uid=%d" % uid, "gid=%d" % gid] if p["id_options"] else [])
        line = render_line(p["src"], p["path"], p["fstype"], opts)
        fstab_text = self.read(p["fstab"])
        old_line = find_line(fstab_text, p["path"])
        mounts = read_mounts()
        mounted = p["path"] in mounts
        if p["state"] == "mounted" and not mounted:
            self.refuse_hiding()
        # Only a FUSE mount has a daemon that can die under it; the kernel keeps CIFS and NFS mounts.
        if p["state"] == "mounted" and mounted and mounts[p["path"]] != AUTOFS_SOURCE and is_fuse(p["fstype"]):
            self.check_answers()
        # In check mode an earlier task of the run (the roles' install step) would have installed it.
        if p["state"] == "mounted" and p["health_check"] and not self.module.check_mode and not os.path.isfile(p["health_program"]):
            self.fail("health_program %s is not on this host (the roles install it); nothing was changed" % p["health_program"])
        self.diff = {"before": "fstab: %s\n" % old_line, "after": "fstab: %s\n" % line, "before_header": p["fstab"], "after_header": p["fstab"]}
        # Files first, so the line never names a file that is not there yet.
        self.write_files()
        if not mounted:
            self.mount_point(uid, gid)
        changed_line = old_line != line
        if changed_line:
            if p["backup"] and os.path.exists(p["fstab"]):
                self.act("back up %s" % p["fstab"], self.module.backup_local, p["fstab"])
            self.act("update %s" % p["fstab"], self.write_fstab, set_line(fstab_text, p["path"], line))
            self.systemd_reload()
        if p["state"] == "mounted":
            self.start(changed_line, mounted)
        self.health_timer(p["state"] == "mounted" and p["health_check"])
        self.remove_unused(p["remove_files"], set_line(fstab_text, p["path"], line))
        return line

    def check_answers(self):
        """Ask the mounted mount point itself: mountinfo and the unit still say "mounted" when the FUSE daemon died."""
        path = self.p["path"]
        state, detail = look(path, self.p["health_timeout"])
        if state == HUNG:
            self.fail(hung_message(path, detail) + "; nothing was changed")
        if state == DEAD:
            self.dead = detail
            self.module.warn(dead_message(path, detail) + ("; it would be remounted" if self.module.check_mode else "; remounting it"))
        elif state != HEALTHY:
            self.fail("%s answers an error (%s): its server may be failing; nothing was changed" % (path, detail))

    def heal(self):
        p = self.p
        start_unit = self.unit_stem + (".automount" if p["automount"] else ".mount")
        problem, detached = heal(p["path"], self.unit_stem + ".mount", start_unit, self.module.run_command, p["health_timeout"])
        if problem and detached:
            # The dead mount is gone even though the rest failed: a change, reported as done.
            self.done.append("unmount the dead mount %s" % p["path"])
            raise OSError(problem + "; the mount point is left unmounted until the next run or its health check mounts it")
        if problem:
            raise OSError(problem)

    def health_timer(self, wanted):
        """The health check's service and timer: written and started when ``wanted``, else stopped and removed."""
        p = self.p
        desired = (
            health_units(p["path"], self.unit_stem, p["health_interval"], p["health_timeout"], automount=p["automount"], program=p["health_program"])
            if wanted
            else {}
        )
        names = list(health_unit_names(self.unit_stem))
        timer = names[1]
        paths = dict((name, os.path.join(p["units_dir"], name)) for name in names)
        present = [name for name in names if os.path.exists(paths[name])]
        if not wanted:
            if present:
                # Best effort: a timer that is not loaded any more has nothing to stop. A check running now is
                # stopped too, and a healing's leftover mark removed, so nothing mounts this path again.
                self.act("stop and disable %s" % timer, self.systemctl, "disable", "--now", timer)
                self.act("stop %s" % names[0], self.systemctl, "stop", names[0])
                marker = os.path.join(MARKER_DIR, self.unit_stem + ".mount")
                if os.path.exists(marker):
                    self.act("remove %s" % marker, os.remove, marker)
                for name in present:
                    self.diff["before"] += "health check unit %s: present\n" % name
                    self.act("remove %s" % paths[name], os.remove, paths[name])
                self.systemd_reload()
            return
        self.health_files = names
        changed = [name for name in names if self.read(paths[name], None) != desired[name]]
        for name in changed:
            self.diff["before"] += "health check unit %s: %s\n" % (name, "different" if name in present else "absent")
            self.diff["after"] += "health check unit %s: written\n" % name
            self.act("write %s" % paths[name], self.write, paths[name], desired[name], 0o644)
        if changed:
            self.systemd_reload()
            self.systemctl_or_fail("enable %s" % timer, "enable", timer)
            self.systemctl_or_fail("restart %s" % timer, "restart", timer)
        elif self.systemctl("is-enabled", timer)[0] != 0 or self.systemctl("is-active", timer)[0] != 0:
            self.systemctl_or_fail("enable and start %s" % timer, "enable", "--now", timer)

    def remove_unused(self, paths, fstab_text):
        """Remove files, except one that another fstab line still names (an older release may have shared it)."""
        for path in paths:
            if not os.path.lexists(path):
                continue
            users = [entry for entry in fstab_text.splitlines() if path in entry and not entry.lstrip().startswith("#")]
            if users:
                self.module.warn("%s kept: another /etc/fstab line still uses it" % path)
                continue
            self.diff["before"] += "file %s: present\n" % path
            self.act("remove %s" % path, os.remove, path)

    def write_files(self):
        """The mount's own files (root, 0600, in the 0700 config dir), and FUSE's user_allow_other when asked."""
        p = self.p
        writes = [(f["path"], f["content"], self.file_needs_write(f["path"], f["content"])) for f in p["files"]]
        if any(need for _path, _content, need in writes) and not os.path.isdir(p["config_dir"]):
            self.act("create %s" % p["config_dir"], os.makedirs, p["config_dir"], 0o700)
        for path, content, need in writes:
            if need:
                self.diff["before"] += "file %s: %s\n" % (path, need)
                self.diff["after"] += "file %s: written (0600 root)\n" % path
                self.act("write %s" % path, self.write, path, content, 0o600)
        if p["fuse_allow_other"]:
            fuse = self.read(FUSE_CONF)
            if fuse_conf_allowing_other(fuse) != fuse:
                self.act("turn on user_allow_other in %s" % FUSE_CONF, self.write, FUSE_CONF, fuse_conf_allowing_other(fuse), 0o644)

    def start(self, changed_line, mounted):
        """Mount through the unit: a changed line on a live mount needs a restart, a missing mount a start."""
        unit = self.unit_stem + (".automount" if self.p["automount"] else ".mount")
        self.unit = unit
        if self.dead:
            # Stopping and starting the unit again also picks up a changed line.
            self.diff["before"] += "mounted, dead (%s)\n" % self.dead
            self.diff["after"] += "mounted\n"
            self.act("remount %s: its FUSE daemon was gone (%s)" % (self.p["path"], self.dead), self.heal)
        elif changed_line and mounted:
            self.systemctl_or_fail("restart %s" % unit, "restart", unit)
        elif not mounted or (self.p["automount"] and self.systemctl("is-active", unit)[0] != 0):
            # In check mode this only reports the start (a new line's unit does not exist before a real daemon-reload).
            self.systemctl_or_fail("start %s" % unit, "start", unit)

    def refuse_hiding(self):
        path = self.p["path"]
        if os.path.lexists(path) and not os.path.isdir(path):
            self.fail("refusing to mount over %s: it is not a directory; nothing was changed" % path)
        entries = sorted(os.listdir(path)) if os.path.isdir(path) else []
        if entries and not self.p["allow_non_empty"]:
            self.fail(
                "refusing to mount over %s: it contains %s (data there would be hidden; move it away or allow a non-empty mount point);"
                " nothing was changed" % (path, ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else ""))
            )

    def mount_point(self, uid, gid):
        path, mode = self.p["path"], int(self.p["mode"], 8)
        if not os.path.isdir(path):
            self.diff["before"] += "mount point: absent\n"
            self.diff["after"] += "mount point: %s %s:%s\n" % (self.p["mode"], self.p["owner"], self.p["group"])

            def create():
                os.makedirs(path)
                os.chmod(path, mode)
                os.chown(path, uid, gid)

            self.act("create %s" % path, create)
            return
        st = os.stat(path)
        if (st.st_mode & 0o7777, st.st_uid, st.st_gid) != (mode, uid, gid):
            self.diff["before"] += "mount point: %04o %d:%d\n" % (st.st_mode & 0o7777, st.st_uid, st.st_gid)
            self.diff["after"] += "mount point: %04o %d:%d\n" % (mode, uid, gid)

            def fix():
                os.chmod(path, mode)
                os.chown(path, uid, gid)

            self.act("set owner and mode of %s" % path, fix)

    def write_fstab(self, text):
        st = os.stat(self.p["fstab"]) if os.path.exists(self.p["fstab"]) else None
        self.write(self.p["fstab"], text, (st.st_mode & 0o7777) if st else 0o644, st.st_uid if st else 0, st.st_gid if st else 0)

    def systemd_reload(self):
        # systemd-fstab-generator only turns fstab lines into units on a daemon-reload.
        if os.path.isdir("/run/systemd/system"):
            self.systemctl_or_fail("systemctl daemon-reload", "daemon-reload")

    def absent(self):
        p = self.p
        path = p["path"]
        fstab_text = self.read(p["fstab"])
        old_line = find_line(fstab_text, path)
        self.diff = {"before": "fstab: %s\n" % old_line, "after": "fstab: None\n", "before_header": p["fstab"], "after_header": p["fstab"]}
        if path in read_mounts():
            self.diff["before"] += "mounted\n"
            # The health check must not mount again what is being removed: it is paused while the mount goes (and
            # started again if it cannot go, so that a refused removal changes nothing), then removed.
            paused = self.pause_health_timer()
            self.unmount(paused)
        self.health_timer(False)
        if old_line is not None:
            if p["backup"]:
                self.act("back up %s" % p["fstab"], self.module.backup_local, p["fstab"])
            self.act("update %s" % p["fstab"], self.write_fstab, set_line(fstab_text, path, None))
            self.systemd_reload()
        self.remove_unused([f["path"] for f in p["files"]] + p["remove_files"], set_line(fstab_text, path, None))
        kept = sorted(os.listdir(path)) if os.path.isdir(path) and not os.path.islink(path) else []
        if kept:
            self.module.warn("%s holds files of its own, on the local disk under the former mount point: kept (%s)" % (path, ", ".join(kept[:5])))
        elif os.path.isdir(path) and not os.path.islink(path):
            self.diff["before"] += "mount point: present\n"
            self.act("remove the empty mount point %s" % path, os.rmdir, path)
        return kept

    def pause_health_timer(self):
        """Stop this mount's health timer and any check running now, if there is one; the timer's name, or ""."""
        service, timer = health_unit_names(self.unit_stem)
        if self.module.check_mode or self.systemctl("is-active", timer)[0] != 0:
            return ""
        self.systemctl("stop", timer, service)
        return timer

    def unmount(self, paused_timer=""):
        """Unmount before anything else: a busy mount fails here, with nothing changed."""
        path = self.p["path"]
        if self.module.check_mode:
            self.actions.append("unmount %s" % path)
            return
        for unit in (self.unit_stem + ".automount", self.unit_stem + ".mount"):
            self.systemctl("stop", unit)
        if path in read_mounts():
            self.module.run_command(["umount", path])
        if path in read_mounts():
            self.module.run_command(["umount", path])  # a stacked mount (automount + real mount) needs two
        if path in read_mounts():
            fuser = self.module.get_bin_path("fuser")
            rc, out, err = self.module.run_command([fuser, "-vm", path]) if fuser else (1, "", "")
            users = (err or out).strip().replace("\n", "; ") if rc == 0 else "fuser -vm %s shows which processes" % path
            if paused_timer:
                self.systemctl("start", paused_timer)
            self.fail(
                "cannot unmount %s: it is busy (%s); nothing was removed (its fstab line and files are kept): stop what uses it and run again" % (path, users),
                kept_local_files=[],
            )
        self.done.append("unmount %s" % path)
        self.actions.append("unmount %s" % path)

    def run(self):
        errors = input_errors(self.p)
        if errors:
            self.module.fail_json(msg="invalid options: " + "; ".join(errors))
        result = {}
        if self.p["state"] == "absent":
            result["kept_local_files"] = self.absent()
            result["line"] = None
        else:
            result["line"] = self.present()
        result.update(changed=bool(self.actions), actions=self.actions, unit=self.unit, healed=self.dead, health_units=self.health_files)
        if self.module._diff:
            result["diff"] = self.diff
        self.module.exit_json(**result)


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
