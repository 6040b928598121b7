# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the backup runner and the modules share (backup/shared.py): restic's command lines, its environment (secret
files as paths only), its failures classified, the database dump commands, tags and the retry delays."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from test_runner import LOCKED, PASSWORD_FILE, RESTIC_014_FAILURES, S3, S3_FILE, VERSION_014, make_config

from ansible_collections.keepdata.storage.plugins.module_utils.backup import shared


def test_restic_version_and_retry_lock():
    assert shared.parse_restic_version(VERSION_014) == (0, 14, 0)
    assert shared.parse_restic_version("restic 0.16.4-dev (compiled manually) compiled with go1.21") == (0, 16, 4)
    assert shared.parse_restic_version("bash: restic: command not found") is None
    assert shared.parse_restic_version(None) is None
    assert shared.retry_lock_flags((0, 14, 0)) == []
    assert shared.retry_lock_flags((0, 15, 9)) == []
    assert shared.retry_lock_flags((0, 16, 0)) == ["--retry-lock", "5m"]
    assert shared.retry_lock_flags((0, 17, 3)) == ["--retry-lock", "5m"]
    assert shared.retry_lock_flags((1, 0, 0)) == ["--retry-lock", "5m"]
    assert shared.retry_lock_flags(None) == []


def test_restore_flags_keep_sparse_files_sparse_from_restic_0_15():
    assert shared.restore_flags((0, 14, 0)) == []
    assert shared.restore_flags((0, 15, 0)) == ["--sparse"]
    assert shared.restore_flags((0, 18, 1)) == ["--sparse"]
    assert shared.restore_flags(None) == []


def test_restic_env_prefers_systemd_credentials_and_holds_paths_only(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "restic-password").write_text("the-Secret-Pass\n")
    (creds / "s3-credentials").write_text("[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = sEcReT\n")
    environ = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "CREDENTIALS_DIRECTORY": str(creds),
        "CACHE_DIRECTORY": "/var/cache/keepdata-backup-unit",
        "RESTIC_PASSWORD": "leaked-from-outside",
        "AWS_SECRET_ACCESS_KEY": "leaked-too",
        "RESTIC_REPOSITORY": "/somewhere/else",
        "TERM": "xterm",
    }
    env = shared.restic_env(make_config(tmp_path), environ)
    assert env == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "RESTIC_REPOSITORY": S3,
        "RESTIC_PASSWORD_FILE": str(creds / "restic-password"),
        "AWS_SHARED_CREDENTIALS_FILE": str(creds / "s3-credentials"),
        "RESTIC_CACHE_DIR": "/var/cache/keepdata-backup-unit",
    }
    for value in env.values():
        assert "Secret" not in value and "sEcReT" not in value and "leaked" not in value


def test_restic_env_falls_back_to_config_files_and_path_repository_has_no_aws(tmp_path):
    empty = tmp_path / "creds"
    empty.mkdir()  # a credentials directory without our files: the config's paths are used
    env = shared.restic_env(make_config(tmp_path), {"PATH": "/bin", "CREDENTIALS_DIRECTORY": str(empty)})
    assert env["RESTIC_PASSWORD_FILE"] == PASSWORD_FILE
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == S3_FILE
    assert env["RESTIC_CACHE_DIR"] == "/var/cache/keepdata-backup"
    assert "HOME" not in env

    env = shared.restic_env(make_config(tmp_path, repository="/srv/backups/restic", s3_credentials_file=""), {})
    assert env == {
        "PATH": shared.DEFAULT_PATH,
        "RESTIC_REPOSITORY": "/srv/backups/restic",
        "RESTIC_PASSWORD_FILE": PASSWORD_FILE,
        "RESTIC_CACHE_DIR": "/var/cache/keepdata-backup",
    }


@pytest.mark.parametrize("cause", sorted(RESTIC_014_FAILURES))
def test_restic_failure_names_the_cause_and_restics_own_line(cause):
    stderr = RESTIC_014_FAILURES[cause]
    found, line = shared.restic_failure(stderr, 1)
    assert found == cause
    # restic's own line, as it wrote it: the one that tells (the Fatal: line, or the lock line).
    assert line in stderr.splitlines()
    assert line.startswith("Fatal:") or cause == "locked"
    hint = shared.restic_hint(stderr, 1)
    assert hint == "%s (%s): %s" % (cause, shared.CAUSE_TEXTS[cause], line)


