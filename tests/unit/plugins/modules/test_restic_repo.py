# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""keepdata.storage.restic_repo against a scripted restic: what each answer means, which commands run (never one
that writes after a wrong password or in check mode), and where the secrets go (files only, never argv)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import subprocess

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.backup import repository as rr
from ansible_collections.keepdata.storage.plugins.modules import restic_repo
from ansible_collections.keepdata.storage.tests.unit.plugins.compat import patch_module_args

PASSWORD = "main-Pass-word-42"  # noqa: S105 - test values, not passwords
RECOVERY = "recovery-Pass-99"
ACCESS = "AKIAEXAMPLEKEY0001"
SECRET = "s3cretKeyValue/With+Slash=="  # noqa: S105 - test values, not passwords
SECRETS = (PASSWORD, RECOVERY, ACCESS, SECRET)
S3 = "s3:http://127.0.0.1:7480/backups/restic"

MISSING_014 = "Fatal: unable to open config file: Stat: The specified key does not exist.\nIs there a repository at the following location?\n" + S3 + "\n"
REFUSED_014 = (
    'Fatal: unable to open config file: Stat: Head "http://127.0.0.1:7480/backups/restic/config": dial tcp 127.0.0.1:7480: connect: connection refused\n'
    "Is there a repository at the following location?\n" + S3 + "\n"
)
WRONG_014 = "Fatal: wrong password or no key found\n"
VERSION = "restic 0.14.0 compiled with go1.19.8 on linux/amd64\n"
LOCKED_014 = "unable to create lock in backend: repository is already locked exclusively by PID 4242 on web1 by root (UID 0, GID 0)\n"
# The module's look at the repository: it takes no lock.
OPEN = "cat config --no-lock"


class FakeRestic:
    """Plays restic from a table: the repository's state and which passwords open it.

    Records every call's argv and environment, and, while the command "runs", the secret files it was handed
    (their mode, their directory's mode, their content), so the tests can prove where the secrets were. ``locked``:
    another restic holds the repository locked exclusively (a check, a prune), so a command that takes a lock (one
    without ``--no-lock``) fails as restic does.
    """

    def __init__(self, exists=True, keys=(PASSWORD,), answers=None, locked=False):
        self.exists = exists
        self.locked = locked
        self.keys = list(keys)
        self.answers = dict(answers or {})  # command name -> list of (rc, stderr) consumed first
        self.calls = []
        self.files = []

    def read_secret(self, path):
        st, dir_st = os.stat(path), os.stat(os.path.dirname(path))
        self.files.append({"path": path, "mode": stat.S_IMODE(st.st_mode), "dir_mode": stat.S_IMODE(dir_st.st_mode)})
        with open(path) as handle:
            return handle.read().strip()

    def __call__(self, argv, env=None, timeout=None, **kwargs):
        assert env is not None and timeout is not None and kwargs.get("stdin") == subprocess.DEVNULL
        self.calls.append({"argv": list(argv), "env": dict(env)})
        if argv[1:] == ["version"]:
            return self.result(0, VERSION)
        args = argv[argv.index("--cache-dir") + 2 :] if "--cache-dir" in argv else argv[argv.index("--no-cache") + 1 :]
        command = " ".join(args[:2]) if args[0] == "key" else args[0]
        if env.get("AWS_SHARED_CREDENTIALS_FILE"):
            self.credentials = self.read_secret(env["AWS_SHARED_CREDENTIALS_FILE"])
        if self.answers.get(command):
            rc, err = self.answers[command].pop(0)
            return self.result(rc, "", err)
        password = self.read_secret(env["RESTIC_PASSWORD_FILE"])
        refused = self.refused(command, args, password)
        if refused:
            return self.result(1, "", refused)
        if command == "init":
            assert not self.exists, "init over an existing repository"
            self.exists, self.keys = True, [password]
            return self.result(0, "created restic repository 1a2b3c at %s\n" % argv[2])
        if command == "key add":
            self.keys.append(self.read_secret(args[args.index("--new-password-file") + 1]))
            return self.result(0, "saved new key as <Key of root@h>\n")
        assert command == "cat", "unexpected restic call %s" % argv
        return self.result(0, '{"version": 2, "id": "abc", "chunker_polynomial": "3dea92"}')

    def refused(self, command, args, password):
        """restic's error for this command, "" when it runs: it opens the repository first, then takes its lock."""
        if command == "init":
            return ""
        if not self.exists:
            return MISSING_014
        if password not in self.keys:
            return WRONG_014
        if self.locked and "--no-lock" not in args:
            return LOCKED_014
        return ""

    @staticmethod
    def result(rc, out="", err=""):
        return subprocess.CompletedProcess([], rc, out, err)

    def commands(self):
        out = []
        for call in self.calls:
            argv = call["argv"]
            if argv[1:] == ["version"]:
                out.append("version")
                continue
            tail = argv[argv.index("--cache-dir") + 2 :] if "--cache-dir" in argv else argv[argv.index("--no-cache") + 1 :]
            out.append(" ".join(tail[:2]) if tail[0] == "key" else " ".join(tail))
        return out


