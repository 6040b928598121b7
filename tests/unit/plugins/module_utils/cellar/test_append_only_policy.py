# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Preset restic_append_only: what it grants and denies, the checks of its inputs, and the refusals of a bucket it
cannot protect (a writer that owns the bucket, versioning not enabled)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.cellar.policy import (
    PolicyError,
    append_only_versioning_problem,
    desired_policy,
    normalize_policy,
    policy_json,
    preset_policy,
    principal_user_id,
    repository_prefix_path,
    same_policy,
    validate_policy,
    writer_is_owner_problem,
)
from ansible_collections.keepdata.storage.plugins.modules import cellar_bucket_policy
from ansible_collections.keepdata.storage.tests.unit.plugins.modules.cellar_fakes import FakeS3

B = "bkt"
WRITER = "arn:aws:iam:::user/cellar_host"


def statements(prefix=None, principals=("cellar_host",), owner="cellar_owner"):
    """The preset's statements by Sid."""
    document = preset_policy("restic_append_only", B, list(principals), prefix, owner)
    return {statement["Sid"]: statement for statement in document["Statement"]}


def allowed(by_sid, action, resource):
    """Whether an Allow statement names ``action`` on exactly ``resource`` (the preset writes no other form)."""
    return any(s["Effect"] == "Allow" and action in s["Action"] and resource in s["Resource"] for s in by_sid.values())


def test_the_writer_reads_lists_and_writes_below_the_prefix_and_deletes_only_locks():
    by_sid = statements("hosts/web1")
    owner_reads = by_sid.pop("AppendOnlyOwnerReads")
    assert all(s["Principal"] == {"AWS": [WRITER]} for s in by_sid.values())
    assert allowed(by_sid, "s3:ListBucket", "arn:aws:s3:::bkt")
    assert allowed(by_sid, "s3:GetBucketLocation", "arn:aws:s3:::bkt")
    assert allowed(by_sid, "s3:GetBucketVersioning", "arn:aws:s3:::bkt")
    assert allowed(by_sid, "s3:GetObject", "arn:aws:s3:::bkt/hosts/web1/*")
    assert allowed(by_sid, "s3:PutObject", "arn:aws:s3:::bkt/hosts/web1/*")
    assert allowed(by_sid, "s3:DeleteObject", "arn:aws:s3:::bkt/hosts/web1/locks/*")
    granted = sorted(a for s in by_sid.values() if s["Effect"] == "Allow" for a in s["Action"])
    assert granted == ["s3:DeleteObject", "s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:GetObject", "s3:ListBucket", "s3:PutObject"]
    # The only object resource an Allow names outside the prefix: none.
    resources = [r for s in by_sid.values() if s["Effect"] == "Allow" for r in s["Resource"] if r != "arn:aws:s3:::bkt"]
    assert all(r.startswith("arn:aws:s3:::bkt/hosts/web1/") for r in resources), resources
    # The owner reads what the host wrote (RGW gives an object's reads to its writer, not to the bucket's owner).
    assert owner_reads["Principal"] == {"AWS": ["arn:aws:iam:::user/cellar_owner"]}
    assert (owner_reads["Effect"], owner_reads["Action"]) == ("Allow", ["s3:GetObject", "s3:GetObjectVersion"])
    assert owner_reads["Resource"] == ["arn:aws:s3:::bkt/hosts/web1/*"]


def test_without_the_owner_the_inputs_are_checked_and_no_owner_statement_is_written():
    by_sid = statements("repo", owner=None)
    assert "AppendOnlyOwnerReads" not in by_sid and len(by_sid) == 5
    tenant = statements("repo", owner="team$owner")["AppendOnlyOwnerReads"]
    assert tenant["Principal"] == {"AWS": ["arn:aws:iam::team:user/owner"]}


