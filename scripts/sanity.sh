#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection at .../ansible_collections/keepdata/storage
# (ansible-test needs that path; a copy, since it resolves symlinks). No ignore files are allowed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
kd_activate

[ -z "$(ls "$KD_ROOT"/tests/sanity/ignore-*.txt 2>/dev/null)" ] || kd_die "tests/sanity/ignore-*.txt exist: fix the code instead"

dest="$KD_WORK/ansible-test/ansible_collections/keepdata/storage"
mkdir -p "$dest/tests"
# Fresh copy every run, but keep tests/output: ansible-test caches its per-test venvs there.
find "$dest" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
find "$dest/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
# Only what git would ship: tracked files and untracked files that are not ignored.
(cd "$KD_ROOT" && git ls-files -co --exclude-standard -z) | rsync -a --from0 --files-from=- "$KD_ROOT/" "$dest/"
cd "$dest"
# --venv: ansible-test installs each test's pinned requirements in its own venv (cached in tests/output).
ansible-test sanity --venv --python 3.11 --color no "$@"
