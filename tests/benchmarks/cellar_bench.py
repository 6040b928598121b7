# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Requests and time: keepdata.storage cellar_* modules vs amazon.aws.s3_bucket + community.aws.s3_cors (and
community.aws.s3_lifecycle).

Both sides run through real ansible-playbook against the same RGW, behind a loopback proxy that counts every
HTTP request. Prints a table; it is a measurement, not a test (no thresholds are asserted). A playbook that fails
becomes a FAILED row (with the reason) and the other measurements go on; every bucket a scenario creates is
deleted at its end, whatever happened.

    source scripts/common.sh && kd_activate
    python tests/benchmarks/cellar_bench.py --rgw-env /tmp/kd-rgw-mod/rgw.env            # full run
    python tests/benchmarks/cellar_bench.py --rgw-env ... --buckets 5 --objects 500     # quick run

Scenarios:
  1. one bucket, whole state (private ACL + versioning + public-read policy + two CORS rules): idempotent run
  2. N buckets with that state: idempotent re-run (ours: playbooks/cellar.yml; anchors: the same loop of 2 tasks)
  3. force-delete of a versioned bucket holding --objects keys x --versions versions
  4. N buckets with three lifecycle rules: idempotent re-run (ours: playbooks/cellar.yml; anchors:
     community.aws.s3_lifecycle, which takes one rule per task, so 3 tasks looped over the buckets)
"""

import argparse
import http.client
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ROOT = Path(__file__).resolve().parents[2]
RULES = [
    {"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET", "PUT"], "allowed_headers": ["*"], "max_age_seconds": 600},
    {"allowed_origins": ["*"], "allowed_methods": ["GET"], "max_age_seconds": 60},
]


LIFECYCLE = [
    {"id": "tmp", "prefix": "tmp/", "expiration_days": 7},
    {"id": "old-versions", "noncurrent_version_expiration_days": 30},
    {"id": "uploads", "abort_incomplete_multipart_upload_days": 2},
]


class CountingProxy:
    """A tiny HTTP forwarder on 127.0.0.1 that counts the requests it passes to the RGW."""

    def __init__(self, upstream):
        parts = urlsplit(upstream)
        self.target = (parts.hostname, parts.port or 80)
        self.count = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                with proxy.lock:
                    proxy.count += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if not hasattr(self, "_upstream"):
                    self._upstream = http.client.HTTPConnection(*proxy.target, timeout=300)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                data = response.read()
                self.send_response_only(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = _forward  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self):
        with self.lock:
            count, self.count = self.count, 0
        return count


def read_env(path):
    values = {}
    for line in Path(path).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def write_playbook(directory, name, tasks):
    path = Path(directory) / name
    play = [{"name": name, "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
    path.write_text(json.dumps(play, indent=1))
    return path


class PlaybookFailed(Exception):
    """A measured playbook did not succeed; the message says why, in one line or a few."""


def _failure_reason(result):
    """The first failed task's message in a json-callback result."""
    for play in result.get("plays", []):
        for task in play.get("tasks", []):
            for host in task.get("hosts", {}).values():
                if host.get("failed"):
                    return "%s: %s" % (task["task"].get("name"), str(host.get("msg", "failed"))[:300])
    return "failed (stats: %s)" % json.dumps(result.get("stats"))


def run_playbook(playbook, env, extra=None):
    """Run a playbook with the json callback; returns (wall seconds, seconds spent inside tasks, changed count).

    Raises PlaybookFailed when it fails or prints no JSON.
    """
    command = ["ansible-playbook", str(playbook)]
    if extra is not None:
        command += ["-e", json.dumps(extra)]
    start = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise PlaybookFailed("ansible-playbook printed no JSON: %s" % (proc.stderr.strip()[-300:] or proc.stdout[-300:])) from None
    if proc.returncode != 0:
        raise PlaybookFailed(_failure_reason(result))
    in_tasks = 0.0
    changed = 0
    for play in result["plays"]:
        for task in play["tasks"]:
            duration = task["task"].get("duration") or {}
            if duration.get("start") and duration.get("end"):
                started = datetime.fromisoformat(duration["start"].replace("Z", "+00:00"))
                ended = datetime.fromisoformat(duration["end"].replace("Z", "+00:00"))
                in_tasks += (ended - started).total_seconds()
    for host in result["stats"].values():
        changed += host.get("changed", 0)
    return wall, in_tasks, changed


