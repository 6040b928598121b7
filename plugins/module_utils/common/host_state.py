# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a managed host has now: its mounts (from mountinfo) and the ids of its users and groups."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import pwd

from ansible_collections.keepdata.storage.plugins.module_utils.mounts import health as mount_health

# One mountinfo reader for the modules and the health timer program (standalone, so it lives there).
MOUNTINFO, read_mounts, unescape_mountinfo = mount_health.MOUNTINFO, mount_health.read_mounts, mount_health.unescape_mountinfo


def resolve_id(name, kind):
    """Numeric uid (kind "user") or gid ("group") of a name or a number; None when the host does not know it."""
    name = str(name)
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
    except KeyError:
        return None
