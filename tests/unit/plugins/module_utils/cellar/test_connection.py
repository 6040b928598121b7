# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bucket names, endpoints, URLs and error translation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import threading
import time

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import connection as cellar_utils
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import (
    MAX_ATTEMPTS,
    MAX_WORKERS,
    CellarError,
    CellarModule,
    S3CallError,
    bucket_url,
    describe_error,
    make_client,
    parse_endpoint,
    resolve_credentials,
    use_path_style,
    validate_bucket_name,
    validate_workers,
)
from ansible_collections.keepdata.storage.tests.unit.plugins.compat import patch_module_args


@pytest.mark.parametrize("name", ["abc", "my-bucket", "assets.example.com", "a" * 63, "1bucket9", "b-1.c-2"])
def test_valid_names(name):
    assert validate_bucket_name(name) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("ab", "3 to 63"),
        ("a" * 64, "3 to 63"),
        ("my_bucket", "'_'"),
        ("MyBucket", "lowercase"),
        ("-bucket", "start and end"),
        ("bucket-", "start and end"),
        ("bucket.", "start and end"),
        ("buck..et", "'..'"),
        ("buck.-et", "'-' next to '.'"),
        ("192.168.1.10", "IP address"),
        ("bucket name", "may only hold"),
        ("bück", "may only hold"),
    ],
)
def test_invalid_names(name, reason):
    assert reason in validate_bucket_name(name)


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("cellar-c2.services.clever-cloud.com", "https://cellar-c2.services.clever-cloud.com"),
        ("http://127.0.0.1:7480", "http://127.0.0.1:7480"),
        ("https://s3.example.com/", "https://s3.example.com"),
        ("localhost:9000", "https://localhost:9000"),
    ],
)
def test_parse_endpoint(given, url):
    assert parse_endpoint(given) == url


@pytest.mark.parametrize("given", ["", "ftp://host", "http://", "http://host:port", "https://host/path", "https://user@host", "http://bad host"])
def test_parse_endpoint_rejects(given):
    with pytest.raises(CellarError):
        parse_endpoint(given)


def test_addressing_and_urls():
    cellar = "https://cellar-c2.services.clever-cloud.com"
    assert not use_path_style(cellar, "assets")
    assert use_path_style(cellar, "assets.example.com")
    assert use_path_style(cellar, "assets", path_style=True)
    assert use_path_style("http://127.0.0.1:7480", "assets")
    assert bucket_url(cellar, "assets") == "https://assets.cellar-c2.services.clever-cloud.com/"
    assert bucket_url(cellar, "a.example.com") == "https://cellar-c2.services.clever-cloud.com/a.example.com"


def _client_error(code, message="m", status=400):
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("InvalidAccessKeyId", "credentials rejected by https://e"),
        ("SignatureDoesNotMatch", "credentials rejected by https://e"),
        ("AccessDenied", "access denied"),
        ("NoSuchBucket", "does not exist"),
        ("BucketAlreadyExists", "bucket names are global per region"),
        ("NotImplemented", "not supported by this server"),
        ("BucketNotEmpty", "force=true"),
        ("SomethingElse", "put bucket policy on bucket 'b' failed on https://e: SomethingElse - m"),
    ],
)
def test_describe_error(code, expected):
    assert expected in describe_error(_client_error(code), "https://e", "b", "put bucket policy")


def test_describe_error_takes_the_bucket_and_action_of_an_s3_call_error():
    error = _client_error("SomethingElse")
    wrapped = S3CallError(error, "put bucket policy", "b")
    assert wrapped.code == "SomethingElse"
    assert describe_error(wrapped, "https://e") == describe_error(error, "https://e", "b", "put bucket policy")
    assert describe_error(wrapped, "https://e", "other", "get bucket CORS").startswith("get bucket CORS on bucket 'other' failed")


def test_describe_error_never_leaks_secret():
    message = describe_error(_client_error("SignatureDoesNotMatch", "secret TOPSECRET"), "https://e", "b", "x")
    assert "TOPSECRET" not in message


def test_describe_connection_and_credentials():
    assert "cannot reach" in describe_error(EndpointConnectionError(endpoint_url="https://e"), "https://e")
    assert "no credentials" in describe_error(NoCredentialsError(), "https://e")