def test_every_other_delete_and_every_settings_change_is_denied_outright():
    by_sid = statements("hosts/web1")
    no_delete = by_sid["AppendOnlyNoOtherDelete"]
    assert (no_delete["Effect"], no_delete["Action"], no_delete["NotResource"]) == ("Deny", ["s3:DeleteObject"], ["arn:aws:s3:::bkt/hosts/web1/locks/*"])
    frozen = by_sid["AppendOnlyNoHistoryOrSettingsChange"]
    assert frozen["Effect"] == "Deny" and frozen["Resource"] == ["arn:aws:s3:::bkt", "arn:aws:s3:::bkt/*"]
    for action in ("s3:DeleteObjectVersion", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration"):
        assert action in frozen["Action"]
    assert not any(s["Effect"] == "Allow" and "s3:DeleteObjectVersion" in s["Action"] for s in by_sid.values())


def test_a_repository_at_the_bucket_root():
    for root in (None, ""):
        by_sid = statements(root)
        assert allowed(by_sid, "s3:PutObject", "arn:aws:s3:::bkt/*")
        assert allowed(by_sid, "s3:DeleteObject", "arn:aws:s3:::bkt/locks/*")
        assert by_sid["AppendOnlyNoOtherDelete"]["NotResource"] == ["arn:aws:s3:::bkt/locks/*"]


@pytest.mark.parametrize(("given", "written"), [("repo", "repo/"), ("repo/", "repo/"), ("hosts/web-1.ex_a", "hosts/web-1.ex_a/"), (None, ""), ("", "")])
def test_repository_prefix_is_written_with_one_trailing_slash(given, written):
    assert repository_prefix_path(given) == written


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["repo"], "repository_prefix must be a string like hosts/web1, not list"),
        (5, "repository_prefix must be a string like hosts/web1, not int"),
        ({"a": 1}, "repository_prefix must be a string like hosts/web1, not dict"),
        ("repo\n", "contains a control character"),
        ("re\x00po", "contains a control character"),
        ("/repo", "must be a path inside the bucket"),
        ("a//b", "must be a path inside the bucket"),
        ("a/../b", "must be a path inside the bucket"),
        ("./a", "must be a path inside the bucket"),
        ("/", "must be a path inside the bucket"),
        ("repo//", "must be a path inside the bucket"),
        ("repo/*", "must be a path inside the bucket"),
        ("rep?", "must be a path inside the bucket"),
        ("${aws:username}", "must be a path inside the bucket"),
        ("a b", "must be a path inside the bucket"),
        ("a" * 513, "longer than 512"),
    ],
)
def test_bad_repository_prefix_is_refused_by_name(given, message):
    with pytest.raises(PolicyError) as raised:
        desired_policy(B, preset="restic_append_only", principals=["cellar_host"], repository_prefix=given)
    assert message in str(raised.value)
    assert "repository_prefix" in str(raised.value)


@pytest.mark.parametrize("principals", [None, [], "cellar_host"])
def test_principals_are_required_as_a_list(principals):
    with pytest.raises(PolicyError, match="restic_append_only needs principals"):
        desired_policy(B, preset="restic_append_only", principals=principals)


@pytest.mark.parametrize(("principal", "message"), [("*", "not a valid user id"), ("arn:aws:iam::cellar_host", "grants nothing"), ("", "non-empty")])
def test_bad_principals_are_refused(principal, message):
    with pytest.raises(PolicyError, match=message):
        desired_policy(B, preset="restic_append_only", principals=[principal])


@pytest.mark.parametrize("preset", ["read_only", "public_read"])
def test_repository_prefix_belongs_to_the_append_only_preset(preset):
    with pytest.raises(PolicyError, match="repository_prefix is only used with preset=restic_append_only"):
        desired_policy(B, preset=preset, principals=["cellar_x"] if preset == "read_only" else None, repository_prefix="repo")
    with pytest.raises(PolicyError, match="repository_prefix is only used with preset=restic_append_only"):
        preset_policy(preset, B, ["cellar_x"], "repo")


def test_the_preset_is_valid_and_read_back_means_the_same():
    writers = ["cellar_b", "cellar_a", "arn:aws:iam:::user/cellar_a"]
    wanted = desired_policy(B, preset="restic_append_only", principals=writers, repository_prefix="repo", bucket_owner="cellar_owner")
    validate_policy(wanted, B)
    assert wanted["Statement"][0]["Principal"] == {"AWS": ["arn:aws:iam:::user/cellar_a", "arn:aws:iam:::user/cellar_b"]}
    # What the server stores and answers: the JSON text, statements and lists in another order, actions in other case.
    stored = json.loads(policy_json(wanted))
    stored["Statement"].reverse()
    for statement in stored["Statement"]:
        statement["Action"] = [a.lower() for a in reversed(statement["Action"])]
    assert same_policy(wanted, normalize_policy(stored))
    other = desired_policy(B, preset="restic_append_only", principals=["cellar_a", "cellar_b"], repository_prefix="other", bucket_owner="cellar_owner")
    assert not same_policy(wanted, other)
    assert not same_policy(wanted, desired_policy(B, preset="restic_append_only", principals=writers, repository_prefix="repo", bucket_owner="someone"))
    assert desired_policy(B, preset="restic_append_only", principals=["cellar_a", "cellar_b"], repository_prefix="repo/", bucket_owner="cellar_owner") == wanted


@pytest.mark.parametrize(
    ("principals", "owner", "refused"),
    [
        (["cellar_owner"], "cellar_owner", True),
        (["arn:aws:iam:::user/cellar_owner"], "cellar_owner", True),
        (["cellar_host", "cellar_owner"], "cellar_owner", True),
        (["arn:aws:iam::tenant:user/owner"], "tenant$owner", True),
        (["cellar_host"], "cellar_owner", False),
        (["arn:aws:iam::tenant:user/owner"], "owner", False),
        (["cellar_owner"], None, False),
    ],
)
def test_a_writer_that_owns_the_bucket_is_refused(principals, owner, refused):
    problem = writer_is_owner_problem(principals, owner)
    assert bool(problem) is refused
    if refused:
        assert "principals name the bucket's owner %r" % owner in problem
        with pytest.raises(PolicyError, match="principals name the bucket's owner"):
            desired_policy(B, preset="restic_append_only", principals=principals, bucket_owner=owner)
    else:
        assert desired_policy(B, preset="restic_append_only", principals=principals, bucket_owner=owner)


