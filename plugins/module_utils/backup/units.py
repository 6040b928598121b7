# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The files of role keepdata.storage.backup on a host: job configurations, secrets and systemd units.

Pure functions: ``desired_files(jobs, service, ...)`` returns ``{path: (content, mode, secret)}`` for every
file the jobs need, so module backup_jobs can compare, write and remove them, and unit tests can read
them. No secret value ever reaches a unit or a job configuration: units hand the secret files to the runner
with ``LoadCredential=``, which systemd exposes under ``$CREDENTIALS_DIRECTORY`` to that one service.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import has_control_chars, systemd_escape_path

UNIT_PREFIX = "keepdata-backup-"
FAILED_UNIT = "keepdata-backup-failed@.service"
PYTHON = "/usr/bin/python3"
# Keys of a job that only the units read; the runner's JSON leaves them out so that a schedule change does not
# look like a change of what the job does.
UNIT_ONLY = ("enabled", "schedule", "randomized_delay")
HEADER = "# Managed by Ansible (role keepdata.storage.backup): changes made here are overwritten.\n"


def unit_names(name):
    """The units of one job: backup service and timer, the "backup now with a tag" template, retention service and
    timer (not in append-only mode, see host_retention), retry timer, restore drill service and timer."""
    base = UNIT_PREFIX + name
    return {
        "service": base + ".service",
        "timer": base + ".timer",
        "tagged_service": base + "@.service",
        "forget_service": base + "-forget.service",
        "forget_timer": base + "-forget.timer",
        "retry_timer": base + "-retry.timer",
        "drill_service": base + "-drill.service",
        "drill_timer": base + "-drill.timer",
    }


def job_config(job):
    """The JSON the runner reads (sorted keys, one trailing newline: stable for comparison)."""
    return json.dumps({k: v for k, v in job.items() if k not in UNIT_ONLY}, indent=2, sort_keys=True) + "\n"


# The runner's command of each service, what its Description says, and the failure handler's KIND.
KINDS = {
    "run": ("backup", "backup"),
    "forget": ("retention (forget, prune)", "forget"),
    "drill": ("restore drill (a sample restored and verified, the repository checked)", "drill"),
}


def _service(job, service, kind, config_dir, *, tagged=False):
    """A Type=oneshot service: systemd sees the runner's real exit status, and OnFailure= reports it.

    ``tagged``: the template of "backup now with a tag" (``keepdata-backup-NAME@TAG.service``), the backup service
    with ``--tag %i``; %i keeps systemd's escapes (``pre\\x2dupdate``) and the runner undoes them."""
    name = job["name"]
    what, failed_kind = KINDS[kind]
    lines = [
        HEADER,
        "[Unit]",
        "Description=keepdata backup job %s: %s" % (name, "backup now, tagged %i" if tagged else what),
        "Wants=network-online.target",
        "After=network-online.target",
        "OnFailure=keepdata-backup-failed@%s:%s.service" % (name, failed_kind),
    ]
    if job.get("mount_point"):
        # Wants=, not RequiresMountsFor=: when the mount cannot come up, Requires= would cancel the job without the
        # unit ever failing (no OnFailure=, no notice, no retry). The runner then refuses the bare mount point, and
        # that failure is seen.
        mount = systemd_escape_path(job["mount_point"]) + ".mount"
        lines += ["Wants=%s" % mount, "After=%s" % mount]
    elif not job["repository"].startswith("s3:"):
        lines.append("RequiresMountsFor=%s" % job["repository"])
    lines += [
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=%s -I %s %s %s%s" % (PYTHON, service["runner"], kind, name, " --tag %i" if tagged else ""),
        "LoadCredential=restic-password:%s/repository.password" % config_dir,
    ]
    if job["s3_credentials_file"]:
        lines.append("LoadCredential=s3-credentials:%s" % job["s3_credentials_file"])
    lines += [
        "Nice=%d" % service["nice"],
        "IOSchedulingClass=%s" % service["io_class"],
        "CPUSchedulingPolicy=%s" % service["cpu_policy"],
        "MemoryMax=%s" % service["memory_max"],
        "TimeoutStartSec=%s" % service["timeout"],
        "CacheDirectory=keepdata-backup",
        "CacheDirectoryMode=0700",
        "UMask=0077",
        "PrivateTmp=true",
        "SyslogIdentifier=keepdata-backup-%s" % name,
    ]
    return "\n".join(lines) + "\n"


def _timer(description, unit, calendar=None, delay="0", active=None):
    lines = [HEADER, "[Unit]", "Description=%s" % description, "", "[Timer]"]
    if calendar is not None:
        lines += ["OnCalendar=%s" % calendar, "Persistent=true", "RandomizedDelaySec=%s" % delay]
    else:
        lines += ["OnActiveSec=%s" % active, "AccuracySec=1s"]
    lines += ["Unit=%s" % unit]
    if calendar is not None:
        lines += ["", "[Install]", "WantedBy=timers.target"]
    return "\n".join(lines) + "\n"


