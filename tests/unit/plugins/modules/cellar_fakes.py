# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A scripted S3 client and the part of CellarModule that cellar_bucket's converge uses, for the unit tests of the
cellar modules' request handling (test_cellar_failures, test_cellar_retried_writes)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.keepdata.storage.plugins.module_utils.cellar import bucket as bucket_logic
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import describe_error
from ansible_collections.keepdata.storage.plugins.modules import cellar_bucket


class FakeS3:
    """Answers each S3 call from ``answers[method]``: a value, an exception to raise, a function of the call's
    arguments, or a list of those consumed in order.

    Calls without an answer fail the test, so a test also proves which requests were *not* made.
    """

    def __init__(self, **answers):
        self.answers = answers
        self.calls = []

    def __getattr__(self, method):
        if method not in self.answers:
            raise AssertionError("unexpected S3 call %s" % method)

        def call(**kwargs):
            self.calls.append((method, kwargs))
            answer = self.answers[method]
            if isinstance(answer, list):
                answer = answer.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer(**kwargs) if callable(answer) else answer

        return call

    def names(self):
        return [method for method, _kwargs in self.calls]


class FakeCellar:
    """The part of CellarModule that converge_bucket uses."""

    check_mode = False

    def __init__(self, client):
        self._client = client

    def client(self, _bucket=None):
        return self._client

    def url(self, bucket):
        return "https://s3.example.com/" + bucket

    def describe(self, error, bucket=None, action=None):
        return describe_error(error, "https://s3.example.com", bucket, action)


def entry(**kwargs):
    params = {key: None for key in cellar_bucket.BUCKET_SPEC}
    params.update(name="bkt", state="present", force=False)
    params.update(kwargs)
    return params


def converge(client, **kwargs):
    params = entry(**kwargs)
    return bucket_logic.converge_bucket(FakeCellar(client), params, bucket_logic.desired_state(params), 1)
