# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The read-only preflight (keepdata.storage.mount_probe): each check on temporary directories and loopback ports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import subprocess

import pytest

from ansible_collections.keepdata.storage.plugins.module_utils.common.host_state import read_mounts, resolve_id
from ansible_collections.keepdata.storage.plugins.module_utils.mounts import probe as host_probe

KEY_A = {"key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA", "fingerprint": "SHA256:" + "A" * 43}
KEY_B = {"key": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAB", "fingerprint": "SHA256:" + "B" * 43}


def facts():
    return {"mount_points": {}, "ports": {}, "ids": {}, "missing": [], "known_hosts": {}, "links": {}, "links_todo": []}


def test_mountinfo_escapes(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text("36 35 0:30 / /mnt/with\\040space rw - fuse.sshfs u@h:/a\\134b rw\n37 35 0:31 / /mnt/plain rw shared:1 - nfs h:/ rw\n")
    assert read_mounts(str(info)) == {"/mnt/with space": "u@h:/a\\b", "/mnt/plain": "h:/"}


def test_ids():
    f = facts()
    problems = host_probe.check_ids({"ids": [{"name": "root", "kind": "user", "option": "o"}, {"name": "nobody-here-x", "kind": "group", "option": "g"}]}, f)
    assert f["ids"] == {"o": 0, "g": None}
    assert problems == ["unknown user or group on this host: g=nobody-here-x"]
    assert resolve_id("1234", "user") == 1234


def test_mount_points_that_would_hide_data(tmp_path):
    busy, empty, file_ = tmp_path / "busy", tmp_path / "empty", tmp_path / "file"
    busy.mkdir()
    empty.mkdir()
    for name in ("a", "b", "c", "d", "e", "f"):
        (busy / name).write_text("x")
    file_.write_text("x")
    request = {
        "mount_points": [{"path": str(busy)}, {"path": str(empty)}, {"path": str(file_), "allow_non_empty": True}, {"path": str(tmp_path / "none")}],
        "non_empty_hint": "set allow_non_empty",
    }
    f = facts()
    problems = host_probe.check_mount_points(request, f, {})
    assert problems == [
        "refusing to mount over non-empty or non-directory paths, data there would be hidden: %s (contains a, b, c, d, e ...); %s (not a directory)"
        " (move the content away, or set allow_non_empty)" % (busy, file_)
    ]
    assert f["mount_points"][str(tmp_path / "none")]["exists"] is False
    request["mount_points"][0]["allow_non_empty"] = True
    assert "(move the content away)" in host_probe.check_mount_points(request, facts(), {})[0]
    # A mounted directory hides nothing more: its entries are the remote side's.
    assert host_probe.check_mount_points({"mount_points": [{"path": str(busy)}]}, facts(), {str(busy): "h:/"}) == []


def test_ports_on_loopback():
    server = socket.create_server(("127.0.0.1", 0))
    open_port = server.getsockname()[1]
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    f = facts()
    try:
        problems = host_probe.check_ports(
            {"ports": ["127.0.0.1:%d" % open_port, "127.0.0.1:%d" % closed_port], "timeout": 2, "port_label": "S3 endpoint", "port_hint": "skip it"}, f
        )
    finally:
        server.close()
    assert f["ports"]["127.0.0.1:%d" % open_port] == ""
    assert problems[0].startswith("S3 endpoint not reachable: 127.0.0.1:%d (" % closed_port)
    assert problems[0].endswith("(skip it)")


def entry(**kw):
    base = {"id": "m", "path": "/mnt/m", "address": "h:22", "name": "h", "value": "", "fingerprint": "", "scan": True}
    base.update(kw)
    return base


def test_pin_by_fingerprint_and_by_value():
    assert host_probe.pin_host_key(entry(fingerprint=KEY_A["fingerprint"]), [KEY_B, KEY_A], "") == ("h " + KEY_A["key"], None)
    assert host_probe.pin_host_key(entry(value=KEY_A["key"]), [KEY_A], "") == ("h " + KEY_A["key"], None)
    # Not scanned (preflight off): the given key is pinned as it is.
    assert host_probe.pin_host_key(entry(value=KEY_A["key"], scan=False), [], "") == ("h " + KEY_A["key"], None)
    line, problem = host_probe.pin_host_key(entry(value=KEY_A["key"]), [KEY_B], "")
    assert line is None and problem == "h:22 for /mnt/m expected the given host_key, server offers " + KEY_B["fingerprint"]
    assert "server offers refused" in host_probe.pin_host_key(entry(fingerprint=KEY_A["fingerprint"]), [], "refused")[1]


def test_a_key_missed_by_one_scan_is_looked_for_again(monkeypatch):
    scans = iter([([KEY_B], ""), ([KEY_A, KEY_B], "")])
    calls = []

    def scan(address, timeout):
        calls.append(address)
        return next(scans)

    monkeypatch.setattr(host_probe, "scan_keys", scan)
    f = facts()
    problems = host_probe.check_host_keys({"host_keys": [entry(fingerprint=KEY_A["fingerprint"])], "timeout": 1}, f, pause=0)
    assert problems == [] and f["known_hosts"] == {"m": "h " + KEY_A["key"]} and len(calls) == 2


def test_a_wrong_key_fails_after_every_attempt(monkeypatch):
    calls = []
    monkeypatch.setattr(host_probe, "scan_keys", lambda address, timeout: calls.append(address) or ([KEY_B], ""))
    entries = [entry(fingerprint=KEY_A["fingerprint"]), entry(id="n", path="/mnt/n", fingerprint=KEY_B["fingerprint"])]
    f = facts()
    problems = host_probe.check_host_keys({"host_keys": entries, "timeout": 1}, f, pause=0)
    # Three scans of the server in all, shared by both mounts of it.
    assert len(calls) == 3
    expected = "h:22 for /mnt/m expected %s, server offers %s" % (KEY_A["fingerprint"], KEY_B["fingerprint"])
    assert problems == ["SSH host key mismatch, refusing to trust the server: " + expected]
    assert f["known_hosts"] == {"n": "h " + KEY_B["key"]}


def test_missing_packages():
    def run(argv, **kwargs):
        assert argv[:2] == ["dpkg-query", "-W"]
        return subprocess.CompletedProcess(argv, 1, "sshfs ii \nfuse3 un \n", "dpkg-query: no packages found matching nfs-common\n")

    assert host_probe.missing_packages(["sshfs", "fuse3", "nfs-common"], run=run) == ["fuse3", "nfs-common"]
    assert host_probe.missing_packages([]) == []


def test_links_before_the_storage_is_mounted(tmp_path):
    app, storage = tmp_path / "app", tmp_path / "storage"
    (app / "public" / "uploads").mkdir(parents=True)
    (app / "public" / "file").write_text("x")
    storage.mkdir()
    f = facts()
    request = {"links": {"app_root": str(app), "storage": str(storage), "paths": ["public/uploads", "public/file", "tmp/cache"]}}
    problems = host_probe.check_links(request, f, {})
    assert problems == ["cannot symlink into the shared storage: %s/public/file (is not a directory)" % app]
    assert f["links"]["public/uploads"]["state"] == "dir"
    # Not mounted yet: what is in the storage is unknown, so every path is still to check.
    assert f["links_todo"] == ["public/uploads", "public/file", "tmp/cache"]


@pytest.mark.parametrize("owner", ["root", "0"])
def test_links_in_place_need_nothing(tmp_path, owner):
    app, storage = tmp_path / "app", tmp_path / "storage"
    (storage / "public" / "uploads").mkdir(parents=True)
    (app / "public").mkdir(parents=True)
    (app / "public" / "uploads").symlink_to(storage / "public" / "uploads")
    f = facts()
    request = {"links": {"app_root": str(app), "storage": str(storage), "paths": ["public/uploads"], "owner": owner, "group": "root"}}
    assert host_probe.check_links(request, f, {str(storage): "bucket"}) == []
    assert f["links_todo"] == []


def test_a_mounted_mount_point_is_asked_first_and_not_touched_when_it_does_not_answer(tmp_path, monkeypatch):
    point = tmp_path / "mnt"
    point.mkdir()
    asked = []

    def look(path, timeout):
        asked.append((path, timeout))
        return answer

    monkeypatch.setattr(host_probe, "look", look)
    request = {"mount_points": [{"path": str(point)}], "timeout": 3}
    # Dead: reported, not a problem (module fstab_mount remounts it), and nothing else is read there.
    answer = ("dead", "Transport endpoint is not connected")
    monkeypatch.setattr(host_probe.os.path, "isdir", lambda path: pytest.fail("read a dead mount point"))
    f = facts()
    assert host_probe.check_mount_points(request, f, {str(point): "u@h:/"}) == []
    assert f["mount_points"][str(point)]["health"] == "dead" and asked == [(str(point), 3)]
    # Hung: the play stops here, naming the mount and what to do.
    answer = ("hung", "no answer within 3 s")
    problems = host_probe.check_mount_points(request, facts(), {str(point): "u@h:/"})
    assert problems == [
        "%s does not answer (no answer within 3 s): the server behind it has most likely stopped answering; "
        "bring the server back (the mount then answers again by itself), or stop the apps using it and its mount unit" % point
    ]
    # An automount not triggered yet is not asked (asking would mount it).
    asked.clear()
    monkeypatch.undo()
    monkeypatch.setattr(host_probe, "look", look)
    assert host_probe.check_mount_points(request, facts(), {str(point): "systemd-1"}) == [] and asked == []
    # Nor is a kernel mount (NFS, CIFS): no FUSE daemon to lose.
    request["_types"] = {str(point): "nfs4"}
    assert host_probe.check_mount_points(request, facts(), {str(point): "h:/"}) == [] and asked == []


def test_links_of_a_dead_storage_all_stay_to_check(tmp_path, monkeypatch):
    app, storage = tmp_path / "app", tmp_path / "storage"
    (storage / "public" / "uploads").mkdir(parents=True)
    (app / "public").mkdir(parents=True)
    (app / "public" / "uploads").symlink_to(storage / "public" / "uploads")
    monkeypatch.setattr(host_probe, "look", lambda path, timeout: ("dead", "Transport endpoint is not connected"))
    f = facts()
    request = {"links": {"app_root": str(app), "storage": str(storage), "paths": ["public/uploads"], "owner": "root", "group": "root"}}
    assert host_probe.check_links(request, f, {str(storage): "bucket"}) == []
    assert f["links_todo"] == ["public/uploads"] and f["links"]["public/uploads"]["target_missing"] is False


def test_automounts_need_the_kernels_autofs(tmp_path):
    device = tmp_path / "autofs"
    facts = {}
    problems = host_probe.check_automounts({"automounts": ["/mnt/auto", "/mnt/nfs"]}, facts, str(device))
    assert facts["autofs"] is False
    assert problems == [
        "automount needs the kernel's autofs, which this host does not offer (%s is missing), so systemd would refuse the .automount unit: "
        "set automount: false on /mnt/auto, /mnt/nfs" % device
    ]
    assert host_probe.check_automounts({"automounts": []}, facts, str(device)) == []  # nothing asked, nothing refused
    device.write_text("")
    assert host_probe.check_automounts({"automounts": ["/mnt/auto"]}, facts, str(device)) == []
    assert facts["autofs"] is True
