# -*- coding: utf-8 -*-
# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One small wrapper per S3 call, and the converge steps every Cellar module shares.

Every wrapper turns a botocore error into :class:`cellar.S3CallError` (also importable from here) naming the action
and the bucket, so modules report it in one place: ``CellarModule.fail_s3``, or ``CellarModule.describe`` for the
message alone. Converge steps read one sub-resource, compare it by meaning and write only when it differs (never in
check mode).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.keepdata.storage.plugins.module_utils.cellar.connection import BotoCoreError, ClientError, S3CallError, retry_attempts
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.cors import rules_from_s3, rules_to_s3
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.lifecycle import rules_from_s3 as lifecycle_from_s3
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.lifecycle import rules_to_s3 as lifecycle_to_s3
from ansible_collections.keepdata.storage.plugins.module_utils.cellar.policy import normalize_policy, policy_json, same_policy

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
CANNED_ACLS = ["private", "public-read", "public-read-write", "authenticated-read"]
# Grants beyond the owner's FULL_CONTROL that each canned ACL sets.
_CANNED_GRANTS = {
    "private": frozenset(),
    "public-read": frozenset([(ALL_USERS, "READ")]),
    "public-read-write": frozenset([(ALL_USERS, "READ"), (ALL_USERS, "WRITE")]),
    "authenticated-read": frozenset([(AUTH_USERS, "READ")]),
}
VERSIONING = ["enabled", "suspended"]
DELETE_BATCH = 1000
NOT_FOUND_CODES = ("NoSuchBucket", "404", "NotFound")
DENIED_CODES = ("AccessDenied", "AllAccessDisabled", "403")


class Tally:
    """Writes that succeeded so far, so a failure after a successful write still reports ``changed``."""

    def __init__(self):
        self.written = []
        self.deleted = 0
        self._lock = threading.Lock()

    def add_deleted(self, count):
        with self._lock:
            self.deleted += count

    @property
    def changed(self):
        return bool(self.written or self.deleted)


