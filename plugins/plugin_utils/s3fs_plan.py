# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plan of role keepdata.storage.s3fs: credentials resolved, settings validated, the fstab entry built.

``s3fs_plan(settings)`` returns ``{"errors": [...], "cfg": {...}, "probe": {...}, "create_bucket": bool}``,
safe to print. ``s3fs_credentials(settings)`` returns ``{"access_key", "secret_key"}``, kept apart and used
only as arguments of the tasks that need them. ``settings`` are the role's variables without their ``s3fs_``
prefix, plus ``env``: the controller's CELLAR_ADDON_HOST / _KEY_ID / _KEY_SECRET as ``host``, ``key_id``,
``key_secret``. Bucket names, endpoints and the path-style choice follow the Cellar modules' own rules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.keepdata.storage.plugins.module_utils.common.input_rules import (
    ACCOUNT,
    OCTAL_MODE,
    abs_path_error,
    as_list,
    control_char_errors,
    extra_fstab_option_errors,
    file_id,
    full,
    paths_nest,
    rel_path_ok,
    systemd_escape_path,
    timespan_error,
)
from ansible_collections.keepdata.storage.plugins.plugin_utils.flags import flag_errors, seconds_errors, whole_number
from ansible_collections.keepdata.storage.plugins.plugin_utils.flags import read_flags as _read_flags
from ansible_collections.keepdata.storage.plugins.plugin_utils.s3_target import bucket_name_error, controller_keys, endpoint_url, host_and_port, path_style

# Options the role writes itself, and option names that would put a credential into fstab.
MANAGED_OPTIONS = ("passwd_file", "url", "use_path_request_style")
CREDENTIAL_OPTION = re.compile(r"secret|passw|token|access_?key", re.IGNORECASE)
# The role's true-or-false options (s3fs_ prefix left out).
# Whole numbers of seconds, with their limits (the argument spec says the same).
SECONDS = {"preflight_timeout": (1, 600), "apt_cache_valid_time": (0, None)}
FLAGS = ("from_cellar_env", "allow_other", "nofail", "create_bucket", "preflight", "health_check", "manage_packages")
STRINGS = (
    "bucket",
    "endpoint",
    "access_key",
    "secret_key",
    "credentials_string",
    "path",
    "owner",
    "group",
    "mode",
    "umask",
    "path_request_style",
    "cache_dir",
    "options",
    "config_dir",
    "app_root",
    "symlinks",
    "symlink_owner",
    "symlink_group",
    "health_interval",
)


def _text(value):
    return "" if value is None else str(value)


def _credentials(settings, errors):
    """(access key, secret key, bucket, endpoint): variables first, then the credentials string, then the environment."""
    ak, sk = _text(settings.get("access_key")), _text(settings.get("secret_key"))
    bucket, endpoint = _text(settings.get("bucket")), _text(settings.get("endpoint"))
    if settings.get("credentials_string"):
        parts = _text(settings["credentials_string"]).split(":")
        if len(parts) != 3 or "" in parts:
            errors.append('s3fs_credentials_string must be "access_key:secret_key:bucket" (three non-empty parts)')
        else:
            ak, sk, bucket = ak or parts[0], sk or parts[1], bucket or parts[2]
    if settings.get("from_cellar_env"):
        env = settings.get("env") or {}
        env_keys = (controller_keys(env, "s3fs_from_cellar_env", errors) or ("", "")) if not (ak and sk) else ("", "")
        if not all(env_keys) and not (ak and sk):
            errors.append(
                "s3fs_from_cellar_env is set but CELLAR_ADDON_KEY_ID / CELLAR_ADDON_KEY_SECRET are not in the controller environment "
                "(nor a credentials file in AWS_SHARED_CREDENTIALS_FILE)"
            )
        ak, sk = ak or env_keys[0], sk or env_keys[1]
        # CELLAR_ADDON_HOST names the cluster the keys belong to: it wins over s3fs_endpoint.
        endpoint = _text(env.get("host")) or endpoint
        bad_env = control_char_errors(
            {"CELLAR_ADDON_HOST": env.get("host"), "CELLAR_ADDON_KEY_ID": env.get("key_id"), "CELLAR_ADDON_KEY_SECRET": env.get("key_secret")}
        )
        if bad_env:
            errors.extend("environment " + e for e in bad_env)
            return ak, sk, bucket, endpoint
    if not ak or not sk:
        errors.append("no S3 credentials: set s3fs_access_key and s3fs_secret_key, s3fs_credentials_string, or s3fs_from_cellar_env")
    elif re.search(r"[\s:]", ak) or re.search(r"\s", sk):
        errors.append('the access key must not contain ":" or blanks, the secret key no blanks')
    return ak, sk, bucket, endpoint


