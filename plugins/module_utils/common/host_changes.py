# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Changes a module makes on a managed host, recorded one by one.

A module looks first, then changes; each change goes through ``act``, which skips it in check mode and
records it once done. A failure then reports what was already done (``changed`` stays honest when a run
stops half way) or says that nothing was changed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class HostChanges:
    def __init__(self, module, label=""):
        self.module = module
        # Prefix of the failure messages, such as the mount point the module works on.
        self.label = label
        self.actions = []
        self.done = []

    def done_so_far(self):
        return "; done before: " + ", ".join(self.done) if self.done else "; nothing was changed"

    def fail(self, msg, **extra):
        self.module.fail_json(msg=msg, changed=bool(self.done), actions=self.done, **extra)

    def act(self, what, fn, *args):
        """Record an action; run it unless in check mode."""
        self.actions.append(what)
        if self.module.check_mode:
            return
        try:
            fn(*args)
        except (OSError, IOError) as exc:
            self.fail("%s%s failed (%s)%s" % (self.label + ": " if self.label else "", what, exc, self.done_so_far()))
        self.done.append(what)

    def systemctl(self, *args):
        """(exit status, stdout, stderr) of one systemctl call, stripped; a query changes nothing, so it also runs in check mode."""
        rc, out, err = self.module.run_command(["systemctl"] + list(args))
        return rc, (out or "").strip(), (err or "").strip()

    def systemctl_or_fail(self, what, *args):
        def run():
            rc, out, err = self.systemctl(*args)
            if rc != 0:
                raise OSError(err or out or "systemctl %s exited with %d" % (" ".join(args), rc))

        self.act(what, run)
