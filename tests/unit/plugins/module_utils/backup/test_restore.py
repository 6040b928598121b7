# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import sqlite3
import subprocess

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.backup import restore as br
from ansible_collections.keepdata.storage.plugins.module_utils.backup.restore import RestoreError
from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import data_path_error

PASSWORD_FILE = "/etc/kd/pw"  # noqa: S105 - a path, not a secret


def snap(short_id, when):
    """A snapshot of job app on host web1, as restic snapshots --json prints it."""
    return {"id": short_id + "0" * 56, "short_id": short_id, "time": when, "hostname": "web1", "tags": ["keepdata-job=app"], "paths": ["/srv/app"]}


SNAP_A = snap("aaaa1111", "2026-11-01T10:00:00Z")
SNAP_B = snap("bbbb2222", "2026-11-02T10:00:00+01:00")
SNAP_C = snap("bbbb3333", "2026-11-03T10:00:00.5Z")


def params(**overrides):
    base = {"job": "app", "config_dir": "/etc/keepdata/backup", "snapshot": "latest", "as_of": "", "source_host": ""}
    base.update(overrides)
    return base


# --- input -----------------------------------------------------------------------------------------------------


def test_good_selection_has_no_error():
    assert br.selection_errors(params()) == []
    assert br.selection_errors(params(snapshot="aaaa1111", source_host="old-web.example")) == []
    assert br.selection_errors(params(as_of="yesterday 18:00")) == []
    assert br.selection_errors(params(as_of="@1796061600")) == []


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"job": "My App"}, "job must be a job name"),
        ({"job": "app\n"}, "job must be a job name"),
        ({"config_dir": "etc/keepdata"}, 'config_dir "etc/keepdata" must be an absolute path'),
        ({"snapshot": "aaaa"}, "snapshot must be latest or a snapshot ID"),
        ({"snapshot": "ZZZZ1111"}, "snapshot must be latest or a snapshot ID"),
        ({"snapshot": "aaaa1111\n"}, "snapshot must be latest or a snapshot ID"),
        ({"as_of": "now; rm -rf /"}, "as_of must be a date and time"),
        ({"as_of": "today\t18:00"}, "as_of must be a date and time"),
        ({"as_of": "today", "snapshot": "aaaa1111"}, "mutually exclusive"),
        ({"source_host": "-rf"}, "source_host must be a host name"),
        ({"source_host": "web\r1"}, "source_host must be a host name"),
    ],
)
def test_bad_selection_names_the_option(overrides, expected):
    errors = br.selection_errors(params(**overrides))
    assert any(expected in error for error in errors), errors


@pytest.mark.parametrize("value", ["/srv/app", "/srv/app/My Files", "/srv/app/café", "/srv/a[1]*"])
def test_inside_paths_accept_any_name(value):
    assert data_path_error("paths[0]", value) is None


@pytest.mark.parametrize("value", ["srv/app", "/", "/srv/../etc", "/srv/./app", "/srv//app", "/srv/app\n", "/srv/\x00", "/srv/\tx"])
def test_inside_paths_refuse_relative_dots_and_control_characters(value):
    assert data_path_error("paths[0]", value).startswith("paths[0]")


# --- snapshots -------------------------------------------------------------------------------------------------


def test_latest_is_the_newest_by_time():
    assert br.pick_snapshot([SNAP_C, SNAP_A, SNAP_B])["id"] == SNAP_C["id"]


def test_snapshot_by_id_prefix():
    assert br.pick_snapshot([SNAP_A, SNAP_B, SNAP_C], snapshot="bbbb2222")["id"] == SNAP_B["id"]


def test_ambiguous_and_unknown_ids_fail():
    with pytest.raises(RestoreError, match="ambiguous: 2 snapshots"):
        br.pick_snapshot([SNAP_A, SNAP_B, SNAP_C], snapshot="bbbb")
    with pytest.raises(RestoreError, match="no snapshot cccc0000 among the 3"):
        br.pick_snapshot([SNAP_A, SNAP_B, SNAP_C], snapshot="cccc0000")


def test_as_of_picks_the_newest_at_or_before_the_time():
    # SNAP_B is 2026-11-02 09:00 UTC (written with +01:00).
    b_time = br.shared.snapshot_time(SNAP_B["time"])
    assert br.pick_snapshot([SNAP_C, SNAP_A, SNAP_B], as_of=b_time)["id"] == SNAP_B["id"]
    assert br.pick_snapshot([SNAP_C, SNAP_A, SNAP_B], as_of=b_time - 1)["id"] == SNAP_A["id"]
    with pytest.raises(RestoreError, match="no snapshot of job app at or before"):
        br.pick_snapshot([SNAP_C, SNAP_A, SNAP_B], as_of=0, where="job app")


def test_no_snapshot_at_all():
    with pytest.raises(RestoreError, match="no snapshot of job app of host web1"):
        br.pick_snapshot([], where="job app of host web1")


def test_snapshot_facts_and_order():
    facts = br.snapshot_facts(SNAP_B)
    assert facts["host"] == "web1" and facts["short_id"] == "bbbb2222" and facts["timestamp"] == br.shared.snapshot_time(SNAP_B["time"])
    assert [snap["id"] for snap in br.sorted_snapshots([SNAP_C, SNAP_B, SNAP_A])] == [SNAP_A["id"], SNAP_B["id"], SNAP_C["id"]]


def node(path, kind="file", size=0):
    return json.dumps({"path": path, "type": kind, "size": size, "struct_type": "node"})


