# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module backup_jobs' logic: the job runner, each job's configuration, secrets, units and metrics on a host.

``input_errors`` checks the arguments before anything is read; ``Jobs`` looks at every managed file and timer,
then changes what differs, recording each change (``HostChanges``) so that a failure says what was done.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import tempfile
import time

from ansible_collections.keepdata.storage.plugins.module_utils.backup import runner as runner_program
from ansible_collections.keepdata.storage.plugins.module_utils.backup import shared as shared_program
from ansible_collections.keepdata.storage.plugins.module_utils.backup.shared import (
    JOB_NAME,
    JobError,
    metrics_path,
    metrics_text,
    read_state,
    state_path,
)
from ansible_collections.keepdata.storage.plugins.module_utils.backup.units import FAILED_UNIT, desired_files, is_managed_unit, timers, unit_names
from ansible_collections.keepdata.storage.plugins.module_utils.common.host_changes import HostChanges
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import ABS_PATH, CONTROL_CHARS, full
from ansible_collections.keepdata.storage.plugins.module_utils.common.programs import (
    PROGRAM_DIR_MODE,
    PROGRAM_MODE,
    program_source,
    program_state,
    program_summary,
)

# A job's node_exporter textfile, as the runner names it (metrics_path).
METRICS_FILE = re.compile(r"keepdata_backup_(%s)\.prom" % JOB_NAME.pattern)
SERVICE_KEYS = ("runner", "nice", "io_class", "cpu_policy", "memory_max", "timeout", "retry_delay", "forget_schedule", "drill_enabled", "drill_schedule")


