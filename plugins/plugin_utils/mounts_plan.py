# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plan of role keepdata.storage.mounts: its variables validated and turned into fstab-ready mounts.

``mounts_plan(settings)`` returns ``{"errors": [...], "present": [...], "absent": [...], "probe": {...}}``
without any secret: tasks loop over it and print it. ``mounts_files(settings, known_hosts)`` returns the
content of each mount's own files (CIFS credentials, SSH key, pinned host key), used only as the argument
of the task that writes them. Both read ``settings``, the role's variables without their ``mounts_`` prefix.
Types and choices are checked by the role's meta/argument_specs.yml before this runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import (
    ACCOUNT,
    HOST,
    OCTAL_MODE,
    VERSION,
    abs_path_error,
    as_list,
    control_char_errors,
    extra_fstab_option_errors,
    file_id,
    fstab_option_error,
    full,
    has_control_chars,
    legacy_file_id,
    systemd_escape_path,
    timespan_error,
)
from ansible_collections.keepdata.storage.plugins.plugin_utils.flags import flag_errors, read_flags, seconds_errors, whole_number

TYPES = ("cifs", "nfs", "sshfs", "fsbucket")
FSTYPES = {"cifs": "cifs", "nfs": "nfs", "fsbucket": "nfs", "sshfs": "fuse.sshfs"}
DEFAULT_PORTS = {"cifs": 445, "nfs": 2049, "fsbucket": 2049, "sshfs": 22}
PACKAGES = {"cifs": ["cifs-utils"], "nfs": ["nfs-common"], "fsbucket": ["nfs-common"], "sshfs": ["sshfs", "fuse3"]}
# Options whose value is a credential, or that the role sets itself: never from the user's options.
MANAGED_OPTIONS = re.compile(r"(password|pass|username|user|credentials|IdentityFile|StrictHostKeyChecking|UserKnownHostsFile)=")
SSH_USER = re.compile(r"[a-z_][a-z0-9_.-]*")
REMOTE_PATH = re.compile(r"[A-Za-z0-9._~@+=/-]*")
SHARE = re.compile(r"[A-Za-z0-9._$@+=-]+(?:/[A-Za-z0-9._$@+=-]+)*")
EXPORT = re.compile(r"/[A-Za-z0-9._@+=/-]*")
HOST_KEY = re.compile(r"(?:ssh|ecdsa|sk)-[a-z0-9@.-]+ [A-Za-z0-9+/]+={0,3}")
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
# Keys of a buckets.json entry that are copied onto the mount as they are.
FS_BUCKET_JSON_KEYS = ("port", "preflight", "state", "options", "version")
# Strings of one mount that reach fstab, a file name or a command line (identity is a key file's content).
MOUNT_STRINGS = (
    "type",
    "state",
    "path",
    "server",
    "share",
    "export",
    "remote_path",
    "user",
    "password",
    "domain",
    "version",
    "file_mode",
    "identity_file",
    "host_key",
    "host_key_fingerprint",
    "spec",
    "bucket_host",
    "bucket",
    "folder",
    "apps",
    "app_root",
    "owner",
    "group",
    "mode",
    "options",
)
# The role's true-or-false options (mounts_ prefix left out), and a mount's own.
GLOBAL_FLAGS = ("nofail", "automount", "preflight", "health_check", "fstab_backup", "manage_packages")
MOUNT_FLAGS = ("insecure_ignore_host_key", "allow_other", "async", "nofail", "automount", "health_check", "allow_non_empty", "preflight")
GLOBAL_STRINGS = ("app_id", "app_root", "config_dir", "nfs_version", "nfs_options", "cifs_version", "health_interval")


def _text(value):
    return "" if value is None else str(value)


