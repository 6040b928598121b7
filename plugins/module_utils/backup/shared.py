# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the backup runner and the modules share about a job: its names and settings, restic's command lines and
its failures classified, snapshots and their tags, the job's files (configuration, state, marks), the command lines of
restic's ls and restore and of the database dumps, and the metrics.

The runner imports this module, and so do the modules that read or restore a job's backups (backup_info,
backup_restore, backup_export through restore.py) and backup_jobs: they carry this file, not the whole runner.
Standard library only (3.9+): module backup_jobs writes it onto the host beside the runner (SHARED_PROGRAM), where
the runner loads it. Nothing here reads a secret: restic gets its secrets as file paths.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import errno
import json
import os
import re
import shutil
import tempfile

# --- names and settings: shared with the modules, the plans and the units ----------------------------------------------
DEFAULT_CONFIG_DIR = "/etc/keepdata/backup/jobs"
DEFAULT_LOCK_DIR = "/run/lock"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The one definition of these rules: backup_plan imports them, so the role refuses what the runner would refuse.
# Whole-value rules: use fullmatch (or storage_rules.full), never match ("$" would let a trailing newline in).
JOB_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=@+-]{0,63}")
TAG_TEXT = "1 to 64 letters, digits and . _ : = @ + - (starting with a letter or digit)"
DUMP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# restic's host name of a host's snapshots (backup_host_name, and a restore's source_host).
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
# A restic snapshot ID, whole (64 hex digits) or its short form (restic prints 8).
SNAPSHOT_ID = re.compile(r"[0-9a-f]{8,64}")
JOB_TAG = "keepdata-job="
# The tag of a snapshot whose sources were empty or shrank past suspect_shrink (see shrink_verdict); retention never
# forgets the newest snapshot without it.
SUSPECT_TAG = "keepdata-suspect"
# The hand tag (backup_now.yml's backup_now_tag) that accepts a shrink once: that snapshot is a good one.
ACCEPT_SHRINK_TAG = "shrink-accepted"
DEFAULT_SUSPECT_SHRINK = 50
RETRY_LOCK = "5m"
RETRY_LOCK_SINCE = (0, 16)
# restic 0.15 writes a file's holes back as holes (restore --sparse); 0.14 writes them out as zeros.
RESTORE_SPARSE_SINCE = (0, 15)
EXIT_OK, EXIT_FAILED, EXIT_PARTIAL = 0, 1, 3
MAX_LISTED_ITEMS = 10
JOURNAL_LINES = 30
NOTIFY_TIMEOUT = 120
# Retries after a failed backup: the first after retry_delay seconds, each next one twice as late, up to 2**3 times.
DEFAULT_RETRY_DELAY = 900
# How long a job waits for its repository to answer (backup_repository_timeout): minutes, not restic 0.18's 15.
DEFAULT_REPOSITORY_TIMEOUT = 300
RETRY_DOUBLINGS = 3
DEFAULT_RUNTIME_UNITS_DIR = "/run/systemd/system"
KINDS = ("backup", "forget", "drill")
# The state key counting each kind's failures in a row (what the failure handler reports).
FAILURE_COUNTS = {"backup": "consecutive_failures", "forget": "forget_consecutive_failures", "drill": "drill_consecutive_failures"}
# The state key holding why each kind's last run failed ("" after a success): a key of CAUSE_TEXTS, or "failed".
FAILURE_CAUSE_KEYS = {"backup": "last_failure_cause", "forget": "forget_failure_cause", "drill": "drill_failure_cause"}
# restic's own environment is built from nothing but these, plus what restic_env sets.
COPIED_ENV = ("PATH", "HOME", "LANG")
REQUIRED = ("name", "repository", "repository_id", "host", "state_dir")
CONFIG_DEFAULTS = {
    "restic_options": [],
    "mount_point": "",
    "paths": [],
    "excludes": [],
    "tags": [],
    "limit_upload": 0,
    "compression": "",
    "pre_hooks": [],
    "post_hooks": [],
    "on_failure_hooks": [],
    "hook_timeout": 3600,
    # How long the repository may take to answer before the job fails as unreachable (see repository_answers).
    "repository_timeout": DEFAULT_REPOSITORY_TIMEOUT,
    "databases": [],
    "dump_dir": "",
    "retention": {},
    "tag_rules": [],
    "prune": False,
    # After retention, restic check without reading data: the repository's first job only (the plan sets it).
    "check_structure": False,
    "retry_attempts": 0,
    "retry_delay": DEFAULT_RETRY_DELAY,
    # A snapshot with this many percent fewer files or bytes than the job's last good one is suspect (0: only an
    # empty one is).
    "suspect_shrink": DEFAULT_SUSPECT_SHRINK,
    "notify_command": "",
    "metrics_dir": "",
    "cache_dir": "",
    "password_file": "",
    "s3_credentials_file": "",
    "drill": {"sample_files": 20, "sample_percent": 0, "check_subsets": 0},
    # Alert thresholds in seconds, exported as metrics (0: no limit).
    "max_age": 0,
    "drill_max_age": 0,
    # Units a restore stops and starts again; the role passes them on, the runner's commands do not use them.
    "services": [],
}
STATE_DEFAULTS = {
    "last_run": 0,
    "last_success": 0,
    "last_exit_status": 0,
    "consecutive_failures": 0,
    "last_duration": 0,
    "bytes_added": 0,
    "files_new": 0,
    "files_changed": 0,
    "snapshots": 0,
    "partial": 0,
    "last_forget": 0,
    "last_forget_exit_status": 0,
    "forget_consecutive_failures": 0,
    "last_drill": 0,
    "last_drill_success": 0,
    "drill_exit_status": 0,
    "drill_files_checked": 0,
    "drill_bytes_checked": 0,
    "drill_duration": 0,
    "drill_consecutive_failures": 0,
    "drill_next_subset": 1,
    "drill_subset_checked": 0,
    "last_check": 0,
    "last_check_success": 0,
    "check_exit_status": 0,
    "last_structure_check": 0,
    "last_structure_check_success": 0,
    "structure_check_exit_status": 0,
    # The last backup's snapshot was suspect (1) or good (0); the newest good snapshot this host knows, its figures
    # (files and bytes restic processed) and its time; when this host last restored the job (backup_restore).
    "suspect": 0,
    "good_snapshot": "",
    "good_files": 0,
    "good_bytes": 0,
    "good_time": 0,
    "last_restore": 0,
    "last_restore_snapshot": "",
    # When the role installed the job: lateness of a job that never ran counts from it.
    "since": 0,
}
_SNAPSHOT_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")


