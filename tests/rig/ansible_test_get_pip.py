# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline replacement for the pip bootstrap script ansible-test downloads for ``--venv``.

ansible-test fetches that script from a host this machine cannot reach, but documents that a copy may be
saved to ``~/.ansible/test/cache/get_pip_<version>.py`` (scripts/bootstrap.sh puts this file there).
It installs the pip bundled with Python, then lets that pip install what ansible-test asked for from the
configured package index.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ensurepip
import os
import subprocess
import sys

# ansible-test runs this with a cleaned environment and no pip configuration; trust the system's CA bundle,
# as the machine's own pip does (a TLS-inspecting proxy may sit in front of the package index).
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# get-pip.py options that a plain "pip install" does not take.
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main():
    ensurepip.bootstrap(upgrade=True)
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    env = dict(os.environ)
    if os.path.exists(SYSTEM_CA_BUNDLE):
        env.setdefault("PIP_CERT", SYSTEM_CA_BUNDLE)
    return subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=env)


if __name__ == "__main__":
    sys.exit(main())