def test_a_slow_or_vanished_server_is_one_sentence_naming_the_call_and_the_endpoint():
    slow = describe_error(ReadTimeoutError(endpoint_url="https://e/b?policy"), "https://e", "b", "get bucket policy", 7)
    assert slow == "get bucket policy on bucket 'b': no answer from https://e within timeout=7 s, 5 attempts in all (raise timeout for a slow server)"
    connect = describe_error(ConnectTimeoutError(endpoint_url="https://e/"), "https://e", None, "list buckets", 3)
    assert connect == "list buckets: no connection from https://e within timeout=3 s, 5 attempts in all (raise timeout for a slow server)"
    gone = describe_error(ConnectionClosedError(endpoint_url="https://e/b?delete"), "https://e", "b", "delete objects")
    assert gone == "delete objects on bucket 'b': https://e closed the connection without answering, 5 attempts in all (the server went away or restarted)"


def test_denied_read_hints_at_another_account():
    assert "another account" in describe_error(_client_error("403"), "https://e", "b", "head bucket")
    assert "another account" not in describe_error(_client_error("AccessDenied"), "https://e", "b", "put bucket policy")


@pytest.mark.parametrize(
    ("endpoint", "bucket", "path_style", "url"),
    [
        ("https://cellar-c2.services.clever-cloud.com", "assets", False, "https://assets.cellar-c2.services.clever-cloud.com/"),
        ("https://s3.example.com:8443", "assets-2", False, "https://assets-2.s3.example.com:8443/"),
        ("https://s3.example.com:8443", "assets-2", True, "https://s3.example.com:8443/assets-2"),
        ("https://s3.example.com", "a.example.com", False, "https://s3.example.com/a.example.com"),
        ("http://localhost:7480", "assets", False, "http://localhost:7480/assets"),
        ("http://127.0.0.1:7480", "assets", False, "http://127.0.0.1:7480/assets"),
    ],
)
def test_url_virtual_host_for_plain_names(endpoint, bucket, path_style, url):
    """Virtual-host URL for a plain name on a named endpoint; path style when dotted, forced, or on localhost/IP."""
    assert bucket_url(endpoint, bucket, path_style) == url


@pytest.mark.parametrize(("path_style", "addressing"), [(True, "path"), (False, "virtual")])
def test_client_factory_retries_checksums_and_addressing(path_style, addressing):
    client = make_client("https://s3.example.com", "AKIDEXAMPLE", "secret", path_style=path_style, max_pool=7)
    config = client.meta.config
    # Five attempts per request, the first one included (botocore's max_attempts would mean five retries).
    assert config.retries == {"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"}
    assert MAX_ATTEMPTS == 5
    # botocore >= 1.36 would add CRC checksums that Ceph RGW 16 (Cellar) rejects.
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.s3 == {"addressing_style": addressing}
    assert config.signature_version == "s3v4"
    assert config.max_pool_connections == 7
    assert (config.connect_timeout, config.read_timeout) == (10, 60)
    short = make_client("https://s3.example.com", "AKIDEXAMPLE", "secret", timeout=3).meta.config
    assert (short.connect_timeout, short.read_timeout) == (3, 3)
    slow = make_client("https://s3.example.com", "AKIDEXAMPLE", "secret", timeout=600).meta.config
    assert (slow.connect_timeout, slow.read_timeout) == (10, 600)
    assert client.meta.endpoint_url == "https://s3.example.com"
    assert client.meta.region_name == "us-east-1"


class _Body:
    def __init__(self, data):
        self._data = io.BytesIO(data)

    def stream(self, **_kwargs):
        yield self._data.read()

    def read(self, *_args):
        return self._data.read()


def test_client_retries_server_errors_with_backoff(monkeypatch):
    """A 503 answer is retried with growing pauses, five attempts in all, then reported."""
    sleeps = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", sleeps.append)
    client = make_client("https://s3.example.com", "AKIDEXAMPLE", "secret")
    sent = []

    def answer_503(request, **_kwargs):
        sent.append(request.url)
        return AWSResponse(request.url, 503, {}, _Body(b"<Error><Code>SlowDown</Code></Error>"))

    client.meta.events.register("before-send.s3.*", answer_503)
    with pytest.raises(ClientError) as raised:
        client.head_bucket(Bucket="assets")
    assert len(sent) == MAX_ATTEMPTS
    assert len(sleeps) == MAX_ATTEMPTS - 1
    assert "reached max retries: 4" in str(raised.value)


