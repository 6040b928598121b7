# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection as a user gets it: a clean virtualenv with only ansible-core and requirements.txt, the tarball of
``ansible-galaxy collection build`` installed in it, and ``keepdata.storage.cellar`` run by its FQCN against the RGW.

Nothing of the development toolchain (molecule, pytest, ansible-lint, the ``ansible`` package) and nothing of this
checkout (its collection link, PYTHONPATH, ansible.cfg, the caller's environment) may reach the run.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, delete_bucket_quietly, pinned_version, server_snapshot, tail

pytestmark = pytest.mark.rgw

# Development tools that must not be importable or installed in the clean virtualenv.
DEV_ONLY_DISTRIBUTIONS = ("pytest", "molecule", "molecule-plugins", "ansible-lint", "ansible", "moto", "ruff", "yamllint", "ansible-runner")


def run(command, timeout, secrets=(), **kwargs):
    """Run ``command``; fail the test with the tail of its output if it does not exit 0. Returns its stdout."""
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"{command[0]} {command[1:3]} did not finish in {timeout} s:\n{tail(output, secrets=secrets)}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(map(str, command[:4]))} ... exited {proc.returncode}:\n{tail(output, secrets=secrets)}"
    return proc.stdout


class CleanInstall:
    """A virtualenv with ansible-core and requirements.txt only, and the collection tarball installed beside it."""

    def __init__(self, base):
        self.base = base
        self.venv = base / "venv"
        self.bin = self.venv / "bin"
        self.collections = base / "collections"
        self.installed = self.collections / "ansible_collections" / "keepdata" / "storage"
        self.home = base / "home"
        self.work = base / "work"  # the playbook's working directory: no ansible.cfg of the checkout there
        self.tarball = None
        self.timings = {}

    def env(self, **extra):
        """An environment from scratch: nothing of the caller's (no PYTHONPATH, ANSIBLE_*, dev venv on PATH)."""
        return dict(
            PATH=f"{self.bin}:/usr/bin:/bin",
            HOME=str(self.home),
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_LOCALHOST_WARNING="false",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
            ANSIBLE_NOCOLOR="1",
            **extra,
        )


@pytest.fixture(scope="module")
def clean_install(tmp_path_factory):
    """Build the tarball with the project's ansible-galaxy, make the clean venv, install the tarball into it (once)."""
    install = CleanInstall(tmp_path_factory.mktemp("clean-install"))
    for directory in (install.home, install.work, install.collections):
        directory.mkdir()
    started = time.monotonic()

    build_dir = install.base / "build"
    project_galaxy = Path(sys.executable).parent / "ansible-galaxy"
    run([str(project_galaxy), "collection", "build", "--output-path", str(build_dir), str(ROOT)], timeout=300, cwd=install.base)
    tarballs = sorted(build_dir.glob("keepdata-storage-*.tar.gz"))
    assert len(tarballs) == 1, f"ansible-galaxy collection build made {tarballs} in {build_dir}"
    install.tarball = tarballs[0]
    install.timings["build"] = time.monotonic() - started

    # pip keeps its own configuration (config files, PIP_* variables: the index it is set up with here), but
    # nothing that would point it or the new interpreter at the checkout or the development venv.
    pip_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    pip_env["PATH"] = "/usr/bin:/bin"
    run([sys.executable, "-m", "venv", str(install.venv)], timeout=120, env=pip_env)
    requirements = ROOT / "requirements.txt"
    run(
        [
            str(install.bin / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            f"ansible-core=={pinned_version('requirements-dev.txt')}",
            "-r",
            str(requirements),
        ],
        timeout=300,
        env=pip_env,
    )
    install.timings["venv+pip"] = time.monotonic() - started - install.timings["build"]

    # No dependencies to fetch (galaxy.yml: dependencies {}); --offline makes sure no Galaxy server is asked.
    run(
        [str(install.bin / "ansible-galaxy"), "collection", "install", "--offline", str(install.tarball), "-p", str(install.collections)],
        timeout=300,
        env=install.env(),
        cwd=install.work,
    )
    install.timings["install"] = time.monotonic() - started - install.timings["build"] - install.timings["venv+pip"]
    return install


def test_clean_venv_holds_only_the_runtime(clean_install):
    listed = json.loads(
        run([str(clean_install.bin / "python"), "-m", "pip", "list", "--disable-pip-version-check", "--format", "json"], timeout=120, env=clean_install.env())
    )
    versions = {entry["name"].lower(): entry["version"] for entry in listed}
    print("clean venv:", ", ".join(f"{name}=={versions[name]}" for name in ("ansible-core", "boto3", "botocore") if name in versions))
    assert versions.get("ansible-core") == pinned_version("requirements-dev.txt"), versions
    assert {"boto3", "botocore"} <= set(versions), versions
    leaked = sorted(set(DEV_ONLY_DISTRIBUTIONS) & set(versions))
    assert not leaked, f"development tools in the clean venv: {leaked}"
    for module in ("molecule", "pytest", "ansiblelint"):
        proc = subprocess.run(
            [str(clean_install.bin / "python"), "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env=clean_install.env(),
            cwd=clean_install.work,
        )
        assert proc.returncode != 0, f"{module} is importable in the clean venv"


def test_tarball_is_what_ansible_finds(clean_install):
    """The collection Ansible sees is the tarball's copy (a real directory with its MANIFEST.json), not the checkout."""
    assert (clean_install.installed / "MANIFEST.json").is_file()
    assert (clean_install.installed / "playbooks" / "cellar.yml").is_file()
    assert (clean_install.installed / "plugins" / "modules" / "cellar_bucket.py").is_file()
    assert not clean_install.installed.is_symlink()
    assert clean_install.installed.resolve() != ROOT.resolve()
    env = clean_install.env()
    assert str(ROOT) not in env["ANSIBLE_COLLECTIONS_PATH"] and "PYTHONPATH" not in env
    listed = json.loads(
        run(
            [str(clean_install.bin / "ansible-galaxy"), "collection", "list", "keepdata.storage", "--format", "json"],
            timeout=120,
            env=env,
            cwd=clean_install.work,
        )
    )
    assert list(listed) == [str(clean_install.collections / "ansible_collections")], listed


def recap(output):
    match = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "unreachable": int(match.group(3)), "failed": int(match.group(4))} if match else None


def test_cellar_playbook_by_fqcn_from_the_tarball(clean_install, rgw, cellar_bucket):
    secret = rgw.owner["secret_key"]
    env = clean_install.env(CELLAR_ADDON_HOST=rgw.endpoint, CELLAR_ADDON_KEY_ID=rgw.owner["access_key"], CELLAR_ADDON_KEY_SECRET=secret)
    extra_vars = json.dumps({"cellar_buckets": [{"name": cellar_bucket, "versioning": "enabled"}]})
    command = [str(clean_install.bin / "ansible-playbook"), "keepdata.storage.cellar", "-e", extra_vars]
    try:
        started = time.monotonic()
        out = run(command, timeout=600, secrets=(secret,), env=env, cwd=clean_install.work)
        first = time.monotonic() - started
        assert recap(out) and recap(out)["changed"] == 1 and recap(out)["failed"] == 0, tail(out, secrets=(secret,))
        snapshot = server_snapshot(rgw, cellar_bucket)
        assert cellar_bucket in snapshot["buckets"], tail(out, secrets=(secret,))
        assert snapshot["versioning"] == "Enabled", snapshot

        started = time.monotonic()
        out = run(command, timeout=600, secrets=(secret,), env=env, cwd=clean_install.work)
        second = time.monotonic() - started
        assert recap(out) and recap(out)["changed"] == 0 and recap(out)["failed"] == 0, f"second run not idempotent:\n{tail(out, secrets=(secret,))}"
        timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in clean_install.timings.items())
        print(f"clean install: {timings}; playbook runs {first:.1f}s and {second:.1f}s")
    finally:
        delete_bucket_quietly(rgw, cellar_bucket)
