# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Listing, restoring and exporting the snapshots of a job of role keepdata.storage.backup.

Used by modules backup_info, backup_restore and backup_export on the managed host. They read the job's
configuration that the role wrote (``<config_dir>/jobs/<job>.json``) and run restic with the same repository,
options and secret files as the job's units: restic's environment is built by ``shared.restic_env`` (as the runner's is), so
secrets reach restic as file paths only.

Pure functions choose the snapshot and plan the restore; ``JobRestic`` runs restic; ``Restore`` does the work in
an order that never loses what is there: every check first, then each path restored into a staging directory
beside its destination (same file system) and verified, and only when all of them are staged, the existing
content is renamed aside and the staged tree renamed into place.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

from ansible_collections.keepdata.storage.plugins.module_utils.backup import shared
from ansible_collections.keepdata.storage.plugins.module_utils.backup.repository import TRANSIENT_PAUSES, is_transient
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import abs_path_error, has_control_chars

SNAPSHOT_ID = re.compile(r"[0-9a-f]{8,64}")
AS_OF = re.compile(r"[A-Za-z0-9 :.,+/@-]{1,64}")
ASIDE_MARK = ".keepdata-moved-"
STAGE_PREFIX = ".keepdata-restore-"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
CHUNK = 1 << 20
# What restic dump puts in a tar (measured with restic 0.14 and 0.18): regular files, directories and symbolic links.
# It leaves FIFOs and devices out without a word; restic backup keeps no sockets. Hard links come out as copies.
ARCHIVED_TYPES = ("file", "dir", "symlink")


class RestoreError(Exception):
    """A check or a step failed; the message names the option or the path, never a secret. ``cause``: NO_SNAPSHOT
    when the repository holds no snapshot to choose (playbooks/recover.yml may go on without that job),
    NOT_INSTALLED when the job is not on this host, NOT_EMPTY when a destination holds data (its job's data is
    there), else ""."""

    def __init__(self, message, cause=""):
        super().__init__(message)
        self.cause = cause


NO_SNAPSHOT = "no_snapshot"
# The job's configuration is not on the host (a --check of a host the role has not installed yet).
NOT_INSTALLED = "not_installed"
# A destination holds data and move_aside is not set: nothing was changed.
NOT_EMPTY = "not_empty"


# --- input -----------------------------------------------------------------------------------------------------


def selection_spec(**extra):
    """The argument spec of the options that choose the job and the snapshot (doc fragment backup_job), plus ``extra``."""
    spec = dict(
        job=dict(type="str", required=True),
        config_dir=dict(type="path", default="/etc/keepdata/backup"),
        source_host=dict(type="str", default=""),
        snapshot=dict(type="str", default="latest"),
        as_of=dict(type="str", default=""),
    )
    spec.update(extra)
    return spec


def selection_errors(params):
    """Errors of the options that choose the job and the snapshot (shared by the three modules)."""
    errors = []
    job = params.get("job") or ""
    if has_control_chars(job) or not shared.JOB_NAME.match(job):
        errors.append("job must be a job name of role keepdata.storage.backup (1 to 40 of a-z 0-9 _ -)")
    config_dir = params.get("config_dir") or ""
    problem = abs_path_error("config_dir", config_dir.rstrip("/"))
    if problem:
        errors.append(problem)
    snapshot = params.get("snapshot") or "latest"
    if snapshot != "latest" and (has_control_chars(snapshot) or not SNAPSHOT_ID.fullmatch(snapshot)):
        errors.append("snapshot must be latest or a snapshot ID (8 to 64 hexadecimal digits)")
    as_of = params.get("as_of") or ""
    if as_of and (has_control_chars(as_of) or not AS_OF.fullmatch(as_of)):
        errors.append("as_of must be a date and time such as 2026-11-30 18:00 or yesterday 18:00 (letters, digits, blanks and : . , + / @ -)")
    if as_of and snapshot != "latest":
        errors.append("snapshot and as_of are mutually exclusive: give one")
    source_host = params.get("source_host") or ""
    if source_host and (has_control_chars(source_host) or not shared.HOST_NAME.fullmatch(source_host)):
        errors.append("source_host must be a host name (letters, digits, . _ -)")
    return errors


# --- snapshots -------------------------------------------------------------------------------------------------


def snapshot_facts(snap):
    """What the modules report of one snapshot (restic's own keys renamed for readers)."""
    return {
        "id": snap.get("id", ""),
        "short_id": snap.get("short_id") or snap.get("id", "")[:8],
        "time": snap.get("time", ""),
        "timestamp": shared.snapshot_time(snap.get("time")),
        "host": snap.get("hostname", ""),
        "tags": list(snap.get("tags") or []),
        "paths": list(snap.get("paths") or []),
    }


def sorted_snapshots(snapshots):
    """Oldest first by time (restic's order breaks ties)."""
    keyed = [(shared.snapshot_time(snap.get("time")), index, snap) for index, snap in enumerate(snapshots)]
    keyed.sort(key=lambda item: (item[0] if item[0] is not None else float("-inf"), item[1]))
    return [snap for _moment, _index, snap in keyed]


def pick_snapshot(snapshots, *, snapshot="latest", as_of=None, where=""):
    """The snapshot chosen by ID prefix, by time (the newest at or before ``as_of``, seconds) or the latest."""
    if not snapshots:
        raise RestoreError("no snapshot of %s" % where)
    if snapshot and snapshot != "latest":
        found = [snap for snap in snapshots if str(snap.get("id", "")).startswith(snapshot)]
        if not found:
            raise RestoreError("no snapshot %s among the %d snapshots of %s" % (snapshot, len(snapshots), where))
        if len(found) > 1:
            raise RestoreError("snapshot %s is ambiguous: %d snapshots of %s start with it" % (snapshot, len(found), where))
        return found[0]
    if as_of is not None:
        before = [snap for snap in sorted_snapshots(snapshots) if (shared.snapshot_time(snap.get("time")) or float("inf")) <= as_of]
        if not before:
            raise RestoreError("no snapshot of %s at or before %s" % (where, time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(as_of))))
        return before[-1]
    return shared.latest_snapshot(snapshots)


