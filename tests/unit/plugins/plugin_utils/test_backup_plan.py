# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup role's plan (keepdata.storage.backup_plan, backup_secrets, backup_bucket_problems) with the role's defaults."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.keepdata.storage.plugins.module_utils.backup import shared
from ansible_collections.keepdata.storage.plugins.plugin_utils import backup_plan as bp
from ansible_collections.keepdata.storage.plugins.plugin_utils.backup_plan import backup_bucket_problems, backup_plan, backup_secrets

ROOT = Path(__file__).resolve().parents[4]
DEFAULTS = {k[len("backup_") :]: v for k, v in yaml.safe_load((ROOT / "roles/backup/defaults/main.yml").read_text()).items()}
PASSWORD = "main-Pass-word-42"  # noqa: S105 - test values, not passwords
RECOVERY = "Second-Key-phrase-77"
ACCESS = "AKIAEXAMPLEKEY0001"
SECRET = "s3cretKeyValue/With+Slash=="  # noqa: S105 - test values, not passwords
SECRETS = (PASSWORD, RECOVERY, ACCESS, SECRET)
S3 = dict(
    DEFAULTS,
    password=PASSWORD,
    recovery_password=RECOVERY,
    s3_bucket="kd-backups",
    s3_prefix="restic/web1",
    s3_endpoint="http://127.0.0.1:7496",
    s3_access_key=ACCESS,
    s3_secret_key=SECRET,
    host_name="web1",
    jobs=[{"name": "app1", "paths": ["/srv/app1"]}],
)
PATH = dict(DEFAULTS, password=PASSWORD, target="path", path="/mnt/backup/restic/", host_name="web1", jobs=[{"name": "app1", "paths": ["/srv/app1/"]}])
URL = "s3:http://127.0.0.1:7496/kd-backups/restic/web1"
CFG = "/etc/keepdata/backup"
EMPTY_SECRETS = dict.fromkeys(("password", "recovery_password", "access_key", "secret_key", "bucket_access_key", "bucket_secret_key"), "")


def keys(password, recovery, access, secret):
    """backup_secrets' answer outside append-only mode: the controller uses the host's keys for the bucket."""
    return dict(password=password, recovery_password=recovery, access_key=access, secret_key=secret, bucket_access_key=access, bucket_secret_key=secret)


def job(**extra):
    return dict({"name": "app", "paths": ["/srv/app"]}, **extra)


def plan(base=None, **settings):
    return backup_plan(dict(S3 if base is None else base, **settings))


def errors(base=None, **settings):
    return plan(base, **settings)["errors"]


def test_s3_repository_job_and_probe():
    result = plan(jobs=[job(name="app1", paths=["/srv/app1"], databases=[{"type": "sqlite", "path": "/srv/app1/db.sqlite3"}])])
    assert result["errors"] == [] and result["warnings"] == []
    repository = result["repository"]
    assert repository["url"] == URL
    assert repository["options"] == ["s3.bucket-lookup=path", "s3.connections=5"]
    assert (repository["bucket"], repository["prefix"], repository["endpoint"], repository["address"]) == (
        "kd-backups",
        "restic/web1",
        "http://127.0.0.1:7496",
        "127.0.0.1:7496",
    )
    [app] = result["jobs"]
    assert app["repository"] == URL
    assert app["restic_options"] == ["-o", "s3.bucket-lookup=path", "-o", "s3.connections=5"]
    assert re.fullmatch(r"[0-9a-f]{12}", app["repository_id"])
    assert app["repository_id"] == hashlib.sha256(URL.encode()).hexdigest()[:12]
    assert (app["password_file"], app["s3_credentials_file"]) == (CFG + "/repository.password", CFG + "/s3.credentials")
    assert app["dump_dir"] == "/var/lib/keepdata/backup/dumps/app1"
    assert app["host"] == "web1" and app["mount_point"] == ""
    assert app["databases"] == [{"type": "sqlite", "name": "db", "path": "/srv/app1/db.sqlite3"}]
    assert app["retention"] == {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 0, "keep_yearly": 0, "keep_within": ""}
    assert app["tag_rules"] == [{"tag": "pre-update", "within": "21d"}]
    assert (app["enabled"], app["schedule"], app["randomized_delay"]) == (True, "daily", "30min")
    assert result["probe"] == {
        "paths": [{"option": "backup_jobs[app1].paths", "path": "/srv/app1"}],
        "sqlite_paths": [{"option": "backup_jobs[app1].databases[db].path", "path": "/srv/app1/db.sqlite3"}],
        "repository_path": "",
        "mount_repository": False,
        "schedules": [
            {"option": "backup_jobs[app1].schedule", "value": "daily"},
            {"option": "backup_forget_schedule", "value": "*-*-* 05:00"},
            {"option": "backup_drill_schedule", "value": "Sun *-*-* 06:00"},
        ],
        "packages": ["restic"],
        "ports": ["127.0.0.1:7496"],
        "textfile_dir": "",
        "allow_same_device": False,
        "timeout": 5,
    }
    assert result["host"] == {"config_dir": "/etc/keepdata/backup", "metrics_dir": "/var/lib/prometheus/node-exporter", "apt_cache_valid_time": 3600}
    assert result["bucket"] == {
        "name": "kd-backups",
        "prefix": "restic/web1",
        "endpoint": "http://127.0.0.1:7496",
        "path_style": True,
        "create": False,
        "append_only": False,
        "versioning": "",
        "policy_preset": "",
        "principals": [],
    }
    assert result["service"]["runner"] == "/usr/local/lib/keepdata/backup_runner.py"
    assert (result["service"]["drill_enabled"], result["service"]["drill_schedule"]) == (True, "Sun *-*-* 06:00")
    assert app["drill"] == {"sample_files": 20, "sample_percent": 0, "check_subsets": 12}
    assert app["services"] == []
    assert (result["service"]["nice"], result["service"]["memory_max"], result["service"]["retry_delay"]) == (15, "2G", "15min")


def test_repository_id_is_stable_and_follows_the_url():
    first = plan()["jobs"][0]["repository_id"]
    assert plan()["jobs"][0]["repository_id"] == first
    assert plan(jobs=[job(name="other", paths=["/srv/other"])])["jobs"][0]["repository_id"] == first
    assert plan(s3_prefix="restic/web2")["jobs"][0]["repository_id"] != first


def test_path_repository():
    result = plan(PATH, jobs=[job(name="app1", paths=["/srv/app1/"], schedule="*-*-* 03:00", enabled=False)], forget_schedule="Sun 04:00", drill_enabled=False)
    assert result["errors"] == []
    assert result["repository"]["url"] == "/mnt/backup/restic" and result["repository"]["options"] == []
    [app] = result["jobs"]
    assert app["repository"] == "/mnt/backup/restic" and app["restic_options"] == []
    assert app["paths"] == ["/srv/app1"]
    assert (app["password_file"], app["s3_credentials_file"]) == (CFG + "/repository.password", "")
    assert app["enabled"] is False
    assert result["probe"]["repository_path"] == "/mnt/backup/restic"
    assert result["probe"]["ports"] == []
    assert result["probe"]["schedules"] == [
        {"option": "backup_jobs[app1].schedule", "value": "*-*-* 03:00"},
        {"option": "backup_forget_schedule", "value": "Sun 04:00"},
    ]
    assert result["bucket"] == {}
    assert backup_secrets(dict(PATH)) == dict(EMPTY_SECRETS, password=PASSWORD)


def test_bucket_lookup_follows_the_cellar_modules_rule():
    cellar = plan(s3_endpoint="cellar-c2.services.clever-cloud.com", s3_prefix="restic")
    assert cellar["repository"]["url"] == "s3:https://cellar-c2.services.clever-cloud.com/kd-backups/restic"
    assert cellar["repository"]["options"][0] == "s3.bucket-lookup=dns"
    assert cellar["probe"]["ports"] == ["cellar-c2.services.clever-cloud.com:443"]
    assert cellar["bucket"]["path_style"] is False
    assert plan(s3_endpoint="cellar-c2.services.clever-cloud.com", s3_bucket="media.example.com")["repository"]["options"][0] == "s3.bucket-lookup=path"
    assert plan(s3_endpoint="localhost:7480")["repository"]["options"][0] == "s3.bucket-lookup=path"
    assert plan(s3_path_style="false")["repository"]["options"][0] == "s3.bucket-lookup=dns"
    assert plan(s3_endpoint="s3.example.com", s3_path_style="true")["repository"]["options"][0] == "s3.bucket-lookup=path"
    # A YAML boolean (backup_s3_path_style: false) means false, not auto.
    assert plan(s3_path_style=False)["repository"]["options"][0] == "s3.bucket-lookup=dns"
    assert plan(s3_endpoint="s3.example.com", s3_path_style=True)["repository"]["options"][0] == "s3.bucket-lookup=path"
    assert plan(s3_connections="8")["repository"]["options"][1] == "s3.connections=8"
    assert plan(s3_prefix="")["repository"]["url"] == "s3:http://127.0.0.1:7496/kd-backups"
    assert plan(s3_prefix="/restic/web1/")["repository"]["url"] == URL