def test_an_unreachable_server_is_not_reported_as_a_missing_repository():
    # restic 0.14 asks "Is there a repository at the following location?" when it could not look at all.
    hint = shared.restic_hint(RESTIC_014_FAILURES["unreachable"], 1)
    assert hint.startswith("unreachable (the S3 server or the repository's path cannot be reached): Fatal: ")
    assert "connect: connection refused" in hint
    assert "no restic repository" not in hint


def test_restic_017_exit_codes_name_the_cause():
    assert shared.restic_failure("Fatal: repository does not exist: unable to open config file\n", 10)[0] == "missing_repository"
    assert shared.restic_failure("Fatal: unable to create lock in backend\n", 11)[0] == "locked"
    assert shared.restic_failure("Fatal: wrong password or no key found\n", 12)[0] == "wrong_password"


def test_restic_hint_and_sizes():
    missing = (
        "Fatal: unable to open config file: Stat: stat /srv/backups/restic/config: no such file or directory\n"
        "Is there a repository at the following location?\n/srv/backups/restic\n"
    )
    assert shared.restic_hint(missing).startswith("missing_repository (no restic repository at this location")
    assert shared.restic_hint("Fatal: wrong password or no key found\n") == "wrong_password (wrong repository password): Fatal: wrong password or no key found"
    assert shared.restic_hint("Fatal: unable to create lock in backend: repository is already locked by PID 7\nlock was created at ...\n") == (
        "locked (the repository is locked by another restic): Fatal: unable to create lock in backend: repository is already locked by PID 7"
    )
    # Nothing known: restic's own last words, unclassified.
    assert shared.restic_hint("Fatal: something new\n") == "Fatal: something new"
    assert shared.restic_hint("") == ""
    assert [shared.format_bytes(n) for n in (0, 1023, 1024, 1536 * 1024, 5 * 1024**4)] == ["0 B", "1023 B", "1.0 KiB", "1.5 MiB", "5.0 TiB"]
    assert shared.listed(["a", "b", "c"], 2) == "a; b; and 1 more"


def test_dump_commands_and_names():
    pg = {"type": "postgresql", "name": "app", "database": "appdb", "user": "postgres", "options": ["--no-owner"]}
    assert shared.dump_command(pg) == ["runuser", "-u", "postgres", "--", "pg_dump", "--format=custom", "--no-owner", "appdb"]
    my = {"type": "mysql", "name": "app", "database": "appdb", "defaults_file": "/root/.my.cnf", "options": ["--quick"]}
    assert shared.dump_command(my) == ["mysqldump", "--defaults-extra-file=/root/.my.cnf", "--single-transaction", "--routines", "--events", "--quick", "appdb"]
    assert shared.dump_command(dict(my, defaults_file="", options=[]))[:2] == ["mysqldump", "--single-transaction"]
    assert [shared.dump_file_name(db) for db in (pg, my, {"type": "sqlite", "name": "app"})] == ["app.pgdump", "app.sql", "app.sqlite3"]
    for bad in ({"type": "sqlite", "name": "../etc"}, {"type": "oracle", "name": "x"}):
        with pytest.raises(shared.JobError):
            shared.dump_file_name(bad)


def test_lock_error_and_marker_path(tmp_path):
    assert shared.is_lock_error(LOCKED)
    assert shared.is_lock_error("Fatal: unable to create lock in backend: repository is already locked exclusively by PID 7\n")
    assert shared.is_lock_error("Fatal: unable to create lock in backend: Put ...: connection refused\n")
    assert not shared.is_lock_error("Fatal: wrong password or no key found\n")
    assert not shared.is_lock_error("")
    assert not shared.is_lock_error(None)
    config = make_config(tmp_path)
    assert shared.unclean_path(config) == str(tmp_path / "state" / "repository-3f2a9c1b0d4e.unclean")


def test_retry_delays_double_up_to_eight_times():
    assert [shared.retry_delay_seconds(900, failures) for failures in (1, 2, 3, 4, 5, 50)] == [900, 1800, 3600, 7200, 7200, 7200]
    assert [shared.format_seconds(s) for s in (45, 60, 900, 5400, 7200, 90061)] == ["45s", "1min", "15min", "1h 30min", "2h", "1d 1h 1min 1s"]