def parse_nodes(text):
    """The nodes of ``restic ls --json`` (the runner's reading of each line); a line that is not JSON is skipped."""
    nodes = []
    for line in (text or "").splitlines():
        try:
            node = shared.ls_node(line)
        except shared.JobError:
            continue
        if node is not None:
            nodes.append(node)
    return nodes


def under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def tally(nodes, source):
    """(files, bytes) of the regular files at or under ``source``."""
    files = [node for node in nodes if node.get("type") == "file" and under(node["path"], source)]
    return len(files), sum(int(node.get("size") or 0) for node in files)


def tally_tree(root):
    """(files, bytes) of the regular files in a tree on disk (symbolic links not followed); a file counts itself."""
    info = os.lstat(root)
    if stat.S_ISREG(info.st_mode):
        return 1, info.st_size
    files = size = 0
    for directory, _dirs, names in os.walk(root):
        for name in names:
            info = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(info.st_mode):
                files += 1
                size += info.st_size
    return files, size


# --- the restore plan ------------------------------------------------------------------------------------------


def destination(source, target):
    """Where ``source`` lands: itself, or the same path below ``target``."""
    return source if not target else os.path.join(target, source.lstrip("/"))


def restore_items(snapshot, config, *, paths=(), target=""):
    """[{source, destination}]: the chosen paths (default: the snapshot's, the dumps only into another target)."""
    snap_paths = [path.rstrip("/") or "/" for path in snapshot.get("paths") or []]
    dump_dir = config.get("dump_dir") or ""
    if paths:
        sources = [path.rstrip("/") for path in paths]
        for source in sources:
            if not any(under(source, root) for root in snap_paths):
                raise RestoreError('paths: "%s" is not in snapshot %s (it holds %s)' % (source, snapshot.get("short_id"), ", ".join(snap_paths)))
    else:
        sources = [path for path in snap_paths if target or not (dump_dir and under(path, dump_dir))]
    for index, source in enumerate(sources):
        for other in sources[index + 1 :]:
            if under(source, other) or under(other, source):
                raise RestoreError('paths: "%s" and "%s" overlap: give one of them' % (source, other))
    return [{"source": source, "destination": destination(source, target)} for source in sources]


def aside_path(dest, stamp, exists=os.path.lexists):
    """A free name beside ``dest`` for what is there now: DEST.keepdata-moved-STAMP[-N]."""
    base = "%s%s%s" % (dest.rstrip("/"), ASIDE_MARK, stamp)
    candidate, number = base, 1
    while exists(candidate):
        number += 1
        candidate = "%s-%d" % (base, number)
    return candidate


def restore_argv(config, snapshot_id, stage, sources, *, verify=True, flags=()):
    return shared.restore_command(config, snapshot_id, stage, sources, flags, verify=verify)


def dump_path(config, database):
    return os.path.join(config["dump_dir"], shared.dump_file_name(database))


def import_argv(database):
    """The argv that loads a PostgreSQL or MySQL dump, given on stdin, into the database (its current data saved aside first)."""
    if database["type"] == "postgresql":
        user = database.get("user") or "postgres"
        # The dump comes on stdin: the file is root's (0600), pg_restore runs as the database's user.
        return ["runuser", "-u", user, "--", "pg_restore", "--clean", "--if-exists", "--dbname", database["database"]]
    if database["type"] == "mysql":
        argv = ["mysql"]
        if database.get("defaults_file"):
            argv.append("--defaults-extra-file=" + database["defaults_file"])
        return argv + [database["database"]]
    raise RestoreError("database %s: no import command for type %s" % (database.get("name"), database.get("type")))


