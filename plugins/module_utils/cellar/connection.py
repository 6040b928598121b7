# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared entry point of the Cellar / S3 modules.

Connection options with their environment fallbacks, the single client factory (retries with backoff),
bucket name validation, bucket URLs, the ``workers`` limit and the one place that turns S3 errors into clear
messages. :class:`CellarModule` is what every module runs: one client per addressing style (safe to share between
threads), ``exit`` (the diff only in diff mode) and ``fail_s3``, the one way to fail on an S3 error.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import configparser
import ipaddress
import os
import re
import threading
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible.module_utils.six.moves.urllib.parse import urlsplit

try:
    import boto3
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

    class BotoCoreError(Exception):  # noqa: N818 - stand-in so ``except`` clauses stay valid without botocore
        pass

    class ClientError(Exception):  # noqa: N818
        pass

    EndpointConnectionError = NoCredentialsError = ReadTimeoutError = ConnectTimeoutError = ConnectionClosedError = BotoCoreError

DEFAULT_ENDPOINT = "cellar-c2.services.clever-cloud.com"
DEFAULT_REGION = "us-east-1"
# Attempts per request (first try included): botocore "standard" mode backs off exponentially on
# throttling, 5xx and connection errors.
MAX_ATTEMPTS = 5
# Upper bound of every module's ``workers`` option (requests or buckets in flight at once).
MAX_WORKERS = 32
# Seconds to connect and to wait for each answer (the ``timeout`` option), and its bounds.
DEFAULT_TIMEOUT = 60
MAX_TIMEOUT = 3600
CONNECT_TIMEOUT = 10

CONNECTION_ARGS = dict(
    endpoint=dict(type="str", default=DEFAULT_ENDPOINT, fallback=(env_fallback, ["CELLAR_ADDON_HOST"])),
    # Keys come from these options, the environment or a credentials file: see resolve_credentials.
    access_key=dict(type="str", aliases=["aws_access_key"], no_log=False),
    secret_key=dict(type="str", aliases=["aws_secret_key"], no_log=True),
    profile=dict(type="str", aliases=["aws_profile"]),
    credentials_file=dict(type="path"),
    region=dict(type="str", default=DEFAULT_REGION),
    validate_certs=dict(type="bool", default=True),
    ca_bundle=dict(type="path"),
    path_style=dict(type="bool", default=False),
    timeout=dict(type="int", default=DEFAULT_TIMEOUT),
)

_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")


class CellarError(Exception):
    """A failure already phrased for the user."""


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# (is the name bad?, why) in the order they are checked; the first match is reported.
_NAME_RULES = (
    (lambda n: len(n) < 3 or len(n) > 63, "must be 3 to 63 characters long"),
    (lambda n: "_" in n, "must not contain '_' (use '-')"),
    (lambda n: n != n.lower(), "must be lowercase"),
    (lambda n: not _BUCKET_CHARS.match(n), "may only hold lowercase letters, digits, '-' and '.', and must start and end with a letter or digit"),
    (lambda n: ".." in n, "must not contain '..'"),
    (lambda n: ".-" in n or "-." in n, "must not have '-' next to '.'"),
    (_is_ip, "must not be an IP address"),
)


def validate_bucket_name(name):
    """Return None when ``name`` is a valid S3 bucket name, else the reason it is not."""
    if not isinstance(name, str) or not name:
        return "bucket name must not be empty"
    for is_bad, why in _NAME_RULES:
        if is_bad(name):
            return "bucket name %r %s" % (name, why)
    return None


def validate_workers(workers):
    """Return None when ``workers`` is within 1..MAX_WORKERS, else the message for the user."""
    if workers < 1 or workers > MAX_WORKERS:
        return "workers must be between 1 and %d" % MAX_WORKERS
    return None