def test_cellar_env_precedence():
    env = {"host": "http://127.0.0.1:7480", "key_id": "ENVKEYID", "key_secret": "ENV-secret"}
    from_env = dict(S3, s3_endpoint="cellar-c2.services.clever-cloud.com", s3_access_key="", s3_secret_key="", from_cellar_env=True, env=env)
    result = backup_plan(from_env)
    assert result["errors"] == []
    # CELLAR_ADDON_HOST names the cluster the keys belong to: it wins over backup_s3_endpoint.
    assert result["repository"]["url"] == "s3:http://127.0.0.1:7480/kd-backups/restic/web1"
    assert result["bucket"]["endpoint"] == "http://127.0.0.1:7480"
    assert backup_secrets(from_env) == keys(PASSWORD, RECOVERY, "ENVKEYID", "ENV-secret")
    # Keys set as variables win over the environment's.
    assert backup_secrets(dict(from_env, s3_access_key=ACCESS, s3_secret_key=SECRET))["access_key"] == ACCESS
    assert backup_secrets(dict(from_env, s3_access_key=ACCESS, s3_secret_key=SECRET))["secret_key"] == SECRET
    # No CELLAR_ADDON_HOST: backup_s3_endpoint stays.
    without_host = dict(from_env, env=dict(env, host=""))
    assert backup_plan(without_host)["repository"]["url"] == "s3:https://cellar-c2.services.clever-cloud.com/kd-backups/restic/web1"
    # Without from_cellar_env the environment is ignored.
    assert backup_plan(dict(S3, env=env))["repository"]["url"] == URL
    assert backup_secrets(dict(S3, env=env))["access_key"] == ACCESS
    assert "are not in the controller environment" in backup_plan(dict(from_env, env={}))["errors"][0]
    assert "ENV-secret" not in json.dumps(result)


def test_cellar_env_without_keys():
    from_env = dict(S3, s3_access_key="", s3_secret_key="", from_cellar_env=True, env={"host": "", "key_id": "", "key_secret": ""})
    result = backup_plan(from_env)
    assert result["errors"] == [
        "backup_from_cellar_env is set but CELLAR_ADDON_KEY_ID / CELLAR_ADDON_KEY_SECRET are not in the controller environment "
        "(nor a credentials file in AWS_SHARED_CREDENTIALS_FILE)",
        "no S3 credentials: set backup_s3_access_key and backup_s3_secret_key, or backup_from_cellar_env",
    ]
    assert backup_secrets(from_env) == EMPTY_SECRETS
    # Keys as variables are enough, with or without the environment's.
    assert backup_plan(dict(from_env, s3_access_key=ACCESS, s3_secret_key=SECRET))["errors"] == []


def test_backup_secrets():
    assert backup_secrets(dict(S3)) == keys(PASSWORD, RECOVERY, ACCESS, SECRET)
    assert backup_secrets(dict(S3, s3_bucket="Bad_Bucket")) == EMPTY_SECRETS


def test_plain_http_warning_only_off_loopback():
    warning = "backup_s3_endpoint uses plain http: restic encrypts the data, but the S3 keys travel in clear"
    assert plan(s3_endpoint="http://s3.example.com:7480")["warnings"] == [warning]
    assert plan(s3_endpoint="http://localhost:7480")["warnings"] == []
    assert plan(s3_endpoint="http://[::1]:7480")["warnings"] == []
    assert plan(s3_endpoint="https://s3.example.com")["warnings"] == []
    assert plan(PATH)["warnings"] == []


def test_probe_request_follows_the_switches():
    assert plan(manage_packages=False)["probe"]["packages"] == []
    assert plan(preflight=False)["probe"]["ports"] == []
    assert plan(create_bucket=True)["bucket"]["create"] is True


def test_held_timers_let_a_rebuilt_host_lack_its_data_until_the_restore():
    """backup_arm_timers false (playbooks/recover.yml): the probe does not ask for the paths nor the SQLite files."""
    jobs = [job(name="app1", paths=["/srv/app1"], databases=[{"type": "sqlite", "name": "main", "path": "/srv/app1/main.db"}])]
    armed, held = plan(jobs=jobs), plan(jobs=jobs, arm_timers=False)
    assert armed["service"]["arm_timers"] is True and held["service"]["arm_timers"] is False
    assert [p["path"] for p in armed["probe"]["paths"]] == ["/srv/app1"] and armed["probe"]["sqlite_paths"]
    assert held["probe"]["paths"] == [] and held["probe"]["sqlite_paths"] == []
    assert plan(jobs=jobs, arm_timers="false")["service"]["arm_timers"] is False
    assert errors(arm_timers="perhaps") == ["backup_arm_timers must be true or false (yes/no), not a string"]


