# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every write the cellar_* modules make, with its answer lost after the RGW applied it (issue 30).

The recording proxy passes each write to the real RGW, which applies it, then closes the client's connection
without the answer (``RecordingProxy.lose_answers``): botocore sends the write again, and the retry meets the effect
of its first try. The run must succeed with an honest ``changed``, the server (read back directly, not through the
proxy) must hold the declared state, and a lost answer may cost its retry and at most one read.
"""

import json
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import WRITES, delete_bucket_quietly, run_module, server_snapshot

pytestmark = pytest.mark.rgw

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
CORS = [{"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET", "PUT"], "allowed_headers": ["*"], "max_age_seconds": 600}]
LIFECYCLE = [{"id": "tmp", "prefix": "tmp/", "expiration_days": 7}]


def run(proxy, rgw, module, args):
    """Run ``module`` through the proxy; returns its result."""
    return run_module(module, dict(rgw.connection_args(), endpoint=proxy.url, **args))


def succeeded(result):
    assert not result.get("failed"), result
    return result


def lost_and_retried(requests):
    """The lost requests (as text), after checking that each one was sent again: a lost answer costs its retry."""
    lost = [r for r in requests if r.lost]
    sent = Counter((r.method, r.path, tuple(sorted(r.query))) for r in requests)
    for request in lost:
        assert sent[(request.method, request.path, tuple(sorted(request.query)))] >= 2, [str(r) for r in requests]
    return sorted(str(r) for r in lost)


def public_read(grants):
    return any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ" for g in grants)


def test_one_bucket_created_configured_then_reset_with_every_write_answer_lost(rgw, recording_proxy, cellar_bucket):
    b = cellar_bucket
    whole = {"name": b, "acl": "public-read", "versioning": "enabled", "preset": "public_read", "cors": CORS, "lifecycle": LIFECYCLE}
    recording_proxy.lose_answers(requests=WRITES)
    assert succeeded(run(recording_proxy, rgw, "cellar_bucket", whole))["changed"] is True
    requests = recording_proxy.take()
    assert [line.split(" -> ")[0] for line in lost_and_retried(requests)] == sorted(
        "PUT /%s%s" % (b, sub) for sub in ("", "?cors", "?lifecycle", "?policy", "?versioning")
    )
    # The plan (one read, five writes) and one retry per lost answer: no extra read.
    assert len(requests) == 6 + 5, [str(r) for r in requests]
    snapshot = server_snapshot(rgw, b)
    assert public_read(snapshot["acl"]) and snapshot["versioning"] == "Enabled"
    assert json.loads(snapshot["policy"])["Statement"][0]["Principal"] in ("*", {"AWS": "*"}, {"AWS": ["*"]})
    assert snapshot["cors"][0]["AllowedOrigins"] == ["https://app.example.com"]
    assert [rule["ID"] for rule in snapshot["lifecycle"]] == ["tmp"]

    # Nothing to do: the request floor, five reads (four sub-resources and the lifecycle), nothing lost.
    assert succeeded(run(recording_proxy, rgw, "cellar_bucket", whole))["changed"] is False
    requests = recording_proxy.take()
    assert sorted(str(r) for r in requests) == ["GET /%s?%s -> 200" % (b, sub) for sub in ("acl", "cors", "lifecycle", "policy", "versioning")]

    # Every sub-resource put back or removed: ACL and versioning writes, policy, CORS and lifecycle deletes.
    reset = {"name": b, "acl": "private", "versioning": "suspended", "policy": {}, "cors": [], "lifecycle": []}
    assert succeeded(run(recording_proxy, rgw, "cellar_bucket", reset))["changed"] is True
    requests = recording_proxy.take()
    lost = lost_and_retried(requests)
    assert [line.split(" -> ")[0] for line in lost] == sorted(
        ["PUT /%s?acl" % b, "PUT /%s?versioning" % b, "DELETE /%s?policy" % b, "DELETE /%s?cors" % b, "DELETE /%s?lifecycle" % b]
    )
    assert len(requests) == 5 + 5 + 5, [str(r) for r in requests]  # five reads, five writes, five retries
    snapshot = server_snapshot(rgw, b)
    assert not public_read(snapshot["acl"]) and snapshot["versioning"] == "Suspended"
    assert snapshot["policy"] is None and snapshot["cors"] is None and snapshot["lifecycle"] is None


def test_bucket_deleted_alone_is_changed_although_the_retry_found_no_bucket(rgw, recording_proxy, existing_bucket):
    recording_proxy.lose_answers(requests=WRITES)
    result = succeeded(run(recording_proxy, rgw, "cellar_bucket", {"name": existing_bucket, "state": "absent"}))
    assert result["changed"] is True and result["deleted_objects"] == 0, result
    assert existing_bucket not in server_snapshot(rgw)["buckets"]
    requests = [str(r) for r in recording_proxy.take()]
    b = existing_bucket
    # HEAD, the two listings that prove it empty, the delete whose answer was lost, and its retry: no extra read.
    assert requests[0] == "HEAD /%s -> 200" % b and requests[-2:] == ["DELETE /%s -> 204 (answer lost)" % b, "DELETE /%s -> 404" % b], requests
    assert len(requests) == 5, requests


def test_forced_delete_with_versions_and_an_unfinished_upload_every_answer_lost(rgw, recording_proxy, existing_bucket):
    b = existing_bucket
    client = rgw.client()
    client.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    for key in ("a.txt", "b.txt", "c.txt"):
        client.put_object(Bucket=b, Key=key, Body=b"one")
        client.put_object(Bucket=b, Key=key, Body=b"two")
    client.delete_object(Bucket=b, Key="c.txt")  # a delete marker
    client.create_multipart_upload(Bucket=b, Key="big.bin")
    recording_proxy.lose_answers(requests=WRITES)
    result = succeeded(run(recording_proxy, rgw, "cellar_bucket", {"name": b, "state": "absent", "force": True}))
    assert result["changed"] is True and result["deleted_objects"] == 7, result  # six versions and one marker
    assert b not in server_snapshot(rgw)["buckets"]
    requests = recording_proxy.take()
    lost = lost_and_retried(requests)
    assert [line.split(" -> ")[0] for line in lost] == ["DELETE /%s" % b, "DELETE /%s/big.bin?uploadId" % b, "POST /%s?delete" % b]
    retries = [str(r) for r in requests if not r.lost and (r.method, r.path) in {(x.method, x.path) for x in requests if x.lost}]
    assert sorted(retries) == sorted(["DELETE /%s -> 404" % b, "DELETE /%s/big.bin?uploadId -> 404" % b, "POST /%s?delete -> 200" % b])


def test_create_retry_meeting_our_own_bucket_with_another_acl_adopts_it_and_sets_the_acl(rgw, recording_proxy, cellar_bucket):
    """Between the lost answer and the retry, the bucket's ACL changes: RGW then answers the retried create with
    BucketAlreadyExists. The bucket is in our ListBuckets, so it is ours: adopted (changed) and given the ACL asked."""
    b = cellar_bucket
    recording_proxy.lose_answers(requests=[("PUT", "")], on_lost=lambda _r: rgw.client().put_bucket_acl(Bucket=b, ACL="private"))
    assert succeeded(run(recording_proxy, rgw, "cellar_bucket", {"name": b, "acl": "public-read"}))["changed"] is True
    assert public_read(server_snapshot(rgw, b)["acl"])
    requests = [str(r) for r in recording_proxy.take()]
    # The retry, one read (ListBuckets: ours?) and the ACL write.
    assert requests == ["GET /%s?acl -> 404" % b, "PUT /%s -> 200 (answer lost)" % b, "PUT /%s -> 409" % b, "GET / -> 200", "PUT /%s?acl -> 200" % b]


def test_create_retry_never_adopts_a_bucket_of_another_account(rgw, recording_proxy, cellar_bucket):
    """Between the lost answer and the retry, the bucket goes and another account takes its name: the retried create
    meets BucketAlreadyExists for a bucket that is not in our ListBuckets, and the run fails naming the conflict."""
    b = cellar_bucket
    addon, owner = rgw.client("addon"), rgw.client()

    def taken_by_another_account(_request):
        addon.delete_bucket(Bucket=b)
        owner.create_bucket(Bucket=b)

    recording_proxy.lose_answers(requests=[("PUT", "")], on_lost=taken_by_another_account)
    result = run_module("cellar_bucket", dict(rgw.connection_args("addon"), endpoint=recording_proxy.url, name=b, versioning="enabled"))
    assert result.get("failed") is True and result["changed"] is False, result
    assert "is already taken by another account" in result["msg"], result["msg"]
    assert owner.get_bucket_versioning(Bucket=b).get("Status") is None  # the other account's bucket left alone
    assert b not in [entry["Name"] for entry in addon.list_buckets()["Buckets"]]
    assert [str(r) for r in recording_proxy.take()][-2:] == ["PUT /%s -> 409" % b, "GET / -> 200"]


MODULES = {
    "policy": ("cellar_bucket_policy", {"preset": "public_read"}),
    "cors": ("cellar_cors", {"rules": CORS}),
    "lifecycle": ("cellar_lifecycle", {"rules": LIFECYCLE}),
}


def test_configuration_modules_put_then_delete_with_the_answer_lost(rgw, recording_proxy, existing_bucket):
    """cellar_bucket_policy, cellar_cors and cellar_lifecycle side by side on one bucket (each its own sub-resource):
    the put, then the delete, each with its first answer lost."""
    b = existing_bucket

    def each_module(options):
        with ThreadPoolExecutor(max_workers=len(MODULES)) as pool:
            results = list(pool.map(lambda case: run(recording_proxy, rgw, MODULES[case][0], dict(options(case), bucket=b)), MODULES))
        assert [succeeded(result)["changed"] for result in results] == [True] * len(MODULES), results
        requests = recording_proxy.take()
        lost = [line.split(" -> ")[0] for line in lost_and_retried(requests)]
        # Per module: its read and its write, then one retry per lost answer and at most one read more (as a busy
        # RGW may answer a read late: three modules write the same bucket's metadata at once).
        extra = len(requests) - 2 * len(MODULES)
        assert len(lost) <= extra <= 2 * len(lost), [str(r) for r in requests]
        assert sum(r.method == "GET" for r in requests) <= 2 * len(MODULES), [str(r) for r in requests]
        return lost

    recording_proxy.lose_answers(requests=WRITES)
    lost = each_module(lambda case: MODULES[case][1])
    assert lost == sorted("PUT /%s?%s" % (b, case) for case in MODULES)
    snapshot = server_snapshot(rgw, b)
    assert all(snapshot[case] for case in MODULES), snapshot

    recording_proxy.lose_answers(requests=WRITES)
    lost = each_module(lambda case: {"state": "absent"})
    assert lost == sorted("DELETE /%s?%s" % (b, case) for case in MODULES)
    snapshot = server_snapshot(rgw, b)
    assert [snapshot[case] for case in MODULES] == [None] * len(MODULES), snapshot


BUCKETS = 50
# A quarter of the write answers lost, the same ones on every run (seeded, whatever the order of the threads).
RATE = 0.25


def test_fifty_buckets_created_and_deleted_with_a_quarter_of_the_write_answers_lost(rgw, recording_proxy):
    suffix = uuid.uuid4().hex[:8]
    names = ["kd-lost-%s-%02d" % (suffix, i) for i in range(BUCKETS)]
    wanted = [{"name": n, "acl": "private", "versioning": "enabled", "preset": "public_read", "cors": CORS} for n in names]
    try:
        recording_proxy.lose_answers(rate=RATE, seed=30)
        result = succeeded(run(recording_proxy, rgw, "cellar_bucket", {"buckets": wanted, "workers": 8}))
        assert result["changed"] is True and all(entry["changed"] for entry in result["buckets"]), result
        requests = recording_proxy.take()
        lost = lost_and_retried(requests)
        # Without a lost answer: one read and four writes per bucket. Each lost answer costs its retry, and a create
        # answered "already exists" one ListBuckets read to prove the bucket ours.
        extra = len(requests) - 5 * BUCKETS
        assert len(lost) >= 20 and len(lost) <= extra <= 2 * len(lost), (len(lost), extra)
        client = rgw.client()
        assert set(server_snapshot(rgw)["buckets"]) >= set(names)

        def state(name):
            policy = json.loads(client.get_bucket_policy(Bucket=name)["Policy"])
            return (
                client.get_bucket_versioning(Bucket=name).get("Status"),
                tuple(client.get_bucket_cors(Bucket=name)["CORSRules"][0]["AllowedOrigins"]),
                policy["Statement"][0]["Effect"],
                public_read(client.get_bucket_acl(Bucket=name)["Grants"]),
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(state, names)) == {("Enabled", ("https://app.example.com",), "Allow", False)}

        # Idempotent, faults still on: the request floor of four reads per bucket, no write, so nothing lost.
        assert succeeded(run(recording_proxy, rgw, "cellar_bucket", {"buckets": wanted, "workers": 8}))["changed"] is False
        requests = recording_proxy.take()
        assert len(requests) == 4 * BUCKETS and not any(r.lost for r in requests)

        # Half the buckets hold an object (forced delete), half are empty (plain delete).
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda name: client.put_object(Bucket=name, Key="keep.txt", Body=b"x"), names[::2]))
        gone = [{"name": n, "state": "absent", "force": i % 2 == 0} for i, n in enumerate(names)]
        recording_proxy.lose_answers(rate=RATE, seed=31)
        result = succeeded(run(recording_proxy, rgw, "cellar_bucket", {"buckets": gone, "workers": 8}))
        assert all(entry["changed"] for entry in result["buckets"]), result
        assert not set(server_snapshot(rgw)["buckets"]) & set(names)
        requests = recording_proxy.take()
        lost = lost_and_retried(requests)
        assert any(line.startswith("DELETE /kd-lost-") and "?" not in line for line in lost), lost  # a bucket delete among them
        deleted = {entry["name"]: entry["deleted_objects"] for entry in result["buckets"]}
        assert deleted == {n: (1 if i % 2 == 0 else 0) for i, n in enumerate(names)}
    finally:
        recording_proxy.come_back()
        for name in set(server_snapshot(rgw)["buckets"]) & set(names):
            delete_bucket_quietly(rgw, name)