def _items(settings):
    """(where, mount) for mounts_list and mounts_fs_buckets_json, and the errors of entries that are no mapping."""
    items, errors = [], []
    for index, mount in enumerate(settings.get("list") or []):
        items.append(("mounts_list[%d]" % index, mount))
    for index, entry in enumerate(settings.get("fs_buckets_json") or []):
        where = "mounts_fs_buckets_json[%d]" % index
        if not isinstance(entry, dict):
            errors.append("%s: must be a mapping with bucket_host (or bucket) and folder" % where)
            continue
        mount = {
            "type": "fsbucket",
            "bucket_host": entry.get("bucket_host") or entry.get("bucket") or "",
            "folder": entry.get("folder") or "",
            "apps": entry.get("apps") or [],
        }
        mount.update((key, entry[key]) for key in FS_BUCKET_JSON_KEYS if key in entry)
        items.append((where, mount))
    return items, errors


def _fs_bucket(m, errors):
    """(host, folder, async) of an FS bucket given as spec or as bucket_host/folder."""
    host, folder, is_async = _text(m.get("bucket_host") or m.get("bucket")), _text(m.get("folder")), bool(m.get("async"))
    spec = _text(m.get("spec"))
    if spec and (host or folder):
        errors.append('give either spec ("/folder:bucket-host") or bucket_host/folder, not both')
    elif spec:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "async"):
            errors.append('FS bucket spec "%s" must look like /folder:bucket-host or /folder:bucket-host:async' % spec)
        else:
            folder, host, is_async = parts[0], parts[1], len(parts) == 3
    if errors:
        return host, folder, is_async
    if not host:
        errors.append('FS bucket needs a bucket host (spec "/folder:bucket-host", bucket_host or bucket)')
    elif host.startswith("bucket_"):
        errors.append(
            '"%s" is an old-style FS bucket id, not a host: give its bucket_host (bucket-...-fsbucket.services.clever-cloud.com, from the add-on dashboard)'
            % host
        )
    elif not full(HOST, host):
        errors.append('FS bucket host "%s" is not a valid host name' % host)
    if not errors and (not folder.startswith("/") or folder == "/" or ".." in folder):
        errors.append('FS bucket folder "%s" must be an absolute app-relative folder such as /uploads' % folder)
    return host, folder, is_async


def _host_key_errors(m):
    """A pinned host key is required (unless insecure or absent), given one way, and well-formed."""
    insecure = bool(m.get("insecure_ignore_host_key"))
    host_key, fingerprint = _text(m.get("host_key")), _text(m.get("host_key_fingerprint"))
    if host_key and fingerprint:
        return ["give host_key or host_key_fingerprint, not both"]
    if not insecure and m.get("state", "mounted") != "absent" and not host_key and not fingerprint:
        return ["sshfs needs the server host key pinned: set host_key or host_key_fingerprint (or insecure_ignore_host_key: true)"]
    if host_key and not full(HOST_KEY, host_key):
        return ['host_key must be "<type> <base64>" as in a .pub file or ssh-keyscan output']
    if fingerprint and not full(FINGERPRINT, fingerprint):
        return ['host_key_fingerprint "%s" must look like SHA256:<43 base64 characters> (ssh-keygen -lf)' % fingerprint]
    return []


def _identity_errors(m):
    identity, identity_file = _text(m.get("identity")), _text(m.get("identity_file"))
    if identity and identity_file:
        return ["give identity (key content) or identity_file (path on the host), not both"]
    if identity_file and abs_path_error("identity_file", identity_file):
        return ['identity_file "%s" must be an absolute path' % identity_file]
    if identity and "PRIVATE KEY-----" not in identity:
        return ["identity must be an OpenSSH private key (-----BEGIN ... PRIVATE KEY-----)"]
    return []


