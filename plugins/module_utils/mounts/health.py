# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Is a mount answering? Asked of the mount point itself, in a child process with a time limit; and healing.

When a FUSE daemon (s3fs, sshfs) dies, /proc/self/mountinfo and the systemd mount unit keep saying "mounted";
only a call into the mount point tells: it answers ENOTCONN. When the server behind it stops
answering, the call never returns: it runs in a child process that is killed at the time limit, so that a hung
mount cannot hang the caller.

Used by the modules (mount_probe, fstab_mount, shared_links) and, on the host, by the health timers that
module fstab_mount installs: the roles copy this file to the host and the timer's service runs
``python3 -I mount_health.py heal --timeout N /mount/point``. Standard library only, for that reason.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import contextlib
import errno
import fcntl
import os
import re
import subprocess
import sys
import time

MOUNTINFO = "/proc/self/mountinfo"
PROGRAM = "/usr/local/lib/keepdata/mount_health.py"
MARKER_DIR = "/run/keepdata/mount-health"

HEALTHY, DEAD, HUNG = "healthy", "dead", "hung"
# What a mount whose daemon is gone answers: ENOTCONN ("Transport endpoint is not connected"), or ECONNABORTED
# once its FUSE connection was aborted. Not EIO: s3fs answers EIO while its server is down, and remounting then
# would fail and leave the app writing to the local directory under the mount point.
DEAD_ERRNOS = (errno.ENOTCONN, errno.ECONNABORTED)
# Source systemd gives the autofs mount of an .automount unit (the real mount stacks on top of it).
AUTOFS_SOURCE = "systemd-1"

# Run in the child: the mount point, then a name that cannot be in any cache, so the daemon must answer.
_LOOK = """
import os, sys
try:
    os.stat(sys.argv[1])
    try:
        os.lstat(sys.argv[2])
    except FileNotFoundError:
        pass
except OSError as exc:
    print(exc.errno, exc.strerror or "")
    sys.exit(3)
"""


def unescape_mountinfo(field):
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mount_entries(mountinfo):
    """(mount id, mount point, file system type, source) of each line of mountinfo, in order."""
    with open(mountinfo) as handle:
        for line in handle:
            before, _sep, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(fields) > 4 and len(tail) > 1:
                yield fields[0], unescape_mountinfo(fields[4]), tail[0], unescape_mountinfo(tail[1])


def read_mounts(mountinfo=MOUNTINFO):
    """{mount point: source} of every mount this host has now (the last one wins on a stacked mount point)."""
    return dict((point, source) for _id, point, _type, source in _mount_entries(mountinfo))


def read_mount_types(mountinfo=MOUNTINFO):
    """{mount point: file system type} (the last one wins on a stacked mount point)."""
    return dict((point, fstype) for _id, point, fstype, _source in _mount_entries(mountinfo))


def is_fuse(fstype):
    """Only a FUSE mount has a daemon that can die under it (fuse.s3fs, fuse.sshfs, ...)."""
    return fstype == "fuse" or fstype.startswith(("fuse.", "fuseblk"))


def fs_mounted(path, mountinfo=MOUNTINFO):
    """Whether a file system (not only an automount's autofs placeholder) is mounted at ``path``."""
    return read_mounts(mountinfo).get(path, AUTOFS_SOURCE) != AUTOFS_SOURCE


def look(path, timeout, python=None):
    """(state, detail) of the mount at ``path``: (HEALTHY, ""), (DEAD, the error), (HUNG, why) or ("error", the error).

    The calls run in a child process, given up after ``timeout`` seconds.
    """
    probe_name = os.path.join(path, ".keepdata-health-%d-%s" % (os.getpid(), os.urandom(6).hex()))
    argv = [python or sys.executable or "/usr/bin/python3", "-I", "-S", "-c", _LOOK, path, probe_name]
    # subprocess, not run_command: also a program run by systemd (stdlib only, no AnsibleModule); the child is killed when it hangs.
    # pylint: disable-next=ansible-bad-function
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # A request the daemon has already taken waits uninterruptibly for its answer: the child dies only
        # once the request ends, so it is killed and left to init rather than waited for.
        child.kill()
        return HUNG, "no answer within %s s" % timeout
    if child.returncode == 0:
        return HEALTHY, ""
    number, _sep, text = out.strip().partition(" ")
    detail = text or err.strip() or "exit status %d" % child.returncode
    if number.isdigit() and int(number) in DEAD_ERRNOS:
        return DEAD, detail
    return "error", detail


