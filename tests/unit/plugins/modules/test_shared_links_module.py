# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared_links module run in-process (main() with module arguments), on real trees under tmp_path."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.mounts import shared_links as links_logic
from ansible_collections.keepdata.storage.plugins.modules import shared_links
from ansible_collections.keepdata.storage.tests.unit.plugins.compat import patch_module_args


def run(capsys, **args):
    """(exit code, result) of one module run."""
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        shared_links.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def tree(root):
    """{relative path: content, link target or "dir"} of everything under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, str(root))
            if os.path.islink(path):
                out[rel] = "-> " + os.readlink(path)
            elif os.path.isdir(path):
                out[rel] = "dir"
            else:
                with open(path, encoding="utf-8") as handle:
                    out[rel] = handle.read()
    return out


def write(path, content):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w", encoding="utf-8") as handle:
        handle.write(content)


@pytest.fixture
def site(tmp_path):
    app, storage = tmp_path / "app", tmp_path / "storage"
    write(app / "public" / "uploads" / "été résumé.txt", "hello")
    write(app / "public" / "uploads" / "avatars" / "1.png", "png")
    storage.mkdir()
    args = dict(app_root=str(app), storage=str(storage), links=["public/uploads", "var/cache"], owner=str(os.getuid()), group=str(os.getgid()))
    return tmp_path, args


def test_check_mode_changes_nothing_and_reports_changed(site, capsys):
    tmp_path, args = site
    before = tree(tmp_path)
    code, result = run(capsys, _ansible_check_mode=True, _ansible_diff=True, **args)
    assert code == 0
    assert result["changed"] is True
    assert result["done"] == ["public/uploads", "var/cache"]
    assert result["links"]["public/uploads"]["state"] == "dir" and result["links"]["var/cache"]["state"] == "absent"
    assert result["diff"]["before"] == "public/uploads: dir\nvar/cache: absent\n"
    assert result["diff"]["after"] == "public/uploads -> {0}/public/uploads\nvar/cache -> {0}/var/cache\n".format(args["storage"])
    assert tree(tmp_path) == before


def test_run_then_idempotent(site, capsys):
    tmp_path, args = site
    code, result = run(capsys, **args)
    assert code == 0, result
    assert result["changed"] is True and result["done"] == ["public/uploads", "var/cache"] and result["clashes"] == {}
    assert "diff" not in result
    storage = args["storage"]
    assert os.readlink(args["app_root"] + "/public/uploads") == storage + "/public/uploads"
    assert os.readlink(args["app_root"] + "/var/cache") == storage + "/var/cache"
    assert tree(storage) == {
        "public": "dir",
        "public/uploads": "dir",
        "public/uploads/avatars": "dir",
        "public/uploads/avatars/1.png": "png",
        "public/uploads/été résumé.txt": "hello",
        "var": "dir",
        "var/cache": "dir",
    }

    before = tree(tmp_path)
    code, result = run(capsys, _ansible_diff=True, **args)
    assert code == 0
    assert result["changed"] is False and result["done"] == []
    assert {rel: status["state"] for rel, status in result["links"].items()} == {"public/uploads": "ok", "var/cache": "ok"}
    assert tree(tmp_path) == before


def test_clash_fails_with_nothing_moved(site, capsys):
    tmp_path, args = site
    write(tmp_path / "storage" / "public" / "uploads" / "été résumé.txt", "someone else's")
    write(tmp_path / "storage" / "public" / "uploads" / "avatars" / "1.png", "png")  # identical: fine
    before = tree(tmp_path)
    for check_mode in (True, False):
        code, result = run(capsys, _ansible_check_mode=check_mode, **args)
        assert code == 1
        assert result["failed"] is True and result["changed"] is False
        assert result["clashes"] == {"public/uploads": ["été résumé.txt"]}
        assert result["msg"] == (
            "would overwrite files in the shared storage, nothing was moved: {app}/public/uploads and {storage}/public/uploads both hold "
            "été résumé.txt (identical files are fine; move or rename the others first)".format(app=args["app_root"], storage=args["storage"])
        )
        assert tree(tmp_path) == before


def test_unknown_owner_fails_before_any_change(site, capsys):
    tmp_path, args = site
    before = tree(tmp_path)
    args.update(owner="no-such-user-keepdata", group="no-such-group-keepdata")
    code, result = run(capsys, **args)
    assert code == 1 and result["changed"] is False
    assert result["msg"] == "unknown user or group on this host: owner=no-such-user-keepdata, group=no-such-group-keepdata"
    assert tree(tmp_path) == before


def test_link_problem_fails_before_any_change(site, capsys):
    tmp_path, args = site
    write(tmp_path / "app" / "var", "a file where a directory should be")
    before = tree(tmp_path)
    code, result = run(capsys, **args)
    assert code == 1 and result["changed"] is False
    assert result["msg"] == "cannot symlink into the shared storage: %s/var/cache (%s/var is not a directory)" % (args["app_root"], args["app_root"])
    assert tree(tmp_path) == before


def test_bad_request_and_missing_storage(site, capsys):
    tmp_path, args = site
    code, result = run(capsys, **dict(args, links=["../etc"]))
    assert code == 1 and "must be a relative path under app_root" in result["msg"]
    code, result = run(capsys, **dict(args, storage=str(tmp_path / "nowhere")))
    assert code == 1 and result["msg"] == "storage %s is not a directory: mount the shared storage first" % (tmp_path / "nowhere")
    code, result = run(capsys, _ansible_check_mode=True, **dict(args, storage=str(tmp_path / "nowhere")))
    assert code == 0 and result["changed"] is True


def test_failure_halfway_is_reported_as_changed(site, capsys, monkeypatch):
    tmp_path, args = site
    real = os.symlink

    def symlink(src, dst):
        if dst.endswith("var/cache"):
            raise OSError(13, "Permission denied", dst)
        return real(src, dst)

    monkeypatch.setattr(os, "symlink", symlink)
    code, result = run(capsys, **args)
    assert code == 1
    assert result["changed"] is True and result["done"] == ["public/uploads", "var/cache"]
    assert "stopped halfway" in result["msg"] and "var/cache" in result["msg"]
    monkeypatch.undo()
    code, result = run(capsys, **args)
    assert code == 0 and result["done"] == ["var/cache"]


# -- a storage that looks mounted but whose FUSE daemon is gone, or that does not answer ---------------------
@pytest.fixture
def mounted_storage(site, monkeypatch):
    tmp_path, params = site
    monkeypatch.setattr(links_logic, "read_mount_types", lambda mountinfo=None: {params["storage"]: "fuse.s3fs"})
    return tmp_path, params


@pytest.mark.parametrize(
    "case",
    [
        ("dead", "Transport endpoint is not connected", "is mounted but its FUSE daemon is gone (Transport endpoint is not connected); run the role again"),
        ("hung", "no answer within 10 s", "does not answer (no answer within 10 s)"),
        ("error", "Input/output error", "cannot read the shared storage"),
    ],
)
def test_storage_not_answering_fails_clearly_before_any_change(mounted_storage, capsys, monkeypatch, case):
    state, detail, expect = case
    tmp_path, params = mounted_storage
    monkeypatch.setattr(links_logic, "look", lambda path, timeout: (state, detail))
    before = tree(tmp_path)
    code, result = run(capsys, **params)
    assert code == 1 and expect in result["msg"] and result["msg"].endswith("nothing was changed")
    assert result["changed"] is False and tree(tmp_path) == before


def test_dead_storage_in_check_mode_warns(mounted_storage, capsys, monkeypatch):
    tmp_path, params = mounted_storage
    monkeypatch.setattr(links_logic, "look", lambda path, timeout: ("dead", "Transport endpoint is not connected"))
    code, result = run(capsys, _ansible_check_mode=True, **params)
    assert code == 0 and result["changed"] is False
    assert "the links cannot be previewed until it answers again" in json.dumps(result.get("warnings"))


def test_a_read_failing_halfway_is_a_message_not_a_traceback(site, capsys, monkeypatch):
    tmp_path, params = site

    def listdir(path):
        raise OSError(107, "Transport endpoint is not connected", path)

    monkeypatch.setattr(links_logic.os, "listdir", listdir)
    code, result = run(capsys, **params)
    assert code == 1 and "Transport endpoint is not connected; nothing was changed" in result["msg"]