def test_principal_user_id_as_s3_shows_an_owner():
    assert principal_user_id("arn:aws:iam:::user/cellar_x") == "cellar_x"
    assert principal_user_id("arn:aws:iam::tenant:user/x") == "tenant$x"


@pytest.mark.parametrize(("versioning", "refused"), [("enabled", False), ("suspended", True), ("disabled", True)])
def test_append_only_needs_versioning(versioning, refused):
    problem = append_only_versioning_problem(versioning)
    assert bool(problem) is refused
    if refused:
        assert "needs a versioned bucket (versioning is %s)" % versioning in problem


# ---- the module: inputs and the refusals before any write -------------------------------------------------


def params(**kwargs):
    base = {"bucket": B, "state": "present", "policy": None, "preset": "restic_append_only", "principals": ["cellar_host"], "repository_prefix": None}
    base.update(kwargs)
    return base


def test_module_refuses_a_list_prefix_and_a_prefix_on_absent():
    with pytest.raises(PolicyError, match="repository_prefix must be a string like hosts/web1, not list"):
        cellar_bucket_policy.desired_from_params(params(repository_prefix=["repo"]))
    with pytest.raises(ValueError, match="state=absent takes no policy, preset, principals or repository_prefix"):
        cellar_bucket_policy.desired_from_params(params(state="absent", preset=None, principals=None, repository_prefix="repo"))
    assert cellar_bucket_policy.desired_from_params(params(repository_prefix="repo"))["Statement"]


class Stopped(Exception):
    """The module failed (fail_json ends the run)."""


class RecordingCellar:
    """The part of CellarModule that refuse_unprotected_bucket uses: fail raises, warn records."""

    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self.warnings = []
        self.module = self

    def warn(self, message):
        self.warnings.append(message)

    def fail(self, msg, **_result):
        raise Stopped(msg)


def acl_of(owner):
    return {"Owner": {"ID": owner}, "Grants": []}


def test_module_refuses_the_owner_as_writer_after_reads_only():
    client = FakeS3(get_bucket_acl=acl_of("cellar_host"), get_bucket_versioning={"Status": "Enabled"})
    with pytest.raises(Stopped, match="principals name the bucket's owner 'cellar_host'"):
        cellar_bucket_policy.append_only_policy_of_bucket(RecordingCellar(), client, params())
    assert client.names() == ["get_bucket_acl"]  # no put_bucket_policy answer is scripted: a write would fail the test


@pytest.mark.parametrize("status", [None, "Suspended"])
def test_module_refuses_an_unversioned_bucket_and_warns_in_check_mode(status):
    answer = {"Status": status} if status else {}
    client = FakeS3(get_bucket_acl=acl_of("cellar_owner"), get_bucket_versioning=answer)
    with pytest.raises(Stopped, match="needs a versioned bucket"):
        cellar_bucket_policy.append_only_policy_of_bucket(RecordingCellar(), client, params())
    preview = RecordingCellar(check_mode=True)
    client = FakeS3(get_bucket_acl=acl_of("cellar_owner"), get_bucket_versioning=answer)
    assert cellar_bucket_policy.append_only_policy_of_bucket(preview, client, params())
    assert len(preview.warnings) == 1 and "a real run fails unless an earlier task enables it" in preview.warnings[0]


def test_module_names_the_owner_it_read():
    client = FakeS3(get_bucket_acl=acl_of("cellar_owner"), get_bucket_versioning={"Status": "Enabled"})
    desired = cellar_bucket_policy.append_only_policy_of_bucket(RecordingCellar(), client, params())
    assert client.names() == ["get_bucket_acl", "get_bucket_versioning"]
    readers = [s["Principal"]["AWS"] for s in desired["Statement"] if s.get("Sid") == "AppendOnlyOwnerReads"]
    assert readers == [["arn:aws:iam:::user/cellar_owner"]]


def test_module_preview_of_a_new_bucket_names_the_credentials_user():
    client = FakeS3(list_buckets={"Owner": {"ID": "cellar_owner"}, "Buckets": []})
    desired = cellar_bucket_policy.preview_of_new_bucket(RecordingCellar(check_mode=True), client, params())
    assert [s["Principal"]["AWS"] for s in desired["Statement"] if s.get("Sid") == "AppendOnlyOwnerReads"] == [["arn:aws:iam:::user/cellar_owner"]]
    client = FakeS3(list_buckets={"Owner": {"ID": "cellar_host"}, "Buckets": []})
    with pytest.raises(Stopped, match="principals name the bucket's owner"):
        cellar_bucket_policy.preview_of_new_bucket(RecordingCellar(check_mode=True), client, params())
