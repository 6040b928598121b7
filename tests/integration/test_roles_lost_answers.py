# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles' own S3 writes with the first answer of every write lost after the RGW applied it (issue 30).

Both roles write to S3 from the controller: s3fs creates its bucket (``tasks/bucket.yml``, delegated to localhost),
backup creates its bucket and initialises the restic repository in it (``tasks/repository.yml``: cellar_bucket, then
restic_repo). A real ansible-playbook run on localhost includes exactly those task files after each role's
``validate.yml`` (the plan they read), with the endpoint pointed at the recording proxy, which passes every write to
the RGW and closes the connection before the answer on the first try of each (``lose_answers``). The tasks must
report what they did, the RGW (read directly, not through the proxy) must hold the buckets and one repository that
opens with both passwords, and a second run must change nothing and send no write.
"""

import json
import uuid

import pytest
from conftest import WRITE_METHODS, WRITES, delete_bucket_quietly, restic_opens, run_playbook, server_snapshot, tail

pytestmark = pytest.mark.rgw

PASSWORD = "roles-lost-answers-password"  # noqa: S105 - the test repository's password
RECOVERY = "roles-lost-answers-recovery"  # noqa: S105 - the test recovery key's password
PLAYBOOK = """---
- name: The roles' S3 writes, as the roles make them on the controller
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Plan the shared storage
      ansible.builtin.include_role:
        name: keepdata.storage.s3fs
        tasks_from: validate
    - name: Create the shared storage bucket
      ansible.builtin.include_role:
        name: keepdata.storage.s3fs
        tasks_from: bucket
    - name: Plan the backups
      ansible.builtin.include_role:
        name: keepdata.storage.backup
        tasks_from: validate
    - name: Create the backup bucket, then open or initialise the repository
      ansible.builtin.include_role:
        name: keepdata.storage.backup
        tasks_from: repository
"""
# The roles' tasks that write to S3, by the names they have in roles/*/tasks.
S3FS_BUCKET = "Create the buckets the hosts asked for"
BACKUP_BUCKET = "Create the bucket"
REPOSITORY = "Open the repository, or initialise it when there is none"


def role_tasks(stdout):
    """{task name: localhost's result} of a run printed by the ansible.posix.json callback (role tasks are named
    ``role : task``; the role's name is left out)."""
    results = {}
    for play in json.loads(stdout)["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"].rsplit(" : ", 1)[-1]
            results[name] = task["hosts"]["localhost"]
    return results


def test_role_bucket_and_repository_tasks_with_every_write_answer_lost(rgw, recording_proxy, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    shared, backups = "kd-roles-shared-%s" % suffix, "kd-roles-backup-%s" % suffix
    keys = {"access_key": rgw.owner["access_key"], "secret_key": rgw.owner["secret_key"]}
    extra_vars = {
        "s3fs_bucket": shared,
        "s3fs_endpoint": recording_proxy.url,
        "s3fs_access_key": keys["access_key"],
        "s3fs_secret_key": keys["secret_key"],
        "s3fs_create_bucket": True,
        "backup_s3_bucket": backups,
        "backup_s3_endpoint": recording_proxy.url,
        "backup_s3_access_key": keys["access_key"],
        "backup_s3_secret_key": keys["secret_key"],
        "backup_create_bucket": True,
        "backup_password": PASSWORD,
        "backup_recovery_password": RECOVERY,
        "backup_jobs": [],
    }
    playbook = tmp_path / "roles_writes.yml"
    playbook.write_text(PLAYBOOK)
    secrets = (keys["secret_key"], PASSWORD, RECOVERY)

    def converge():
        proc = run_playbook(rgw, playbook, extra_vars, connection_env=False, callback="ansible.posix.json")
        assert proc.returncode == 0, "%s\n%s" % (tail(proc.stdout, 120, secrets), tail(proc.stderr, 40, secrets))
        tasks = role_tasks(proc.stdout)
        return {name: (tasks[name].get("changed"), tasks[name].get("skipped", False)) for name in (S3FS_BUCKET, BACKUP_BUCKET, REPOSITORY)}, tasks

    try:
        recording_proxy.lose_answers(requests=WRITES)
        changed, tasks = converge()
        assert changed == {S3FS_BUCKET: (True, False), BACKUP_BUCKET: (True, False), REPOSITORY: (True, False)}, changed
        assert tasks[REPOSITORY]["initialized"] is True and tasks[REPOSITORY]["recovery_key_added"] is True, tasks[REPOSITORY]
        requests = recording_proxy.take()
        lost = [r for r in requests if r.lost]
        # Both bucket creates and restic's object writes lost their first answer, and each was sent again.
        assert {"PUT /%s" % shared, "PUT /%s" % backups} <= {"%s %s" % (r.method, r.path) for r in lost}, [str(r) for r in requests]
        assert any(r.path.startswith("/%s/restic/" % backups) for r in lost), [str(r) for r in requests]
        for request in lost:
            again = [r for r in requests if (r.method, r.path, r.query) == (request.method, request.path, request.query) and not r.lost]
            assert again, "%s was not sent again: %s" % (request, [str(r) for r in requests])

        # On the RGW itself: both buckets, one repository (one config, a key per password) that both passwords open.
        assert {shared, backups} <= set(server_snapshot(rgw)["buckets"])
        objects = rgw.client().list_objects_v2(Bucket=backups, Prefix="restic/").get("Contents", [])
        names = sorted(item["Key"] for item in objects)
        assert names.count("restic/config") == 1, names
        assert len([name for name in names if name.startswith("restic/keys/")]) == 2, names
        assert restic_opens(rgw, backups + "/restic", PASSWORD) and restic_opens(rgw, backups + "/restic", RECOVERY)

        # Again, answers still lost if any write came: nothing to do, and no write sent at all.
        changed, tasks = converge()
        assert changed == {S3FS_BUCKET: (False, False), BACKUP_BUCKET: (False, False), REPOSITORY: (False, False)}, changed
        requests = recording_proxy.take()
        assert requests and not [str(r) for r in requests if r.method in WRITE_METHODS], [str(r) for r in requests]
    finally:
        recording_proxy.come_back()
        delete_bucket_quietly(rgw, shared)
        delete_bucket_quietly(rgw, backups)