def test_nodes_and_tally():
    text = "\n".join(
        [
            json.dumps(dict(SNAP_A, struct_type="snapshot")),
            node("/srv", "dir"),
            node("/srv/app", "dir"),
            node("/srv/app/a", size=5),
            node("/srv/app/b/c", size=7),
            node("/srv/apps/x", size=100),
            "not json",
            "",
        ]
    )
    nodes = br.parse_nodes(text)
    assert [n["path"] for n in nodes] == ["/srv", "/srv/app", "/srv/app/a", "/srv/app/b/c", "/srv/apps/x"]
    assert br.tally(nodes, "/srv/app") == (2, 12)
    assert br.tally(nodes, "/srv/app/b") == (1, 7)


# --- the plan --------------------------------------------------------------------------------------------------

CONFIG = {
    "name": "app",
    "dump_dir": "/var/lib/keepdata/backup/dumps/app",
    "restic_options": ["-o", "s3.connections=5"],
    "state_dir": "/var/lib/keepdata/backup",
}
SNAP_DUMPS = dict(SNAP_A, paths=["/srv/app", "/srv/media", "/var/lib/keepdata/backup/dumps/app"])


def test_items_to_the_original_paths_leave_the_dumps_out():
    items = br.restore_items(SNAP_DUMPS, CONFIG)
    assert items == [{"source": "/srv/app", "destination": "/srv/app"}, {"source": "/srv/media", "destination": "/srv/media"}]


def test_items_below_a_target_keep_the_dumps_as_files():
    items = br.restore_items(SNAP_DUMPS, CONFIG, target="/inspect/x")
    assert [item["destination"] for item in items] == ["/inspect/x/srv/app", "/inspect/x/srv/media", "/inspect/x/var/lib/keepdata/backup/dumps/app"]


def test_items_of_chosen_paths():
    assert br.restore_items(SNAP_DUMPS, CONFIG, paths=["/srv/app/uploads/"]) == [{"source": "/srv/app/uploads", "destination": "/srv/app/uploads"}]
    with pytest.raises(RestoreError, match='"/srv/apps" is not in snapshot aaaa1111'):
        br.restore_items(SNAP_DUMPS, CONFIG, paths=["/srv/apps"])
    with pytest.raises(RestoreError, match="overlap"):
        br.restore_items(SNAP_DUMPS, CONFIG, paths=["/srv/app", "/srv/app/uploads"])


def test_aside_path_never_reuses_a_name():
    taken = {"/srv/app.keepdata-moved-T1", "/srv/app.keepdata-moved-T1-2"}
    assert br.aside_path("/srv/app/", "T1", exists=taken.__contains__) == "/srv/app.keepdata-moved-T1-3"
    assert br.aside_path("/srv/app", "T2", exists=taken.__contains__) == "/srv/app.keepdata-moved-T2"


def test_restore_argv_verifies_and_includes_the_escaped_path():
    argv = br.restore_argv(CONFIG, "aaaa1111", "/srv/.stage", ["/srv/app/a[1]"])
    assert argv[:6] == ["restic", "-o", "s3.connections=5", "restore", "aaaa1111", "--target"]
    assert "--verify" in argv
    assert argv[-2:] == ["--include", br.shared.include_pattern("/srv/app/a[1]")]
    assert "--verify" not in br.restore_argv(CONFIG, "aaaa1111", "/s", ["/srv/app"], verify=False)


def test_import_commands():
    pg = {"type": "postgresql", "name": "app", "database": "appdb", "user": "app"}
    assert br.import_argv(pg) == ["runuser", "-u", "app", "--", "pg_restore", "--clean", "--if-exists", "--dbname", "appdb"]
    my = {"type": "mysql", "name": "app", "database": "appdb", "defaults_file": "/root/.my.cnf"}
    assert br.import_argv(my) == ["mysql", "--defaults-extra-file=/root/.my.cnf", "appdb"]
    with pytest.raises(RestoreError):
        br.import_argv({"type": "oracle", "name": "x"})


def test_describe_plan_says_where_things_go():
    facts = br.snapshot_facts(SNAP_A)
    items = [{"source": "/srv/app", "destination": "/srv/app", "files": 3, "bytes": 2048, "moved_aside": "/srv/app.keepdata-moved-T"}]
    lines = br.describe_plan(facts, items, [{"type": "sqlite", "name": "app"}], ["app.service"])
    assert lines == [
        "snapshot aaaa1111 of web1 at 2026-11-01T10:00:00Z",
        "restore /srv/app -> /srv/app (3 files, 2.0 KiB); current content moved to /srv/app.keepdata-moved-T",
        "import sqlite database app",
        "stop, then start again: app.service",
    ]


# --- a restore on a real temporary tree with a fake restic ---------------------------------------------------------


class FakeRestic:
    """Restores by writing the snapshot's files (a dict path -> content) into the staging directory."""

    def __init__(self, files, *, fail=False, dumps=None, version=(0, 14, 0)):
        self.files = files
        self.fail = fail
        self.dumps = dumps or {}
        self.restic_version = version
        self.calls = []

    def version(self):
        return self.restic_version

    def nodes(self, _snapshot_id):
        nodes, dirs = [], set()
        for path, content in self.files.items():
            nodes.append({"path": path, "type": "file", "size": len(content)})
            parent = os.path.dirname(path)
            while parent != "/":
                dirs.add(parent)
                parent = os.path.dirname(parent)
        return nodes + [{"path": d, "type": "dir"} for d in sorted(dirs)]

    def call(self, argv, retry=False, stdout=None):
        """Writes the included files (every file without --include), then fails when asked: a half-written stage."""
        self.calls.append(argv)
        stage = argv[argv.index("--target") + 1]
        includes = [argv[index + 1] for index, arg in enumerate(argv) if arg == "--include"]
        for path, content in self.files.items():
            if not includes or any(br.under(path, include) for include in includes):
                full = os.path.join(stage, path.lstrip("/"))
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w") as handle:
                    handle.write(content)
        if self.fail:
            return 1, "", "Fatal: something broke"
        return 0, "verifying files in %s\nfinished verifying 1 files in %s" % (stage, stage), ""

    def checked(self, argv, what, retry=False, stdout=None):
        self.calls.append(argv)
        stdout.write(self.dumps[argv[-1]])
        return ""


