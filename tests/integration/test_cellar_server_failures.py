# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The server going away in the middle of a run: a clear failure, counts that tell the truth, and a next run that
completes the job. The RGW is real; the recording proxy in front of it plays the server that stops answering."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import delete_bucket_quietly, run_module, server_snapshot

pytestmark = pytest.mark.rgw

# More keys than one delete request takes (1000), so a forced delete needs several.
KEYS = 1500


def fill(rgw, bucket, count):
    client = rgw.client()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=bucket, Key="data/%05d.bin" % i, Body=b"x"), range(count)))


def count_versions(rgw, bucket):
    pages = rgw.client().get_paginator("list_object_versions").paginate(Bucket=bucket)
    return sum(len(page.get("Versions", [])) + len(page.get("DeleteMarkers", [])) for page in pages)


def test_server_gone_during_a_forced_delete(rgw, recording_proxy):
    suffix = uuid.uuid4().hex[:8]
    bucket, neighbour = "kd-gone-%s" % suffix, "kd-gone-neighbour-%s" % suffix
    client = rgw.client()
    try:
        for name in (bucket, neighbour):
            client.create_bucket(Bucket=name)
        fill(rgw, bucket, KEYS)
        client.put_object(Bucket=neighbour, Key="keep.txt", Body=b"keep")
        # One delete request in flight at a time, so the server can go away between two of them.
        args = dict(rgw.connection_args(), endpoint=recording_proxy.url, name=bucket, state="absent", force=True, workers=1)

        # The server answers the first batch delete, then nothing more.
        recording_proxy.go_away_after(lambda r: r.method == "POST" and "delete" in r.query)
        result = run_module("cellar_bucket", args)
        assert result.get("failed") is True, result
        assert "Traceback" not in result["msg"] and "exception" not in result, result
        assert recording_proxy.url in result["msg"], result["msg"]
        # Honest: it says it changed the server, and how many versions really went.
        left = count_versions(rgw, bucket)
        assert 0 < left < KEYS
        assert result["changed"] is True, result
        assert result["deleted_objects"] == KEYS - left, result
        assert "%d object versions were deleted before the failure; running again completes the removal" % (KEYS - left) in result["msg"]

        # The server is back: the next run deletes what is left and the bucket.
        recording_proxy.come_back()
        result = run_module("cellar_bucket", args)
        assert not result.get("failed"), result
        assert result["changed"] is True
        assert result["deleted_objects"] == left
        snapshot = server_snapshot(rgw, neighbour)
        assert bucket not in snapshot["buckets"]
        assert snapshot["keys"] == ["keep.txt"]  # nothing outside the bucket touched
    finally:
        recording_proxy.come_back()
        delete_bucket_quietly(rgw, bucket)
        delete_bucket_quietly(rgw, neighbour)


BUCKETS = 50


def test_server_gone_in_the_middle_of_a_50_bucket_list(rgw, recording_proxy):
    """cellar_bucket with ``buckets``: the server answers 20 bucket creations, then nothing. Every bucket is accounted
    for (created or failed, each with its message), ``changed`` is honest per bucket, and the next run creates the
    rest."""
    suffix = uuid.uuid4().hex[:8]
    names = ["kd-list-%s-%02d" % (suffix, i) for i in range(BUCKETS)]
    args = dict(rgw.connection_args(), endpoint=recording_proxy.url, buckets=[{"name": n, "versioning": "enabled"} for n in names], workers=8)
    created = []

    def twentieth_creation(request):
        if request.method == "PUT" and not request.query and request.status == 200:
            created.append(request.path)
        return len(created) >= 20

    try:
        recording_proxy.go_away_after(twentieth_creation)
        result = run_module("cellar_bucket", args)
        assert result.get("failed") is True, result
        assert "Traceback" not in result["msg"] and "exception" not in result, result
        on_server = set(server_snapshot(rgw)["buckets"]) & set(names)
        assert 20 <= len(on_server) < BUCKETS
        assert result["changed"] is True
        by_name = {entry["name"]: entry for entry in result["buckets"]}
        assert sorted(by_name) == names  # every bucket has its result
        failed = [name for name in names if "msg" in by_name[name]]
        assert 0 < len(failed) < BUCKETS
        assert result["msg"].startswith("%d of %d buckets failed (%s); the first errors: " % (len(failed), BUCKETS, ", ".join(failed))), result["msg"]
        assert "closed the connection without answering, 5 attempts in all" in result["msg"]
        assert recording_proxy.url in result["msg"]
        for name in names:
            # Honest per bucket: changed when the bucket was created, even if its versioning write then failed.
            assert by_name[name]["changed"] is (name in on_server), by_name[name]
            if name not in failed:
                assert rgw.client().get_bucket_versioning(Bucket=name).get("Status") == "Enabled"

        recording_proxy.come_back()
        result = run_module("cellar_bucket", args)
        assert not result.get("failed"), result
        assert result["changed"] is True
        assert set(server_snapshot(rgw)["buckets"]) >= set(names)
        client = rgw.client()
        assert all(client.get_bucket_versioning(Bucket=n).get("Status") == "Enabled" for n in names)
        assert run_module("cellar_bucket", args)["changed"] is False
    finally:
        recording_proxy.come_back()
        for name in names:
            delete_bucket_quietly(rgw, name)


def test_a_server_that_answers_too_slowly_is_a_clear_failure_naming_the_timeout(rgw, recording_proxy, existing_bucket):
    args = dict(rgw.connection_args(), endpoint=recording_proxy.url, name=existing_bucket, versioning="enabled", timeout=1)
    recording_proxy.answer_late(2)
    result = run_module("cellar_bucket", args)
    assert result.get("failed") is True, result
    assert result["changed"] is False
    assert "exception" not in result and "Traceback" not in result["msg"], result
    assert result["msg"] == (
        "get bucket versioning on bucket %r: no answer from %s within timeout=1 s, 5 attempts in all (raise timeout for a slow server)"
        % (existing_bucket, recording_proxy.url)
    )
    requests = recording_proxy.take(at_least=5)
    assert [(r.method, r.query) for r in requests] == [("GET", {"versioning": ""})] * 5  # the same read, five times, nothing written

    recording_proxy.come_back()
    result = run_module("cellar_bucket", dict(args, timeout=30))
    assert result["changed"] is True, result
