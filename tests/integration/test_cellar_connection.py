# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The connection options every cellar_* module shares, against the real RGW: validate_certs and ca_bundle on its
HTTPS endpoint (a self-signed certificate), the AWS_* environment fallback, the aws_* aliases, keys read from a
shared credentials file, and which source wins."""

import os

import pytest
from conftest import run_module, server_snapshot

pytestmark = pytest.mark.rgw

# Whatever could hand a module credentials, an endpoint or trusted CAs: none may come from the caller's environment.
OUTSIDE_ENV = (
    "CELLAR_ADDON_HOST",
    "CELLAR_ADDON_KEY_ID",
    "CELLAR_ADDON_KEY_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


def module_env(**values):
    """This process's environment without OUTSIDE_ENV, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE_ENV}
    env.update(values)
    return env


@pytest.fixture
def https_endpoint(rgw):
    if not (rgw.https_endpoint and rgw.ca_bundle):
        pytest.fail("the test RGW serves no HTTPS (no KEEPDATA_RGW_HTTPS_ENDPOINT in its rgw.env): it was started by an older tests/rig/rgw.sh, restart it")
    return rgw.https_endpoint


# ---- TLS: validate_certs and ca_bundle ---------------------------------------------------------------------


def test_self_signed_certificate_is_refused_by_default_with_a_clear_message(rgw, https_endpoint, cellar_bucket):
    args = dict(rgw.connection_args(), endpoint=https_endpoint, name=cellar_bucket)
    result = run_module("cellar_bucket", args, env=module_env())
    assert result.get("failed") is True, result
    assert result["changed"] is False
    # One sentence naming the endpoint and the problem; neither a traceback nor an exception dump.
    assert "certificate verify failed" in result["msg"].lower(), result["msg"]
    assert https_endpoint in result["msg"]
    assert "Traceback" not in result["msg"] and "exception" not in result, result
    assert cellar_bucket not in server_snapshot(rgw)["buckets"]


def test_ca_bundle_holding_the_certificate_makes_it_trusted(rgw, https_endpoint, cellar_bucket):
    args = dict(rgw.connection_args(), endpoint=https_endpoint, ca_bundle=rgw.ca_bundle, name=cellar_bucket, versioning="enabled")
    result = run_module("cellar_bucket", args, env=module_env())
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert server_snapshot(rgw, cellar_bucket)["versioning"] == "Enabled"


def test_validate_certs_false_accepts_the_certificate(rgw, https_endpoint, existing_bucket):
    args = dict(rgw.connection_args(), endpoint=https_endpoint, validate_certs=False, name=existing_bucket, versioning="enabled")
    result = run_module("cellar_bucket", args, env=module_env())
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert server_snapshot(rgw, existing_bucket)["versioning"] == "Enabled"


# ---- credentials: options, aws_* aliases, CELLAR_ADDON_* and AWS_* environment variables -------------------

# Each case: the options and the environment the module gets, apart from the endpoint option. ``owner`` and
# ``addon`` are replaced by that user's key id and secret. Every case must end up with the owner's keys: the
# bucket the owner made is listed, which the add-on user (another account) would not see.
SOURCES = {
    "AWS_env_alone": ({}, {"AWS_ACCESS_KEY_ID": "owner", "AWS_SECRET_ACCESS_KEY": "owner"}),
    "aws_aliases_alone": ({"aws_access_key": "owner", "aws_secret_key": "owner"}, {}),
    "CELLAR_env_wins_over_AWS_env": (
        {},
        {"CELLAR_ADDON_KEY_ID": "owner", "CELLAR_ADDON_KEY_SECRET": "owner", "AWS_ACCESS_KEY_ID": "addon", "AWS_SECRET_ACCESS_KEY": "addon"},
    ),
    "options_win_over_env": (
        {"access_key": "owner", "secret_key": "owner"},
        {"CELLAR_ADDON_KEY_ID": "addon", "CELLAR_ADDON_KEY_SECRET": "addon", "AWS_ACCESS_KEY_ID": "addon", "AWS_SECRET_ACCESS_KEY": "addon"},
    ),
    "aws_aliases_win_over_env": (
        {"aws_access_key": "owner", "aws_secret_key": "owner"},
        {"CELLAR_ADDON_KEY_ID": "addon", "CELLAR_ADDON_KEY_SECRET": "addon", "AWS_ACCESS_KEY_ID": "addon", "AWS_SECRET_ACCESS_KEY": "addon"},
    ),
    # Nothing answers on the discard port: the endpoint option must be the one used.
    "endpoint_option_wins_over_CELLAR_ADDON_HOST": (
        {"access_key": "owner", "secret_key": "owner"},
        {"CELLAR_ADDON_HOST": "http://127.0.0.1:9"},
    ),
}