def _has_control(value):
    if isinstance(value, str):
        return bool(CONTROL_CHARS.search(value))
    if isinstance(value, dict):
        return any(_has_control(k) or _has_control(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_control(v) for v in value)
    return False


def _job_errors(index, job, names):
    name = job.get("name")
    if not isinstance(name, str) or not full(JOB_NAME, name):
        return ["jobs[%d].name must be 1 to 40 lowercase letters, digits, _ or -" % index]
    errors = []
    lacking = [key for key in ("repository", "enabled", "schedule", "randomized_delay", "s3_credentials_file") if key not in job]
    if lacking:
        errors.append("jobs[%s] lacks %s" % (name, ", ".join(lacking)))
    if _has_control(job):
        errors.append("jobs[%s] must not hold control characters" % name)
    if not isinstance(job.get("enabled", True), bool):
        errors.append("jobs[%s].enabled must be true or false" % name)
    if name in names:
        errors.append("jobs[%s] is listed twice" % name)
    names.append(name)
    return errors


def input_errors(params):
    """Problems with the arguments, found before anything is written (the plan checked them; this guards the host)."""
    errors = []
    for key in ("config_dir", "units_dir"):
        if not full(ABS_PATH, params[key].rstrip("/")):
            errors.append("%s must be an absolute path" % key)
    missing = [key for key in SERVICE_KEYS if key not in params["service"]]
    if missing:
        errors.append("service lacks %s" % ", ".join(missing))
    if _has_control(params["service"]):
        errors.append("service must not hold control characters")
    elif not isinstance(params["service"].get("runner", ""), str) or not full(ABS_PATH, params["service"].get("runner", "/")):
        errors.append("service.runner must be an absolute path")
    if not isinstance(params["service"].get("nice", 0), int) or isinstance(params["service"].get("nice"), bool):
        errors.append("service.nice must be a whole number")
    if not isinstance(params["service"].get("drill_enabled", False), bool):
        errors.append("service.drill_enabled must be true or false")
    errors += ["service.%s must be true or false" % key for key in ("arm_timers", "host_retention") if not isinstance(params["service"].get(key, True), bool)]
    if params["service"].get("drill_enabled") and not params["service"].get("drill_schedule"):
        errors.append("service.drill_schedule is required when drills are enabled")
    names = []
    for index, job in enumerate(params["jobs"]):
        errors += _job_errors(index, job, names)
    if any(job.get("s3_credentials_file") for job in params["jobs"]) and not (params["access_key"] and params["secret_key"]):
        errors.append("access_key and secret_key are required when a job uses an S3 repository")
    if _has_control(params["password"]) or not params["password"]:
        errors.append("password must be a non-empty line")
    errors += ["%s must be one line (no control characters)" % key for key in ("access_key", "secret_key") if _has_control(params[key])]
    return errors


class Jobs(HostChanges):
    """One run: look at every managed file and timer, then change what differs, recording each change."""

    def __init__(self, module):
        super(Jobs, self).__init__(module)
        self.p = module.params
        self.written, self.removed, self.started, self.stopped = [], [], [], []
        self.before, self.after = [], []

    @staticmethod
    def read(path):
        try:
            with open(path) as handle:
                return handle.read()
        except (IOError, OSError):
            return None

    @staticmethod
    def write(path, text, mode):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".keepdata-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.chown(tmp, 0, 0)
            os.rename(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @staticmethod
    def make_dir(path):
        os.makedirs(path, mode=0o700)
        os.chmod(path, 0o700)

    @staticmethod
    def restrict_dir(path):
        os.chown(path, 0, 0)
        os.chmod(path, 0o700)

    def differs(self, path, content, mode):
        try:
            st = os.stat(path)
        except OSError:
            return True
        return (st.st_mode & 0o7777, st.st_uid, st.st_gid) != (int(mode, 8), 0, 0) or self.read(path) != content

    def managed_files(self):
        """Files of this role now on the host: units, job configurations and the S3 keys file."""
        found = []
        units_dir, config_dir = self.p["units_dir"], self.p["config_dir"]
        if os.path.isdir(units_dir):
            found += [os.path.join(units_dir, f) for f in sorted(os.listdir(units_dir)) if is_managed_unit(f) or f == FAILED_UNIT]
        jobs_dir = os.path.join(config_dir, "jobs")
        if os.path.isdir(jobs_dir):
            found += [os.path.join(jobs_dir, f) for f in sorted(os.listdir(jobs_dir)) if f.endswith(".json")]
        if os.path.exists(os.path.join(config_dir, "s3.credentials")):
            found.append(os.path.join(config_dir, "s3.credentials"))
        return found

    def stop_timers(self, stale):
        """Timers of jobs that left the list, or were disabled, stop first: nothing fires a unit being removed."""
        for path in stale:
            unit = os.path.basename(path)
            if not unit.endswith(".timer"):
                continue
            self.disarm(unit)

    def disarm(self, unit):
        """Stop and disable the timer ``unit`` when it is enabled or running."""
        if self.systemctl("is-enabled", unit)[1] in ("enabled", "linked") or self.systemctl("is-active", unit)[0] == 0:
            self.systemctl_or_fail("stop and disable %s" % unit, "disable", "--now", unit)
            self.stopped.append(unit)

    def hold_timers(self):
        """service.arm_timers false: every timer of the listed jobs stopped and disabled, the retry timers too, so
        that no backup runs before their data is restored (playbooks/recover.yml arms them afterwards)."""
        units = set(timers(self.p["jobs"], self.p["service"]))
        units.update(unit_names(job["name"])["retry_timer"] for job in self.p["jobs"])
        for unit in sorted(units):
            self.disarm(unit)

    def private_dirs(self, config_dir):
        """The directories of the secrets and the jobs: root only, whoever created them."""
        for directory in (config_dir, config_dir + "/jobs"):
            if not os.path.isdir(directory):
                self.act("create %s" % directory, self.make_dir, directory)
            elif (os.stat(directory).st_mode & 0o7777, os.stat(directory).st_uid) != (0o700, 0):
                self.act("make %s root-only (0700)" % directory, self.restrict_dir, directory)

    def metrics(self, job):
        """A job's metrics as soon as it is installed, so that a job whose timer never fires is seen late: the state of
        a job new on this host records when it was installed; the metrics get the configuration's thresholds."""
        path = state_path(job)
        try:
            state = read_state(path)
        except JobError as exc:
            self.fail("%s%s" % (exc, self.done_so_far()))
        if not state:
            state = {"since": int(time.time())}
            if not os.path.isdir(job["state_dir"]):
                self.act("create %s" % job["state_dir"], self.make_dir, job["state_dir"])
            self.before.append("%s: (absent)" % path)
            self.after.append("%s: %s" % (path, json.dumps(state, sort_keys=True)))
            self.act("write %s" % path, self.write, path, json.dumps(state, indent=2, sort_keys=True) + "\n", 0o600)
            self.written.append(path)
        text, path = metrics_text(job["name"], state, job), metrics_path(job)
        if not self.differs(path, text, "0644"):
            return
        if not os.path.isdir(job["metrics_dir"]):
            self.act("create %s" % job["metrics_dir"], os.makedirs, job["metrics_dir"], 0o755)
        old = self.read(path)
        self.before.append("%s: %s" % (path, old if old is not None else "(absent)"))
        self.after.append("%s: %s" % (path, text))
        self.act("write %s" % path, self.write, path, text, 0o644)
        self.written.append(path)

    def runner(self):
        """The program the units start and, beside it, the module it loads: from this module's own copies and before
        any unit that runs them, so that the runner on the host always matches the units and the configuration it
        reads."""
        path = self.p["service"]["runner"]
        directory = os.path.dirname(path)
        programs = [(os.path.join(directory, runner_program.SHARED_PROGRAM), program_source(shared_program)), (path, program_source(runner_program))]
        stale = [(where, text) for where, text in programs if program_state(where, text)]
        if stale and not os.path.isdir(directory):
            self.act("create %s" % directory, os.makedirs, directory, PROGRAM_DIR_MODE)
        for where, text in stale:
            old = self.read(where)
            self.before.append("%s: %s" % (where, program_summary(old) if old is not None else "(absent)"))
            self.after.append("%s: %s" % (where, program_summary(text)))
            self.act("write %s" % where, self.write, where, text, PROGRAM_MODE)
            self.written.append(where)

    def stale_metrics(self):
        """Metrics files of jobs no longer listed: left there, they would raise a "not running" alert for good."""
        directory, names = self.p["metrics_dir"], {job["name"] for job in self.p["jobs"]}
        if not directory or not os.path.isdir(directory):
            return []
        stale = []
        for entry in sorted(os.listdir(directory)):
            match = METRICS_FILE.fullmatch(entry)
            if match and match.group(1) not in names:
                stale.append(os.path.join(directory, entry))
        return stale

    def run(self):
        p = self.p
        config_dir, units_dir = p["config_dir"].rstrip("/"), p["units_dir"].rstrip("/")
        desired = desired_files(p["jobs"], p["service"], config_dir, units_dir, password=p["password"], access_key=p["access_key"], secret_key=p["secret_key"])
        stale = [path for path in self.managed_files() if path not in desired]
        self.stop_timers(stale)
        self.runner()
        self.private_dirs(config_dir)
        units_changed = False
        for path in sorted(desired):
            content, mode, secret = desired[path]
            if not self.differs(path, content, mode):
                continue
            old = self.read(path)
            self.before.append("%s: %s" % (path, "(hidden)" if secret and old is not None else old if old is not None else "(absent)"))
            self.after.append("%s: %s" % (path, "(hidden)" if secret else content))
            self.act("write %s" % path, self.write, path, content, int(mode, 8))
            self.written.append(path)
            units_changed = units_changed or path.startswith(units_dir + "/")
        for path in stale:
            self.before.append("%s: present" % path)
            self.after.append("%s: (absent)" % path)
            self.act("remove %s" % path, os.remove, path)
            self.removed.append(path)
            units_changed = units_changed or path.startswith(units_dir + "/")
        for job in p["jobs"]:
            if job.get("metrics_dir"):
                self.metrics(job)
        for path in self.stale_metrics():
            self.before.append("%s: present" % path)
            self.after.append("%s: (absent)" % path)
            self.act("remove %s" % path, os.remove, path)
            self.removed.append(path)
        if units_changed:
            self.systemctl_or_fail("systemctl daemon-reload", "daemon-reload")
        if p["service"].get("arm_timers", True) is False:
            self.hold_timers()
            return bool(self.actions)
        for unit, wanted in sorted(timers(p["jobs"], p["service"]).items()):
            if not wanted:
                continue
            enabled = self.systemctl("is-enabled", unit)[1] == "enabled"
            active = self.systemctl("is-active", unit)[0] == 0
            if not (enabled and active):
                self.systemctl_or_fail("enable and start %s" % unit, "enable", "--now", unit)
                self.started.append(unit)
        return bool(self.actions)
