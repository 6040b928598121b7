# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The mounts role's plan (keepdata.storage.mounts_plan / mounts_files), called as plain functions with the role's defaults."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.keepdata.storage.plugins.plugin_utils.mounts_plan import MOUNT_STRINGS, mounts_files, mounts_plan

ROOT = Path(__file__).resolve().parents[4]
DEFAULTS = {k[len("mounts_") :]: v for k, v in yaml.safe_load((ROOT / "roles/mounts/defaults/main.yml").read_text()).items()}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOkUyK0000000000000000000000000000000000000000"
SSH = {"type": "sshfs", "server": "h", "user": "app", "path": "/mnt/s", "host_key": KEY}
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n"


def plan(mounts=(), **settings):
    return mounts_plan(dict(DEFAULTS, list=list(mounts), **settings))


def files(mounts=(), known_hosts=None, **settings):
    return mounts_files(dict(DEFAULTS, list=list(mounts), **settings), known_hosts)


def test_paths_that_flatten_alike_get_their_own_credential_files():
    mounts = [
        {"type": "cifs", "server": "h", "share": "a", "user": "u", "password": "p1", "path": "/srv/a-b"},
        {"type": "cifs", "server": "h", "share": "b", "user": "u", "password": "p2", "path": "/srv/a/b"},
    ]
    result = plan(mounts)
    assert result["errors"] == []
    assert [m["files"]["credentials"] for m in result["present"]] == ["/etc/keepdata/mounts/srv-a_2db.cred", "/etc/keepdata/mounts/srv-a-b.cred"]
    # The names earlier releases used are removed on upgrade.
    assert result["present"][0]["legacy_files"][0] == "/etc/keepdata/mounts/srv-a%2db.cred"
    assert result["present"][1]["legacy_files"] == []
    secrets = files(mounts)
    assert secrets["srv-a_2db"] == [{"path": "/etc/keepdata/mounts/srv-a_2db.cred", "content": "username=u\npassword=p1\n"}]
    assert "password=p2" in secrets["srv-a-b"][0]["content"]


def test_the_plan_holds_no_secret():
    mounts = [
        {"type": "cifs", "server": "h", "share": "a", "user": "u", "password": "Pa55-NOT-IN-PLAN", "path": "/mnt/c"},
        dict(SSH, identity=PRIVATE_KEY.replace("b3Bl", "SECRETKEY")),
    ]
    text = json.dumps(plan(mounts))
    assert "NOT-IN-PLAN" not in text and "SECRETKEY" not in text


@pytest.mark.parametrize(
    ("mount", "name"),
    [(dict(SSH, server="[::1]", port=2222), "[::1]:2222"), (dict(SSH, server="[::1]"), "::1"), (dict(SSH, server="127.0.0.5", port="22"), "127.0.0.5")],
)
def test_known_hosts_names(mount, name):
    result = plan([mount])
    assert result["errors"] == []
    assert result["present"][0]["hostkey"]["name"] == name
    assert result["probe"]["host_keys"][0]["name"] == name


def test_sshfs_mount_with_dash_uses_names_ssh_does_not_expand():
    result = plan([dict(SSH, path="/mnt/backup-data", identity=PRIVATE_KEY)])
    opts = result["present"][0]["opts"]
    assert "IdentityFile=/etc/keepdata/mounts/mnt-backup_2ddata.key" in opts
    assert "UserKnownHostsFile=/etc/keepdata/mounts/mnt-backup_2ddata.known_hosts" in opts
    assert not any("%" in o or "$" in o for o in opts)
    assert result["present"][0]["unit"] == "mnt-backup\\x2ddata"
    out = files([dict(SSH, path="/mnt/backup-data", identity=PRIVATE_KEY)], {"mnt-backup_2ddata": "h " + KEY})
    assert out["mnt-backup_2ddata"] == [
        {"path": "/etc/keepdata/mounts/mnt-backup_2ddata.key", "content": PRIVATE_KEY},
        {"path": "/etc/keepdata/mounts/mnt-backup_2ddata.known_hosts", "content": "h " + KEY + "\n"},
    ]


