# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The start of the modules that choose a job of role keepdata.storage.backup and one of its snapshots (backup_info,
backup_export, backup_restore): their options, and every input error named before anything is read."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keepdata.storage.plugins.module_utils.backup.restore import selection_spec


def selection_module(module_name, input_errors, **options):
    """The module ``module_name`` with the options that choose the job and the snapshot, plus its own ``options``;
    it fails, having read nothing, naming every error ``input_errors(params)`` finds."""
    module = AnsibleModule(argument_spec=selection_spec(**options), supports_check_mode=True)
    errors = input_errors(module.params)
    if errors:
        module.fail_json(msg="keepdata.storage.%s: %s" % (module_name, "; ".join(errors)))
    return module