def measure(ctx, scenario, label, playbook, env, *, extra=None):
    """One row: requests counted by the proxy during one playbook run, time in tasks, wall time, changed count.

    A failure becomes a row with the reason (``error``), so the figures measured so far are kept and the run goes on.
    """
    ctx.proxy.take()
    try:
        wall, in_tasks, changed = run_playbook(playbook, env, extra)
    except PlaybookFailed as exc:
        return (scenario, label, ctx.proxy.take(), None, None, None, "FAILED: %s" % exc)
    return (scenario, label, ctx.proxy.take(), in_tasks, wall, changed, None)


def measure_rerun(ctx, scenario, label, playbook, env, *, extra):
    """Converge first (not measured), then measure the idempotent re-run."""
    first = measure(ctx, scenario, label, playbook, env, extra=extra)
    if first[6]:
        return first[:6] + ("FAILED on the first (converging) run: " + first[6][len("FAILED: ") :],)
    return measure(ctx, scenario, label, playbook, env, extra=extra)


def anchor_tasks(endpoint, keys, loop=False):
    """amazon.aws.s3_bucket (acl + versioning + policy) + community.aws.s3_cors (two rules)."""
    name = "{{ item }}" if loop else "{{ bucket }}"
    connection = {"endpoint_url": endpoint, "access_key": keys[0], "secret_key": keys[1], "region": "us-east-1"}
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":{"AWS":["*"]},'
        '"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}' % name
    )
    s3_rules = [
        {"allowed_origins": r["allowed_origins"], "allowed_methods": r["allowed_methods"], "max_age_seconds": r["max_age_seconds"]}
        | ({"allowed_headers": r["allowed_headers"]} if "allowed_headers" in r else {})
        for r in RULES
    ]
    bucket = dict(connection, name=name, ceph=True, acl="private", versioning=True, policy=policy)
    cors = dict(connection, name=name, rules=s3_rules, state="present")
    tasks = [{"name": "anchor s3_bucket", "amazon.aws.s3_bucket": bucket}, {"name": "anchor s3_cors", "community.aws.s3_cors": cors}]
    if loop:
        for task in tasks:
            task["loop"] = "{{ buckets }}"
    return tasks


def our_task(endpoint, keys):
    args = {
        "endpoint": endpoint,
        "access_key": keys[0],
        "secret_key": keys[1],
        "name": "{{ bucket }}",
        "acl": "private",
        "versioning": "enabled",
        "preset": "public_read",
        "cors": RULES,
    }
    return [{"name": "cellar_bucket", "keepdata.storage.cellar_bucket": args}]


def fill_bucket(client, bucket, objects, versions):
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def put(index):
        for version in range(versions):
            client.put_object(Bucket=bucket, Key="data/%06d" % index, Body=b"v%d" % version)

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(put, range(objects)))


def scenario_one(ctx):
    rows = []
    scenario = "1. one bucket, whole state, idempotent"
    for label, tasks in (("ours", our_task(ctx.proxy.url, ctx.keys)), ("anchors", anchor_tasks(ctx.proxy.url, ctx.keys))):
        bucket = "kd-bench-one-%s-%s" % (label, ctx.tag)
        playbook = write_playbook(ctx.work, "one-%s.json" % label, tasks)
        try:
            rows.append(measure_rerun(ctx, scenario, label, playbook, ctx.env, extra={"bucket": bucket}))
        finally:
            ctx.cleanup(bucket)
    return rows


