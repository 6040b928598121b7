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
