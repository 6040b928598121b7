# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bucket names, endpoints, URLs and error translation."""

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import (
    CellarError,
    bucket_url,
    describe_error,
    parse_endpoint,
    use_path_style,
    validate_bucket_name,
)


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


def test_describe_error_never_leaks_secret():
    message = describe_error(_client_error("SignatureDoesNotMatch", "secret TOPSECRET"), "https://e", "b", "x")
    assert "TOPSECRET" not in message


def test_describe_connection_and_credentials():
    assert "cannot reach" in describe_error(EndpointConnectionError(endpoint_url="https://e"), "https://e")
    assert "no credentials" in describe_error(NoCredentialsError(), "https://e")


def test_denied_read_hints_at_another_account():
    assert "another account" in describe_error(_client_error("403"), "https://e", "b", "head bucket")
    assert "another account" not in describe_error(_client_error("AccessDenied"), "https://e", "b", "put bucket policy")
