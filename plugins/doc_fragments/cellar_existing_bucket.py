# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The bucket of the modules that change one configuration of a bucket made beforehand (cellar_bucket_policy,
    # cellar_cors, cellar_lifecycle).
    DOCUMENTATION = r"""
options:
  bucket:
    description:
      - Bucket name. The bucket must exist.
    type: str
    required: true
"""
