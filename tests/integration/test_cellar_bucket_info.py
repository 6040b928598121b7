# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cellar_bucket_info against a real Ceph RGW."""

import pytest
from conftest import run_module

pytestmark = pytest.mark.rgw


def test_list_and_details(rgw, existing_bucket):
    client = rgw.client()
    client.put_bucket_versioning(Bucket=existing_bucket, VersioningConfiguration={"Status": "Enabled"})
    run_module(
        "cellar_bucket", dict(rgw.connection_args(), name=existing_bucket, preset="public_read", cors=[{"allowed_origins": ["*"], "allowed_methods": ["GET"]}])
    )
    listed = run_module("cellar_bucket_info", rgw.connection_args(), check_mode=True)
    assert listed["changed"] is False
    entry = next(b for b in listed["buckets"] if b["name"] == existing_bucket)
    assert set(entry) == {"name", "creation_date", "url"}

    detailed = run_module(
        "cellar_bucket_info", dict(rgw.connection_args(), name=existing_bucket, policy=True, cors=True, acl=True, versioning=True, website=True)
    )
    (entry,) = detailed["buckets"]
    assert entry["versioning"] == "enabled"
    assert entry["policy"]["Statement"][0]["Action"] == ["s3:GetObject"]
    assert entry["cors"] == [{"allowed_origins": ["*"], "allowed_methods": ["GET"]}]
    assert entry["acl"] == "private"
    assert entry["grants"][0]["permission"] == "FULL_CONTROL"
    assert entry["website"] is None

    by_prefix = run_module("cellar_bucket_info", dict(rgw.connection_args(), prefix=existing_bucket[:-2]))
    assert existing_bucket in [b["name"] for b in by_prefix["buckets"]]
    none = run_module("cellar_bucket_info", dict(rgw.connection_args(), name="kd-no-such-bucket-here"))
    assert none["buckets"] == []


def test_connection_from_cellar_environment(rgw, existing_bucket, monkeypatch):
    monkeypatch.setenv("CELLAR_ADDON_HOST", rgw.endpoint)
    monkeypatch.setenv("CELLAR_ADDON_KEY_ID", rgw.owner["access_key"])
    monkeypatch.setenv("CELLAR_ADDON_KEY_SECRET", rgw.owner["secret_key"])
    result = run_module("cellar_bucket_info", {"name": existing_bucket})
    assert [b["name"] for b in result["buckets"]] == [existing_bucket]
    assert result["invocation"]["module_args"]["endpoint"] == rgw.endpoint


def test_website_configuration_is_read_only_when_asked(rgw, existing_bucket):
    website = {
        "IndexDocument": {"Suffix": "index.html"},
        "ErrorDocument": {"Key": "errors/404.html"},
        "RoutingRules": [{"Condition": {"KeyPrefixEquals": "old/"}, "Redirect": {"ReplaceKeyPrefixWith": "new/"}}],
    }
    rgw.client().put_bucket_website(Bucket=existing_bucket, WebsiteConfiguration=website)
    detailed = run_module("cellar_bucket_info", dict(rgw.connection_args(), name=existing_bucket, website=True), check_mode=True)
    (entry,) = detailed["buckets"]
    assert detailed["changed"] is False
    assert entry["website"]["IndexDocument"] == {"Suffix": "index.html"}
    assert entry["website"]["ErrorDocument"] == {"Key": "errors/404.html"}
    assert entry["website"]["RoutingRules"][0]["Redirect"]["ReplaceKeyPrefixWith"] == "new/"
    assert "ResponseMetadata" not in entry["website"]
    assert set(entry) == {"name", "creation_date", "url", "website"}
    plain = run_module("cellar_bucket_info", dict(rgw.connection_args(), name=existing_bucket))
    assert "website" not in plain["buckets"][0]
