# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the unit tests need from ansible-core, on every version the collection claims (meta/runtime.yml).

``patch_module_args(args)``: a context in which ``AnsibleModule`` reads ``args`` as its module arguments. ansible-core
2.19 ships it (ansible.module_utils.testing); on older versions the same is done by hand, the way those versions'
modules read their arguments (``basic._ANSIBLE_ARGS``, the JSON the controller sends).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    import contextlib
    import json
    from unittest import mock

    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        with mock.patch.object(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()):
            yield


__all__ = ["patch_module_args"]