def test_job_values_and_role_defaults():
    result = plan(
        jobs=[
            job(
                name="app1",
                paths=["/srv/app1"],
                excludes=["*.tmp", "/srv/app1/cache"],
                tags=["app1", "v=2"],
                keep_daily=0,
                keep_weekly=0,
                keep_within="1y6m",
                keep_tags=[],
                pre_hooks="systemctl stop app1\nsync",
                databases=[
                    {"type": "postgresql", "database": "app", "options": ["--no-owner"]},
                    {"type": "mysql", "name": "shop", "database": "shop", "defaults_file": "/root/.my.cnf"},
                ],
            ),
            job(name="db-only", paths=[], databases=[{"type": "sqlite", "name": "main", "path": "/srv/db/main.db"}], randomized_delay="0"),
        ],
        limit_upload="1024",
        compression="max",
        notify_command="mail -s backup root",
        metrics_dir="",
        config_dir="/etc/kd/",
        state_dir="/var/lib/kd",
    )
    assert result["errors"] == []
    app, db_only = result["jobs"]
    assert app["excludes"] == ["*.tmp", "/srv/app1/cache"] and app["tags"] == ["app1", "v=2"]
    assert app["retention"] == {"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0, "keep_yearly": 0, "keep_within": "1y6m"}
    assert app["tag_rules"] == []
    assert app["pre_hooks"] == ["systemctl stop app1", "sync"]
    assert app["databases"] == [
        {"type": "postgresql", "name": "app", "database": "app", "options": ["--no-owner"], "user": "postgres"},
        {"type": "mysql", "name": "shop", "database": "shop", "options": [], "defaults_file": "/root/.my.cnf"},
    ]
    assert (app["limit_upload"], app["compression"], app["notify_command"], app["metrics_dir"]) == (1024, "max", "mail -s backup root", "")
    assert (app["password_file"], app["s3_credentials_file"]) == ("/etc/kd/repository.password", "/etc/kd/s3.credentials")
    assert (app["state_dir"], app["dump_dir"]) == ("/var/lib/kd", "/var/lib/kd/dumps/app1")
    assert db_only["paths"] == [] and db_only["randomized_delay"] == "0"
    assert [p["path"] for p in result["probe"]["paths"]] == ["/srv/app1"]


@pytest.mark.parametrize(
    ("sample", "expect"),
    [
        ("20", (20, 0)),
        (20, (20, 0)),
        ("1", (1, 0)),
        (100000, (100000, 0)),
        ("5%", (0, 5.0)),
        ("0.5%", (0, 0.5)),
        ("12.25%", (0, 12.25)),
        ("100%", (0, 100.0)),
        ("100.0%", (0, 100.0)),
    ],
)
def test_drill_sample_is_a_count_or_a_share(sample, expect):
    result = plan(drill_sample=sample)
    assert result["errors"] == []
    drill = result["jobs"][0]["drill"]
    assert (drill["sample_files"], drill["sample_percent"]) == expect
    assert isinstance(drill["sample_files"], int) and isinstance(drill["sample_percent"], (int, float))


def test_the_secrets_come_with_flags_given_as_words():
    # -e backup_mount_repository=true gives a string: the plan takes it, so the secrets must come too.
    settings = dict(S3, mount_repository="true", prune="no")
    assert backup_plan(settings)["errors"] == []
    assert backup_secrets(settings)["password"] == PASSWORD


@pytest.mark.parametrize("word", ["no", "No", "false", "off", "0", 0, "n"])
def test_a_flag_given_as_a_word_is_read_as_ansible_reads_it(word):
    # As -e backup_prune=false gives it: a string, which Python alone would take for true.
    result = plan(prune=word, repository_check=word, drill_enabled=word, manage_packages=word, preflight=word, create_bucket="yes")
    assert result["errors"] == []
    assert [(j["prune"], j["check_structure"]) for j in result["jobs"]] == [(False, False)]
    assert result["service"]["drill_enabled"] is False
    assert result["probe"]["packages"] == [] and result["probe"]["ports"] == []
    assert result["bucket"]["create"] is True


def test_only_the_first_job_checks_the_repository():
    jobs = [job(name="first", paths=["/srv/a"]), job(name="second", paths=["/srv/b"], enabled=False), job(name="third", paths=["/srv/c"])]
    result = plan(jobs=jobs, drill_check_subsets="30", drill_sample="2.5%")
    assert result["errors"] == []
    assert [j["drill"] for j in result["jobs"]] == [
        {"sample_files": 0, "sample_percent": 2.5, "check_subsets": 30},
        {"sample_files": 0, "sample_percent": 2.5, "check_subsets": 0},
        {"sample_files": 0, "sample_percent": 2.5, "check_subsets": 0},
    ]
    # The first job in the list, whatever its name or state.
    assert [j["drill"]["check_subsets"] for j in plan(jobs=list(reversed(jobs)))["jobs"]] == [12, 0, 0]
    # The same job checks the repository's structure after its retention runs, unless switched off.
    assert [j["check_structure"] for j in result["jobs"]] == [True, False, False]
    assert [j["check_structure"] for j in plan(jobs=jobs, repository_check=False)["jobs"]] == [False, False, False]


def test_drills_switched_off():
    result = plan(drill_enabled=False, drill_schedule="weekly")
    assert result["errors"] == []
    assert (result["service"]["drill_enabled"], result["service"]["drill_schedule"]) == (False, "")
    assert [s["option"] for s in result["probe"]["schedules"]] == ["backup_jobs[app1].schedule", "backup_forget_schedule"]
    assert plan(drill_schedule="Mon,Thu *-*-* 02:30")["probe"]["schedules"][-1] == {"option": "backup_drill_schedule", "value": "Mon,Thu *-*-* 02:30"}


def test_services_are_unit_names_with_their_suffix():
    services = ["nginx", "app.service", "php8.2-fpm", "docker.socket", "srv-data.mount", "getty@tty1", "user@1000.service", "a:b_c"]
    result = plan(jobs=[job(services=services)])
    assert result["errors"] == []
    assert result["jobs"][0]["services"] == [
        "nginx.service",
        "app.service",
        "php8.2-fpm.service",
        "docker.socket",
        "srv-data.mount",
        "getty@tty1.service",
        "user@1000.service",
        "a:b_c.service",
    ]
    # One name as a string, as for the other lists; the longest name systemd takes.
    assert plan(jobs=[job(services="nginx")])["jobs"][0]["services"] == ["nginx.service"]
    assert plan(jobs=[job(services=["a" * 247])])["jobs"][0]["services"] == ["a" * 247 + ".service"]
    assert plan(jobs=[job(services=["a" * 249 + ".mount"])])["jobs"][0]["services"] == ["a" * 249 + ".mount"]


def test_the_rules_are_the_runners():
    assert (bp.JOB_NAME, bp.TAG, bp.DUMP_NAME, bp.JOB_TAG) == (shared.JOB_NAME, shared.TAG, shared.DUMP_NAME, shared.JOB_TAG)
    # What the plan accepts, the runner accepts: the longest dump name and tag.
    longest = plan(jobs=[job(tags=["t" * 64], databases=[{"type": "sqlite", "name": "d" * 64, "path": "/srv/x.db"}])])
    assert longest["errors"] == []
    assert shared.dump_file_name(longest["jobs"][0]["databases"][0]) == "d" * 64 + ".sqlite3"
    assert shared.hand_tag("t" * 64) == "t" * 64
    assert "must be a dump name" in errors(jobs=[job(databases=[{"type": "sqlite", "name": "d" * 65, "path": "/srv/x.db"}])])[0]
    with pytest.raises(shared.JobError):
        shared.dump_file_name({"type": "sqlite", "name": "d" * 65})


def test_a_database_without_paths_is_a_job():
    assert errors(jobs=[job(paths=[], databases=[{"type": "sqlite", "path": "/srv/db.sqlite"}])]) == []


BAD = [
    # (settings overrides, part of the one expected error)
    ({"jobs": [job(path="/srv")]}, "backup_jobs[0]: unknown option(s) path (known: "),
    ({"jobs": [job(keep_daily=-1)]}, "backup_jobs[app].keep_daily must be between 0 and 100000 (got -1)"),
    ({"jobs": [job(keep_weekly=True)]}, "backup_jobs[app].keep_weekly must be a whole number"),
    ({"keep_monthly": True}, "backup_keep_monthly must be a whole number"),
    ({"keep_yearly": "1.5"}, "backup_keep_yearly must be a whole number"),
    ({"jobs": [job(paths=[])]}, "backup_jobs[app].paths must list at least one absolute path"),
    ({"jobs": [job(paths=["srv/app"])]}, 'backup_jobs[app].paths "srv/app" must be an absolute path other than /'),
    ({"jobs": [job(paths=["/"])]}, 'backup_jobs[app].paths "/" must be an absolute path other than /'),
    ({"jobs": [job(paths=["/srv/../etc"])]}, 'backup_jobs[app].paths "/srv/../etc" must be an absolute path'),
    ({"jobs": [job(paths=["/srv/a\nb"])]}, "backup_jobs[app].paths[0] must not contain control characters"),
    ({"jobs": [job(excludes=["*.tmp\t"])]}, "backup_jobs[app].excludes[0] must not contain control characters"),
    ({"password": PASSWORD + "\n"}, "backup_password must not contain control characters"),
    ({"recovery_password": "\x7f" + RECOVERY}, "backup_recovery_password must not contain control characters"),
    ({"s3_access_key": ACCESS + "\r"}, "backup_s3_access_key must not contain control characters"),
    ({"s3_secret_key": SECRET + "\x00"}, "backup_s3_secret_key must not contain control characters"),
    ({"s3_bucket": "kd\tbackups"}, "backup_s3_bucket must not contain control characters"),
    ({"host_name": "web1\n"}, "backup_host_name must not contain control characters"),
    ({"notify_command": "mail\nroot"}, "backup_notify_command must not contain control characters"),
    (
        {"from_cellar_env": True, "s3_access_key": "", "s3_secret_key": "", "env": {"key_id": "K", "key_secret": SECRET + "\n"}},
        "environment CELLAR_ADDON_KEY_SECRET must not contain control characters",
    ),
    (
        {"target": "path", "path": "/srv", "jobs": [job(paths=["/srv/app"])]},
        'backup_jobs[app].paths "/srv/app" and backup_path "/srv" must not contain one another',
    ),
    ({"target": "path", "path": "/srv/app/restic", "jobs": [job(paths=["/srv/app"])]}, 'and backup_path "/srv/app/restic" must not contain one another'),
    ({"target": "path", "path": "/srv/app", "jobs": [job(paths=["/srv/app/"])]}, 'and backup_path "/srv/app" must not contain one another'),
    ({"target": "path", "path": "backups"}, 'backup_path "backups" must be an absolute path other than /'),
    ({"target": "path", "path": "/"}, 'backup_path "" must be an absolute path other than /'),
    ({"target": "nfs"}, 'backup_target "nfs" must be s3 or path'),
    ({"s3_bucket": "kd_backups"}, 'backup_s3_bucket "kd_backups" is not a valid S3 bucket name'),
    ({"s3_bucket": ""}, 'backup_s3_bucket "" is not a valid S3 bucket name: bucket name must not be empty'),
    ({"s3_prefix": "../x"}, 'backup_s3_prefix "../x" must be a relative path'),
    ({"s3_prefix": "a b"}, 'backup_s3_prefix "a b" must be a relative path'),
    ({"s3_endpoint": "ftp://s3.example.com"}, 'backup_s3_endpoint "ftp://s3.example.com" must be a host, host:port or http(s)://host[:port]'),
    ({"s3_endpoint": "https://s3.example.com/bucket"}, "must be a host, host:port or http(s)://host[:port]"),
    ({"s3_endpoint": ""}, 'backup_s3_endpoint "" must be a host'),
    ({"s3_path_style": "maybe"}, "backup_s3_path_style must be auto, true or false"),
    ({"s3_connections": 0}, "backup_s3_connections must be between 1 and 64 (got 0)"),
    ({"s3_access_key": ""}, "no S3 credentials: set backup_s3_access_key and backup_s3_secret_key, or backup_from_cellar_env"),
    ({"s3_secret_key": None}, "no S3 credentials"),
    ({"retry_delay": "1s"}, 'backup_retry_delay "1s" must be a systemd time span of at least 60s'),
    ({"retry_delay": "59"}, 'backup_retry_delay "59" must be a systemd time span of at least 60s'),
    ({"retry_delay": "1min\n"}, "backup_retry_delay must not contain control characters"),
    ({"repository_timeout": "4s"}, 'backup_repository_timeout "4s" must be a systemd time span of at least 5s'),
    ({"repository_timeout": "5min\t"}, "backup_repository_timeout must not contain control characters"),
    # A YAML type a user can get wrong is refused by name.
    ({"notify_command": {"mail": "ops"}}, "backup_notify_command must be a shell command (a string) or an argument list (a list of strings), not a mapping"),
    ({"notify_command": True}, "backup_notify_command must be a shell command (a string) or an argument list (a list of strings), not a boolean"),
    ({"notify_command": []}, "backup_notify_command given as a list must hold the program and its arguments"),
    ({"notify_command": ["mail", ""]}, "backup_notify_command[1] must be a non-empty string"),
    ({"notify_command": ["mail", "-s", "a\nb"]}, "backup_notify_command[2] must not contain control characters"),
    ({"notify_command": ["mail", ["x"]]}, "backup_notify_command[1] must be a non-empty string"),
    ({"password": ["correct", "horse battery staple"]}, "backup_password must be a string, not a list (quote it in YAML)"),
    ({"password": 123456789012345}, "backup_password must be a string, not a number (quote it in YAML)"),
    ({"s3_secret_key": {"k": "v"}}, "backup_s3_secret_key must be a string, not a mapping (quote it in YAML)"),
    ({"s3_bucket": ["kd-backups"]}, "backup_s3_bucket must be a string, not a list"),
    ({"host_name": ["web1"]}, "backup_host_name must be a string, not a list"),
    ({"retry_delay": ["15min"]}, "backup_retry_delay must be a string, not a list"),
    ({"repository_timeout": {"minutes": 5}}, "backup_repository_timeout must be a string, not a mapping"),
    ({"timeout": True}, "backup_timeout must be a string, not a boolean"),
    ({"schedule": {"daily": 1}}, "backup_schedule must be a string, not a mapping"),
    ({"path": ["/mnt/backup"]}, "backup_path must be a string, not a list"),
    ({"jobs": [job(paths=["/srv//app"])]}, 'backup_jobs[app].paths "/srv//app" must be an absolute path other than /, without . or .. or //'),
    ({"jobs": [job(paths=["/srv/./app"])]}, 'backup_jobs[app].paths "/srv/./app" must be an absolute path other than /, without . or .. or //'),
    ({"jobs": [job(databases=[{"type": "sqlite", "path": "db.sqlite3"}])]}, 'backup_jobs[app].databases[0].path "db.sqlite3" must be an absolute path'),
    ({"jobs": [job(schedule="daily; rm -rf /")]}, 'backup_jobs[app].schedule "daily; rm -rf /" must be an OnCalendar expression'),
    ({"jobs": [job(schedule="daily\n")]}, 'backup_jobs[app].schedule "?" must be an OnCalendar expression'),
    ({"schedule": "$(reboot)"}, 'backup_jobs[app1].schedule "$(reboot)" must be an OnCalendar expression'),
    ({"forget_schedule": "05:00;x"}, "backup_forget_schedule must be an OnCalendar expression such as *-*-* 05:00"),
    ({"jobs": [job(randomized_delay="soon")]}, 'backup_jobs[app].randomized_delay "soon" must be a time span such as 30min'),
    ({"password": ""}, "backup_password is required (no default)"),
    ({"password": None}, "backup_password is required (no default)"),
    ({"password": "short-pw"}, "backup_password must be at least 12 characters long"),
    ({"recovery_password": PASSWORD}, "backup_recovery_password must differ from backup_password"),
    ({"jobs": [job(name="App")]}, "backup_jobs[0].name must be 1 to 40 lowercase letters, digits, _ or - (starting with a letter or digit)"),
    ({"jobs": [job(name="-app")]}, "backup_jobs[0].name must be 1 to 40 lowercase letters"),
    ({"jobs": [job(name="a" * 41)]}, "backup_jobs[0].name must be 1 to 40 lowercase letters"),
    ({"jobs": [job(name="app\n")]}, "backup_jobs[0].name must be 1 to 40 lowercase letters"),
    ({"jobs": [job(name=None)]}, "backup_jobs[0].name must be 1 to 40 lowercase letters"),
    ({"jobs": [job(), job(paths=["/srv/other"])]}, 'backup_jobs: job name "app" is used twice'),
    ({"jobs": [job(name="app-forget")]}, 'backup_jobs[0].name "app-forget" must not end in -forget, -retry or -drill'),
    ({"jobs": [job(name="app-retry")]}, 'backup_jobs[0].name "app-retry" must not end in -forget, -retry or -drill'),
    ({"jobs": [job(name="app-drill")]}, 'backup_jobs[0].name "app-drill" must not end in -forget, -retry or -drill (the names of every job\'s own units)'),
    ({"jobs": [job(name="failed")]}, 'backup_jobs[0].name "failed" is the name of the failure handler\'s units (keepdata-backup-failed@.service)'),
    # A flag that is no boolean as Ansible reads one is refused, never taken for yes.
    ({"drill_enabled": "sometimes"}, "backup_drill_enabled must be true or false (yes/no), not a string"),
    ({"prune": "nope"}, "backup_prune must be true or false (yes/no), not a string"),
    ({"create_bucket": 2}, "backup_create_bucket must be true or false (yes/no), not a number"),
    ({"manage_packages": ["restic"]}, "backup_manage_packages must be true or false (yes/no), not a list"),
    ({"preflight": {"on": True}}, "backup_preflight must be true or false (yes/no), not a mapping"),
    ({"drill_schedule": "Sun; reboot"}, 'backup_drill_schedule "Sun; reboot" must be an OnCalendar expression such as Sun *-*-* 06:00'),
    ({"drill_schedule": "Sun\n06:00"}, "backup_drill_schedule must not contain control characters"),
    ({"drill_sample": "0"}, 'backup_drill_sample "0" must be a number of files from 1 to 100000, or a share of the snapshot\'s bytes above 0% and up to 100%'),
    ({"drill_sample": 100001}, 'backup_drill_sample "100001" must be a number of files from 1 to 100000'),
    ({"drill_sample": -5}, 'backup_drill_sample "-5" must be a number of files'),
    ({"drill_sample": "0%"}, 'backup_drill_sample "0%" must be a number of files'),
    ({"drill_sample": "0.0%"}, 'backup_drill_sample "0.0%" must be a number of files'),
    ({"drill_sample": "100.5%"}, 'backup_drill_sample "100.5%" must be a number of files'),
    ({"drill_sample": "5 %"}, 'backup_drill_sample "5 %" must be a number of files'),
    ({"drill_sample": ".5%"}, 'backup_drill_sample ".5%" must be a number of files'),
    ({"drill_sample": "ten"}, 'backup_drill_sample "ten" must be a number of files'),
    ({"drill_sample": 2.5}, 'backup_drill_sample "2.5" must be a number of files'),
    ({"drill_sample": True}, "backup_drill_sample must be a string, not a boolean"),
    ({"drill_sample": None}, 'backup_drill_sample "" must be a number of files'),
    ({"drill_sample": "5%\n"}, "backup_drill_sample must not contain control characters"),
    ({"drill_check_subsets": 0}, "backup_drill_check_subsets must be between 1 and 10000 (got 0)"),
    ({"drill_check_subsets": 10001}, "backup_drill_check_subsets must be between 1 and 10000 (got 10001)"),
    ({"drill_check_subsets": "twelve"}, "backup_drill_check_subsets must be a whole number"),
    ({"jobs": [job(services=["nginx", "bad unit"])]}, 'backup_jobs[app].services[1] "bad unit" must be a systemd unit name (letters, digits and : _ . @ -)'),
    ({"jobs": [job(services=["nginx;reboot"])]}, 'backup_jobs[app].services[0] "nginx;reboot" must be a systemd unit name'),
    ({"jobs": [job(services=["-nginx"])]}, 'backup_jobs[app].services[0] "-nginx" must be a systemd unit name'),
    ({"jobs": [job(services=["../nginx"])]}, 'backup_jobs[app].services[0] "../nginx" must be a systemd unit name'),
    ({"jobs": [job(services=["nginx\n"])]}, "backup_jobs[app].services[0] must not contain control characters"),
    ({"jobs": [job(services=["ok", "a\tb"])]}, "backup_jobs[app].services[1] must not contain control characters"),
    ({"jobs": [job(services=[""])]}, "backup_jobs[app].services[0] must be a non-empty string"),
    ({"jobs": [job(services=[["nginx"]])]}, "backup_jobs[app].services[0] must be a non-empty string"),
    ({"jobs": [job(services=["a" * 248])]}, "must be at most 255 characters long with its suffix"),
    ({"jobs": [job(services=["a" * 256])]}, "must be a systemd unit name"),
    ({"jobs": [job(services=["getty@.service"])]}, 'backup_jobs[app].services[0] "getty@.service" is a template: name an instance'),
    ({"jobs": [job(services=["getty@"])]}, 'backup_jobs[app].services[0] "getty@" is a template'),
    ({"jobs": [job(services=["nginx", "nginx.service"])]}, 'backup_jobs[app].services[1] "nginx.service" is listed twice'),
    ({"jobs": [job(tags=["a b"])]}, 'backup_jobs[app].tags[0] "a b" must be a tag'),
    ({"jobs": [job(tags=["ok", ""])]}, "backup_jobs[app].tags[1] must be a non-empty string"),
    ({"jobs": [job(tags=["keepdata-job=other"])]}, "backup_jobs[app].tags: keepdata-job=... is set by the role"),
    ({"jobs": [job(keep_within="30 days")]}, 'backup_jobs[app].keep_within "30 days" must be a restic duration'),
    ({"keep_within": "2w"}, 'backup_keep_within "2w" must be a restic duration such as 30d, 2m or 1y6m'),
    ({"jobs": [job(keep_daily=0, keep_weekly=0)]}, "backup_jobs[app] has no retention rule"),
    ({"keep_daily": 0, "keep_weekly": "0"}, "backup_jobs[app1] has no retention rule"),
    ({"keep_tags": [{"tag": "pre update", "within": "21d"}]}, 'backup_keep_tags[0].tag "pre update" must be a tag'),
    ({"keep_tags": [{"tag": "keepdata-job=app", "within": "21d"}]}, 'backup_keep_tags[0].tag "keepdata-job=app" must be a tag'),
    ({"jobs": [job(keep_tags=[{"tag": "pre-update", "within": "3 weeks"}])]}, 'backup_jobs[app].keep_tags[0].within "3 weeks" must be a restic duration'),
    ({"keep_tags": ["pre-update"]}, "backup_keep_tags[0] must be a mapping with tag and within"),
    ({"keep_tags": [{"tag": "t", "within": "1d", "keep": 1}]}, "backup_keep_tags[0] must be a mapping with tag and within"),
    ({"jobs": [job(databases=[{"type": "redis"}])]}, "backup_jobs[app].databases[0].type must be sqlite, postgresql or mysql"),
    ({"jobs": [job(databases=["app.sqlite"])]}, "backup_jobs[app].databases[0].type must be sqlite, postgresql or mysql"),
    (
        {"jobs": [job(databases=[{"type": "sqlite", "path": "/srv/a.db", "user": "x"}])]},
        "backup_jobs[app].databases[0]: unknown option(s) user for a sqlite dump",
    ),
    ({"jobs": [job(databases=[{"type": "mysql", "database": "x", "user": "root"}])]}, "unknown option(s) user for a mysql dump"),
    ({"jobs": [job(databases=[{"type": "sqlite", "name": "a b", "path": "/srv/a.db"}])]}, 'backup_jobs[app].databases[0].name "a b" must be a dump name'),
    ({"jobs": [job(databases=[{"type": "sqlite", "path": "db.sqlite"}])]}, 'backup_jobs[app].databases[0].path "db.sqlite" must be an absolute path'),
    ({"jobs": [job(databases=[{"type": "sqlite", "path": "/srv/a\n.db"}])]}, "backup_jobs[app].databases[0].path must not contain control characters"),
    (
        {"jobs": [job(databases=[{"type": "sqlite", "path": "/srv/a/app.db"}, {"type": "sqlite", "path": "/srv/b/app.db"}])]},
        'backup_jobs[app].databases[1].name "app" is used twice in this job',
    ),
    (
        {"jobs": [job(databases=[{"type": "postgresql", "name": "app", "database": "app;drop"}])]},
        'backup_jobs[app].databases[0].database "app;drop" must be a database name',
    ),
    (
        {"jobs": [job(databases=[{"type": "postgresql", "database": "app", "user": "Bad User"}])]},
        'backup_jobs[app].databases[0].user "Bad User" must be a user name',
    ),
    (
        {"jobs": [job(databases=[{"type": "postgresql", "database": "app", "options": ["--password=" + PASSWORD]}])]},
        "backup_jobs[app].databases[0].options: a password option would show in the process list",
    ),
    (
        {"jobs": [job(databases=[{"type": "mysql", "database": "app", "options": ["--password=" + SECRET]}])]},
        "backup_jobs[app].databases[0].options: a password option would show in the process list",
    ),
    (
        {"jobs": [job(databases=[{"type": "mysql", "database": "app", "options": ["--single-transaction", "; rm -rf /"]}])]},
        "backup_jobs[app].databases[0].options[1] must be one command-line option such as --no-owner (its value is not shown)",
    ),
    (
        {"jobs": [job(databases=[{"type": "mysql", "database": "app", "options": ["--quick\n"]}])]},
        "backup_jobs[app].databases[0].options[0] must not contain control",
    ),
    (
        {"jobs": [job(databases=[{"type": "mysql", "database": "app", "defaults_file": "my.cnf"}])]},
        'backup_jobs[app].databases[0].defaults_file "my.cnf" must be an absolute path',
    ),
    ({"jobs": [job(pre_hooks=[""])]}, "backup_jobs[app].pre_hooks[0] must be a non-empty string"),
    ({"jobs": [job(post_hooks=["ok", "a\tb"])]}, "backup_jobs[app].post_hooks[1] must not contain control characters"),
    ({"jobs": [job(on_failure_hooks=[["nested"]])]}, "backup_jobs[app].on_failure_hooks[0] must be a non-empty string"),
    ({"jobs": [job(enabled="yes")]}, "backup_jobs[app].enabled must be true or false"),
    ({"memory_max": "2GB"}, 'backup_memory_max "2GB" must be a size such as 2G, a percentage or infinity'),
    ({"memory_max": "101%"}, 'backup_memory_max "101%" must be a size'),
    ({"timeout": "12 hours later"}, 'backup_timeout "12 hours later" must be a time span such as 12h or 15min'),
    ({"retry_delay": "soon"}, 'backup_retry_delay "soon" must be a systemd time span of at least 60s'),
    ({"retry_delay": "infinity"}, 'backup_retry_delay "infinity" must be a systemd time span'),
    ({"nice": 20}, "backup_nice must be between -20 and 19 (got 20)"),
    ({"nice": -21}, "backup_nice must be between -20 and 19 (got -21)"),
    ({"io_class": "fast"}, "backup_io_class must be idle, best-effort or realtime"),
    ({"cpu_policy": "fifo"}, "backup_cpu_policy must be batch, idle or other"),
    ({"compression": "zstd"}, "backup_compression must be auto, off or max"),
    ({"limit_upload": -1}, "backup_limit_upload must be between 0 and any (got -1)"),
    ({"hook_timeout": 0}, "backup_hook_timeout must be between 1 and any (got 0)"),
    ({"retry_attempts": 101}, "backup_retry_attempts must be between 0 and 100 (got 101)"),
    ({"suspect_shrink": 100}, "backup_suspect_shrink must be between 0 and 99 (got 100)"),
    ({"suspect_shrink": "half"}, "backup_suspect_shrink must be a whole number"),
    ({"jobs": [job(suspect_shrink=-1)]}, "backup_jobs[app].suspect_shrink must be between 0 and 99 (got -1)"),
    ({"jobs": [job(suspect_shrink=True)]}, "backup_jobs[app].suspect_shrink must be a whole number"),
    ({"config_dir": "etc/keepdata"}, 'backup_config_dir "etc/keepdata" must be an absolute path'),
    ({"state_dir": ""}, 'backup_state_dir "" must be an absolute path'),
    ({"metrics_dir": "metrics"}, 'backup_metrics_dir "metrics" must be an absolute path'),
    ({"host_name": ""}, 'backup_host_name "" must be a host name'),
    ({"host_name": "web 1"}, 'backup_host_name "web 1" must be a host name'),
    ({"jobs": "app"}, "backup_jobs must be a list of jobs (each with name and paths)"),
    ({"jobs": {"name": "app", "paths": ["/srv/app"]}}, "backup_jobs must be a list of jobs"),
    ({"jobs": None}, "backup_jobs must be a list of jobs"),
    ({"jobs": 5}, "backup_jobs must be a list of jobs"),
    ({"jobs": True}, "backup_jobs must be a list of jobs"),
    ({"jobs": ["app"]}, "backup_jobs[0] must be a mapping with at least name and paths"),
    ({"alert_grace": "a while"}, 'backup_alert_grace "a while" must be a time span such as 12h or 15min'),
    ({"node_exporter": "yes"}, "backup_node_exporter must be none, install or existing"),
    ({"node_exporter": "existing", "metrics_dir": ""}, "backup_node_exporter=existing needs backup_metrics_dir"),
    ({"node_exporter": "install", "node_exporter_listen_address": "9100"}, 'backup_node_exporter_listen_address "9100" must be host:port'),
    ({"node_exporter": "install", "node_exporter_listen_address": "0.0.0.0:99999"}, "must be host:port, [IPv6]:port or :port"),
    ({"node_exporter": "install", "node_exporter_listen_address": ":9100\n"}, "backup_node_exporter_listen_address must not contain control"),
    ({"node_exporter": "install", "node_exporter_args": ["--collector.systemd", "--x=$(id)"]}, 'backup_node_exporter_args[1] "--x=$(id)" must be one --flag'),
    ({"node_exporter": "install", "node_exporter_args": ['--a="b c"']}, "must be one --flag or --flag=value without spaces"),
    ({"node_exporter": "install", "node_exporter_args": ["-v"]}, 'backup_node_exporter_args[0] "-v" must be one --flag'),
    ({"node_exporter": "install", "node_exporter_args": ["--web.listen-address=:80"]}, "--web.listen-address is set by the role"),
    ({"node_exporter": "install", "metrics_dir": "/var/lib/node exporter"}, 'backup_metrics_dir "/var/lib/node exporter" must be an absolute path'),
]


@pytest.mark.parametrize(("settings", "expect"), BAD, ids=["%02d-%s" % (i, e[:40]) for i, (s, e) in enumerate(BAD)])
def test_bad_input(settings, expect):
    result = backup_plan(dict(S3, **settings))
    assert len(result["errors"]) == 1, result["errors"]
    assert expect in result["errors"][0]
    # Nothing else of an invalid plan is used.
    assert (result["repository"], result["jobs"], result["service"], result["probe"], result["bucket"]) == ({}, [], {}, {}, {})
    assert backup_secrets(dict(S3, **settings)) == EMPTY_SECRETS
    text = json.dumps(result)
    for secret in SECRETS:
        assert secret not in text


def test_node_exporter_settings():
    assert plan()["node_exporter"]["mode"] == "none"
    assert "prometheus-node-exporter" not in plan()["probe"]["packages"] and plan()["probe"]["textfile_dir"] == ""
    installed = plan(node_exporter="install", node_exporter_listen_address="127.0.0.1:9101", node_exporter_args=["--collector.systemd", "--no-collector.wifi"])
    assert installed["errors"] == []
    assert installed["probe"]["packages"] == ["restic", "prometheus-node-exporter"]
    assert installed["node_exporter"]["args_line"] == (
        "--collector.textfile.directory=/var/lib/prometheus/node-exporter --web.listen-address=127.0.0.1:9101 --collector.systemd --no-collector.wifi"
    )
    assert plan(node_exporter="install", node_exporter_listen_address="[::1]:9100")["errors"] == []
    existing = plan(node_exporter="existing", metrics_dir="/var/lib/node_exporter/textfile/")
    assert existing["probe"]["textfile_dir"] == "/var/lib/node_exporter/textfile"
    assert "prometheus-node-exporter" not in existing["probe"]["packages"]


@pytest.mark.parametrize(("span", "seconds"), [("30min", 1800), ("1h 30min", 5400), ("90", 90), ("2d", 172800), ("1w", 604800), ("15 min", 900), ("500ms", 0)])
def test_timespan_seconds(span, seconds):
    assert bp.timespan_seconds(span) == seconds
    assert bp.TIME_SPAN.fullmatch(span)


def test_host_jobs_get_thresholds_from_their_schedules():
    planned = plan(
        jobs=[job(name="app1", schedule="daily"), job(name="logs", schedule="Mon..Fri 02:00", randomized_delay="0"), job(name="off", enabled=False)],
        retry_attempts=2,
        retry_delay="10min",
        alert_grace="2h",
    )
    gaps = {"daily": 86400, "Mon..Fri 02:00": 259200, planned["service"]["drill_schedule"]: 604800}
    jobs = bp.backup_host_jobs(planned["jobs"], planned["service"], {"repository_mount": "/mnt/backup", "schedule_gaps": gaps})
    ages = [(j["name"], j["max_age"], j["drill_max_age"], j["mount_point"]) for j in jobs]
    assert ages == [
        # Two retries, the second twice as late as the first: 10 min, then 20 min.
        ("app1", 86400 + 1800 + 600 + 1200 + 7200, 604800 + 1800 + 7200, "/mnt/backup"),
        ("logs", 259200 + 600 + 1200 + 7200, 604800 + 7200, "/mnt/backup"),
        ("off", 0, 604800 + 1800 + 7200, "/mnt/backup"),  # no timer: never late; its drill still runs
    ]
    # The plan itself is not changed; an unknown gap (systemd-analyze missing) gives no threshold.
    assert "max_age" not in planned["jobs"][0]
    unknown = bp.backup_host_jobs(planned["jobs"], planned["service"], {"schedule_gaps": {}})
    assert [(j["max_age"], j["drill_max_age"], j["mount_point"]) for j in unknown] == [(0, 0, "")] * 3
    no_drills = plan(drill_enabled=False)
    assert bp.backup_host_jobs(no_drills["jobs"], no_drills["service"], {"schedule_gaps": gaps})[0]["drill_max_age"] == 0


def test_bad_inputs_are_many():
    assert len(BAD) >= 30


@pytest.mark.parametrize("key", ["password", "recovery_password", "s3_access_key", "s3_secret_key"])
@pytest.mark.parametrize("where", [0, 5, -1])
def test_control_characters_in_secrets_name_the_option_and_hide_the_value(key, where):
    value = S3[key]
    index = where if where >= 0 else len(value)
    bad = value[:index] + "\n" + value[index:]
    result = backup_plan(dict(S3, **{key: bad}))
    assert result["errors"] == ["backup_%s must not contain control characters (newline, tab, ...)" % key]
    text = json.dumps(result)
    assert value not in text
    for part in (value[:index], value[index:]):
        assert len(part) < 6 or part not in text
    assert backup_secrets(dict(S3, **{key: bad})) == EMPTY_SECRETS


def test_many_errors_at_once_never_show_a_secret():
    result = plan(
        password="too-short",  # noqa: S106 - test values, not passwords
        s3_secret_key=SECRET + " blank",
        s3_bucket="a",
        jobs=[job(name="Bad"), job(tags=["x y"], databases=[{"type": "mysql", "database": "d", "options": ["--password=" + SECRET]}])],
    )
    assert len(result["errors"]) >= 5
    text = json.dumps(result)
    assert "too-short" not in text
    for secret in SECRETS:
        assert secret not in text


def test_a_dump_option_that_is_refused_never_shows_its_value():
    # Not a valid option (a blank, a "!"): the error must not repeat what may be a password.
    for option in ("--password=" + PASSWORD + " x", "-p" + PASSWORD + "!"):
        result = plan(jobs=[job(databases=[{"type": "mysql", "database": "app", "options": [option]}])])
        assert result["errors"] == ["backup_jobs[app].databases[0].options[0] must be one command-line option such as --no-owner (its value is not shown)"]
        assert PASSWORD not in json.dumps(result)


# --- the bucket --------------------------------------------------------------------------------------------------------

BUCKET = {"name": "kd-backups", "prefix": "restic/web1", "endpoint": "http://127.0.0.1:7496", "path_style": True, "create": False}
EXPIRE = {"Days": 30}


def problems(rules, prefix="restic/web1", versioning="disabled"):
    return backup_bucket_problems({"name": "kd-backups", "lifecycle": rules, "versioning": versioning}, dict(BUCKET, prefix=prefix))


def rule(**extra):
    return dict({"ID": "expire-old", "Status": "Enabled", "Expiration": EXPIRE}, **extra)


@pytest.mark.parametrize(
    "lifecycle_rule",
    [
        rule(Prefix=""),
        rule(Prefix="restic/"),
        rule(Prefix="restic/web1"),
        rule(Prefix="restic/web1/data/"),
        rule(Filter={}),
        rule(Filter={"Prefix": "restic"}),
        rule(Filter={"Prefix": "restic/web1/locks/"}),
        rule(Filter={"And": {"Prefix": "restic/"}}),
        rule(Prefix="restic/", Expiration=None, Transitions=[{"Days": 1, "StorageClass": "GLACIER"}]),
        rule(Prefix="restic/", Expiration=None, Transition={"Days": 1, "StorageClass": "GLACIER"}),
    ],
)
def test_lifecycle_rules_that_reach_the_repository(lifecycle_rule):
    result = problems([lifecycle_rule])
    assert result == {
        "errors": [
            'bucket "kd-backups": lifecycle rule "expire-old" expires objects under the repository prefix "restic/web1"; restic would lose pack files '
            "(remove the rule or choose another backup_s3_prefix)"
        ],
        "warnings": [],
    }


@pytest.mark.parametrize(
    "lifecycle_rule",
    [
        rule(Prefix="logs/"),
        rule(Prefix="restic/web10"),
        rule(Prefix="restic/web1x/"),
        rule(Filter={"Prefix": "restic/web2/"}),
        rule(Filter={"And": {"Prefix": "tmp/"}}),
        rule(Prefix="", Status="Disabled"),
        {"ID": "abort", "Status": "Enabled", "Prefix": "", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
        # restic never tags its objects: a rule that needs a tag never reaches them.
        rule(Filter={"And": {"Prefix": "restic/", "Tags": [{"Key": "k", "Value": "v"}]}}),
        rule(Filter={"Tag": {"Key": "k", "Value": "v"}}),
        # Old versions and delete markers only: what frees space on a versioned bucket, not a danger.
        rule(Prefix="restic/", Expiration=None, NoncurrentVersionExpiration={"NoncurrentDays": 1}),
        rule(Prefix="restic/", Expiration={"ExpiredObjectDeleteMarker": True}),
    ],
)
def test_lifecycle_rules_that_leave_the_repository_alone(lifecycle_rule):
    assert problems([lifecycle_rule]) == {"errors": [], "warnings": []}


def test_prefixes_nest_both_ways():
    # A rule on a shorter prefix: S3 prefixes are plain string prefixes, so "restic/web" reaches "restic/web1/...".
    assert problems([rule(Prefix="restic/web")])["errors"]
    # A rule below the repository.
    assert problems([rule(Prefix="restic/web1/snapshots/")])["errors"]
    # "restic/web1" reaches a repository at "restic/web10" (keys "restic/web10/..."); not the other way round.
    assert problems([rule(Prefix="restic/web1")], prefix="restic/web10")["errors"]
    assert problems([rule(Prefix="restic/web10")], prefix="restic/web1")["errors"] == []


def test_a_repository_at_the_bucket_root_is_reached_by_any_expiring_rule():
    result = problems([rule(Prefix="logs/", ID="")], prefix="")
    assert result["errors"] == [
        'bucket "kd-backups": lifecycle rule "?" expires objects under the repository prefix "/"; restic would lose pack files '
        "(remove the rule or choose another backup_s3_prefix)"
    ]
    assert problems([rule(Prefix="logs/", Status="Disabled")], prefix="")["errors"] == []


def test_each_bad_rule_is_reported():
    result = problems([rule(ID="a", Prefix="restic/"), rule(ID="b", Prefix="logs/"), rule(ID="c", Filter={"Prefix": ""})])
    assert [e.split('"')[3] for e in result["errors"]] == ["a", "c"]


def test_versioning_is_a_warning():
    assert problems([], versioning="enabled") == {
        "errors": [],
        "warnings": ['bucket "kd-backups" has versioning enabled: restic prune then frees no space (old versions stay until deleted)'],
    }
    assert problems([], versioning="suspended") == {"errors": [], "warnings": []}
    assert backup_bucket_problems({}, BUCKET) == {"errors": [], "warnings": []}
    assert backup_bucket_problems({"lifecycle": None}, BUCKET) == {"errors": [], "warnings": []}


def test_a_mysql_password_glued_to_p_is_refused_but_the_port_is_not():
    refused = plan(jobs=[job(databases=[{"type": "mysql", "database": "app", "options": ["-phunter2secret"]}])])
    assert refused["errors"] == ["backup_jobs[app].databases[0].options: a password option would show in the process list; use a defaults or .pgpass file"]
    assert "hunter2secret" not in json.dumps(refused)
    assert plan(jobs=[job(databases=[{"type": "mysql", "database": "app", "options": ["-P3307", "--single-transaction"]}])])["errors"] == []


# --- passwords from files on the controller (an AWX credential type's file injector, a user's own file) ---


def password_file(tmp_path, content, name="repository.pass", mode=0o600):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    path.chmod(mode)
    return str(path)


def test_the_passwords_come_from_their_files_without_the_trailing_newline(tmp_path):
    settings = dict(
        S3,
        password="",
        recovery_password="",
        password_file=password_file(tmp_path, PASSWORD + "\n"),
        recovery_password_file=password_file(tmp_path, RECOVERY + "\r\n", name="recovery.pass"),
    )
    plan = backup_plan(settings)
    assert plan["errors"] == []
    assert plan["warnings"] == []
    assert backup_secrets(settings) == keys(PASSWORD, RECOVERY, ACCESS, SECRET)
    # The plan is printed: neither password is in it.
    assert PASSWORD not in json.dumps(plan) and RECOVERY not in json.dumps(plan)


def test_an_empty_recovery_file_means_no_recovery_key(tmp_path):
    settings = dict(PATH, password="", password_file=password_file(tmp_path, PASSWORD), recovery_password_file=password_file(tmp_path, "", name="r"))
    assert backup_plan(settings)["errors"] == []
    assert backup_secrets(settings)["recovery_password"] == ""


def test_a_home_relative_password_file_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    password_file(tmp_path, PASSWORD + "\n", name=".kd-pass")
    settings = dict(PATH, password="", password_file="~/.kd-pass")  # noqa: S106 - a file name
    assert backup_plan(settings)["errors"] == []
    assert backup_secrets(settings)["password"] == PASSWORD


def test_a_password_file_others_can_read_is_a_warning(tmp_path):
    path = password_file(tmp_path, PASSWORD, mode=0o644)
    plan = backup_plan(dict(PATH, password="", password_file=path))
    assert plan["errors"] == []
    assert plan["warnings"] == ['backup_password_file "%s" is readable by every user of the controller: make it mode 0600' % path]


ONE_LINE = 'backup_password_file "{path}" must hold the password on one line, without control characters (its content is not shown)'


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", 'backup_password_file "{path}" is empty'),
        ("\n", 'backup_password_file "{path}" is empty'),
        (PASSWORD + "\nsecond line\n", ONE_LINE),
        (PASSWORD + "\x1b\n", ONE_LINE),
        (b"\xff\xfe" + PASSWORD.encode(), 'backup_password_file "{path}" is not UTF-8 text'),
        ("x" * 5000, 'backup_password_file "{path}" is larger than 4096 bytes: a password file holds one line'),
        ("short-pw\n", "backup_password must be at least 12 characters long"),
    ],
)
def test_a_bad_password_file_is_refused_without_its_content(tmp_path, content, expected):
    path = password_file(tmp_path, content)
    settings = dict(PATH, password="", password_file=path)
    plan = backup_plan(settings)
    assert plan["errors"] == [expected.format(path=path)]
    assert backup_secrets(settings) == EMPTY_SECRETS
    assert PASSWORD not in json.dumps(plan) and "second line" not in json.dumps(plan)


