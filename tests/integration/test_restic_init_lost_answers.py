# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""restic init through answers lost after the RGW stored the object (issue 30), with the real restic.

Module restic_repo initialises a repository on a bucket behind the recording proxy, which passes every object
write to the RGW and then drops the connection before the answer, once per object. restic's S3 client sends the
write again; the repository must come out whole and initialised once: one config, one key per password, both
passwords opening it (read on the RGW directly, not through the proxy), and a second run changing nothing.
"""

import pytest
from conftest import restic_opens, restic_repo_args, run_module

pytestmark = pytest.mark.rgw

PASSWORD = "lost-answers-password"  # noqa: S105 - the test repository's password
RECOVERY = "lost-answers-recovery"  # noqa: S105 - the test recovery key's password


def repo_args(rgw, endpoint, bucket):
    return restic_repo_args(rgw, endpoint, bucket, PASSWORD, RECOVERY)


def test_restic_init_with_every_object_write_answer_lost_initialises_once(rgw, recording_proxy, existing_bucket):
    bucket = existing_bucket
    recording_proxy.lose_answers(requests=[("PUT", "")])
    first = run_module("restic_repo", repo_args(rgw, recording_proxy.url, bucket))
    assert not first.get("failed"), first
    assert first["changed"] is True and first["initialized"] is True and first["recovery_key_added"] is True
    requests = recording_proxy.take()
    lost = [request for request in requests if request.lost]
    assert lost, "no answer was lost: the test proves nothing"
    # Each lost write was sent again (restic's S3 client retried it), and the retry met the object already there.
    for request in lost:
        assert [r for r in requests if (r.method, r.path) == (request.method, request.path) and not r.lost], [str(r) for r in requests]
    objects = rgw.client().list_objects_v2(Bucket=bucket, Prefix="repo/").get("Contents", [])
    names = sorted(item["Key"] for item in objects)
    assert names.count("repo/config") == 1, names
    assert len([name for name in names if name.startswith("repo/keys/")]) == 2, names
    assert restic_opens(rgw, bucket + "/repo", PASSWORD) and restic_opens(rgw, bucket + "/repo", RECOVERY)
    recording_proxy.come_back()
    again = run_module("restic_repo", repo_args(rgw, recording_proxy.url, bucket))
    assert not again.get("failed") and again["changed"] is False and again["initialized"] is False, again
