# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Moving app directories into a shared storage and linking them (module_utils/shared_links.py), on real trees."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import shutil

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.mounts import shared_links as sl

UID, GID = os.getuid(), os.getgid()


def build(root, spec):
    """Create ``spec`` under ``root``: dict = directory, str = file content, ("link", target) = symlink."""
    os.makedirs(str(root), exist_ok=True)
    for name, value in spec.items():
        path = os.path.join(str(root), name)
        if isinstance(value, dict):
            build(path, value)
        elif isinstance(value, tuple):
            os.symlink(value[1], path)
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(value)


def snapshot(root):
    """The tree under ``root`` in the form build() takes (None when it does not exist)."""
    root = str(root)
    if os.path.islink(root):
        return ("link", os.readlink(root))
    if not os.path.lexists(root):
        return None
    if os.path.isdir(root):
        return {name: snapshot(os.path.join(root, name)) for name in sorted(os.listdir(root))}
    with open(root, encoding="utf-8") as handle:
        return handle.read()


def files(root):
    """{relative path: content or link} of every file and link under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, str(root))
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            else:
                with open(path, encoding="utf-8") as handle:
                    out[rel] = handle.read()
    return out


@pytest.fixture
def roots(tmp_path):
    app, storage = tmp_path / "app", tmp_path / "storage"
    app.mkdir()
    storage.mkdir()
    return str(app), str(storage)


def no_rename_across(monkeypatch, under):
    """os.rename of anything under ``under`` fails with EXDEV, as between the app disk and an s3fs mount."""
    real = os.rename

    def rename(src, dst):
        if str(src).startswith(str(under) + os.sep):
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
        return real(src, dst)

    monkeypatch.setattr(sl.os, "rename", rename)


# same / clashes / link_clashes


def test_same_compares_content_and_link_targets(tmp_path):
    build(tmp_path, {"a": "x", "b": "x", "c": "y", "l1": ("link", "a"), "l2": ("link", "a"), "l3": ("link", "c"), "d": {}})
    p = str(tmp_path)
    assert sl.same(p + "/a", p + "/b")
    assert not sl.same(p + "/a", p + "/c")
    assert sl.same(p + "/l1", p + "/l2")
    assert not sl.same(p + "/l1", p + "/l3")
    assert not sl.same(p + "/l1", p + "/a")  # a link and the file it points at are not the same entry
    assert not sl.same(p + "/d", p + "/d")  # directories are never "the same file"


@pytest.mark.parametrize(
    "src, dst, expected",
    [
        ({"f.txt": "1"}, {"f.txt": "2"}, ["f.txt"]),
        ({"a": {"f.txt": "1"}}, {"a": {"f.txt": "2"}}, ["a/f.txt"]),
        ({"a": {"b": {"c": {"f.txt": "1"}}}}, {"a": {"b": {"c": {"f.txt": "2"}}}}, ["a/b/c/f.txt"]),
        ({"a": {"b": {"x": "1", "y": "1"}}, "z": "1"}, {"a": {"b": {"x": "1", "y": "2"}}, "z": "3"}, ["a/b/y", "z"]),
        ({"a": {"f": "1"}}, {"b": {"f": "2"}}, []),  # different directories merge without clashes
        ({"d": {"f": "1"}}, {"d": "file"}, ["d/"]),  # a directory where the storage has a file
        ({"d": "file"}, {"d": {"f": "1"}}, ["d"]),  # a file where the storage has a directory
        ({"a": {"d": {"f": "1"}}}, {"a": {"d": "file"}}, ["a/d/"]),
        ({"same.txt": "1", "a": {"same": "2"}}, {"same.txt": "1", "a": {"same": "2"}}, []),  # identical: fine
        ({"l": ("link", "/x")}, {"l": ("link", "/x")}, []),
        ({"l": ("link", "/x")}, {"l": ("link", "/y")}, ["l"]),
        ({"l": ("link", "t")}, {"l": "t content", "t": "t content"}, ["l"]),
        ({"d": ("link", "/somewhere")}, {"d": {"f": "1"}}, ["d"]),
    ],
)
def test_clashes_at_every_depth(tmp_path, src, dst, expected):
    build(tmp_path / "src", src)
    build(tmp_path / "dst", dst)
    assert sl.clashes(str(tmp_path / "src"), str(tmp_path / "dst")) == expected


def test_clashes_with_spaces_and_non_ascii_names(tmp_path):
    build(tmp_path / "src", {"dossier partagé": {"été résumé.txt": "v1", "ok.txt": "same"}})
    build(tmp_path / "dst", {"dossier partagé": {"été résumé.txt": "v2", "ok.txt": "same"}})
    assert sl.clashes(str(tmp_path / "src"), str(tmp_path / "dst")) == ["dossier partagé/été résumé.txt"]


def test_link_clashes_when_storage_path_is_missing_or_not_a_directory(tmp_path):
    build(tmp_path, {"app": {"f": "1"}, "file": "x", "linkdir": ("link", "app")})
    p = str(tmp_path)
    assert sl.link_clashes(p + "/app", p + "/missing") == []
    assert sl.link_clashes(p + "/app", p + "/file") == [p + "/file (not a directory)"]
    assert sl.link_clashes(p + "/app", p + "/linkdir") == [p + "/linkdir (not a directory)"]


# merge


def test_merge_nested_trees_with_odd_names(tmp_path):
    src = {
        "a": {"b": {"c": {"deep.txt": "deep"}, "new.txt": "new"}},
        "été résumé.txt": "café",
        "with space": {"f g.txt": "fg"},
        "same.txt": "identical",
        "link": ("link", "../elsewhere"),
    }
    dst = {"a": {"b": {"c": {"other.txt": "other"}}}, "same.txt": "identical", "kept.txt": "kept"}
    build(tmp_path / "src", src)
    build(tmp_path / "dst", dst)
    sl.merge(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert not os.path.lexists(str(tmp_path / "src"))
    assert snapshot(tmp_path / "dst") == {
        "a": {"b": {"c": {"deep.txt": "deep", "other.txt": "other"}, "new.txt": "new"}},
        "été résumé.txt": "café",
        "with space": {"f g.txt": "fg"},
        "same.txt": "identical",
        "kept.txt": "kept",
        "link": ("link", "../elsewhere"),
    }


def test_merge_never_overwrites(tmp_path):
    build(tmp_path / "src", {"a.txt": "a", "z.txt": "mine"})
    build(tmp_path / "dst", {"z.txt": "theirs"})
    with pytest.raises(sl.SharedLinksError, match="z.txt appeared in the shared storage while moving, nothing overwritten"):
        sl.merge(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert snapshot(tmp_path / "dst") == {"a.txt": "a", "z.txt": "theirs"}
    assert snapshot(tmp_path / "src") == {"z.txt": "mine"}


def test_merge_refuses_a_directory_into_itself(tmp_path):
    build(tmp_path, {"real": {"f": "precious"}, "alias": ("link", "real")})
    with pytest.raises(sl.SharedLinksError, match="same directory"):
        sl.merge(str(tmp_path / "alias"), str(tmp_path / "real"))
    assert snapshot(tmp_path / "real") == {"f": "precious"}


def test_merge_across_filesystems_copies_then_renames(tmp_path, monkeypatch):
    build(tmp_path / "src", {"d": {"e": {"été.txt": "x"}}, "f.txt": "f", "l": ("link", "f.txt")})
    os.chmod(str(tmp_path / "src" / "d"), 0o700)
    build(tmp_path / "dst", {})
    no_rename_across(monkeypatch, tmp_path / "src")
    sl.merge(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert snapshot(tmp_path / "dst") == {"d": {"e": {"été.txt": "x"}}, "f.txt": "f", "l": ("link", "f.txt")}
    assert os.stat(str(tmp_path / "dst" / "d")).st_mode & 0o777 == 0o700
    assert not os.path.lexists(str(tmp_path / "src"))


# link_status / link_problem


def test_link_status_states(roots):
    app, storage = roots
    build(app, {"linked": ("link", storage + "/linked"), "elsewhere": ("link", "/elsewhere"), "afile": "x", "adir": {"b": "1", "a": "1"}})
    build(storage, {"linked": {}})
    ok = sl.link_status(app, storage, "linked", True)
    assert ok["state"] == "ok" and ok["ids"] == [os.lstat(app + "/linked").st_uid, os.lstat(app + "/linked").st_gid]
    assert ok["target_missing"] is False
    assert sl.link_status(app, storage, "missing", True)["state"] == "absent"
    assert sl.link_status(app, storage, "afile", True)["state"] == "not_dir"
    other = sl.link_status(app, storage, "elsewhere", True)
    assert other["state"] == "link_other" and other["target"] == "/elsewhere"
    adir = sl.link_status(app, storage, "adir", True)
    assert adir["state"] == "dir" and adir["entries"] == ["a", "b"] and adir["clashes"] == []


def test_link_status_target_missing_only_when_mounted(roots):
    app, storage = roots
    build(app, {"up": ("link", storage + "/up")})
    assert sl.link_status(app, storage, "up", True)["target_missing"] is True
    assert sl.link_status(app, storage, "up", False)["target_missing"] is False


def test_link_status_clashes_only_when_mounted(roots):
    app, storage = roots
    build(app, {"up": {"a": "1", "b": {"c": "2"}}})
    build(storage, {"up": {"a": "other", "b": {"c": "2"}}})
    assert sl.link_status(app, storage, "up", True)["clashes"] == ["a"]
    assert sl.link_status(app, storage, "up", False)["clashes"] == []


@pytest.mark.parametrize(
    "spec, rel, parent",
    [
        ({"public": "a file"}, "public/uploads", "public"),
        ({"public": "a file"}, "public/a/b/uploads", "public"),
        ({"public": {"a": "file"}}, "public/a/b/uploads", "public/a"),
        ({"public": ("link", "/elsewhere")}, "public/uploads", "public"),
        ({"real": {"uploads": {"f": "1"}}, "public": ("link", "real")}, "public/uploads", "public"),  # even if it exists through the link
    ],
)
def test_link_status_parent_not_dir(roots, spec, rel, parent):
    app, storage = roots
    build(app, spec)
    status = sl.link_status(app, storage, rel, True)
    assert status["state"] == "parent_not_dir" and status["parent"] == os.path.join(app, parent)
    assert sl.link_problem(app, rel, status) == "%s/%s (%s/%s is not a directory)" % (app, rel, app, parent)


def test_link_status_app_root_may_be_a_link_but_not_a_file(tmp_path):
    build(tmp_path, {"release": {"public": {}}, "current": ("link", "release"), "afile": "x"})
    assert sl.link_status(str(tmp_path / "current"), "/storage", "public/uploads", False)["state"] == "absent"
    status = sl.link_status(str(tmp_path / "afile"), "/storage", "uploads", False)
    assert status["state"] == "parent_not_dir" and status["parent"] == str(tmp_path / "afile")
    assert sl.link_status(str(tmp_path / "nothing"), "/storage", "a/b", False)["state"] == "absent"


def test_link_problem_messages():
    assert sl.link_problem("/srv/app", "up", {"state": "link_other", "target": "/x"}) == "/srv/app/up (is a link to /x)"
    assert sl.link_problem("/srv/app/", "up", {"state": "not_dir"}) == "/srv/app/up (is not a directory)"
    assert sl.link_problem("/srv/app", "a/up", {"state": "parent_not_dir", "parent": "/srv/app/a"}) == "/srv/app/a/up (/srv/app/a is not a directory)"
    for state in ("ok", "absent", "dir"):
        assert sl.link_problem("/srv/app", "up", {"state": state}) is None


def test_links_todo():
    def status(state, ids=(), target_missing=False):
        return {"state": state, "ids": list(ids), "target_missing": target_missing}

    statuses = {
        "z/done": status("ok", (UID, GID)),
        "y/owner": status("ok", (UID + 1, GID)),
        "x/group": status("ok", (UID, GID + 1)),
        "w/target": status("ok", (UID, GID), True),
        "b/dir": status("dir"),
        "a/absent": status("absent"),
    }
    assert sl.links_todo(statuses, UID, GID) == ["a/absent", "b/dir", "w/target", "x/group", "y/owner"]
    assert sl.links_todo({"ok": status("ok", (UID, GID))}, UID, GID) == []


def test_clash_message():
    found = {"b/up": ["1", "2", "3", "4", "5", "6"], "a": ["x/"]}
    assert sl.clash_message("/srv/app/", "/storage", found) == (
        "would overwrite files in the shared storage, nothing was moved: /srv/app/a and /storage/a both hold x/; "
        "/srv/app/b/up and /storage/b/up both hold 1, 2, 3, 4, 5 ... (identical files are fine; move or rename the others first)"
    )
    assert sl.clash_message("/a", "/s", {"r": ["1", "2", "3", "4", "5"]}).endswith(
        "both hold 1, 2, 3, 4, 5 (identical files are fine; move or rename the others first)"
    )


def test_check_links():
    assert sl.check_links("/srv/app", "/storage", ["public/uploads", "tmp"]) == []
    errors = sl.check_links("/srv/app", "/storage", ["/etc", "../x", "a/./b", "", "a", "a", "a/b"])
    assert len(errors) == 6
    assert 'link "a" is listed twice' in errors
    assert 'links "a" and "a/b" clash: one is inside the other' in errors
    assert sl.check_links("/srv/app", "/srv/app/storage", []) == ["app_root /srv/app and storage /srv/app/storage must not contain one another"]
    assert len(sl.check_links("srv", "/", [])) == 2
    assert sl.check_links("/", "/storage", []) == [
        "app_root / must be an absolute path other than /",
        "app_root / and storage /storage must not contain one another",
    ]


def test_apply_links_moves_merges_and_links(roots):
    app, storage = roots
    build(app, {"public": {"uploads": {"été résumé.txt": "v", "sub dir": {"a": "1"}, "same": "s"}}, "var": {}})
    build(storage, {"public": {"uploads": {"sub dir": {"b": "2"}, "same": "s"}}})
    out = sl.apply_links(app, storage, ["public/uploads", "var/cache/x"], UID, GID)
    assert out == {"clashes": {}, "done": ["public/uploads", "var/cache/x"]}
    for rel in ("public/uploads", "var/cache/x"):
        assert os.readlink(os.path.join(app, rel)) == os.path.join(storage, rel)
        assert sl.link_status(app, storage, rel, True)["state"] == "ok"
    assert snapshot(os.path.join(storage, "public/uploads")) == {"été résumé.txt": "v", "sub dir": {"a": "1", "b": "2"}, "same": "s"}
    assert snapshot(os.path.join(storage, "var/cache/x")) == {}
    # Nothing left to do: a second run changes nothing.
    statuses = {rel: sl.link_status(app, storage, rel, True) for rel in ("public/uploads", "var/cache/x")}
    assert sl.links_todo(statuses, UID, GID) == []
    assert sl.apply_links(app, storage, [], UID, GID) == {"clashes": {}, "done": []}
    assert sl.apply_links(app, storage, ["public/uploads"], UID, GID) == {"clashes": {}, "done": []}


def test_apply_links_sets_the_link_owner(roots):
    app, storage = roots
    build(app, {"up": {"f": "1"}})
    sl.apply_links(app, storage, ["up"], UID, GID)
    assert [os.lstat(app + "/up").st_uid, os.lstat(app + "/up").st_gid] == [UID, GID]
    if UID != 0:
        return  # only root can give a link away
    sl.apply_links(app, storage, ["up"], 4321, 8765)
    assert [os.lstat(app + "/up").st_uid, os.lstat(app + "/up").st_gid] == [4321, 8765]
    assert sl.links_todo({"up": sl.link_status(app, storage, "up", True)}, UID, GID) == ["up"]
    assert sl.apply_links(app, storage, ["up"], UID, GID)["done"] == ["up"]
    assert os.lstat(app + "/up").st_uid == UID
    assert os.stat(storage + "/up/f").st_uid == UID  # the target is not touched


def test_apply_links_clash_changes_nothing(roots):
    app, storage = roots
    build(app, {"ok": {"f": "1"}, "up": {"deep": {"x.txt": "mine"}, "y": "1"}})
    build(storage, {"up": {"deep": {"x.txt": "theirs"}}})
    before = (snapshot(app), snapshot(storage))
    progress = {}
    out = sl.apply_links(app, storage, ["ok", "up"], UID, GID, progress=progress)
    assert out == {"clashes": {"up": ["deep/x.txt"]}, "done": []}
    assert (snapshot(app), snapshot(storage)) == before
    assert progress == {"changed": False, "done": []}


def test_apply_links_storage_path_is_a_file(roots):
    app, storage = roots
    build(storage, {"up": "a file"})
    assert sl.apply_links(app, storage, ["up"], UID, GID)["clashes"] == {"up": [storage + "/up (not a directory)"]}
    assert not os.path.lexists(app + "/up")


@pytest.mark.parametrize("spec", [{"up": ("link", "/elsewhere")}, {"up": "file"}, {"a": "file"}])
def test_apply_links_refuses_problems(roots, spec):
    app, storage = roots
    build(app, spec)
    before = (snapshot(app), snapshot(storage))
    with pytest.raises(sl.SharedLinksError, match="cannot symlink into the shared storage: "):
        sl.apply_links(app, storage, ["up", "a/up"], UID, GID)
    assert (snapshot(app), snapshot(storage)) == before


def test_apply_links_rerun_after_interrupted_move(roots):
    """Half of the tree already in the storage (identical copies left behind too), the rest still in the app."""
    app, storage = roots
    build(storage, {"up": {"moved.txt": "m", "dir": {"moved": "m2", "copied": "c"}}, "gone": {"g": "g"}})
    build(app, {"up": {"dir": {"copied": "c", "left": "l"}, "left.txt": "l2"}})
    out = sl.apply_links(app, storage, ["gone", "up"], UID, GID)  # "gone": moved, the link never created
    assert out["done"] == ["gone", "up"]
    assert snapshot(storage) == {"up": {"moved.txt": "m", "left.txt": "l2", "dir": {"moved": "m2", "copied": "c", "left": "l"}}, "gone": {"g": "g"}}
    assert snapshot(app) == {"up": ("link", storage + "/up"), "gone": ("link", storage + "/gone")}


def test_apply_links_rerun_after_crash_across_filesystems(roots, monkeypatch):
    """A copy into the storage fails halfway (a partial temporary file is left); the next run completes, nothing lost."""
    app, storage = roots
    wanted = {"a.txt": "a" * 1000, "b": {"été résumé.txt": "b" * 1000, "c.txt": "c"}, "d.txt": "d"}
    build(app, {"up": wanted})
    no_rename_across(monkeypatch, app)
    real_copy = shutil.copy2
    calls = []

    def crashing_copy(src, dst, **kwargs):
        calls.append(src)
        if len(calls) == 3:
            with open(dst, "w") as handle:
                handle.write("partial")
            raise OSError(errno.EIO, "Input/output error", dst)
        return real_copy(src, dst, **kwargs)

    monkeypatch.setattr(sl.shutil, "copy2", crashing_copy)
    progress = {}
    with pytest.raises(OSError):
        sl.apply_links(app, storage, ["up"], UID, GID, progress=progress)
    assert progress == {"changed": True, "done": ["up"]}
    assert sl.link_status(app, storage, "up", True)["state"] == "dir"
    assert sl.link_status(app, storage, "up", True)["clashes"] == []  # the partial file has a temporary name

    monkeypatch.setattr(sl.shutil, "copy2", real_copy)
    assert sl.apply_links(app, storage, ["up"], UID, GID)["done"] == ["up"]
    assert snapshot(storage + "/up") == wanted  # no temporary file left, nothing lost
    assert os.readlink(app + "/up") == storage + "/up"


def test_apply_links_reports_progress_when_the_link_cannot_be_made(roots, monkeypatch):
    app, storage = roots
    build(app, {"up": {"f": "1"}})

    def no_symlink(src, dst):
        raise OSError(errno.EACCES, "Permission denied", dst)

    monkeypatch.setattr(sl.os, "symlink", no_symlink)
    progress = {}
    with pytest.raises(OSError):
        sl.apply_links(app, storage, ["up"], UID, GID, progress=progress)
    assert progress == {"changed": True, "done": ["up"]}
    assert snapshot(storage) == {"up": {"f": "1"}}
    monkeypatch.undo()
    assert sl.apply_links(app, storage, ["up"], UID, GID)["done"] == ["up"]
    assert files(storage) == {"up/f": "1"}