def test_password_files_that_cannot_be_used_are_named(tmp_path):
    missing = str(tmp_path / "missing.pass")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cases = {
        missing: 'backup_password_file "%s" cannot be read (No such file or directory)' % missing,
        str(tmp_path): 'backup_password_file "%s" is not a regular file' % tmp_path,
        str(fifo): 'backup_password_file "%s" is not a regular file' % fifo,
        "secrets/repo.pass": 'backup_password_file "secrets/repo.pass" must be an absolute path on the controller (or start with ~/)',
        "/srv/a\nb": "backup_password_file must not contain control characters",
    }
    for path, expected in cases.items():
        assert backup_plan(dict(PATH, password="", password_file=path))["errors"] == [expected], path


def test_a_password_given_twice_is_refused(tmp_path):
    path = password_file(tmp_path, PASSWORD)
    plan = backup_plan(dict(PATH, password=PASSWORD, password_file=path, recovery_password=RECOVERY, recovery_password_file=path))
    assert plan["errors"] == [
        "set backup_password or backup_password_file, not both",
        "set backup_recovery_password or backup_recovery_password_file, not both",
    ]


def test_the_file_password_is_checked_like_a_variable(tmp_path):
    same = password_file(tmp_path, PASSWORD)
    plan = backup_plan(dict(PATH, password="", password_file=same, recovery_password_file=same))
    assert plan["errors"] == ["backup_recovery_password must differ from backup_password"]


