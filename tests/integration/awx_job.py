# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run one of the collection's playbooks as an AWX job template would, for the Molecule scenarios' test hosts.

    awx_job.py --dir DIR --playbook X.yml [--project DIR] --hosts h1,h2 [--connection community.docker.docker]
               --type cellar_file.json [--type backup_repository.json] [--extra-vars JSON] [--ident NAME] < inputs.json

stdin holds the credentials' inputs as JSON, one object per --type ({"cellar_file.json": {...}, ...}), so no secret
is on a command line. Each credential is injected by awx_injectors.render (AWX's injection, redone) into the private
data dir DIR; the job is run by ansible-runner with the inventory, the project (a copy of --project, by default the
collection's playbooks/) and the extra vars in DIR, and an environment without any Cellar or AWS variable of its
own. Prints one JSON object: rc, status, stats, the recap, the artifacts holding any secret input (relative to
DIR/artifacts; the secrets themselves are never printed), the names of the variables the credentials put in the
job's environment and of the extra vars. Exits 0 when the job ran, whatever its result: the caller asserts.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ansible_runner  # noqa: E402 - after the path of awx_injectors
from awx_injectors import load, render  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TYPES = ROOT / "extensions" / "awx" / "credential_types"
# What could connect the job besides the credentials under test: not inherited from the caller.
CONNECTION_ENV = (
    "CELLAR_ADDON_HOST",
    "CELLAR_ADDON_KEY_ID",
    "CELLAR_ADDON_KEY_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


def secret_values(ctype, inputs):
    return [str(inputs[f["id"]]) for f in ctype["inputs"]["fields"] if f.get("secret") and inputs.get(f["id"])]


def artifacts_holding(directory, texts):
    """The files under <directory>/artifacts that hold any of ``texts``, relative to artifacts/, sorted."""
    root = Path(directory) / "artifacts"
    if not root.is_dir():
        return []
    found = set()
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found.update(str(path.relative_to(root)) for text in texts if text.encode() in data)
    return sorted(found)


def prepare(args, inputs):
    """(envvars, extravars, secrets, injected env names): the private data dir written, the credentials injected."""
    directory = Path(args.dir)
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "project").mkdir(parents=True)
    # AWX checks the project out: a copy of it, the playbook and what it reads by relative paths.
    shutil.copytree(args.project, directory / "project", dirs_exist_ok=True)
    (directory / "inventory").mkdir()
    # A local job runs the modules with this Python, which has their dependencies (boto3), as an EE's would.
    local = " ansible_python_interpreter=%s" % sys.executable if args.connection == "local" else ""
    hosts = "".join("%s ansible_connection=%s%s\n" % (host, args.connection, local) for host in args.hosts.split(",") if host)
    (directory / "inventory" / "hosts").write_text(hosts)
    envvars, extravars, secrets = {}, json.loads(args.extra_vars), []
    for type_file in args.type:
        ctype = load(TYPES / type_file)
        env, extra, _paths = render(ctype, inputs.get(type_file, {}), directory)
        envvars.update(env)
        extravars.update(extra)
        secrets += secret_values(ctype, inputs.get(type_file, {}))
    injected = sorted(envvars)
    envvars.update(
        ANSIBLE_COLLECTIONS_PATH=os.environ.get("ANSIBLE_COLLECTIONS_PATH", ""),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_PYTHON_INTERPRETER="auto_silent",
    )
    return envvars, extravars, secrets, injected


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--playbook", required=True, help="the playbook's file name in the project")
    parser.add_argument("--project", default=str(ROOT / "playbooks"), help="the project directory (default: the collection's playbooks/)")
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--connection", default="community.docker.docker")
    parser.add_argument("--type", action="append", required=True)
    parser.add_argument("--extra-vars", default="{}")
    parser.add_argument("--ident", default="job")
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args()
    inputs = json.load(sys.stdin)
    for name in CONNECTION_ENV:
        os.environ.pop(name, None)  # ansible-runner hands this process's environment to the job
    envvars, extravars, secrets, injected = prepare(args, inputs)
    job = ansible_runner.run(
        private_data_dir=args.dir,
        playbook=Path(args.playbook).name,
        ident=args.ident,
        envvars=envvars,
        extravars=extravars,
        quiet=True,
        timeout=args.timeout,
    )
    stdout = job.stdout.read()
    # The recap when the job passed; the end of its output (the failed task) when it did not.
    recap = stdout[stdout.rfind("PLAY RECAP") :] if job.rc == 0 and "PLAY RECAP" in stdout else stdout[-4000:]
    for secret in secrets:
        recap = recap.replace(secret, "***")
    result = {
        "rc": job.rc,
        "status": job.status,
        "stats": job.stats,
        "recap": recap,
        "secret_in_stdout": any(secret in stdout for secret in secrets),
        "secret_in_artifacts": artifacts_holding(args.dir, secrets),
        "secrets_checked": len(secrets),
        "env_names": injected,
        "extra_var_names": sorted(extravars),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
