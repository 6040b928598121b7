# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The s3fs role's plan (keepdata.storage.s3fs_plan, s3fs_credentials, s3fs_bucket_request) with the role's defaults."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.keepdata.storage.plugins.plugin_utils.s3fs_plan import STRINGS, s3fs_bucket_request, s3fs_credentials, s3fs_plan

ROOT = Path(__file__).resolve().parents[4]
DEFAULTS = {k[len("s3fs_") :]: v for k, v in yaml.safe_load((ROOT / "roles/s3fs/defaults/main.yml").read_text()).items()}
BASE = dict(DEFAULTS, access_key="AK", secret_key="SK-NOT-IN-ERRORS", bucket="shared")  # noqa: S106 - test values, not passwords


def plan(**settings):
    return s3fs_plan(dict(BASE, **settings))


def errors(**settings):
    return plan(**settings)["errors"]


def test_options_filter():
    assert errors(options=["sse=kmsid:0123-abcd", "multipart_size=64"]) == []
    assert "sse=kmsid:0123-abcd" in plan(options=["sse=kmsid:0123-abcd"])["cfg"]["opts"]
    assert errors(options=["secret_access_key=XYZ-NOT-IN-ERRORS"]) == [
        'option "secret_access_key" would put a credential into fstab: use s3fs_access_key/s3fs_secret_key'
    ]
    assert errors(options=["token=a b"]) == ['option "token=..." must be one fstab option (no comma, space or quote)']
    assert 'option "url" is managed by the role' in errors(options=["url=http://elsewhere"])[0]


def test_path_style_follows_the_cellar_modules_rule():
    assert "use_path_request_style" in plan(bucket="media.example.com")["cfg"]["opts"]
    assert "use_path_request_style" not in plan()["cfg"]["opts"]
    assert "use_path_request_style" in plan(endpoint="http://127.0.0.1:7480")["cfg"]["opts"]
    assert "use_path_request_style" in plan(endpoint="localhost:7480")["cfg"]["opts"]
    assert "use_path_request_style" in plan(path_request_style="true")["cfg"]["opts"]
    assert "use_path_request_style" not in plan(bucket="media.example.com", path_request_style="false")["cfg"]["opts"]


def test_bucket_names_follow_the_cellar_modules_rule():
    # a.-b passed the role's own regex before: validate_bucket_name refuses it.
    assert errors(bucket="a.-b") == ["bucket \"a.-b\" is not a valid S3 bucket name: must not have '-' next to '.'"]
    assert 'bucket "Shared_Storage" is not a valid S3 bucket name' in errors(bucket="Shared_Storage")[0]
    assert "is not a valid S3 bucket name" in errors(bucket="ab")[0]
    assert "is not a valid S3 bucket name" in errors(bucket="192.168.1.1")[0]


@pytest.mark.parametrize("endpoint", ["ftp://x y", "https://h.example/bucket", "", "https://"])
def test_bad_endpoints(endpoint):
    assert "must be a host, host:port or http(s)://host[:port]" in errors(endpoint=endpoint)[0]


def test_endpoint_forms():
    cfg = plan(endpoint="http://[::1]:7480")["cfg"]
    assert (cfg["url"], cfg["host"], cfg["port"]) == ("http://[::1]:7480", "::1", 7480)
    assert plan()["probe"]["ports"] == ["cellar-c2.services.clever-cloud.com:443"]
    assert plan(preflight=False)["probe"]["ports"] == []


def test_credentials_sources_in_order():
    assert s3fs_credentials(dict(DEFAULTS, credentials_string="AK2:SK2:from-string")) == {"access_key": "AK2", "secret_key": "SK2"}
    assert s3fs_plan(dict(DEFAULTS, credentials_string="AK2:SK2:from-string"))["cfg"]["bucket"] == "from-string"
    env = {"host": "http://127.0.0.1:7480", "key_id": "EAK", "key_secret": "ESK"}
    from_env = dict(DEFAULTS, bucket="b-env", from_cellar_env=True, env=env)
    assert s3fs_credentials(from_env) == {"access_key": "EAK", "secret_key": "ESK"}
    assert s3fs_plan(from_env)["cfg"]["url"] == "http://127.0.0.1:7480"
    # Variables win over the environment for keys; CELLAR_ADDON_HOST wins for the endpoint.
    assert s3fs_credentials(dict(from_env, access_key="VAK", secret_key="VSK")) == {"access_key": "VAK", "secret_key": "VSK"}  # noqa: S106 - test values, not passwords
    assert "are not in the controller environment" in s3fs_plan(dict(DEFAULTS, bucket="b", from_cellar_env=True, env={}))["errors"][0]
    assert "no S3 credentials" in s3fs_plan(dict(DEFAULTS, bucket="b"))["errors"][0]
    assert s3fs_credentials(dict(DEFAULTS, bucket="b")) == {"access_key": "", "secret_key": ""}


