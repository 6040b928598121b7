# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module fstab_mount's logic: one mount's fstab line, files, mount point, unit and health check on a host.

``input_errors`` checks every option before anything is read; ``Mount`` looks first, then changes, recording each
change (``HostChanges``) so that a failure says what was done.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

from ansible_collections.keepdata.storage.plugins.module_utils.common.host_changes import HostChanges
from ansible_collections.keepdata.storage.plugins.module_utils.common.host_state import read_mounts, resolve_id
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import (
    OCTAL_MODE,
    abs_path_error,
    control_char_errors,
    full,
    systemd_escape_path,
    timespan_error,
)
from ansible_collections.keepdata.storage.plugins.module_utils.common.programs import (
    PROGRAM_DIR_MODE,
    PROGRAM_MODE,
    program_source,
    program_state,
    program_summary,
)
from ansible_collections.keepdata.storage.plugins.module_utils.mounts import health as mount_health
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.fstab import find_line, fuse_conf_allowing_other, render_line, set_line
from ansible_collections.keepdata.storage.plugins.module_utils.mounts.health import (
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
        self.install_health_program()
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

    def install_health_program(self):
        """The program the health service runs, written from this module's own copy (the units and the program
        come from the same collection); left in place when the check goes, as other mounts may use it."""
        path, text = self.p["health_program"], program_source(mount_health)
        state = program_state(path, text)
        if not state:
            return
        self.diff["before"] += "health check program %s: %s\n" % (path, state)
        self.diff["after"] += "health check program %s: %s\n" % (path, program_summary(text))
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            self.act("create %s" % directory, os.makedirs, directory, PROGRAM_DIR_MODE)
        self.act("write %s" % path, self.write, path, text, PROGRAM_MODE)

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
