# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The modules that only look at a host (backup_probe, mount_probe, backup_info): how check and diff modes behave,
    # and where they run.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Read-only, so it runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
  platform:
    support: full
    description: Debian-family hosts with systemd.
    platforms: posix
"""
