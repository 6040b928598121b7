"""Fixtures for integration tests that talk to a real Ceph RGW on 127.0.0.1.

The ``rgw`` fixture reuses an instance described by ``KEEPDATA_RGW_ENV`` (the ``rgw.env`` file written by
``tests/rig/rgw.sh up``) or starts a throwaway one on free ports for the test session and stops it after.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
RGW_SCRIPT = ROOT / "tests" / "rig" / "rgw.sh"
# Made under this lock only: see Rgw.client.
CLIENT_LOCK = threading.Lock()


def pinned_version(requirements, package="ansible-core"):
    """The version of ``package`` that the requirements file ``requirements`` (relative to the checkout) pins with ==."""
    for line in (ROOT / requirements).read_text().splitlines():
        match = re.match(r"^\s*%s\s*==\s*([^\s#;]+)" % re.escape(package), line)
        if match:
            return match.group(1)
    raise AssertionError("%s pins no %s version" % (requirements, package))


def tail(text, lines=40, secrets=()):
    """The last ``lines`` lines of ``text``, with every secret replaced, for assertion messages."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return "\n".join(text.splitlines()[-lines:])


def _read_env_file(path):
    values = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


class Rgw:
    """Endpoint and the two users of a running RGW instance.

    ``https_endpoint`` serves the same S3 over TLS with the self-signed certificate in ``ca_bundle`` (both None for
    an instance started before rgw.sh served HTTPS).
    """

    def __init__(self, values):
        self.endpoint = values["KEEPDATA_RGW_ENDPOINT"]
        self.port = int(values["KEEPDATA_RGW_PORT"])
        self.https_endpoint = values.get("KEEPDATA_RGW_HTTPS_ENDPOINT")
        self.ca_bundle = values.get("KEEPDATA_RGW_CA_BUNDLE")
        self.owner = {
            "uid": values["KEEPDATA_RGW_OWNER_UID"],
            "access_key": values["KEEPDATA_RGW_OWNER_ACCESS_KEY"],
            "secret_key": values["KEEPDATA_RGW_OWNER_SECRET_KEY"],
        }
        # The cluster's ceph.conf, for radosgw-admin (a test that needs a user with keys of its own choosing).
        self.conf = values.get("KEEPDATA_RGW_CONF")
        self.addon = {
            "uid": values["KEEPDATA_RGW_ADDON_UID"],
            "access_key": values["KEEPDATA_RGW_ADDON_ACCESS_KEY"],
            "secret_key": values["KEEPDATA_RGW_ADDON_SECRET_KEY"],
        }

    def client(self, user="owner"):
        """A boto3 S3 client for ``owner`` or ``addon``, path-style (``*.localhost`` does not resolve)."""
        creds = self.owner if user == "owner" else self.addon
        # boto3's default session is not safe to make clients from in two threads at once (a test may run two
        # hosts' playbooks side by side); a client, once made, is.
        with CLIENT_LOCK:
            return boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=creds["access_key"],
                aws_secret_access_key=creds["secret_key"],
                region_name="us-east-1",
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
            )

    def connection_args(self, user="owner"):
        """Connection options in the form the collection's modules take them."""
        creds = self.owner if user == "owner" else self.addon
        return {"endpoint": self.endpoint, "access_key": creds["access_key"], "secret_key": creds["secret_key"]}


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    env_file = os.environ.get("KEEPDATA_RGW_ENV")
    if env_file:
        yield Rgw(_read_env_file(env_file))
        return
    state_dir = tmp_path_factory.mktemp("rgw") / "state"
    env = dict(os.environ, KEEPDATA_RGW_DIR=str(state_dir), KEEPDATA_RGW_PORT="auto", KEEPDATA_MON_PORT="auto")
    try:
        started = subprocess.run([str(RGW_SCRIPT), "up"], env=env, capture_output=True, text=True, check=False, timeout=300)
        if started.returncode != 0:
            pytest.fail(f"could not start the test RGW: {started.stderr.strip() or started.stdout.strip()}")
        yield Rgw(_read_env_file(state_dir / "rgw.env"))
    finally:
        # Also after a failed or timed-out "up": whatever it started must not outlive the session.
        subprocess.run([str(RGW_SCRIPT), "down"], env=env, capture_output=True, check=False, timeout=120)