def _sshfs(m, cfg, files, errors):
    """(src, options, host key pinning) of an SSHFS mount."""
    user = _text(m.get("user"))
    if not user:
        errors.append("user is required for type sshfs")
    elif not full(SSH_USER, user):
        errors.append('user "%s" is not a valid login name' % user)
    if not full(REMOTE_PATH, _text(m.get("remote_path"))):
        errors.append('remote_path "%s" must not contain spaces, commas or quotes' % _text(m.get("remote_path")))
    errors.extend(_host_key_errors(m) + _identity_errors(m))
    insecure = bool(m.get("insecure_ignore_host_key"))
    files["known_hosts"] = "%s/%s.known_hosts" % (cfg["dir"], cfg["id"])
    identity_file = _text(m.get("identity_file"))
    if m.get("identity"):
        files["key"] = identity_file = "%s/%s.key" % (cfg["dir"], cfg["id"])
    server, port = cfg["server"], cfg["port"]
    bare = server[1:-1] if server.startswith("[") and server.endswith("]") else server
    hostkey = {
        "name": "[%s]:%d" % (bare, port) if port != 22 else bare,
        "value": _text(m.get("host_key")),
        "fingerprint": _text(m.get("host_key_fingerprint")),
        "insecure": insecure,
    }
    opts = ["_netdev", "reconnect", "ServerAliveInterval=%s" % cfg["alive"], "ServerAliveCountMax=3", "BatchMode=yes"]
    opts += ["IdentityFile=" + identity_file] if identity_file else []
    if insecure:
        opts += ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]
    else:
        opts += ["StrictHostKeyChecking=yes", "UserKnownHostsFile=" + files["known_hosts"]]
    opts += cfg["portopt"] + (["allow_other"] if m.get("allow_other", True) else [])
    return "%s@%s:%s" % (user, server, _text(m.get("remote_path"))), opts, hostkey


def _own(m, settings, key):
    """A mount's own setting, else the role-wide default."""
    return m.get(key) if m.get(key) is not None else settings.get(key)


def _location(kind, m, settings, errors):
    """(path, server, port, FS bucket async flag, skip) of a mount; skip when an FS bucket's app whitelist excludes this host."""
    path, server, port, is_async, skip = _text(m.get("path")), _text(m.get("server")), m.get("port"), False, False
    if kind == "fsbucket":
        server, folder, is_async = _fs_bucket(m, errors)
        if not path and not errors:
            path = _text(m.get("app_root") or settings.get("app_root")).rstrip("/") + folder
        apps = as_list(m.get("apps"))
        skip = bool(apps) and _text(settings.get("app_id")) not in apps
    if not path:
        if not errors:
            errors.append("path is required")
    elif path == "/" or abs_path_error("path", path):
        errors.append('path "%s" must be an absolute path other than / (letters, digits and . _ - @ + = only)' % path)
    if kind != "fsbucket" and not server:
        errors.append("server is required for type " + kind)
    elif kind != "fsbucket" and not full(HOST, server):
        errors.append('server "%s" is not a valid host name or address' % server)
    if port is not None and (not re.fullmatch(r"[0-9]+", _text(port)) or not 1 <= int(port) <= 65535):
        errors.append('port "%s" must be between 1 and 65535' % port)
        port = None
    return path, server, (int(port) if port is not None else None), is_async, skip


def _attribute_errors(m):
    """Mount point mode, owner and group, protocol version and the user's extra options."""
    errors = []
    mode = _text(m.get("mode") or "0755")
    if not full(OCTAL_MODE, mode):
        errors.append('mode "%s" must be an octal string such as "0755"' % mode)
    for account in ("owner", "group"):
        if m.get(account) is not None and not full(ACCOUNT, _text(m.get(account))):
            errors.append('%s "%s" must be a user or group name, or a numeric id' % (account, _text(m.get(account))))
    if m.get("health_check") and _text(m.get("type")) != "sshfs":
        errors.append("health_check is for sshfs mounts (a FUSE daemon that can die); the kernel keeps cifs and nfs mounts")
    for key, rule in (("version", VERSION), ("file_mode", OCTAL_MODE)):
        if m.get(key) is not None and not full(rule, _text(m.get(key))):
            errors.append('%s "%s" is not valid' % (key, _text(m.get(key))))
    return errors + extra_fstab_option_errors(m.get("options"), _managed_option_refusal)


