#!/usr/bin/env bash
# Build the collection tarball into $KEEPDATA_WORK/dist (scripts/build.sh),
# and with --check also prove it carries no test output, caches, venvs, Molecule scenarios or earlier tarballs, and
# that Ansible Galaxy's own importer takes it.
#
#   KEEPDATA_REPOSITORY_URL=https://... scripts/build.sh [--check]
#       The tarball to publish. Galaxy refuses a collection without a 'repository' in its MANIFEST.json, and galaxy.yml
#       holds none (the public URL is not known yet, and a made-up one must never ship). This variable gives it: the
#       tarball is built from the checkout, then built again from its own content with a copy of galaxy.yml that adds
#       the URL (http or https, no user or password in it). Without it (and without a repository in galaxy.yml) the
#       tarball installs with ansible-galaxy as usual, but Galaxy refuses it.
#
# --check runs galaxy-importer (GALAXY_IMPORTER_REQ below: the code Galaxy imports collections with) on the tarball,
# from a venv of its own in $KD_WORK/importer-venv (created once from the system python3, rebuilt only when the pin
# changes), with the settings of scripts/galaxy-importer.cfg: no container, no network. It fails when the import
# fails or logs an error, and prints the importer's warnings.
set -euo pipefail
source "$(dirname "$0")/common.sh"
kd_activate