def test_fs_bucket_async_flag():
    spec = "/uploads:bucket-1-fsbucket.services.clever-cloud.com"
    assert "async" in plan([{"type": "fsbucket", "spec": spec + ":async"}])["present"][0]["opts"]
    plain = plan([{"type": "fsbucket", "spec": spec}])["present"][0]
    assert "async" not in plain["opts"]
    assert plain["path"] == "/srv/app/uploads"
    assert "/folder:bucket-host:async" in plan([{"type": "fsbucket", "spec": "/uploads:bucket-1.example:sync"}])["errors"][0]


def test_option_errors_never_echo_the_value():
    result = plan([{"type": "cifs", "server": "h", "share": "s", "user": "u", "path": "/mnt/c", "options": ["password=Sup3r Secr3t"]}])
    assert result["errors"] == ['mounts_list[0] (/mnt/c): option "password=..." must be one fstab option (no comma, space or quote)']


def test_managed_options_are_refused():
    result = plan([{"type": "cifs", "server": "h", "share": "s", "user": "u", "path": "/mnt/c", "options": ["credentials=/x"]}])
    assert 'option "credentials=" is managed by the role' in result["errors"][0]


def test_absent_sshfs_needs_no_host_key_and_lists_its_files():
    result = plan([{"type": "sshfs", "state": "absent", "server": "h", "user": "u", "path": "/mnt/old"}])
    assert result["errors"] == [] and result["present"] == []
    assert result["absent"][0]["path"] == "/mnt/old"
    assert result["probe"]["mount_points"] == []
    # Every file the role may have written for it goes (a key given by value on an earlier run, say).
    assert files([{"type": "sshfs", "state": "absent", "server": "h", "user": "u", "path": "/mnt/old", "identity_file": "/root/key"}]) == {
        "mnt-old": [{"path": "/etc/keepdata/mounts/mnt-old.%s" % ext} for ext in ("cred", "key", "known_hosts")]
    }


def test_nfs_defaults():
    assert plan([{"type": "nfs", "server": "nas", "export": "/data", "path": "/mnt/nfs"}])["present"][0]["opts"] == [
        "_netdev",
        "vers=4.2",
        "hard",
        "proto=tcp",
        "timeo=600",
        "retrans=2",
        "nofail",
        "x-systemd.mount-timeout=30",
    ]


def test_fs_buckets_json():
    assert "old-style FS bucket id" in plan(fs_buckets_json=[{"bucket": "bucket_0123", "folder": "/u"}])["errors"][0]
    other = plan(fs_buckets_json=[{"bucket_host": "b.example", "folder": "/u", "apps": ["app_other"]}], app_id="app_this")
    assert other == {"errors": [], "present": [], "absent": [], "probe": other["probe"], "host": other["host"]}
    this = plan(fs_buckets_json=[{"bucket_host": "b.example", "folder": "/u", "apps": ["app_this"]}], app_id="app_this")
    assert [m["src"] for m in this["present"]] == ["b.example:/"]
    assert "must be a mapping" in plan(fs_buckets_json=["/u:b.example"])["errors"][0]


def test_probe_request():
    mounts = [
        dict(SSH, owner="www-data", group="www-data", port=2222),
        {"type": "nfs", "server": "nas", "path": "/mnt/n", "owner": "www-data", "preflight": False},
        {"type": "sshfs", "server": "h2", "user": "u", "path": "/mnt/fp", "host_key_fingerprint": "SHA256:" + "A" * 43, "preflight": False},
        {"type": "nfs", "server": "old", "path": "/mnt/gone", "state": "absent"},
    ]
    probe = plan(mounts)["probe"]
    assert probe["mount_points"] == [{"path": p, "allow_non_empty": False} for p in ("/mnt/s", "/mnt/n", "/mnt/fp")]
    assert probe["ports"] == ["h:2222"]
    assert probe["ids"] == [
        {"name": "www-data", "kind": "user", "option": "mounts_list[0].owner"},
        {"name": "www-data", "kind": "group", "option": "mounts_list[0].group"},
        {"name": "root", "kind": "group", "option": "mounts_list[1].group"},
        {"name": "root", "kind": "user", "option": "mounts_list[2].owner"},
    ]
    assert probe["packages"] == ["fuse3", "nfs-common", "sshfs"]
    assert [(k["address"], k["scan"]) for k in probe["host_keys"]] == [("h:2222", True), ("h2:22", True)]
    assert plan(mounts, manage_packages=False)["probe"]["packages"] == []
    assert probe["automounts"] == []