def params(**extra):
    base = {
        "repository": S3,
        "options": ["s3.bucket-lookup=path"],
        "password": PASSWORD,
        "recovery_password": "",
        "access_key": ACCESS,
        "secret_key": SECRET,
        "initialize": True,
        "timeout": 120,
        "restic": "restic",
        "cache_dir": "",
    }
    base.update(extra)
    return base


def ensure(fake, check_mode=False, diff=True, tmp_path=None, env=None, **extra):
    sleeps = []
    result = rr.ensure(
        params(**extra),
        check_mode,
        want_diff=diff,
        run=fake,
        sleep=sleeps.append,
        which=lambda name: "/usr/bin/restic",
        base_env=env if env is not None else {"PATH": "/usr/bin", "HOME": "/root"},
        tmp_dir=str(tmp_path) if tmp_path else None,
    )
    result["_sleeps"] = sleeps
    return result


def failure(fake, check_mode=False, **extra):
    with pytest.raises(rr.ResticRepoError) as info:
        ensure(fake, check_mode, **extra)
    return info.value


def assert_no_secret(fake, *texts):
    for call in fake.calls:
        for arg in call["argv"]:
            for secret in SECRETS:
                assert secret not in arg
        for name, value in call["env"].items():
            for secret in SECRETS:
                assert secret not in value, name
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# -- what restic's answer means ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rc", "text", "meaning"),
    [
        (0, "", "ok"),
        (10, "Fatal: repository does not exist: unable to open config file", "missing"),
        (11, "Fatal: unable to create lock in backend", "error"),
        (12, "Fatal: wrong password or no key found", "wrong_password"),
        (1, WRONG_014, "wrong_password"),
        (1, MISSING_014, "missing"),
        (1, "Fatal: unable to open config file: Stat: The specified bucket does not exist.\nIs there a repository at the following location?\n", "missing"),
        (1, "Fatal: unable to open config file: NoSuchBucket\nIs there a repository at the following location?\n", "missing"),
        (
            1,
            "Fatal: unable to open config file: stat /srv/backups/restic/config: no such file or directory\n"
            "Is there a repository at the following location?\n/srv/backups/restic\n",
            "missing",
        ),
        (1, REFUSED_014, "transient"),
        (1, "Fatal: unable to open config file: Stat: dial tcp 10.0.0.1:7480: i/o timeout\nIs there a repository at the following location?", "transient"),
        (1, "Fatal: unable to open config file: Stat: Access Denied.\nIs there a repository at the following location?\n", "error"),
        (
            1,
            "Fatal: unable to open config file: stat /srv/backups/restic/config: permission denied\nIs there a repository at the following location?\n",
            "error",
        ),
        (1, "Fatal: unable to open config file: Stat: dial tcp: lookup nas: no such host\nIs there a repository at the following location?", "transient"),
        (1, "Fatal: unable to open config file: something new\nIs there a repository at the following location?\n", "error"),
        (1, "Fatal: repository is already locked exclusively by PID 42", "error"),
        (None, "restic did not finish within 120 seconds", "error"),
    ],
)
def test_classification_table(rc, text, meaning):
    assert rr.classify(rc, text) == meaning