@pytest.fixture
def bucket_name():
    """A fresh, valid bucket name for one test."""
    return f"kd-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def bucket(rgw, bucket_name):
    """A fresh bucket on the RGW, removed with what it holds after the test."""
    rgw.client().create_bucket(Bucket=bucket_name)
    yield bucket_name
    delete_bucket_quietly(rgw, bucket_name)


def damage_largest_pack(client, bucket, prefix):
    """Silent damage: the largest data pack under ``prefix`` keeps its name and size, 64 bytes in its middle are
    flipped (restic finds it only by reading the pack back)."""
    packs = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/data/").get("Contents", [])
    assert packs, "the backup wrote no data pack under %s" % prefix
    pack = max(packs, key=lambda item: item["Size"])
    body = bytearray(client.get_object(Bucket=bucket, Key=pack["Key"])["Body"].read())
    middle = len(body) // 2
    body[middle : middle + 64] = bytes(byte ^ 0xFF for byte in body[middle : middle + 64])
    client.put_object(Bucket=bucket, Key=pack["Key"], Body=bytes(body))


def run_module(module, args, check_mode=False, diff=False, env=None):
    """Run one of the collection's modules as Ansible would (a child Python reading ANSIBLE_MODULE_ARGS).

    ``env`` is the module's whole environment (default: this process's). Returns the module's JSON result;
    ``failed`` is set when it called fail_json.
    """
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
        args_file = handle.name
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"ansible_collections.keepdata.storage.plugins.modules.{module}", args_file],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env=env,
        )
    finally:
        os.unlink(args_file)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{module} printed no JSON: stdout={proc.stdout!r} stderr={proc.stderr!r}") from exc


# Where a run of the collection could find S3 keys or an endpoint besides its variables.
CONNECTION_ENV = (
    "CELLAR_ADDON_KEY_ID",
    "CELLAR_ADDON_KEY_SECRET",
    "CELLAR_ADDON_HOST",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_PROFILE",
)


def run_playbook(rgw, playbook, extra_vars, *options, connection_env=True, callback="default"):
    """Run ansible-playbook on ``playbook`` with ``extra_vars`` (a mapping, given as JSON); returns the finished process
    (stdout and stderr apart, as text). The connection is given only through the environment (CELLAR_ADDON_*, the
    RGW's owner); with ``connection_env=False`` no connection variable is in the environment at all, so the playbook's
    own settings are the only source. ``callback`` is the stdout callback (``ansible.posix.json``: stdout is one JSON
    document of every task's result)."""
    env = {k: v for k, v in os.environ.items() if k not in CONNECTION_ENV}
    if connection_env:
        env.update(CELLAR_ADDON_KEY_ID=rgw.owner["access_key"], CELLAR_ADDON_KEY_SECRET=rgw.owner["secret_key"], CELLAR_ADDON_HOST=rgw.endpoint)
    env = dict(
        env,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK=callback,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    return subprocess.run(
        ["ansible-playbook", str(playbook), "-e", json.dumps(extra_vars), *options],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def ansible_playbook(rgw, playbook, extra_vars, *options, connection_env=True):
    """:func:`run_playbook` with the default callback; returns (exit code, stdout and stderr as one text)."""
    proc = run_playbook(rgw, playbook, extra_vars, *options, connection_env=connection_env)
    return proc.returncode, proc.stdout + proc.stderr


# ---- helpers for the cellar_* module tests ----------------------------------------------------------------


def http_request(url, method="GET", headers=None):
    """Plain anonymous HTTP request; returns (status, headers dict with lower-case names, body)."""

    request = urllib.request.Request(url, method=method, headers=headers or {})  # noqa: S310 - test URLs are http://127.0.0.1
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def server_snapshot(rgw, bucket=None):
    """What the server holds: bucket names, and for ``bucket`` its ACL grants, versioning, policy, CORS, lifecycle
    rules and keys."""
    client = rgw.client()
    snapshot = {"buckets": sorted(b["Name"] for b in client.list_buckets().get("Buckets", []))}
    if bucket and bucket in snapshot["buckets"]:

        def read(call, key, missing):
            try:
                response = call(Bucket=bucket)
            except ClientError as exc:
                if exc.response["Error"]["Code"] == missing:
                    return None
                raise
            return response.get(key)

        snapshot["acl"] = read(client.get_bucket_acl, "Grants", "")
        snapshot["versioning"] = read(client.get_bucket_versioning, "Status", "")
        snapshot["policy"] = read(client.get_bucket_policy, "Policy", "NoSuchBucketPolicy")
        snapshot["cors"] = read(client.get_bucket_cors, "CORSRules", "NoSuchCORSConfiguration")
        snapshot["lifecycle"] = read(client.get_bucket_lifecycle_configuration, "Rules", "NoSuchLifecycleConfiguration")
        snapshot["keys"] = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))
    return snapshot


