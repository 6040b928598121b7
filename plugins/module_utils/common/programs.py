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

PROGRAM_MODE = 0o644


def program_source(module):
    """The source text of the imported module ``module``, read through its loader: from a checkout's file as from
    the zip an Ansible module runs from."""
    spec = module.__spec__
    return spec.loader.get_data(spec.origin).decode("utf-8")


def program_summary(text):
    """How a diff names a program's content (its text is long and not what a reader needs): its size and digest."""
    data = text.encode("utf-8")
    return "program of %d bytes, sha256 %s" % (len(data), hashlib.sha256(data).hexdigest()[:16])
