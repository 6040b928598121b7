# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/cellar.yml and the action group through real ansible-playbook runs (check mode, --diff, idempotence)."""

import json
import re
import uuid

import pytest
from conftest import ROOT, ansible_playbook, delete_bucket_quietly, http_request, run_module, server_snapshot

pytestmark = pytest.mark.rgw


def recap(output):
    """The localhost recap of a run that must have passed: a failed or unreachable host fails the test."""
    match = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output
    assert (int(match.group(3)), int(match.group(4))) == (0, 0), output
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "failed": int(match.group(4))}


def test_cellar_playbook_check_apply_idempotent_absent(rgw):
    suffix = uuid.uuid4().hex[:8]
    public, shared = "kd-pb-public-%s" % suffix, "kd-pb-%s.example.com" % suffix
    buckets = [
        {
            "name": public,
            "acl": "private",
            "versioning": "enabled",
            "preset": "public_read",
            "cors": [{"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET", "HEAD"], "max_age_seconds": 300}],
        },
        {
            "name": shared,
            "preset": "read_only",
            "principals": [rgw.addon["uid"]],
            "lifecycle": [{"id": "unfinished-uploads", "abort_incomplete_multipart_upload_days": 2}],
        },
    ]
    playbook = ROOT / "playbooks" / "cellar.yml"
    try:
        before = server_snapshot(rgw)
        rc, out = ansible_playbook(rgw, playbook, {"cellar_buckets": buckets}, "--check", "--diff")
        assert rc == 0, out
        assert recap(out)["changed"] == 1
        assert '"exists": false' in out or "exists: false" in out, out
        assert "unfinished-uploads" in out, out  # the lifecycle rules in the diff
        assert server_snapshot(rgw) == before

        rc, out = ansible_playbook(rgw, playbook, {"cellar_buckets": buckets}, "--diff")
        assert rc == 0, out
        assert recap(out)["changed"] == 1
        rgw.client().put_object(Bucket=public, Key="hello.txt", Body=b"hello")
        assert http_request("%s/%s/hello.txt" % (rgw.endpoint, public))[:3:2] == (200, b"hello")
        status, headers, _body = http_request(
            "%s/%s/hello.txt" % (rgw.endpoint, public),
            method="OPTIONS",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
        )
        assert status == 200 and headers["access-control-allow-origin"] == "https://app.example.com"
        assert rgw.client("addon").list_objects_v2(Bucket=shared)["KeyCount"] == 0
        assert server_snapshot(rgw, shared)["lifecycle"][0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}

        rc, out = ansible_playbook(rgw, playbook, {"cellar_buckets": buckets}, "--diff")
        assert rc == 0, out
        assert recap(out)["changed"] == 0, out

        gone = [{"name": b["name"], "state": "absent", "force": True} for b in buckets]
        rc, out = ansible_playbook(rgw, playbook, {"cellar_buckets": gone})
        assert rc == 0, out
        assert not {public, shared} & set(server_snapshot(rgw)["buckets"])
        rc, out = ansible_playbook(rgw, playbook, {"cellar_buckets": gone})
        assert rc == 0, out
        assert recap(out)["changed"] == 0, out
    finally:
        delete_bucket_quietly(rgw, public)
        delete_bucket_quietly(rgw, shared)


def test_action_group_sets_the_connection_once(rgw, existing_bucket, tmp_path):
    playbook = tmp_path / "group.yml"
    playbook.write_text(
        """---
- name: Every cellar module takes the connection from module_defaults
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/keepdata.storage.cellar:
      endpoint: "{{ endpoint }}"
      access_key: "{{ access_key }}"
      secret_key: "{{ secret_key }}"
  tasks:
    - name: Policy
      keepdata.storage.cellar_bucket_policy:
        bucket: "{{ bucket }}"
        preset: public_read
    - name: CORS
      keepdata.storage.cellar_cors:
        bucket: "{{ bucket }}"
        rules:
          - allowed_origins: ["*"]
            allowed_methods: [GET]
    - name: Info
      keepdata.storage.cellar_bucket_info:
        name: "{{ bucket }}"
        policy: true
        cors: true
      register: info
    - name: Check
      when: not ansible_check_mode
      ansible.builtin.assert:
        that:
          - info.buckets | length == 1
          - info.buckets[0].cors | length == 1
          - info.buckets[0].policy.Statement | length == 1
"""
    )
    extra = {"endpoint": rgw.endpoint, "access_key": rgw.owner["access_key"], "secret_key": rgw.owner["secret_key"], "bucket": existing_bucket}
    # No CELLAR_ADDON_* nor AWS_* in the environment: only the action group can give the modules their connection.
    rc, out = ansible_playbook(rgw, playbook, extra, "--check", "--diff", connection_env=False)
    assert rc == 0, out
    assert recap(out)["changed"] == 2
    assert "+++ after" in out
    assert server_snapshot(rgw, existing_bucket)["policy"] is None
    rc, out = ansible_playbook(rgw, playbook, extra, connection_env=False)
    assert rc == 0, out
    assert recap(out)["changed"] == 2
    rc, out = ansible_playbook(rgw, playbook, extra, connection_env=False)
    assert rc == 0, out
    assert recap(out)["changed"] == 0, out