class Systemctl:
    def __init__(self, active=(), fail_start=()):
        self.active = set(active)
        self.fail_start = set(fail_start)
        self.calls = []

    def __call__(self, argv, **_kwargs):
        self.calls.append(argv)
        unit = argv[-1]
        rc = 0
        if argv[1] == "is-active":
            rc = 0 if unit in self.active else 3
        elif argv[1] == "stop":
            self.active.discard(unit)
        elif argv[1] == "start":
            rc = 1 if unit in self.fail_start else 0
            if not rc:
                self.active.add(unit)
        return subprocess.CompletedProcess(argv, rc, b"", b"")


def tree(root):
    found = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path) as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


@pytest.fixture
def site(tmp_path):
    app = tmp_path / "srv" / "app"
    media = tmp_path / "srv" / "media"
    app.mkdir(parents=True)
    media.mkdir()
    (app / "current.txt").write_text("now")
    config = dict(CONFIG, name="app", services=["app.service"], databases=[], state_dir=str(tmp_path / "state"), dump_dir=str(tmp_path / "dumps"))
    snapshot = dict(SNAP_A, paths=[str(app), str(media)])
    files = {str(app / "old.txt"): "then", str(media / "m.txt"): "media"}
    return tmp_path, config, snapshot, files


def run_restore(site, *, fake=None, systemctl=None, **options):
    tmp_path, config, snapshot, files = site
    restic = fake or FakeRestic(files)
    opts = {"paths": [], "target": "", "move_aside": False, "databases": True, "stop_services": True, "verify": True}
    opts.update(options)
    restore = br.Restore(restic, config, snapshot, opts, run=systemctl or Systemctl(active=["app.service"]), stamp="T1")
    restore.plan()
    return restore


def test_a_non_empty_destination_is_refused_before_any_change(site):
    tmp_path = site[0]
    before = tree(tmp_path)
    with pytest.raises(RestoreError, match=r"not empty: .*srv/app\. Nothing was changed"):
        run_restore(site)
    assert tree(tmp_path) == before


def test_move_aside_keeps_the_current_content_and_restores_the_snapshot(site):
    tmp_path = site[0]
    systemctl = Systemctl(active=["app.service"])
    restore = run_restore(site, move_aside=True, systemctl=systemctl)
    assert restore.plan_lines[1].endswith("current content moved to %s/srv/app.keepdata-moved-T1" % tmp_path)
    restore.apply()
    assert tree(tmp_path / "srv") == {"app/old.txt": "then", "media/m.txt": "media", "app.keepdata-moved-T1/current.txt": "now"}
    assert restore.done["moved_aside"] == [{"path": str(tmp_path / "srv/app"), "moved_to": str(tmp_path / "srv/app.keepdata-moved-T1")}]
    assert restore.done["stopped"] == ["app.service"] and restore.done["started"] == ["app.service"]
    assert [call[1] for call in systemctl.calls] == ["is-active", "stop", "start"]
    # No staging directory is left behind.
    assert not [name for name in os.listdir(tmp_path / "srv") if name.startswith(br.STAGE_PREFIX)]


def test_a_failure_while_staging_changes_nothing_and_starts_the_services_again(site):
    tmp_path, _config, _snapshot, files = site
    before = tree(tmp_path)
    systemctl = Systemctl(active=["app.service"])
    restore = run_restore(site, move_aside=True, fake=FakeRestic(files, fail=True), systemctl=systemctl)
    with pytest.raises(RestoreError, match="restic restore of snapshot aaaa1111 failed"):
        restore.apply()
    assert tree(tmp_path) == before
    assert sorted(os.listdir(tmp_path / "srv")) == ["app", "media"]
    assert restore.done["moved_aside"] == [] and restore.done["started"] == ["app.service"]
    assert "app.service" in systemctl.active


def test_a_service_that_does_not_start_again_is_reported(site):
    restore = run_restore(site, move_aside=True, systemctl=Systemctl(active=["app.service"], fail_start=["app.service"]))
    with pytest.raises(RestoreError, match="could not start again: app.service"):
        restore.apply()
    assert restore.done["restored"]


def test_start_services_starts_a_service_that_was_not_running_once_the_data_is_back(site):
    """A rebuilt host (playbooks/recover.yml): the app waits, stopped, for its data; it starts after the restore."""
    systemctl = Systemctl(active=[])
    restore = run_restore(site, move_aside=True, systemctl=systemctl, start_services=True)
    assert restore.plan_lines[-1] == "start (stopped first if running): app.service"
    restore.apply()
    assert restore.done["stopped"] == [] and restore.done["started"] == ["app.service"]
    assert [call[1] for call in systemctl.calls] == ["is-active", "start"] and "app.service" in systemctl.active


def test_start_services_does_not_start_a_service_over_a_failed_restore(site):
    tmp_path, _config, _snapshot, files = site
    systemctl = Systemctl(active=[])
    restore = run_restore(site, move_aside=True, fake=FakeRestic(files, fail=True), systemctl=systemctl, start_services=True)
    with pytest.raises(RestoreError, match="restic restore of snapshot aaaa1111 failed"):
        restore.apply()
    assert restore.done["started"] == [] and not systemctl.active
    assert (tmp_path / "srv/app/current.txt").read_text() == "now"


