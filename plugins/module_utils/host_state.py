# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a managed host has now: its mounts (from mountinfo) and the ids of its users and groups."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import pwd
import re

MOUNTINFO = "/proc/self/mountinfo"


def unescape_mountinfo(field):
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mounts(mountinfo=MOUNTINFO):
    """{mount point: source} of every mount this host has now (the last one wins on a stacked mount point)."""
    mounts = {}
    with open(mountinfo) as handle:
        for line in handle:
            before, _sep, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(fields) > 4 and len(tail) > 1:
                mounts[unescape_mountinfo(fields[4])] = unescape_mountinfo(tail[1])
    return mounts


def resolve_id(name, kind):
    """Numeric uid (kind "user") or gid ("group") of a name or a number; None when the host does not know it."""
    name = str(name)
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
    except KeyError:
        return None