def delete_bucket_quietly(rgw, bucket):
    """Best-effort cleanup of a test bucket with all its versions."""
    client = rgw.client()
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            entries = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if entries:
                client.delete_objects(Bucket=bucket, Delete={"Objects": entries, "Quiet": True})
        client.delete_bucket(Bucket=bucket)
    except ClientError:
        pass


def owner_restic_env(rgw, work, password):
    """restic's environment with the RGW owner's keys, ``password`` in a 0600 file and a cache, both in ``work``."""
    password_file = os.path.join(work, "password")
    with open(password_file, "w", opener=lambda path, flags: os.open(path, flags, 0o600)) as handle:
        handle.write(password)
    return dict(
        os.environ,
        RESTIC_PASSWORD_FILE=password_file,
        AWS_ACCESS_KEY_ID=rgw.owner["access_key"],
        AWS_SECRET_ACCESS_KEY=rgw.owner["secret_key"],
        RESTIC_CACHE_DIR=os.path.join(work, "cache"),
    )


def restic_repo_args(rgw, endpoint, bucket, password, recovery_password):
    """Module restic_repo's arguments for the repository ``bucket``/repo behind ``endpoint``, with the owner's keys."""
    return {
        "repository": "s3:%s/%s/repo" % (endpoint, bucket),
        "options": ["s3.bucket-lookup=path"],
        "password": password,
        "recovery_password": recovery_password,
        "access_key": rgw.owner["access_key"],
        "secret_key": rgw.owner["secret_key"],
        "timeout": 120,
    }


def restic_opens(rgw, repository, password):
    """True when restic, talking to the RGW itself (not through a proxy), opens ``repository`` (its path below the
    endpoint: bucket/prefix) with ``password``."""
    with tempfile.TemporaryDirectory() as work:
        env = owner_restic_env(rgw, work, password)
        argv = ["restic", "-o", "s3.bucket-lookup=path", "-r", "s3:%s/%s" % (rgw.endpoint, repository), "cat", "config"]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False).returncode == 0


@pytest.fixture
def cellar_bucket(rgw, bucket_name):
    """A bucket name that is deleted (with its content) after the test."""
    yield bucket_name
    delete_bucket_quietly(rgw, bucket_name)


@pytest.fixture
def existing_bucket(rgw, cellar_bucket):
    """An existing empty bucket, deleted after the test."""
    rgw.client().create_bucket(Bucket=cellar_bucket)
    return cellar_bucket


# ---- what the modules send: a recording reverse proxy -------------------------------------------------------


# What the proxy did to a request instead of passing the RGW's answer on (``Request.fault``).
LOST = "lost"  # the RGW answered; the client's connection was closed without that answer
SLOWDOWN_UNSEEN = "503 unseen"  # the proxy answered 503 SlowDown without passing the request on
SLOWDOWN_APPLIED = "503 applied"  # the RGW applied the request; its answer was replaced by 503 SlowDown
FAULTS = (LOST, SLOWDOWN_UNSEEN, SLOWDOWN_APPLIED)