def test_keep_mounted_leaves_out_a_mount_holding_data_and_refuses_an_empty_one(site, monkeypatch):
    """A rebuilt host's shared storage, mounted again by the recovery, holds its data: the snapshot's copy is not
    restored over it (a mount point cannot be moved aside); an empty mount point is still refused."""
    tmp_path, _config, _snapshot, files = site
    media = tmp_path / "srv" / "media"
    (media / "shared.txt").write_text("on the storage")
    monkeypatch.setattr(br.os.path, "ismount", lambda path: path == str(media))
    fake = FakeRestic(files)
    restore = run_restore(site, fake=fake, move_aside=True, keep_mounted=True)
    assert restore.kept_mounts == [str(media)] and [item["destination"] for item in restore.items] == [str(tmp_path / "srv/app")]
    assert "leave %s as it is: a mounted file system that holds data (keep_mounted)" % media in restore.plan_lines
    restore.apply()
    assert (tmp_path / "srv/app/old.txt").read_text() == "then" and tree(media) == {"shared.txt": "on the storage"}
    # Each path its own restic restore (--include): the kept mount's data is not even staged.
    assert all("--include" in argv for argv in fake.calls)
    with pytest.raises(RestoreError, match="is a mount point"):
        run_restore(site, move_aside=True)
    (media / "shared.txt").unlink()
    with pytest.raises(RestoreError, match="is a mount point"):
        run_restore(site, move_aside=True, keep_mounted=True)


def test_a_destination_of_only_directories_and_symlinks_is_no_data_and_is_replaced(site):
    """A rebuilt host: the shared storage role made the app's links before the restore; they hold no data."""
    tmp_path = site[0]
    app = tmp_path / "srv" / "app"
    (app / "current.txt").unlink()
    (app / "public").mkdir()
    shared = tmp_path / "storage"
    shared.mkdir()
    (shared / "upload.png").write_text("on the storage")
    (app / "public" / "uploads").symlink_to(shared)
    restore = run_restore(site)
    assert restore.plan_lines[1].endswith("; replaces what is there, only directories and symlinks (no data)")
    restore.apply()
    assert tree(app) == {"old.txt": "then"} and restore.done["moved_aside"] == []
    assert (shared / "upload.png").read_text() == "on the storage"
    assert sorted(os.listdir(tmp_path / "srv")) == ["app", "media"]
    # A file anywhere below is data: refused, as any destination with data.
    (app / "public").mkdir()
    (app / "public" / "note.txt").write_text("data")
    with pytest.raises(RestoreError, match="not empty"):
        run_restore(site)


def test_a_file_at_a_destination_is_data_and_refused(site):
    """Only a directory can hold no data: a file, or a link to a file or a directory, at a destination is refused."""
    tmp_path = site[0]
    app = tmp_path / "srv" / "app"
    (app / "current.txt").unlink()
    app.rmdir()
    app.write_text("a file where the app directory was")
    with pytest.raises(RestoreError, match="not empty") as refused:
        run_restore(site)
    assert refused.value.cause == br.NOT_EMPTY
    app.unlink()
    (tmp_path / "elsewhere").mkdir()
    app.symlink_to(tmp_path / "elsewhere")
    assert br.holds_no_data(str(app)) is False
    with pytest.raises(RestoreError, match="not empty"):
        run_restore(site)


def test_a_directory_that_cannot_be_read_is_data(tmp_path, monkeypatch):
    (tmp_path / "below").mkdir()

    def walk(path, onerror=None):
        yield str(tmp_path), ["below"], []
        onerror(PermissionError(13, "Permission denied", str(tmp_path / "below")))

    monkeypatch.setattr(br.os, "walk", walk)
    assert br.holds_no_data(str(tmp_path)) is False


def test_a_mount_holding_only_lost_and_found_is_empty_storage_and_refused(site, monkeypatch):
    tmp_path = site[0]
    media = tmp_path / "srv" / "media"
    (media / "lost+found").mkdir()
    monkeypatch.setattr(br.os.path, "ismount", lambda path: path == str(media))
    with pytest.raises(RestoreError, match="is a mount point"):
        run_restore(site, move_aside=True, keep_mounted=True)


def test_the_restore_is_noted_before_the_services_start(site):
    """A service that fails to start does not make a retried recovery restore the data again."""
    noted = []
    systemctl = Systemctl(active=[], fail_start=["app.service"])
    restore = run_restore(site, move_aside=True, systemctl=systemctl, start_services=True)
    with pytest.raises(RestoreError, match="the data is back, but could not start: app.service"):
        restore.apply(data_back=lambda: noted.append(list(restore.done["restored"])))
    assert noted == [[str(site[0] / "srv/app"), str(site[0] / "srv/media")]]
    assert restore.whole_job() is True


def test_a_retried_recovery_starts_the_services_not_running(site):
    systemctl = Systemctl(active=[])
    restore = run_restore(site, move_aside=True, systemctl=systemctl, start_services=True)
    assert restore.start_stopped_services() == ["app.service"] and "app.service" in systemctl.active
    assert restore.start_stopped_services() == []


@pytest.mark.parametrize("options", [{"paths": ["/srv/app"]}, {"databases": False}, {"target": "/restores/app"}])
def test_only_a_restore_of_the_whole_job_may_be_met_again(options):
    restore = br.Restore(None, dict(CONFIG, name="app"), SNAP_A, dict({"paths": [], "target": "", "databases": True}, **options))
    assert restore.whole_job() is False