def test_version_parse_and_scrub():
    assert rr.parse_version(VERSION) == "0.14.0"
    assert rr.parse_version("restic 0.17.3 compiled with go1.23.1 on linux/amd64") == "0.17.3"
    assert rr.parse_version("bash: restic: command not found") == ""
    text = "key %s and %s and %s" % (PASSWORD, SECRET, "ab")
    assert rr.scrub(text, [PASSWORD, SECRET, "", "ab"]) == "key ******** and ******** and ********"


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        ({"repository": "s3:ftp://h/b"}, "must be s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]"),
        ({"repository": "s3:http://h:7480"}, "must be s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]"),
        ({"repository": "relative/path", "access_key": "", "secret_key": ""}, "or an absolute path"),
        ({"repository": "/srv/../etc", "access_key": "", "secret_key": ""}, "or an absolute path"),
        ({"secret_key": ""}, "access_key and secret_key are required for an s3: repository"),
        ({"repository": "/srv/backups", "secret_key": ""}, "access_key and secret_key go together"),
        ({"options": ["-o"]}, 'options[0] "-o" must be NAME=VALUE'),
        ({"password": "  "}, "password must not be empty"),
        ({"secret_key": "with\ttab"}, "secret_key must not contain control characters"),
        ({"timeout": 0}, "timeout must be at least 1 second"),
        ({"cache_dir": "cache"}, 'cache_dir "cache" must be an absolute path'),
    ],
)
def test_bad_input_runs_nothing(extra, expect):
    fake = FakeRestic()
    error = failure(fake, **extra)
    assert expect in error.msg
    assert fake.calls == []
    assert_no_secret(fake, error.msg)