def call(action, method, bucket=None, **kwargs):
    try:
        return method(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise S3CallError(exc, action, bucket) from exc


# ---- writes safe to retry -----------------------------------------------------------------------------------
#
# botocore sends a request again when no answer came (a timeout, a reset connection, a 5xx). When the server had
# applied the first try and only its answer was lost, the retry meets the effect of that first try: deleting the
# bucket answers NoSuchBucket, creating it BucketAlreadyExists (or BucketAlreadyOwnedByYou), aborting an upload
# NoSuchUpload. The rule, decided in ``already_done`` and applied by ``write`` (and per key by ``delete_objects``):
#
# - An answer in a write's "already done" codes to a request botocore retried (ResponseMetadata.RetryAttempts > 0,
#   on the error as on a success) is success, and the write counts as made (``changed``): the module read the state
#   before writing, the state now is the declared one, and the unanswered first try is what made it so. A bucket we
#   deleted is ``changed: true`` even when the retry saw NoSuchBucket.
# - Where that answer alone does not prove the declared state, the state is read again and decides (``confirm``):
#   "already exists" on a retried create is adopted only when the bucket is in our own ListBuckets (one read), never
#   a bucket of someone else; otherwise the answer stands as the error.
# - On the first attempt (RetryAttempts == 0) the same answer cannot come from our own request: someone else changed
#   the bucket between the module's read and its write. That is reported as before (the error), rather than claiming
#   a change this run did not make.
#
# botocore's retry count cannot tell whether an earlier try reached the server (a 503 or a refused connection did
# not): then the "already done" state was someone else's doing, in the instant between two tries. The state is the
# declared one either way, and it did change during the run, so success with ``changed`` is still the truth.

ALREADY_DONE = dict(
    create_bucket=("BucketAlreadyOwnedByYou", "BucketAlreadyExists"),
    delete_bucket=("NoSuchBucket",),
    delete_policy=("NoSuchBucketPolicy",),
    delete_cors=("NoSuchCORSConfiguration",),
    delete_lifecycle=("NoSuchLifecycleConfiguration",),
    delete_object=("NoSuchKey", "NoSuchVersion"),
    abort_upload=("NoSuchUpload",),
)


def already_done(write_name, code, retries):
    """True when ``code``, answered to the write ``write_name`` (a key of ALREADY_DONE) after ``retries`` retries,
    means the write's own earlier try was applied (see the rule above)."""
    return retries > 0 and code in ALREADY_DONE[write_name]


def write(write_name, action, method, bucket, confirm=None, **kwargs):
    """One write request (``call``), safe to retry: an "already done" answer to a retry is success (None returned),
    when ``confirm()`` (a fresh read of the state, if given) agrees; any other error is raised as it came."""
    try:
        return call(action, method, bucket, **kwargs)
    except S3CallError as exc:
        if not already_done(write_name, exc.code, exc.retries):
            raise
        try:
            confirmed = confirm is None or confirm()
        except S3CallError:
            confirmed = False  # the read failed: the write's own answer is the error to report
        if not confirmed:
            raise
        return None


# ---- one wrapper per API call -------------------------------------------------------------------------------


def list_buckets(client):
    return call("list buckets", client.list_buckets).get("Buckets", [])


def bucket_exists(client, bucket):
    try:
        call("head bucket", client.head_bucket, bucket, Bucket=bucket)
    except S3CallError as exc:
        if exc.code in NOT_FOUND_CODES:
            return False
        if exc.code == "403":
            raise_if_credentials_rejected(client)
        raise
    return True


def raise_if_credentials_rejected(client):
    """HEAD answers carry no error code: ListBuckets tells rejected credentials (raised here) from a denied bucket.

    When ListBuckets is itself denied, it says nothing about the credentials, so it returns and the caller raises
    its own error (the real cause).
    """
    try:
        list_buckets(client)
    except S3CallError as exc:
        if exc.code not in DENIED_CODES:
            raise


def owns_bucket(client, bucket):
    """True when ``bucket`` is one of the buckets these credentials own (ListBuckets lists only those)."""
    return any(entry.get("Name") == bucket for entry in list_buckets(client))


def create_bucket(client, bucket, acl=None):
    kwargs = dict(Bucket=bucket)
    if acl:
        kwargs["ACL"] = acl
    created = write("create_bucket", "create bucket", client.create_bucket, bucket, confirm=lambda: owns_bucket(client, bucket), **kwargs)
    if created is None and acl:
        # Our bucket, adopted after a retry. Ceph RGW answers its owner's create with 200 when the ACL asked is the
        # bucket's, and BucketAlreadyExists when it is not (the ACL changed since the first try): set it as declared.
        put_acl(client, bucket, acl)


def delete_bucket(client, bucket):
    write("delete_bucket", "delete bucket", client.delete_bucket, bucket, Bucket=bucket)


def get_acl(client, bucket):
    """Canned ACL matching the bucket's grants, or ``custom``."""
    grants = call("get bucket ACL", client.get_bucket_acl, bucket, Bucket=bucket)
    return canned_acl_from_grants(grants)


def get_owner(client, bucket):
    """The user id of the bucket's owner (``tenant$uid`` or ``uid`` on Ceph RGW), from its ACL; None when not shown."""
    response = call("get bucket ACL", client.get_bucket_acl, bucket, Bucket=bucket)
    return (response.get("Owner") or {}).get("ID")


def caller_id(client):
    """The user id of these credentials (the owner ListBuckets shows), None when not shown."""
    return (call("list buckets", client.list_buckets).get("Owner") or {}).get("ID")


def put_acl(client, bucket, acl):
    call("put bucket ACL", client.put_bucket_acl, bucket, Bucket=bucket, ACL=acl)


def get_acl_grants_from(response):
    """Grantee and permission of every grant in a get_bucket_acl answer."""
    return [
        {"grantee": grant["Grantee"].get("URI") or grant["Grantee"].get("ID") or grant["Grantee"].get("EmailAddress"), "permission": grant["Permission"]}
        for grant in response.get("Grants", [])
    ]


def get_versioning(client, bucket):
    """``enabled``, ``suspended`` or ``disabled`` (never enabled)."""
    status = call("get bucket versioning", client.get_bucket_versioning, bucket, Bucket=bucket).get("Status")
    return {"Enabled": "enabled", "Suspended": "suspended"}.get(status, "disabled")


def put_versioning(client, bucket, versioning):
    status = "Enabled" if versioning == "enabled" else "Suspended"
    call("put bucket versioning", client.put_bucket_versioning, bucket, Bucket=bucket, VersioningConfiguration={"Status": status})


def read_configuration(absent_code, action, method, bucket, **kwargs):
    """One read of a bucket's configuration (``call``); None when the bucket has none (the server answers ``absent_code``)."""
    try:
        return call(action, method, bucket, **kwargs)
    except S3CallError as exc:
        if exc.code == absent_code:
            return None
        raise


def get_policy(client, bucket):
    """Normalised policy, or None."""
    response = read_configuration("NoSuchBucketPolicy", "get bucket policy", client.get_bucket_policy, bucket, Bucket=bucket)
    if response is None:
        return None
    text = response["Policy"]
    try:
        return normalize_policy(json.loads(text))
    except (ValueError, AttributeError, TypeError):
        return {"unparsable": text}


def put_policy(client, bucket, policy):
    call("put bucket policy", client.put_bucket_policy, bucket, Bucket=bucket, Policy=policy_json(policy))


def delete_policy(client, bucket):
    write("delete_policy", "delete bucket policy", client.delete_bucket_policy, bucket, Bucket=bucket)


def get_cors(client, bucket):
    """Normalised rules (module form); [] when there is no CORS configuration."""
    response = read_configuration("NoSuchCORSConfiguration", "get bucket CORS", client.get_bucket_cors, bucket, Bucket=bucket)
    return rules_from_s3(response.get("CORSRules", [])) if response is not None else []


def put_cors(client, bucket, rules):
    call("put bucket CORS", client.put_bucket_cors, bucket, Bucket=bucket, CORSConfiguration={"CORSRules": rules_to_s3(rules)})


def delete_cors(client, bucket):
    write("delete_cors", "delete bucket CORS", client.delete_bucket_cors, bucket, Bucket=bucket)


def get_website(client, bucket):
    response = read_configuration("NoSuchWebsiteConfiguration", "get bucket website", client.get_bucket_website, bucket, Bucket=bucket)
    if response is not None:
        response.pop("ResponseMetadata", None)
    return response


def get_lifecycle(client, bucket):
    """The bucket's lifecycle rules as S3 returns them; [] when there is no lifecycle configuration."""
    response = read_configuration("NoSuchLifecycleConfiguration", "get bucket lifecycle", client.get_bucket_lifecycle_configuration, bucket, Bucket=bucket)
    return response.get("Rules", []) if response is not None else []


def get_lifecycle_rules(client, bucket):
    """Normalised lifecycle rules (module form); [] when there is no lifecycle configuration."""
    return lifecycle_from_s3(get_lifecycle(client, bucket))


def put_lifecycle(client, bucket, rules):
    call(
        "put bucket lifecycle",
        client.put_bucket_lifecycle_configuration,
        bucket,
        Bucket=bucket,
        LifecycleConfiguration={"Rules": lifecycle_to_s3(rules)},
    )


def delete_lifecycle(client, bucket):
    write("delete_lifecycle", "delete bucket lifecycle", client.delete_bucket_lifecycle, bucket, Bucket=bucket)


def list_versions_page(client, bucket, key_marker=None, version_marker=None, max_keys=DELETE_BATCH):
    kwargs = dict(Bucket=bucket, MaxKeys=max_keys)
    if key_marker:
        kwargs["KeyMarker"] = key_marker
        if version_marker:
            kwargs["VersionIdMarker"] = version_marker
    return call("list object versions", client.list_object_versions, bucket, **kwargs)


def delete_objects(client, bucket, objects):
    response = call("delete objects", client.delete_objects, bucket, Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    retries = retry_attempts(response)
    # A key or version the retried batch finds gone was deleted by its first try: deleted, as asked.
    errors = [error for error in response.get("Errors") or [] if not already_done("delete_object", str(error.get("Code", "")), retries)]
    if errors:
        first = errors[0]
        detail = {"Code": first.get("Code", "DeleteFailed"), "Message": "%s (%d objects not deleted)" % (first.get("Key"), len(errors))}
        raise S3CallError(ClientError({"Error": detail}, "DeleteObjects"), "delete objects", bucket)
    return len(objects)


def has_multipart_uploads(client, bucket):
    """True when the bucket holds an unfinished multipart upload (one listing request)."""
    page = call("list multipart uploads", client.list_multipart_uploads, bucket, Bucket=bucket, MaxUploads=1)
    return bool(page.get("Uploads"))


def abort_multipart_uploads(client, bucket):
    """Abort every unfinished multipart upload, page after page; returns how many were aborted."""
    aborted = 0
    markers = {}
    while True:
        page = call("list multipart uploads", client.list_multipart_uploads, bucket, Bucket=bucket, **markers)
        for upload in page.get("Uploads") or []:
            write(
                "abort_upload", "abort multipart upload", client.abort_multipart_upload, bucket, Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            aborted += 1
        if not page.get("IsTruncated") or not page.get("NextKeyMarker"):
            return aborted
        markers = dict(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page.get("NextUploadIdMarker") or "")


# ---- pure helpers -------------------------------------------------------------------------------------------


def canned_acl_from_grants(response):
    """Map get_bucket_acl's answer to a canned ACL name (``custom`` when it matches none)."""
    owner = (response.get("Owner") or {}).get("ID")
    extra = set()
    owner_full = False
    for grant in response.get("Grants", []):
        grantee = grant.get("Grantee", {})
        who = grantee.get("URI") or grantee.get("ID") or grantee.get("EmailAddress")
        if grantee.get("Type") == "CanonicalUser" and who == owner and grant.get("Permission") == "FULL_CONTROL":
            owner_full = True
            continue
        extra.add((who, grant.get("Permission")))
    for name, grants in _CANNED_GRANTS.items():
        if owner_full and extra == grants:
            return name
    return "custom"


def versioning_satisfied(current, desired):
    """``suspended`` is satisfied by a bucket that never had versioning: nothing would change for its objects."""
    return current == desired or (desired == "suspended" and current == "disabled")


def version_entries(page):
    """Object identifiers of every version and delete marker in one list_object_versions page."""
    entries = []
    for key in ("Versions", "DeleteMarkers"):
        for item in page.get(key) or []:
            entry = {"Key": item["Key"]}
            if item.get("VersionId"):
                entry["VersionId"] = item["VersionId"]
            entries.append(entry)
    return entries


def parallel_map(function, items, workers):
    """Run ``function`` on every item with at most ``workers`` in flight; results in input order."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(function, items))


# ---- converge steps shared by the modules -------------------------------------------------------------------


def converge_policy(client, bucket, desired, check_mode, *, current=None, read=True):
    """Make the bucket policy equal ``desired`` (normalised, or None for no policy). Returns (changed, before)."""
    before = get_policy(client, bucket) if read else current
    if same_policy(before, desired):
        return False, before
    if not check_mode:
        if desired is None:
            delete_policy(client, bucket)
        else:
            put_policy(client, bucket, desired)
    return True, before


def _store_whole(put, delete, client, bucket, rules):
    """Store ``rules`` with ``put`` as a whole configuration; [] removes it (``delete``)."""
    if rules:
        put(client, bucket, rules)
    else:
        delete(client, bucket)


def write_cors(client, bucket, rules):
    """Store ``rules`` as the whole CORS configuration; [] removes it."""
    _store_whole(put_cors, delete_cors, client, bucket, rules)


def write_lifecycle(client, bucket, rules):
    """Store ``rules`` as the whole lifecycle configuration; [] removes it."""
    _store_whole(put_lifecycle, delete_lifecycle, client, bucket, rules)


def _replace_whole(read, write, client, bucket, desired, *, check_mode, current, do_read):
    """Compare a configuration replaced whole (rules in module form) and write it when it differs."""
    before = read(client, bucket) if do_read else current
    if before == desired:
        return False, before
    if not check_mode:
        write(client, bucket, desired)
    return True, before


def converge_cors(client, bucket, desired, check_mode, *, current=None, read=True):
    """Replace the whole CORS configuration with ``desired`` rules ([] removes it). Returns (changed, before)."""
    return _replace_whole(get_cors, write_cors, client, bucket, desired, check_mode=check_mode, current=current, do_read=read)


def converge_lifecycle(client, bucket, desired, check_mode, *, current=None, read=True):
    """Replace the whole lifecycle configuration with ``desired`` rules ([] removes it). Returns (changed, before)."""
    return _replace_whole(get_lifecycle_rules, write_lifecycle, client, bucket, desired, check_mode=check_mode, current=current, do_read=read)


def empty_bucket(client, bucket, workers=4, batch=DELETE_BATCH, tally=None):
    """Delete every object version and delete marker, ``batch`` keys per request, ``workers`` requests in flight.

    Listing goes on while earlier pages are being deleted (markers are keys, so deleting behind them is safe on
    RGW and S3). Passes repeat until a listing from the start finds nothing, for servers that lose their place
    when the marker entry is gone. Returns the number of versions and markers deleted; ``tally`` counts them as
    they go, so a failure half-way still tells how many were deleted.
    """
    tally = tally or Tally()
    start = tally.deleted
    while True:
        before = tally.deleted
        _empty_pass(client, bucket, workers, batch, tally)
        if tally.deleted == before:
            return tally.deleted - start


def _empty_pass(client, bucket, workers, batch, tally):
    def delete_batch(entries):
        tally.add_deleted(delete_objects(client, bucket, entries))

    key_marker = version_marker = None
    # Leaving the pool waits for every batch in flight, so the tally is complete even when one of them failed.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = []
        while True:
            page = list_versions_page(client, bucket, key_marker, version_marker, batch)
            entries = version_entries(page)
            if entries:
                pending.append(pool.submit(delete_batch, entries))
            if len(pending) >= workers:
                pending.pop(0).result()
            if not page.get("IsTruncated"):
                break
            key_marker, version_marker = page.get("NextKeyMarker"), page.get("NextVersionIdMarker")
        for future in pending:
            future.result()


def is_empty(client, bucket):
    page = list_versions_page(client, bucket, max_keys=1)
    return not version_entries(page)


def delete_bucket_forced(client, bucket, workers=4, tally=None):
    """Empty the bucket (unfinished multipart uploads, versions, markers), then delete it. Returns versions deleted."""
    return delete_bucket_forced_batch(client, bucket, workers, DELETE_BATCH, tally)


def delete_bucket_forced_batch(client, bucket, workers, batch, tally=None):
    tally = tally or Tally()
    start = tally.deleted
    # Ceph RGW deletes a bucket that still holds unfinished multipart uploads, and their parts then stay in the
    # cluster for good, out of any client's reach: they are aborted first.
    if abort_multipart_uploads(client, bucket):
        tally.written.append("multipart uploads")
    empty_bucket(client, bucket, workers, batch, tally)
    for attempt in range(5):
        try:
            delete_bucket(client, bucket)
            tally.written.append("bucket")
            return tally.deleted - start
        except S3CallError as exc:
            # The bucket index may lag a moment behind the deletes, or multipart uploads still hold parts.
            if exc.code != "BucketNotEmpty" or attempt == 4:
                raise
            if abort_multipart_uploads(client, bucket):
                tally.written.append("multipart uploads")
            empty_bucket(client, bucket, workers, batch, tally)
            time.sleep(0.2 * (attempt + 1))
    return tally.deleted - start
