# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # What the modules that replace a bucket's whole rule set (cellar_cors, cellar_lifecycle) share: the rollback
    # file, what present and absent do, and how check and diff modes behave.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description:
      - Nothing is written to the server nor to O(previous_rules_file) in check mode.
      - A bucket that does not exist yet (an earlier task of the play would create it) is previewed as a new bucket
        without rules, with a warning; a real run fails on a missing bucket.
  diff_mode:
    support: full
    description: Shows the normalised rules before and after.
options:
  previous_rules_file:
    description:
      - When the configuration changes, write the previous rules there as JSON (a list, empty when there were none),
        in the form O(rules) takes.
      - The file is written before the new configuration is sent, so a rollback file exists whenever the server
        was changed; when it cannot be written, the module fails and the server is left alone.
      - Written atomically (a temporary file in the same directory, then renamed over the target) with mode C(0600).
        The directory must exist. Not written in check mode, nor when nothing changes.
    type: path
  state:
    description:
      - V(present) replaces the configuration with O(rules); V(absent) removes it, and reports a change only if a
        configuration existed.
    type: str
    choices: [present, absent]
    default: present
"""