def test_a_restore_retried_meets_its_own_earlier_effect(tmp_path):
    """record_restore notes the snapshot; restored_already says so until a backup runs (or another snapshot)."""
    config = dict(CONFIG, name="app", state_dir=str(tmp_path / "state"))
    snapshot = dict(SNAP_A, id="a" * 64)
    assert br.restored_already(config, snapshot) is False
    br.record_restore(config, 1000, snapshot["id"])
    assert br.restored_already(config, snapshot) is True
    assert br.restored_already(config, dict(SNAP_B, id="b" * 64)) is False
    state_file = tmp_path / "state" / "app.state.json"
    state = json.loads(state_file.read_text())
    assert (state["last_restore"], state["last_restore_snapshot"]) == (1000, "a" * 64)
    state_file.write_text(json.dumps(dict(state, last_run=1001)))
    assert br.restored_already(config, snapshot) is False
    state_file.write_text("not json")
    assert br.restored_already(config, snapshot) is False


class Listing:
    """restic snapshots of one host (the job's), or of every host (None)."""

    def __init__(self, snapshots):
        self.every = snapshots
        self.hosts = []

    def snapshots(self, host):
        self.hosts.append(host)
        return [snap for snap in self.every if host is None or snap["hostname"] == host]


def test_no_snapshot_of_the_host_names_the_hosts_the_repository_holds():
    listing = Listing([dict(SNAP_A, hostname="old-web1"), dict(SNAP_B, hostname="web2")])
    with pytest.raises(RestoreError) as caught:
        br.choose(listing, dict(CONFIG, name="app", host="web1"), {"snapshot": "latest"}, epoch_of=None)
    assert caught.value.cause == br.NO_SNAPSHOT
    assert str(caught.value) == "no snapshot of job app of host web1: the repository holds job app's snapshots of host old-web1, web2 (set source_host)"
    assert listing.hosts == ["web1", None]
    with pytest.raises(RestoreError, match="the repository holds no snapshot of job app at all") as caught:
        br.choose(Listing([]), dict(CONFIG, name="app", host="web1"), {"snapshot": "latest"}, epoch_of=None)
    assert caught.value.cause == br.NO_SNAPSHOT
    snapshot, warning = br.choose(listing, dict(CONFIG, name="app", host="web1"), {"snapshot": "latest", "source_host": "web2"}, epoch_of=None)
    assert snapshot["hostname"] == "web2" and warning == ""


def test_a_job_not_on_the_host_says_so_with_its_cause(tmp_path):
    with pytest.raises(RestoreError, match=r"job app: .*is role keepdata.storage.backup applied to this host\?") as caught:
        br.load_job(str(tmp_path), "app")
    assert caught.value.cause == br.NOT_INSTALLED


def test_restore_below_a_target_leaves_services_and_databases_alone(site):
    tmp_path = site[0]
    systemctl = Systemctl(active=["app.service"])
    restore = run_restore(site, target=str(tmp_path / "inspect"), systemctl=systemctl)
    restore.apply()
    assert tree(tmp_path / "inspect")[str(tmp_path / "srv/app/old.txt").lstrip("/")] == "then"
    assert (tmp_path / "srv/app/current.txt").read_text() == "now"
    assert systemctl.calls == [] and restore.services == []


def test_an_empty_destination_is_replaced_without_moving_aside(site):
    tmp_path = site[0]
    (tmp_path / "srv/app/current.txt").unlink()
    restore = run_restore(site)
    restore.apply()
    assert restore.done["moved_aside"] == []
    assert (tmp_path / "srv/app/old.txt").read_text() == "then"


def test_a_path_the_snapshot_lacks_is_refused(site):
    tmp_path, config, snapshot, files = site
    with pytest.raises(RestoreError, match="holds nothing at"):
        run_restore((tmp_path, config, dict(snapshot, paths=snapshot["paths"] + [str(tmp_path / "srv/empty")]), files), move_aside=True)


def test_sqlite_is_replaced_by_its_dump_and_the_restored_journal_dropped(site):
    tmp_path, config, snapshot, files = site
    db_path = str(tmp_path / "srv/app/app.sqlite3")
    dump = tmp_path / "dump.sqlite3"
    conn = sqlite3.connect(str(dump))
    conn.execute("create table notes (body text)")
    conn.execute("insert into notes values ('from the dump')")
    conn.commit()
    conn.close()
    database = {"type": "sqlite", "name": "app", "path": db_path}
    config = dict(config, databases=[database])
    dump_in_snapshot = os.path.join(config["dump_dir"], "app.sqlite3")
    files = dict(files, **{db_path: "torn copy", db_path + "-wal": "journal"})

    class Dumps(FakeRestic):
        def checked(self, argv, what, retry=False, stdout=None):
            assert argv[-1] == dump_in_snapshot
            stdout.write(dump.read_bytes())
            return ""

    os.makedirs(config["state_dir"])
    restore = run_restore((tmp_path, config, snapshot, files), fake=Dumps(files), move_aside=True)
    assert restore.plan_lines[-2] == "import sqlite database app"
    restore.apply()
    rows = sqlite3.connect(db_path).execute("select body from notes").fetchall()
    assert rows == [("from the dump",)]
    assert not os.path.exists(db_path + "-wal")
    assert restore.done["imported"] == ["app"]


