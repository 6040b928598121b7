# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A throttling server: 20 buckets through cellar_bucket's ``buckets`` list under 503 SlowDown answers (issue 30).

The recording proxy answers ``503 SlowDown`` (an S3 error document) to a quarter of all requests, reads and writes,
and to the first try of every bucket create and delete (``RecordingProxy.slow_down``): either without passing the
request on (the RGW never saw it), or after the RGW applied it, in place of its answer. botocore backs off and sends
the request again; at most two tries of one request are answered 503, so its third one always gets through.
Each run must succeed with an honest ``changed`` per bucket, the server (read directly, not through the proxy) must
hold the declared state, and a fault may cost its retry and at most one read.

tests/benchmarks/cellar_fault_loop.sh runs this file again and again.
"""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import delete_bucket_quietly, run_module, server_snapshot

pytestmark = pytest.mark.rgw

BUCKETS = 20
WORKERS = 8
RATE = 0.25
# The first try of every bucket create and delete is faulted too, so that each run meets a retried create and a
# retried delete, whatever the random bucket names make of the rate.
BUCKET_WRITES = [("PUT", ""), ("DELETE", "")]
CORS = [{"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET", "PUT"], "allowed_headers": ["*"], "max_age_seconds": 600}]
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
# Requests of a run with no fault: per bucket, a create with its configuration is one read and four writes (create,
# versioning, policy, CORS), a re-run four reads, a forced delete of a bucket holding one object six requests (HEAD,
# uploads, versions, the batch delete, versions again, delete) and a plain delete four (HEAD, versions, uploads, delete).
CREATE, RERUN, FORCED, PLAIN = 5, 4, 6, 4


def run(proxy, rgw, entries):
    result = run_module("cellar_bucket", dict(rgw.connection_args(), endpoint=proxy.url, buckets=entries, workers=WORKERS))
    assert not result.get("failed"), result
    return result


def cost(requests, floor):
    """(faults, extra requests) of one run: the tries answered 503, and the requests beyond the run's floor. Each
    fault costs its retry, and at most one read more (a retried create answered 'already exists' proves the bucket
    ours with ListBuckets)."""
    faults = sum(r.slowed_down for r in requests)
    extra = len(requests) - floor
    assert faults <= extra <= 2 * faults, (faults, extra, [str(r) for r in requests])
    return faults, extra


def declared_state(rgw, names):
    """Each bucket's versioning, CORS origins, policy effect and whether anyone may list it, read on the RGW itself."""
    client = rgw.client()

    def state(name):
        policy = json.loads(client.get_bucket_policy(Bucket=name)["Policy"])
        grants = client.get_bucket_acl(Bucket=name)["Grants"]
        return (
            client.get_bucket_versioning(Bucket=name).get("Status"),
            tuple(client.get_bucket_cors(Bucket=name)["CORSRules"][0]["AllowedOrigins"]),
            policy["Statement"][0]["Effect"],
            any(g["Grantee"].get("URI") == ALL_USERS for g in grants),
        )

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return set(pool.map(state, names))


@pytest.mark.parametrize("applied", [False, True], ids=["503-unseen", "503-applied"])
def test_twenty_buckets_under_slow_down_answers(rgw, recording_proxy, applied):
    suffix = uuid.uuid4().hex[:8]
    names = ["kd-slow-%s-%02d" % (suffix, i) for i in range(BUCKETS)]
    wanted = [{"name": n, "acl": "private", "versioning": "enabled", "preset": "public_read", "cors": CORS} for n in names]
    costs = {}
    try:
        recording_proxy.slow_down(applied=applied, rate=RATE, seed=30, requests=BUCKET_WRITES, max_per_request=2)
        result = run(recording_proxy, rgw, wanted)
        assert [(e["name"], e["changed"]) for e in result["buckets"]] == [(n, True) for n in names], result
        requests = recording_proxy.take()
        costs["create"] = cost(requests, CREATE * BUCKETS)
        # Every create was answered 503 once at least, and each was sent again.
        creates = [r for r in requests if (r.method, r.query) == ("PUT", {}) and r.path.count("/") == 1]
        assert sum(r.slowed_down for r in creates) >= BUCKETS and len(creates) > BUCKETS, [str(r) for r in creates]
        # The RGW saw every request but the ones the proxy did not pass on.
        assert sum(r.server_status is not None for r in requests) == len(requests) - (0 if applied else costs["create"][0])
        assert set(server_snapshot(rgw)["buckets"]) >= set(names)
        assert declared_state(rgw, names) == {("Enabled", ("https://app.example.com",), "Allow", False)}

        # Nothing to do, faults still on (reads are faulted too): no write, the floor of four reads per bucket, and
        # exactly one more read per 503 (a read-only run has no 'already done' to prove).
        result = run(recording_proxy, rgw, wanted)
        assert result["changed"] is False and not any(e["changed"] for e in result["buckets"]), result
        requests = recording_proxy.take()
        assert {r.method for r in requests} == {"GET"}, [str(r) for r in requests]
        assert sum(not r.slowed_down for r in requests) == RERUN * BUCKETS
        costs["re-run"] = cost(requests, RERUN * BUCKETS)
        assert costs["re-run"][0] == costs["re-run"][1]

        # Half the buckets hold an object (forced delete), half are empty (plain delete).
        client = rgw.client()
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(lambda name: client.put_object(Bucket=name, Key="keep.txt", Body=b"x"), names[::2]))
        gone = [{"name": n, "state": "absent", "force": i % 2 == 0} for i, n in enumerate(names)]
        result = run(recording_proxy, rgw, gone)
        deleted = {e["name"]: (e["changed"], e["deleted_objects"]) for e in result["buckets"]}
        assert deleted == {n: (True, 1 if i % 2 == 0 else 0) for i, n in enumerate(names)}, result
        assert not set(server_snapshot(rgw)["buckets"]) & set(names)
        requests = recording_proxy.take()
        costs["delete"] = cost(requests, (FORCED + PLAIN) * BUCKETS // 2)
        bucket_deletes = [r for r in requests if (r.method, r.query) == ("DELETE", {})]
        assert sum(r.slowed_down for r in bucket_deletes) >= BUCKETS, [str(r) for r in bucket_deletes]
        if applied:
            # The RGW deleted the bucket on the first try: the retry was answered NoSuchBucket, and counted a change.
            assert sum(r.status == 404 for r in bucket_deletes) == BUCKETS, [str(r) for r in bucket_deletes]
        print("\n%s: (503 answers, extra requests) per run: %s" % ("applied" if applied else "unseen", costs))
    finally:
        recording_proxy.come_back()
        for name in set(server_snapshot(rgw)["buckets"]) & set(names):
            delete_bucket_quietly(rgw, name)