NEW_ENVIRONMENT_PLAY = """---
- name: A new environment from nothing, with every cellar module
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/keepdata.storage.cellar:
      endpoint: "{{ endpoint }}"
  tasks:
    - name: Buckets
      keepdata.storage.cellar_bucket:
        buckets:
          - {name: "{{ site }}", versioning: enabled}
          - {name: "{{ assets }}"}
    - name: Policy of the site bucket
      keepdata.storage.cellar_bucket_policy:
        bucket: "{{ site }}"
        preset: public_read
    - name: CORS of the assets bucket
      keepdata.storage.cellar_cors:
        bucket: "{{ assets }}"
        rules:
          - allowed_origins: ["https://app.example.com"]
            allowed_methods: [GET, PUT]
    - name: Lifecycle rules of the assets bucket
      keepdata.storage.cellar_lifecycle:
        bucket: "{{ assets }}"
        rules:
          - {id: drafts, prefix: drafts/, expiration_days: 30}
          - {id: unfinished-uploads, abort_incomplete_multipart_upload_days: 2}
    - name: What the site bucket holds
      keepdata.storage.cellar_bucket_info:
        name: "{{ site }}"
        policy: true
      register: info
"""


def test_check_mode_previews_a_whole_play_that_builds_buckets_from_nothing(rgw, recording_proxy, tmp_path):
    """--check --diff of a play whose later tasks work on buckets an earlier task creates: each task says what it
    would do to a new bucket (with a warning), the proxy sees no write, and a real run then does exactly that."""
    suffix = uuid.uuid4().hex[:8]
    site, assets = "kd-new-site-%s" % suffix, "kd-new-assets-%s" % suffix
    playbook = tmp_path / "new_environment.yml"
    playbook.write_text(NEW_ENVIRONMENT_PLAY)
    extra = {"endpoint": recording_proxy.url, "site": site, "assets": assets}
    try:
        before = server_snapshot(rgw)
        rc, out = ansible_playbook(rgw, playbook, extra, "--check", "--diff")
        assert rc == 0, out
        assert recap(out)["changed"] == 4, out  # the buckets, the policy, the CORS rules, the lifecycle rules
        flat = " ".join(out.split())
        for bucket in (site, assets):
            assert "bucket '%s' does not exist yet: this preview assumes an earlier task creates it" % bucket in flat, out
        assert "bucket '%s' not found: in this preview it does not exist yet" % site in flat, out  # the info task
        assert '"Action": [ "s3:GetObject" ]' in flat or "s3:GetObject" in out, out  # the policy diff
        assert "https://app.example.com" in out  # the CORS diff
        assert "unfinished-uploads" in out and "drafts/" in out  # the lifecycle diff
        assert {r.method for r in recording_proxy.take()} <= {"GET", "HEAD"}  # nothing written
        assert server_snapshot(rgw) == before

        rc, out = ansible_playbook(rgw, playbook, extra, "--diff")
        assert rc == 0, out
        assert recap(out)["changed"] == 4, out
        assert "does not exist yet" not in out
        assert server_snapshot(rgw, site)["versioning"] == "Enabled"
        assert json.loads(server_snapshot(rgw, site)["policy"])["Statement"][0]["Action"] in ("s3:GetObject", ["s3:GetObject"])
        assert server_snapshot(rgw, assets)["cors"][0]["AllowedOrigins"] == ["https://app.example.com"]
        assert sorted(rule["ID"] for rule in server_snapshot(rgw, assets)["lifecycle"]) == ["drafts", "unfinished-uploads"]

        rc, out = ansible_playbook(rgw, playbook, extra, "--check", "--diff")
        assert rc == 0, out
        assert recap(out)["changed"] == 0, out
        assert "does not exist yet" not in out
    finally:
        delete_bucket_quietly(rgw, site)
        delete_bucket_quietly(rgw, assets)


def test_a_real_run_on_a_missing_bucket_still_fails_clearly(rgw):
    missing = "kd-missing-%s" % uuid.uuid4().hex[:8]
    for module, args in (
        ("cellar_bucket_policy", {"bucket": missing, "preset": "public_read"}),
        ("cellar_cors", {"bucket": missing, "rules": CORS_RULES}),
        ("cellar_lifecycle", {"bucket": missing, "rules": [{"id": "tmp", "prefix": "tmp/", "expiration_days": 1}]}),
    ):
        result = run_module(module, dict(rgw.connection_args(), **args))
        assert result.get("failed") is True, result
        assert result["changed"] is False
        assert "bucket %r does not exist on %s" % (missing, rgw.endpoint) in result["msg"], result
    assert missing not in server_snapshot(rgw)["buckets"]


CORS_RULES = [{"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET"]}]
