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

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
RGW_SCRIPT = ROOT / "tests" / "rig" / "rgw.sh"


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


class Request(NamedTuple):
    """One request the proxy passed on: method, path, query parameters, the RGW's answer status, and whether the
    proxy kept that answer from the client (``lose_answers``)."""

    method: str
    path: str
    query: dict
    status: int
    lost: bool = False

    def __str__(self):
        query = "?" + "&".join(sorted(self.query)) if self.query else ""
        return "%s %s%s -> %d%s" % (self.method, self.path, query, self.status, " (answer lost)" if self.lost else "")


WRITE_METHODS = ("PUT", "POST", "DELETE")


class LostAnswers:
    """Which answers the proxy keeps from the client, for ``RecordingProxy.lose_answers``.

    A request is identified by its method, path, query and a digest of its body, so botocore's retry of a request is
    the same request again; ``seen`` counts how often each came. A request matching one of ``requests`` (pairs of
    method and sub-resource, the query key such as ``"cors"`` or ``"uploadId"``, ``""`` for none) loses the answer of
    its first try only. Otherwise a write (PUT, POST, DELETE) loses its answer when a hash of the seed, the request
    and its try number falls below ``rate``: the same requests lose the same answers on every run, whatever order
    the client's threads send them in. A retry may lose its answer again; at most ``max_per_request`` tries of one
    request do, so botocore's next try always gets through.
    """

    def __init__(self, rate=0.0, seed=0, requests=(), max_per_request=1, on_lost=None):
        self.on_lost = on_lost
        self.rate = rate
        self.seed = seed
        self.requests = [(method.upper(), sub) for method, sub in requests]
        self.max_per_request = max_per_request
        self.seen = {}
        self.lost = {}

    def _matches(self, method, query):
        return any(method == m and ((sub == "" and not query) or (sub != "" and sub in query)) for m, sub in self.requests)

    def decide(self, method, path_and_query, query, body):
        """True when the answer to this try of the request is to be lost (called once per try, under the proxy's lock)."""
        identity = "%s %s %s" % (method, path_and_query, hashlib.sha256(body or b"").hexdigest())
        tries = self.seen[identity] = self.seen.get(identity, 0) + 1
        if self.lost.get(identity, 0) >= self.max_per_request:
            return False
        if self.requests:
            lose = self._matches(method, query)
        else:
            digest = hashlib.sha256(("%s|%s|%d" % (self.seed, identity, tries)).encode()).digest()
            lose = method in WRITE_METHODS and int.from_bytes(digest[:8], "big") / 2.0**64 < self.rate
        if lose:
            self.lost[identity] = self.lost.get(identity, 0) + 1
        return lose


# Hop-by-hop headers are the proxy's own business; Expect is not signed (botocore leaves it out of SigV4).
_NOT_FORWARDED = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}


class RecordingProxy:
    """A reverse proxy on 127.0.0.1 that passes every request to the RGW unchanged and records it.

    Method, path, query, headers (the client's Host included, so SigV4 signatures stay valid) and body go through
    as they are. Point a module's ``endpoint`` at ``url``; ``take()`` returns the requests recorded so far (in the
    order their answers came back) and starts a new record. The same idea as tests/benchmarks/cellar_bench.py's
    CountingProxy, which only counts.

    ``go_away_after(test)`` plays a server that dies in the middle of a run: once an answered request passes
    ``test``, every later request has its connection closed without an answer, until ``come_back()``.
    ``answer_late(seconds)`` plays a slow server: each request waits that long before it is passed on.
    ``lose_answers(...)`` plays an answer lost after the server did the work (a timeout or a reset after the write
    was applied): the request goes to the RGW, which answers, and the proxy closes the client's connection without
    passing that answer on; see :class:`LostAnswers` for which requests. By default no answer is lost.
    """

    def __init__(self, upstream):
        parts = urlsplit(upstream)
        target = (parts.hostname, parts.port or 80)
        self._requests = []
        self._lock = threading.Lock()
        self._last_answer = None
        self._gone = False
        self._delay = 0
        self._lost_answers = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                if proxy._gone:
                    self.close_connection = True  # no answer at all, as from a server that went away
                    return
                if proxy._delay:
                    time.sleep(proxy._delay)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
                upstream_conn = http.client.HTTPConnection(*target, timeout=60)
                try:
                    upstream_conn.request(self.command, self.path, body=body, headers=headers)
                    response = upstream_conn.getresponse()
                    data = response.read()
                finally:
                    upstream_conn.close()
                path, _sep, query = self.path.partition("?")
                query = dict(parse_qsl(query, keep_blank_values=True))
                with proxy._lock:
                    lost_answers = proxy._lost_answers
                    lost = bool(lost_answers and lost_answers.decide(self.command, self.path, query, body))
                    request = Request(self.command, path, query, response.status, lost)
                    proxy._requests.append(request)
                    if proxy._last_answer and proxy._last_answer(request):
                        proxy._gone = True
                if lost:
                    if lost_answers.on_lost:
                        lost_answers.on_lost(request)  # someone else acting before the client tries again
                    self.close_connection = True  # the RGW did the work; its answer goes nowhere
                    return
                try:
                    self.send_response_only(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in _NOT_FORWARDED and (key.lower() != "content-length" or self.command == "HEAD"):
                            self.send_header(key, value)
                    if self.command != "HEAD":
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client stopped waiting (a timeout): its answer goes nowhere

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def go_away_after(self, test):
        """After the answer to the first request for which ``test(request)`` is true, answer nothing more."""
        with self._lock:
            self._last_answer, self._gone = test, False

    def come_back(self):
        with self._lock:
            self._last_answer, self._gone, self._delay, self._lost_answers = None, False, 0, None

    def lose_answers(self, rate=0.0, seed=0, requests=(), max_per_request=1, on_lost=None):
        """From now on (until ``come_back()``), keep from the client the answers :class:`LostAnswers` picks: the first
        try of each request matching ``requests`` (method, sub-resource), or writes at ``rate`` (0 to 1), ``seed``ed.
        ``on_lost(request)``, when given, runs after each lost answer, before the connection is closed (so before the
        client's retry): a test's way to play someone else changing the bucket in between."""
        with self._lock:
            self._lost_answers = LostAnswers(rate, seed, requests, max_per_request, on_lost)

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
