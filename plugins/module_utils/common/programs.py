# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The programs systemd runs on a host, as the modules that write their units install them.

``backup/runner.py`` and ``mounts/health.py`` are standard-library programs kept in module_utils so that unit tests
and modules import them. The module that writes a program's units also writes the program itself, from the copy
its own upload carries: the roles never reach outside themselves for it, and the program always matches the units
and the module that wrote them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

PROGRAM_MODE = 0o644
# The directory a program goes in, when the module creates it: root's, readable by all (systemd runs the program).
PROGRAM_DIR_MODE = 0o755


def program_source(module):
    """The source text of the imported module ``module``, read through its loader: from a checkout's file as from
    the zip an Ansible module runs from."""
    spec = module.__spec__
    return spec.loader.get_data(spec.origin).decode("utf-8")


def program_summary(text):
    """How a diff names a program's content (its text is long and not what a reader needs): its size and digest."""
    data = text.encode("utf-8")
    return "program of %d bytes, sha256 %s" % (len(data), hashlib.sha256(data).hexdigest()[:16])


def program_state(path, text):
    """How the program file at ``path`` stands against ``text``: "" when it is that text, root's and PROGRAM_MODE;
    "absent"; or "different" (its content, owner or mode)."""
    try:
        st = os.stat(path)
        with open(path, "rb") as handle:
            current = handle.read() == text.encode("utf-8")
    except OSError:
        return "absent"
    return "" if current and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (PROGRAM_MODE, 0, 0) else "different"
