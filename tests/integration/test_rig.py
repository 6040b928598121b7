"""The test rig itself: the local RGW serves S3 with two separate users and stops cleanly."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, SSLError

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


def test_https_endpoint_serves_s3_with_the_certificate_of_the_instance(rgw):
    """The same S3 over HTTPS, with a self-signed certificate valid for 127.0.0.1 and localhost: trusted through
    KEEPDATA_RGW_CA_BUNDLE, refused without it."""
    assert rgw.https_endpoint and rgw.ca_bundle, "rgw.env has no KEEPDATA_RGW_HTTPS_ENDPOINT / KEEPDATA_RGW_CA_BUNDLE"
    assert oct(os.stat(Path(rgw.ca_bundle).with_name("key.pem")).st_mode & 0o777) == "0o600"

    def client(endpoint, verify):
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=rgw.owner["access_key"],
            aws_secret_access_key=rgw.owner["secret_key"],
            region_name="us-east-1",
            verify=verify,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )

    for endpoint in (rgw.https_endpoint, rgw.https_endpoint.replace("127.0.0.1", "localhost")):
        assert client(endpoint, rgw.ca_bundle).list_buckets()["Owner"]["ID"] == rgw.owner["uid"]
    with pytest.raises(SSLError, match="certificate verify failed"):
        client(rgw.https_endpoint, True).list_buckets()


def _busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def _run(args, env, timeout):
    return subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, check=False, timeout=timeout)


def _rgw_env(state_dir, rgw_port="auto", mon_port="auto", **extra):
    return dict(os.environ, KEEPDATA_RGW_DIR=str(state_dir), KEEPDATA_RGW_PORT=str(rgw_port), KEEPDATA_MON_PORT=str(mon_port), **extra)


def _instance_pids(state_dir):
    """Pids of the ceph daemons started with this state directory's ceph.conf (and no other instance's)."""
    conf = f"{state_dir}/ceph.conf".replace(".", r"\.")
    found = subprocess.run(["pgrep", "-f", "--", f"^(ceph-mon|ceph-osd|radosgw) -c {conf}( |$)"], capture_output=True, text=True, check=False)
    return found.stdout.split()


def _errors(stderr):
    return [line for line in stderr.splitlines() if line.startswith("ERROR")]


def _port_in_time_wait():
    """A port no one listens on, left in TIME_WAIT by a server that closed first (as a stopped radosgw does)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ceph-mon and radosgw bind
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    server_side, _peer = listener.accept()
    server_side.close()
    client.recv(1)  # the server's FIN
    client.close()
    listener.close()
    for _attempt in range(50):
        states = subprocess.run(["ss", "-Htan", "state", "time-wait", "sport", f"= :{port}"], capture_output=True, text=True, check=False)
        if states.stdout.strip():
            break
        time.sleep(0.05)
    plain = socket.socket()
    with pytest.raises(OSError):  # what the port check used to do: it called such a port busy
        plain.bind(("127.0.0.1", port))
    plain.close()
    return port


def test_rgw_script_refuses_a_busy_port_with_one_clear_message(tmp_path):
    sock = _busy_port()
    port = sock.getsockname()[1]
    state_dir = tmp_path / "rgw"
    try:
        proc = _run([RGW_SCRIPT, "up"], _rgw_env(state_dir, rgw_port=port), timeout=60)
    finally:
        sock.close()
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"ERROR: rgw.sh: port {port} on 127.0.0.1 is already in use: set KEEPDATA_RGW_PORT to a free port (or 'auto')")
    assert not state_dir.exists(), "nothing may be started when the port is taken"