def test_tag_is_unescaped_then_checked():
    # What systemd-escape --template keepdata-backup-app1@.service pre-update puts in the instance (%i).
    assert shared.systemd_unescape("pre\\x2dupdate") == "pre-update"
    assert shared.systemd_unescape("a\\x2Db\\x3dc") == "a-b=c"
    assert shared.systemd_unescape("plain-tag") == "plain-tag"
    assert shared.systemd_unescape("odd\\x2") == "odd\\x2"
    assert shared.hand_tag("pre\\x2dupdate") == "pre-update"
    assert shared.hand_tag("pre-update") == "pre-update"  # started without systemd-escape: the same tag
    assert shared.hand_tag("v\\x3d2.1\\x2b") == "v=2.1+"
    assert shared.hand_tag("x" * 64) == "x" * 64
    for bad, shown in (
        ("a\\x20b", "'a b'"),
        ("", "''"),
        ("-x", "'-x'"),
        ("x" * 65, repr("x" * 65)),
        ("a\\x0ab", repr("a\nb")),
        ("caf\\xc3\\xa9", repr("caf\u00c3\u00a9")),
        ("a/b", "'a/b'"),
        ("a\\x2fb", "'a/b'"),
    ):
        with pytest.raises(shared.JobError) as info:
            shared.hand_tag(bad)
        assert str(info.value) == "invalid --tag %s: a tag is %s" % (shown, shared.TAG_TEXT)
        assert "\n" not in str(info.value)
    with pytest.raises(shared.JobError, match="is the tag of a job, set by the runner"):
        shared.hand_tag("keepdata-job\\x3dother")


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        # Measured with restic 0.14 restore --include: these match exactly the one file, and nothing else.
        ("/srv/plain.txt", "/srv/plain.txt"),
        ("/srv/br[ac]ket.txt", "/srv/br\\[ac]ket.txt"),
        ("/srv/star*.txt", "/srv/star\\*.txt"),
        ("/srv/q?.txt", "/srv/q\\?.txt"),
        ("/srv/back\\slash.txt", "/srv/back\\\\slash.txt"),
        ("/srv/end\\", "/srv/end\\\\"),
        ("/srv/**", "/srv/\\*\\*"),
        ("/srv/d[1]/st*r/f.txt", "/srv/d\\[1]/st\\*r/f.txt"),
        # Taken as they are.
        ("/srv/]close", "/srv/]close"),
        ("/srv/brace{a,b}.txt", "/srv/brace{a,b}.txt"),
        ("/srv/!neg", "/srv/!neg"),
        ("/srv/dollar$HOME.txt", "/srv/dollar$HOME.txt"),
        ("/srv/sp ace/nl\nline", "/srv/sp ace/nl\nline"),
        ("/srv/-dash", "/srv/-dash"),
    ],
)
def test_include_pattern_escapes_what_restic_takes_as_a_glob(path, pattern):
    assert shared.include_pattern(path) == pattern


def test_restore_problems_from_restic_014_stderr():
    target = "/var/lib/kd/.drill-app1.x/restore"
    # A damaged pack (measured): the blob fails to decrypt, and the file's times cannot be set after it.
    damaged = (
        "ignoring error for /srv/app1/small.bin: ciphertext verification failed\n"
        "ignoring error for /srv/app1/small.bin: UtimesNano: no such file or directory\n"
        "Fatal: There were 2 errors\n"
    )
    assert shared.restore_problems(damaged, target) == [
        "/srv/app1/small.bin: ciphertext verification failed",
        "/srv/app1/small.bin: UtimesNano: no such file or directory",
    ]
    assert shared.restic_hint(damaged) == "Fatal: There were 2 errors"
    # --verify finding a restored file that differs (measured): the path carries the target directory.
    verify = (
        "ignoring error for %s/srv/app1/h.bin: Unexpected content in %s/srv/app1/h.bin, starting at offset 399226879\n"
        "ignoring error for %s/srv/app1/s.bin: Invalid file size for %s/srv/app1/s.bin: expected 400000000, got 1000\n"
        "ignoring error for %s/srv/app1/h.bin: Unexpected content in %s/srv/app1/h.bin, starting at offset 399226879\n"
        "Fatal: There were 3 errors\n"
    ) % ((target,) * 6)
    assert shared.restore_problems(verify, target + "/") == [
        "/srv/app1/h.bin: Unexpected content in /srv/app1/h.bin, starting at offset 399226879",
        "/srv/app1/s.bin: Invalid file size for /srv/app1/s.bin: expected 400000000, got 1000",
    ]
    assert shared.restore_problems("Fatal: unable to open config file\n", target) == []
    assert shared.restore_problems(None, target) == []
