# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the plans of roles keepdata.storage.backup and keepdata.storage.s3fs both check of an S3 target, by the
Cellar modules' own rules: the controller's Cellar keys, the bucket name, the endpoint and the path-style choice.
Each check names the role variable it reads (``option``) in its message."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.six.moves.urllib.parse import urlsplit

from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import (
    CellarError,
    controller_env_keys,
    parse_endpoint,
    use_path_style,
    validate_bucket_name,
)

# The URL a wrong endpoint stands for, so that the plan goes on and reports every other error too.
INVALID_ENDPOINT_URL = "https://invalid"


def controller_keys(env, option, errors):
    """(access key, secret key) from the controller's CELLAR_ADDON_* variables or shared credentials file (empty
    strings for what is not there); None, with the error added, when they cannot be read."""
    try:
        return controller_env_keys(env, option)
    except CellarError as exc:
        errors.append(str(exc))
        return None


def bucket_name_error(option, bucket):
    """Why ``bucket`` is not a bucket name the Cellar modules take, or None."""
    problem = validate_bucket_name(bucket)
    if not problem:
        return None
    return '%s "%s" is not a valid S3 bucket name: %s' % (option, bucket, problem.replace("bucket name %r " % bucket, ""))


def endpoint_url(option, endpoint, errors):
    """``endpoint`` as scheme://host[:port]; INVALID_ENDPOINT_URL, with the error added, when it is none."""
    try:
        return parse_endpoint(endpoint)
    except CellarError:
        errors.append('%s "%s" must be a host, host:port or http(s)://host[:port]' % (option, endpoint))
        return INVALID_ENDPOINT_URL


def path_style(option, style, url, bucket, errors):
    """Whether requests address the bucket in the path: ``style`` is true, false or auto (the Cellar modules' choice)."""
    if style not in ("auto", "true", "false"):
        errors.append("%s must be auto, true or false" % option)
    return style == "true" or (style == "auto" and use_path_style(url, bucket))


def host_and_port(url):
    """(host, port) an endpoint URL connects to; the scheme's port when it names none."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
