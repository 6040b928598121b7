# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plan of role keepdata.storage.backup: settings validated, the repository and every job resolved.

``backup_plan(settings)`` returns ``{"errors", "warnings", "repository", "jobs", "service", "probe", "bucket",
"node_exporter"}``
and holds no secret, so it is safe to print. ``backup_secrets(settings)`` returns the password, the recovery
password and the S3 keys, used only as arguments of tasks that hide them. ``settings`` are the role's
variables without their ``backup_`` prefix, plus ``env`` (the controller's CELLAR_ADDON_* variables) and
``inventory_hostname``. Bucket names, endpoints and the path-style choice follow the Cellar modules' rules;
paths follow the mount roles' rules (storage_rules), so one value is judged the same way everywhere.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import re
import stat

from ansible.module_utils.six.moves.urllib.parse import urlsplit

from ansible_collections.keepdata.storage.plugins.module_utils.backup.shared import (
    DEFAULT_SUSPECT_SHRINK,
    DUMP_NAME,
    HOST_NAME,
    JOB_NAME,
    JOB_TAG,
    SNAPSHOT_ID,
    TAG,
    retry_delay_seconds,
)
from ansible_collections.keepdata.storage.plugins.module_utils.backup.units import s3_key_problem
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.lifecycle import prefix_overlaps, s3_rule_prefix, s3_rule_removes_current_objects
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.policy import PolicyError, principal_arn, repository_prefix_path
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import (
    ACCOUNT,
    TIME_SPAN,
    abs_path_error,
    as_list,
    control_char_errors,
    data_path_error,
    full,
    has_control_chars,
    paths_nest,
    rel_path_ok,
    timespan_error,
    timespan_seconds,
)
from ansible_collections.keepdata.storage.plugins.plugin_utils.flags import flag_errors, seconds_errors, whole_number, yaml_type
from ansible_collections.keepdata.storage.plugins.plugin_utils.flags import read_flags as _read_flags
from ansible_collections.keepdata.storage.plugins.plugin_utils.s3_target import bucket_name_error, controller_keys, endpoint_url, host_and_port, path_style

# JOB_NAME, TAG, DUMP_NAME, HOST_NAME and JOB_TAG come from backup.shared (the runner loads it too): one rule for the role, the program on the
# host and the restore modules.
# restic's --keep-within durations: years, months, days, hours.
RESTIC_DURATION = re.compile(r"(?:[0-9]+[ymdh])+")
# node_exporter's listen address (host:port, [IPv6]:port or :port) and extra flags. The flags land in ARGS="..."
# of /etc/default/prometheus-node-exporter, split by systemd on spaces: no space, quote, backslash or $.
LISTEN_ADDRESS = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}")
EXPORTER_FLAG = re.compile(r"--[a-z0-9][a-z0-9._-]*(?:=[^\s\"'\\`$]*)?")
EXPORTER_OWN_FLAGS = ("--collector.textfile.directory", "--web.listen-address")
NODE_EXPORTER_MODES = ("none", "install", "existing")
# OnCalendar's alphabet; whether systemd accepts the expression is asked of systemd-analyze on the host.
CALENDAR = re.compile(r"[A-Za-z0-9*:/,.~ +-]+")
MEMORY = re.compile(r"[0-9]+[KMGT]?|[0-9]{1,2}%|100%|infinity")
DUMP_OPTION = re.compile(r"--?[A-Za-z0-9][A-Za-z0-9_-]*(?:=[A-Za-z0-9_.,:/@+=-]*)?")
CREDENTIAL_OPTION = re.compile(r"passw|secret|token", re.IGNORECASE)
# A systemd unit name (what systemctl accepts); without a known type suffix, systemctl adds .service.
UNIT_NAME = re.compile(r"[A-Za-z0-9:_][A-Za-z0-9:_.@-]{0,254}")
UNIT_SUFFIXES = (".service", ".socket", ".target", ".mount", ".automount", ".swap", ".path", ".timer", ".slice", ".scope", ".device")
# backup_drill_sample: a number of files, or a share of the snapshot's file bytes.
DRILL_FILES = re.compile(r"[0-9]+")
DRILL_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)%")
# Endings of every job's own unit names (keepdata-backup-NAME-forget.service, ...), and the failure handler's
# template (keepdata-backup-failed@.service, the name of the "backup now" template of a job called failed).
RESERVED_ENDINGS = ("-forget", "-retry", "-drill")
RESERVED_NAMES = ("failed",)