def sqlite_target(database, items):
    """(path, restored with the files?) of an SQLite database."""
    path = database["path"]
    return path, any(under(path, item["source"]) for item in items)


def describe_plan(snapshot, items, databases, services, *, start_all=False, kept=()):
    """The lines a --check or --diff shows: what would be restored where, and what would move aside."""
    lines = ["snapshot %s of %s at %s" % (snapshot["short_id"], snapshot["host"], snapshot["time"])]
    lines += ["leave %s as it is: a mounted file system that holds data (keep_mounted)" % path for path in kept]
    for item in items:
        line = "restore %s -> %s" % (item["source"], item["destination"])
        if item.get("files") is not None:
            line += " (%d files, %s)" % (item["files"], shared.format_bytes(item["bytes"]))
        if item.get("moved_aside"):
            line += "; current content moved to %s" % item["moved_aside"]
        elif item.get("no_data"):
            line += "; replaces what is there, only directories and symlinks (no data)"
        lines.append(line)
    lines += ["import %s database %s" % (db["type"], db["name"]) for db in databases]
    if services:
        lines.append(("start (stopped first if running): %s" if start_all else "stop, then start again: %s") % ", ".join(services))
    return lines


# --- restic ----------------------------------------------------------------------------------------------------


class JobRestic:
    """restic with the job's repository, options and secret files; read-only commands retried when transient.

    What only reads the repository's metadata (snapshots, ls, stats, cat config) runs with --no-lock: backup_info is
    read-only and must neither write a lock object nor fail while a prune or check holds the exclusive lock. A
    restore or an export reads data packs, which a concurrent prune could remove: they take restic's shared lock.
    """

    def __init__(self, config, *, run=subprocess.run, sleep=time.sleep, environ=None, timeout=None):
        self.config = config
        self.env = shared.restic_env(config, dict(os.environ if environ is None else environ))
        self.run = run
        self.sleep = sleep
        self.timeout = timeout
        self._version = None

    def version(self):
        """restic's (major, minor, patch), asked once; None when ``restic version`` does not say."""
        if self._version is None:
            rc, out, _err = self.call(["restic", "version"])
            self._version = (shared.parse_restic_version(out) if rc == 0 else None) or ()
        return self._version or None

    def call(self, argv, *, retry=False, stdout=None):
        pauses = list(TRANSIENT_PAUSES) if retry else []
        while True:
            kwargs = {"stdout": stdout} if stdout is not None else {"stdout": subprocess.PIPE}
            try:
                # subprocess, not run_command: restic runs with a timeout and its output may go to a file: run_command has neither.
                # pylint: disable-next=ansible-bad-function
                proc = self.run(argv, env=self.env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, timeout=self.timeout, **kwargs)
            except OSError as exc:
                raise RestoreError("cannot run restic: %s" % (exc.strerror or exc)) from exc
            except subprocess.TimeoutExpired as exc:
                raise RestoreError(
                    "restic %s did not finish within %s seconds" % (argv[len(self.config.get("restic_options") or []) + 1], self.timeout)
                ) from exc
            out = _text(proc.stdout)
            err = _text(proc.stderr)
            if not pauses or proc.returncode == 0 or not is_transient(proc.returncode, err):
                return proc.returncode, out, err
            self.sleep(pauses.pop(0))

    def checked(self, argv, what, *, retry=False, stdout=None):
        rc, out, err = self.call(argv, retry=retry, stdout=stdout)
        if rc != 0:
            raise RestoreError("%s failed (%s): %s" % (what, shared.describe_exit(rc), shared.restic_hint(err)))
        return out

    def snapshots(self, host):
        """The job's snapshots of ``host`` (None: of every host)."""
        argv = shared.restic_command(
            self.config, "snapshots", "--json", "--no-lock", *(["--host", host] if host is not None else []), "--tag", shared.job_tag(self.config["name"])
        )
        return shared.parse_snapshots(self.checked(argv, "restic snapshots", retry=True))

    def nodes(self, snapshot_id):
        return parse_nodes(self.checked(shared.ls_command(self.config, snapshot_id) + ["--no-lock"], "restic ls", retry=True))

    def restore_size(self, snapshot_id):
        out = self.checked(
            shared.restic_command(self.config, "stats", "--json", "--no-lock", "--mode", "restore-size", snapshot_id), "restic stats", retry=True
        )
        try:
            return int(json.loads(out).get("total_size") or 0)
        except (ValueError, AttributeError):
            return None

    def left_out_of_archive(self, snapshot_id):
        """[{path, type}] of the snapshot's entries a tar from restic dump does not hold. The listing goes through a
        private temporary file and only those entries are kept: a snapshot of millions of files is not held in memory."""
        with tempfile.TemporaryFile() as listing:
            self.checked(shared.ls_command(self.config, snapshot_id) + ["--no-lock"], "restic ls", stdout=listing)
            listing.seek(0)
            left_out = []
            for raw in listing:
                line = raw.decode("utf-8", "replace")
                if '"type":"file"' in line or '"type":"dir"' in line:
                    continue  # the bulk of a listing, skipped without parsing its JSON
                try:
                    node = shared.ls_node(line)
                except shared.JobError:
                    continue
                if node is not None and node.get("type") not in ARCHIVED_TYPES:
                    left_out.append({"path": node["path"], "type": str(node.get("type") or "unknown")})
            return left_out

    def repository(self):
        """{id, version, locks} of the repository (the config needs the password: it proves the repository opens)."""
        config = json.loads(self.checked(shared.restic_command(self.config, "cat", "config", "--no-lock"), "restic cat config", retry=True) or "{}")
        locks = self.checked(shared.restic_command(self.config, "list", "locks", "--no-lock"), "restic list locks", retry=True)
        return {"id": config.get("id", ""), "version": config.get("version", 0), "locks": len([line for line in locks.splitlines() if line.strip()])}


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def load_job(config_dir, job):
    try:
        return shared.load_config(os.path.join(config_dir.rstrip("/"), "jobs"), job)
    except shared.JobError as exc:
        raise RestoreError("job %s: %s (is role keepdata.storage.backup applied to this host?)" % (job, exc), NOT_INSTALLED) from exc