# -- the runs ------------------------------------------------------------------------------------------------
def test_missing_repository_is_initialised_with_secrets_in_files_only(tmp_path):
    fake = FakeRestic(exists=False)
    inherited = {"PATH": "/usr/bin", "RESTIC_PASSWORD": "leak", "AWS_ACCESS_KEY_ID": "leak", "AWS_PROFILE": "other", "RESTIC_REPOSITORY_FILE": "/x"}
    result = ensure(fake, tmp_path=tmp_path, env=inherited)
    assert result["changed"] is True and result["initialized"] is True and result["recovery_key_added"] is False
    assert result["restic_version"] == "0.14.0" and result["repository"] == S3
    assert fake.commands() == ["version", OPEN, "init"]
    assert result["diff"] == {"before": {"repository": "absent"}, "after": {"repository": "present"}}
    init = fake.calls[-1]
    assert init["argv"][:5] == ["/usr/bin/restic", "-r", S3, "-o", "s3.bucket-lookup=path"]
    assert init["argv"][5] == "--cache-dir" and init["argv"][6].startswith(str(tmp_path))
    for name in ("RESTIC_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "RESTIC_REPOSITORY_FILE"):
        assert name not in init["env"]
    assert init["env"]["PATH"] == "/usr/bin"
    assert fake.credentials == "[default]\naws_access_key_id = `%s`\naws_secret_access_key = `%s`" % (ACCESS, SECRET)
    assert fake.files and all(f["mode"] == 0o600 and f["dir_mode"] == 0o700 for f in fake.files)
    assert fake.keys == [PASSWORD]
    assert_no_secret(fake, json.dumps(result))
    assert list(tmp_path.iterdir()) == []  # the private directory is gone


def test_existing_repository_is_left_alone():
    fake = FakeRestic()
    result = ensure(fake)
    assert result["changed"] is False and result["initialized"] is False
    assert fake.commands() == ["version", OPEN]
    assert result["diff"]["before"] == result["diff"]["after"] == {"repository": "present"}


def test_the_look_takes_no_lock_so_a_locked_repository_opens_and_check_mode_writes_nothing():
    """restic cat config without --no-lock writes a lock object (check mode too) and fails while another restic holds
    the repository locked exclusively: the role's run failed during a check or prune of the retention timer."""
    fake = FakeRestic(keys=[PASSWORD, RECOVERY], locked=True)
    result = ensure(fake, recovery_password=RECOVERY)
    assert result["changed"] is False and result["diff"]["before"] == {"repository": "present", "recovery_key": "present"}, result
    assert fake.commands() == ["version", OPEN, OPEN]
    fake = FakeRestic(locked=True)
    result = ensure(fake, check_mode=True, recovery_password=RECOVERY)
    assert result["changed"] is True and result["recovery_key_added"] is True and result["initialized"] is False
    assert fake.commands() == ["version", OPEN, OPEN]
    # A key is added under a lock, as restic takes it: the lock held by another restic is then the failure.
    error = failure(FakeRestic(locked=True), recovery_password=RECOVERY)
    assert error.msg.startswith("adding the recovery key to %s failed: locked" % S3), error.msg
    assert error.facts["changed"] is False and error.facts["recovery_key_added"] is False


def test_wrong_password_fails_before_any_write(tmp_path):
    fake = FakeRestic(keys=["another-password"])
    error = failure(fake, recovery_password=RECOVERY, tmp_path=tmp_path)
    assert error.msg == "the repository %s exists but the password does not open it; the role never initialises over an existing repository" % S3
    assert fake.commands() == ["version", OPEN]
    assert error.facts["changed"] is False
    assert_no_secret(fake, error.msg, json.dumps(error.facts))
    assert list(tmp_path.iterdir()) == []


def test_wrong_password_exit_code_of_restic_017():
    fake = FakeRestic(answers={"cat": [(12, "Fatal: wrong password or no key found")]})
    assert "the password does not open it" in failure(fake).msg
    assert "init" not in fake.commands()


def test_missing_repository_without_initialize_fails():
    fake = FakeRestic(exists=False)
    error = failure(fake, initialize=False)
    assert error.msg == "there is no repository at %s and initialize is false" % S3
    assert fake.commands() == ["version", OPEN]


def test_check_mode_runs_no_init_and_no_key_add():
    fake = FakeRestic(exists=False)
    result = ensure(fake, check_mode=True, recovery_password=RECOVERY)
    assert result["changed"] is True and result["initialized"] is True and result["recovery_key_added"] is True
    assert fake.commands() == ["version", OPEN]
    assert result["diff"] == {"before": {"repository": "absent", "recovery_key": "absent"}, "after": {"repository": "present", "recovery_key": "present"}}
    fake = FakeRestic()
    result = ensure(fake, check_mode=True, recovery_password=RECOVERY)
    assert result["changed"] is True and result["initialized"] is False and result["recovery_key_added"] is True
    assert fake.commands() == ["version", OPEN, OPEN]
    assert fake.keys == [PASSWORD]


def test_recovery_key_added_when_it_does_not_open_then_left_alone():
    fake = FakeRestic()
    result = ensure(fake, recovery_password=RECOVERY)
    assert result["changed"] is True and result["recovery_key_added"] is True
    assert fake.commands() == ["version", OPEN, OPEN, "key add"]
    assert fake.keys == [PASSWORD, RECOVERY]
    # The test of the recovery key used the recovery file; the key add authenticates with the main password.
    recovery_env, add = fake.calls[2]["env"], fake.calls[3]
    assert recovery_env["RESTIC_PASSWORD_FILE"].endswith("/recovery")
    assert add["env"]["RESTIC_PASSWORD_FILE"].endswith("/password")
    assert add["argv"][-2:] == ["--new-password-file", add["argv"][-1]] and add["argv"][-1].endswith("/recovery")
    assert_no_secret(fake, json.dumps(result))
    again = ensure(fake, recovery_password=RECOVERY)
    assert again["changed"] is False and again["recovery_key_added"] is False
    assert again["diff"]["before"] == {"repository": "present", "recovery_key": "present"}


def test_new_repository_gets_the_recovery_key_in_the_same_run():
    fake = FakeRestic(exists=False)
    result = ensure(fake, recovery_password=RECOVERY)
    assert result["initialized"] is True and result["recovery_key_added"] is True
    assert fake.commands() == ["version", OPEN, "init", OPEN, "key add"]
    assert fake.keys == [PASSWORD, RECOVERY]


def test_transient_failures_are_retried_with_backoff():
    fake = FakeRestic(answers={"cat": [(1, REFUSED_014), (1, REFUSED_014)]})
    result = ensure(fake)
    assert result["changed"] is False and result["_sleeps"] == [1, 2]
    assert fake.commands() == ["version", OPEN, OPEN, OPEN]
    fake = FakeRestic(answers={"cat": [(1, REFUSED_014)] * 3})
    error = failure(fake)
    assert error.msg.startswith(
        "cannot open the repository %s: unreachable (the S3 server or the repository's path cannot be reached): Fatal: unable to open config file" % S3
    )
    assert "connection refused" in error.msg
    assert fake.commands() == ["version", OPEN, OPEN, OPEN]


def test_other_failures_are_reported_with_secrets_scrubbed():
    leak = "Fatal: unable to open config file: Stat: Access Denied for %s using %s\nIs there a repository at the following location?\n" % (ACCESS, PASSWORD)
    fake = FakeRestic(answers={"cat": [(1, leak)]})
    error = failure(fake)
    assert "Access Denied for ******** using ********" in error.msg
    assert fake.commands() == ["version", OPEN]
    assert_no_secret(fake, error.msg)


def test_failed_init_and_key_add_are_reported():
    fake = FakeRestic(exists=False, answers={"init": [(1, "Fatal: create repository at %s failed: permission denied" % S3)]})
    error = failure(fake)
    assert (
        error.msg
        == "restic init of %s failed: denied (the S3 keys or the file permissions are refused): Fatal: create repository at %s failed: permission denied"
        % (S3, S3)
    )
    assert error.facts["changed"] is False and error.facts["initialized"] is False
    fake = FakeRestic(answers={"key add": [(1, "Fatal: unable to create lock in backend")]})
    error = failure(fake, recovery_password=RECOVERY)
    assert error.msg.startswith("adding the recovery key to %s failed: " % S3)
    assert error.facts["recovery_key_added"] is False


def test_a_timeout_is_not_retried():
    def slow(argv, **kwargs):
        if argv[1:] == ["version"]:
            return FakeRestic.result(0, VERSION)
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    with pytest.raises(rr.ResticRepoError) as info:
        rr.ensure(params(timeout=7), False, run=slow, sleep=lambda s: pytest.fail("slept"), which=lambda n: "/usr/bin/restic")
    assert info.value.msg == "cannot open the repository %s: restic did not finish within 7 seconds" % S3


def test_path_repository_writes_no_credentials_and_uses_the_given_cache(tmp_path):
    fake = FakeRestic(exists=False)
    result = ensure(fake, repository="/srv/backups/restic", access_key="", secret_key="", options=[], cache_dir=str(tmp_path / "cache"))
    assert result["initialized"] is True
    init = fake.calls[-1]
    assert init["argv"] == ["/usr/bin/restic", "-r", "/srv/backups/restic", "--cache-dir", str(tmp_path / "cache"), "init"]
    assert "AWS_SHARED_CREDENTIALS_FILE" not in init["env"]


def test_secret_files_are_private_and_removed(tmp_path):
    with rr.SecretFiles(PASSWORD, RECOVERY, ACCESS, SECRET, str(tmp_path)) as files:
        assert stat.S_IMODE(os.stat(files.dir).st_mode) == 0o700
        assert sorted(files.paths) == ["credentials", "password", "recovery"]
        for path in files.paths.values():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(files.paths["password"]) as handle:
            assert handle.read() == PASSWORD + "\n"
    assert not os.path.exists(files.dir)
    with pytest.raises(RuntimeError), rr.SecretFiles(PASSWORD, tmp_dir=str(tmp_path)) as files:
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


# -- restic not installed, and the module in-process ---------------------------------------------------------
def run_module(capsys, check_mode=False, **extra):
    args = params(**extra)
    if check_mode:
        args["_ansible_check_mode"] = True
    args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit):
        restic_repo.main()
    return json.loads(capsys.readouterr().out)


