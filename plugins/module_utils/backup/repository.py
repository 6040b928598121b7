# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A restic repository that exists and opens with its password (module keepdata.storage.restic_repo).

The pure part (input checks, what restic's answer means, scrubbing secrets from messages) is a set of small
functions; ``Restic`` runs the binary with secrets handed over only through files in a private temporary
directory; ``ensure`` is one run of the module: look first, then create or add a key, never over an existing
repository that the password does not open.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible_collections.keepdata.storage.plugins.module_utils.backup.shared import restic_failure, restic_hint
from ansible_collections.keepdata.storage.plugins.module_utils.backup.units import s3_credentials, s3_key_problem

MASK = "********"

# What restic's answer to ``cat config`` means, from the one table of restic's failure causes
# (shared.restic_failure): an unreachable or overloaded server is worth another try, the rest is final.
MEANINGS = {"wrong_password": "wrong_password", "missing_repository": "missing", "unreachable": "transient"}

# Environment variables that would hand restic a secret or another repository besides ours.
CLEARED_ENV = (
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_REPOSITORY",
    "RESTIC_REPOSITORY_FILE",
    "RESTIC_KEY_HINT",
    "RESTIC_CACHE_DIR",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
)

S3_REPOSITORY = re.compile(r"^s3:https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]+)?/[A-Za-z0-9.\-_]+(/[^\s]*)?$")
RESTIC_OPTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*=[^\s]*$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TRANSIENT_PAUSES = (1, 2)
# The read-only look at the repository: no lock taken, so it writes nothing (check mode included) and it opens a
# repository another restic holds locked exclusively (a check or prune of the retention timer).
OPEN = ("cat", "config", "--no-lock")

NOT_INSTALLED = "restic is not installed yet: the repository would be checked, and initialised if missing"


class ResticRepoError(Exception):
    """A failure to report: ``msg`` (secrets scrubbed) and the facts known so far."""

    def __init__(self, msg, **facts):
        super(ResticRepoError, self).__init__(msg)
        self.msg = msg
        self.facts = facts


def is_s3(repository):
    return repository.startswith("s3:")


def input_errors(p):
    """Every problem with the options, before any file is written or command run (no secret is quoted)."""
    errors = []
    repository = p["repository"]
    if CONTROL.search(repository):
        errors.append("repository must not contain control characters")
    elif is_s3(repository):
        if not S3_REPOSITORY.match(repository):
            errors.append('repository "%s" must be s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]' % repository)
        if not (p["access_key"] and p["secret_key"]):
            errors.append("access_key and secret_key are required for an s3: repository")
    elif not repository.startswith("/") or ".." in repository.split("/"):
        errors.append('repository "%s" must be s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] or an absolute path without ..' % repository)
    elif bool(p["access_key"]) != bool(p["secret_key"]):
        errors.append("access_key and secret_key go together")
    errors += ['options[%d] "%s" must be NAME=VALUE (such as s3.bucket-lookup=path)' % (i, o) for i, o in enumerate(p["options"]) if not RESTIC_OPTION.match(o)]
    if not p["password"].strip():
        errors.append("password must not be empty")
    if p["recovery_password"] and not p["recovery_password"].strip():
        errors.append("recovery_password must not be blank")
    for key in ("access_key", "secret_key"):
        problem = s3_key_problem(key, p[key]) if p[key] else None
        if problem:
            errors.append(problem)
    if p["timeout"] < 1:
        errors.append("timeout must be at least 1 second")
    if p["cache_dir"] and not os.path.isabs(p["cache_dir"]):
        errors.append('cache_dir "%s" must be an absolute path' % p["cache_dir"])
    return errors


def classify(rc, text):
    """What a ``restic cat config`` answer means: ok, missing, wrong_password, transient or error (rc None: timed out)."""
    if rc == 0:
        return "ok"
    if rc is None:
        return "error"
    return MEANINGS.get(restic_failure(text, rc)[0], "error")


def is_transient(rc, text):
    return classify(rc, text) == "transient"


def parse_version(text):
    """ "0.14.0" from ``restic 0.14.0 compiled with go1.19.8 on linux/amd64``, "" when not found."""
    match = re.search(r"\brestic\s+v?([0-9][0-9A-Za-z.+-]*)", text or "")
    return match.group(1) if match else ""


def scrub(text, secrets):
    """``text`` with every secret value replaced by a mask (longest first, so no part of one is left)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        if secret.strip() and secret.strip() != secret:
            text = text.replace(secret.strip(), MASK)
    return text


def child_env(base, password_file, credentials_file=None):
    """The command's environment: ``base`` without any inherited secret, with the secrets' files."""
    env = {k: v for k, v in base.items() if k not in CLEARED_ENV}
    env["RESTIC_PASSWORD_FILE"] = password_file
    if credentials_file:
        env["AWS_SHARED_CREDENTIALS_FILE"] = credentials_file
    return env


def find_binary(name):
    """The restic binary's path, or None when it is not installed (a name is looked up on PATH)."""
    return shutil.which(name)


class SecretFiles:
    """A private (0700) temporary directory holding the secrets' files (0600), removed on exit."""

    def __init__(self, password, recovery_password="", access_key="", secret_key="", tmp_dir=None):
        self.contents = {"password": password + "\n"}
        if recovery_password:
            self.contents["recovery"] = recovery_password + "\n"
        if access_key or secret_key:
            self.contents["credentials"] = s3_credentials(access_key, secret_key)
        self.tmp_dir = tmp_dir
        self.dir = None
        self.paths = {}

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="keepdata-restic-", dir=self.tmp_dir)
        os.chmod(self.dir, 0o700)
        for name, content in self.contents.items():
            path = os.path.join(self.dir, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            self.paths[name] = path
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


class Restic:
    """Runs ``restic -r REPO [-o ...] [--cache-dir DIR | --no-cache] ARGS`` with an explicit environment.

    ``run`` is ``subprocess.run`` (a fake in tests), so inherited secrets are removed from the environment,
    not just blanked, and each call has a timeout. ``sleep`` is the pause between tries of a transient failure.
    """

    def __init__(self, binary, repository, options, timeout, cache_dir, *, run=subprocess.run, sleep=time.sleep, base_env=None):
        self.binary = binary
        self.repository = repository
        self.options = list(options)
        self.timeout = timeout
        self.cache_dir = cache_dir
        self.run = run
        self.sleep = sleep
        self.base_env = dict(os.environ if base_env is None else base_env)

    def argv(self, args):
        argv = [self.binary, "-r", self.repository]
        for option in self.options:
            argv += ["-o", option]
        argv += ["--cache-dir", self.cache_dir] if self.cache_dir else ["--no-cache"]
        return argv + list(args)

    def call(self, argv, env):
        """(rc, stdout, stderr); rc None when the command did not finish within the timeout."""
        try:
            # subprocess, not run_command: restic runs with a timeout: run_command has none.
            # pylint: disable-next=ansible-bad-function
            proc = self.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            return None, "", "restic did not finish within %d seconds" % self.timeout
        return proc.returncode, proc.stdout or "", proc.stderr or ""

    def version(self):
        rc, out, _err = self.call([self.binary, "version"], child_env(self.base_env, os.devnull))
        return parse_version(out) if rc == 0 else ""

    def repo(self, args, password_file, credentials_file=None, retry=False):
        """Run a repository command; a read-only one (``retry``) is tried again after a transient failure."""
        env = child_env(self.base_env, password_file, credentials_file)
        pauses = list(TRANSIENT_PAUSES) if retry else []
        while True:
            rc, out, err = self.call(self.argv(args), env)
            if not pauses or not is_transient(rc, err):
                return rc, out, err
            self.sleep(pauses.pop(0))


class Run:
    """One run of the module over an open set of secret files: look, then create and add the recovery key."""

    def __init__(self, p, check_mode, restic, files):
        self.p = p
        self.check_mode = check_mode
        self.restic = restic
        self.files = files
        self.secrets = [p["password"], p["recovery_password"], p["access_key"], p["secret_key"]]
        self.result = {"changed": False, "initialized": False, "recovery_key_added": False, "restic_version": "", "repository": p["repository"]}

    def fail(self, what, rc, err, **extra):
        detail = restic_hint(err, rc) or "exit code %s" % rc
        raise ResticRepoError(scrub("%s: %s" % (what, detail), self.secrets), **dict(self.result, **extra))

    def repo(self, args, opener="password", retry=False):
        """Run a repository command, opening the repository with the file ``opener`` (password or recovery)."""
        return self.restic.repo(args, self.files.paths[opener], self.files.paths.get("credentials"), retry=retry)

    def repository(self):
        """Open the repository with the password, or initialise it when missing: its state before the run."""
        repository = self.p["repository"]
        rc, _out, err = self.repo(OPEN, retry=True)
        state = classify(rc, err)
        if state == "wrong_password":
            raise ResticRepoError(
                "the repository %s exists but the password does not open it; the role never initialises over an existing repository" % repository,
                **self.result,
            )
        if state == "ok":
            return "present"
        if state != "missing":
            self.fail("cannot open the repository %s" % repository, rc, err)
        if not self.p["initialize"]:
            raise ResticRepoError("there is no repository at %s and initialize is false" % repository, **self.result)
        self.result.update(changed=True, initialized=True)
        if not self.check_mode:
            rc, _out, err = self.repo(["init"])
            if rc != 0:
                self.fail("restic init of %s failed" % repository, rc, err, changed=False, initialized=False)
        return "absent"

    def recovery_key(self, repository_before):
        """Make sure the recovery password opens the repository too: the key's state before the run."""
        p = self.p
        if repository_before == "absent" and self.check_mode:
            # The repository does not exist yet: only its own password would open it.
            before = "present" if p["recovery_password"] == p["password"] else "absent"
        else:
            rc, _out, err = self.repo(OPEN, opener="recovery", retry=True)
            opened = classify(rc, err)
            if opened not in ("ok", "wrong_password"):
                self.fail("cannot test the recovery password on %s" % p["repository"], rc, err)
            before = "present" if opened == "ok" else "absent"
        if before == "absent":
            self.result.update(changed=True, recovery_key_added=True)
            if not self.check_mode:
                rc, _out, err = self.repo(["key", "add", "--new-password-file", self.files.paths["recovery"]])
                if rc != 0:
                    self.fail("adding the recovery key to %s failed" % p["repository"], rc, err, changed=self.result["initialized"], recovery_key_added=False)
        return before

    def __call__(self, want_diff):
        self.result["restic_version"] = self.restic.version()
        repository_before = self.repository()
        key_before = self.recovery_key(repository_before) if self.p["recovery_password"] else None
        if want_diff:
            self.result["diff"] = diff(repository_before, key_before)
        return self.result


def ensure(p, check_mode, want_diff=False, *, run=None, sleep=None, which=None, base_env=None, tmp_dir=None):
    """One run of the module: a dict for exit_json, or ResticRepoError for fail_json.

    ``run``, ``sleep`` and ``which`` default to ``subprocess.run``, ``time.sleep`` and ``find_binary``.
    """
    result = {"changed": False, "initialized": False, "recovery_key_added": False, "restic_version": "", "repository": p["repository"]}
    errors = input_errors(p)
    if errors:
        raise ResticRepoError("invalid options: " + "; ".join(errors), **result)
    binary = (which or find_binary)(p["restic"])
    if binary is None:
        if not check_mode:
            raise ResticRepoError("restic (%s) is not installed on this host: install the restic package first" % p["restic"], **result)
        result.update(changed=True, msg=NOT_INSTALLED)
        if want_diff:
            result["diff"] = diff("unknown", "unknown" if p["recovery_password"] else None)
        return result
    s3 = is_s3(p["repository"])
    with SecretFiles(p["password"], p["recovery_password"], p["access_key"] if s3 else "", p["secret_key"] if s3 else "", tmp_dir) as files:
        restic = Restic(
            binary,
            p["repository"],
            p["options"],
            p["timeout"],
            p["cache_dir"] or os.path.join(files.dir, "cache"),
            run=run or subprocess.run,
            sleep=sleep or time.sleep,
            base_env=base_env,
        )
        return Run(p, check_mode, restic, files)(want_diff)


def diff(repository_before, recovery_before):
    """before/after of the repository and, when a recovery password is given, of its key."""
    before, after = {"repository": repository_before}, {"repository": "present"}
    if recovery_before is not None:
        before["recovery_key"], after["recovery_key"] = recovery_before, "present"
    return {"before": before, "after": after}
