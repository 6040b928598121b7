# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared input rules: full-match paths, control characters, systemd unit names and file names safe for every tool."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import (
    abs_path_error,
    as_list,
    control_char_errors,
    file_id,
    legacy_file_id,
    paths_nest,
    systemd_escape_path,
)
from ansible_collections.keepdata.storage.plugins.module_utils.mounts import fstab

# Every character the path rule accepts, in paths that flatten alike under naive schemes.
PATHS = ["/mnt/a-b", "/mnt/a/b", "/mnt/a_2db", "/mnt/a@b", "/mnt/a+b", "/mnt/a=b", "/mnt/a.b", "/mnt/a_b", "/mnt/.hidden", "/srv/x-y/z=1@2+3"]


@pytest.mark.parametrize("value", ["/mnt/nl\n", "\n/mnt/x", "/mnt/\rx", "/mnt/x\t", "/mnt/\x00x", "/mnt/x\x7f"])
def test_control_characters_anywhere_are_refused(value):
    assert control_char_errors({"path": value}) == ["path must not contain control characters (newline, tab, ...)"]
    assert abs_path_error("path", value) is not None


def test_control_characters_in_lists_name_the_item():
    assert control_char_errors({"options": ["ro", "x\n"]}) == ["options[1] must not contain control characters (newline, tab, ...)"]
    assert control_char_errors({"ok": "/mnt/fine", "n": None, "i": 3}) == []


@pytest.mark.parametrize("value", ["relative", "/", "/mnt/../etc", "/mnt/./x", "/mnt//x", "/mnt/my bad", "/mnt/a,b", "/mnt/a%b", "/mnt/a$b"])
def test_bad_absolute_paths(value):
    assert abs_path_error("path", value) is not None


def test_file_ids_are_one_to_one_and_safe_for_ssh_fstab_and_cifs():
    ids = [file_id(p) for p in PATHS]
    assert len(set(ids)) == len(PATHS)
    for name in ids:
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert file_id("/mnt/backup-data") == "mnt-backup_2ddata"
    assert file_id("/srv/a/b") == "srv-a-b"


# systemd-escape is on every machine a unit gate runs on (Debian 12 and the newest gate's Debian 13 container).
@pytest.mark.parametrize("path", PATHS)
def test_unit_names_match_systemd_escape(path):
    expected = subprocess.run(["systemd-escape", "--path", path], capture_output=True, text=True, check=True).stdout.strip()
    assert systemd_escape_path(path) == expected


def test_unit_names_without_systemd():
    assert systemd_escape_path("/mnt/backup-data") == "mnt-backup\\x2ddata"
    assert systemd_escape_path("/mnt/.hidden") == "mnt-.hidden"
    assert systemd_escape_path("/.x/a@b") == "\\x2ex-a\\x40b"
    assert legacy_file_id("/mnt/backup-data") == "mnt-backup%2ddata"


def test_as_list():
    assert as_list("a,b") == ["a", "b"]
    assert as_list("a:b,c", ",:") == ["a", "b", "c"]
    assert as_list(None) == [] and as_list("") == [] and as_list(["x"]) == ["x"]


def test_fstab_keeps_other_lines_byte_for_byte():
    text = "# comment   with spaces\ntmpfs   /mnt/foreign   tmpfs  defaults  0  0\n/dev/x /mnt/a ext4 defaults 0 0\n"
    line = fstab.render_line("h:/", "/mnt/a", "nfs", ["_netdev", "hard"])
    new = fstab.set_line(text, "/mnt/a", line)
    assert new == text.replace("/dev/x /mnt/a ext4 defaults 0 0", "h:/ /mnt/a nfs _netdev,hard 0 0")
    assert fstab.set_line(new, "/mnt/a", None) == "# comment   with spaces\ntmpfs   /mnt/foreign   tmpfs  defaults  0  0\n"
    assert fstab.set_line("x /y z d 0 0", "/new", "a /new b c 0 0") == "x /y z d 0 0\na /new b c 0 0\n"
    assert fstab.find_line(new, "/mnt/a") == "h:/ /mnt/a nfs _netdev,hard 0 0"
    assert fstab.find_line(new, "/mnt/none") is None


def test_fstab_escapes_blanks():
    line = fstab.render_line("//h/my share", "/mnt/a b", "cifs", [])
    assert line == "//h/my\\040share /mnt/a\\040b cifs defaults 0 0"
    assert fstab.entry_path(line) == "/mnt/a b"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("", "user_allow_other\n"),
        ("#user_allow_other\nmount_max = 1000\n", "user_allow_other\nmount_max = 1000\n"),
        ("mount_max = 1000", "mount_max = 1000\nuser_allow_other\n"),
        ("user_allow_other\n", "user_allow_other\n"),
    ],
)
def test_fuse_conf(before, after):
    assert fstab.fuse_conf_allowing_other(before) == after


@pytest.mark.parametrize(
    ("one", "other", "nest"),
    [("public", "public/system", True), ("public/system/", "public", True), ("a", "a", True), ("/srv/app", "/srv/application", False), ("a", "b", False)],
)
def test_paths_nest(one, other, nest):
    # Symmetric: which of the two comes first does not matter.
    assert paths_nest(one, other) is nest
    assert paths_nest(other, one) is nest
