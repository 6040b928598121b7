# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options that name a job of role keepdata.storage.backup and one of its snapshots.
    DOCUMENTATION = r"""
options:
  job:
    description:
      - The job's name, as in C(backup_jobs) of role C(keepdata.storage.backup). The module reads its configuration
        (repository, options, secret files, databases, services) from C(<config_dir>/jobs/<job>.json), which the role
        wrote on this host, and runs restic with the same repository and secret files as the job's units.
    type: str
    required: true
  config_dir:
    description: The role's C(backup_config_dir).
    type: path
    default: /etc/keepdata/backup
  source_host:
    description:
      - Whose snapshots to use, by restic host name. Default the job's own host (C(backup_host_name)).
      - Another host's name clones or migrates its data to this host; both hosts must use the same repository.
    type: str
    default: ""
  snapshot:
    description: C(latest), or a snapshot ID (its first 8 or more hexadecimal digits).
    type: str
    default: latest
  as_of:
    description:
      - Instead of O(snapshot), the newest snapshot taken at or before this time, read by GNU C(date -d) on the
        managed host in its time zone (C(2026-11-30 18:00), C(yesterday 18:00), C(@1796061600)).
    type: str
    default: ""
requirements:
  - restic 0.14 or later on the managed host, and the job's configuration written by role C(keepdata.storage.backup).
"""