def _managed_option_refusal(text):
    if MANAGED_OPTIONS.match(text):
        return 'option "%s=" is managed by the role: use the matching mount key (secrets never go into fstab)' % text.split("=")[0]
    return None


def _cifs(m, server, cfg, files, errors):
    """(src, options, credentials file content) of a CIFS mount."""
    share = _text(m.get("share"))
    if not share:
        errors.append("share is required for type cifs")
    elif not full(SHARE, share):
        errors.append('share "%s" must be a share name without spaces, commas or quotes' % share)
    if not m.get("user"):
        errors.append("user is required for type cifs (it goes to the credentials file)")
    files["credentials"] = "%s/%s.cred" % (cfg["dir"], cfg["id"])
    secret = "username=%s\npassword=%s\n" % (_text(m.get("user")), _text(m.get("password")))
    secret += "domain=%s\n" % m["domain"] if m.get("domain") else ""
    opts = ["_netdev", "credentials=" + files["credentials"], "iocharset=utf8", "vers=" + _text(m.get("version") or cfg["settings"].get("cifs_version"))]
    opts += ["file_mode=" + _text(m.get("file_mode") or "0644"), "dir_mode=" + _text(m.get("mode") or "0755")] + cfg["portopt"]
    return "//%s/%s" % (server, share), opts, secret


def _nfs(kind, m, cfg, errors):
    """(src, options) of an NFS mount or FS bucket. Why these options: mounts_nfs_options in meta/argument_specs.yml."""
    export = _text(m.get("export") or "/") if kind == "nfs" else "/"
    if not full(EXPORT, export):
        errors.append('export "%s" must be an absolute path on the server' % export)
    opts = ["_netdev", "vers=" + _text(m.get("version") or cfg["settings"].get("nfs_version"))]
    opts += [_text(o) for o in as_list(cfg["settings"].get("nfs_options"))] + cfg["portopt"] + (["async"] if cfg["async"] else [])
    return "%s:%s" % (cfg["server"], export), opts


def _boot_options(m, settings):
    """nofail, automount and the mount timeout: what keeps boot safe when a server is down."""
    timeout = _own(m, settings, "mount_timeout")
    boot = (["nofail"] if _own(m, settings, "nofail") else []) + (["x-systemd.automount"] if _own(m, settings, "automount") else [])
    return boot + (["x-systemd.mount-timeout=%d" % int(timeout)] if int(timeout or 0) > 0 else [])


