# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""/etc/fstab as text: one mount point's line replaced, added or removed, every other line kept byte for byte."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# fstab fields are blank-separated; these characters are written as octal escapes (fstab(5)).
_ESCAPES = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}


def escape_field(value):
    return "".join(_ESCAPES.get(char, char) for char in value)


def unescape_field(value):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), value)


def render_line(src, path, fstype, opts):
    return "%s %s %s %s 0 0" % (escape_field(src), escape_field(path), fstype, ",".join(opts) or "defaults")


def entry_path(line):
    """The mount point a line declares, or None for blank lines and comments."""
    fields = line.split()
    if len(fields) < 2 or fields[0].startswith("#"):
        return None
    return unescape_field(fields[1])


def find_line(text, path):
    """The (last) line declaring ``path``, without its line end, or None."""
    found = None
    for line in text.splitlines():
        if entry_path(line) == path:
            found = line
    return found


def set_line(text, path, line):
    """``text`` with every line of ``path`` replaced by ``line`` (at the first one's place), or removed when ``line`` is None."""
    out, placed = [], False
    for raw in text.splitlines(True):
        if entry_path(raw) != path:
            out.append(raw)
        elif line is not None and not placed:
            out.append(line + ("\n" if raw.endswith("\n") else ""))
            placed = True
    if line is not None and not placed:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(line + "\n")
    return "".join(out)


FUSE_ALLOW_OTHER = re.compile(r"^#?\s*user_allow_other\s*$")


def fuse_conf_allowing_other(text):
    """/etc/fuse.conf with ``user_allow_other`` on (a commented-out line is turned on in place)."""
    lines = text.splitlines(True)
    if any(line.strip() == "user_allow_other" for line in lines):
        return text
    for index, line in enumerate(lines):
        if FUSE_ALLOW_OTHER.match(line.rstrip("\n")):
            lines[index] = "user_allow_other\n"
            return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines) + "user_allow_other\n"
