# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A bucket configuration replaced whole (CORS, lifecycle), with the previous rules saved first to a rollback file,
and the module both cellar_cors and cellar_lifecycle are (``run_rules_module``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import CellarModule, S3CallError, validate_bucket_name


class SaveError(Exception):
    """The previous rules could not be saved; nothing was written to the server."""


def save_rules(path, rules):
    """Write ``rules`` as JSON to ``path`` atomically with mode 0600; the temporary file is removed on any error."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError("directory %s does not exist" % directory)
    handle, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(rules, stream, indent=2, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def replace_rules(read, write, desired, *, check_mode, rules_file, what):
    """Read the rules (``read()``), save them to ``rules_file`` when they will change, then ``write(before)``.

    ``what`` names the configuration in messages ("CORS configuration"). Returns (changed, before); raises
    SaveError, with the server left alone, when the rollback file cannot be written.
    """
    before = read()
    changed = before != desired
    if changed and not check_mode:
        if rules_file:
            try:
                save_rules(rules_file, before)
            except (OSError, ValueError, TypeError) as exc:
                raise SaveError("previous_rules_file %s could not be written (%s): the %s was left unchanged" % (rules_file, exc, what)) from None
        write(before)
    return changed, before


def rules_argument_spec(rule_spec):
    """Options of a module that replaces one configuration whole: bucket, state, rules (``rule_spec``), rollback file."""
    return dict(
        bucket=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        rules=dict(type="list", elements="dict", options=rule_spec),
        previous_rules_file=dict(type="path"),
    )


def desired_rules(params, validate, normalize):
    """Normalised rules wanted ([] for absent); raise ValueError (or the rules' own error) on bad input."""
    problem = validate_bucket_name(params["bucket"])
    if problem:
        raise ValueError(problem)
    if params["state"] == "absent":
        if params["rules"]:
            raise ValueError("state=absent takes no rules")
        return []
    validate(params["rules"])
    return normalize(params["rules"])


def run_rules_module(argument_spec, rule_error, desired_from_params, converge, preview):
    """main() of cellar_cors and cellar_lifecycle.

    ``desired_from_params(params)`` validates and normalises (raising ValueError or ``rule_error``);
    ``converge(client, bucket, desired, check_mode, rules_file)`` reads, saves and writes; ``preview(desired)`` is
    (changed, before) for a bucket that does not exist yet (a new bucket has no configuration).
    """
    cellar = CellarModule(argument_spec, supports_check_mode=True, required_if=[["state", "present", ["rules"]]])
    params = cellar.params
    bucket = params["bucket"]
    try:
        desired = desired_from_params(params)
    except (ValueError, rule_error) as exc:
        cellar.fail(str(exc), changed=False)
    try:
        changed, before = converge(cellar.client(bucket), bucket, desired, cellar.check_mode, params["previous_rules_file"])
    except S3CallError as exc:
        cellar.preview_of_missing_bucket(exc, bucket)
        # A preview of a bucket an earlier task would create: compared with a new bucket's (no configuration).
        changed, before = preview(desired)
    except SaveError as exc:
        cellar.fail(str(exc), changed=False)
    cellar.exit(changed=changed, rules=desired, previous_rules=before, diff=dict(before={"rules": before}, after={"rules": desired}))