check=""
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) kd_die "usage: [KEEPDATA_REPOSITORY_URL=https://...] scripts/build.sh [--check]" ;;
esac
(($# <= 1)) || kd_die "usage: [KEEPDATA_REPOSITORY_URL=https://...] scripts/build.sh [--check]"

GALAXY_IMPORTER_REQ="galaxy-importer==0.4.44"
SYSTEM_PYTHON=/usr/bin/python3

repository_url=${KEEPDATA_REPOSITORY_URL:-}
if [ -n "$repository_url" ] && ! [[ $repository_url =~ ^https?://[^/@[:space:]]+(/[^[:space:]]*)?$ ]]; then
  kd_die "KEEPDATA_REPOSITORY_URL must be an http(s) URL without a user or password in it, not '$repository_url'"
fi

# galaxy.yml's own repository, if it ever gets one ("" while it has none).
galaxy_repository() {
  python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get("repository") or "")' "$KD_ROOT/galaxy.yml"
}

# with_repository TARBALL URL OUTDIR: TARBALL built again with 'repository: URL', into OUTDIR. The source is the
# tarball's own content (exactly what ansible-galaxy took from the checkout, with its build_ignore) and a copy of
# galaxy.yml with the URL set: the checked-in galaxy.yml is never changed. Both builds must list the same files.
with_repository() {
  local tarball=$1 url=$2 out=$3 src="$KD_WORK/build-src" rebuilt files
  rm -rf "$src"; mkdir -p "$src" "$out"
  tar -xzf "$tarball" -C "$src"
  # Kept aside: OUTDIR may be TARBALL's own directory, and the new tarball then replaces it.
  files=$(sha256sum <"$src/FILES.json")
  python3 -c 'import sys, yaml
meta = yaml.safe_load(open(sys.argv[1]))
meta["repository"] = sys.argv[3]
yaml.safe_dump(meta, open(sys.argv[2], "w"), sort_keys=False)' "$KD_ROOT/galaxy.yml" "$src/galaxy.yml" "$url"
  ansible-galaxy collection build --force --output-path "$out" "$src" >/dev/null
  rebuilt="$out/$(basename "$tarball")"
  [ "$(tar -xzOf "$rebuilt" FILES.json | sha256sum)" = "$files" ] \
    || kd_die "the tarball rebuilt with a repository does not carry the same files as the one built from the checkout"
  rm -rf "$src"
  echo "$rebuilt"
}

# importer_venv: galaxy-importer in $KD_WORK/importer-venv, apart from the project's toolchain: it brings the
# ansible-core and ansible-lint it runs, as Galaxy does. Reinstalled only when the pin (or the system python) changes.
importer_venv() {
  local venv="$KD_WORK/importer-venv" stamp log="$KD_WORK/pip-importer.log"
  stamp="$GALAXY_IMPORTER_REQ python $("$SYSTEM_PYTHON" -c 'import platform; print(platform.python_version())')"
  if [ "$(cat "$venv/.req" 2>/dev/null)" != "$stamp" ]; then
    kd_step "$GALAXY_IMPORTER_REQ into $venv" >&2
    rm -rf "$venv"
    "$SYSTEM_PYTHON" -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check --no-compile "$GALAXY_IMPORTER_REQ" >"$log" 2>&1 \
      || { grep -v 'is ignored' "$log" | tail -20 >&2; kd_die "pip install $GALAXY_IMPORTER_REQ failed (see above)"; }
    echo "$stamp" >"$venv/.req"
  fi
  echo "$venv"
}

# run_importer TARBALL: galaxy-importer on TARBALL. A clean environment (env -i): kd_activate's ANSIBLE_COLLECTIONS_PATH,
# PYTHONPATH and ANSIBLE_HOME point at this checkout, and the importer must judge the tarball alone, with its own
# tools first on PATH and an empty home. Fails on a failed import or any ERROR line; prints the warnings.
run_importer() {
  local tarball=$1 venv dir="$KD_WORK/importer" log warnings
  venv=$(importer_venv)
  rm -rf "$dir"; mkdir -p "$dir/run" "$dir/home" "$dir/tmp"
  log="$dir/import.log"
  kd_step "$GALAXY_IMPORTER_REQ on $(basename "$tarball")"
  if ! (cd "$dir/run" && env -i PATH="$venv/bin:/usr/bin:/bin" HOME="$dir/home" LANG=C.UTF-8 \
    GALAXY_IMPORTER_CONFIG="$KD_ROOT/scripts/galaxy-importer.cfg" GALAXY_IMPORTER_TMP_ROOT_DIR="$dir/tmp" \
    GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP="$dir/ansible-tmp" "$venv/bin/python" -m galaxy_importer.main "$tarball") >"$log" 2>&1; then
    grep -v '^Loading ' "$log" | tail -40
    kd_die "galaxy-importer refused $(basename "$tarball") (log: $log)"
  fi
  warnings=$(grep -E '^WARNING: ' "$log" || true)
  [ -z "$warnings" ] || { echo "galaxy-importer warnings:"; echo "$warnings"; }
  if grep -qE '^(ERROR|CRITICAL): ' "$log" || ! grep -qx 'Importer processing completed successfully' "$log"; then
    grep -v '^Loading ' "$log" | tail -40
    kd_die "galaxy-importer reported errors on $(basename "$tarball") (log: $log)"
  fi
  # The importer writes its result (metadata, contents, docs) to importer_result.json in its working directory.
  python3 - "$dir/run/importer_result.json" "$(grep -cE '^WARNING: ' "$log" || true)" <<'EOF'
import collections, json, sys
result = json.load(open(sys.argv[1]))
meta = result["metadata"]
kinds = collections.Counter(c["content_type"] for c in result["contents"])
print("galaxy-importer OK: %s.%s %s imported (repository %s, requires_ansible %s), %s warning(s); contents: %s" % (
    meta["namespace"], meta["name"], meta["version"], meta["repository"], result["requires_ansible"], sys.argv[2],
    ", ".join("%d %s" % (n, kind) for kind, n in sorted(kinds.items()))))
EOF
}

dist="$KD_WORK/dist"
rm -rf "$dist"; mkdir -p "$dist"
ansible-galaxy collection build --force --output-path "$dist" "$KD_ROOT"
tarball=$(ls "$dist"/keepdata-storage-*.tar.gz)
if [ -n "$repository_url" ]; then
  with_repository "$tarball" "$repository_url" "$dist" >/dev/null
  echo "repository in MANIFEST.json: $repository_url (KEEPDATA_REPOSITORY_URL)"
elif [ -z "$(galaxy_repository)" ]; then
  echo "no repository in MANIFEST.json: Galaxy refuses this tarball (KEEPDATA_REPOSITORY_URL gives one)"
fi
echo "built $tarball ($(du -h "$tarball" | cut -f1))"

if [ -n "$check" ]; then
  listing=$(tar -tzf "$tarball")
  for required in MANIFEST.json FILES.json README.md meta/runtime.yml; do
    grep -qx -- "$required" <<<"$listing" || kd_die "$required is missing from $tarball"
  done
  # Galaxy shows each role's README.md and refuses a role without one.
  while read -r role; do
    grep -qx -- "roles/$role/README.md" <<<"$listing" || kd_die "roles/$role/README.md is missing from $tarball"
  done < <(sed -n 's|^roles/\([^/]*\)/.*|\1|p' <<<"$listing" | sort -u)
  bad=$(grep -E '(^|/)(__pycache__|\.pytest_cache|\.ruff_cache|\.venv|venv|\.git|\.ansible|\.tox)(/|$)|\.pyc$|\.tar\.gz$|^tests/output(/|$)|^(\.config/)?molecule(/|$)' <<<"$listing" || true)
  [ -z "$bad" ] || kd_die "the tarball carries files it must not: $(echo "$bad" | head -5 | tr '\n' ' ')"
  echo "tarball content OK: $(wc -l <<<"$listing") entries, role READMEs, no caches, test output, venvs, Molecule scenarios or tarballs"

  if [ -n "$repository_url" ] || [ -n "$(galaxy_repository)" ]; then
    run_importer "$tarball"
  else
    # No URL was given (CI, a developer's check): Galaxy would refuse the tarball for that alone, which proves
    # nothing. The importer checks a copy with a stand-in that is true and names no invented host: the file:// URL
    # of the checkout it was built from. That copy (in $KD_WORK/importer-build) is never the one in dist/.
    stand_in="file://$KD_ROOT"
    echo "KEEPDATA_REPOSITORY_URL is not set: the importer checks a copy with repository $stand_in"
    rm -rf "$KD_WORK/importer-build"
    checked=$(with_repository "$tarball" "$stand_in" "$KD_WORK/importer-build")
    run_importer "$checked"
  fi
fi