def _links(settings, path, errors):
    """The app-relative symlinks; s3fs_symlinks items may also hold Scalingo's "a:b" form (SCALINGO_SHAREDFS_SYMLINKS)."""
    app_root = _text(settings.get("app_root"))
    app_root = app_root.rstrip("/") or app_root
    links = []
    # Each item may hold several paths in SCALINGO_SHAREDFS_SYMLINKS form ("public/uploads:tmp/cache").
    wanted = [part for item in as_list(settings.get("symlinks"), ",:") for part in _text(item).split(":") if part]
    if wanted:
        if not app_root or app_root == "/" or abs_path_error("s3fs_app_root", app_root):
            errors.append('s3fs_app_root "%s" must be an absolute path other than / when s3fs_symlinks is set' % app_root)
        elif paths_nest(app_root, path):
            errors.append('s3fs_app_root "%s" and s3fs_path "%s" must not contain one another' % (app_root, path))
    for item in wanted:
        rel = item.rstrip("/")
        if not rel_path_ok(rel):
            errors.append('symlink "%s" must be a relative path under the app root, without ".." (such as public/system)' % item)
        elif rel in links:
            errors.append('symlink "%s" is listed twice' % rel)
        else:
            for other in links:
                if paths_nest(rel, other):
                    errors.append('symlinks "%s" and "%s" clash: one is inside the other' % (other, rel))
            links.append(rel)
    return app_root, links


def _options(settings, errors):
    """Extra fstab options; errors name an option by its name only (its value may be a secret put there by mistake)."""
    errors.extend(extra_fstab_option_errors(settings.get("options"), _managed_option_refusal))
    return [_text(o) for o in as_list(settings.get("options"))]


def _managed_option_refusal(text):
    name = text.split("=")[0]
    if name in MANAGED_OPTIONS:
        return 'option "%s" is managed by the role (see s3fs_endpoint, s3fs_path_request_style)' % name
    if CREDENTIAL_OPTION.search(name):
        return 'option "%s" would put a credential into fstab: use s3fs_access_key/s3fs_secret_key' % name
    return None


def _local_errors(settings, path):
    """The mount point, modes, owners and local directories."""
    errors = []
    if path == "/" or abs_path_error("s3fs_path", path):
        errors.append('s3fs_path "%s" must be an absolute path other than / (letters, digits and . _ - @ + = only)' % path)
    for key, example in (("umask", "0022"), ("mode", "0755")):
        if not full(OCTAL_MODE, _text(settings.get(key))):
            errors.append('s3fs_%s "%s" must be an octal string such as "%s"' % (key, _text(settings.get(key)), example))
    for key in ("owner", "group", "symlink_owner", "symlink_group"):
        if not full(ACCOUNT, _text(settings.get(key))):
            errors.append('s3fs_%s "%s" must be a user or group name, or a numeric id' % (key, _text(settings.get(key))))
    cache_dir = _text(settings.get("cache_dir"))
    if cache_dir and abs_path_error("s3fs_cache_dir", cache_dir):
        errors.append('s3fs_cache_dir "%s" must be an absolute path' % cache_dir)
    problem = abs_path_error("s3fs_config_dir", _text(settings.get("config_dir")).rstrip("/"))
    errors += [problem] if problem else []
    problem = timespan_error("s3fs_health_interval", settings.get("health_interval") or "30s", minimum=10)
    errors += [problem] if problem else []
    return errors + seconds_errors(settings, SECONDS, "s3fs_")