@pytest.mark.parametrize(("workers", "ok"), [(0, False), (1, True), (MAX_WORKERS, True), (MAX_WORKERS + 1, False)])
def test_validate_workers(workers, ok):
    assert (validate_workers(workers) is None) is ok
    if not ok:
        assert validate_workers(workers) == "workers must be between 1 and 32"


# ---- CellarModule: exit, fail_s3, client -------------------------------------------------------------------


class Finished(Exception):  # noqa: N818 - stands for exit_json / fail_json
    def __init__(self, failed, result):
        super().__init__(result)
        self.failed = failed
        self.result = result


def cellar_module(diff=False, endpoint="https://s3.example.com"):
    args = {"endpoint": endpoint, "access_key": "AKIDEXAMPLE", "secret_key": "TOPSECRET", "_ansible_diff": diff}
    with patch_module_args(args):
        cellar = CellarModule({}, supports_check_mode=True)

    def exit_json(**result):
        raise Finished(False, result)

    def fail_json(**result):
        raise Finished(True, result)

    cellar.module.exit_json = exit_json
    cellar.module.fail_json = fail_json
    return cellar


@pytest.mark.parametrize("diff_mode", [False, True])
def test_exit_returns_the_diff_in_diff_mode_only(diff_mode):
    diff = {"before": {"policy": None}, "after": {"policy": {}}}
    with pytest.raises(Finished) as finished:
        cellar_module(diff=diff_mode).exit(changed=True, policy={}, diff=diff)
    assert not finished.value.failed
    assert finished.value.result == (dict(changed=True, policy={}, diff=diff) if diff_mode else dict(changed=True, policy={}))
    with pytest.raises(Finished) as finished:
        cellar_module(diff=diff_mode).exit(changed=False, diff=None)
    assert finished.value.result == {"changed": False}


def test_fail_s3_takes_botocore_errors_and_s3_call_errors():
    error = _client_error("AccessDenied", status=403)
    expected = describe_error(error, "https://s3.example.com", "b", "put bucket CORS")
    for args in ((S3CallError(error, "put bucket CORS", "b"),), (error, "b", "put bucket CORS")):
        with pytest.raises(Finished) as finished:
            cellar_module().fail_s3(*args, changed=False)
        assert finished.value.failed
        assert finished.value.result == {"msg": expected, "changed": False}
    assert cellar_module().describe(S3CallError(error, "put bucket CORS", "b")) == expected


@pytest.mark.parametrize(
    ("check_mode", "code", "previewed"),
    [(True, "NoSuchBucket", True), (False, "NoSuchBucket", False), (True, "AccessDenied", False), (True, "NoSuchBucketPolicy", False)],
)
def test_only_a_preview_goes_on_past_a_bucket_that_does_not_exist_yet(check_mode, code, previewed):
    """--check of a play: a bucket an earlier task would create is previewed as new, with a warning; a real run and
    any other error fail with the usual message."""
    cellar = cellar_module()
    cellar.check_mode = check_mode
    warnings = []
    cellar.module.warn = warnings.append
    error = S3CallError(_client_error(code, status=404), "get bucket policy", "new-bucket")
    if previewed:
        assert cellar.preview_of_missing_bucket(error, "new-bucket") is True
        assert warnings == ["bucket 'new-bucket' does not exist yet: this preview assumes an earlier task creates it (a real run fails if none does)"]
        return
    with pytest.raises(Finished) as finished:
        cellar.preview_of_missing_bucket(error, "new-bucket")
    assert finished.value.failed
    assert finished.value.result == {"msg": describe_error(error, "https://s3.example.com"), "changed": False}
    assert warnings == []