def test_rgw_script_refuses_one_port_for_both_s3_and_the_monitor(tmp_path):
    proc = _run([RGW_SCRIPT, "up"], _rgw_env(tmp_path / "rgw", rgw_port=17480, mon_port=17480), timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "ERROR: rgw.sh: KEEPDATA_RGW_PORT and KEEPDATA_MON_PORT are both 17480: they must differ"


def test_rgw_script_refuses_one_port_for_both_http_and_https(tmp_path):
    proc = _run([RGW_SCRIPT, "up"], _rgw_env(tmp_path / "rgw", rgw_port=17480, KEEPDATA_RGW_HTTPS_PORT="17480"), timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "ERROR: rgw.sh: KEEPDATA_RGW_HTTPS_PORT and KEEPDATA_RGW_PORT are both 17480: they must differ"
    assert not (tmp_path / "rgw").exists()


def test_rgw_script_stops_every_daemon_it_started(tmp_path):
    state_dir = tmp_path / "rgw"
    # Ports a previous instance just left (TIME_WAIT) are free for radosgw and ceph-mon: "up" must use them.
    rgw_port, mon_port = _port_in_time_wait(), _port_in_time_wait()
    env = _rgw_env(state_dir, rgw_port=rgw_port, mon_port=mon_port)
    try:
        up = _run([RGW_SCRIPT, "up"], env, timeout=180)
        assert up.returncode == 0, up.stderr
        first = _instance_pids(state_dir)
        assert len(first) == 3, f"expected mon, osd and radosgw, found {first}"
        assert oct(os.stat(state_dir / "rgw.env").st_mode & 0o777) == "0o600"
        assert f"KEEPDATA_RGW_PORT={rgw_port}\n" in (state_dir / "rgw.env").read_text()

        # A start that never completed (no rgw.env) leaves daemons behind: the next "up" stops them first.
        (state_dir / "rgw.env").unlink()
        again = _run([RGW_SCRIPT, "up"], _rgw_env(state_dir), timeout=180)
        assert again.returncode == 0, again.stderr
        second = _instance_pids(state_dir)
        assert len(second) == 3, f"expected mon, osd and radosgw, found {second}"
        assert not set(first) & set(second), "the daemons of the stale instance must be gone"

        down = _run([RGW_SCRIPT, "down"], env, timeout=60)
        assert down.returncode == 0, down.stderr
        assert _instance_pids(state_dir) == []
        assert not state_dir.exists()
    finally:
        _run([RGW_SCRIPT, "down"], env, timeout=60)


def test_rgw_script_cleans_up_after_a_failing_step_with_one_clear_message(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake_admin = fake_bin / "radosgw-admin"
    fake_admin.write_text('#!/bin/sh\necho "radosgw-admin: fake failure for the test" >&2\nexit 3\n')
    fake_admin.chmod(0o755)
    state_dir = tmp_path / "rgw"
    env = _rgw_env(state_dir, PATH=f"{fake_bin}:{os.environ['PATH']}")
    try:
        proc = _run([RGW_SCRIPT, "up"], env, timeout=180)
        assert proc.returncode == 3
        failed_log = tmp_path / "rgw-failed.log"
        assert _errors(proc.stderr) == [
            "ERROR: rgw.sh: step 'create the S3 users (radosgw-admin user create)' failed (exit 3); "
            f"the daemons it started are stopped and {state_dir} is removed (log: {failed_log})"
        ], proc.stderr
        assert "fake failure for the test" in proc.stderr, "the end of the step's log must be shown"
        assert "fake failure for the test" in failed_log.read_text()
        assert _instance_pids(state_dir) == [], "mon, osd and radosgw must be stopped"
        assert not state_dir.exists()
    finally:
        _run([RGW_SCRIPT, "down"], env, timeout=60)


HOSTS_SCRIPT = RGW_SCRIPT.parent / "hosts.sh"
NO_MIRROR = "http://127.0.0.1:9/debian"  # the discard port: nothing answers there


def _hosts_env(tmp_path, **extra):
    """hosts.sh settings that keep its work files and caches in tmp_path (never the checkout's or the machine's)."""
    return dict(os.environ, KEEPDATA_WORK=str(tmp_path / "work"), KEEPDATA_CACHE=str(tmp_path / "cache"), **extra)


def _rootfs_tarball(cache, mirror):
    """Where hosts.sh caches the debootstrap tarball of this recipe."""
    packages = re.search(r"^BASE_PACKAGES=(\S+)$", HOSTS_SCRIPT.read_text(), re.MULTILINE).group(1)
    key = hashlib.sha256(f"bookworm minbase {packages} {mirror}\n".encode()).hexdigest()[:16]
    return cache / f"rootfs-bookworm-{key}.tar.zst"


def test_hosts_script_reports_a_failing_debootstrap_in_one_clear_message(tmp_path):
    proc = _run([HOSTS_SCRIPT, "rootfs"], _hosts_env(tmp_path, KEEPDATA_DEBIAN_MIRROR=NO_MIRROR), timeout=120)
    assert proc.returncode == 1
    errors = _errors(proc.stderr)
    assert errors == [f"ERROR: debootstrap of bookworm from {NO_MIRROR} failed (log above: {tmp_path}/work/debootstrap.log)"], proc.stderr
    assert "Failed getting release file" in proc.stderr
    assert not list((tmp_path / "cache").glob("rootfs-*")), "no half-built tarball may be cached"
    assert not (tmp_path / "work" / "rootfs").exists()


def _fake_bin(tmp_path, **scripts):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name, text in scripts.items():
        path = fake_bin / name
        path.write_text(text)
        path.chmod(0o755)
    return fake_bin


def test_hosts_script_never_caches_a_tarball_it_could_not_pack(tmp_path):
    fake_bin = _fake_bin(
        tmp_path,
        debootstrap='#!/bin/sh\nmkdir -p "$4/etc" && echo fake >"$4/etc/hostname"\n',  # debootstrap OPTS OPTS SUITE DIR MIRROR
        tar='#!/bin/sh\necho "tar: fake write error" >&2\nexit 2\n',
    )
    env = _hosts_env(tmp_path, KEEPDATA_DEBIAN_MIRROR=NO_MIRROR, PATH=f"{fake_bin}:{os.environ['PATH']}")
    proc = _run([HOSTS_SCRIPT, "rootfs"], env, timeout=60)
    assert proc.returncode == 1
    tarball = _rootfs_tarball(tmp_path / "cache", NO_MIRROR)
    assert _errors(proc.stderr) == [f"ERROR: could not pack the root filesystem into {tarball} (log above: {tmp_path}/work/rootfs-pack.log)"], proc.stderr
    assert "fake write error" in proc.stderr
    assert list((tmp_path / "cache").iterdir()) == [], "neither a broken tarball nor its temporary file may stay"
    assert not (tmp_path / "work" / "rootfs").exists()


def test_hosts_script_trusts_a_cached_rootfs_only_when_it_is_intact(tmp_path):
    env = _hosts_env(tmp_path, KEEPDATA_DEBIAN_MIRROR=NO_MIRROR)
    tarball = _rootfs_tarball(tmp_path / "cache", NO_MIRROR)
    tarball.parent.mkdir()
    subprocess.run(["zstd", "-q", "-o", str(tarball)], input=b"an intact zstd file", check=True)
    hit = _run([HOSTS_SCRIPT, "rootfs"], env, timeout=60)
    assert (hit.returncode, hit.stdout.strip()) == (0, str(tarball)), hit.stderr
    assert not (tmp_path / "work" / "debootstrap.log").exists(), "an intact cached tarball is used as it is"

    tarball.write_bytes(b"the first half of a tarball")
    damaged = _run([HOSTS_SCRIPT, "rootfs"], env, timeout=120)
    assert damaged.returncode == 1
    assert f"the cached {tarball} is damaged: building it again" in damaged.stderr
    assert len(_errors(damaged.stderr)) == 1, damaged.stderr  # the rebuild fails: nothing answers at NO_MIRROR
    assert not tarball.exists(), "a damaged tarball must not stay in the cache"


def test_hosts_script_reports_a_dockerd_that_fails_to_start_in_one_clear_message(tmp_path):
    fake_bin = _fake_bin(tmp_path, dockerd='#!/bin/sh\necho "failed to start daemon: fake reason for the test" >&2\nexit 1\n')
    env = _hosts_env(
        tmp_path,
        PATH=f"{fake_bin}:{os.environ['PATH']}",
        # No engine answers there, so the script has to start "dockerd" (the fake one, which fails).
        DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",
    )
    proc = _run([HOSTS_SCRIPT, "engine"], env, timeout=90)
    assert proc.returncode == 1
    assert _errors(proc.stderr) == [f"ERROR: dockerd did not start (log above: {tmp_path}/work/dockerd.log)"], proc.stderr
    assert "fake reason for the test" in proc.stderr, "the reason from dockerd's log must be shown"


@pytest.fixture
def starting_dockerd(tmp_path):
    """A process named dockerd that does not answer (as a dockerd still starting): the script must wait for it."""
    exe = tmp_path / "proc" / "dockerd"
    exe.parent.mkdir()
    shutil.copy("/bin/sleep", exe)
    proc = subprocess.Popen([str(exe), "120"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("answers_after", [None, 3])
def test_hosts_script_waits_for_a_starting_dockerd_instead_of_starting_another(tmp_path, starting_dockerd, answers_after):
    started = tmp_path / "second-dockerd-started"
    calls = tmp_path / "docker-calls"
    # "docker info" fails, or answers from its call number answers_after on (the dockerd finished starting).
    limit = answers_after or 10**6
    fake_bin = _fake_bin(
        tmp_path,
        dockerd=f'#!/bin/sh\ntouch "{started}"\nexit 1\n',
        docker=f'#!/bin/sh\nn=$(($(cat "{calls}" 2>/dev/null || echo 0) + 1))\necho "$n" >"{calls}"\n[ "$n" -ge {limit} ]\n',
    )
    env = _hosts_env(tmp_path, PATH=f"{fake_bin}:{os.environ['PATH']}", KEEPDATA_DOCKERD_WAIT="2")
    env.pop("DOCKER_HOST", None)
    proc = _run([HOSTS_SCRIPT, "engine"], env, timeout=60)
    assert "but does not answer yet: waiting up to 2 s" in proc.stdout
    assert not started.exists(), "no second dockerd may be started while one is starting"
    if answers_after:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 1
        errors = _errors(proc.stderr)
        assert len(errors) == 1, proc.stderr
        assert errors[0].startswith("ERROR: a dockerd is running (pid ")
        assert str(starting_dockerd) in errors[0]
        assert "but did not answer within 2 s: stop it or find out why it hangs" in errors[0]