def test_server_databases_are_saved_aside_before_the_import(site, tmp_path):
    _root, config, snapshot, files = site
    database = {"type": "postgresql", "name": "main", "database": "appdb"}
    config = dict(config, databases=[database])
    os.makedirs(config["state_dir"])
    calls, fed = [], []

    def run(argv, **kwargs):
        calls.append(argv)
        if argv[0] == "systemctl":
            return subprocess.CompletedProcess(argv, 3 if argv[1] == "is-active" else 0, b"", b"")
        if "pg_dump" in argv:
            kwargs["stdout"].write(b"current data")
        if "pg_restore" in argv:
            fed.append(kwargs["stdin"].read())
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    fake = FakeRestic(files, dumps={os.path.join(config["dump_dir"], "main.pgdump"): b"snapshot data"})
    restore = br.Restore(fake, config, snapshot, {"move_aside": True}, run=run, stamp="T9")
    restore.plan()
    restore.apply()
    aside = os.path.join(config["state_dir"], "restore-aside", "main-T9.pgdump")
    with open(aside, "rb") as handle:
        assert handle.read() == b"current data"
    assert oct(os.stat(aside).st_mode & 0o777) == "0o600"
    assert any(argv[:5] == ["runuser", "-u", "postgres", "--", "pg_restore"] for argv in calls)
    # pg_restore runs as postgres: the root-only dump reaches it on stdin, not by its path.
    assert fed == [b"snapshot data"]
    assert {"path": "postgresql database main", "moved_to": aside} in restore.done["moved_aside"]


def test_a_database_that_cannot_be_saved_aside_is_not_replaced_and_the_dump_tool_says_why(site):
    _root, config, snapshot, files = site
    database = {"type": "mysql", "name": "shop", "database": "shop"}
    config = dict(config, databases=[database])
    os.makedirs(config["state_dir"])
    calls = []
    refusal = "mysqldump: Got error: 1049: \"Unknown database 'shop'\" when selecting the database"

    def run(argv, **kwargs):
        calls.append(argv)
        if argv[0] == "systemctl":
            return subprocess.CompletedProcess(argv, 3 if argv[1] == "is-active" else 0, b"", b"")
        if argv[0] == "mysqldump":
            kwargs["stdout"].write(b"-- MariaDB dump, cut short")
            return subprocess.CompletedProcess(argv, 2, b"", b"mysqldump: note\n" + refusal.encode() + b"\n")
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    fake = FakeRestic(files, dumps={os.path.join(config["dump_dir"], "shop.sql"): b"snapshot data"})
    restore = br.Restore(fake, config, snapshot, {"move_aside": True}, run=run, stamp="T9")
    restore.plan()
    with pytest.raises(RestoreError) as raised:
        restore.apply()
    assert str(raised.value) == "saving the current mysql database shop aside failed (exit status 2): %s; it was not replaced" % refusal
    # No partial file passes for the saved database, and the import never ran.
    assert os.listdir(os.path.join(config["state_dir"], "restore-aside")) == []
    assert not any(argv[0] == "mysql" for argv in calls)
    assert restore.done["imported"] == []


# --- export and restic -----------------------------------------------------------------------------------------


class DumpRestic:
    def __init__(self, payload, rc=0):
        self.payload = payload
        self.rc = rc

    def checked(self, argv, what, retry=False, stdout=None):
        stdout.write(self.payload)
        if self.rc:
            raise RestoreError("restic dump failed")
        return ""

    def call(self, argv, retry=False, stdout=None):
        stdout.write(self.payload)
        stdout.flush()
        return self.rc, "", ""


def test_export_writes_a_private_file_and_its_sha256(tmp_path):
    dest = str(tmp_path / "out.tar")
    digest, size = br.export(DumpRestic(b"tar bytes"), CONFIG, "aaaa1111", dest)
    assert digest == hashlib.sha256(b"tar bytes").hexdigest() and size == 9
    assert oct(os.stat(dest).st_mode & 0o777) == "0o600"


def test_a_failed_export_leaves_no_file(tmp_path):
    with pytest.raises(RestoreError):
        br.export(DumpRestic(b"half", rc=1), CONFIG, "aaaa1111", str(tmp_path / "out.tar"))
    assert os.listdir(tmp_path) == []


def test_export_argv_dumps_the_whole_snapshot_as_tar():
    assert br.export_argv(CONFIG, "aaaa1111") == ["restic", "-o", "s3.connections=5", "dump", "--archive", "tar", "aaaa1111", "/"]


LS_014 = (
    b'{"time":"2026-12-06T16:13:16Z","tree":"t","paths":["/src"],"hostname":"h","id":"i","short_id":"s","struct_type":"snapshot"}\n'
    b'{"name":"src","type":"dir","path":"/src","struct_type":"node"}\n'
    b'{"name":"a","type":"file","path":"/src/a","size":3,"struct_type":"node"}\n'
    b'{"name":"null","type":"chardev","path":"/src/d/null","struct_type":"node"}\n'
    b'{"name":"pipe \\"type\\":\\"file\\"","type":"fifo","path":"/src/d/pipe \\"type\\":\\"file\\"","struct_type":"node"}\n'
    b'{"name":"link","type":"symlink","path":"/src/link","struct_type":"node"}\n'
)


def test_the_entries_an_archive_cannot_hold_are_read_from_the_listing_on_disk():
    seen = []

    def run(argv, **kwargs):
        seen.append((argv, kwargs["stdout"]))
        kwargs["stdout"].write(LS_014)
        return subprocess.CompletedProcess(argv, 0, None, b"")

    restic = br.JobRestic(dict(CONFIG, repository="/srv/backup"), run=run, environ={})
    # A FIFO whose name holds the text '"type":"file"' is still found: in the JSON its quotes are escaped.
    assert restic.left_out_of_archive("aaaa1111") == [
        {"path": "/src/d/null", "type": "chardev"},
        {"path": '/src/d/pipe "type":"file"', "type": "fifo"},
    ]
    ((argv, stdout),) = seen
    assert argv == br.shared.ls_command(CONFIG, "aaaa1111") + ["--no-lock"] and hasattr(stdout, "fileno")