def test_client_is_created_once_per_style_from_threads(monkeypatch):
    """Threads may ask for clients first (no warm-up): one client per addressing style, each created once."""
    made = []

    def slow_make_client(*_args, **kwargs):
        time.sleep(0.02)  # wide window: without the lock, several threads would each create a client
        made.append(kwargs["path_style"])
        return object()

    monkeypatch.setattr(cellar_utils, "make_client", slow_make_client)
    cellar = cellar_module()
    got = []
    start = threading.Barrier(16)

    def ask(bucket):
        start.wait()
        got.append((bucket, cellar.client(bucket)))

    threads = [threading.Thread(target=ask, args=("a.example.com" if i % 2 else "plain",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == [False, True]
    assert len({id(client) for bucket, client in got if bucket == "plain"}) == 1
    assert len({id(client) for bucket, client in got if bucket != "plain"}) == 1
    assert cellar.client("other.dotted") is cellar.client("a.example.com") is not cellar.client()


# ---- keys from options, the environment or a shared credentials file --------------------------------------------


def _params(given=None):
    return dict({"access_key": None, "secret_key": None, "profile": None, "credentials_file": None}, **(given or {}))


@pytest.fixture
def credentials_file(tmp_path):
    path = tmp_path / "credentials"
    path.write_text(
        "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = default-secret\n\n"  # first profile
        "[keepdata]\naws_access_key_id = KDKEY\naws_secret_access_key = kd-secret\n"
    )
    return path


def test_keys_from_options_then_cellar_then_aws_environment():
    env = {"CELLAR_ADDON_KEY_ID": "CK", "CELLAR_ADDON_KEY_SECRET": "cs", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "as"}
    assert resolve_credentials(_params({"access_key": "OK", "secret_key": "os"}), env) == ("OK", "os")
    assert resolve_credentials(_params(), env) == ("CK", "cs")
    assert resolve_credentials(_params(), {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "as"}) == ("AK", "as")
    assert resolve_credentials(_params({"access_key": "OK"}), env) == ("OK", "cs")  # each key on its own, as before


def test_a_shared_credentials_file_is_read_when_no_key_is_given(credentials_file, tmp_path):
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(credentials_file)}
    assert resolve_credentials(_params(), env) == ("DEFAULTKEY", "default-secret")
    assert resolve_credentials(_params(), {**env, "AWS_PROFILE": "keepdata"}) == ("KDKEY", "kd-secret")
    # Keys in the environment win over AWS_PROFILE, as with the AWS CLI.
    assert resolve_credentials(_params(), {**env, "AWS_PROFILE": "keepdata", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "as"}) == ("AK", "as")
    # No file, no key: nothing found (the module then says how to give keys).
    assert resolve_credentials(_params(), {"HOME": str(tmp_path / "nohome")}) == (None, None)
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(credentials_file.read_text())
    assert resolve_credentials(_params(), {"HOME": str(home)}) == ("DEFAULTKEY", "default-secret")


def test_an_explicit_profile_or_file_wins_over_the_environment(credentials_file):
    env = {"CELLAR_ADDON_KEY_ID": "CK", "CELLAR_ADDON_KEY_SECRET": "cs", "AWS_SHARED_CREDENTIALS_FILE": str(credentials_file)}
    assert resolve_credentials(_params({"profile": "keepdata"}), env) == ("KDKEY", "kd-secret")
    assert resolve_credentials(_params({"credentials_file": str(credentials_file)}), {"CELLAR_ADDON_KEY_ID": "CK", "CELLAR_ADDON_KEY_SECRET": "cs"}) == (
        "DEFAULTKEY",
        "default-secret",
    )
    with pytest.raises(CellarError, match="mutually exclusive"):
        resolve_credentials(_params({"profile": "keepdata", "access_key": "OK", "secret_key": "os"}), env)


@pytest.mark.parametrize(
    "content, profile, message",
    [
        (None, "default", "cannot be read"),
        ("not an ini file", "default", "is not an INI file"),
        (
            "[other]\naws_access_key_id = X\naws_secret_access_key = y\n",
            "keepdata",
            "profile 'keepdata' is not in the credentials file .* \\(profiles there: other\\)",
        ),
        ("[keepdata]\naws_access_key_id = X\n", "keepdata", "needs both aws_access_key_id and aws_secret_access_key"),
    ],
)
def test_a_credentials_file_that_cannot_give_the_keys_is_a_clear_error(tmp_path, content, profile, message):
    path = tmp_path / "credentials"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CellarError, match=message) as raised:
        resolve_credentials(_params({"profile": profile, "credentials_file": str(path)}), {})
    assert "y\n" not in str(raised.value) and "secret" not in str(raised.value).replace("aws_secret_access_key", "")


@pytest.mark.parametrize("profile", ["", "no-such-profile"])
def test_an_aws_profile_in_the_environment_does_not_break_the_client(monkeypatch, profile):
    """botocore would fail on a profile it cannot find; the keys are ours, so its own profile lookup is off."""
    monkeypatch.setenv("AWS_PROFILE", profile)
    client = make_client("https://s3.example.com", "AKIDEXAMPLE", "secret")
    assert client.meta.region_name == "us-east-1"