def _resolve(settings):
    """(errors, plan, access key, secret key); ``settings`` as read by read_flags."""
    errors = control_char_errors({"s3fs_" + key: settings.get(key) for key in STRINGS}) + flag_errors(settings, FLAGS, "s3fs_")
    if errors:
        return errors, {}, "", ""
    ak, sk, bucket, endpoint = _credentials(settings, errors)
    if errors:
        return errors, {}, "", ""
    if not bucket:
        errors.append("no bucket: set s3fs_bucket (or the third part of s3fs_credentials_string)")
    elif bucket_name_error("bucket", bucket):
        errors.append(bucket_name_error("bucket", bucket))
    url = endpoint_url("endpoint", endpoint, errors)
    path = _text(settings.get("path"))
    errors.extend(_local_errors(settings, path))
    extra = _options(settings, errors)
    app_root, links = _links(settings, path, errors)
    style = _text(settings.get("path_request_style") or "auto").lower()
    bucket_in_path = path_style("s3fs_path_request_style", style, url, bucket, errors)
    config_dir, cache_dir = _text(settings.get("config_dir")).rstrip("/"), _text(settings.get("cache_dir"))
    passwd = "%s/%s.passwd" % (config_dir, file_id(path))
    opts = ["_netdev", "passwd_file=" + passwd, "url=" + url]
    opts += ["use_path_request_style"] if bucket_in_path else []
    opts += ["allow_other"] if settings.get("allow_other") else []
    umask = _text(settings.get("umask"))
    opts += ["umask=" + umask, "mp_umask=" + umask, "stat_cache_expire=%d" % int(settings.get("stat_cache_expire") or 0)]
    opts += ["use_cache=" + cache_dir, "ensure_diskfree=1024"] if cache_dir else []
    opts += ["nofail"] if settings.get("nofail") else []
    opts += ["x-systemd.mount-timeout=%d" % int(settings.get("mount_timeout"))] if int(settings.get("mount_timeout") or 0) > 0 else []
    host, port = host_and_port(url)
    bucket_passwd = "%s/%s.passwd" % (config_dir, bucket)
    plan = {
        "bucket": bucket,
        "url": url,
        "host": host,
        "port": port,
        "path": path,
        "opts": opts + extra,
        "passwd_file": passwd,
        # Earlier releases named the passwd file after the bucket (two mounts of one bucket shared it).
        "legacy_files": [bucket_passwd] if bucket_passwd != passwd else [],
        "unit": systemd_escape_path(path),
        "app_root": app_root,
        "links": links,
        "path_style": bucket_in_path,
        "access_key": ak,
    }
    return errors, plan, ak, sk


def read_flags(settings):
    """``settings`` with the role's flags read as Ansible reads a boolean (a quoted "false" is false)."""
    return _read_flags(settings, FLAGS)


def s3fs_plan(settings):
    """The plan, safe to print: errors, the mount (``cfg``), whether to create the bucket, the probe's request."""
    settings = read_flags(settings)
    errors, cfg, _ak, _sk = _resolve(settings)
    state = _text(settings.get("state") or "mounted")
    if errors:
        return {"errors": errors, "cfg": {}, "probe": {}, "create_bucket": False}
    live = state != "absent"
    probe = {
        "mount_points": [{"path": cfg["path"], "allow_non_empty": False}] if live else [],
        "ports": ["%s:%d" % (cfg["host"], cfg["port"])] if live and settings.get("preflight") else [],
        "ids": [
            {"name": _text(settings.get(key)), "kind": "group" if key.endswith("group") else "user", "option": "s3fs_" + key}
            for key in ("owner", "group", "symlink_owner", "symlink_group")
        ]
        if live
        else [],
        "packages": ["s3fs", "fuse3"] if live and settings.get("manage_packages") else [],
        "links": {"app_root": cfg["app_root"], "storage": cfg["path"], "paths": cfg["links"] if state == "mounted" else []},
    }
    cfg = dict(cfg, **_host_settings(settings, state))
    return {"errors": [], "cfg": cfg, "probe": probe, "create_bucket": bool(settings.get("create_bucket")) and live}


def _host_settings(settings, state):
    """What the tasks hand to the modules on the host, as the plan read and checked it (the tasks read no role
    variable themselves)."""
    return {
        "state": state,
        "owner": _text(settings.get("owner")),
        "group": _text(settings.get("group")),
        "mode": _text(settings.get("mode")),
        "config_dir": _text(settings.get("config_dir")).rstrip("/"),
        "cache_dir": _text(settings.get("cache_dir")),
        "allow_other": bool(settings.get("allow_other")),
        "health_check": bool(settings.get("health_check")),
        "health_interval": _text(settings.get("health_interval") or "30s"),
        "timeout": whole_number(settings.get("preflight_timeout")),
        "symlink_owner": _text(settings.get("symlink_owner")),
        "symlink_group": _text(settings.get("symlink_group")),
        "apt_cache_valid_time": whole_number(settings.get("apt_cache_valid_time")),
    }


def s3fs_credentials(settings):
    """{access_key, secret_key}, resolved as the plan resolves them (empty when the settings are invalid)."""
    settings = read_flags(settings)
    errors, _cfg, ak, sk = _resolve(settings)
    return {"access_key": "", "secret_key": ""} if errors else {"access_key": ak, "secret_key": sk}


def s3fs_bucket_request(settings):
    """What creating the bucket takes (keys included), or {} when s3fs_create_bucket is off or the settings are invalid."""
    settings = read_flags(settings)
    errors, cfg, ak, sk = _resolve(settings)
    if errors or not settings.get("create_bucket") or _text(settings.get("state") or "mounted") == "absent":
        return {}
    return {"bucket": cfg["bucket"], "url": cfg["url"], "path_style": cfg["path_style"], "access_key": ak, "secret_key": sk}