def test_probe_request_names_the_automounts_to_start_now():
    mounts = [
        dict(SSH, path="/mnt/now", automount=True),
        dict(SSH, path="/mnt/later", automount=True, state="present"),
        dict(SSH, path="/mnt/plain"),
    ]
    assert plan(mounts)["probe"]["automounts"] == ["/mnt/now"]


BAD = [
    ({"type": "nfs", "server": "h", "path": "mnt/bad"}, 'path "mnt/bad" must be an absolute path'),
    ({"type": "nfs", "server": "h", "path": "/"}, 'path "/" must be an absolute path other than /'),
    ({"type": "nfs", "server": "h", "path": "/mnt/my bad"}, "must be an absolute path"),
    ({"type": "nfs", "server": "h", "path": "/mnt/../etc"}, "must be an absolute path"),
    ({"type": "nfs", "server": "h"}, "path is required"),
    ({"type": "nfs", "path": "/mnt/bad"}, "server is required for type nfs"),
    ({"type": "nfs", "server": "h;x", "path": "/mnt/bad"}, 'server "h;x" is not a valid'),
    ({"type": "nfs", "server": "h", "path": "/mnt/bad", "port": 70000}, "must be between 1 and 65535"),
    ({"type": "nfs", "server": "h", "path": "/mnt/bad", "mode": 493}, 'mode "493" must be an octal string'),
    ({"type": "nfs", "server": "h", "path": "/mnt/bad", "export": "data"}, "must be an absolute path on the server"),
    ({"type": "nfs", "server": "h", "path": "/mnt/bad", "owner": "bad user"}, 'owner "bad user" must be a user or group name'),
    ({"type": "cifs", "server": "h", "path": "/mnt/bad", "user": "u"}, "share is required for type cifs"),
    ({"type": "cifs", "server": "h", "share": "s", "path": "/mnt/bad"}, "user is required for type cifs"),
    ({"type": "cifs", "server": "h", "share": "s", "path": "/mnt/bad", "user": "u", "options": ["password=x"]}, 'option "password=" is managed'),
    ({"type": "nfs", "server": "h", "path": "/mnt/bad", "options": ["ro,rw"]}, "must be one fstab option"),
    ({"type": "sshfs", "server": "h", "path": "/mnt/bad", "host_key": KEY}, "user is required for type sshfs"),
    ({"type": "sshfs", "server": "h", "user": "u", "path": "/mnt/bad"}, "needs the server host key pinned"),
    (dict(SSH, host_key_fingerprint="SHA256:" + "A" * 43), "not both"),
    ({"type": "sshfs", "server": "h", "user": "u", "path": "/mnt/bad", "host_key_fingerprint": "MD5:ab:cd"}, "must look like SHA256:"),
    (dict(SSH, identity="hunter2"), "identity must be an OpenSSH private key"),
    (dict(SSH, identity=PRIVATE_KEY, identity_file="/root/k"), "not both"),
    ({"type": "fsbucket", "spec": "uploads-bucket.example"}, "must look like /folder:bucket-host"),
    ({"type": "fsbucket", "spec": "uploads:bucket.example"}, "must be an absolute app-relative folder"),
    ({"type": "fsbucket", "spec": "/u:b.example", "bucket_host": "b.example"}, "not both"),
    ({"type": "fsbucket", "folder": "/u"}, "needs a bucket host"),
    ({"type": "smb", "server": "h", "path": "/mnt/bad"}, 'unknown type "smb"'),
]


@pytest.mark.parametrize(("mount", "expect"), BAD)
def test_bad_mounts(mount, expect):
    errors = plan([mount])["errors"]
    assert len(errors) >= 1
    assert expect in errors[0]
    assert errors[0].startswith("mounts_list[0] (")