def _mount(where, m, settings, errors):
    """One mount of the plan (or None when it does not concern this host); appends to ``errors``."""
    kind = _text(m.get("type"))
    if kind not in TYPES:
        errors.append('unknown type "%s" (expected cifs, nfs, sshfs or fsbucket)' % kind)
        return None
    path, server, port, is_async, skip = _location(kind, m, settings, errors)
    errors.extend(_attribute_errors(m))
    cfg = {
        "dir": _text(settings.get("config_dir")).rstrip("/"),
        "id": file_id(path),
        "alive": settings.get("sshfs_server_alive_interval"),
        "portopt": ["port=%d" % port] if port is not None else [],
        "settings": settings,
        "server": server,
        "port": DEFAULT_PORTS[kind] if port is None else port,
        "async": is_async,
    }
    port = cfg["port"]
    files, hostkey, secret = {}, {}, None
    if kind == "cifs":
        src, opts, secret = _cifs(m, server, cfg, files, errors)
    elif kind in ("nfs", "fsbucket"):
        src, opts = _nfs(kind, m, cfg, errors)
    else:
        src, opts, hostkey = _sshfs(m, cfg, files, errors)
        secret = _text(m.get("identity")).strip() + "\n" if m.get("identity") else None
    if errors or skip:
        return None
    if _text(m.get("state")) == "absent":
        # Whatever this mount's files were (a key given by value earlier, say), they go with it: they are named
        # after its path in the role's own directory. A key named by identity_file is the user's and stays.
        files = {kind: "%s/%s.%s" % (cfg["dir"], cfg["id"], ext) for kind, ext in (("credentials", "cred"), ("key", "key"), ("known_hosts", "known_hosts"))}
    legacy = legacy_file_id(path)
    return {
        "id": cfg["id"],
        "where": where,
        "type": kind,
        "path": path,
        "src": src,
        "state": _text(m.get("state") or "mounted"),
        "fstype": FSTYPES[kind],
        "opts": opts + _boot_options(m, settings) + [_text(o) for o in as_list(m.get("options"))],
        # CIFS and SSHFS files belong to the mount's owner and group (uid=/gid= in fstab).
        "id_options": kind in ("cifs", "sshfs"),
        "owner": _text(m.get("owner") or "root"),
        "group": _text(m.get("group") or "root"),
        "mode": _text(m.get("mode") or "0755"),
        "server": server,
        "port": port,
        "preflight": _own(m, settings, "preflight"),
        "allow_non_empty": bool(m.get("allow_non_empty")),
        "automount": bool(_own(m, settings, "automount")),
        "fuse": kind == "sshfs" and bool(m.get("allow_other", True)),
        # A FUSE daemon can die under a mount that still looks mounted: a timer on the host checks and heals it.
        "health_check": kind == "sshfs" and bool(_own(m, settings, "health_check")),
        "health_interval": _text(settings.get("health_interval") or "30s"),
        "unit": systemd_escape_path(path),
        "files": files,
        "legacy_files": ["%s/%s.%s" % (cfg["dir"], legacy, ext) for ext in ("cred", "key", "known_hosts") if legacy != cfg["id"]],
        "hostkey": hostkey,
        "_secret": secret,
    }


def _input_errors(settings):
    errors = control_char_errors({"mounts_" + key: settings.get(key) for key in GLOBAL_STRINGS}) + flag_errors(settings, GLOBAL_FLAGS, "mounts_")
    for name in ("app_root", "config_dir"):
        problem = abs_path_error("mounts_" + name, _text(settings.get(name)))
        if problem and not errors:
            errors.append(problem)
    problem = timespan_error("mounts_health_interval", settings.get("health_interval") or "30s", minimum=10)
    if problem and not errors:
        errors.append(problem)
    for option in as_list(settings.get("nfs_options")):
        problem = fstab_option_error("mounts_nfs_options", _text(option))
        if problem and not errors:
            errors.append(problem)
    return errors


def _normalize(settings):
    """(errors, mounts with their secrets) for the role's settings."""
    errors = _input_errors(settings)
    if errors:
        return errors, []
    items, errors = _items(settings)
    mounts, paths = [], set()
    for where, given in items:
        # A quoted "false" is a true string: read as Ansible reads a boolean (allow_non_empty or
        # insecure_ignore_host_key read as true would mount over data or skip the host key check).
        mine = control_char_errors({key: given.get(key) for key in MOUNT_STRINGS}) + flag_errors(given, MOUNT_FLAGS)
        m = read_flags(given, MOUNT_FLAGS)
        if has_bad_identity(m.get("identity")):
            mine.append("identity must not contain control characters other than line ends")
        mount = None if mine else _mount(where, m, settings, mine)
        label = "?" if has_control_chars(m.get("path")) or has_control_chars(m.get("type")) else _text(m.get("path") or m.get("type"))
        if mount and mount["path"] in paths:
            mine.append('path "%s" is used by more than one mount' % mount["path"])
            mount = None
        errors.extend("%s (%s): %s" % (where, label, e) for e in mine)
        if mount:
            paths.add(mount["path"])
            mounts.append(mount)
    return errors, mounts