def scenario_many(ctx, count):
    rows = []
    scenario = "2. %d buckets, idempotent re-run" % count
    names = ["kd-bench-%s-%03d" % (ctx.tag, i) for i in range(count)]
    ours_vars = {
        "cellar_endpoint": ctx.proxy.url,
        "cellar_buckets": [{"name": n, "acl": "private", "versioning": "enabled", "preset": "public_read", "cors": RULES} for n in names],
    }
    our_env = dict(ctx.env, CELLAR_ADDON_KEY_ID=ctx.keys[0], CELLAR_ADDON_KEY_SECRET=ctx.keys[1])
    anchors = write_playbook(ctx.work, "many-anchors.json", anchor_tasks(ctx.proxy.url, ctx.keys, loop=True))
    try:
        rows.append(measure_rerun(ctx, scenario, "ours", ROOT / "playbooks" / "cellar.yml", our_env, extra=ours_vars))
        rows.append(measure_rerun(ctx, scenario, "anchors", anchors, ctx.env, extra={"buckets": names}))
    finally:
        for name in names:
            ctx.cleanup(name)
    return rows


def force_delete_task(ctx, label, bucket):
    connection = {"access_key": ctx.keys[0], "secret_key": ctx.keys[1]}
    if label == "ours":
        return {"keepdata.storage.cellar_bucket": dict(connection, endpoint=ctx.proxy.url, name=bucket, state="absent", force=True)}
    args = dict(connection, endpoint_url=ctx.proxy.url, ceph=True, name=bucket, state="absent", force=True, region="us-east-1")
    return {"amazon.aws.s3_bucket": args}


def scenario_force_delete(ctx, objects, versions):
    rows = []
    scenario = "3. force delete %d objects x %d versions" % (objects, versions)
    for label in ("ours", "anchors"):
        bucket = "kd-bench-del-%s-%s" % (label, ctx.tag)
        try:
            fill_bucket(ctx.direct, bucket, objects, versions)
            playbook = write_playbook(ctx.work, "delete-%s.json" % label, [dict(force_delete_task(ctx, label, bucket), name="force delete")])
            row = measure(ctx, scenario, label, playbook, ctx.env)
            if bucket in [b["Name"] for b in ctx.direct.list_buckets()["Buckets"]]:
                row = (scenario + " (BUCKET LEFT)",) + row[1:]
            rows.append(row)
        except (ClientError, BotoCoreError) as exc:
            rows.append((scenario, label, ctx.proxy.take(), None, None, None, "FAILED while preparing or checking: %s" % exc))
        finally:
            ctx.cleanup(bucket)
    return rows


def lifecycle_anchor_tasks(endpoint, keys):
    """community.aws.s3_lifecycle: one task per rule, each looped over the buckets."""
    connection = {"endpoint_url": endpoint, "access_key": keys[0], "secret_key": keys[1], "region": "us-east-1"}
    tasks = []
    for rule in LIFECYCLE:
        args = dict(connection, name="{{ item }}", rule_id=rule["id"], prefix=rule.get("prefix", ""), status="enabled", state="present")
        args.update((key, value) for key, value in rule.items() if key not in ("id", "prefix"))
        tasks.append({"name": "anchor s3_lifecycle %s" % rule["id"], "community.aws.s3_lifecycle": args, "loop": "{{ buckets }}"})
    return tasks


def scenario_lifecycle(ctx, count):
    rows = []
    scenario = "4. %d buckets x 3 lifecycle rules, re-run" % count
    ours = ["kd-bench-lc-%s-%03d" % (ctx.tag, i) for i in range(count)]
    anchors = ["kd-bench-lca-%s-%03d" % (ctx.tag, i) for i in range(count)]
    ours_vars = {"cellar_endpoint": ctx.proxy.url, "cellar_buckets": [{"name": n, "lifecycle": LIFECYCLE} for n in ours]}
    our_env = dict(ctx.env, CELLAR_ADDON_KEY_ID=ctx.keys[0], CELLAR_ADDON_KEY_SECRET=ctx.keys[1])
    playbook = write_playbook(ctx.work, "lifecycle-anchors.json", lifecycle_anchor_tasks(ctx.proxy.url, ctx.keys))
    try:
        rows.append(measure_rerun(ctx, scenario, "ours", ROOT / "playbooks" / "cellar.yml", our_env, extra=ours_vars))
        for name in anchors:  # s3_lifecycle needs the bucket to exist
            ctx.direct.create_bucket(Bucket=name)
        rows.append(measure_rerun(ctx, scenario, "anchors", playbook, ctx.env, extra={"buckets": anchors}))
    finally:
        for name in ours + anchors:
            ctx.cleanup(name)
    return rows


