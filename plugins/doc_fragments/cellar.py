# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options shared by every cellar_* module.
    DOCUMENTATION = r"""
options:
  endpoint:
    description:
      - S3 endpoint, as C(host), C(host:port) or C(scheme://host[:port]); the scheme is C(https) unless given.
      - When not set, the E(CELLAR_ADDON_HOST) environment variable is used, else C(cellar-c2.services.clever-cloud.com).
      - Path-style addressing is used automatically for IP addresses and C(localhost).
    type: str
    default: cellar-c2.services.clever-cloud.com
  access_key:
    description:
      - Access key id.
      - When not set, the E(CELLAR_ADDON_KEY_ID) then E(AWS_ACCESS_KEY_ID) environment variables are used, then a
        credentials file (see O(profile)).
      - Mutually exclusive with O(profile) and O(credentials_file).
    type: str
    aliases: [aws_access_key]
  secret_key:
    description:
      - Secret access key. Never shown in messages or logs.
      - When not set, the E(CELLAR_ADDON_KEY_SECRET) then E(AWS_SECRET_ACCESS_KEY) environment variables are used,
        then a credentials file (see O(profile)).
      - Mutually exclusive with O(profile) and O(credentials_file).
    type: str
    aliases: [aws_secret_key]
  profile:
    description:
      - Read the keys from this profile (a C([name]) section with C(aws_access_key_id) and C(aws_secret_access_key)) of
        an AWS-style shared credentials file, O(credentials_file) or else E(AWS_SHARED_CREDENTIALS_FILE) or else
        C(~/.aws/credentials).
      - When neither this option nor O(credentials_file) is set and no key is given as an option or in the environment,
        that file is still read if it exists, at profile E(AWS_PROFILE) or else C(default).
      - A file keeps the secret out of the process environment, where job runners such as C(ansible-runner) (AWX)
        record it; see C(extensions/awx) for an AWX credential type that writes such a file.
    type: str
    aliases: [aws_profile]
  credentials_file:
    description:
      - AWS-style shared credentials file to read the keys from (profile O(profile), else E(AWS_PROFILE), else
        C(default)). Overrides E(AWS_SHARED_CREDENTIALS_FILE).
    type: path
  region:
    description:
      - Region used to sign requests. Cellar accepts the default.
    type: str
    default: us-east-1
  validate_certs:
    description:
      - Verify the endpoint's TLS certificate.
    type: bool
    default: true
  ca_bundle:
    description:
      - CA bundle file used to verify the endpoint's certificate.
    type: path
  path_style:
    description:
      - Always use path-style addressing (C(https://endpoint/bucket)).
      - Bucket names with dots (custom domains) always use path style, since TLS wildcard certificates do not cover them.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for each answer of the server, between 1 and 3600. A connection is waited for 10 s at most
        (less when O(timeout) is shorter).
      - A request that gets no answer in time counts as failed and is retried like a lost connection (5 attempts in
        all); the module then fails with a message naming the timeout. Raise it for a slow server or a slow link.
    type: int
    default: 60
requirements:
  - python >= 3.8
  - boto3 >= 1.28.0
notes:
  - Requests that fail because of throttling, server errors (5xx), lost connections or a O(timeout) are retried with
    exponential backoff, 5 attempts in all.
  - Every write is safe to retry. When the server applied a write whose answer was lost, the retry meets the effect
    of the first try. Such an answer to a retried write (no such bucket on a delete, no such configuration or
    policy on its delete, no such key, version or upload) is success, and the write counts as a change. A retried
    create that finds the bucket already there adopts it only when it is in these credentials' own bucket list
    (one more read), and then sets the ACL asked; another account's bucket is never adopted. The same answer
    to a first try is someone else's doing between the module's read and its write, and fails as before.
"""