def test_duplicate_path():
    errors = plan([{"type": "nfs", "server": "h", "path": "/mnt/x"}, {"type": "nfs", "server": "g", "path": "/mnt/x"}])["errors"]
    assert errors == ['mounts_list[1] (/mnt/x): path "/mnt/x" is used by more than one mount']


def test_every_error_is_reported_at_once():
    errors = plan([{"type": "nfs", "server": "h;x", "path": "rel"}, {"type": "cifs", "server": "h", "path": "/mnt/c"}])["errors"]
    assert len(errors) == 4


# One valid mount per type, with every string option set: each option gets control characters in turn.
FULL = {
    "cifs": {
        "type": "cifs",
        "state": "present",
        "server": "h",
        "share": "s",
        "user": "u",
        "password": "p",
        "domain": "D",
        "version": "3.0",
        "file_mode": "0644",
        "path": "/mnt/c",
        "owner": "root",
        "group": "root",
        "mode": "0755",
        "options": ["ro"],
    },
    "nfs": {"type": "nfs", "server": "h", "export": "/e", "path": "/mnt/n", "version": "4.2", "options": ["ro"]},
    "sshfs": dict(SSH, remote_path="/srv", identity_file="/root/k", port=22),
    "sshfs fingerprint": {"type": "sshfs", "server": "h", "user": "u", "path": "/mnt/f", "host_key_fingerprint": "SHA256:" + "A" * 43},
    "fsbucket": {"type": "fsbucket", "spec": "/u:b.example", "app_root": "/srv/app", "apps": ["app_1"]},
    "fsbucket host": {"type": "fsbucket", "bucket_host": "b.example", "folder": "/v"},
    "fsbucket bucket": {"type": "fsbucket", "bucket": "b.example", "folder": "/w"},
}
CONTROL_CASES = [
    (kind, key, char, where)
    for kind, mount in FULL.items()
    for key in MOUNT_STRINGS
    if key in mount
    for char in ("\n", "\r", "\t", "\x00")
    for where in ("start", "middle", "end")
]


def spoil(value, char, where):
    if isinstance(value, list):
        return [spoil(value[0], char, where)] + value[1:]
    text = str(value)
    return {"start": char + text, "middle": text[:1] + char + text[1:], "end": text + char}[where]


def test_every_full_mount_is_valid():
    result = plan(FULL.values(), app_id="app_1")
    assert result["errors"] == []
    assert len(result["present"]) == len(FULL)


@pytest.mark.parametrize(("kind", "key", "char", "where"), CONTROL_CASES)
def test_control_characters_in_every_mount_option(kind, key, char, where):
    mount = dict(FULL[kind], **{key: spoil(FULL[kind][key], char, where)})
    errors = plan([mount], app_id="app_1")["errors"]
    assert len(errors) == 1
    assert key + ("[0]" if isinstance(FULL[kind][key], list) else "") + " must not contain control characters" in errors[0]
    assert char not in errors[0]
    assert files([mount], app_id="app_1") == {}


@pytest.mark.parametrize("key", ["app_id", "app_root", "config_dir", "nfs_version", "nfs_options", "cifs_version"])
@pytest.mark.parametrize("char", ["\n", "\t"])
def test_control_characters_in_role_options(key, char):
    value = DEFAULTS[key]
    errors = plan([FULL["nfs"]], **{key: spoil(value, char, "end") if value else char})["errors"]
    assert errors and "mounts_" + key in errors[0] and "control characters" in errors[0]


def test_identity_may_span_lines_but_nothing_else():
    assert plan([dict(SSH, identity=PRIVATE_KEY)])["errors"] == []
    assert "identity must not contain control characters" in plan([dict(SSH, identity=PRIVATE_KEY.replace("b3", "b\t3"))])["errors"][0]


def test_string_lists_as_given_to_a_role():
    # A role's argument spec validates but does not convert: "ro,noatime" stays a string.
    result = plan([{"type": "nfs", "server": "h", "path": "/mnt/n", "options": "ro,noatime"}], nfs_options="hard,proto=tcp")
    assert result["errors"] == []
    assert result["present"][0]["opts"] == ["_netdev", "vers=4.2", "hard", "proto=tcp", "nofail", "x-systemd.mount-timeout=30", "ro", "noatime"]