class Request(NamedTuple):
    """One request the proxy received: method, path, query parameters, the status of its answer, and what the proxy
    did instead of passing the RGW's answer on (``fault``, one of FAULTS, "" for none).

    ``status`` is the RGW's answer, or 503 when the proxy answered SlowDown; ``server_status`` is the RGW's answer,
    None when the request never reached it (SLOWDOWN_UNSEEN)."""

    method: str
    path: str
    query: dict
    status: int
    fault: str = ""
    server_status: int | None = None
    host: str = ""  # the client's Host header (a virtual-host style request names its bucket there)

    @property
    def lost(self):
        """The RGW answered and the client got nothing (``lose_answers``)."""
        return self.fault == LOST

    @property
    def slowed_down(self):
        """The client got 503 SlowDown from the proxy (``slow_down``), whether or not the RGW saw the request."""
        return self.fault in (SLOWDOWN_UNSEEN, SLOWDOWN_APPLIED)

    def __str__(self):
        query = "?" + "&".join(sorted(self.query)) if self.query else ""
        how = {
            LOST: " (answer lost)",
            SLOWDOWN_UNSEEN: " (SlowDown, not passed on)",
            SLOWDOWN_APPLIED: " (SlowDown instead of the RGW's %s)" % self.server_status,
        }.get(self.fault, "")
        return "%s %s%s -> %d%s" % (self.method, self.path, query, self.status, how)


WRITE_METHODS = ("PUT", "POST", "DELETE")
# Every write the collection's modules make, as (method, sub-resource) for ``lose_answers(requests=...)``; ("PUT", "")
# and ("DELETE", "") are also restic's object writes and lock removals.
WRITES = [
    ("PUT", ""),  # create bucket
    ("PUT", "acl"),
    ("PUT", "versioning"),
    ("PUT", "policy"),
    ("PUT", "cors"),
    ("PUT", "lifecycle"),
    ("DELETE", ""),  # delete bucket
    ("DELETE", "policy"),
    ("DELETE", "cors"),
    ("DELETE", "lifecycle"),
    ("DELETE", "uploadId"),  # abort multipart upload
    ("POST", "delete"),  # delete objects and versions
]
ALL_METHODS = ("GET", "HEAD") + WRITE_METHODS


class Faults:
    """Which requests the proxy faults, and how (``fault``, one of FAULTS): for ``RecordingProxy.lose_answers`` and
    ``RecordingProxy.slow_down``. One rule picks the requests, whatever is done to them.

    A request is identified by its method, path, query and a digest of its body, so botocore's retry of a request is
    the same request again; ``seen`` counts how often each came. The first try of a request matching one of
    ``requests`` (pairs of method and sub-resource, the query key such as ``"cors"`` or ``"uploadId"``, ``""`` for
    none) is faulted. Besides, any try of a request whose method is in ``methods`` (default: the writes, PUT, POST,
    DELETE) is faulted when a hash of the seed, the request and its try number falls below ``rate``: the same
    requests are faulted on every run, whatever order the client's threads send them in. A retry may be faulted
    again; at most ``max_per_request`` tries of one request are, so a later try always gets through (botocore makes
    5 in all).
    """

    def __init__(self, fault=LOST, *, rate=0.0, seed=0, requests=(), max_per_request=1, on_fault=None, methods=WRITE_METHODS):
        if fault not in FAULTS:
            raise ValueError("fault must be one of %s, not %r" % (", ".join(FAULTS), fault))
        self.fault = fault
        self.on_fault = on_fault
        self.rate = rate
        self.seed = seed
        self.requests = [(method.upper(), sub) for method, sub in requests]
        self.max_per_request = max_per_request
        self.methods = tuple(m.upper() for m in methods)
        self.seen = {}
        self.faulted = {}

    def _matches(self, method, query):
        return any(method == m and ((sub == "" and not query) or (sub != "" and sub in query)) for m, sub in self.requests)

    def decide(self, method, path_and_query, query, body):
        """True when this try of the request is to be faulted (called once per try, under the proxy's lock)."""
        identity = "%s %s %s" % (method, path_and_query, hashlib.sha256(body or b"").hexdigest())
        tries = self.seen[identity] = self.seen.get(identity, 0) + 1
        if self.faulted.get(identity, 0) >= self.max_per_request:
            return False
        digest = hashlib.sha256(("%s|%s|%d" % (self.seed, identity, tries)).encode()).digest()
        picked = (tries == 1 and self._matches(method, query)) or (method in self.methods and int.from_bytes(digest[:8], "big") / 2.0**64 < self.rate)
        if picked:
            self.faulted[identity] = self.faulted.get(identity, 0) + 1
        return picked


