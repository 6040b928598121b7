# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The restores of playbooks/recover.yml, decided on the controller from each job's preview.

The playbook previews every job's restore on the host first (module backup_restore in check mode: the snapshot
chosen, every destination checked); this plan turns those previews into the restores to make, the jobs left out
and the errors that stop the run before the first restore. Pure: unit tests call it with hand-made previews.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# backup_restore's failure causes, read here from the module's result.
from ansible_collections.keepdata.storage.plugins.module_utils.backup.restore import NO_SNAPSHOT, NOT_EMPTY, NOT_INSTALLED
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import has_control_chars


def wanted_jobs(value, declared):
    """(names, errors): recover_jobs as a list of job names (a list, or one name per line as a survey's textarea
    gives it); empty means every declared job."""
    if value is None or value in ("", []):
        return list(declared), []
    if isinstance(value, str):
        items = [line.strip() for line in value.splitlines() if line.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        return [], ["recover_jobs must be a list of job names or one name per line, not %s" % type(value).__name__]
    names, errors = [], []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            errors.append("recover_jobs[%d] must be a job name (a string), not %s" % (index, type(item).__name__))
        elif has_control_chars(item):
            errors.append("recover_jobs[%d] must not contain control characters" % index)
        elif item not in declared:
            errors.append('recover_jobs[%d] "%s" is not a backup job of this host (its jobs: %s)' % (index, item, ", ".join(declared) or "none"))
        elif item not in names:
            names.append(item)
    return names, errors


def previewed(result):
    """A preview that succeeded. The playbook registers the previews with failed_when false (a failed one is not an
    error of the play yet), which sets ``failed`` false: backup_restore's failures carry ``cause``, a crash of the
    module carries no ``plan``."""
    return not result.get("failed") and "cause" not in result and isinstance(result.get("plan"), list) and isinstance(result.get("snapshot"), dict)


def recover_plan(previews, declared, wanted=None, partial=False, check_mode=False):
    """{"errors", "restore": [{"job", "snapshot"}], "skipped": [{"job", "why"}], "held": [job], "arm": bool,
    "after": [what to say once the restores are done], "lines"} (the previews, then the errors).

    ``previews``: the registered results of backup_restore in check mode, one per job (``item`` is the job's name);
    ``declared``: the host's job names in the role's order. A job whose repository holds no snapshot stops the run
    unless ``partial``; any other failed preview always does. In ``check_mode``, a job the role has not installed on
    the host yet (a fresh host) is reported as such: its preview needs the job's configuration and secrets there.
    A job left out by ``wanted`` whose data is not back (neither restored already, nor holding data, nor without
    snapshot) is ``held``: the host's timers are not armed (``arm`` false), so no backup runs over its empty paths.
    """
    declared = list(declared)
    names, errors = wanted_jobs(wanted, declared)
    by_job = {result.get("item"): result for result in previews or [] if isinstance(result, dict)}
    plan = {"errors": errors, "restore": [], "skipped": [], "held": [], "arm": True, "after": [], "lines": []}
    for name in names:
        result = by_job.get(name)
        if result is None:
            plan["errors"].append("job %s: no preview of its restore" % name)
            continue
        if previewed(result):
            plan["restore"].append({"job": name, "snapshot": (result.get("snapshot") or {}).get("id", "")})
            plan["lines"] += ["job %s: %s" % (name, line) for line in result.get("plan") or []]
            continue
        message, cause = result.get("msg") or "its preview failed", result.get("cause") or ""
        message = message.replace("keepdata.storage.backup_restore: ", "", 1)
        if cause == NO_SNAPSHOT and partial:
            plan["skipped"].append({"job": name, "why": message})
            plan["lines"].append("job %s: left out (recover_partial): %s" % (name, message))
        elif cause == NO_SNAPSHOT:
            plan["errors"].append("job %s: %s; nothing was restored (set recover_partial to restore the other jobs)" % (name, message))
        elif cause == NOT_INSTALLED and check_mode:
            plan["lines"].append("job %s: installed by this run, then its snapshot restored (a --check cannot read the repository before)" % name)
        else:
            plan["errors"].append("job %s: %s" % (name, message))
    for name in declared:
        result = by_job.get(name) or {}
        if name in names or errors or result.get("restored_already") or result.get("cause") in (NO_SNAPSHOT, NOT_EMPTY):
            continue
        plan["held"].append(name)
        plan["lines"].append("job %s: left out (recover_jobs) and its data is not back: the backup timers of this host stay held" % name)
    plan["arm"] = not plan["held"]
    if plan["held"]:
        plan["after"].append(
            "the backup timers of this host stay held: the data of job %s is not back; run this playbook for it (or playbooks/backup.yml "
            "to arm them as they are)" % ", ".join(plan["held"])
        )
    if names and not plan["errors"] and plan["skipped"] and not plan["restore"]:
        plan["errors"].append("no job of this host has a snapshot to restore: %s" % "; ".join(s["why"] for s in plan["skipped"]))
    if plan["errors"]:
        plan["restore"] = []
        # Printed with the previews too (on stdout, where a job template's log and a test read them whole).
        plan["lines"] += plan["errors"]
    return plan