def test_health_check_is_on_for_sshfs_by_default_and_can_be_turned_off_per_mount():
    result = plan([SSH, dict(SSH, path="/mnt/quiet", health_check=False), {"type": "nfs", "server": "h", "path": "/mnt/n"}])
    assert result["errors"] == []
    checks = {m["path"]: (m["health_check"], m["health_interval"]) for m in result["present"]}
    assert checks == {"/mnt/s": (True, "30s"), "/mnt/quiet": (False, "30s"), "/mnt/n": (False, "30s")}
    assert [m["health_check"] for m in plan([SSH], health_check=False, health_interval="1min")["present"]] == [False]


def test_health_check_is_refused_where_no_fuse_daemon_can_die():
    result = plan([{"type": "cifs", "server": "h", "share": "s", "user": "u", "password": "p", "path": "/mnt/c", "health_check": True}])
    assert result["errors"] == ["mounts_list[0] (/mnt/c): health_check is for sshfs mounts (a FUSE daemon that can die); the kernel keeps cifs and nfs mounts"]


@pytest.mark.parametrize("interval", ["0s", "soon", "30 parsecs", "1h\n"])
def test_bad_health_interval(interval):
    assert any("mounts_health_interval" in error for error in plan([SSH], health_interval=interval)["errors"])


def test_flags_given_as_words_are_read_as_ansible_reads_them():
    # As -e or a quoted YAML value gives them: strings, which Python alone would take for true.
    mounts = [dict(SSH, allow_non_empty="false", automount="no", preflight="off")]
    result = plan(mounts, manage_packages="no", nofail="yes")
    assert result["errors"] == []
    [mount] = result["present"]
    assert (mount["allow_non_empty"], mount["automount"], mount["preflight"]) == (False, False, False)
    assert "nofail" in mount["opts"] and "x-systemd.automount" not in mount["opts"]
    assert result["probe"]["packages"] == [] and result["probe"]["mount_points"] == [{"path": "/mnt/s", "allow_non_empty": False}]
    # "false" does not skip the host key check: without a pinned key the mount is refused.
    unpinned = {k: v for k, v in SSH.items() if k != "host_key"}
    assert "sshfs needs the server host key pinned" in plan([dict(unpinned, insecure_ignore_host_key="false")])["errors"][0]


@pytest.mark.parametrize(
    ("settings", "mount", "message"),
    [
        ({}, {"allow_non_empty": "sometimes"}, "mounts_list[0] (/mnt/s): allow_non_empty must be true or false (yes/no), not a string"),
        ({}, {"insecure_ignore_host_key": ["yes"]}, "mounts_list[0] (/mnt/s): insecure_ignore_host_key must be true or false (yes/no), not a list"),
        ({"automount": "maybe"}, {}, "mounts_automount must be true or false (yes/no), not a string"),
    ],
)
def test_a_flag_that_is_no_boolean_is_refused_by_name(settings, mount, message):
    assert message in plan([dict(SSH, **mount)], **settings)["errors"]


def test_the_plan_carries_what_the_tasks_hand_to_the_host():
    result = plan(config_dir="/etc/keepdata/m", preflight_timeout="9", fstab_backup="yes")
    assert result["errors"] == []
    host = result["host"]
    assert host == {"config_dir": "/etc/keepdata/m", "timeout": 9, "fstab_backup": True, "apt_cache_valid_time": 86400}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"preflight_timeout": 0}, "mounts_preflight_timeout must be a whole number of seconds from 1 to 600"),
        ({"preflight_timeout": "5s"}, "mounts_preflight_timeout must be a whole number of seconds from 1 to 600"),
        ({"apt_cache_valid_time": 1.5}, "mounts_apt_cache_valid_time must be a whole number of seconds (0 or more)"),
        ({"apt_cache_valid_time": False}, "mounts_apt_cache_valid_time must be a whole number of seconds (0 or more)"),
    ],
)
def test_seconds_are_refused_before_any_change(settings, expected):
    result = plan(**settings)
    assert expected in result["errors"] and result["host"] == {}
