# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Role flags read as Ansible reads a boolean, for the plans (backup_plan, mounts_plan, s3fs_plan).

A role variable set with ``-e name=false`` on the command line, or quoted in YAML, is a string, and any non-empty
string is true in Python: read with ``bool()`` it would do the opposite of what it says (mount over a non-empty
directory, skip host key pinning). Here ``yes``/``no``, ``true``/``false``, ``on``/``off``, ``1``/``0`` are read
as Ansible reads them, and any other value is refused by name.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.parsing.convert_bool import BOOLEANS_FALSE, BOOLEANS_TRUE


def yaml_type(value):
    """How a YAML user calls the type of ``value``: a mapping, a list, a boolean, a number, a string."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a %s" % type(value).__name__


def flag_value(value):
    """``value`` read as Ansible reads a boolean (true, "yes", "on", 1, "false", "no", ...), None when it is none."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, int, float)):
        word = value.strip().lower() if isinstance(value, str) else value
        if word in BOOLEANS_TRUE:
            return True
        if word in BOOLEANS_FALSE:
            return False
    return None


def read_flags(settings, keys):
    """``settings`` with each of ``keys`` that reads as a boolean made one; any other value is left for flag_errors
    to refuse, and a missing or null one stays as it is (the plan's default)."""
    read = {key: flag_value(settings[key]) for key in keys if settings.get(key) is not None}
    return dict(settings, **{key: value for key, value in read.items() if value is not None})


def flag_errors(settings, keys, prefix=""):
    """One message per key of ``keys`` whose value is not a boolean as Ansible reads one, named ``prefix + key``."""
    return [
        "%s%s must be true or false (yes/no), not %s" % (prefix, key, yaml_type(settings[key]))
        for key in keys
        if settings.get(key) is not None and flag_value(settings[key]) is None
    ]


def whole_number(value):
    """A whole number as YAML, ``-e`` or a template gives it (10 or "10"); None for anything else (a boolean, "ten",
    1.5, a list)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def seconds_errors(settings, limits, prefix=""):
    """One message per key of ``limits`` ({key: (lowest, highest or None)}) whose value is not a whole number of
    seconds within its limits, named ``prefix + key``."""
    errors = []
    for key, (low, high) in sorted(limits.items()):
        value = whole_number(settings.get(key))
        if value is None or value < low or (high is not None and value > high):
            bounds = "from %d to %d" % (low, high) if high is not None else "(%d or more)" % low
            errors.append("%s%s must be a whole number of seconds %s" % (prefix, key, bounds))
    return errors