def test_restic_not_installed(capsys, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran a command"))
    result = run_module(capsys, check_mode=True, restic="/nonexistent/restic", recovery_password=RECOVERY)
    assert result["changed"] is True and result["initialized"] is False and result["recovery_key_added"] is False
    assert result["msg"] == rr.NOT_INSTALLED and result["restic_version"] == ""
    assert result["diff"]["before"] == {"repository": "unknown", "recovery_key": "unknown"}
    result = run_module(capsys, restic="/nonexistent/restic")
    assert result["failed"] is True
    assert result["msg"] == "restic (/nonexistent/restic) is not installed on this host: install the restic package first"


def test_module_reports_through_exit_and_fail_json(capsys, monkeypatch):
    fake = FakeRestic(exists=False)
    monkeypatch.setattr(rr, "find_binary", lambda name: "/usr/bin/restic")
    monkeypatch.setattr(rr.subprocess, "run", fake)
    result = run_module(capsys, recovery_password=RECOVERY)
    assert result["changed"] is True and result["initialized"] is True and result["recovery_key_added"] is True
    assert result["diff"]["after"] == {"repository": "present", "recovery_key": "present"}
    assert_no_secret(fake, json.dumps(result))
    fake.keys = ["other"]
    result = run_module(capsys)
    assert result["failed"] is True and "the password does not open it" in result["msg"]
    assert_no_secret(fake, json.dumps(result))