def print_rows(rows):
    print()
    print("%-46s %-8s %9s %12s %10s %8s" % ("scenario", "side", "requests", "in tasks s", "wall s", "changed"))
    for scenario, label, requests, in_tasks, wall, changed, error in rows:
        if error:
            print("%-46s %-8s %9d %s" % (scenario, label, requests, error))
        else:
            print("%-46s %-8s %9d %12.2f %10.2f %8d" % (scenario, label, requests, in_tasks, wall, changed))
    by_key = {(r[0], r[1]): r for r in rows if not r[6]}
    for scenario in sorted({r[0] for r in rows}):
        ours, anchors = by_key.get((scenario, "ours")), by_key.get((scenario, "anchors"))
        if ours and anchors and ours[3] > 0:
            print("%s: ours %d requests vs %d; %.1fx faster in tasks" % (scenario, ours[2], anchors[2], anchors[3] / ours[3]))


class Context:
    """What every scenario needs: counting proxy, direct client, keys, environment, scratch directory."""

    def __init__(self, rgw_env, work):
        rgw = read_env(rgw_env)
        self.keys = (rgw["KEEPDATA_RGW_OWNER_ACCESS_KEY"], rgw["KEEPDATA_RGW_OWNER_SECRET_KEY"])
        self.proxy = CountingProxy(rgw["KEEPDATA_RGW_ENDPOINT"])
        self.direct = boto3.client(
            "s3",
            endpoint_url=rgw["KEEPDATA_RGW_ENDPOINT"],
            aws_access_key_id=self.keys[0],
            aws_secret_access_key=self.keys[1],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=64, request_checksum_calculation="when_required"),
        )
        self.env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
        self.tag = uuid.uuid4().hex[:6]
        self.work = work

    def cleanup(self, bucket):
        """Delete ``bucket`` with every version, delete marker and its policy, if it exists; never raises."""
        client = self.direct
        try:
            for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
                entries = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                if entries:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": entries, "Quiet": True})
            client.delete_bucket_policy(Bucket=bucket)
            client.delete_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchBucket", "404"):
                print("cleanup of %s failed: %s" % (bucket, exc))
        except BotoCoreError as exc:
            print("cleanup of %s failed: %s" % (bucket, exc))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rgw-env", default=os.environ.get("KEEPDATA_RGW_ENV"), help="rgw.env of tests/rig/rgw.sh (default: $KEEPDATA_RGW_ENV)")
    parser.add_argument("--buckets", type=int, default=50)
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--versions", type=int, default=2)
    parser.add_argument("--skip", default="", help="comma-separated scenarios to skip (1,2,3,4)")
    args = parser.parse_args()
    if not args.rgw_env:
        parser.error("--rgw-env or KEEPDATA_RGW_ENV is required")
    skip = set(args.skip.split(",")) - {""}
    rows = []
    scenarios = (
        ("1", scenario_one, ()),
        ("2", scenario_many, (args.buckets,)),
        ("3", scenario_force_delete, (args.objects, args.versions)),
        ("4", scenario_lifecycle, (args.buckets,)),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="cellar-bench-") as work:
            ctx = Context(args.rgw_env, work)
            for key, scenario, extra in scenarios:
                if key not in skip:
                    rows += scenario(ctx, *extra)
    finally:
        print_rows(rows)


if __name__ == "__main__":
    main()
