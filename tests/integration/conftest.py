"""Fixtures for integration tests that talk to a real Ceph RGW on 127.0.0.1.

The ``rgw`` fixture reuses an instance described by ``KEEPDATA_RGW_ENV`` (the ``rgw.env`` file written by
``tests/rig/rgw.sh up``) or starts a throwaway one on free ports for the test session and stops it after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
RGW_SCRIPT = ROOT / "tests" / "rig" / "rgw.sh"


def _read_env_file(path):
    values = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


class Rgw:
    """Endpoint and the two users of a running RGW instance."""

    def __init__(self, values):
        self.endpoint = values["KEEPDATA_RGW_ENDPOINT"]
        self.port = int(values["KEEPDATA_RGW_PORT"])
        self.owner = {
            "uid": values["KEEPDATA_RGW_OWNER_UID"],
            "access_key": values["KEEPDATA_RGW_OWNER_ACCESS_KEY"],
            "secret_key": values["KEEPDATA_RGW_OWNER_SECRET_KEY"],
        }
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


def run_module(module, args, check_mode=False, diff=False):
    """Run one of the collection's modules as Ansible would (a child Python reading ANSIBLE_MODULE_ARGS).

    Returns the module's JSON result; ``failed`` is set when it called fail_json.
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
    """What the server holds: bucket names, and for ``bucket`` its ACL grants, versioning, policy, CORS and keys."""
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
