#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection at .../ansible_collections/keepdata/storage
# (ansible-test needs that path; a copy, since it resolves symlinks). No ignore files are allowed.
#
#   scripts/sanity.sh [ARGS...]            with the main toolchain's ansible-core (requirements-dev.txt)
#   scripts/sanity.sh --oldest [ARGS...]   with the oldest ansible-core the collection claims
#                                          (tests/requirements-oldest.txt, venv made by kd_extra_venv)
# ARGS go to ansible-test sanity (say --test pylint).
set -euo pipefail
source "$(dirname "$0")/common.sh"
kd_activate

copy="$KD_WORK/ansible-test"
if [ "${1:-}" = --oldest ]; then
  shift
  oldest_venv=$(kd_extra_venv oldest "$KD_ROOT/tests/requirements-oldest.txt")
  export PATH="$oldest_venv/bin:$PATH"
  # A copy of its own: the two ansible-test versions never share tests/output (their per-test venvs).
  copy="$KD_WORK/ansible-test-oldest"
fi
# ansible-test --venv bootstraps pip with a script it cannot download here: scripts/bootstrap.sh saves the
# offline equivalent (tests/rig/ansible_test_get_pip.py) for the pip version each toolchain's ansible-test wants.
get_pip=$(cat "$(dirname "$(command -v ansible-test)")"/../lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | kd_get_pip_name) \
  || kd_die "cannot tell which pip version this ansible-test bootstraps"
[ -f "$HOME/.ansible/test/cache/$get_pip" ] || kd_die "no offline pip bootstrap $get_pip for ansible-test: run scripts/bootstrap.sh"
kd_step "ansible-test sanity, $(ansible --version | head -n 1)"

[ -z "$(ls "$KD_ROOT"/tests/sanity/ignore-*.txt 2>/dev/null)" ] || kd_die "tests/sanity/ignore-*.txt exist: fix the code instead"

dest="$copy/ansible_collections/keepdata/storage"
kd_copy_collection "$dest"
cd "$dest"
# --venv: ansible-test installs each test's pinned requirements in its own venv (cached in tests/output).
ansible-test sanity --venv --python 3.11 --color no "$@"