def open_job(module):
    """The job that the module's options name (``config_dir``, ``job``), as read from this host, and its restic."""
    config = load_job(module.params["config_dir"], module.params["job"])
    return config, JobRestic(config)


def chosen_snapshot(module, restic, config):
    """The snapshot that the module's options name (see ``choose``); a suspect one's warning goes to the module's."""
    snapshot, warning = choose(restic, config, module.params, epoch_reader(module.run_command))
    if warning:
        module.warn(warning)
    return snapshot


def epoch_reader(run_command):
    """A function reading a time text as seconds since the epoch with GNU date on this host (its time zone)."""

    def epoch_of(text):
        rc, out, _err = run_command(["date", "-d", text, "+%s"], environ_update={"LC_ALL": "C"})
        if rc != 0 or not out.strip().lstrip("-").isdigit():
            raise RestoreError('as_of "%s" is not a date that date -d understands' % text)
        return int(out.strip())

    return epoch_of


def choose(restic, config, params, epoch_of):
    """(snapshot, warning): the snapshot the options name, as restic's dict, among those of ``source_host`` (default
    the job's host), and the warning of suspect_warning ("" for a good one)."""
    host = params.get("source_host") or config["host"]
    as_of = epoch_of(params["as_of"]) if params.get("as_of") else None
    where = "job %s of host %s" % (config["name"], host)
    snapshots = restic.snapshots(host)
    if not snapshots:
        raise RestoreError(no_snapshot_message(where, restic.snapshots(None), config["name"]), NO_SNAPSHOT)
    chosen = pick_snapshot(snapshots, snapshot=params.get("snapshot") or "latest", as_of=as_of, where=where)
    return chosen, suspect_warning(snapshots, chosen)


def no_snapshot_message(where, every_host, job):
    """Why there is nothing to restore, naming the hosts whose snapshots of the job the repository holds (a source
    host misspelt, a host renamed) or saying it holds none of the job."""
    hosts = sorted({str(snap.get("hostname") or "") for snap in every_host} - {""})
    if not hosts:
        return "no snapshot of %s: the repository holds no snapshot of job %s at all" % (where, job)
    return "no snapshot of %s: the repository holds job %s's snapshots of host %s (set source_host)" % (where, job, ", ".join(hosts))


def suspect_warning(snapshots, chosen):
    """The warning for a chosen snapshot that the backup runner tagged suspect (its sources were empty or shrank when
    it was taken), naming the job's newest good one; "" for a good snapshot. The untagged original of a suspect
    snapshot, which an append-only repository keeps beside its tagged copy (shared.untagged_twins), is suspect too."""
    if not shared.is_suspect(chosen) and chosen.get("id") not in shared.untagged_twins(snapshots):
        return ""
    good = shared.last_good_snapshot(snapshots)
    text = "snapshot %s is suspect (tagged %s: its sources were empty or had shrunk when it was taken); " % (chosen.get("id", "")[:8], shared.SUSPECT_TAG)
    if good is None:
        return text + "no snapshot of the job is good"
    return text + "the last good one is %s of %s (snapshot=%s restores it)" % (good["id"][:8], str(good.get("time"))[:19], good["id"][:8])