def parse_endpoint(endpoint):
    """Turn ``host``, ``host:port`` or ``scheme://host[:port]`` into a URL; raise CellarError when it is not one."""
    if not endpoint or not endpoint.strip():
        raise CellarError("endpoint must not be empty")
    endpoint = endpoint.strip()
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https"):
        raise CellarError("endpoint %r: scheme must be http or https" % endpoint)
    try:
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise CellarError("endpoint %r: the port is not a number between 0 and 65535" % endpoint) from None
    if not host:
        raise CellarError("endpoint %r has no host name" % endpoint)
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise CellarError("endpoint %r must be a bare scheme://host[:port], without path, query or user" % endpoint)
    if not re.match(r"^[A-Za-z0-9.:\[\]-]+$", parts.netloc) or ".." in host:
        raise CellarError("endpoint %r has an invalid host name" % endpoint)
    netloc = host if port is None else "%s:%d" % (host if ":" not in host else "[%s]" % host, port)
    return "%s://%s" % (parts.scheme, netloc)


def _is_ip_or_localhost(host):
    return host == "localhost" or _is_ip(host)


def use_path_style(endpoint_url, bucket=None, path_style=False):
    """Path style when asked, for dotted bucket names (TLS wildcards do not cover them) and for IP/localhost endpoints."""
    if path_style or (bucket and "." in bucket):
        return True
    return _is_ip_or_localhost(urlsplit(endpoint_url).hostname or "")


def bucket_url(endpoint_url, bucket, path_style=False):
    """Public URL of a bucket: virtual-host style for plain names, path style for dotted names or when forced."""
    parts = urlsplit(endpoint_url)
    if use_path_style(endpoint_url, bucket, path_style):
        return "%s://%s/%s" % (parts.scheme, parts.netloc, bucket)
    return "%s://%s.%s/" % (parts.scheme, bucket, parts.netloc)


# S3 error codes -> message template; fields: endpoint, bucket, action, code, message.
_ERROR_MESSAGES = (
    (
        ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"),
        "credentials rejected by {endpoint} ({code}): check access_key and secret_key",
    ),
    (("AccessDenied", "AllAccessDisabled", "403"), "access denied by {endpoint}: {action} on bucket {bucket!r} is not allowed for these credentials"),
    (("NoSuchBucket", "404", "NotFound"), "bucket {bucket!r} does not exist on {endpoint}"),
    (
        ("BucketAlreadyExists",),
        "bucket name {bucket!r} is already taken by another account (bucket names are global per region): choose another name",
    ),
    (("BucketNotEmpty",), "bucket {bucket!r} is not empty: set force=true to delete every object and version with it"),
    (("NotImplemented", "501"), "{action} is not supported by this server ({endpoint})"),
    (("MalformedPolicy",), "{endpoint} refused the bucket policy of {bucket!r}: {message}"),
)