def test_a_failed_listing_fails_the_export_before_it_writes():
    def run(argv, **_kwargs):
        return subprocess.CompletedProcess(argv, 1, None, b"Fatal: wrong password or no key found")

    with pytest.raises(RestoreError, match="restic ls failed .*wrong_password"):
        br.JobRestic(dict(CONFIG, repository="/srv/backup"), run=run, environ={}).left_out_of_archive("aaaa1111")


def test_the_warning_names_what_the_archive_lacks_and_counts_the_rest():
    one = [{"path": "/srv/app/queue", "type": "fifo"}]
    assert br.left_out_warning(one) == "the archive cannot hold 1 entry of the snapshot (restic dump leaves FIFOs and devices out): /srv/app/queue (fifo)"
    many = [{"path": "/srv/dev/d%d" % number, "type": "dev"} for number in range(12)]
    warning = br.left_out_warning(many)
    assert warning.startswith("the archive cannot hold 12 entries") and "/srv/dev/d9 (dev); and 2 more" in warning and "d10" not in warning


def test_job_restic_retries_a_transient_failure_of_a_read():
    answers = [(1, "Fatal: connection refused"), (0, "")]
    calls, pauses = [], []

    def run(argv, **kwargs):
        calls.append((argv, kwargs["env"]))
        rc, err = answers.pop(0)
        return subprocess.CompletedProcess(argv, rc, b"[]", err.encode())

    config = dict(CONFIG, repository="s3:http://127.0.0.1:7480/b/p", host="web1", password_file=PASSWORD_FILE, s3_credentials_file="/etc/kd/s3")
    restic = br.JobRestic(config, run=run, sleep=pauses.append, environ={"PATH": "/usr/bin", "RESTIC_PASSWORD": "leak"})
    assert restic.snapshots("web1") == []
    assert pauses == [1] and len(calls) == 2
    argv, env = calls[0]
    assert argv[-6:] == ["--json", "--no-lock", "--host", "web1", "--tag", "keepdata-job=app"]
    assert env["RESTIC_PASSWORD_FILE"] == PASSWORD_FILE and "RESTIC_PASSWORD" not in env


def test_job_restic_does_not_retry_a_real_error():
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 1, b"", b"Fatal: wrong password or no key found")

    config = dict(CONFIG, repository="/srv/backup", host="web1", password_file=PASSWORD_FILE)
    with pytest.raises(
        RestoreError, match="restic snapshots failed \\(exit status 1\\): wrong_password \\(wrong repository password\\): Fatal: wrong password or no key found"
    ):
        br.JobRestic(config, run=run, sleep=lambda s: None, environ={}).snapshots("web1")
    assert len(calls) == 1


def test_epoch_reader_uses_gnu_date_and_refuses_what_it_cannot_read():
    seen = []

    def run_command(argv, environ_update=None):
        seen.append(argv)
        return (0, "1796061600\n", "") if argv[2] == "yesterday 18:00" else (1, "", "date: invalid date")

    epoch_of = br.epoch_reader(run_command)
    assert epoch_of("yesterday 18:00") == 1796061600
    assert seen[0] == ["date", "-d", "yesterday 18:00", "+%s"]
    with pytest.raises(RestoreError, match='as_of "garbage" is not a date'):
        epoch_of("garbage")


def test_a_dump_that_cannot_be_fetched_changes_nothing(site):
    tmp_path, config, snapshot, files = site
    config = dict(config, databases=[{"type": "sqlite", "name": "app", "path": str(tmp_path / "srv/app/app.sqlite3")}])
    before = tree(tmp_path)

    class NoDump(FakeRestic):
        def checked(self, argv, what, retry=False, stdout=None):
            raise RestoreError("restic dump of the dump failed")

    systemctl = Systemctl(active=["app.service"])
    restore = run_restore((tmp_path, config, snapshot, files), fake=NoDump(files), move_aside=True, systemctl=systemctl)
    with pytest.raises(RestoreError, match="restic dump"):
        restore.apply()
    after = tree(tmp_path)
    assert after == before
    assert sorted(os.listdir(tmp_path / "srv")) == ["app", "media"]
    assert restore.done["moved_aside"] == [] and restore.done["started"] == ["app.service"]


def test_the_whole_snapshot_is_staged_by_one_restore_without_include(site):
    tmp_path, _config, _snapshot, files = site
    fake = FakeRestic(files)
    restore = run_restore(site, move_aside=True, fake=fake)
    restore.apply()
    restores = [argv for argv in fake.calls if "restore" in argv]
    assert len(restores) == 1 and "--include" not in restores[0]
    assert restore.plan_lines[1].startswith("restore %s/srv/app -> %s/srv/app (1 files, 4 B)" % (tmp_path, tmp_path))


@pytest.mark.parametrize("version, sparse", [((0, 14, 0), False), ((0, 15, 0), True), ((0, 18, 1), True), (None, False)])
def test_restic_0_15_and_later_restore_sparse_files_sparse(site, version, sparse):
    fake = FakeRestic(site[3], version=version)
    run_restore(site, move_aside=True, fake=fake).apply()
    (restore,) = [argv for argv in fake.calls if "restore" in argv]
    assert ("--sparse" in restore) is sparse


