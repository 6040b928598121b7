# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Input rules shared by the roles' plans and the modules that run on managed hosts.

Every rule is a full match (``re.fullmatch``): ``$`` would also match before a final newline, and a value
that reaches /etc/fstab, a unit, a file name or a command line must never carry a control character.
Messages name the option and, where the value cannot be a secret, show it; they never show a value that
holds a control character (it could split the message or the terminal line).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

# Mount points, app roots, config directories: absolute, no "." or ".." component, a conservative alphabet
# that needs no quoting in fstab, systemd units or ssh options.
PATH_CHARS = r"[A-Za-z0-9._@+=-]+"
ABS_PATH = re.compile(r"(?:/%s)+" % PATH_CHARS)
REL_PATH = re.compile(r"%s(?:/%s)*" % (PATH_CHARS, PATH_CHARS))
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
FSTAB_OPTION = re.compile(r"[A-Za-z0-9_.@:/=+-]+")
OCTAL_MODE = re.compile(r"0?[0-7]{3}")
# A login or group name (Debian's useradd rule, plus a trailing $ for machine accounts), or a numeric id.
ACCOUNT = re.compile(r"[a-z_][a-z0-9_.-]*\$?|[0-9]+")
VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")
# A systemd time span such as "30min", "1h 30min", "12h" or "90" (seconds).
_SPAN_UNIT = r"(?:us|ms|s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?|w|weeks?)"
TIME_SPAN = re.compile(r"[0-9]+ ?{u}?(?: [0-9]+ ?{u}?)*".format(u=_SPAN_UNIT))
_SPAN_SECONDS = (
    (("us", "ms"), 0),
    (("s", "sec", "second", "seconds", ""), 1),
    (("m", "min", "minute", "minutes"), 60),
    (("h", "hr", "hour", "hours"), 3600),
    (("d", "day", "days"), 86400),
    (("w", "week", "weeks"), 604800),
)


def as_list(value, separators=","):
    """A list option as given: role variables are not converted by the argument spec, so "a,b" may still be a string."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        for separator in separators[1:]:
            value = value.replace(separator, separators[0])
        return [part for part in value.split(separators[0]) if part]
    return list(value)


def has_control_chars(value):
    return isinstance(value, str) and bool(CONTROL_CHARS.search(value))


def control_char_errors(values):
    """Errors for every string (or string in a list) of ``values`` ({option name: value}) holding a control character."""
    errors = []
    for name, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for index, item in enumerate(items):
            if has_control_chars(item):
                where = "%s[%d]" % (name, index) if isinstance(value, (list, tuple)) else name
                errors.append("%s must not contain control characters (newline, tab, ...)" % where)
    return errors


def full(pattern, value):
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def abs_path_error(option, value, what="an absolute path other than /"):
    """None when ``value`` is an acceptable absolute path, else the message."""
    if full(ABS_PATH, value) and not any(part in (".", "..") for part in value.split("/")):
        return None
    return '%s "%s" must be %s (letters, digits and . _ - @ + = only)' % (option, value, what)


def data_path_error(option, value):
    """None when ``value`` is an absolute path of data to back up or restore, else the message: any name (blanks,
    quotes and letters of any alphabet included: such paths reach restic as separate arguments or through a JSON file,
    never through a shell, fstab or a unit line), but no control character, no . or .. component and no //."""
    if not isinstance(value, str) or has_control_chars(value):
        return "%s must not contain control characters (newline, tab, ...)" % option
    parts = value.split("/")
    if not value.startswith("/") or value == "/" or "" in parts[1:] or any(part in (".", "..") for part in parts):
        return '%s "%s" must be an absolute path other than /, without . or .. or //' % (option, value)
    return None


def paths_nest(first, second):
    """True when the two paths are the same or one lies inside the other ("a" and "a/b", never "a" and "ab")."""
    first, second = first.rstrip("/") + "/", second.rstrip("/") + "/"
    return first.startswith(second) or second.startswith(first)


def rel_path_ok(value):
    return full(REL_PATH, value) and not any(part in (".", "..") for part in value.split("/"))


def fstab_option_problem(value):
    """fstab options are comma-separated: one option, no blank, comma or quote. The value is never echoed."""
    if full(FSTAB_OPTION, value):
        return None
    name = value.split("=", 1)[0]
    if has_control_chars(name):
        name = "?"
    return 'option "%s%s" must be one fstab option (no comma, space or quote)' % (name, "=..." if "=" in value else "")


def fstab_option_error(option, value):
    """``fstab_option_problem`` of ``value``, named after the ``option`` that holds it."""
    problem = fstab_option_problem(value)
    return "%s: %s" % (option, problem) if problem else None


def extra_fstab_option_errors(values, refusal):
    """Errors of the fstab options a role takes from its user (``values``, a list or a comma-separated text): each
    must be one fstab option, and ``refusal(text)`` is why one is refused (an option the role sets itself), or None."""
    errors = []
    for text in ["" if value is None else str(value) for value in as_list(values)]:
        problem = fstab_option_problem(text) or refusal(text)
        if problem:
            errors.append(problem)
    return errors


def systemd_escape_path(path):
    """The unit name stem systemd gives a mount point (``systemd-escape --path``)."""
    stem = "/".join(part for part in path.split("/") if part)
    if not stem:
        return "-"
    out = []
    for index, char in enumerate(stem):
        if char == "/":
            out.append("-")
        elif char.isascii() and (char.isalnum() or char in ":_" or (char == "." and index > 0)):
            out.append(char)
        else:
            out.extend("\\x%02x" % byte for byte in char.encode("utf-8"))
    return "".join(out)


def file_id(path):
    """A file-name stem for a mount point's own files (credentials, keys, known_hosts, passwd).

    One-to-one with the path ("/srv/a-b" and "/srv/a/b" never share a file) and safe for every tool that
    reads the name: letters, digits and "." as they are, "/" as "-", anything else as "_" and two hex
    digits. No "%", "$", "~" (ssh expands them in IdentityFile and UserKnownHostsFile), no "," or "=".
    """
    out = []
    for char in path.strip("/"):
        if char == "/":
            out.append("-")
        elif char.isascii() and (char.isalnum() or char == "."):
            out.append(char)
        else:
            out.extend("_%02x" % byte for byte in char.encode("utf-8"))
    return "".join(out)


def legacy_file_id(path):
    """The name earlier releases used (the unit name with "\\x" as "%"), so upgrades remove those files."""
    return systemd_escape_path(path).replace("\\x", "%")


def timespan_seconds(span):
    """Seconds of a systemd time span that matches TIME_SPAN ("30min", "1h 30min", "90"): for alert thresholds."""
    total = 0
    for number, unit in re.findall(r"([0-9]+) ?([a-z]*)", "" if span is None else str(span)):
        total += int(number) * next(factor for units, factor in _SPAN_SECONDS if unit in units)
    return total


def timespan_error(option, value, minimum=1):
    """None when ``value`` is a systemd time span (TIME_SPAN) of at least ``minimum`` seconds, else the message."""
    text = "" if value is None else str(value)
    if full(TIME_SPAN, text) and timespan_seconds(text) >= minimum:
        return None
    return '%s "%s" must be a systemd time span of at least %ds, such as 30s or 1min' % (option, text, minimum)
