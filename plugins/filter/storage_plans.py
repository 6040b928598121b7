# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The roles' plans as filters.

Filters, not an action plugin: a plan is a pure function of the role's variables, computed on the controller
without touching the host, and a filter keeps the role's own task (set_fact, then one assert that prints every
error) in charge of how a failure reads. The logic lives in plugins/plugin_utils, where unit tests call it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.keepdata.storage.plugins.plugin_utils.backup_monitoring import backup_monitoring_plan, rules_file_problem
from ansible_collections.keepdata.storage.plugins.plugin_utils.backup_plan import (
    backup_bucket_problems,
    backup_host_jobs,
    backup_plan,
    backup_recorded_good,
    backup_secrets,
)
from ansible_collections.keepdata.storage.plugins.plugin_utils.mounts_plan import mounts_files, mounts_plan
from ansible_collections.keepdata.storage.plugins.plugin_utils.recover_plan import recover_plan
from ansible_collections.keepdata.storage.plugins.plugin_utils.s3fs_plan import s3fs_bucket_request, s3fs_credentials, s3fs_plan


class FilterModule:
    def filters(self):
        return {
            "mounts_plan": mounts_plan,
            "mounts_files": mounts_files,
            "s3fs_plan": s3fs_plan,
            "s3fs_credentials": s3fs_credentials,
            "s3fs_bucket_request": s3fs_bucket_request,
            "backup_plan": backup_plan,
            "backup_secrets": backup_secrets,
            "backup_bucket_problems": backup_bucket_problems,
            "backup_monitoring_plan": backup_monitoring_plan,
            "backup_monitoring_rules_problem": rules_file_problem,
            "backup_host_jobs": backup_host_jobs,
            "backup_recorded_good": backup_recorded_good,
            "recover_plan": recover_plan,
        }