CREDENTIALS_HINT = (
    "set access_key and secret_key, or the environment variables CELLAR_ADDON_KEY_ID and CELLAR_ADDON_KEY_SECRET "
    "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or give them in a credentials file (profile, credentials_file, "
    "AWS_SHARED_CREDENTIALS_FILE)"
)
# Environment variable pairs read for the keys, first found first used.
KEY_ENV = (("CELLAR_ADDON_KEY_ID", "CELLAR_ADDON_KEY_SECRET"), ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
DEFAULT_CREDENTIALS_FILE = "~/.aws/credentials"


def resolve_credentials(params, environ):
    """(access key, secret key) for the module's options and environment, or (None, None) when none is found.

    In order: an explicit ``profile`` or ``credentials_file`` option (the file only; keys given as options too are
    refused); the ``access_key``/``secret_key`` options, then CELLAR_ADDON_KEY_*, then AWS_* (each key on its own);
    then, when no key was found, the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
    ~/.aws/credentials) at profile AWS_PROFILE (else ``default``), if that file exists. Raises CellarError, never
    naming a secret, when the file is asked for and cannot give both keys.
    """
    if params.get("profile") or params.get("credentials_file"):
        if params.get("access_key") or params.get("secret_key"):
            raise CellarError("profile/credentials_file and access_key/secret_key are mutually exclusive: the keys come from one place")
        path = params.get("credentials_file") or environ.get("AWS_SHARED_CREDENTIALS_FILE") or DEFAULT_CREDENTIALS_FILE
        return read_credentials_file(path, params.get("profile") or environ.get("AWS_PROFILE") or "default", environ)
    access_key = params.get("access_key") or next((environ[k] for k, _s in KEY_ENV if environ.get(k)), None)
    secret_key = params.get("secret_key") or next((environ[s] for _k, s in KEY_ENV if environ.get(s)), None)
    if access_key or secret_key:
        return access_key, secret_key
    path = environ.get("AWS_SHARED_CREDENTIALS_FILE") or DEFAULT_CREDENTIALS_FILE
    if not os.path.exists(_expand(path, environ)):
        return None, None
    return read_credentials_file(path, environ.get("AWS_PROFILE") or "default", environ)


def _expand(path, environ):
    if path.startswith("~/") and environ.get("HOME"):
        return os.path.join(environ["HOME"], path[2:])
    return os.path.expanduser(path)


def read_credentials_file(path, profile, environ):
    """aws_access_key_id and aws_secret_access_key of ``profile`` in an AWS-style shared credentials file."""
    real = _expand(path, environ)
    parser = configparser.RawConfigParser()
    try:
        with open(real) as stream:
            parser.read_file(stream)
    except (OSError, UnicodeDecodeError) as exc:
        raise CellarError("credentials file %s cannot be read (%s)" % (real, getattr(exc, "strerror", None) or type(exc).__name__)) from None
    except configparser.Error:
        raise CellarError("credentials file %s is not an INI file of [profile] sections" % real) from None
    if not parser.has_section(profile):
        raise CellarError("profile %r is not in the credentials file %s (profiles there: %s)" % (profile, real, ", ".join(parser.sections()) or "none"))
    keys = [parser.get(profile, name, fallback="").strip() for name in ("aws_access_key_id", "aws_secret_access_key")]
    if not all(keys):
        raise CellarError("profile %r in %s needs both aws_access_key_id and aws_secret_access_key" % (profile, real))
    return keys[0], keys[1]


def controller_env_keys(env, option):
    """(key id, secret) from the controller's environment as a role read it: CELLAR_ADDON_KEY_ID / _SECRET, else the
    file AWS_SHARED_CREDENTIALS_FILE names (profile AWS_PROFILE, else default), which is how an AWX credential type
    that keeps the secret out of the environment hands the keys over. ("", "") when neither is there.

    ``env``: {key_id, key_secret, credentials_file, profile}. Raises CellarError naming ``option``, never a value.
    """
    if env.get("key_id") or env.get("key_secret"):
        return str(env.get("key_id") or ""), str(env.get("key_secret") or "")
    if not env.get("credentials_file"):
        return "", ""
    try:
        return read_credentials_file(str(env["credentials_file"]), str(env.get("profile") or "") or "default", {})
    except CellarError as exc:
        raise CellarError("%s: %s" % (option, exc)) from None


MISSING_IN_PREVIEW = "bucket %r does not exist yet: this preview assumes an earlier task creates it (a real run fails if none does)"


def error_code(exc):
    if isinstance(exc, ClientError) and hasattr(exc, "response"):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def retry_attempts(answer):
    """How many times botocore retried the request before this answer: a ClientError, or a successful call's response
    (both carry ResponseMetadata.RetryAttempts); 0 when unknown (an error that is not the server's answer)."""
    if isinstance(answer, ClientError):
        answer = getattr(answer, "response", None)
    if not isinstance(answer, dict):
        return 0
    try:
        return int((answer.get("ResponseMetadata") or {}).get("RetryAttempts") or 0)
    except (TypeError, ValueError):
        return 0


class S3CallError(Exception):
    """A failed S3 call (raised by the cellar_ops wrappers): the botocore error, the action and the bucket."""

    def __init__(self, error, action, bucket=None):
        super(S3CallError, self).__init__("%s: %s" % (action, error))
        self.error = error
        self.action = action
        self.bucket = bucket
        self.code = error_code(error)
        # > 0 when botocore sent the request again: the answer may meet the effect of an earlier, unanswered try.
        self.retries = retry_attempts(error)


def _describe_transport(exc, endpoint, bucket, action, timeout):
    """The message for an error that is not the server's answer (no credentials, no connection, no answer in time),
    or None."""
    on_bucket = " on bucket %r" % bucket if bucket else ""
    if isinstance(exc, NoCredentialsError):
        return "no credentials: " + CREDENTIALS_HINT
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        waited = "within the timeout" if timeout is None else "within timeout=%d s" % timeout
        what = "no answer" if isinstance(exc, ReadTimeoutError) else "no connection"
        return "%s%s: %s from %s %s, %d attempts in all (raise timeout for a slow server)" % (action, on_bucket, what, endpoint, waited, MAX_ATTEMPTS)
    if isinstance(exc, ConnectionClosedError):
        return "%s%s: %s closed the connection without answering, %d attempts in all (the server went away or restarted)" % (
            action,
            on_bucket,
            endpoint,
            MAX_ATTEMPTS,
        )
    if isinstance(exc, EndpointConnectionError):
        return "cannot reach the S3 endpoint %s (%s)" % (endpoint, exc)
    return None


def describe_error(exc, endpoint, bucket=None, action=None, timeout=None):
    """One clear sentence for an S3 error, a botocore error or an :class:`S3CallError` (whose bucket and action are
    used unless given); never includes the secret key. ``timeout`` is the module's, named when it ran out."""
    if isinstance(exc, S3CallError):
        bucket = bucket or exc.bucket
        action = action or exc.action
        exc = exc.error
    action = action or "request"
    transport = _describe_transport(exc, endpoint, bucket, action, timeout)
    if transport:
        return transport
    if not isinstance(exc, ClientError):
        return "%s failed on %s: %s" % (action, endpoint, exc)
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    code = str(error.get("Code", "")) or str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    message = error.get("Message") or code
    for codes, template in _ERROR_MESSAGES:
        if code in codes and (bucket or "{bucket" not in template):
            text = template.format(endpoint=endpoint, bucket=bucket, action=action, code=code, message=message)
            if codes == _ERROR_MESSAGES[1][0] and action.startswith(("head ", "get ")):
                text += " (if the bucket belongs to another account, pick another name: bucket names are global per region)"
            return text
    return "%s%s failed on %s: %s%s" % (action, " on bucket %r" % bucket if bucket else "", endpoint, code, (" - " + message) if message != code else "")


class CellarModule:
    """AnsibleModule with the connection options, a client factory, ``exit`` and S3 error reporting."""

    def __init__(self, argument_spec, **kwargs):
        spec = dict(CONNECTION_ARGS)
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        if not HAS_BOTO3:
            self.module.fail_json(msg=missing_required_lib("boto3"), exception=BOTO3_IMPORT_ERROR)
        try:
            self.endpoint_url = parse_endpoint(self.params["endpoint"])
        except CellarError as exc:
            self.module.fail_json(msg=str(exc))
        if not 1 <= self.params["timeout"] <= MAX_TIMEOUT:
            self.module.fail_json(msg="timeout must be between 1 and %d seconds" % MAX_TIMEOUT)
        try:
            self.access_key, self.secret_key = resolve_credentials(self.params, os.environ)
        except CellarError as exc:
            self.module.fail_json(msg=str(exc))
        if self.secret_key:
            # A key read from a file is as secret as one given as an option: masked if it ever shows.
            self.module.no_log_values.add(self.secret_key)
        if not self.access_key or not self.secret_key:
            self.module.fail_json(msg="no credentials for %s: %s" % (self.endpoint_url, CREDENTIALS_HINT))
        self._clients = {}
        self._clients_lock = threading.Lock()

    def client(self, bucket=None):
        """One boto3 S3 client per addressing style (path style for dotted names or on request).

        Safe to call from several threads: each client is created once, under a lock (boto3 sessions are not
        thread-safe), and the clients themselves may be shared.
        """
        path = use_path_style(self.endpoint_url, bucket, self.params["path_style"])
        with self._clients_lock:
            if path not in self._clients:
                self._clients[path] = make_client(
                    self.endpoint_url,
                    self.access_key,
                    self.secret_key,
                    region=self.params["region"],
                    validate_certs=self.params["validate_certs"],
                    ca_bundle=self.params["ca_bundle"],
                    path_style=path,
                    timeout=self.params["timeout"],
                )
            return self._clients[path]

    def url(self, bucket):
        return bucket_url(self.endpoint_url, bucket, self.params["path_style"])

    def describe(self, error, bucket=None, action=None):
        """The message for an S3 error: an :class:`S3CallError` (its bucket and action are used) or a botocore error."""
        return describe_error(error, self.endpoint_url, bucket, action, self.params["timeout"])

    def fail(self, msg, **result):
        """Fail with a message already phrased for the user (bad input, a local file, several failures)."""
        self.module.fail_json(msg=msg, **result)

    def fail_s3(self, error, bucket=None, action=None, **result):
        """Fail on an S3 error (an :class:`S3CallError` or a botocore error), with :meth:`describe`'s message."""
        self.fail(self.describe(error, bucket, action), **result)

    def preview_of_missing_bucket(self, error, bucket):
        """Go on (True) when a check-mode preview reads a bucket that does not exist yet, with a warning; fail otherwise.

        In a ``--check`` preview of a play, the bucket an earlier task would create does not exist: the task then
        reports what it would do to a new bucket. In a real run, or on any other error, the module fails as usual.
        """
        if self.check_mode and isinstance(error, S3CallError) and error.code == "NoSuchBucket":
            self.module.warn(MISSING_IN_PREVIEW % bucket)
            return True
        self.fail_s3(error, changed=False)
        return False

    def exit(self, **result):
        """Exit with ``result``; its ``diff`` (``{"before": ..., "after": ...}``) is returned in diff mode only."""
        if not self.module._diff or result.get("diff") is None:
            result.pop("diff", None)
        self.module.exit_json(**result)


def make_client(
    endpoint_url,
    access_key,
    secret_key,
    *,
    region=DEFAULT_REGION,
    validate_certs=True,
    ca_bundle=None,
    path_style=True,
    max_pool=10,
    timeout=DEFAULT_TIMEOUT,
):
    """The collection's only S3 client factory."""
    options = dict(
        s3={"addressing_style": "path" if path_style else "virtual"},
        # total_max_attempts counts the first try; botocore's max_attempts would count retries only (one more).
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=min(CONNECT_TIMEOUT, timeout),
        read_timeout=timeout,
        max_pool_connections=max_pool,
        signature_version="s3v4",
    )
    try:
        # botocore >= 1.36 adds CRC checksums by default; Ceph RGW 16 (Cellar) does not know them.
        config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required", **options)
    except TypeError:
        config = Config(**options)
    verify = ca_bundle if (validate_certs and ca_bundle) else validate_certs
    # The keys are resolved here (resolve_credentials), so botocore must not look for a profile of its own: an
    # AWS_PROFILE naming a profile it cannot find (or an empty one) would make it fail before any request.
    session = boto3.session.Session(botocore_session=botocore.session.Session(session_vars={"profile": (None, None, None, None)}))
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region or DEFAULT_REGION,
        verify=verify,
        config=config,
    )
