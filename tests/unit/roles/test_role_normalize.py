# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles' input validation and fstab building (templates/normalize.j2), rendered by real Ansible.

One ansible-playbook run on localhost renders every case with the role's defaults, exactly as the role's
assert step does (template lookup + from_json); the Molecule scenarios prove the same logic on real hosts.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - name: Role defaults
      ansible.builtin.include_vars:
        file: "{{ role_dir }}/defaults/main.yml"
    - name: Render every case
      ansible.builtin.set_fact:
        rendered: "{{ rendered | default([]) + [lookup('ansible.builtin.template', role_dir ~ '/templates/normalize.j2',
                      template_vars=item) | from_json] }}"
      loop: "{{ cases }}"
    - name: Write the results
      ansible.builtin.copy:
        content: "{{ rendered | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def render(tmp_path, role, cases, env=None):
    """Render the role's normalize.j2 once per case (a dict of variables); returns the parsed outputs in order."""
    if not shutil.which("ansible-playbook"):
        pytest.fail("ansible-playbook is not on PATH: run the unit tests through scripts/test.sh unit")
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    out = tmp_path / "out.json"
    # The copy module runs on localhost: with the test's own Python, not whatever interpreter discovery finds.
    extra = {"role_dir": str(ROOT / "roles" / role), "cases": cases, "out": str(out), "ansible_python_interpreter": sys.executable}
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    run_env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False", **(env or {}))
    proc = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-e", "@" + str(tmp_path / "extra.json"), str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def mounts(tmp_path_factory):
    """Every mounts case, rendered in one run; indexed by case name."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOkUyK0000000000000000000000000000000000000000"
    ssh = {"type": "sshfs", "user": "app", "path": "/mnt/s", "host_key": key}
    cases = {
        "path collision": [
            {"type": "cifs", "server": "h", "share": "a", "user": "u", "password": "p1", "path": "/srv/a-b"},
            {"type": "cifs", "server": "h", "share": "b", "user": "u", "password": "p2", "path": "/srv/a/b"},
        ],
        "ipv6 other port": [dict(ssh, server="[::1]", port=2222)],
        "ipv6 port 22": [dict(ssh, server="[::1]")],
        "ipv4 port 22": [dict(ssh, server="127.0.0.5")],
        "fsbucket async": [{"type": "fsbucket", "spec": "/uploads:bucket-1-fsbucket.services.clever-cloud.com:async"}],
        "fsbucket plain": [{"type": "fsbucket", "spec": "/uploads:bucket-1-fsbucket.services.clever-cloud.com"}],
        "fsbucket bad flag": [{"type": "fsbucket", "spec": "/uploads:bucket-1.example:sync"}],
        "secret option": [{"type": "cifs", "server": "h", "share": "s", "user": "u", "path": "/mnt/c", "options": ["password=Sup3r Secr3t"]}],
        "absent sshfs without key": [{"type": "sshfs", "state": "absent", "server": "h", "user": "u", "path": "/mnt/old"}],
        "nfs defaults": [{"type": "nfs", "server": "nas", "export": "/data", "path": "/mnt/nfs"}],
    }
    json_cases = {
        "old-style bucket id": [{"bucket": "bucket_0123", "folder": "/u"}],
        "whitelist other app": [{"bucket_host": "b.example", "folder": "/u", "apps": ["app_other"]}],
        "whitelist this app": [{"bucket_host": "b.example", "folder": "/u", "apps": ["app_this"]}],
    }
    names = list(cases) + list(json_cases)
    variables = [{"mounts_list": m} for m in cases.values()]
    variables += [{"mounts_fs_buckets_json": j, "mounts_app_id": "app_this"} for j in json_cases.values()]
    return dict(zip(names, render(tmp_path_factory.mktemp("mounts"), "mounts", variables)))


def test_paths_that_flatten_alike_get_their_own_credential_files(mounts):
    result = mounts["path collision"]
    assert result["errors"] == []
    files = [m["files"]["credentials"] for m in result["mounts"]]
    assert files == ["/etc/keepdata/mounts/srv-a%2db.cred", "/etc/keepdata/mounts/srv-a-b.cred"]
    assert sorted(result["secrets"]) == ["srv-a%2db", "srv-a-b"]
    assert "password=p1" in result["secrets"]["srv-a%2db"]["cifs"]
    assert "password=p2" in result["secrets"]["srv-a-b"]["cifs"]


@pytest.mark.parametrize(
    ("case", "known_hosts_name"),
    [("ipv6 other port", "[::1]:2222"), ("ipv6 port 22", "::1"), ("ipv4 port 22", "127.0.0.5")],
)
def test_known_hosts_names(mounts, case, known_hosts_name):
    result = mounts[case]
    assert result["errors"] == []
    assert result["mounts"][0]["hostkey"]["name"] == known_hosts_name


def test_fs_bucket_async_flag(mounts):
    assert "async" in mounts["fsbucket async"]["mounts"][0]["opts"]
    assert "async" not in mounts["fsbucket plain"]["mounts"][0]["opts"]
    assert mounts["fsbucket async"]["mounts"][0]["path"] == "/srv/app/uploads"
    assert "/folder:bucket-host:async" in mounts["fsbucket bad flag"]["errors"][0]


def test_option_errors_never_echo_the_value(mounts):
    errors = mounts["secret option"]["errors"]
    assert len(errors) == 1
    assert 'option "password=..." must be one fstab option' in errors[0]
    assert "Sup3r" not in json.dumps(mounts["secret option"]["errors"])


def test_absent_sshfs_needs_no_host_key(mounts):
    assert mounts["absent sshfs without key"]["errors"] == []


def test_nfs_defaults(mounts):
    assert mounts["nfs defaults"]["mounts"][0]["opts"] == [
        "_netdev",
        "vers=4.2",
        "hard",
        "proto=tcp",
        "timeo=600",
        "retrans=2",
        "nofail",
        "x-systemd.mount-timeout=30",
    ]


def test_fs_buckets_json(mounts):
    assert "old-style FS bucket id" in mounts["old-style bucket id"]["errors"][0]
    assert mounts["whitelist other app"]["mounts"] == []
    assert mounts["whitelist other app"]["errors"] == []
    assert [m["src"] for m in mounts["whitelist this app"]["mounts"]] == ["b.example:/"]


@pytest.fixture(scope="module")
def s3fs(tmp_path_factory):
    base = {"s3fs_access_key": "AK", "s3fs_secret_key": "SK-NOT-IN-ERRORS", "s3fs_bucket": "shared"}
    cases = {
        "kms option": dict(base, s3fs_options=["sse=kmsid:0123-abcd", "multipart_size=64"]),
        "secret option": dict(base, s3fs_options=["secret_access_key=XYZ-NOT-IN-ERRORS"]),
        "option with space": dict(base, s3fs_options=["token=a b"]),
        "managed option": dict(base, s3fs_options=["url=http://elsewhere"]),
        "dotted bucket": dict(base, s3fs_bucket="media.example.com"),
        "plain bucket": dict(base),
        "credentials string": {"s3fs_credentials_string": "AK2:SK2:from-string"},
        "create on": dict(base, s3fs_create_bucket=True),
        "create on absent": dict(base, s3fs_create_bucket=True, s3fs_state="absent"),
    }
    return dict(zip(cases, render(tmp_path_factory.mktemp("s3fs"), "s3fs", list(cases.values()))))


def test_s3fs_options_filter(s3fs):
    assert s3fs["kms option"]["errors"] == []
    assert "sse=kmsid:0123-abcd" in s3fs["kms option"]["cfg"]["opts"]
    assert s3fs["secret option"]["errors"] == ['option "secret_access_key" would put a credential into fstab: use s3fs_access_key/s3fs_secret_key']
    assert s3fs["option with space"]["errors"] == ['option "token=..." must be one fstab option (no comma, space or quote)']
    assert 'option "url" is managed by the role' in s3fs["managed option"]["errors"][0]
    every_error = json.dumps([case["errors"] for case in s3fs.values()])
    assert "NOT-IN-ERRORS" not in every_error


def test_s3fs_path_style_and_credentials(s3fs):
    assert "use_path_request_style" in s3fs["dotted bucket"]["cfg"]["opts"]
    assert "use_path_request_style" not in s3fs["plain bucket"]["cfg"]["opts"]
    assert s3fs["credentials string"]["secret"] == "AK2:SK2"  # noqa: S105 - a test value, not a password
    assert s3fs["credentials string"]["cfg"]["bucket"] == "from-string"
    assert [s3fs[c]["create_bucket"] for c in ("plain bucket", "create on", "create on absent")] == [False, True, False]