def hung_message(path, detail):
    """What to tell about a mount that does not answer: the server behind it most likely stopped answering."""
    # Not "umount -l": the apps would then write to the local directory under the mount point.
    advice = "bring the server back (the mount then answers again by itself), or stop the apps using it and its mount unit"
    return "%s does not answer (%s): the server behind it has most likely stopped answering; %s" % (path, detail, advice)


def dead_message(path, detail):
    return "%s is mounted but its FUSE daemon is gone (%s)" % (path, detail)


@contextlib.contextmanager
def _healing_lock(mount_unit):
    """One healer per mount at a time: the health timer and a playbook run may meet the same dead mount."""
    os.makedirs(MARKER_DIR, mode=0o700, exist_ok=True)
    with open(os.path.join(MARKER_DIR, mount_unit + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _detach(path, mount_unit, run, *, settle, sleep, mountinfo):
    """Take the dead mount away (its unit stopped, else a lazy unmount) and wait until systemd has seen it go; "" or why not."""
    run(["systemctl", "stop", mount_unit])
    if fs_mounted(path, mountinfo):
        rc, out, err = run(["umount", "-l", path])
        if rc != 0 and fs_mounted(path, mountinfo):
            return "cannot unmount %s: %s" % (path, (err or out).strip() or "umount -l exited with %d" % rc)
    deadline = time.monotonic() + settle
    while run(["systemctl", "is-active", mount_unit])[0] == 0:
        if time.monotonic() >= deadline:
            return "systemd still sees %s active %d s after the unmount" % (mount_unit, settle)
        sleep(0.2)
    return ""


def _remount(path, start_unit, run, timeout, mountinfo):
    """Start the unit and check that a file system is mounted there and answers; "" or why not."""
    rc, out, err = run(["systemctl", "start", start_unit])
    if rc != 0:
        return "systemctl start %s failed: %s" % (start_unit, (err or out).strip() or "exit status %d" % rc)
    # The look comes first: it is what mounts an automount.
    state, detail = look(path, timeout)
    if not fs_mounted(path, mountinfo):
        return "nothing is mounted at %s after systemctl start %s" % (path, start_unit)
    if state != HEALTHY:
        return "%s is still not answering after the remount (%s)" % (path, detail)
    return ""


def heal(path, mount_unit, start_unit, run, timeout, *, settle=10.0, sleep=time.sleep, mountinfo=MOUNTINFO):
    """Unmount the dead mount at ``path`` and mount it again through systemd.

    Returns (problem, detached): problem is "" once a file system is mounted there again and answers, else why
    not; detached says whether the dead mount was taken away (a change, even when the rest failed).
    ``run(argv)`` returns (exit status, stdout, stderr). Under a lock per mount, the mount is looked at again
    first: another healer may have remounted it meanwhile, and a healthy mount is never touched. Stopping the
    unit unmounts it; something still using the mount point makes that fail, and a lazy unmount detaches it
    anyway (it is dead: nothing can read it). Once systemd has seen it go, the unit (``start_unit``: the
    .automount of an automount) is started again.
    """
    with _healing_lock(mount_unit):
        if fs_mounted(path, mountinfo):
            state, detail = look(path, timeout)
            if state == HEALTHY:
                return "", False
            if state != DEAD:
                return "%s is not dead but %s now (%s): left as it is" % (path, state, detail), False
        problem = _detach(path, mount_unit, run, settle=settle, sleep=sleep, mountinfo=mountinfo)
        if problem:
            return problem, not fs_mounted(path, mountinfo)
        return _remount(path, start_unit, run, timeout, mountinfo), True


def _run(argv):
    # subprocess, not run_command: also a program run by systemd (stdlib only, no AnsibleModule).
    # pylint: disable-next=ansible-bad-function
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def _marker(mount_unit):
    return os.path.join(MARKER_DIR, mount_unit)


def _say(line):
    """One journal line (the service's stdout goes to the journal)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def heal_command(path, timeout, *, automount=False, run=_run, log=_say, mountinfo=MOUNTINFO):
    """The health timer's check of one mount point; the exit status for systemd (0: healthy or healed).

    A mount this check unmounted and could not mount again is left marked under /run, so the next check tries
    again instead of leaving the app writing to the local directory under the mount point.
    """
    rc, out, err = run(["systemd-escape", "--path", "--suffix=mount", path])
    if rc != 0:
        log("keepdata-mount-health: %s: systemd-escape failed: %s" % (path, (err or out).strip()))
        return 1
    mount_unit = out.strip()
    start_unit = mount_unit[: -len(".mount")] + ".automount" if automount else mount_unit
    marker = _marker(mount_unit)
    if not fs_mounted(path, mountinfo):
        if not os.path.exists(marker):
            return 0  # unmounted on purpose, or not mounted yet at boot: not this check's business
        why = "not mounted since an earlier healing"
    else:
        state, detail = look(path, timeout)
        if state == HEALTHY:
            with contextlib.suppress(FileNotFoundError):
                os.remove(marker)
            return 0
        if state != DEAD:
            log("keepdata-mount-health: %s" % (hung_message(path, detail) if state == HUNG else "%s: %s; left as it is" % (path, detail)))
            return 1
        why = "dead: " + detail
    os.makedirs(MARKER_DIR, mode=0o700, exist_ok=True)
    with open(marker, "w") as handle:
        handle.write(path + "\n")
    problem, detached = heal(path, mount_unit, start_unit, run, timeout, mountinfo=mountinfo)
    if problem:
        log("keepdata-mount-health: %s was %s; healing failed (the next check tries again): %s" % (path, why, problem))
        return 1
    with contextlib.suppress(FileNotFoundError):
        os.remove(marker)
    if detached:
        log("keepdata-mount-health: %s was %s; remounted by %s, answering again" % (path, why, start_unit))
    return 0


def health_unit_names(unit_stem):
    """(service, timer) of the health check of the mount unit ``unit_stem``.mount."""
    name = "keepdata-mount-health-%s" % unit_stem
    return name + ".service", name + ".timer"


def health_units(path, unit_stem, interval, timeout, *, automount=False, program=PROGRAM):
    """{file name: content} of the health check's service and timer for the mount point ``path``."""
    service_name, timer_name = health_unit_names(unit_stem)
    header = "# Managed by Ansible (keepdata.storage, module fstab_mount): changes made here are overwritten.\n"
    service = [
        header,
        "[Unit]",
        "Description=keepdata health check of the mount %s (remounts it when its FUSE daemon is gone)" % path,
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=/usr/bin/python3 -I %s heal --timeout %d%s %s" % (program, timeout, " --automount" if automount else "", path),
        "SyslogIdentifier=keepdata-mount-health",
        "TimeoutStartSec=2min",
        # A look at a hung mount leaves its child waiting in the kernel, unkillable until the request ends: the check
        # is over when the program exits, not when that child is gone (systemd would wait for it to stop).
        "KillMode=process",
    ]
    timer = [
        header,
        "[Unit]",
        "Description=keepdata health check of the mount %s, every %s" % (path, interval),
        "",
        "[Timer]",
        "OnActiveSec=%s" % interval,
        "OnUnitActiveSec=%s" % interval,
        # The default accuracy (1 min) would let a check slip by up to a minute.
        "AccuracySec=1s",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]
    return {service_name: "\n".join(service) + "\n", timer_name: "\n".join(timer) + "\n"}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mount_health.py", description="Check a mount point; remount it when its FUSE daemon is gone.")
    sub = parser.add_subparsers(dest="command", required=True)
    heal_parser = sub.add_parser("heal")
    heal_parser.add_argument("--timeout", type=int, default=10)
    heal_parser.add_argument("--automount", action="store_true")
    heal_parser.add_argument("path")
    look_parser = sub.add_parser("look")
    look_parser.add_argument("--timeout", type=int, default=10)
    look_parser.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "look":
        # A bare mount point answers too: "healthy" also means that a file system is mounted there.
        if not fs_mounted(args.path):
            _say("not-mounted")
            return 1
        state, detail = look(args.path, args.timeout)
        _say(("%s %s" % (state, detail)).strip())
        return 0 if state == HEALTHY else 1
    return heal_command(args.path, args.timeout, automount=args.automount)


if __name__ == "__main__":
    raise SystemExit(main())