def record_restore(config, now, snapshot_id=""):
    """Note in the job's runner state that this host restored the job (now) from ``snapshot_id``: its backups may then
    start from empty sources (see backup_runner.refuse_unrestored), and a retried restore of the same snapshot finds
    it done (restored_already). A state that cannot be read or written is a RestoreError."""
    path = shared.state_path(config)
    try:
        state = shared.read_state(path)
        state["last_restore"] = int(now)
        state["last_restore_snapshot"] = snapshot_id
        shared.store_state(config, state)
    except (shared.JobError, OSError) as exc:
        raise RestoreError("restored, but cannot note it in the job's state %s: %s" % (path, exc)) from exc


def restored_already(config, snapshot):
    """True when this host's last restore of the job to its original paths was ``snapshot`` and no backup ran since:
    a retried run (an AWX job retried, playbooks/recover.yml run again) meets its own earlier effect."""
    try:
        state = shared.read_state(shared.state_path(config))
    except shared.JobError:
        return False
    restored = int(state.get("last_restore") or 0)
    return bool(restored) and state.get("last_restore_snapshot") == snapshot.get("id") and int(state.get("last_run") or 0) <= restored


# --- the host --------------------------------------------------------------------------------------------------


def existing_ancestor(path):
    """``path`` or its nearest ancestor that exists."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def content_state(path):
    """missing, empty (an empty directory), mount (a mount point), or present (anything else, a symlink included)."""
    if not os.path.lexists(path):
        return "missing"
    if os.path.isdir(path) and not os.path.islink(path):
        if os.path.ismount(path):
            return "mount"
        with os.scandir(path) as entries:
            return "present" if any(True for _entry in entries) else "empty"
    return "present"


def holds_no_data(path, limit=10000):
    """True when ``path`` is a directory (not a link to one) that holds only directories and symbolic links (at most
    ``limit`` entries), such as the links into the shared storage that role keepdata.storage.s3fs or mounts makes in
    a rebuilt host's app directory before its restore: nothing there that a restore could lose. A file, a mount
    point below, or a directory that cannot be read is data."""
    if os.path.islink(path) or not os.path.isdir(path):
        return False

    def unreadable(exc):
        raise exc

    seen = 0
    try:
        for directory, dirs, files in os.walk(path, onerror=unreadable):
            seen += len(dirs) + len(files)
            if seen > limit:
                return False
            for name in files:
                if not os.path.islink(os.path.join(directory, name)):
                    return False
            for name in dirs:
                below = os.path.join(directory, name)
                if not os.path.islink(below) and os.path.ismount(below):
                    return False
    except OSError:
        return False
    return True


def holds_anything(directory):
    """True when the directory holds an entry other than lost+found (what mkfs leaves on a new, empty file system)."""
    with os.scandir(directory) as entries:
        return any(entry.name != "lost+found" for entry in entries)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class Restore:
    """One restore: ``plan()`` checks everything and says what would happen; ``apply()`` does it."""

    # A service of the job that did not start once its data was back (start_services, or a retried recovery).
    START_FAILED = "the data is back, but could not start"

    def __init__(self, restic, config, snapshot, params, *, run=subprocess.run, stamp=None):
        self.restic = restic
        self.config = config
        self.snapshot = snapshot
        self.facts = snapshot_facts(snapshot)
        self.params = params
        self.run = run
        self.stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
        self.target = (params.get("target") or "").rstrip("/")
        self.items = []
        self.databases = []
        self.services = []
        self.plan_lines = None
        # Destinations left as they are (keep_mounted): mounted storage that holds data.
        self.kept_mounts = []
        # What has been done, for an honest result when a later step fails.
        self.done = {"moved_aside": [], "restored": [], "imported": [], "stopped": [], "started": [], "created_dirs": []}

    # -- checks
    def plan(self, count=True):
        """Check everything before any change. ``count``: list the snapshot (restic ls) to tell the files and bytes
        of each path now (a --check); a real restore counts what it staged instead, one repository read fewer."""
        self.items = restore_items(self.snapshot, self.config, paths=self.params.get("paths") or (), target=self.target)
        nodes = self.restic.nodes(self.facts["id"]) if count else None
        refused = []
        for item in self.items:
            item["files"] = item["bytes"] = None
            if nodes is not None:
                item["files"], item["bytes"] = tally(nodes, item["source"])
                if not any(under(node["path"], item["source"]) for node in nodes):
                    raise RestoreError('snapshot %s holds nothing at "%s"' % (self.facts["short_id"], item["source"]))
            item["state"] = content_state(item["destination"])
            if item["state"] == "mount" and self.params.get("keep_mounted") and holds_anything(item["destination"]):
                self.kept_mounts.append(item["destination"])
                continue
            if item["state"] == "mount":
                raise RestoreError(
                    "%s is a mount point: a restore cannot move it aside; restore into another directory (target) and copy" % item["destination"]
                )
            if item["state"] == "present" and not self.params.get("move_aside") and holds_no_data(item["destination"]):
                item["no_data"] = True
            elif item["state"] == "present":
                if self.params.get("move_aside"):
                    item["moved_aside"] = aside_path(item["destination"], self.stamp)
                else:
                    refused.append(item["destination"])
        self.items = [item for item in self.items if item["destination"] not in self.kept_mounts]
        self.databases = self._database_plan(refused)
        if refused:
            raise RestoreError(
                "not empty: %s. Nothing was changed; set move_aside to move the current content aside (never deleted), "
                "or restore into another directory (target)" % ", ".join(refused),
                NOT_EMPTY,
            )
        handles_services = self.params.get("stop_services", True) or self.params.get("start_services")
        self.services = list(self.config.get("services") or []) if not self.target and handles_services else []
        self.plan_lines = self._describe()
        return self.plan_lines

    def _describe(self):
        return describe_plan(self.facts, self.items, self.databases, self.services, start_all=bool(self.params.get("start_services")), kept=self.kept_mounts)

    def _database_plan(self, refused):
        """The databases to re-import: only when restoring to the original paths."""
        if self.target or not self.params.get("databases", True):
            return []
        plan = []
        for database in self.config.get("databases") or []:
            entry = {"name": database["name"], "type": database["type"], "dump": dump_path(self.config, database), "database": database}
            if database["type"] == "sqlite":
                path, with_files = sqlite_target(database, self.items)
                entry["path"] = path
                if not with_files and content_state(path) == "present":
                    if self.params.get("move_aside"):
                        entry["moved_aside"] = aside_path(path, self.stamp)
                    else:
                        refused.append(path)
            plan.append(entry)
        return plan

    def whole_job(self):
        """True when this restore brings the job back as it was: every path to its place (those kept mounted aside)
        and every database; a retried recovery may then find it done (restored_already)."""
        return not self.target and not self.params.get("paths") and self.params.get("databases", True) is not False

    # -- changes
    def apply(self, data_back=None):
        """Stage and verify every path and fetch every dump first; only then swap the paths in and import.
        ``data_back``: called once every path and database is in place, before the services start (the restore is
        noted then: a service that fails to start does not make a retry restore the data again)."""
        stages, dumps, complete = [], {}, False
        try:
            self._stop_services()
            trees = self._stage_all(stages)
            for item, tree in trees:
                item["files"], item["bytes"] = tally_tree(tree)
            for entry in self.databases:
                dumps[entry["name"]] = self._fetch_dump(entry)
            for item, tree in trees:
                self._swap(item, tree)
            for entry in self.databases:
                self._import(entry, dumps[entry["name"]])
            complete = True
            if data_back is not None and (self.done["restored"] or self.done["imported"]):
                data_back()
        finally:
            for path in dumps.values():
                with contextlib.suppress(OSError):
                    os.unlink(path)
            for stage in stages:
                shutil.rmtree(stage, ignore_errors=True)
            # start_services: every service of the job once its data is back (a rebuilt host), else those stopped.
            if complete and self.params.get("start_services"):
                self._start_services(self.services, what=self.START_FAILED)
            else:
                self._start_services(self.done["stopped"])
            self.plan_lines = self._describe()

    def _one_stage(self):
        """The parent directory of a single staging directory for every path, or None.

        restic 0.14 restores a whole snapshot about three times faster than the same files selected with --include:
        when the restore takes every path of the snapshot and all destinations are on one file system, a single
        restore without --include stages them all."""
        if self.params.get("paths") or not self.items or self.kept_mounts:
            return None
        devices = {os.stat(existing_ancestor(os.path.dirname(item["destination"]))).st_dev for item in self.items}
        return os.path.dirname(self.items[0]["destination"]) if len(devices) == 1 else None

    def _stage_all(self, stages):
        """[(item, staged tree)]: every path restored (verified) into staging directories beside the destinations."""
        parent = self._one_stage()
        if parent is None:
            return [(item, self._stage(item, stages, [item["source"]])) for item in self.items]
        stage_trees = self._stage_paths(parent, stages, None)
        return [(item, os.path.join(stage_trees, item["source"].lstrip("/"))) for item in self.items]

    def _stage(self, item, stages, sources):
        stage = self._stage_paths(os.path.dirname(item["destination"]), stages, sources)
        return os.path.join(stage, item["source"].lstrip("/"))

    def _stage_paths(self, parent, stages, sources):
        """Restore ``sources`` (None: the whole snapshot) into a new staging directory in ``parent``; checks what it wrote."""
        if not os.path.isdir(parent):
            os.makedirs(parent, mode=0o755)
            self.done["created_dirs"].append(parent)
        stage = tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=parent)
        stages.append(stage)
        verify = self.params.get("verify", True)
        argv = restore_argv(self.config, self.facts["id"], stage, sources or [], verify=verify, flags=shared.restore_flags(self.restic.version()))
        what = ", ".join(sources) if sources else "snapshot %s" % self.facts["short_id"]
        rc, out, err = self.restic.call(argv)
        if rc != 0:
            problems = shared.restore_problems(err, stage)
            detail = shared.listed(problems) if problems else shared.restic_hint(err)
            raise RestoreError("restic restore of %s failed (%s): %s" % (what, shared.describe_exit(rc), detail))
        if verify and "finished verifying" not in out + err:
            raise RestoreError("restic restore of %s did not report its verification" % what)
        for item in self.items:
            if (sources is None or item["source"] in sources) and not os.path.lexists(os.path.join(stage, item["source"].lstrip("/"))):
                raise RestoreError('restic restore wrote nothing at "%s": the snapshot holds nothing there' % item["source"])
        return stage

    def _swap(self, item, tree):
        dest = item["destination"]
        if not os.path.isdir(os.path.dirname(dest)):
            os.makedirs(os.path.dirname(dest), mode=0o755)
            self.done["created_dirs"].append(os.path.dirname(dest))
        state = content_state(dest)
        if state == "present" and item.get("no_data"):
            if not holds_no_data(dest):
                raise RestoreError("%s was filled while the restore ran; nothing of it was touched" % dest)
            # Only directories and symlinks: renamed out of the way, the restored tree renamed in, then removed.
            stale = aside_path(dest, self.stamp + "-links")
            os.rename(dest, stale)
            os.rename(tree, dest)
            shutil.rmtree(stale, ignore_errors=True)
            self.done["restored"].append(dest)
            return
        if state == "present":
            if not item.get("moved_aside"):
                raise RestoreError("%s was filled while the restore ran; nothing of it was touched" % dest)
            os.rename(dest, item["moved_aside"])
            self.done["moved_aside"].append({"path": dest, "moved_to": item["moved_aside"]})
        elif state == "empty":
            os.rmdir(dest)
        elif state == "mount":
            raise RestoreError("%s became a mount point while the restore ran" % dest)
        os.rename(tree, dest)
        self.done["restored"].append(dest)

    def _fetch_dump(self, entry):
        """The database's dump from the snapshot, in a private temporary file under the state directory."""
        directory = self.config.get("state_dir") or None
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(prefix=".keepdata-dump-", dir=directory, delete=False)
        try:
            with handle:
                os.fchmod(handle.fileno(), 0o600)
                self.restic.checked(
                    shared.restic_command(self.config, "dump", self.facts["id"], entry["dump"]), "restic dump of %s" % entry["dump"], stdout=handle
                )
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)
            raise
        return handle.name

    def _import(self, entry, dump_file):
        if entry["type"] == "sqlite":
            self._import_sqlite(entry, dump_file)
        else:
            self._import_server(entry, dump_file)
        self.done["imported"].append(entry["name"])

    def _import_sqlite(self, entry, dump_file):
        path = entry["path"]
        if entry.get("moved_aside"):
            for suffix in ("",) + SQLITE_SIDE_FILES:
                if os.path.lexists(path + suffix):
                    os.rename(path + suffix, entry["moved_aside"] + suffix)
            self.done["moved_aside"].append({"path": path, "moved_to": entry["moved_aside"]})
        reference = path if os.path.exists(path) else os.path.dirname(path)
        info = os.stat(reference) if os.path.exists(reference) else None
        temp = path + ".keepdata-restore.tmp"
        shutil.copyfile(dump_file, temp)
        if info is not None:
            os.chown(temp, info.st_uid, info.st_gid)
            os.chmod(temp, info.st_mode & 0o777 if reference == path else 0o640)
        os.replace(temp, path)
        # The files restore brought back the live database's journal next to a copy taken while it ran: the dump is
        # the consistent one, and a journal beside it would be replayed over it.
        for suffix in SQLITE_SIDE_FILES:
            if os.path.lexists(path + suffix):
                os.unlink(path + suffix)

    def _import_server(self, entry, dump_file):
        database = entry["database"]
        aside = os.path.join(
            self.config["state_dir"], "restore-aside", "%s-%s.%s" % (database["name"], self.stamp, shared.dump_file_name(database).rsplit(".", 1)[1])
        )
        os.makedirs(os.path.dirname(aside), mode=0o700, exist_ok=True)
        with open(aside, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as handle:
            # subprocess, not run_command: the dump streams into the file moved aside (run_command holds output in memory).
            # pylint: disable-next=ansible-bad-function
            proc = self.run(shared.dump_command(database), stdout=handle, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            # The part written is no copy of the database: it must not pass for one.
            with contextlib.suppress(OSError):
                os.unlink(aside)
            detail = shared.last_line(_text(proc.stderr))
            raise RestoreError(
                "saving the current %s database %s aside failed (%s)%s; it was not replaced"
                % (database["type"], database["name"], shared.describe_exit(proc.returncode), ": " + detail if detail else "")
            )
        self.done["moved_aside"].append({"path": "%s database %s" % (database["type"], database["name"]), "moved_to": aside})
        with open(dump_file, "rb") as source:
            # subprocess, not run_command: the dump file is the import's standard input (run_command takes data in memory).
            # pylint: disable-next=ansible-bad-function
            proc = self.run(import_argv(database), stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            raise RestoreError(
                "import of %s database %s failed (%s): %s"
                % (database["type"], database["name"], shared.describe_exit(proc.returncode), shared.last_line(_text(proc.stderr)))
            )

    def _systemctl(self, *args):
        # subprocess, not run_command: the same runner as restic's calls (unit tests give one fake for all).
        # pylint: disable-next=ansible-bad-function
        return self.run(["systemctl"] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)

    def _stop_services(self):
        if not self.params.get("stop_services", True):
            return
        for unit in self.services:
            if self._systemctl("is-active", "--quiet", unit).returncode != 0:
                continue
            proc = self._systemctl("stop", unit)
            if proc.returncode != 0:
                raise RestoreError("systemctl stop %s failed: %s" % (unit, shared.last_line(_text(proc.stderr))))
            self.done["stopped"].append(unit)

    def start_stopped_services(self):
        """A retried recovery that finds the job restored already: the job's services that are not running are
        started (a start that failed on the earlier run). The units started, [] when all were running."""
        units = [unit for unit in self.config.get("services") or [] if self._systemctl("is-active", "--quiet", unit).returncode != 0]
        self._start_services(units, what=self.START_FAILED)
        return units

    def _start_services(self, units, what="could not start again"):
        failed = []
        for unit in units:
            if self._systemctl("start", unit).returncode == 0:
                self.done["started"].append(unit)
            else:
                failed.append(unit)
        if failed:
            raise RestoreError("%s: %s" % (what, ", ".join(failed)))


# --- export ----------------------------------------------------------------------------------------------------


def export_argv(config, snapshot_id, path="/"):
    return shared.restic_command(config, "dump", "--archive", "tar", snapshot_id, path)


def export(restic, config, snapshot_id, dest, *, compress="none", popen=subprocess.Popen):
    """Write the snapshot as a tar (zstd-compressed when asked) to DEST through a temporary file; its sha256 and size."""
    directory = os.path.dirname(dest)
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            if compress == "zstd":
                _export_zstd(restic, config, snapshot_id, handle, popen)
            else:
                restic.checked(export_argv(config, snapshot_id), "restic dump", stdout=handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o600)
        digest, size = sha256_file(temp), os.path.getsize(temp)
        os.rename(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return digest, size


def left_out_warning(left_out):
    """The warning naming what an archive of the snapshot lacks (the first entries, then how many more)."""
    count = len(left_out)
    return "the archive cannot hold %d %s of the snapshot (restic dump leaves FIFOs and devices out): %s" % (
        count,
        "entry" if count == 1 else "entries",
        shared.listed(["%s (%s)" % (entry["path"], entry["type"]) for entry in left_out]),
    )


def _export_zstd(restic, config, snapshot_id, handle, popen):
    zstd = shutil.which("zstd")
    if not zstd:
        raise RestoreError("compress=zstd needs the zstd command on the host (package zstd)")
    squeezer = popen([zstd, "-q", "-T0", "-c"], stdin=subprocess.PIPE, stdout=handle, stderr=subprocess.PIPE)
    try:
        rc, _out, err = restic.call(export_argv(config, snapshot_id), stdout=squeezer.stdin)
    finally:
        squeezer.stdin.close()
        zstd_err = squeezer.stderr.read()
        squeezer.stderr.close()
        zstd_rc = squeezer.wait()
    if rc != 0:
        raise RestoreError("restic dump failed (%s): %s" % (shared.describe_exit(rc), shared.restic_hint(err)))
    if zstd_rc != 0:
        raise RestoreError("zstd failed (%s): %s" % (shared.describe_exit(zstd_rc), shared.last_line(_text(zstd_err))))