def test_keys_from_the_shared_credentials_file_an_awx_credential_type_writes(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("[keepdata]\naws_access_key_id = FAK\naws_secret_access_key = FSK-NOT-IN-ERRORS\n")
    env = {"host": "http://127.0.0.1:7480", "key_id": "", "key_secret": "", "credentials_file": str(path), "profile": "keepdata"}
    from_file = dict(DEFAULTS, bucket="b-file", from_cellar_env=True, env=env)
    assert s3fs_credentials(from_file) == {"access_key": "FAK", "secret_key": "FSK-NOT-IN-ERRORS"}
    assert s3fs_plan(from_file)["errors"] == []
    # CELLAR_ADDON_KEY_* in the environment win over the file.
    assert s3fs_credentials(dict(from_file, env={**env, "key_id": "EAK", "key_secret": "ESK"})) == {"access_key": "EAK", "secret_key": "ESK"}
    wrong = s3fs_plan(dict(from_file, env=dict(env, profile="prod")))["errors"]
    assert wrong[0] == "s3fs_from_cellar_env: profile 'prod' is not in the credentials file %s (profiles there: keepdata)" % path
    assert "FSK-NOT-IN-ERRORS" not in json.dumps(s3fs_plan(dict(from_file, env=dict(env, profile="prod"))))


def test_the_plan_holds_no_secret_and_errors_never_show_it():
    assert "SK-NOT-IN-ERRORS" not in json.dumps(plan(options=["sse=kms"], symlinks=["a"], app_root="/srv/app"))
    cases = [dict(options=["secret=SK-NOT-IN-ERRORS x"]), dict(credentials_string="AK::SK-NOT-IN-ERRORS"), dict(secret_key="SK-NOT-IN-ERRORS\n")]  # noqa: S106 - test values, not passwords
    for case in cases:
        result = plan(**case)
        assert result["errors"] and "SK-NOT-IN-ERRORS" not in json.dumps(result)


def test_bucket_request():
    assert s3fs_bucket_request(BASE) == {}
    assert s3fs_bucket_request(dict(BASE, create_bucket=True)) == {
        "bucket": "shared",
        "url": "https://cellar-c2.services.clever-cloud.com",
        "path_style": False,
        "access_key": "AK",
        "secret_key": "SK-NOT-IN-ERRORS",
    }
    assert s3fs_bucket_request(dict(BASE, create_bucket=True, state="absent")) == {}
    assert plan(create_bucket=True)["create_bucket"] is True


def test_passwd_file_named_after_the_mount_point():
    cfg = plan(path="/srv/shared-storage")["cfg"]
    assert cfg["passwd_file"] == "/etc/keepdata/s3fs/srv-shared_2dstorage.passwd"  # noqa: S105 - a file name
    assert "passwd_file=/etc/keepdata/s3fs/srv-shared_2dstorage.passwd" in cfg["opts"]
    assert cfg["legacy_files"] == ["/etc/keepdata/s3fs/shared.passwd"]
    assert cfg["unit"] == "srv-shared\\x2dstorage"


def test_symlinks():
    cfg = plan(app_root="/srv/app/", symlinks=["public/system/", "wp-content/uploads"])["cfg"]
    assert (cfg["app_root"], cfg["links"]) == ("/srv/app", ["public/system", "wp-content/uploads"])
    assert plan(app_root="/srv/app", symlinks=["public/system"], state="present")["probe"]["links"]["paths"] == []
    assert 'symlink "/etc/passwd" must be a relative path' in errors(app_root="/srv/app", symlinks=["/etc/passwd"])[0]
    assert 'without ".."' in errors(app_root="/srv/app", symlinks=["public/../../etc"])[0]
    assert "is listed twice" in errors(app_root="/srv/app", symlinks=["public/system", "public/system/"])[0]
    assert 'symlinks "public" and "public/system" clash' in errors(app_root="/srv/app", symlinks=["public", "public/system"])[0]
    assert 's3fs_app_root "" must be an absolute path' in errors(symlinks=["public"])[0]
    assert "must not contain one another" in errors(app_root="/storage/app", symlinks=["public"])[0]


@pytest.mark.parametrize("value", ["public/uploads:tmp/cache", ["public/uploads:tmp/cache"], ["public/uploads", "tmp/cache"], "public/uploads,tmp/cache"])
def test_scalingo_symlinks_string(value):
    assert plan(app_root="/srv/app", symlinks=value)["cfg"]["links"] == ["public/uploads", "tmp/cache"]


@pytest.mark.parametrize(
    ("settings", "expect"),
    [
        (dict(path="storage"), 's3fs_path "storage" must be an absolute path'),
        (dict(path="/"), 's3fs_path "/" must be an absolute path other than /'),
        (dict(umask="999"), "s3fs_umask"),
        (dict(mode="rwx"), "s3fs_mode"),
        (dict(options=["passwd_file=/root/x"]), 'option "passwd_file" is managed by the role'),
        (dict(credentials_string="AK:SK"), 'must be "access_key:secret_key:bucket"'),
        (dict(access_key="", credentials_string="AK::bucket"), "three non-empty parts"),
        (dict(access_key="A:B"), 'access key must not contain ":"'),
        (dict(bucket=""), "no bucket"),
        (dict(cache_dir="cache"), 's3fs_cache_dir "cache" must be an absolute path'),
        (dict(path_request_style="maybe"), "s3fs_path_request_style must be auto, true or false"),
        (dict(owner="bad user"), 's3fs_owner "bad user" must be a user or group name'),
    ],
)
def test_bad_settings(settings, expect):
    assert expect in errors(**settings)[0]


FULL = dict(
    BASE,
    endpoint="https://h.example",
    credentials_string="",
    cache_dir="/var/cache/s3fs",
    options=["multipart_size=64"],
    app_root="/srv/app",
    symlinks=["public/system"],
)
CONTROL_CASES = [(key, char, where) for key in STRINGS for char in ("\n", "\r", "\t", "\x00") for where in ("start", "middle", "end")]


def spoil(value, char, where):
    if isinstance(value, list):
        return [spoil(value[0], char, where)]
    text = str(value) or "x"
    return {"start": char + text, "middle": text[:1] + char + text[1:], "end": text + char}[where]


def test_the_full_settings_are_valid():
    assert s3fs_plan(FULL)["errors"] == []
    assert s3fs_plan(dict(FULL, credentials_string="AK:SK:shared"))["errors"] == []


@pytest.mark.parametrize(("key", "char", "where"), CONTROL_CASES)
def test_control_characters_in_every_string_option(key, char, where):
    settings = dict(FULL, **{key: spoil(FULL[key], char, where)})
    result = s3fs_plan(settings)
    assert len(result["errors"]) == 1
    assert "s3fs_%s%s must not contain control characters" % (key, "[0]" if isinstance(FULL[key], list) else "") in result["errors"][0]
    assert result["cfg"] == {} and s3fs_credentials(settings) == {"access_key": "", "secret_key": ""}
    assert "SK-NOT-IN-ERRORS" not in json.dumps(result)


@pytest.mark.parametrize("name", ["host", "key_id", "key_secret"])
def test_control_characters_in_the_cellar_environment(name):
    env = dict({"host": "https://h.example", "key_id": "EAK", "key_secret": "ESK"}, **{name: "bad\n"})
    result = s3fs_plan(dict(DEFAULTS, bucket="b", from_cellar_env=True, env=env))
    assert len(result["errors"]) == 1 and "control characters" in result["errors"][0] and "bad" not in result["errors"][0]


@pytest.mark.parametrize("interval", ["0", "every minute", "5x"])
def test_bad_health_interval(interval):
    assert errors(health_interval=interval) == ['s3fs_health_interval "%s" must be a systemd time span of at least 10s, such as 30s or 1min' % interval]


def test_health_interval_forms():
    assert errors(health_interval="9s") != []
    for interval in ("10s", "30s", "1min", "2m 30s", "90"):
        assert errors(health_interval=interval) == []


def test_flags_given_as_words_are_read_as_ansible_reads_them():
    # As -e s3fs_create_bucket=false gives it: a string, which Python alone would take for true.
    result = plan(create_bucket="false", preflight="no", manage_packages="off", allow_other="yes")
    assert result["errors"] == []
    assert result["create_bucket"] is False
    assert result["probe"]["ports"] == [] and result["probe"]["packages"] == []
    assert "allow_other" in result["cfg"]["opts"]
    assert s3fs_bucket_request(dict(BASE, create_bucket="no")) == {}


def test_a_flag_that_is_no_boolean_is_refused_by_name():
    assert errors(nofail="perhaps") == ["s3fs_nofail must be true or false (yes/no), not a string"]


def test_the_plan_carries_what_the_tasks_hand_to_the_host():
    cfg = plan(owner="www-data", mode="0750", health_check="false", preflight_timeout="7", config_dir="/etc/keepdata/")["cfg"]
    assert (cfg["state"], cfg["owner"], cfg["group"], cfg["mode"]) == ("mounted", "www-data", "root", "0750")
    assert (cfg["config_dir"], cfg["health_check"], cfg["timeout"], cfg["apt_cache_valid_time"]) == ("/etc/keepdata", False, 7, 86400)
    assert cfg["allow_other"] is True and cfg["health_interval"] == "30s"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"preflight_timeout": 0}, "s3fs_preflight_timeout must be a whole number of seconds from 1 to 600"),
        ({"preflight_timeout": 601}, "s3fs_preflight_timeout must be a whole number of seconds from 1 to 600"),
        ({"preflight_timeout": "five"}, "s3fs_preflight_timeout must be a whole number of seconds from 1 to 600"),
        ({"preflight_timeout": True}, "s3fs_preflight_timeout must be a whole number of seconds from 1 to 600"),
        ({"apt_cache_valid_time": -1}, "s3fs_apt_cache_valid_time must be a whole number of seconds (0 or more)"),
        ({"apt_cache_valid_time": [3600]}, "s3fs_apt_cache_valid_time must be a whole number of seconds (0 or more)"),
    ],
)
def test_seconds_are_refused_before_any_change(settings, expected):
    assert expected in errors(**settings)