def failed_unit(service):
    """The OnFailure= handler (instance "<job>:backup", "<job>:forget" or "<job>:drill"): notify, and after a
    backup arm the retry timer."""
    lines = [
        HEADER,
        "[Unit]",
        "Description=keepdata backup failure handler for %i",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=%s -I %s failed %%i" % (PYTHON, service["runner"]),
        "TimeoutStartSec=5min",
        "SyslogIdentifier=keepdata-backup-failed",
    ]
    return "\n".join(lines) + "\n"


def s3_credentials(access_key, secret_key):
    """The shared-credentials file restic's S3 backend reads (AWS_SHARED_CREDENTIALS_FILE), for any key s3_key_problem
    accepts: restic reads it with go-ini, which takes a value between backquotes as it is, from the first backquote
    to the last one on the line (so #, ;, quotes, backslashes, blanks and backquotes inside are kept; measured with
    restic 0.14 against the RGW). Unquoted, go-ini would cut a value at # or ; and strip quotes."""
    return "[default]\naws_access_key_id = `%s`\naws_secret_access_key = `%s`\n" % (access_key, secret_key)


def s3_key_problem(option, value):
    """None when ``value`` can be an S3 key in s3_credentials, else the message (naming the option, never the key):
    one line of text, not empty, no control character."""
    if not isinstance(value, str) or not value:
        return "%s must be a non-empty string" % option
    if has_control_chars(value):
        return "%s must not contain control characters (newline, tab, ...)" % option
    return None


def host_retention(service):
    """Whether the host runs its jobs' retention (a retention service and timer per job). Not in the role's
    append-only mode (service ``host_retention`` false), where the host's S3 user may delete nothing: retention then
    runs from a trusted place with the bucket owner's key (module backup_retention)."""
    return service.get("host_retention", True) is not False


def desired_files(jobs, service, config_dir, units_dir, *, password, access_key="", secret_key=""):
    """{path: (content, mode, secret)} for the secrets, every job's configuration and units, and the handler."""
    files = {"%s/repository.password" % config_dir: (password + "\n", "0600", True)}
    if any(job["s3_credentials_file"] for job in jobs):
        files["%s/s3.credentials" % config_dir] = (s3_credentials(access_key, secret_key), "0600", True)
    files["%s/%s" % (units_dir, FAILED_UNIT)] = (failed_unit(service), "0644", False)
    for job in jobs:
        name, units = job["name"], unit_names(job["name"])
        files["%s/jobs/%s.json" % (config_dir, name)] = (job_config(job), "0600", False)
        files["%s/%s" % (units_dir, units["service"])] = (_service(job, service, "run", config_dir), "0644", False)
        files["%s/%s" % (units_dir, units["tagged_service"])] = (_service(job, service, "run", config_dir, tagged=True), "0644", False)
        if host_retention(service):
            files["%s/%s" % (units_dir, units["forget_service"])] = (_service(job, service, "forget", config_dir), "0644", False)
            files["%s/%s" % (units_dir, units["forget_timer"])] = (
                _timer("keepdata backup job %s: retention schedule" % name, units["forget_service"], service["forget_schedule"], job["randomized_delay"]),
                "0644",
                False,
            )
        files["%s/%s" % (units_dir, units["retry_timer"])] = (
            _timer("keepdata backup job %s: retry after a failure" % name, units["service"], active=service["retry_delay"]),
            "0644",
            False,
        )
        if job["enabled"]:
            files["%s/%s" % (units_dir, units["timer"])] = (
                _timer("keepdata backup job %s: schedule" % name, units["service"], job["schedule"], job["randomized_delay"]),
                "0644",
                False,
            )
        if service.get("drill_enabled"):
            # Every job, enabled or not: a disabled job's snapshots are still what a restore would use.
            files["%s/%s" % (units_dir, units["drill_service"])] = (_service(job, service, "drill", config_dir), "0644", False)
            files["%s/%s" % (units_dir, units["drill_timer"])] = (
                _timer("keepdata backup job %s: restore drill schedule" % name, units["drill_service"], service["drill_schedule"], job["randomized_delay"]),
                "0644",
                False,
            )
    return files


def timers(jobs, service):
    """{timer unit: wanted enabled?} for the schedule timers; retry timers are armed only by the failure handler."""
    wanted = {}
    for job in jobs:
        units = unit_names(job["name"])
        wanted[units["timer"]] = job["enabled"]
        if host_retention(service):
            wanted[units["forget_timer"]] = True
        if service.get("drill_enabled"):
            wanted[units["drill_timer"]] = True
    return wanted


def is_managed_unit(file_name):
    """A unit this role writes (so a job that left the inventory has its units removed)."""
    return file_name.startswith(UNIT_PREFIX) and file_name.endswith((".service", ".timer"))