def test_with_cellar_env_the_keys_may_come_from_the_shared_credentials_file(tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text(
        "[default]\naws_access_key_id = OTHER\naws_secret_access_key = other\n[keepdata]\naws_access_key_id = FILEKEY\naws_secret_access_key = file/Secret\n"
    )
    env = {"host": "127.0.0.1:7496", "key_id": "", "key_secret": "", "credentials_file": str(creds), "profile": "keepdata"}
    settings = dict(S3, s3_access_key="", s3_secret_key="", from_cellar_env=True, env=env)
    plan = backup_plan(settings)
    assert plan["errors"] == []
    assert backup_secrets(settings)["access_key"] == "FILEKEY"
    assert backup_secrets(settings)["secret_key"] == "file/Secret"  # noqa: S105 - a test value
    # CELLAR_ADDON_KEY_* win over the file.
    both = dict(settings, env=dict(env, key_id="ENVKEY", key_secret="env-secret"))  # noqa: S106 - a test value
    assert backup_secrets(both)["access_key"] == "ENVKEY"
    # A profile that is not there is named, with the profiles that are; no key is shown.
    wrong = backup_plan(dict(settings, env=dict(env, profile="nope")))
    assert wrong["errors"] == ["backup_from_cellar_env: profile 'nope' is not in the credentials file %s (profiles there: default, keepdata)" % creds]
    # Neither keys nor a file.
    none = backup_plan(dict(settings, env=dict(env, credentials_file="")))
    assert none["errors"] == [
        "backup_from_cellar_env is set but CELLAR_ADDON_KEY_ID / CELLAR_ADDON_KEY_SECRET are not in the controller environment "
        "(nor a credentials file in AWS_SHARED_CREDENTIALS_FILE)",
        "no S3 credentials: set backup_s3_access_key and backup_s3_secret_key, or backup_from_cellar_env",
    ]


def test_s3_keys_with_any_printable_character_are_accepted():
    # Keys a real S3 user can have (boto3 and the RGW take them): the credentials file carries them (backup_units).
    ak, sk = "AK=with:odd#1", "sp ace`x=y\"z'w\\v#u;t"
    result = plan(s3_access_key=ak, s3_secret_key=sk)
    assert result["errors"] == []
    assert backup_secrets(dict(S3, s3_access_key=ak, s3_secret_key=sk))["secret_key"] == sk


@pytest.mark.parametrize("path", ["/srv/my app", "/srv/données/été", "/srv/a'b\"c", "/srv/$HOME;x", "/srv/[x]*?"])
def test_backup_paths_with_any_name_are_accepted(path):
    result = plan(jobs=[job(paths=[path], databases=[{"type": "sqlite", "path": path + "/db.sqlite3"}])])
    assert result["errors"] == []
    assert result["jobs"][0]["paths"] == [path]
    assert result["probe"]["paths"] == [{"option": "backup_jobs[app].paths", "path": path}]


def test_notify_command_as_a_list_is_an_argv_and_as_a_string_a_shell_command():
    argv = ["mail", "-s", "backup failed", "ops@example.com"]
    assert plan(notify_command=argv)["jobs"][0]["notify_command"] == argv
    assert plan(notify_command="mail -s 'backup failed' ops@example.com")["jobs"][0]["notify_command"] == "mail -s 'backup failed' ops@example.com"
    assert plan(notify_command="")["jobs"][0]["notify_command"] == ""


def test_the_job_carries_the_first_retry_delay_in_seconds():
    assert plan(retry_delay="2min")["jobs"][0]["retry_delay"] == 120
    assert plan(retry_delay=90)["jobs"][0]["retry_delay"] == 90
    assert plan()["jobs"][0]["retry_delay"] == 900


def test_the_job_carries_how_long_the_repository_may_take_to_answer():
    assert plan()["jobs"][0]["repository_timeout"] == 300
    assert plan(repository_timeout="90s")["jobs"][0]["repository_timeout"] == 90
    assert plan(repository_timeout="2min")["service"]["repository_timeout"] == "2min"


def test_suspect_shrink_defaults_to_half_and_a_job_may_set_its_own():
    jobs = plan(jobs=[job(name="app1"), job(name="app2", suspect_shrink=0)], suspect_shrink="80")["jobs"]
    assert [item["suspect_shrink"] for item in jobs] == [80, 0]
    assert plan()["jobs"][0]["suspect_shrink"] == 50


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"preflight_timeout": 0}, "backup_preflight_timeout must be a whole number of seconds from 1 to 600"),
        ({"preflight_timeout": "soon"}, "backup_preflight_timeout must be a whole number of seconds from 1 to 600"),
        ({"apt_cache_valid_time": [1]}, "backup_apt_cache_valid_time must be a whole number of seconds (0 or more)"),
        ({"allow_same_device": "maybe"}, "backup_allow_same_device must be true or false"),
    ],
)
def test_host_settings_are_refused_before_any_change(settings, expected):
    assert any(error.startswith(expected) for error in plan(**settings)["errors"])