class JobError(Exception):
    """A step failed; the message says which one, and never holds a secret nor a hook's text. ``cause`` is restic's
    failure class (a key of CAUSE_TEXTS) when restic failed, else ""."""

    def __init__(self, message, cause=""):
        super().__init__(message)
        self.cause = cause


def restic_error(what, returncode, stderr):
    """The JobError of a failed restic command: its exit status, the cause and restic's own error line."""
    hint, cause = restic_diagnosis(stderr, returncode)
    return JobError("%s failed (%s): %s" % (what, describe_exit(returncode), hint), cause=cause)


def job_tag(name):
    return JOB_TAG + name


def last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def format_bytes(count):
    value = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return "%d B" % value if unit == "B" else "%.1f %s" % (value, unit)
        value /= 1024
    return "%d B" % count


def listed(items, limit=MAX_LISTED_ITEMS):
    """``items`` joined, at most ``limit`` of them, then how many more."""
    text = "; ".join(items[:limit])
    if len(items) > limit:
        text += "; and %d more" % (len(items) - limit)
    return text


def json_list(text, what):
    """The JSON list restic printed; raises JobError naming ``what`` printed it when it is no such list."""
    try:
        items = json.loads(text or "null")
    except ValueError:
        items = None
    if not isinstance(items, list):
        raise JobError("%s did not print a JSON list" % what)
    return items


