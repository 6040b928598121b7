# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A bucket configuration replaced whole (CORS, lifecycle), with the previous rules saved first to a rollback file,
and the module both cellar_cors and cellar_lifecycle are (``RuleSet``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import cors, lifecycle, ops
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


class RuleSet(object):
    """A configuration that a module (cellar_cors, cellar_lifecycle) replaces whole, and that module's steps.

    ``rule_spec``: the options of one rule; ``rule_error``: what ``validate`` and ``normalize`` raise on a bad rule;
    ``read(client, bucket)``: the normalised rules there ([] for none); ``write(client, bucket, rules)``: store them
    whole ([] removes them); ``what``: the configuration's name in messages ("CORS configuration").
    """

    def __init__(self, what, rule_spec, rule_error, validate, normalize, *, read, write):
        self.rule_spec = rule_spec
        self.rule_error = rule_error
        self.validate = validate
        self.normalize = normalize
        self.read = read
        self.write = write
        self.what = what

    def argument_spec(self):
        """The module's options: bucket, state, rules, rollback file."""
        return dict(
            bucket=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            rules=dict(type="list", elements="dict", options=self.rule_spec),
            previous_rules_file=dict(type="path"),
        )

    def desired_from_params(self, params):
        """Normalised rules wanted ([] for absent); raise ValueError (or ``rule_error``) on bad input."""
        problem = validate_bucket_name(params["bucket"])
        if problem:
            raise ValueError(problem)
        if params["state"] == "absent":
            if params["rules"]:
                raise ValueError("state=absent takes no rules")
            return []
        self.validate(params["rules"])
        return self.normalize(params["rules"])

    def converge(self, client, bucket, desired, check_mode, rules_file=None):
        """Read the rules, save them to ``rules_file`` when they will change, then write. Returns (changed, before)."""
        return replace_rules(
            lambda: self.read(client, bucket),
            lambda _before: self.write(client, bucket, desired),
            desired,
            check_mode=check_mode,
            rules_file=rules_file,
            what=self.what,
        )

    def run_module(self):
        """The module's main()."""
        cellar = CellarModule(self.argument_spec(), supports_check_mode=True, required_if=[["state", "present", ["rules"]]])
        params = cellar.params
        bucket = params["bucket"]
        try:
            desired = self.desired_from_params(params)
        except (ValueError, self.rule_error) as exc:
            cellar.fail(str(exc), changed=False)
        try:
            changed, before = self.converge(cellar.client(bucket), bucket, desired, cellar.check_mode, params["previous_rules_file"])
        except S3CallError as exc:
            cellar.preview_of_missing_bucket(exc, bucket)
            # A preview of a bucket an earlier task would create: a new bucket has no configuration.
            changed, before = desired != [], []
        except SaveError as exc:
            cellar.fail(str(exc), changed=False)
        cellar.exit(changed=changed, rules=desired, previous_rules=before, diff=dict(before={"rules": before}, after={"rules": desired}))


CORS_RULES = RuleSet(
    "CORS configuration", cors.CORS_RULE_SPEC, cors.CorsError, cors.validate_rules, cors.normalize_rules, read=ops.get_cors, write=ops.write_cors
)
LIFECYCLE_RULES = RuleSet(
    "lifecycle configuration",
    lifecycle.LIFECYCLE_RULE_SPEC,
    lifecycle.LifecycleError,
    lifecycle.validate_rules,
    lifecycle.normalize_rules,
    read=ops.get_lifecycle_rules,
    write=ops.write_lifecycle,
)
