"""Suspect snapshots (issue 27, part B): a snapshot whose sources were empty or shrank is kept, tagged, fails the
run and is never retried; retention never forgets the last good snapshot; a new host does not back up empty sources
over snapshots it never restored. The fakes of test_runner answer for restic."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
from test_runner import GOOD, SUMMARY, FakeRun, context, done, make_config, metric_lines, read_state, snapshot, write_job, write_state

from ansible_collections.keepdata.storage.plugins.module_utils.backup import runner as br
from ansible_collections.keepdata.storage.plugins.module_utils.backup import shared

SHRUNK = dict(SUMMARY, total_files_processed=10, total_bytes_processed=1000000)


def backup_printing(summary):
    return done(stdout=json.dumps({"message_type": "status", "percent_done": 1}) + "\n" + json.dumps(summary) + "\n")


@pytest.mark.parametrize(
    ("files", "size", "good", "percent", "verdict"),
    [
        (55, 9000000, {"files": 55, "bytes": 9000000}, 50, ""),
        # Exactly half is not more than half.
        (28, 4500000, {"files": 55, "bytes": 9000000}, 50, ""),
        (27, 9000000, {"files": 55, "bytes": 9000000}, 50, "the sources shrank by more than 50% since the last good snapshot: files 27, was 55 (-50.9%)"),
        (55, 100, {"files": 55, "bytes": 9000000}, 50, "the sources shrank by more than 50% since the last good snapshot: bytes 100 B, was 8.6 MiB (-100%)"),
        # An empty state accepted once stays good; an empty one after a first empty run too.
        (0, 0, {"files": 0, "bytes": 0}, 50, ""),
        # 95%: 10 of 55 files is an 82% drop, 100 of 9000000 bytes a 100% one.
        (10, 100, {"files": 55, "bytes": 9000000}, 95, "the sources shrank by more than 95% since the last good snapshot: bytes 100 B, was 8.6 MiB (-100%)"),
        # 0: only an empty snapshot is suspect.
        (1, 1, {"files": 55, "bytes": 9000000}, 0, ""),
        (0, 0, {"files": 55, "bytes": 9000000}, 0, "no file in the sources (the last good snapshot had 55)"),
        (0, 0, {}, 50, "no file in the sources"),
        # Figures unknown (bytes only from restic stats on a new host): only what is known is compared.
        (3, 9000000, {"files": None, "bytes": 9000000}, 50, ""),
        (3, 10, {"files": None, "bytes": 9000000}, 50, "the sources shrank by more than 50% since the last good snapshot: bytes 10 B, was 8.6 MiB (-100%)"),
        (3, 10, {}, 50, ""),
    ],
)
def test_shrink_verdict(files, size, good, percent, verdict):
    assert br.shrink_verdict({"total_files_processed": files, "total_bytes_processed": size}, good, percent) == verdict


def test_sources_empty(tmp_path):
    (tmp_path / "file-in-the-way").write_text("x")
    # Not readable as a directory (here a file in the path; a dead mount or EACCES alike): not the empty tree of a new host.
    assert not br.sources_empty([str(tmp_path / "file-in-the-way" / "below")])
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / ".hidden").write_text("x")
    (tmp_path / "file").write_text("x")
    assert br.sources_empty([str(tmp_path / "empty"), str(tmp_path / "missing")])
    assert not br.sources_empty([str(tmp_path / "empty"), str(tmp_path / "full")])
    assert not br.sources_empty([str(tmp_path / "file")])
    assert br.sources_empty([])


def test_a_shrunk_snapshot_is_kept_tagged_fails_the_run_and_is_not_retried(tmp_path):
    config = make_config(tmp_path, notify_command="cat > /dev/null")
    write_state(config, snapshots=4, snapshots_known=True, last_success=1690000000, **GOOD)
    fake = FakeRun(backup=backup_printing(SHRUNK))
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    # Compared with the figures this host recorded: no repository call for them; the new snapshot is tagged.
    assert fake.keys() == ["version", "cat", "backup", "tag"]
    assert fake.argvs("tag") == [["restic", "-o", "s3.bucket-lookup=path", "tag", "--add", "keepdata-suspect", "1a2b3c4d5e6f7a8b"]]
    err = ctx.err.getvalue()
    assert (
        "suspect snapshot 1a2b3c4d: the sources shrank by more than 50% since the last good snapshot: files 10, was 55 (-81.8%), bytes 976.6 KiB,"
        " was 8.6 MiB (-88.9%); it is kept, tagged keepdata-suspect (restic snapshots --tag keepdata-suspect lists it under its new ID), and"
        " retention keeps the last good snapshot aaaa1111 whatever its age. If the change is wanted, accept it once: playbooks/backup_now.yml"
        " -e backup_now_job=app1 -e backup_now_tag=shrink-accepted"
    ) in err
    state = read_state(config)
    assert (state["suspect"], state["last_failure_cause"], state["consecutive_failures"], state["last_success"]) == (1, "suspect", 1, 1690000000)
    # The last good snapshot's record is unchanged; the snapshot counts.
    assert (state["good_snapshot"], state["good_files"], state["good_time"], state["snapshots"]) == ("aaaa1111", 55, 1690000000, 5)
    assert 'keepdata_backup_last_suspect{backup_job="app1"} 1' in metric_lines(config)
    assert 'keepdata_backup_last_good_timestamp_seconds{backup_job="app1"} 1690000000' in metric_lines(config)
    # The failure handler notifies, and arms no retry: it would make one more suspect snapshot.
    jobs = write_job(tmp_path, config, failures=1)
    (tmp_path / "state" / "app1.state.json").write_text(json.dumps(state))
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.main(["failed", "app1:backup", "--config-dir", jobs], ctx=ctx) == 0
    assert "systemctl" not in fake.keys()
    assert "no retry: a retry would make the same verdict (the snapshot's sources were empty or shrank past suspect_shrink)" in ctx.out.getvalue()


def test_a_run_after_a_suspect_one_compares_with_the_last_good_one_and_clears_the_flag(tmp_path):
    config = make_config(tmp_path)
    write_state(config, snapshots=5, snapshots_known=True, last_success=1690000000, suspect=1, **GOOD)
    fake = FakeRun()
    assert br.cmd_run(context(tmp_path, fake), config) == 0
    assert "tag" not in fake.keys()
    state = read_state(config)
    assert (state["suspect"], state["good_snapshot"], state["good_files"], state["good_bytes"]) == (0, "1a2b3c4d", 55, 9000000)
    assert state["good_time"] == state["last_success"] == 1700000000


def test_the_shrink_accepted_tag_takes_a_shrink_once(tmp_path):
    config = make_config(tmp_path)
    write_state(config, snapshots=4, snapshots_known=True, last_success=1690000000, **GOOD)
    fake = FakeRun(backup=backup_printing(SHRUNK))
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config, tag="shrink-accepted") == 0
    assert "tag" not in fake.keys()
    assert "shrink-accepted" in fake.argvs("backup")[0]
    assert "accepted once (tag shrink-accepted): the sources shrank by more than 50%" in ctx.err.getvalue()
    state = read_state(config)
    assert (state["suspect"], state["good_files"]) == (0, 10)
    # The next run compares with the accepted figures: 10 files is no shrink any more.
    fake = FakeRun(backup=backup_printing(SHRUNK))
    assert br.cmd_run(context(tmp_path, fake), config) == 0


def test_suspect_shrink_0_flags_only_an_empty_snapshot(tmp_path):
    config = make_config(tmp_path, suspect_shrink=0)
    write_state(config, snapshots=4, snapshots_known=True, last_success=1690000000, **GOOD)
    assert br.cmd_run(context(tmp_path, FakeRun(backup=backup_printing(SHRUNK))), config) == 0
    empty = dict(SUMMARY, total_files_processed=0, total_bytes_processed=0)
    ctx = context(tmp_path, FakeRun(backup=backup_printing(empty)))
    assert br.cmd_run(ctx, config) == 1
    assert "suspect snapshot 1a2b3c4d: no file in the sources (the last good snapshot had 10)" in ctx.err.getvalue()


def test_a_new_host_compares_with_the_repository_once(tmp_path):
    config = make_config(tmp_path)
    newer = dict(snapshot("bbbb2222", "2026-11-30T04:00:00Z", "keepdata-job=app1", "keepdata-suspect"))
    older = snapshot("aaaa1111", "2026-11-29T04:00:00Z", "keepdata-job=app1")
    listing = done(stdout=json.dumps([older, newer]))
    # No figures on this host: the newest good snapshot's size from restic stats (bytes only, the suspect one skipped).
    fake = FakeRun(snapshots=[listing, listing], stats=done(stdout='{"total_size": 90000000, "total_file_count": 70}'))
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert fake.argvs("stats")[0][-4:] == ["--json", "--mode", "restore-size", "aaaa1111" * 8]
    assert "bytes 8.6 MiB, was 85.8 MiB (-90%)" in ctx.err.getvalue()
    # No good snapshot at all to compare with: an empty one is suspect, and the message says none is known.
    fake = FakeRun(snapshots=[listing, done(stdout="[]")], backup=backup_printing(dict(SUMMARY, total_files_processed=0, total_bytes_processed=0)))
    (tmp_path / "state" / "app1.state.json").unlink()
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert "no file in the sources; it is kept, tagged keepdata-suspect" in ctx.err.getvalue()
    assert "and no good snapshot is known yet. If the change is wanted" in ctx.err.getvalue()
    # restic 0.17 and later keep each snapshot's summary: no restic stats.
    older["summary"] = {"total_files_processed": 60, "total_bytes_processed": 9100000}
    listing = done(stdout=json.dumps([older, newer]))
    fake = FakeRun(snapshots=[listing, listing])
    (tmp_path / "state" / "app1.state.json").unlink()
    assert br.cmd_run(context(tmp_path, fake), config) == 0
    assert "stats" not in fake.keys()
    # A repository that cannot tell: the run is not judged, and says so.
    fake = FakeRun(snapshots=[listing, done(1, stderr="Fatal: boom\n")])
    (tmp_path / "state" / "app1.state.json").unlink()
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 0
    assert "cannot read the last good snapshot's figures, the new one is not compared with it: restic snapshots failed" in ctx.err.getvalue()


def test_empty_sources_on_a_host_that_never_restored_are_refused(tmp_path):
    config = make_config(tmp_path, pre_hooks=["touch %s" % (tmp_path / "pre-hook-ran")])
    (tmp_path / "data" / "upload.bin").unlink()
    fake = FakeRun()
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    # Refused before any hook, dump or backup.
    assert fake.keys() == ["version", "cat", "snapshots"]
    assert not (tmp_path / "pre-hook-ran").exists()
    assert (
        "refused: the sources (%s) are empty, and the repository holds 1 snapshots of this job for host web1 (the last good one aaaa1111 of"
        " 2026-11-30T04:00:00) that this host has never backed up nor restored; restore them first (playbooks/restore.yml -e restore_job=app1),"
        " or back up the empty sources once with playbooks/backup_now.yml -e backup_now_tag=shrink-accepted" % (tmp_path / "data")
    ) in ctx.err.getvalue()
    assert read_state(config)["last_failure_cause"] == "not_restored"
    # Not refused: a repository without snapshots of the job (a new job), the accepting tag, a host that restored the
    # job or backed it up before (then the snapshot is judged as any other).
    empty = dict(SUMMARY, total_files_processed=0, total_bytes_processed=0)
    assert br.cmd_run(context(tmp_path, FakeRun(snapshots=done(stdout="[]"), backup=backup_printing(empty))), config) == 1
    assert read_state(config)["last_failure_cause"] == "suspect"
    (tmp_path / "state" / "app1.state.json").unlink()
    fake = FakeRun(backup=backup_printing(empty))
    assert br.cmd_run(context(tmp_path, fake), config, tag="shrink-accepted") == 0
    for record in ({"last_restore": 1690000000}, {"last_success": 1690000000}):
        write_state(config, **record)
        fake = FakeRun(backup=backup_printing(empty))
        assert br.cmd_run(context(tmp_path, fake), config) == 1
        assert "backup" in fake.keys()
        assert read_state(config)["last_failure_cause"] == "suspect"


def test_a_snapshot_that_could_not_be_tagged_does_not_cost_the_last_good_one(tmp_path):
    config = make_config(tmp_path, restic_options=[], tag_rules=[])
    write_state(config, snapshots=4, snapshots_known=True, last_success=1690000000, **GOOD)
    fake = FakeRun(backup=backup_printing(SHRUNK), tag=done(1, stderr="Fatal: unable to create lock in backend: repository is already locked by PID 1\n"))
    ctx = context(tmp_path, fake)
    assert br.cmd_run(ctx, config) == 1
    assert "it is kept, but could not be tagged keepdata-suspect (locked (the repository is locked by another restic)" in ctx.err.getvalue()
    assert read_state(config)["suspect"] == 1
    # The untagged suspect snapshot is the newest without the tag; the good one this host recorded stays protected.
    good = snapshot("aaaa1111", "2025-11-01T04:00:00Z", "keepdata-job=app1")
    untagged = snapshot("1a2b3c4d", "2025-11-02T04:00:00Z", "keepdata-job=app1")
    assert br.protected_ids([good, untagged], "aaaa1111") == {good["id"], untagged["id"]}
    assert br.protected_ids([good, untagged]) == {untagged["id"]}
    assert br.forget_plan(config, [good, untagged], now=NOW, recorded_good="aaaa1111")[0][0] == br.POLICY_KEEPING_GOOD
    would = [{"keep": [untagged], "remove": [good]}]
    fake = FakeRun(snapshots=done(stdout=json.dumps([good, untagged])), forget=[done(stdout=json.dumps(would))])
    ctx = context(tmp_path, fake)
    assert br.cmd_forget(ctx, config) == 0
    assert len(fake.argvs("forget")) == 1
    assert "the last good one, aaaa1111 of 2025-11-01T04:00:00, is kept whatever the policy says" in ctx.err.getvalue()


def test_a_failing_post_hook_does_not_hide_the_verdict(tmp_path):
    config = make_config(tmp_path, post_hooks=["exit 3"])
    write_state(config, snapshots=4, snapshots_known=True, last_success=1690000000, **GOOD)
    ctx = context(tmp_path, FakeRun(backup=backup_printing(SHRUNK)))
    assert br.cmd_run(ctx, config) == 1
    err = ctx.err.getvalue()
    assert "post-hook 1 of 1 failed (exit status 3)" in err and "suspect snapshot 1a2b3c4d" in err
    assert read_state(config)["last_failure_cause"] == "suspect"


NOW = 1764892800.0  # 2025-12-05T00:00:00Z


def test_retention_keeps_the_last_good_snapshot_when_the_latest_is_suspect(tmp_path):
    config = make_config(tmp_path, restic_options=[], prune=False, tag_rules=[{"tag": "pre-update", "within": "21d"}])
    good = snapshot("aaaa1111", "2025-10-01T04:00:00Z", "keepdata-job=app1", "pre-update")
    suspects = [snapshot("%04x%04x" % (day, day), "2025-11-%02dT04:00:00Z" % day, "keepdata-job=app1", "keepdata-suspect") for day in range(1, 11)]
    snapshots = [good] + suspects
    plan = br.forget_plan(config, snapshots, now=NOW)
    policy = "restic forget --host web1 --tag keepdata-job=app1 --group-by host --keep-last 1 --keep-daily 7 --keep-weekly 4 --keep-tag pre-update"
    # A dry run of the policy; the expired pre-update snapshot is the last good one: no tag pass removes it.
    assert plan == [(br.POLICY_KEEPING_GOOD, (policy + " --dry-run --json").split())]
    # forget_steps removes what the dry run would, by ID, but the last good snapshot and the latest.
    would = [{"keep": [suspects[-1]], "remove": [good] + suspects[:-1]}]
    fake = FakeRun(snapshots=done(stdout=json.dumps(snapshots)), forget=[done(stdout=json.dumps(would)), done()])
    ctx = context(tmp_path, fake)
    assert br.cmd_forget(ctx, dict(config, retention={"keep_daily": 7, "keep_weekly": 4})) == 0
    forgets = fake.argvs("forget")
    assert forgets[0][-2:] == ["--dry-run", "--json"]
    assert forgets[1] == ["restic", "forget"] + [snap["id"] for snap in suspects[:-1]]
    assert "the latest snapshot is suspect: the last good one, aaaa1111 of 2025-10-01T04:00:00, is kept whatever the policy says" in ctx.err.getvalue()
    # Nothing to remove: no second forget.
    fake = FakeRun(snapshots=done(stdout=json.dumps(snapshots)), forget=[done(stdout=json.dumps([{"keep": snapshots, "remove": []}]))])
    assert br.cmd_forget(context(tmp_path, fake), config) == 0
    assert len(fake.argvs("forget")) == 1
    # A latest that is good: the policy as before, in one pass.
    assert br.forget_plan(config, suspects[:-1] + [snapshot("ffff0000", "2025-11-20T04:00:00Z", "keepdata-job=app1")], now=NOW)[0][0] == "retention policy"


def test_planned_removals():
    would = [{"keep": [{"id": "k"}], "remove": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}, {"remove": None}, "junk"]
    assert br.planned_removals(json.dumps(would), {"b"}) == ["a", "c"]
    for bad in ("", "{}", "not json"):
        with pytest.raises(shared.JobError, match="restic forget --dry-run did not print a JSON list"):
            br.planned_removals(bad, set())


def test_the_untagged_twin_of_a_suspect_snapshot_is_not_a_good_one(tmp_path):
    """Append-only mode: restic tag could not delete the original of a suspect snapshot (the bucket policy refuses it;
    restic 0.14 exits 0), so both stay. The untagged original is not the last good snapshot: retention keeps the real one."""
    config = make_config(tmp_path, restic_options=[], prune=False, tag_rules=[])
    good = snapshot("aaaa1111", "2025-11-01T04:00:00Z", "keepdata-job=app1")
    originals = [snapshot("%04x%04x" % (day, day), "2025-11-%02dT04:00:00Z" % day, "keepdata-job=app1") for day in range(2, 5)]
    copies = [dict(snap, id="c" * 56 + snap["id"][:8], short_id="c" * 8, tags=snap["tags"] + ["keepdata-suspect"]) for snap in originals]
    snapshots = [good] + originals + copies
    assert shared.last_good_snapshot(snapshots) == good
    assert good["id"] in br.protected_ids(snapshots)
    assert shared.untagged_twins(snapshots) == [snap["id"] for snap in originals]
    assert not set(shared.untagged_twins(snapshots)) & br.protected_ids(snapshots)
    # The originals go first, by ID, whatever the policy would keep: once a copy is gone, its original would pass
    # for the last good snapshot. Then the policy, keeping the real last good one.
    plan = br.forget_plan(config, snapshots, now=NOW)
    assert plan[0] == (br.UNTAGGED_TWINS, br.restic_command(config, "forget") + [snap["id"] for snap in originals])
    assert plan[1][0] == br.POLICY_KEEPING_GOOD
    # With the copies gone (say a tag rule forgot them), the originals are good snapshots again, as they were.
    assert shared.untagged_twins([good] + originals) == []
    # A snapshot of the same tree at another time is another snapshot: a good one stays good.
    later = dict(originals[-1], id="d" * 64, time="2025-11-05T04:00:00Z")
    assert shared.last_good_snapshot(snapshots + [later]) == later
