#!/usr/bin/env bash
# Build the collection tarball into $KEEPDATA_WORK/dist (scripts/build.sh),
# and with --check also prove it carries no test output, caches, venvs or earlier tarballs.
set -euo pipefail
source "$(dirname "$0")/common.sh"
kd_activate

dist="$KD_WORK/dist"
rm -rf "$dist"; mkdir -p "$dist"
ansible-galaxy collection build --force --output-path "$dist" "$KD_ROOT"
tarball=$(ls "$dist"/keepdata-storage-*.tar.gz)
echo "built $tarball ($(du -h "$tarball" | cut -f1))"

if [ "${1:-}" = --check ]; then
  listing=$(tar -tzf "$tarball")
  for required in MANIFEST.json FILES.json README.md meta/runtime.yml; do
    grep -qx -- "$required" <<<"$listing" || kd_die "$required is missing from $tarball"
  done
  bad=$(grep -E '(^|/)(__pycache__|\.pytest_cache|\.ruff_cache|\.venv|venv|\.git|\.ansible|\.tox)(/|$)|\.pyc$|\.tar\.gz$|^tests/output(/|$)' <<<"$listing" || true)
  [ -z "$bad" ] || kd_die "the tarball carries files it must not: $(echo "$bad" | head -5 | tr '\n' ' ')"
  echo "tarball content OK: $(wc -l <<<"$listing") entries, no caches, test output, venvs or tarballs"
fi