# --- append-only mode (backup_append_only, issue 28 A) ---
OWNER_ACCESS = "OWNERKEYEXAMPLE0002"
OWNER_SECRET = "owner/Secret+Key=="  # noqa: S105 - a test value
APPEND_ONLY = dict(S3, append_only=True, append_only_user="cellar_host1", s3_owner_access_key=OWNER_ACCESS, s3_owner_secret_key=OWNER_SECRET)


def test_append_only_plans_the_bucket_with_the_owners_key_and_no_retention_on_the_host():
    result = plan(APPEND_ONLY)
    assert result["errors"] == [], result["errors"]
    assert result["bucket"] == {
        "name": "kd-backups",
        "prefix": "restic/web1",
        "endpoint": "http://127.0.0.1:7496",
        "path_style": True,
        "create": False,
        "append_only": True,
        "versioning": "enabled",
        "policy_preset": "restic_append_only",
        "principals": ["cellar_host1"],
    }
    assert result["service"]["host_retention"] is False
    # No retention timer on the host: its schedule is not asked of systemd-analyze either.
    assert [s["option"] for s in result["probe"]["schedules"]] == ["backup_jobs[app1].schedule", "backup_drill_schedule"]
    # The jobs keep their rules: retention from the trusted place runs them (playbooks/backup_retention.yml).
    assert result["jobs"][0]["retention"]["keep_daily"] == 7 and result["jobs"][0]["prune"] is True
    # The host gets its own key; the controller uses the owner's for the bucket; the plan holds neither.
    secrets = backup_secrets(dict(APPEND_ONLY))
    assert (secrets["access_key"], secrets["secret_key"]) == (ACCESS, SECRET)
    assert (secrets["bucket_access_key"], secrets["bucket_secret_key"]) == (OWNER_ACCESS, OWNER_SECRET)
    text = json.dumps(result)
    assert OWNER_ACCESS not in text and OWNER_SECRET not in text and SECRET not in text
    # The flag given as a word, as -e backup_append_only=true gives it.
    assert plan(APPEND_ONLY, append_only="true")["bucket"]["append_only"] is True
    # Without the mode, the owner's keys (set for a whole group) are not used.
    normal = dict(APPEND_ONLY, append_only=False)
    assert plan(normal)["errors"] == [] and plan(normal)["bucket"]["append_only"] is False and plan(normal)["service"]["host_retention"] is True
    assert backup_secrets(normal)["bucket_access_key"] == ACCESS