def slowdown_body(path):
    """The S3 error document of a 503 SlowDown answer, as S3 and RGW send it: Code, Message, Resource, RequestId."""
    request_id = "kd-slowdown-%s" % uuid.uuid4().hex[:16]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>'
        "<Resource>%s</Resource><RequestId>%s</RequestId></Error>" % (escape(path), request_id)
    )
    return request_id, body.encode()


# Hop-by-hop headers are the proxy's own business; Expect is not signed (botocore leaves it out of SigV4).
_NOT_FORWARDED = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}


class RecordingProxy:
    """A reverse proxy on 127.0.0.1 (or the local address ``listen``) that passes every request to the RGW unchanged
    and records it.

    Method, path, query, headers (the client's Host included, so SigV4 signatures stay valid) and body go through
    as they are. Point a module's ``endpoint`` at ``url``; ``take()`` returns the requests recorded so far (in the
    order their answers came back) and starts a new record. The same idea as tests/benchmarks/cellar_bench.py's
    CountingProxy, which only counts.

    ``go_away_after(test)`` plays a server that dies in the middle of a run: once an answered request passes
    ``test``, every later request has its connection closed without an answer, until ``come_back()``.
    ``answer_late(seconds)`` plays a slow server: each request waits that long before it is passed on.
    ``lose_answers(...)`` plays an answer lost after the server did the work (a timeout or a reset after the write
    was applied): the request goes to the RGW, which answers, and the proxy closes the client's connection without
    passing that answer on. ``slow_down(...)`` plays a throttling server: the proxy answers ``503 SlowDown`` (an S3
    error document) either without passing the request on, or after the RGW applied it, in place of its answer.
    :class:`Faults` picks the requests for both. By default no request is faulted.
    """

    def __init__(self, upstream, listen="127.0.0.1"):
        parts = urlsplit(upstream)
        target = (parts.hostname, parts.port or 80)
        self._requests = []
        self._lock = threading.Lock()
        self._last_answer = None
        self._gone = False
        self._delay = 0
        self._faults = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _record(self, request):
                """Record ``request`` (under the proxy's lock); the server goes away after it when ``go_away_after`` says so."""
                proxy._requests.append(request)
                if proxy._last_answer and proxy._last_answer(request):
                    proxy._gone = True

            def _answer(self, status, reason, headers, data):
                try:
                    self.send_response_only(status, reason)
                    for key, value in headers:
                        if key.lower() not in _NOT_FORWARDED and (key.lower() != "content-length" or self.command == "HEAD"):
                            self.send_header(key, value)
                    if self.command != "HEAD":
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client stopped waiting (a timeout): its answer goes nowhere

            def _slow_down(self, path):
                request_id, data = slowdown_body(path)
                headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id), ("Content-Length", str(len(data)))]
                self._answer(503, "Slow Down", headers, data)

            def _forward(self):
                if proxy._gone:
                    self.close_connection = True  # no answer at all, as from a server that went away
                    return
                if proxy._delay:
                    time.sleep(proxy._delay)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path, _sep, query = self.path.partition("?")
                query = dict(parse_qsl(query, keep_blank_values=True))
                with proxy._lock:
                    faults = proxy._faults
                    faulted = bool(faults and faults.decide(self.command, self.path, query, body))
                    fault = faults.fault if faulted else ""
                    if fault == SLOWDOWN_UNSEEN:
                        request = Request(self.command, path, query, 503, fault, None, self.headers.get("Host", ""))
                        self._record(request)
                if fault == SLOWDOWN_UNSEEN:
                    if faults.on_fault:
                        faults.on_fault(request)
                    self._slow_down(path)  # the RGW never sees this try
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
                upstream_conn = http.client.HTTPConnection(*target, timeout=60)
                try:
                    upstream_conn.request(self.command, self.path, body=body, headers=headers)
                    response = upstream_conn.getresponse()
                    data = response.read()
                finally:
                    upstream_conn.close()
                with proxy._lock:
                    status = 503 if fault == SLOWDOWN_APPLIED else response.status
                    request = Request(self.command, path, query, status, fault, response.status, self.headers.get("Host", ""))
                    self._record(request)
                if fault and faults.on_fault:
                    faults.on_fault(request)  # someone else acting before the client tries again
                if fault == LOST:
                    self.close_connection = True  # the RGW did the work; its answer goes nowhere
                elif fault == SLOWDOWN_APPLIED:
                    self._slow_down(path)  # the RGW did the work; the client hears "slow down"
                else:
                    self._answer(response.status, response.reason, response.getheaders(), data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

        self._server = ThreadingHTTPServer((listen, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = "http://%s:%d" % (listen, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def go_away_after(self, test):
        """After the answer to the first request for which ``test(request)`` is true, answer nothing more."""
        with self._lock:
            self._last_answer, self._gone = test, False

    def come_back(self):
        with self._lock:
            self._last_answer, self._gone, self._delay, self._faults = None, False, 0, None

    def lose_answers(self, rate=0.0, seed=0, requests=(), max_per_request=1, on_lost=None):
        """From now on (until ``come_back()``), keep from the client the answers :class:`Faults` picks: the first
        try of each request matching ``requests`` (method, sub-resource), and writes at ``rate`` (0 to 1), ``seed``ed.
        ``on_lost(request)``, when given, runs after each lost answer, before the connection is closed (so before the
        client's retry): a test's way to play someone else changing the bucket in between."""
        with self._lock:
            self._faults = Faults(LOST, rate=rate, seed=seed, requests=requests, max_per_request=max_per_request, on_fault=on_lost)

    def slow_down(self, *, applied=False, rate=0.0, seed=0, requests=(), max_per_request=1, methods=ALL_METHODS, on_fault=None):
        """From now on (until ``come_back()``), answer ``503 SlowDown`` to the tries :class:`Faults` picks: the first
        try of each request matching ``requests``, and tries of any request (reads too, or of ``methods``) at ``rate``,
        at most ``max_per_request`` tries of one request. With ``applied=False`` the try is not passed on (the RGW never
        sees it); with ``applied=True`` the RGW applies it and the 503 replaces its answer. ``on_fault(request)``
        runs after each fault, before the client's retry (as ``on_lost`` of ``lose_answers``)."""
        with self._lock:
            fault = SLOWDOWN_APPLIED if applied else SLOWDOWN_UNSEEN
            self._faults = Faults(fault, rate=rate, seed=seed, requests=requests, max_per_request=max_per_request, on_fault=on_fault, methods=methods)

    def answer_late(self, seconds):
        """Pass every later request on only after ``seconds`` (until ``come_back()``)."""
        with self._lock:
            self._delay = seconds

    def take(self, at_least=0, wait=10):
        """The requests recorded since the last call; waits up to ``wait`` seconds for ``at_least`` of them (a request
        is recorded once the RGW has answered it, which may be after the client gave up on a late answer)."""
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                if len(self._requests) >= at_least or time.monotonic() > deadline:
                    taken, self._requests = self._requests, []
                    return taken
            time.sleep(0.1)

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def recording_proxy(rgw):
    """A :class:`RecordingProxy` in front of the test RGW, for one test."""
    proxy = RecordingProxy(rgw.endpoint)
    try:
        yield proxy
    finally:
        proxy.close()
