"""The test rig itself: the local RGW serves S3 with two separate users and stops cleanly."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

RGW_SCRIPT = Path(__file__).resolve().parents[2] / "tests" / "rig" / "rgw.sh"


def _error_code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def test_owner_round_trips_an_object(rgw, bucket_name):
    s3 = rgw.client("owner")
    s3.create_bucket(Bucket=bucket_name)
    s3.put_object(Bucket=bucket_name, Key="hello.txt", Body=b"hello rig")
    assert s3.get_object(Bucket=bucket_name, Key="hello.txt")["Body"].read() == b"hello rig"
    s3.delete_object(Bucket=bucket_name, Key="hello.txt")
    s3.delete_bucket(Bucket=bucket_name)


def test_second_user_is_a_separate_account(rgw, bucket_name):
    owner, addon = rgw.client("owner"), rgw.client("addon")
    owner.create_bucket(Bucket=bucket_name)
    owner.put_object(Bucket=bucket_name, Key="secret.txt", Body=b"owner only")
    try:
        with pytest.raises(ClientError) as denied:
            addon.get_object(Bucket=bucket_name, Key="secret.txt")
        assert _error_code(denied) == "AccessDenied"
        assert bucket_name not in [b["Name"] for b in addon.list_buckets()["Buckets"]]
        assert rgw.addon["uid"].startswith("cellar_")
    finally:
        owner.delete_object(Bucket=bucket_name, Key="secret.txt")
        owner.delete_bucket(Bucket=bucket_name)


def test_wrong_secret_is_rejected(rgw):
    bad = boto3.client(
        "s3",
        endpoint_url=rgw.endpoint,
        aws_access_key_id=rgw.owner["access_key"],
        aws_secret_access_key="not-the-secret-" + uuid.uuid4().hex,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as rejected:
        bad.list_buckets()
    assert _error_code(rejected) == "SignatureDoesNotMatch"


def test_features_later_issues_rely_on_are_enabled(rgw, bucket_name):
    s3 = rgw.client("owner")
    s3.create_bucket(Bucket=bucket_name)
    try:
        s3.put_bucket_website(Bucket=bucket_name, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
        assert s3.get_bucket_website(Bucket=bucket_name)["IndexDocument"]["Suffix"] == "index.html"
        s3.put_bucket_versioning(Bucket=bucket_name, VersioningConfiguration={"Status": "Enabled"})
        assert s3.get_bucket_versioning(Bucket=bucket_name)["Status"] == "Enabled"
    finally:
        s3.delete_bucket(Bucket=bucket_name)


def _busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def test_rgw_script_refuses_a_busy_port_with_one_clear_message():
    sock = _busy_port()
    port = sock.getsockname()[1]
    state_dir = tempfile.mkdtemp(prefix="keepdata-rgw-busy-")
    env = dict(os.environ, KEEPDATA_RGW_DIR=state_dir, KEEPDATA_RGW_PORT=str(port), KEEPDATA_MON_PORT="auto")
    try:
        proc = subprocess.run([str(RGW_SCRIPT), "up"], env=env, capture_output=True, text=True, check=False, timeout=60)
    finally:
        sock.close()
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"rgw.sh: port {port} on 127.0.0.1 is already in use: set KEEPDATA_RGW_PORT to a free port (or 'auto')")
    assert not (Path(state_dir) / "ceph.conf").exists(), "nothing may be started when the port is taken"


def test_rgw_script_stops_every_daemon_it_started():
    state_dir = tempfile.mkdtemp(prefix="keepdata-rgw-life-")
    env = dict(os.environ, KEEPDATA_RGW_DIR=state_dir, KEEPDATA_RGW_PORT="auto", KEEPDATA_MON_PORT="auto")
    up = subprocess.run([str(RGW_SCRIPT), "up"], env=env, capture_output=True, text=True, check=False, timeout=180)
    assert up.returncode == 0, up.stderr
    conf = f"-c {state_dir}/ceph.conf"
    running = subprocess.run(["pgrep", "-f", "--", conf], capture_output=True, text=True, check=False).stdout.split()
    assert len(running) == 3, f"expected mon, osd and radosgw, found {running}"
    assert oct(os.stat(Path(state_dir) / "rgw.env").st_mode & 0o777) == "0o600"

    down = subprocess.run([str(RGW_SCRIPT), "down"], env=env, capture_output=True, text=True, check=False, timeout=60)
    assert down.returncode == 0, down.stderr
    left = subprocess.run(["pgrep", "-f", "--", conf], capture_output=True, text=True, check=False).stdout.split()
    assert left == []
    assert not Path(state_dir).exists()


def test_hosts_script_reports_a_failing_debootstrap_in_one_clear_message(tmp_path):
    hosts_script = RGW_SCRIPT.parent / "hosts.sh"
    mirror = "http://127.0.0.1:9/debian"  # the discard port: nothing answers there
    env = dict(os.environ, KEEPDATA_CACHE=str(tmp_path / "cache"), KEEPDATA_DEBIAN_MIRROR=mirror)
    proc = subprocess.run([str(hosts_script), "rootfs"], env=env, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(f"ERROR: debootstrap of bookworm from {mirror} failed (log above: ")
    assert "Failed getting release file" in proc.stderr
    assert not list((tmp_path / "cache").glob("rootfs-*")), "no half-built tarball may be cached"


def test_hosts_script_reports_a_dockerd_that_fails_to_start_in_one_clear_message(tmp_path):
    hosts_script = RGW_SCRIPT.parent / "hosts.sh"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake_dockerd = fake_bin / "dockerd"
    fake_dockerd.write_text('#!/bin/sh\necho "failed to start daemon: fake reason for the test" >&2\nexit 1\n')
    fake_dockerd.chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{fake_bin}:{os.environ['PATH']}",
        # No engine answers there, so the script has to start "dockerd" (the fake one, which fails).
        DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",
        KEEPDATA_WORK=str(tmp_path / "work"),
        KEEPDATA_CACHE=str(tmp_path / "cache"),
    )
    proc = subprocess.run([str(hosts_script), "engine"], env=env, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == [f"ERROR: dockerd did not start (log above: {tmp_path}/work/dockerd.log)"], proc.stderr
    assert "fake reason for the test" in proc.stderr, "the reason from dockerd's log must be shown"