def _key(rgw, name, who):
    user = rgw.owner if who == "owner" else rgw.addon
    return user["secret_key"] if "secret" in name.lower() else user["access_key"]


@pytest.mark.parametrize("source", SOURCES)
def test_credentials_and_endpoint_come_from_the_documented_source(rgw, existing_bucket, source):
    options, env = SOURCES[source]
    options = {name: _key(rgw, name, who) for name, who in options.items()}
    env = {name: value if value.startswith("http") else _key(rgw, name, value) for name, value in env.items()}
    result = run_module("cellar_bucket_info", dict(options, endpoint=rgw.endpoint, name=existing_bucket), env=module_env(**env))
    assert not result.get("failed"), result
    assert [bucket["name"] for bucket in result["buckets"]] == [existing_bucket], "the module did not use the owner's keys"


# ---- keys from a shared credentials file (what an AWX credential type can write instead of environment variables) --


def _write_credentials(rgw, path):
    """A credentials file: [default] holds the add-on user's keys, [keepdata] the owner's."""
    path.write_text(
        "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n[keepdata]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
        % (rgw.addon["access_key"], rgw.addon["secret_key"], rgw.owner["access_key"], rgw.owner["secret_key"])
    )
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("how", ["AWS_SHARED_CREDENTIALS_FILE_and_AWS_PROFILE", "profile_option", "credentials_file_option_beats_env_keys"])
def test_keys_from_a_shared_credentials_file(rgw, existing_bucket, tmp_path, how):
    path = _write_credentials(rgw, tmp_path / "credentials")
    addon_env = {"CELLAR_ADDON_KEY_ID": rgw.addon["access_key"], "CELLAR_ADDON_KEY_SECRET": rgw.addon["secret_key"]}
    options, env = {
        "AWS_SHARED_CREDENTIALS_FILE_and_AWS_PROFILE": ({}, {"AWS_SHARED_CREDENTIALS_FILE": str(path), "AWS_PROFILE": "keepdata"}),
        "profile_option": ({"profile": "keepdata"}, dict(addon_env, AWS_SHARED_CREDENTIALS_FILE=str(path))),
        "credentials_file_option_beats_env_keys": ({"credentials_file": str(path), "aws_profile": "keepdata"}, addon_env),
    }[how]
    result = run_module("cellar_bucket_info", dict(options, endpoint=rgw.endpoint, name=existing_bucket), env=module_env(**env))
    assert not result.get("failed"), result
    assert [bucket["name"] for bucket in result["buckets"]] == [existing_bucket], "the module did not use the owner's keys from the file"


def test_a_credentials_file_that_cannot_give_keys_fails_before_any_request(rgw, tmp_path):
    path = _write_credentials(rgw, tmp_path / "credentials")
    result = run_module(
        "cellar_bucket", dict(endpoint=rgw.endpoint, name="kd-never-made", profile="prod"), env=module_env(AWS_SHARED_CREDENTIALS_FILE=str(path))
    )
    assert result.get("failed") is True
    assert result["msg"] == "profile 'prod' is not in the credentials file %s (profiles there: default, keepdata)" % path
    assert rgw.owner["secret_key"] not in str(result) and rgw.addon["secret_key"] not in str(result)
    assert "kd-never-made" not in server_snapshot(rgw)["buckets"]
    both = run_module(
        "cellar_bucket_info", dict(endpoint=rgw.endpoint, profile="keepdata", access_key=rgw.owner["access_key"], secret_key=rgw.owner["secret_key"])
    )
    assert both.get("failed") is True and "mutually exclusive" in both["msg"], both