@pytest.mark.parametrize(
    ("settings", "expect"),
    [
        (
            dict(target="path", path="/mnt/backup"),
            "backup_append_only needs backup_target s3: only an S3 bucket's policy can keep the host from deleting its backups",
        ),
        (
            dict(s3_owner_access_key=""),
            "backup_append_only needs backup_s3_owner_access_key and backup_s3_owner_secret_key (the bucket owner's keys, used on the controller only)",
        ),
        (
            dict(s3_owner_secret_key=""),
            "backup_append_only needs backup_s3_owner_access_key and backup_s3_owner_secret_key (the bucket owner's keys, used on the controller only)",
        ),
        (
            dict(append_only_user=""),
            "backup_append_only needs backup_append_only_user: the S3 user id of the host's key (on Cellar, its add-on id), which the bucket policy names",
        ),
        (dict(append_only_user="arn:aws:iam::cellar_x"), "backup_append_only_user: principal 'arn:aws:iam::cellar_x' grants nothing on Cellar"),
        (dict(append_only_user="bad user"), "backup_append_only_user: principal 'bad user' is not a valid user id"),
        (
            dict(s3_owner_access_key=ACCESS),
            "backup_s3_access_key is the bucket owner's key (backup_s3_owner_access_key): the host would hold the owner's key, nothing append-only",
        ),
        (dict(from_cellar_env=True), "backup_append_only takes the S3 keys from variables only: set backup_from_cellar_env to false"),
        (dict(s3_prefix="restic/web@1"), "backup_s3_prefix (the repository the bucket policy of backup_append_only names): repository_prefix 'restic/web@1'"),
        (dict(s3_owner_secret_key=["x"]), "backup_s3_owner_secret_key must be a string, not a list (quote it in YAML)"),
        (dict(append_only="maybe"), "backup_append_only"),
    ],
)
def test_append_only_refusals_name_the_option_and_never_a_secret(settings, expect):
    found = errors(APPEND_ONLY, **settings)
    assert any(expect in error for error in found), found
    assert backup_secrets(dict(APPEND_ONLY, **settings)) == EMPTY_SECRETS
    text = " ".join(found)
    assert OWNER_SECRET not in text and SECRET not in text
    if "s3_owner_access_key" in settings and settings["s3_owner_access_key"]:
        assert ACCESS not in text


def test_recorded_good_reads_each_jobs_state_file_as_slurp_returned_it():
    def read(name, content=None, **result):
        if content is not None:
            result["content"] = base64.b64encode(content.encode()).decode()
        return dict(result, item={"name": name, "state_dir": "/var/lib/keepdata/backup"})

    reads = [
        read("app", json.dumps({"good_snapshot": "cccc3333", "suspect": 1})),
        read("db", json.dumps({"good_snapshot": ""})),  # no good snapshot yet
        read("logs", failed=True, msg="file not found"),  # a rebuilt host
        read("media", "{not json"),
        read("mail", json.dumps({"good_snapshot": "CCCC3333"})),  # not a snapshot ID
        read("web", json.dumps(["good_snapshot"])),
        read("www", unreachable=True),
        {"skipped": True, "item": {"name": "off"}},
    ]
    assert bp.backup_recorded_good(reads) == {"app": "cccc3333"}
    assert bp.backup_recorded_good(None) == {} and bp.backup_recorded_good([]) == {}
