# Copyright: keepdata.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write each role's settings mapping (roles/<role>/vars/main.yml) from its argument spec.

A role variable is declared once: in meta/argument_specs.yml (with its default, which defaults/main.yml repeats for
Ansible). The mapping that hands the variables to the role's plan filter is derived from the spec here, one key per
option, named as the option without the role's prefix; the only lines written by hand are the controller's
environment variables a plan reads (ENVIRONMENT) and the variables that may be undefined (MAY_BE_UNDEFINED).

    python3 scripts/role_settings.py           # write every role's mapping
    python3 scripts/role_settings.py --check   # exit 1, naming the files, when one differs (tests/unit/test_role_settings.py)
"""

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# Each role, the prefix of its variables, and the plan filters its mapping feeds (named in the file's header).
ROLES = {
    "backup": ("backup_", "keepdata.storage.backup_plan, backup_secrets", "backup_plan.py"),
    "backup_monitoring": ("backup_monitoring_", "keepdata.storage.backup_monitoring_plan", "backup_monitoring.py"),
    "mounts": ("mounts_", "keepdata.storage.mounts_plan and mounts_files", "mounts_plan.py"),
    "s3fs": ("s3fs_", "keepdata.storage.s3fs_plan, s3fs_credentials, s3fs_bucket_request", "s3fs_plan.py"),
}
# Read on the controller, where a Clever Cloud app's add-on variables are (and a shared credentials file).
CELLAR_ENVIRONMENT = {
    "host": "CELLAR_ADDON_HOST",
    "key_id": "CELLAR_ADDON_KEY_ID",
    "key_secret": "CELLAR_ADDON_KEY_SECRET",
    "credentials_file": "AWS_SHARED_CREDENTIALS_FILE",
    "profile": "AWS_PROFILE",
}
ENVIRONMENT = {"backup": CELLAR_ENVIRONMENT, "s3fs": CELLAR_ENVIRONMENT}
# A password given as "{{ vault_... }}" whose vault variable is missing is no password (the file option may be set).
MAY_BE_UNDEFINED = {"backup_password"}


def options(role):
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return list(spec["argument_specs"]["main"]["options"])


def mapping_text(role, names):
    """The text of ``roles/<role>/vars/main.yml`` for the options ``names`` (in the spec's order)."""
    prefix, filters, plan_file = ROLES[role]
    lines = [
        "---",
        "# Written by scripts/role_settings.py from meta/argument_specs.yml: do not edit, run the script. The role's",
        "# variables as the plan filters take them (%s): a plain mapping, no logic;" % filters,
        "# see plugins/plugin_utils/%s." % plan_file,
        "_%s_settings:" % role,
    ]
    for name in names:
        if not name.startswith(prefix):
            raise SystemExit("%s: option %s lacks the prefix %s" % (role, name, prefix))
        value = "%s | default('')" % name if name in MAY_BE_UNDEFINED else name
        lines.append('  %s: "{{ %s }}"' % (name[len(prefix) :], value))
    if role in ENVIRONMENT:
        lines.append("  env:")
        lines += ["    %s: \"{{ lookup('ansible.builtin.env', '%s') }}\"" % item for item in ENVIRONMENT[role].items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a mapping is not what the spec gives")
    args = parser.parse_args(argv)
    stale = []
    for role in sorted(ROLES):
        path = ROOT / "roles" / role / "vars" / "main.yml"
        text = mapping_text(role, options(role))
        if path.read_text() != text:
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_text(text)
    if stale and args.check:
        print("not what the argument specs give (run python3 scripts/role_settings.py): %s" % ", ".join(stale), file=sys.stderr)
        return 1
    for name in stale:
        print("wrote %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
