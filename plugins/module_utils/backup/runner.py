# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The backup runner that the systemd units of role keepdata.storage.backup start on a managed host.

    /usr/bin/python3 -I /usr/local/lib/keepdata/backup_runner.py run JOB [--tag TAG] [--config-dir DIR]
    /usr/bin/python3 -I /usr/local/lib/keepdata/backup_runner.py forget JOB [--config-dir DIR]
    /usr/bin/python3 -I /usr/local/lib/keepdata/backup_runner.py drill JOB [--config-dir DIR]
    /usr/bin/python3 -I /usr/local/lib/keepdata/backup_runner.py failed JOB:backup|JOB:forget|JOB:drill [--config-dir DIR]

Module backup_jobs writes this file onto the host, and beside it the module it shares with the modules (shared.py,
as SHARED_PROGRAM): both use the Python standard library only (3.9+). The names and settings of a job, restic's
command lines and failures, snapshots, the job's files and the metrics live there; this file is ordered by feature:
how a step runs, then one section per command (backup, retention, drill, the failure handler), each holding its pure
functions (command lines, readings of restic's JSON, the state) before its I/O; the command line. Commands run
through ``Context.run`` (``subprocess.run`` unless a test gives a fake), and each step writes one readable line to
stdout, which systemd puts in the journal. Secrets reach restic only as file paths: nothing here reads a secret,
puts one in an argument or an environment value, or prints the environment or a file's content.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from urllib.parse import quote

# The name backup_jobs gives shared.py on the host, beside this file.
SHARED_PROGRAM = "backup_shared.py"
SHARED_MODULE = "ansible_collections.keepdata.storage.plugins.module_utils.backup.shared"


def _load_shared_program():
    """Run by systemd (python3 -I: no import path leads to the collection), load the shared module from the file
    backup_jobs wrote beside this one, under the name the import below asks for."""
    spec = importlib.util.spec_from_file_location(SHARED_MODULE, os.path.join(os.path.dirname(os.path.abspath(__file__)), SHARED_PROGRAM))
    module = importlib.util.module_from_spec(spec)
    sys.modules[SHARED_MODULE] = module
    spec.loader.exec_module(module)


if __name__ == "__main__":
    _load_shared_program()

from ansible_collections.keepdata.storage.plugins.module_utils.backup.shared import (  # noqa: E402
    ACCEPT_SHRINK_TAG,
    CAUSE_TEXTS,
    CONFIG_DEFAULTS,
    DATA_CAUSES,
    DEFAULT_CONFIG_DIR,
    DEFAULT_LOCK_DIR,
    DEFAULT_REPOSITORY_TIMEOUT,
    DEFAULT_RETRY_DELAY,
    DEFAULT_RUNTIME_UNITS_DIR,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    FAILURE_CAUSE_KEYS,
    FAILURE_COUNTS,
    JOB_NAME,
    JOURNAL_LINES,
    KINDS,
    NOT_RETRIED_CAUSES,
    NOTIFY_TIMEOUT,
    STATE_DEFAULTS,
    SUSPECT_TAG,
    JobError,
    atomic_write,
    damaged_path,
    describe_exit,
    dump_command,
    dump_file_name,
    format_bytes,
    format_seconds,
    hand_tag,
    include_pattern,
    is_lock_error,
    job_filter,
    journal_units,
    json_list,
    last_good_snapshot,
    last_line,
    latest_snapshot,
    listed,
    load_config,
    lock_path,
    ls_command,
    ls_node,
    metrics_path,
    metrics_text,
    parse_restic_version,
    parse_snapshots,
    private_opener,
    read_state,
    record_snapshot_count,
    remove_tree,
    restic_command,
    restic_diagnosis,
    restic_env,
    restic_error,
    restic_hint,
    restore_command,
    restore_flags,
    restore_problems,
    retry_delay_seconds,
    retry_lock_flags,
    set_marker,
    snapshot_time,
    state_path,
    store_state,
    unclean_path,
    unit_name,
    untagged_twins,
    without_twins,
)

# --- running a step: the context, the job, restic with its locks and the repository's answer ---------------------------


class Terminated(JobError):
    """systemd stopped the unit (SIGTERM), e.g. at TimeoutStartSec."""


def _terminate(signum, frame):
    raise Terminated("stopped by signal %d (unit stopped or timed out)" % signum, cause="stopped")


class Context:
    """What the runner touches outside itself; tests give fakes."""

    def __init__(
        self, *, run=None, watch=None, clock=None, environ=None, lock_dir=DEFAULT_LOCK_DIR, ismount=None, out=None, err=None, rng=None, runtime_units_dir=None
    ):
        self.run = run or subprocess.run
        # restic's commands: run_watching, which hands each line restic prints on stderr over while it runs.
        self.watch = watch or run_watching
        self.runtime_units_dir = runtime_units_dir or DEFAULT_RUNTIME_UNITS_DIR
        # The drill's sample; tests give a seeded random.Random.
        self.rng = rng or random.SystemRandom()
        self.clock = clock or time.time
        self.environ = dict(os.environ if environ is None else environ)
        self.lock_dir = lock_dir
        self.ismount = ismount or os.path.ismount
        self.out = out
        self.err = err

    def _write(self, stream, line):
        stream.write(line + "\n")
        stream.flush()

    def say(self, line):
        self._write(self.out or sys.stdout, line)

    def complain(self, line):
        self._write(self.err or sys.stderr, line)


class Job:
    """One run of one command for one job: its config, and its journal lines prefixed ``KIND NAME:``."""

    def __init__(self, ctx, kind, config, label=None):
        self.ctx = ctx
        self.kind = kind
        self.config = config
        self.name = config["name"]
        self.prefix = "%s %s: " % (kind, label or self.name)
        # Why the run failed (JobError.cause, "failed" when nothing more is known); "" while it has not failed.
        self.cause = ""

    def info(self, text):
        self.ctx.say(self.prefix + text)

    def warn(self, text):
        self.ctx.complain(self.prefix + "warning: " + text)

    def error(self, text):
        self.ctx.complain(self.prefix + "error: " + text)


def call(ctx, argv, **kwargs):
    """ctx.run(argv) with check=False; a command that cannot start is a JobError."""
    kwargs.setdefault("check", False)
    try:
        return ctx.run(argv, **kwargs)
    except OSError as exc:
        raise JobError("cannot run %s: %s" % (argv[0], exc.strerror or exc)) from exc


def run_watching(argv, on_line, *, env=None, stdin=None, timeout=None, check=False):
    """subprocess.run(argv, capture_output=True, text) that also hands each stderr line to ``on_line`` as it comes.

    Past ``timeout`` the command is killed and subprocess.TimeoutExpired raised with what it printed until then.
    """
    # Popen, not run_command: this program runs under systemd, without Ansible, and reads restic's lines as they come.
    # pylint: disable-next=ansible-bad-function
    with subprocess.Popen(argv, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8", errors="replace") as proc:
        out, said = [], []

        def read_stdout():
            out.append(proc.stdout.read())

        def read_stderr():
            for line in proc.stderr:
                said.append(line)
                on_line(line.rstrip("\n"))

        readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            for reader in readers:
                reader.join(5)
            raise subprocess.TimeoutExpired(argv, timeout, output="".join(out), stderr="".join(said)) from None
        except BaseException:
            proc.kill()  # as subprocess.run does: stopped by systemd (Terminated), restic does not outlive the runner
            raise
        for reader in readers:
            reader.join()
    completed = subprocess.CompletedProcess(argv, proc.returncode, "".join(out), "".join(said))
    if check:
        completed.check_returncode()
    return completed


# restic's backend retries its own requests (silently but for this line, for up to 15 minutes from 0.17 on): a
# line the journal shows while restic waits, e.g. 'Load(<config/0000000000>, 0, 0) returned error, retrying after
# 1.1s: ... connection refused'.
RESTIC_RETRY_LINE = re.compile(r"returned error, retrying after ")


def restic(job, env, argv, timeout=None):
    """Run restic with its own environment, no stdin, output captured; returns the CompletedProcess.

    Each line in which restic says it retries its backend goes to the journal at once, so that a wait for a
    repository that does not answer shows as what it is while it lasts.
    """

    def on_line(line):
        if RESTIC_RETRY_LINE.search(line):
            job.warn("restic is retrying: %s" % line.strip())

    try:
        return job.ctx.watch(argv, on_line, env=env, stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except OSError as exc:
        raise JobError("cannot run %s: %s" % (argv[0], exc.strerror or exc)) from exc


def restic_checked(job, env, argv, what):
    proc = restic(job, env, argv)
    if proc.returncode != 0:
        raise restic_error(what, proc.returncode, proc.stderr)
    return proc


def check_mount(config, ismount):
    mount_point = config.get("mount_point")
    if mount_point and not ismount(mount_point):
        raise JobError("%s is not mounted: refusing to write the backup into the bare mount point" % mount_point, cause="unreachable")


@contextlib.contextmanager
def repository_lock(job):
    """Hold the host-wide lock of the job's repository (every job of one repository runs one at a time)."""
    path = lock_path(job.ctx.lock_dir, job.config["repository_id"])
    os.makedirs(job.ctx.lock_dir, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            job.info("waiting for %s: another job of this repository is running" % path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)


def restic_unlock(job, env):
    """Remove stale restic locks only; a failure here is logged, the next command reports a real problem."""
    try:
        proc = restic(job, env, restic_command(job.config, "unlock"))
    except JobError as exc:
        job.warn(str(exc))
        return
    if proc.returncode != 0:
        job.warn("restic unlock failed (%s): %s" % (describe_exit(proc.returncode), restic_hint(proc.stderr, proc.returncode)))


def unlock_if_unclean(job, env):
    """After a restic that died by a signal, remove the stale locks it left (restic unlock, never --remove-all).

    Called while this host's repository lock is held, so no local job holds a restic lock at that moment; restic
    itself only removes locks it judges stale (its process gone on this host, or older than 30 minutes).
    """
    marker = unclean_path(job.config)
    if os.path.exists(marker):
        job.info("an earlier restic of this repository was interrupted: removing its stale locks")
        restic_unlock(job, env)
        set_marker(marker, False)


def restic_relocking(job, env, argv):
    """Run restic; when the repository is locked, remove stale locks and try once more (a live lock stays)."""
    proc = restic(job, env, argv)
    if proc.returncode != 0 and is_lock_error(proc.stderr):
        job.info("the repository is locked: removing stale locks (restic unlock), then trying again")
        restic_unlock(job, env)
        proc = restic(job, env, argv)
    return proc


def restic_version(job, env):
    proc = restic(job, env, ["restic", "version"])
    version = parse_restic_version(proc.stdout) if proc.returncode == 0 else None
    if version:
        job.info("restic %s" % ".".join(str(part) for part in version))
    else:
        job.warn("cannot tell the restic version (%s): running without --retry-lock" % describe_exit(proc.returncode))
    return version


def run_hooks(job, label, hooks, fatal=True):
    """Run hooks in order with /bin/sh -c; a failing one raises JobError when ``fatal``, else it is logged.

    Hooks may hold secrets, so messages name a hook by its number, never by its text.
    """
    hooks = list(hooks or [])
    env = dict(job.ctx.environ)
    env["KEEPDATA_BACKUP_JOB"] = job.name
    timeout = float(job.config.get("hook_timeout") or CONFIG_DEFAULTS["hook_timeout"])
    for index, command in enumerate(hooks, 1):
        where = "%s %d of %d" % (label, index, len(hooks))
        try:
            proc = call(job.ctx, ["/bin/sh", "-c", command], env=env, stdin=subprocess.DEVNULL, timeout=timeout)
            problem = "" if proc.returncode == 0 else "failed (%s)" % describe_exit(proc.returncode)
        except subprocess.TimeoutExpired:
            problem = "timed out after %g s" % timeout
        except JobError as exc:
            problem = str(exc)
        if not problem:
            job.info("%s done" % where)
        elif fatal:
            raise JobError("%s %s" % (where, problem))
        else:
            job.error("%s %s" % (where, problem))


def list_snapshots(job, env):
    """The job's snapshots on this host, or None (logged) when restic cannot tell."""
    try:
        proc = restic_checked(job, env, snapshots_command(job.config), "restic snapshots")
        snapshots = parse_snapshots(proc.stdout)
    except JobError as exc:
        job.warn("cannot count the snapshots: %s" % exc)
        return None
    job.info("%d snapshots of this job for host %s" % (len(snapshots), job.config["host"]))
    return snapshots


def count_snapshots(job, env):
    """The number of the job's snapshots on this host, or None (logged) when restic cannot tell."""
    snapshots = list_snapshots(job, env)
    return None if snapshots is None else len(snapshots)


def restic_marked(job, env, argv):
    """restic_relocking with the unclean marker in place while restic runs (see unlock_if_unclean)."""
    marker = unclean_path(job.config)
    set_marker(marker, True)
    proc = restic_relocking(job, env, argv)
    if proc.returncode >= 0:
        # restic ended by itself and released its lock; killed by a signal, its lock stays until the next run.
        set_marker(marker, False)
    return proc


def repository_answers(job, env):
    """Open the repository once (``restic cat config``, no lock taken) within the job's repository_timeout.

    restic 0.17 and later retry a backend that does not answer for up to 15 minutes, silently; any restic waits
    as long as the unit lets it on a server that takes connections and never answers. Bounded here, before any
    hook or dump runs: a repository that cannot be opened fails the job at once with restic's own line and its
    cause, and one that does not answer in time is named unreachable with the last line restic printed.
    """
    timeout = float(job.config.get("repository_timeout") or DEFAULT_REPOSITORY_TIMEOUT)
    argv = restic_command(job.config, "cat", "config", "--no-lock")
    # Said first, so that a wait shows in the journal as what it is while it lasts.
    job.info("opening the repository (it has %s to answer)" % format_seconds(timeout))
    try:
        proc = restic(job, env, argv, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        said = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        hint, _cause = restic_diagnosis(said)
        raise JobError(
            "the repository did not answer within %s (restic cat config stopped)%s" % (format_seconds(timeout), ": " + hint if said.strip() else ""),
            cause="unreachable",
        ) from exc
    if proc.returncode != 0:
        raise restic_error("restic cat config", proc.returncode, proc.stderr)


def open_repository(job, stack):
    """(restic env, restic version or None) once the mount is there, this host's lock of the repository is held
    (until ``stack`` closes), the stale locks of an interrupted restic are removed and the repository answered."""
    env = restic_env(job.config, job.ctx.environ)
    check_mount(job.config, job.ctx.ismount)
    stack.enter_context(repository_lock(job))
    unlock_if_unclean(job, env)
    version = restic_version(job, env)
    repository_answers(job, env)
    return env, version


def guarded(job, steps, *args):
    """Run ``steps``; True when they all succeed, else the failure is logged and False."""
    try:
        steps(job, *args)
        return True
    except JobError as exc:
        job.error(str(exc))
        job.cause = exc.cause or "failed"
    except Exception:
        job.error("unexpected error:\n%s" % traceback.format_exc().rstrip())
        job.cause = "failed"
    return False


def save_state(job, state):
    """Write the state file (with why this run failed, "" when it did not) and, when metrics_dir is set, the metrics;
    True when both are written."""
    state = dict(state, **{FAILURE_CAUSE_KEYS[job.kind]: job.cause})
    try:
        store_state(job.config, state)
        if job.config.get("metrics_dir"):
            atomic_write(metrics_path(job.config), metrics_text(job.name, state, job.config), 0o644)
    except OSError as exc:
        job.error("cannot write the state or metrics: %s" % exc)
        return False
    return True


def previous_state(job):
    try:
        return read_state(state_path(job.config))
    except JobError as exc:
        job.warn("%s: starting from an empty state" % exc)
        return {}


# --- backup (command run): database dumps, the snapshot, its verdict against the last good one -------------------------


def backup_paths(config):
    paths = list(config.get("paths") or [])
    if config.get("databases"):
        paths.append(config["dump_dir"])
    return paths


def backup_command(config, flags=(), tag=""):
    """restic backup of the job's paths; ``tag`` (a hand-given tag, already checked) is added to the job's tags."""
    argv = restic_command(config, "backup", *flags) + ["--json"] + job_filter(config)
    for name in list(config.get("tags") or []) + ([tag] if tag else []):
        argv += ["--tag", name]
    for pattern in config.get("excludes") or []:
        argv += ["--exclude", pattern]
    if int(config.get("limit_upload") or 0) > 0:
        argv += ["--limit-upload", str(int(config["limit_upload"]))]
    if config.get("compression"):
        argv += ["--compression", config["compression"]]
    return argv + ["--"] + backup_paths(config)


def snapshots_command(config):
    return restic_command(config, "snapshots", "--json", *job_filter(config))


def _error_text(message):
    err = message.get("error")
    text = err.get("message", "") if isinstance(err, dict) else str(err or "")
    parts = [part for part in (message.get("item", ""), text) if part]
    during = " (during %s)" % message["during"] if message.get("during") else ""
    return ": ".join(parts or ["unknown error"]) + during


def parse_backup_output(stdout, stderr=""):
    """{"summary": dict or None, "errors": [text], "messages": [plain stderr lines]} from ``restic backup --json``.

    restic 0.14 prints the JSON error lines on stderr, later versions may print them on stdout: both are read.
    """
    result = {"summary": None, "errors": [], "messages": []}
    for stream, plain_kept in ((stdout or "", False), (stderr or "", True)):
        for raw in stream.splitlines():
            line = raw.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if not isinstance(message, dict):
                if plain_kept:
                    result["messages"].append(line)
                continue
            if message.get("message_type") == "summary":
                result["summary"] = message
            elif message.get("message_type") == "error":
                result["errors"].append(_error_text(message))
            elif message.get("message_type") == "exit_error":
                # restic >= 0.17 with --json: the fatal error as JSON (its text is what restic would print).
                result["messages"].append(str(message.get("message") or ""))
    return result


def backup_status(returncode):
    """0 ok, 3 partial (snapshot made, some files unreadable), 1 anything else, a signal included."""
    if returncode == 0:
        return EXIT_OK
    if returncode == EXIT_PARTIAL:
        return EXIT_PARTIAL
    return EXIT_FAILED


def snapshot_line(summary):
    if not summary:
        return "snapshot saved (restic printed no summary)"
    return "snapshot %s: %d new, %d changed files, %s added, %.1f s" % (
        str(summary.get("snapshot_id") or "?")[:8],
        int(summary.get("files_new") or 0),
        int(summary.get("files_changed") or 0),
        format_bytes(summary.get("data_added")),
        float(summary.get("total_duration") or 0),
    )


def shrink_verdict(summary, good, percent):
    """Why a new snapshot is suspect, "" when it is not: no file in its sources (unless the last good snapshot had
    none either), or fewer files or bytes than the job's last good snapshot by more than ``percent`` percent (0: only
    an empty one is suspect). ``summary`` is restic backup's; ``good`` holds the last good snapshot's "files" and
    "bytes", each None when unknown."""
    files = int(summary.get("total_files_processed") or 0)
    size = int(summary.get("total_bytes_processed") or 0)
    before_files, before_bytes = good.get("files"), good.get("bytes")
    # An empty snapshot is suspect, unless the last good one was empty too (an empty state accepted once).
    if files == 0 and before_files != 0:
        return "no file in the sources" + (" (the last good snapshot had %d)" % before_files if before_files else "")
    shrunk = []
    for name, now, before, shown in (("files", files, before_files, str), ("bytes", size, before_bytes, format_bytes)):
        if percent > 0 and before and now * 100 < before * (100 - percent):
            shrunk.append("%s %s, was %s (-%s%%)" % (name, shown(now), shown(before), "%g" % round(100 - now * 100.0 / before, 1)))
    if not shrunk:
        return ""
    return "the sources shrank by more than %d%% since the last good snapshot: %s" % (percent, ", ".join(shrunk))


def sources_empty(paths):
    """Whether every path is missing or an empty directory (a new host before its data is restored)."""
    for path in paths:
        try:
            with os.scandir(path) as entries:
                if next(entries, None) is not None:
                    return False
        except FileNotFoundError:
            continue
        except OSError:
            # A file, a dead mount, a directory this host cannot read: not the empty tree of a new host (restic
            # backup then says what is wrong with it).
            return False
    return True


def clear_dump_dir(path):
    """Create ``path`` (0700) and empty it, so a stale dump can never be backed up as if fresh."""
    if not os.path.isabs(path) or os.path.normpath(path) == "/":
        raise JobError("dump_dir must be an absolute path other than /, not %r" % path)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


def sqlite_dump(source, target):
    """Copy a live SQLite database with the online backup API, opening the source read-only."""
    if not os.path.isfile(source):
        raise JobError("sqlite database %s does not exist" % source)
    try:
        src = sqlite3.connect("file:%s?mode=ro" % quote(os.path.abspath(source)), uri=True)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise JobError("sqlite backup of %s failed: %s" % (source, exc)) from exc


def backup_state(previous, started, finished, status, *, summary=None, snapshots=None, good=None, suspect=False):
    """The state after a backup run: last_success and the snapshot count survive a failure. ``good`` (its
    "snapshot", "files", "bytes") is a snapshot found not suspect, ``suspect`` one that was; a run that made no
    snapshot changes neither."""
    state = dict(STATE_DEFAULTS)
    state.update(previous or {})
    summary = summary or {}
    state.update(
        last_run=int(started),
        last_exit_status=status,
        last_duration=round(max(0.0, finished - started), 3),
        bytes_added=int(summary.get("data_added") or 0),
        files_new=int(summary.get("files_new") or 0),
        files_changed=int(summary.get("files_changed") or 0),
        partial=1 if status == EXIT_PARTIAL else 0,
    )
    if status in (EXIT_OK, EXIT_PARTIAL):
        state["last_success"] = int(started)
        state["consecutive_failures"] = 0
    else:
        state["consecutive_failures"] = int(state["consecutive_failures"]) + 1
    if good:
        state.update(suspect=0, good_snapshot=good["snapshot"], good_files=int(good["files"]), good_bytes=int(good["bytes"]), good_time=int(started))
    elif suspect:
        state["suspect"] = 1
    if snapshots is not None:
        record_snapshot_count(state, snapshots)
    return state


def dump_database(job, database, dump_dir):
    """Dump one database to NAME.EXT.tmp, then rename it; returns the final path."""
    final = os.path.join(dump_dir, dump_file_name(database))
    temp = final + ".tmp"
    what = "%s database %s" % (database.get("type"), database.get("name"))
    try:
        if database["type"] == "sqlite":
            sqlite_dump(database["path"], temp)
        else:
            argv = dump_command(database)
            with open(temp, "wb", opener=private_opener) as handle:
                proc = call(job.ctx, argv, stdout=handle, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=dict(job.ctx.environ))
            if proc.returncode != 0:
                detail = last_line((proc.stderr or b"").decode("utf-8", "replace"))
                raise JobError("dump of %s failed (%s)%s" % (what, describe_exit(proc.returncode), ": " + detail if detail else ""))
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    job.info("dumped %s (%s)" % (what, format_bytes(os.path.getsize(final))))
    return final


def dump_databases(job):
    dump_dir = job.config["dump_dir"]
    clear_dump_dir(dump_dir)
    for database in job.config["databases"]:
        dump_database(job, database, dump_dir)


def take_snapshot(job, env, flags, outcome):
    """restic backup; fills outcome (status, summary) or raises JobError."""
    proc = restic_marked(job, env, backup_command(job.config, flags, outcome.get("tag", "")))
    parsed = parse_backup_output(proc.stdout, proc.stderr)
    status = backup_status(proc.returncode)
    if status == EXIT_FAILED:
        if parsed["errors"]:
            job.error("restic reported: %s" % listed(parsed["errors"]))
        text = "\n".join(parsed["messages"])
        hint, cause = restic_diagnosis(text, proc.returncode)
        raise JobError("restic backup failed (%s)%s" % (describe_exit(proc.returncode), ": " + hint if hint else ""), cause=cause)
    outcome.update(status=status, summary=parsed["summary"])
    job.info(snapshot_line(parsed["summary"]))
    if status == EXIT_PARTIAL:
        job.warn("partial snapshot, some files could not be read: %s" % (listed(parsed["errors"]) or "restic named none"))


def backup_steps(job, stack, outcome):
    config = job.config
    env, version = open_repository(job, stack)
    flags = retry_lock_flags(version)
    refuse_unrestored(job, env, outcome)
    run_hooks(job, "pre-hook", config["pre_hooks"])
    if config["databases"]:
        dump_databases(job)
    take_snapshot(job, env, flags, outcome)
    # Every restic command opens the repository (a key derivation meant to be slow): the count after a backup is
    # the last known count plus this snapshot, made exact again by every retention run.
    known = outcome.get("previous_snapshots")
    outcome["snapshots"] = known + 1 if isinstance(known, int) else count_snapshots(job, env)
    # Judged before the post-hooks (a failing one must not leave a suspect snapshot untagged), failed after them
    # (they may start what the pre-hooks stopped).
    suspect = judge_snapshot(job, env, flags, outcome)
    try:
        run_hooks(job, "post-hook", config["post_hooks"])
    except JobError as exc:
        if not suspect:
            raise
        job.error(str(exc))
    if suspect:
        raise suspect


def refuse_unrestored(job, env, outcome):
    """Refuse to back up empty sources on a host that has never backed up nor restored the job while the repository
    holds its snapshots for this host: a new host that took a lost one's name, before its data is back. Such a
    snapshot would become the latest, and a week of them would let retention forget the good ones."""
    config, previous = job.config, outcome["previous"]
    if outcome.get("tag") == ACCEPT_SHRINK_TAG or previous.get("last_success") or previous.get("good_snapshot") or previous.get("last_restore"):
        return
    if not config.get("paths") or not sources_empty(config["paths"]):
        return
    snapshots = parse_snapshots(restic_checked(job, env, snapshots_command(config), "restic snapshots").stdout)
    good = last_good_snapshot(snapshots)
    if good is None:
        return
    what = (", ".join(config["paths"]), len(snapshots), config["host"], good["id"][:8], str(good.get("time"))[:19], config["name"], ACCEPT_SHRINK_TAG)
    raise JobError(
        "refused: the sources (%s) are empty, and the repository holds %d snapshots of this job for host %s (the last good one %s of %s) that this "
        "host has never backed up nor restored; restore them first (playbooks/restore.yml -e restore_job=%s), or back up the empty sources "
        "once with playbooks/backup_now.yml -e backup_now_tag=%s" % what,
        cause="not_restored",
    )


def good_figures(job, env, previous, new_id):
    """{"snapshot", "files", "bytes"} of the job's last good snapshot: as this host recorded it, else (a new host, a
    lost state) the newest good one in the repository, from its summary (restic 0.17 and later) or ``restic stats``
    (bytes only); {} when there is none or it cannot be read (said in the journal)."""
    if previous.get("good_snapshot"):
        return {"snapshot": previous["good_snapshot"], "files": previous.get("good_files") or None, "bytes": previous.get("good_bytes") or None}
    try:
        snapshots = parse_snapshots(restic_checked(job, env, snapshots_command(job.config), "restic snapshots").stdout)
        good = last_good_snapshot([snap for snap in snapshots if not str(snap.get("id") or "").startswith(new_id)])
        if good is None:
            return {}
        summary = good.get("summary") or {}
        if summary:
            return {"snapshot": good["id"][:8], "files": summary.get("total_files_processed") or None, "bytes": summary.get("total_bytes_processed") or None}
        proc = restic_checked(job, env, restic_command(job.config, "stats", "--json", "--mode", "restore-size", good["id"]), "restic stats")
        size = json.loads(proc.stdout).get("total_size")
    except (JobError, ValueError, AttributeError) as exc:
        job.warn("cannot read the last good snapshot's figures, the new one is not compared with it: %s" % exc)
        return {}
    return {"snapshot": good["id"][:8], "files": None, "bytes": int(size) if isinstance(size, int) else None}


def judge_snapshot(job, env, flags, outcome):
    """Compare the new snapshot with the job's last good one (shrink_verdict). A suspect one is kept and tagged
    SUSPECT_TAG, and the JobError that fails the run (what shrank) is returned; None for a good one. The hand tag
    ACCEPT_SHRINK_TAG makes a suspect one good, once."""
    summary = outcome.get("summary") or {}
    new_id = str(summary.get("snapshot_id") or "")
    if not new_id:
        job.warn("restic printed no summary: the snapshot is not compared with the last good one")
        return None
    good = good_figures(job, env, outcome["previous"], new_id)
    verdict = shrink_verdict(summary, good, int(job.config.get("suspect_shrink") or 0))
    figures = {"snapshot": new_id[:8], "files": int(summary.get("total_files_processed") or 0), "bytes": int(summary.get("total_bytes_processed") or 0)}
    if verdict and outcome.get("tag") == ACCEPT_SHRINK_TAG:
        job.warn("accepted once (tag %s): %s" % (ACCEPT_SHRINK_TAG, verdict))
        verdict = ""
    if not verdict:
        outcome["good"] = figures
        job.info("not suspect (compared with the last good snapshot %s)" % (good.get("snapshot") or ": none yet"))
        return None
    outcome["suspect"] = True
    job.warn("suspect snapshot %s: %s" % (new_id[:8], verdict))
    proc = restic_relocking(job, env, restic_command(job.config, "tag", *flags) + ["--add", SUSPECT_TAG, new_id])
    # restic tag rewrites the snapshot under a new ID: it is found by its tag from now on.
    tagged = "it is kept, tagged %s (restic snapshots --tag %s lists it under its new ID)" % (SUSPECT_TAG, SUSPECT_TAG)
    if proc.returncode != 0:
        tagged = "it is kept, but could not be tagged %s (%s)" % (SUSPECT_TAG, restic_hint(proc.stderr, proc.returncode))
    kept = "retention keeps the last good snapshot %s whatever its age" % good["snapshot"] if good.get("snapshot") else "no good snapshot is known yet"
    what = (new_id[:8], verdict, tagged, kept, job.name, ACCEPT_SHRINK_TAG)
    return JobError(
        "suspect snapshot %s: %s; %s, and %s. If the change is wanted, accept it once: playbooks/backup_now.yml -e backup_now_job=%s -e backup_now_tag=%s"
        % what,
        cause="suspect",
    )


def cmd_run(ctx, config, tag=""):
    """One backup; ``tag`` (checked by hand_tag) is added to the snapshot's tags ("backup now" with a tag)."""
    job = Job(ctx, "backup", config)
    started = ctx.clock()
    previous = previous_state(job)
    known = previous.get("snapshots") if previous.get("snapshots_known") else None
    outcome = {"status": EXIT_FAILED, "summary": None, "snapshots": None, "previous_snapshots": known, "tag": tag, "previous": previous}
    outcome.update(good=None, suspect=False)
    if tag:
        job.info("backup now, tagged %s" % tag)
    with contextlib.ExitStack() as stack:
        ok = guarded(job, backup_steps, stack, outcome)
        if not ok:
            outcome["status"] = EXIT_FAILED
            run_hooks(job, "on-failure hook", config["on_failure_hooks"], fatal=False)
        finished = ctx.clock()
        verdict = {"good": outcome["good"], "suspect": outcome["suspect"]}
        state = backup_state(previous_state(job), started, finished, outcome["status"], summary=outcome["summary"], snapshots=outcome["snapshots"], **verdict)
        saved = save_state(job, state)
    if ok:
        job.info("%s in %.1f s" % ("done, partial" if outcome["status"] == EXIT_PARTIAL else "done", finished - started))
    else:
        job.error("backup failed after %.1f s (%d failures in a row)" % (finished - started, state["consecutive_failures"]))
    return EXIT_OK if ok and saved else EXIT_FAILED


# --- retention (command forget): the rules, never the newest nor the last good snapshot, the structure check -----------


def protected_ids(snapshots, recorded_good=""):
    """The IDs no retention pass may remove: the latest snapshot, the newest one not tagged suspect, and the last
    good one this host recorded (``recorded_good``, an ID or its prefix: it stays protected when a suspect snapshot
    could not be tagged). The untagged original of a suspect snapshot is none of them (untagged_twins)."""
    snapshots = without_twins(snapshots)
    ids = {(latest_snapshot(snapshots) or {}).get("id"), (last_good_snapshot(snapshots) or {}).get("id")}
    if recorded_good:
        ids.update(snap.get("id") for snap in snapshots if str(snap.get("id") or "").startswith(recorded_good))
    return ids - {None}


_DURATION_PART = re.compile(r"([0-9]+)([ymdh])")
_DURATION_SECONDS = {"y": 365 * 86400, "m": 30 * 86400, "d": 86400, "h": 3600}


def duration_seconds(text):
    """Seconds of a restic duration such as 21d or 1y6m (a year is 365 days, a month 30), or None when malformed."""
    text = text or ""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(int(number) * _DURATION_SECONDS[unit] for number, unit in parts)


def expired_by_tag(rule, snapshots, now, keep_ids):
    """IDs of the snapshots carrying the rule's tag that are older than ``within`` counted back from now, but those
    of ``keep_ids``."""
    seconds = duration_seconds(rule.get("within"))
    if seconds is None:
        return []
    cutoff = now - seconds
    expired = []
    for snap in snapshots:
        moment = snapshot_time(snap.get("time"))
        if rule["tag"] in (snap.get("tags") or []) and moment is not None and moment < cutoff and snap.get("id") not in keep_ids and snap.get("id"):
            expired.append(snap["id"])
    return expired


# The label of a policy pass that restic only plans (--dry-run --json): forget_steps removes what it would, by ID,
# but the last good snapshot.
UNTAGGED_TWINS = "untagged originals of suspect snapshots"
POLICY_KEEPING_GOOD = "retention policy, planned"


def forget_plan(config, snapshots, flags=(), now=None, recorded_good=""):
    """[(label, argv)]: the policy pass, one pass per tag rule with expired snapshots, then prune when asked.

    The policy pass always keeps the job's latest snapshot (--keep-last 1) and every snapshot of a tag rule's tag
    (--keep-tag). A tag rule then removes, by ID, its tag's snapshots older than ``within`` counted back from now
    (restic's own --keep-within counts from the newest snapshot, so it would keep the newest tagged one forever),
    never the job's latest snapshot. When the latest is suspect, the newest good one (protected_ids) is never
    removed either: the policy pass is then a dry run (POLICY_KEEPING_GOOD) whose removals forget_steps makes by ID.
    """
    now = time.time() if now is None else now
    retention = config.get("retention") or {}
    rules = [rule for rule in config.get("tag_rules") or [] if rule.get("tag")]
    keep_ids = protected_ids(snapshots, recorded_good)
    policy = restic_command(config, "forget", *flags) + job_filter(config) + ["--group-by", "host"]
    policy += ["--keep-last", str(max(1, int(retention.get("keep_last") or 0)))]
    for period in ("hourly", "daily", "weekly", "monthly", "yearly"):
        count = int(retention.get("keep_" + period) or 0)
        if count > 0:
            policy += ["--keep-" + period, str(count)]
    if retention.get("keep_within"):
        policy += ["--keep-within", retention["keep_within"]]
    for rule in rules:
        policy += ["--keep-tag", rule["tag"]]
    # The untagged originals of suspect snapshots go first, by ID: left there, the policy could keep one in place of
    # its suspect copy, and once that copy is gone it would pass for the last good snapshot.
    twins = untagged_twins(snapshots)
    plan = [(UNTAGGED_TWINS, restic_command(config, "forget", *flags) + twins)] if twins else []
    plan += [("retention policy", policy)] if len(keep_ids) < 2 else [(POLICY_KEEPING_GOOD, policy + ["--dry-run", "--json"])]
    for rule in rules:
        expired = expired_by_tag(rule, snapshots, now, keep_ids)
        if expired:
            plan.append(("tag %s older than %s" % (rule["tag"], rule["within"]), restic_command(config, "forget", *flags) + expired))
    if config.get("prune"):
        plan.append(("prune", restic_command(config, "prune", *flags)))
    return plan


def planned_removals(text, keep_ids):
    """The IDs a ``forget --dry-run --json`` would remove, but ``keep_ids``; raises JobError when it is no such list."""
    groups = json_list(text, "restic forget --dry-run")
    removed = [snap.get("id") for group in groups if isinstance(group, dict) for snap in group.get("remove") or [] if isinstance(snap, dict)]
    return [snap_id for snap_id in removed if snap_id and snap_id not in keep_ids]


def forget_commands(config, snapshots, flags=(), now=None, recorded_good=""):
    """The argv lists ``forget`` runs, in order (see forget_plan)."""
    return [argv for _label, argv in forget_plan(config, snapshots, flags, now, recorded_good)]


def forget_state(previous, started, ok, snapshots=None, *, structure_check=None, checks=True):
    """The state after a retention run; ``structure_check`` is whether its structural check found the repository
    sound (None: not run, or no finding). A job that no longer ``checks`` (the option switched off, or no longer the
    repository's first job) drops an earlier outcome, which would otherwise alert for ever."""
    state = dict(STATE_DEFAULTS)
    state.update(previous or {})
    if not checks:
        for key in ("last_structure_check", "last_structure_check_success", "structure_check_exit_status"):
            state[key] = STATE_DEFAULTS[key]
    if structure_check is not None:
        state.update(last_structure_check=int(started), structure_check_exit_status=EXIT_OK if structure_check else EXIT_FAILED)
        if structure_check:
            state["last_structure_check_success"] = int(started)
    state["last_forget_exit_status"] = EXIT_OK if ok else EXIT_FAILED
    if ok:
        state["last_forget"] = int(started)
        state["forget_consecutive_failures"] = 0
    else:
        state["forget_consecutive_failures"] = int(state["forget_consecutive_failures"]) + 1
    if snapshots is not None:
        record_snapshot_count(state, snapshots)
    else:
        # A retention run that failed part way may have removed snapshots: the next backup counts them again.
        state["snapshots_known"] = False
    return state


def forget_steps(job, stack, outcome):
    config = job.config
    env, version = open_repository(job, stack)
    flags = retry_lock_flags(version)
    snapshots = parse_snapshots(restic_checked(job, env, snapshots_command(config), "restic snapshots").stdout)
    outcome["before"] = [snap.get("id") for snap in snapshots if snap.get("id")]
    job.info("%d snapshots of this job for host %s before forget" % (len(snapshots), config["host"]))
    recorded_good = str(previous_state(job).get("good_snapshot") or "")
    plan = forget_plan(config, snapshots, flags, job.ctx.clock(), recorded_good)
    if outcome.get("dry_run"):
        outcome["forgotten"] = forget_preview(job, env, plan, protected_ids(snapshots, recorded_good), flags)
        return
    for label, argv in plan:
        if label == "prune" and config.get("check_structure"):
            check_structure(job, env, flags, outcome)
        if label == "prune" and os.path.exists(damaged_path(config)):
            # Another job's check found the repository damaged (each job has its own retention timer): restic's
            # advice is to repair a damaged repository before anything is pruned. Its forget passes are done.
            job.warn("not pruned: the last structural check of this repository found it damaged (%s)" % damaged_path(config))
            continue
        if label == POLICY_KEEPING_GOOD:
            forget_keeping_good(job, env, flags, argv, snapshots, keep_ids=protected_ids(snapshots, recorded_good))
            continue
        proc = restic_relocking(job, env, argv)
        if proc.returncode != 0:
            raise restic_error("restic %s" % label, proc.returncode, proc.stderr)
        job.info("%s done" % label)
    if config.get("check_structure") and "prune" not in [label for label, _argv in plan]:
        check_structure(job, env, flags, outcome)
    after = list_snapshots(job, env)
    if after is not None:
        outcome["snapshots"] = len(after)
        left = set(snap.get("id") for snap in after)
        outcome["forgotten"] = [snap_id for snap_id in outcome["before"] if snap_id not in left]


def forget_preview(job, env, plan, keep_ids, flags=()):
    """The IDs the passes of ``plan`` would forget, nothing forgotten (a dry run, as module backup_retention's check
    mode asks): the policy pass as ``restic forget --dry-run --json`` (what it would remove, but ``keep_ids``), the tag
    passes by their IDs; no prune, no check."""
    forgotten = []
    for label, argv in plan:
        if label == "prune":
            job.info("prune skipped (dry run)")
            continue
        if label in ("retention policy", POLICY_KEEPING_GOOD):
            planned = [arg for arg in argv if arg not in ("--dry-run", "--json")] + ["--dry-run", "--json"]
            proc = restic_relocking(job, env, planned)
            if proc.returncode != 0:
                raise restic_error("restic forget --dry-run", proc.returncode, proc.stderr)
            removals = planned_removals(proc.stdout, keep_ids)
        else:
            # A pass by IDs (the untagged twins, a tag rule): restic forget with the flags, then the IDs (forget_plan).
            removals = [snap_id for snap_id in argv[len(restic_command(job.config, "forget", *flags)) :] if snap_id not in keep_ids]
        removals = [snap_id for snap_id in removals if snap_id not in forgotten]
        job.info("%s would forget %d snapshots%s (dry run)" % (label, len(removals), ": " + ", ".join(snap_id[:8] for snap_id in removals) if removals else ""))
        forgotten += removals
    return forgotten


def forget_keeping_good(job, env, flags, argv, snapshots, *, keep_ids):
    """The policy pass when the latest snapshot is suspect: restic plans it (a dry run), then what it would remove is
    removed by ID, but ``keep_ids`` (protected_ids): the newest good snapshot, which the policy alone would let go
    once enough suspect ones follow."""
    proc = restic_relocking(job, env, argv)
    if proc.returncode != 0:
        raise restic_error("restic forget --dry-run", proc.returncode, proc.stderr)
    removals = planned_removals(proc.stdout, keep_ids)
    latest_id = latest_snapshot(without_twins(snapshots))["id"]
    kept = sorted((snap for snap in snapshots if snap.get("id") in keep_ids and snap["id"] != latest_id), key=lambda snap: str(snap.get("time")))
    job.warn(
        "the latest snapshot is suspect: the last good one, %s, is kept whatever the policy says"
        % ", ".join("%s of %s" % (snap["id"][:8], str(snap.get("time") or "?")[:19]) for snap in kept)
    )
    if removals:
        proc = restic_relocking(job, env, restic_command(job.config, "forget", *flags) + removals)
        if proc.returncode != 0:
            raise restic_error("restic forget", proc.returncode, proc.stderr)
    job.info("retention policy done (%d snapshots forgotten by ID)" % len(removals))


def check_structure(job, env, flags, outcome):
    """restic check without reading data, before prune: a repository found damaged is not pruned (restic's advice is
    to repair it first). Every index, snapshot and tree is read and every pack the index names must be there, so a
    pack lost from the bucket is found here; backups never notice it, as they deduplicate against the index."""
    started = job.ctx.clock()
    # --with-cache: the job's own cache, not a new one in the unit's private /tmp (a tmpfs that counts against
    # MemoryMax on Debian 13); only what is not cached is downloaded. Packs are listed from the repository itself.
    try:
        restic_check(job, env, restic_command(job.config, "check", "--with-cache", *flags), "restic check")
    except JobError as exc:
        # Only what restic found in the repository is an outcome of its structure; a check that could not run or
        # finish (locked by another host, unreachable, killed) found nothing, and the failed retention run says why.
        if exc.cause == "damaged":
            outcome["structure_check"] = False
            set_marker(damaged_path(job.config), True)
        raise
    outcome["structure_check"] = True
    set_marker(damaged_path(job.config), False)
    job.info("restic check done in %.1f s: the repository's structure is sound (no data read)" % (job.ctx.clock() - started))


def retention_run(ctx, config, dry_run=False):
    """A retention run: forget by the policy and tag rules, for the repository's first job a structural check, then
    prune. The run fails when any step does; the check's outcome has its own state and metrics.

    Returns {"ok", "cause", "before", "forgotten", "snapshots", "structure_check"} (the snapshot IDs before, those
    forgotten, the count after). ``dry_run``: what would be forgotten, nothing forgotten, pruned, checked nor recorded
    (module backup_retention's check mode). The one place of the retention rules, for the host's timer (cmd_forget)
    and for module backup_retention, which runs it from a trusted place with the bucket owner's key.
    """
    job = Job(ctx, "forget", config)
    started = ctx.clock()
    outcome = {"snapshots": None, "structure_check": None, "before": [], "forgotten": [], "dry_run": bool(dry_run)}
    with contextlib.ExitStack() as stack:
        ok = guarded(job, forget_steps, stack, outcome)
        saved = True
        if not dry_run:
            state = forget_state(
                previous_state(job), started, ok, outcome["snapshots"], structure_check=outcome["structure_check"], checks=bool(config.get("check_structure"))
            )
            saved = save_state(job, state)
    if outcome["structure_check"] is False:
        job.error("restic check found the repository damaged: retention run failed%s" % (", nothing pruned" if config.get("prune") else ""))
    elif not ok:
        job.error("retention failed")
    outcome.pop("dry_run")
    return dict(outcome, ok=ok and saved, cause=job.cause)


def cmd_forget(ctx, config):
    """A retention run of the host's timer (retention_run)."""
    return EXIT_OK if retention_run(ctx, config)["ok"] else EXIT_FAILED


# --- restore drill (command drill): a sample restored and compared, a subset of the data read --------------------------
# A restore drill restores at most this many files; restic 0.14's restore has no --include-file, so the
# patterns go on the command line, in several restores when they would make it longer than this many bytes.
MAX_DRILL_FILES = 1000
INCLUDE_BUDGET = 128 * 1024


def parse_ls_line(line):
    """(path, size) of a regular file from one line of ``restic ls --json``, else None (see ls_node)."""
    node = ls_node(line)
    if node is None or node.get("type") != "file":
        return None
    return node["path"], int(node.get("size") or 0)


def read_ls_listing(lines):
    """([(path, size)] of the regular files, number left out): restic prints a name that is not valid UTF-8 with
    U+FFFD in place of its bytes, and no --include pattern can name that file exactly."""
    files, unnamed = [], 0
    for line in lines:
        item = parse_ls_line(line)
        if item is None:
            continue
        if "\ufffd" in item[0]:
            unnamed += 1
        else:
            files.append(item)
    return files, unnamed


def choose_sample(files, sample_files=0, sample_percent=0, rng=None, limit=MAX_DRILL_FILES):
    """The files a drill restores: ``sample_files`` of them at random, or, with ``sample_percent``, random files
    until their bytes reach that share of all the files' bytes (at least one file when there is any); never more
    than ``limit``. ``files`` is [(path, size)]; the sample keeps the listing's order."""
    rng = rng or random.SystemRandom()
    files = list(files)
    if not files:
        return []
    if float(sample_percent or 0) > 0:
        wanted = sum(size for _path, size in files) * float(sample_percent) / 100.0
        chosen, total = [], 0
        for index in rng.sample(range(len(files)), len(files)):
            if len(chosen) >= limit or (chosen and total >= wanted):
                break
            chosen.append(index)
            total += files[index][1]
    else:
        count = min(int(sample_files or 0), len(files), limit)
        chosen = rng.sample(range(len(files)), count)
    return [files[index] for index in sorted(chosen)]


def include_batches(paths, budget=None):
    """``paths`` cut into lists whose --include arguments stay within ``budget`` bytes (one restic restore each)."""
    budget = INCLUDE_BUDGET if budget is None else budget
    batches, current, used = [], [], 0
    for path in paths:
        cost = len("--include") + len(include_pattern(path).encode("utf-8", "surrogateescape")) + 2
        if current and used + cost > budget:
            batches.append(current)
            current, used = [], 0
        current.append(path)
        used += cost
    if current:
        batches.append(current)
    return batches


def restored_problems(target, sample):
    """'PATH: what' for every sampled file that is not under ``target`` as a regular file of its recorded size."""
    problems = []
    for path, size in sample:
        try:
            info = os.lstat(os.path.join(target, path.lstrip("/")))
        except OSError:
            problems.append("%s: missing after the restore" % path)
            continue
        if not stat.S_ISREG(info.st_mode):
            problems.append("%s: not a regular file after the restore" % path)
        elif info.st_size != size:
            problems.append("%s: %d bytes restored, %d in the snapshot" % (path, info.st_size, size))
    return problems


def next_subset(state, subsets):
    """K of the next ``check --read-data-subset=K/N``: the state's, or 1 when it is out of 1..N (N changed)."""
    try:
        subset = int((state or {}).get("drill_next_subset") or 1)
    except (TypeError, ValueError):
        subset = 1
    return subset if 1 <= subset <= subsets else 1


def check_command(config, subset, subsets, flags=()):
    return restic_command(config, "check", *flags) + ["--read-data-subset=%d/%d" % (subset, subsets)]


def drill_state(previous, started, finished, ok, *, files=0, size=0, subset=None, subsets=0, check=None):
    """The state after a restore drill; ``subset`` is the K of a successful ``check --read-data-subset=K/N``, which
    is the only thing that moves the rotation on; ``check`` is whether the repository check passed (None: not run)."""
    state = dict(STATE_DEFAULTS)
    state.update(previous or {})
    state.update(
        last_drill=int(started),
        drill_exit_status=EXIT_OK if ok else EXIT_FAILED,
        drill_duration=round(max(0.0, finished - started), 3),
        drill_files_checked=int(files),
        drill_bytes_checked=int(size),
    )
    if ok:
        state["last_drill_success"] = int(started)
        state["drill_consecutive_failures"] = 0
    else:
        state["drill_consecutive_failures"] = int(state["drill_consecutive_failures"]) + 1
    if check is not None:
        state.update(last_check=int(started), check_exit_status=EXIT_OK if check else EXIT_FAILED)
        if check:
            state["last_check_success"] = int(started)
    if subset is not None and subsets > 0:
        state["drill_subset_checked"] = int(subset)
        state["drill_next_subset"] = int(subset) % int(subsets) + 1
    return state


def fresh_work_dir(job):
    """A new 0700 directory for one drill under the state directory, once what an interrupted drill left is gone.

    Job names hold no dot, so ``.drill-NAME.`` is this job's prefix only."""
    state_dir = job.config["state_dir"]
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    prefix = ".drill-%s." % job.name
    for entry in sorted(os.listdir(state_dir)):
        if entry.startswith(prefix) and os.path.isdir(os.path.join(state_dir, entry)):
            job.info("removing %s, left by an interrupted drill" % entry)
            remove_tree(os.path.join(state_dir, entry))
    return tempfile.mkdtemp(prefix=prefix, dir=state_dir)


def drop_work_dir(job, path):
    try:
        remove_tree(path)
    except OSError as exc:
        job.warn("cannot remove %s: %s" % (path, exc))


def list_snapshot_files(job, env, snapshot_id, work_dir):
    """([(path, size)], number left out) of the snapshot's regular files; the listing goes through a file, not memory."""
    listing = os.path.join(work_dir, "listing.json")
    with open(listing, "wb", opener=private_opener) as handle:
        argv = ls_command(job.config, snapshot_id)
        proc = call(job.ctx, argv, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.PIPE, encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        raise restic_error("restic ls", proc.returncode, proc.stderr)
    with open(listing, encoding="utf-8", errors="replace") as handle:
        return read_ls_listing(handle)


def restore_sample(job, env, snapshot_id, sample, *, target, flags=()):
    """restic restore --verify of the sampled files into ``target``, then each file looked at; raises JobError."""
    size = sum(item[1] for item in sample)
    batches = include_batches([path for path, _size in sample])
    several = " in %d restores" % len(batches) if len(batches) > 1 else ""
    job.info("restoring %d sampled files (%s) with --verify%s" % (len(sample), format_bytes(size), several))
    for batch in batches:
        proc = restic_marked(job, env, restore_command(job.config, snapshot_id, target, batch, flags))
        if proc.returncode != 0:
            (hint, cause), problems = restic_diagnosis(proc.stderr, proc.returncode), restore_problems(proc.stderr, target)
            raise JobError(
                "restic restore --verify failed (%s)%s%s"
                % (describe_exit(proc.returncode), ": " + hint if hint else "", "; " + listed(problems) if problems else ""),
                cause=cause,
            )
    problems = restored_problems(target, sample)
    if problems:
        raise JobError("%d of %d restored files are not as the snapshot recorded them: %s" % (len(problems), len(sample), listed(problems)))
    job.info("%d files restored, verified by restic and found with their recorded sizes (%s)" % (len(sample), format_bytes(size)))


def restic_check(job, env, argv, what):
    """``argv`` (a restic check); each problem it reports is logged, then its failure raised as ``what``."""
    proc = restic_marked(job, env, argv)
    if proc.returncode != 0:
        reported = [line.strip() for line in (proc.stderr or "").splitlines() if line.strip() and not line.strip().startswith("Fatal:")]
        if reported:
            job.error("restic check reported: %s" % listed(reported))
        raise restic_error(what, proc.returncode, proc.stderr)


def check_subset(job, env, flags, subsets, outcome):
    """restic check --read-data-subset=K/N, K taken from the state; outcome["subset"] = K once it passed."""
    subset = next_subset(previous_state(job), subsets)
    outcome["check"] = False
    restic_check(job, env, check_command(job.config, subset, subsets, flags), "restic check --read-data-subset=%d/%d" % (subset, subsets))
    outcome.update(subset=subset, check=True)
    job.info("restic check --read-data-subset=%d/%d done (the repository's data is read in %d drills)" % (subset, subsets, subsets))


def drill_steps(job, stack, outcome):
    config = job.config
    drill = dict(CONFIG_DEFAULTS["drill"])
    drill.update(config.get("drill") or {})
    env, version = open_repository(job, stack)
    flags = retry_lock_flags(version)
    latest = latest_snapshot(parse_snapshots(restic_checked(job, env, snapshots_command(config), "restic snapshots").stdout))
    if not latest or not latest.get("id"):
        raise JobError("no snapshot of this job to drill")
    snapshot_id = latest["id"]
    work = fresh_work_dir(job)
    try:
        files, unnamed = list_snapshot_files(job, env, snapshot_id, work)
        total = sum(size for _path, size in files)
        job.info("snapshot %s of %s: %d files, %s" % (snapshot_id[:8], latest.get("time") or "?", len(files), format_bytes(total)))
        if unnamed:
            job.warn("%d files are left out of the sample: restic does not print their names exactly (not UTF-8)" % unnamed)
        sample = choose_sample(files, drill["sample_files"], drill["sample_percent"], job.ctx.rng)
        subsets = outcome["subsets"] = int(drill.get("check_subsets") or 0)
        if not files:
            job.warn("the snapshot holds no regular file: nothing to restore (0 files checked)")
        elif sample:
            try:
                restore_sample(job, env, snapshot_id, sample, target=os.path.join(work, "restore"), flags=flags + restore_flags(version))
            except JobError as failed:
                # A sample that does not come back as recorded may mean a damaged repository: this drill's share of the
                # repository is read all the same, so that the check's own metric and alert say whether it is.
                if subsets <= 0 or failed.cause not in DATA_CAUSES:
                    raise
                job.error(str(failed))
                job.info("the sample did not restore as recorded: reading the repository's data all the same")
                check_subset(job, env, flags, subsets, outcome)
                raise JobError("the sample did not restore as recorded, though restic check found no damage in the data it read", cause=failed.cause) from None
            outcome.update(files=len(sample), size=sum(size for _path, size in sample))
    finally:
        drop_work_dir(job, work)
    if subsets > 0:
        check_subset(job, env, flags, subsets, outcome)
    else:
        job.info("no repository check in this job's drill (the repository's first job reads its data)")


def cmd_drill(ctx, config):
    """A restore drill: a random sample of the latest snapshot restored and verified, then (for the repository's
    first job) one rotating subset of the repository's data read back."""
    job = Job(ctx, "drill", config)
    started = ctx.clock()
    outcome = {"files": 0, "size": 0, "subset": None, "subsets": 0, "check": None}
    with contextlib.ExitStack() as stack:
        ok = guarded(job, drill_steps, stack, outcome)
        finished = ctx.clock()
        state = drill_state(
            previous_state(job),
            started,
            finished,
            ok,
            files=outcome["files"],
            size=outcome["size"],
            subset=outcome["subset"],
            subsets=outcome["subsets"],
            check=outcome["check"],
        )
        saved = save_state(job, state)
    if ok:
        job.info("done in %.1f s: %d files checked (%s)" % (finished - started, outcome["files"], format_bytes(outcome["size"])))
    else:
        job.error("drill failed after %.1f s (%d failures in a row)" % (finished - started, state["drill_consecutive_failures"]))
    return EXIT_OK if ok and saved else EXIT_FAILED


# --- failure handler (command failed): the cause, the notice, the retry ------------------------------------------------


def parse_failed_target(target):
    """(job, kind) from the failure handler's instance ``JOB:KIND``."""
    job, sep, kind = target.rpartition(":")
    if not sep or kind not in KINDS or not JOB_NAME.fullmatch(job):
        raise JobError("expected JOB:backup, JOB:forget or JOB:drill, got %r" % target)
    return job, kind


def retry_left(failures, attempts):
    """Whether the retry timer is armed after ``failures`` failed runs in a row (the first retry follows failure 1)."""
    return 1 <= failures <= attempts


def journal_tail(ctx, units, complain):
    argv = ["journalctl"] + [arg for unit in units for arg in ("-u", unit)] + ["-n", str(JOURNAL_LINES), "--no-pager", "-o", "cat"]
    try:
        proc = call(ctx, argv, stdin=subprocess.DEVNULL, capture_output=True, encoding="utf-8", errors="replace")
    except JobError as exc:
        complain(str(exc))
        return []
    if proc.returncode != 0:
        complain("journalctl failed (%s)" % describe_exit(proc.returncode))
    return proc.stdout.splitlines()[-JOURNAL_LINES:]


def retry_drop_in(delay):
    """The runtime drop-in of a job's retry timer that sets the delay of its next retry (seconds)."""
    return "# Written by the keepdata backup failure handler: the delay of the next retry.\n[Timer]\nOnActiveSec=\nOnActiveSec=%ds\n" % delay


def arm_retry(job, failures):
    """(Re)start the retry timer while retries are left, after a delay that doubles with each failure in a row
    (retry_delay_seconds); False when it could not be armed."""
    attempts = int(job.config.get("retry_attempts") or 0)
    if not retry_left(failures, attempts):
        job.info("no retry left (%d failures in a row, %d retries allowed)" % (failures, attempts))
        return True
    timer = "keepdata-backup-%s-retry.timer" % job.name
    delay = retry_delay_seconds(job.config.get("retry_delay") or DEFAULT_RETRY_DELAY, failures)
    try:
        # A runtime drop-in (gone at reboot, like the timer's own state): the unit file keeps the first delay.
        atomic_write(os.path.join(job.ctx.runtime_units_dir, timer + ".d", "50-keepdata-backoff.conf"), retry_drop_in(delay), 0o644)
    except OSError as exc:
        job.error("cannot write the retry delay of %s: %s" % (timer, exc.strerror or exc))
        return False
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "restart", timer]):
        proc = call(job.ctx, argv, stdin=subprocess.DEVNULL, capture_output=True, encoding="utf-8", errors="replace")
        if proc.returncode != 0:
            job.error("%s failed (%s): %s" % (" ".join(argv), describe_exit(proc.returncode), last_line(proc.stderr)))
            return False
    job.info("retry %d of %d in %s (%s)" % (failures, attempts, format_seconds(delay), timer))
    return True


def notify_argv(command):
    """The notify command's argv: a list runs as it is (no shell), a string through /bin/sh -c."""
    if isinstance(command, list):
        return [str(part) for part in command]
    return ["/bin/sh", "-c", command]


def notify(job, unit, kind, failures, lines, *, cause=""):
    """Run notify_command with the log on stdin; False when it failed."""
    env = dict(job.ctx.environ)
    env.update(KEEPDATA_BACKUP_JOB=job.name, KEEPDATA_BACKUP_UNIT=unit, KEEPDATA_BACKUP_KIND=kind, KEEPDATA_BACKUP_FAILURES=str(failures))
    env["KEEPDATA_BACKUP_CAUSE"] = cause or "unknown"
    text = "".join(line + "\n" for line in lines)
    try:
        proc = call(job.ctx, notify_argv(job.config["notify_command"]), input=text, env=env, timeout=NOTIFY_TIMEOUT, encoding="utf-8", errors="replace")
    except subprocess.TimeoutExpired:
        job.error("notify command timed out after %d s" % NOTIFY_TIMEOUT)
        return False
    except JobError as exc:
        job.error("notify command: %s" % exc)
        return False
    if proc.returncode != 0:
        job.error("notify command failed (%s)" % describe_exit(proc.returncode))
        return False
    job.info("notify command done")
    return True


def cmd_failed(ctx, target, config_dir):
    """The OnFailure handler: after a backup, arm the retry timer while retries are left; after any failure, hand
    the log to notify_command, with the failure's cause (a failed retention or drill is not retried: its own timer
    runs it again)."""
    try:
        name, kind = parse_failed_target(target)
    except JobError as exc:
        ctx.complain("failed %s: error: %s" % (target, exc))
        return EXIT_FAILED
    unit = unit_name(name, kind)
    prefix = "failed %s:%s" % (name, kind)
    lines = journal_tail(ctx, journal_units(name, kind), lambda text: ctx.complain("%s: warning: %s" % (prefix, text)))
    try:
        config = load_config(config_dir, name)
    except JobError as exc:
        ctx.complain("%s: error: %s" % (prefix, exc))
        return EXIT_FAILED
    job = Job(ctx, "failed", config, label="%s:%s" % (name, kind))
    state = previous_state(job)
    failures = int(state.get(FAILURE_COUNTS[kind]) or 0)
    # "" when the run ended before it could record why (killed with SIGKILL, say).
    cause = str(state.get(FAILURE_CAUSE_KEYS[kind]) or "unknown")
    job.info("%s failed (%d failures in a row), cause: %s" % (unit, failures, cause))
    ok = True
    if kind == "backup" and cause in NOT_RETRIED_CAUSES:
        job.info("no retry: a retry would make the same verdict (%s)" % CAUSE_TEXTS[cause])
    elif kind == "backup":
        ok = arm_retry(job, failures)
    if config.get("notify_command"):
        ok = notify(job, unit, kind, failures, lines, cause=cause) and ok
    return EXIT_OK if ok else EXIT_FAILED


# --- command line ------------------------------------------------------------------------------------------------------


def cmd_restic(ctx, config, args):
    """restic itself, with the job's repository, options and secret files (for admins and restores): its exit status."""
    if not args:
        ctx.complain("restic %s: error: give a restic command, such as snapshots" % config["name"])
        return 2
    try:
        proc = call(ctx, restic_command(config, args[0], *args[1:]), env=restic_env(config, ctx.environ))
    except JobError as exc:
        ctx.complain("restic %s: error: %s" % (config["name"], exc))
        return EXIT_FAILED
    return proc.returncode


COMMANDS = {"run": cmd_run, "forget": cmd_forget, "drill": cmd_drill}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="backup_runner.py", description="Run a keepdata backup job (restic) for its systemd units.")
    parser.add_argument(
        "command",
        choices=("run", "forget", "drill", "failed", "restic"),
        help="run: one backup; forget: retention; drill: a restore drill; failed: the OnFailure handler; "
        "restic JOB ARGS...: restic with the job's repository and secrets",
    )
    parser.add_argument("job", help="the job name; JOB:backup, JOB:forget or JOB:drill for failed")
    parser.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR, help="where JOB.json lives (default %(default)s)")
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        help="run only: one more tag for this snapshot (systemd's \\xNN escapes are undone, as in a unit's %%i)",
    )
    return parser.parse_args(argv)


def tag_option(command, tags):
    """The checked tag of ``run --tag`` ("" without one); raises JobError when it is misused or not a tag."""
    if not tags:
        return ""
    if command != "run":
        raise JobError("--tag is an option of run only")
    if len(tags) > 1:
        raise JobError("give --tag once")
    return hand_tag(tags[0])


def main(argv=None, ctx=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["restic"] and len(argv) >= 2:
        # "restic JOB ARGS...": everything after the job goes to restic as it is.
        try:
            config = load_config(DEFAULT_CONFIG_DIR, argv[1])
        except JobError as exc:
            sys.stderr.write("restic %s: error: %s\n" % (argv[1], exc))
            return EXIT_FAILED
        return cmd_restic(ctx or Context(), config, argv[2:])
    args = parse_args(argv)
    if ctx is None:
        # Only the real program: a unit stopped (TimeoutStartSec) still records its failure.
        signal.signal(signal.SIGTERM, _terminate)
        ctx = Context()
    if args.command == "failed":
        return cmd_failed(ctx, args.job, args.config_dir)
    try:
        tag = tag_option(args.command, args.tag)
        config = load_config(args.config_dir, args.job)
    except JobError as exc:
        ctx.complain("%s %s: error: %s" % ("backup" if args.command == "run" else args.command, args.job, exc))
        return EXIT_FAILED
    if tag:
        return cmd_run(ctx, config, tag=tag)
    return COMMANDS[args.command](ctx, config)


if __name__ == "__main__":
    raise SystemExit(main())