def with_defaults(config):
    merged = dict(CONFIG_DEFAULTS)
    merged.update(config)
    return merged


def config_problems(config, job):
    problems = ["%s is missing" % key for key in REQUIRED if not config.get(key)]
    if config.get("name") and config["name"] != job:
        problems.append("name is %r, not %r" % (config["name"], job))
    if config.get("databases") and not config.get("dump_dir"):
        problems.append("dump_dir is missing (the job has databases)")
    return problems


def state_path(config):
    return os.path.join(config["state_dir"], "%s.state.json" % config["name"])


def lock_path(lock_dir, repository_id):
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", str(repository_id))
    return os.path.join(lock_dir, "keepdata-backup-%s.lock" % safe)


def unit_name(job, kind):
    return "keepdata-backup-%s%s.service" % (job, "" if kind == "backup" else "-" + kind)


def journal_units(job, kind):
    """The units whose log the failure handler sends: a backup's include its tagged runs (keepdata-backup-JOB@TAG),
    which report to the same handler; journalctl takes the pattern and interleaves them by time."""
    units = [unit_name(job, kind)]
    if kind == "backup":
        units.append("keepdata-backup-%s@*.service" % job)
    return units


def format_seconds(seconds):
    """ "15min", "2h", "1h 30min", "45s": a delay as a person reads it."""
    seconds = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            parts.append("%d%s" % (seconds // size, unit))
            seconds %= size
    if seconds or not parts:
        parts.append("%ds" % seconds)
    return " ".join(parts)


# --- restic: its version, environment and commands, and its failures classified ----------------------------------------


def parse_restic_version(text):
    """(major, minor, patch) from the output of ``restic version``, or None."""
    match = re.search(r"\brestic (\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(part) for part in match.groups()) if match else None


def retry_lock_flags(version):
    """``--retry-lock`` for backup, forget and prune when restic has it (0.16 and later)."""
    if version and tuple(version[:2]) >= RETRY_LOCK_SINCE:
        return ["--retry-lock", RETRY_LOCK]
    return []


def restore_flags(version):
    """``--sparse`` for restore when restic has it (0.15 and later): a sparse file stays sparse where it is restored."""
    if version and tuple(version[:2]) >= RESTORE_SPARSE_SINCE:
        return ["--sparse"]
    return []


def credential_path(environ, name, fallback):
    """The file systemd handed over with LoadCredential=NAME:..., else ``fallback`` (a path, never the secret)."""
    directory = environ.get("CREDENTIALS_DIRECTORY", "")
    if directory:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return fallback


def restic_env(config, environ):
    """restic's whole environment: PATH/HOME/LANG copied, the repository, and the secrets as file paths only."""
    env = {key: environ[key] for key in COPIED_ENV if environ.get(key)}
    env.setdefault("PATH", DEFAULT_PATH)
    env["RESTIC_REPOSITORY"] = config["repository"]
    env["RESTIC_PASSWORD_FILE"] = credential_path(environ, "restic-password", config.get("password_file", ""))
    if config["repository"].startswith("s3:"):
        env["AWS_SHARED_CREDENTIALS_FILE"] = credential_path(environ, "s3-credentials", config.get("s3_credentials_file", ""))
    cache = environ.get("CACHE_DIRECTORY", "").split(":")[0] or config.get("cache_dir", "")
    if cache:
        env["RESTIC_CACHE_DIR"] = cache
    return env


def restic_command(config, subcommand, *args):
    return ["restic"] + list(config.get("restic_options") or []) + [subcommand] + list(args)


def job_filter(config):
    """The options that select this job's snapshots on this host."""
    return ["--host", config["host"], "--tag", job_tag(config["name"])]


def describe_exit(returncode):
    if returncode is not None and returncode < 0:
        return "killed by signal %d" % -returncode
    return "exit status %s" % returncode


# Why restic failed, from its exit status (restic >= 0.17: 10 no repository, 11 lock failed, 12 wrong password) or,
# for restic 0.14 (exit status 1 for all of them), from its own words, first match wins. A text naming the network
# or a refusal wins over "Is there a repository at the following location?", which restic also prints when it could
# not look at all. The one table of causes: restic_repo and backup_restore classify with it too.
FAILURE_CAUSES = (
    ("wrong_password", "wrong repository password", ("wrong password or no key found",)),
    ("locked", "the repository is locked by another restic", ("repository is already locked", "unable to create lock")),
    ("disk_full", "no space left where the repository is", ("no space left on device", "disk quota exceeded", "quotaexceeded")),
    # restic check's last line when it found errors (a pack gone, an index or tree that does not read back).
    ("damaged", "restic check found damage in the repository", ("repository contains errors", "loadindex returned errors")),
    (
        "denied",
        "the S3 keys or the file permissions are refused",
        (
            "access denied",
            "accessdenied",
            "permission denied",
            "invalidaccesskeyid",
            "access key id you provided does not exist",
            "signaturedoesnotmatch",
            "signature we calculated does not match",
            "forbidden",
        ),
    ),
    (
        "unreachable",
        "the S3 server or the repository's path cannot be reached",
        (
            "connection refused",
            "connection reset",
            "no such host",
            "no route to host",
            "network is unreachable",
            "i/o timeout",
            "timeout exceeded",
            "timed out",
            "tls handshake",
            "service unavailable",
            "slow down",
            "slowdown",
            "internal server error",
            "bad gateway",
            "gateway timeout",
        ),
    ),
)
CAUSE_EXIT_CODES = {10: "missing_repository", 11: "locked", 12: "wrong_password"}
# Causes of a failure that may come from the repository's data (not from reaching or opening it).
DATA_CAUSES = ("", "failed", "damaged")
CAUSE_TEXTS = dict((cause, text) for cause, text, _needles in FAILURE_CAUSES)
CAUSE_TEXTS["missing_repository"] = "no restic repository at this location (not initialised, or the wrong path or bucket)"
CAUSE_TEXTS["failed"] = "restic failed"
CAUSE_TEXTS["stopped"] = "the unit was stopped or timed out"
# The runner's own verdicts on the data (judge_snapshot, refuse_unrestored): a retry would only repeat them.
CAUSE_TEXTS["suspect"] = "the snapshot's sources were empty or shrank past suspect_shrink"
CAUSE_TEXTS["not_restored"] = "empty sources on a host that has not restored the job's snapshots"
NOT_RETRIED_CAUSES = ("suspect", "not_restored")
MISSING_QUESTION = "is there a repository at the following location?"
MISSING_TEXTS = (
    "no such file or directory",
    "file does not exist",
    "the specified key does not exist",
    "nosuchkey",
    "bucket does not exist",
    "nosuchbucket",
    "not found",
)


def restic_failure(stderr, returncode=None):
    """(cause, restic's own error line) of a failed restic: the cause is one of CAUSE_TEXTS' keys ("failed" when
    nothing tells), the line is the one that says so (else the Fatal: line, else the last one)."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith("Fatal:")]
    own = fatal[0] if fatal else (lines[-1] if lines else "")
    if returncode in CAUSE_EXIT_CODES:
        return CAUSE_EXIT_CODES[returncode], own
    for cause, _text, needles in FAILURE_CAUSES:
        for line in lines:
            if any(needle in line.lower() for needle in needles):
                return cause, line
    lowered = "\n".join(lines).lower()
    if MISSING_QUESTION in lowered and any(needle in lowered for needle in MISSING_TEXTS):
        return "missing_repository", own
    return "failed", own


def restic_diagnosis(stderr, returncode=None):
    """(hint, cause) of a failed restic: the cause as restic_failure names it, and the hint for the journal and the
    failure notice, ``CAUSE (what it means): restic's own line`` (the line alone when the cause is unknown)."""
    cause, line = restic_failure(stderr, returncode)
    if cause == "failed":
        return line, cause
    return "%s (%s)%s" % (cause, CAUSE_TEXTS[cause], ": " + line if line else ""), cause


def restic_hint(stderr, returncode=None):
    """What went wrong, for the journal and the failure notice (restic_diagnosis's hint)."""
    return restic_diagnosis(stderr, returncode)[0]


def is_lock_error(stderr):
    return "repository is already locked" in (stderr or "") or "unable to create lock" in (stderr or "")


# --- snapshots and their tags ------------------------------------------------------------------------------------------


def parse_snapshots(text):
    return [snap for snap in json_list(text, "restic snapshots") if isinstance(snap, dict)]


def snapshot_time(text):
    """Seconds since the epoch of restic's time (nanoseconds, any offset), or None."""
    match = _SNAPSHOT_TIME.match(text or "")
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    zone = match.group(8) or "Z"
    offset = datetime.timedelta(0)
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        offset = -offset if zone[0] == "-" else offset
    moment = datetime.datetime(year, month, day, hour, minute, second, micro, tzinfo=datetime.timezone(offset))
    return moment.timestamp()


def latest_snapshot(snapshots):
    """The newest snapshot by time (restic's list order breaks ties and stands in for unreadable times)."""
    if not snapshots:
        return None
    keyed = [(snapshot_time(snap.get("time")), index, snap) for index, snap in enumerate(snapshots)]
    return max(keyed, key=lambda item: (item[0] if item[0] is not None else float("-inf"), item[1]))[2]


def is_suspect(snap):
    return SUSPECT_TAG in (snap.get("tags") or [])


def _content_key(snap):
    """What a snapshot and its copies by ``restic tag`` share: its time, tree, host and paths (the ID differs)."""
    return (snap.get("time"), snap.get("tree"), snap.get("hostname"), tuple(snap.get("paths") or ()))


def untagged_twins(snapshots):
    """The IDs of the untagged originals of suspect snapshots. ``restic tag`` writes the tagged copy, then deletes
    the original; where the original cannot be deleted (the append-only mode, whose bucket policy refuses it: restic
    0.14 warns and exits 0, measured on the RGW), both stay. Such an original is the same snapshot as its suspect
    copy (same time, tree, host and paths): it is no good snapshot, and retention forgets it first."""
    suspects = set(_content_key(snap) for snap in snapshots if is_suspect(snap))
    return [snap["id"] for snap in snapshots if snap.get("id") and not is_suspect(snap) and _content_key(snap) in suspects]


def without_twins(snapshots):
    """``snapshots`` but the untagged originals of suspect ones (untagged_twins)."""
    twins = set(untagged_twins(snapshots))
    return [snap for snap in snapshots if snap.get("id") not in twins]


def last_good_snapshot(snapshots):
    """The newest snapshot not tagged suspect, nor the untagged original of a suspect one, or None."""
    return latest_snapshot([snap for snap in without_twins(snapshots) if not is_suspect(snap)])


def record_snapshot_count(state, snapshots):
    """Note in ``state`` how many snapshots of the job the repository holds, as restic just listed them."""
    state["snapshots"] = snapshots
    state["snapshots_known"] = True


def systemd_unescape(text):
    """``text`` with systemd's ``\\xNN`` escapes undone (what ``systemd-escape`` makes of "-" and other characters)."""
    return re.sub(r"\\x([0-9A-Fa-f]{2})", lambda match: chr(int(match.group(1), 16)), text or "")


def hand_tag(text):
    """The tag of ``run --tag``, unescaped from a unit instance name (``%i``); raises JobError when it is not a tag."""
    tag = systemd_unescape(text)
    if not TAG.fullmatch(tag):
        raise JobError("invalid --tag %r: a tag is %s" % (tag, TAG_TEXT))
    if tag.startswith(JOB_TAG):
        raise JobError("invalid --tag %r: %s... is the tag of a job, set by the runner" % (tag, JOB_TAG))
    return tag


# --- files: configuration, state, marks, written atomically ------------------------------------------------------------


def atomic_write(path, text, mode):
    """Write ``text`` to ``path`` through a temporary file in the same directory: readers see old or new, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def store_state(config, state):
    """Write the job's state file (root only): the runner's runs and backup_restore's notes alike."""
    atomic_write(state_path(config), json.dumps(state, indent=2, sort_keys=True) + "\n", 0o600)


def read_state(path):
    """The saved state, {} when there is none yet; raises JobError when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return {}
        raise JobError("cannot read the state file %s: %s" % (path, exc.strerror)) from exc
    except ValueError as exc:
        raise JobError("the state file %s is not valid JSON" % path) from exc
    return state if isinstance(state, dict) else {}


def load_config(config_dir, job):
    if not JOB_NAME.fullmatch(job or ""):
        raise JobError("invalid job name %r (expected [a-z0-9][a-z0-9_-]{0,39})" % job)
    path = os.path.join(config_dir, job + ".json")
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as exc:
        raise JobError("cannot read the job config %s: %s" % (path, exc.strerror)) from exc
    except ValueError as exc:
        raise JobError("the job config %s is not valid JSON (%s)" % (path, exc)) from exc
    if not isinstance(config, dict):
        raise JobError("the job config %s is not a JSON object" % path)
    problems = config_problems(config, job)
    if problems:
        raise JobError("the job config %s is not usable: %s" % (path, "; ".join(problems)))
    return with_defaults(config)


def set_marker(path, present):
    """Create (``present``, with its directory) or remove the marker file ``path`` (the unclean and damaged markers)."""
    if present:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a"):
            pass
    elif os.path.exists(path):
        os.unlink(path)


def damaged_path(config):
    """A marker left by a structural check that found the repository damaged, removed by the next one that finds it
    sound: while it is there, no job of this host prunes the repository."""
    return os.path.join(config["state_dir"], "repository-%s.damaged" % config["repository_id"])


def unclean_path(config):
    """A marker left while a restic of this repository may have died holding its lock (killed, or the runner stopped)."""
    return os.path.join(config["state_dir"], "repository-%s.unclean" % config["repository_id"])


def private_opener(path, flags):
    """An opener for open(): a new file readable by root alone (a listing or a temporary file that may name private paths)."""
    return os.open(path, flags, 0o600)


def remove_tree(path):
    """Remove a drill's directory, whatever modes restic restored on the directories inside it."""
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            inner = os.path.join(root, name)
            if not os.path.islink(inner):
                os.chmod(inner, 0o700)
    shutil.rmtree(path)


# --- restic's ls and restore, and database dumps: what the restore drill and the restores both run -------------------
# restic's --include patterns are Go filepath.Match patterns: these four characters must be escaped (measured
# with restic 0.14: "[" "*" "?" and "\\" match as globs otherwise; "]", "{", "!" and "$" are taken as they are).
_GLOB_CHARS = re.compile(r"([\\*?\[])")


def include_pattern(path):
    """A restic --include pattern that matches exactly ``path`` (its glob characters escaped)."""
    return _GLOB_CHARS.sub(r"\\\1", path)


def ls_command(config, snapshot_id):
    return restic_command(config, "ls", "--json", snapshot_id)


def ls_node(line):
    """The node (a dict with an absolute path) of one line of ``restic ls --json``, else None (the snapshot's line, a
    blank line); raises JobError on a line that is not JSON. restic 0.14 marks the lines with struct_type (snapshot,
    node), later ones with message_type."""
    line = line.strip()
    if not line:
        return None
    try:
        node = json.loads(line)
    except ValueError:
        raise JobError("restic ls printed a line that is not JSON") from None
    if not isinstance(node, dict) or (node.get("struct_type") or node.get("message_type")) != "node":
        return None
    path = node.get("path")
    return node if isinstance(path, str) and path.startswith("/") else None


def restore_command(config, snapshot_id, target, paths, flags=(), *, verify=True):
    """restic restore of ``paths`` (every path of the snapshot when empty) into ``target``, each file read back
    and compared with the snapshot when ``verify``."""
    argv = restic_command(config, "restore", *flags) + [snapshot_id, "--target", target] + (["--verify"] if verify else [])
    for path in paths:
        argv += ["--include", include_pattern(path)]
    return argv


def restore_problems(stderr, target):
    """What restic restore reported about files ("ignoring error for PATH: ..."), the target directory left out of
    the paths. restic 0.14 says so for a damaged blob ("ciphertext verification failed") and, with --verify, for a
    restored file that differs ("Unexpected content in ...", "Invalid file size for ...")."""
    prefix, root = "ignoring error for ", target.rstrip("/")
    problems = []
    for line in (stderr or "").splitlines():
        if line.startswith(prefix):
            text = line[len(prefix) :].replace(root + "/", "/")
            if text not in problems:
                problems.append(text)
    return problems


def dump_file_name(database):
    name = str(database.get("name", ""))
    if not DUMP_NAME.fullmatch(name):
        raise JobError("invalid database dump name %r" % name)
    extension = {"sqlite": "sqlite3", "postgresql": "pgdump", "mysql": "sql"}.get(database.get("type"))
    if not extension:
        raise JobError("database %s: unknown type %r" % (name, database.get("type")))
    return "%s.%s" % (name, extension)


def dump_command(database):
    """The argv whose stdout is the dump of a postgresql or mysql database."""
    options = [str(option) for option in database.get("options") or []]
    if database["type"] == "postgresql":
        user = database.get("user") or "postgres"
        return ["runuser", "-u", user, "--", "pg_dump", "--format=custom"] + options + [database["database"]]
    if database["type"] == "mysql":
        argv = ["mysqldump"]
        if database.get("defaults_file"):
            argv.append("--defaults-extra-file=" + database["defaults_file"])
        return argv + ["--single-transaction", "--routines", "--events"] + options + [database["database"]]
    raise JobError("database %s: no dump command for type %r" % (database.get("name"), database.get("type")))


# --- the failure handler's retries: the role checks a delay with the same rule --------------------------------------
def retry_delay_seconds(base, failures):
    """The delay before the retry that follows failure number ``failures`` in a row: ``base`` seconds, doubled after
    each further failure, at most RETRY_DOUBLINGS times (15min: 15, 30, 60, 120, 120, ... minutes)."""
    return int(base) * 2 ** min(max(int(failures), 1) - 1, RETRY_DOUBLINGS)


# --- metrics: declared once, written for node_exporter's textfile collector --------------------------------------------
# (metric name without the keepdata_backup_ prefix, state key, help text); all gauges.
METRICS = (
    ("last_run_timestamp_seconds", "last_run", "Unix time when the last backup run started."),
    ("last_success_timestamp_seconds", "last_success", "Unix time when the last successful (or partial) backup started, 0 if never."),
    ("last_duration_seconds", "last_duration", "Duration of the last backup run in seconds."),
    ("last_exit_status", "last_exit_status", "Outcome of the last backup run: 0 ok, 3 partial (some files unreadable), 1 failure."),
    ("last_partial", "partial", "1 if the last backup snapshot missed unreadable files, else 0."),
    ("last_bytes_added", "bytes_added", "Bytes added to the repository by the last backup run."),
    ("last_files_new", "files_new", "New files in the last backup snapshot."),
    ("last_files_changed", "files_changed", "Changed files in the last backup snapshot."),
    ("snapshots", "snapshots", "Snapshots of this job on this host in the repository."),
    ("consecutive_failures", "consecutive_failures", "Backup runs failed in a row since the last success."),
    ("last_forget_timestamp_seconds", "last_forget", "Unix time when the retention policy last ran successfully, 0 if never."),
    ("drill_last_timestamp_seconds", "last_drill", "Unix time when the last restore drill started, 0 if never."),
    ("drill_last_success_timestamp_seconds", "last_drill_success", "Unix time when the last successful restore drill started, 0 if never."),
    ("drill_last_result", "drill_exit_status", "Outcome of the last restore drill: 0 ok, 1 failed."),
    ("drill_files_checked", "drill_files_checked", "Files restored and verified by the last restore drill."),
    ("drill_bytes_checked", "drill_bytes_checked", "Bytes restored and verified by the last restore drill."),
    ("drill_duration_seconds", "drill_duration", "Duration of the last restore drill in seconds."),
    ("drill_consecutive_failures", "drill_consecutive_failures", "Restore drills failed in a row since the last success."),
    ("forget_last_result", "last_forget_exit_status", "Outcome of the last retention run (forget, prune): 0 ok, 1 failed."),
    ("forget_consecutive_failures", "forget_consecutive_failures", "Retention runs failed in a row since the last success."),
    ("check_last_timestamp_seconds", "last_check", "Unix time when the last repository check (restic check --read-data-subset) started, 0 if never."),
    ("check_last_success_timestamp_seconds", "last_check_success", "Unix time when the last successful repository check started, 0 if never."),
    ("check_last_result", "check_exit_status", "Outcome of the last repository check: 0 ok (or never run), 1 failed."),
    (
        "structure_check_last_timestamp_seconds",
        "last_structure_check",
        "Unix time when the retention run of the last structural repository check (restic check, no data read) to reach a verdict started, 0 if never.",
    ),
    (
        "structure_check_last_success_timestamp_seconds",
        "last_structure_check_success",
        "Unix time when the retention run of the last structural repository check that found no damage started, 0 if never.",
    ),
    (
        "structure_check_last_result",
        "structure_check_exit_status",
        "Outcome of the last structural repository check: 0 ok or never run, 1 failed.",
    ),
    (
        "last_suspect",
        "suspect",
        "1 if the last backup's snapshot is suspect (its sources were empty, or shrank by more than suspect_shrink percent since the last good one), else 0.",
    ),
    ("last_good_timestamp_seconds", "good_time", "Unix time of the newest snapshot of this job that was not suspect, as this host knows it, 0 if none."),
    ("since_timestamp_seconds", "since", "Unix time when the job was installed on this host (lateness of a job that never ran counts from it)."),
    ("max_age_seconds", "max_age", "Seconds without a successful backup after which the job is late (from its schedule), 0 for no limit."),
    ("drill_max_age_seconds", "drill_max_age", "Seconds without a successful restore drill after which it is late (from its schedule), 0 for no limit."),
)
# Metrics that come from the job's configuration (the role's thresholds), not from its state.
CONFIG_METRICS = ("max_age", "drill_max_age")


def _metric_value(value):
    if isinstance(value, bool) or isinstance(value, int):
        return str(int(value))
    number = float(value or 0)
    return str(int(number)) if number.is_integer() else repr(round(number, 3))


def metrics_text(name, state, config=None):
    """The node_exporter textfile of one job: its state, and the thresholds of its configuration."""
    label = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    full = dict(STATE_DEFAULTS)
    full.update(state or {})
    full.update({key: (config or {}).get(key) or 0 for key in CONFIG_METRICS})
    lines = []
    for suffix, key, help_text in METRICS:
        metric = "keepdata_backup_" + suffix
        lines += ["# HELP %s %s" % (metric, help_text), "# TYPE %s gauge" % metric, '%s{backup_job="%s"} %s' % (metric, label, _metric_value(full[key]))]
    return "\n".join(lines) + "\n"


def metrics_path(config):
    return os.path.join(config["metrics_dir"], "keepdata_backup_%s.prom" % config["name"])