RETENTION_KEYS = ("keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
JOB_KEYS = frozenset(
    (
        "name",
        "paths",
        "excludes",
        "tags",
        "schedule",
        "enabled",
        "randomized_delay",
        "pre_hooks",
        "post_hooks",
        "on_failure_hooks",
        "databases",
        "keep_within",
        "keep_tags",
        "services",
        "suspect_shrink",
    )
    + RETENTION_KEYS
)
DATABASE_KEYS = {
    "sqlite": frozenset(("type", "name", "path")),
    "postgresql": frozenset(("type", "name", "database", "user", "options")),
    "mysql": frozenset(("type", "name", "database", "defaults_file", "options")),
}
RUNNER = "/usr/local/lib/keepdata/backup_runner.py"
# The shortest backup_retry_delay: retries spent within seconds of an outage would cover nothing.
MIN_RETRY_DELAY = 60
# The shortest backup_repository_timeout: an answer from a server across the world takes seconds, not less.
MIN_REPOSITORY_TIMEOUT = 5


def _seconds(span):
    """Seconds of a time span, 0 for one that is not (refused already: the plan carries its error)."""
    return 0 if timespan_error("", span) else timespan_seconds(span)


def _text(value):
    return "" if value is None else str(value)


def _int(value, option, errors, low, high=None):
    """An integer option within [low, high]; booleans and text that is not a whole number are refused."""
    if isinstance(value, bool) or value is None or not re.fullmatch(r"-?[0-9]+", _text(value).strip()):
        errors.append("%s must be a whole number" % option)
        return low
    number = int(_text(value).strip())
    if number < low or (high is not None and number > high):
        errors.append("%s must be between %d and %s (got %d)" % (option, low, high if high is not None else "any", number))
        return low
    return number


def _strings(value, option, errors, *, pattern=None, what="", echo=True):
    """A list of non-empty strings (a single string is one item); each must fully match ``pattern`` when given.

    ``echo=False``: a refused item is not repeated in the message (a command-line option may hold a password).
    """
    items = as_list(value, "\n") if isinstance(value, str) else as_list(value)
    out = []
    for index, item in enumerate(items):
        where = "%s[%d]" % (option, index)
        if not isinstance(item, str) or not item.strip():
            errors.append("%s must be a non-empty string" % where)
        elif has_control_chars(item):
            errors.append("%s must not contain control characters (newline, tab, ...)" % where)
        elif pattern is not None and not full(pattern, item):
            errors.append('%s "%s" must be %s' % (where, item, what) if echo else "%s must be %s (its value is not shown)" % (where, what))
        else:
            out.append(item)
    return out


def _credentials(settings, errors):
    """(access key, secret key, endpoint) of an S3 repository: variables first, then CELLAR_ADDON_* (or the
    controller's shared credentials file, see cellar.controller_env_keys)."""
    ak, sk = _text(settings.get("s3_access_key")), _text(settings.get("s3_secret_key"))
    endpoint = _text(settings.get("s3_endpoint"))
    if settings.get("from_cellar_env"):
        env = settings.get("env") or {}
        bad_env = control_char_errors(
            {"CELLAR_ADDON_HOST": env.get("host"), "CELLAR_ADDON_KEY_ID": env.get("key_id"), "CELLAR_ADDON_KEY_SECRET": env.get("key_secret")}
        )
        if bad_env:
            errors.extend("environment " + e for e in bad_env)
            return "", "", endpoint
        env_keys = ("", "")
        if not (ak and sk):
            env_keys = controller_keys(env, "backup_from_cellar_env", errors)
            if env_keys is None:
                return "", "", endpoint
            if not all(env_keys):
                errors.append(
                    "backup_from_cellar_env is set but CELLAR_ADDON_KEY_ID / CELLAR_ADDON_KEY_SECRET are not in the controller environment "
                    "(nor a credentials file in AWS_SHARED_CREDENTIALS_FILE)"
                )
        ak, sk = ak or env_keys[0], sk or env_keys[1]
        # CELLAR_ADDON_HOST names the cluster the keys belong to: it wins over backup_s3_endpoint.
        endpoint = _text(env.get("host")) or endpoint
    if not ak or not sk:
        errors.append("no S3 credentials: set backup_s3_access_key and backup_s3_secret_key, or backup_from_cellar_env")
    else:
        errors.extend(problem for problem in (s3_key_problem("backup_s3_access_key", ak), s3_key_problem("backup_s3_secret_key", sk)) if problem)
    return ak, sk, endpoint


def _append_only(settings, repository, errors):
    """The append-only mode (backup_append_only): {"enabled", "user"}. Every refusal comes before any change and names
    the option, never a secret. The host keeps its own key (backup_s3_access_key, a second S3 user's); the bucket
    owner's keys serve the controller only (the bucket, its versioning and its policy; retention from
    playbooks/backup_retention.yml)."""
    if settings.get("append_only") is not True:
        # The owner's keys may be set for a whole group of hosts: without the mode they are not used.
        return {"enabled": False, "user": ""}
    mode = {"enabled": True, "user": _text(settings.get("append_only_user")).strip()}
    if repository.get("kind") != "s3":
        errors.append("backup_append_only needs backup_target s3: only an S3 bucket's policy can keep the host from deleting its backups")
        return mode
    if settings.get("from_cellar_env"):
        errors.append("backup_append_only takes the S3 keys from variables only: set backup_from_cellar_env to false")
    owner_ak, owner_sk = _text(settings.get("s3_owner_access_key")), _text(settings.get("s3_owner_secret_key"))
    if not owner_ak or not owner_sk:
        errors.append(
            "backup_append_only needs backup_s3_owner_access_key and backup_s3_owner_secret_key (the bucket owner's keys, used on the controller only)"
        )
    else:
        errors.extend(
            problem for problem in (s3_key_problem("backup_s3_owner_access_key", owner_ak), s3_key_problem("backup_s3_owner_secret_key", owner_sk)) if problem
        )
    if owner_ak and owner_ak == _text(settings.get("s3_access_key")):
        errors.append(
            "backup_s3_access_key is the bucket owner's key (backup_s3_owner_access_key): the host would hold the owner's key, nothing append-only; "
            "give the host a second S3 user's keys"
        )
    if not mode["user"]:
        errors.append(
            "backup_append_only needs backup_append_only_user: the S3 user id of the host's key (on Cellar, its add-on id), which the bucket policy names"
        )
    else:
        try:
            principal_arn(mode["user"])
        except PolicyError as exc:
            errors.append("backup_append_only_user: %s" % exc)
    try:
        repository_prefix_path(repository.get("prefix"))
    except PolicyError as exc:
        errors.append("backup_s3_prefix (the repository the bucket policy of backup_append_only names): %s" % exc)
    return mode


def _repository(settings, errors):
    """The restic repository: its URL, its -o options, a stable id, and what the probe and bucket checks need."""
    target = _text(settings.get("target") or "s3")
    if target == "path":
        path = _text(settings.get("path")).rstrip("/")
        problem = abs_path_error("backup_path", path)
        if problem or path in ("", "/"):
            errors.append(problem or 'backup_path "%s" must be an absolute path other than /' % path)
        return {"kind": "path", "url": path, "path": path, "options": [], "bucket": "", "prefix": "", "endpoint": "", "path_style": False}
    if target != "s3":
        errors.append('backup_target "%s" must be s3 or path' % target)
        return {}
    _ak, _sk, endpoint = _credentials(settings, errors)
    bucket = _text(settings.get("s3_bucket"))
    problem = bucket_name_error("backup_s3_bucket", bucket)
    if problem:
        errors.append(problem)
    prefix = _text(settings.get("s3_prefix")).strip("/")
    if prefix and not rel_path_ok(prefix):
        errors.append('backup_s3_prefix "%s" must be a relative path such as restic/web1 (letters, digits and . _ - @ + = only)' % prefix)
    url = endpoint_url("backup_s3_endpoint", endpoint, errors)
    # A YAML boolean (backup_s3_path_style: false) is "false", not "auto".
    style = settings.get("s3_path_style")
    style = "auto" if style is None or style == "" else _text(style).lower()
    bucket_in_path = path_style("backup_s3_path_style", style, url, bucket, errors)
    connections = _int(settings.get("s3_connections", 5), "backup_s3_connections", errors, 1, 64)
    return {
        "kind": "s3",
        "url": "s3:%s/%s%s" % (url, bucket, "/" + prefix if prefix else ""),
        "path": "",
        "options": ["s3.bucket-lookup=%s" % ("path" if bucket_in_path else "dns"), "s3.connections=%d" % connections],
        "bucket": bucket,
        "prefix": prefix,
        "endpoint": url,
        "path_style": bucket_in_path,
        "address": "%s:%d" % host_and_port(url),
    }


def _retention(source, defaults, where, errors):
    """keep_* counts and keep_within of one job (its own values over the role's defaults)."""
    retention = {}
    for key in RETENTION_KEYS:
        option = "%s.%s" % (where, key) if key in source else "backup_" + key
        retention[key] = _int(source.get(key, defaults.get(key, 0)), option, errors, 0, 100000)
    within = _text(source.get("keep_within", defaults.get("keep_within")))
    if within and not full(RESTIC_DURATION, within):
        errors.append(
            '%s "%s" must be a restic duration such as 30d, 2m or 1y6m'
            % ("%s.keep_within" % where if "keep_within" in source else "backup_keep_within", within)
        )
    retention["keep_within"] = within
    if not within and not any(retention[key] for key in RETENTION_KEYS):
        errors.append("%s has no retention rule: set at least one of keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within" % where)
    return retention


def _tag_rules(value, option, errors):
    rules = []
    for index, rule in enumerate(as_list(value)):
        where = "%s[%d]" % (option, index)
        if not isinstance(rule, dict) or set(rule) - {"tag", "within"}:
            errors.append("%s must be a mapping with tag and within" % where)
            continue
        tag, within = _text(rule.get("tag")), _text(rule.get("within"))
        if not full(TAG, tag) or tag.startswith(JOB_TAG):
            errors.append('%s.tag "%s" must be a tag (letters, digits and . _ : = @ + -), not one the role sets' % (where, tag))
        elif not full(RESTIC_DURATION, within):
            errors.append('%s.within "%s" must be a restic duration such as 21d' % (where, within))
        else:
            rules.append({"tag": tag, "within": within})
    return rules


def _dump_name(db, kind, at, names, errors):
    """The dump's file name stem (its name, its database, or the SQLite file's stem), or None when unusable."""
    name = _text(db.get("name") or db.get("database") or "")
    if kind == "sqlite" and not name:
        name = _text(db.get("path")).rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if not full(DUMP_NAME, name):
        errors.append('%s.name "%s" must be a dump name (letters, digits, . _ -)' % (at, name))
        return None
    if name in names:
        errors.append('%s.name "%s" is used twice in this job' % (at, name))
        return None
    names.add(name)
    return name


def _server_dump(db, kind, at, errors):
    """What a PostgreSQL or MySQL dump needs; a password never goes on pg_dump's or mysqldump's command line."""
    database = _text(db.get("database"))
    if not full(DUMP_NAME, database):
        errors.append('%s.database "%s" must be a database name (letters, digits, . _ -)' % (at, database))
    options = _strings(db.get("options"), at + ".options", errors, pattern=DUMP_OPTION, what="one command-line option such as --no-owner", echo=False)
    for option in options:
        # mysqldump takes the password glued to -p ("-psecret"); -P (the port) is another option.
        if CREDENTIAL_OPTION.search(option.split("=")[0]) or (kind == "mysql" and option.startswith("-p")):
            errors.append("%s.options: a password option would show in the process list; use a defaults or .pgpass file" % at)
    dump = {"database": database, "options": options}
    if kind == "postgresql":
        dump["user"] = _text(db.get("user") or "postgres")
        if not full(ACCOUNT, dump["user"]):
            errors.append('%s.user "%s" must be a user name' % (at, dump["user"]))
    else:
        dump["defaults_file"] = _text(db.get("defaults_file"))
        problem = abs_path_error(at + ".defaults_file", dump["defaults_file"]) if dump["defaults_file"] else None
        if problem:
            errors.append(problem)
    return dump


def _databases(value, where, errors):
    dumps, names = [], set()
    for index, db in enumerate(as_list(value)):
        at = "%s.databases[%d]" % (where, index)
        kind = _text(db.get("type")) if isinstance(db, dict) else ""
        if kind not in DATABASE_KEYS:
            errors.append("%s.type must be sqlite, postgresql or mysql" % at)
            continue
        unknown = sorted(set(db) - DATABASE_KEYS[kind])
        if unknown:
            errors.append("%s: unknown option(s) %s for a %s dump" % (at, ", ".join(unknown), kind))
            continue
        bad = control_char_errors({"%s.%s" % (at, k): v for k, v in db.items() if k != "options"})
        if bad:
            errors.extend(bad)
            continue
        name = _dump_name(db, kind, at, names, errors)
        if name is None:
            continue
        dump = {"type": kind, "name": name}
        if kind == "sqlite":
            dump["path"] = _text(db.get("path"))
            problem = data_path_error(at + ".path", dump["path"])
            if problem:
                errors.append(problem)
        else:
            dump.update(_server_dump(db, kind, at, errors))
        dumps.append(dump)
    return dumps


def _services(value, option, errors):
    """The systemd units a restore stops before writing and starts after, as systemctl names them (.service added
    when the name has no unit type suffix)."""
    units = []
    for index, item in enumerate(_strings(value, option, errors, pattern=UNIT_NAME, what="a systemd unit name (letters, digits and : _ . @ -)")):
        where = "%s[%d]" % (option, index)
        unit, problem = systemd_unit(where, item)
        if problem:
            errors.append(problem)
        elif unit in units:
            errors.append('%s "%s" is listed twice' % (where, item))
        else:
            units.append(unit)
    return units


def systemd_unit(where, item):
    """(the unit as systemctl names it, None), or (None, the problem): ``item`` already matches UNIT_NAME; without a
    unit type suffix it is a service; a template without an instance names no unit that runs."""
    unit = item if item.endswith(UNIT_SUFFIXES) else item + ".service"
    if len(unit) > 255:
        return None, '%s "%s" must be at most 255 characters long with its suffix' % (where, item)
    if "@." in unit or unit.endswith("@"):
        return None, '%s "%s" is a template: name an instance (such as app@main.service)' % (where, item)
    return unit, None


def _drill(settings, errors):
    """The restore drills: on or off, their OnCalendar, the sample (files or share of bytes), the check's subsets."""
    enabled = settings.get("drill_enabled", True) is not False
    schedule = _text(settings.get("drill_schedule") or "Sun *-*-* 06:00")
    if not full(CALENDAR, schedule):
        errors.append('backup_drill_schedule "%s" must be an OnCalendar expression such as Sun *-*-* 06:00' % schedule)
    drill = {"sample_files": 0, "sample_percent": 0, "check_subsets": 0}
    sample = settings.get("drill_sample", "20")
    text = _text(sample)
    percent = DRILL_PERCENT.fullmatch(text) if isinstance(sample, str) else None
    if percent and 0 < float(percent.group(1)) <= 100:
        drill["sample_percent"] = float(percent.group(1))
    elif not isinstance(sample, bool) and isinstance(sample, (int, str)) and DRILL_FILES.fullmatch(text) and 1 <= int(text) <= 100000:
        drill["sample_files"] = int(text)
    else:
        errors.append(
            'backup_drill_sample "%s" must be a number of files from 1 to 100000, or a share of the snapshot\'s bytes above 0%% and up to 100%% '
            "such as 5%%" % text
        )
    drill["check_subsets"] = _int(settings.get("drill_check_subsets", 12), "backup_drill_check_subsets", errors, 1, 10000)
    return enabled is True, schedule, drill


def _job_name(value, where, errors):
    """The job's name, or None (with the error) when it is not one or would clash with another job's units."""
    name = _text(value)
    if has_control_chars(name) or not full(JOB_NAME, name):
        errors.append("%s.name must be 1 to 40 lowercase letters, digits, _ or - (starting with a letter or digit)" % where)
        return None
    if name.endswith(RESERVED_ENDINGS):
        errors.append('%s.name "%s" must not end in -forget, -retry or -drill (the names of every job\'s own units)' % (where, name))
        return None
    if name in RESERVED_NAMES:
        errors.append('%s.name "%s" is the name of the failure handler\'s units (keepdata-backup-failed@.service): choose another' % (where, name))
        return None
    return name


def _job(raw, index, settings, repository, errors):
    """One job's configuration (the JSON the runner reads, plus its schedule), or None when it is unusable."""
    where = "backup_jobs[%d]" % index
    if not isinstance(raw, dict):
        errors.append("%s must be a mapping with at least name and paths" % where)
        return None
    unknown = sorted(set(raw) - JOB_KEYS)
    if unknown:
        errors.append("%s: unknown option(s) %s (known: %s)" % (where, ", ".join(unknown), ", ".join(sorted(JOB_KEYS))))
    name = _job_name(raw.get("name"), where, errors)
    if name is None:
        return None
    where = "backup_jobs[%s]" % name
    paths = _strings(raw.get("paths"), where + ".paths", errors)
    if not as_list(raw.get("paths")) and not raw.get("databases"):
        errors.append("%s.paths must list at least one absolute path" % where)
    for path in paths:
        problem = data_path_error(where + ".paths", path.rstrip("/") or path)
        if problem:
            errors.append(problem)
        elif repository.get("kind") == "path" and repository.get("path") and paths_nest(path, repository["path"]):
            errors.append(
                '%s.paths "%s" and backup_path "%s" must not contain one another (the repository would back itself up)' % (where, path, repository["path"])
            )
    paths = [p.rstrip("/") for p in paths]
    excludes = _strings(raw.get("excludes"), where + ".excludes", errors)
    tags = _strings(raw.get("tags"), where + ".tags", errors, pattern=TAG, what="a tag (letters, digits and . _ : = @ + -)")
    if any(t.startswith(JOB_TAG) for t in tags):
        errors.append("%s.tags: %s... is set by the role" % (where, JOB_TAG))
    schedule = _text(raw.get("schedule", settings.get("schedule") or "daily"))
    if not full(CALENDAR, schedule):
        errors.append(
            '%s.schedule "%s" must be an OnCalendar expression such as daily or *-*-* 03:00' % (where, "?" if has_control_chars(schedule) else schedule)
        )
    delay = _text(raw.get("randomized_delay", settings.get("randomized_delay", "0")))
    if not full(TIME_SPAN, delay):
        errors.append('%s.randomized_delay "%s" must be a time span such as 30min' % (where, "?" if has_control_chars(delay) else delay))
    hooks = {key: _strings(raw.get(key), "%s.%s" % (where, key), errors) for key in ("pre_hooks", "post_hooks", "on_failure_hooks")}
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.append("%s.enabled must be true or false" % where)
    defaults = {key: settings.get(key) for key in RETENTION_KEYS + ("keep_within",)}
    retention = _retention(raw, defaults, where, errors)
    tag_rules = _tag_rules(raw.get("keep_tags", settings.get("keep_tags")), where + ".keep_tags" if "keep_tags" in raw else "backup_keep_tags", errors)
    config_dir = _text(settings.get("config_dir")).rstrip("/")
    state_dir = _text(settings.get("state_dir")).rstrip("/")
    return {
        "name": name,
        "repository": repository.get("url", ""),
        "repository_id": hashlib.sha256(repository.get("url", "").encode("utf-8")).hexdigest()[:12],
        "restic_options": [arg for option in repository.get("options", []) for arg in ("-o", option)],
        "host": _text(settings.get("host_name")),
        "mount_point": "",
        "paths": paths,
        "excludes": excludes,
        "tags": tags,
        "limit_upload": _int(settings.get("limit_upload", 0), "backup_limit_upload", errors, 0),
        "compression": _text(settings.get("compression") or "auto"),
        "pre_hooks": hooks["pre_hooks"],
        "post_hooks": hooks["post_hooks"],
        "on_failure_hooks": hooks["on_failure_hooks"],
        "hook_timeout": _int(settings.get("hook_timeout", 3600), "backup_hook_timeout", errors, 1),
        "databases": _databases(raw.get("databases"), where, errors),
        "services": _services(raw.get("services"), where + ".services", errors),
        "dump_dir": "%s/dumps/%s" % (state_dir, name),
        "retention": retention,
        "tag_rules": tag_rules,
        "prune": settings.get("prune") is not False,
        # The first job of the repository checks its structure after each retention run (set by _plan_resolved).
        "check_structure": False,
        "retry_attempts": _int(settings.get("retry_attempts", 3), "backup_retry_attempts", errors, 0, 100),
        "suspect_shrink": _int(
            raw.get("suspect_shrink", settings.get("suspect_shrink", DEFAULT_SUSPECT_SHRINK)),
            where + ".suspect_shrink" if "suspect_shrink" in raw else "backup_suspect_shrink",
            errors,
            0,
            99,
        ),
        "notify_command": _notify_command(settings.get("notify_command"), errors),
        "metrics_dir": _text(settings.get("metrics_dir")).rstrip("/"),
        "state_dir": state_dir,
        "cache_dir": "/var/cache/keepdata-backup",
        "password_file": "%s/repository.password" % config_dir,
        "s3_credentials_file": "%s/s3.credentials" % config_dir if repository.get("kind") == "s3" else "",
        # Read by the units, not by the runner.
        "enabled": enabled is True,
        "schedule": schedule,
        "randomized_delay": delay,
    }


def _notify_command(value, errors):
    """backup_notify_command: a shell command (a string, run with /bin/sh -c) or an argument list (run as it is)."""
    if value is None or isinstance(value, str):
        if has_control_chars(value):
            errors.append("backup_notify_command must not contain control characters (newline, tab, ...)")
        return _text(value)
    if isinstance(value, (list, tuple)):
        argv = _strings(value, "backup_notify_command", errors, echo=False)
        if not argv:
            errors.append("backup_notify_command given as a list must hold the program and its arguments")
        return argv
    errors.append("backup_notify_command must be a shell command (a string) or an argument list (a list of strings), not %s" % yaml_type(value))
    return ""


# Options that take one string. A list or a mapping is refused by name (str() would turn it into Python's text of it,
# which no check would then see for what it is); so is a boolean. Secrets must be strings: YAML reads an unquoted
# 0123 as the number 83. Numbers are accepted elsewhere, as the text of the number (a time span of 90 seconds).
# Every one of them, and every secret, is refused with a control character before any other check.
# Options that are true or false (None: the role's default).
FLAG_OPTIONS = (
    "create_bucket",
    "mount_repository",
    "prune",
    "repository_check",
    "drill_enabled",
    "manage_packages",
    "preflight",
    "arm_timers",
    "allow_same_device",
    "append_only",
)
# Whole numbers of seconds, with their limits (the argument spec says the same).
SECONDS = {"preflight_timeout": (1, 600), "apt_cache_valid_time": (0, None)}
STRING_OPTIONS = (
    "target",
    "path",
    "s3_bucket",
    "s3_prefix",
    "s3_endpoint",
    "host_name",
    "config_dir",
    "state_dir",
    "metrics_dir",
    "compression",
    "schedule",
    "randomized_delay",
    "keep_within",
    "forget_schedule",
    "drill_schedule",
    "drill_sample",
    "io_class",
    "cpu_policy",
    "memory_max",
    "timeout",
    "retry_delay",
    "repository_timeout",
    "alert_grace",
    "node_exporter",
    "node_exporter_listen_address",
    "password_file",
    "recovery_password_file",
    "append_only_user",
)
SECRET_OPTIONS = ("password", "recovery_password", "s3_access_key", "s3_secret_key", "s3_owner_access_key", "s3_owner_secret_key")


def read_flags(settings):
    """``settings`` with each of the role's flags that Ansible would read as a boolean made one (flags.read_flags)."""
    return _read_flags(settings, FLAG_OPTIONS)


def type_errors(settings):
    """The options whose YAML type cannot be right, named (never their value)."""
    errors = []
    # A non-empty string is true in Python: a flag is read as Ansible reads a boolean (so -e backup_prune=false
    # works), and anything else is refused rather than taken for yes.
    errors += flag_errors(settings, FLAG_OPTIONS, "backup_")
    for key in STRING_OPTIONS:
        value = settings.get(key)
        if isinstance(value, (dict, list, tuple, bool)):
            errors.append("backup_%s must be a string, not %s" % (key, yaml_type(value)))
    for key in SECRET_OPTIONS:
        value = settings.get(key)
        if value is not None and not isinstance(value, str):
            errors.append("backup_%s must be a string, not %s (quote it in YAML)" % (key, yaml_type(value)))
    return errors


def _service(settings, errors):
    """The resource limits every unit gets (Cloudron's defaults in the role: nice 15, idle I/O, 12 h)."""
    service = {
        "nice": _int(settings.get("nice", 15), "backup_nice", errors, -20, 19),
        "io_class": _text(settings.get("io_class") or "idle"),
        "cpu_policy": _text(settings.get("cpu_policy") or "batch"),
        "memory_max": _text(settings.get("memory_max") or "infinity"),
        "timeout": _text(settings.get("timeout") or "12h"),
        "retry_delay": _text(settings.get("retry_delay") or "15min"),
        "repository_timeout": _text(settings.get("repository_timeout") or "5min"),
        "alert_grace": _text(settings.get("alert_grace") or "1h"),
        "forget_schedule": _text(settings.get("forget_schedule") or "*-*-* 05:00"),
        "drill_enabled": False,
        "drill_schedule": "",
        "runner": RUNNER,
        # false: the jobs are installed with every timer stopped (playbooks/recover.yml arms them after the restores).
        "arm_timers": settings.get("arm_timers") is not False,
    }
    if service["io_class"] not in ("idle", "best-effort", "realtime"):
        errors.append("backup_io_class must be idle, best-effort or realtime")
    if service["cpu_policy"] not in ("batch", "idle", "other"):
        errors.append("backup_cpu_policy must be batch, idle or other")
    if not full(MEMORY, service["memory_max"]):
        errors.append('backup_memory_max "%s" must be a size such as 2G, a percentage or infinity' % service["memory_max"])
    for key in ("timeout", "alert_grace"):
        if not full(TIME_SPAN, service[key]) and not (key == "timeout" and service[key] == "infinity"):
            errors.append('backup_%s "%s" must be a time span such as 12h or 15min' % (key, service[key]))
    # Retries must outlast an outage of minutes: the first waits at least a minute, each next one twice as long.
    for key, minimum in (("retry_delay", MIN_RETRY_DELAY), ("repository_timeout", MIN_REPOSITORY_TIMEOUT)):
        problem = timespan_error("backup_" + key, service[key], minimum=minimum)
        if problem:
            errors.append(problem)
    if not full(CALENDAR, service["forget_schedule"]):
        errors.append("backup_forget_schedule must be an OnCalendar expression such as *-*-* 05:00")
    return service


PASSWORD_FILE_MAX_BYTES = 4096


def _password_file_bytes(real, option):
    """(bytes, mode, error) of a password file: a regular file, readable, one line's worth of bytes at most."""
    try:
        # Looked at before it is opened: opening a named pipe would wait for a writer.
        mode = os.stat(real).st_mode
        if not stat.S_ISREG(mode):
            return b"", 0, '%s "%s" is not a regular file' % (option, real)
        with open(real, "rb") as stream:
            data = stream.read(PASSWORD_FILE_MAX_BYTES + 1)
    except OSError as exc:
        return b"", 0, '%s "%s" cannot be read (%s)' % (option, real, exc.strerror or type(exc).__name__)
    if len(data) > PASSWORD_FILE_MAX_BYTES:
        return b"", 0, '%s "%s" is larger than %d bytes: a password file holds one line' % (option, real, PASSWORD_FILE_MAX_BYTES)
    return data, mode, ""


def read_password_file(path, option):
    """(password, error, warning) read from a file on the controller, as an AWX credential type's file injector or
    a user's vault-decrypted file gives it: one line, a trailing newline dropped. The messages name the option and
    the file, never the content."""
    if has_control_chars(path):
        return "", "%s must not contain control characters" % option, ""
    real = os.path.expanduser(path)
    error = "" if os.path.isabs(real) else '%s "%s" must be an absolute path on the controller (or start with ~/)' % (option, path)
    data, mode, error = (b"", 0, error) if error else _password_file_bytes(real, option)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        error = '%s "%s" is not UTF-8 text' % (option, real)
    if error:
        return "", error, ""
    text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if has_control_chars(text):
        return "", '%s "%s" must hold the password on one line, without control characters (its content is not shown)' % (option, real), ""
    warning = ""
    if mode & stat.S_IROTH:
        warning = '%s "%s" is readable by every user of the controller: make it mode 0600' % (option, real)
    return text, "", warning


def resolve_passwords(settings):
    """(settings, errors, warnings): ``settings`` with password / recovery_password read from password_file /
    recovery_password_file when those are set; a password given both ways is refused."""
    resolved, errors, warnings = dict(settings), [], []
    for key in ("password", "recovery_password"):
        path = _text(settings.get(key + "_file"))
        if not path:
            continue
        if _text(settings.get(key)):
            errors.append("set backup_%s or backup_%s_file, not both" % (key, key))
            continue
        value, error, warning = read_password_file(path, "backup_%s_file" % key)
        if not error and not value and key == "password":
            error = 'backup_password_file "%s" is empty' % path
        resolved[key] = value
        errors += [error] if error else []
        warnings += [warning] if warning else []
    return resolved, errors, warnings


def _general_errors(settings):
    """Password, directories, host name and compression: the settings that are not about the repository or a job."""
    errors = []
    if not _text(settings.get("password")):
        errors.append("backup_password is required (no default): it encrypts the repository; keep a copy away from the host")
    elif len(_text(settings.get("password"))) < 12:
        errors.append("backup_password must be at least 12 characters long")
    recovery = _text(settings.get("recovery_password"))
    if recovery and recovery == _text(settings.get("password")):
        errors.append("backup_recovery_password must differ from backup_password")
    for key in ("config_dir", "state_dir"):
        problem = abs_path_error("backup_" + key, _text(settings.get(key)).rstrip("/"))
        if problem:
            errors.append(problem)
    metrics_dir = _text(settings.get("metrics_dir")).rstrip("/")
    if metrics_dir and abs_path_error("backup_metrics_dir", metrics_dir):
        errors.append(abs_path_error("backup_metrics_dir", metrics_dir))
    if not full(HOST_NAME, _text(settings.get("host_name"))):
        errors.append('backup_host_name "%s" must be a host name (letters, digits, . _ -)' % _text(settings.get("host_name")))
    if _text(settings.get("compression") or "auto") not in ("auto", "off", "max"):
        errors.append("backup_compression must be auto, off or max")
    return errors


def _plan(settings):
    """(errors, warnings, repository, jobs, service, node_exporter): everything but the secrets.

    ``settings`` as the role gives them: the password files are read here (resolve_passwords), once.
    """
    resolved, errors, warnings = resolve_passwords(settings)
    if errors:
        return errors, [], {}, [], {}, {}
    return _plan_resolved(resolved, warnings)


def _plan_resolved(settings, password_warnings):
    """_plan on settings whose passwords are already read from their files."""
    settings = read_flags(settings)
    errors = type_errors(settings)
    if errors:
        return errors, [], {}, [], {}, {}
    errors = control_char_errors({"backup_" + key: settings.get(key) for key in STRING_OPTIONS + SECRET_OPTIONS})
    if errors:
        return errors, [], {}, [], {}, {}
    errors += _general_errors(settings) + seconds_errors(settings, SECONDS, "backup_")
    repository = _repository(settings, errors)
    service = _service(settings, errors)
    append_only = _append_only(settings, repository, errors)
    # Append-only: the host may delete nothing, so it gets no retention units; retention runs from a trusted place.
    service["host_retention"] = not append_only["enabled"]
    drill_enabled, drill_schedule, drill = _drill(settings, errors)
    service.update(drill_enabled=drill_enabled, drill_schedule=drill_schedule if drill_enabled else "")
    jobs_value = settings.get("jobs")
    if not isinstance(jobs_value, (list, tuple)):
        errors.append("backup_jobs must be a list of jobs (each with name and paths)")
        jobs_value = []
    jobs, seen = [], set()
    for index, raw in enumerate(jobs_value):
        job = _job(raw, index, settings, repository, errors)
        if job is None:
            continue
        if job["name"] in seen:
            errors.append('backup_jobs: job name "%s" is used twice' % job["name"])
        seen.add(job["name"])
        # The runner arms each retry after this delay, doubled after each further failure (retry_delay_seconds).
        job["retry_delay"] = _seconds(service["retry_delay"])
        job["repository_timeout"] = _seconds(service["repository_timeout"])
        # One repository per host: its first job's drill reads the repository's data, one subset per drill; the
        # other jobs' drills restore their sample only.
        job["drill"] = dict(drill, check_subsets=drill["check_subsets"] if not jobs else 0)
        # Likewise its retention run checks the repository's structure (restic check, no data read): a pack gone
        # from the bucket is found within a day, not at the next data check.
        job["check_structure"] = not jobs and settings.get("repository_check") is not False
        jobs.append(job)
    warnings = list(password_warnings)
    if repository.get("kind") == "s3" and repository.get("endpoint", "").startswith("http://") and not _is_loopback(repository["endpoint"]):
        warnings.append("backup_s3_endpoint uses plain http: restic encrypts the data, but the S3 keys travel in clear")
    node_exporter = _node_exporter(settings, errors)
    return errors, warnings, repository, jobs, service, node_exporter


def _node_exporter(settings, errors):
    """Whether the role installs node_exporter ("install"), writes into an existing one's textfile directory
    ("existing") or only writes the metrics files ("none"); its listen address and extra flags."""
    mode = _text(settings.get("node_exporter") or "none")
    metrics_dir = _text(settings.get("metrics_dir")).rstrip("/")
    exporter = {"mode": mode, "textfile_dir": metrics_dir, "listen_address": _text(settings.get("node_exporter_listen_address") or ":9100"), "args": []}
    if mode not in NODE_EXPORTER_MODES:
        errors.append("backup_node_exporter must be none, install or existing")
        return exporter
    if mode != "none" and not metrics_dir:
        errors.append("backup_node_exporter=%s needs backup_metrics_dir (the textfile directory node_exporter reads)" % mode)
    if mode == "install":
        if not full(LISTEN_ADDRESS, exporter["listen_address"]) or int(exporter["listen_address"].rsplit(":", 1)[1]) > 65535:
            errors.append('backup_node_exporter_listen_address "%s" must be host:port, [IPv6]:port or :port' % exporter["listen_address"])
        flags = _strings(settings.get("node_exporter_args") or [], "backup_node_exporter_args", errors)
        for index, flag in enumerate(flags):
            where = "backup_node_exporter_args[%d]" % index
            if not full(EXPORTER_FLAG, flag):
                errors.append('%s "%s" must be one --flag or --flag=value without spaces, quotes, backslashes or $' % (where, flag))
            elif flag.split("=", 1)[0] in EXPORTER_OWN_FLAGS:
                errors.append("%s: %s is set by the role (backup_metrics_dir, backup_node_exporter_listen_address)" % (where, flag.split("=", 1)[0]))
            else:
                exporter["args"].append(flag)
    # The whole ARGS value of /etc/default/prometheus-node-exporter (every part checked above; backup_metrics_dir
    # follows the absolute-path rule, which allows no space, quote, backslash or $).
    exporter["args_line"] = " ".join(["--collector.textfile.directory=" + metrics_dir, "--web.listen-address=" + exporter["listen_address"]] + exporter["args"])
    return exporter


def backup_host_jobs(jobs, service, probe):
    """The jobs as the host gets them: with the repository's mount point and the alert thresholds in seconds.

    ``probe`` is keepdata.storage.backup_probe's result: ``repository_mount`` and ``schedule_gaps`` (the longest
    time between two elapses of each calendar expression, asked of systemd-analyze). A backup is late after its
    schedule's longest gap, its randomized delay, every retry and the grace; a drill after its own gap, the delay
    and the grace. 0 (no lateness alert) for a job without a timer or a schedule whose gap is unknown.
    """
    gaps = (probe or {}).get("schedule_gaps") or {}
    grace = timespan_seconds(service.get("alert_grace") or "1h")
    host_jobs = []
    for job in jobs:
        delay = timespan_seconds(job.get("randomized_delay") or "0")
        gap = int(gaps.get(job["schedule"]) or 0)
        base = timespan_seconds(service.get("retry_delay") or "15min")
        retries = sum(retry_delay_seconds(base, failure) for failure in range(1, int(job.get("retry_attempts") or 0) + 1))
        max_age = gap + delay + retries + grace if job.get("enabled") and gap else 0
        drill_gap = int(gaps.get(service.get("drill_schedule") or "") or 0) if service.get("drill_enabled") else 0
        drill_max_age = drill_gap + delay + grace if drill_gap else 0
        host_jobs.append(dict(job, mount_point=(probe or {}).get("repository_mount") or "", max_age=max_age, drill_max_age=drill_max_age))
    return host_jobs


def backup_recorded_good(reads):
    """{job name: the snapshot ID its host recorded as its last good one}, from the results of reading each job's state
    file on the host (ansible.builtin.slurp looped over the plan's jobs, as playbooks/backup_retention.yml does).

    The host's own retention keeps that snapshot when a suspect one could not be tagged; a retention run elsewhere
    (module backup_retention) keeps it too when given this. A job whose file could not be read (a rebuilt or
    unreachable host, a first run), is not JSON or holds no snapshot ID gets no entry: nothing more is kept. What a
    host says can only keep one snapshot more, never have one forgotten.
    """
    records = {}
    for read in reads or []:
        if not isinstance(read, dict) or read.get("failed") or read.get("unreachable") or read.get("skipped"):
            continue
        item = read.get("item")
        name = item.get("name") if isinstance(item, dict) else None
        try:
            state = json.loads(base64.b64decode(read.get("content") or "", validate=True).decode("utf-8"))
        except (ValueError, TypeError, UnicodeDecodeError):
            continue
        good = state.get("good_snapshot") if isinstance(state, dict) else None
        if isinstance(name, str) and isinstance(good, str) and SNAPSHOT_ID.fullmatch(good):
            records[name] = good
    return records


def _is_loopback(url):
    host = urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def backup_plan(settings):
    """The plan, safe to print: errors, warnings, the repository, the jobs, the units' settings, the probe's request."""
    settings = read_flags(settings)
    errors, warnings, repository, jobs, service, node_exporter = _plan(settings)
    if errors:
        return {"errors": errors, "warnings": [], "repository": {}, "jobs": [], "service": {}, "probe": {}, "bucket": {}, "node_exporter": {}, "host": {}}
    schedules = [{"option": "backup_jobs[%s].schedule" % j["name"], "value": j["schedule"]} for j in jobs]
    if service["host_retention"]:
        schedules.append({"option": "backup_forget_schedule", "value": service["forget_schedule"]})
    if service["drill_enabled"]:
        schedules.append({"option": "backup_drill_schedule", "value": service["drill_schedule"]})
    # Timers held (a host being rebuilt by playbooks/recover.yml): the data comes with the restore that follows, so
    # the paths and the SQLite files need not exist yet.
    restoring = service["arm_timers"] is False
    probe = {
        "paths": [] if restoring else [{"option": "backup_jobs[%s].paths" % j["name"], "path": p} for j in jobs for p in j["paths"]],
        "sqlite_paths": [
            {"option": "backup_jobs[%s].databases[%s].path" % (j["name"], d["name"]), "path": d["path"]}
            for j in jobs
            for d in j["databases"]
            if d["type"] == "sqlite" and not restoring
        ],
        "repository_path": repository["path"],
        # An fstab mount of the repository that is not mounted: refused by the probe, or mounted first by the role.
        "mount_repository": repository["kind"] == "path" and settings.get("mount_repository") is True,
        "schedules": schedules,
        "packages": ["restic"] + (["prometheus-node-exporter"] if node_exporter["mode"] == "install" else [])
        if settings.get("manage_packages") is not False
        else [],
        # An existing node_exporter's textfile directory must be there: metrics written elsewhere reach nobody.
        "textfile_dir": node_exporter["textfile_dir"] if node_exporter["mode"] == "existing" else "",
        "ports": [repository["address"]] if repository["kind"] == "s3" and settings.get("preflight") is not False else [],
        "allow_same_device": settings.get("allow_same_device") is True,
        "timeout": whole_number(settings.get("preflight_timeout")),
    }
    bucket = {}
    if repository["kind"] == "s3":
        bucket = {
            "name": repository["bucket"],
            "prefix": repository["prefix"],
            "endpoint": repository["endpoint"],
            "path_style": repository["path_style"],
            "create": settings.get("create_bucket") is True,
            # Append-only (backup_append_only): the controller converges the bucket with the owner's key, versioned,
            # with preset restic_append_only naming the host's S3 user for the repository's prefix.
            "append_only": not service["host_retention"],
            "versioning": "enabled" if not service["host_retention"] else "",
            "policy_preset": "restic_append_only" if not service["host_retention"] else "",
            "principals": [_text(settings.get("append_only_user")).strip()] if not service["host_retention"] else [],
        }
    return {
        "errors": [],
        "warnings": warnings,
        "repository": repository,
        "jobs": jobs,
        "service": service,
        "probe": probe,
        "bucket": bucket,
        "node_exporter": node_exporter,
        # What the tasks hand to the modules on the host, as read and checked here (the tasks read no role variable).
        "host": {
            "config_dir": _text(settings.get("config_dir")).rstrip("/"),
            "metrics_dir": _text(settings.get("metrics_dir")).rstrip("/"),
            "apt_cache_valid_time": whole_number(settings.get("apt_cache_valid_time")),
        },
    }


def backup_secrets(settings):
    """{password, recovery_password, access_key, secret_key, bucket_access_key, bucket_secret_key}; empty strings when
    the settings are invalid."""
    settings, errors, _warnings = resolve_passwords(settings)
    if errors or _plan_resolved(settings, [])[0]:
        return dict.fromkeys(("password", "recovery_password", "access_key", "secret_key", "bucket_access_key", "bucket_secret_key"), "")
    ak, sk = "", ""
    if _text(settings.get("target") or "s3") == "s3":
        ak, sk, _endpoint = _credentials(settings, [])
    owner_ak, owner_sk = ("", "")
    if read_flags(settings).get("append_only") is True:
        owner_ak, owner_sk = _text(settings.get("s3_owner_access_key")), _text(settings.get("s3_owner_secret_key"))
    return {
        "password": _text(settings.get("password")),
        "recovery_password": _text(settings.get("recovery_password")),
        # The host's keys: written to the host's credentials file.
        "access_key": ak,
        "secret_key": sk,
        # The keys the controller uses for the bucket (create, read, policy): the owner's in append-only mode, never
        # written to the host; else the host's.
        "bucket_access_key": owner_ak or ak,
        "bucket_secret_key": owner_sk or sk,
    }


def backup_bucket_problems(info, bucket):
    """{errors, warnings} about a bucket holding a restic repository, from keepdata.storage.cellar_bucket_info.

    A lifecycle rule that expires objects under the repository's prefix deletes pack files restic still
    needs: refused; a rule that needs a tag never reaches the repository (restic never tags its objects).
    Versioning makes prune free nothing (old versions stay): reported.
    """
    errors, warnings = [], []
    prefix = _text(bucket.get("prefix")).strip("/")
    for rule in info.get("lifecycle") or []:
        rule_prefix = s3_rule_prefix(rule)
        if not s3_rule_removes_current_objects(rule) or rule_prefix is None:
            continue
        if prefix_overlaps(rule_prefix, prefix):
            errors.append(
                'bucket "%s": lifecycle rule "%s" expires objects under the repository prefix "%s"; restic would lose pack files '
                "(remove the rule or choose another backup_s3_prefix)" % (bucket.get("name"), _text(rule.get("ID")) or "?", prefix or "/")
            )
    if info.get("versioning") == "enabled":
        warnings.append('bucket "%s" has versioning enabled: restic prune then frees no space (old versions stay until deleted)' % bucket.get("name"))
    return {"errors": errors, "warnings": warnings}