def has_bad_identity(identity):
    """A private key spans lines; any other control character in it is refused."""
    return isinstance(identity, str) and bool(re.search(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]", identity))


def _probe_request(mounts, settings):
    """What the read-only probe must look at on the host (keepdata.storage.mount_probe options)."""
    live = [m for m in mounts if m["state"] != "absent"]
    checked = [m for m in live if m["preflight"]]
    ids = []
    for m in live:
        for kind, option in (("user", "owner"), ("group", "group")):
            entry = {"name": m[option], "kind": kind, "option": "%s.%s" % (m["where"], option)}
            if m[option] not in [e["name"] for e in ids if e["kind"] == kind]:
                ids.append(entry)
    # A fingerprint needs the server's keys; a key given by value is checked against them unless preflight is off.
    host_keys = [
        {
            "id": m["id"],
            "path": m["path"],
            "address": "%s:%d" % (m["server"], m["port"]),
            "name": m["hostkey"]["name"],
            "value": m["hostkey"]["value"],
            "fingerprint": m["hostkey"]["fingerprint"],
            "scan": bool(m["preflight"] or m["hostkey"]["fingerprint"]),
        }
        for m in live
        if m["type"] == "sshfs" and not m["hostkey"]["insecure"]
    ]
    packages = sorted({p for m in live for p in PACKAGES[m["type"]]}) if settings.get("manage_packages") else []
    return {
        "mount_points": [{"path": m["path"], "allow_non_empty": m["allow_non_empty"]} for m in live],
        "ports": sorted({"%s:%d" % (m["server"], m["port"]) for m in checked}),
        "ids": ids,
        "packages": packages,
        "host_keys": host_keys,
        # systemd starts an .automount unit only where the kernel offers autofs.
        "automounts": [m["path"] for m in live if m["state"] == "mounted" and m["automount"]],
    }


# Whole numbers of seconds, with their limits (the argument spec says the same).
SECONDS = {"preflight_timeout": (1, 600), "apt_cache_valid_time": (0, None)}


def mounts_plan(settings):
    """The plan, safe to print: errors (each naming its option), present and absent mounts, the probe's request,
    and ``host``: the settings the tasks hand to the modules on the host, as read and checked here."""
    settings = read_flags(settings, GLOBAL_FLAGS)
    errors, mounts = _normalize(settings)
    errors += seconds_errors(settings, SECONDS, "mounts_")
    public = [{k: v for k, v in m.items() if k != "_secret"} for m in mounts]
    return {
        "errors": errors,
        "present": [m for m in public if m["state"] != "absent"],
        "absent": [m for m in public if m["state"] == "absent"],
        "probe": _probe_request(public, settings) if not errors else {},
        "host": _host_settings(settings) if not errors else {},
    }


def _host_settings(settings):
    return {
        "config_dir": _text(settings.get("config_dir")).rstrip("/"),
        "timeout": whole_number(settings.get("preflight_timeout")),
        "fstab_backup": bool(settings.get("fstab_backup")),
        "apt_cache_valid_time": whole_number(settings.get("apt_cache_valid_time")),
    }


def mounts_files(settings, known_hosts=None):
    """{mount id: [{path, content}]}: each mount's own files, secrets included; only for the task writing them.

    ``known_hosts`` is the probe's {mount id: known_hosts line} (keys scanned or checked on the host). Absent
    mounts get their file paths without content (they are removed).
    """
    known_hosts = known_hosts or {}
    errors, mounts = _normalize(read_flags(settings, GLOBAL_FLAGS))
    if errors:
        return {}
    out = {}
    for m in mounts:
        if m["state"] == "absent":
            out[m["id"]] = [{"path": p} for p in sorted(m["files"].values())]
            continue
        files = []
        if m["type"] == "cifs":
            files.append({"path": m["files"]["credentials"], "content": m["_secret"]})
        if m["type"] == "sshfs":
            if "key" in m["files"]:
                files.append({"path": m["files"]["key"], "content": m["_secret"]})
            if m["id"] in known_hosts:
                files.append({"path": m["files"]["known_hosts"], "content": known_hosts[m["id"]] + "\n"})
        out[m["id"]] = files
    return out
