# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A bucket configuration replaced whole (CORS, lifecycle), with the previous rules saved first to a rollback file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile


class SaveError(Exception):
    """The previous rules could not be saved; nothing was written to the server."""


def save_rules(path, rules):
    """Write ``rules`` as JSON to ``path`` atomically with mode 0600; the temporary file is removed on any error."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError("directory %s does not exist" % directory)
    handle, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(rules, stream, indent=2, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def replace_rules(read, write, desired, *, check_mode, rules_file, what):
    """Read the rules (``read()``), save them to ``rules_file`` when they will change, then ``write(before)``.

    ``what`` names the configuration in messages ("CORS configuration"). Returns (changed, before); raises
    SaveError, with the server left alone, when the rollback file cannot be written.
    """
    before = read()
    changed = before != desired
    if changed and not check_mode:
        if rules_file:
            try:
                save_rules(rules_file, before)
            except (OSError, ValueError, TypeError) as exc:
                raise SaveError("previous_rules_file %s could not be written (%s): the %s was left unchanged" % (rules_file, exc, what)) from None
        write(before)
    return changed, before