def test_job_restic_asks_restic_its_version_once():
    calls = []

    def run(argv, **_kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, b"restic 0.18.0 compiled with go1.24.4 on linux/amd64\n", b"")

    restic = br.JobRestic(dict(CONFIG, repository="/srv/backup"), run=run, environ={})
    assert restic.version() == (0, 18, 0) and restic.version() == (0, 18, 0)
    assert calls == [["restic", "version"]]


def test_job_restic_without_a_version_restores_as_restic_0_14():
    def run(argv, **_kwargs):
        return subprocess.CompletedProcess(argv, 127, b"", b"restic: not found")

    restic = br.JobRestic(dict(CONFIG, repository="/srv/backup"), run=run, environ={})
    assert restic.version() is None and br.shared.restore_flags(restic.version()) == []


def test_chosen_paths_are_staged_one_by_one_with_include(site):
    tmp_path, _config, _snapshot, files = site
    fake = FakeRestic(files)
    restore = run_restore(site, paths=[str(tmp_path / "srv/media")], fake=fake, move_aside=True)
    restore.apply()
    restores = [argv for argv in fake.calls if "restore" in argv]
    assert len(restores) == 1 and restores[0][-2:] == ["--include", br.shared.include_pattern(str(tmp_path / "srv/media"))]
    assert (tmp_path / "srv/app/current.txt").read_text() == "now"
    assert (tmp_path / "srv/media/m.txt").read_text() == "media"


def test_a_real_run_counts_what_it_staged_instead_of_listing_the_snapshot(site):
    tmp_path, config, snapshot, files = site

    class NoListing(FakeRestic):
        def nodes(self, _snapshot_id):
            raise AssertionError("a real restore must not list the snapshot")

    restore = br.Restore(NoListing(files), config, snapshot, {"move_aside": True}, run=Systemctl(), stamp="T1")
    restore.plan(count=False)
    assert restore.plan_lines[1] == "restore %s/srv/app -> %s/srv/app; current content moved to %s/srv/app.keepdata-moved-T1" % ((tmp_path,) * 3)
    restore.apply()
    assert [(item["files"], item["bytes"]) for item in restore.items] == [(1, 4), (1, 5)]


def test_a_chosen_path_the_snapshot_lacks_fails_before_any_change(site):
    tmp_path, config, snapshot, files = site
    before = tree(tmp_path)
    restore = br.Restore(FakeRestic(files), config, snapshot, {"paths": [str(tmp_path / "srv/app/missing")]}, run=Systemctl(), stamp="T1")
    restore.plan(count=False)
    with pytest.raises(RestoreError, match="wrote nothing at"):
        restore.apply()
    assert tree(tmp_path) == before


def test_a_suspect_snapshot_is_restored_with_a_warning_naming_the_last_good_one():
    suspect = dict(SNAP_C, tags=["keepdata-job=app", "keepdata-suspect"])
    assert br.suspect_warning([SNAP_A, SNAP_B, suspect], SNAP_B) == ""
    assert br.suspect_warning([SNAP_A, SNAP_B, suspect], suspect) == (
        "snapshot bbbb3333 is suspect (tagged keepdata-suspect: its sources were empty or had shrunk when it was taken); the last good one is"
        " bbbb2222 of 2026-11-02T10:00:00 (snapshot=bbbb2222 restores it)"
    )
    assert br.suspect_warning([suspect], suspect).endswith("; no snapshot of the job is good")
    # The untagged original an append-only repository keeps beside the tagged copy is suspect too.
    original = dict(SNAP_C, id="cccc" + SNAP_C["id"][4:])
    assert br.suspect_warning([SNAP_A, SNAP_B, suspect, original], original).startswith("snapshot cccc")
    assert "the last good one is bbbb2222" in br.suspect_warning([SNAP_A, SNAP_B, suspect, original], original)


def test_a_restore_is_noted_in_the_job_state(tmp_path):
    config = {"name": "app", "state_dir": str(tmp_path)}
    (tmp_path / "app.state.json").write_text('{"last_success": 0, "snapshots": 3}')
    br.record_restore(config, 1700000000.5, "a" * 64)
    expected = {"last_success": 0, "snapshots": 3, "last_restore": 1700000000, "last_restore_snapshot": "a" * 64}
    assert json.loads((tmp_path / "app.state.json").read_text()) == expected
    # A host with no state yet (a new host) gets one.
    (tmp_path / "app.state.json").unlink()
    br.record_restore(config, 1700000001)
    assert json.loads((tmp_path / "app.state.json").read_text()) == {"last_restore": 1700000001, "last_restore_snapshot": ""}
    with pytest.raises(RestoreError, match="restored, but cannot note it in the job's state"):
        br.record_restore({"name": "app", "state_dir": str(tmp_path / "app.state.json")}, 1)


def test_reads_of_metadata_take_no_lock_and_a_restore_takes_restics_shared_one():
    # backup_info is read-only: no lock object written, and no failure while a prune holds the exclusive lock.
    calls = []

    def run(argv, **kwargs):
        calls.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "[]" if "snapshots" in argv else '{"total_size": 0}', "")

    restic = br.JobRestic(dict(CONFIG, repository="/srv/repo", password_file=PASSWORD_FILE), run=run, environ={"PATH": "/usr/bin"})
    restic.snapshots("web1")
    restic.nodes("aaaa1111")
    restic.restore_size("aaaa1111")
    assert all("--no-lock" in argv for argv in calls), calls
    assert "--no-lock" not in br.restore_argv(CONFIG, "aaaa1111", "/stage", ["/srv/app"])
    assert "--no-lock" not in br.export_argv(CONFIG, "aaaa1111")
